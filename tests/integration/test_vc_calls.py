"""Video calls that connect (issue 11), in real browsers with fake cameras: a wall calls a
district whose wall is open in another browser, which rings and answers by itself; both decode
the other's video; the end is audited; a screen with no camera joins receive-only; a call to a
centre with no screen open is answered by the simulated endpoint; 整体联动 of four districts
through a real Janus; a user out of scope cannot ring."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time

import pytest
from selenium.webdriver.common.by import By

from dashboard.devkit.browser import FAKE_MEDIA, VC_DECODING, VC_READY, chromium, sign_in
from dashboard.devkit.stack import Stack, copy_registry
from tests.faults.proxy import FaultProxy
from tests.helpers import wait_until

CITY, DISTRICT, OTHER = "610200", "610203", "610204"
RESUME_S = 4  # a screen whose stream dropped may come back this long
RING_S = 8  # a centre that has not answered by then is marked 未应答 (auto-answer takes 1.5 s)
SIP_CENTRE, DEAD_SIP_CENTRE = "610204", "610202"  # registry endpoints: a terminal, a dead one
DISTRICTS = ("610202", "610203", "610204", "610222")
USERS = {"city": ("duty", CITY, "city-duty-pw-1"), "dist": ("duty", DISTRICT, "dist-duty-pw-1"),
         "other": ("duty", OTHER, "other-duty-pw-1")}


@pytest.fixture(scope="module")
def sip_port():
    return free_udp_port()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db, sip_port):
    d = tmp_path_factory.mktemp("vccalls")
    db_url, db_path = copy_registry(demo_db, d)
    with sqlite3.connect(db_path) as con:  # 视联网 terminals of two districts (registry endpoints)
        con.execute("UPDATE centres SET conference = ? WHERE code = ?",
                    (f"sip:terminal@127.0.0.1:{sip_port}", SIP_CENTRE))
        con.execute("UPDATE centres SET conference = ? WHERE code = ?",
                    (f"sip:terminal@127.0.0.1:{free_udp_port()}", DEAD_SIP_CENTRE))
    s = Stack(d, db_url, prefix="vcc")
    s.env.update(PINGAN_AUTH="on", PINGAN_COOKIE_SECURE="0", PINGAN_VC_SIMULATE="1",
                 PINGAN_CONFERENCE_URL="", PINGAN_VC_RING_S=str(RING_S),
                 PINGAN_VC_RESUME_S=str(RESUME_S))
    s.start_redis()
    for name, (role, scope, pw) in USERS.items():
        s.add_user(name, role, scope, pw)
    s.start_janus()
    s.start_aggregator()
    s.start_web(workers=2)  # signalling crosses workers
    yield s
    s.close()


@pytest.fixture(scope="module")
def idle_browsers():
    """Browsers of this module's tests between tests, by `media` (a Chromium launch costs
    seconds on a loaded 2-core machine; the tests open 21 screens)."""
    idle: dict[bool, list] = {True: [], False: []}
    yield idle
    for ds in idle.values():
        for d in ds:
            d.quit()


def _leave(d) -> bool:
    """A browser back to a fresh one's state: its page left (its live and signalling streams
    and any call end, as when it quits) and signed out (cookies are the app's only client
    state: vc.js keeps nothing in web storage). False when it cannot be (then it is quit)."""
    try:
        d.get("about:blank")
        d.execute_cdp_cmd("Network.clearBrowserCookies", {})
        d.execute_cdp_cmd("Network.clearBrowserCache", {})
        return d.execute_script("return document.URL") == "about:blank"
    except Exception:  # noqa: BLE001 - a browser in any bad state is simply not reused
        return False


@pytest.fixture()
def browsers(idle_browsers):
    opened = []

    def make(media: bool = True):
        pool = idle_browsers[media]
        d = pool.pop() if pool else chromium(
            1280, 720, FAKE_MEDIA if media else ("--autoplay-policy=no-user-gesture-required",))
        opened.append((media, d))
        return d

    yield make
    for media, d in opened:
        if _leave(d):
            idle_browsers[media].append(d)
        else:
            d.quit()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signed_in(make, stack, user: str, path: str, media: bool = True):
    d = make(media)
    sign_in(d, stack.url + path, user, USERS[user][2])
    wait_until(lambda: d.find_elements(By.CSS_SELECTOR, ".live-screen [data-rank-row], .live-screen .wall-canvas"), 30)
    # the screen's signalling stream is open (assets/vc.js)
    wait_until(lambda: d.execute_script(VC_READY), 20)
    return d


def vc_entries(stack) -> list[dict]:
    r = stack.redis()
    keys = r.keys("vcc:*:vc")
    assert len(keys) == 1, keys
    return [{k.decode(): v.decode() for k, v in f.items()} for _i, f in r.xrange(keys[0])]


def actions(stack, cid: str) -> list[tuple[str, str]]:
    return [(e["action"], e["centres"]) for e in vc_entries(stack) if e["cid"] == cid]


def call_from_row(d, code: str) -> None:
    d.find_element(By.CSS_SELECTOR, f'[data-rank-row="{code}"] .vc-btn').click()


def test_call001_wall_calls_a_district_whose_wall_answers(stack, browsers):
    callee = signed_in(browsers, stack, "dist", f"/?centre={DISTRICT}")
    caller = signed_in(browsers, stack, "city", "/")
    call_from_row(caller, DISTRICT)
    # the callee's wall rings (who calls) and, unattended, answers by itself
    ring = wait_until(lambda: callee.find_elements(By.CSS_SELECTOR, "#vc-ring .vc-ring-title"), 10)
    assert "铜川" in ring[0].text or CITY in ring[0].text
    wait_until(lambda: caller.execute_script(VC_DECODING, DISTRICT), 20)
    wait_until(lambda: callee.execute_script(VC_DECODING, CITY), 20)
    cid = caller.execute_script("return window.pinganVC.state().call.cid")
    assert ("answer", DISTRICT) in actions(stack, cid)
    # the wall shows who is in a call
    wait_until(lambda: "in-call" in caller.find_element(
        By.CSS_SELECTOR, f'[data-rank-row="{DISTRICT}"]').get_attribute("class"), 10)
    # mute and camera off act on our own tracks
    caller.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="mute"]').click()
    assert caller.execute_script(
        "return document.querySelector('#vc-live .vc-self video').srcObject.getAudioTracks()[0].enabled") is False
    caller.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
    wait_until(lambda: ("end", DISTRICT) in actions(stack, cid), 10)
    wait_until(lambda: not callee.find_elements(By.ID, "vc-live"), 10)
    assert actions(stack, cid)[0][0] == "start"


def test_call002_a_wall_with_no_camera_joins_receive_only(stack, browsers):
    callee = signed_in(browsers, stack, "dist", f"/?centre={DISTRICT}", media=False)
    caller = signed_in(browsers, stack, "city", "/")
    call_from_row(caller, DISTRICT)
    wait_until(lambda: callee.execute_script(VC_DECODING, CITY), 25)
    note = callee.find_element(By.CSS_SELECTOR, "#vc-live .vc-self[data-receive-only]")
    assert "仅接收" in note.text
    caller.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
    wait_until(lambda: not callee.find_elements(By.ID, "vc-live"), 10)


def test_call003_no_screen_open_the_simulated_endpoint_answers(stack, browsers):
    caller = signed_in(browsers, stack, "city", "/")
    call_from_row(caller, "610222")  # no screen of 宜君县 is open
    wait_until(lambda: caller.execute_script(VC_DECODING, "610222"), 20)
    tile = caller.find_element(By.CSS_SELECTOR, '#vc-live .vc-tile[data-vc-tile="610222"]')
    assert tile.get_attribute("data-vc-sim") == "1" and "模拟" in tile.text
    caller.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
    wait_until(lambda: not caller.find_elements(By.ID, "vc-live"), 10)


def test_call004_out_of_scope_cannot_ring(stack, browsers):
    other = signed_in(browsers, stack, "other", f"/?centre={OTHER}")
    dist = signed_in(browsers, stack, "dist", f"/?centre={DISTRICT}")
    before = len(vc_entries(stack))
    # a district user asks for a call to a centre outside its subtree (what a forged map
    # popup request would send)
    dist.execute_script(
        "window.dash_clientside.set_props('vc-request', {data: {code: arguments[0], group: false, t: Date.now()}})",
        OTHER)
    dist.execute_script(
        "window.dash_clientside.set_props('vc-request', {data: {code: arguments[0], group: true, t: Date.now()}})",
        CITY)
    time.sleep(3)
    assert len(vc_entries(stack)) == before
    assert not other.find_elements(By.ID, "vc-ring")
    assert not dist.find_elements(By.ID, "vc-live")


def test_call005_convene_four_districts_through_janus(stack, browsers):
    screens = {code: signed_in(browsers, stack, "city", f"/?centre={code}") for code in DISTRICTS}
    convener = signed_in(browsers, stack, "city", "/")
    convener.find_element(By.CSS_SELECTOR, ".vc-btn-group").click()
    wait_until(lambda: convener.execute_script("return window.pinganVC.state().call"), 15)
    assert convener.execute_script("return window.pinganVC.state().call.mode") == "sfu"
    for code in DISTRICTS:
        wait_until(lambda code=code: convener.execute_script(VC_DECODING, code), 40)
    videos = convener.find_elements(By.CSS_SELECTOR, "#vc-live video[data-vc-peer]")
    assert sorted(v.get_attribute("data-vc-peer") for v in videos) == sorted(DISTRICTS)
    for d in screens.values():  # every invited screen sees the convener
        wait_until(lambda d=d: d.execute_script(VC_DECODING, CITY), 20)
    cid = convener.execute_script("return window.pinganVC.state().call.cid")
    assert {c for a, c in actions(stack, cid) if a == "answer"} == set(DISTRICTS)
    convener.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
    for d in screens.values():
        wait_until(lambda d=d: not d.find_elements(By.ID, "vc-live"), 15)


def test_call006_the_duty_desk_rings_and_may_decline(stack, browsers):
    desk = browsers()
    sign_in(desk, f"{stack.url}/console?centre={DISTRICT}", "dist", USERS["dist"][2])
    wait_until(lambda: desk.execute_script(VC_READY), 30)
    assert desk.execute_script("return window.pinganVC.state().kind") == "desk"
    caller = signed_in(browsers, stack, "city", "/")
    call_from_row(caller, DISTRICT)
    decline = wait_until(lambda: desk.find_elements(By.CSS_SELECTOR, '#vc-ring [data-vc-act="decline"]'), 10)
    time.sleep(2.5)  # a desk does not answer by itself (a wall would have after 1.5 s)
    assert desk.find_elements(By.ID, "vc-ring") and not desk.find_elements(By.ID, "vc-live")
    cid = caller.execute_script("return window.pinganVC.state().call.cid")
    decline[0].click()
    wait_until(lambda: ("decline", DISTRICT) in actions(stack, cid), 10)
    wait_until(lambda: ("end", DISTRICT) in actions(stack, cid), 10)
    toast = wait_until(lambda: caller.find_elements(By.CSS_SELECTOR, ".vc-toast"), 10)
    assert "拒绝" in toast[0].text
    assert not caller.find_elements(By.ID, "vc-live") and not desk.find_elements(By.ID, "vc-ring")


def test_call007_a_sip_terminal_is_bridged_through_janus(stack, browsers, sip_port, tmp_path):
    """A registry `sip:` endpoint (an existing 视联网 terminal; here SIPp answering as one):
    the browser calls it through Janus's SIP plugin; the terminal gets the INVITE with an SDP
    offer, answers, and gets the BYE when the call ends."""
    log = tmp_path / "sip.log"
    terminal = subprocess.Popen(
        ["sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(sip_port), "-m", "1", "-nostdin",
         "-trace_msg", "-message_file", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        caller = signed_in(browsers, stack, "city", "/")
        call_from_row(caller, SIP_CENTRE)
        wait_until(lambda: caller.execute_script("return window.pinganVC.state().call"), 10)
        assert caller.execute_script("return window.pinganVC.state().call.mode") == "sip"
        wait_until(lambda: caller.find_elements(
            By.CSS_SELECTOR, f'#vc-live .vc-tile[data-vc-tile="{SIP_CENTRE}"][data-state="joined"]'), 30)
        assert "通话中" in caller.find_element(By.CSS_SELECTOR, "#vc-live .vc-live-state").text
        text = log.read_text(errors="replace")
        assert "INVITE sip:terminal@127.0.0.1" in text and "m=audio" in text
        caller.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
        assert terminal.wait(20) == 0  # one call, ended by a BYE
        assert "BYE sip:" in log.read_text(errors="replace")
    finally:
        if terminal.poll() is None:
            terminal.kill()
            terminal.wait()


def test_call008_a_dead_sip_endpoint_says_so(stack, browsers):
    caller = signed_in(browsers, stack, "city", "/")
    call_from_row(caller, DEAD_SIP_CENTRE)
    state = wait_until(lambda: [e for e in caller.find_elements(By.CSS_SELECTOR, "#vc-live .vc-live-state")
                                if "无法接通" in e.text], 45)
    assert "SIP" in state[0].text
    caller.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
    wait_until(lambda: not caller.find_elements(By.ID, "vc-live"), 10)


def test_call009_a_convened_centre_that_does_not_answer_is_marked(stack, browsers):
    open_ones = ("610203", "610204")
    screens = [signed_in(browsers, stack, "city", f"/?centre={code}") for code in open_ones]
    convener = signed_in(browsers, stack, "city", "/")
    convener.find_element(By.CSS_SELECTOR, ".vc-btn-group").click()
    for code in open_ones:
        wait_until(lambda code=code: convener.execute_script(VC_DECODING, code), 40)
    silent = sorted(set(DISTRICTS) - set(open_ones))
    for code in silent:  # no screen of theirs is open: marked after the ring time
        tile = f'#vc-live .vc-tile[data-vc-tile="{code}"]'
        assert convener.find_element(By.CSS_SELECTOR, tile).get_attribute("data-state") in ("waiting", "no_answer")
        wait_until(lambda tile=tile: convener.find_elements(By.CSS_SELECTOR, tile + '[data-state="no_answer"]'), RING_S + 5)
        assert "未应答" in convener.find_element(By.CSS_SELECTOR, tile).text
    convener.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
    for d in screens:
        wait_until(lambda d=d: not d.find_elements(By.ID, "vc-live"), 15)


def test_call010_a_network_blip_does_not_end_the_call(stack, browsers):
    """The callee's wall reaches the server through a proxy that cuts every connection (its
    live and signalling streams drop, as in a blip or a web restart): the screen reconnects
    with its peer, the call goes on (media never went through the server), nobody is recorded
    as leaving, and the end still reaches it."""
    port = int(stack.url.rsplit(":", 1)[1])
    with FaultProxy(("127.0.0.1", port)) as proxy:
        callee = browsers()
        sign_in(callee, f"http://127.0.0.1:{proxy.port}/?centre={DISTRICT}", "dist", USERS["dist"][2])
        wait_until(lambda: callee.execute_script(VC_READY), 30)
        caller = signed_in(browsers, stack, "city", "/")
        call_from_row(caller, DISTRICT)
        wait_until(lambda: callee.execute_script(VC_DECODING, CITY), 25)
        wait_until(lambda: caller.execute_script(VC_DECODING, DISTRICT), 25)
        cid = caller.execute_script("return window.pinganVC.state().call.cid")
        peer = callee.execute_script("return window.pinganVC.state().peer")
        assert proxy.cut_all() >= 2  # at least the live and the signalling stream
        time.sleep(RESUME_S + 6)  # past the resume time: a screen that had not come back has left
        assert callee.execute_script("return window.pinganVC.state().peer") == peer
        assert callee.execute_script("return window.pinganVC.state().call.cid") == cid
        assert [a for a, _c in actions(stack, cid)] == ["start", "answer"]
        assert caller.execute_script(VC_DECODING, DISTRICT) and callee.execute_script(VC_DECODING, CITY)
        caller.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
        wait_until(lambda: not callee.find_elements(By.ID, "vc-live"), 15)
        assert [a for a, _c in actions(stack, cid)] == ["start", "answer", "end"]
