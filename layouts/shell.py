"""The app's root layout and the wrapper of a live screen (pure)."""

from __future__ import annotations

import json

from dash import dcc, html

from layouts import ids
from layouts.i18n import t, vc_strings


def page() -> html.Div:
    """Root layout: fresh on every page load, no I/O (the router fills the screen)."""
    return html.Div(
        [
            dcc.Location(id=ids.URL, refresh=False),
            dcc.Interval(id=ids.TOUR, interval=60_000, disabled=True),
            dcc.Interval(id=ids.POLL, interval=1000, disabled=True),
            dcc.Store(id=ids.POLL_VERSION, data=None),
            dcc.Store(id=ids.POLL_VM, data={}),
            dcc.Store(id=ids.SCREEN_SHOWN, data=None),  # set by assets/drill.js
            html.Div(id=ids.POLL_SINK, hidden=True),
            dcc.Store(id=ids.VC_REQUEST, data=None),
            dcc.Store(id=ids.VC_CALL, data=None),
            dcc.Store(id=ids.VC_OPEN, data=None),
            html.Div(id=ids.VC_SINK, hidden=True),
            html.Div(id=ids.VC_LIVE_SINK, hidden=True),
            html.Div(
                [html.Div(id=ids.VC_BODY, className="vc-body"),
                 html.Button("×", id=ids.VC_END, n_clicks=0, className="vc-btn vc-btn-end")],
                id=ids.VC_OVERLAY, className="vc-overlay", hidden=True,
            ),
            html.Div(id=ids.SCREEN, className="app-screen"),
        ],
        className="app-root",
    )


def viewer_chip(name: str, role: str, demo: bool, lang: str) -> html.Div:
    """Who is signed in (in each screen's header): the demo user is labelled as such; a real
    user gets a sign-out link (a confirmation page posts the sign-out: CSRF-safe)."""
    if demo:
        return html.Div(t("demo_badge", lang), className="viewer-chip viewer-chip-demo",
                        role="status")
    return html.Div(
        [html.Span(f"{name} · {t('role_' + role, lang)}", className="viewer-name"),
         html.A(t("logout", lang), href="/logout" + ("?lang=en" if lang == "en" else ""),
                className="viewer-logout")],
        className="viewer-chip",
    )


def vc_marks(code: str, kind: str, lang: str) -> dict[str, str]:
    """What assets/vc.js needs on a screen's root to ring and answer calls of centre `code`:
    `kind` is wall (answers by itself), desk or tablet (ring, may decline)."""
    return {"data-vc-centre": code, "data-vc-screen": kind,
            "data-vc-i18n": json.dumps(vc_strings(lang), ensure_ascii=False)}


def live_screen(content, code: str, lang: str, stale_after_s: float, push: str,
                tz: str = "", kind: str = "wall") -> html.Div:
    """Wraps a screen with what assets/wall.js needs to keep it live. `tz`: the zone of the
    clock and the date (Settings.tz); "" is the browser's own. `kind`: wall or tablet."""
    return html.Div(
        content,
        className="live-screen",
        **{
            "data-stream": f"/live/stream?centre={code}&lang={lang}" if push == "sse" else "",
            "data-stale-after": str(stale_after_s),
            "data-push": push,
            "data-tz": tz,
            "data-lang": lang,
            **vc_marks(code, kind, lang),
        },
    )


def message_screen(title_key: str, lang: str, **fmt) -> html.Div:
    """A full-screen message for a bad URL (never a traceback)."""
    return html.Div(
        html.Div(
            [
                html.H1(t(title_key, lang).format(**fmt), className="message-title"),
                html.A(t("back_to_top", lang), href="/" if lang == "zh" else "/?lang=en",
                       className="message-link"),
            ],
            className="message-box",
        ),
        className="message-screen",
        role="alert",
    )
