"""Fault 6: clock edges. Entries either side of local midnight, entries too far in the future
or too late (judged against their arrival, the stream id: docs/STREAMS.md §4.1), a camera
state from the future, a closed case reported again 8 days later, and a half-hour time zone.
Entries "arrive" in the past through explicit stream ids; the aggregator runs on a controlled
clock (`TimeSource`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from datasources.aggregator import Aggregator
from datasources.clock import TimeSource
from datasources.keys import Keys
from tests.faults.common import dead_letters, event, report

H = 3_600_000
DAY = 24 * H


def _midnight(tz: str, days_ago: int) -> int:
    now = datetime.now(ZoneInfo(tz))
    m = (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(m.timestamp() * 1000)


def _fmt(ms: int, tz: str, pattern: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime(pattern)


def _run(r, topo, settings, at_ms: int) -> Aggregator:
    agg = Aggregator(r, topo, settings.pipeline, clock=TimeSource(start_ms=at_ms, scale=1.0))
    agg.run(until_idle=True)
    return agg


def test_fault_clock_edges(r, topo, settings, prefix):
    keys = Keys(prefix)
    tz = settings.tz
    shard = next(s for s in topo.shards if s != topo.roots[0])
    v = sorted(c for c, i in topo.centres.items() if i.shard == shard and i.level == 4)[0]
    cam = sorted(c for c, (centre, _k) in topo.camera.items() if centre == v)[0]
    ev, cams = keys.stream(shard, "events"), keys.stream(shard, "cameras")

    def at(stream: str, arrival_ms: int, fields: dict) -> tuple[str, str]:
        return stream, r.xadd(stream, fields, id=f"{arrival_ms}-0").decode()

    def cam_entry(state: str, ts: int) -> dict:
        return {"v": "1", "ts": str(ts), "src": "fault", "cam": cam, "state": state}

    m = _midnight(tz, 10)
    n = m + H  # when the out-of-bounds entries arrive
    c0 = m + 2 * H  # when case C is reported
    dead_expected = {}
    # either side of local midnight
    at(ev, m - 100, event(v, "A-before-midnight", ts=m - 100))
    at(ev, m, event(v, "A-at-midnight", ts=m))
    # out of bounds, judged against the arrival
    dead_expected[at(ev, n, event(v, "B-future", ts=n + 10 * 60_000))] = "ts in the future: "
    dead_expected[at(ev, n + 1, event(v, "B-late", ts=n + 1 - 48 * H - 60_000))] = "too late: "
    dead_expected[at(ev, n + 2, event(v, "B-y2k", ts=946_684_800_000 + DAY))] = "too late: "
    # a camera fault dated 23 h ahead is refused; an honest heartbeat then sets it online
    dead_expected[at(cams, n, cam_entry("fault", n + 23 * H))] = "ts in the future: "
    at(cams, n + 1, cam_entry("online", n + 1))
    # case C: reported, resolved
    at(ev, c0, event(v, "C", ts=c0))
    at(ev, c0 + H, event(v, "C", status="resolved", ts=c0 + H))
    first = _run(r, topo, settings, c0 + H + 1000)
    open_after_close = int(r.hget(keys.gauge(shard, v), "open") or 0)
    # 8 days later: C reported again with a new ts (counted, opens nothing) and with its
    # original ts (too late)
    later = c0 + 8 * DAY
    at(ev, later, event(v, "C", ts=later))
    dead_expected[at(ev, later + 1, event(v, "C", ts=c0))] = "too late: "
    second = _run(r, topo, settings, later + 1000)

    day = lambda ms: _fmt(ms, tz, "%Y%m%d")  # noqa: E731
    hour = lambda ms: _fmt(ms, tz, "%Y%m%d%H")  # noqa: E731
    got = {
        "day before midnight": int(r.hget(keys.day(shard, day(m - 100), v), "reported") or 0),
        "day of midnight": int(r.hget(keys.day(shard, day(m), v), "reported") or 0),
        "hour 23": int(r.hget(keys.hour(shard, hour(m - 100), v), "reported") or 0),
        "hour 00": int(r.hget(keys.hour(shard, hour(m), v), "reported") or 0),
        "day 8 days later": int(r.hget(keys.day(shard, day(later), v), "reported") or 0),
        "open": int(r.hget(keys.gauge(shard, v), "open") or 0),
        "camera online": int(r.hget(keys.gauge(shard, v), "cam:online") or 0),
        "camera fault": int(r.hget(keys.gauge(shard, v), "cam:fault") or 0),
    }
    want = {"day before midnight": 1, "day of midnight": 2,  # A-at-midnight and C
            "hour 23": 1, "hour 00": 1, "day 8 days later": 1, "open": 2,
            "camera online": 1, "camera fault": 0}
    dead = {(d["stream"], d["entry"]): d["reason"] for d in dead_letters(r, keys, [shard])}
    lost = sum(max(0, want[k] - got[k]) for k in want) + sum(
        1 for i in dead_expected if i not in dead)
    doubled = sum(max(0, got[k] - want[k]) for k in want) + sum(
        1 for i in dead if i not in dead_expected)

    # a half-hour zone: 10:29 and 10:31 are one hour, 11:29 and 11:31 the next
    kol = replace(settings, tz="Asia/Kolkata", key_prefix=f"{prefix}:kol")
    kkeys = Keys(kol.key_prefix)
    k0 = _midnight("Asia/Kolkata", 3)
    minutes = (10 * 60 + 29, 10 * 60 + 31, 11 * 60 + 29, 11 * 60 + 31)
    for i, minute in enumerate(minutes):
        ts = k0 + minute * 60_000
        r.xadd(kkeys.stream(shard, "events"), event(v, f"K-{i}", ts=ts), id=f"{ts}-0")
    third = _run(r, topo, kol, k0 + 12 * H)
    kday = _fmt(k0, "Asia/Kolkata", "%Y%m%d")
    hours = {key.decode().rsplit(":", 2)[-2]: int(r.hget(key, "reported") or 0)
             for key in r.scan_iter(match=f"{kol.key_prefix}:{{{shard}}}:h:*:{v}")}
    k_want = {f"{kday}10": 2, f"{kday}11": 2}
    lost += sum(max(0, n_ - hours.get(h, 0)) for h, n_ in k_want.items())
    doubled += sum(n_ for h, n_ in hours.items() if h not in k_want)

    written = 11 + len(minutes)
    applied = first.totals.applied + second.totals.applied + third.totals.applied
    report("clock edges", injected="2 entries at midnight, 2 future (+10 min, camera +23 h), "
           "3 too late (48 h 1 min, year 2000, 8-day retry), 1 reopen, 4 in UTC+05:30",
           written=written, applied=applied, dead=len(dead), lost=lost, doubled=doubled)

    assert got == want, got
    assert open_after_close == 2
    for where, reason in dead_expected.items():
        assert dead.get(where, "").startswith(reason), (where, dead.get(where), reason)
    assert "(limit 300 s)" in dead[next(iter(dead_expected))]
    assert set(dead) == set(dead_expected), dead
    assert r.hget(keys.camera_state(shard), cam) == f"online|{n + 1}".encode()
    assert not r.hexists(keys.cases(shard), "C")
    assert r.zscore(keys.closed(shard), "C") is not None
    assert hours == k_want, hours
    assert (lost, doubled) == (0, 0)
