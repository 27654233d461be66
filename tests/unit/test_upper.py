"""The roll-up above the shard tier, pure parts (datasources/upper.py): what is summed, which
buckets, how metas combine, what is written."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from datasources.keys import Keys
from datasources.readmodel import trend_days, trend_hours
from datasources.topology import build_topology
from datasources.upper import (
    OVERDUE,
    Part,
    Window,
    combine_metas,
    compute,
    parts,
    window,
    write_commands,
)
from tests.unit.small_registry import CAMERAS, CENTRES, GRIDS

TZ = ZoneInfo("Asia/Shanghai")
# a province over the small registry's city C and a second city C2 with one district and a
# town straight under the city (no district between: it is in the city's shard)
PROVINCE = [("P", "Province", 0, None, None, None, None),
            *((c, n, lv, p or "P", x, y, conf) for c, n, lv, p, x, y, conf in CENTRES),
            ("C2", "City 2", 1, "P", None, None, None),
            ("D3", "District 3", 2, "C2", None, None, None),
            ("T9", "Town under the city", 3, "C2", None, None, None)]


def _topo():
    return build_topology(PROVINCE, GRIDS, CAMERAS)


def test_upper001_parts_are_the_own_head_and_each_childs_figures():
    topo = _topo()
    assert parts(topo, "P") == [Part("P", "P", False), Part("C", "C", True),
                                Part("C2", "C2", True)]
    assert parts(topo, "C") == [Part("C", "C", False), Part("D1", "D1", False),
                                Part("D2", "D2", False)]
    # T9 is in C2's shard: already in C2's head, never counted twice
    assert topo.centres["T9"].shard == "C2"
    assert parts(topo, "C2") == [Part("C2", "C2", False), Part("D3", "D3", False)]


def test_upper002_a_full_window_is_what_a_snapshot_reads_else_the_recent_buckets():
    now = datetime(2026, 3, 1, 0, 20, tzinfo=TZ)
    full = window(now, True)
    assert list(full.days) == trend_days(now) and len(full.days) == 30
    assert list(full.hours) == trend_hours(now) and len(full.hours) == 48
    assert full.hours[0] == "2026022800" and full.hours[-1] == "2026030123"
    recent = window(now, False)
    assert recent.days == ("20260301", "20260228")  # yesterday still takes late entries
    assert recent.hours == ("2026022823", "2026030100", "2026030101")


def test_upper003_metas_combine_as_the_contract_says():
    m = combine_metas([("C", {"version": 5, "heartbeat": 900, "applied_at": 700, "last_ts": 650,
                              "dead": 1}),
                       ("D1", {"version": 7, "heartbeat": 800, "applied_at": 750, "last_ts": 600,
                               "dead": 2, "epoch": "e1"}),
                       ("^C2", {"version": 3, "heartbeat": 950, "applied_at": 100})], 1000)
    assert m["version"] == 15 and m["dead"] == 3 and m["rolled_at"] == 1000
    assert m["heartbeat"] == 800 and m["applied_at"] == 750 and m["last_ts"] == 650
    assert isinstance(m["epoch"], str) and len(m["epoch"]) == 12
    # another epoch below gives another epoch; a contribution never heartbeated: no heartbeat
    other = combine_metas([("D1", {"version": 7, "epoch": "e2", "heartbeat": 1})], 1000)
    assert other["epoch"] != m["epoch"]
    assert "heartbeat" not in combine_metas([("C", {"heartbeat": 5}), ("D1", {})], 1000)
    assert "epoch" not in combine_metas([("C", {"version": 1})], 1000)


def test_upper004_compute_sums_fields_and_counts_overdue_once():
    topo = _topo()
    plan = parts(topo, "P")  # P's head, then the rolled cities C and C2
    win = Window(("20260301",), ("2026030110",))
    replies = []
    for i, part in enumerate(plan):
        replies.append({b"version": str(10 + i).encode(), b"heartbeat": b"5"})
        replies.append({b"reported": b"2", b"cat:dispute": str(i).encode()})  # the day
        replies.append({b"reported": b"1"})  # the hour
        gauge = {b"open": b"3"}
        if part.rolled:
            gauge[OVERDUE.encode()] = b"4"  # a rolled child's overdue count is in its gauge
        replies.append(gauge)
        if not part.rolled:
            replies.append(2)  # ZCOUNT of the head's overdue cases
    roll = compute("P", plan, win, replies, 99)
    assert roll.days["20260301"] == Counter({"reported": 6, "cat:dispute": 3})
    assert roll.hours["2026030110"] == Counter({"reported": 3})
    assert roll.gauge == Counter({"open": 9, OVERDUE: 2 + 4 + 4})
    assert roll.meta["version"] == 10 + 11 + 12 and roll.meta["heartbeat"] == 5
    # garbage in a contribution costs that contribution's figure, not the roll-up
    replies[1] = Exception("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert compute("P", plan, win, replies, 99).days["20260301"]["reported"] == 4


def test_upper005_write_commands_replace_every_key_on_the_centres_slot():
    keys = Keys("t")
    topo = _topo()
    win = Window(("20260301", "20260228"), ("2026030110",))
    plan = parts(topo, "C")
    replies = []
    for _part in plan:
        replies += [{b"version": b"1"}, {b"reported": b"1", b"zero": b"0"}, {}, {}, {b"open": b"1"},
                    0]
    cmds = write_commands(keys, compute("C", plan, win, replies, 7), ttl_day_s=40, ttl_hour_s=3)
    assert all("{C}" in c[1] for c in cmds)  # one slot: the centre's
    day = keys.up_day("C", "20260301")
    assert cmds[:3] == [["DEL", day], ["HSET", day, "reported", 3], ["EXPIRE", day, 40]]
    # an empty bucket is deleted (it expired below, or nothing happened that day)
    assert ["DEL", keys.up_day("C", "20260228")] in cmds
    assert not any(c[0] == "HSET" and c[1] == keys.up_hour("C", "2026030110") for c in cmds)
    assert ["HSET", keys.up_gauge("C"), "open", 3] in cmds
    assert not any(c[0] == "EXPIRE" and c[1] == keys.up_gauge("C") for c in cmds)
    # the meta last: a reader that sees the new version finds the new figures
    assert cmds[-2:] == [["DEL", keys.up_meta("C")],
                         ["HSET", keys.up_meta("C"), "rolled_at", 7, "version", 3]]
