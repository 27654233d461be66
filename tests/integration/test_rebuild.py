"""`pingan rebuild`: the read model rebuilt from the retained streams equals the one built live,
also while an aggregator and a producer keep running (issue 8, item 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from datasources.aggregator import rebuild, shard_backlog
from datasources.audit import audit
from datasources.keys import Keys
from datasources.readmodel import ReadModel
from tests.helpers import independent_counts, run_until_idle, simulate, wait_until

FIGURES = ("events", "grids", "cameras", "petitions", "trend", "children")


def _env(settings) -> dict:
    env = dict(os.environ)
    env.update(PINGAN_DATA_DIR=str(settings.data_dir), REDIS_URL=settings.redis_url,
               DATABASE_URL=settings.database_url, PINGAN_KEY_PREFIX=settings.key_prefix,
               PINGAN_LEASE_MS=str(settings.lease_ms))
    return env


def _figures(rm: ReadModel, code: str) -> dict:
    snap = rm.snapshot(code)
    return {k: snap[k] for k in FIGURES}


def test_rebuild001_same_figures_no_dead_letter_twice(r, topo, settings):
    keys = Keys(settings.key_prefix)
    simulate(r, topo, settings, 5000)
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
    shard = topo.centres[village].shard
    r.xadd(keys.stream(shard, "events"), {"v": "1", "ts": "x", "src": "t"})  # a dead letter
    run_until_idle(r, topo, settings)
    rm = ReadModel(r, topo, settings.read_model)
    codes = [topo.roots[0], *topo.children[topo.roots[0]], village]
    before = {c: _figures(rm, c) for c in codes}
    epoch = r.hget(keys.meta(shard), "epoch")
    dead = r.xlen(keys.dead(shard))
    # a shard may have had no batch (the city's own shard gets a handful of the 5,000
    # entries, at some hours none): its version is 0 and the rebuild still raises it
    versions = {s: int(r.hget(keys.meta(s), "version") or 0) for s in topo.shards}
    # the read model is lost (someone flushed the figures): rebuild brings it back
    for k in r.scan_iter(match=f"{settings.key_prefix}:*:g:*"):
        r.delete(k)
    proc = subprocess.run([sys.executable, "-m", "dashboard", "rebuild", "--json"],
                          env=_env(settings), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["read"] >= 5000 and summary["shards"] == len(topo.shards)
    assert summary["dead"] == 0  # the dead letter was written before: not again
    after = {c: _figures(rm, c) for c in codes}
    assert after == before
    assert audit(r, topo, settings.pipeline)["differences"] == []
    assert r.xlen(keys.dead(shard)) == dead
    assert r.hget(keys.meta(shard), "epoch") not in (None, epoch)  # web caches drop theirs
    assert all(int(r.hget(keys.meta(s), "version")) > versions[s] for s in topo.shards)


def test_rebuild002_while_an_aggregator_and_a_producer_run(r, topo, settings):
    """The rebuild takes the shards from a running aggregator, which takes them back after;
    entries written meanwhile are applied once."""
    simulate(r, topo, settings, 3000, seed=9)
    agg = subprocess.Popen([sys.executable, "-m", "dashboard", "aggregate"], env=_env(settings),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    keys = Keys(settings.key_prefix)
    try:
        wait_until(lambda: all(shard_backlog(r, keys, s) == 0 for s in topo.shards), 60, 0.3)
        stop = threading.Event()

        def produce() -> None:
            n = 0
            while not stop.is_set():
                n += simulate(r, topo, settings, 200, seed=100 + n)
                time.sleep(0.2)

        writer = threading.Thread(target=produce)
        writer.start()
        time.sleep(1.0)
        totals = rebuild(r, topo, settings.pipeline)
        time.sleep(1.0)
        stop.set()
        writer.join()
        assert totals.read > 3000
        wait_until(lambda: all(shard_backlog(r, keys, s) == 0 for s in topo.shards), 60, 0.3)
        # the running aggregator holds shards again
        wait_until(lambda: all(r.get(keys.lease(s)) for s in topo.shards), 30, 0.3)
    finally:
        agg.terminate()
        agg.wait(20)
    report = audit(r, topo, settings.pipeline)
    assert report["backlog"] == {} and report["differences"] == []
    snap = ReadModel(r, topo, settings.read_model).snapshot(topo.roots[0])
    counted = independent_counts(r, topo, keys, snap["day"].replace("-", ""), settings.tz)
    assert snap["events"]["reported"] == counted["events.reported"] > 0
    assert snap["grids"]["patrols"] == counted["patrols"] > 0


def test_rebuild003_days_before_the_trim_keep_their_figures(r, topo, settings):
    """After a trim, days no longer whole in the streams are not recounted (their figures
    stay); the days after are."""
    keys = Keys(settings.key_prefix)
    simulate(r, topo, settings, 2000, seed=4)
    agg = run_until_idle(r, topo, settings)
    root_shard = topo.centres[topo.roots[0]].shard
    old_day = "20200101"
    old_key = keys.day(root_shard, old_day, topo.roots[0])
    r.hset(old_key, "reported", 7)
    r.hset(keys.meta(root_shard), "trimmed_to", int(time.time() * 1000) - 86_400_000 * 3)
    rebuild(r, topo, settings.pipeline)
    assert r.hget(old_key, "reported") == b"7"
    assert agg.totals.applied > 0
    assert audit(r, topo, settings.pipeline)["differences"] == []


def test_rebuild004_a_lease_that_expires_under_the_rebuild_is_set_again(r, topo, settings):
    """A slow reset (a loaded machine) outlives the leases the rebuild took at its start: the
    rebuild sets them again and finishes with the same figures (it looped for good before)."""
    simulate(r, topo, settings, 2000, seed=5)
    run_until_idle(r, topo, settings)
    rm = ReadModel(r, topo, settings.read_model)
    before = _figures(rm, topo.roots[0])
    first = []

    def slow(shard: str) -> None:  # the first reset takes longer than a lease period
        if not first:
            first.append(shard)
            time.sleep(settings.lease_ms / 1000 * 1.5)

    # the short lease of the test settings, not the rebuild's default minute: it must expire
    totals = rebuild(r, topo, settings.pipeline, on_shard=slow, lease_ms=settings.lease_ms)
    assert totals.read >= 2000
    assert _figures(rm, topo.roots[0]) == before
    assert audit(r, topo, settings.pipeline)["differences"] == []
    keys = Keys(settings.key_prefix)
    assert all(shard_backlog(r, keys, s) == 0 for s in topo.shards)


def test_rebuild005_a_shard_taken_by_another_process_stops_the_rebuild(r, topo, settings):
    """If another process took a shard whose lease expired under the rebuild, the rebuild stops
    with a message instead of looping on a shard it can never drain."""
    simulate(r, topo, settings, 500, seed=6)
    keys = Keys(settings.key_prefix)
    taken = []

    def steal(shard: str) -> None:
        if not taken:
            other = next(s for s in topo.shards if s != shard)
            time.sleep(settings.lease_ms / 1000 * 1.5)
            r.set(keys.lease(other), "someone-else", px=60_000)
            taken.append(other)

    try:
        rebuild(r, topo, settings.pipeline, on_shard=steal, lease_ms=settings.lease_ms)
    except RuntimeError as exc:
        assert "taken by another process" in str(exc)
    else:
        raise AssertionError("the rebuild finished without a shard another process holds")
    finally:
        for s in taken:
            r.delete(keys.lease(s))


def test_rebuild006_a_rebuild_holds_its_shards_for_a_minute(r, topo, settings):
    """By default the rebuild's leases outlast a few seconds of starvation (PINGAN_LEASE_MS is
    1.5 s in the tests): a running aggregator cannot take a shard back in the middle."""
    simulate(r, topo, settings, 300, seed=7)
    keys = Keys(settings.key_prefix)
    ttls = []
    rebuild(r, topo, settings.pipeline,
            on_shard=lambda s: ttls.append(r.pttl(keys.lease(s))))
    assert len(ttls) == len(topo.shards)
    assert min(ttls) > 10 * settings.lease_ms, ttls
    assert all(r.exists(keys.lease(s)) == 0 for s in topo.shards)  # released at the end
