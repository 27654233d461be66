"""The aggregator: consumer groups on every shard's streams → the read model, exactly once.

Work is shared between processes by shard leases (`{SHARD}:lease`, SET NX PX): the holder of a
shard's lease is the only reader of its streams, so each shard is applied in stream order, and
every batch is one Lua step that first checks the lease (fencing), then applies the rollups,
writes the dead letters and XACKs. A process that dies leaves its entries pending; whoever takes
the lease next claims them with XAUTOCLAIM and applies them before anything newer. Processes
advertise themselves in a heartbeat ZSET so that each takes a fair share of the shards.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from zoneinfo import ZoneInfo

import redis

from dashboard.settings import Settings
from datasources.connection import text_client
from datasources.contract import Clock, InvalidEntry, encode_fields, validate
from datasources.keys import GROUP, HANDIN, READ_KINDS, Keys
from datasources.rollup import TS, Limits, compute, load_state, tail_commands
from datasources.topology import Topology

log = logging.getLogger(__name__)

RECENT_MAX = 200

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


def lease_key(keys: Keys, shard: str) -> str:
    return f"{keys.prefix}:{{{shard}}}:lease"


def processes_key(keys: Keys) -> str:
    return f"{keys.prefix}:aggregators"


@dataclass
class ShardState:
    shard: str
    token: str
    draining: bool = True  # reading our own pending entries ('0') before new ones ('>')
    renewed_at: float = 0.0


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead: int = 0
    read: int = 0


@dataclass
class Aggregator:
    r: redis.Redis
    topo: Topology
    settings: Settings
    consumer: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    )

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.key_prefix)
        self.tz = ZoneInfo(self.settings.tz)
        source = resources.files("datasources").joinpath("fenced_write.lua").read_text()
        self._write = self.r.register_script(source)
        # raw replies: redis-py's per-entry dict building is the costliest part of a read
        self._raw = text_client(self.r)
        for command in ("XREADGROUP", "XAUTOCLAIM"):
            self._raw.set_response_callback(command, lambda reply, **_kw: reply)
        s = self.settings
        self.limits = Limits(
            ttl_day=s.day_bucket_ttl_s, ttl_hour=s.hour_bucket_ttl_s,
            ttl_seen=max(3 * 86400, s.stream_retention_days * 86400),
            patrols_per_day=s.patrols_per_day, recent_max=RECENT_MAX, dead_max=s.dead_maxlen,
        )
        self._renew = self.r.register_script(_RENEW)
        self._release = self.r.register_script(_RELEASE)
        self.held: dict[str, ShardState] = {}
        self._groups_ready: set[str] = set()
        self._last_balance = 0.0
        self._last_trim = time.monotonic()
        self.totals = BatchResult()

    # ---- leases -------------------------------------------------------------------------
    def _streams(self, shard: str) -> list[str]:
        return [self.keys.stream(shard, k) for k in READ_KINDS] + [self.keys.handoff(shard)]

    def _ensure_groups(self, shard: str) -> None:
        if shard in self._groups_ready:
            return
        for stream in self._streams(shard):
            try:
                self.r.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready.add(shard)

    def _fair_share(self) -> int:
        now = int(time.time() * 1000)
        pk = processes_key(self.keys)
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(pk, {self.consumer: now})
        pipe.zremrangebyscore(pk, "-inf", now - self.settings.lease_ms)
        pipe.zcard(pk)
        live = max(1, pipe.execute()[-1])
        return math.ceil(len(self.topo.shards) / live)

    def balance(self) -> None:
        """Renew held leases, take free shards up to a fair share, give back any excess."""
        now = time.monotonic()
        for st in list(self.held.values()):
            if not self._renew(keys=[lease_key(self.keys, st.shard)], args=[st.token, self.settings.lease_ms]):
                log.warning("lost lease on shard %s", st.shard)
                del self.held[st.shard]
            else:
                st.renewed_at = now
                self.r.hset(self.keys.meta(st.shard), "heartbeat", int(time.time() * 1000))
        share = self._fair_share()
        for shard in self.topo.shards:
            if len(self.held) >= share:
                break
            if shard in self.held:
                continue
            token = f"{self.consumer}:{uuid.uuid4().hex[:8]}"
            if self.r.set(lease_key(self.keys, shard), token, nx=True, px=self.settings.lease_ms):
                self._ensure_groups(shard)
                self._claim_all(shard)
                self.held[shard] = ShardState(shard, token, renewed_at=now)
                self.r.hset(self.keys.meta(shard), "heartbeat", int(time.time() * 1000))
                log.info("%s took shard %s", self.consumer, shard)
        while len(self.held) > share:
            shard = sorted(self.held)[-1]
            st = self.held.pop(shard)
            self._release(keys=[lease_key(self.keys, shard)], args=[st.token])
        self._last_balance = now

    def release_all(self) -> None:
        for st in self.held.values():
            self._release(keys=[lease_key(self.keys, st.shard)], args=[st.token])
        self.held.clear()
        self.r.zrem(processes_key(self.keys), self.consumer)

    def _claim_all(self, shard: str) -> None:
        """Move every pending entry of the shard (a dead holder's) to this consumer."""
        for stream in self._streams(shard):
            start = "0-0"
            while True:
                # raw reply: redis-py's parser drops the cursor from JUSTID replies
                reply = self._raw.execute_command(
                    "XAUTOCLAIM", stream, GROUP, self.consumer, 0, start,
                    "COUNT", self.settings.batch_size, "JUSTID",
                )
                start = reply[0]
                if start in (b"0-0", "0-0"):
                    break

    # ---- the loop -----------------------------------------------------------------------
    def step(self) -> int:
        """One round over the held shards; returns how many entries were read."""
        if time.monotonic() - self._last_balance > min(1.0, self.settings.lease_ms / 3000):
            self.balance()
        n = 0
        for st in list(self.held.values()):
            try:
                n += self._step_shard(st)
                n += self._forward_handoffs(st)
            except redis.ResponseError as exc:
                if "LEASE lost" in str(exc):
                    log.warning("lease lost mid-batch on %s; batch refused", st.shard)
                    self.held.pop(st.shard, None)
                else:
                    raise
        if time.monotonic() - self._last_trim > 60:
            self.trim()
        return n

    def run(self, until_idle: bool = False, should_stop=lambda: False) -> BatchResult:
        idle_rounds = 0
        try:
            while not should_stop():
                try:
                    n = self.step()
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    # Redis restarting or unreachable: keep trying; leases lapse meanwhile,
                    # so take them again from scratch when it is back
                    log.warning("redis unavailable (%s); retrying", exc)
                    self.held.clear()
                    self._groups_ready.clear()
                    time.sleep(1.0)
                    continue
                if n:
                    idle_rounds = 0
                    continue
                idle_rounds += 1
                if until_idle and idle_rounds >= 2 and self.all_idle():
                    break
                time.sleep(0.02)
        finally:
            with contextlib.suppress(redis.RedisError):
                self.release_all()
        return self.totals

    def _step_shard(self, st: ShardState) -> int:
        streams = [self.keys.stream(st.shard, k) for k in READ_KINDS]
        ids = "0" if st.draining else ">"
        reply = self._raw.xreadgroup(
            GROUP, self.consumer, {s: ids for s in streams}, count=self.settings.batch_size
        )
        entries = [
            (stream, [(eid, dict(zip(f[::2], f[1::2], strict=True)) if f else None)
                      for eid, f in items])
            for stream, items in _stream_pairs(reply) if items
        ]
        if st.draining and not entries:
            st.draining = False
            return 0
        if not entries:
            return 0
        return self.apply(st, entries)

    def apply(self, st: ShardState, entries: list) -> int:
        """Validate and apply one batch of (stream, [(id, fields)]) for the lease holder."""
        shard = st.shard
        clock = Clock(self.tz, int(time.time() * 1000))
        records: list[tuple] = []
        dead: list[tuple] = []
        acks: dict[str, list] = {}
        read = 0
        topo = self.topo
        for stream, items in entries:
            stream = stream.decode() if isinstance(stream, bytes) else stream
            kind = stream.rsplit(":", 1)[1]
            ack = acks.setdefault(stream, [])
            for entry_id, fields in items:
                ack.append(entry_id)
                read += 1
                if not fields:  # trimmed before it was read: nothing left to apply
                    continue
                try:
                    records.append(validate(kind, fields, shard, topo, clock))
                except InvalidEntry as exc:
                    dead.append((stream, entry_id, str(exc), encode_fields(fields)))
        state = load_state(self.r, self.keys, shard, records, topo)
        out = compute(records, state, topo, self.keys, shard, self.limits)
        max_ts = max((rec[TS] for rec in records), default=0)
        tail = tail_commands(self.keys, shard, dead, acks, self.limits, clock.now_ms,
                             out.applied, out.duplicates, max_ts)
        args: list = [st.token]
        for cmd in out.commands + tail:
            args.append(len(cmd))
            args.extend(cmd)
        self._write(keys=[lease_key(self.keys, shard)], args=args)
        t = self.totals
        t.applied += out.applied
        t.duplicates += out.duplicates
        t.dead += len(dead)
        t.read += read
        return read

    def _forward_handoffs(self, st: ShardState) -> int:
        """Hand escalated cases on to the shard of their new owner (idempotent at arrival)."""
        stream = self.keys.handoff(st.shard)
        reply = self.r.xreadgroup(
            GROUP, self.consumer, {stream: "0" if st.draining else ">"}, count=500
        )
        items = reply[0][1] if reply else []
        if not items:
            return 0
        for entry_id, f in items:
            if f:
                to = f[b"to"].decode()
                target = self.topo.centres[to].shard if to in self.topo.centres else None
                if target is not None:
                    self.r.xadd(
                        self.keys.stream(target, HANDIN),
                        {"v": "1", "ts": f[b"ts"], "src": "pingan-handoff", "eid": f[b"eid"],
                         "status": "escalated", "centre": f[b"centre"], "to": to,
                         "category": f[b"category"], "due": f[b"due"]},
                    )
            self.r.xack(stream, GROUP, entry_id)
        return len(items)

    # ---- housekeeping -------------------------------------------------------------------
    def trim(self) -> None:
        """Drop stream history older than the retention, never an entry not yet applied."""
        cut_ms = int(time.time() * 1000) - self.settings.stream_retention_days * 86_400_000
        for st in self.held.values():
            for stream in self._streams(st.shard):
                bound = cut_ms
                for g in self.r.xinfo_groups(stream):
                    name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
                    if name != GROUP:
                        continue
                    last = g["last-delivered-id"]
                    last = last.decode() if isinstance(last, bytes) else last
                    bound = min(bound, int(last.split("-")[0]))
                    if g["pending"]:
                        oldest = self.r.xpending(stream, GROUP)["min"]
                        oldest = oldest.decode() if isinstance(oldest, bytes) else oldest
                        bound = min(bound, int(oldest.split("-")[0]))
                self.r.xtrim(stream, minid=f"{bound}-0", approximate=False)
        self._last_trim = time.monotonic()

    def all_idle(self) -> bool:
        """True when no shard has undelivered or pending entries."""
        return all(shard_backlog(self.r, self.keys, shard) == 0 for shard in self.topo.shards)


def _stream_pairs(reply) -> list:
    """XREADGROUP's raw reply as (stream, entries) pairs: a map in RESP3, a list in RESP2."""
    if not reply:
        return []
    return list(reply.items()) if isinstance(reply, dict) else reply


def shard_backlog(r: redis.Redis, keys: Keys, shard: str) -> int:
    """Pending + (at least 1 if any) undelivered entries of a shard's streams."""
    total = 0
    streams = [keys.stream(shard, k) for k in READ_KINDS] + [keys.handoff(shard)]
    for stream in streams:
        if not r.exists(stream):
            continue
        info = r.xinfo_stream(stream)
        last = info["last-generated-id"]
        groups = {(g["name"].decode() if isinstance(g["name"], bytes) else g["name"]): g
                  for g in r.xinfo_groups(stream)}
        g = groups.get(GROUP)
        if g is None:
            total += info["length"]
            continue
        total += g["pending"]
        if info["length"] and g["last-delivered-id"] != last:
            total += 1
    return total
