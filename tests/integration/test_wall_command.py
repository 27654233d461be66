"""The wall as a command post (issue 10) in headless Chromium against the real stack (gunicorn,
the aggregator as its own process, Redis), signed in as a leader whose scope is one district.

- an urgent `reported` entry raises an element with data-alert on the wall's strip (the time
  from the XADD to the element is printed; asserted with a margin for this noisy machine),
  marks its panel and pulses its region; acknowledging it takes it off the strip;
- a wall of the group `main` (?screen=main) follows the console's directive: it drills in
  place to its centre and spotlights the case (its card from /api/case); a directive outside
  the viewer's scope is ignored; a bad group name renders a message;
- the overdue figure opens the list of the cases behind it, with a planted overdue case;
- HTML in a case's summary stays text in the list and on the card: it never runs.
"""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By

from dashboard.devkit.browser import sign_in
from dashboard.devkit.stack import Stack, copy_registry
from datasources import alerts as alertdata
from datasources.keys import Keys
from datasources.topology import in_subtree
from datasources.wallcontrol import get_directive, set_directive
from tests.helpers import wait_until

pytestmark = pytest.mark.slow
PREFIX = "wcmd"
SCOPE, OTHER = "610204", "610202"
USER, PASSWORD = "wcmd", "wcmd-wall-pw-1"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>平安'
MARGIN_S = 5.0  # the 1 s, with room for a loaded 2-core machine (printed figures: note)

# every data-alert that appears, with the browser's clock (ms) at that moment
WATCH = """
window.__alertAt = window.__alertAt || {};
if (!window.__alertWatch) {
  window.__alertWatch = new MutationObserver(function () {
    document.querySelectorAll('.alert-strip [data-alert]').forEach(function (e) {
      var k = e.getAttribute('data-eid') || e.getAttribute('data-alert');
      if (!window.__alertAt[k]) { window.__alertAt[k] = Date.now(); }
    });
  });
  window.__alertWatch.observe(document.documentElement, {childList: true, subtree: true});
}
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("wcmdstack")
    db_url, _ = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix=PREFIX)
    s.env["PINGAN_AUTH"] = "on"
    s.start_redis()
    s.add_user(USER, "leader", SCOPE, PASSWORD)
    s.run("simulate", "--events", "1500")
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


@pytest.fixture(scope="module")
def places(topo):
    town = sorted(topo.children[SCOPE])[0]
    village = next(c for c in sorted(topo.centres) if topo.centres[c].level == 4
                   and topo.is_within(c, town))
    other_town = sorted(topo.children[OTHER])[0]
    return {"town": town, "village": village, "other": other_town}


def centre(d) -> str | None:
    return d.execute_script("var c = document.querySelector('.live-screen .wall-canvas');"
                            "return c && c.getAttribute('data-centre');")


def group_centre(r, topo) -> str:
    """Where a wall of the group `main` opened at SCOPE goes: at once to the group's last
    directive (of a test before) when its viewer may see that centre, else it stays."""
    prior = get_directive(r, Keys(PREFIX), "main")
    return prior.centre if prior and in_subtree(topo, prior.centre, SCOPE) else SCOPE


def open_wall(d, url: str, code: str) -> None:
    d.get(url)
    wait_until(lambda: centre(d) == code and d.execute_script(
        "return !!window.pinganWall && window.pinganWall.state.lastMsg > 0"
        " && !!window.pinganWall.state.vm.alerts"
        " && !!document.querySelector('.alert-strip .alert-list')"), 30)
    d.execute_script(WATCH)


def entry(topo, centre_code: str, eid: str, *, urgency: str = "normal", ago_s: float = 0,
          due_in_s: float = 3600, summary: str | None = None) -> tuple[str, dict]:
    now = int(time.time() * 1000)
    ts = now - int(ago_s * 1000)
    fields = {"v": "1", "ts": str(ts), "src": "test", "eid": eid, "status": "reported",
              "centre": centre_code, "category": "fire", "channel": "hotline_12345",
              "urgency": urgency, "due": str(ts + int(due_in_s * 1000))}
    if summary is not None:
        fields["summary"] = summary
    return Keys(PREFIX).stream(topo.centres[centre_code].shard, "events"), fields


def strip_ids(d) -> list[dict]:
    return d.execute_script(
        "return Array.from(document.querySelectorAll('.alert-strip [data-alert]')).map("
        "function (e) { return {id: e.getAttribute('data-alert'), eid: e.getAttribute('data-eid'),"
        " region: e.getAttribute('data-region'), hidden: e.hidden}; });")


@pytest.fixture(scope="module")
def urgent(stack, wall, topo, places):
    """An urgent case reported at the village: (eid, the browser's ms from XADD to the strip)."""
    open_wall(wall, f"{stack.url}/wall?centre={SCOPE}&sound=1", SCOPE)
    chimes = wall.execute_script("return window.pinganWall.command.chimes")
    eid = f"wcmd-urgent-{time.time_ns()}"
    stream, fields = entry(topo, places["village"], eid, urgency="urgent")
    sent = int(time.time() * 1000)
    stack.redis().xadd(stream, fields)
    seen = wait_until(lambda: wall.execute_script("return window.__alertAt[arguments[0]]", eid),
                      30, every=0.05)
    return eid, seen - sent, chimes


def test_wcmd001_an_urgent_entry_raises_an_alert_on_the_wall(wall, urgent, places):
    eid, ms, chimes = urgent
    print(f"\nalert on the wall {ms} ms after the XADD (issue 10: within 1 s)")
    assert ms <= MARGIN_S * 1000
    row = next(a for a in strip_ids(wall) if a["eid"] == eid)
    assert row["region"] == places["town"]  # the district's map shows its towns
    assert not row["hidden"]  # newest first: it is on the line
    assert wall.execute_script(
        "return document.querySelector('.panel[data-panel=\"events\"]').classList.contains('alerted')")
    wait_until(lambda: wall.execute_script(
        "return !!document.querySelector('.pm-pulse.pm-alert-critical')"), 10)
    # ?sound=1: a new alert chimes (WebAudio), the ones there at load did not
    assert chimes == 0
    assert wall.execute_script("return window.pinganWall.command.chimes") >= 1
    assert "sound=1" in wall.current_url
    # the strip fits on its line: nothing scrolls, the rest is counted
    assert wall.execute_script(
        "var l = document.querySelector('.alert-strip .alert-list');"
        "return l.scrollHeight <= l.clientHeight + 1;")


def test_wcmd002_acknowledge_takes_it_off_the_strip(stack, wall, topo, urgent):
    eid = urgent[0]
    r = stack.redis()
    keys = Keys(PREFIX)
    alert = next(a for a in alertdata.list_alerts(r, topo, keys, SCOPE) if a.eid == eid)
    alertdata.request_ack(r, topo, keys, alert.id, "tester", int(time.time() * 1000))
    wait_until(lambda: all(a["id"] != alert.id for a in strip_ids(wall)), 15)


@pytest.fixture(scope="module")
def overdue(stack, topo, places):
    """A case reported at the village 5 hours ago, due 4 hours ago, with HTML in its summary."""
    eid = f"wcmd-overdue-{time.time_ns()}"
    stream, fields = entry(topo, places["village"], eid, ago_s=5 * 3600, due_in_s=3600,
                           summary=XSS)
    stack.redis().xadd(stream, fields)
    return eid


def test_wcmd003_the_overdue_figure_lists_its_cases(stack, wall, overdue, places):
    village = places["village"]
    open_wall(wall, f"{stack.url}/wall?centre={village}", village)
    wait_until(lambda: int(wall.execute_script(
        "return document.querySelector('[data-figure=\"events.overdue\"]')"
        ".getAttribute('data-value')") or 0) >= 1, 20)
    wall.execute_script("document.querySelector('[data-cases=\"overdue\"]').click();")
    row = wait_until(lambda: wall.execute_script(
        "var o = document.querySelector('.wc-overlay[data-overlay=\"cases\"]');"
        "var tr = o && o.querySelector('tr[data-eid=\"' + arguments[0] + '\"]');"
        "return tr && {summary: tr.querySelector('.wc-c-summary').textContent,"
        " over: tr.querySelector('.wc-c-over').textContent, cls: tr.className,"
        " imgs: o.querySelectorAll('img, script').length,"
        " closein: o.querySelector('.wc-closein').textContent};", overdue), 15)
    assert row["summary"] == XSS  # the text, as text
    assert row["imgs"] == 0 and "is-overdue" in row["cls"] and row["over"]
    assert "60" in row["closein"] or "59" in row["closein"]  # closes by itself
    assert wall.execute_script("return window.__xss === undefined")
    wall.execute_script("window.pinganWall.closeOverlay();")


def test_wcmd004_the_wall_follows_the_console(stack, wall, topo, places, overdue):
    r, keys = stack.redis(), Keys(PREFIX)
    wall.get(f"{stack.url}/wall?centre={SCOPE}&screen=bad!group")
    wait_until(lambda: wall.find_elements(By.CSS_SELECTOR, ".message-title"), 20)
    assert "bad!group" in wall.find_element(By.CSS_SELECTOR, ".message-title").text
    open_wall(wall, f"{stack.url}/wall?centre={SCOPE}&screen=main", group_centre(r, topo))
    # outside the viewer's scope: ignored
    set_directive(r, keys, "main", places["other"], now_ms=int(time.time() * 1000))
    time.sleep(2.0)
    assert centre(wall) == SCOPE
    # in scope: the wall drills in place and spotlights the case
    wall.execute_script("window.__screenNode = document.querySelector('.live-screen');")
    sent = time.monotonic()
    d = set_directive(r, keys, "main", places["village"], case=overdue,
                      now_ms=int(time.time() * 1000))
    wait_until(lambda: centre(wall) == places["village"], 15, every=0.05)
    moved = time.monotonic() - sent
    card = wait_until(lambda: wall.execute_script(
        "var o = document.querySelector('.wc-overlay[data-overlay=\"spot\"]');"
        "return o && o.getAttribute('data-seq') === String(arguments[0]) && {"
        " text: o.querySelector('.wc-summary') && o.querySelector('.wc-summary').textContent,"
        " case: o.getAttribute('data-spot-case'), n: o.querySelectorAll('img, script').length};",
        d.seq), 15, every=0.05)
    spotted = time.monotonic() - sent
    got = wall.execute_script("var c = window.pinganWall.command;"
                              "return [c.directiveAt, c.drilledAt];")
    print(f"\nwall followed the directive: drilled {moved:.2f} s, card {spotted:.2f} s after it"
          f" (pushed {got[0] - d.at} ms after it was set, drilled in {got[1] - got[0]} ms)")
    # the push is this feature's part; the drill's own time is the in-place drill's
    # (bench/wall_drill.py), several seconds for a first visit on a loaded 2-core machine
    assert got[0] - d.at <= MARGIN_S * 1000
    assert moved <= 3 * MARGIN_S
    assert card["case"] == overdue and card["text"] == XSS and card["n"] == 0
    assert wall.execute_script("return window.__screenNode === document.querySelector('.live-screen')")
    assert "screen=main" in wall.current_url
    # the same centre again, now an alert: acts once more (seq), and only once
    d2 = set_directive(r, keys, "main", places["village"], now_ms=int(time.time() * 1000))
    wait_until(lambda: wall.execute_script(
        "return window.pinganWall.command.seq === arguments[0]"
        " && !document.querySelector('.wc-overlay[data-overlay=\"spot\"]');", d2.seq), 10)
    assert wall.execute_script("return window.__xss === undefined")


def test_wcmd005_an_escalation_draws_an_arc_and_overdue_centres_pulse(stack, wall, topo, places,
                                                                       overdue):
    open_wall(wall, f"{stack.url}/wall?centre={SCOPE}", SCOPE)
    # the same case and due (reported 5 hours ago, due 4 hours ago), escalated now
    stream, fields = entry(topo, places["village"], overdue, ago_s=5 * 3600, due_in_s=3600)
    fields.update(status="escalated", to=places["town"], ts=str(int(time.time() * 1000)))
    stack.redis().xadd(stream, fields)
    # the arc goes from the village up to the town (the district's map shows its towns)
    wait_until(lambda: wall.execute_script("return document.querySelectorAll('.pm-arc').length"),
               30)
    # the town holding the overdue case pulses by how overdue its cases are
    assert wall.execute_script(
        "return !!document.querySelector('.pm-pulse[class*=\"pm-od-\"]')")


def test_wcmd006_supervised_today_shows_on_the_wall_once(stack, wall, topo, places, overdue):
    from datasources.cases import supervise

    open_wall(wall, f"{stack.url}/wall?centre={places['town']}", places["town"])

    def supervised() -> int:
        return int(wall.execute_script(
            "return document.querySelector('[data-figure=\"events.supervised\"]')"
            ".getAttribute('data-value')") or 0)

    before = supervised()
    supervise(stack.redis(), topo, Keys(PREFIX), overdue, SCOPE, "请加快办理", USER,
              int(time.time() * 1000))
    wait_until(lambda: supervised() == before + 1, 20)
    time.sleep(1.5)
    assert supervised() == before + 1  # counted once


def test_wcmd007_a_polling_wall_follows_the_console_too(stack, wall, topo, places):
    r, keys = stack.redis(), Keys(PREFIX)
    open_wall(wall, f"{stack.url}/wall?centre={SCOPE}&push=poll&screen=main", group_centre(r, topo))
    wait_until(lambda: wall.execute_script("return window.pinganWall.command.seq !== null"), 15)
    if centre(wall) != SCOPE:  # the group's current centre from the test before
        wall.execute_script("window.pinganDrill.go(arguments[0]);", SCOPE)
        wait_until(lambda: centre(wall) == SCOPE, 15)
    d = set_directive(r, keys, "main", places["town"], now_ms=int(time.time() * 1000))
    wait_until(lambda: centre(wall) == places["town"]
               and wall.execute_script("return window.pinganWall.command.seq") == d.seq, 20)
    assert "push=poll" in wall.current_url and "screen=main" in wall.current_url
