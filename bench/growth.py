"""Growth benchmark: Redis memory per key family over weeks of operation, on a controlled clock.

    .venv/bin/python bench/growth.py [--days 45] [--rate 1.0] [--day-seconds 4]

Runs the simulator and one aggregator in this process through `--days` simulated days at
`--rate` entries per simulated second (the demo region, Tongchuan: its natural volume is
about 0.12 entries/s), one simulated day every `--day-seconds` real seconds. The aggregator
runs on a `TimeSource` (datasources/clock.py) that compresses time: its clock, its trims and
case expiries follow simulated time, and every TTL it gives Redis is divided by the same
factor, so keys expire on the simulated timeline. Entries are written with explicit stream ids
equal to their simulated time (`XADD key <ms>-*`, Redis ≥ 7), so arrival, lateness and
retention are on that timeline too. 2% of cases are abandoned by their producer (reported,
never resolved): they stay open until the case age limit expires them.

Prints, at day 1, 7, 14, 30, 42 and the last day, the memory of each key family (MEMORY USAGE of
every key, summed by family) and Redis's used_memory; then each family's growth in bytes per
simulated day per entry/s between the last two checkpoints (0 when flat: every family must be
flat once its retention window has passed — day figures are kept 40 days by default, so they
grow until day 40), and the steady-state memory per entry/s.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
import zlib
from collections import Counter
from dataclasses import replace
from pathlib import Path

import redis

from dashboard.devkit.private_redis import start_private_redis, stop_private_redis
from dashboard.settings import Settings
from datasources.aggregator import Aggregator
from datasources.clock import TimeSource
from datasources.demo_region import build_demo
from datasources.migrations import migrate
from datasources.registry import make_engine
from datasources.simulator import Simulator
from datasources.topology import load_topology

DAY_MS = 86_400_000
_FAMILY = re.compile(r"^[^:]+:\{[^}]*\}:([a-z_]+)")


def family(key: str) -> str:
    m = _FAMILY.match(key)
    if m:
        return m.group(1)
    return key.split(":", 2)[1] if ":" in key else key


def memory_by_family(r: redis.Redis, prefix: str) -> tuple[Counter, Counter, int]:
    sizes: Counter = Counter()
    counts: Counter = Counter()
    keys = [k.decode() for k in r.scan_iter(match=f"{prefix}:*", count=2000)]
    for i in range(0, len(keys), 1000):
        part = keys[i:i + 1000]
        pipe = r.pipeline(transaction=False)
        for k in part:
            pipe.memory_usage(k)  # sampled: a scan must take much less than a simulated day
        for k, n in zip(part, pipe.execute(), strict=True):
            f = family(k)
            sizes[f] += n or 0
            counts[f] += 1
    return sizes, counts, r.info("memory")["used_memory"]


def abandoned(eid: str) -> bool:
    return zlib.crc32(eid.encode()) % 50 == 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=45)
    ap.add_argument("--rate", type=float, default=1.0, help="entries per simulated second")
    ap.add_argument("--day-seconds", type=float, default=4.0,
                    help="real seconds per simulated day")
    ap.add_argument("--case-max-age-days", type=int, default=14)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pingan-growth-"))
    url, proc = start_private_redis(tmp / "redis", "system")
    db = f"sqlite:///{tmp / 'registry.sqlite3'}"
    engine = make_engine(db)
    migrate(engine)
    build_demo(engine, seed=7)
    topo = load_topology(engine)
    r = redis.Redis.from_url(url)
    version = r.info("server")["redis_version"]
    if int(version.split(".")[0]) < 7:
        raise SystemExit(f"needs Redis ≥ 7 for XADD <ms>-* (found {version})")
    prefix = "growth"
    settings = replace(Settings.from_env(redis_url=url, database_url=db, key_prefix=prefix),
                       case_max_age_days=args.case_max_age_days, lease_ms=10_000)
    scale = DAY_MS / 1000 / args.day_seconds
    start_ms = int(time.time() * 1000) - args.days * DAY_MS
    clock = TimeSource(start_ms=start_ms, scale=scale)
    agg = Aggregator(r, topo, settings.pipeline, clock=clock, housekeeping_s=max(0.2, args.day_seconds / 8))
    grids = [(g, c, 1) for g, c in sorted(topo.grid_centre.items())]
    sim = Simulator(topo, grids, seed=11, speed=1.0, prefix=prefix, start_ms=start_ms,
                    tz=settings.tz)
    sim.scale = args.rate / sim.natural_entries_per_s()
    entries = sim.stream(start_ms)
    pending = next(entries)
    written = dropped = 0
    checkpoints = sorted({1, 7, 14, 30, 42, args.days} & set(range(1, args.days + 1)))
    results: dict[int, tuple[Counter, Counter, int]] = {}
    print(f"redis {version}; {args.days} days at {args.rate} entries/s; 1 day = "
          f"{args.day_seconds} s (time ×{scale:,.0f}); case age limit {args.case_max_age_days} d; "
          f"stream retention {settings.stream_retention_days} d; day figures "
          f"{settings.day_bucket_ttl_s // 86400} d")
    t0 = time.monotonic()
    end_ms = start_ms + args.days * DAY_MS
    first = checkpoints.pop(0)
    while True:
        now = clock.now_ms()
        pipe = r.pipeline(transaction=False)
        n = 0
        while pending[0] <= min(now, end_ms):
            ts, key, fields = pending
            if fields.get("status") not in (None, "reported") and abandoned(fields["eid"]):
                dropped += 1
            else:
                pipe.execute_command("XADD", key, f"{ts}-*", *[x for kv in fields.items()
                                                               for x in kv])
                n += 1
            pending = next(entries)
            if n % 2000 == 1999:
                pipe.execute()
        pipe.execute()
        written += n
        while agg.step():
            pass
        day = (min(now, end_ms) - start_ms) // DAY_MS
        if day >= first:
            results[first] = memory_by_family(r, prefix)
            sizes, _counts, used = results[first]
            print(f"  day {first:>3}: {written:>10,} entries written, used_memory "
                  f"{used / 1e6:8.1f} MB, keys {sum(_counts.values()):,} "
                  f"({time.monotonic() - t0:.0f} s)", flush=True)
            if not checkpoints:
                break
            first = checkpoints.pop(0)
        if now >= end_ms:
            break
        time.sleep(0.01)
    days = sorted(results)
    fams = sorted({f for d in days for f in results[d][0]},
                  key=lambda f: -results[days[-1]][0].get(f, 0))
    print()
    print("memory per key family (KB) at day " + " ".join(f"{d:>9}" for d in days)
          + "   B/day per entry/s (last two)")
    a, b = days[-2], days[-1]
    for f in fams:
        row = " ".join(f"{results[d][0].get(f, 0) / 1024:9.0f}" for d in days)
        slope = (results[b][0].get(f, 0) - results[a][0].get(f, 0)) / (b - a) / args.rate
        print(f"  {f:<28} {row}   {slope:12,.0f}")
    row = " ".join(f"{results[d][2] / 1024:9.0f}" for d in days)
    slope = (results[b][2] - results[a][2]) / (b - a) / args.rate
    print(f"  {'used_memory':<28} {row}   {slope:12,.0f}")
    print(f"\nentries written {written:,} (+{dropped:,} transitions of abandoned cases not "
          f"sent); applied {agg.totals.applied:,}, dead {agg.totals.dead:,}, "
          f"expired cases {agg.totals.expired:,}")
    print(f"steady state: {results[b][2] / args.rate / 1e6:.1f} MB of Redis per entry/s "
          f"(at day {b})")
    print("note: `handin` and `handoff` are written by the aggregator with Redis's own (real-time)"
          " ids, which this compressed clock never reaches, so they are not trimmed here; in "
          "production they are trimmed like the producer streams")
    stop_private_redis(tmp / "redis", proc)


if __name__ == "__main__":
    main()
