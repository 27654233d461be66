"""validate_fast (the aggregator's one-pass validation) never accepts what `validate` refuses,
and returns exactly `validate`'s record when it accepts (pure, no Redis)."""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo

import pytest

from datasources.contract import Clock, InvalidEntry, shard_lookup, validate, validate_fast
from datasources.simulator import recent_entries

NOW = 1_796_000_000_000


def _slow(kind, f, shard, topo, clock, arrived):
    try:
        return validate(kind, f, shard, topo, clock, arrived)
    except InvalidEntry:
        return None


@pytest.fixture(scope="module")
def corpus(topo):
    grids = [(g, c, 1) for g, c in sorted(topo.grid_centre.items())]
    entries = recent_entries(topo, grids, 3000, now_ms=NOW, span_ms=3 * 3_600_000, seed=5)
    out = []
    for _t, key, fields in entries:
        shard = key.split("{", 1)[1].split("}", 1)[0]
        out.append((shard, key.rsplit(":", 1)[1], dict(fields)))
    return out


def _mutations(f: dict, rng: random.Random, other: dict):
    values = ["", "x", "0", "1", "-1", "07", "A" * 65, "A" * 300, "a\x00b", "١٢", "²", "None",
              str(NOW + 600_000), str(NOW - 49 * 3_600_000), "946684799999"]
    for name in f:
        yield {k: v for k, v in f.items() if k != name}
        for v in rng.sample(values, 4):
            yield {**f, name: v}
        if name in other:
            yield {**f, name: other[name]}
    yield {**f, "extra": "1"}
    yield {**f, **{f"x{i}": "1" for i in range(40)}}


def test_fast_path_agrees_with_validate(topo, corpus):
    clock = Clock(ZoneInfo("Asia/Shanghai"), NOW)
    looks = {s: shard_lookup(topo, s) for s in topo.shards}
    rng = random.Random(1)
    fast_hits = checked = 0
    for i, (shard, kind, f) in enumerate(corpus):
        slow = _slow(kind, f, shard, topo, clock, NOW)
        fast = validate_fast(kind, f, looks[shard], clock, NOW)
        assert slow is not None, f
        assert fast is None or fast == slow, (f, fast, slow)
        fast_hits += fast is not None
        # mutated copies, also read from another shard than their own
        other = corpus[(i * 7919) % len(corpus)][2]
        for g in _mutations(f, rng, other):
            for s in (shard, rng.choice(topo.shards)):
                fast = validate_fast(kind, g, looks[s], clock, NOW)
                if fast is not None:
                    assert fast == _slow(kind, g, s, topo, clock, NOW), (s, kind, g)
                checked += 1
    # the common shapes take the fast path (else it would not be worth having)
    assert fast_hits >= 0.95 * len(corpus)
    assert checked > 50_000
