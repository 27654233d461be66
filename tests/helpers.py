"""Helpers shared by the pipeline tests."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from datasources.aggregator import Aggregator
from datasources.keys import Keys
from datasources.simulator import recent_entries, write


def wait_until(fn, timeout: float, every: float = 0.1):
    """Poll `fn` until it returns something truthy (returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met in {timeout}s (last: {last!r})")


def now_ms() -> int:
    return int(time.time() * 1000)


def event(centre: str, eid: str, status: str = "reported", ts: int | None = None, *,
          src: str = "test", **extra) -> dict[str, str]:
    """A contract v1 event entry (a reported one due in 24 h); `extra` fields override."""
    ts = now_ms() if ts is None else ts
    f = {"v": "1", "ts": str(ts), "src": src, "eid": eid, "status": status,
         "centre": centre, "category": "dispute"}
    if status == "reported":
        f.update(channel="hotline_12345", urgency="normal", due=str(ts + 86_400_000))
    f.update(extra)
    return f


def delete_prefix(r, prefix: str) -> None:
    """Delete every key under `prefix` (a RedisCluster too: it scans every master and splits
    the DELs per slot)."""
    keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i:i + 500])


def run_until_idle(r, topo, settings) -> Aggregator:
    agg = Aggregator(r, topo, settings.pipeline)
    agg.run(until_idle=True)
    return agg


def todays_entries(topo, settings, n: int, seed: int = 5, baseline: bool = True) -> list:
    """About n simulated entries spread over the last hours of today (local time), none dated
    later than now, after one heartbeat per camera when `baseline`."""
    now = int(time.time() * 1000)
    tz = ZoneInfo(settings.tz)
    midnight = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    span_ms = int(max(60_000, min(4 * 3_600_000, now - midnight.timestamp() * 1000 - 60_000)))
    grids = [(g, c, 1) for g, c in sorted(topo.grid_centre.items())]
    return recent_entries(topo, grids, n, now_ms=now, span_ms=span_ms, seed=seed,
                          prefix=settings.key_prefix, tz=settings.tz, baseline=baseline)


def simulate(r, topo, settings, n: int, seed: int = 5) -> int:
    """Write `todays_entries` (with the camera heartbeats); returns how many."""
    return write(r, iter(todays_entries(topo, settings, n, seed)))


def independent_counts(r, topo, keys: Keys, today: str, tz: str) -> Counter:
    """Count today's reported events and patrols straight from XRANGE, deduplicated."""
    seen = set()
    out = Counter()
    zone = ZoneInfo(tz)
    for shard in topo.shards:
        for kind in ("events", "patrols", "petitions"):
            for _id, f in r.xrange(keys.stream(shard, kind)):
                day = datetime.fromtimestamp(int(f[b"ts"]) / 1000, zone).strftime("%Y%m%d")
                if day != today:
                    continue
                if kind == "events":
                    if f.get(b"handoff") == b"1":
                        continue
                    key = (f[b"eid"], f[b"status"], f[b"centre"])
                    if key in seen:
                        continue
                    seen.add(key)
                    out[f"events.{f[b'status'].decode()}"] += 1
                else:
                    if (kind, f[b"pid"]) in seen:
                        continue
                    seen.add((kind, f[b"pid"]))
                    out[kind] += 1
    return out


class RetryingProducer(threading.Thread):
    """Writes `entries` in pipelined chunks of 200, sleeping `pause_s` after each (so that
    kills land while entries still arrive), and sends ~3% of the non-camera ones twice (a
    producer's retry: the same idempotency key). `done` is set at the end; `duplicates`
    counts the retries."""

    def __init__(self, r, entries: list, rng: random.Random, pause_s: float) -> None:
        super().__init__(name="retrying-producer")
        self.r, self.entries, self.rng, self.pause_s = r, entries, rng, pause_s
        self.done = threading.Event()
        self.duplicates = 0

    def run(self) -> None:
        pipe = self.r.pipeline(transaction=False)
        for i, (_t, key, fields) in enumerate(self.entries):
            pipe.xadd(key, fields)
            if self.rng.random() < 0.03 and not key.endswith(":cameras"):
                pipe.xadd(key, fields)
                self.duplicates += 1
            if i % 200 == 199:
                pipe.execute()
                time.sleep(self.pause_s)
        pipe.execute()
        self.done.set()
