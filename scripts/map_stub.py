"""A stub app that shows only the drill-down map, live from the read model (for development,
the browser tests, the bench and the screenshots).

    PINGAN_DATA_DIR=/tmp/mapdev .venv/bin/python scripts/map_stub.py [CODE] [PORT] [zh|en]

Clicking a region shows its code in #stub-clicked and drills to it (the map is re-rendered
for that centre); a dcc.Interval pushes fresh hideouts from Redis every second. URL
parameters: ?centre=CODE, ?indicator=index|reported|overdue|coverage|online_rate|petitions,
?canvas=0 (SVG renderer, so tests can read colours from the DOM).
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from dash import Dash, Input, Output, State, dcc, html  # noqa: E402
from dash.exceptions import PreventUpdate  # noqa: E402

from dashboard.runtime import Runtime  # noqa: E402
from dashboard.settings import Settings  # noqa: E402
from datasources.geo import (  # noqa: E402
    camera_states,
    grid_coverage,
    load_geometry,
    recent_cases,
)
from datasources.keys import Keys  # noqa: E402
from layouts.map import INDICATORS, live_props, map_ids, map_payload, map_view  # noqa: E402
from layouts.viewmodel import build  # noqa: E402

MAP_ID = "wall-map"


class MapData:
    """Reads everything the map of one centre needs (one snapshot + three pipelined reads)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.rt = Runtime(settings)
        self.topo = self.rt.topology
        self.geo = load_geometry(self.rt.engine)
        self.keys = Keys(settings.key_prefix)
        self.tz = ZoneInfo(settings.tz)

    def live(self, code: str) -> dict:
        now = datetime.now(self.tz)
        now_ms = int(time.time() * 1000)
        vm = build(self.rt.read_model.snapshot(code, now), self.topo, now_ms)
        r = self.rt.redis
        return {
            "vm": vm, "now_ms": now_ms,
            "coverage": (grid_coverage(r, self.keys, self.topo, code, now.strftime("%Y%m%d"))
                         if code in self.geo.grids else {}),
            "states": camera_states(r, self.keys, self.topo, code),
            "recent": recent_cases(r, self.keys, self.topo, code, now_ms, 900),
        }

    def payload(self, code: str, indicator: str, lang: str) -> dict:
        d = self.live(code)
        return map_payload(self.geo, code, d["vm"], coverage=d["coverage"], states=d["states"],
                           recent=d["recent"], now_ms=d["now_ms"], indicator=indicator,
                           lang=lang, map_id=MAP_ID,
                           patrols_per_day=self.settings.patrols_per_day)


def _params(search: str | None) -> dict[str, str]:
    q = parse_qs((search or "").lstrip("?"))
    return {k: v[0] for k, v in q.items() if v}


def make_app(settings: Settings, code: str | None = None, lang: str = "zh",
             interval_ms: int = 1000, data: MapData | None = None) -> Dash:
    data = data or MapData(settings)
    root = code or data.topo.roots[0]
    ids = map_ids(MAP_ID)
    app = Dash(__name__, assets_folder=str(REPO / "assets"), title="Pingan map (stub)",
               suppress_callback_exceptions=True)
    app.layout = html.Div([
        dcc.Location(id="stub-url"),
        dcc.Store(id="stub-view"),
        dcc.Interval(id="stub-tick", interval=interval_ms),
        html.Div(id="stub-clicked", style={"position": "absolute", "top": 0, "left": 0,
                                           "zIndex": 2000, "color": "#fff"}),
        html.Div(id="stub-map", style={"width": "100vw", "height": "100vh"}),
    ], style={"background": "#050d18", "margin": 0, "width": "100vw", "height": "100vh",
              "overflow": "hidden"})

    @app.callback(Output("stub-map", "children"), Output("stub-view", "data"),
                  Input("stub-url", "search"))
    def _render(search):
        p = _params(search)
        want = p.get("centre", root)
        if want not in data.topo.centres:
            return html.Div(f"unknown centre {want}", style={"color": "#fff"}), None
        indicator = p.get("indicator", "index")
        if indicator not in INDICATORS:
            indicator = "index"
        view = {"code": want, "indicator": indicator, "lang": p.get("lang", lang),
                "canvas": p.get("canvas", "1") != "0"}
        return _map(view), view

    def _map(view: dict):
        payload = data.payload(view["code"], view["indicator"], view["lang"])
        return map_view(payload, view["lang"], indicator=view["indicator"], map_id=MAP_ID,
                        tile_url=settings.tile_url, prefer_canvas=view["canvas"])

    @app.callback(Output("stub-clicked", "children"), Output("stub-map", "children",
                                                             allow_duplicate=True),
                  Output("stub-view", "data", allow_duplicate=True),
                  Input(ids["regions"], "clickData"), State("stub-view", "data"),
                  prevent_initial_call=True)
    def _click(click, view):
        if not click or not view:
            raise PreventUpdate
        code = click["properties"]["code"]
        view = {**view, "code": code}
        return code, _map(view), view

    @app.callback(*(Output(i, "hideout", allow_duplicate=True)
                    for i in (ids["regions"], ids["grids"], ids["cameras"], ids["cases"])),
                  Output(ids["cases"], "data", allow_duplicate=True),
                  Output(ids["legend"], "children", allow_duplicate=True),
                  Input("stub-tick", "n_intervals"), State("stub-view", "data"),
                  prevent_initial_call=True)
    def _tick(_n, view):
        if not view:
            raise PreventUpdate
        d = data.live(view["code"])
        props = live_props(data.geo, view["code"], d["vm"], d["coverage"], d["states"],
                           d["recent"], d["now_ms"], view["indicator"], view["lang"],
                           map_id=MAP_ID, patrols_per_day=settings.patrols_per_day)
        return (props[ids["regions"]]["hideout"], props[ids["grids"]]["hideout"],
                props[ids["cameras"]]["hideout"], props[ids["cases"]]["hideout"],
                props[ids["cases"]]["data"], props[ids["legend"]]["children"])

    return app


def main(argv: list[str]) -> None:
    settings = Settings.from_env()
    code = argv[1] if len(argv) > 1 else None
    port = int(argv[2]) if len(argv) > 2 else 8070
    lang = argv[3] if len(argv) > 3 else "zh"
    make_app(settings, code, lang).run(host="127.0.0.1", port=port, debug=False)


if __name__ == "__main__":
    main(sys.argv)
