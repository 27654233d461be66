"""The drill-down map (dash-leaflet): children regions, grids, cameras and recent cases.

Pure layout. `map_payload(geo, code, vm, …)` gathers the static features of the centre in
view, its bounds and the first hideouts; `map_view(payload, lang, …)` renders it. Live
updates change only the layers' `hideout` (colours, labels, states), and the recent-case
layer's small `data`: `hideouts(…)` / `live_props(…)` build them. The JS functions live in
assets/map.js (window.pinganMap), referenced with dash_extensions' Namespace.

Component ids (for map_id="wall-map"):
  wall-map            dl.Map                (viewport: {"bounds": …} moves it on a drill)
  wall-map-regions    children polygons     clickData.properties.code = the clicked child
  wall-map-self       outline of the centre in view
  wall-map-grids      grids of a level-4 centre
  wall-map-cameras    cameras of the subtree (clustered)
  wall-map-cases      recent cases (fade out)
  wall-map-legend     html legend;  wall-map-info: hover info box
"""

from __future__ import annotations

import base64
import math
from typing import Any

import dash_leaflet as dl
from dash import html
from dash_extensions.javascript import Namespace

from datasources.geo import STATE_CODE, Geo
from layouts.i18n import t

try:  # geobuf cuts the GeoJSON to ~1/4; plain GeoJSON when it is not installed
    import geobuf as _geobuf
except ImportError:  # pragma: no cover - optional
    _geobuf = None

INDICATORS: dict[str, dict[str, Any]] = {
    # fmt: how a value is written; better: which end of the scale is good
    "index": {"fmt": "index", "better": "high", "breaks": [60, 70, 80, 90]},
    "reported": {"fmt": "int", "better": "low"},
    "overdue": {"fmt": "int", "better": "low"},
    "coverage": {"fmt": "pct", "better": "high", "breaks": [0.6, 0.75, 0.85, 0.95]},
    "online_rate": {"fmt": "pct", "better": "high", "breaks": [0.8, 0.9, 0.95, 0.98]},
    "petitions": {"fmt": "int", "better": "low"},
}
FIGURES = ("index", "reported", "open", "overdue", "resolution_rate", "coverage",
           "online_rate", "petitions")
GOOD_HIGH = ["#ff5a5f", "#ff8a3d", "#ffc53d", "#7ad36b", "#1fbf8f"]  # low → high, high is good
BAD_HIGH = ["#1d4f7c", "#2a7bbf", "#8c7bff", "#ff8a3d", "#ff5a5f"]  # low → high, high is bad
NONE_COLOR = "#3a4658"
GRID_COLORS = ["#ff5a5f", "#ffb020", "#29d3a4"]  # 0 patrols, some, ≥ target (一日双巡)
CAMERA_COLORS = {"online": "#29d3a4", "offline": "#ffb020", "fault": "#ff5a5f",
                 "unknown": "#8a94a6"}
CASE_COLORS = {"normal": "#2ec7ff", "urgent": "#ff5a5f"}
CASE_MAX_AGE_S = 900
CLUSTER_FROM = 300  # cluster cameras when more than this many are in view (a village has ~50)

def ms(key: str, lang: str) -> str:
    """A map string in `lang` (the catalogue is layouts/i18n.py)."""
    return t(key, lang)


def map_ids(map_id: str = "wall-map") -> dict[str, str]:
    return {"map": map_id, "regions": f"{map_id}-regions", "self": f"{map_id}-self",
            "grids": f"{map_id}-grids", "cameras": f"{map_id}-cameras",
            "cases": f"{map_id}-cases", "legend": f"{map_id}-legend", "info": f"{map_id}-info",
            "marks": f"{map_id}-marks"}


# -- colour classes ---------------------------------------------------------------------------

def _nice(x: float) -> float:
    if x <= 0:
        return 1
    e = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if x <= m * e:
            return m * e
    return 10 * e


def breaks_for(indicator: str, values: list[float | None]) -> list[float]:
    """Four thresholds (five classes): fixed for the index and rates, from the max for counts."""
    spec = INDICATORS[indicator]
    if "breaks" in spec:
        return list(spec["breaks"])
    top = max([v for v in values if v is not None] or [0])
    step = _nice(max(top, 4) / 5)
    step = max(1, int(step)) if step >= 1 else step
    return [step * k for k in range(1, 5)]


def colors_for(indicator: str) -> list[str]:
    return GOOD_HIGH if INDICATORS[indicator]["better"] == "high" else BAD_HIGH


# -- hideouts ---------------------------------------------------------------------------------

def regions_hideout(vm: dict | None, indicator: str, lang: str, map_id: str = "wall-map",
                    selected: str | None = None) -> dict:
    if indicator not in INDICATORS:
        raise ValueError(f"unknown map indicator {indicator!r}")
    children = (vm or {}).get("children") or []
    figures = {c["code"]: {k: c.get(k) for k in FIGURES} for c in children}
    values = {code: f[indicator] for code, f in figures.items()}
    present = [v for v in values.values() if v is not None]
    return {
        "indicator": indicator,
        "fmt": INDICATORS[indicator]["fmt"],
        "values": values,
        "figures": figures,
        "min": min(present) if present else None,
        "max": max(present) if present else None,
        "breaks": breaks_for(indicator, list(values.values())),
        "colors": colors_for(indicator),
        "none_color": NONE_COLOR,
        "selected": selected,
        "labels": {**{k: ms(f"map_{k}", lang) for k in FIGURES}, "vc_call": t("vc_call", lang)},
        "info": map_ids(map_id)["info"],
    }


def grids_hideout(geo: Geo, code: str, coverage: dict[str, int] | None, lang: str,
                  target: int = 2) -> dict:
    """Patrols today of the grids drawn (a level-4 centre's own grids; none above)."""
    coverage = coverage or {}
    shown = [gid for gid, _kind, _geom in geo.grids.get(code, ())]
    return {"patrols": {g: int(coverage.get(g, 0)) for g in shown}, "target": target,
            "colors": GRID_COLORS,
            "labels": {"patrols": ms("map_patrols", lang)}}


def cameras_hideout(geo: Geo, code: str, states: dict[str, str] | None) -> dict:
    """`states` as one letter per camera in feature order (o online, x offline, f fault,
    u unknown): 10,000 cameras cost 10 KB per push instead of ~300 KB as an id → state dict."""
    states = states or {}
    letters = "".join(STATE_CODE.get(states.get(cid, "unknown"), "u") for cid in geo.camera_ids(code))
    return {"states": letters, "colors": CAMERA_COLORS}


def cases_hideout(now_ms: int | None, max_age_s: float = CASE_MAX_AGE_S) -> dict:
    return {"now": now_ms, "max_age": int(max_age_s * 1000), "colors": CASE_COLORS}


MAX_CASE_MARKERS = 120  # a busy city reports hundreds in 15 min: more would hide the map


def cases_features(recent: list[dict] | None, limit: int = MAX_CASE_MARKERS) -> dict:
    """Recent cases (datasources.geo.recent_cases, newest first) as points (properties eid,
    category, ts, urgency, centre): every urgent one, then the newest others, `limit` in all."""
    recent = list(recent or ())
    if len(recent) > limit:
        urgent = [c for c in recent if c.get("urgency") == "urgent"][:limit]
        keep = {c["eid"] for c in urgent}
        keep.update([c["eid"] for c in recent if c["eid"] not in keep][:limit - len(keep)])
        recent = [c for c in recent if c["eid"] in keep]
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [c["lon"], c["lat"]]},
         "properties": {"eid": c["eid"], "category": c["category"], "ts": c["ts"],
                        "urgency": c.get("urgency", "normal"), "centre": c["centre"]}}
        for c in recent]}


def hideouts(geo: Geo, code: str, vm: dict | None, coverage: dict[str, int] | None,
             states: dict[str, str] | None, now_ms: int | None, indicator: str = "index",
             lang: str = "zh", *, map_id: str = "wall-map", selected: str | None = None,
             patrols_per_day: int = 2) -> dict[str, dict]:
    """Component id → hideout, for every live layer of the map of `code`."""
    ids = map_ids(map_id)
    return {
        ids["regions"]: regions_hideout(vm, indicator, lang, map_id, selected),
        ids["grids"]: grids_hideout(geo, code, coverage, lang, patrols_per_day),
        ids["cameras"]: cameras_hideout(geo, code, states),
        ids["cases"]: cases_hideout(now_ms),
    }


def live_props(geo: Geo, code: str, vm: dict | None, coverage: dict[str, int] | None,
               states: dict[str, str] | None, recent: list[dict] | None, now_ms: int | None,
               indicator: str = "index", lang: str = "zh", *, map_id: str = "wall-map",
               selected: str | None = None, patrols_per_day: int = 2,
               escalations: list[dict] | None = None) -> dict[str, dict]:
    """Component id → {prop: value} for one live tick: every hideout, the recent cases'
    data, the legend and the marks (`<map_id>-marks`: no component, assets/wall.js hands
    them to pinganMap.setMarks). Ready for `set_props(id, props)` in Python or JS."""
    ids = map_ids(map_id)
    hs = hideouts(geo, code, vm, coverage, states, now_ms, indicator, lang, map_id=map_id,
                  selected=selected, patrols_per_day=patrols_per_day)
    out: dict[str, dict] = {k: {"hideout": v} for k, v in hs.items()}
    out[ids["cases"]]["data"] = cases_features(recent)
    out[ids["legend"]] = {"children": legend_children(hs[ids["regions"]], lang,
                                                      geo.centres[code].level)}
    out[ids["marks"]] = marks(geo, code, vm, escalations, now_ms)
    return out


# -- marks: overdue pulses and escalation arcs (issue 10), drawn by pinganMap.setMarks ---------

ARC_MAX_AGE_S = 600   # an escalation's arc is drawn for this long after it happened
MAX_ARCS = 30


def _point(geo: Geo, code: str) -> list[float] | None:
    c = geo.centres.get(code)
    if c is None or c.lon is None or c.lat is None:
        return None
    return [round(c.lat, 5), round(c.lon, 5)]


def overdue_buckets(vm: dict | None) -> dict[str, int]:
    """Centre → 1..3, how overdue the regions on the map are (their overdue counts against
    the map's own classes for the overdue indicator: 3 from the third break up); a centre without
    children pulses for itself. Centres without overdue cases are left out."""
    vm = vm or {}
    kids = vm.get("children") or []
    if not kids:
        n = (vm.get("figures") or {}).get("events.overdue") or 0
        return {vm["code"]: 2} if n > 0 and vm.get("code") else {}
    values = {c["code"]: c.get("overdue") or 0 for c in kids}
    b = breaks_for("overdue", list(values.values()))
    return {code: (1 if v < b[1] else 2 if v < b[2] else 3)
            for code, v in values.items() if v > 0}


def escalation_arcs(geo: Geo, code: str, escalations: list[dict] | None, now_ms: int | None,
                    max_age_s: float = ARC_MAX_AGE_S, limit: int = MAX_ARCS) -> list[dict]:
    """Recent escalations ({eid, from, to, ts}, any order) touching `code`'s subtree as arcs
    from the lower centre's point to the upper one's, newest first."""
    if not escalations or code not in geo.centres:
        return []
    inside = set(geo.subtree(code))
    out = []
    for e in escalations:
        src, dst, ts = e.get("from"), e.get("to"), e.get("ts") or 0
        if src not in inside and dst not in inside:
            continue
        if now_ms is not None and now_ms - ts > max_age_s * 1000:
            continue
        a, b = _point(geo, src), _point(geo, dst)
        if a and b and a != b:
            out.append({"eid": str(e.get("eid", "")), "from": a, "to": b, "ts": int(ts)})
    out.sort(key=lambda x: (-x["ts"], x["eid"]))
    return out[:limit]


def marks(geo: Geo, code: str, vm: dict | None, escalations: list[dict] | None = None,
          now_ms: int | None = None) -> dict:
    """What pinganMap.setMarks draws over the map of `code`: the points of the regions shown
    (its children, or itself), the overdue pulse of each, and escalation arcs."""
    shown = list(geo.children.get(code, ())) or [code]
    points = {c: p for c in shown if (p := _point(geo, c)) is not None}
    if code not in points and (p := _point(geo, code)) is not None:
        points[code] = p
    return {"code": code, "points": points, "overdue": overdue_buckets(vm),
            "arcs": escalation_arcs(geo, code, escalations, now_ms)}


# -- payload ----------------------------------------------------------------------------------

def _encode(fc: dict, fmt: str) -> dict | str:
    """geobuf as base64 text (dash-leaflet's GeoJSON(format="geobuf") decodes it); an empty
    collection stays GeoJSON (geobuf drops its `features`, which breaks dash-leaflet)."""
    if fmt == "geobuf" and fc["features"]:
        return base64.b64encode(_geobuf.encode(fc, 5)).decode("ascii")
    return fc


def map_payload(geo: Geo, code: str, vm: dict | None = None, *,
                coverage: dict[str, int] | None = None, states: dict[str, str] | None = None,
                recent: list[dict] | None = None, now_ms: int | None = None,
                indicator: str = "index", lang: str = "zh", map_id: str = "wall-map",
                fmt: str | None = None, patrols_per_day: int = 2) -> dict:
    """Everything map_view needs for the centre `code`: static features (geobuf when
    available), bounds, and the first hideouts and recent cases."""
    fmt = fmt or ("geobuf" if _geobuf is not None else "geojson")
    c = geo.centres[code]
    grids = geo.grids_features(code) if c.level >= 4 or not geo.children.get(code) else None
    memo_key = ("payload", code, fmt)
    static = geo._memo.get(memo_key)
    if static is None:
        static = geo._memo[memo_key] = {
            "children": _encode(geo.children_features(code), fmt),
            "self": _encode({"type": "FeatureCollection", "features": [geo.self_feature(code)]}, fmt),
            "grids": _encode(grids, fmt) if grids and grids["features"] else None,
            "cameras": _encode(geo.cameras_features(code), fmt),
        }
    return {
        "code": code, "name": c.name, "level": c.level, "format": fmt,
        "bounds": geo.bounds(code), **static,
        "cases": cases_features(recent),
        "hideouts": hideouts(geo, code, vm, coverage, states, now_ms, indicator, lang,
                             map_id=map_id, patrols_per_day=patrols_per_day),
    }


# -- view -------------------------------------------------------------------------------------

def _swatch(color: str, text: str, shape: str = "box") -> html.Div:
    return html.Div([html.Span(className=f"pm-swatch pm-swatch-{shape}", style={"background": color}),
                     html.Span(text)], className="pm-legend-row")


def legend_children(region_hideout: dict, lang: str, level: int) -> list:
    """The legend's rows: the indicator's five classes, then grid / camera / case keys."""
    from layouts.formats import fmt as format_value

    ind, kind = region_hideout["indicator"], region_hideout["fmt"]
    b, colors = region_hideout["breaks"], region_hideout["colors"]
    rows: list = [html.Div(ms(f"map_{ind}", lang), className="pm-legend-title")]
    if level < 4:
        edges = [None, *b, None]
        for i in reversed(range(5)):
            lo, hi = edges[i], edges[i + 1]
            if lo is None:
                text = f"< {format_value(hi, kind)}"
            elif hi is None:
                text = f"≥ {format_value(lo, kind)}"
            else:
                text = f"{format_value(lo, kind)} – {format_value(hi, kind)}"
            rows.append(_swatch(colors[i], text))
        rows.append(_swatch(NONE_COLOR, ms("map_no_data", lang)))
    else:
        rows = [html.Div(ms("map_grids", lang), className="pm-legend-title"),
                _swatch(GRID_COLORS[2], ms("map_patrol_full", lang)),
                _swatch(GRID_COLORS[1], ms("map_patrol_1", lang)),
                _swatch(GRID_COLORS[0], ms("map_patrol_0", lang))]
    rows.append(html.Div(ms("map_cameras", lang), className="pm-legend-title"))
    rows.append(html.Div([_swatch(CAMERA_COLORS[s], ms(f"map_cam_{s}", lang), "dot")
                          for s in ("online", "offline", "fault", "unknown")],
                         className="pm-legend-cams"))
    rows.append(_swatch(CASE_COLORS["normal"], ms("map_cases", lang), "ring"))
    return rows


def map_view(geo_payload: dict, lang: str, *, indicator: str = "index",
             tile_url: str | None = None, map_id: str = "wall-map",
             prefer_canvas: bool = True) -> html.Div:
    """The map box for `geo_payload` (from map_payload). The region click arrives in
    `<map_id>-regions`.clickData.properties.code (and n_clicks increments)."""
    ids = map_ids(map_id)
    p = geo_payload
    hs = p["hideouts"]
    if hs[ids["regions"]]["indicator"] != indicator:
        hs = {**hs, ids["regions"]: {**hs[ids["regions"]], **regions_hideout(
            {"children": [{"code": k, **v} for k, v in hs[ids["regions"]]["figures"].items()]},
            indicator, lang, map_id, hs[ids["regions"]].get("selected"))}}
    fmt = p.get("format", "geojson")

    def fmt_of(data) -> str:  # each layer's data is geobuf text or a GeoJSON dict
        return fmt if isinstance(data, str) else "geojson"

    ns = Namespace("pinganMap", "regions")
    layers: list = []
    if tile_url:
        layers.append(dl.TileLayer(url=tile_url, id=f"{map_id}-tiles"))
    layers.append(dl.GeoJSON(data=p["self"], format=fmt_of(p["self"]), id=ids["self"],
                             style=Namespace("pinganMap", "self")("style"), interactive=False))
    layers.append(dl.GeoJSON(
        data=p["children"], format=fmt_of(p["children"]), id=ids["regions"], hideout=hs[ids["regions"]],
        style=ns("style"), hoverStyle=ns("hover"), onEachFeature=ns("each"),
        zoomToBoundsOnClick=False))
    gns = Namespace("pinganMap", "grids")
    layers.append(dl.GeoJSON(
        data=p["grids"] or {"type": "FeatureCollection", "features": []},
        format=fmt_of(p["grids"]), id=ids["grids"], hideout=hs[ids["grids"]],
        style=gns("style"), onEachFeature=gns("each")))
    cns = Namespace("pinganMap", "cameras")
    layers.append(dl.GeoJSON(
        data=p["cameras"], format=fmt_of(p["cameras"]), id=ids["cameras"],
        hideout=hs[ids["cameras"]], cluster=len(hs[ids["cameras"]]["states"]) > CLUSTER_FROM,
        zoomToBoundsOnClick=True,
        superClusterOptions={"radius": 90, "extent": 256, "maxZoom": 16, "minPoints": 3},
        pointToLayer=cns("point"), style=cns("style"), clusterToLayer=cns("cluster")))
    kns = Namespace("pinganMap", "cases")
    layers.append(dl.GeoJSON(
        data=p["cases"], id=ids["cases"], hideout=hs[ids["cases"]],
        pointToLayer=kns("point"), style=kns("style"), filter=kns("filter"), interactive=False))
    bounds = p["bounds"]
    the_map = dl.Map(
        layers, id=map_id, bounds=bounds,
        viewport={"bounds": bounds, "options": {"padding": [16, 16]}},
        boundsOptions={"padding": [16, 16]},
        preferCanvas=prefer_canvas, zoomControl=False, attributionControl=False,
        trackViewport=False,  # else every moveend round-trips center/zoom (and crashes without them)
        zoomSnap=0.25, zoomDelta=0.5, wheelPxPerZoomLevel=120,
        className="pm-map", style={"width": "100%", "height": "100%"},
    )
    return html.Div([
        the_map,
        html.Div(legend_children(hs[ids["regions"]], lang, p["level"]), id=ids["legend"],
                 className="pm-legend"),
        html.Div(id=ids["info"], className="pm-info"),
    ], className="pm-box", **{"data-level": str(p["level"]), "data-code": p["code"]})


def validation_components(map_id: str = "wall-map") -> list:
    """Stand-ins for the map's interactive layers, for the app's validation layout."""
    return [dl.GeoJSON(id=map_ids(map_id)["regions"])]
