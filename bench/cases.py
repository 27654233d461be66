"""Case lists and cards at the city with 10,000 open cases (issue 10).

    .venv/bin/python bench/cases.py [--cases 10000] [--reps 40] [--redis-url URL]

Plants open cases through the real aggregator under a private key prefix (on a private
redis-server unless --redis-url is given; the prefix's keys are deleted at the end either way):
a share overdue, urgent, escalated within the district, handed over to the city and supervised.
Then prints the median server-side latency of `list_cases` at the city for each status filter
(100 rows) and of `case_card`, beside a same-run baseline (one HGETALL of a gauge, and the
wall's snapshot read of the city), and their ratios. Target: a list ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import redis

from dashboard.devkit.private_redis import start_private_redis, stop_private_redis
from dashboard.settings import Settings
from datasources.aggregator import Aggregator
from datasources.cases import case_card, list_cases, supervise
from datasources.contract import CATEGORIES, EVENT_CHANNELS, STATUS_FILTERS
from datasources.demo_region import build_demo
from datasources.keys import Keys
from datasources.migrations import migrate
from datasources.readmodel import ReadModel
from datasources.registry import make_engine
from datasources.topology import load_topology

H = 3_600_000


def plant(r: redis.Redis, topo, keys: Keys, n: int, now: int, seed: int = 3) -> list[str]:
    """n open cases at villages and towns (reported in the last 40 h): 30% overdue, 12%
    urgent, 10% escalated to their town, 2% to the city; returns their ids."""
    rng = random.Random(seed)
    low = sorted(c for c, i in topo.centres.items() if i.level >= 3)
    pipe = r.pipeline(transaction=False)
    eids = []
    for i in range(n):
        centre = rng.choice(low)
        eid = f"B{i:06d}"
        ts = now - rng.randint(60_000, 40 * H)
        due = now - rng.randint(1, 20) * H if rng.random() < 0.3 else now + rng.randint(1, 48) * H
        stream = keys.stream(topo.centres[centre].shard, "events")
        base = {"v": "1", "src": "bench", "eid": eid, "centre": centre,
                "category": rng.choice(CATEGORIES)}
        pipe.xadd(stream, {**base, "ts": str(ts), "status": "reported",
                           "channel": rng.choice(EVENT_CHANNELS),
                           "urgency": "urgent" if rng.random() < 0.12 else "normal",
                           "due": str(due), "summary": f"bench case {i} <b>text</b>"})
        up = topo.ancestors(centre)[:-1]  # the city … the parent
        x = rng.random()
        if x < 0.12 and up:
            pipe.xadd(stream, {**base, "ts": str(ts + 60_000), "status": "escalated",
                               "to": up[-1] if x < 0.10 else up[0]})
        eids.append(eid)
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    return eids


def median_ms(fn, reps: int) -> float:
    fn()  # warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--redis-url", default=None, help="an existing Redis (default: private)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pingan-bench-cases-"))
    url, proc = (args.redis_url, None) if args.redis_url else start_private_redis(
        tmp / "redis", "system")
    db = f"sqlite:///{tmp / 'registry.sqlite3'}"
    engine = make_engine(db)
    migrate(engine)
    build_demo(engine, seed=7)
    topo = load_topology(engine)
    prefix = f"benchcases{uuid.uuid4().hex[:8]}"
    keys = Keys(prefix)
    settings = Settings.from_env(redis_url=url, database_url=db, key_prefix=prefix,
                                 data_dir=tmp)
    r = redis.Redis.from_url(url)
    root = topo.roots[0]
    try:
        now = int(time.time() * 1000)
        t0 = time.perf_counter()
        eids = plant(r, topo, keys, args.cases, now)
        Aggregator(r, topo, settings.pipeline).run(until_idle=True)
        Aggregator(r, topo, settings.pipeline).run(until_idle=True)  # the hand-overs
        rng = random.Random(5)
        for eid in rng.sample(eids, max(1, len(eids) // 20)):  # 督办 of 5%
            card = case_card(r, topo, keys, eid, now)
            by = topo.centres[card.row.centre].parent if card and card.row.open else None
            if by:
                supervise(r, topo, keys, eid, by, "bench 督办", "bench", now)
        Aggregator(r, topo, settings.pipeline).run(until_idle=True)
        print(f"redis-server {r.info('server')['redis_version']}; planted {len(eids):,} cases "
              f"through the aggregator in {time.perf_counter() - t0:.1f} s")
        now = int(time.time() * 1000)
        rm = ReadModel(r, topo, settings.read_model)
        gauge = keys.gauge(root, root)
        base_h = median_ms(lambda: r.hgetall(gauge), args.reps)
        base_s = median_ms(lambda: rm.snapshot(root), args.reps)
        print(f"baseline HGETALL of one gauge:       {base_h:8.2f} ms")
        print(f"baseline wall snapshot of the city:  {base_s:8.2f} ms")
        worst = 0.0
        for status in STATUS_FILTERS:
            got = list_cases(r, topo, keys, root, status, 100, now)
            ms = median_ms(lambda s=status: list_cases(r, topo, keys, root, s, 100, now),
                           args.reps)
            worst = max(worst, ms)
            print(f"list_cases city {status:<11} 100 of {got.total:6,}: {ms:8.2f} ms  "
                  f"({ms / base_h:6.1f}x HGETALL, {ms / base_s:5.2f}x snapshot)")
        sample = iter(rng.sample(eids, args.reps + 1))
        ms = median_ms(lambda: case_card(r, topo, keys, next(sample), now), args.reps)
        print(f"case_card (a random case):           {ms:8.2f} ms  "
              f"({ms / base_h:6.1f}x HGETALL, {ms / base_s:5.2f}x snapshot)")
        print(f"list ≤ 100 ms at the city:           {'yes' if worst <= 100 else 'no'} "
              f"(worst median {worst:.1f} ms)")
    finally:
        doomed = list(r.scan_iter(match=keys.pattern(), count=1000))
        for i in range(0, len(doomed), 500):
            r.delete(*doomed[i:i + 500])
        if args.redis_url is None:
            stop_private_redis(tmp / "redis", proc)


if __name__ == "__main__":
    main()
