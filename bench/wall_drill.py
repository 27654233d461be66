"""Drilling on the whole wall: tap a child region → that centre's screen interactive.

    .venv/bin/python bench/wall_drill.py [--url http://127.0.0.1:8050] [--runs 5]

Against a running wall (e.g. `pingan demo`). For city → district → town → village, in
headless Chromium at 1920x1080: the time from the tap (a Leaflet click on the child's
polygon) until the new screen is rendered with its map layers registered, and the bytes of
the route callback's response (as sent, gzip, and uncompressed). bench/map.py builds a stack of
its own and also sizes the map's layout per data format.
"""

from __future__ import annotations

import argparse
import statistics
import time

from dashboard.devkit.browser import chromium

TAP = """
var layer = window.pinganMap.registry['wall-map-regions'][arguments[0]];
window.__t0 = performance.now();
layer.fire('click', {latlng: layer.getCenter(), originalEvent: new MouseEvent('click')}, true);
"""
READY = """
var c = document.querySelector('.wall-canvas');
if (!c || c.getAttribute('data-centre') !== arguments[0]) return null;
var r = window.pinganMap && window.pinganMap.registry;
var want = arguments[1];
var layer = want === 'grids' ? 'wall-map-grids' : 'wall-map-regions';
if (!r || !r[layer] || Object.keys(r[layer]).length === 0) return null;
return performance.now() - window.__t0;
"""
BYTES = """
var e = performance.getEntriesByType('resource').filter(function (x) {
  return x.name.indexOf('_dash-update-component') >= 0; });
var last = e[e.length - 1];
return last ? [last.transferSize, last.encodedBodySize, last.decodedBodySize] : null;
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8050")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--path", default="610200,610204,610204001,610204001001",
                    help="the centres to drill through, top first")
    args = ap.parse_args()
    path = args.path.split(",")
    d = chromium(1920, 1080)
    results: dict[str, list[float]] = {c: [] for c in path[1:]}
    sizes: dict[str, list] = {}
    try:
        for _ in range(args.runs):
            d.get(f"{args.url}/?centre={path[0]}")
            deadline = time.monotonic() + 30
            while d.execute_script(READY.replace("performance.now() - window.__t0", "1"), path[0], "regions") is None:
                if time.monotonic() > deadline:
                    raise RuntimeError("the wall did not render")
                time.sleep(0.05)
            time.sleep(1)
            for i, code in enumerate(path[1:]):
                d.execute_script("performance.clearResourceTimings()")
                d.execute_script(TAP, code)
                leaf = i == len(path) - 2
                deadline = time.monotonic() + 20
                took = None
                while took is None:
                    took = d.execute_script(READY, code, "grids" if leaf else "regions")
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no screen for {code}")
                    time.sleep(0.01)
                results[code].append(took)
                sizes[code] = d.execute_script(BYTES)
                time.sleep(1)
    finally:
        d.quit()
    print(f"{'centre':<14} {'median ms':>9} {'max ms':>7} {'sent KB':>8} {'body KB':>8}")
    for code, xs in results.items():
        s = sizes.get(code) or [0, 0, 0]
        print(f"{code:<14} {statistics.median(xs):>9.0f} {max(xs):>7.0f} {s[0] / 1024:>8.0f} {s[2] / 1024:>8.0f}")
    print("targets (issue #4): a district interactive ≤ 1 s and ≤ 300 KB per drill step")


if __name__ == "__main__":
    main()
