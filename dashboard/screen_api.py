"""The wall's screen as JSON, for the in-place drill (assets/drill.js).

    GET /screen/wall?centre=CODE[&lang=en][&indicator=…][&push=poll]

A tap on a map region, a breadcrumb or the back button turns the wall into another centre's
wall without Dash re-rendering it: the browser fetches this answer and applies it to the DOM it
has (figures, rankings, breadcrumb), to its Plotly charts (`Plotly.react`) and to its map (the
layers' props through `dash_clientside.set_props`). Re-rendering the whole screen cost a new
Leaflet map and a `newPlot` per chart: about 1 s of main thread on a wall PC, several under load
(bench/wall_drill.py). The screen is built by the same layout functions as the full route
(callbacks/router.py `route`), so a drilled wall shows exactly what a fresh load shows.

The query is checked exactly like the router's (`parse_query` against the viewer's scope); a
centre outside the viewer's scope, or unknown, is answered 403 (as the live routes do: the
answer does not tell which codes exist), any other bad parameter 400. The wall stays as it is.
"""

from __future__ import annotations

import json
import math

from dash import html
from flask import Flask, Response, abort, request

from callbacks.router import BadQuery, Query, current_query, search_for, viewer_chip
from dashboard import access
from dashboard.screens import WALL_JSON, ScreenData, version_tag
from dashboard.settings import Settings
from layouts import map as mapview
from layouts.wall import wall_screen

SCREEN_PATH = "/screen/wall"
REFUSED = ("forbidden", "unknown_centre")  # BadQuery keys answered 403


def plain(obj):
    """`obj` with Dash components as their JSON dicts and non-finite floats as null, for the
    C JSON encoder (plotly's encoder, which Dash uses, encodes twice: ~3x slower here)."""
    if hasattr(obj, "to_plotly_json"):
        obj = obj.to_plotly_json()
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def map_props(payload: dict, lang: str, map_id: str = "wall-map") -> dict[str, dict]:
    """Component id → props that turn the map of one centre into the map of `payload`'s
    (layouts/map.py map_payload): what `map_view` would render, as `set_props` arguments."""
    ids = mapview.map_ids(map_id)
    hs = payload["hideouts"]
    fmt = payload.get("format", "geojson")
    empty = {"type": "FeatureCollection", "features": []}

    def layer(data) -> dict:  # each layer's data is geobuf text or a GeoJSON dict
        data = data if data is not None else empty
        return {"data": data, "format": fmt if isinstance(data, str) else "geojson"}

    cameras = hs[ids["cameras"]]
    return {
        ids["self"]: layer(payload["self"]),
        ids["regions"]: {**layer(payload["children"]), "hideout": hs[ids["regions"]]},
        ids["grids"]: {**layer(payload["grids"]), "hideout": hs[ids["grids"]]},
        ids["cameras"]: {**layer(payload["cameras"]), "hideout": cameras,
                         "cluster": len(cameras["states"]) > mapview.CLUSTER_FROM},
        ids["cases"]: {"data": payload["cases"], "hideout": hs[ids["cases"]]},
        ids["legend"]: {"children": mapview.legend_children(hs[ids["regions"]], lang,
                                                            payload["level"])},
        ids["map"]: {"viewport": {"bounds": payload["bounds"],
                                  "options": {"padding": [16, 16]}}},
    }


def wall_body(screens: ScreenData, q: Query, viewer: access.Viewer) -> dict:
    """The answer for the checked query `q` (callbacks/router.py current_query)."""
    vm = screens.view(q.centre)
    payload = screens.map_payload(q.centre, vm, q.indicator, q.lang)
    # the map area is kept by the browser (its Leaflet map is updated, not replaced)
    canvas = wall_screen(vm, q.lang, html.Div(), calls=viewer.may_call,
                         chip=viewer_chip(viewer, q.lang))
    return {
        "centre": q.centre,
        "search": search_for(q, q.centre),
        "version": version_tag(q.centre, vm),
        "stream": f"/live/stream?centre={q.centre}&lang={q.lang}" if q.push == "sse" else "",
        "vm": vm,
        "canvas": canvas,
        "map": {"code": payload["code"], "level": payload["level"],
                "props": map_props(payload, q.lang)},
    }


def encode(body: dict) -> str:
    return json.dumps(plain(body), ensure_ascii=False, separators=(",", ":"))


def wall_text(screens: ScreenData, settings: Settings, search: str) -> tuple[int, str]:
    """(HTTP status, JSON text) for the wall of the query `search`, seen by this request's
    viewer (a centre out of scope: 403, another bad parameter: 400). The text is kept per
    version of the centre's shards (screens' cache): building and encoding the ~530
    components took 0.2-0.6 s of a loaded server per drill, the same for every wall (and
    every back and forth) until the data moves. Everything in the answer follows from the
    query, the viewer's name and role, and those versions."""
    q = current_query(search, screens.topology)
    if isinstance(q, BadQuery):
        return (403 if q.key in REFUSED else 400), encode({"error": q.key})
    v = access.require_viewer()
    name = (WALL_JSON, q.centre, q.lang, q.indicator, q.push, search_for(q, q.centre),
            v.name, v.role, v.demo, v.open)
    text = screens.cache.get(name, screens.versions(q.centre),
                             lambda: encode(wall_body(screens, q, v)))
    return 200, text


def register_screen_routes(server: Flask, screens: ScreenData, settings: Settings) -> None:
    @server.get(SCREEN_PATH)
    def screen_wall():
        if request.args.get("tour") or request.args.get("tour_root"):
            abort(400)  # a touring wall steps by the full route
        status, text = wall_text(screens, settings, "?" + request.query_string.decode("latin-1"))
        resp = Response(text, status=status, mimetype="application/json")
        resp.headers["Cache-Control"] = "no-store"
        return resp
