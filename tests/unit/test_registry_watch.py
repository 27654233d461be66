"""Registry changes on a running system, the pure parts: the in-place topology swap, the
version's parsing, the version watcher's reload step and the per-producer figure commands."""

from __future__ import annotations

import dataclasses

import pytest

from dashboard.versions import VersionWatcher
from datasources.keys import Keys
from datasources.producers import UNREGISTERED
from datasources.registry_watch import read_version, refresh_in_place
from datasources.rollup import producer_commands
from datasources.topology import build_topology
from tests.unit.small_registry import CAMERAS, CENTRES, GRIDS, small_topology


def test_refresh_in_place_swaps_every_field_for_every_holder():
    topo = small_topology()
    held_centres = topo.centres  # a reader mid-request keeps a consistent old view
    renamed = [(c, "新名" if c == "D1" else n, *rest) for c, n, *rest in CENTRES]
    new = build_topology([*renamed, ("D3", "District 3", 2, "C", None, None, None)],
                         [*GRIDS, ("G9", "V2", "urban", 1)], [*CAMERAS, ("K9", "V2", "dome")])
    holder = {"topo": topo}
    refresh_in_place(topo, new)
    assert holder["topo"] is topo
    assert topo.centres["D1"].name == "新名"
    assert "D3" in topo.shards and topo.grid_centre["G9"] == "V2" and "K9" in topo.camera
    assert topo.children["C"] == ("D1", "D2", "D3")
    assert held_centres["D1"].name == "District 1" and "D3" not in held_centres
    with pytest.raises(dataclasses.FrozenInstanceError):
        topo.centres = {}  # still frozen for everyone else
    refresh_in_place(topo, topo)  # a no-op
    assert topo.centres["D1"].name == "新名"


@pytest.mark.parametrize(("raw", "want"), [
    (None, "0"), (b"7", "7"), ("12", "12"), (b"\xff\xfe", "\ufffd\ufffd"),
    (b"9" * 1000, "9" * 32), (b"1; DROP TABLE centres", "1; DROP TABLE centres"),
])
def test_read_version_is_opaque_and_bounded(raw, want):
    assert read_version(raw) == want


class _Watcher(VersionWatcher):
    """A watcher whose ticks are set by hand (no Redis in unit tests)."""

    def __init__(self, on_registry, seen=None):
        super().__init__(None, Keys("t"), ("D1",), None, on_registry=on_registry,
                         registry_seen=seen)


def test_watcher_reloads_once_per_new_version_and_retries_a_failure(monkeypatch):
    calls: list[int] = []
    fail = [True]

    def reload():
        calls.append(1)
        if fail[0]:
            raise OSError("SQL is away")

    w = _Watcher(reload)
    w._registry_read = "3"
    assert not w.check_registry() and w.registry_seen == "3" and not calls  # the first read
    assert not w.check_registry()
    w._registry_read = "4"
    tick = w._tick
    assert not w.check_registry() and len(calls) == 1  # failed: logged, old registry kept
    assert w.registry_seen == "3" and w.registry_generation == 0
    assert not w.check_registry() and len(calls) == 1  # not again before REGISTRY_RETRY_S
    w._registry_retry_at = 0.0
    fail[0] = False
    assert w.check_registry() and len(calls) == 2
    assert w.registry_seen == "4" and w.registry_generation == 1 and w._tick == tick + 1
    assert not w.check_registry() and len(calls) == 2
    w._registry_read = None  # unreadable (overwritten with another type): nothing happens
    assert not w.check_registry()


def test_watcher_without_reload_or_with_a_known_version_does_nothing():
    assert not _Watcher(None)._registry_read
    w = _Watcher(lambda: pytest.fail("no reload"), seen="5")
    w._registry_read = "5"
    assert not w.check_registry()
    w.set_shards(["D1", "D2"])
    assert w.shards == ("D1", "D2")


def test_producer_commands():
    keys = Keys("t")
    assert producer_commands(keys, "D1", {}, {}, 1000) == []
    cmds = producer_commands(keys, "D1", {"city12345": [3, 900], UNREGISTERED: [1, 2000]},
                             {("city12345", "unknown centre"): 2}, 1000)
    key = keys.producer_stats("D1")
    assert cmds[0] == ["HINCRBYMANY", key, "city12345|accepted", 3,
                       f"{UNREGISTERED}|accepted", 1, "city12345|dead|unknown centre", 2]
    assert ["HMAXLAST", key, "city12345|last_ts", 900] in cmds
    assert cmds[-1] == ["HSET", key, "city12345|applied_at", 1000, "city12345|lag_ms", 100,
                        f"{UNREGISTERED}|applied_at", 1000, f"{UNREGISTERED}|lag_ms", 0]
    assert all(c[1] == key for c in cmds)  # one key of the shard: fenced_write's tag check
    only_dead = producer_commands(keys, "D1", {}, {(UNREGISTERED, "bad ts"): 1}, 5)
    assert only_dead == [["HINCRBYMANY", key, f"{UNREGISTERED}|dead|bad ts", 1]]
