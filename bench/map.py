"""The drill-down map: time until a drilled view is interactive, and bytes per drill step.

    PINGAN_DATA_DIR=/tmp/mapdev .venv/bin/python bench/map.py [--runs 5] [--cameras 12000]

Needs a data dir with the demo registry and some aggregated events (see the brief:
`pingan registry demo && pingan simulate && pingan aggregate --until-idle`). Starts
scripts/map_stub.py in a thread and drives Debian's headless Chromium (1920x1080).

- "load": navigation to the map's GeoJSON layers drawn (regions or grids registered, cameras
  drawn) and the map idle (no pending Dash request, two animation frames later).
- "drill": in a loaded page, from a region click to the child's map drawn (the real drill
  path: one callback POST whose response carries the new map).
- bytes: the drill callback's response body (uncompressed: the stub does not compress), what
  gzip would make of it, and the layout JSON `map_view` produces for that centre, for both
  data formats (geobuf, GeoJSON).
`--cameras N` adds synthetic cameras (spread over the villages) up to N, for the 10,000+ case.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import threading

import plotly
from werkzeug.serving import make_server

from dashboard.devkit.browser import chromium
from dashboard.settings import Settings
from datasources.geo import build_geo
from layouts.map import map_ids, map_payload, map_view
from scripts.map_stub import MapData, make_app

IDS = map_ids("wall-map")

READY = """
var done = arguments[arguments.length - 1];
var want = arguments[0], key = arguments[1], t0 = arguments[2];
function pending() { return window.__pmPending || 0; }
function check() {
  var pm = window.pinganMap;
  var reg = pm && pm.registry[key];
  var n = reg ? Object.keys(reg).length : 0;
  var cams = document.querySelectorAll('#wall-map .pm-cluster').length +
             (pm && pm.registry['wall-map-cameras'] ? Object.keys(pm.registry['wall-map-cameras']).length : 0);
  if (n >= want && cams > 0 && !pending()) {
    requestAnimationFrame(function () { requestAnimationFrame(function () {
      done(performance.now() - (t0 === null ? 0 : t0));
    }); });
  } else { setTimeout(check, 5); }
}
check();
"""

TRACK = """
(function () {
  if (window.__pmTracked) return; window.__pmTracked = true; window.__pmPending = 0;
  var f = window.fetch;
  window.fetch = function () {
    window.__pmPending++;
    return f.apply(this, arguments).finally(function () { window.__pmPending--; });
  };
})();
"""


def synthetic(data: MapData, total: int, seed: int = 7) -> None:
    """Add cameras up to `total`, spread over the villages' bounding boxes."""
    geo = data.geo
    rnd = random.Random(seed)
    centre_rows = [(c.code, c.name, c.level, c.parent, json.dumps(c.geometry) if c.geometry else None,
                    c.lon, c.lat) for c in geo.centres.values()]
    grid_rows = [(gid, code, kind, json.dumps(g)) for code, gs in geo.grids.items() for gid, kind, g in gs]
    cam_rows = [(cid, code, kind, lon, lat) for code, cs in geo.cameras.items() for cid, kind, lon, lat in cs]
    villages = sorted(c.code for c in geo.centres.values() if c.level == 4)
    i = 0
    while len(cam_rows) < total:
        v = villages[i % len(villages)]
        (s, w), (n, e) = geo.bounds(v)
        cam_rows.append((f"SYN-{v}-{i:05d}", v, "dome", rnd.uniform(w, e), rnd.uniform(s, n)))
        i += 1
    data.geo = build_geo(centre_rows, grid_rows, cam_rows)


def layout_bytes(data: MapData, code: str, fmt: str) -> tuple[int, int]:
    d = data.live(code)
    p = map_payload(data.geo, code, d["vm"], coverage=d["coverage"], states=d["states"],
                    recent=d["recent"], now_ms=d["now_ms"], fmt=fmt)
    raw = json.dumps(map_view(p, "zh"), cls=plotly.utils.PlotlyJSONEncoder).encode()
    return len(raw), len(gzip.compress(raw, 6))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cameras", type=int, default=0)
    args = ap.parse_args()

    settings = Settings.from_env()
    data = MapData(settings)
    if args.cameras:
        synthetic(data, args.cameras)
    topo = data.topo
    city = topo.roots[0]
    district = max(topo.children[city], key=lambda c: topo.totals[c]["grids"])
    town = max(topo.children[district], key=lambda c: len(topo.children.get(c, ())))
    village = max(topo.children[town], key=lambda c: topo.totals.get(c, {}).get("cameras", 0))
    steps = [("city", city, None), ("district", district, city), ("town", town, district),
             ("village", village, town)]

    app = make_app(settings, interval_ms=3_600_000, data=data)  # no live ticks while timing
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    print(f"centres: city {city}, district {district} ({topo.totals[district]['grids']} grids, "
          f"{len(data.geo.cameras_features(district)['features'])} cameras), town {town}, "
          f"village {village}; cameras in all: {len(data.geo.cameras_features(city)['features'])}")

    d = chromium(1920, 1080)
    d.set_script_timeout(60)
    results: dict[str, dict[str, list[float]]] = {}
    try:
        d.get(base + "/")  # warm the browser cache (JS bundles) and the server memo
        d.execute_async_script(READY, 1, IDS["regions"], None)
        for _ in range(args.runs):
            for tier, code, parent in steps:
                key = IDS["grids"] if tier == "village" else IDS["regions"]
                want = len(data.geo.grids.get(code, ())) if tier == "village" else len(topo.children[code])
                r = results.setdefault(tier, {"load": [], "drill": [], "bytes": []})
                # cold navigation to the drilled URL
                d.get(f"{base}/?centre={code}")
                r["load"].append(d.execute_async_script(READY, want, key, None))
                if parent is None:
                    continue
                # drill from the parent by a click on the region
                d.get(f"{base}/?centre={parent}")
                d.execute_script(TRACK)
                d.execute_async_script(READY, len(topo.children[parent]), IDS["regions"], None)
                d.execute_script("performance.clearResourceTimings()")
                t0 = d.execute_script(
                    "var l = window.pinganMap.registry[arguments[0]][arguments[1]];"
                    "var t = performance.now(); l.fire('click', {latlng: l.getBounds().getCenter()}, true);"
                    "return t;", IDS["regions"], code)
                r["drill"].append(d.execute_async_script(READY, want, key, t0))
                sizes = d.execute_script(
                    "return performance.getEntriesByType('resource')"
                    ".filter(e => e.name.indexOf('_dash-update-component') >= 0)"
                    ".map(e => [e.transferSize, e.encodedBodySize, e.decodedBodySize]);")
                r["bytes"].append(max((s[2] for s in sizes), default=0))
    finally:
        d.quit()
        server.shutdown()

    print(f"\n{'tier':9} {'load ms (median/max)':>22} {'drill ms (median/max)':>22} "
          f"{'drill response':>15} {'layout geobuf (gz)':>20} {'layout geojson (gz)':>21}")
    for tier, code, _parent in steps:
        r = results[tier]
        gb, gbz = layout_bytes(data, code, "geobuf")
        gj, gjz = layout_bytes(data, code, "geojson")
        load = f"{statistics.median(r['load']):.0f} / {max(r['load']):.0f}"
        drill = (f"{statistics.median(r['drill']):.0f} / {max(r['drill']):.0f}" if r["drill"] else "—")
        resp = f"{statistics.median(r['bytes']) / 1024:.0f} KB" if r["bytes"] else "—"
        print(f"{tier:9} {load:>22} {drill:>22} {resp:>15} "
              f"{gb / 1024:>9.0f} KB ({gbz / 1024:.0f} KB) {gj / 1024:>9.0f} KB ({gjz / 1024:.0f} KB)")
    dist = results["district"]
    ok_t = statistics.median(dist["drill"]) <= 1000
    ok_b = statistics.median(dist["bytes"]) <= 300 * 1024
    print(f"\ndistrict drill: {'OK' if ok_t else 'SLOW'} (target ≤ 1000 ms), "
          f"{'OK' if ok_b else 'BIG'} (target ≤ 300 KB per step)")


if __name__ == "__main__":
    main()
