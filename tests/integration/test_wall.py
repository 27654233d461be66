"""The wall in a real browser against the production stack: gunicorn (gevent workers), the
aggregator as its own process, a Redis server of this module's own (so it can be stopped)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time

import pytest
from selenium.webdriver.common.by import By

from dashboard.devkit.browser import chromium, resize
from dashboard.devkit.stack import Stack, copy_registry
from datasources.keys import Keys
from tests.helpers import wait_until as wait_for

STALE_AFTER_S = 3
XSS_NAME = '<img src=x onerror="window.__xss=1">王益区<script>window.__xss=2</script>'


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("wallstack")
    db_url, db_path = copy_registry(demo_db, d)
    with sqlite3.connect(db_path) as con:  # a hostile name in the registry
        con.execute("UPDATE centres SET name = ? WHERE code = '610202'", (XSS_NAME,))
    s = Stack(d, db_url, prefix="wall", stale_after_s=STALE_AFTER_S)
    s.start_redis()
    s.run("simulate", "--events", "3000")  # some history so the panels have figures
    s.start_aggregator()
    s.start_web()
    yield s
    s.close()




def is_fresh(browser) -> bool:
    return browser.execute_script(
        "var r = document.querySelector('.live-screen');"
        "return !!r && r.getAttribute('data-stale') === '0';")


def open_wall(browser, url: str) -> None:
    browser.get(url)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".live-screen .wall-canvas"), 20)
    wait_for(lambda: browser.execute_script(
        "return document.querySelectorAll('.live-screen .js-plotly-plot .main-svg').length > 0"), 20)


def figure_value(browser, path: str) -> str | None:
    return browser.execute_script(
        "var e = document.querySelector('[data-figure=\"' + arguments[0] + '\"]');"
        "return e ? e.getAttribute('data-value') : null;", path)


def is_stale(browser) -> bool:
    return browser.execute_script(
        "var r = document.querySelector('.live-screen');"
        "return !!r && r.getAttribute('data-stale') === '1';")


OVERFLOW_JS = """
var de = document.documentElement, out = [];
if (de.scrollHeight > innerHeight + 1 || de.scrollWidth > innerWidth + 1)
  out.push('document ' + de.scrollWidth + 'x' + de.scrollHeight);
document.querySelectorAll('.panel').forEach(function (p) {
  var r = p.getBoundingClientRect();
  if (p.scrollHeight > p.clientHeight + 1 || p.scrollWidth > p.clientWidth + 1)
    out.push('overflow ' + (p.dataset.panel || p.className));
  if (r.left < -1 || r.top < -1 || r.right > innerWidth + 1 || r.bottom > innerHeight + 1)
    out.push('outside ' + (p.dataset.panel || p.className));
  if (r.width < 50 || r.height < 50) out.push('tiny ' + (p.dataset.panel || p.className));
});
return out;
"""


@pytest.mark.parametrize("size", ["1920x1080", "3840x1080", "7680x2160"])
def test_wall001_fills_every_canvas_without_overflow(stack, browser, size):
    w, h = (int(x) for x in size.split("x"))
    resize(browser, w, h)
    try:
        for lang in ("zh", "en"):
            open_wall(browser, f"{stack.url}/?lang={lang}")
            time.sleep(0.5)
            assert browser.execute_script(OVERFLOW_JS) == [], (size, lang)
            canvas = browser.find_element(By.CSS_SELECTOR, ".wall-canvas")
            assert canvas.get_attribute("data-lang") == lang
            assert browser.execute_script(
                "return document.querySelectorAll('.panel').length") >= 5
            # every headline figure carries its plain value
            assert figure_value(browser, "events.reported") not in (None, "")
            assert figure_value(browser, "cameras.online") not in (None, "")
    finally:
        resize(browser, 1920, 1080)


def _event(centre: str, eid: str) -> dict:
    now = int(time.time() * 1000)
    return {"v": "1", "ts": str(now), "src": "test", "eid": eid, "status": "reported",
            "centre": centre, "category": "fire", "channel": "video", "urgency": "urgent",
            "due": str(now + 3_600_000)}


@pytest.mark.parametrize("push", ["sse", "poll"])
def test_wall002_stream_entry_changes_the_figure(stack, browser, topo, push):
    open_wall(browser, f"{stack.url}/?push={push}")
    before = int(figure_value(browser, "events.reported"))
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
    r = stack.redis()
    r.xadd(Keys("wall").stream(topo.centres[village].shard, "events"),
           _event(village, f"wall-{push}-{time.time_ns()}"))
    wait_for(lambda: int(figure_value(browser, "events.reported")) >= before + 1, 10)
    # and the child centre's row moved with it
    district = topo.ancestors(village)[1]
    assert browser.execute_script(
        "return document.querySelector('[data-child=\"' + arguments[0] + '\"][data-field=\"reported\"]') !== null",
        district)


def test_wall003_stale_when_the_aggregator_stops_and_recovers(stack, browser):
    open_wall(browser, stack.url + "/")
    wait_for(lambda: is_fresh(browser), 10)
    value = figure_value(browser, "events.reported")
    stack.stop("aggregate", signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: is_stale(browser), STALE_AFTER_S + 6)
    assert time.monotonic() - t0 <= STALE_AFTER_S + 6
    assert figure_value(browser, "events.reported") == value  # last values kept
    age = browser.find_element(By.CSS_SELECTOR, ".panel .age").text
    assert "数据延迟" in age
    assert "stale" in browser.find_element(By.CSS_SELECTOR, ".panel").get_attribute("class")
    stack.start_aggregator()
    wait_for(lambda: is_fresh(browser), 15)


def test_wall004_stale_when_redis_stops_page_stays_alive(stack, browser):
    open_wall(browser, stack.url + "/")
    wait_for(lambda: is_fresh(browser), 10)
    value = figure_value(browser, "events.reported")
    stack.stop_redis()
    try:
        wait_for(lambda: is_stale(browser), STALE_AFTER_S + 8)
        time.sleep(2)
        assert browser.execute_script("return document.readyState") == "complete"
        assert figure_value(browser, "events.reported") == value
        assert browser.find_elements(By.CSS_SELECTOR, ".wall-canvas")
    finally:
        stack.start_redis()
    wait_for(lambda: is_fresh(browser), 25)
    # live again: a new entry still arrives
    before = int(figure_value(browser, "events.reported"))
    village = "610202001001"
    stack.redis().xadd("wall:{610202}:events", _event(village, f"after-redis-{time.time_ns()}"))
    wait_for(lambda: int(figure_value(browser, "events.reported")) >= before + 1, 15)


@pytest.mark.parametrize("query,expected", [
    ("?centre=999999", "未找到中心代码 999999"),
    ("?centre=%3Cscript%3Ewindow.__xss%3D3%3C%2Fscript%3E", "未找到中心代码"),
    ("?lang=xx", "参数错误: lang"),
    ("?centre=999999&lang=en", "Unknown centre code 999999"),
    ("?tour=abc", "参数错误: tour"),
])
def test_wall005_bad_url_renders_a_message(stack, browser, query, expected):
    browser.get(stack.url + "/" + query)
    box = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".message-title"), 15)
    assert expected in box[0].text
    assert browser.execute_script("return window.__xss === undefined")


def test_wall006_hostile_names_stay_text(stack, browser):
    open_wall(browser, stack.url + "/")
    time.sleep(1)
    assert browser.execute_script("return window.__xss === undefined")
    assert "<script>" in browser.find_element(By.CSS_SELECTOR, ".wall-canvas").text
    assert not browser.find_elements(By.CSS_SELECTOR, ".wall-canvas img[src='x']")


def test_wall007_tour_rotates_through_the_children(stack, browser, topo):
    root = topo.roots[0]
    first = topo.children[root][0]
    open_wall(browser, f"{stack.url}/?tour=5")
    wait_for(lambda: f"centre={first}" in browser.current_url, 12)
    wait_for(lambda: browser.execute_script(
        "var c = document.querySelector('.wall-canvas');"
        "return c && c.getAttribute('data-centre');") == first, 10)


def test_wall008_tree_scoped_views(stack, browser, topo):
    town = topo.children["610204"][0]
    open_wall(browser, f"{stack.url}/wall?centre={town}")
    canvas = browser.find_element(By.CSS_SELECTOR, ".wall-canvas")
    assert canvas.get_attribute("data-centre") == town
    rows = browser.find_elements(By.CSS_SELECTOR, "[data-rank-row]")
    assert {r.get_attribute("data-rank-row") for r in rows} == set(topo.children[town])


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def test_wall009_memory_stays_flat_while_live(stack):
    """A short soak: live updates at a high rate must not grow the page's heap or the
    server's memory (bench/soak.py runs the same for hours)."""
    d = chromium(1920, 1080, ("--js-flags=--expose-gc", "--enable-precise-memory-info"))
    load = stack.pingan("simulate", "--rate", "300", "--no-cameras")
    stack.start("soakload", load)
    try:
        open_wall(d, stack.url + "/")
        workers = _worker_pids(stack.procs["web"].pid)

        def measure() -> tuple[float, int]:
            """Retained heap with the load paused: the least of three readings after a full GC,
            a second apart, once the last update has been drawn. Readings taken under load land
            while a message or a chart redraw is in flight (seen on a loaded CI machine: +4 MB,
            and once all three at +11 MB); what a leak retains stays after the load stops."""
            stack.stop("soakload")
            time.sleep(4)  # the last pushes arrive and are drawn
            heaps = []
            for _ in range(3):
                d.execute_script("window.gc && window.gc();")
                heaps.append(d.execute_script("return performance.memory.usedJSHeapSize") / 1e6)
                time.sleep(1)
            rss = sum(_rss_kb(p) for p in workers)
            stack.start("soakload", load)
            return min(heaps), rss

        time.sleep(15)  # warm: caches, charts, compiled code, first updates
        heap0, rss0 = measure()
        before = figure_value(d, "events.reported")
        time.sleep(30)
        heap1, rss1 = measure()
        assert figure_value(d, "events.reported") != before  # the page was live in between
        assert heap1 - heap0 < 3.0, (heap0, heap1)
        assert rss1 - rss0 < 20_000, (rss0, rss1)
    finally:
        stack.stop("soakload")
        d.quit()


REGIONS, GRIDS, CAMERAS = "wall-map-regions", "wall-map-grids", "wall-map-cameras"


def layer_keys(browser, cid: str) -> list[str]:
    return browser.execute_script(
        "var r = window.pinganMap && window.pinganMap.registry[arguments[0]];"
        "return r ? Object.keys(r) : [];", cid)


def canvas_centre(browser) -> str | None:
    return browser.execute_script(
        "var c = document.querySelector('.wall-canvas'); return c && c.getAttribute('data-centre');")


def test_wall010_map_click_drills_and_breadcrumb_goes_back(stack, browser, topo):
    root, district = topo.roots[0], "610204"
    open_wall(browser, stack.url + "/")
    wait_for(lambda: set(layer_keys(browser, REGIONS)) >= set(topo.children[root]), 15)
    expected = browser.execute_script(
        "return document.querySelector('[data-child=\"610204\"][data-field=\"reported\"]')"
        ".getAttribute('data-value')")
    # a tap on the district's polygon (through Leaflet, at a point inside it)
    browser.execute_script("""
        var layer = window.pinganMap.registry[arguments[0]][arguments[1]];
        layer.fire('click', {latlng: layer.getCenter(), originalEvent: new MouseEvent('click')}, true);
    """, REGIONS, district)
    wait_for(lambda: f"centre={district}" in browser.current_url, 10)
    wait_for(lambda: canvas_centre(browser) == district, 10)
    wait_for(lambda: set(layer_keys(browser, REGIONS)) == set(topo.children[district]), 15)
    rows = {r.get_attribute("data-rank-row")
            for r in browser.find_elements(By.CSS_SELECTOR, "[data-rank-row]")}
    assert rows == set(topo.children[district])
    assert int(figure_value(browser, "events.reported")) >= int(expected)
    # the breadcrumb leads back up
    browser.find_elements(By.CSS_SELECTOR, ".breadcrumb a.crumb")[0].click()
    wait_for(lambda: canvas_centre(browser) == root, 15)


def test_wall011_village_grids_and_a_camera_going_offline(stack, browser, topo):
    village = next(c for c in sorted(topo.centres) if topo.centres[c].level == 4
                   and any(centre == c for centre, _k in topo.camera.values()))
    cams = sorted(cid for cid, (centre, _k) in topo.camera.items() if centre == village)
    grids = sorted(g for g, c in topo.grid_centre.items() if c == village)
    open_wall(browser, f"{stack.url}/?centre={village}")
    wait_for(lambda: canvas_centre(browser) == village, 15)
    wait_for(lambda: set(layer_keys(browser, GRIDS)) == set(grids), 20)
    wait_for(lambda: set(layer_keys(browser, CAMERAS)) == set(cams), 15)
    cam = cams[0]
    colour = ("var l = window.pinganMap.registry[arguments[0]][arguments[1]];"
              "return l && l.options.fillColor;")
    r = stack.redis()
    stream = Keys("wall").stream(topo.centres[village].shard, "cameras")
    now = int(time.time() * 1000)
    r.xadd(stream, {"v": "1", "ts": str(now), "src": "test", "cam": cam, "state": "online"})
    wait_for(lambda: browser.execute_script(colour, CAMERAS, cam) == "#29d3a4", 15)
    r.xadd(stream, {"v": "1", "ts": str(now + 1), "src": "test", "cam": cam, "state": "offline"})
    wait_for(lambda: browser.execute_script(colour, CAMERAS, cam) == "#ffb020", 15)
