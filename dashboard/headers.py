"""Security headers of every response: CSP (no inline scripts except Dash's own, by hash;
framing refused), no sniffing, no referrer leaks. A response that already carries a CSP (the
portal embeds, framable by the configured portal origins) keeps its own. With Secure cookies
(served over HTTPS) HSTS; the data endpoints (`/live/*`, callbacks, `/auth/*`, sign-in and
sign-out) are never stored by a browser or a proxy (the embeds set theirs in dashboard/embed.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from dash import Dash
from flask import Response, request

from dashboard.settings import Settings

HSTS = "max-age=31536000"
# an origin that is only scheme://host[:port]: nothing that could end a CSP directive
PLAIN_ORIGIN = re.compile(r"https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")
NO_STORE_PREFIXES = ("/live/", "/auth/", "/_dash-update-component", "/login", "/logout")


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url.replace("{code}", "x"))
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def plain_origins(urls: Iterable[str | None]) -> list[str]:
    """The distinct plain origins (`scheme://host[:port]`) of the http(s) URLs among `urls`."""
    out: list[str] = []
    for url in urls:
        o = _origin(url) if url and url.lower().startswith(("http://", "https://")) else None
        if o and PLAIN_ORIGIN.fullmatch(o) and o not in out:
            out.append(o)
    return out


def page_csp(settings: Settings, script_hashes: list[str],
             endpoints: Iterable[str | None] = ()) -> str:
    """`endpoints`: the registry's conference endpoints (an http(s) one opens in the call
    overlay's frame, so its origin is a frame source)."""
    tiles = _origin(settings.tile_url)
    frames = plain_origins([settings.conference_url_template, *endpoints])
    # 整体联动: the browsers' janus.js speaks to Janus's HTTP API directly
    janus = plain_origins([settings.janus_public_url or settings.janus_url])
    directives = {
        "default-src": ["'self'"],
        # Dash's renderer bootstrap is the one inline script: allowed by its hash only
        "script-src": ["'self'", *script_hashes],
        # React, Plotly and Leaflet set element styles at run time
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:", *([tiles] if tiles else [])],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'", *janus],
        "frame-src": frames or ["'none'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{k} {' '.join(v)}" for k, v in directives.items())


def install_headers(app: Dash, settings: Settings, endpoints: Iterable[str | None] = ()) -> None:
    """Call after every callback is registered (the inline-script hashes are final then)."""
    csp = page_csp(settings, list(app.csp_hashes()), endpoints)

    @app.server.after_request
    def secure(resp: Response) -> Response:
        h = resp.headers
        if "Content-Security-Policy" not in h:
            h["Content-Security-Policy"] = csp
            h["X-Frame-Options"] = "DENY"
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        if settings.cookie_secure:
            h.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith(NO_STORE_PREFIXES):
            h["Cache-Control"] = "no-store"
        return resp
