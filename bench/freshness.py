"""Freshness: XADD → the changed figure in Chromium, with 1,000 entries/s of background load.

    .venv/bin/python bench/freshness.py [--samples 100] [--load 1000]

Runs the production stack (gunicorn gevent, the aggregator as its own process, a private
Redis) and a headless Chromium on the wall of one village that the background simulator
leaves alone. For each sample it records the wall-clock time of the XADD and the time the
browser's MutationObserver sees `data-value` of `events.reported` change (same machine, same
clock), for the SSE push and, side by side, for the 1-second polling fallback.
Target (issue #3): p50 ≤ 300 ms, p95 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from dashboard.devkit.browser import chromium
from dashboard.devkit.stack import Stack, demo_registry
from dashboard.devkit.stats import pct
from datasources.keys import Keys

WATCH_JS = """
window.__changes = [];
var el = document.querySelector('[data-figure="events.reported"]');
new MutationObserver(function () {
  window.__changes.push([Date.now(), el.getAttribute('data-value')]);
}).observe(el, {attributes: true, attributeFilter: ['data-value']});
return el.getAttribute('data-value');
"""


def measure(stack: Stack, village: str, shard: str, push: str, samples: int) -> list[float]:
    d = chromium(1920, 1080)
    r = stack.redis()
    stream = Keys(stack.prefix).stream(shard, "events")
    out = []
    try:
        d.get(f"{stack.url}/?centre={village}&push={push}")
        deadline = time.monotonic() + 30
        while not d.execute_script("return !!document.querySelector('[data-figure=\"events.reported\"]')"):
            if time.monotonic() > deadline:
                raise RuntimeError("the wall did not render")
            time.sleep(0.1)
        time.sleep(2)
        value = int(d.execute_script(WATCH_JS))
        for i in range(samples):
            now = int(time.time() * 1000)
            r.xadd(stream, {"v": "1", "ts": str(now), "src": "bench", "eid": f"probe-{push}-{now}-{i}",
                            "status": "reported", "centre": village, "category": "fire",
                            "channel": "video", "urgency": "normal", "due": str(now + 3_600_000)})
            sent = time.time() * 1000
            value += 1
            deadline = time.monotonic() + 10
            seen = None
            while seen is None and time.monotonic() < deadline:
                time.sleep(0.02)
                for t, v in d.execute_script("var c = window.__changes; window.__changes = []; return c;"):
                    if int(v) >= value:
                        seen = t
            if seen is None:
                raise RuntimeError(f"sample {i}: no change within 10 s")
            out.append(seen - sent)
            time.sleep(random.uniform(0.2, 0.6))
    finally:
        d.quit()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--load", type=float, default=1000.0, help="background entries/s")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pingan-fresh-"))
    stack = Stack(tmp, demo_registry(tmp), prefix="fresh")
    stack.start_redis()
    try:
        from datasources.registry import make_engine
        from datasources.topology import load_topology

        topo = load_topology(make_engine(stack.db_url))
        village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
        shard = topo.centres[village].shard
        stack.run("simulate", "--events", "5000", "--quiet", village)
        stack.start_aggregator()
        stack.start("load", stack.pingan("simulate", "--rate", str(args.load), "--quiet", village,
                                         "--no-cameras"))
        stack.start_web(workers=2)
        time.sleep(3)
        r = stack.redis()
        keys = Keys(stack.prefix)

        def written() -> int:
            return sum(r.xlen(keys.stream(s, k)) for s in topo.shards
                       for k in ("events", "patrols", "cameras", "petitions"))

        n0, t0 = written(), time.monotonic()
        results = {}
        for push in ("sse", "poll"):
            results[push] = measure(stack, village, shard, push, args.samples)
        load = (written() - n0) / (time.monotonic() - t0)
        print(f"background load measured: {load:,.0f} entries/s (asked {args.load:.0f})")
        print(f"{'push':<6} {'samples':>7} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        for push, xs in results.items():
            print(f"{push:<6} {len(xs):>7} {statistics.median(xs):>8.0f} {pct(xs, 95):>8.0f} {max(xs):>8.0f}")
        sse, poll = results["sse"], results["poll"]
        print(f"ratio p50 poll/sse: {statistics.median(poll) / statistics.median(sse):.1f}x")
        ok = statistics.median(sse) <= 300 and pct(sse, 95) <= 1000
        print(f"SSE target p50 ≤ 300 ms and p95 ≤ 1000 ms: {'met' if ok else 'NOT met'}")
    finally:
        stack.close()


if __name__ == "__main__":
    main()
