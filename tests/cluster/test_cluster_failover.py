"""A master of the cluster dies (SIGKILL) while producers write and two aggregator processes
run: its replica is promoted, the aggregators and a web worker's version watcher carry on by
themselves, and the audit afterwards finds the read model equal to what the streams hold,
naming what asynchronous replication lost (docs/cluster.md)."""

from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict

import redis

from dashboard.versions import VersionWatcher
from datasources.aggregator import shard_backlog
from datasources.audit import audit
from datasources.connection import connect
from datasources.keys import Keys
from datasources.vc import Conferences
from tests.faults.common import start_aggregator
from tests.helpers import event, todays_entries, wait_until

CHUNK = 100
ENTRIES = 9000


def _fingerprint(fields: dict) -> tuple:
    return tuple(sorted((_s(k), _s(v)) for k, v in fields.items()))


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _version(r, keys: Keys, shard: str) -> int:
    return int(r.hget(keys.meta(shard), "version") or 0)


def test_cluster_failover001_a_master_dies_and_everything_carries_on(cluster, r, topo, settings):
    keys = Keys(settings.key_prefix)
    entries = todays_entries(topo, settings, ENTRIES, seed=31)
    by_master: dict[int, list[str]] = defaultdict(list)
    for shard in topo.shards:
        by_master[cluster.master_of(r.keyslot(keys.meta(shard)))].append(shard)
    victim, victim_shards = max(by_master.items(), key=lambda kv: len(kv[1]))

    acked: list[tuple[str, tuple]] = []  # (stream, fingerprint) the cluster acknowledged
    retried = 0
    done = threading.Event()

    def produce() -> None:
        nonlocal retried
        for i in range(0, len(entries), CHUNK):
            chunk = entries[i:i + CHUNK]
            while True:  # a producer retries a chunk that failed (the aggregator dedups)
                try:
                    pipe = r.pipeline(transaction=False)
                    for _t, key, fields in chunk:
                        pipe.xadd(key, fields)
                    pipe.execute()
                    break
                except (redis.RedisError, OSError):
                    retried += 1
                    time.sleep(0.2)
            acked.extend((key, _fingerprint(fields)) for _t, key, fields in chunk)
            time.sleep(0.04)
        done.set()

    web = connect(settings.redis)  # as a web worker connects: auto-detects the cluster
    watcher = VersionWatcher(web, keys, list(topo.shards),
                             Conferences(web, topo, keys.prefix, "", 60), poll_s=0.05)
    writer = threading.Thread(target=produce)
    aggs = [start_aggregator(settings, PINGAN_BATCH_SIZE="300") for _ in range(2)]
    try:
        writer.start()
        watcher.start()
        wait_until(lambda: len(acked) > len(entries) // 3
                   and all(_version(r, keys, s) > 0 for s in victim_shards), 60)
        before = {s: _version(r, keys, s) for s in victim_shards}
        cluster.kill_master(victim)
        # the read model of the shards that lived on the dead master moves on (new master)
        wait_until(lambda: all(_version(r, keys, s) > before[s] for s in victim_shards), 30)
        # and a web worker's watcher reads through the failover by itself
        wait_until(lambda: (m := watcher.state()[0]) is not None and all(
            m[s].get("version", 0) > before[s] for s in victim_shards), 30)
        writer.join()
        wait_until(lambda: all(shard_backlog(r, keys, s) == 0 for s in topo.shards), 60, 0.3)
        assert [p.poll() for p in aggs] == [None, None]  # never restarted, never died
    finally:
        for p in aggs:
            p.send_signal(signal.SIGTERM)
        for p in aggs:
            p.wait(20)
        watcher.stop()
        writer.join()
        web.close()
        cluster.revive(victim)  # whole again (as a replica) for the next tests
    assert done.is_set()

    present: set[tuple[str, tuple]] = set()
    for stream in {key for key, _fp in acked}:
        present.update((stream, _fingerprint(f)) for _id, f in r.xrange(stream))
    lost = [(key, fp) for key, fp in acked if (key, fp) not in present]
    victim_streams = {keys.stream(s, kind) for s in victim_shards
                      for kind in ("events", "patrols", "cameras", "petitions")}
    # only the dead master's slots can lose acknowledged writes (what its replica missed)
    assert {key for key, _fp in lost} <= victim_streams

    report = audit(r, topo, settings.pipeline)
    assert report["backlog"] == {}
    # the read model is exactly what the streams hold now, lost tail or not
    assert report["differences"] == []
    lost_named = report["incidents"]["lost"]
    # the aggregator names at most what really went (it can only see what it had read)
    assert lost_named["entries"] <= len(lost)
    assert set(report["incidents"]["by_shard"]) <= set(victim_shards)
    print(f"failover: {len(lost)} acknowledged entries lost, {retried} chunk retries, "
          f"incidents {lost_named}")


JUNK_MB = 16
JUNK_VALUES = 5  # more than the loopback socket buffers hold: the rest waits in the master


def test_cluster_failover002_a_lagging_replica_loses_the_tail_and_the_audit_names_it(
        cluster, r, topo, settings):
    """The replica is stopped (SIGSTOP) while the master takes ~80 MB and then entries that an
    aggregator applies; the master is killed, the replica resumed and promoted: the tail it
    never received is lost. The aggregator records a `rollback` incident and the audit, after
    the drain, finds the read model exact and reports the loss."""
    keys = Keys(settings.key_prefix)
    entries = todays_entries(topo, settings, 3000, seed=37)
    by_master: dict[int, list[str]] = defaultdict(list)
    for shard in topo.shards:
        by_master[cluster.master_of(r.keyslot(keys.meta(shard)))].append(shard)
    victim, victim_shards = max(by_master.items(), key=lambda kv: len(kv[1]))
    village, shard = next((c, i.shard) for c, i in sorted(topo.centres.items())
                          if i.shard in victim_shards and i.level == 4)
    replica = cluster.replica_of(victim)
    stream = keys.stream(shard, "events")

    pipe = r.pipeline(transaction=False)
    for _t, key, fields in entries:
        pipe.xadd(key, fields)
    pipe.execute()
    agg = start_aggregator(settings, PINGAN_BATCH_SIZE="300")
    try:
        wait_until(lambda: all(shard_backlog(r, keys, s) == 0 for s in topo.shards), 60, 0.2)
        cluster.pause(replica)
        try:
            for i in range(JUNK_VALUES):  # fills the link to the replica
                r.set(f"{settings.key_prefix}:{{{shard}}}:junk:{i}", b"x" * (JUNK_MB << 20))
            before = _version(r, keys, shard)
            tail = [r.xadd(stream, event(village, f"lost-{i}")) for i in range(50)]
            wait_until(lambda: _version(r, keys, shard) > before
                       and shard_backlog(r, keys, shard) == 0, 30, 0.1)
            applied_version = _version(r, keys, shard)
            cluster.kill_master(victim, wait=False)
        finally:
            cluster.resume(replica)
        cluster.wait_promoted(victim)
        gone = [i for i in tail if not r.xrange(stream, min=i, max=i)]
        assert _version(r, keys, shard) < applied_version  # the read model went back
        assert gone, "the replica had the tail after all: nothing was lost"
        r.xadd(stream, event(village, "after-failover"))  # the aggregator carries on
        wait_until(lambda: all(shard_backlog(r, keys, s) == 0 for s in topo.shards), 60, 0.3)
        wait_until(lambda: r.xlen(keys.incidents(shard)) > 0, 15, 0.2)
        assert agg.poll() is None
    finally:
        agg.send_signal(signal.SIGTERM)
        agg.wait(20)
        cluster.revive(victim)
    report = audit(r, topo, settings.pipeline)
    assert report["backlog"] == {} and report["differences"] == []
    lost = report["incidents"]["lost"]
    assert lost["rollbacks"] >= 1 and lost["batches"] >= 1
    assert 0 < lost["entries"] <= len(gone)
    assert shard in report["incidents"]["by_shard"]
    print(f"lagging replica: {len(gone)} of {len(tail)} tail entries lost; incidents {lost}")
