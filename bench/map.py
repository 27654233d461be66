"""The wall's drill-down map: time until a drilled view's map is interactive, and bytes per
drill step.

    .venv/bin/python bench/map.py [--runs 5] [--cameras 12000] [--events 3000]

Builds its own real stack in a temp dir (dashboard.devkit.stack): the demo registry in SQLite,
a Redis server, `--events` simulated entries applied by the aggregator, and the app factory's
app under gunicorn, then drives Debian's headless Chromium (1920x1080) on the wall.

- "load": navigation to the drilled URL until the map's GeoJSON layers are drawn (regions
  or grids registered, cameras drawn) and the page is idle (no pending Dash request, two
  animation frames later).
- "drill": in a loaded wall, from a tap on the child's region until the child's map is drawn
  (the real drill path: the URL follows the tap, and the route callback's response carries
  the child's whole screen, its map included).
- bytes: the drill's biggest answer (the route callback's, or /screen/ when the wall drills
  in place) as decoded (and as sent: the app compresses), and the layout
  JSON `map_view` makes for the centre alone, for both data formats (geobuf, GeoJSON).
`--cameras N` adds synthetic cameras (spread over the villages) to the registry up to N, for
the 10,000+ case. bench/wall_drill.py times the drill on a wall that is already running.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import plotly
from sqlalchemy.orm import Session

from dashboard.devkit.browser import chromium
from dashboard.devkit.stack import Stack, demo_registry
from dashboard.runtime import Runtime
from dashboard.settings import Settings
from datasources.geo import load_geometry
from datasources.registry import Camera, make_engine
from layouts import viewmodel
from layouts.map import map_ids, map_payload, map_view

IDS = map_ids("wall-map")

READY = """
var done = arguments[arguments.length - 1];
var want = arguments[0], key = arguments[1], t0 = arguments[2], code = arguments[3];
function pending() { return window.__pmPending || 0; }
function check() {
  var c = document.querySelector('.wall-canvas');
  var pm = window.pinganMap;
  var reg = pm && pm.registry[key];
  var n = reg ? Object.keys(reg).length : 0;
  var cams = document.querySelectorAll('#wall-map .pm-cluster').length +
             (pm && pm.registry['wall-map-cameras'] ? Object.keys(pm.registry['wall-map-cameras']).length : 0);
  if (c && c.getAttribute('data-centre') === code && n >= want && cams > 0 && !pending()) {
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

TAP = """
var l = window.pinganMap.registry[arguments[0]][arguments[1]];
var t = performance.now();
l.fire('click', {latlng: l.getCenter(), originalEvent: new MouseEvent('click')}, true);
return t;
"""


def add_synthetic_cameras(db_url: str, total: int, seed: int = 7) -> int:
    """Add cameras to the registry up to `total`, spread over the villages' areas."""
    engine = make_engine(db_url)
    geo = load_geometry(engine)
    rnd = random.Random(seed)
    have = sum(len(cs) for cs in geo.cameras.values())
    villages = sorted(c.code for c in geo.centres.values() if c.level == 4)
    rows = []
    for i in range(max(0, total - have)):
        v = villages[i % len(villages)]
        (s, w), (n, e) = geo.bounds(v)
        rows.append(Camera(id=f"SYN-{v}-{i:05d}", centre=v, grid=None, kind="dome",
                           lon=rnd.uniform(w, e), lat=rnd.uniform(s, n)))
    with Session(engine) as session:
        session.add_all(rows)
        session.commit()
    engine.dispose()
    return have + len(rows)


def layout_bytes(rt: Runtime, code: str, fmt: str) -> tuple[int, int]:
    """The map_view layout JSON of `code` alone in `fmt`: (bytes, gzip bytes)."""
    vm = viewmodel.build(rt.read_model.snapshot(code), rt.topology, int(time.time() * 1000))
    p = map_payload(rt.geo, code, vm, now_ms=int(time.time() * 1000), fmt=fmt)
    raw = json.dumps(map_view(p, "zh"), cls=plotly.utils.PlotlyJSONEncoder).encode()
    return len(raw), len(gzip.compress(raw, 6))


def measure(stack: Stack, steps: list, want_of, runs: int) -> dict[str, dict[str, list[float]]]:
    d = chromium(1920, 1080)
    d.set_script_timeout(60)
    results: dict[str, dict[str, list[float]]] = {}
    root = steps[0][1]
    try:
        d.get(stack.url + "/")  # warm the browser cache (JS bundles) and the server's memo
        d.execute_async_script(READY, 1, IDS["regions"], None, root)
        for _ in range(runs):
            for tier, code, parent in steps:
                key, want = want_of(tier, code)
                r = results.setdefault(tier, {"load": [], "drill": [], "bytes": [], "sent": []})
                d.get(f"{stack.url}/?centre={code}")  # cold navigation to the drilled URL
                r["load"].append(d.execute_async_script(READY, want, key, None, code))
                if parent is None:
                    continue
                d.get(f"{stack.url}/?centre={parent}")  # then the drill from the parent
                d.execute_script(TRACK)
                _k, parent_want = want_of("parent", parent)
                d.execute_async_script(READY, parent_want, IDS["regions"], None, parent)
                d.execute_script("performance.clearResourceTimings()")
                t0 = d.execute_script(TAP, IDS["regions"], code)
                r["drill"].append(d.execute_async_script(READY, want, key, t0, code))
                sizes = d.execute_script(
                    "return performance.getEntriesByType('resource')"
                    ".filter(e => e.name.indexOf('_dash-update-component') >= 0"
                    "          || e.name.indexOf('/screen/') >= 0)"
                    ".map(e => [e.encodedBodySize, e.decodedBodySize]);")
                biggest = max(sizes, key=lambda s: s[1], default=[0, 0])
                r["bytes"].append(biggest[1])
                r["sent"].append(biggest[0])
    finally:
        d.quit()
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cameras", type=int, default=0)
    ap.add_argument("--events", type=int, default=3000)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="pingan-map-") as tmp:
        db_url = demo_registry(Path(tmp))
        if args.cameras:
            print(f"cameras in the registry: {add_synthetic_cameras(db_url, args.cameras)}")
        stack = Stack(Path(tmp), db_url, prefix="mapbench")
        try:
            stack.start_redis()
            if args.events:
                stack.run("simulate", "--events", str(args.events))
            stack.run("aggregate", "--until-idle")
            stack.start_aggregator()
            stack.start_web(workers=1)
            rt = Runtime(Settings.from_env(
                data_dir=Path(tmp), redis_url=stack.env["REDIS_URL"], database_url=db_url,
                key_prefix=stack.prefix))
            topo, geo = rt.topology, rt.geo
            city = topo.roots[0]
            district = max(topo.children[city], key=lambda c: topo.totals[c]["grids"])
            town = max(topo.children[district], key=lambda c: len(topo.children.get(c, ())))
            village = max(topo.children[town],
                          key=lambda c: topo.totals.get(c, {}).get("cameras", 0))
            steps = [("city", city, None), ("district", district, city),
                     ("town", town, district), ("village", village, town)]

            def want_of(tier: str, code: str) -> tuple[str, int]:
                if tier == "village":
                    return IDS["grids"], len(geo.grids.get(code, ()))
                return IDS["regions"], len(topo.children[code])

            print(f"centres: city {city}, district {district} ({topo.totals[district]['grids']} "
                  f"grids, {len(geo.cameras_features(district)['features'])} cameras), town "
                  f"{town}, village {village}; cameras in all: "
                  f"{len(geo.cameras_features(city)['features'])}")
            results = measure(stack, steps, want_of, args.runs)
            sizes = {code: (layout_bytes(rt, code, "geobuf"), layout_bytes(rt, code, "geojson"))
                     for _tier, code, _p in steps}
        finally:
            stack.close()

    print(f"\n{'tier':9} {'load ms (median/max)':>22} {'drill ms (median/max)':>22} "
          f"{'drill response (sent)':>22} {'map geobuf (gz)':>18} {'map geojson (gz)':>19}")
    for tier, code, _parent in steps:
        r = results[tier]
        (gb, gbz), (gj, gjz) = sizes[code]
        load = f"{statistics.median(r['load']):.0f} / {max(r['load']):.0f}"
        drill = (f"{statistics.median(r['drill']):.0f} / {max(r['drill']):.0f}" if r["drill"] else "—")
        resp = (f"{statistics.median(r['bytes']) / 1024:.0f} KB ({statistics.median(r['sent']) / 1024:.0f} KB)"
                if r["bytes"] else "—")
        print(f"{tier:9} {load:>22} {drill:>22} {resp:>22} "
              f"{gb / 1024:>7.0f} KB ({gbz / 1024:.0f} KB) {gj / 1024:>8.0f} KB ({gjz / 1024:.0f} KB)")
    dist = results["district"]
    ok_t = statistics.median(dist["drill"]) <= 1000
    ok_b = statistics.median(dist["sent"]) <= 300 * 1024
    print(f"\ndistrict drill: {'OK' if ok_t else 'SLOW'} (target ≤ 1000 ms), "
          f"{'OK' if ok_b else 'BIG'} (target ≤ 300 KB sent per step)")


if __name__ == "__main__":
    main()
