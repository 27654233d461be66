"""Fault 2: all or nothing. The fenced write script (`fenced_write.lua`, called as
`Aggregator._write`) gets a batch whose last command cannot be executed, and a batch sent
twice (a client that lost the reply and retried): the first must write nothing at all, the
second must answer DUP and change nothing (docs/STREAMS.md §3, docs/operations.md §5)."""

from __future__ import annotations

import redis

from datasources.aggregator import Aggregator
from datasources.keys import GROUP, Keys
from tests.faults.common import event, local_day, report


def _snapshot(r: redis.Redis, prefix: str) -> dict:
    """Every key of the prefix: type, DUMP (value, stream groups and pending lists) and TTL."""
    out = {}
    for key in sorted(r.scan_iter(match=f"{prefix}:*", count=1000)):
        out[key] = (r.type(key), r.dump(key), r.pttl(key) > 0)
    return out


def _call(agg: Aggregator, token: str, shard: str, commands: list[list]):
    args: list = [token, "{" + shard + "}"]
    for cmd in commands:
        args.append(len(cmd))
        args.extend(cmd)
    return agg._write(keys=[agg.keys.lease(shard)], args=args)


def _setup(r, topo, settings, prefix):
    """A shard with a lease held by the test, one entry read and pending, and a read model."""
    keys = Keys(prefix)
    shard = next(s for s in topo.shards if s != topo.roots[0])
    v = sorted(c for c, i in topo.centres.items() if i.shard == shard and i.level == 4)[0]
    town = topo.centres[v].parent
    agg = Aggregator(r, topo, settings.pipeline, consumer="fault-test")
    token = "fault-test:token"
    r.set(keys.lease(shard), token, px=60_000)
    stream = keys.stream(shard, "events")
    r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    entry_id = r.xadd(stream, event(v, "A-1")).decode()
    r.xreadgroup(GROUP, "fault-test", {stream: ">"})
    day = local_day(settings.tz)
    r.hset(keys.gauge(shard, v), "open", 3)
    r.hset(keys.meta(shard), mapping={"version": 7, "dead": 1})
    r.rpush(keys.recent_cases(shard), "old")
    pre = f"{prefix}:{{{shard}}}:"
    batch = [
        ["!XACK", stream, GROUP, entry_id],
        ["SADD", keys.seen(shard, day), f"e|A-1|reported|{v}"],
        ["HSET", keys.cases(shard), "A-1", f"1|dispute|{','.join(topo.centres[v].chain)}"],
        ["ZADD", keys.opened(shard), 1, "A-1"],
        ["ZADD", f"{pre}due:{v}", 1, "A-1"],
        ["HINCRBYMANY", keys.gauge(shard, v), "open", 1],
        ["HINCRBYMANY", keys.day(shard, day, v), "reported", 1, "cat:dispute", 1],
        ["LPUSH", keys.recent_cases(shard), "A-1"],
        ["LTRIM", keys.recent_cases(shard), 0, 199],
        ["XADD", keys.dead(shard), "MAXLEN", "~", 1000, "*", "stream", stream, "reason", "x"],
        ["EXPIRE", keys.gauge(shard, v), 3600],
        ["HINCRBY", keys.meta(shard), "version", 1],
    ]
    return agg, token, shard, town, batch


def test_fault_a_batch_whose_last_command_fails_writes_nothing(r, topo, settings, prefix):
    agg, token, shard, town, batch = _setup(r, topo, settings, prefix)
    keys = agg.keys
    pre = f"{prefix}:{{{shard}}}:"
    # last commands on a key of the wrong type, one kind of command each
    r.set(keys.gauge(shard, town), "x")
    r.hset(f"{pre}a-hash", "f", "1")
    r.set(f"{pre}a-string", "x")
    r.set(keys.camera_failures(shard), "x")
    lasts = [
        ["HINCRBYMANY", keys.gauge(shard, town), "open", 1],
        ["LPUSH", f"{pre}a-hash", "x"],
        ["XADD", f"{pre}a-hash", "*", "f", "v"],
        ["ZADD", f"{pre}a-string", 1, "m"],
        ["SADD", f"{pre}a-hash", "m"],
        ["LPUSH", keys.camera_failures(shard), "cam"],
        ["HSET", f"{pre}a-string", "f", "v"],
    ]
    partial = []
    for last in lasts:
        before = _snapshot(r, prefix)
        try:
            reply = _call(agg, token, shard, [*batch, last])
            error = None
        except redis.ResponseError as exc:
            reply, error = None, str(exc)
        if _snapshot(r, prefix) != before or error is None or "BATCH refused" not in error:
            partial.append((last[0], reply, error))
    report("all or nothing: last command on a wrong-type key",
           injected=f"{len(lasts)} batches of {len(batch) + 1} commands", written=len(lasts),
           applied=0, dead=0, lost=len(partial), doubled=0)
    assert partial == []


def test_fault_a_batch_sent_twice_is_applied_once(r, topo, settings, prefix):
    agg, token, shard, _town, batch = _setup(r, topo, settings, prefix)
    before = _snapshot(r, prefix)
    first = _call(agg, token, shard, batch)
    after_first = _snapshot(r, prefix)
    second = _call(agg, token, shard, batch)
    after_second = _snapshot(r, prefix)
    changed = after_second != after_first
    report("all or nothing: the same batch sent twice", injected="1 duplicated script call",
           written=1, applied=int(after_first != before) + int(changed), dead=0, lost=0,
           doubled=int(changed or second not in (b"DUP", "DUP")))
    assert first == 8  # the shard's new version
    assert after_first != before
    assert second in (b"DUP", "DUP")
    assert not changed


def test_fault_a_counter_redis_refuses_fails_the_batch_before_its_first_write(r, topo, settings,
                                                                              prefix):
    """Redis's HINCRBY refuses `007`, `00` and `-0` (not canonical integers); the script's
    validation must refuse them too, before the first write, or the batch is half written."""
    agg, token, shard, _town, batch = _setup(r, topo, settings, prefix)
    r.hset(agg.keys.meta(shard), "version", "007")
    before = _snapshot(r, prefix)
    try:
        _call(agg, token, shard, batch)
        error = None
    except redis.ResponseError as exc:
        error = str(exc)
    after = _snapshot(r, prefix)
    written = sorted(k.decode() for k in after if after.get(k) != before.get(k))
    report("all or nothing: a counter Redis refuses", injected="1 meta version set to '007'",
           written=1, applied=0, dead=0, lost=int(bool(written) and error is not None),
           doubled=0, error=(error or "")[:160], keys_written=len(written))
    assert error is None or not written, (error, written)
