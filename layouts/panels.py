"""The wall's panels (pure: view model in, Dash components out).

Live-update contract with assets/wall.js:
- a headline figure:  data-figure=<HEADLINES path>, data-value=raw, data-format=int|pct|index
- a child's figure:   data-child=<code>, data-field=<CHILD_FIGURES field>, data-value, data-format
- a ranking row:      data-rank-row=<code>, a flex item (wall.js reorders with style.order)
- a chart:            dcc.Graph with a constant id (layouts.wall_ids) and meta.series per trace
- a panel:            section.panel[data-panel] with span.age[data-age="all"] in its title bar
"""

from __future__ import annotations

import math

from dash import dcc, html

from layouts import charts, vc
from layouts import wall_ids as wid
from layouts.formats import fmt, raw
from layouts.i18n import t
from layouts.viewmodel import CHILD_FIGURES, HEADLINES, centre_tier, tier_name, vocab_of

GRAPH_CONFIG = {"displayModeBar": False, "staticPlot": False, "responsive": True}
GRAPH_STYLE = {"height": "100%", "width": "100%"}

BASE_FIELDS = ("registered_population", "floating_population", "houses", "rentals",
               "special_populations", "organisations")

# Tile colours of the index scale (index → colour), shared with the CSS legend.
INDEX_STOPS = ((60.0, (255, 90, 95)), (75.0, (255, 176, 32)), (88.0, (46, 199, 255)),
               (100.0, (41, 211, 164)))


# -- elements ---------------------------------------------------------------------------
def figure(vm: dict, path: str, className: str = "") -> html.Span:
    """A headline figure, live-updated by wall.js through its data-* attributes."""
    kind = HEADLINES[path]
    value = vm["figures"].get(path)
    return html.Span(
        fmt(value, kind),
        className=("fig " + className).strip(),
        **{"data-figure": path, "data-value": raw(value), "data-format": kind},
    )


def child_figure(child: dict, field: str, className: str = "") -> html.Span:
    kind = CHILD_FIGURES[field]
    value = child.get(field)
    return html.Span(
        fmt(value, kind),
        className=("fig " + className).strip(),
        **{"data-child": child["code"], "data-field": field, "data-value": raw(value),
           "data-format": kind},
    )


# The counts whose cases the wall lists (assets/wall.js: GET /api/cases?status=…).
CASE_FILTERS: dict[str, str] = {
    "events.open": "open", "events.overdue": "overdue", "events.urgent": "urgent",
    "events.escalated": "escalated", "events.supervised": "supervised",
}


def kpi(vm: dict, path: str, lang: str, size: str = "md", meter: bool = False,
        label: str | None = None) -> html.Div:
    """A labelled headline figure; `meter` draws a bar under a pct figure (CSS, live). A
    count with cases behind it (CASE_FILTERS) is a button: data-cases names the filter."""
    cls = f"kpi kpi-{size}" + (" has-meter" if meter else "")
    fig_cls = "meter" if meter else ""
    extra: dict = {}
    if path in CASE_FILTERS:
        cls += " has-cases"
        extra = {"data-cases": CASE_FILTERS[path], "role": "button",
                 "title": t(path, lang)}
    return html.Div(
        [html.Div(label or t(path, lang), className="kpi-label"), figure(vm, path, fig_cls)],
        className=cls, **{"data-kpi": path, **extra},
    )


def graph(chart_id: str, fig: dict) -> dcc.Graph:
    return dcc.Graph(id=chart_id, figure=fig, config=GRAPH_CONFIG, style=GRAPH_STYLE,
                     className="wall-graph")


def chart_box(title: str, chart_id: str, fig: dict, area: str,
              items: list[tuple[str, str]] | None = None, note: str | None = None) -> html.Div:
    head = [html.Span(title, className="chart-title")]
    if items:
        head.append(legend(items))
    if note:
        head.append(html.Span(note, className="chart-note"))
    return html.Div(
        [html.Div(head, className="chart-head"),
         html.Div(graph(chart_id, fig), className="chart-body")],
        className=f"chart chart-{area}",
    )


def legend(items: list[tuple[str, str]]) -> html.Span:
    return html.Span(
        [html.Span([html.I(className="swatch", style={"background": colour}), label],
                   className="legend-item") for label, colour in items],
        className="chart-legend")


def panel(name: str, lang: str, body: list, className: str = "", title_extra: list | None = None,
          heading: str | None = None, **attrs) -> html.Section:
    """A panel of the wall; its heading is `panel_<name>`'s unless `heading` is given."""
    title = html.Div(
        [html.H2(heading or t(f"panel_{name}", lang), className="panel-name"),
         *(title_extra or []),
         html.Span(className="age", **{"data-age": "all"})],
        className="panel-title",
    )
    return html.Section(
        [title, html.Div(body, className="panel-body")],
        className=f"panel panel-{name} {className}".strip(),
        **{"data-panel": name, **attrs},
    )


def index_colour(value: float | None) -> str:
    """The colour of an index on the tile scale (grey when unknown)."""
    if value is None:
        return "rgb(111, 134, 163)"
    v = max(INDEX_STOPS[0][0], min(INDEX_STOPS[-1][0], float(value)))
    for (a, ca), (b, cb) in zip(INDEX_STOPS, INDEX_STOPS[1:], strict=False):
        if v <= b:
            f = (v - a) / (b - a) if b > a else 0.0
            r, g, bl = (round(x + (y - x) * f) for x, y in zip(ca, cb, strict=True))
            return f"rgb({r}, {g}, {bl})"
    r, g, bl = INDEX_STOPS[-1][1]
    return f"rgb({r}, {g}, {bl})"


# -- panels -----------------------------------------------------------------------------
def events_panel(vm: dict, lang: str) -> html.Section:
    kpis = html.Div(
        [kpi(vm, p, lang, "lg") for p in
         ("events.reported", "events.open", "events.resolved", "events.overdue")]
        + [kpi(vm, "events.resolution_rate", lang, "md", meter=True),
           kpi(vm, "events.satisfaction_rate", lang, "md", meter=True),
           kpi(vm, "events.urgent", lang, "md"),
           kpi(vm, "events.escalated", lang, "md"),
           kpi(vm, "events.supervised", lang, "md")],
        className="kpis kpis-events",
    )
    return panel("events", lang, [
        kpis,
        html.Div([
            chart_box(t("chart_hourly", lang), wid.CHART_HOURLY, charts.hourly(vm, lang), "hourly",
                      items=[(t("today", lang), charts.CYAN), (t("yesterday", lang), charts.GREY)]),
            chart_box(t("chart_category", lang), wid.CHART_CATEGORY,
                      charts.by_category(vm, lang), "category"),
            chart_box(t("chart_channel", lang), wid.CHART_CHANNEL,
                      charts.by_channel(vm, lang), "channel"),
            chart_box(t("chart_closed", lang), wid.CHART_CLOSED,
                      charts.closed_at_level(vm, lang), "closed", note=t("slogan", lang)),
        ], className="charts charts-events"),
    ])


def grids_panel(vm: dict, lang: str) -> html.Section:
    pair = "kpi-pair"
    figs = html.Div([
        kpi(vm, "grids.coverage", lang, "lg", meter=True),
        kpi(vm, "grids.full_coverage", lang, "lg", meter=True),
        html.Div([html.Div(t("grids.patrolled_today", lang), className="kpi-label"),
                  html.Div([figure(vm, "grids.patrolled_today"), html.Span("/", className="sep"),
                            figure(vm, "grids.total", "minor")], className="pair-values")],
                 className=f"kpi kpi-sm {pair}"),
        kpi(vm, "grids.patrolled_full", lang, "sm"),
        kpi(vm, "grids.staffed", lang, "sm"),
        html.Div([html.Div(t("workers_on_duty_of", lang), className="kpi-label"),
                  html.Div([figure(vm, "grids.workers_on_duty"), html.Span("/", className="sep"),
                            figure(vm, "grids.workers", "minor")], className="pair-values")],
                 className=f"kpi kpi-sm {pair}"),
    ], className="kpis kpis-grids")
    body = [figs]
    has_kids = bool(vm["children"])
    if has_kids:
        body.append(chart_box(t("chart_child_coverage", lang), wid.CHART_CHILD_COVERAGE,
                              charts.child_coverage(vm, lang), "child-coverage"))
    return panel("grids", lang, body, className="" if has_kids else "no-children")


def cameras_panel(vm: dict, lang: str) -> html.Section:
    names = {c["code"]: c for c in vm["children"]}
    worst = [names[c] for c in vm.get("worst_cameras", []) if c in names]
    figs = html.Div(
        [kpi(vm, "cameras.online_rate", lang, "lg", meter=True)]
        + [kpi(vm, p, lang, "sm") for p in
           ("cameras.online", "cameras.offline", "cameras.fault", "cameras.total")],
        className="kpis kpis-cameras")
    side = [chart_box(t("chart_camera_kind", lang), wid.CHART_CAMERA_KIND,
                      charts.camera_kinds(vm, lang), "camera-kind")]
    if worst:
        side.append(html.Div([
            html.Div(t("worst_cameras", lang), className="chart-title"),
            html.Ol([html.Li([html.Span(c["name"], className="name"),
                              child_figure(c, "online_rate")], className="worst-item")
                     for c in worst], className="worst-list"),
        ], className="worst"))
    return panel("cameras", lang, [figs, html.Div(side, className="cameras-side")],
                 className="" if worst else "no-children")


def petitions_panel(vm: dict, lang: str) -> html.Section:
    vocab = vocab_of(vm)
    items = [(x.label(lang), x.colour) for x in vocab.terms("petition_channel")]
    figs = html.Div([kpi(vm, p, lang, "md") for p in
                     ("petitions.today", "petitions.group", "petitions.skip_level")],
                    className="kpis kpis-petitions")
    return panel("petitions", lang, title_extra=[legend(items)], body=[
        figs,
        html.Div([
            chart_box(t("chart_petitions_7d", lang), wid.CHART_PETITIONS_7D,
                      charts.petitions(vm, lang, "7d"), "pet7"),
            chart_box(t("chart_petitions_30d", lang), wid.CHART_PETITIONS_30D,
                      charts.petitions(vm, lang, "30d"), "pet30"),
        ], className="charts charts-petitions"),
    ])


RANK_COLUMNS = ("index", "reported", "open", "overdue", "supervised", "resolution_rate",
                "coverage", "online_rate", "petitions")


def base_data(vm: dict, lang: str, className: str = "base") -> html.Div:
    base = vm.get("base") or {}
    fields = [f for f in BASE_FIELDS if f in base] + [f for f in base if f not in BASE_FIELDS]
    return html.Div(
        [html.Div([html.Div(t("base_" + f, lang), className="kpi-label"),
                   html.Span(fmt(base[f], "int"), className="fig")], className="kpi kpi-sm")
         for f in fields],
        className=className,
    )


def ranking_heading(vm: dict, lang: str) -> str | None:
    """The children's tier in the region's words (区县排名, or 镇排名 in a county that says 镇);
    None without children (the panel's own heading)."""
    kids = vm.get("children") or []
    return t("panel_ranking_of", lang, tier=tier_name(vm, kids[0]["level"], lang)) if kids else None


def ranking_panel(vm: dict, lang: str, calls: bool = True) -> html.Section:
    kids = vm["children"]
    if not kids:
        return panel("ranking", lang, [
            html.Div(t("no_children", lang), className="empty-note"),
            html.H3(t("panel_base", lang), className="sub-title"),
            base_data(vm, lang, "base base-large"),
        ], className="no-children")
    n = len(kids)
    cols = 1 if n <= 18 else 2
    rows_per_col = math.ceil(n / cols)
    header = html.Div(
        [html.Span(t("col_centre", lang), className="cell name")]
        + [html.Span(t("col_" + f, lang), className=f"cell c-{f}") for f in RANK_COLUMNS],
        className="rank-row rank-head",
    )
    rows = []
    for i, c in enumerate(kids):
        cells = [html.Span([html.Span(c["name"], className="name-text"),
                            *([vc.call_button(c["code"], lang, compact=True)] if calls else [])],
                           className="cell name", title=c["name"])]
        for f in RANK_COLUMNS:
            extra = " meter meter-index" if f == "index" else ""
            cells.append(html.Span(child_figure(c, f, extra.strip()), className=f"cell c-{f}"))
        rows.append(html.Div(cells, className="rank-row",
                             style={"order": i}, **{"data-rank-row": c["code"]}))
    return panel("ranking", lang, [
        html.Div([header] * cols, className="rank-heads"),
        html.Div(rows, className="rank-body", style={"--rank-rows": rows_per_col}),
    ], className=f"rank-cols-{cols}", heading=ranking_heading(vm, lang))


def alert_strip(lang: str) -> html.Div:
    """The wall's strip of unacknowledged alerts, filled live by assets/wall.js from the
    push's `alerts` (layouts/viewmodel.alert_rows): one element per alert with
    data-alert=<id>, newest first, what fits on one line and a "+N more" count."""
    return html.Div([
        html.Span(t("wc_alerts", lang), className="alert-strip-label"),
        # empty until the first message says what there is (never "none" before it is known)
        html.Div([], className="alert-list", **{"aria-live": "polite"}),
        html.Span(className="alert-more", hidden=True),
    ], className="alert-strip", **{"data-alert-count": "0"})


def map_area(vm: dict, lang: str, the_map=None, controls=None) -> html.Div:
    """The map box: the drill-down map when given (layouts/map.py), else tiles per child."""
    kids = vm["children"]
    title = html.Div(
        [html.H2(t("panel_map", lang), className="panel-name"),
         *([] if the_map is not None else [
             html.Span([html.Span(t("map_legend_low", lang)), html.I(className="scale"),
                        html.Span(t("map_legend_high", lang))], className="map-legend")]),
         *([controls] if controls is not None else []),
         html.Span(className="age", **{"data-age": "all"})],
        className="panel-title",
    )
    if the_map is not None:
        body = [html.Div(the_map, className="map-live")]
        return html.Div([title, html.Div(body, className="panel-body")],
                        id=wid.MAP_AREA, className="panel map-area has-map",
                        **{"data-panel": "map"})
    if kids:
        n = len(kids)
        # columns for a wide box (16:9 layout) and for a squarer one (32:9 layout)
        wide = max(1, min(n, math.ceil(math.sqrt(n * 2.6))))
        tall = max(1, min(n, math.ceil(math.sqrt(n * 1.0))))
        tiles = [
            html.Div([html.Span(c["name"], className="tile-name", title=c["name"]),
                      child_figure(c, "index", "tile-index")],
                     className="tile", style={"--tile": index_colour(c["index"])},
                     **{"data-tile": c["code"]})
            for c in kids
        ]
        grid = html.Div(tiles, className="tiles",
                        style={"--cols-wide": wide, "--rows-wide": math.ceil(n / wide),
                               "--cols-tall": tall, "--rows-tall": math.ceil(n / tall)})
        body = [grid, base_data(vm, lang, "base base-strip")]
    else:
        body = [html.Div(
            html.Div([html.Span(vm["name"], className="tile-name"),
                      html.Span(centre_tier(vm, lang), className="tile-level"),
                      html.Span(t("no_children", lang), className="tile-note")],
                     className="tile tile-self",
                     style={"--tile": index_colour(vm["figures"].get("index"))}),
            className="tiles tiles-self")]
    return html.Div([title, html.Div(body, className="panel-body")],
                    id=wid.MAP_AREA, className="panel map-area", **{"data-panel": "map"})
