"""Video-call signalling against a real Redis (no web server): peers and presence, who joined
a call, the mailbox read by one hub per worker, and the call desk's steps (dashboard/calls.py).
The HTTP side is tests/integration/test_vc_signal.py."""

from __future__ import annotations

import json
import time

import pytest

from dashboard.access import Viewer
from dashboard.calls import CallDesk, CallError
from dashboard.settings import Settings
from datasources.signal import Peer, SignalHub, Signals, parse_message
from datasources.vc import Conferences

CITY, DISTRICT, OTHER = "610200", "610202", "610203"
TOWN = "610202001"


@pytest.fixture
def signals(r, topo, prefix):
    return Signals(r, topo, prefix)


@pytest.fixture
def hubs(signals, r, topo, prefix):
    """Two hubs on two clients: two web workers."""
    a, b = SignalHub(signals, block_ms=200), SignalHub(Signals(r, topo, prefix), block_ms=200)
    yield a, b
    a.stop()
    b.stop()


def vc_entries(r, conf: Conferences) -> list[dict]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _i, f in r.xrange(conf.stream)]


@pytest.fixture
def desk(r, topo, prefix, settings, signals):
    s = Settings.from_env(data_dir=settings.data_dir, redis_url=settings.redis_url,
                          database_url=settings.database_url, key_prefix=prefix,
                          conference_url_template="", vc_ring_s=30.0, vc_simulate=True)
    conf = Conferences(r, topo, prefix, "", 3600)
    changed: list[int] = []
    d = CallDesk(conf, signals, None, s, topo, lambda: changed.append(1))
    d.changed = changed
    return d


def test_sig001_peer_registers_renews_lapses_and_unregisters(r, topo, prefix, signals):
    p = Peer("A" * 16, "alice", DISTRICT)
    assert not signals.present(DISTRICT)
    signals.register(p)
    assert signals.peer(p.id) == p and signals.present(DISTRICT)
    signals.unregister(p)
    assert signals.peer(p.id) is None and not signals.present(DISTRICT)
    short = Signals(r, topo, prefix, peer_ttl_s=0.3)
    short.register(p)
    assert short.present(DISTRICT)
    time.sleep(0.4)
    assert short.peer(p.id) is None and not short.present(DISTRICT)  # lapsed: its worker died


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"name": "x"}', b'{"name": "", "centre": "610202"}',
                                 b'{"name": "x", "centre": "999999"}', b"{" * 5000])
def test_sig002_a_malformed_peer_is_nobody(signals, r, raw):
    pid = "B" * 16
    r.set(signals.keys.vc_peer(signals.shard, pid), raw)
    assert signals.peer(pid) is None
    for bad in ("../x", "A" * 15, "A" * 17, None, 7, "A" * 15 + ":"):
        assert signals.peer(bad) is None


def test_sig003_join_one_screen_per_centre_when_single(signals, r):
    a, b = Peer("a" * 16, "u", TOWN), Peer("b" * 16, "u", TOWN)
    assert signals.join("c1", a, single=True, ttl_s=60) == "joined"
    assert signals.join("c1", a, single=True, ttl_s=60) == "already"
    assert signals.join("c1", b, single=True, ttl_s=60) == "taken"
    assert signals.join("c1", b, single=False, ttl_s=60) == "joined"
    assert signals.mark("c1", TOWN, "answer") and not signals.mark("c1", TOWN, "decline")
    assert signals.answered("c1") == {TOWN: "answer"}
    key = signals.keys.vc_joined(signals.shard, "c1")
    r.hset(key, mapping={"junk": "x", "c" * 16: "999", "a:" + OTHER: "maybe"})
    assert signals.joined("c1") == {a.id: TOWN, b.id: TOWN}
    assert signals.answered("c1") == {TOWN: "answer"}
    assert 0 < r.pttl(key) <= 60_000
    assert signals.leave("c1", a.id) and not signals.leave("c1", a.id)
    signals.drop_call("c1")
    assert signals.joined("c1") == {}


def test_sig004_the_hub_delivers_across_workers_and_skips_garbage(hubs, signals, r):
    a, b = hubs
    mine = b.subscribe("p" * 16, TOWN)
    other = a.subscribe("q" * 16, OTHER)
    r.xadd(signals.mailbox, {"to": "p" * 16, "body": "not json"})
    r.xadd(signals.mailbox, {"to": "../../etc", "body": '{"kind": "x"}'})
    r.xadd(signals.mailbox, {"nothing": "here"})
    r.xadd(signals.mailbox, {"to": "p" * 16, "body": "[1, 2]"})
    r.xadd(signals.mailbox, {"to": "p" * 16, "body": json.dumps({"kind": "big", "x": "y" * 200_000})})
    signals.send("p" * 16, {"kind": "offer", "sdp": "v=0"})   # posted "in worker A"
    signals.send(f"c:{TOWN}", {"kind": "ring", "cid": "c"})
    assert mine.get(3) == {"kind": "offer", "sdp": "v=0"}
    assert mine.get(3) == {"kind": "ring", "cid": "c"}
    assert mine.get(0.3) is None and other.get(0.1) is None
    b.unsubscribe(mine)
    signals.send("p" * 16, {"kind": "offer"})
    assert mine.get(0.5) is None
    assert parse_message({b"to": b"c:610202", b"body": b'{"kind":"end"}'}) == ("c:610202", {"kind": "end"})
    assert parse_message({b"to": b"c:../x", b"body": b'{"kind":"end"}'}) is None


def test_sig005_rate_cap(signals):
    pid = "r" * 16
    assert all(signals.allow(pid, 5, 0.3) for _ in range(5))
    assert not signals.allow(pid, 5, 0.3)
    time.sleep(0.35)
    assert signals.allow(pid, 5, 0.3)


def test_sig006_a_call_rings_answers_relays_and_ends(desk, signals, hubs, r):
    hub = hubs[0]
    caller, callee = Peer("C" * 16, "duty1", CITY), Peer("D" * 16, "alice", DISTRICT)
    second = Peer("E" * 16, "alice", DISTRICT)
    for p in (caller, callee, second):
        signals.register(p)
    subs = {p.id: hub.subscribe(p.id, p.centre) for p in (caller, callee, second)}
    call = desk.start("duty1", CITY, [DISTRICT], group=False, tier=None)
    assert call.mode == "p2p" and desk.changed
    ring = subs[callee.id].get(3)
    assert ring["kind"] == "ring" and ring["cid"] == call.cid and ring["from"] == CITY
    assert subs[second.id].get(3)["kind"] == "ring"
    assert [m["cid"] for m in desk.ringing_for(DISTRICT)] == [call.cid]
    assert not desk.simulated(call)  # a screen of the callee is open
    duty1, alice = Viewer("duty1", "duty", CITY), Viewer("alice", "leader", DISTRICT)
    desk.join(duty1, caller, call)
    reply = desk.join(alice, callee, call)
    assert reply["peers"] == [{"peer": caller.id, "centre": CITY}]
    assert reply["call"]["mode"] == "p2p" and reply["call"]["convener"] == CITY
    assert subs[caller.id].get(3) == {"kind": "joined", "cid": call.cid, "peer": callee.id,
                                      "centre": DISTRICT}
    cancel = subs[second.id].get(3)
    assert cancel["kind"] == "cancel" and cancel["except"] == callee.id  # the stream drops it for the callee
    assert desk.ringing_for(DISTRICT) == []
    with pytest.raises(CallError) as e:
        desk.join(alice, second, call)
    assert (e.value.status, e.value.code) == (409, "answered_elsewhere")
    with pytest.raises(CallError) as e:
        desk.relay(second, call, "offer", caller.id, "v=0")
    assert e.value.code == "not_joined"
    desk.relay(caller, call, "offer", callee.id, "v=0 offer")
    msg = subs[callee.id].get(3)
    while msg["kind"] != "offer":  # the centre's cancel came first
        msg = subs[callee.id].get(3)
    assert msg == {"kind": "offer", "cid": call.cid, "from": caller.id, "centre": CITY,
                   "sdp": "v=0 offer"}
    with pytest.raises(CallError) as e:
        desk.relay(caller, call, "offer", callee.id, "x" * (64 * 1024 + 1))
    assert e.value.status == 413
    out = desk.leave("alice", callee, call)   # the callee leaves: a two-party call ends
    assert out["ended"]
    assert subs[caller.id].get(3)["kind"] == "left"
    assert subs[caller.id].get(3) == {"kind": "end", "cid": call.cid}
    assert desk.conferences.get(call.cid) is None and signals.joined(call.cid) == {}
    actions = [(e["action"], e["by"], e["centres"]) for e in vc_entries(r, desk.conferences)]
    assert actions == [("start", "duty1", DISTRICT), ("answer", "alice", DISTRICT),
                       ("leave", "alice", DISTRICT), ("end", "alice", DISTRICT)]


def test_sig007_decline_ends_a_two_party_call_and_simulated(desk, signals, r):
    call = desk.start("duty1", CITY, [OTHER], group=False, tier=None)
    assert desk.simulated(call)  # no screen of OTHER open, the setting asks for it
    peer = Peer("F" * 16, "bob", OTHER)
    signals.register(peer)
    assert not desk.simulated(call)
    out = desk.decline(Viewer("bob", "duty", OTHER), peer, call)
    assert out == {"declined": True, "ended": True}
    assert [e["action"] for e in vc_entries(r, desk.conferences)] == ["start", "decline", "end"]
    caller = Peer("G" * 16, "duty1", CITY)
    signals.register(caller)
    call = desk.start("duty1", CITY, [OTHER], group=False, tier=None)
    with pytest.raises(CallError) as e:
        desk.decline(Viewer("duty1", "duty", CITY), caller, call)  # the convener is not invited
    assert e.value.status == 403
    with pytest.raises(CallError) as e:
        desk.end_by(Viewer("bob", "duty", OTHER), peer, call)  # the callee cannot end it, only leave
    assert e.value.status == 403
    assert desk.end_by(Viewer("duty1", "duty", CITY), caller, call) == {"ended": True}
    assert not desk.end(call.cid, "duty1")


def test_sig008_a_group_call_without_sfu_or_template_does_not_start(desk):
    assert desk.start("duty1", CITY, [DISTRICT, OTHER], group=True, tier=None) is None
