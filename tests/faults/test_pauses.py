"""Fault 3: pauses. Three aggregator processes share the shards with short leases while a
producer writes (with retries that repeat entries); one of them, chosen at random, is frozen
with SIGSTOP for 2-4 s (longer than its lease) and thawed with SIGCONT, again and again. A
frozen process wakes up believing it still holds its shards: its reads and writes must be
refused (fenced), and whoever took the shards must apply what it had read."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from datasources.aggregator import shard_backlog
from datasources.audit import audit
from datasources.keys import Keys
from datasources.simulator import Simulator
from tests.faults.common import (
    backlog_total,
    dead_letters,
    local_day,
    model_day,
    pending_total,
    recount_as_figures,
    report,
    shortfall,
    start_aggregator,
    totals_from,
)
from tests.helpers import independent_counts, wait_until

RATE = 300  # entries per second
SECONDS = 20


def _entries(topo, settings, n: int) -> list[tuple[int, str, dict]]:
    now = int(time.time() * 1000)
    midnight = datetime.now(ZoneInfo(settings.tz)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
    span = int(max(60_000, min(3 * 3_600_000, now - midnight.timestamp() * 1000 - 60_000)))
    grids = [(g, c, 1) for g, c in sorted(topo.grid_centre.items())]
    sim = Simulator(topo, grids, seed=31, prefix=settings.key_prefix, start_ms=now,
                    tz=settings.tz)
    # a little more than n over the span, none dated after now (the future is refused)
    sim.scale = 1.5 * n / (sim.natural_entries_per_s() * span / 1000)
    return list(itertools.islice(sim.stream(now - span, now), n))


def test_fault_aggregators_paused_longer_than_their_lease(r, topo, settings, prefix, tmp_path):
    keys = Keys(prefix)
    rng = random.Random(17)
    entries = _entries(topo, settings, RATE * SECONDS)
    done = threading.Event()
    burst = threading.Event()  # set after each burst of entries reaches Redis
    written = 0
    retries = 0

    def produce() -> None:
        nonlocal written, retries
        pipe = r.pipeline(transaction=False)
        chunk = RATE // 2  # a burst every half second
        for i, (_t, key, fields) in enumerate(entries):
            pipe.xadd(key, fields)
            written += 1
            if rng.random() < 0.03 and not key.endswith(":cameras"):
                pipe.xadd(key, fields)  # a producer retry: the same idempotency key again
                written += 1
                retries += 1
            if i % chunk == chunk - 1:
                pipe.execute()
                burst.set()
                time.sleep(0.5)
        pipe.execute()
        done.set()
        burst.set()

    logs = [open(tmp_path / f"aggregate-{i}.log", "w") for i in range(3)]  # noqa: SIM115
    procs = [start_aggregator(settings, log=logs[i], PINGAN_LEASE_MS="1500",
                              PINGAN_BATCH_SIZE="4000") for i in range(3)]
    writer = threading.Thread(target=produce)
    pauses = busy_pauses = 0
    try:
        time.sleep(1.5)  # the processes start and share the shards
        writer.start()
        while not done.is_set():
            time.sleep(rng.uniform(0.1, 0.5))
            proc = rng.choice(procs)
            burst.clear()
            burst.wait(5)  # freeze it while a burst is arriving
            proc.send_signal(signal.SIGSTOP)
            frozen = time.monotonic()
            # what the frozen process holds: shards whose lease is its, with entries waiting
            # (undelivered, or read by it and not yet applied)
            held = [s for s in topo.shards
                    if f"-{proc.pid}-".encode() in (r.get(keys.lease(s)) or b"")]
            busy = any(shard_backlog(r, keys, s) for s in held)
            time.sleep(max(0.0, rng.uniform(2.0, 4.0) - (time.monotonic() - frozen)))
            proc.send_signal(signal.SIGCONT)
            pauses += 1
            busy_pauses += busy
        writer.join()
        # drain: every entry applied by whoever holds the shards now
        wait_until(lambda: backlog_total(r, keys, topo.shards) == 0, timeout=90, every=0.5)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()
        writer.join()
    texts = [(tmp_path / f"aggregate-{i}.log").read_text(errors="replace") for i in range(3)]
    totals = [totals_from(t) for t in texts]
    # a woken process finds its lease gone: at renewal, or when its read or write is refused
    refused = sum(t.count("its work is refused") for t in texts)
    lapsed = sum(t.count("lost lease on shard") for t in texts)
    day = local_day(settings.tz)
    counted = recount_as_figures(independent_counts(r, topo, keys, day, settings.tz))
    got = model_day(r, topo, keys, day)
    lost, doubled = shortfall(counted, got)
    pending = pending_total(r, keys, topo.shards)
    lost += pending
    result = audit(r, topo, settings.pipeline)
    dead = dead_letters(r, keys, topo.shards)
    report("pauses (SIGSTOP/SIGCONT)", injected=f"{pauses} pauses of 2-4 s ({busy_pauses} "
           "while holding shards with work)", written=written,
           applied=sum(t.get("applied", 0) for t in totals), dead=len(dead), lost=lost,
           doubled=doubled, producer_retries=retries,
           duplicates=sum(t.get("duplicates", 0) for t in totals), refused=refused,
           lapsed=lapsed,
           audit_differences=len(result["differences"]))
    print(f"  {pauses} pauses, {busy_pauses} landed while the paused process held shards "
          f"with pending work; {retries} producer retries; woken processes found {lapsed} "
          f"leases lapsed at renewal and had {refused} reads/writes refused")

    assert pauses >= 4 and busy_pauses >= 1
    assert pending == 0
    assert result["backlog"] == {} and result["differences"] == []
    assert got["reported"] == counted["reported"] > 0
    assert got["patrols"] == counted["patrols"] > 0
    assert (lost, doubled) == (0, 0), (counted, got)
    assert dead == []
    assert all(t for t in totals), "an aggregator did not stop cleanly"
