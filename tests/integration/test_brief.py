"""The tablet briefing view (/brief) in a real browser against the production stack: gunicorn,
the aggregator as its own process, a Redis server of this module's own with 26 hours of
history (`simulate --history-hours`). Chromium with touch emulation: taps are real touch
events (CDP Input.dispatchTouchEvent), as on an iPad."""

from __future__ import annotations

import os
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By

from dashboard.devkit.browser import chromium, resize
from dashboard.devkit.stack import Stack, copy_registry
from datasources.keys import Keys
from layouts import brief_ids as bid
from layouts import wall_ids as wid
from layouts.viewmodel import HEADLINES
from tests.helpers import wait_until as wait_for

pytestmark = pytest.mark.slow
PREFIX = "brief"
HOUR = 3_600_000
TZ = os.environ["PINGAN_TZ"]  # the zone the stack runs in (tests/conftest.py chooses it)
SIZES = ["768x1024", "1024x768", "1366x1024"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("briefstack")
    db_url, _ = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix=PREFIX)
    s.env["PINGAN_AUTH"] = "off"  # the screens' tests run open (test_access.py signs in)
    s.start_redis()
    s.run("simulate", "--history-hours", "26")  # yesterday and today, at the natural volume
    s.run("aggregate", "--until-idle")          # the buckets are complete before the tests
    s.start_aggregator()
    s.start_web()
    yield s
    s.close()


@pytest.fixture(scope="module")
def tablet():
    """Chromium as a tablet: touch events on (before any page loads: Leaflet and the slider
    look for touch support once)."""
    d = chromium(768, 1024)
    d.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    yield d
    d.quit()


# -- helpers -------------------------------------------------------------------------------


def js(d, script: str, *args):
    return d.execute_script(script, *args)


def centre_shown(d) -> str | None:
    return js(d, "var r = document.querySelector('.brief-screen'); return r && r.getAttribute('data-centre');")


def sink(d) -> str:
    return js(d, "var s = document.getElementById(arguments[0]); return s ? s.textContent : '';", bid.SINK)


def mode(d) -> str | None:
    return js(d, "var r = document.querySelector('.brief-screen'); return r && r.getAttribute('data-mode');")


def open_brief(d, url: str, centre: str | None = None) -> None:
    d.get(url)
    ready(d, centre)


def ready(d, centre: str | None = None) -> None:
    """The screen of `centre` is drawn, its replay loaded, its charts and map drawn."""
    wait_for(lambda: centre_shown(d) and (centre is None or centre_shown(d) == centre), 20)
    wait_for(lambda: sink(d).startswith("live"), 20)
    wait_for(lambda: js(d, "return document.querySelectorAll('.brief-screen .js-plotly-plot .main-svg').length > 0"), 20)
    wait_for(lambda: js(d, "var g = window.pinganMap && window.pinganMap.registry; return !!g && "
                           "Object.keys(g).some(function (k) { return Object.keys(g[k]).length; });"), 20)


def tap_at(d, x: float, y: float) -> None:
    """A finger tap at viewport coordinates (touchstart + touchend: the browser makes the click)."""
    point = {"x": round(x), "y": round(y), "radiusX": 4, "radiusY": 4, "force": 1, "id": 1}
    d.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [point]})
    d.execute_cdp_cmd("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def tap(d, css: str | None = None, element=None, fx: float = 0.5, fy: float = 0.5) -> None:
    el = element if element is not None else d.find_element(By.CSS_SELECTOR, css)
    js(d, "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});", el)
    time.sleep(0.15)
    r = js(d, "var r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];", el)
    tap_at(d, r[0] + r[2] * fx, r[1] + r[3] * fy)


def replay_value(d, name: str) -> tuple[str | None, bool]:
    """A replay counter's data-value and whether it is (again) the live figure."""
    return tuple(js(d, "var e = document.querySelector('[data-replay-figure=\"' + arguments[0] + '\"]');"
                       "return [e.getAttribute('data-value'), e.hasAttribute('data-figure')];", name))


def live_panel_value(d, path: str) -> str:
    return js(d, "return document.querySelector('.panel-events [data-kpi=\"' + arguments[0] + '\"] .fig')"
                 ".getAttribute('data-value');", path)


def buckets(r, topo, code: str, start: int, until: int) -> dict[str, int]:
    """Sums of the hourly buckets of `code` that ended by `until` (window from `start`): read
    here with plain HGETs, independently of datasources/replay.py."""
    keys = Keys(PREFIX)
    zone = ZoneInfo(TZ)
    out = {"reported": 0, "resolved": 0, "petitions": 0, "reported_resolved": 0}
    h = start
    while h + HOUR <= until:
        name = datetime.fromtimestamp(h / 1000, zone).strftime("%Y%m%d%H")
        for head in topo.shard_heads(code):
            for f in out:
                out[f] += int(r.hget(keys.hour(topo.centres[head].shard, name, head), f) or 0)
        h += HOUR
    return out


TOUCH_TARGETS_JS = """
var root = document.querySelector('.brief-screen');
var sel = 'a[href], button, [role="button"], [role="slider"], [role="combobox"], select, '
        + 'input:not([type="hidden"]), [data-rank-row], [onclick]';
var out = [];
root.querySelectorAll(sel).forEach(function (el) {
  if (el.closest('.leaflet-pane')) { return; }  // map features: see assets/brief.css
  var cs = getComputedStyle(el);
  if (cs.display === 'none' || cs.visibility === 'hidden' || cs.pointerEvents === 'none'
      || Number(cs.opacity) === 0) { return; }
  var r = el.getBoundingClientRect();
  if (!r.width && !r.height) { return; }
  if (r.width < 44 || r.height < 44) {
    out.push((el.id || el.className || el.tagName) + ' ' + Math.round(r.width) + 'x' + Math.round(r.height));
  }
});
var overlay = document.getElementById('vc-overlay');
return out;
"""


# -- tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
def test_brief001_tablet_sizes_fit_show_everything_and_touch_targets_are_44px(stack, tablet, topo, size):
    w, h = (int(x) for x in size.split("x"))
    resize(tablet, w, h)
    district = topo.children[topo.roots[0]][0]
    pages = [(f"{stack.url}/brief", topo.roots[0]),
             (f"{stack.url}/brief?centre={district}" + ("&lang=en" if w == 768 else ""), district)]
    try:
        for url, code in pages:
            open_brief(tablet, url, code)
            time.sleep(0.3)
            # no sideways scrolling; scrolling down is fine on a tablet
            width = js(tablet, "return [document.documentElement.scrollWidth, innerWidth]")
            assert width[0] <= width[1], (size, url, width)
            # the wall's figures and charts, the replay chart and the map
            present = js(tablet, "return Array.from(document.querySelectorAll('.brief-screen [data-figure]'))"
                                 ".map(function (e) { return e.getAttribute('data-figure'); });")
            assert set(HEADLINES) <= set(present), set(HEADLINES) - set(present)
            for chart in (*wid.CHARTS, bid.CHART):
                assert tablet.find_elements(By.CSS_SELECTOR, f"#{chart} .main-svg"), chart
            assert tablet.find_elements(By.CSS_SELECTOR, ".brief-screen .pm-box .leaflet-container")
            cards = {e.get_attribute("data-rank-row")
                     for e in tablet.find_elements(By.CSS_SELECTOR, ".brief-card")}
            assert cards == set(topo.children[code])
            # panels are not cut: nothing of theirs spills over the page's width
            spill = js(tablet, """return Array.from(document.querySelectorAll('.brief-screen .panel'))
                .filter(function (p) { var r = p.getBoundingClientRect();
                                       return r.left < -1 || r.right > innerWidth + 1 || r.height < 60; })
                .map(function (p) { return p.getAttribute('data-panel'); });""")
            assert spill == [], (size, spill)
            offenders = js(tablet, TOUCH_TARGETS_JS)
            assert offenders == [], (size, url, offenders)
            # the slider's handle is one of them, and big enough
            thumb = js(tablet, "var r = document.querySelector('#brief-slider [role=\"slider\"], "
                               ".brief-slider-box [role=\"slider\"]').getBoundingClientRect();"
                               "return [r.width, r.height];")
            assert min(thumb) >= 44, thumb
    finally:
        resize(tablet, 768, 1024)


def region_point(d, code: str) -> list[float] | None:
    """Viewport coordinates of a point inside the region `code` that nothing covers."""
    return js(d, """
        var layer = window.pinganMap.registry['wall-map-regions'][arguments[0]];
        var map = layer && (window.pinganMap.maps['wall-map-regions'] || layer._map);
        if (!layer || !map) { return null; }
        var box = map.getContainer().getBoundingClientRect();
        var b = layer.getBounds();
        for (var i = 2; i < 14; i++) for (var j = 2; j < 14; j++) {
          var ll = L.latLng(b.getSouth() + (b.getNorth() - b.getSouth()) * i / 16,
                            b.getWest() + (b.getEast() - b.getWest()) * j / 16);
          var lp = map.latLngToLayerPoint(ll);
          if (!layer._containsPoint || !layer._containsPoint(lp)) { continue; }
          var p = map.latLngToContainerPoint(ll);
          var x = box.left + p.x, y = box.top + p.y;
          if (x < 0 || y < 0 || x > innerWidth || y > innerHeight) { continue; }
          var el = document.elementFromPoint(x, y);
          if (el && el.tagName === 'CANVAS' && el.closest('.leaflet-overlay-pane')) { return [x, y]; }
        }
        return null;""", code)


def test_brief002_tap_drills_into_cards_and_regions_and_the_breadcrumb_goes_up(stack, tablet, topo):
    city = topo.roots[0]
    district = topo.children[city][1]
    open_brief(tablet, f"{stack.url}/brief", city)
    js(tablet, "window.__samePage = true;")
    tap(tablet, ".brief-slider-box .dash-slider-track", fx=0.3)  # replaying when it drills
    wait_for(lambda: mode(tablet) == "replay", 10)
    # a tap on a child's card opens it; the URL follows
    tap(tablet, f'.brief-card[data-rank-row="{district}"] .card-drill')
    wait_for(lambda: f"centre={district}" in tablet.current_url, 10)
    ready(tablet, district)
    assert "/brief" in tablet.current_url
    # a fresh screen, live: nothing of the replay of the city is left
    assert mode(tablet) == "live"
    assert replay_value(tablet, "reported")[1] is True
    assert not tablet.find_elements(By.CSS_SELECTOR, "[data-replay], [data-live-figure]")
    assert js(tablet, "return window.pinganBrief.markers()") == 0
    # a tap on a town on the map opens it
    towns = topo.children[district]
    wait_for(lambda: set(js(tablet, "return Object.keys(window.pinganMap.registry['wall-map-regions'] || {})"))
             >= set(towns), 15)
    map_el = tablet.find_element(By.CSS_SELECTOR, ".brief-screen .pm-box")
    js(tablet, "arguments[0].scrollIntoView({block: 'center'});", map_el)
    time.sleep(0.8)  # the map settles (fitBounds)
    target, point = next(((t, p) for t in towns if (p := region_point(tablet, t))), (None, None))
    assert point, "no tappable point on any town"
    tap_at(tablet, *point)
    wait_for(lambda: f"centre={target}" in tablet.current_url, 10)
    ready(tablet, target)
    # the breadcrumb leads back up, without reloading the page
    tap(tablet, ".brief-screen .breadcrumb a.crumb")
    ready(tablet, city)
    assert f"centre={city}" in tablet.current_url
    assert js(tablet, "return window.__samePage === true")


def test_brief003_video_call_by_tap(stack, tablet, topo):
    city = topo.roots[0]
    child = topo.children[city][0]
    open_brief(tablet, f"{stack.url}/brief", city)
    tap(tablet, f'.brief-card[data-rank-row="{child}"] .vc-btn')
    # the app's own call (docs/video-calls.md): its stage, a tile of the callee, a touch-sized end
    wait_for(lambda: tablet.find_elements(By.CSS_SELECTOR, f'#vc-live .vc-tile[data-vc-tile="{child}"]'), 10)
    end = js(tablet, "var r = document.querySelector('#vc-live [data-vc-act=\"end\"]').getBoundingClientRect(); return [r.width, r.height];")
    assert min(end) >= 44, end
    tap(tablet, '#vc-live [data-vc-act="end"]')
    wait_for(lambda: not tablet.find_elements(By.ID, "vc-live"), 10)


def test_brief004_replay_counters_markers_play_and_back_to_live(stack, tablet, topo):
    resize(tablet, 1024, 768)
    try:
        _replay(stack, tablet, topo)
    finally:
        resize(tablet, 768, 1024)


def _replay(stack, d, topo):
    city = topo.roots[0]
    r = stack.redis()
    open_brief(d, f"{stack.url}/brief", city)
    assert mode(d) == "live"
    # a tap on the slider at ~40 %: an earlier hour of the window
    tap(d, ".brief-slider-box .dash-slider-track", fx=0.4)
    wait_for(lambda: mode(d) == "replay", 10)
    wait_for(lambda: js(d, "return document.querySelector('.brief-screen').getAttribute('data-replay-t')"), 10)
    time.sleep(0.3)
    start = int(js(d, "return document.querySelector('.brief-screen').getAttribute('data-replay-start')"))
    t = int(js(d, "return document.querySelector('.brief-screen').getAttribute('data-replay-t')"))
    assert start + 6 * HOUR < t < start + 14 * HOUR, (start, t)
    expected = buckets(r, topo, city, start, t)
    assert expected["reported"] > 0
    assert replay_value(d, "reported") == (str(expected["reported"]), False)
    assert replay_value(d, "resolved") == (str(expected["resolved"]), False)
    assert replay_value(d, "petitions") == (str(expected["petitions"]), False)
    # 办结率: of the cases reported in the replayed hours, the share resolved (metrics.md)
    rate = round(expected["reported_resolved"] / expected["reported"], 4)
    assert abs(float(replay_value(d, "rate")[0]) - rate) < 1e-9 and rate <= 1
    badge = d.find_element(By.CSS_SELECTOR, ".brief-screen .badge-replay")
    assert badge.is_displayed() and "回放" in badge.text
    label = d.find_element(By.ID, bid.CLOCK).text
    assert label == datetime.fromtimestamp(t / 1000, ZoneInfo(TZ)).strftime("%H:%M")
    assert d.find_element(By.ID, bid.LIVE).is_displayed()

    # play at 4x (40 minutes a second): the time and the counters move on by themselves,
    # markers come and go; hours are left to play when it is paused
    tap(d, f"#{bid.SPEED.format(4)}")
    wait_for(lambda: js(d, "return document.querySelector('.brief-screen').getAttribute('data-speed')") == "4", 5)
    tap(d, f"#{bid.PLAY}")
    seen_markers = 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen_markers = max(seen_markers, js(d, "return window.pinganBrief.markers()"))
        now_t = int(js(d, "return document.querySelector('.brief-screen').getAttribute('data-replay-t')"))
        if now_t >= t + HOUR and seen_markers:
            break
        time.sleep(0.1)
    assert now_t >= t + HOUR, (t, now_t)
    assert seen_markers > 0
    assert d.find_element(By.ID, bid.CLOCK).text != label
    tap(d, f"#{bid.PLAY}")  # pause
    wait_for(lambda: js(d, "return document.querySelector('.brief-screen').getAttribute('data-playing')") == "0", 10)
    time.sleep(0.4)
    paused_t = int(js(d, "return document.querySelector('.brief-screen').getAttribute('data-replay-t')"))
    later = buckets(r, topo, city, start, paused_t)
    assert int(replay_value(d, "reported")[0]) == later["reported"] >= expected["reported"]

    # live updates go on underneath but leave the replayed counters alone
    frozen = replay_value(d, "reported")
    before = int(live_panel_value(d, "events.reported"))
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
    now = int(time.time() * 1000)
    r.xadd(Keys(PREFIX).stream(topo.centres[village].shard, "events"),
           {"v": "1", "ts": str(now), "src": "test", "eid": f"brief-{time.time_ns()}",
            "status": "reported", "centre": village, "category": "fire", "channel": "video",
            "urgency": "urgent", "due": str(now + HOUR)})
    wait_for(lambda: int(live_panel_value(d, "events.reported")) >= before + 1, 15)
    assert replay_value(d, "reported") == frozen
    assert js(d, "return document.querySelector('.brief-screen').getAttribute('data-replay')") == "1"

    # back to live: the live figures again, kept current by the live push
    tap(d, f"#{bid.LIVE}")
    wait_for(lambda: mode(d) == "live", 10)
    live_now = live_panel_value(d, "events.reported")
    assert replay_value(d, "reported") == (live_now, True)
    assert int(live_now) >= before + 1
    assert js(d, "return document.querySelector('.brief-screen').hasAttribute('data-replay')") is False
    assert js(d, "return window.pinganBrief.markers()") == 0
    assert not d.find_element(By.ID, bid.LIVE).is_displayed()


def test_brief005_a_bad_url_is_a_message_and_gets_no_replay(stack, tablet):
    tablet.get(f"{stack.url}/brief?centre=999999")
    box = wait_for(lambda: tablet.find_elements(By.CSS_SELECTOR, ".message-title"), 15)
    assert "999999" in box[0].text
    assert not tablet.find_elements(By.CSS_SELECTOR, ".brief-screen")
