"""The aggregator: consumer groups on every shard's streams → the read model, exactly once.

Work is shared between processes by shard leases (`{SHARD}:lease`, SET NX PX): the holder of a
shard's lease is the only reader of its streams, so each shard is applied in stream order.
Reads and writes are both fenced by the lease (a read is a MULTI/EXEC under WATCH of the lease
key, a write `fenced_write.lua`): a process whose lease lapsed can neither take entries into
its pending list nor apply a batch, and the next holder claims every pending entry when it
takes the lease. Each batch is one Lua
step, validated before its first write, that acknowledges its entries first and applies nothing
when they were already acknowledged (a retried call), so a batch counts exactly once.

Whatever a producer writes, the process keeps going: an entry that breaks the contract is a
dead letter with its reason; a batch that cannot be applied is split until the entry that
breaks it is found and dead-lettered (`apply failed: …`); a read-model key that someone
overwrote with the wrong type is moved aside and recorded as an incident; Redis being away is
waited out. Processes advertise themselves in a heartbeat ZSET so that each takes a fair share
of the shards. The holder of the shard of a centre above the shard tier (a city, a province)
also writes that centre's roll-up every `upper_interval_ms` (`roll_up`, datasources/upper.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from importlib import resources
from typing import NamedTuple
from zoneinfo import ZoneInfo

import redis

from datasources.alerts import AlertEngine, load_rules
from datasources.clock import WALL, TimeSource
from datasources.config import PipelineConfig
from datasources.connection import scan_iter, server_id, text_client
from datasources.contract import (
    MAX_FIELDS,
    Clock,
    InvalidEntry,
    ShardLookup,
    dead_letter,
    shard_lookup,
    validate,
    validate_fast,
    validate_handoff,
)
from datasources.keys import GROUP, HANDIN, QUARANTINED, READ_KINDS, VC_KIND, Keys
from datasources.producers import SIMULATOR, UNREGISTERED, reason_class
from datasources.registry_watch import ReloadFailures, registry_version
from datasources.rollup import (
    TS,
    CorruptKey,
    Limits,
    compute,
    expire_commands,
    load_state,
    producer_commands,
    tail_commands,
)
from datasources.topology import Topology, upper_order
from datasources.upper import FULL_EVERY_S, REFRESH_S, version_sum
from datasources.upper import read as read_rollup
from datasources.upper import window as rollup_window
from datasources.upper import write_commands as rollup_commands

log = logging.getLogger(__name__)
ALIVE_MS = 3000  # a process whose heartbeat (renewed every ≤ 1 s by `balance`) is older is dead

RECENT_MAX = 200
EXPIRE_BATCH = 500  # cases expired per housekeeping step
INCIDENTS_MAX = 10_000
QUARANTINE_TTL_S = 7 * 86400
MAX_QUARANTINES = 8  # keys set aside for one batch before it is split instead
CONSOLE_S = 0.2  # the console stream (alert acks) is read this often per shard at most
REGISTRY_POLL_S = 1.0  # the registry version is read this often at most (one GET)
# errors of a Redis that is busy, loading, out of memory or failing over: wait, do not split
TRANSIENT = ("OOM", "BUSY", "LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN",
             "NOREPLICAS", "NOSCRIPT", "UNBLOCKED")
_WRONG = re.compile(r"BATCH refused: (\S+) (?:is a \w+, not a \w+|field .* is not an integer"
                    r"|has no stream ids left)")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseLost(Exception):
    """This process no longer holds the shard: its read or write was refused."""


def _lua(name: str) -> str:
    return resources.files("datasources").joinpath(name).read_text()


def _transient(exc: redis.ResponseError) -> bool:
    return str(exc).split(" ", 1)[0].upper() in TRANSIENT


@dataclass
class ShardState:
    shard: str
    token: str
    draining: bool = True  # reading our own pending entries ('0') before new ones ('>')
    draining_handoff: bool = True  # the same for the hand-over outbox, read on its own
    draining_console: bool = True  # the same for the console's requests (alert acks)
    renewed_at: float = 0.0
    taken_at: float = field(default_factory=time.monotonic)
    count_from_day: str = ""  # rebuild: days before this keep their buckets (not recounted)
    # rebuild: entries up to these ids were dead-lettered before; not copied again
    replayed_until: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead: int = 0
    read: int = 0
    expired: int = 0
    split: int = 0  # batches split to find an entry that could not be applied
    retried: int = 0  # batch calls found already applied (a retry after a lost reply)


class Share(NamedTuple):
    mine: frozenset[str]  # the shards the plan gives this process
    live: int  # live processes, this one included


def plan_shards(weights: dict[str, int], live: list[str]) -> dict[str, frozenset[str]]:
    """Shards per live process, balanced by weight: heaviest first, each to the process with
    the least weight so far (ties: the first name). Deterministic, so every process that
    sees the same live processes computes the same plan; a count-only share could leave one
    process the two busiest districts."""
    load = dict.fromkeys(live, 0)
    plan: dict[str, set[str]] = {c: set() for c in live}
    for shard in sorted(weights, key=lambda s: (-weights[s], s)):
        c = min(live, key=lambda name: (load[name], name))
        plan[c].add(shard)
        load[c] += weights[shard]
    return {c: frozenset(s) for c, s in plan.items()}


class Item(NamedTuple):
    """One entry as read: its stream, kind, id and fields as a flat list of names and values
    (None when the entry was trimmed before it was read)."""

    stream: str
    kind: str
    id: str
    flat: list[str] | None

    def pairs(self) -> list[tuple[str, str]]:
        f = self.flat or []
        return list(zip(f[::2], f[1::2], strict=True))


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class Aggregator:
    r: redis.Redis
    topo: Topology
    config: PipelineConfig
    consumer: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )
    clock: TimeSource = WALL
    housekeeping_s: float = 30.0  # real seconds between a shard's trims and expiries
    # registry changes on a running system (datasources/registry_watch.py): the registry as
    # it is now, and the active producers' names; both read from SQL by the caller's wiring
    reload: Callable[[], Topology] | None = None
    producer_names: Callable[[], frozenset[str]] | None = None
    registry_seen: str | None = None  # the registry version `topo` was loaded at, if known

    def __post_init__(self) -> None:
        self.keys = Keys(self.config.key_prefix)
        self.tz = ZoneInfo(self.config.tz)
        # raw replies: redis-py's per-entry dict building is the costliest part of a read
        self._raw = text_client(self.r)
        self._write = self.r.register_script(_lua("fenced_write.lua"))
        for command in ("XREADGROUP", "XAUTOCLAIM"):
            self._raw.set_response_callback(command, lambda reply, **_kw: reply)
        s = self.config
        ttl = self.clock.ttl_s
        self.limits = Limits(
            ttl_day=ttl(s.day_bucket_ttl_s), ttl_hour=ttl(s.hour_bucket_ttl_s),
            ttl_seen=ttl(s.idempotency_window_s),
            patrols_per_day=s.patrols_per_day, recent_max=RECENT_MAX, dead_max=s.dead_maxlen,
            # an open case's record outlives the case age limit, after which it expires
            ttl_case_open=ttl((s.case_max_age_days + 1) * 86_400 + s.day_bucket_ttl_s),
        )
        self._renew = self.r.register_script(_RENEW)
        self._release = self.r.register_script(_RELEASE)
        self.held: dict[str, ShardState] = {}
        self._groups_ready: set[str] = set()
        self._last_balance = 0.0
        self._last_housekeeping: dict[str, float] = {}
        self._last_sweep = time.monotonic()
        self.totals = BatchResult()
        # what this process wrote and read, to notice a Redis that went back in time
        self._versions: dict[str, int] = {}
        self._read_log: dict[str, deque] = {}
        self._server_id: str | None = None
        self._lookups: dict[str, tuple[Topology, ShardLookup]] = {}
        self._free_since: dict[str, float] = {}  # shards planned for others: free since
        self.pinned = False  # a rebuild holds every shard and gives none back
        self._outage = False
        # 预警 (datasources/alerts.py): a rules file that is not valid stops the start here
        self.alerts = AlertEngine(load_rules(s.alert_rules), self.topo, self.keys, self.tz)
        self._last_alert_tick: dict[str, float] = {}
        self._last_console: dict[str, float] = {}  # when each shard's console was last read
        self._registry_checked = -math.inf
        self._registry_version = self.registry_seen  # None: not read yet
        self._producers: frozenset[str] = frozenset({SIMULATOR})  # counted under their name
        self._names_loaded = False
        self._reload_failures = ReloadFailures(log, "aggregator")
        self._last_roll = -math.inf  # roll-ups above the shard tier (datasources/upper.py)
        self._last_full_roll = -math.inf
        self._rolled: dict[str, tuple[int, float]] = {}  # centre → (version, when) written

    # ---- time ---------------------------------------------------------------------------
    def batch_clock(self) -> Clock:
        s = self.config
        return Clock(self.tz, self.clock.now_ms(), lateness_ms=s.max_lateness_s * 1000,
                     skew_ms=s.max_future_skew_s * 1000)

    # ---- leases -------------------------------------------------------------------------
    def _streams(self, shard: str) -> list[str]:
        return [self.keys.stream(shard, k) for k in READ_KINDS] + [self.keys.handoff(shard),
                                                                  self.keys.console(shard)]

    def _ensure_groups(self, shard: str) -> None:
        if shard in self._groups_ready:
            return
        for stream in self._streams(shard):
            try:
                self.r.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" in str(exc):
                    continue
                if "WRONGTYPE" in str(exc):
                    self._quarantine(shard, stream, "not a stream")
                    self.r.xgroup_create(stream, GROUP, id="0", mkstream=True)
                    continue
                raise
        self._groups_ready.add(shard)

    def _fair_share(self) -> Share:
        """Advertise this process in the heartbeat ZSET; the shards the plan gives it among
        the live processes (`plan_shards`: every process computes the same plan)."""
        now = int(time.time() * 1000)
        pk = self.keys.processes()
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(pk, {self.consumer: now})
        pipe.zremrangebyscore(pk, "-inf", now - self.config.lease_ms)
        pipe.zrange(pk, 0, -1)
        live = sorted({_text(m) for m in pipe.execute()[-1]} | {self.consumer})
        return Share(plan_shards(self._shard_weights, live)[self.consumer], len(live))

    @cached_property
    def _shard_weights(self) -> dict[str, int]:
        """A shard's expected share of the entries: 1 + its grids (patrols and most cases
        come from the grids; a shard of one centre still counts)."""
        weights = dict.fromkeys(self.topo.shards, 1)
        for centre in self.topo.grid_centre.values():
            weights[self.topo.centres[centre].shard] += 1
        return weights

    @cached_property
    def _upper(self) -> list[str]:
        """The centres rolled up above the shard tier, deepest first (`upper_order`)."""
        return upper_order(self.topo)

    def _heartbeat(self, shard: str) -> None:
        try:
            self.r.hset(self.keys.meta(shard), "heartbeat", self.clock.now_ms())
        except redis.ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            self._quarantine(shard, self.keys.meta(shard), "not a hash")

    def renew(self, st: ShardState) -> bool:
        ok = bool(self._renew(keys=[self.keys.lease(st.shard)],
                              args=[st.token, self.config.lease_ms]))
        if ok:
            st.renewed_at = time.monotonic()
        else:
            log.warning("lost lease on shard %s", st.shard)
            ok = self._lose(st)
        return ok

    def _lose(self, st: ShardState) -> bool:
        """The lease of `st` is gone. A process gives the shard up; a rebuild (`pinned`)
        holds every shard until it is done, so a lease that merely expired under it (a slow
        reset on a loaded machine) is set again with the same token, keeping the shard's
        rebuild state. Another holder means the rebuild cannot finish: stop, do not loop."""
        if not self.pinned:
            self.held.pop(st.shard, None)
            return False
        if not self.r.set(self.keys.lease(st.shard), st.token, nx=True, px=self.config.lease_ms):
            raise RuntimeError(f"rebuild: shard {st.shard} was taken by another process after "
                               "its lease expired under the rebuild; run pingan rebuild again")
        log.warning("rebuild: the expired lease of shard %s was set again", st.shard)
        st.renewed_at = time.monotonic()
        return True

    def balance(self) -> None:
        """Renew held leases, take the free shards the plan gives this process, give back the
        shards it gives another live process (once held a lease period, so that a shard
        taken over from a process that died is not passed around while the heartbeats
        catch up). A shard planned for another process that stays free for a lease period
        (its process is stuck or gone) is taken, up to ⌈shards / processes⌉."""
        now = time.monotonic()
        self._check_server()
        for st in list(self.held.values()):
            if self.renew(st):
                self._heartbeat(st.shard)
        if self.pinned:
            self._last_balance = now
            return
        mine, live = self._fair_share()
        at_most = math.ceil(len(self.topo.shards) / live)
        others = [s for s in self.topo.shards if s not in mine and s not in self.held]
        pipe = self.r.pipeline(transaction=False)
        for shard in others:
            pipe.exists(self.keys.lease(shard))
        free = {s for s, n in zip(others, pipe.execute(), strict=True) if not n}
        self._free_since = {s: self._free_since.get(s, now) for s in free}
        lease_s = self.config.lease_ms / 1000
        for shard in self.topo.shards:
            if shard in self.held:
                continue
            if shard not in mine and not (now - self._free_since.get(shard, now) > lease_s
                                          and len(self.held) < at_most):
                continue
            token = f"{self.consumer}:{uuid.uuid4().hex[:8]}"
            if self.r.set(self.keys.lease(shard), token, nx=True, px=self.config.lease_ms):
                self.take(shard, token)
                log.info("%s took shard %s", self.consumer, shard)
        for shard, st in list(self.held.items()):
            if shard not in mine and now - st.taken_at > lease_s:
                self.held.pop(shard)
                self._release(keys=[self.keys.lease(shard)], args=[st.token])
        self._last_balance = now

    def take(self, shard: str, token: str) -> ShardState:
        """Start work on a shard whose lease this process has just set to `token`."""
        self._ensure_groups(shard)
        st = ShardState(shard, token, renewed_at=time.monotonic())
        self.held[shard] = st
        self._claim_all(st)
        self._heartbeat(shard)
        return st

    def release_all(self) -> None:
        for st in self.held.values():
            self._release(keys=[self.keys.lease(st.shard)], args=[st.token])
        self.held.clear()
        self.r.zrem(self.keys.processes(), self.consumer)

    def _claim_all(self, st: ShardState, min_idle_ms: int = 0) -> int:
        """Move every pending entry of the shard (a previous holder's) to this consumer."""
        moved = 0
        for stream in self._streams(st.shard):
            start = "0-0"
            while True:
                # raw reply: redis-py's parser drops the cursor from JUSTID replies
                reply = self._raw.execute_command(
                    "XAUTOCLAIM", stream, GROUP, self.consumer, min_idle_ms, start,
                    "COUNT", self.config.batch_size, "JUSTID",
                )
                moved += len(reply[1])
                start = reply[0]
                if start in (b"0-0", "0-0"):
                    break
        st.draining = st.draining_handoff = st.draining_console = True
        return moved

    def sweep(self) -> None:
        """Belt and braces, between two rounds (when every batch read has been applied):
        entries pending with any other consumer of a shard this process holds are claimed,
        and entries pending with this one while it is not draining are read again (neither
        should happen; finding any is logged as a defect)."""
        for st in list(self.held.values()):
            for stream in self._streams(st.shard):
                info = self.r.xpending(stream, GROUP)
                mine = others = 0
                for c in info.get("consumers") or []:
                    name = c["name"].decode() if isinstance(c["name"], bytes) else c["name"]
                    if name == self.consumer:
                        mine += int(c["pending"])
                    else:
                        others += int(c["pending"])
                if others:
                    n = self._claim_all(st)
                    log.error("shard %s: claimed %d entries stranded with other consumers",
                              st.shard, n)
                    break
                handoff = stream == self.keys.handoff(st.shard)
                console = stream == self.keys.console(st.shard)
                draining = (st.draining_handoff if handoff else
                            st.draining_console if console else st.draining)
                if mine and not draining:
                    log.error("shard %s: %d entries of %s pending with this process between "
                              "rounds; reading them again", st.shard, mine, stream)
                    if handoff:
                        st.draining_handoff = True
                    elif console:
                        st.draining_console = True
                    else:
                        st.draining = True
        self._last_sweep = time.monotonic()

    # ---- registry changes on a running system -------------------------------------------
    def check_registry(self, force: bool = False) -> bool:
        """Between rounds, at most every REGISTRY_POLL_S (one GET), and before a batch with
        dead letters is written (`force`): when the registry version moved, reload the
        registry (`reload`) and the producers' names (`producer_names`).
        A reload that fails (SQL away) is logged and tried again at the next poll; the old
        registry stays in use meanwhile. The topology given at the start is taken as of
        `registry_seen` (unknown: as of the first version read); the producers' names are
        loaded at the first poll. Returns whether the topology changed."""
        if self.reload is None and self.producer_names is None:
            return False
        now = time.monotonic()
        if not force and now - self._registry_checked < REGISTRY_POLL_S:
            return False
        self._registry_checked = now
        try:
            version = registry_version(self.r, self.keys)
        except redis.ResponseError as exc:  # overwritten with another type: nothing to follow
            log.warning("registry version unreadable (%s); registry changes are not followed",
                        exc)
            return False
        if version == self._registry_version and self._names_loaded:
            return False
        moved = self._registry_version not in (None, version)
        try:
            topo = self.reload() if self.reload is not None and moved else None
            names = self.producer_names() if self.producer_names is not None else frozenset()
        except Exception as exc:
            self._reload_failures.failed(version, exc, REGISTRY_POLL_S)
            return False
        self._reload_failures.ok()
        self._producers = frozenset(names) | {SIMULATOR}
        self._names_loaded = True
        self._registry_version = version
        if topo is None:
            return False
        self.set_topology(topo)
        log.info("registry version %s: reloaded (%d centres, %d shards, %d producers)",
                 version, len(topo.centres), len(topo.shards), len(names))
        return True

    def set_topology(self, topo: Topology) -> None:
        """Use `topo` from the next batch on (never within one): the per-shard lookups, the
        alert engine, the shard weights of the plan; shards that left the registry are given
        back, new ones are taken by the next balance (which creates their groups)."""
        self.topo = topo
        self._lookups.clear()
        self.__dict__.pop("_shard_weights", None)
        self.__dict__.pop("_upper", None)
        self.alerts = AlertEngine(self.alerts.rules, topo, self.keys, self.tz)
        gone = [s for s in self.held if s not in set(topo.shards)]
        for shard in gone:
            st = self.held.pop(shard)
            with contextlib.suppress(redis.RedisError):
                self._release(keys=[self.keys.lease(shard)], args=[st.token])
        self._last_balance = 0.0  # balance at the start of the next round

    # ---- the loop -----------------------------------------------------------------------
    def step(self) -> int:
        """One round over the held shards; returns how many entries were read."""
        if self._outage:
            self.after_outage()  # raises while Redis is still away
            self._outage = False
        self.check_registry()
        if time.monotonic() - self._last_balance > min(1.0, self.config.lease_ms / 3000):
            self.balance()
        if time.monotonic() - self._last_sweep > max(1.0, self.config.lease_ms / 1000):
            self.sweep()
        n = 0
        for st in list(self.held.values()):
            try:
                # a long round must not outlive the lease it started with
                if (time.monotonic() - st.renewed_at) * 1000 > self.config.lease_ms / 3 \
                        and not self.renew(st):
                    continue
                n += self._step_shard(st)
                n += self._forward_handoffs(st)
                n += self._apply_console(st)
                if time.monotonic() - self._last_alert_tick.get(st.shard, 0) \
                        > self.alerts.rules.tick_s:
                    self.alert_tick(st)
                if time.monotonic() - self._last_housekeeping.get(st.shard, 0) \
                        > self.housekeeping_s:
                    self.housekeeping(st)
            except LeaseLost:
                log.warning("lease lost on %s; its work is refused and left to the next holder",
                            st.shard)
                self._lose(st)
        if time.monotonic() - self._last_roll >= self.config.upper_interval_ms / 1000:
            try:
                self.roll_up()
            except redis.ResponseError:  # never in the way of the batches; tried next round
                log.exception("roll-up above the shard tier failed")
        return n

    # ---- roll-ups above the shard tier (datasources/upper.py) ---------------------------
    def roll_up(self, full: bool = False) -> int:
        """Write the roll-ups of the centres above the shard tier whose shard this process
        holds, deepest first; every bucket a snapshot reads when `full` (and about once a
        minute), else the recent ones, skipping a roll-up with nothing new below it (the
        versions it would sum are those it was written at) written less than REFRESH_S ago.
        Returns how many were written. A write is fenced by the centre's lease: a process
        that lost it writes nothing and gives the shard up."""
        now = time.monotonic()
        self._last_roll = now
        if full or now - self._last_full_roll > FULL_EVERY_S:
            full = True
            self._last_full_roll = now
        now_ms = self.clock.now_ms()
        win = rollup_window(datetime.fromtimestamp(now_ms / 1000, self.tz), full)
        written = 0
        for code in self._upper:
            st = self.held.get(self.topo.centres[code].shard)
            if st is None:
                continue
            last = self._rolled.get(code)
            if not full and last is not None and now - last[1] < REFRESH_S \
                    and version_sum(self.r, self.keys, self.topo, code) == last[0]:
                continue  # nothing new below it (O(children) HGETs instead of its buckets)
            roll = read_rollup(self.r, self.keys, self.topo, code, win, now_ms)
            try:
                self._fenced(st, rollup_commands(self.keys, roll, self.limits.ttl_day,
                                                 self.limits.ttl_hour))
            except LeaseLost:
                log.warning("lease lost on %s; its roll-up is left to the next holder", code)
                self._lose(st)
                self._rolled.pop(code, None)
                continue
            self._rolled[code] = (roll.meta["version"], now)
            written += 1
        return written

    def roll_ups_orphaned(self) -> list[str]:
        """The rolled centres whose shard this process does not hold and no live process
        holds: free, or its holder has no heartbeat in the processes ZSET for 3 s (killed,
        paused) while its lease has not lapsed. A run until idle waits for them (the lease lapses, `balance`
        takes the shard, the final full pass writes the roll-up): the dead holder's last pass
        may have been a partial one that left older buckets behind."""
        others = [c for c in self._upper if self.topo.centres[c].shard not in self.held]
        if not others:
            return []
        pipe = self.r.pipeline(transaction=False)
        for code in others:
            pipe.get(self.keys.lease(self.topo.centres[code].shard))
        holders = [_text(v).rpartition(":")[0] if v else None for v in pipe.execute()]
        named = sorted({h for h in holders if h})
        pipe = self.r.pipeline(transaction=False)
        for h in named:
            pipe.zscore(self.keys.processes(), h)
        beats = dict(zip(named, pipe.execute(), strict=True))
        now = time.time() * 1000  # the heartbeats' clock (`_fair_share`)
        return [c for c, h in zip(others, holders, strict=True)
                if h is None or beats[h] is None or now - beats[h] > ALIVE_MS]

    def run(self, until_idle: bool = False, should_stop=lambda: False,
            on_round=None) -> BatchResult:
        """Apply until stopped (or, with `until_idle`, until nothing is pending anywhere);
        `on_round(totals)` is called after every round (progress). The roll-ups this process
        writes are written again at once when its batches go idle, and fully at the end (the
        figures above the shards are then exact: a test, a rebuild, a stopped process)."""
        idle_rounds = 0
        failures = 0
        applied = False  # entries applied since the last roll-up
        final = False  # the final full roll-up is written
        try:
            while not should_stop():
                try:
                    n = self.step()
                    failures = 0
                    if on_round is not None:
                        on_round(self.totals)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    # Redis restarting or unreachable: keep trying; once it is back, check
                    # what it may have lost and re-read our own pending entries first
                    log.warning("redis unavailable (%s); retrying", exc)
                    self._groups_ready.clear()
                    self._outage = True
                    time.sleep(1.0)
                    continue
                except Exception:
                    # nothing a producer or another writer of Redis does may stop the process
                    failures += 1
                    log.exception("aggregator step failed (%d in a row); retrying", failures)
                    time.sleep(min(5.0, 0.1 * 2 ** min(failures, 6)))
                    continue
                if n:
                    idle_rounds = 0
                    applied = True
                    continue
                idle_rounds += 1
                if until_idle and idle_rounds >= 2 and self.all_idle() \
                        and not self.roll_ups_orphaned():
                    try:
                        self.roll_up(full=True)  # the figures above the shards, exact now
                    except redis.RedisError:
                        log.warning("the final roll-up failed; trying again", exc_info=True)
                        continue
                    final = True
                    break
                if applied:
                    applied = False
                    try:
                        self.roll_up()
                    except redis.RedisError:
                        log.warning("roll-up failed; tried again in the next rounds",
                                    exc_info=True)
                time.sleep(0.02)
        finally:
            if not final:
                with contextlib.suppress(redis.RedisError):
                    self.roll_up(full=True)
            with contextlib.suppress(redis.RedisError):
                self.release_all()
        return self.totals

    def _step_shard(self, st: ShardState) -> int:
        streams = [self.keys.stream(st.shard, k) for k in READ_KINDS]
        items = self.read(st, streams, self.config.batch_size, st.draining)
        if items is None:
            # the read may have happened with its reply lost: its entries would be pending
            # with us, so read our own pending entries first next round
            st.draining = True
            return 0
        if st.draining and not items:
            st.draining = False
            return 0
        if not items:
            return 0
        self.apply(st, items)
        return len(items)

    def read(self, st: ShardState, streams: list[str], count: int,
             pending: bool) -> list[Item] | None:
        """XREADGROUP of `streams` (this consumer's pending entries first while draining),
        fenced: MULTI/EXEC under WATCH of the lease key, so the read happens only while this
        process holds the lease (an expired or taken lease aborts the EXEC). Every entry
        pending with a consumer was thus read under its lease, and the next holder, which
        claims all pending entries when it takes the lease, finds them all.

        None when it is not known whether the read happened (a connection broken after the
        EXEC was sent: the entries may be pending with us, their reply lost), or the streams
        were made anew: not the same as an empty answer, which ends the draining of our own
        pending entries."""
        lease = self.keys.lease(st.shard)
        with self._raw.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(lease)
                if pipe.get(lease) != st.token:
                    raise LeaseLost(st.shard)
                pipe.multi()
                pipe.xreadgroup(GROUP, self.consumer,
                                dict.fromkeys(streams, "0" if pending else ">"), count=count)
                reply = pipe.execute()[0]
            except redis.WatchError:
                # the lease changed, or the connection broke while watching it: only the
                # first means the shard is gone (a network blip must not idle it a lease long)
                if self._raw.get(lease) == st.token:
                    return None
                raise LeaseLost(st.shard) from None
            except redis.ResponseError as exc:
                if "WRONGTYPE" not in str(exc) and "NOGROUP" not in str(exc):
                    raise
                # a stream someone overwrote or deleted: set it aside, make the group anew
                for stream in streams:
                    if self.r.type(stream) not in (b"stream", b"none"):
                        self._quarantine(st.shard, stream, str(exc))
                self._groups_ready.discard(st.shard)
                self._ensure_groups(st.shard)
                return None
        items: list[Item] = []
        kinds = set()
        for stream, entries in _stream_pairs(reply):
            if not entries:
                continue
            kind = stream.rsplit(":", 1)[1]
            kinds.add(kind)
            items.extend(Item(stream, kind, e[0], e[1]) for e in entries)
            self._log_read(stream, entries[0][0], entries[-1][0], len(entries))
        if HANDIN in kinds and "events" in kinds:
            # the one order across streams that matters: a case handed in and then moved on
            # by an event of this shard; apply them in the order they arrived
            items.sort(key=lambda it: _id_tuple(it.id))
        return items

    # ---- applying a batch ---------------------------------------------------------------
    def apply(self, st: ShardState, items: list[Item]) -> None:
        """Apply a batch; if it cannot be applied, split it until the entry that breaks it is
        found and dead-lettered, and apply the rest (stream order is kept). An internal key
        that someone overwrote with the wrong type is set aside first (each pass may find
        one more)."""
        for _ in range(MAX_QUARANTINES):
            try:
                self._apply_once(st, items)
                return
            except CorruptKey as exc:
                self._quarantine(st.shard, exc.key, exc.why)
            except (redis.ConnectionError, redis.TimeoutError, LeaseLost):
                raise
            except redis.ResponseError as exc:
                if _transient(exc):
                    raise
                self._split(st, items, exc)
                return
            except Exception as exc:  # a batch our own code could not compute
                self._split(st, items, exc)
                return
        self._split(st, items, RuntimeError("too many overwritten keys"))

    def _split(self, st: ShardState, items: list[Item], exc: Exception) -> None:
        if len(items) == 1:
            reason = f"apply failed: {type(exc).__name__}: {str(exc)[:200]}"
            log.error("shard %s: entry %s %s: %s", st.shard, items[0].stream, items[0].id, reason)
            self._dead_letter_alone(st, items[0], reason)
            return
        self.totals.split += 1
        log.warning("shard %s: a batch of %d failed (%s); splitting it", st.shard, len(items),
                    str(exc)[:200])
        mid = len(items) // 2
        self.apply(st, items[:mid])
        self.apply(st, items[mid:])

    def _validate(self, st: ShardState, items: list[Item], clock: Clock):
        """(records, dead letters, XACKs per stream, per-producer figures): the figures are
        {name: [accepted, newest ts]} and {(name, reason class): dead letters} of the
        producers' entries (the internal hand-ins are not a producer's)."""
        records: list[tuple] = []
        dead: list[tuple] = []
        acks: dict[str, list] = {}
        accepted: dict[str, list[int]] = {}
        refused: dict[tuple[str, str], int] = defaultdict(int)
        topo, shard = self.topo, st.shard
        look = self._lookup(shard)
        arrival = clock.arrival
        known = self._producers
        for it in items:
            acks.setdefault(it.stream, []).append(it.id)
            f = it.flat
            if f is None:  # trimmed before it was read: nothing left to apply
                continue
            try:
                if len(f) > 2 * MAX_FIELDS:  # counted as written: a repeated name counts too
                    raise InvalidEntry(f"too many fields: {len(f) // 2} > {MAX_FIELDS}")
                pairs = iter(f)
                fields = dict(zip(pairs, pairs, strict=True))
                arrived = arrival(it.id)
                # the common shapes in one pass; the rest (and the reasons) from `validate`
                rec = (validate_fast(it.kind, fields, look, clock, arrived)
                       or validate(it.kind, fields, shard, topo, clock, arrived))
                records.append(rec)
                if it.kind != HANDIN:
                    src = fields.get("src")
                    name = src if src in known else UNREGISTERED
                    fig = accepted.get(name)
                    if fig is None:
                        accepted[name] = [1, rec[TS]]
                    else:
                        fig[0] += 1
                        if rec[TS] > fig[1]:
                            fig[1] = rec[TS]
                continue
            except InvalidEntry as exc:
                reason = str(exc)
            if not self._replayed(st, it):
                dead.append(dead_letter(it.stream, it.id, reason, it.pairs()))
                if it.kind != HANDIN:
                    refused[(self._producer_of(it), reason_class(reason))] += 1
        return records, dead, acks, (accepted, refused)

    def _producer_of(self, it: Item) -> str:
        """The stats name of an entry's `src` (the first one written; rare path)."""
        f = it.flat or []
        for i in range(0, len(f) - 1, 2):
            if f[i] == "src":
                return f[i + 1] if f[i + 1] in self._producers else UNREGISTERED
        return UNREGISTERED

    def _lookup(self, shard: str) -> ShardLookup:
        held = self._lookups.get(shard)
        if held is None or held[0] is not self.topo:
            held = self._lookups[shard] = (self.topo, shard_lookup(self.topo, shard))
        return held[1]

    def _replayed(self, st: ShardState, it: Item) -> bool:
        """During a rebuild: was this entry read (and dead-lettered) before the rebuild?"""
        until = st.replayed_until.get(it.stream)
        return until is not None and _id_tuple(it.id) <= until

    def _apply_once(self, st: ShardState, items: list[Item]) -> None:
        shard = st.shard
        clock = self.batch_clock()
        records, dead, acks, figures = self._validate(st, items, clock)
        if dead or UNREGISTERED in figures[0]:
            # entries of a registry change not yet seen (a new category, camera, grid, a
            # producer added a moment ago) are neither dead letters nor unregistered: when the
            # registry moved, the batch is judged again under the registry as reloaded
            seen = self._registry_version
            self.check_registry(force=True)
            if self._registry_version != seen:
                records, dead, acks, figures = self._validate(st, items, clock)
        state = load_state(self.r, self.keys, shard, records, self.topo)
        limits = self.limits if not st.count_from_day else self.limits.rebuilding(
            st.count_from_day)
        # the event-driven alerts: what they depend on is read before the write, and their
        # commands go into the batch's own write (raised exactly when the batch is applied)
        needs, candidates = self.alerts.needs(records, state.cams)
        alert_state = self.alerts.read_batch_state(self.r, shard, needs)
        out = compute(records, state, self.topo, self.keys, shard, limits)
        alert_cmds = self.alerts.batch_commands(shard, candidates, alert_state, clock.now_ms)
        max_ts = max((rec[TS] for rec in records), default=0)
        tail = tail_commands(self.keys, shard, dead, acks, self.limits, clock.now_ms,
                             out.applied, out.duplicates, max_ts)
        tail[-1:-1] = producer_commands(self.keys, shard, *figures, clock.now_ms)
        # None (DUP): a retry of this very call found it applied (only the lease holder writes
        # the shard, so the attempt whose reply was lost was ours): it counts all the same
        self._fenced_write(st, out.commands + alert_cmds + tail)
        t = self.totals
        t.applied += out.applied
        t.duplicates += out.duplicates
        t.dead += len(dead)
        t.read += len(items)

    def _fenced_write(self, st: ShardState, commands: list[list]):
        """One fenced, validated, idempotent write; None when it had been applied already."""
        reply = self._fenced(st, commands)
        if reply in (b"DUP", "DUP"):
            self.totals.retried += 1
            log.warning("shard %s: a batch was already applied (a retried call); skipped",
                        st.shard)
            return None
        # the reply is the last command's: the shard's version only when that is its bump
        # (an alert tick or a prune ends otherwise: its reply is a count, not a version)
        versioned = commands[-1][:3] == ["HINCRBY", self.keys.meta(st.shard), "version"]
        if isinstance(reply, int) and versioned:
            before = self._versions.get(st.shard)
            if before is not None and reply <= before:
                # the read model went back under us with no outage seen: a failover to a
                # replica that lagged, hidden by the client's retries (docs/cluster.md); keep
                # what it should be (one more than ours), so that `after_outage` counts the
                # batches lost
                log.error("shard %s: version %d after a batch, %d before: Redis went back",
                          st.shard, reply, before)
                self._versions[st.shard] = before + 1
                self._outage = True
            else:
                self._versions[st.shard] = reply
        return reply

    def _fenced(self, st: ShardState, commands: list[list]):
        """`commands` in one call of fenced_write.lua: the raw reply. A key the script
        refuses for its type (someone else wrote it) is set aside and the write tried
        again; LeaseLost when the lease is not ours."""
        args: list = [st.token, "{" + st.shard + "}"]
        for cmd in commands:
            args.append(len(cmd))
            args.extend(cmd)
        for attempt in range(MAX_QUARANTINES + 1):
            try:
                reply = self._write(keys=[self.keys.lease(st.shard)], args=args)
                break
            except redis.ResponseError as exc:
                wrong = _WRONG.search(str(exc))
                if "LEASE lost" in str(exc):
                    raise LeaseLost(st.shard) from None
                if not wrong or attempt == MAX_QUARANTINES:
                    raise
                self._quarantine(st.shard, wrong.group(1), str(exc))
        return reply

    def _dead_letter_alone(self, st: ShardState, it: Item, reason: str) -> None:
        meta = self.keys.meta(st.shard)
        cmds = [["XADD", self.keys.dead(st.shard), "MAXLEN", "~", self.limits.dead_max, "*",
                 *dead_letter(it.stream, it.id, reason, it.pairs())],
                ["!XACK", it.stream, GROUP, it.id],
                ["HINCRBY", meta, "dead", 1]]
        if it.kind != HANDIN and it.flat is not None:
            cmds += producer_commands(self.keys, st.shard, {},
                                      {(self._producer_of(it), reason_class(reason)): 1},
                                      self.clock.now_ms())
        cmds.append(["HINCRBY", meta, "version", 1])
        self._fenced_write(st, cmds)  # DUP: our own attempt whose reply was lost
        self.totals.dead += 1
        self.totals.read += 1

    def _quarantine(self, shard: str, key: str, why: str) -> None:
        """Move an internal key someone else overwrote aside (kept a week for inspection) and
        record it as an incident; the audit reports what that changed."""
        if self.keys.shard_of(key) != shard:
            raise RuntimeError(f"refusing to quarantine {key!r}")
        aside = self.keys.quarantined(key, self.clock.now_ms())
        with contextlib.suppress(redis.ResponseError):  # already gone
            self.r.rename(key, aside)
            self.r.expire(aside, QUARANTINE_TTL_S)
        log.error("shard %s: %s moved aside to %s (%s)", shard, key, aside, why[:200])
        self.incident(shard, "quarantined", key=key, aside=aside, why=why[:200])

    def incident(self, shard: str, kind: str, **fields) -> None:
        entry = {"kind": kind, "ts": str(self.clock.now_ms()), "consumer": self.consumer,
                 **{k: str(v) for k, v in fields.items()}}
        pipe = self.r.pipeline(transaction=False)
        pipe.xadd(self.keys.incidents(shard), entry, maxlen=INCIDENTS_MAX, approximate=True)
        pipe.hincrby(self.keys.meta(shard), "incidents", 1)
        with contextlib.suppress(redis.ResponseError):
            pipe.execute()

    # ---- the internal streams read on their own (hand-over outbox, console requests) ----
    def _drain(self, st: ShardState, stream: str, draining: bool) -> tuple[list[Item], bool]:
        """Up to 500 entries of an internal stream, our pending ones first while `draining`;
        returns them and whether to go on draining. A read whose reply was lost (None) may
        have delivered entries to us: drain our pending entries before reading new ones."""
        items = self.read(st, [stream], 500, draining)
        if items is None:
            return [], True
        return items, draining and bool(items)

    # ---- hand-over to other shards ------------------------------------------------------
    def _forward_handoffs(self, st: ShardState) -> int:
        """Hand escalated cases on to the shard of their new owner (idempotent at arrival).
        The outbox is untrusted like any stream: a malformed entry is a dead letter."""
        stream = self.keys.handoff(st.shard)
        items, st.draining_handoff = self._drain(st, stream, st.draining_handoff)
        if not items:
            return 0
        dead: list[list] = []
        for it in items:
            if it.flat is None:
                continue
            try:
                fields = validate_handoff(dict(it.pairs()), st.shard, self.topo)
            except InvalidEntry as exc:
                if not self._replayed(st, it):
                    dead.append(dead_letter(stream, it.id, str(exc), it.pairs()))
                continue
            target = self.topo.centres[fields["to"]].shard
            self.r.xadd(self.keys.stream(target, HANDIN), fields)
        meta = self.keys.meta(st.shard)
        cmds = [["XADD", self.keys.dead(st.shard), "MAXLEN", "~", self.limits.dead_max, "*", *d]
                for d in dead]
        cmds.append(["!XACK", stream, GROUP, *(it.id for it in items)])
        if dead:
            cmds.append(["HINCRBY", meta, "dead", len(dead)])
            cmds.append(["HINCRBY", meta, "version", 1])
        self._fenced_write(st, cmds)  # DUP: our own attempt whose reply was lost
        self.totals.dead += len(dead)
        return len(items)

    # ---- alerts (预警, datasources/alerts.py) ---------------------------------------------
    def _apply_console(self, st: ShardState) -> int:
        """Apply the console's requests (alert acknowledgements) exactly once: the XACKs are
        the write's guards. A request that is malformed or names an unknown alert is a dead
        letter with its reason."""
        stream = self.keys.console(st.shard)
        now = time.monotonic()
        if not st.draining_console and now - self._last_console.get(st.shard, 0) < CONSOLE_S:
            return 0  # acks are rare: a fenced read per shard every CONSOLE_S, not every round
        self._last_console[st.shard] = now
        items, st.draining_console = self._drain(st, stream, st.draining_console)
        if not items:
            return 0
        kept: list[Item] = []
        entries: list[tuple[str, dict[str, str]]] = []
        refused: list[tuple[Item, str]] = []
        for it in items:
            if it.flat is None:
                continue
            if len(it.flat) > 2 * MAX_FIELDS:
                refused.append((it, f"too many fields: {len(it.flat) // 2} > {MAX_FIELDS}"))
                continue
            kept.append(it)
            entries.append((it.id, dict(it.pairs())))
        cmds, bad = self.alerts.ack_commands(self.r, st.shard, entries, self.clock.now_ms())
        refused += [(kept[i], reason) for i, reason in bad]
        dead = [dead_letter(stream, it.id, reason, it.pairs()) for it, reason in refused
                if not self._replayed(st, it)]
        meta = self.keys.meta(st.shard)
        write = [["XADD", self.keys.dead(st.shard), "MAXLEN", "~", self.limits.dead_max, "*",
                  *d] for d in dead]
        write += cmds
        write.append(["!XACK", stream, GROUP, *(it.id for it in items)])
        if dead:
            write.append(["HINCRBY", meta, "dead", len(dead)])
            if not cmds:
                write.append(["HINCRBY", meta, "version", 1])
        self._fenced_write(st, write)  # DUP: our own attempt whose reply was lost
        self.totals.dead += len(dead)
        return len(items)

    def alert_tick(self, st: ShardState) -> None:
        """The time-driven rules and the clearing of open alerts on one shard (the top
        centre's shard also watches every shard for staleness), in one fenced write."""
        self._last_alert_tick[st.shard] = time.monotonic()
        try:
            cmds = self.alerts.tick_commands(self.r, st.shard, self.clock.now_ms(),
                                             top=st.shard == self._vc_shard())
            if cmds:
                self._fenced_write(st, cmds)
        except (redis.ConnectionError, redis.TimeoutError, LeaseLost):
            raise
        except redis.ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            self._set_aside_alert_keys(st.shard)
        except Exception:
            log.exception("shard %s: alert tick failed; tried again later", st.shard)

    def _set_aside_alert_keys(self, shard: str) -> None:
        k = self.keys
        want = {k.alerts(shard): b"hash", k.alerts_active(shard): b"hash",
                k.alerts_clearing(shard): b"hash", k.alerts_cams(shard): b"hash",
                k.alerts_ticks(shard): b"zset", k.alert_log(shard): b"stream"}
        for key, kind in want.items():
            have = self.r.type(key)
            if have not in (kind, b"none"):
                self._quarantine(shard, key, f"not a {kind.decode()}")

    def _prune_alerts(self, st: ShardState) -> None:
        cmds = self.alerts.prune_commands(self.r, st.shard, self.clock.now_ms())
        if cmds:
            self._fenced_write(st, cmds)

    # ---- housekeeping -------------------------------------------------------------------
    def housekeeping(self, st: ShardState) -> None:
        """Keep every key family of the shard bounded: expire old open cases, drop old
        tombstones and stream history (never an entry not yet applied). A part that fails
        (a damaged key) is logged and tried again next time; the shard's entries go on."""
        self._last_housekeeping[st.shard] = time.monotonic()
        for part in (self.expire_cases, self._drop_tombstones, self.trim, self._prune_alerts):
            try:
                part(st)
            except (redis.ConnectionError, redis.TimeoutError, LeaseLost):
                raise
            except Exception:
                log.exception("shard %s: housekeeping (%s) failed; tried again later",
                              st.shard, part.__name__)

    def _drop_tombstones(self, st: ShardState) -> None:
        now = self.clock.now_ms()
        s = self.config
        keep_closed_ms = s.day_bucket_ttl_s * 1000
        cmds = [["ZREMRANGEBYSCORE", self.keys.closed(st.shard), "-inf",
                 f"({now - keep_closed_ms}"]]
        legacy = self.keys.legacy_orphans(st.shard)
        if self.r.exists(legacy):  # the first release's marks become tombstones
            for eid, ts in self.r.hgetall(legacy).items():
                cmds.append(["ZADD", self.keys.closed(st.shard), int(ts or 0) or now, eid])
            cmds.append(["DEL", legacy])
        self._fenced_write(st, cmds)

    def expire_cases(self, st: ShardState) -> int:
        cutoff = self.clock.now_ms() - self.config.case_max_age_days * 86_400_000
        total = 0
        opened, cases = self.keys.opened(st.shard), self.keys.cases(st.shard)
        while True:
            eids = self._read_key(st, opened, lambda: self.r.zrangebyscore(
                opened, "-inf", cutoff, start=0, num=EXPIRE_BATCH))
            if not eids:
                break
            eids = [e.decode() for e in eids]
            held = [h.decode() if h else None
                    for h in self._read_key(st, cases, lambda e=eids: self.r.hmget(cases, e))
                    or [None] * len(eids)]
            broken = [e for e, h in zip(eids, held, strict=True) if h and h.count("|") < 2]
            if broken:  # a record someone else wrote: dropped (its chain is unknown)
                self.incident(st.shard, "corrupt_case", eids=",".join(broken[:20]),
                              count=len(broken))
                held = [None if e in broken else h for e, h in zip(eids, held, strict=True)]
            cmds = expire_commands(self.keys, st.shard, self.topo, eids, held,
                                   self.clock.now_ms(), self.limits)
            if broken:
                cmds.insert(1, ["HDEL", cases, *broken])
            self._fenced_write(st, cmds)  # DUP: our own attempt whose reply was lost
            total += len(eids)
            if len(eids) < EXPIRE_BATCH:
                break
        self.totals.expired += total
        return total

    def _read_key(self, st: ShardState, key: str, read):
        """`read()`, or None after setting `key` aside when it holds the wrong type."""
        try:
            return read()
        except redis.ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            self._quarantine(st.shard, key, str(exc))
            return None

    def trim(self, st: ShardState | None = None) -> None:
        """Drop stream history older than the retention, never an entry not yet applied.
        Stream ids are the time an entry arrived (on the aggregator's clock)."""
        cut_ms = self.clock.now_ms() - self.config.stream_retention_days * 86_400_000
        for s in [st] if st else list(self.held.values()):
            streams = self._streams(s.shard)
            if s.shard == self._vc_shard():
                streams.append(self.keys.stream(s.shard, VC_KIND))
            for stream in streams:
                if self.r.type(stream) != b"stream":
                    continue  # absent, or overwritten (set aside when it is next read)
                bound = cut_ms
                g = group_info(self.r, stream)
                if g is not None:
                    bound = min(bound, _id_tuple(g["last-delivered-id"])[0])
                    if g["pending"]:
                        oldest = self.r.xpending(stream, GROUP)["min"]
                        oldest = oldest.decode() if isinstance(oldest, bytes) else oldest
                        bound = min(bound, int(oldest.split("-")[0]))
                if self.r.xtrim(stream, minid=f"{bound}-0", approximate=False):
                    self._note_trim(s, bound)

    def _note_trim(self, st: ShardState, bound_ms: int) -> None:
        """Remember how far history was trimmed: a rebuild recounts only the days that are
        still whole in the streams."""
        self._fenced_write(st, [["HMAXLAST", self.keys.meta(st.shard), "trimmed_to", bound_ms]])

    def _vc_shard(self) -> str | None:
        return self.topo.top_shard

    def all_idle(self) -> bool:
        """True when no shard has undelivered or pending entries."""
        return all(shard_backlog(self.r, self.keys, shard) == 0 for shard in self.topo.shards)

    # ---- a Redis that went back in time -------------------------------------------------
    def _log_read(self, stream: str, first: str, last: str, n: int) -> None:
        log_ = self._read_log.setdefault(stream, deque(maxlen=2000))
        log_.append((_id_tuple(first), _id_tuple(last), n))

    def _check_server(self) -> None:
        """A Redis that restarted (its run id changed) may have come back older, even when the
        client's retries hid the outage from us: check what it lost."""
        server = server_id(self.r)  # a cluster: its masters'
        if self._server_id is not None and server != self._server_id:
            self.after_outage()
        self._server_id = server

    def after_outage(self) -> None:
        """Redis is back after an outage: if it restarted from an older state (the AOF's last
        second, a restored backup, a failover to a lagging replica), record what went back in
        time as incidents, change the shards' epoch so that web caches drop what they hold,
        and re-read our own pending entries first.

        Batches lost: the shard's version is below the last one this process wrote. Entries
        lost: of the entries this process read after the point the consumer group went back
        to, those no longer in the stream (producers writing meanwhile add entries with newer
        ids, which do not hide the gap)."""
        server = server_id(self.r)  # a cluster: its masters'
        restarted = self._server_id is not None and server != self._server_id
        self._server_id = server
        for st in self.held.values():
            st.draining = st.draining_handoff = True
        shards = set(self._versions) | {st.shard for st in self.held.values()}
        shards |= {self.keys.shard_of(s) for s in self._read_log} - {None}
        for shard in sorted(shards):
            ours = self._versions.get(shard)
            raw = self.r.hget(self.keys.meta(shard), "version")
            now_v = int(raw) if raw and raw.isdigit() else 0
            lost_streams: dict[str, tuple[int, tuple[int, int]]] = {}
            for stream in self._streams(shard):
                seen = self._read_log.get(stream)
                if not seen:
                    continue
                g = group_info(self.r, stream) if self.r.type(stream) == b"stream" else None
                back_to = _id_tuple(g["last-delivered-id"]) if g else (0, 0)
                gone = 0
                for first, last, n in seen:
                    if last <= back_to:
                        continue  # read before the point Redis came back to: still there
                    present = self.r.xrange(stream, min=f"{first[0]}-{first[1]}",
                                            max=f"{last[0]}-{last[1]}", count=n + 1)
                    gone += max(0, n - len(present))
                if gone:
                    lost_streams[stream] = (gone, back_to)
            if (ours is not None and now_v < ours) or lost_streams:
                detail = {s: f"{g} entries read after {b[0]}-{b[1]} are gone"
                          for s, (g, b) in lost_streams.items()}
                log.error("shard %s: Redis came back older (version %s → %s; %s)", shard, ours,
                          now_v, detail)
                self.incident(shard, "rollback", version_before=ours, version_after=now_v,
                              batches_lost=max(0, (ours or 0) - now_v),
                              entries_lost=sum(g for g, _b in lost_streams.values()),
                              streams=";".join(f"{s}: {d}" for s, d in detail.items()),
                              restarted=int(restarted))
                self.r.hset(self.keys.meta(shard), "epoch", uuid.uuid4().hex[:12])
                self._versions.pop(shard, None)
            for stream in self._streams(shard):
                self._read_log.pop(stream, None)  # judged once


def _stream_pairs(reply) -> list:
    """XREADGROUP's raw reply as (stream, entries) pairs: a map in RESP3, a list in RESP2."""
    if not reply:
        return []
    return list(reply.items()) if isinstance(reply, dict) else reply


def shard_backlog(r: redis.Redis, keys: Keys, shard: str) -> int:
    """Pending + (at least 1 if any) undelivered entries of a shard's streams."""
    total = 0
    streams = [keys.stream(shard, k) for k in READ_KINDS] + [keys.handoff(shard),
                                                             keys.console(shard)]
    for stream in streams:
        if not r.exists(stream):
            continue
        info = r.xinfo_stream(stream)
        last = info["last-generated-id"]
        g = group_info(r, stream)
        if g is None:
            total += info["length"]
            continue
        total += g["pending"]
        if info["length"] and g["last-delivered-id"] != _text(last):
            total += 1
    return total


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def group_info(r: redis.Redis, stream: str) -> dict | None:
    """The aggregator group's XINFO GROUPS entry of a stream (ids as text), or None."""
    for g in r.xinfo_groups(stream):
        if _text(g["name"]) == GROUP:
            return {**g, "last-delivered-id": _text(g["last-delivered-id"])}
    return None


# ---- rebuild -------------------------------------------------------------------------------
# Keys under a shard's tag that a rebuild keeps: the streams (the input), what the aggregator
# records about itself, and the video-conference state; the rest is read model, rebuilt.
_KEEP = frozenset({*READ_KINDS, VC_KIND, "vc:active", "dead", "incidents", "lease", "meta",
                   # alerts are not recounted: kept, so that the replay raises none again
                   "alerts", "alerts:active", "alerts:clearing", "alerts:cams", "alerts:log",
                   "alerts:ticks", "console"})
_DAY_KEYS = re.compile(r"(?:d|pg|wk):(\d{8})(?::|$)")
_HOUR_KEYS = re.compile(r"h:(\d{8})\d\d:")


def first_whole_day(trimmed_to_ms: int, skew_ms: int, tz: ZoneInfo) -> str:
    """The first local day all of whose entries are still in the streams, when history was
    trimmed up to `trimmed_to_ms` (an entry arrives at most `skew_ms` before its `ts`)."""
    from datetime import timedelta

    t = datetime.fromtimestamp((trimmed_to_ms + skew_ms) / 1000, tz)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if day != t:
        day = (day + timedelta(days=1, hours=2)).replace(hour=0)  # next local midnight
    return day.strftime("%Y%m%d")


REBUILD_LEASE_MS = 60_000  # a rebuild starved of CPU for seconds must not lose its shards


def rebuild(r: redis.Redis, topo: Topology, config: PipelineConfig, clock: TimeSource = WALL,
            on_round=None, on_shard=None, lease_ms: int | None = None) -> BatchResult:
    """Rebuild the read model from the retained streams (`pingan rebuild`).

    Takes every shard's lease (a running aggregator's next read or write is refused, and it
    cannot take the shard back until the rebuild releases it), deletes each shard's read model
    (day and hour figures only for the days whose entries are all still retained: earlier days
    keep their figures, their entries change only state such as open cases and camera states),
    resets the consumer groups to the start of the streams and applies everything again.
    Dead letters already written are not written twice. The shards' `epoch` changes, so web
    caches drop what they hold. State whose entries are no longer retained (a case opened, or a
    camera last heard of, before the retention window) is not rebuilt.

    Its leases last `lease_ms` (default: the longer of PINGAN_LEASE_MS and a minute), so that
    running aggregators do not take shards back from a rebuild that a busy machine starves for
    a few seconds; a rebuild that dies holds the shards that long."""
    config = replace(config, lease_ms=lease_ms or max(config.lease_ms, REBUILD_LEASE_MS))
    agg = Aggregator(r, topo, config, consumer=f"rebuild-{os.getpid()}-{uuid.uuid4().hex[:6]}",
                     clock=clock)
    agg.pinned = True
    keys = agg.keys
    for shard in topo.shards:
        token = f"{agg.consumer}:{uuid.uuid4().hex[:8]}"
        r.set(keys.lease(shard), token, px=config.lease_ms)
        agg.held[shard] = ShardState(shard, token, renewed_at=time.monotonic())
    for shard in topo.shards:
        agg.balance()  # renews every held lease (sets one that expired again: _lose)
        _reset_shard(agg, agg.held[shard])
        if on_shard is not None:
            on_shard(shard)
    agg.run(until_idle=True, on_round=on_round)
    return agg.totals


def _reset_shard(agg: Aggregator, st: ShardState) -> None:
    r, keys, shard = agg.r, agg.keys, st.shard
    meta = keys.meta(shard)
    trimmed = r.hget(meta, "trimmed_to")
    st.count_from_day = (first_whole_day(int(trimmed), agg.config.max_future_skew_s * 1000,
                                         agg.tz)
                         if trimmed and trimmed.isdigit() else "")
    streams = agg._streams(shard)
    for stream in streams:
        g = group_info(r, stream) if r.type(stream) == b"stream" else None
        if g is not None:
            st.replayed_until[stream] = _id_tuple(g["last-delivered-id"])
    head = keys.shard_head(shard)
    doomed = []
    for raw in scan_iter(r, keys.shard_pattern(shard)):  # on a cluster: the shard's node
        key = raw.decode()
        rest = key[len(head):]
        if rest in _KEEP or f":{QUARANTINED}:" in rest or rest == "handoff":
            continue
        day = _DAY_KEYS.match(rest) or _HOUR_KEYS.match(rest)
        if day and st.count_from_day and day.group(1) < st.count_from_day:
            continue
        doomed.append(key)
    for i in range(0, len(doomed), 500):
        r.delete(*doomed[i:i + 500])
        if time.monotonic() - st.renewed_at > agg.config.lease_ms / 3000:
            agg.renew(st)
    r.delete(keys.handoff(shard))  # the outbox is written again by the replayed escalations
    for stream in streams:
        with contextlib.suppress(redis.ResponseError):
            r.xgroup_destroy(stream, GROUP)
        r.xgroup_create(stream, GROUP, id="0", mkstream=True)
    agg._groups_ready.add(shard)
    r.hdel(meta, "duplicates")
    r.hset(meta, mapping={"epoch": uuid.uuid4().hex[:12], "rebuilt_at": agg.clock.now_ms()})
    r.hincrby(meta, "version", 1)  # also a shard that gets no batch: its read model was reset
    st.draining = False
