"""datasources/replay.py (its reads) against a real Redis (the session's server, a key prefix per test):
hand-written hour buckets and stream entries with explicit ids (arrival times)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from datasources import upper
from datasources.geo import place_case
from datasources.keys import Keys
from datasources.replay import HOUR_MS, hour_starts, read_reported, replay_data

TZ = "Asia/Shanghai"
# 2026-11-20 10:30:00 local: the window is 11:00 the day before … 10:30
NOW = int(datetime(2026, 11, 20, 10, 30, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)
MIN = 60_000


def hour_name(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(TZ)).strftime("%Y%m%d%H")


class Streams:
    """XADD with explicit, increasing ids per stream: the id is the arrival time."""

    def __init__(self, r, keys: Keys, topo) -> None:
        self.r, self.keys, self.topo = r, keys, topo
        self.seq: dict[str, tuple[int, int]] = {}
        self.pipe = r.pipeline(transaction=False)

    def __enter__(self) -> Streams:
        return self

    def __exit__(self, *exc) -> None:
        self.pipe.execute()

    def add(self, centre: str, arrive_ms: int, **fields) -> None:
        stream = self.keys.stream(self.topo.centres[centre].shard, "events")
        last_ms, last_seq = self.seq.get(stream, (0, -1))
        seq = last_seq + 1 if arrive_ms == last_ms else 0
        assert arrive_ms >= last_ms, "write in arrival order"
        self.seq[stream] = (arrive_ms, seq)
        entry = {"v": "1", "ts": str(fields.pop("ts", arrive_ms)), "src": "test",
                 "centre": centre, "status": "reported", "category": "fire",
                 "channel": "video", "urgency": "normal", "due": str(arrive_ms + HOUR_MS)}
        entry.update({k: str(v) for k, v in fields.items()})
        self.pipe.xadd(stream, entry, id=f"{arrive_ms}-{seq}")


@pytest.fixture
def keys(prefix) -> Keys:
    return Keys(prefix)


def villages(topo, district: str) -> list[str]:
    return sorted(c for c, i in topo.centres.items() if i.level == 4 and topo.is_within(c, district))


def _roll_up(r, keys, topo, code: str, hours: list[str]) -> None:
    """What the aggregator's roll-up pass writes for `code` over `hours` (datasources/upper.py;
    the commands applied in one MULTI here, no lease needed)."""
    roll = upper.read(r, keys, topo, code, upper.Window((), tuple(hours)), NOW)
    pipe = r.pipeline(transaction=True)
    for cmd in upper.write_commands(keys, roll, 86_400, 86_400):
        pipe.execute_command(*cmd)
    pipe.execute()


def test_replay002_hourly_sums_read_the_shard_heads_only(r, keys, topo):
    city = topo.roots[0]
    districts = topo.children[city]
    town = topo.children[districts[0]][0]
    starts = hour_starts(NOW)
    expected = {k: [0] * 24 for k in ("reported", "resolved", "petitions")}
    for i, s in enumerate(starts):
        for j, head in enumerate([city, *districts]):
            values = {"reported": i + j, "resolved": i, "petitions": j}
            r.hset(keys.hour(topo.centres[head].shard, hour_name(s), head), mapping=values)
            for k, v in values.items():
                expected[k][i] += v
        # a town's own bucket is part of its district's: never added twice
        r.hset(keys.hour(topo.centres[town].shard, hour_name(s), town), "reported", 1000)
    # a bucket outside the window is not read
    r.hset(keys.hour(topo.centres[city].shard, hour_name(starts[0] - HOUR_MS), city),
           "reported", 5000)
    # the city is rolled up (a centre above the shard tier): its hours are its roll-up's,
    # the sum of its heads' — one key an hour, however many shards are below it
    _roll_up(r, keys, topo, city, [hour_name(s) for s in starts])
    data = replay_data(r, keys, topo, city, NOW, tz=TZ)
    for k, v in expected.items():
        assert data[k] == v, k
    r.hset(keys.hour(topo.centres[city].shard, hour_name(starts[3]), city), "reported", 7000)
    assert replay_data(r, keys, topo, city, NOW, tz=TZ)["reported"] == expected["reported"]
    # the district below is one shard head: read straight from it
    assert replay_data(r, keys, topo, districts[0], NOW, tz=TZ)["reported"] == \
        [i + 1 for i in range(24)]
    assert data["labels"][0] == "11:00" and data["labels"][-1] == "10:00"
    assert data["offsets"] == [480] * 24
    assert data["starts"] == starts and data["now"] == NOW
    assert replay_data(r, keys, topo, town, NOW, tz=TZ)["reported"] == [1000] * 24


def test_replay003_only_reported_cases_in_scope_and_in_the_window(r, keys, topo):
    district, other = topo.children[topo.roots[0]][:2]
    mine, theirs = villages(topo, district), villages(topo, other)
    start = hour_starts(NOW)[0]
    t = start + 5 * MIN
    with Streams(r, keys, topo) as w:
        w.add(mine[0], start - 30 * MIN, eid="before")               # before the window
        w.add(mine[0], t, eid="in-1", urgency="urgent", category="dispute")
        w.add(mine[1], t + MIN, eid="in-2")
        w.add(mine[0], t + 2 * MIN, eid="in-1")                      # a repeat: once
        w.add(mine[2], t + 3 * MIN, eid="in-3", status="resolved")  # not a report
        w.add(mine[2], t + 4 * MIN, eid="in-4", handoff="1")        # not a report of its own
        w.add(mine[2], t + 5 * MIN, eid="in-5", category="nonsense")  # would be dead-lettered
        w.add(mine[3], t + 6 * MIN, eid="old", ts=start - 2 * HOUR_MS)  # arrived late, too old
        w.add(theirs[0], t + 7 * MIN, eid="out-1")                   # another district
        w.add(mine[3], NOW + 5 * MIN, eid="future")                  # after the window
    data = replay_data(r, keys, topo, district, NOW, tz=TZ)
    assert [row[0] for row in data["cases"]] == [t, t + MIN]
    lon, lat = place_case(topo, "in-1", mine[0])
    assert data["cases"][0] == [t, lat, lon, "dispute", 1]
    assert data["cases"][1][3:] == ["fire", 0]
    assert data["sample"] is False
    # the city sees both districts; the other district only its own
    city = replay_data(r, keys, topo, topo.roots[0], NOW, tz=TZ)
    assert len(city["cases"]) == 3
    assert [c[0] for c in replay_data(r, keys, topo, other, NOW, tz=TZ)["cases"]] == [t + 7 * MIN]
    # a village sees its own cases only
    assert len(replay_data(r, keys, topo, mine[1], NOW, tz=TZ)["cases"]) == 1


def test_replay004_a_busy_slice_is_capped_and_flagged_as_a_sample(r, keys, topo):
    district = topo.children[topo.roots[0]][0]
    vs = villages(topo, district)
    t0 = NOW - 3 * HOUR_MS
    with Streams(r, keys, topo) as w:
        for i in range(400):  # 400 reports in 4 minutes, on time
            w.add(vs[i % len(vs)], t0 + i * 600, eid=f"busy-{i}")
    small = read_reported(r, keys, topo, district, hour_starts(NOW)[0], NOW, budget=1000)
    assert small["sample"] is True
    assert small["cap"] >= 4 and len(small["cases"]) == small["cap"] < 400
    assert small["read"] <= 2 * 1000
    full = read_reported(r, keys, topo, district, hour_starts(NOW)[0], NOW, budget=60_000)
    assert full["sample"] is False and len(full["cases"]) == 400
    # and the flag reaches the payload
    assert replay_data(r, keys, topo, district, NOW, tz=TZ, budget=1000)["sample"] is True


def test_replay005_a_late_burst_is_sampled_across_the_hours_it_covers(r, keys, topo):
    """A backfill (or a device syncing after a day offline): 20 hours of cases arrive within
    two seconds. The capped slice is refined so the markers still spread over those hours."""
    district = topo.children[topo.roots[0]][1]
    vs = villages(topo, district)
    burst = NOW - 30 * MIN
    first = hour_starts(NOW)[2]
    n = 2000
    with Streams(r, keys, topo) as w:
        for i in range(n):
            w.add(vs[i % len(vs)], burst + i * 2000 // n, eid=f"late-{i}",
                  ts=first + i * (20 * HOUR_MS // n))
    budget = 800
    got = read_reported(r, keys, topo, district, hour_starts(NOW)[0], NOW, budget=budget)
    hours = {(c[0] - first) // HOUR_MS for c in got["cases"]}
    assert len(hours) >= 18, sorted(hours)
    assert got["sample"] is True and len(got["cases"]) < n
    assert got["read"] <= 2 * budget
    plain = read_reported(r, keys, topo, district, hour_starts(NOW)[0], NOW, budget=budget,
                          refine=False)
    assert len({(c[0] - first) // HOUR_MS for c in plain["cases"]}) <= 2
    # with room for all of it, the refinement reads the whole burst: complete, no sample
    whole = read_reported(r, keys, topo, district, hour_starts(NOW)[0], NOW, budget=6000)
    assert whole["sample"] is False and len(whole["cases"]) == n


def test_replay006_cost_is_bounded_for_the_whole_city(r, keys, topo):
    city = topo.roots[0]
    vs = sorted(c for c, i in topo.centres.items() if i.level == 4)
    t0 = hour_starts(NOW)[0]
    with Streams(r, keys, topo) as w:
        for i in range(3000):  # one every 28 s over the day, all districts
            w.add(vs[(i * 7) % len(vs)], t0 + i * 28_000, eid=f"c-{i}")
    data = replay_data(r, keys, topo, city, NOW, tz=TZ, budget=2000)
    assert data["cost"]["read"] <= 2 * 2000
    assert data["sample"] is True
    assert 0 < len(data["cases"]) < 3000
    assert data["cases"] == sorted(data["cases"])
    with pytest.raises(KeyError):
        replay_data(r, keys, topo, "999999", NOW, tz=TZ)
