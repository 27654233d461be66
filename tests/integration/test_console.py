"""The duty console (/console) and the tablet's command panel against the production stack:
gunicorn with sign-in on, the aggregator as its own process, a Redis server of this module's
own, Chromium. A case is planted (overdue, urgent, with a script payload as its summary) in a
village of district 610202; users: a city duty officer, a leader of 610202 and a duty officer
of 610203 (who must see none of it)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys as Key

from dashboard import command
from dashboard.access import Viewer
from dashboard.devkit.browser import chromium, resize
from dashboard.devkit.stack import Stack, copy_registry
from datasources import alerts
from datasources.cases import list_cases
from datasources.contract import STATUS_FILTERS
from datasources.keys import Keys
from datasources.wallcontrol import get_directive
from layouts import console_ids as cid
from tests.helpers import wait_until as wait_for
from tests.integration.test_access import Client as AccessClient

pytestmark = pytest.mark.slow
PREFIX = "cons"
CITY, DISTRICT, OTHER = "610200", "610202", "610203"
USERS = {"duty1": ("duty", CITY, "duty1-city-pw!"), "alice": ("leader", DISTRICT, "alice-leader-pw"),
         "bob": ("duty", OTHER, "bob-other-pw-1")}
HOUR = 3_600_000
TZ = os.environ["PINGAN_TZ"]
PAYLOAD = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
NOTE = 'please <script>window.__pwned=3</script>\nnow'


# -- the stack -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cstack(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("consolestack")
    db_url, _ = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix=PREFIX)
    s.env["PINGAN_AUTH"] = "on"
    s.env["PINGAN_COOKIE_SECURE"] = "0"  # Chromium keeps the cookie over http://127.0.0.1
    s.start_redis()
    for name, (role, scope, pw) in USERS.items():
        s.add_user(name, role, scope, pw)
    s.run("simulate", "--events", "800")
    s.start_aggregator()
    s.start_web()
    yield s
    s.close()


def village_of(topo, district: str) -> str:
    return sorted(c for c, i in topo.centres.items() if i.level == 4 and topo.is_within(c, district))[0]


def xadd(stack, topo, fields: dict) -> None:
    stack.redis().xadd(Keys(PREFIX).stream(topo.centres[fields["centre"]].shard, "events"),
                       {k: str(v) for k, v in fields.items()})


@pytest.fixture(scope="module")
def planted(cstack, topo):
    """An urgent case of a village of DISTRICT, overdue by two hours, handled; and a case of
    the district centre itself (nobody of the district may 督办 it)."""
    now = int(time.time() * 1000)
    village = village_of(topo, DISTRICT)
    eid = f"CON-{now}"
    base = {"v": 1, "src": "test", "eid": eid, "centre": village, "category": "fire"}
    xadd(cstack, topo, {**base, "ts": now - 3 * HOUR, "status": "reported", "channel": "video",
                        "urgency": "urgent", "due": now - 2 * HOUR, "summary": PAYLOAD})
    xadd(cstack, topo, {**base, "ts": now - 3 * HOUR + 600_000, "status": "dispatched"})
    xadd(cstack, topo, {**base, "ts": now - 90 * 60_000, "status": "handling"})
    top = f"CON-D-{now}"
    xadd(cstack, topo, {"v": 1, "src": "test", "eid": top, "centre": DISTRICT, "category": "other",
                        "ts": now - HOUR, "status": "reported", "channel": "public",
                        "urgency": "normal", "due": now + HOUR})
    duty = signed_in(cstack, "duty1")
    wait_for(lambda: duty.get(f"/api/case/{eid}")[0] == 200
             and len(duty.get(f"/api/case/{eid}")[1]["steps"]) == 3, 30)
    wait_for(lambda: duty.get(f"/api/case/{top}")[0] == 200, 30)
    return {"eid": eid, "village": village, "top": top,
            "alert": alerts.alert_id("urgent_case", village, eid)}


# -- the sign-in client of test_access, with JSON and callback posts ---------------------------
class Client(AccessClient):
    def get(self, path: str) -> tuple[int, dict]:
        status, headers, body = self.request(path)
        assert headers.get_content_type() == "application/json", (path, status, body[:200])
        return status, json.loads(body)

    def post(self, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
        status, h, text = self.request(path, json.dumps(body).encode(),
                                       {"Content-Type": "application/json", **(headers or {})})
        assert h.get_content_type() == "application/json", (path, status, text[:200])
        return status, json.loads(text)

    def callback(self, output: str, inputs: list, state: list, changed: str,
                 wildcard: list | None = None):
        """A direct callback post; `wildcard` is what a wildcard output matches."""
        outputs = []
        for p in output.strip(".").split("..."):
            ident, prop = p.rsplit(".", 1)
            prop = prop.split("@")[0]
            outputs.append((wildcard or []) if '["ALL"]' in ident else {"id": ident, "property": prop})
        if not output.startswith(".."):
            outputs = outputs[0]  # one output: not a list
        body = {"output": output, "outputs": outputs, "inputs": inputs, "state": state,
                "changedPropIds": [changed]}
        return self.request("/_dash-update-component", json.dumps(body).encode(),
                            {"Content-Type": "application/json"})


def signed_in(stack, name: str) -> Client:
    c = Client(stack.url)
    status, _, _ = c.login(name, USERS[name][2])
    assert status == 303, status
    return c


def browser_signed_in(stack, name: str, path: str, size=(1920, 1080)):
    d = chromium(*size)
    d.get(f"{stack.url}/login?next={quote(path)}")
    d.find_element(By.NAME, "username").send_keys(name)
    d.find_element(By.NAME, "password").send_keys(USERS[name][2])
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    return d


def js(d, script: str, *args):
    return d.execute_script(script, *args)


def text_of(d, css: str) -> str:
    """The text of the element `css` names now (read in one step: live updates redraw)."""
    return js(d, "var e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css)


def click(d, css: str) -> None:
    """A click on the element `css` names now (live updates redraw the lists: never a stale
    reference)."""
    wait_for(lambda: js(d, "var e = document.querySelector(arguments[0]); if (!e) return false;"
                           "e.scrollIntoView({block: 'nearest'}); e.click(); return true;", css), 15)


OVERFLOW_JS = """
var de = document.documentElement, out = [];
if (de.scrollHeight > innerHeight + 1 || de.scrollWidth > innerWidth + 1)
  out.push('document ' + de.scrollWidth + 'x' + de.scrollHeight);
document.querySelectorAll('.console-screen .con-section, .con-header > *').forEach(function (p) {
  var r = p.getBoundingClientRect();
  if (r.left < -1 || r.top < -1 || r.right > innerWidth + 1 || r.bottom > innerHeight + 1)
    out.push('outside ' + (p.getAttribute('data-section') || p.className));
  if (p.scrollWidth > p.clientWidth + 1) out.push('overflow ' + (p.getAttribute('data-section') || p.className));
});
return out;
"""


VISIBLE_JS = """
var b = document.querySelector(arguments[0]);
if (!b) return false;
b.scrollIntoView({block: 'center'});
var r = b.getBoundingClientRect();
var e = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
return !!e && (e === b || b.contains(e));
"""


def supervised_today(stack, topo, centre: str) -> int:
    today = datetime.now(ZoneInfo(TZ)).strftime("%Y%m%d")
    key = Keys(PREFIX).day(topo.centres[centre].shard, today, centre)
    return int(stack.redis().hget(key, "supervised") or 0)


# -- the tests ---------------------------------------------------------------------------------
def test_con001_json_routes_answer_within_the_scope_only(cstack, planted, topo):
    eid, top = planted["eid"], planted["top"]
    duty, alice, bob = (signed_in(cstack, n) for n in ("duty1", "alice", "bob"))
    status, body = duty.get(f"/api/cases?centre={CITY}&status=overdue&limit=500")
    assert status == 200 and eid in [c["eid"] for c in body["cases"]]
    row = next(c for c in body["cases"] if c["eid"] == eid)
    assert row["overdue_ms"] > HOUR and row["centre"] == planted["village"] and row["tier"] == 4
    assert row["summary"] == PAYLOAD
    status, body = alice.get(f"/api/cases?centre={DISTRICT}&status=urgent")
    assert status == 200 and eid in [c["eid"] for c in body["cases"]]
    status, card = alice.get(f"/api/case/{eid}")
    assert status == 200 and [s["status"] for s in card["steps"]] == ["reported", "dispatched",
                                                                      "handling"]
    assert card["steps"][2]["over_ms"] > 0  # handled after its due
    # out of scope: a centre is 403, a case or alert of another subtree is what an unknown is
    assert alice.get(f"/api/cases?centre={CITY}") == (403, {"error": "forbidden"})
    assert alice.get(f"/api/alerts?centre={OTHER}") == (403, {"error": "forbidden"})
    unknown = bob.get("/api/case/NO-SUCH-CASE")
    assert unknown == (404, {"error": "not_found"})
    assert bob.get(f"/api/case/{eid}") == unknown
    assert bob.post(f"/api/case/{eid}/supervise", {"note": "x"}) == unknown
    assert bob.post(f"/api/alerts/{planted['alert']}/ack", {}) == unknown
    assert bob.post("/api/wall/main", {"case": eid}) == unknown
    assert planted["alert"] not in json.dumps(bob.get("/api/alerts")[1])
    assert eid not in json.dumps(bob.get(f"/api/cases?centre={OTHER}&limit=500")[1])
    # 督办 only below: the district's own case is not the district's to supervise
    assert alice.post(f"/api/case/{top}/supervise", {"note": "x"}) == (403, {"error": "not_above"})
    # bad input, sign-in, CSRF: JSON answers
    assert duty.get("/api/cases?status=bogus")[0] == 400
    assert duty.get("/api/cases?limit=abc") == (400, {"error": "limit"})
    assert duty.post(f"/api/case/{eid}/supervise", {"note": "x" * 201}) == (400, {"error": "note"})
    assert duty.post("/api/wall/no%20spaces", {"centre": CITY})[0] in (400, 404)
    assert duty.post("/api/wall/bad!group", {"centre": CITY}) == (400, {"error": "group"})
    assert Client(cstack.url).get("/api/cases") == (401, {"error": "login_required"})
    assert duty.post(f"/api/case/{eid}/supervise", {"note": "x"},
                     {"Origin": "https://evil.example"}) == (403, {"error": "forbidden"})
    assert supervised_today(cstack, topo, planted["village"]) == 0
    # the tabs' counts are the lists' totals
    r, keys, now = cstack.redis(), Keys(PREFIX), int(time.time() * 1000)
    for code in (CITY, DISTRICT, planted["village"]):
        counts = command.case_counts(Viewer("duty1", "duty", CITY), topo, r, keys, code, now)
        assert counts == {s: list_cases(r, topo, keys, code, s, 1, now).total
                          for s in STATUS_FILTERS}, code
    assert counts["open"] >= 1 and counts["overdue"] >= 1 and counts["urgent"] >= 1
    # the controls: 督办 and 上墙 by those who may
    status, body = alice.post(f"/api/case/{eid}/supervise", {"note": "JSON 督办\n请回复"})
    assert status == 200 and (body["by"], body["user"], body["eid"]) == (DISTRICT, "alice", eid)
    wait_for(lambda: supervised_today(cstack, topo, planted["village"]) == 1, 15)
    step = wait_for(lambda: next((s for s in alice.get(f"/api/case/{eid}")[1]["steps"]
                                  if s["status"] == "supervised"), None), 15)
    assert (step["by"], step["user"], step["note"]) == (DISTRICT, "alice", "JSON 督办 请回复")
    wait_for(lambda: f"console supervise by alice (leader, scope {DISTRICT})"
             in (cstack.dir / "web.log").read_text(errors="replace"), 10)  # who; the line: when
    status, body = duty.post("/api/wall/ops", {"centre": DISTRICT, "case": eid})
    assert status == 200 and (body["group"], body["centre"], body["case"]) == ("ops", DISTRICT, eid)
    d = get_directive(r, keys, "ops")
    assert (d.centre, d.case, d.by, d.seq) == (DISTRICT, eid, "duty1", body["seq"])


def test_con002_console_lists_the_case_its_card_and_supervise_counts_once(cstack, planted, topo):
    eid, village = planted["eid"], planted["village"]
    before = supervised_today(cstack, topo, village)
    d = browser_signed_in(cstack, "duty1", f"/console?centre={DISTRICT}")
    try:
        wait_for(lambda: js(d, "return document.querySelector('.console-screen') !== null"), 20)
        click(d, '[data-status="overdue"]')
        row = f'.case-row[data-case="{eid}"]'
        wait_for(lambda: js(d, "var r = document.querySelector(arguments[0]);"
                               "return !!r && r.classList.contains('is-overdue');", row), 20)
        assert js(d, "return document.querySelector('[data-status=\"overdue\"] .tab-count')"
                     ".getAttribute('data-count')") not in ("", "0")
        # the keyboard: j moves to the first row, Enter opens the card
        js(d, "document.activeElement && document.activeElement.blur && document.activeElement.blur();")
        ActionChains(d).send_keys("j").perform()
        wait_for(lambda: js(d, "var a = document.activeElement; return a && a.getAttribute('data-case');"), 5)
        js(d, "document.querySelector(arguments[0]).focus();", row)
        ActionChains(d).send_keys(Key.ENTER).perform()
        wait_for(lambda: js(d, "var c = document.querySelector('[data-card]');"
                               "return c && c.getAttribute('data-card');") == eid, 15)
        steps = js(d, "return Array.from(document.querySelectorAll('.timeline [data-step]'))"
                      ".map(function (e) { return e.getAttribute('data-step'); });")
        assert [s for s in steps if s != "supervised"] == ["reported", "dispatched", "handling"]
        supervisions = steps.count("supervised")  # test_con001's, when it ran
        done = js(d, "return Array.from(document.querySelectorAll('.stage-bar .is-done'))"
                     ".map(function (e) { return e.getAttribute('data-stage'); });")
        assert done == ["reported", "dispatched", "handling"]
        card_text = text_of(d, ".case-card")
        assert PAYLOAD in card_text  # as text, and it never ran
        assert js(d, "return window.__pwned === undefined")
        # 督办 with a note that is a script and has a newline
        note = f'{{"eid":"{eid}","type":"{cid.NOTE}"}}'
        box = wait_for(lambda: js(d, "return document.getElementById(arguments[0]);", note), 15)
        box.send_keys(NOTE)
        click(d, ".con-supervise")
        wait_for(lambda: eid in text_of(d, f"#{cid.MESSAGE}"), 10)
        wait_for(lambda: supervised_today(cstack, topo, village) >= before + 1, 15)
        wait_for(lambda: js(d, "return document.querySelectorAll('.timeline [data-step=\"supervised\"]')"
                               ".length") == supervisions + 1, 15)
        step = js(d, "var s = document.querySelectorAll('.timeline [data-step=\"supervised\"]');"
                     "return s[s.length - 1].innerText;")
        assert "please <script>window.__pwned=3</script> now" in step and "duty1" in step
        assert js(d, "return window.__pwned === undefined")
        # 上墙: the walls of group `main` follow the console's centre and spotlight the case
        click(d, '.card-buttons .con-wall')
        wait_for(lambda: get_directive(cstack.redis(), Keys(PREFIX), "main") is not None, 10)
        directive = get_directive(cstack.redis(), Keys(PREFIX), "main")
        assert (directive.centre, directive.case, directive.by) == (DISTRICT, eid, "duty1")
        # 视频连线 to the case's centre, through the screens' call path
        click(d, ".card-buttons .vc-btn")
        wait_for(lambda: d.find_elements(By.CSS_SELECTOR, f'#vc-live .vc-tile[data-vc-tile="{village}"]'), 10)
        click(d, '#vc-live [data-vc-act="end"]')
        wait_for(lambda: not d.find_elements(By.ID, "vc-live"), 10)
        time.sleep(1)  # counted once, and only once
        assert supervised_today(cstack, topo, village) == before + 1
        # a desk of 1920 x 1080 or 1366 x 768: the page does not scroll, all is on the screen
        assert js(d, OVERFLOW_JS) == []
        resize(d, 1366, 768)
        time.sleep(0.5)
        assert js(d, OVERFLOW_JS) == []
        # the centre picker moves the desk (the URL follows)
        js(d, "window.dash_clientside.set_props(arguments[0], {value: arguments[1]});",
           cid.PICKER, village)
        wait_for(lambda: f"centre={village}" in d.current_url
                 and js(d, "var r = document.querySelector('.console-screen');"
                           "return r && r.getAttribute('data-centre');") == village, 15)
        wait_for(lambda: js(d, "return !!document.querySelector(arguments[0])", row), 15)
        violations = [e for e in d.get_log("browser") if "Content Security Policy" in e["message"]
                      or "Uncaught" in e["message"]]
        assert not violations, violations
    finally:
        d.quit()


def test_con003_ack_on_the_tablet_stops_the_alert_being_raised(cstack, planted, topo):
    r, keys = cstack.redis(), Keys(PREFIX)
    aid = planted["alert"]
    wait_for(lambda: (a := alerts.get_alert(r, topo, keys, aid)) is not None and a.state == "raised", 20)
    d = browser_signed_in(cstack, "alice", f"/brief?centre={DISTRICT}", size=(1024, 768))
    try:
        row = f'.command-panel .alert-row[data-alert="{aid}"]'
        wait_for(lambda: js(d, "var r = document.querySelector(arguments[0]);"
                               "return r && r.getAttribute('data-state');", row) == "raised", 25)
        size = js(d, "var b = document.querySelector(arguments[0] + ' .con-ack').getBoundingClientRect();"
                     "return [b.width, b.height];", row)
        assert min(size) >= 44, size  # a touch target
        # and one a finger reaches: on screen, nothing over it
        assert wait_for(lambda: js(d, VISIBLE_JS, f"{row} .con-ack"), 10)
        click(d, f"{row} .con-ack")
        wait_for(lambda: alerts.get_alert(r, topo, keys, aid).state == "acknowledged", 15)
        a = alerts.get_alert(r, topo, keys, aid)
        assert a.acked_by == "alice" and a.acked_at > 0
        wait_for(lambda: js(d, "var r = document.querySelector(arguments[0]);"
                               "return r && r.getAttribute('data-state');", row) == "acknowledged", 15)
        assert not js(d, "return !!document.querySelector(arguments[0] + ' .con-ack')", row)
        # a tapped count opens its cases: 超期 presses the panel's overdue tab, the case is there
        click(d, '.brief-screen .kpi [data-cases="overdue"], .brief-screen [data-cases="overdue"]')
        wait_for(lambda: js(d, "var t = document.querySelector("
                               "'.brief-screen .con-tab[data-status=\"overdue\"]');"
                               "return t && t.getAttribute('aria-pressed');") == "true", 15)
        wait_for(lambda: js(d, "return !!document.querySelector("
                               "'.brief-screen .case-row[data-case=\"' + arguments[0] + '\"]')",
                            planted["eid"]), 15)
    finally:
        d.quit()


def test_con004_callbacks_refuse_ids_of_another_subtree(cstack, planted, topo):
    """bob (duty officer of 610203) posts the console's callbacks directly with the case and
    the alert of 610202: nothing is read, acknowledged, supervised or put on a wall."""
    r, keys = cstack.redis(), Keys(PREFIX)
    eid, aid = planted["eid"], planted["alert"]
    bob = signed_in(cstack, "bob")
    url = {"id": "app-url", "property": "search", "value": f"?centre={OTHER}"}
    shard = topo.centres[planted["village"]].shard
    console_len = r.xlen(keys.console(shard))
    events_len = r.xlen(keys.stream(shard, "events"))
    wall_before = get_directive(r, keys, "main")

    def sid(**kw) -> str:
        return json.dumps(dict(sorted(kw.items())), separators=(",", ":"))

    deps = json.loads(bob.request("/_dash-dependencies")[2])

    card = next(c for c in deps if c["output"].startswith(f"..{cid.CARD}.children"))
    status, _, body = bob.callback(
        card["output"],
        [{"id": cid.SELECTED, "property": "data", "value": eid},
         {"id": cid.VERSION, "property": "data", "value": None},
         {"id": cid.ACTED, "property": "data", "value": 0}],
        [url, {"id": cid.CARD_SHOWN, "property": "data", "value": None}], f"{cid.SELECTED}.data")
    assert status == 200 and eid not in body and "steps" not in body, body[:300]
    assert '"data-card-note":"console_card_gone"' in body
    # ack, 督办, 上墙
    for itype, key, value, extra_state in (
            (cid.ACK, "alert", aid, [url, {"id": cid.ACTED, "property": "data", "value": 0}]),
            (cid.SUPERVISE, "eid", eid, [[{"id": {"type": cid.NOTE, "eid": eid}, "property": "value",
                                           "value": "x"}], url,
                                         {"id": cid.ACTED, "property": "data", "value": 0}]),
            (cid.WALL, "eid", eid, [{"id": cid.GROUP, "property": "value", "value": "main"}, url])):
        cb = next(c for c in deps if any(f'"type":"{itype}"' in i["id"] for i in c["inputs"]))
        inputs = []
        for i in cb["inputs"]:
            if f'"type":"{itype}"' in i["id"]:
                inputs.append([{"id": {"type": itype, key: value}, "property": "n_clicks", "value": 1}])
            elif i["id"].startswith("{"):
                inputs.append([])
            else:
                inputs.append({"id": i["id"], "property": i["property"], "value": 0})
        notes = [{"id": {"type": cid.NOTE, "eid": eid}, "property": "value"}]
        status, _, body = bob.callback(cb["output"], inputs, extra_state,
                                       f'{sid(type=itype, **{key: value})}.n_clicks', notes)
        assert status == 200, (itype, status, body[:300])
        text = json.dumps(json.loads(body), ensure_ascii=False)
        assert "操作被拒绝" in text, (itype, text[:300])
    assert alerts.get_alert(r, topo, keys, aid).state in ("raised", "acknowledged")
    assert r.xlen(keys.console(shard)) == console_len
    assert r.xlen(keys.stream(shard, "events")) == events_len
    assert get_directive(r, keys, "main") == wall_before
