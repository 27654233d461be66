"""The Redis readers of datasources/geo.py (patrols per grid, camera states, recent cases)
against the session's Redis, on the demo registry; the pure parts are in
tests/unit/test_geo.py."""

from __future__ import annotations

import json

from datasources.geo import camera_states, grid_coverage, recent_cases
from datasources.keys import Keys


def test_redis_readers_read_only_the_scope(r, prefix, topo):
    keys = Keys(prefix)
    village = next(c for c, i in sorted(topo.centres.items()) if i.level == 4)
    shard = topo.centres[village].shard
    grids = sorted(g for g, c in topo.grid_centre.items() if c == village)
    cams = sorted(c for c, (centre, _k) in topo.camera.items() if centre == village)
    r.hset(keys.patrol_counts(shard, "20261122"), mapping={grids[0]: 2, grids[1]: 1})
    r.hset(keys.camera_state(shard), mapping={cams[0]: "offline|5", cams[1]: "fault|6"})
    cov = grid_coverage(r, keys, topo, village, "20261122")
    assert set(cov) == set(grids) and cov[grids[0]] == 2 and cov[grids[1]] == 1
    assert sum(cov.values()) == 3
    states = camera_states(r, keys, topo, village)
    assert set(states) == set(cams)
    assert states[cams[0]] == "offline" and states[cams[1]] == "fault"
    assert {states[c] for c in cams[2:]} <= {"unknown"}
    now = 1_800_000_000_000
    r.lpush(keys.recent_cases(shard), json.dumps(["E9", village, "fire", now - 1000, "urgent"]))
    got = recent_cases(r, keys, topo, topo.roots[0], now, 900)
    assert [c["eid"] for c in got] == ["E9"] and got[0]["urgency"] == "urgent"

