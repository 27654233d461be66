"""The shards' versions as one worker sees them: one Redis read per tick for every screen.

Per worker process, one `VersionWatcher` reads every shard's meta hash (version, heartbeat,
epoch, …) in one pipelined round trip every `poll_s`, and wakes whoever waits (the live
streams, `wait`) when anything changed. About once a second it also reads which centres are
in a video call. Everything that shows figures keys its caches by these versions
(`dashboard.screens`), so a version is read and shaped once per worker however many screens
show it.

Hardening (docs/security.md):
- The meta hashes are untrusted input (`readmodel.parse_meta`): garbage fields are left out
  and logged when the set of them changes.
- A shard version that goes backwards, or a changed `epoch` (Redis restored from an older AOF,
  `pingan rebuild`), calls `on_rewind`: nothing cached before may look fresh.
- The polling thread logs (rate-limited) and survives any exception: a dead loop would freeze
  every screen of the worker.

Registry changes (datasources/registry_watch.py): the same round trip reads the registry
version; when it moves, `on_registry` reloads the worker's registry in place (from the polling
thread, between two ticks) and the waiters are woken. A reload that fails (SQL away) is logged
and tried again a second later, the old registry staying in use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

import redis

from datasources.keys import Keys
from datasources.readmodel import parse_meta
from datasources.registry_watch import ReloadFailures, read_version
from datasources.vc import Conferences

log = logging.getLogger(__name__)
THREAD_NAME = "pingan-live-hub"
REGISTRY_RETRY_S = 1.0  # a failed registry reload is tried again this much later


class VersionWatcher:
    """The latest meta hash of every shard, `None` while Redis cannot be reached (then
    `down_since` says since when), and a tick that moves whenever either changes."""

    def __init__(self, r: redis.Redis, keys: Keys, shards: Iterable[str],
                 conferences: Conferences, on_rewind: Callable[[], None] = lambda: None,
                 poll_s: float = 0.05, on_registry: Callable[[], None] | None = None,
                 registry_seen: str | None = None) -> None:
        """`on_registry` reloads the registry when its version moves past `registry_seen`
        (the version the worker's registry was loaded at; None: the first one read)."""
        self.r = r
        self.keys = keys
        self.shards = tuple(shards)
        self.on_registry = on_registry
        self.registry_seen = registry_seen
        self.registry_generation = 0  # registry reloads so far (a screen's tag includes it)
        self._registry_read: str | None = None  # as of the last tick
        self._registry_retry_at = 0.0
        self._registry_failures = ReloadFailures(log, "live")
        self.conferences = conferences
        self.on_rewind = on_rewind
        self.poll_s = poll_s
        self._cond = threading.Condition()
        self._metas: dict[str, dict] | None = None
        self._down_since: int | None = None
        self._tick = 0
        self._in_call: frozenset[str] = frozenset()
        self._last_good: dict[str, dict] = {}
        self._bad_meta: frozenset[tuple[str, str]] = frozenset()
        self._errors = 0
        self._started = False
        self._start_lock = threading.Lock()
        self._stop = threading.Event()

    # -- the thread -----------------------------------------------------------------------
    def start(self) -> None:
        """Start polling (once; called by every reader, so nothing polls before it is used)."""
        with self._start_lock:
            if not self._started:
                self._started = True
                self.publish(self.read_metas())  # the first screens need not wait a tick
                self.refresh_calls()
                threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True).start()

    def stop(self) -> None:
        """End the thread after its current tick (a worker never does; tests and tools do)."""
        self._stop.set()

    def _loop(self) -> None:
        """Runs until `stop()`: an exception is logged (rate-limited) and the next tick tries
        again."""
        n = 0
        while not self._stop.wait(self.poll_s):
            try:
                self.publish(self.read_metas())
                self.check_registry()
                n += 1
                if n % max(1, int(1 / self.poll_s)) == 0:
                    self.refresh_calls()
            except Exception:
                self._errors += 1
                if self._errors <= 3 or self._errors % 1000 == 0:
                    log.exception("live: polling failed (%d so far); going on", self._errors)
                self._stop.wait(min(1.0, 10 * self.poll_s))

    # -- one tick -------------------------------------------------------------------------
    def read_metas(self) -> dict[str, dict] | None:
        """Every shard's meta hash (garbage values left out and logged, readmodel.parse_meta);
        None while Redis cannot be reached."""
        shards = self.shards  # one tuple per tick: a registry reload replaces it
        try:
            pipe = self.r.pipeline(transaction=False)
            for s in shards:
                pipe.hgetall(self.keys.meta(s))
            pipe.get(self.keys.registry_version())
            *replies, registry = pipe.execute(raise_on_error=False)
        except (redis.RedisError, OSError):
            return None
        if any(isinstance(reply, Exception) for reply in replies):
            return None  # as when the pipeline raised: a meta hash that cannot be read
        # an overwritten registry version (not a string) must not blank the wall: ignored
        self._registry_read = None if isinstance(registry, Exception) else read_version(registry)
        metas, bad = {}, set()
        for s, raw in zip(shards, replies, strict=True):
            metas[s], fields = parse_meta(raw)
            bad.update((s, f) for f in fields)
        if bad != self._bad_meta:  # logged when it changes, not 20 times a second
            self._bad_meta = frozenset(bad)
            if bad:
                log.warning("live: ignoring malformed meta fields %s", sorted(bad)[:20])
        return metas

    def publish(self, metas: dict[str, dict] | None) -> None:
        """Take `metas` (None: Redis is away) as the current state; wake the waiters if it
        changed, after `on_rewind` when a shard went back."""
        if metas is not None:
            self._check_rewound(metas)
        with self._cond:
            changed = metas != self._metas
            if metas is None and self._down_since is None:
                self._down_since = int(time.time() * 1000)
            elif metas is not None:
                self._down_since = None
            self._metas = metas
            if changed:
                self._tick += 1
                self._cond.notify_all()

    def check_registry(self) -> bool:
        """After a tick: when the registry version read moved, `on_registry` (reload in
        place) and wake the waiters. True when the registry was reloaded."""
        version = self._registry_read
        if version is None or self.on_registry is None:
            return False
        if self.registry_seen is None:
            self.registry_seen = version  # the registry was loaded just before the first tick
            return False
        if version == self.registry_seen or time.monotonic() < self._registry_retry_at:
            return False
        try:
            self.on_registry()
        except Exception as exc:
            self._registry_retry_at = time.monotonic() + REGISTRY_RETRY_S
            self._registry_failures.failed(version, exc, REGISTRY_RETRY_S)
            return False
        self._registry_failures.ok()
        log.info("live: registry version %s: registry reloaded", version)
        with self._cond:
            self.registry_seen = version
            self.registry_generation += 1
            self._tick += 1
            self._cond.notify_all()
        return True

    def set_shards(self, shards: Iterable[str]) -> None:
        """Watch these shards from the next tick on (a registry reload may add one)."""
        self.shards = tuple(shards)

    def _check_rewound(self, metas: dict[str, dict]) -> None:
        """A shard whose version went down, or whose epoch changed, since the last answer
        from Redis (also across an outage) calls `on_rewind`."""
        rewound = [s for s, m in metas.items()
                   if (old := self._last_good.get(s)) is not None
                   and (m.get("version", 0) < old.get("version", 0)
                        or m.get("epoch") != old.get("epoch"))]
        self._last_good = metas
        if rewound:
            log.warning("live: read model of shards %s went back (version or epoch): "
                        "cached views dropped", rewound)
            self.on_rewind()

    def refresh_calls(self) -> None:
        """Which centres are in a video call (ends timed-out calls); wakes the waiters on a
        change. Called by the loop about once a second and after a call starts or ends."""
        try:
            codes = frozenset(self.conferences.in_call())
        except (redis.RedisError, OSError):
            return
        except Exception:
            log.exception("live: reading the calls in progress failed")
            return
        with self._cond:
            if codes != self._in_call:
                self._in_call = codes
                self._tick += 1
                self._cond.notify_all()

    # -- readers --------------------------------------------------------------------------
    def wait(self, seen_tick: int, timeout: float) -> int:
        """Block until the state changed after `seen_tick` (or timeout); return the tick."""
        self.start()
        with self._cond:
            if self._tick == seen_tick:
                self._cond.wait(timeout)
            return self._tick

    def state(self) -> tuple[dict[str, dict] | None, int | None]:
        """(every shard's meta or None while Redis is away, since when it is away in ms)."""
        self.start()
        with self._cond:
            return self._metas, self._down_since

    def metas_now(self) -> dict[str, dict]:
        """The current metas; while Redis was away at the last tick, one read now (empty if
        it is still away)."""
        return self.state()[0] or self.read_metas() or {}

    def in_call(self, codes: Iterable[str]) -> list[str]:
        """Which of `codes` are in a video call, sorted."""
        with self._cond:
            return sorted(set(codes) & self._in_call)
