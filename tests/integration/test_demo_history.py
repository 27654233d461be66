"""The demo's history (issue 9): 30 days written once, a restart continues the same run, the
figures look like real days, and 办结率 stays at or below 100% on the wall, the tablet's
replay and the embeds. Real Redis, the real aggregator; the volume is a third of the demo's
and three of the four districts are quiet, to keep the test short."""

from __future__ import annotations

import time
from statistics import median

import pytest

from dashboard.settings import Settings
from datasources.audit import audit
from datasources.keys import Keys
from datasources.readmodel import ReadModel
from datasources.replay import replay_data
from datasources.simulator import (
    DemoFeed,
    DemoRun,
    demo_run,
    history_origin,
    registry_fingerprint,
)
from layouts import embed
from layouts.viewmodel import build
from tests.helpers import run_until_idle

DAYS = 30


def _grids(topo) -> list[tuple[str, str, int]]:
    return [(g, c, 1) for g, c in sorted(topo.grid_centre.items())]


def _last_ids(r, topo, keys: Keys) -> dict[str, bytes]:
    """The last id each stream gave (trimming the history does not change it)."""
    return {k: r.xinfo_stream(k)["last-generated-id"]
            for s in topo.shards for kind in ("events", "patrols", "cameras", "petitions")
            if r.exists(k := keys.stream(s, kind))}


@pytest.fixture
def settings(tmp_path, redis_url, demo_db, prefix) -> Settings:
    """A lease long enough for a batch of a month's history on a busy machine."""
    return Settings.from_env(data_dir=tmp_path, redis_url=redis_url, database_url=demo_db,
                             key_prefix=prefix, lease_ms=10_000, batch_size=1000)


def _days(r, topo, keys: Keys, snap: dict, fields: tuple[str, ...]) -> list[dict]:
    """The city's day buckets of the trend's 30 days, straight from Redis."""
    days = [d["day"].replace("-", "") for d in snap["petitions"]["trend_30d"]]
    heads = topo.shard_heads(topo.roots[0])
    pipe = r.pipeline(transaction=False)
    for d in days:
        for h in heads:
            pipe.hmget(keys.day(topo.centres[h].shard, d, h), fields)
    replies = iter(pipe.execute())
    out = []
    for _d in days:
        row = dict.fromkeys(fields, 0)
        for _h in heads:
            for f, v in zip(fields, next(replies), strict=True):
                row[f] += int(v or 0)
        out.append(row)
    return out


def _history(rm: ReadModel, r, topo, keys: Keys) -> dict:
    snap = rm.snapshot(topo.roots[0])
    return {"petitions_30d": snap["petitions"]["trend_30d"], "hourly": snap["trend"],
            "days": _days(r, topo, keys, snap, ("reported", "resolved", "reported_resolved"))}


def _assert_rates_at_most_one(r, topo, settings, rm: ReadModel, now_ms: int) -> int:
    """Every centre's rate on the wall (and its children's), the replay's at every moment,
    the closure embed's. Returns how many rates were checked."""
    checked = 0
    for code in topo.centres:
        if topo.centres[code].level > 3:
            continue
        snap = rm.snapshot(code)
        vm = build(snap, topo, now_ms)
        rates = [vm["figures"]["events.resolution_rate"],
                 *(c["resolution_rate"] for c in vm["children"]),
                 embed.data("closure", vm, lang="zh", tz=settings.tz,
                            stale=False)["figures"]["events.resolution_rate"]]
        assert all(x is None or 0 <= x <= 1 for x in rates), (code, rates)
        checked += len(rates)
    keys = Keys(settings.key_prefix)
    for code in (topo.roots[0], *topo.children[topo.roots[0]]):
        p = replay_data(r, keys, topo, code, now_ms, tz=settings.tz)
        done = reported = 0
        for rep, rr in zip(p["reported"], p["reported_resolved"], strict=True):
            done, reported = done + rr, reported + rep
            assert rr <= rep and done <= reported, (code, p["labels"])
            checked += 1
    return checked


def test_demo001_history_once_continued_after_restarts(r, topo, settings):
    keys = Keys(settings.key_prefix)
    grids = _grids(topo)
    tz = settings.tz
    root = topo.roots[0]
    quiet = tuple(sorted(topo.children[root])[1:])
    now = int(time.time() * 1000)
    first = DemoRun(3, history_origin(now, DAYS, tz), 60.0, registry_fingerprint(topo, grids),
                    quiet, scale=0.3)
    run, written = demo_run(r, keys, first)
    assert (run, written) == (first, 0)
    t0 = time.monotonic()
    s1 = DemoFeed(r, topo, grids, keys, run, tz=tz).feed(0, live=False, now_ms=now)
    run_until_idle(r, topo, settings)
    first_s = time.monotonic() - t0
    assert s1.skipped == 0 and s1.backfilled > 5000
    assert int(r.hget(keys.demo_run(), "written")) == s1.backfilled
    # history older than the 48-hour lateness bound arrived at its own time: no dead letters
    assert sum(r.xlen(keys.dead(s)) for s in topo.shards) == 0
    rm = ReadModel(r, topo, settings.read_model)
    before = _history(rm, r, topo, keys)

    # like real days: every day has cases, none spikes, today is no bigger than a past day
    reported = [d["reported"] for d in before["days"]]
    past = reported[:-1]
    assert min(past) > 0 and max(past) <= 2.5 * median(past), reported
    assert reported[-1] <= 1.5 * max(past), reported
    pet = [d["total"] for d in before["petitions_30d"]]
    assert sum(pet) > 0 and max(pet) <= max(6, sum(pet) // 5), pet
    yday = before["hourly"]["yesterday"]["reported"]
    assert sum(yday[:12]) > 0 and sum(yday[12:]) > 0, yday  # not empty until noon
    today = before["hourly"]["today"]["reported"]
    assert today[before["hourly"]["current_hour"]] <= 3 * max(yday) + 3, (today, yday)

    # a restart, later and with other options: the recorded run is continued, nothing of
    # its history is written again
    again = DemoRun(99, history_origin(now + 86_400_000, DAYS, tz), 12.0, first.registry,
                    quiet, scale=0.3)
    run2, written2 = demo_run(r, keys, again)
    assert (run2, written2) == (run, s1.backfilled)
    last_ids = _last_ids(r, topo, keys)
    t1 = time.monotonic()
    s2 = DemoFeed(r, topo, grids, keys, run2, tz=tz).feed(written2, live=False, now_ms=now)
    run_until_idle(r, topo, settings)
    second_s = time.monotonic() - t1
    assert (s2.skipped, s2.backfilled) == (s1.backfilled, 0)
    assert _last_ids(r, topo, keys) == last_ids  # not one entry written
    assert _history(rm, r, topo, keys) == before
    print(f"\nfirst start: {s1.backfilled} entries, {first_s:.1f} s with the aggregator; "
          f"second: {s2.skipped} regenerated in {s2.regenerate_s:.1f} s, "
          f"{second_s:.1f} s in all")

    # a third start, now: only the entries dated since the first are written
    later = int(time.time() * 1000)
    s3 = DemoFeed(r, topo, grids, keys, run, tz=tz).feed(
        int(r.hget(keys.demo_run(), "written")), live=False, now_ms=later)
    run_until_idle(r, topo, settings)
    after = _history(rm, r, topo, keys)
    grown = sum(a["reported"] - b["reported"] for a, b in zip(after["days"], before["days"],
                                                               strict=True))
    assert after["days"][:-2] == before["days"][:-2]  # the past stays as it was
    assert 0 <= grown <= s3.backfilled

    assert sum(r.xlen(keys.dead(s)) for s in topo.shards) == 0
    assert audit(r, topo, settings.pipeline)["differences"] == []
    assert _assert_rates_at_most_one(r, topo, settings, rm, later) > 50
    assert all(d["reported_resolved"] <= d["reported"] for d in after["days"])
