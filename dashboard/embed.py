"""Portal embeds: `/embed/<widget>`, one widget of one centre in an iframe of the city portal.

Access is a signed token instead of a login: itsdangerous, HMAC-SHA256 with the embed key
(`dashboard.secret.load_embed_keys`: `PINGAN_EMBED_KEY`, else the server secret; the previous
key during a rotation's grace) and the salt "pingan-embed", carrying the widget, the centre
scope, an expiry and an id recorded in the registry (`pingan embed-url` mints one, `pingan
embeds revoke` ends it on every worker within seconds: datasources/embeds.py). The page is server-rendered HTML with inline SVG
(`layouts/embed.py`); a small external script (`embed_static/embed.js`) refreshes it from
`/embed/<widget>/data` every few seconds. Every response under /embed — pages, data, static
files and refusals — carries a strict Content-Security-Policy whose `frame-ancestors` are the
configured portal origins (`PINGAN_EMBED_ORIGINS`). See docs/embeds.md.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import redis
from flask import Flask, Response, jsonify, request, send_from_directory, url_for
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from dashboard.screens import ScreenData
from dashboard.secret import EmbedKeys, load_embed_keys
from dashboard.settings import Settings
from datasources import embeds
from datasources.topology import Topology, in_subtree
from layouts import embed as layout
from layouts.i18n import LANGS, t

WIDGETS = layout.WIDGETS
THEMES = layout.THEMES
SALT = "pingan-embed"
PREFIX = "/embed"
STATIC = Path(__file__).resolve().parent.parent / "embed_static"
MAX_TOKEN_CHARS = 1024
REVOCATION_S = 2.0  # a revoked id is refused by every worker within this time
REASONS = ("missing", "tampered", "rotated", "expired", "revoked", "wrong_widget",
           "out_of_scope")
_TTL = re.compile(r"(\d+)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


# -- tokens ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class EmbedGrant:
    """A verified token: `widget` of `centre`, a centre inside `scope`, until `expires`."""

    widget: str
    scope: str
    centre: str
    expires: int  # epoch seconds
    token_id: str = ""  # "" for a token minted before ids (docs/embeds.md)


@dataclass(frozen=True)
class EmbedRefusal:
    """Why a request is refused: `reason` is one of REASONS (HTTP 403)."""

    reason: str
    expires: int | None = None  # when the token (or, "rotated", its key) expired
    subject: str = ""           # the widget or centre concerned, for the message


@dataclass(frozen=True)
class Minted:
    """A new token, its id (recorded in the registry) and its expiry (epoch seconds)."""

    token: str
    token_id: str
    expires: int


def parse_ttl(text: str) -> int:
    """"3600", "30m", "1h", "7d", "2w" → seconds (> 0); ValueError otherwise."""
    m = _TTL.fullmatch(text.strip().lower())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"bad duration {text!r}: use e.g. 3600, 30m, 1h, 7d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _serializer(key: bytes) -> URLSafeSerializer:
    return URLSafeSerializer(key, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})


class EmbedSigner:
    """Signs with the current embed key; verifies with it and, before the end of the grace
    period, with the previous one. Built once per web worker (`from_settings` reads the key
    file and refuses bad keys)."""

    def __init__(self, keys: EmbedKeys) -> None:
        self.keys = keys
        self._current = _serializer(keys.current)
        self._previous = _serializer(keys.previous) if keys.previous else None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbedSigner:
        return cls(load_embed_keys(settings))

    def dumps(self, payload: dict) -> str:
        return self._current.dumps(payload)

    def loads(self, token: str, now: float) -> tuple[object, bool] | EmbedRefusal:
        """(payload, whether an id-less token may pass) or the refusal. An id-less token
        passes only under the server secret (no dedicated key yet: as before ids existed) or
        under the previous key within its grace: a dedicated key never signed one."""
        try:
            return self._current.loads(token), not self.keys.dedicated
        except BadSignature:  # also BadPayload: a signed text that is not our JSON
            pass
        if self._previous is None:
            return EmbedRefusal("tampered")
        try:
            data = self._previous.loads(token)
        except BadSignature:
            return EmbedRefusal("tampered")
        until = self.keys.previous_until
        if until is not None and until.timestamp() <= now:
            return EmbedRefusal("rotated", expires=int(until.timestamp()))
        return data, True


def mint(settings: Settings, widget: str, code: str, ttl_s: int, now: float | None = None,
         signer: EmbedSigner | None = None) -> Minted:
    """A token for `widget` of centre `code` (and the centres below it), valid for `ttl_s`,
    with a new id. Not yet usable: `issue` also records the id in the registry."""
    if widget not in WIDGETS:
        raise ValueError(f"unknown widget {widget!r}; one of {', '.join(WIDGETS)}")
    if not 0 < ttl_s <= settings.embed_max_ttl_s:
        raise ValueError(f"ttl must be between 1 s and {settings.embed_max_ttl_s} s")
    expires = int((time.time() if now is None else now) + ttl_s)
    token_id = embeds.new_id()
    signer = signer or EmbedSigner.from_settings(settings)
    return Minted(signer.dumps({"w": widget, "c": code, "e": expires, "i": token_id}),
                  token_id, expires)


def issue(engine: Engine, settings: Settings, widget: str, code: str, ttl_s: int,
          note: str = "", now: float | None = None) -> Minted:
    """Mint a token and record its id in the registry (`pingan embed-url`)."""
    when = time.time() if now is None else now
    minted = mint(settings, widget, code, ttl_s, now=when)
    embeds.record(engine, minted.token_id, widget, code, datetime.fromtimestamp(when, UTC),
                  datetime.fromtimestamp(minted.expires, UTC), note)
    return minted


def verify(signer: EmbedSigner, token: str | None, widget: str, centre: str | None,
           topo: Topology, active: Callable[[str], bool],
           now: float | None = None) -> EmbedGrant | EmbedRefusal:
    """Check a token for `widget` showing `centre` (None: the token's own centre).
    `active(id)`: the id is on record and not revoked (EmbedStates.active); it is asked only
    for a token whose signature and expiry hold, and its database errors propagate."""
    if not token:
        return EmbedRefusal("missing")
    if len(token) > MAX_TOKEN_CHARS:
        return EmbedRefusal("tampered")
    now = time.time() if now is None else now
    loaded = signer.loads(token, now)
    if isinstance(loaded, EmbedRefusal):
        return loaded
    data, legacy_ok = loaded
    if not (isinstance(data, dict) and isinstance(data.get("w"), str)
            and isinstance(data.get("c"), str) and type(data.get("e")) is int):
        return EmbedRefusal("tampered")
    token_id = data.get("i")
    if token_id is None and not legacy_ok:
        return EmbedRefusal("tampered")
    if token_id is not None and not (isinstance(token_id, str)
                                     and embeds.ID.fullmatch(token_id)):
        return EmbedRefusal("tampered")
    if data["e"] <= now:
        return EmbedRefusal("expired", expires=data["e"])
    if token_id is not None and not active(token_id):
        return EmbedRefusal("revoked")
    if data["w"] != widget:
        return EmbedRefusal("wrong_widget", subject=widget)
    scope = data["c"]
    centre = centre or scope
    if not in_subtree(topo, centre, scope):
        return EmbedRefusal("out_of_scope", subject=centre)
    return EmbedGrant(widget, scope, centre, data["e"], token_id or "")


def refusal_message(refusal: EmbedRefusal, lang: str, tz: str) -> str:
    """The sentence a portal visitor reads for a refusal."""
    if refusal.reason == "expired":
        when = datetime.fromtimestamp(refusal.expires or 0, ZoneInfo(tz))
        return t("embed_expired", lang, when=when.strftime("%Y-%m-%d %H:%M"))
    if refusal.reason == "rotated":
        when = datetime.fromtimestamp(refusal.expires or 0, ZoneInfo(tz))
        return t("embed_rotated", lang, when=when.strftime("%Y-%m-%d %H:%M"))
    if refusal.reason == "wrong_widget":
        return t("embed_wrong_widget", lang, widget=refusal.subject)
    if refusal.reason == "out_of_scope":
        return t("embed_out_of_scope", lang, code=refusal.subject[:64])
    return t(f"embed_{refusal.reason}", lang)


# -- headers --------------------------------------------------------------------------------

def content_security_policy(origins: tuple[str, ...]) -> str:
    ancestors = " ".join(origins) if origins else "'none'"
    return ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors {ancestors}")


def embed_headers(settings: Settings) -> dict[str, str]:
    """The headers of every response under /embed."""
    return {
        "Content-Security-Policy": content_security_policy(settings.embed_origins),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
    }


# -- routes ---------------------------------------------------------------------------------

def register_embed_routes(server: Flask, settings: Settings, screens: ScreenData,
                          engine: Engine) -> None:
    """`/embed/<widget>` (page), `/embed/<widget>/data` (JSON), `/embed/static/<file>`.
    A bad embed key is refused here, at the start (SecretKeyError)."""
    headers = embed_headers(settings)
    signer = EmbedSigner.from_settings(settings)
    states = embeds.EmbedStates(engine, ttl_s=REVOCATION_S)

    @server.after_request
    def _embed_security_headers(resp: Response) -> Response:
        """Every response under /embed, Flask's own answers included (a missing static file,
        a wrong method), gets our headers, replacing any set before: the global hook's
        X-Frame-Options would contradict frame-ancestors."""
        if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
            for k, v in headers.items():
                resp.headers[k] = v
            resp.headers.pop("X-Frame-Options", None)
            if request.path.startswith(PREFIX + "/static/") and resp.status_code == 200:
                # the same script and style for every widget of a portal page: cache them
                resp.headers["Cache-Control"] = "public, max-age=3600"
        return resp

    def css_url() -> str:
        return url_for("embed_static", filename="embed.css")

    def page_error(status: int, title: str, message: str, lang: str, theme: str,
                   reason: str) -> Response:
        html = layout.message_page(title, message, lang=lang, theme=theme, css_url=css_url(),
                                   status=status, reason=reason)
        return Response(html, status=status, mimetype="text/html")

    def check(widget: str, as_json: bool) -> tuple | Response:
        """(grant, lang, theme, indicator) or the refusal response."""
        args = request.args
        lang_ok = args.get("lang", settings.lang) in LANGS
        lang = args.get("lang", settings.lang) if lang_ok else "zh"
        theme_ok = args.get("theme", "dark") in THEMES
        theme = args.get("theme", "dark") if theme_ok else "dark"

        def refuse(status: int, reason: str, title: str, message: str) -> Response:
            if as_json:
                return json_error(status, reason, message)
            return page_error(status, title, message, lang, theme, reason)

        if widget not in WIDGETS:
            return refuse(404, "unknown_widget", t("not_found", lang),
                          t("embed_unknown_widget", lang, widget=widget[:64],
                            widgets=", ".join(WIDGETS)))
        indicator = args.get("indicator", "index")
        for name, ok, allowed in (("lang", lang_ok, LANGS), ("theme", theme_ok, THEMES),
                                  ("indicator", indicator in layout.MAP_INDICATORS,
                                   layout.MAP_INDICATORS)):
            if not ok:
                return refuse(400, "bad_param", t("embed_bad_request", lang),
                              t("embed_bad_param", lang, name=name, allowed=" | ".join(allowed)))
        try:
            grant = verify(signer, args.get("token"), widget, args.get("centre") or None,
                           screens.topology, states.active)
        except SQLAlchemyError:
            server.logger.exception("embed: the registry of embed ids cannot be read")
            return unavailable(lang, theme, as_json)
        if isinstance(grant, EmbedRefusal):
            return refuse(403, grant.reason, t("embed_refused", lang),
                          refusal_message(grant, lang, settings.tz))
        return grant, lang, theme, indicator

    def json_error(status: int, reason: str, message: str) -> Response:
        resp = jsonify({"error": reason, "message": message})
        resp.status_code = status
        return resp

    def unavailable(lang: str, theme: str, as_json: bool) -> Response:
        message = t("embed_unavailable", lang)
        if as_json:
            return json_error(503, "unavailable", message)
        return page_error(503, t("embed_unavailable_title", lang), message, lang, theme,
                          "unavailable")

    def current(code: str) -> tuple[dict, bool] | None:
        """The centre's view model and whether it is fresh; None without Redis, or when the
        read model cannot be shaped (logged): the portal shows "unavailable", not an error."""
        try:
            return screens.embed(code)
        except (redis.RedisError, OSError):
            return None
        except Exception:
            server.logger.exception("embed: the view of %s failed", code)
            return None

    @server.get(f"{PREFIX}/<widget>")
    def embed_page(widget: str) -> Response:
        checked = check(widget, as_json=False)
        if isinstance(checked, Response):
            return checked
        grant, lang, theme, indicator = checked
        got = current(grant.centre)
        if got is None:
            return unavailable(lang, theme, as_json=False)
        vm, fresh = got
        features = screens.features(grant.centre) if widget == "map" else None
        html = layout.page(
            widget, vm, lang=lang, theme=theme, tz=settings.tz, stale=not fresh,
            features=features, indicator=indicator,
            root={"token": request.args.get("token", ""), "centre": grant.centre,
                  "src": url_for("embed_data", widget=widget),
                  "indicator": indicator if widget == "map" else ""},
            css_url=css_url(), js_url=url_for("embed_static", filename="embed.js"))
        return Response(html, mimetype="text/html")

    @server.get(f"{PREFIX}/<widget>/data")
    def embed_data(widget: str) -> Response:
        checked = check(widget, as_json=True)
        if isinstance(checked, Response):
            return checked
        grant, lang, _theme, indicator = checked
        got = current(grant.centre)
        if got is None:
            return unavailable(lang, "dark", as_json=True)
        vm, fresh = got
        same = request.args.get("have") == str(vm["version"])
        return jsonify(layout.data(widget, vm, lang=lang, tz=settings.tz, stale=not fresh,
                                   indicator=indicator, only_freshness=same))

    @server.get(f"{PREFIX}/static/<path:filename>")
    def embed_static(filename: str) -> Response:
        return send_from_directory(STATIC, filename, max_age=0)

    @server.get(PREFIX)
    @server.get(f"{PREFIX}/")
    @server.get(f"{PREFIX}/<widget>/<path:rest>")
    def embed_not_found(widget: str = "", rest: str = "") -> Response:
        lang = request.args.get("lang", "zh")
        lang = lang if lang in LANGS else "zh"
        name = f"{widget}/{rest}" if rest else widget
        return page_error(404, t("not_found", lang),
                          t("embed_unknown_widget", lang, widget=name[:64] or "—",
                            widgets=", ".join(WIDGETS)), lang, "dark", "unknown_widget")
