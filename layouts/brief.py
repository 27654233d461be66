"""The leaders' tablet briefing view (/brief) of one centre. Pure: view model (and replay data)
in, components out.

The same figures, charts and map as the wall (layouts/panels.py, layouts/map.py), laid out
for a tablet: scrolling allowed, one column in portrait, two in landscape, every touch target
at least 44 x 44 CSS px (assets/brief.css). Live like the wall (the page wrapper
`shell.live_screen` + assets/wall.js update every [data-figure] / [data-child] in place).

Replay: a 24 h slider with play/pause and speed drives, in the browser (assets/brief.js,
namespace `pinganBrief`), the replay counters, the 24 h chart's cursor and the case markers
on the map from one payload (datasources/replay.py) held in a dcc.Store. While replaying, the
counters of the replay strip drop their `data-figure` (so live updates leave them alone) and
the screen carries `data-replay="1"` (wall.js then leaves the map's case layer to the
replay); "back to live" restores both.
"""

from __future__ import annotations

import json

from dash import dcc, html

from layouts import brief_ids as bid
from layouts import charts, panels, vc
from layouts.console import command_panel
from layouts.formats import date_strings, date_text, fmt, raw
from layouts.i18n import STRINGS, client_strings, norm_lang, t
from layouts.viewmodel import CHILD_FIGURES, HEADLINES, centre_tier, demo_note, vocab_of
from layouts.wall import breadcrumb

# The replay strip: name used by brief.js → the live figure it replaces, its label.
REPLAY_FIGURES = (
    ("reported", "events.reported", "brief_reported"),
    ("resolved", "events.resolved", "brief_resolved"),
    ("rate", "events.resolution_rate", "brief_rate"),
    ("petitions", "petitions.today", "brief_petitions"),
)
CARD_FIGURES = ("index", "reported", "open", "overdue", "resolution_rate")
MINUTES = 24 * 60


def brief_strings(lang: str) -> dict[str, str]:
    """wall.js' strings (the date's too) and every `brief_*` string, for the browser (placeholders kept)."""
    return {**client_strings(lang), **date_strings(lang),
            **{k: t(k, lang) for k in STRINGS if k.startswith("brief_")}}


# -- header -----------------------------------------------------------------------------
def header(vm: dict, lang: str, calls: bool = True, chip=None) -> html.Header:
    return html.Header([
        html.Div([
            html.Div([
                html.H1(t("brief_title", lang, name=vm["name"]), className="brief-title"),
                html.Span(centre_tier(vm, lang), className="level-chip"),
                *([html.Span(note, className="level-chip demo-data")]
                  if (note := demo_note(vm, lang)) else []),
                *([chip] if chip is not None else []),
            ], className="title-line"),
            breadcrumb(vm, lang, in_app=True),
        ], className="brief-head-main"),
        html.Div([
            html.Div([html.Span(t("index", lang), className="kpi-label"),
                      panels.figure(vm, "index", "hero")], className="wall-index kpi"),
            *([vc.group_controls(vm["code"], vm["level"], lang, vocab_of(vm))]
              if calls and vm.get("children") else []),
            html.Div([html.Span(date_text(vm.get("day", ""), lang), className="wall-date"),
                      html.Span(className="age", **{"data-age": "all"})],
                     className="brief-date"),
        ], className="brief-head-side"),
    ], className="brief-head")


# -- replay -----------------------------------------------------------------------------
def replay_counter(vm: dict, name: str, path: str, label: str, lang: str) -> html.Div:
    """A counter of the replay strip: live, it is the headline figure `path` (wall.js keeps
    it current); replaying, brief.js writes the replayed value into it."""
    kind = HEADLINES[path]
    value = vm["figures"].get(path)
    return html.Div([
        html.Div(t(label, lang), className="kpi-label"),
        html.Span(fmt(value, kind), className="fig",
                  **{"data-figure": path, "data-value": raw(value), "data-format": kind,
                     "data-replay-figure": name}),
    ], className="kpi kpi-lg brief-counter", **{"data-kpi": path})


def replay_figure(data: dict | None, lang: str) -> dict:
    """The 24 h chart: reported (bars) and resolved (line) per hour; shapes[0] shades the
    replayed part and shapes[1] is the cursor (moved by brief.js with Plotly.relayout)."""
    labels = (data or {}).get("labels") or []
    n = len(labels)
    xs = [i + 0.5 for i in range(n)]
    every = 3 if n > 12 else 1
    top = max([0, *((data or {}).get("reported") or []), *((data or {}).get("resolved") or [])])
    layout = charts._layout(
        xaxis=charts._axis(range=[0, max(n, 1)], tickvals=xs[::every],
                           ticktext=[lb[:2] for lb in labels][::every], showgrid=False),
        # whole cases: no 0.5 ticks on a quiet village
        yaxis=charts._axis(rangemode="tozero", nticks=4, **({"dtick": 1} if top <= 4 else {})),
        margin={"l": 4, "r": 8, "t": 8, "b": 4, "pad": 2},
        bargap=0.25,
        uirevision="brief",
        shapes=[
            {"type": "rect", "xref": "x", "yref": "paper", "x0": 0, "x1": n, "y0": 0, "y1": 1,
             "fillcolor": "rgba(255, 176, 32, 0.10)", "line": {"width": 0}, "layer": "below",
             "visible": False},
            {"type": "line", "xref": "x", "yref": "paper", "x0": n, "x1": n, "y0": 0, "y1": 1,
             "line": {"color": charts.AMBER, "width": 3}, "visible": False},
        ],
    )
    return {
        "data": [
            {"type": "bar", "name": t("brief_reported", lang), "x": xs,
             "y": (data or {}).get("reported") or [], "width": 0.78,
             "marker": {"color": [charts.CYAN] * n}},
            {"type": "scatter", "mode": "lines", "name": t("brief_resolved", lang), "x": xs,
             "y": (data or {}).get("resolved") or [],
             "line": {"color": charts.TEAL, "width": 2.5}},
        ],
        "layout": layout,
    }


def replay_panel(vm: dict, lang: str) -> html.Section:
    counters = html.Div(
        [replay_counter(vm, name, path, label, lang) for name, path, label in REPLAY_FIGURES],
        className="kpis brief-counters")
    badge = html.Span([
        html.Span(t("brief_badge_live", lang), className="badge-live"),
        html.Span([t("brief_badge_replay", lang), " ", html.Span("", id=bid.CLOCK)],
                  className="badge-replay"),
    ], className="brief-badge", role="status")
    play = html.Button([
        html.Span("▶", className="btn-icon lbl-play"), html.Span("❚❚", className="btn-icon lbl-pause"),
        html.Span(t("brief_play", lang), className="lbl-play"),
        html.Span(t("brief_pause", lang), className="lbl-pause"),
    ], id=bid.PLAY, n_clicks=0, className="brief-btn brief-play", disabled=True)
    speeds = html.Div(
        [html.Span(t("brief_speed", lang), className="brief-speed-label")]
        + [html.Button(f"{s}×", id=bid.SPEED.format(s), n_clicks=0,
                       className="brief-btn brief-speed" + (" is-on" if s == 1 else ""),
                       **{"data-speed": str(s)})
           for s in bid.SPEEDS],
        className="brief-speeds", title=t("brief_speed_note", lang), role="group")
    slider = html.Div(
        dcc.Slider(id=bid.SLIDER, min=0, max=MINUTES, step=1, value=MINUTES, marks=None,
                   disabled=True, updatemode="drag", allow_direct_input=False,
                   className="brief-slider"),
        className="brief-slider-box", title=t("brief_slider", lang))
    live = html.Button(t("brief_back_live", lang), id=bid.LIVE, n_clicks=0,
                       className="brief-btn brief-live")
    chart = html.Div([
        html.Div([html.Span(t("brief_chart", lang), className="chart-title"),
                  panels.legend([(t("brief_reported", lang), charts.CYAN),
                                 (t("brief_resolved", lang), charts.TEAL)])],
                 className="chart-head"),
        html.Div(dcc.Graph(id=bid.CHART, figure=replay_figure(None, lang),
                           config=panels.GRAPH_CONFIG, style=panels.GRAPH_STYLE,
                           className="wall-graph"), className="chart-body"),
    ], className="chart chart-replay")
    title_extra = [badge]
    body = [
        html.Div([html.Div(t("brief_caption_live", lang), className="brief-caption"), live],
                 className="brief-caption-line"),
        counters,
        html.Div([play, speeds], className="brief-controls"),
        slider,
        html.Div([html.Span(t("brief_loading", lang), className="brief-markers"),
                  html.Span(t("brief_sample_note", lang), className="brief-sample-note")],
                 className="brief-notes"),
        chart,
        dcc.Store(id=bid.REPLAY, data=None),
        dcc.Store(id=bid.REPLAY_REQ, data={"centre": vm["code"]}),
        dcc.Store(id=bid.STATE, data={"mode": "live", "playing": False, "speed": 1}),
        dcc.Interval(id=bid.TICK, interval=200, disabled=True),
        html.Div(id=bid.SINK, hidden=True),
    ]
    title = html.Div([html.H2(t("brief_replay", lang), className="panel-name"), *title_extra,
                      html.Span(className="age", **{"data-age": "all"})],
                     className="panel-title")
    return html.Section([title, html.Div(body, className="panel-body")],
                        className="panel brief-replay", **{"data-panel": "replay"})


def slider_marks(data: dict) -> dict:
    """Slider marks every 6 hours (and at the end: now), keyed by minutes since the start."""
    starts, labels = data["starts"], data["labels"]
    marks = {}
    for i in range(0, len(starts), 6):
        marks[(starts[i] - starts[0]) // 60_000] = labels[i]
    return marks


def slider_max(data: dict) -> int:
    return max(1, (data["now"] - data["starts"][0]) // 60_000)


# -- children ---------------------------------------------------------------------------
def child_card(c: dict, rank: int, lang: str, calls: bool) -> html.Div:
    """A child centre: tap the card to open it; 连线 calls it. wall.js keeps the figures
    and the order (style.order) current, like the wall's ranking rows."""
    figs = [html.Span([html.Span(t("col_" + f, lang), className="kpi-label"),
                       panels.child_figure(c, f)],
                      className=f"card-fig c-{f}")
            for f in CARD_FIGURES if f in CHILD_FIGURES]
    drill = html.Button(
        [html.Span(c["name"], className="card-name"), html.Span(figs, className="card-figs")],
        id={"type": bid.DRILL, "code": c["code"]}, n_clicks=0, className="card-drill",
        title=t("brief_open", lang, name=c["name"]),
        **{"aria-label": t("brief_open", lang, name=c["name"])})
    return html.Div([drill, *([vc.call_button(c["code"], lang)] if calls else [])],
                    className="brief-card", style={"order": rank},
                    **{"data-rank-row": c["code"]})


def children_panel(vm: dict, lang: str, calls: bool = True) -> html.Section:
    kids = vm.get("children") or []
    if not kids:
        return panels.panel("ranking", lang, [
            html.Div(t("no_children", lang), className="empty-note"),
            html.H3(t("panel_base", lang), className="sub-title"),
            panels.base_data(vm, lang, "base base-large"),
        ], className="brief-children no-children")
    cards = [child_card(c, i, lang, calls) for i, c in enumerate(kids)]
    return panels.panel("ranking", lang, [html.Div(cards, className="brief-cards")],
                        className="brief-children", heading=panels.ranking_heading(vm, lang),
                        title_extra=[html.Span(t("brief_children", lang), className="chart-note")])


# -- the screen -------------------------------------------------------------------------
def brief_screen(vm: dict, lang: str = "zh", the_map=None, calls: bool = True,
                 chip=None) -> html.Div:
    """The whole briefing screen of the centre described by `vm`: `the_map` is the
    drill-down map (layouts/map.py, id "wall-map": the wall's drill callback serves it),
    `calls` shows 视频连线, `chip` who is signed in (layouts/shell.viewer_chip)."""
    lang = norm_lang(lang)
    kids = len(vm.get("children") or [])
    return html.Div(
        [
            header(vm, lang, calls, chip),
            command_panel(vm, lang),  # alerts to acknowledge, cases and 督办 (callbacks/console.py)
            html.Main([
                replay_panel(vm, lang),
                panels.map_area(vm, lang, the_map),
                children_panel(vm, lang, calls),
                panels.events_panel(vm, lang),
                panels.grids_panel(vm, lang),
                panels.cameras_panel(vm, lang),
                panels.petitions_panel(vm, lang),
            ], className="brief-grid"),
        ],
        id=bid.ROOT,
        # a new key per centre and data version: React mounts a fresh screen on a drill
        # instead of patching one that brief.js and wall.js have written into
        key=f"brief-{vm['code']}-{lang}-{vm.get('version')}-{(vm.get('freshness') or {}).get('now')}",
        className=f"brief-screen level-{vm.get('level')} kids-{'some' if kids else 'none'}",
        lang="zh-CN" if lang == "zh" else "en",
        **{
            "data-centre": vm["code"],
            "data-lang": lang,
            "data-mode": "live",
            "data-playing": "0",
            "data-speed": "1",
            "data-i18n": json.dumps(brief_strings(lang), ensure_ascii=False),
        },
    )


def validation_components() -> list:
    """Stand-ins for the components the brief callbacks use, for the app's validation layout."""
    return [dcc.Store(id=bid.REPLAY), dcc.Store(id=bid.REPLAY_REQ), dcc.Store(id=bid.STATE),
            dcc.Slider(id=bid.SLIDER), html.Button(id=bid.PLAY), html.Button(id=bid.LIVE),
            *[html.Button(id=bid.SPEED.format(s)) for s in bid.SPEEDS],
            dcc.Interval(id=bid.TICK), html.Div(id=bid.SINK), dcc.Graph(id=bid.CHART)]
