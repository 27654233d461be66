"""The in-place drill of the wall (assets/drill.js + dashboard/screen_api.py) in headless Chromium
against the real stack, signed in as a leader whose scope is one district.

A tap on a region, a breadcrumb and the back button change the wall without Dash re-rendering
it (the same .live-screen node and the same Leaflet map before and after), and the wall then
shows exactly what a fresh load of that centre shows: every figure's data-value, the
breadcrumb, the child rows and the map's regions (or grids). A centre outside the viewer's
scope is refused by the server and the wall stays.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from dashboard.devkit.browser import sign_in
from dashboard.devkit.stack import Stack, copy_registry
from tests.helpers import wait_until
from tests.integration.test_access import Client

pytestmark = pytest.mark.slow
SCOPE, TOWN, OTHER = "610204", "610204001", "610202"
USER, PASSWORD = "lead", "lead-drill-pw-1"

SNAPSHOT = """
var c = document.querySelector('.live-screen .wall-canvas');
if (!c) return null;
var reg = window.pinganMap.registry;
function keys(id) {
  var r = reg[id] || {};
  return Object.keys(r).filter(function (k) { return r[k]._map; }).sort();
}
var figures = {};
c.querySelectorAll('[data-figure]').forEach(function (e) {
  figures[e.getAttribute('data-figure')] = e.getAttribute('data-value'); });
var rows = Array.from(c.querySelectorAll('[data-rank-row]')).map(function (row) {
  return [row.getAttribute('data-rank-row'), row.style.order,
          Array.from(row.querySelectorAll('[data-child]')).map(function (e) {
            return e.getAttribute('data-field') + '=' + e.getAttribute('data-value'); }).join()];
}).sort();
return {
  centre: c.getAttribute('data-centre'),
  title: c.querySelector('.wall-title').textContent,
  classes: c.className,
  crumbs: Array.from(c.querySelectorAll('.breadcrumb a.crumb')).map(function (a) {
    return [a.textContent, a.getAttribute('href')]; }),
  figures: figures,
  rows: rows,
  worst: Array.from(c.querySelectorAll('.worst-item .fig')).map(function (e) {
    return e.getAttribute('data-child'); }),
  charts: Array.from(c.querySelectorAll('.dash-graph')).map(function (e) { return e.id; }),
  regions: (document.querySelector('.pm-box') || {}).getAttribute ?
    document.querySelector('.pm-box').getAttribute('data-code') : null,
  region_keys: keys('wall-map-regions'),
  grid_keys: keys('wall-map-grids'),
  stream: document.querySelector('.live-screen').getAttribute('data-stream')
};
"""

MARK = """
window.__screen = document.querySelector('.live-screen');
window.__map = window.pinganMap.maps['wall-map-regions'];
"""
SAME = """
return window.__screen === document.querySelector('.live-screen') &&
       window.__map === window.pinganMap.maps['wall-map-regions'];
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("drillstack")
    db_url, _ = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix="drill")
    s.env["PINGAN_AUTH"] = "on"
    s.start_redis()
    s.add_user(USER, "leader", SCOPE, PASSWORD)
    s.run("simulate", "--events", "2000")
    s.start_aggregator()
    s.start_web()
    yield s
    s.close()


@pytest.fixture(scope="module")
def wall(stack, browser):
    """The module's browser, signed in as the district's leader."""
    sign_in(browser, f"{stack.url}/wall?centre={SCOPE}", USER, PASSWORD)
    wait_until(lambda: centre(browser) == SCOPE, 30)
    return browser


def centre(d) -> str | None:
    return d.execute_script("var c = document.querySelector('.live-screen .wall-canvas');"
                            "return c && c.getAttribute('data-centre');")


def settled(d, code: str, leaf: bool) -> dict:
    """The snapshot once the wall of `code` is complete: its map layers drawn, every chart
    drawn, the first message of its live stream applied, twice the same."""
    def ready():
        snap = d.execute_script(SNAPSHOT)
        if not snap or snap["centre"] != code or (snap["stream"] or "").find(f"centre={code}") < 0:
            return None
        if not (snap["grid_keys"] if leaf else snap["region_keys"]):
            return None
        drawn = d.execute_script(
            "var g = document.querySelectorAll('.wall-canvas .dash-graph');"
            "return Array.from(g).every(function (b) { var gd = b.querySelector('.js-plotly-plot');"
            " return gd && gd._fullLayout && gd.querySelector('.main-svg'); })"
            " && window.pinganWall.state.lastMsg > 0 && !!window.pinganWall.state.vm.code;")
        return snap if drawn else None

    seen: list = [wait_until(ready, 30)]

    def still() -> dict | None:  # the same twice in a row: nothing moving any more
        seen.append(ready())
        return seen[-1] if seen[-1] and seen[-1] == seen[-2] else None

    try:
        return wait_until(still, 20, every=0.5)
    except AssertionError:
        raise AssertionError(f"the wall of {code} kept changing: {seen[-2:]}") from None


def fresh(d, url: str, code: str, leaf: bool) -> dict:
    d.get(f"{url}/wall?centre={code}")
    return settled(d, code, leaf)


def tap(d, code: str) -> None:
    d.execute_script("""
        var layer = window.pinganMap.registry['wall-map-regions'][arguments[0]];
        layer.fire('click', {latlng: layer.getCenter(), originalEvent: new MouseEvent('click')}, true);
    """, code)


def test_drill001_a_tap_drills_in_place_to_what_a_fresh_load_shows(stack, wall, topo):
    village = sorted(topo.children[TOWN])[0]
    before = settled(wall, SCOPE, False)
    assert before["region_keys"] == sorted(topo.children[SCOPE])
    wall.execute_script(MARK)
    for code, leaf in ((TOWN, False), (village, True)):
        tap(wall, code)
        drilled = settled(wall, code, leaf)
        assert wall.execute_script(SAME), "the wall was re-rendered instead of updated in place"
        assert wall.execute_script("return window.pinganDrill.state.last.error") is None
        assert wall.current_url.endswith(f"/wall?centre={code}")
        if leaf:
            assert drilled["rows"] == [] and drilled["region_keys"] == []
            assert drilled["grid_keys"] and all(g.startswith(code) for g in drilled["grid_keys"])
        else:
            assert [r[0] for r in drilled["rows"]] == sorted(topo.children[code])
            assert drilled["region_keys"] == sorted(topo.children[code])
        assert [c[1] for c in drilled["crumbs"]] == [f"?centre={a}" for a in topo.ancestors(code)]
        # the same centre loaded afresh shows the same (figures stand still: no producers run)
        again = fresh(wall, stack.url, code, leaf)
        assert drilled == again
        wall.execute_script(MARK)


def test_drill002_out_of_scope_is_refused_and_the_wall_stays(stack, wall):
    fresh(wall, stack.url, SCOPE, False)
    wall.execute_script(MARK)
    url = wall.current_url
    assert wall.execute_script("return window.pinganDrill.go(arguments[0]);", OTHER) is None
    assert wall.execute_script("return window.pinganDrill.state.last.error") == "refused 403"
    assert centre(wall) == SCOPE and wall.current_url == url
    assert wall.execute_script(SAME)
    # and the route itself, with this viewer's session and without one
    client = Client(stack.url)
    client.cookie = next(k["value"] for k in wall.get_cookies() if k["name"] == "pingan_session")
    assert client.request(f"/screen/wall?centre={SCOPE}")[0] == 200
    for code in (OTHER, "610200", "999999", ""):
        status, _, body = client.request(f"/screen/wall?centre={code}")
        assert status == 403 and SCOPE not in body, (code, status)
    assert client.request(f"/screen/wall?centre={SCOPE}&lang=xx")[0] == 400
    assert Client(stack.url).request(f"/screen/wall?centre={SCOPE}")[0] in (302, 303, 401)


def test_drill003_back_and_breadcrumb_go_up_in_place(stack, wall, topo):
    parent = settled(wall, SCOPE, False) if centre(wall) == SCOPE else fresh(
        wall, stack.url, SCOPE, False)
    wall.execute_script(MARK)
    tap(wall, TOWN)
    settled(wall, TOWN, False)
    wall.back()
    assert settled(wall, SCOPE, False) == parent
    assert wall.current_url.endswith(f"/wall?centre={SCOPE}")
    wall.forward()
    town = settled(wall, TOWN, False)
    # the breadcrumb leads back up, in place
    wall.find_element(By.CSS_SELECTOR, f".breadcrumb a.crumb[href='?centre={SCOPE}']").click()
    assert settled(wall, SCOPE, False) == parent
    assert wall.current_url.endswith(f"/wall?centre={SCOPE}")
    assert wall.execute_script(SAME)
    wall.back()
    assert settled(wall, TOWN, False) == town
