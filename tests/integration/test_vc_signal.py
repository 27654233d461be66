"""Call signalling over real HTTP (gunicorn, two workers, sign-in on): /vc/events rings and
delivers, /vc/signal joins, relays and ends, scoped to the viewer, hostile bodies refused.
Browser-free; the calls are started with the CallDesk the Dash callback uses."""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

from dashboard.calls import CallDesk
from dashboard.devkit.stack import Stack, copy_registry
from dashboard.settings import Settings
from datasources.keys import Keys
from datasources.signal import Signals
from datasources.vc import Conferences
from tests.integration.test_access import Client

PREFIX = "vcs"
CITY, DISTRICT, OTHER = "610200", "610202", "610203"
USERS = {"duty1": ("duty", CITY, "duty1-city-pw!"), "alice": ("leader", DISTRICT, "alice-leader-pw"),
         "bob": ("duty", OTHER, "bob-other-pw-1")}


@pytest.fixture(scope="module")
def vstack(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("vcsignal")
    db_url, _ = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix=PREFIX)
    s.env["PINGAN_AUTH"] = "on"
    s.env["PINGAN_CONFERENCE_URL"] = ""
    s.env["PINGAN_VC_RESUME_S"] = "2"  # a closed screen has left its calls 2 s later
    s.start_redis()
    for name, (role, scope, pw) in USERS.items():
        s.add_user(name, role, scope, pw)
    s.start_web(workers=2)
    yield s
    s.close()


@pytest.fixture(scope="module")
def desk(vstack, topo) -> CallDesk:
    r = vstack.redis()
    settings = Settings.from_env(data_dir=vstack.dir, redis_url=vstack.env["REDIS_URL"],
                                 database_url=vstack.db_url, key_prefix=PREFIX,
                                 conference_url_template="")
    return CallDesk(Conferences(r, topo, PREFIX, "", 3600), Signals(r, topo, PREFIX), None,
                    settings, topo, lambda: None)


@pytest.fixture(scope="module")
def users(vstack) -> dict[str, Client]:
    out = {}
    for name, (_role, _scope, pw) in USERS.items():
        c = Client(vstack.url)
        assert c.login(name, pw)[0] == 303
        out[name] = c
    return out


class Events:
    """An open /vc/events stream read by a thread: (event, data) pairs in a queue."""

    def __init__(self, client: Client, centre: str, resume: str = "") -> None:
        url = urlsplit(client.base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        headers = {"Cookie": f"pingan_session={client.cookie}"} if client.cookie else {}
        self.conn.request("GET", f"/vc/events?centre={centre}" + (f"&resume={resume}" if resume else ""),
                          headers=headers)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.q: queue.Queue = queue.Queue()
        if self.status == 200:
            threading.Thread(target=self._read, daemon=True).start()
            event, hello = self.next("hello")
            self.peer = hello["peer"]
        else:
            self.body = self.resp.read().decode()
            self.conn.close()

    def _read(self) -> None:
        event, data = None, []
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        self.q.put((event or "message", json.loads("\n".join(data))))
                    event, data = None, []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        except Exception:  # the test closed it (http.client then fails in several ways)
            pass

    def next(self, kind: str | None = None, timeout: float = 10) -> tuple[str, dict]:
        """The next event (or the next message of `kind`, skipping others)."""
        while True:
            event, data = self.q.get(timeout=timeout)
            if kind is None or kind in (event, data.get("kind")):
                return event, data

    def close(self) -> None:
        if self.conn.sock is not None:
            with contextlib.suppress(OSError):
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def post(c: Client, body, raw: bytes | None = None, headers: dict | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    status, h, text = c.request("/vc/signal", data=data, headers={
        "Content-Type": "application/json", "Origin": c.base, **(headers or {})})
    assert h.get("Content-Type", "").startswith("application/json"), (status, text[:200])
    return status, json.loads(text)


def vc_entries(vstack, topo) -> list[dict]:
    stream = Keys(PREFIX).stream(topo.centres[topo.roots[0]].shard, "vc")
    return [{k.decode(): v.decode() for k, v in f.items()} for _i, f in vstack.redis().xrange(stream)]


def test_vcs001_sign_in_and_scope_before_anything(vstack, users):
    anon = Client(vstack.url)
    status, _, body = anon.request(f"/vc/events?centre={CITY}")
    assert status == 401 and json.loads(body) == {"error": "login_required"}
    assert post(anon, {"kind": "join"}) == (401, {"error": "login_required"})
    for centre in (CITY, OTHER, "999999", "../x"):  # alice sees her district's subtree only
        ev = Events(users["alice"], centre)
        assert ev.status == 403 and json.loads(ev.body) == {"error": "forbidden"}
    status, _, body = users["alice"].request("/vc/signal", data=b"{}", headers={
        "Content-Type": "application/json", "Origin": "http://evil.example"})
    assert status == 403 and json.loads(body)["error"] == "forbidden"  # cross-site


def test_vcs002_ring_join_relay_end_across_workers(vstack, users, desk, topo):
    caller = Events(users["duty1"], CITY)
    wall, console = Events(users["alice"], DISTRICT), Events(users["alice"], DISTRICT)
    try:
        call = desk.start("duty1", CITY, [DISTRICT], group=False, tier=None)
        for screen in (wall, console):
            _, ring = screen.next("ring")
            assert ring["cid"] == call.cid and ring["from"] == CITY and ring["by"] == "duty1"
        late = Events(users["alice"], DISTRICT)  # opened while it rings: it rings too
        assert late.next()[1]["cid"] == call.cid
        late.close()
        status, out = post(users["duty1"], {"peer": caller.peer, "cid": call.cid, "kind": "join"})
        assert status == 200 and out["peers"] == [] and out["call"]["mode"] == "p2p"
        status, out = post(users["alice"], {"peer": wall.peer, "cid": call.cid, "kind": "join"})
        assert status == 200 and out["peers"] == [{"peer": caller.peer, "centre": CITY}]
        assert caller.next("joined")[1] == {"kind": "joined", "cid": call.cid, "peer": wall.peer,
                                            "centre": DISTRICT}
        assert console.next()[1] == {"kind": "cancel", "cid": call.cid,
                                     "reason": "answered_elsewhere"}
        assert post(users["alice"], {"peer": console.peer, "cid": call.cid, "kind": "join"}) == (
            409, {"error": "answered_elsewhere"})
        assert post(users["duty1"], {"peer": caller.peer, "cid": call.cid, "kind": "offer",
                                     "to": wall.peer, "sdp": "v=0 offer"})[0] == 200
        # the wall's next message is the offer: its centre's cancel was not for it
        assert wall.next()[1] == {"kind": "offer", "cid": call.cid, "from": caller.peer,
                                  "centre": CITY, "sdp": "v=0 offer"}
        assert post(users["alice"], {"peer": wall.peer, "cid": call.cid, "kind": "answer",
                                     "to": caller.peer, "sdp": "v=0 answer"})[0] == 200
        assert caller.next("answer")[1]["sdp"] == "v=0 answer"
        assert post(users["alice"], {"peer": wall.peer, "cid": call.cid, "kind": "candidate",
                                     "to": caller.peer, "candidate": {"candidate": "c", "sdpMid": "0"}})[0] == 200
        assert caller.next("candidate")[1]["candidate"] == {"candidate": "c", "sdpMid": "0"}
        assert post(users["alice"], {"peer": wall.peer, "cid": call.cid, "kind": "end"}) == (
            403, {"error": "forbidden"})  # the callee leaves; it does not end the caller's call
        status, out = post(users["duty1"], {"peer": caller.peer, "cid": call.cid, "kind": "end"})
        assert status == 200 and out["ended"]
        for screen in (wall, console):
            assert screen.next("end")[1] == {"kind": "end", "cid": call.cid}
        entries = [(e["action"], e["by"]) for e in vc_entries(vstack, topo) if e["cid"] == call.cid]
        assert entries == [("start", "duty1"), ("answer", "alice"), ("end", "duty1")]
        assert post(users["duty1"], {"peer": caller.peer, "cid": call.cid, "kind": "join"}) == (
            404, {"error": "no_call"})
    finally:
        for screen in (caller, wall, console):
            screen.close()


def test_vcs003_forged_messages_are_refused(vstack, users, desk):
    caller, callee, outsider = (Events(users["duty1"], CITY), Events(users["alice"], DISTRICT),
                                Events(users["bob"], OTHER))
    try:
        call = desk.start("duty1", CITY, [DISTRICT], group=False, tier=None)
        for who, peer in (("duty1", caller), ("alice", callee)):
            assert post(users[who], {"peer": peer.peer, "cid": call.cid, "kind": "join"})[0] == 200
        bob = users["bob"]
        for kind in ("join", "decline", "leave", "end"):  # a screen of OTHER, a call of CITY and DISTRICT
            assert post(bob, {"peer": outsider.peer, "cid": call.cid, "kind": kind}) == (
                403, {"error": "forbidden"})
        assert post(bob, {"peer": outsider.peer, "cid": call.cid, "kind": "offer",
                          "to": callee.peer, "sdp": "v=0"}) == (403, {"error": "forbidden"})
        # another user's screen: refused, whoever's it is
        for peer in (callee.peer, caller.peer):
            assert post(bob, {"peer": peer, "cid": call.cid, "kind": "offer", "to": callee.peer,
                              "sdp": "v=0"}) == (403, {"error": "forbidden"})
        assert post(users["alice"], {"peer": caller.peer, "cid": call.cid, "kind": "end"}) == (
            403, {"error": "forbidden"})
        # `to` a screen that is not in the call
        assert post(users["duty1"], {"peer": caller.peer, "cid": call.cid, "kind": "offer",
                                     "to": outsider.peer, "sdp": "v=0"}) == (409, {"error": "not_joined"})
        assert outsider.q.empty()
        desk.end(call.cid, "duty1")
    finally:
        for screen in (caller, callee, outsider):
            screen.close()


def test_vcs004_a_closed_screen_is_gone_and_leaves_its_call(vstack, users, desk):
    signals = desk.signals
    caller, callee = Events(users["duty1"], CITY), Events(users["alice"], DISTRICT)
    try:
        assert signals.present(DISTRICT) and signals.peer(callee.peer) is not None
        call = desk.start("duty1", CITY, [DISTRICT], group=False, tier=None)
        for who, peer in (("duty1", caller), ("alice", callee)):
            assert post(users[who], {"peer": peer.peer, "cid": call.cid, "kind": "join"})[0] == 200
        callee.close()  # the wall's browser went away
        assert caller.next("left", timeout=20)[1]["peer"] == callee.peer
        assert caller.next("end")[1]["cid"] == call.cid
        assert not signals.present(DISTRICT) and signals.peer(callee.peer) is None
        assert desk.conferences.get(call.cid) is None
    finally:
        caller.close()
        callee.close()


def test_vcs004b_a_screen_that_reconnects_keeps_its_peer_and_its_call(vstack, users, desk, topo):
    """A dropped stream that comes back with resume= keeps its peer (only its own: same user,
    same centre) and its call; a stolen or foreign peer id gets a fresh peer."""
    caller, callee = Events(users["duty1"], CITY), Events(users["alice"], DISTRICT)
    again = thief = other = None
    try:
        call = desk.start("duty1", CITY, [DISTRICT], group=False, tier=None)
        for who, peer in (("duty1", caller), ("alice", callee)):
            assert post(users[who], {"peer": peer.peer, "cid": call.cid, "kind": "join"})[0] == 200
        callee.close()
        again = Events(users["alice"], DISTRICT, resume=callee.peer)
        assert again.peer == callee.peer
        time.sleep(3)  # past the resume time (2 s): the old stream's end did not take it away
        assert desk.conferences.get(call.cid) is not None and desk.signals.present(DISTRICT)
        assert [e["action"] for e in vc_entries(vstack, topo) if e["cid"] == call.cid] == ["start", "answer"]
        thief = Events(users["duty1"], DISTRICT, resume=callee.peer)  # another user
        other = Events(users["alice"], topo.children[DISTRICT][0], resume=callee.peer)  # another centre
        assert thief.peer != callee.peer and other.peer != callee.peer
        # signalling goes on through the resumed stream
        assert post(users["duty1"], {"peer": caller.peer, "cid": call.cid, "kind": "offer",
                                     "to": callee.peer, "sdp": "v=0 offer"})[0] == 200
        assert again.next("offer")[1]["sdp"] == "v=0 offer"
        desk.end(call.cid, "duty1")
        assert again.next("end")[1]["cid"] == call.cid
    finally:
        for screen in (caller, callee, again, thief, other):
            if screen is not None:
                screen.close()


def test_vcs005_hostile_bodies_get_clear_json_and_write_nothing(vstack, users, desk, topo):
    r = vstack.redis()
    caller = Events(users["duty1"], CITY)
    try:
        call = desk.start("duty1", CITY, [DISTRICT], group=False, tier=None)
        assert post(users["duty1"], {"peer": caller.peer, "cid": call.cid, "kind": "join"})[0] == 200
        before = (r.xlen(desk.signals.mailbox), len(vc_entries(vstack, topo)))
        c = users["duty1"]
        ok = {"peer": caller.peer, "cid": call.cid}
        cases = [
            (None, b"not json at all", {"Content-Type": "text/plain"}, 415),
            (None, b"{not json", None, 400),
            ([1, 2], None, None, 400),
            ({**ok, "kind": "hack"}, None, None, 400),
            ({**ok}, None, None, 400),
            ({**ok, "kind": "join", "peer": "../../etc/passwd"}, None, None, 400),
            ({**ok, "kind": "join", "peer": ["x"]}, None, None, 400),
            ({**ok, "kind": "join", "cid": "nope"}, None, None, 404),
            ({**ok, "kind": "join", "cid": {"$ne": 1}}, None, None, 400),
            ({**ok, "kind": "offer", "to": caller.peer, "sdp": "v" * (65 * 1024)}, None, None, 413),
            ({**ok, "kind": "offer", "to": caller.peer, "sdp": 42}, None, None, 400),
            ({**ok, "kind": "candidate", "to": caller.peer, "candidate": "x" * 10}, None, None, 400),
            ({**ok, "kind": "offer", "to": caller.peer, "sdp": "v=0"}, None, None, 409),  # to itself
            (None, b'{"sdp": "' + b"x" * 300_000 + b'"}', None, 413),
        ]
        for body, raw, headers, want in cases:
            status, out = post(c, body, raw=raw, headers=headers)
            assert status == want and isinstance(out.get("error"), str), (body, raw and raw[:40], status, out)
        assert (r.xlen(desk.signals.mailbox), len(vc_entries(vstack, topo))) == before
        # a flood from one screen is capped
        statuses = [post(c, {**ok, "kind": "join", "cid": "nope"})[0] for _ in range(60)]
        assert 429 in statuses and statuses.count(404) <= 50
        desk.end(call.cid, "duty1")
    finally:
        caller.close()
