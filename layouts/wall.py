"""The duty officers' video wall (值班大屏) of one centre. Pure: view model in, components out.

`wall_screen(vm, lang)` is the whole screen; the app puts it into its page and
assets/wall.js keeps it live (see layouts/panels.py for the data-* contract).
"""

from __future__ import annotations

import json

from dash import dcc, html

from datasources.vocabulary import DEFAULT, Vocabulary
from layouts import panels, vc
from layouts.formats import date_strings, date_text
from layouts.i18n import STRINGS, client_strings, norm_lang, t
from layouts.viewmodel import centre_tier, demo_note, tier_name, vocab_of


def centre_href(code: str, lang: str) -> str:
    return f"?centre={code}" + ("&lang=en" if lang == "en" else "")


def breadcrumb(vm: dict, lang: str, in_app: bool = False) -> html.Nav:
    """The centre's ancestors, each a link up. `in_app`: dcc.Link, so the app navigates
    without reloading the page (the tablet); else plain links (the wall)."""
    items: list = []
    crumbs = vm.get("breadcrumb") or []
    for i, c in enumerate(crumbs):
        if i:
            items.append(html.Span("›", className="crumb-sep", **{"aria-hidden": "true"}))
        last = i == len(crumbs) - 1
        kw = {"className": "crumb current" if last else "crumb",
              "title": tier_name(vm, c["level"], lang)}
        href = centre_href(c["code"], lang)
        if in_app:
            items.append(dcc.Link(c["name"], href=href, **kw))
        else:
            items.append(html.A(c["name"], href=href, **kw,
                                **({"aria-current": "page"} if last else {})))
    return html.Nav(items, className="breadcrumb", **{"aria-label": t("breadcrumb", lang)})


# Catalogue keys the wall's command-post script needs (assets/wall.js: strip, case lists).
COMMAND_KEY_PREFIXES = ("wc_",)


def command_strings(lang: str, vocab: Vocabulary = DEFAULT) -> dict[str, str]:
    """The catalogue strings of the alert strip, the case lists and the spotlight card
    (placeholders left in place: the browser fills them), and the region's labels of the
    case lists' categories, channels and tiers as `cat_<code>`, `ch_<code>` and
    `level_<level>`."""
    return {**{k: t(k, lang) for k in STRINGS if k.startswith(COMMAND_KEY_PREFIXES)},
            **{f"cat_{x.code}": x.label(lang) for x in vocab.terms("category")},
            **{f"ch_{x.code}": x.label(lang) for x in vocab.terms("event_channel")},
            **{f"level_{x.code}": x.label(lang) for x in vocab.terms("tier")}}


def _initial_age(vm: dict, lang: str) -> str:
    fresh = vm.get("freshness") or {}
    now, as_of = fresh.get("now"), fresh.get("as_of")
    if not now or not as_of:
        return t("no_data", lang)
    return t("ago_s", lang, n=max(0, round((now - as_of) / 1000)))


def header(vm: dict, lang: str, calls: bool = True, chip=None) -> html.Header:
    return html.Header([
        html.Div([
            html.Div([
                html.H1(t("wall_title", lang, name=vm["name"]), className="wall-title"),
                html.Span(centre_tier(vm, lang), className="level-chip"),
                *([html.Span(note, className="level-chip demo-data")]
                  if (note := demo_note(vm, lang)) else []),
            ], className="title-line"),
            html.Div([breadcrumb(vm, lang), *([chip] if chip is not None else [])],
                     className="crumb-line"),
        ], className="wall-head-left"),
        html.Div([
            html.Span(t("index", lang), className="kpi-label"),
            panels.figure(vm, "index", "hero"),
        ], className="wall-index kpi"),
        html.Div([
            *([vc.group_controls(vm["code"], vm["level"], lang, vocab_of(vm))]
              if calls and vm.get("children") else []),
            html.Div(date_text(vm.get("day", ""), lang), className="wall-date"),
            html.Span(className="wall-clock"),
            html.Span(_initial_age(vm, lang), className="age", **{"data-age": "all"}),
        ], className="wall-head-right"),
    ], className="wall-header")


def wall_screen(vm: dict, lang: str = "zh", the_map=None, calls: bool = True,
                chip=None) -> html.Div:
    """The whole video-wall screen of the centre described by `vm`: `the_map` is the
    drill-down map component (layouts/map.py; tiles when None), `calls` shows 视频连线,
    `chip` who is signed in (layouts/shell.viewer_chip)."""
    lang = norm_lang(lang)
    kids = len(vm.get("children") or [])
    return html.Div(
        [
            header(vm, lang, calls, chip),
            panels.alert_strip(lang),
            html.Main([
                panels.events_panel(vm, lang),
                panels.map_area(vm, lang, the_map),
                panels.ranking_panel(vm, lang, calls),
                panels.grids_panel(vm, lang),
                panels.cameras_panel(vm, lang),
                panels.petitions_panel(vm, lang),
            ], className="wall-grid"),
        ],
        className=(f"wall-canvas level-{vm.get('level')} kids-{'none' if not kids else 'some'}"
                   + (" kids-few" if kids <= 8 else "")),
        lang="zh-CN" if lang == "zh" else "en",
        **{
            "data-centre": vm["code"],
            "data-lang": lang,
            "data-i18n": json.dumps({**client_strings(lang), **date_strings(lang),
                                     **command_strings(lang, vocab_of(vm))},
                                    ensure_ascii=False),
        },
    )
