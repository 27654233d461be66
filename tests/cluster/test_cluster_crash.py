"""kill -9 of aggregator processes on the cluster while a producer writes: nothing lost, nothing
doubled, the audit clean. A smaller run of tests/integration/test_crash_safety.py (the same
assertions, fewer entries and kills: the cluster suite's time budget)."""

from __future__ import annotations

import random
import signal
import time

from datasources.aggregator import shard_backlog
from datasources.audit import audit
from datasources.keys import Keys
from datasources.readmodel import ReadModel
from tests.faults.common import start_aggregator
from tests.helpers import RetryingProducer, independent_counts, run_until_idle, todays_entries

ENTRIES = 12_000
KILLS = 6


def test_cluster_crash001_kill9_while_producing(r, topo, settings):
    rng = random.Random(43)
    entries = todays_entries(topo, settings, ENTRIES, seed=22)
    # ~3 s of production: the kills land while entries arrive
    writer = RetryingProducer(r, entries, rng, pause_s=0.05)
    keys = Keys(settings.key_prefix)
    writer.start()
    kills = busy_kills = 0
    procs = [start_aggregator(settings, PINGAN_BATCH_SIZE="300"), start_aggregator(settings, PINGAN_BATCH_SIZE="300")]  # two share the shards
    try:
        while kills < KILLS or not writer.done.is_set():
            time.sleep(rng.uniform(0.4, 1.0))
            busy = sum(shard_backlog(r, keys, s) for s in topo.shards) > 0
            victim = rng.randrange(len(procs))
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait()
            busy_kills += busy
            kills += 1
            procs[victim] = start_aggregator(settings, PINGAN_BATCH_SIZE="300")
    finally:
        for p in procs:
            p.send_signal(signal.SIGKILL)
            p.wait()
        writer.join()
    assert busy_kills >= KILLS // 2
    agg = run_until_idle(r, topo, settings)  # drains what the killed ones left
    report = audit(r, topo, settings.pipeline)
    assert report["backlog"] == {}
    assert report["differences"] == []
    snap = ReadModel(r, topo, settings.read_model).snapshot(topo.roots[0])
    counted = independent_counts(r, topo, agg.keys, snap["day"].replace("-", ""), settings.tz)
    assert snap["events"]["reported"] == counted["events.reported"] > 0
    assert snap["grids"]["patrols"] == counted["patrols"] > 0
    assert writer.duplicates > 0
