"""The wall's drill-down map in headless Chromium, on the real stack: the app factory's app
under gunicorn over a copy of the demo registry, the aggregator as its own process, a Redis
server of this module's own (dashboard.devkit.stack).

The map draws on a canvas (preferCanvas), so the tests read what was drawn from the canvas
renderer: its layers, and the pixel under a camera marker. The Leaflet layers are reached
through window.pinganMap.registry (assets/map.js). Every change goes in through the streams
and the aggregator, as in production.
"""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.actions.action_builder import ActionBuilder

from dashboard.devkit.stack import Stack, copy_registry
from datasources.keys import Keys
from layouts.map import CAMERA_COLORS, GRID_COLORS, map_ids
from tests.helpers import wait_until

pytestmark = pytest.mark.slow
IDS = map_ids("wall-map")
PREFIX = "map"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("mapstack")
    db_url, _path = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix=PREFIX)
    s.start_redis()
    s.start_aggregator()
    s.start_web()
    yield s
    s.close()


def wait_for(d, script: str, timeout: float = 15.0):
    """Wait until the script's value is truthy (only its truth crosses: layers are circular)."""
    return wait_value(d, f"return !!(function () {{ {script} }})()", timeout)


def wait_value(d, script: str, timeout: float = 15.0):
    """Like wait_for, returning the script's (JSON-able) value once it is truthy."""
    return wait_until(lambda: d.execute_script(f"return (function () {{ {script} }})()"), timeout)


def layer_keys(d, cid: str) -> list[str]:
    return d.execute_script(
        "var r = window.pinganMap && window.pinganMap.registry[arguments[0]];"
        "return r ? Object.keys(r) : [];", cid)


def canvas_centre(d) -> str | None:
    return d.execute_script(
        "var c = document.querySelector('.wall-canvas'); return c && c.getAttribute('data-centre');")


def open_map(d, url: str, layer: str, count: int) -> None:
    d.get(url)
    wait_for(d, f"var r = window.pinganMap && window.pinganMap.registry['{layer}'];"
                f"return r && Object.keys(r).length == {count}", 20)


# A viewport point (CSS px) where a real click lands on the region's polygon: inside it, the
# topmost interactive layer of the canvas there (what Leaflet's canvas hit test picks), and
# nothing else of the page in front of the canvas. The wall scales its canvas with a CSS
# transform, so container points are scaled to the viewport.
CLICK_POINT = """
var layer = window.pinganMap.registry[arguments[0]][arguments[1]];
var map = window.pinganMap.maps[arguments[0]];
var rd = layer._renderer, canvas = rd._container;
var box = map.getContainer().getBoundingClientRect();
var scale = box.width / map.getContainer().offsetWidth;
var b = layer.getBounds();
function topmost(lp) {
  var hit = null;
  for (var o = rd._drawFirst; o; o = o.next) {
    if (o.layer.options.interactive && o.layer._containsPoint(lp)) { hit = o.layer; }
  }
  return hit;
}
for (var i = 1; i < 16; i++) for (var j = 1; j < 16; j++) {
  var ll = L.latLng(b.getSouth() + (b.getNorth() - b.getSouth()) * i / 16,
                    b.getWest() + (b.getEast() - b.getWest()) * j / 16);
  var lp = map.latLngToLayerPoint(ll);
  var inner = [[0, 0], [4, 0], [-4, 0], [0, 4], [0, -4]].every(function (d) {
    return topmost(lp.add(L.point(d[0], d[1]))) === layer; });
  if (!inner) continue;
  var cp = map.latLngToContainerPoint(ll);
  var x = box.left + cp.x * scale, y = box.top + cp.y * scale;
  if (document.elementFromPoint(x, y) === canvas) return [Math.round(x), Math.round(y)];
}
return null;
"""

# The colour drawn at the centre of a layer's point (a camera marker), as [r, g, b].
PIXEL = """
var m = window.pinganMap.registry[arguments[0]][arguments[1]];
if (!m || !m._point || !m._renderer) return null;
var rd = m._renderer, k = window.devicePixelRatio > 1 ? 2 : 1;
var x = Math.round((m._point.x - rd._bounds.min.x) * k);
var y = Math.round((m._point.y - rd._bounds.min.y) * k);
var px = rd._ctx.getImageData(x, y, 1, 1).data;
return [px[0], px[1], px[2]];
"""


def rgb(hex_colour: str) -> list[int]:
    return [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]


def near(got, want: str, tolerance: int = 24) -> bool:
    """The drawn pixel is the colour, within what the 0.95 fill opacity lets through."""
    return got is not None and all(abs(a - b) <= tolerance for a, b in zip(got, rgb(want), strict=True))


def real_click(d, x: int, y: int) -> None:
    actions = ActionBuilder(d)
    actions.pointer_action.move_to_location(x, y).click()
    actions.perform()


def test_map001_a_click_on_a_district_drills_the_wall_to_it(stack, browser, topo):
    root = topo.roots[0]
    districts = list(topo.children[root])
    open_map(browser, f"{stack.url}/", IDS["regions"], len(districts))
    assert sorted(layer_keys(browser, IDS["regions"])) == sorted(districts)
    # each region is labelled with its name (once: a redraw replaces the labels)
    # (read in the same task as the count: a redraw in between briefly holds both sets)
    labels = wait_value(browser, "var l = document.querySelectorAll('#wall-map .pm-label-name');"
                                 f"return l.length == {len(districts)} && "
                                 "Array.from(l).map(e => e.textContent)")
    assert sorted(labels) == sorted(topo.centres[c].name for c in districts)
    target = districts[2]
    # a real mouse click; the map may still be settling (fitBounds) on a loaded machine, so
    # a click that lands while it moves is retried with a freshly computed point
    for attempt in range(3):
        point = browser.execute_script(CLICK_POINT, IDS["regions"], target)
        assert point, f"no clickable point found for {target}"
        real_click(browser, *point)
        try:
            wait_until(lambda: f"centre={target}" in browser.current_url,
                       5 if attempt < 2 else 15)
            break
        except AssertionError:
            if attempt == 2:
                raise
    # the whole wall drills: its canvas, and the map now shows the district's towns
    wait_until(lambda: canvas_centre(browser) == target, 15)
    towns = sorted(topo.children[target])
    wait_for(browser, f"var r = window.pinganMap.registry['{IDS['regions']}'];"
                      f"return r && Object.keys(r).length == {len(towns)} && r['{towns[0]}']")
    assert sorted(layer_keys(browser, IDS["regions"])) == towns
    assert layer_keys(browser, IDS["grids"]) == []  # grids are drawn at a village only


def _village(topo, geo) -> str:
    return next(c for c, info in sorted(topo.centres.items())
                if info.level == 4 and 10 <= len(geo.cameras.get(c, ())) <= 200
                and sum(1 for g in topo.grid_centre.values() if g == c) >= 3)


def test_map002_village_grids_and_cameras_drawn_and_a_camera_going_offline_recolours(
        stack, browser, topo, geo):
    village = _village(topo, geo)
    grids = sorted(g for g, c in topo.grid_centre.items() if c == village)
    cameras = sorted(cid for cid, (c, _kind) in topo.camera.items() if c == village)
    shard = topo.centres[village].shard
    r = stack.redis()
    stream = Keys(PREFIX).stream(shard, "cameras")
    now = int(time.time() * 1000)
    for cid in cameras:
        r.xadd(stream, {"v": "1", "ts": str(now), "src": "test", "cam": cid, "state": "online"})

    open_map(browser, f"{stack.url}/?centre={village}", IDS["cameras"], len(cameras))
    assert canvas_centre(browser) == village
    assert sorted(layer_keys(browser, IDS["grids"])) == grids
    assert sorted(layer_keys(browser, IDS["cameras"])) == cameras
    assert layer_keys(browser, IDS["regions"]) == []  # a village has no children
    # drawn: the canvas renderer holds a layer per grid, per camera, plus the village outline
    drawn = browser.execute_script(
        "var m = window.pinganMap.registry[arguments[0]][arguments[1]];"
        "return Object.keys(m._renderer._layers).length;", IDS["cameras"], cameras[0])
    assert drawn >= len(grids) + len(cameras) + 1

    colour = ("var m = window.pinganMap.registry[arguments[0]][arguments[1]];"
              "return m && m.options.fillColor;")
    wait_until(lambda: all(browser.execute_script(colour, IDS["cameras"], c)
                           == CAMERA_COLORS["online"] for c in cameras), 15)
    # the victim: a camera no other marker overlaps, so its pixel is its own
    points = browser.execute_script(
        "var r = window.pinganMap.registry[arguments[0]], out = {};"
        "Object.keys(r).forEach(function (k) { out[k] = [r[k]._point.x, r[k]._point.y]; });"
        "return out;", IDS["cameras"])
    victim = next(c for c in cameras[len(cameras) // 2:] + cameras
                  if all((points[c][0] - p[0]) ** 2 + (points[c][1] - p[1]) ** 2 > 20 ** 2
                         for o, p in points.items() if o != c))
    wait_until(lambda: near(browser.execute_script(PIXEL, IDS["cameras"], victim),
                            CAMERA_COLORS["online"]), 10)

    r.xadd(stream, {"v": "1", "ts": str(now + 1000), "src": "test", "cam": victim,
                    "state": "offline"})
    wait_until(lambda: browser.execute_script(colour, IDS["cameras"], victim)
               == CAMERA_COLORS["offline"], 15)
    wait_until(lambda: near(browser.execute_script(PIXEL, IDS["cameras"], victim),
                            CAMERA_COLORS["offline"]), 10)
    for c in [c for c in cameras if c != victim][:5]:
        assert browser.execute_script(colour, IDS["cameras"], c) == CAMERA_COLORS["online"]


def test_map003_village_grids_are_coloured_by_todays_patrols(stack, browser, topo, geo):
    """The real app's coverage rule: a level-4 (or childless) centre reads today's patrols
    per grid; a grid turns from none (red) to some (amber) to the daily target (green)."""
    village = _village(topo, geo)
    grids = sorted(g for g, c in topo.grid_centre.items() if c == village)
    fill = ("var m = window.pinganMap.registry[arguments[0]][arguments[1]];"
            "return m && m.options.fillColor;")
    open_map(browser, f"{stack.url}/?centre={village}", IDS["grids"], len(grids))
    patrolled, once = grids[0], grids[1]
    untouched = grids[2:]
    r = stack.redis()
    stream = Keys(PREFIX).stream(topo.centres[village].shard, "patrols")
    now = int(time.time() * 1000)
    for i, gid in enumerate([patrolled, patrolled, once]):
        r.xadd(stream, {"v": "1", "ts": str(now - 1000 * (i + 1)), "src": "test",
                        "pid": f"map003-{now}-{i}", "grid": gid, "worker": "w1"})
    wait_until(lambda: browser.execute_script(fill, IDS["grids"], patrolled) == GRID_COLORS[2], 15)
    wait_until(lambda: browser.execute_script(fill, IDS["grids"], once) == GRID_COLORS[1], 15)
    for gid in untouched:
        assert browser.execute_script(fill, IDS["grids"], gid) == GRID_COLORS[0]
    label = browser.execute_script(
        "var m = window.pinganMap.registry[arguments[0]][arguments[1]];"
        "return m.getTooltip().getContent();", IDS["grids"], patrolled)
    assert label.endswith(" 2</span>")
    # one tier up the map draws no grids and reads no patrols
    town = topo.centres[village].parent
    open_map(browser, f"{stack.url}/?centre={town}", IDS["regions"], len(topo.children[town]))
    assert layer_keys(browser, IDS["grids"]) == []
