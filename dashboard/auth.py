"""Sign-in and the server-side guard in front of every route (docs/security.md).

- `PINGAN_AUTH=on` (default for `pingan serve` and the gunicorn entry): a signed, HttpOnly,
  SameSite=Lax session cookie (Secure unless `PINGAN_COOKIE_SECURE=0`) names the user; the
  user's role and scope are read from the registry (cached a few seconds per worker), so
  removing a user or changing the password ends their sessions.
- `demo`: every viewer is the labelled demo user (what `pingan demo` runs).
- `off`: nobody signs in and nothing is restricted; only when set explicitly.
- An optional trusted reverse-proxy header names the user (SSO), honoured only from the
  configured proxy addresses.

CSRF: state-changing requests must come from our own origin (Origin / Sec-Fetch-Site), Dash
callback posts must be JSON (a cross-site form cannot send that without a CORS preflight we
never answer), and the login and logout forms carry a per-session token.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import jinja2
import redis
from flask import Flask, Response, g, redirect, request, session
from werkzeug.exceptions import HTTPException

from dashboard.access import Viewer
from dashboard.runtime import Runtime
from dashboard.secret import load_secret
from datasources.users import User, authenticate, get_user
from layouts.i18n import t

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
PING_PATH = "/auth/ping"
PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/embed/")
PUBLIC_PATHS = frozenset({LOGIN_PATH, "/_favicon.ico", "/favicon.ico", "/healthz"})
API_PREFIXES = ("/_dash-", "/live/", "/auth/")
MAX_BODY = 256 * 1024          # a Dash callback post of this app is a few KB
FAIL_LIMIT = 5                 # failed sign-ins per user name per window
FAIL_WINDOW_S = 300
USER_CACHE_S = 5.0
DEMO_USER = "demo"
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent.parent / "layouts" / "templates"),
    autoescape=True,
)


@dataclass
class _UserCache:
    """Users by name, re-read after `ttl` seconds (per worker)."""

    runtime: Runtime
    ttl: float = USER_CACHE_S
    _items: dict[str, tuple[float, User | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, name: str) -> User | None:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(name)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        user = get_user(self.runtime.engine, name)
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[name] = (now, user)
        return user


def _lang() -> str:
    return "en" if request.args.get("lang") == "en" else "zh"


def safe_next(target: str | None) -> str:
    """Only a local path may follow a sign-in (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def same_origin() -> bool:
    """Is this request from a page of our own origin? (absent headers: not a browser form)"""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc == request.host
    site = request.headers.get("Sec-Fetch-Site")
    return site in (None, "same-origin", "none")


def install_auth(server: Flask, runtime: Runtime) -> None:
    """Configure the session cookie and put the guard in front of every route."""
    s = runtime.settings
    server.secret_key = load_secret(s)
    server.config.update(
        SESSION_COOKIE_NAME="pingan_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=s.cookie_secure,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=s.session_hours),
        SESSION_REFRESH_EACH_REQUEST=True,
        MAX_CONTENT_LENGTH=MAX_BODY,
        DEBUG=False,
        PROPAGATE_EXCEPTIONS=False,
    )
    users = _UserCache(runtime)

    def topo_root() -> str:
        return runtime.topology.roots[0] if runtime.topology.roots else ""

    def viewer_for(user: User | None) -> Viewer | None:
        return Viewer(user.name, user.role, user.scope) if user else None

    def session_viewer() -> Viewer | None:
        name, epoch = session.get("u"), session.get("e")
        if not isinstance(name, str) or not isinstance(epoch, str):
            return None
        user = users.get(name)
        if user is None or not secrets.compare_digest(user.epoch, epoch):
            return None
        if _ended(runtime, session.get("sid")):
            return None
        session.permanent = True  # sliding: each request of an open screen extends it
        return viewer_for(user)

    def proxy_viewer() -> Viewer | None:
        header = s.trusted_user_header
        if not header or request.remote_addr not in s.trusted_proxies:
            return None
        name = request.headers.get(header, "").strip()
        return viewer_for(users.get(name)) if name else None

    def identify() -> Viewer | None:
        if s.auth == "off":
            return Viewer("—", "admin", topo_root(), open=True)
        if s.auth == "demo":
            return Viewer(DEMO_USER, "leader", topo_root(), demo=True)
        return proxy_viewer() or session_viewer()

    @server.before_request
    def guard():
        path = request.path
        if request.method not in ("GET", "HEAD", "OPTIONS") and not same_origin():
            return _plain(403, "cross-site request refused")
        if path.startswith("/_dash-update-component") and request.method == "POST":
            if not request.is_json:
                return _plain(415, "callback requests must be JSON")
            if not _callback_envelope_ok(request.get_json(silent=True)):
                return _plain(400, "malformed callback request")
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return None
        g.pingan_viewer = identify()
        if g.pingan_viewer is not None:
            return None
        if path.startswith(API_PREFIXES):
            return _plain(401, "login required")
        query = request.query_string.decode("utf-8", "replace")
        target = path + ("?" + query if query else "")
        return redirect(LOGIN_PATH + "?" + urlencode({"next": target}), code=303)

    @server.errorhandler(Exception)
    def unexpected(e: Exception):
        """Never a traceback to the client: logged here, a plain line there. A callback post
        that breaks the dispatcher (inputs that do not match the callback) is the client's
        error."""
        if isinstance(e, HTTPException):
            return e
        server.logger.exception("unhandled error on %s", request.path)
        if request.path.startswith("/_dash-update-component"):
            return _plain(400, "callback request refused")
        return _plain(500, "server error")

    @server.route(LOGIN_PATH, methods=["GET", "POST"])
    def login():
        lang = _lang()
        if s.auth != "on":
            return redirect("/", code=303)
        error = None
        if request.method == "POST":
            name = request.form.get("username", "").strip()[:64]
            if not _form_token_ok():
                error = t("login_expired", lang)
            elif not _allow_attempt(runtime, name):
                error = t("login_throttled", lang)
            else:
                user = authenticate(runtime.engine, name, request.form.get("password", "")[:1024])
                if user is None:
                    _count_failure(runtime, name)
                    error = t("login_failed", lang)
                else:
                    session.clear()
                    session.update(u=user.name, e=user.epoch, sid=secrets.token_urlsafe(16),
                                   csrf=secrets.token_urlsafe(24))
                    session.permanent = True
                    default = "/brief" if user.role == "leader" else "/"
                    return redirect(safe_next(request.args.get("next") or default), code=303)
        return _page("login.html", lang, 401 if error else 200, error=error,
                     next=safe_next(request.args.get("next")))

    @server.route(LOGOUT_PATH, methods=["GET", "POST"])
    def logout():
        lang = _lang()
        if request.method == "POST" and _form_token_ok():
            _end(runtime, session.get("sid"))
            session.clear()
            return redirect(LOGIN_PATH + ("?lang=en" if lang == "en" else ""), code=303)
        v = g.get("pingan_viewer")
        return _page("logout.html", lang, 200, who=v.name if v else "")

    @server.get(PING_PATH)
    def ping():
        """Keeps the session of an open screen alive; 401 once it has ended."""
        v = g.pingan_viewer
        return {"user": v.name, "role": v.role, "scope": v.scope, "demo": v.demo}


def _callback_envelope_ok(body: object) -> bool:
    """The shape Dash's dispatcher expects; anything else is refused before it runs."""
    if not isinstance(body, dict) or not isinstance(body.get("output"), str):
        return False
    if not isinstance(body.get("outputs", []), list | dict):
        return False
    for key in ("inputs", "state"):
        items = body.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict | list) for i in items):
            return False
    return isinstance(body.get("changedPropIds", []), list)


def _form_token_ok() -> bool:
    sent = request.form.get("csrf", "")
    have = session.get("csrf")
    return isinstance(have, str) and bool(sent) and secrets.compare_digest(sent, have)


def _page(template: str, lang: str, status: int, **kw) -> Response:
    if not isinstance(session.get("csrf"), str):
        session["csrf"] = secrets.token_urlsafe(24)
    body = TEMPLATES.get_template(template).render(
        lang=lang, t=lambda key, **f: t(key, lang, **f), csrf=session["csrf"], **kw)
    resp = Response(body, status=status, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _plain(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


def _ended_key(runtime: Runtime, sid: str) -> str:
    return f"{runtime.settings.key_prefix}:{{auth}}:ended:{sid}"


def _ended(runtime: Runtime, sid: object) -> bool:
    """Was this session signed out? A copy of its cookie must not outlive the sign-out.
    Fails closed: without Redis nobody is signed in (and there is nothing to show either)."""
    if not isinstance(sid, str) or not sid:
        return True
    try:
        return bool(runtime.redis.exists(_ended_key(runtime, sid)))
    except (redis.RedisError, OSError):
        return True


def _end(runtime: Runtime, sid: object) -> None:
    if isinstance(sid, str) and sid:
        ttl = int(runtime.settings.session_hours * 3600) + 60
        with contextlib.suppress(redis.RedisError, OSError):
            runtime.redis.set(_ended_key(runtime, sid), 1, ex=ttl)


def _fail_key(runtime: Runtime, name: str) -> str:
    return f"{runtime.settings.key_prefix}:{{auth}}:fail:{name.lower()}"


def _allow_attempt(runtime: Runtime, name: str) -> bool:
    try:
        n = runtime.redis.get(_fail_key(runtime, name))
    except (redis.RedisError, OSError):
        return True  # the throttle needs Redis; the password check does not
    return int(n or 0) < FAIL_LIMIT


def _count_failure(runtime: Runtime, name: str) -> None:
    try:
        pipe = runtime.redis.pipeline()
        pipe.incr(_fail_key(runtime, name))
        pipe.expire(_fail_key(runtime, name), FAIL_WINDOW_S)
        pipe.execute()
    except (redis.RedisError, OSError):
        pass
