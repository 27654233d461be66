"""Registry changes on a running system: the registry version and the in-place topology swap.

Every change of the registry that running processes must pick up (`pingan registry import`,
producers, vocabulary) INCRs `Keys.registry_version()` after its SQL commit. The aggregator
polls it at most once a second between batches; each web worker reads it in the version
watcher's round trip (dashboard/versions.py). Both reload the registry from SQL when it moved.

A web worker's `Topology` is one object shared by every route, callback and service, so it is
refreshed in place (`refresh_in_place`) rather than replaced.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from datasources.keys import Keys
from datasources.topology import Topology


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
    object.__setattr__(topo, "__dict__", dict(new.__dict__))


@dataclass
class ReloadFailures:
    """A reload that keeps failing (SQL away), tried about once a second: its trace the first
    time, then one line a minute, so a long outage does not flood the log."""

    log: logging.Logger
    who: str  # what reloads, for the log line
    count: int = 0  # failures in a row

    def failed(self, version: str, exc: Exception, retry_s: float) -> None:
        """Call from the `except` block of the failed reload."""
        self.count += 1
        if self.count == 1:
            self.log.exception("%s: registry version %s: reload failed; keeping the registry "
                               "loaded before, trying again every %.0f s", self.who, version,
                               retry_s)
        elif self.count % 60 == 0:
            self.log.warning("%s: registry version %s: reload still failing (%d tries): %s",
                             self.who, version, self.count, exc)

    def ok(self) -> None:
        self.count = 0


def registry_version_or_none(r: redis.Redis, keys: Keys) -> str | None:
    """The current registry version, None while Redis cannot be reached (a process starting
    then takes the first version it reads as the one its registry was loaded at)."""
    try:
        return registry_version(r, keys)
    except (redis.RedisError, OSError):
        return None
