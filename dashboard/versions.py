"""The figures sources' versions as one worker sees them: one Redis read per tick for every
screen, whose size follows the centres in view, not the number of shards.

Per worker process, one `VersionWatcher` reads the meta hashes (version, heartbeat, epoch, …)
of the figures sources (`topology.sources`: a shard, or `^CODE`, the roll-up of a centre above
the shard tier; `Keys.source_meta`) of the centres this worker's screens show, in one
pipelined round trip every `poll_s`, and wakes whoever waits (the live streams, `wait`) when
anything changed. About once a second it also reads which centres are in a video call.
Everything that shows figures keys its caches by these versions (`dashboard.screens`), so a
version is read and shaped once per worker however many screens show it.

What is watched (docs/live-push.md): the root's own source always (its roll-up moves whenever
any shard below it moves: the alert strip's key), and the sources of each centre a screen
shows — while a live stream of it is open (`hold`) or a screen or callback touched it
(`watch`) within `idle_s`. A tick costs one pipeline of |watched sources| + 1 commands, flat
in the number of shards. The set is recomputed when a centre comes or goes and after a
registry reload, not per tick; a centre newly watched has its new sources read at once.
Tools and tests may instead pass a fixed list of sources.

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

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import redis

from datasources.keys import Keys
from datasources.readmodel import parse_meta
from datasources.registry_watch import ReloadFailures, read_version
from datasources.topology import Topology, source, sources
from datasources.vc import Conferences

log = logging.getLogger(__name__)
THREAD_NAME = "pingan-live-hub"
REGISTRY_RETRY_S = 1.0  # a failed registry reload is tried again this much later
WATCH_IDLE_S = 60.0     # a centre no screen touched for this long is no longer watched
EXPIRE_EVERY_S = 1.0    # idle centres are looked for at most this often


class VersionWatcher:
    """The latest meta hash of every watched figures source, `None` while Redis cannot be
    reached (then `down_since` says since when), and a tick that moves whenever either
    changes."""

    def __init__(self, r: redis.Redis, keys: Keys, watched: Topology | Iterable[str],
                 conferences: Conferences, on_rewind: Callable[[], None] = lambda: None,
                 poll_s: float = 0.05, on_registry: Callable[[], None] | None = None,
                 registry_seen: str | None = None, idle_s: float = WATCH_IDLE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`watched`: the registry's topology (the one `on_registry` refreshes in place):
        watch the sources of the centres in view; or a fixed list of source ids.
        `on_registry` reloads the registry when its version moves past `registry_seen`
        (the version the worker's registry was loaded at; None: the first one read)."""
        self.r = r
        self.keys = keys
        self.topology = watched if isinstance(watched, Topology) else None
        self.idle_s = idle_s
        self._clock = clock
        self._watch_lock = threading.Lock()
        self._seen: dict[str, float] = {}  # centre → when a screen last touched it
        self._held: Counter[str] = Counter()  # centre → its live streams open
        self._expire_at = 0.0
        self.sources: tuple[str, ...] = (self._wanted() if self.topology is not None
                                         else tuple(watched))
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
        self._read_lock = threading.Lock()  # one read of Redis at a time: none overtakes
        self._metas: dict[str, dict] | None = None
        self._down_since: int | None = None
        self._tick = 0
        self._in_call: frozenset[str] = frozenset()
        self._last_good: dict[str, dict] = {}  # also of sources no longer watched
        self._bad_meta: frozenset[tuple[str, str]] = frozenset()
        self._errors = 0
        self._started = False
        self._start_lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def shards(self) -> tuple[str, ...]:
        """The watched sources (their former name)."""
        return self.sources

    # -- the thread -----------------------------------------------------------------------
    def start(self) -> None:
        """Start polling (once; called by every reader, so nothing polls before it is used)."""
        with self._start_lock:
            if not self._started:
                self._started = True
                with self._read_lock:
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
                self.expire()
                with self._read_lock:
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

    # -- what is watched ------------------------------------------------------------------
    def watch(self, code: str) -> None:
        """A screen or callback shows `code` now: watch its sources for the next `idle_s`
        at least. A centre not watched before has its new sources read at once (its first
        screen need not wait a tick). Cheap when it is watched already. Unknown codes and a
        watcher of a fixed list ignore it."""
        topo = self.topology
        if topo is None or code not in topo.centres:
            return
        with self._watch_lock:
            new = code not in self._seen
            self._seen[code] = self._clock()
        if new:
            self._read_now(self._resync())

    @contextlib.contextmanager
    def hold(self, code: str) -> Iterator[None]:
        """Watch `code` for as long as the block runs (a live stream of it is open), and
        `idle_s` after."""
        with self._watch_lock:
            self._held[code] += 1
        try:
            self.watch(code)
            yield
        finally:
            with self._watch_lock:
                self._held[code] -= 1
                if self._held[code] <= 0:
                    del self._held[code]
                if code in self._seen:
                    self._seen[code] = self._clock()

    def watching(self) -> tuple[str, ...]:
        """The centres watched (besides the roots), sorted."""
        with self._watch_lock:
            return tuple(sorted(self._seen))

    def expire(self) -> None:
        """Stop watching the centres no stream holds and nothing touched for `idle_s`
        (looked at most every EXPIRE_EVERY_S; called by the loop)."""
        now = self._clock()
        if self.topology is None or now < self._expire_at:
            return
        self._expire_at = now + min(EXPIRE_EVERY_S, self.idle_s / 4)
        with self._watch_lock:
            gone = [c for c, at in self._seen.items()
                    if not self._held.get(c) and now - at > self.idle_s]
            for c in gone:
                del self._seen[c]
        if gone:
            self._resync()

    def _wanted(self) -> tuple[str, ...]:
        """The sources to watch: the roots' own and those of every watched centre still in
        the registry (a registry reload may have removed one)."""
        topo = self.topology
        assert topo is not None
        with self._watch_lock:
            codes = [*self._seen, *(c for c in self._held if c not in self._seen)]
        out = dict.fromkeys(source(topo, root) for root in topo.roots)
        for code in codes:
            try:
                out.update(dict.fromkeys(sources(topo, code)))
            except KeyError:  # mid-reload, or no longer in the registry: skipped
                continue
        return tuple(out)

    def _resync(self) -> list[str]:
        """Recompute the watched sources; return those added."""
        wanted = self._wanted()
        old = set(self.sources)
        self.sources = wanted
        return [s for s in wanted if s not in old]

    def _read_now(self, added: list[str]) -> None:
        """Read the metas of `added` now and merge them into the current state (before the
        thread started, its first read reads them; while Redis is away, the next tick)."""
        if not added or not self._started:
            return
        with self._read_lock:
            part = self._read(added, registry=False)
            if part is None:
                return
            self._check_rewound(part)
            with self._cond:
                if self._metas is None:
                    return
                merged = {**self._metas, **part}
                if merged != self._metas:
                    self._metas = merged
                    self._tick += 1
                    self._cond.notify_all()

    # -- one tick -------------------------------------------------------------------------
    def read_metas(self) -> dict[str, dict] | None:
        """Every watched source's meta hash (garbage values left out and logged,
        readmodel.parse_meta), and the registry version in the same round trip; None while
        Redis cannot be reached."""
        return self._read(self.sources, registry=True)  # one tuple per tick

    def _read(self, watched: Iterable[str], registry: bool) -> dict[str, dict] | None:
        """The meta hashes of `watched` in one pipeline (+ the registry version)."""
        watched = tuple(watched)
        try:
            pipe = self.r.pipeline(transaction=False)
            for s in watched:
                pipe.hgetall(self.keys.source_meta(s))
            if registry:
                pipe.get(self.keys.registry_version())
            replies = pipe.execute(raise_on_error=False)
        except (redis.RedisError, OSError):
            return None
        if registry:
            *replies, version = replies
        if any(isinstance(reply, Exception) for reply in replies):
            return None  # as when the pipeline raised: a meta hash that cannot be read
        if registry:  # an overwritten version (not a string) must not blank the wall: ignored
            self._registry_read = (None if isinstance(version, Exception)
                                   else read_version(version))
        metas, bad = {}, set()
        for s, raw in zip(watched, replies, strict=True):
            metas[s], fields = parse_meta(raw)
            bad.update((s, f) for f in fields)
        if registry and bad != self._bad_meta:  # logged when it changes, not 20 times a second
            self._bad_meta = frozenset(bad)
            if bad:
                log.warning("live: ignoring malformed meta fields %s", sorted(bad)[:20])
        return metas

    def publish(self, metas: dict[str, dict] | None) -> None:
        """Take `metas` (None: Redis is away) as the current state; wake the waiters if it
        changed, after `on_rewind` when a source went back. A watched source missing from
        `metas` (added while this tick's read was under way) keeps its current value."""
        if metas is not None:
            self._check_rewound(metas)
        with self._cond:
            if metas is not None and self._metas is not None:
                kept = {s: self._metas[s] for s in self.sources
                        if s not in metas and s in self._metas}
                metas = {**metas, **kept} if kept else metas
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
        if self.topology is not None:  # refreshed in place: its sources may have moved
            self._resync()
        with self._cond:
            self.registry_seen = version
            self.registry_generation += 1
            self._tick += 1
            self._cond.notify_all()
        return True

    def set_shards(self, shards: Iterable[str]) -> None:
        """Watch exactly these sources from the next tick on, whatever the screens show
        (tools and tests; a watcher of a topology recomputes its own)."""
        self.topology = None
        self.sources = tuple(shards)

    def _check_rewound(self, metas: dict[str, dict]) -> None:
        """A source whose version went down, or whose epoch changed, since the last answer
        from Redis (also across an outage, and since it was last watched) calls
        `on_rewind`. A source never written before (empty meta) has nothing to go back
        from."""
        rewound = [s for s, m in metas.items()
                   if (old := self._last_good.get(s))
                   and (m.get("version", 0) < old.get("version", 0)
                        or m.get("epoch") != old.get("epoch"))]
        self._last_good.update(metas)
        if rewound:
            log.warning("live: read model of sources %s went back (version or epoch): "
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
        """(every watched source's meta, or None while Redis is away; since when it is
        away in ms)."""
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
