"""kill -9 the aggregator at random points while producers write; nothing lost, nothing doubled."""

from __future__ import annotations

import random
import signal
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from datasources.aggregator import shard_backlog
from datasources.audit import audit
from datasources.keys import Keys
from datasources.readmodel import ReadModel
from datasources.simulator import recent_entries
from tests.faults.common import start_aggregator
from tests.helpers import RetryingProducer, independent_counts, run_until_idle


def test_crash001_kill9_many_times(r, topo, settings):
    rng = random.Random(42)
    now = int(time.time() * 1000)
    tz = ZoneInfo(settings.tz)
    midnight = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    span = int(max(60_000, min(3 * 3_600_000, now - midnight.timestamp() * 1000 - 60_000)))
    grids = [(g, c, 1) for g, c in sorted(topo.grid_centre.items())]
    entries = recent_entries(topo, grids, 40_000 - len(topo.camera), now_ms=now, span_ms=span,
                             seed=21, prefix=settings.key_prefix, tz=settings.tz)
    # ~15 s of production: the kills (every 0.6-1.8 s) land while entries are still
    # arriving, however fast this machine drains them
    writer = RetryingProducer(r, entries, rng, pause_s=0.075)
    agg_keys = Keys(settings.key_prefix)
    writer.start()
    kills = 0
    busy_kills = 0  # kills while entries were still waiting: the aggregator was mid-work
    proc = start_aggregator(settings, PINGAN_BATCH_SIZE="300")
    try:
        while kills < 12 or not writer.done.is_set():
            time.sleep(rng.uniform(0.6, 1.8))
            busy = sum(shard_backlog(r, agg_keys, s) for s in topo.shards) > 0
            proc.send_signal(signal.SIGKILL)
            busy_kills += busy
            proc.wait()
            kills += 1
            proc = start_aggregator(settings, PINGAN_BATCH_SIZE="300")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        writer.join()
    assert kills >= 10
    assert busy_kills >= 5
    # a last, orderly run drains what the killed ones left (waits for their leases to lapse)
    agg = run_until_idle(r, topo, settings)
    report = audit(r, topo, settings.pipeline)
    assert report["backlog"] == {}
    assert report["differences"] == []
    snap = ReadModel(r, topo, settings.read_model).snapshot(topo.roots[0])
    counted = independent_counts(r, topo, agg.keys, snap["day"].replace("-", ""), settings.tz)
    assert snap["events"]["reported"] == counted["events.reported"] > 0
    assert snap["grids"]["patrols"] == counted["patrols"] > 0
    assert writer.duplicates > 0
