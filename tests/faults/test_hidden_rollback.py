"""A read model that goes back in time with no outage the aggregator could see (on a cluster: a
failover to a lagging replica while redis-py's retries hid the broken connection) is found by
the version the next batch returns, and recorded as a rollback incident."""

from __future__ import annotations

from datasources.aggregator import Aggregator
from datasources.keys import Keys
from tests.helpers import simulate


def _drain(agg: Aggregator) -> None:
    while agg.step() or not agg.all_idle():
        pass


def test_hidden001_a_version_that_went_back_is_an_incident(r, topo, settings):
    keys = Keys(settings.key_prefix)
    simulate(r, topo, settings, 300, seed=3)
    agg = Aggregator(r, topo, settings.pipeline, consumer="hidden-a")
    _drain(agg)
    shard = max(agg._versions, key=agg._versions.get)
    ours = agg._versions[shard]
    assert ours >= 1
    # the server "lost" the last batch: same run id, so no outage is noticed by _check_server
    r.hset(keys.meta(shard), "version", ours - 1)
    simulate(r, topo, settings, 300, seed=4)  # more entries: the next batches find it
    _drain(agg)
    _drain(agg)  # the step after the batch checks what was lost
    incidents = r.xrange(keys.incidents(shard))
    kinds = [dict(f)[b"kind"] for _id, f in incidents]
    assert b"rollback" in kinds, incidents
    rollback = next(dict(f) for _id, f in incidents if dict(f)[b"kind"] == b"rollback")
    # it should have been ours + 1 after the next batch; it is ours: one batch lost
    assert int(rollback[b"version_before"]) == ours + 1
    assert int(rollback[b"batches_lost"]) == 1
    agg.release_all()


def test_hidden002_writes_that_are_not_batches_raise_no_alarm(r, topo, settings, caplog):
    """An alert tick or a prune ends with another command than the version bump: its reply
    (a count) is not a version, and a healthy Redis raises no "went back" alarm (it did, 10-65
    times a run in bench/scale.py, before the check looked at the last command)."""
    keys = Keys(settings.key_prefix)
    agg = Aggregator(r, topo, settings.pipeline, consumer="hidden-b")
    for seed in (5, 6, 7):
        simulate(r, topo, settings, 400, seed=seed)
        _drain(agg)
    st = next(iter(agg.held.values()))
    agg._fenced_write(st, [["HSET", keys.meta(st.shard), "probe", 1]])  # reply 1: not a version
    assert agg._outage is False
    assert "Redis went back" not in caplog.text
    assert all(int(r.hget(keys.meta(s), "version")) == v for s, v in agg._versions.items())
    agg.release_all()
