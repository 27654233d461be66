"""Mutation tests of the audit: plant a bug in the real aggregator, run it in-process on
simulated entries, and the audit must report differences; without the bug it is clean.

Each planted bug is undone by monkeypatch after its test. Each test prints what it planted and
how many differences the audit found (`pytest -s` shows them).
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections import Counter

import datasources.aggregator as aggregator_module
from datasources.aggregator import Aggregator, rebuild
from datasources.audit import audit
from datasources.contract import Clock
from datasources.keys import Keys
from datasources.rollup import Q
from datasources.simulator import write
from tests.helpers import todays_entries

DUPLICATE_SHARE = 0.04


def _produce(r, topo, settings, n: int, seed: int = 5, baseline: bool = True) -> dict:
    """About n simulated entries over the last hours of today, a few of them written twice (a
    producer's retries), plus one case escalated from its village up to the city (the same
    eid and status at three centres, the last step a hand-over to the city's shard)."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    entries = todays_entries(topo, settings, n, seed, baseline)
    retries = [e for e in entries if not e[1].endswith(":cameras")
               and rng.random() < DUPLICATE_SHARE]
    write(r, iter(entries))
    write(r, iter(retries))
    keys = Keys(settings.key_prefix)
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
    up = topo.ancestors(village)  # city, district, town, village
    ts = now - 60_000
    base = {"v": "1", "src": "test", "eid": "TWICE-1", "category": "dispute"}
    stream = keys.stream(topo.centres[village].shard, "events")
    for fields in (
        {"ts": str(ts), "status": "reported", "centre": village, "channel": "video",
         "urgency": "urgent", "due": str(ts + 3_600_000)},
        {"ts": str(ts + 1), "status": "escalated", "centre": village, "to": up[2]},
        {"ts": str(ts + 2), "status": "escalated", "centre": up[2], "to": up[1]},
        {"ts": str(ts + 3), "status": "escalated", "centre": up[1], "to": up[0]},  # hand-over
    ):
        r.xadd(stream, {**base, **fields})
    return {"entries": len(entries) + 3, "retries": len(retries)}


def _run(r, topo, settings) -> Aggregator:
    agg = Aggregator(r, topo, settings.pipeline)
    agg.run(until_idle=True)
    return agg


def _report(what: str, report: dict) -> int:
    diffs = report["differences"]
    figures = Counter(d["figure"].split(".")[0] for d in diffs)
    print(f"\nplanted: {what}\n  audit: {len(diffs)} differences {dict(figures)}; "
          f"{report['entries_recounted']} entries recounted, "
          f"{report['duplicates']} duplicates; e.g. {diffs[:3]}")
    return len(diffs)


def test_mut000_without_a_bug_the_audit_is_clean(r, topo, settings):
    made = _produce(r, topo, settings, 6000)
    agg = _run(r, topo, settings)
    report = audit(r, topo, settings.pipeline)
    assert _report("nothing (control)", report) == 0
    assert report["ok"] and report["backlog"] == {}
    assert agg.totals.duplicates >= made["retries"] > 0
    assert report["duplicates"] == agg.totals.duplicates
    assert report["entries_recounted"] >= 6000


def test_mut001_bucketing_day_shifted(r, topo, settings, monkeypatch):
    real = Clock.buckets
    monkeypatch.setattr(Clock, "buckets", lambda self, ts: real(self, ts - 86_400_000))
    _produce(r, topo, settings, 6000)
    _run(r, topo, settings)
    monkeypatch.undo()
    report = audit(r, topo, settings.pipeline)
    n = _report("Clock.buckets names the day before each entry's local day", report)
    assert n > 0
    assert any(d["figure"] == "today.reported" for d in report["differences"])


def test_mut002_bucketing_hour_shifted(r, topo, settings, monkeypatch):
    real = Clock.buckets
    monkeypatch.setattr(Clock, "buckets", lambda self, ts: real(self, ts + 3_600_000))
    _produce(r, topo, settings, 6000)
    _run(r, topo, settings)
    monkeypatch.undo()
    report = audit(r, topo, settings.pipeline)
    n = _report("Clock.buckets names the hour after each entry's local hour", report)
    assert n > 0
    assert any(d["figure"].startswith("hour.") for d in report["differences"])


def test_mut003_bucketing_cache_per_utc_hour_in_kolkata(r, topo, settings, monkeypatch):
    """The bug the 15-minute cache exists to avoid: bucket names cached per UTC hour are
    wrong for half of every hour in a +05:30 zone (and put 00:00-00:30 on the day before)."""
    kolkata = dataclasses.replace(settings, tz="Asia/Kolkata")
    monkeypatch.setattr("datasources.contract._BLOCK_MS", 3_600_000)
    _produce(r, topo, kolkata, 6000)
    _run(r, topo, kolkata)
    monkeypatch.undo()
    report = audit(r, topo, kolkata.pipeline)
    n = _report("Clock.buckets cached per UTC hour, PINGAN_TZ=Asia/Kolkata", report)
    assert n > 0
    assert any(d["figure"].startswith("hour.") for d in report["differences"])


def test_mut004_kolkata_without_a_bug_is_clean(r, topo, settings):
    kolkata = dataclasses.replace(settings, tz="Asia/Kolkata")
    _produce(r, topo, kolkata, 3000)
    _run(r, topo, kolkata)
    assert _report("nothing, PINGAN_TZ=Asia/Kolkata (control)", audit(r, topo, kolkata.pipeline)) == 0


def _busiest_village(r, topo, settings) -> str:
    keys = Keys(settings.key_prefix)
    seen = Counter()
    for shard in topo.shards:
        for _id, f in r.xrange(keys.stream(shard, "events")):
            code = f[b"centre"].decode()
            if topo.centres[code].level == 4:
                seen[code] += 1
    return seen.most_common(1)[0][0]


def test_mut005_chain_skips_the_district(r, topo, settings):
    """One village's chain misses its district, so its rollups skip a tier. The audit gets
    the same broken topology: it reads only `parent` and `level` from it."""
    _produce(r, topo, settings, 6000)
    village = _busiest_village(r, topo, settings)
    info = topo.centres[village]
    broken = dataclasses.replace(
        topo, centres={**topo.centres, village: dataclasses.replace(info, chain=info.chain[:-1])})
    _run(r, broken, settings)
    report = audit(r, broken, settings.pipeline)
    n = _report(f"Topology chain of {village} is {broken.centres[village].chain} "
                f"(no district {info.chain[-1]})", report)
    assert n > 0
    assert {d["centre"] for d in report["differences"]} == {info.chain[-1]}


def _rekey(monkeypatch, how):
    """Plant a wrong idempotency key in every record, whichever validation path made it (the
    aggregator's one-pass `validate_fast`, or `validate` for the rest)."""
    real, real_fast = aggregator_module.validate, aggregator_module.validate_fast

    def rekeyed(rec, f):
        return (*rec[:Q], how(rec, f), *rec[Q + 1:]) if rec and rec[Q] else rec

    def validate(kind, f, shard, topo, clock, arrived_ms=None):
        return rekeyed(real(kind, f, shard, topo, clock, arrived_ms), f)

    def validate_fast(kind, f, *args):
        return rekeyed(real_fast(kind, f, *args), f)

    monkeypatch.setattr(aggregator_module, "validate", validate)
    monkeypatch.setattr(aggregator_module, "validate_fast", validate_fast)


def test_mut006_idempotency_key_unique_per_entry(r, topo, settings, monkeypatch):
    made = _produce(r, topo, settings, 6000)
    counter = iter(range(10**9))
    _rekey(monkeypatch, lambda rec, f: f"{rec[Q]}|{next(counter)}")
    agg = _run(r, topo, settings)
    monkeypatch.undo()
    assert agg.totals.duplicates == 0 and made["retries"] > 0
    report = audit(r, topo, settings.pipeline)
    n = _report(f"idempotency key unique per entry ({made['retries']} producer retries "
                "counted twice)", report)
    assert n > 0
    assert any(d["figure"] == "today.reported" and d["read_model"] > d["recount"]
               for d in report["differences"])


def test_mut007_idempotency_key_without_centre(r, topo, settings, monkeypatch):
    _produce(r, topo, settings, 6000)
    _rekey(monkeypatch, lambda rec, f: rec[Q].rsplit("|", 1)[0] if rec[0] == "e" else rec[Q])
    _run(r, topo, settings)
    monkeypatch.undo()
    report = audit(r, topo, settings.pipeline)
    n = _report("idempotency key e|eid|status (centre dropped): a second escalation of the "
                "same case is taken for a duplicate", report)
    assert n > 0
    assert any(d["figure"] == "today.escalated" and d["read_model"] < d["recount"]
               for d in report["differences"])


def test_mut008_hand_over_with_a_wrong_deadline(r, topo, settings, monkeypatch):
    real = aggregator_module.validate_handoff

    def late_due(f, shard, topo_):
        out = real(f, shard, topo_)
        return {**out, "due": str(int(out["due"]) + 3_600_000)}

    monkeypatch.setattr(aggregator_module, "validate_handoff", late_due)
    _produce(r, topo, settings, 6000)
    _run(r, topo, settings)
    monkeypatch.undo()
    report = audit(r, topo, settings.pipeline)
    n = _report("hand-over forwards each case with its deadline an hour late", report)
    assert n > 0
    assert any(d["figure"].startswith("handin.") for d in report["differences"])


def test_mut009_cases_never_expire(r, topo, settings, monkeypatch):
    """A case opened 30 h ago with a case age limit of one day: the aggregator must expire it
    (meta `expired`); with expiry planted out, the audit sees it still open."""
    short = dataclasses.replace(settings, case_max_age_days=1)
    keys = Keys(settings.key_prefix)
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
    shard = topo.centres[village].shard
    old = int(time.time() * 1000) - 30 * 3_600_000
    for i in range(3):
        r.xadd(keys.stream(shard, "events"),
               {"v": "1", "ts": str(old + i), "src": "test", "eid": f"OLD-{i}",
                "status": "reported", "centre": village, "category": "fire",
                "channel": "public", "urgency": "normal", "due": str(old + 3_600_000)},
               id=f"{old + i}-0")
    _run(r, topo, short)
    _run(r, topo, short)  # `--until-idle` may stop before its first expiry pass; this one has it
    clean = audit(r, topo, short.pipeline)
    assert _report("nothing: three cases open 30 h, limit 1 day (control)", clean) == 0
    assert clean["incidents"]["expired"] == 3

    r.xadd(keys.stream(shard, "events"),
           {"v": "1", "ts": str(old + 10), "src": "test", "eid": "OLD-9",
            "status": "reported", "centre": village, "category": "fire", "channel": "public",
            "urgency": "normal", "due": str(old + 3_600_000)}, id=f"{old + 10}-0")
    monkeypatch.setattr(Aggregator, "expire_cases", lambda self, st: 0)
    _run(r, topo, short)
    monkeypatch.undo()
    report = audit(r, topo, short.pipeline)
    n = _report("Aggregator.expire_cases does nothing", report)
    assert n > 0
    assert {d["figure"] for d in report["differences"]} == {"now.open", "now.overdue"}


def test_mut010_opening_balance_after_retention(r, topo, settings):
    """History older than the retention is trimmed: open cases, tombstones and camera states
    from it are an opening balance (`carried`); everything after the trim must be explained
    by the retained entries; after `pingan rebuild` the audit is clean too."""
    keys = Keys(settings.key_prefix)
    short = dataclasses.replace(settings, stream_retention_days=2)
    now = int(time.time() * 1000)
    old, mid = now - 3 * 86_400_000, now - 86_400_000
    villages = sorted(c for c, i in topo.centres.items() if i.level == 4)[:40]
    by_shard = Counter()
    writes: dict[str, list] = {}  # stream → [(id, fields)], written in id order
    for i, v in enumerate(villages):
        up = topo.ancestors(v)
        shard = topo.centres[v].shard
        ev = writes.setdefault(keys.stream(shard, "events"), [])
        base = {"v": "1", "src": "test", "eid": f"C-{i}", "centre": v, "category": "security"}
        ev.append(((old + i, 0), {**base, "ts": str(old + i), "status": "reported",
                                   "channel": "public", "urgency": "normal",
                                   "due": str(old + 86_400_000)}))
        by_shard[shard] += 1
        step = i % 4  # 0: still open; 1: resolved; 2: escalated to the town; 3: to the city
        if step == 1:
            ev.append(((mid + i, 0), {**base, "ts": str(mid + i), "status": "resolved"}))
        elif step == 2:
            ev.append(((mid + i, 0), {**base, "ts": str(mid + i), "status": "escalated",
                                       "to": up[2]}))
        elif step == 3:
            for j, (frm, to) in enumerate(((v, up[2]), (up[2], up[1]), (up[1], up[0]))):
                ev.append(((mid + i, j), {**base, "centre": frm, "ts": str(mid + i + j),
                                           "status": "escalated", "to": to}))
    for n, (cam, (centre, _kind)) in enumerate(sorted(topo.camera.items())):
        writes.setdefault(keys.stream(topo.centres[centre].shard, "cameras"), []).append(
            ((old, n), {"v": "1", "ts": str(old), "src": "test", "cam": cam,
                        "state": "online"}))  # every camera, three days ago
    pipe = r.pipeline(transaction=False)
    for stream, items in writes.items():
        for (ms, seq), fields in sorted(items, key=lambda x: x[0]):
            pipe.xadd(stream, fields, id=f"{ms}-{seq}")
    pipe.execute()
    _produce(r, topo, short, 3000, baseline=False)
    _run(r, topo, short)
    before = audit(r, topo, short.pipeline)
    assert _report("nothing, before the trim (control)", before) == 0

    agg = Aggregator(r, topo, short.pipeline)
    agg.balance()
    agg.trim()  # drops what arrived before now - 2 days
    agg.release_all()
    assert all(r.hget(keys.meta(s), "trimmed_to") for s in by_shard)
    report = audit(r, topo, short.pipeline)
    assert _report("nothing, after the trim: carried from the read model", report) == 0
    assert report["carried"] >= 10  # the cases reported three days ago and still open
    assert report["carried_cameras"] > len(topo.camera) / 2
    # cameras that failed today after three silent days: was their state before known?
    assert report["uncertain_camera_failures"] > 0

    # a case in the read model that opened after the trim must be explained: plant one
    v = villages[0]
    shard = topo.centres[v].shard
    chain = topo.centres[v].chain
    pipe = r.pipeline()
    pipe.hset(keys.cases(shard), "FAKE-1", f"{now + 3_600_000}|fire|{','.join(chain)}")
    pipe.zadd(keys.opened(shard), {"FAKE-1": now - 60_000})
    for c in chain:
        pipe.hincrby(keys.gauge(shard, c), "open", 1)
        pipe.zadd(keys.due(shard, c), {"FAKE-1": now + 3_600_000})
    pipe.execute()
    agg.balance()
    agg.roll_up(full=True)  # the city's roll-up follows the read model, as it would live
    agg.release_all()
    planted = audit(r, topo, short.pipeline)
    n = _report("a case opened in the read model after the trim, with no entry", planted)
    assert n == len(chain)
    assert {d["figure"] for d in planted["differences"]} == {"now.open"}
    # the same case dated before the trim is part of the opening balance
    r.zadd(keys.opened(shard), {"FAKE-1": old})
    balanced = audit(r, topo, short.pipeline)
    assert balanced["differences"] == [] and balanced["carried"] == report["carried"] + 1

    rebuild(r, topo, short.pipeline)
    rebuilt = audit(r, topo, short.pipeline)
    assert _report("nothing, after pingan rebuild (control)", rebuilt) == 0
    assert rebuilt["carried"] == 0  # a rebuild keeps no case it cannot recount


def test_mut011_incidents_are_reported(r, topo, settings):
    """What the aggregator recorded as lost is in the report: a rollback's lost batches and
    entries, and a read-model key someone overwrote (quarantined) with what that changed."""
    keys = Keys(settings.key_prefix)
    _produce(r, topo, settings, 2000)
    agg = _run(r, topo, settings)
    assert audit(r, topo, settings.pipeline)["ok"]
    village = _busiest_village(r, topo, settings)
    shard = topo.centres[village].shard
    agg.incident(shard, "rollback", version_before=40, version_after=37, batches_lost=3,
                 entries_lost=12, streams=f"{keys.stream(shard, 'events')}: 12 entries after 1-0",
                 restarted=1)
    gauge = keys.gauge(shard, village)
    open_before = int(r.hget(gauge, "open") or 0)
    r.delete(gauge)
    r.set(gauge, "overwritten")  # someone else's write, of the wrong type
    now = int(time.time() * 1000)
    r.xadd(keys.stream(shard, "events"),
           {"v": "1", "ts": str(now), "src": "test", "eid": "Q-1", "status": "reported",
            "centre": village, "category": "fire", "channel": "public", "urgency": "normal",
            "due": str(now + 3_600_000)})
    _run(r, topo, settings)
    report = audit(r, topo, settings.pipeline)
    _report(f"{gauge} overwritten with a string; a rollback incident", report)
    inc = report["incidents"]
    assert inc["total"] == 2
    assert inc["lost"] == {"rollbacks": 1, "batches": 3, "entries": 12, "at_least": False}
    assert [q["key"] for q in inc["quarantined"]] == [gauge]
    assert inc["by_shard"][shard]["quarantined"] == 1
    # what the quarantine cost: the village's open cases before it are gone from the figure
    lost = {d["figure"]: d for d in report["differences"] if d["centre"] == village}
    assert lost and all(f.startswith("now.") for f in lost)
    if open_before:
        assert lost["now.open"]["recount"] - lost["now.open"]["read_model"] == open_before


def test_mut012_repeated_field_names_count(r, topo, settings):
    keys = Keys(settings.key_prefix)
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
    shard = topo.centres[village].shard
    now = int(time.time() * 1000)
    flat = ["v", "1", "ts", str(now), "src", "test", "pid", "T-33", "centre", village,
            "channel", "visit", "group", "0", "skip_level", "0"]
    flat += ["x", "1"] * 25  # 8 + 25 = 33 fields, 9 distinct names
    r.execute_command("XADD", keys.stream(shard, "petitions"), "*", *flat)
    _run(r, topo, settings)
    report = audit(r, topo, settings.pipeline)  # counts the fields as written: refuses the entry
    _report("nothing: a petition of 33 fields, 25 of them named x", report)
    dead = r.xrange(keys.dead(shard))
    assert [f[b"nfields"] for _i, f in dead] == [b"33"]  # a dead letter, like any 33 fields
    assert report["ok"]


def test_mut013_hostile_entries_through_the_pipeline(r, topo, settings):
    """Entries that break the contract in every way, written to Redis as bytes: the aggregator
    dead-letters exactly those the audit's own validator refuses, and the figures agree."""
    keys = Keys(settings.key_prefix)
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
    shard = topo.centres[village].shard
    up = topo.ancestors(village)
    other = next(c for c, i in sorted(topo.centres.items())
                 if i.level == 4 and i.shard != shard)
    now = int(time.time() * 1000)
    ev = keys.stream(shard, "events")

    def event(name, **extra):
        f = {"v": "1", "ts": str(now - 1000), "src": "test", "eid": name, "status": "reported",
             "centre": village, "category": "dispute", "channel": "video",
             "urgency": "normal", "due": str(now + 3_600_000)}
        f.update(extra)
        return {k: v for k, v in f.items() if v is not None}

    hostile = [
        event("H-1", category=b"\xff\xfe"), event("H-2", src="a\tb"), event("H-3", eid="e" * 65),
        event("H-4", src="x\u00a0y"), event("H-5", src="x\u200by"), event("H-6", channel=None),
        event("H-7", centre=other), event("H-8", ts=str(now + 600_000)),
        event("H-9", ts=str(now - 49 * 3_600_000)), event("H-10", ts="946684799999"),
        event("H-11", status="escalated", to=village), event("H-12", status="escalated",
                                                            to=other),
        event("H-13", grid="nope"), event("H-14", due="１２"), event("H-15", v="2"),
        event("H-16", **{f"x{i}": "1" for i in range(25)}), event("H-17", note="n" * 257),
        event("H-18", status="evaluated", satisfied="yes"),
        # and good ones among them, some at the edges of the time bounds
        event("G-1"), event("G-2", ts=str(now + 290_000)), event("G-3", src="网格员 app"),
        event("G-4", status="escalated", to=up[2]), event("G-5", status="evaluated",
                                                          satisfied="1"),
        event("G-6", **{f"x{i}": "1" for i in range(22)}),
    ]
    late_id = now - 47 * 3_600_000  # arrived 47 h ago, about something 47.9 h before that
    r.xadd(ev, event("G-7", ts=str(late_id - 47 * 3_600_000 - 3_000_000)), id=f"{late_id}-0")
    for f in hostile:
        r.xadd(ev, f)
    _run(r, topo, settings)
    report = audit(r, topo, settings.pipeline)
    _report("nothing: 18 hostile and 7 good entries written as bytes", report)
    assert report["ok"]
    assert report["entries_rejected"] == report["dead_letters"] == 18
    assert report["entries_recounted"] == 7


def test_mut014_lifecycle_in_awkward_orders(r, topo, settings):
    """Orders the simulator never writes: resolved before reported, a case reported again on
    another day after it was resolved, an escalation of a case never opened, a resolution at
    the city before the hand-over arrives, a case escalated back and forth within the shard.
    The audit's lifecycle and the aggregator's must agree."""
    keys = Keys(settings.key_prefix)
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[1]
    shard = topo.centres[village].shard
    city, district, town = topo.ancestors(village)[:3]
    now = int(time.time() * 1000)
    yesterday = now - 26 * 3_600_000
    ev, city_ev = keys.stream(shard, "events"), keys.stream(topo.centres[city].shard, "events")

    def event(eid, status, ts, centre=village, **extra):
        f = {"v": "1", "ts": str(ts), "src": "test", "eid": eid, "status": status,
             "centre": centre, "category": "fire"}
        if status == "reported":
            f.update(channel="public", urgency="urgent", due=str(ts + 60_000))
        return {**f, **extra}

    r.xadd(ev, event("A", "resolved", now - 5000))  # before its report
    r.xadd(ev, event("A", "reported", now - 9000))
    r.xadd(ev, event("B", "reported", yesterday))
    r.xadd(ev, event("B", "resolved", yesterday + 1000))
    r.xadd(ev, event("B", "reported", now - 1000))  # again, another day: opens nothing
    r.xadd(ev, event("C", "escalated", now - 1000, to=town))  # never opened
    r.xadd(ev, event("C", "reported", now - 500))
    r.xadd(city_ev, event("D", "resolved", now - 100, centre=city))  # before the hand-in
    r.xadd(ev, event("D", "reported", now - 3000))
    r.xadd(ev, event("D", "escalated", now - 2000, to=district))
    r.xadd(ev, event("D", "escalated", now - 1500, centre=district, to=city))
    r.xadd(ev, event("E", "reported", now - 3000))
    r.xadd(ev, event("E", "escalated", now - 2000, to=town))
    r.xadd(ev, event("E", "escalated", now - 1800, centre=town, to=district))
    r.xadd(ev, event("E", "reported", now - 1000, centre=town))  # reported again, elsewhere
    r.xadd(ev, event("F", "reported", now - 3000))
    r.xadd(ev, event("F", "escalated", now - 2000, to=town))
    r.xadd(ev, event("F", "escalated", now - 1000, to=town))  # again from the village
    _run(r, topo, settings)
    report = audit(r, topo, settings.pipeline)
    _report("nothing: lifecycle entries in awkward orders", report)
    assert report["ok"]
    snap_open = int(r.hget(keys.gauge(shard, district), "open") or 0)
    assert snap_open == 3  # C at the village, E at the district, F at the town
