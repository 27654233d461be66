"""The screen-data service's pure parts: the single-flight cache, the drill check, the shards
in scope, the version tag, and the version watcher's rewind check (no Redis: the watcher is
fed metas by hand)."""

from __future__ import annotations

import threading
import time

import pytest

from dashboard.screens import FlightCache, version_tag
from dashboard.versions import VersionWatcher
from datasources.keys import Keys
from datasources.topology import build_topology, drill_target, in_subtree, shards_in_scope

# city C (level 1, its own shard) → districts D1, D2 (shards) → town T1 → village V1
CENTRES = [
    ("C", "city", 1, None, None, None, None),
    ("D1", "district 1", 2, "C", None, None, None),
    ("D2", "district 2", 2, "C", None, None, None),
    ("T1", "town 1", 3, "D1", None, None, None),
    ("V1", "village 1", 4, "T1", None, None, None),
]


@pytest.fixture
def topo():
    return build_topology(CENTRES, [], [])


# -- the single-flight cache ------------------------------------------------------------------
def test_scr001_a_value_is_computed_once_per_versions():
    cache, calls = FlightCache(), []
    for _ in range(3):
        assert cache.get("vm:C", (1, 2), lambda: calls.append(1) or "v") == "v"
    assert len(calls) == 1


def test_scr002_a_moved_version_computes_again():
    cache = FlightCache()
    assert cache.get("vm:C", (1,), lambda: "old") == "old"
    assert cache.get("vm:C", (2,), lambda: "new") == "new"
    assert cache.get("vm:C", (2,), lambda: "again") == "new"


def test_scr003_a_newer_value_serves_an_older_request():
    """A screen whose metas are a tick behind gets the newer value, not a recomputation."""
    cache = FlightCache()
    cache.get("vm:C", (5, 3), lambda: "v5")
    assert cache.get("vm:C", (4, 3), lambda: "v4") == "v5"


def test_scr004_concurrent_callers_compute_once():
    cache = FlightCache()
    started, release = threading.Event(), threading.Event()
    calls, results = [], []

    def compute():
        calls.append(1)
        started.set()
        release.wait(5)
        return "shared"

    threads = [threading.Thread(target=lambda: results.append(cache.get("vm:C", (1,), compute)))
               for _ in range(8)]
    for t in threads:
        t.start()
    assert started.wait(5)
    time.sleep(0.1)  # the other seven are waiting on the flight by now
    release.set()
    for t in threads:
        t.join(5)
    assert len(calls) == 1 and results == ["shared"] * 8


def test_scr005_flights_of_different_names_do_not_wait_for_each_other():
    cache = FlightCache()
    release = threading.Event()
    slow = threading.Thread(target=lambda: cache.get("vm:C", (1,), lambda: release.wait(5)))
    slow.start()
    t0 = time.monotonic()
    assert cache.get("vm:D1", (1,), lambda: "fast") == "fast"
    assert time.monotonic() - t0 < 1.0
    release.set()
    slow.join(5)


def test_scr006_the_cache_is_bounded_least_recently_used_first():
    cache = FlightCache(size=3)
    for name in "abc":
        cache.get(name, (1,), lambda n=name: n)
    cache.get("a", (1,), lambda: "recomputed")  # a hit: "a" is now the most recent
    cache.get("d", (1,), lambda: "d")
    assert len(cache) == 3
    assert "b" not in cache and all(n in cache for n in "acd")
    assert cache.get("a", (1,), lambda: "recomputed") == "a"


def test_scr007_invalidate_forgets_everything():
    cache = FlightCache()
    cache.get("vm:C", (9,), lambda: "before")
    cache.invalidate()
    assert len(cache) == 0
    # after a rewind the versions may be lower: the old value must not answer them
    assert cache.get("vm:C", (3,), lambda: "after") == "after"
    assert cache.get("vm:C", (9,), lambda: "later") == "later"


def test_scr008_a_value_computed_across_an_invalidation_is_not_kept():
    cache = FlightCache()

    def compute():
        cache.invalidate()  # the read model went back while this was being read
        return "stale"

    assert cache.get("vm:C", (1,), compute) == "stale"  # its caller still gets it
    assert "vm:C" not in cache
    assert cache.get("vm:C", (1,), lambda: "fresh") == "fresh"


def test_scr009_max_age_refuses_old_values():
    now = [100.0]
    cache = FlightCache(clock=lambda: now[0])
    assert cache.get("replay:C", (), lambda: "r1", max_age_s=60) == "r1"
    now[0] = 159.0
    assert cache.get("replay:C", (), lambda: "r2", max_age_s=60) == "r1"
    now[0] = 160.0
    assert cache.get("replay:C", (), lambda: "r3", max_age_s=60) == "r3"


def test_scr010_a_failed_computation_caches_nothing_and_releases_the_flight():
    cache = FlightCache()

    def boom():
        raise OSError("redis away")

    with pytest.raises(OSError):
        cache.get("vm:C", (1,), boom)
    assert "vm:C" not in cache
    assert cache.get("vm:C", (1,), lambda: "ok") == "ok"


# -- the drill check and the scope ---------------------------------------------------------------
def test_scr011_drill_targets_are_known_centres_strictly_below(topo):
    assert drill_target(topo, "C", "D1")
    assert drill_target(topo, "C", "V1")  # any depth: the map of a town shows its villages
    assert drill_target(topo, "D1", "T1")
    assert not drill_target(topo, "C", "C")  # not the centre itself
    assert not drill_target(topo, "D1", "C")  # not up
    assert not drill_target(topo, "D1", "D2")  # not a sibling


@pytest.mark.parametrize("code", ["nope", "", None, 610200, ["D1"], {"code": "D1"}, "D1 "])
def test_scr012_drill_check_refuses_what_a_client_may_send(topo, code):
    assert not drill_target(topo, "C", code)


def test_scr013_in_subtree_includes_the_scope_itself_and_needs_known_codes(topo):
    assert in_subtree(topo, "D1", "D1")
    assert in_subtree(topo, "V1", "D1")
    assert not in_subtree(topo, "D2", "D1")
    assert not in_subtree(topo, "D1", "unknown-scope")
    assert not in_subtree(topo, "unknown", "C")


def test_scr014_shards_in_scope(topo):
    assert shards_in_scope(topo, "C") == ["C", "D1", "D2"]  # the city is its shard + its heads
    assert shards_in_scope(topo, "D1") == ["D1"]
    assert shards_in_scope(topo, "V1") == ["D1"]


def test_scr015_version_tag_names_the_epochs():
    vm = {"version": 7, "freshness": {"shards": {"D1": {"version": 7}}}}
    assert version_tag("D1", vm) == "D1:7"
    rebuilt = {"version": 7, "freshness": {"shards": {"D1": {"version": 7, "epoch": "e2"}}}}
    other = {"version": 7, "freshness": {"shards": {"D1": {"version": 7, "epoch": "e3"}}}}
    assert version_tag("D1", rebuilt).startswith("D1:7:")
    assert version_tag("D1", rebuilt) != version_tag("D1", other)


# -- the watcher's rewind check (metas published by hand, no Redis) -----------------------------
def _watcher(on_rewind) -> VersionWatcher:
    return VersionWatcher(None, Keys("t"), ("D1", "D2"), conferences=None, on_rewind=on_rewind)


def test_scr016_a_version_going_back_or_a_new_epoch_invalidates_the_cache():
    cache = FlightCache()
    w = _watcher(cache.invalidate)
    w.publish({"D1": {"version": 10}, "D2": {"version": 4}})
    cache.get("vm:D1", (10,), lambda: "v10")
    w.publish({"D1": {"version": 11}, "D2": {"version": 4}})  # forward: kept
    assert "vm:D1" in cache
    w.publish({"D1": {"version": 5}, "D2": {"version": 4}})  # back: dropped
    assert "vm:D1" not in cache
    cache.get("vm:D1", (5,), lambda: "v5")
    w.publish({"D1": {"version": 5, "epoch": "rebuild-1"}, "D2": {"version": 4}})
    assert "vm:D1" not in cache


def test_scr017_an_outage_between_does_not_hide_a_rewind():
    rewinds = []
    w = _watcher(lambda: rewinds.append(1))
    w.publish({"D1": {"version": 10}, "D2": {"version": 4}})
    w.publish(None)  # Redis away
    assert w._down_since is not None
    w.publish({"D1": {"version": 3}, "D2": {"version": 4}})  # back, older
    assert rewinds == [1] and w._down_since is None


def test_scr018_the_tick_moves_only_on_a_change():
    w = _watcher(lambda: None)
    w.publish({"D1": {"version": 1}})
    tick = w._tick
    w.publish({"D1": {"version": 1}})
    assert w._tick == tick
    w.publish({"D1": {"version": 2}})
    assert w._tick == tick + 1


def test_scr019_a_kind_can_have_its_own_bound_within_the_cache():
    """Replays are large: at most `limits["replay"]` of them, the views untouched."""
    cache = FlightCache(size=10, limits={"replay": 2})
    cache.get(("vm", "C"), (1,), lambda: "view")
    for code in ("C", "D1", "D2"):
        cache.get(("replay", code), (), lambda c=code: c)
    assert ("replay", "C") not in cache  # the least recently used replay went
    assert ("replay", "D1") in cache and ("replay", "D2") in cache
    assert ("vm", "C") in cache and len(cache) == 3
