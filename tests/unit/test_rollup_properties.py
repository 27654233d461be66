"""`rollup.compute` against a reference model, and 办结率 never above 1 (issue 9, pure: no Redis).

The property test feeds any sequence of case transitions the contract allows (every status,
any centre of the shard, escalations within and out of the shard, duplicates, timestamps out
of order and days late) in batches of any size, carrying the state between batches as the
aggregator's reads would, and compares every day and hour count, the open gauge and the
resolution credits with a ten-line model written here from docs/STREAMS.md §3 and
docs/metrics.md. The plain tests below pin the edge cases of the credit one by one.
"""

from __future__ import annotations

from collections import Counter
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasources.contract import FIELDS, STATUSES, Clock, validate
from datasources.keys import Keys
from datasources.rollup import RESOLVED_OF_REPORTED as RR
from datasources.rollup import Limits, State, compute, expire_commands
from datasources.topology import build_topology

DAY_I, HOUR_I = FIELDS.index("day"), FIELDS.index("hour")
REF_FIELDS = tuple(FIELDS.index(f) for f in ("id", "day", "hour", "centre", "status", "to"))
T0 = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000 - 8 * 3_600_000  # a local midnight
H = 3_600_000
D = 24 * H
LIMITS = Limits(ttl_day=40 * 86_400, ttl_hour=3 * 86_400, ttl_seen=7 * 86_400,
                patrols_per_day=2, recent_max=10, dead_max=100)
KEYS = Keys("u")
SHARD = "11"
PARENT = {"1111": "111", "1112": "111", "111": "11", "11": "1"}
CHAIN = {"1111": ("1111", "111", "11"), "1112": ("1112", "111", "11"), "111": ("111", "11"),
         "11": ("11",)}
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def topo():
    return _topo()


def _topo():
    rows = [("1", "city", 1, None, None, None, None), ("11", "d", 2, "1", None, None, None),
            ("111", "t", 3, "11", None, None, None), ("1111", "v", 4, "111", None, None, None),
            ("1112", "w", 4, "111", None, None, None)]
    return build_topology(rows, [], [])


TOPO = _topo()


def _rec(status: str, ts: int, eid: str = "E1", centre: str = "1111", to: str | None = None,
         topo=TOPO) -> tuple:
    f = {"v": "1", "ts": str(ts), "src": "t", "eid": eid, "status": status, "centre": centre,
         "category": "fire"}
    if status == "reported":
        f.update(channel="video", urgency="normal", due=str(ts + 2 * H))
    elif status == "evaluated":
        f["satisfied"] = "1"
    elif status == "escalated":
        f["to"] = to or PARENT[centre]
    elif status == "supervised":  # issue 10: by a centre above, many times
        f["by"] = to or PARENT[centre]
    return validate("events", f, SHARD, topo, Clock(TZ, ts + 60 * D), ts)


def _handin(ts: int, eid: str = "E9", topo=TOPO) -> tuple:
    f = {"v": "1", "ts": str(ts), "src": "pingan-handoff", "eid": eid, "centre": "1111",
         "to": "1", "category": "fire", "due": str(ts + H)}
    return validate("handin", f, "1", topo, Clock(TZ, ts + D), ts)


def _sums(commands: list[list]) -> Counter:
    """(key, field) → the sum of its HINCRBYMANY increments."""
    out: Counter = Counter()
    for c in commands:
        if c[0] == "HINCRBYMANY":
            for f, n in zip(c[2::2], c[3::2], strict=True):
                out[(c[1], f)] += n
    return out


def _run(records: list[tuple], batch: int | None = None, state: State | None = None,
         limits: Limits = LIMITS, shard: str = SHARD) -> tuple[State, Counter, list[list]]:
    """Apply `records` in batches of `batch`, carrying the state between batches as the
    aggregator's next read would find it (compute updates all of it but the applied keys)."""
    state = state or State()
    total: Counter = Counter()
    cmds: list[list] = []
    size = batch or max(1, len(records))
    for i in range(0, len(records), size):
        out = compute(records[i:i + size], state, TOPO, KEYS, shard, limits)
        total.update(_sums(out.commands))
        cmds += out.commands
        for c in out.commands:
            if c[0] == "SADD" and ":seen:" in c[1]:
                day = c[1].rsplit(":", 1)[1]
                state.seen.update((day, q) for q in c[2:])
    return state, total, cmds


def _day(day: str, centre: str, field: str, sums: Counter) -> int:
    return sums[(KEYS.day(SHARD, day, centre), field)]


def _hour(hour: str, centre: str, field: str, sums: Counter) -> int:
    return sums[(KEYS.hour(SHARD, hour, centre), field)]


def reference(records: list[tuple]) -> tuple[Counter, Counter, Counter]:
    """The model: (day counts, hour counts, open gauge) keyed by (bucket, centre, field)."""
    seen, cases, closed, report = set(), {}, set(), {}
    day, hour = Counter(), Counter()
    for rec in records:
        eid, d, h, centre, status, to = (rec[i] for i in REF_FIELDS)
        key = (d, eid, status, centre)
        if status == "supervised":  # issue 10: its key includes ts and by
            key += (rec[FIELDS.index("ts")], rec[FIELDS.index("by")])
        if key in seen:
            continue
        seen.add(key)
        day.update((d, c, status) for c in CHAIN[centre])
        hour.update((h, c, status) for c in CHAIN[centre] if status in ("reported", "resolved"))
        if status == "reported" and eid not in cases and eid not in closed:
            cases[eid], report[eid] = centre, (d, h, centre)
        elif status == "resolved":
            if eid in cases:
                rd, rh, rc = report.pop(eid)
                day.update((rd, c, RR) for c in CHAIN[rc])
                hour.update((rh, c, RR) for c in CHAIN[rc])
                del cases[eid]
            closed.add(eid)
        elif status == "escalated" and eid in cases:
            if to in CHAIN:
                cases[eid] = to
            else:
                del cases[eid], report[eid]
                closed.add(eid)
    gauge = Counter(("", c, "open") for owner in cases.values() for c in CHAIN[owner])
    return day, hour, gauge


CENTRES = ("1111", "1112", "111", "11")
transition = st.tuples(
    st.sampled_from(["E1", "E2", "E3", "E4"]),
    st.sampled_from(STATUSES),
    st.sampled_from(CENTRES),
    st.integers(0, 3 * 24 * 4 - 1),  # quarter-hours over three days, in any order
    st.booleans(),  # an escalation goes out of the shard (to the city)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(transition, max_size=40), st.integers(1, 12), st.data())
def test_compute_matches_the_reference_model_and_the_rate_never_exceeds_one(steps, batch, data):
    records = []
    for eid, status, centre, q, out_of_shard in steps:
        to = "1" if out_of_shard or centre == "11" else PARENT[centre]
        records.append(_rec(status, T0 + q * 15 * 60_000, eid, centre, to=to))
    # replays: some transitions sent again later (a producer's retry: same key, same ts)
    if records:
        records += data.draw(st.lists(st.sampled_from(records), max_size=6))
    _state, sums, _cmds = _run(records, batch)
    day, hour, gauge = reference(records)
    days = {r[DAY_I] for r in records}
    hours = {r[HOUR_I] for r in records}
    for d in days:
        for c in CHAIN["1111"] + ("1112",):
            for f in (*STATUSES, RR):
                assert _day(d, c, f, sums) == day[(d, c, f)], (d, c, f)
            assert _day(d, c, RR, sums) <= _day(d, c, "reported", sums)
    for h in hours:
        for c in CHAIN["1111"] + ("1112",):
            for f in ("reported", "resolved", RR):
                assert _hour(h, c, f, sums) == hour[(h, c, f)], (h, c, f)
            assert _hour(h, c, RR, sums) <= _hour(h, c, "reported", sums)
    for c in CENTRES:
        assert sums[(KEYS.gauge(SHARD, c), "open")] == gauge[("", c, "open")], c


# ---- edge cases, one by one ------------------------------------------------------------------
def _rate(sums: Counter, day: str, centre: str = "11") -> float | None:
    n = _day(day, centre, "reported", sums)
    return _day(day, centre, RR, sums) / n if n else None


def test_prop001_a_case_reported_and_resolved_today_is_credited_to_its_report():
    recs = [_rec("reported", T0 + 9 * H), _rec("resolved", T0 + 11 * H)]
    _st, sums, _c = _run(recs)
    day, rep_hour, res_hour = recs[0][DAY_I], recs[0][HOUR_I], recs[1][HOUR_I]
    for c in CHAIN["1111"]:
        assert _day(day, c, RR, sums) == 1
        assert _hour(rep_hour, c, RR, sums) == 1
        assert _hour(res_hour, c, RR, sums) == 0
    assert _rate(sums, day) == 1.0


def test_prop002_hostile_received_yesterday_closed_today_never_lifts_today_above_one():
    """The issue's hostile case: yesterday's case closed today, and one case of today."""
    yesterday = [_rec("reported", T0 + 10 * H, "E1")]
    state, sums1, _c = _run(yesterday)
    today = [_rec("reported", T0 + D + 9 * H, "E2"), _rec("resolved", T0 + D + 10 * H, "E1")]
    _st, sums2, _c = _run(today, state=state)
    sums = sums1 + sums2
    d0, d1 = yesterday[0][DAY_I], today[0][DAY_I]
    assert _day(d1, "11", "resolved", sums) == 1  # the closure is counted today…
    assert _rate(sums, d1) == 0.0  # …but today's one report is still open
    assert _rate(sums, d0) == 1.0  # yesterday's report is resolved now


def test_prop003_resolved_before_reported_is_not_credited():
    recs = [_rec("resolved", T0 + H), _rec("reported", T0 + 2 * H)]
    _st, sums, _c = _run(recs)
    day = recs[0][DAY_I]
    assert _day(day, "11", "reported", sums) == 1
    assert _day(day, "11", RR, sums) == 0


def test_prop004_a_resolution_sent_twice_is_credited_once():
    res = _rec("resolved", T0 + 3 * H)
    _st, sums, _c = _run([_rec("reported", T0 + H), res, res], batch=1)
    assert _day(res[DAY_I], "11", RR, sums) == 1


def test_prop005_escalated_in_the_shard_then_resolved_credits_the_reporting_village():
    recs = [_rec("reported", T0 + H), _rec("escalated", T0 + 2 * H, to="111"),
            _rec("resolved", T0 + 3 * H, centre="111")]
    _st, sums, _c = _run(recs, batch=1)
    day = recs[0][DAY_I]
    for c in CHAIN["1111"]:
        assert _day(day, c, RR, sums) == 1
    assert _day(day, "1111", "reported", sums) == 1


def test_prop006_a_case_handed_to_another_shard_is_not_credited_here():
    recs = [_rec("reported", T0 + H), _rec("escalated", T0 + 2 * H, centre="1111", to="1")]
    state, sums, cmds = _run(recs)
    assert ["HDEL", KEYS.received(SHARD), "E1"] in cmds
    assert not state.received.get("E1")
    _st, later, _c = _run([_rec("resolved", T0 + 3 * H)], state=state)
    assert _day(recs[0][DAY_I], "11", RR, sums + later) == 0


def test_prop007_a_handed_in_case_resolved_here_is_not_credited(topo):
    """Received in another shard: its report is counted there, not here."""
    state, sums, _c = _run([_handin(T0 + H)], shard="1")
    assert not state.received
    f = {"v": "1", "ts": str(T0 + 2 * H), "src": "t", "eid": "E9", "status": "resolved",
         "centre": "1", "category": "fire"}
    rec = validate("events", f, "1", topo, Clock(TZ, T0 + D), T0 + 2 * H)
    out = compute([rec], state, topo, KEYS, "1", LIMITS)
    assert not any(f == RR for (_k, f) in _sums(out.commands))
    assert _sums(out.commands)[(KEYS.day("1", rec[DAY_I], "1"), "resolved")] == 1


def test_prop008_a_rebuild_does_not_credit_days_it_does_not_recount():
    recs = [_rec("reported", T0 + H), _rec("resolved", T0 + 2 * D)]
    first, later = recs[0][DAY_I], recs[1][DAY_I]
    _st, sums, _c = _run(recs, limits=LIMITS.rebuilding(later))
    assert _day(first, "11", RR, sums) == 0
    assert _day(first, "11", "reported", sums) == 0
    assert _day(later, "11", "resolved", sums) == 1


def test_prop009_credits_never_revive_or_extend_an_old_bucket():
    """An hour bucket past its life gets no credit; a day bucket gets one whose expiry is
    what was left of its life, not a new one."""
    recs = [_rec("reported", T0 + H), _rec("resolved", T0 + 5 * D)]
    _st, sums, cmds = _run(recs, batch=1)
    day, hour = recs[0][DAY_I], recs[0][HOUR_I]
    assert _hour(hour, "11", RR, sums) == 0
    assert _day(day, "11", RR, sums) == 1
    assert ["EXPIRE", KEYS.day(SHARD, day, "11"), LIMITS.ttl_day - 5 * 86_400] in cmds
    _st, sums, _c = _run([_rec("reported", T0 + H), _rec("resolved", T0 + 41 * D)], batch=1)
    assert _day(day, "11", RR, sums) == 0


def test_prop010_expiry_forgets_the_report():
    cmds = expire_commands(KEYS, SHARD, TOPO, ["E1"], [f"{T0}|fire|1111,111,11"],
                           T0 + 91 * D, LIMITS)
    assert ["HDEL", KEYS.received(SHARD), "E1"] in cmds


def test_prop011_reported_again_on_another_day_is_credited_once_to_the_first_report():
    recs = [_rec("reported", T0 + H), _rec("reported", T0 + D + H), _rec("resolved", T0 + D + 2 * H)]
    _st, sums, _c = _run(recs, batch=1)
    d0, d1 = recs[0][DAY_I], recs[1][DAY_I]
    assert (_day(d0, "11", RR, sums), _day(d1, "11", RR, sums)) == (1, 0)
    assert _day(d1, "11", "reported", sums) == 1


def test_prop012_the_report_is_kept_while_open_and_dropped_when_resolved():
    state, _s, cmds = _run([_rec("reported", T0 + H, centre="1112")])
    hour = _rec("reported", T0 + H)[HOUR_I]
    assert ["HSET", KEYS.received(SHARD), "E1", f"{hour}|1112"] in cmds
    assert state.received["E1"] == f"{hour}|1112"
    state, _s, cmds = _run([_rec("resolved", T0 + 2 * H, centre="1112")], state=state)
    assert ["HDEL", KEYS.received(SHARD), "E1"] in cmds


def test_prop013_a_report_at_a_centre_no_longer_in_the_registry_is_not_credited():
    state = State(cases={"E1": f"{T0 + H}|fire|1111,111,11"},
                  received={"E1": "2027011509|999999999999"})
    _st, sums, _c = _run([_rec("resolved", T0 + 2 * H)], state=state)
    assert not any(f == RR for (_k, f) in sums)
    assert _day(_rec("resolved", T0 + 2 * H)[DAY_I], "11", "resolved", sums) == 1


def test_prop014_many_closures_of_old_cases_leave_today_at_its_own_rate():
    """Clearing a backlog: ten cases of two days ago resolved today, two reported today and
    one of those resolved: today's rate is 1/2, as the reports of today say."""
    old = [_rec("reported", T0 + H + i, f"O{i}") for i in range(10)]
    state, s1, _c = _run(old)
    today = [_rec("reported", T0 + 2 * D + H, "N1"), _rec("reported", T0 + 2 * D + H, "N2"),
             _rec("resolved", T0 + 2 * D + 2 * H, "N1"),
             *(_rec("resolved", T0 + 2 * D + 3 * H, f"O{i}") for i in range(10))]
    _st, s2, _c = _run(today, state=state)
    sums = s1 + s2
    assert _day(today[0][DAY_I], "11", "resolved", sums) == 11
    assert _rate(sums, today[0][DAY_I]) == 0.5
    assert _rate(sums, old[0][DAY_I]) == 1.0
