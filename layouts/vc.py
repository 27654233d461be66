"""Video-conference controls (视频连线 / 整体联动) and the call overlay (pure)."""

from __future__ import annotations

from dash import dcc, html

from datasources.vocabulary import DEFAULT, Vocabulary
from layouts import ids
from layouts.i18n import t


def call_button(code: str, lang: str, compact: bool = False) -> html.Button:
    """One click: a point-to-point call with this centre."""
    return html.Button(
        t("vc_short" if compact else "vc_call", lang),
        id={"type": ids.VC_CALL_BTN, "code": code},
        n_clicks=0,
        className="vc-btn" + (" vc-btn-compact" if compact else ""),
        title=t("vc_call", lang),
        **{"data-vc-code": code},
    )


def group_controls(code: str, level: int, lang: str, vocab: Vocabulary = DEFAULT,
                   max_level: int = 4) -> html.Div:
    """整体联动: convene every child of the centre, or every centre of one tier below it
    (named in the region's words, `vocab`)."""
    options = [{"label": t("vc_tier_children", lang), "value": 0}] + [
        {"label": vocab.tier_name(lv, lang), "value": lv} for lv in range(level + 2, max_level + 1)
    ]
    return html.Div(
        [
            dcc.Dropdown(id={"type": ids.VC_TIER, "code": code}, options=options, value=0, clearable=False,
                         searchable=False, className="vc-tier"),
            html.Button(t("vc_group", lang), id={"type": ids.VC_GROUP_BTN, "code": code},
                        n_clicks=0, className="vc-btn vc-btn-group",
                        **{"data-vc-code": code}),
        ],
        className="vc-group",
    )


def refused(message: str) -> list:
    """The overlay's body when a call was not started (the reason, no call)."""
    return [html.Div(html.P(message, className="vc-refused"), className="vc-side")]


def overlay(call: dict | None, names: dict[str, str], lang: str) -> list:
    """The overlay's body for a call in progress (empty when none); the end button is
    part of the shell so its callback always has its input."""
    if not call:
        return []
    invited = [html.Li(names.get(c, c), **{"data-invited": c}) for c in call["centres"]]
    return [
        html.Div(
            [
                html.H2(t("vc_group_title" if call["group"] else "vc_call_title", lang)
                        .format(name=names.get(call["convener"], call["convener"]))),
                html.Div(t("vc_invited", lang).format(n=len(call["centres"])),
                         className="vc-invited-count"),
                html.Ul(invited, className="vc-invited"),
                html.A(call["url"], href=call["url"], target="_blank", rel="noopener",
                       className="vc-url"),
            ],
            className="vc-side",
        ),
        html.Iframe(src=call["url"], className="vc-frame",
                    allow="camera; microphone; fullscreen; display-capture"),
    ]
