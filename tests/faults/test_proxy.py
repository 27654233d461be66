"""Fault 5: the network between the aggregator and Redis breaks. A TCP proxy
(tests/faults/proxy.py) cuts every connection at random moments, or forwards a batch's script
call and then drops the connection before the reply (the lost reply that makes redis-py send
the call again). Nothing may be doubled: a retried batch must find itself applied (DUP)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import redis

from datasources.aggregator import Aggregator
from datasources.audit import audit
from datasources.connection import connect
from datasources.keys import Keys
from tests.faults.common import (
    backlog_total,
    dead_letters,
    event,
    local_day,
    model_day,
    pending_total,
    recount_as_figures,
    report,
    run_bounded,
    shortfall,
)
from tests.faults.proxy import FaultProxy
from tests.helpers import independent_counts, simulate

MODES = {
    # every connection lives 5-80 ms
    "cut": {"lifetime_s": (0.005, 0.08)},
    # a third of the batch writes (script calls carrying the batch's XACK guards) lose their reply
    "lost-reply": {"lose_reply": 0.35, "marker": b"!XACK"},
    # a third of the fenced reads (MULTI … XREADGROUP … EXEC) are executed and their reply
    # dropped: the entries are pending with the aggregator, which never saw them
    "lost-read-reply": {"lose_reply": 0.35, "marker": b"XREADGROUP"},
}


@pytest.mark.parametrize("mode", list(MODES))
def test_fault_connections_cut_between_aggregator_and_redis(tcp_redis, topo, settings, prefix,
                                                            mode):
    host, port = tcp_redis
    direct = redis.Redis(host=host, port=port)
    base = replace(settings, redis_url=f"redis://{host}:{port}", batch_size=25)
    keys = Keys(prefix)
    try:
        written = simulate(direct, topo, base, 3000, seed=11)
        with FaultProxy((host, port), seed=3, **MODES[mode]) as proxy:
            via = replace(base, redis_url=f"redis://127.0.0.1:{proxy.port}")
            agg = Aggregator(connect(via.redis), topo, via.pipeline)
            went_idle = run_bounded(agg, 120)
        cuts, lost_replies = proxy.cuts, proxy.lost_replies
        day = local_day(settings.tz)
        counted = recount_as_figures(independent_counts(direct, topo, keys, day, settings.tz))
        got = model_day(direct, topo, keys, day)
        lost, doubled = shortfall(counted, got)
        pending = pending_total(direct, keys, topo.shards)
        backlog = backlog_total(direct, keys, topo.shards)
        lost += pending
        differences = audit(direct, topo, base.pipeline)["differences"]
        dead = dead_letters(direct, keys, topo.shards)
        injected = (f"{cuts} connection cuts" if mode == "cut"
                    else f"{lost_replies} lost replies of batch writes" if mode == "lost-reply"
                    else f"{lost_replies} lost replies of reads")
        report(f"network: {mode}", injected=injected, written=written,
               applied=agg.totals.applied, dead=len(dead), lost=lost, doubled=doubled,
               retried=agg.totals.retried, connections=proxy.connections,
               audit_differences=len(differences), went_idle=went_idle)
        print(f"  {mode}: {cuts} cuts, {lost_replies} lost replies, {proxy.connections} "
              f"connections; batches found already applied (DUP): {agg.totals.retried}")

        assert went_idle
        assert pending == 0 and backlog == 0
        assert [(d["stream"], d["entry"], d["reason"][:160]) for d in dead][:5] == []
        assert differences == []
        assert (lost, doubled) == (0, 0), (counted, got)
        if mode == "cut":
            assert cuts >= 10
        else:
            assert lost_replies >= 3
        if mode == "lost-reply":
            assert agg.totals.retried >= 1
    finally:
        stale = list(direct.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(stale), 500):
            direct.delete(*stale[i:i + 500])
        direct.close()


def test_fault_lost_replies_are_still_counted_in_the_totals(tcp_redis, topo, settings, prefix):
    """The aggregator's own totals (what `pingan aggregate` prints) must agree with the read
    model when replies were lost: a batch whose retried call answers DUP was applied by this
    very call's first attempt (the lease is checked first, so no other process can have)."""
    host, port = tcp_redis
    direct = redis.Redis(host=host, port=port)
    keys = Keys(prefix)
    base = replace(settings, redis_url=f"redis://{host}:{port}", batch_size=20)
    n = 0
    try:
        for shard in topo.shards:
            v = sorted(c for c, i in topo.centres.items() if i.shard == shard)[-1]
            for i in range(100):
                direct.xadd(keys.stream(shard, "events"), event(v, f"L-{shard}-{i}"))
                n += 1
        with FaultProxy((host, port), seed=5, lose_reply=0.5, marker=b"!XACK") as proxy:
            via = replace(base, redis_url=f"redis://127.0.0.1:{proxy.port}")
            agg = Aggregator(connect(via.redis), topo, via.pipeline)
            went_idle = run_bounded(agg, 60)
        got = model_day(direct, topo, keys, local_day(settings.tz))
        lost, doubled = shortfall(Counter(reported=n), got)
        report("network: lost replies and the totals", injected=f"{proxy.lost_replies} lost "
               "replies of batch writes", written=n, applied=agg.totals.applied,
               dead=agg.totals.dead, lost=lost, doubled=doubled, retried=agg.totals.retried,
               read=agg.totals.read)

        assert went_idle
        assert (lost, doubled) == (0, 0)
        assert agg.totals.retried >= 1
        assert (agg.totals.read, agg.totals.applied) == (n, n), agg.totals
    finally:
        stale = list(direct.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(stale), 500):
            direct.delete(*stale[i:i + 500])
        direct.close()
