"""Drilling the whole wall: a tap on a child region → that centre's wall, in place vs re-rendered.

    .venv/bin/python bench/wall_drill.py [--url http://127.0.0.1:8050] [--runs 5]

Against a running wall (e.g. `pingan demo`), in headless Chromium at 1920x1080, for each step
city → district → town → village: a tap (a Leaflet click on the child's polygon), then

- figures: until the new centre's canvas and figures are on screen and its map regions are
  registered and drawn (at a village: its grids), and
- charts: until every chart of the new screen has been redrawn,

both timed in the page (requestAnimationFrame after the tap). Two ways, alternated in every run
so the ratio is same-run: `in place` (assets/drill.js fetches /screen/wall and updates the page)
and `full` (drill.js switched off: Dash's drill callback moves the URL and the router re-renders
the whole screen, as before issue 9). Also the bytes of the answers (as sent and decoded) and,
in place, when the JSON had arrived and where the time went (drill.js's marks of the last drill:
built, canvas, mapProps, chartsStart, react:<chart> after each chart's Plotly.react returned,
chart:<id> when its promise resolved). `--in-place-only` skips the full re-render (profiling). Targets (issue 9 #12): figures + regions ≤ 500 ms median,
charts ≤ 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import time

from dashboard.devkit.browser import chromium

REGIONS = "wall-map-regions"
GRIDS = "wall-map-grids"

LOADED = """
var c = document.querySelector('.live-screen .wall-canvas');
if (!c || c.getAttribute('data-centre') !== arguments[0]) return false;
var r = window.pinganMap && window.pinganMap.registry[arguments[1]];
var gds = c.querySelectorAll('.dash-graph');
if (!r || !Object.keys(r).length || !gds.length || !window.pinganDrill) return false;
for (var i = 0; i < gds.length; i++) {
  var gd = gds[i].querySelector('.js-plotly-plot');
  if (!gd || !gd._fullLayout) return false;
}
return true;
"""

# Marks the charts on screen, taps the child's polygon and watches, once per frame, for the
# new screen: window.__drill = {fig: ms, charts: ms} after the tap.
TAP = """
var code = arguments[0], leaf = arguments[1];
document.querySelectorAll('.wall-canvas .js-plotly-plot').forEach(function (gd) { gd.__pre = true; });
performance.clearResourceTimings();
var out = window.__drill = {fig: null, charts: null};
function drawn(layer) { return !!layer._map; }
function figuresReady() {
  var c = document.querySelector('.live-screen .wall-canvas');
  if (!c || c.getAttribute('data-centre') !== code) return false;
  if (!c.querySelector('[data-figure="index"]')) return false;
  var reg = window.pinganMap.registry;
  if (leaf) {
    var g = reg['wall-map-grids'] || {};
    var keys = Object.keys(g);
    return keys.length > 0 && keys.every(function (k) { return drawn(g[k]); }) &&
      keys.every(function (k) { return k.indexOf(code) === 0; });
  }
  var want = Array.from(c.querySelectorAll('[data-rank-row]')).map(function (e) {
    return e.getAttribute('data-rank-row'); }).sort();
  var r = reg['wall-map-regions'] || {};
  var have = Object.keys(r).sort();
  return want.length > 0 && want.join() === have.join() &&
    have.every(function (k) { return drawn(r[k]); });
}
function chartsReady() {
  var c = document.querySelector('.live-screen .wall-canvas');
  if (!c || c.getAttribute('data-centre') !== code) return false;
  var boxes = c.querySelectorAll('.dash-graph');
  if (!boxes.length) return false;
  for (var i = 0; i < boxes.length; i++) {
    var gd = boxes[i].querySelector('.js-plotly-plot');
    if (!gd || !gd._fullLayout || !gd.querySelector('.main-svg')) return false;
    if (gd.__pre && !(gd.__drillAt > t0)) return false;
  }
  return true;
}
function check() {
  var now = performance.now() - t0;
  if (out.fig === null && figuresReady()) out.fig = now;
  if (out.charts === null && chartsReady()) out.charts = now;
  if (out.fig === null || out.charts === null) requestAnimationFrame(check);
}
var layer = window.pinganMap.registry['wall-map-regions'][code];
var t0 = performance.now();
layer.fire('click', {latlng: layer.getCenter(), originalEvent: new MouseEvent('click')}, true);
requestAnimationFrame(check);
"""

BYTES = """
var sent = 0, body = 0;
performance.getEntriesByType('resource').forEach(function (e) {
  if (e.name.indexOf('/screen/wall') >= 0 || e.name.indexOf('_dash-update-component') >= 0) {
    sent += e.transferSize; body += e.decodedBodySize; }
});
return [sent, body];
"""


def load(d, url: str, code: str, in_place: bool) -> None:
    d.get(f"{url}/?centre={code}")
    deadline = time.monotonic() + 120
    while not d.execute_script(LOADED, code, REGIONS):
        if time.monotonic() > deadline:
            raise RuntimeError("the wall did not render")
        time.sleep(0.1)
    d.execute_script("window.pinganDrill.state.disabled = arguments[0];", not in_place)
    time.sleep(1.5)  # let the first live messages land


def step(d, code: str, leaf: bool, timeout: float = 30) -> dict:
    d.execute_script(TAP, code, leaf)
    deadline = time.monotonic() + timeout
    while True:
        out = d.execute_script("return window.__drill;")
        if out["fig"] is not None and out["charts"] is not None:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"no screen for {code}: {out}")
        time.sleep(0.05)
    time.sleep(0.3)  # the answers' resource timings
    sent, body = d.execute_script(BYTES)
    last = d.execute_script("return window.pinganDrill.state.last;") or {}
    return {**out, "sent": sent, "body": body, "fetched": last.get("fetched"),
            "marks": last.get("marks") or {}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8050")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--path", default="610200,610204,610204001,610204001001",
                    help="the centres to drill through, top first")
    ap.add_argument("--in-place-only", action="store_true", help="skip the full re-render (profiling)")
    args = ap.parse_args()
    path = args.path.split(",")
    modes = ("in place",) if args.in_place_only else ("in place", "full")
    res: dict[tuple[str, str], list[dict]] = {(m, c): [] for m in modes for c in path[1:]}
    d = chromium(1920, 1080)
    d.set_script_timeout(120)  # a loaded machine can hold the page's main thread for long
    try:
        for run in range(args.runs):
            for mode in (modes if run % 2 == 0 else modes[::-1]):
                load(d, args.url, path[0], mode == "in place")
                for i, code in enumerate(path[1:]):
                    res[(mode, code)].append(step(d, code, leaf=i == len(path) - 2))
                    time.sleep(1.0)
    finally:
        d.quit()

    def med(xs: list[dict], key: str) -> float:
        vals = [x[key] for x in xs if x.get(key) is not None]
        return statistics.median(vals) if vals else float("nan")

    print(f"wall drill at 1920x1080, {args.runs} runs, medians in ms (max in brackets)")
    print(f"{'step':<14} {'mode':<9} {'figures+map':>15} {'charts':>15} {'json':>6} "
          f"{'sent KB':>8} {'body KB':>8}")
    for code in path[1:]:
        for mode in modes:
            xs = res[(mode, code)]
            fig = f"{med(xs, 'fig'):.0f} ({max(x['fig'] for x in xs):.0f})"
            ch = f"{med(xs, 'charts'):.0f} ({max(x['charts'] for x in xs):.0f})"
            js = f"{med(xs, 'fetched'):.0f}" if mode == "in place" else "-"
            print(f"{code:<14} {mode:<9} {fig:>15} {ch:>15} {js:>6} "
                  f"{med(xs, 'sent') / 1024:>8.0f} {med(xs, 'body') / 1024:>8.0f}")
    print("in place, where the time went (ms after the tap, medians; drill.js marks):")
    for code in path[1:]:
        xs = [x["marks"] for x in res[("in place", code)] if x.get("marks")]
        names = sorted({k for m in xs for k in m}, key=lambda k: statistics.median(
            [m[k] for m in xs if k in m]))
        print(f"  {code:<14} " + ", ".join(
            f"{k} {statistics.median([m[k] for m in xs if k in m]):.0f}" for k in names))
    for key, label in (("fig", "figures+map"), ("charts", "charts")):
        inplace = [x[key] for c in path[1:] for x in res[("in place", c)]]
        full = [x[key] for c in path[1:] for x in res.get(("full", c), [])]
        if not full:
            print(f"all steps, {label:<11}: in place {statistics.median(inplace):.0f} ms")
            continue
        print(f"all steps, {label:<11}: in place {statistics.median(inplace):.0f} ms, "
              f"full {statistics.median(full):.0f} ms, ratio "
              f"{statistics.median(full) / statistics.median(inplace):.1f}x")
    print("targets (issue 9 #12): figures + regions ≤ 500 ms median, charts ≤ 1000 ms")


if __name__ == "__main__":
    main()
