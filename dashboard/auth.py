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

Also here: the trusted-hosts check against DNS rebinding (`PINGAN_TRUSTED_HOSTS`), the
absolute session lifetime (`PINGAN_SESSION_MAX_HOURS`, except `PINGAN_KIOSK_USERS`), the
sign-in throttle (dashboard/throttle.py) and password checks off the event loop
(dashboard/hashing.py). A long-lived request (a live stream) re-checks its viewer with
`access.revalidator()`.
"""

from __future__ import annotations

import contextlib
import ipaddress
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
from dashboard.gateway import PREFIX as GATEWAY_PREFIX
from dashboard.hashing import Busy, HashPool
from dashboard.runtime import Runtime
from dashboard.secret import load_secret
from dashboard.throttle import Throttle
from datasources.accesslog import AccessLog, SeenOnce, session_tag
from datasources.keys import Keys
from datasources.users import User, authenticate, get_user
from layouts.i18n import t

LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"
PING_PATH = "/auth/ping"
PUBLIC_PREFIXES = ("/assets/", "/_dash-component-suites/", "/embed/")
PUBLIC_PATHS = frozenset({LOGIN_PATH, "/_favicon.ico", "/favicon.ico", "/healthz"})
API_PREFIXES = ("/_dash-", "/live/", "/auth/", "/vc/")
MAX_BODY = 256 * 1024          # a Dash callback post of this app is a few KB
USER_CACHE_S = 5.0
CLOCK_SKEW_S = 300             # a session's start may lie this far in the future (hosts' clocks)
DEMO_USER = "demo"
TRIED_NAME_CHARS = 32          # the access log keeps this much of a name a failed sign-in tried
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


def _hostname(host: str) -> str | None:
    """The name of a Host header without its port, lower case; None when malformed."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 1 else None
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    return name if name and all(c.isalnum() or c in "-._" for c in name) else None


def host_allowed(host: str, trusted: tuple[str, ...]) -> bool:
    """Against DNS rebinding: a page of another site whose name was made to resolve to this
    server sends that name as Host. Allowed: with `trusted` empty (the default) `localhost`
    and IP addresses only (a rebinding attack needs a name); otherwise the names listed
    (`.example.gov.cn` also matches its subdomains; `*` allows any host)."""
    if "*" in trusted:
        return True
    name = _hostname(host)
    if name is None:
        return False
    if not trusted:
        if name == "localhost":
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True
    for entry in trusted:
        entry = entry.lower().rstrip(".")
        if name == entry.lstrip(".") or (entry.startswith(".") and name.endswith(entry)):
            return True
    return False


def client_address(forwarded_from: tuple[str, ...]) -> str:
    """The client's address: behind a proxy named in PINGAN_FORWARDED_FROM, the last
    `X-Forwarded-For` entry (deploy/nginx.conf sets it to the address nginx saw; anything a
    client put before it is ignored), else the peer's. A value that is not an IP address is not
    believed (the peer's address then)."""
    peer = request.remote_addr or "-"
    if peer in forwarded_from:
        last = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return peer
    return peer


def same_origin() -> bool:
    """Is this request from a page of our own origin? (absent headers: not a browser form)"""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin != "null" and urlsplit(origin).netloc == request.host
    site = request.headers.get("Sec-Fetch-Site")
    return site in (None, "same-origin", "none")


def install_auth(server: Flask, runtime: Runtime, access_log: AccessLog | None = None) -> None:
    """Configure the session cookie and put the guard in front of every route. Sign-ins,
    failed ones and sign-outs go to `access_log` (docs/security.md "Access log")."""
    s = runtime.settings
    journal = access_log or AccessLog(runtime.redis, Keys(s.key_prefix), s.access_log_days)
    seen = SeenOnce(max_age_s=max(60, int(s.session_max_hours * 3600)))
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
    throttle = Throttle(runtime.redis, s.key_prefix)
    hashes = HashPool(s.login_max_concurrent)
    kiosk = frozenset(s.kiosk_users)
    max_age_s = s.session_max_hours * 3600

    def topo_root() -> str:
        return runtime.topology.roots[0] if runtime.topology.roots else ""

    def viewer_for(user: User | None) -> Viewer | None:
        return Viewer(user.name, user.role, user.scope) if user else None

    def within_lifetime(name: str, t0: object) -> bool:
        """The absolute limit: signed in less than `session_max_hours` ago (kiosk accounts'
        sessions slide without it)."""
        if name in kiosk:
            return True
        if not isinstance(t0, int) or isinstance(t0, bool):
            return False  # a cookie from before the limit existed: sign in again
        return -CLOCK_SKEW_S <= time.time() - t0 <= max_age_s

    def check_session(name: object, epoch: object, sid: object, t0: object,
                      unknown: bool | None) -> Viewer | None:
        """The viewer a session cookie names, if it still holds: the user exists with the
        same password, the session is within its lifetime and was not signed out. When
        Redis cannot say whether it was signed out, `unknown` decides: a request fails
        closed; an open stream goes on (its screen shows the data as stale meanwhile, and
        is not sent to the sign-in page by a Redis restart)."""
        if not isinstance(name, str) or not isinstance(epoch, str):
            return None
        user = users.get(name)
        if user is None or not secrets.compare_digest(user.epoch, epoch):
            return None
        if not within_lifetime(name, t0):
            return None
        ended = _ended(runtime, sid)
        if ended is None:
            ended = unknown
            if unknown is None:
                g.pingan_store_down = True
                ended = True
        return None if ended else viewer_for(user)

    def session_viewer() -> Viewer | None:
        name, epoch, sid, t0 = (session.get(k) for k in ("u", "e", "sid", "t0"))
        v = check_session(name, epoch, sid, t0, unknown=None)
        if v is None:
            if "u" in session and not g.get("pingan_store_down"):
                session.clear()  # no refreshed cookie for a session that ended
            return None
        session.permanent = True  # sliding: each request of an open screen extends it
        g.pingan_recheck = lambda: check_session(name, epoch, sid, t0, unknown=False)
        return v

    def proxy_viewer() -> Viewer | None:
        header = s.trusted_user_header
        if not header or request.remote_addr not in s.trusted_proxies:
            return None
        name = request.headers.get(header, "").strip()
        v = viewer_for(users.get(name)) if name else None
        if v is not None:
            g.pingan_recheck = lambda: viewer_for(users.get(name))
            g.pingan_session_tag = tag = seen.window_tag("proxy", v.name)
            if seen.first(tag) and journal.first_view(tag, "", seen.max_age_s):
                # the proxy signed this user in: the first request of each lifetime window
                journal.record("sign_in", v.name, addr=client_address(s.forwarded_from),
                               method="proxy", session=tag)
        return v

    def identify() -> Viewer | None:
        if s.auth in ("off", "demo"):
            v = (Viewer("—", "admin", topo_root(), open=True) if s.auth == "off"
                 else Viewer(DEMO_USER, "leader", topo_root(), demo=True))
            g.pingan_recheck = lambda: v
            g.pingan_session_tag = seen.window_tag(s.auth, v.name)
            return v
        v = proxy_viewer()
        if v is None:
            v = session_viewer()
            sid = session.get("sid")
            if v is not None and isinstance(sid, str):
                g.pingan_session_tag = session_tag(sid)
        return v

    @server.before_request
    def guard():
        path = request.path
        if path.startswith(GATEWAY_PREFIX):
            # the producer API (dashboard/gateway.py): its own bearer tokens, whatever
            # PINGAN_AUTH; no cookie, so neither CSRF nor DNS rebinding applies; JSON answers
            return None
        if not host_allowed(request.host, s.trusted_hosts):
            return _plain(400, "unknown host (PINGAN_TRUSTED_HOSTS)")
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
            if g.get("pingan_store_down"):  # not "signed out": the screen should wait
                return _plain(503, "session store unavailable")
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
        error, status, headers = None, 200, {}
        if request.method == "POST":
            name = request.form.get("username", "").strip()[:64]
            addr = client_address(s.forwarded_from)
            if not _form_token_ok():
                error, status = t("login_expired", lang), 401
            else:
                try:
                    with hashes.slot():  # at most N checks at once per worker, else "busy"
                        verdict = throttle.attempt(name, addr)  # counted before the check
                        user = None
                        if verdict.allowed:
                            user = authenticate(runtime.engine, name,
                                                request.form.get("password", "")[:1024],
                                                run=hashes.run)
                except Busy:
                    error, status = t("login_busy", lang), 503
                    headers["Retry-After"] = "1"
                else:
                    if not verdict.allowed:
                        error, status = t("login_throttled", lang, s=verdict.wait_s), 401
                        headers["Retry-After"] = str(verdict.wait_s)
                        if seen.first(f"throttled|{addr}", window_s=60):  # not a flood
                            journal.record("sign_in_failed", name[:TRIED_NAME_CHARS],
                                           addr=addr, why="throttled")
                    elif user is None:
                        throttle.failed(name, addr, verdict)
                        error, status = t("login_failed", lang), 401
                        why = "unknown_user" if users.get(name) is None else "bad_password"
                        journal.record("sign_in_failed", name[:TRIED_NAME_CHARS], addr=addr,
                                       why=why)
                    else:
                        throttle.succeeded(name, addr)
                        session.clear()
                        sid = secrets.token_urlsafe(16)
                        session.update(u=user.name, e=user.epoch, sid=sid,
                                       csrf=secrets.token_urlsafe(24), t0=int(time.time()))
                        session.permanent = True
                        journal.record("sign_in", user.name, addr=addr, method="password",
                                       session=session_tag(sid))
                        default = "/brief" if user.role == "leader" else "/"
                        return redirect(safe_next(request.args.get("next") or default), code=303)
        resp = _page("login.html", lang, status, error=error,
                     next=safe_next(request.args.get("next")))
        resp.headers.update(headers)
        return resp

    @server.route(LOGOUT_PATH, methods=["GET", "POST"])
    def logout():
        lang = _lang()
        if request.method == "POST" and _form_token_ok():
            sid, who = session.get("sid"), session.get("u")
            _end(runtime, sid)
            session.clear()
            if isinstance(who, str) and isinstance(sid, str):
                journal.record("sign_out", who, addr=client_address(s.forwarded_from),
                               session=session_tag(sid))
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
    return Keys(runtime.settings.key_prefix).session_ended(sid)


def _ended(runtime: Runtime, sid: object) -> bool | None:
    """Was this session signed out? A copy of its cookie must not outlive the sign-out.
    None when Redis cannot be asked: a request then fails closed (without Redis nobody is
    signed in, and there is nothing to show either)."""
    if not isinstance(sid, str) or not sid:
        return True
    try:
        return bool(runtime.redis.exists(_ended_key(runtime, sid)))
    except (redis.RedisError, OSError):
        return None


def _end(runtime: Runtime, sid: object) -> None:
    if isinstance(sid, str) and sid:
        ttl = int(runtime.settings.session_hours * 3600) + 60
        with contextlib.suppress(redis.RedisError, OSError):
            runtime.redis.set(_ended_key(runtime, sid), 1, ex=ttl)
