"""Registry changes on a running system: the registry version and the in-place topology swap.

Every change of the registry that running processes must pick up (`pingan registry import`,
producers, vocabulary) INCRs `Keys.registry_version()` after its SQL commit. The aggregator
polls it at most once a second between batches; each web worker reads it in the version
watcher's round trip (dashboard/versions.py). Both reload the registry from SQL when it moved.

A web worker's `Topology` is one object shared by every route, callback and service, so it is
refreshed in place (`refresh_in_place`) rather than replaced.
"""

from __future__ import annotations

import threading

import redis

from datasources.keys import Keys
from datasources.topology import Topology

# one swap at a time per process (two watchers of one process would otherwise interleave)
_SWAP = threading.Lock()


def read_version(raw: bytes | str | None) -> str:
    """The registry version as stored (an INCR counter; absent: "0"). Untrusted like any
    key: anything is compared as an opaque text, cut to 32 characters."""
    if raw is None:
        return "0"
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text[:32]


def registry_version(r: redis.Redis, keys: Keys) -> str:
    """The current registry version (one GET)."""
    return read_version(r.get(keys.registry_version()))


def bump(r: redis.Redis, keys: Keys) -> int:
    """Tell running processes that the registry changed (call after the SQL commit)."""
    return int(r.incr(keys.registry_version()))


def refresh_in_place(topo: Topology, new: Topology) -> None:
    """Make `topo` (a frozen dataclass shared by many holders) hold `new`'s contents.

    The swap is one assignment of the instance's `__dict__` (atomic under the GIL): a reader
    sees every attribute of either the old or the new registry, never a half-updated field.
    A request that reads `topo.centres` before the swap and `topo.children` after it sees
    both versions, as any request straddling a registry change does; a holder that wants one
    consistent version keeps the dicts it read (`centres = topo.centres`). The old dicts are
    never mutated, so such holders stay consistent."""
    if topo is new:
        return
    with _SWAP:
        object.__setattr__(topo, "__dict__", dict(new.__dict__))


def registry_version_or_none(r: redis.Redis, keys: Keys) -> str | None:
    """The current registry version, None while Redis cannot be reached (a process starting
    then takes the first version it reads as the one its registry was loaded at)."""
    try:
        return registry_version(r, keys)
    except (redis.RedisError, OSError):
        return None
