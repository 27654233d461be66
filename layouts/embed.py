"""Portal embed widgets (pure): a centre's view model → a small HTML page with inline SVG.

`page(widget, vm, …)` renders a whole page from the Jinja2 templates in
`layouts/templates/embed/` (autoescaped: every value from the data is escaped); `data(widget,
vm, …)` is what the page's script (`embed_static/embed.js`) fetches every REFRESH_S seconds.
Both come from `parts(…)`, so the first paint and every refresh agree:

- `figures`: the widget's raw values by snapshot path (`events.reported`, `hourly.today`, …),
  written to `data-value` of the element with that `data-figure`;
- `text`: `data-k` key → text content;
- `attr`: `data-k` key → SVG attributes (`d`, `width`, `y`, `height`, `fill`).

Aggregated figures only (the view model's headline figures, series and children), the metric
definitions of the wall (docs/metrics.md). No Plotly and no Dash renderer: a non-map widget is
a few KB; the map draws the children's boundaries as SVG paths projected here.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from layouts import map as mapview
from layouts.formats import fmt, raw
from layouts.i18n import t
from layouts.viewmodel import HEADLINES, closed_keys, tier_name, vocab_of

WIDGETS = ("events", "trend", "closure", "coverage", "cameras", "petitions", "map")
THEMES = ("dark", "light", "transparent")
MAP_INDICATORS = tuple(mapview.INDICATORS)
REFRESH_S = 5

# The headline figures each widget shows as numbers (the gauge's figure first where it has one).
TILES: dict[str, tuple[str, ...]] = {
    "events": ("events.reported", "events.resolved", "events.open", "events.overdue",
               "events.urgent", "events.escalated"),
    "trend": (),
    "closure": ("events.resolution_rate", "events.satisfaction_rate", "events.reported",
                "events.resolved"),
    "coverage": ("grids.coverage", "grids.full_coverage", "grids.patrolled_today",
                 "grids.total", "grids.workers_on_duty"),
    "cameras": ("cameras.online_rate", "cameras.online", "cameras.offline", "cameras.fault",
                "cameras.total"),
    "petitions": ("petitions.today", "petitions.group", "petitions.skip_level"),
    "map": (),
}
GAUGES = {"coverage": "grids.coverage", "cameras": "cameras.online_rate"}
# a map indicator → the snapshot path of the same figure for the centre itself
SELF_PATH = {"index": "index", "reported": "events.reported", "open": "events.open",
             "overdue": "events.overdue", "resolution_rate": "events.resolution_rate",
             "coverage": "grids.coverage", "online_rate": "cameras.online_rate",
             "petitions": "petitions.today"}

# SVG geometry (viewBox units)
TREND = {"w": 230, "h": 100, "x0": 0, "x1": 230, "y0": 0, "y1": 100}  # stretched to fit
BAR_W = 100  # horizontal bars: viewBox 0 0 100 10, stretched
COL_H = 100  # columns: viewBox 0 0 10 100, stretched
SPARK = {"w": 480, "h": 44, "y0": 4, "y1": 40}
GAUGE = {"cx": 100, "cy": 100, "r": 80}
MAP_W, MAP_MAX_H, MAP_PAD = 400.0, 560.0, 4.0
MAP_MIN_STEP = 8  # tenths of a viewBox unit: closer points of a ring are dropped

TEMPLATES = Path(__file__).resolve().parent / "templates" / "embed"
_ENV = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                   trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)


# -- small geometry helpers ------------------------------------------------------------------

def _n(x: float) -> str:
    """A coordinate with at most one decimal, no trailing zero: 12.0 → "12", 3.25 → "3.2"."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def nice_ceiling(x: float) -> int:
    """The axis top for counts up to x: the smallest of 1, 2, 4, 6, 8 × 10^k that is ≥ x (at
    least 2, so that half of it is a whole number too)."""
    if x <= 2:
        return 2
    e = 10 ** math.floor(math.log10(x))
    return next(m * e for m in (1, 2, 4, 6, 8, 10) if x <= m * e)


def line_path(values: list[float | None], ymax: float, box: dict = TREND) -> str:
    """An SVG path through `values` (evenly spaced), broken where a value is None."""
    n = max(1, len(values) - 1)
    dx = (box["x1"] - box["x0"]) / n
    out, pen_down = [], False
    for i, v in enumerate(values):
        if v is None:
            pen_down = False
            continue
        y = box["y1"] - min(1.0, v / ymax) * (box["y1"] - box["y0"])
        out.append(f"{'L' if pen_down else 'M'}{_n(box['x0'] + i * dx)},{_n(y)}")
        pen_down = True
    return "".join(out) or "M0,0"


def gauge_arc(ratio: float | None) -> str:
    """The value arc of a half-circle gauge, from the left end clockwise over the top."""
    cx, cy, r = GAUGE["cx"], GAUGE["cy"], GAUGE["r"]
    f = 0.0 if ratio is None else max(0.0, min(1.0, ratio))
    a = math.pi * (1 - f)
    return f"M{_n(cx - r)},{_n(cy)}A{r},{r} 0 0 1 {_n(cx + r * math.cos(a))},{_n(cy - r * math.sin(a))}"


def _rings(geom: dict | None) -> list:
    if not geom:
        return []
    if geom["type"] == "Polygon":
        return geom["coordinates"]
    if geom["type"] == "MultiPolygon":
        return [ring for poly in geom["coordinates"] for ring in poly]
    return []


def _tenths(v: int) -> str:
    """An integer count of tenths as the shortest SVG number: 12 → "1.2", -5 → "-.5"."""
    sign, v = ("-" if v < 0 else ""), abs(v)
    whole, frac = divmod(v, 10)
    if not frac:
        return f"{sign}{whole}"
    return f"{sign}{whole or ''}.{frac}"


def project(features: list[dict], width: float = MAP_W, max_h: float = MAP_MAX_H,
            pad: float = MAP_PAD) -> tuple[float, float, dict[str, str]]:
    """GeoJSON polygons → (viewBox width, height, {code: SVG path}), equirectangular at the
    middle latitude, north up; rings simplified to MAP_MIN_STEP, relative coordinates."""
    rings = {f["properties"]["code"]: _rings(f.get("geometry")) for f in features}
    pts = [p for rs in rings.values() for ring in rs for p in ring]
    if not pts:
        return width, width * 0.75, {}
    lons, lats = [p[0] for p in pts], [p[1] for p in pts]
    k = math.cos(math.radians((min(lats) + max(lats)) / 2))
    span_x = max((max(lons) - min(lons)) * k, 1e-9)
    span_y = max(max(lats) - min(lats), 1e-9)
    s = min((width - 2 * pad) / span_x, (max_h - 2 * pad) / span_y)
    w, h = span_x * s + 2 * pad, span_y * s + 2 * pad
    x0, y0 = min(lons), max(lats)
    paths: dict[str, str] = {}
    for code, rs in rings.items():
        parts = []
        for ring in rs:
            kept: list[tuple[int, int]] = []
            for lon, lat, *_ in ring:
                p = (round(((lon - x0) * k * s + pad) * 10), round(((y0 - lat) * s + pad) * 10))
                if not kept or (p[0] - kept[-1][0]) ** 2 + (p[1] - kept[-1][1]) ** 2 >= MAP_MIN_STEP ** 2:
                    kept.append(p)
            if len(kept) < 3:
                continue
            rel = " ".join(f"{_tenths(b[0] - a[0])},{_tenths(b[1] - a[1])}"
                           for a, b in zip(kept, kept[1:], strict=False))
            parts.append(f"M{_tenths(kept[0][0])},{_tenths(kept[0][1])}l{rel}z")
        if parts:
            paths[code] = "".join(parts)
    return round(w, 1), round(h, 1), paths


# -- what changes: figures, texts, attributes -------------------------------------------------

def as_of_text(vm: dict, lang: str, tz: str) -> str:
    ms = (vm.get("freshness") or {}).get("as_of")
    if not ms:
        return t("no_data", lang)
    return t("embed_as_of", lang, time=datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%H:%M:%S"))


def _regions(vm: dict, indicator: str) -> list[tuple[str, str, Any]]:
    """(code, name, value) of what the map colours: the children, or the centre itself."""
    if vm["children"]:
        return [(c["code"], c["name"], c.get(indicator)) for c in vm["children"]]
    return [(vm["code"], vm["name"], vm["figures"][SELF_PATH[indicator]])]


def class_of(value: float | None, breaks: list[float]) -> int | None:
    """The colour class of a value (as assets/map.js classOf): k breaks → k + 1 classes."""
    if value is None:
        return None
    return sum(1 for b in breaks if value >= b)


def legend_labels(breaks: list[float], kind: str) -> list[str]:
    f = [str(int(b)) if kind == "index" and float(b).is_integer() else fmt(b, kind)
         for b in breaks]
    return [f"< {f[0]}", *(f"{a} – {b}" for a, b in zip(f, f[1:], strict=False)), f"≥ {f[-1]}"]


def parts(widget: str, vm: dict, *, lang: str, tz: str, indicator: str = "index") -> dict:
    """The widget's live values: {"figures": {path: raw}, "text": {key: str}, "attr": {key: {…}}}."""
    figures: dict[str, Any] = {}
    text: dict[str, str] = {}
    attr: dict[str, dict[str, str]] = {}

    def figure(path: str, value: Any, kind: str) -> None:
        figures[path] = value
        text[path] = fmt(value, kind)

    for path in TILES[widget]:
        figure(path, vm["figures"][path], HEADLINES[path])
    if widget in GAUGES:
        attr["gauge"] = {"d": gauge_arc(vm["figures"][GAUGES[widget]])}

    if widget == "trend":
        today, yday = vm["hourly"]["today"], vm["hourly"]["yesterday"]
        figures["hourly.today"], figures["hourly.yesterday"] = today, yday
        figure("trend.today_total", sum(v for v in today if v is not None), "int")
        figure("trend.yesterday_same_hours",
               sum(y for v, y in zip(today, yday, strict=False) if v is not None), "int")
        figure("trend.yesterday_total", sum(yday), "int")
        ymax = nice_ceiling(max([v for v in (*today, *yday) if v is not None] or [0]))
        text["ymax"], text["ymid"] = fmt(ymax, "int"), fmt(ymax // 2, "int")
        attr["line.today"] = {"d": line_path(today, ymax)}
        attr["line.yesterday"] = {"d": line_path(yday, ymax)}
    elif widget == "closure":
        levels = vm["closed_at_level"]
        top = max([levels.get(lv, 0) for lv in closed_keys(vm)] + [1])
        for lv in closed_keys(vm):
            figure(f"closed_at_level.{lv}", levels.get(lv, 0), "int")
            attr[f"bar.{lv}"] = {"width": _n(levels.get(lv, 0) / top * BAR_W)}
    elif widget == "cameras":
        for kind, rate in vm["cameras_by_kind"].items():
            figure(f"cameras_by_kind.{kind}", rate, "pct")
            attr[f"bar.{kind}"] = {"width": _n(min(1.0, rate or 0) * BAR_W)}
    elif widget == "petitions":
        days = vm["petitions_7d"]
        totals = [d["total"] for d in days]
        figures["petitions_7d"] = totals
        top = nice_ceiling(max(totals + [0]))
        for i, d in enumerate(days):
            height = d["total"] / top * COL_H
            attr[f"col.{i}"] = {"y": _n(COL_H - height), "height": _n(height)}
            text[f"col.{i}.v"] = fmt(d["total"], "int")
            text[f"col.{i}.day"] = d["day"][5:]
        month = [d["total"] for d in vm["petitions_30d"]]
        figures["petitions_30d"] = month
        figure("petitions_30d.total", sum(month), "int")
        attr["spark"] = {"d": line_path(month, nice_ceiling(max(month + [0])),
                                        {"x0": 2, "x1": SPARK["w"] - 2, **SPARK})}
    elif widget == "map":
        regions = _regions(vm, indicator)
        kind = mapview.INDICATORS[indicator]["fmt"]
        breaks = mapview.breaks_for(indicator, [v for _code, _name, v in regions])
        colors = mapview.colors_for(indicator)
        label = t(f"map_{indicator}", lang)
        figure(SELF_PATH[indicator], vm["figures"][SELF_PATH[indicator]], HEADLINES[SELF_PATH[indicator]])
        for code, name, value in regions:
            figures[f"regions.{code}"] = value
            k = class_of(value, breaks)
            attr[f"region.{code}"] = {"fill": mapview.NONE_COLOR if k is None else colors[k]}
            text[f"region.{code}.title"] = f"{name} · {label} {fmt(value, kind)}"
        for i, s in enumerate(legend_labels(breaks, kind)):
            text[f"legend.{i}"] = s
    text["as_of"] = as_of_text(vm, lang, tz)
    return {"figures": figures, "text": text, "attr": attr}


def data(widget: str, vm: dict, *, lang: str, tz: str, stale: bool, indicator: str = "index",
         only_freshness: bool = False) -> dict:
    """The JSON of `/embed/<widget>/data`: the version, staleness and the widget's parts (only
    the update time when the caller already has this version)."""
    out: dict[str, Any] = {"widget": widget, "centre": vm["code"], "version": vm["version"],
                           "stale": stale}
    if only_freshness:
        out["text"] = {"as_of": as_of_text(vm, lang, tz)}
    else:
        out.update(parts(widget, vm, lang=lang, tz=tz, indicator=indicator))
    return out


# -- the static part of each widget ----------------------------------------------------------

def _static(widget: str, vm: dict, lang: str, features: list[dict] | None,
            indicator: str) -> dict:
    """What does not change between refreshes: axes, rows, slots, the map's paths."""
    if widget == "trend":
        return {**TREND, "hours": [f"{h:02d}" for h in (0, 6, 12, 18, 23)]}
    if widget in ("closure", "cameras"):
        if widget == "closure":
            return {"rows": [{"key": k, "label": tier_name(vm, k, lang),
                              "path": f"closed_at_level.{k}"} for k in closed_keys(vm)]}
        vocab = vocab_of(vm)  # the region's camera kinds, labelled in its words
        return {"rows": [{"key": k, "label": vocab.label("camera_kind", k, lang),
                          "path": f"cameras_by_kind.{k}"} for k in vm["cameras_by_kind"]]}
    if widget == "petitions":
        return {"cols": range(len(vm["petitions_7d"])), "spark": SPARK}
    if widget == "map":
        w, h, paths = project(features or [])
        codes = [c for c, _name, _v in _regions(vm, indicator)]
        return {"w": w, "h": h, "regions": [(c, paths[c]) for c in codes if c in paths],
                "colors": mapview.colors_for(indicator), "none": mapview.NONE_COLOR,
                "leaf": not vm["children"], "self_path": SELF_PATH[indicator],
                "label": t(f"map_{indicator}", lang)}
    return {}


def _raw(value: Any) -> str:
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return raw(value)


def page(widget: str, vm: dict, *, lang: str, theme: str, tz: str, stale: bool, root: dict,
         css_url: str, js_url: str, features: list[dict] | None = None,
         indicator: str = "index") -> str:
    """The whole embed page of `widget` for the centre of `vm`.

    `root`: `token`, `centre`, `src` (the data URL) and `indicator` for the page's script.
    `features`: the GeoJSON features the map draws (the children, or the centre itself)."""
    if widget not in WIDGETS or theme not in THEMES:
        raise ValueError(f"unknown widget or theme: {widget!r}, {theme!r}")
    p = parts(widget, vm, lang=lang, tz=tz, indicator=indicator)
    wtitle = t(f"embed_w_{widget}", lang)
    return _ENV.get_template("widget.html").render(
        w=widget, lang=lang, theme=theme, name=vm["name"], wtitle=wtitle,
        title=f"{vm['name']} · {wtitle}", root=root, refresh=REFRESH_S, version=vm["version"],
        stale=stale, stale_text=t("stale", lang), p=p,
        raw={k: _raw(v) for k, v in p["figures"].items()},
        tiles=[(path, t(path, lang)) for path in TILES[widget]], gauge=GAUGES.get(widget),
        s=_static(widget, vm, lang, features, indicator), tr=lambda key: t(key, lang),
        css_url=css_url, js_url=js_url)


def message_page(title: str, message: str, *, lang: str, theme: str, css_url: str,
                 status: int, reason: str) -> str:
    """A refusal or error page: no script, no data, the reason in words."""
    return _ENV.get_template("message.html").render(
        lang=lang, theme=theme if theme in THEMES else "dark", title=title, message=message,
        status=status, reason=reason, css_url=css_url, js_url="")

