"""Fault 4: Redis itself is killed with SIGKILL in the middle of a run and started again on
the same data dir (the embedded server: AOF, fsync every second). The aggregator process and
the web server are not restarted: they must recover by themselves. A process killed with
SIGKILL leaves what it wrote in the kernel, so nothing the producer saw acknowledged may be
missing; if Redis did come back older, the aggregator must say so in `incidents`."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import threading
import time
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashboard.devkit.stack import Stack, copy_registry
from dashboard.settings import Settings
from datasources.audit import audit
from datasources.connection import start_embedded
from datasources.keys import Keys
from datasources.simulator import Simulator
from tests.faults.common import (
    all_streams,
    backlog_total,
    dead_letters,
    event,
    local_day,
    model_day,
    pending_total,
    recount_as_figures,
    report,
    shortfall,
    totals_from,
)
from tests.helpers import independent_counts, wait_until

RATE = 300
SECONDS = 14
KILL_AT = (4.0, 9.0)  # seconds into the production


def _kill9(stack: Stack) -> int:
    pid = int((stack.redis_dir / "redis.pid").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        time.sleep(0.02)
    raise AssertionError(f"redis-server {pid} survived SIGKILL")


def _producer_client(stack: Stack) -> redis.Redis:
    """A producer's connection: no hidden retries (redis-py's default backs off for seconds);
    the producer resends itself, every 50-100 ms, as soon as Redis answers again."""
    return redis.Redis(unix_socket_path=str(stack.redis_dir / "redis.sock"), socket_timeout=5,
                       retry=Retry(NoBackoff(), 0))


def _version(stack: Stack, code: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{stack.url}/live/version?centre={code}", timeout=3) as resp:
            return json.loads(resp.read()) if resp.status == 200 else None
    except OSError:
        return None


def test_fault_redis_killed_and_restarted_mid_run(tmp_path, topo, demo_db):
    db_url, _ = copy_registry(demo_db, tmp_path)
    stack = Stack(tmp_path, db_url, prefix="faultkill")
    settings = Settings.from_env(data_dir=tmp_path, redis_url=stack.env["REDIS_URL"],
                                 database_url=db_url, key_prefix=stack.prefix, lease_ms=1500)
    keys = Keys(stack.prefix)
    root = topo.roots[0]
    now = int(time.time() * 1000)
    midnight = datetime.now(ZoneInfo(settings.tz)).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
    span = int(max(60_000, min(2 * 3_600_000, now - midnight.timestamp() * 1000 - 60_000)))
    sim = Simulator(topo, [(g, c, 1) for g, c in sorted(topo.grid_centre.items())], seed=41,
                    prefix=stack.prefix, start_ms=now, tz=settings.tz)
    n = RATE * SECONDS
    sim.scale = 1.5 * n / (sim.natural_entries_per_s() * span / 1000)
    entries = list(itertools.islice(sim.stream(now - span, now), n))

    acked: dict[str, set[str]] = {}
    unsure = 0  # chunks sent again after an error (some of their entries may be in twice)
    done = threading.Event()
    stack.start_redis()
    try:
        stack.start_aggregator()
        stack.start_web(workers=1)
        wait_until(lambda: _version(stack, root), timeout=30)

        def produce() -> None:
            nonlocal unsure
            client = _producer_client(stack)
            chunk = RATE // 10
            for i in range(0, len(entries), chunk):
                part = entries[i:i + chunk]
                while True:
                    try:
                        pipe = client.pipeline(transaction=False)
                        for _t, key, fields in part:
                            pipe.xadd(key, fields)
                        ids = pipe.execute()
                        break
                    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                        unsure += 1
                        time.sleep(0.1)
                for (_t, key, _f), entry_id in zip(part, ids, strict=True):
                    acked.setdefault(key, set()).add(entry_id.decode())
                time.sleep(0.1)
            client.close()
            done.set()

        writer = threading.Thread(target=produce)
        started = time.monotonic()
        writer.start()
        kills = 0
        seen_down = False
        before = {"version": 0}
        for at in KILL_AT:
            time.sleep(max(0.0, at - (time.monotonic() - started)))
            if kills == 0:  # what the wall showed just before Redis first went away
                before = wait_until(lambda: _version(stack, root), timeout=10)
            _kill9(stack)
            kills += 1
            time.sleep(1.0)  # Redis is away: the wall must say so, not hang
            answer = _version(stack, root)
            seen_down |= bool(answer and answer["freshness"]["redis_down_since"])
            start_embedded(stack.redis_dir)
        writer.join(120)
        assert done.is_set(), "the producer did not finish"
        r = stack.redis()
        wait_until(lambda: backlog_total(r, keys, topo.shards) == 0, timeout=90, every=0.5)
        # the web hub came back by itself and follows the versions applied since
        after = wait_until(lambda: (a := _version(stack, root)) and a["version"] > before["version"]
                           and not a["freshness"]["redis_down_since"] and a, timeout=30)
        stack.stop("aggregate")
        totals = totals_from((tmp_path / "aggregate.log").read_text(errors="replace"))

        present = {s: {i for i, _p in _raw_ids(r, s)} for s in all_streams(keys, topo.shards)}
        missing = sum(len(ids - present.get(s, set())) for s, ids in acked.items())
        day = local_day(settings.tz)
        counted = recount_as_figures(independent_counts(r, topo, keys, day, settings.tz))
        got = model_day(r, topo, keys, day)
        lost, doubled = shortfall(counted, got)
        pending = pending_total(r, keys, topo.shards)
        result = audit(r, topo, settings.pipeline)
        rollbacks = [f for s in topo.shards for _i, f in r.xrange(keys.incidents(s))
                     if f.get(b"kind") == b"rollback"]
        dead = dead_letters(r, keys, topo.shards)
        written = sum(len(ids) for ids in acked.values())
        report("redis kill -9 and restart", injected=f"{kills} SIGKILLs of redis-server",
               written=written, applied=totals.get("applied", -1), dead=len(dead),
               lost=missing + lost + pending, doubled=doubled, missing_from_streams=missing,
               rollback_incidents=len(rollbacks), producer_resends=unsure,
               audit_differences=len(result["differences"]), web_version=after["version"],
               web_saw_down=seen_down)
        print(f"  acknowledged XADDs missing from the streams after {kills} kills: {missing}; "
              f"rollback incidents: {len(rollbacks)}; web version {before['version']} -> "
              f"{after['version']}")

        assert missing == 0
        assert pending == 0 and result["backlog"] == {}
        assert result["differences"] == [] or rollbacks, result["differences"][:5]
        assert (lost, doubled) == (0, 0) or rollbacks, (counted, got)
        assert dead == []
        assert totals, "the aggregator did not stop cleanly after the outages"
        assert seen_down, "the wall never showed Redis as down"
    finally:
        done.set()
        with contextlib.suppress(Exception):
            stack.close()


def _raw_ids(r: redis.Redis, stream: str):
    last = "-"
    while True:
        batch = r.xrange(stream, min=last, max="+", count=5000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return
        for entry_id, fields in batch:
            yield entry_id.decode(), fields
        last = batch[-1][0].decode()


def test_fault_redis_comes_back_older_and_the_loss_is_recorded(tmp_path, topo, demo_db):
    """Redis restarts from an older AOF (the last second of a power cut, a restored backup,
    a failover to a lagging replica) while producers keep writing. What was lost cannot come
    back, but the aggregator must record it: a `rollback` incident per shard that went back,
    whose `entries_lost` counts at least the entries it had read that are gone."""
    db_url, _ = copy_registry(demo_db, tmp_path)
    stack = Stack(tmp_path, db_url, prefix="faultaof")
    settings = Settings.from_env(data_dir=tmp_path, redis_url=stack.env["REDIS_URL"],
                                 database_url=db_url, key_prefix=stack.prefix, lease_ms=1500)
    keys = Keys(stack.prefix)
    villages = {s: sorted(c for c, i in topo.centres.items() if i.shard == s)[-1]
                for s in topo.shards}
    acked: dict[str, set[str]] = {}
    done = threading.Event()
    stack.start_redis()
    try:
        stack.start_aggregator()

        def produce() -> None:
            client = _producer_client(stack)
            for i in itertools.count():
                if done.is_set():
                    break
                for shard, v in villages.items():
                    stream = keys.stream(shard, "events")
                    while not done.is_set():  # resent every 10 ms until Redis answers
                        try:
                            entry_id = client.xadd(stream, event(v, f"AOF-{shard}-{i}"))
                        except (redis.ConnectionError, redis.ResponseError):
                            time.sleep(0.01)
                            continue
                        acked.setdefault(stream, set()).add(entry_id.decode())
                        break
                time.sleep(0.02)
            client.close()

        writer = threading.Thread(target=produce)
        writer.start()
        time.sleep(3.0)
        aof = stack.redis_dir / "appendonly.aof"
        shutil.copy(aof, tmp_path / "older.aof")  # Redis as it was 2 s before the crash
        time.sleep(2.0)
        r = stack.redis()
        delivered = {}  # what the aggregator had read when Redis went down
        for stream in acked:
            groups = {g["name"]: g for g in r.xinfo_groups(stream)}
            delivered[stream] = _id(groups[b"aggregator"]["last-delivered-id"].decode())
        _kill9(stack)
        shutil.copy(tmp_path / "older.aof", aof)
        start_embedded(stack.redis_dir)
        time.sleep(3.0)
        done.set()
        writer.join(30)
        r = stack.redis()
        wait_until(lambda: backlog_total(r, keys, topo.shards) == 0, timeout=60, every=0.5)
        stack.stop("aggregate")
        totals = totals_from((tmp_path / "aggregate.log").read_text(errors="replace"))

        present = {s: {i for i, _f in _raw_ids(r, s)} for s in acked}
        missing = {s: ids - present[s] for s, ids in acked.items()}
        read_then_lost = {s: sum(1 for i in ids if _id(i) <= delivered[s])
                          for s, ids in missing.items()}
        incidents = {s: [f for _i, f in r.xrange(keys.incidents(s))
                         if f.get(b"kind") == b"rollback"] for s in topo.shards}
        recorded = {s: sum(int(f.get(b"entries_lost", b"0")) for f in fs)
                    for s, fs in incidents.items()}
        result = audit(r, topo, settings.pipeline)
        n_missing = sum(len(x) for x in missing.values())
        report("redis restarted from an older AOF", injected="1 restart from a 2-s-old AOF "
               "under a live producer", written=sum(len(x) for x in acked.values()),
               applied=totals.get("applied", -1), dead=len(dead_letters(r, keys, topo.shards)),
               lost=n_missing, doubled=0, read_then_lost=sum(read_then_lost.values()),
               recorded_entries_lost=sum(recorded.values()),
               rollback_incidents=sum(len(x) for x in incidents.values()),
               audit_differences=len(result["differences"]))
        print(f"  acknowledged entries gone: {n_missing} ({sum(read_then_lost.values())} of "
              f"them read by the aggregator); recorded as lost in incidents: "
              f"{sum(recorded.values())}")

        assert n_missing > 0, "the older AOF lost nothing: the fault was not injected"
        assert result["backlog"] == {} and result["differences"] == []
        for stream, n in read_then_lost.items():
            shard = stream.split("{", 1)[1].split("}", 1)[0]
            if n:
                assert incidents[shard], f"shard {shard} went back without an incident"
        assert all(recorded[s.split("{", 1)[1].split("}", 1)[0]] >= n
                   for s, n in read_then_lost.items()), (recorded, read_then_lost)
    finally:
        done.set()
        with contextlib.suppress(Exception):
            stack.close()


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
