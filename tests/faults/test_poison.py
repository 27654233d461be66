"""Fault 1: poison. Entries of every shape a producer (or anyone who reaches Redis) can write,
next to valid ones, and internal keys overwritten with garbage; `pingan aggregate
--until-idle` as a real process must exit 0 having applied every valid entry once and turned
every poison entry into one bounded dead letter with its reason (docs/STREAMS.md §3, §4, §7).
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections import Counter, defaultdict

import pytest

from datasources.aggregator import Aggregator
from datasources.audit import audit
from datasources.keys import Keys
from datasources.readmodel import parse_meta
from tests.faults.common import (
    aggregator_env,
    backlog_total,
    check_dead_letter,
    dead_letters,
    event,
    local_day,
    model_day,
    now_ms,
    pending_total,
    report,
    run_bounded,
    shortfall,
    totals_from,
    xadd_pairs,
)

MB2 = 2 * 1024 * 1024
JUNK = 10_000


def _village(topo, shard: str) -> str:
    return sorted(c for c, i in topo.centres.items() if i.shard == shard and i.level == 4)[0]


def _pairs(fields: dict) -> list[tuple]:
    return list(fields.items())


def _junk(rng: random.Random, i: int) -> list[tuple]:
    """Random short entries that break the contract in many ways (never valid)."""
    shape = i % 5
    if shape == 0:  # no version at all
        return [(b"junk", str(i).encode())]
    if shape == 1:  # random bytes, names included
        return [(rng.randbytes(rng.randint(1, 12)), rng.randbytes(rng.randint(0, 40)))
                for _ in range(rng.randint(1, 6))]
    if shape == 2:  # looks like an event, wrong version
        return [(b"v", b"9"), (b"ts", b"1"), (b"eid", b"J%d" % i)]
    if shape == 3:  # a repeated field name
        return [(b"v", b"1"), (b"v", b"1"), (b"ts", b"not-a-number")]
    return [(b"v", b"1"), (b"ts", str(now_ms()).encode()), (b"src", b"junk"),
            (b"eid", b"J%d" % i), (b"status", b"reported"), (b"centre", b"nowhere"),
            (b"category", b"dispute")]


def test_fault_poison_entries_become_bounded_dead_letters(r, topo, settings, prefix):
    keys = Keys(prefix)
    day = local_day(settings.tz)
    districts = [s for s in topo.shards if s != topo.roots[0]]
    s1, s2, s3, s4 = districts[:4]
    v1, v2, v3, v4 = (_village(topo, s) for s in (s1, s2, s3, s4))

    # before: a case opened and applied, whose `cases` value is then corrupted
    r.xadd(keys.stream(s1, "events"), event(v1, "E-corrupt"))
    Aggregator(r, topo, settings.pipeline).run(until_idle=True)
    assert r.hexists(keys.cases(s1), "E-corrupt")
    r.hset(keys.cases(s1), "E-corrupt", "corrupt-no-separators")
    # internal keys overwritten by someone: garbage in a meta hash, a gauge of the wrong type
    bad_meta = {"version": "abc", "dead": "x", "duplicates": "-", "last_ts": "zz",
                "applied_at": "NaN", "heartbeat": ""}
    r.hset(keys.meta(s2), mapping=bad_meta)
    town2 = topo.centres[v2].parent
    r.set(keys.gauge(s2, town2), "x")

    expected = Counter({"reported": 1})  # E-corrupt, applied before
    valid = 0
    poison: dict[tuple[str, str], tuple[list[tuple], str]] = {}  # (stream, id) → (pairs, reason)

    def bad(stream: str, pairs: list[tuple], reason: str) -> None:
        poison[(stream, xadd_pairs(r, stream, pairs))] = (pairs, reason)

    def good(stream: str, fields: dict, figure: str | None) -> None:
        nonlocal valid
        xadd_pairs(r, stream, _pairs(fields))
        valid += 1
        if figure:
            expected[figure] += 1

    ts = now_ms()
    for shard, v in ((s1, v1), (s2, v2), (s3, v3), (s4, v4)):
        grids = sorted(g for g, c in topo.grid_centre.items() if c == v)
        cams = sorted(c for c, (centre, _k) in topo.camera.items() if centre == v)
        for i in range(20):
            good(keys.stream(shard, "events"), event(v, f"F-{shard}-{i}"), "reported")
        for i in range(10):
            good(keys.stream(shard, "patrols"),
                 {"v": "1", "ts": str(ts), "src": "fault", "pid": f"P-{shard}-{i}",
                  "grid": grids[i % len(grids)], "worker": f"W-{i}"}, "patrols")
        for i in range(5):
            good(keys.stream(shard, "petitions"),
                 {"v": "1", "ts": str(ts), "src": "fault", "pid": f"T-{shard}-{i}",
                  "centre": v, "channel": "visit", "group": "0", "skip_level": "0"},
                 "petitions")
        for cam in cams[:3]:
            good(keys.stream(shard, "cameras"),
                 {"v": "1", "ts": str(ts), "src": "fault", "cam": cam, "state": "online"},
                 None)

    ev1 = keys.stream(s1, "events")
    # the reproduced defect: XADD pingan:{610202}:events * f0 x … f4499 x
    bad(ev1, [(f"f{i}", "x") for i in range(4500)], r"too many fields: 4500 > 32")
    bad(ev1, _pairs(event(v1, "B-big", blob="b" * MB2)),
        rf"value too long: blob \({MB2} > 256 characters\)")
    bad(ev1, [*_pairs(event(v1, "B-bin-name")), (b"\xffna\xfeme", b"\xc3\x28")],
        r"invalid UTF-8 in field: ")
    bad(ev1, _pairs(event(v1, "B-bin-value", category=b"\x80\x81dispute")),
        r"invalid UTF-8 in field: category")
    bad(ev1, _pairs(event(v1, "B-ctl", category="dis\x1bpute")),
        r"control characters in field: 'category'")
    bad(ev1, [*_pairs(event(v1, "B-ctl-name")), ("cat\negory", "x")],
        r"control characters in field: 'cat\\negory'")
    bad(ev1, _pairs(event(v1, "B-ideographic-space", src="a\u3000b")),
        r"control characters in field: 'src'")
    bad(ev1, _pairs(event(v1, "B\x00NUL")), r"control characters in field: 'eid'")
    bad(ev1, [*_pairs(event(v1, "B-nul-name")), (b"\x00", b"x")],
        r"control characters in field: '\\x00'")
    # an entry with the dead letter's own field names: invalid, and valid
    bad(ev1, [("stream", "forged"), ("reason", "forged"), ("entry", "0-1"),
              *_pairs(event(v1, "B-forged", status="teleported"))],
        r"bad status: 'teleported'")
    good(ev1, {"stream": "x", "reason": "y", "entry": "0-1", "truncated": "0",
               **event(v1, "F-named-like-a-dead-letter")}, "reported")
    # a valid entry whose open case holds a corrupt value: the batch is split around it
    bad(ev1, _pairs(event(v1, "E-corrupt", status="resolved")), r"apply failed: ")
    bad(keys.stream(s2, "patrols"),
        [("v", "1"), ("ts", str(ts)), ("src", "fault"), ("pid", "P\x00"), ("grid", "g"),
         ("worker", "w")], r"control characters in field: 'pid'")
    # the second reproduced defect: a hand-over outbox entry without `to`
    bad(keys.handoff(s4), [("eid", "H-1"), ("centre", v4), ("category", "dispute"),
                           ("due", str(ts)), ("ts", str(ts))], r"missing field: to")
    # 10,000 junk entries, read in one batch
    rng = random.Random(8)
    ev3 = keys.stream(s3, "events")
    pipe = r.pipeline(transaction=False)
    junk_pairs = [_junk(rng, i) for i in range(JUNK)]
    for pairs in junk_pairs:
        pipe.execute_command("XADD", ev3, "*", *[x for p in pairs for x in p])
    for entry_id, pairs in zip(pipe.execute(), junk_pairs, strict=True):
        poison[(ev3, entry_id.decode())] = (pairs, r".+")
    shapes = len(poison) - JUNK
    written = valid + len(poison)

    proc = subprocess.run(
        [sys.executable, "-m", "dashboard", "aggregate", "--until-idle"],
        env=aggregator_env(settings, PINGAN_BATCH_SIZE="12000"), capture_output=True,
        text=True, errors="replace", timeout=240)
    totals = totals_from(proc.stderr)

    # what the pipeline holds now, counted independently of the aggregator
    dead = dead_letters(r, keys, topo.shards)
    by_entry: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for d in dead:
        by_entry[(d["stream"], d["entry"])].append(d)
    missing = [i for i in poison if not by_entry.get(i)]
    twice = sum(len(by_entry[i]) - 1 for i in poison if len(by_entry.get(i, ())) > 1)
    strays = [d for d in dead if (d["stream"], d["entry"]) not in poison]
    pending = pending_total(r, keys, topo.shards)
    got = model_day(r, topo, keys, day)
    lost, doubled = shortfall(expected, got)
    lost += len(missing) + pending
    doubled += twice + len(strays)
    report("poison", injected=f"{shapes} poison shapes + {JUNK} junk entries + "
           f"{len(bad_meta)} garbage meta fields + 1 wrong-type gauge + 1 corrupt open case",
           written=written, applied=totals.get("applied", -1), dead=len(dead), lost=lost,
           doubled=doubled, exit_code=proc.returncode)

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert totals["applied"] == valid, totals
    assert not missing, [(i, poison[i][1]) for i in missing[:5]]
    assert twice == 0 and not strays, (
        [d["reason"] for d in strays[:5]],
        [(i, [(d["id"], d["reason"][:80]) for d in by_entry[i]]) for i in poison
         if len(by_entry.get(i, ())) > 1][:5])
    assert pending == 0
    problems = {}
    for where, (pairs, pattern) in poison.items():
        d = by_entry[where][0]
        errs = check_dead_letter(d, pairs)
        if not re.match(pattern, d["reason"]):
            errs.append(f"reason {d['reason']!r} does not match {pattern!r}")
        if errs:
            problems[where] = errs
    assert not problems, dict(list(problems.items())[:5])
    # bounded: at most 7 + 2 x 32 fields of at most 1,024 bytes each, whatever the entry
    assert max(sum(len(n) + len(v) for n, v in d["pairs"]) for d in dead) <= 39 * 2 * 1024
    assert by_entry[next(i for i, p in poison.items() if len(p[0]) == 4500)][0]["truncated"] == "1"
    assert (lost, doubled) == (0, 0), (expected, got)

    # the wrong-type gauge was moved aside and recorded; the meta garbage was replaced
    incidents = r.xrange(keys.incidents(s2))
    assert any(f[b"kind"] == b"quarantined" and f[b"key"] == keys.gauge(s2, town2).encode()
               for _id, f in incidents), incidents
    assert r.type(keys.gauge(s2, town2)) == b"hash"
    meta, bad_fields = parse_meta(r.hgetall(keys.meta(s2)))
    assert meta.get("version", 0) >= 1, (meta, bad_fields)
    assert {"version", "dead", "last_ts", "applied_at", "heartbeat"} <= set(meta), bad_fields
    # the audit disagrees exactly where the one entry that could not be applied would count
    chain = topo.centres[v1].chain
    level = topo.centres[v1].level
    # (E-corrupt was opened by a report here today: its resolution is credited to it too)
    core = {(c, f) for c in chain for f in ("today.resolved", f"today.closed:{level}",
                                                "today.reported_resolved", "now.open")}
    differences = audit(r, topo, settings.pipeline)["differences"]
    found = {(d["centre"], d["figure"]) for d in differences}
    unexplained = [d for d in differences if d["centre"] not in chain
                   or not re.search(r"(^|\.)(resolved|reported_resolved|closed:\d|open)$", d["figure"])]
    assert core <= found and not unexplained, differences


def test_fault_wrong_type_keys_read_before_the_write_are_quarantined(r, topo, settings, prefix):
    """docs/STREAMS.md §3: an internal key of the wrong type is moved aside and recorded in
    `incidents`, and valid entries are applied. Here the overwritten keys are those a batch
    reads before it writes (open cases, idempotency set, camera states, patrol counts, workers
    seen), not only those the fenced write checks."""
    keys = Keys(prefix)
    day = local_day(settings.tz)
    districts = [s for s in topo.shards if s != topo.roots[0]]
    overwritten = [keys.cases(districts[0]), keys.seen(districts[1], day),
                   keys.camera_state(districts[2]), keys.patrol_counts(districts[3], day),
                   keys.workers_seen(districts[0], day)]
    for key in overwritten:
        r.set(key, "x")
    expected = Counter()
    written = 0
    ts = now_ms()
    for shard in districts[:4]:
        v = _village(topo, shard)
        grid = sorted(g for g, c in topo.grid_centre.items() if c == v)[0]
        cam = sorted(c for c, (centre, _k) in topo.camera.items() if centre == v)[0]
        for i in range(5):
            r.xadd(keys.stream(shard, "events"), event(v, f"W-{shard}-{i}"))
            r.xadd(keys.stream(shard, "patrols"), {"v": "1", "ts": str(ts), "src": "fault",
                                                   "pid": f"P-{shard}-{i}", "grid": grid,
                                                   "worker": f"W{i}"})
            expected["reported"] += 1
            expected["patrols"] += 1
            written += 2
        r.xadd(keys.stream(shard, "cameras"), {"v": "1", "ts": str(ts), "src": "fault",
                                               "cam": cam, "state": "online"})
        written += 1
    agg = Aggregator(r, topo, settings.pipeline)
    went_idle = run_bounded(agg, 15)
    dead = dead_letters(r, keys, topo.shards)
    got = model_day(r, topo, keys, day)
    lost, doubled = shortfall(expected, got)
    quarantined = {f[b"key"].decode() for s in districts for _id, f in r.xrange(keys.incidents(s))
                   if f[b"kind"] == b"quarantined"}
    report("wrong-type keys read before the write", injected=f"{len(overwritten)} internal "
           "keys SET to a string", written=written, applied=agg.totals.applied, dead=len(dead),
           lost=lost, doubled=doubled, quarantined=len(quarantined), went_idle=went_idle)

    assert went_idle
    assert [d["reason"][:90] for d in dead] == []
    assert (lost, doubled) == (0, 0), (expected, got)
    assert set(overwritten) <= quarantined
    assert pending_total(r, keys, topo.shards) == 0


def test_fault_counters_with_leading_zeros_break_no_batch(r, topo, settings, prefix):
    """A counter that someone set to `007` (or `-0`, `00`): the fenced write's integer check
    (`is_int`) accepts it, Redis's HINCRBY refuses it. The batch must still be all or nothing
    and counted: here a gauge field of a town and the meta `version` of another shard."""
    keys = Keys(prefix)
    day = local_day(settings.tz)
    districts = [s for s in topo.shards if s != topo.roots[0]]
    sa, sb = districts[0], districts[1]
    va, vb = _village(topo, sa), _village(topo, sb)
    town_a = topo.centres[va].parent
    r.hset(keys.gauge(sa, town_a), "open", "007")
    r.hset(keys.meta(sb), "version", "007")
    for shard, v in ((sa, va), (sb, vb)):
        for i in range(10):
            r.xadd(keys.stream(shard, "events"), event(v, f"Z-{shard}-{i}"))
    agg = Aggregator(r, topo, settings.pipeline)
    went_idle = run_bounded(agg, 15)
    got = model_day(r, topo, keys, day)
    lost, doubled = shortfall(Counter(reported=20), got)
    district_open = int(r.hget(keys.gauge(sa, sa), "open") or 0)
    lost += max(0, 10 - district_open)
    raw_version = r.hget(keys.meta(sb), "version")
    report("counters with leading zeros", injected="2 counters set to '007'", written=20,
           applied=agg.totals.applied, dead=agg.totals.dead, lost=lost, doubled=doubled,
           district_open=district_open, version=raw_version, retried=agg.totals.retried)

    assert went_idle
    assert district_open == 10, "the gauge commands after the refused counter were not written"
    assert raw_version is not None and raw_version.isdigit() and int(raw_version) >= 1, \
        f"meta version stays {raw_version!r}: screens never see the shard move"
    assert agg.totals.applied == 20, agg.totals
    assert (lost, doubled) == (0, 0)


@pytest.mark.parametrize("damage", ["corrupt old open case", "tombstones not a zset"])
def test_fault_housekeeping_damage_does_not_stop_the_aggregator(r, topo, settings, prefix,
                                                                damage):
    """Housekeeping (case expiry, tombstone and stream trimming, every 30 s per shard) meets
    an internal key someone damaged: a corrupt `cases` value of an open case old enough to
    expire, or the tombstone ZSET overwritten with a string. Every shard must still be
    applied and `--until-idle` must return."""
    keys = Keys(prefix)
    day = local_day(settings.tz)
    first = topo.shards[1]
    if damage == "corrupt old open case":
        r.zadd(keys.opened(first), {"E-ancient": 1_000_000_000_000})
        r.hset(keys.cases(first), "E-ancient", "corrupt")
    else:
        r.set(keys.closed(first), "x")
    for shard in topo.shards:
        v = sorted(c for c, i in topo.centres.items() if i.shard == shard)[-1]
        for i in range(5):
            r.xadd(keys.stream(shard, "events"), event(v, f"O-{shard}-{i}"))
    agg = Aggregator(r, topo, settings.pipeline)
    went_idle = run_bounded(agg, 15)
    got = model_day(r, topo, keys, day)
    lost, doubled = shortfall(Counter(reported=5 * len(topo.shards)), got)
    incidents = [f[b"kind"].decode() for _id, f in r.xrange(keys.incidents(first))]
    report(f"housekeeping: {damage}", injected=f"1 {damage}", written=5 * len(topo.shards),
           applied=agg.totals.applied, dead=agg.totals.dead, lost=lost, doubled=doubled,
           went_idle=went_idle, backlog=backlog_total(r, keys, topo.shards),
           incidents=incidents)

    assert went_idle, "--until-idle never returned"
    assert (lost, doubled) == (0, 0), got
    assert incidents, "the damage was not recorded in the shard's incidents"
