"""Producer gateway throughput: direct pipelined XADD from Python vs POST /api/v1/<kind>.

    .venv/bin/python bench/gateway.py [--entries 100000] [--batch 500] [--clients 4]

Starts the production stack's web server (gunicorn, 2 gevent workers, auth off: the API
wants its token anyway) on a Redis server of its own and a demo registry in a temp dir,
registers a producer for the whole city, and writes the same simulated entries twice under
the same prefix's streams: directly (one client, pipelined XADD, a round trip per batch) and
through the gateway (batches of one kind, `--clients` threads each with a keep-alive session),
alternated for `--rounds` rounds. Every gateway answer must accept every entry. Prints the
median entries/s of each and their ratio. Target (issue 12): the gateway ≥ 50% of direct XADD.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import redis
import requests

from dashboard.devkit.stack import Stack, demo_registry
from datasources import producers
from datasources.keys import STREAM_KINDS
from datasources.registry import make_engine
from datasources.simulator import recent_entries
from datasources.topology import load_topology


def make_entries(db: str, n: int) -> list[tuple[str, str, dict[str, str]]]:
    """(stream key under prefix `bench`, kind, fields) of `n` recent simulated entries."""
    topo = load_topology(make_engine(db))
    now = int(time.time() * 1000)
    grids = [(g, c, 1) for g, c in sorted(topo.grid_centre.items())]
    raw = recent_entries(topo, grids, max(0, n - len(topo.camera)), now_ms=now,
                         span_ms=3 * 3_600_000, seed=3, prefix="bench")
    return [(key, key.rsplit(":", 1)[1], fields) for _t, key, fields in raw][:n]


def direct(r: redis.Redis, entries, prefix: str, batch: int) -> float:
    t0 = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for i, (key, _kind, fields) in enumerate(entries):
        pipe.xadd(prefix + key[len("bench"):], fields)
        if i % batch == batch - 1:
            pipe.execute()
    pipe.execute()
    return time.perf_counter() - t0


def batches(entries, batch: int) -> list[tuple[str, bytes, int]]:
    """(kind, JSON body, entries) per request: entries of one kind, `batch` at most."""
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for _key, kind, fields in entries:
        by_kind[kind].append(fields)
    out = []
    for kind, items in by_kind.items():
        for i in range(0, len(items), batch):
            part = items[i:i + batch]
            out.append((kind, json.dumps(part).encode(), len(part)))
    return out


def gateway(url: str, token: str, work: list[tuple[str, bytes, int]], clients: int) -> float:
    jobs: queue.Queue = queue.Queue()
    for item in work:
        jobs.put(item)
    errors: list[str] = []
    # requests' own defaults otherwise (it asks for gzip: the app compresses JSON answers)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def client() -> None:
        with requests.Session() as s:
            while True:
                try:
                    kind, body, n = jobs.get_nowait()
                except queue.Empty:
                    return
                resp = s.post(f"{url}/api/v1/{kind}", data=body, headers=headers, timeout=60)
                if resp.status_code != 200:
                    errors.append(f"{resp.status_code} {resp.text[:200]}")
                    continue
                bad = [r for r in resp.json()["results"] if not r["ok"]]
                if bad or len(resp.json()["results"]) != n:
                    errors.append(f"{len(bad)} refused, e.g. {bad[:1]}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"{len(errors)} gateway requests failed, e.g. {errors[0]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternated runs of each")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pingan-bench-gw-"))
    db = demo_registry(tmp)
    stack = Stack(tmp, db, prefix="gwbench")
    stack.env.update(PINGAN_AUTH="off", PINGAN_API_MAX_ENTRIES=str(max(2000, args.batch)))
    stack.start_redis()
    try:
        token = producers.add(make_engine(db), "bench", ["events", "patrols", "cameras",
                                                        "petitions"], "610200", 1_000_000)
        stack.start_web(workers=args.workers)
        entries = make_entries(db, args.entries)
        work = batches(entries, args.batch)
        r = stack.redis()
        n = len(entries)
        print(f"redis-server {r.info('server')['redis_version']} (embedded, unix socket); "
              f"gunicorn {args.workers} gevent workers; {args.clients} client threads; "
              f"{n:,} entries, batches of {args.batch}")
        gateway(stack.url, token, work[:4], 2)  # warm up each worker's registry and topology
        rates: dict[str, list[float]] = {"direct": [], "gateway": []}
        for i in range(args.rounds):  # alternated: a busy machine slows both alike
            for mode in (("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")):
                r.flushall()
                secs = (direct(r, entries, "gwbench", args.batch) if mode == "direct"
                        else gateway(stack.url, token, work, args.clients))
                written = sum(r.xlen(k) for k in r.scan_iter(match="gwbench:{*}:*", count=1000)
                              if k.rsplit(b":", 1)[1].decode() in STREAM_KINDS)
                assert written == n, (mode, written, n)
                rates[mode].append(n / secs)
                print(f"  round {i + 1} {mode:<8} {n / secs:10,.0f} entries/s", file=sys.stderr)
        d_rate, g_rate = (statistics.median(rates[m]) for m in ("direct", "gateway"))
        print(f"direct pipelined XADD:          {d_rate:10,.0f} entries/s (median of "
              f"{args.rounds})")
        print(f"gateway POST /api/v1/<kind>:    {g_rate:10,.0f} entries/s (median of "
              f"{args.rounds})")
        print(f"ratio gateway / direct:         {g_rate / d_rate:10.2f}   (target ≥ 0.50)")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
