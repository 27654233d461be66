"""The pipeline end to end on a real Redis: simulator → streams → aggregator → read model."""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from datasources.aggregator import Aggregator
from datasources.audit import audit
from datasources.keys import Keys
from datasources.readmodel import ReadModel
from tests.helpers import independent_counts, run_until_idle, simulate


def test_pipe001_exact_at_every_tier(r, topo, settings):
    written = simulate(r, topo, settings, 6000)
    assert written >= 6000
    run_until_idle(r, topo, settings)
    report = audit(r, topo, settings.pipeline)
    assert report["differences"] == []
    assert report["centres_checked"] == len(topo.centres)
    assert report["entries_recounted"] >= 6000

    rm = ReadModel(r, topo, settings.read_model)
    root = topo.roots[0]
    snap = rm.snapshot(root)
    today = snap["day"].replace("-", "")
    counted = independent_counts(r, topo, Keys(settings.key_prefix), today, settings.tz)
    assert snap["events"]["reported"] == counted["events.reported"] > 0
    assert snap["events"]["resolved"] == counted["events.resolved"] > 0
    assert snap["grids"]["patrols"] == counted["patrols"] > 0
    assert snap["petitions"]["today"] == counted["petitions"]
    # the city is the sum of its children for additive figures
    kids = snap["children"].values()
    assert snap["events"]["reported"] >= sum(k["reported"] for k in kids)
    assert snap["grids"]["patrolled_today"] == sum(k["patrolled_today"] for k in kids)
    assert snap["cameras"]["online"] == sum(k["cameras_online"] for k in kids)
    # every camera has a state after the baseline heartbeat
    assert snap["cameras"]["unknown"] == 0
    # one level down, a district equals the sum of its towns
    district = sorted(topo.children[root])[0]
    dsnap = rm.snapshot(district)
    assert dsnap["events"]["open"] >= sum(k["open"] for k in dsnap["children"].values())
    assert dsnap["grids"]["patrols"] == sum(
        rm.snapshot(t)["grids"]["patrols"] for t in dsnap["children"]
    )


def _event(centre, eid, status="reported", **extra):
    f = {"v": "1", "ts": str(int(time.time() * 1000)), "src": "test", "eid": eid,
         "status": status, "centre": centre, "category": "dispute"}
    if status == "reported":
        f.update(channel="hotline_12345", urgency="normal", due=str(int(time.time() * 1000) + 3_600_000))
    f.update(extra)
    return f


def _village(topo):
    return sorted(c for c, i in topo.centres.items() if i.level == 4)[0]


def test_pipe002_duplicates_count_once(r, topo, settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    entry = _event(v, "dup-1")
    for _ in range(3):
        r.xadd(keys.stream(shard, "events"), entry)
    r.xadd(keys.stream(shard, "events"), _event(v, "dup-1", "resolved"))
    r.xadd(keys.stream(shard, "events"), _event(v, "dup-1", "resolved"))
    agg = run_until_idle(r, topo, settings)
    assert agg.totals.applied == 2 and agg.totals.duplicates == 3
    snap = ReadModel(r, topo, settings.read_model).snapshot(v)
    assert snap["events"]["reported"] == 1
    assert snap["events"]["resolved"] == 1
    assert snap["events"]["open"] == 0
    # a second aggregator run over re-delivered history changes nothing
    r.xgroup_setid(keys.stream(shard, "events"), "aggregator", "0")
    run_until_idle(r, topo, settings)
    assert ReadModel(r, topo, settings.read_model).snapshot(v)["events"]["reported"] == 1
    assert audit(r, topo, settings.pipeline)["ok"]


def test_pipe003_bad_entries_go_to_dead_letter_and_batch_goes_on(r, topo, settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    other = next(c for c, i in topo.centres.items() if i.level == 4 and i.shard != shard)
    stream = keys.stream(shard, "events")
    good = _event(v, "good-1")
    bad = {
        "missing field: eid": {k: v_ for k, v_ in _event(v, "x").items() if k != "eid"},
        "unknown centre: 999999": _event("999999", "b1"),
        "not an integer: ts": {**_event(v, "b2"), "ts": "yesterday"},
        "unsupported version": {**_event(v, "b3"), "v": "2"},
        "value too long: eid": _event(v, "e" * 500),
        "invalid UTF-8 in field: category": {**_event(v, "b4"), "category": b"\xff\xfe\x00junk"},
        "bad status": _event(v, "b5", status="teleported"),
        "bad category": {**_event(v, "b6"), "category": "aliens"},
        "wrong shard": _event(other, "b7"),
        "not an integer: due": {**_event(v, "b8"), "due": "-5"},
        "bad to": _event(v, "b9", status="escalated", to=v),
        "missing field: v": {k: v_ for k, v_ in _event(v, "b10").items() if k != "v"},
    }
    r.xadd(stream, good)
    for f in bad.values():
        r.xadd(stream, f)
    r.xadd(stream, _event(v, "good-2"))
    r.xadd(keys.stream(shard, "patrols"), {"v": "1", "ts": "1", "src": "t", "pid": "p", "grid": "nope", "worker": "w"})
    r.xadd(keys.stream(shard, "cameras"), {"v": "1", "ts": str(int(time.time() * 1000)), "src": "t", "cam": "CAM-NOPE", "state": "online"})
    r.xadd(keys.stream(shard, "petitions"), {"v": "1", "ts": str(int(time.time() * 1000)), "src": "t", "pid": "p1", "centre": v, "channel": "pigeon", "group": "0", "skip_level": "0"})
    agg = run_until_idle(r, topo, settings)
    assert agg.totals.applied == 2
    dead = r.xrange(keys.dead(shard))
    reasons = [f[b"reason"].decode() for _id, f in dead]
    assert len(dead) == len(bad) + 3
    for expected in bad:
        assert any(expected in reason for reason in reasons), (expected, reasons)
    assert any("ts out of range" in x for x in reasons)
    assert any("unknown camera" in x for x in reasons)
    assert any("bad channel" in x for x in reasons)
    # the dead letter keeps where it came from and the original fields, bytes intact
    junk = next(f for _id, f in dead if b"UTF-8" in f[b"reason"])
    assert junk[b"stream"].decode() == stream
    assert junk[b"category"] == b"\xff\xfe\x00junk"
    snap = ReadModel(r, topo, settings.read_model).snapshot(v)
    assert snap["events"]["reported"] == 2
    assert r.xpending(stream, "aggregator")["pending"] == 0
    assert int(r.hget(keys.meta(shard), "dead")) == len(bad) + 3


def test_pipe004_escalation_across_shards_is_handed_on(r, topo, settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    chain = topo.ancestors(v)  # city, district, town, village
    city, district, town = chain[0], chain[1], chain[2]
    ev = keys.stream(topo.centres[v].shard, "events")
    r.xadd(ev, _event(v, "esc-1"))
    r.xadd(ev, _event(v, "esc-1", "escalated", to=town))
    r.xadd(ev, _event(town, "esc-1", "escalated", to=district))
    r.xadd(ev, _event(district, "esc-1", "escalated", to=city))
    run_until_idle(r, topo, settings)
    rm = ReadModel(r, topo, settings.read_model)
    assert rm.snapshot(v)["events"]["open"] == 0
    assert rm.snapshot(district)["events"]["open"] == 0
    assert rm.snapshot(city)["events"]["open"] == 1
    r.xadd(keys.stream(topo.centres[city].shard, "events"), _event(city, "esc-1", "resolved"))
    run_until_idle(r, topo, settings)
    snap = rm.snapshot(city)
    assert snap["events"]["open"] == 0
    assert snap["events"]["closed_at_level"]["city"] == 1
    assert audit(r, topo, settings.pipeline)["ok"]


def test_pipe005_two_aggregators_share_the_shards(r, topo, settings):
    import threading

    simulate(r, topo, settings, 4000, seed=9)
    a, b = Aggregator(r, topo, settings.pipeline), Aggregator(r, topo, settings.pipeline)
    # both advertise themselves before either takes shards, so the share is fair
    a._fair_share()
    b._fair_share()
    a.balance()
    b.balance()
    assert a.held and b.held and not set(a.held) & set(b.held)
    threads = [threading.Thread(target=x.run, kwargs={"until_idle": True}) for x in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert a.totals.read > 0 and b.totals.read > 0
    assert audit(r, topo, settings.pipeline)["ok"]


def test_pipe006_every_key_carries_one_shard_tag(r, topo, settings, prefix):
    simulate(r, topo, settings, 1500, seed=11)
    run_until_idle(r, topo, settings)
    shards = set(topo.shards)
    untagged = []
    for key in r.scan_iter(match=f"{prefix}:*", count=1000):
        k = key.decode()
        if k == f"{prefix}:aggregators":
            continue  # process registry, never touched inside a batch
        tag = k[k.find("{") + 1:k.find("}")] if "{" in k else None
        if tag not in shards or k.count("{") != 1:
            untagged.append(k)
    assert untagged == []


@pytest.mark.parametrize("n", [300])
def test_pipe007_redis7(redis7, topo, settings, n):
    """The same exactness on Redis 7 (the embedded one is 6.2)."""
    simulate(redis7, topo, settings, n, seed=13)
    run_until_idle(redis7, topo, settings)
    assert audit(redis7, topo, settings.pipeline)["differences"] == []


def test_pipe008_trim_keeps_history_until_applied(r, topo, settings):
    """Retention trims old entries, but never one the aggregator has not applied yet."""
    from dataclasses import replace

    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    stream = keys.stream(shard, "events")
    old_ms = int(time.time() * 1000) - 10 * 86_400_000
    # an entry that arrived (stream id) ten days ago, about something of that day
    r.xadd(stream, {**_event(v, "old-1"), "ts": str(old_ms), "due": str(old_ms + 3_600_000)},
           id=f"{old_ms}-0")
    r.xadd(stream, _event(v, "new-1"))
    short = replace(settings, stream_retention_days=1)
    agg = Aggregator(r, topo, short.pipeline)
    agg.balance()
    agg.trim()  # nothing delivered yet: nothing may go
    assert r.xlen(stream) == 2
    agg.run(until_idle=True)
    agg.balance()
    agg.trim()
    ids = [i.decode() for i, _f in r.xrange(stream)]
    assert ids and all(int(i.split("-")[0]) > old_ms for i in ids)
    assert ReadModel(r, topo, settings.read_model).snapshot(v)["events"]["reported"] == 1
    old_day = datetime.fromtimestamp(old_ms / 1000, ZoneInfo(settings.tz)).strftime("%Y%m%d")
    assert r.hget(keys.day(shard, old_day, v), "reported") == b"1"  # applied before the trim


def test_pipe009_handin_is_internal(r, topo, settings):
    """A producer cannot open a case in another shard by posing as the hand-over."""
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    city = topo.ancestors(v)[0]
    bad = _event(v, "fake-1", "escalated", to=city, handoff="1", due="1")
    r.xadd(keys.stream(topo.centres[city].shard, "events"), bad)
    run_until_idle(r, topo, settings)
    snap = ReadModel(r, topo, settings.read_model).snapshot(city)
    assert snap["events"]["open"] == 0
    reasons = [f[b"reason"] for _i, f in r.xrange(keys.dead(topo.centres[city].shard))]
    assert reasons and b"wrong shard" in reasons[0]


def test_pipe010_a_dead_holders_pending_hand_overs_are_forwarded(r, topo, settings):
    """Hand-over outbox entries left pending by a process that died are claimed and forwarded
    by the next holder, even when the shard's producer streams had nothing pending (the outbox
    drains its own pending entries)."""
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    root = topo.roots[0]
    outbox = keys.handoff(shard)
    r.xgroup_create(outbox, "aggregator", id="0", mkstream=True)
    now = int(time.time() * 1000)
    r.xadd(outbox, {"eid": "H-1", "centre": v, "to": root, "due": str(now + 3_600_000),
                    "category": "fire", "ts": str(now)})
    r.xreadgroup("aggregator", "died-1", {outbox: ">"})  # read, never acknowledged
    assert r.xpending(outbox, "aggregator")["pending"] == 1
    agg = Aggregator(r, topo, settings.pipeline)
    deadline = time.monotonic() + 30
    agg.run(until_idle=True, should_stop=lambda: time.monotonic() > deadline)
    assert time.monotonic() < deadline, "the pending hand-over was never forwarded"
    assert r.xpending(outbox, "aggregator")["pending"] == 0
    handin = r.xrange(keys.stream(topo.centres[root].shard, "handin"))
    assert [f[b"eid"] for _i, f in handin] == [b"H-1"]
    assert ReadModel(r, topo, settings.read_model).snapshot(root)["events"]["open"] >= 1
