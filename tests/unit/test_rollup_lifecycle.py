"""Issue 8: case tombstones, expiry and rebuild counting in `rollup` (pure, no Redis)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from datasources.contract import Clock, validate
from datasources.keys import Keys
from datasources.rollup import Limits, State, compute, expire_commands
from datasources.topology import build_topology

NOW = 1_800_000_000_000
H = 3_600_000
LIMITS = Limits(ttl_day=100, ttl_hour=10, ttl_seen=50, patrols_per_day=2, recent_max=10,
                dead_max=100)
KEYS = Keys("u")


@pytest.fixture(scope="module")
def topo():
    rows = [("1", "city", 1, None, None, None, None), ("11", "d", 2, "1", None, None, None),
            ("111", "t", 3, "11", None, None, None), ("1111", "v", 4, "111", None, None, None)]
    return build_topology(rows, [], [])


def _rec(topo, status: str, ts: int, eid: str = "E1", **kw) -> tuple:
    f = {"v": "1", "ts": str(ts), "src": "t", "eid": eid, "status": status, "centre": "1111",
         "category": "fire"}
    if status == "reported":
        f.update(channel="video", urgency="normal", due=str(ts + 2 * H))
    f.update(kw)
    clock = Clock(ZoneInfo("Asia/Shanghai"), NOW + 10 * 24 * H)
    return validate("events", f, "11", topo, clock, ts)


def _incr(cmds: list[list], key: str, field: str) -> int:
    total = 0
    for c in cmds:
        if c[0] == "HINCRBYMANY" and c[1] == key:
            pairs = dict(zip(c[2::2], c[3::2], strict=True))
            total += pairs.get(field, 0)
    return total


def _run(topo, records, state=None, limits=LIMITS):
    state = state or State()
    return state, compute(records, state, topo, KEYS, "11", limits)


def test_life001_resolved_case_never_reopens(topo):
    """reported → resolved, then the same case reported again on a later day (a new key, so
    not a duplicate): counted as reported, but the open count does not move."""
    st, out = _run(topo, [_rec(topo, "reported", NOW), _rec(topo, "resolved", NOW + H)])
    g = "u:{11}:g:1111"
    assert _incr(out.commands, g, "open") == 0  # +1 then -1
    assert st.closed["E1"] == NOW + H
    later = NOW + 8 * 24 * H
    st2, out2 = _run(topo, [_rec(topo, "reported", later)],
                     State(closed={"E1": NOW + H}, cases={"E1": None}))
    assert out2.applied == 1
    assert _incr(out2.commands, g, "open") == 0
    day = [c for c in out2.commands if c[0] == "HINCRBYMANY" and ":d:" in c[1]]
    assert day and _incr(day, day[0][1], "reported") == 1
    assert not any(c[0] == "ZADD" and c[1] == "u:{11}:opened" for c in out2.commands)


def test_life002_resolved_before_reported_leaves_a_tombstone(topo):
    _st, out = _run(topo, [_rec(topo, "resolved", NOW), _rec(topo, "reported", NOW + 1)])
    assert _incr(out.commands, "u:{11}:g:1111", "open") == 0
    assert ["ZADD", "u:{11}:closed", NOW, "E1"] in out.commands


def test_life003_open_case_is_aged_from_its_report(topo):
    _st, out = _run(topo, [_rec(topo, "reported", NOW)])
    assert ["ZADD", "u:{11}:opened", NOW, "E1"] in out.commands
    assert _incr(out.commands, "u:{11}:g:11", "open") == 1  # the whole chain in the shard


def test_life004_escalation_out_of_the_shard_leaves_a_tombstone(topo):
    st = State(cases={"E1": f"{NOW + 2 * H}|fire|1111,111,11"})
    _st, out = _run(topo, [_rec(topo, "escalated", NOW + H, to="1")], st)
    assert ["ZADD", "u:{11}:closed", NOW + H, "E1"] in out.commands
    assert ["ZREM", "u:{11}:opened", "E1"] in out.commands
    assert any(c[0] == "XADD" and c[1] == "u:{11}:handoff" for c in out.commands)


def test_life005_expiry_closes_the_case_on_its_whole_chain_and_is_guarded(topo):
    cmds = expire_commands(KEYS, "11", topo, ["E1", "E2"],
                           [f"{NOW}|fire|1111,111,11", None], NOW + 91 * 24 * H, LIMITS)
    assert cmds[0] == ["!ZREM", "u:{11}:opened", "E1", "E2"]  # the guard comes first
    for c in ("1111", "111", "11"):
        assert ["HINCRBYMANY", f"u:{{11}}:g:{c}", "open", -1] in cmds
        assert ["ZREM", f"u:{{11}}:due:{c}", "E1"] in cmds
    assert ["HDEL", "u:{11}:cases", "E1"] in cmds
    assert ["HINCRBY", "u:{11}:meta", "expired", 1] in cmds


def test_life006_rebuild_keeps_days_before_the_first_whole_one(topo):
    """Entries of a day whose figures a rebuild keeps change state only."""
    recs = [_rec(topo, "reported", NOW, "E1"), _rec(topo, "reported", NOW + 3 * 24 * H, "E2")]
    first_day, second_day = recs[0][3], recs[1][3]
    _st, out = _run(topo, recs, limits=LIMITS.rebuilding(second_day))
    counted = {c[1] for c in out.commands if c[0] == "HINCRBYMANY" and ":d:" in c[1]}
    assert any(second_day in k for k in counted)
    assert not any(first_day in k for k in counted)
    assert _incr(out.commands, "u:{11}:g:1111", "open") == 2  # both cases are open


def test_life007_duplicates_in_one_batch_count_once(topo):
    r = _rec(topo, "reported", NOW)
    _st, out = _run(topo, [r, r, r])
    assert (out.applied, out.duplicates) == (1, 2)
