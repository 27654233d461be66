"""Roll-ups above the shard tier: a city's (a province's) figures as the sums of its children's.

A centre above the shard tier with children (`topology.rolled`: a city, a province) is its own
shard, whose head counts only what is reported at the centre itself. Its subtree's figures are
the sum of that head and each child's figures: a rolled child's roll-up, else the child's
shard head. The aggregator process holding the centre's shard lease writes those sums into
`Keys.up_day` / `up_hour` / `up_gauge` (+ `overdue`) / `up_meta` every `upper_interval_ms`,
deepest centres first (`topology.upper_order`), so that a snapshot of the centre reads
O(its children) keys, never every shard below it (`ReadModel.snapshot`).

A pass reads the contributions in one non-transactional pipeline (they span slots: this works
on Redis Cluster) and the aggregator writes the result in one fenced script call on the
centre's slot (every key of it carries the hash tag `{CODE}`), replacing each key's content.
Each contribution's meta is read before its figures, so the version written is never newer
than the figures it stands for (a web cache keyed by it never keeps older figures).

Which buckets: every pass, today and yesterday and the previous, current and next hour (an
entry may be late or a little early); a full pass (the first, about once a minute, and at the
end of `Aggregator.run(until_idle=True)`) the 48 hours and 30 days a snapshot reads, which
picks up entries that landed in older buckets.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from datasources.keys import UP, Keys
from datasources.readmodel import OVERDUE, hash_counts, parse_meta, trend_days, trend_hours
from datasources.topology import Topology, rolled
from datasources.validate import as_int

FULL_EVERY_S = 60.0  # a full pass (every bucket a snapshot reads) at least this often
REFRESH_S = 2.0  # a roll-up with nothing new below is written again this often (heartbeat,
# overdue): older than the stale threshold of the screens (PINGAN_STALE_AFTER_S) never


class Part(NamedTuple):
    """One contribution to a roll-up: a centre's figures, from its roll-up keys when it is
    rolled itself, else from its shard head (`shard`'s keys of `code`)."""

    code: str
    shard: str
    rolled: bool


def parts(topo: Topology, code: str) -> list[Part]:
    """What `code`'s roll-up sums: its own shard head and each child's figures. A child kept
    in the centre's own shard (a centre with no district between it and the city) is already
    counted in the head and is left out."""
    own = topo.centres[code].shard
    out = [Part(code, own, False)]
    for child in topo.children.get(code, ()):
        shard = topo.centres[child].shard
        if shard != own:
            out.append(Part(child, shard, rolled(topo, child)))
    return out


@dataclass(frozen=True)
class Window:
    """The day and hour buckets (YYYYmmdd, YYYYmmddHH) a pass rolls up."""

    days: tuple[str, ...]
    hours: tuple[str, ...]


def window(now: datetime, full: bool) -> Window:
    """A full pass: the buckets a snapshot reads (`trend_days`, `trend_hours`); else the
    recent ones: today, yesterday and the hours around now. `now` is local (aware)."""
    if full:
        return Window(tuple(trend_days(now)), tuple(trend_hours(now)))
    days = (now.strftime("%Y%m%d"), (now - timedelta(days=1)).strftime("%Y%m%d"))
    hours = tuple((now + timedelta(hours=k)).astimezone(now.tzinfo).strftime("%Y%m%d%H")
                  for k in (-1, 0, 1))
    return Window(days, hours)


@dataclass
class Rollup:
    """The sums of one centre for one window, ready to write."""

    code: str
    days: dict[str, Counter] = field(default_factory=dict)
    hours: dict[str, Counter] = field(default_factory=dict)
    gauge: Counter = field(default_factory=Counter)
    meta: dict = field(default_factory=dict)


def meta_key(keys: Keys, part: Part) -> str:
    return keys.up_meta(part.code) if part.rolled else keys.meta(part.shard)


def queue_reads(pipe, keys: Keys, part: Part, win: Window, now_ms: int) -> int:
    """Queue the reads of one contribution (its meta first); returns how many."""
    pipe.hgetall(meta_key(keys, part))
    if part.rolled:
        for d in win.days:
            pipe.hgetall(keys.up_day(part.code, d))
        for h in win.hours:
            pipe.hgetall(keys.up_hour(part.code, h))
        pipe.hgetall(keys.up_gauge(part.code))
        return 2 + len(win.days) + len(win.hours)
    for d in win.days:
        pipe.hgetall(keys.day(part.shard, d, part.code))
    for h in win.hours:
        pipe.hgetall(keys.hour(part.shard, h, part.code))
    pipe.hgetall(keys.gauge(part.shard, part.code))
    pipe.zcount(keys.due(part.shard, part.code), "-inf", now_ms - 1)
    return 3 + len(win.days) + len(win.hours)


def combine_metas(metas: Iterable[tuple[str, dict]], now_ms: int) -> dict:
    """The roll-up's meta from its contributions' (source id, parsed meta): version and dead
    summed, heartbeat the oldest (left out when a contribution has none: nothing has
    heartbeated it, as a shard without an aggregator), applied_at and last_ts the newest,
    epoch a digest of the contributions' epochs (a rebuild below changes it)."""
    out = {"version": 0, "dead": 0, "rolled_at": now_ms}
    beats: list[int | None] = []
    epochs = []
    for source, m in metas:
        out["version"] += m.get("version", 0)
        out["dead"] += m.get("dead", 0)
        beats.append(m.get("heartbeat"))
        for f in ("applied_at", "last_ts"):
            if m.get(f):
                out[f] = max(out.get(f, 0), m[f])
        if m.get("epoch"):
            epochs.append(f"{source}={m['epoch']}")
    if beats and all(beats):
        out["heartbeat"] = min(b for b in beats if b)
    if epochs:
        out["epoch"] = hashlib.sha256(",".join(sorted(epochs)).encode()).hexdigest()[:12]
    return out


def compute(code: str, plan: list[Part], win: Window, replies: list, now_ms: int) -> Rollup:
    """Sum the replies of `queue_reads` (in `plan` order) into the roll-up of `code`."""
    out = Rollup(code, {d: Counter() for d in win.days}, {h: Counter() for h in win.hours})
    metas = []
    pos = 0
    for part in plan:
        m, _bad = parse_meta(replies[pos]) if isinstance(replies[pos], dict) else ({}, [])
        metas.append((UP + part.code if part.rolled else part.shard, m))
        pos += 1
        for d in win.days:
            out.days[d].update(hash_counts(replies[pos]))
            pos += 1
        for h in win.hours:
            out.hours[h].update(hash_counts(replies[pos]))
            pos += 1
        out.gauge.update(hash_counts(replies[pos]))
        pos += 1
        if not part.rolled:
            out.gauge[OVERDUE] += as_int(replies[pos]) if isinstance(replies[pos], int) else 0
            pos += 1
    out.meta = combine_metas(metas, now_ms)
    return out


def version_sum(r, keys: Keys, topo: Topology, code: str) -> int:
    """The sum of the versions `code`'s roll-up would be written at now (one pipeline of
    O(children) HGETs): when it equals the version last written, nothing below has changed."""
    pipe = r.pipeline(transaction=False)
    for part in parts(topo, code):
        pipe.hget(meta_key(keys, part), "version")
    return sum(as_int(v) for v in pipe.execute(raise_on_error=False)
               if isinstance(v, bytes | str | int))


def read(r, keys: Keys, topo: Topology, code: str, win: Window, now_ms: int) -> Rollup:
    """Read the contributions of `code` (one pipeline) and sum them."""
    plan = parts(topo, code)
    pipe = r.pipeline(transaction=False)
    for part in plan:
        queue_reads(pipe, keys, part, win, now_ms)
    return compute(code, plan, win, pipe.execute(raise_on_error=False), now_ms)


def _replace(key: str, values: Counter | dict, ttl_s: int | None) -> list[list]:
    cmds: list[list] = [["DEL", key]]
    flat = [x for f, v in sorted(values.items()) if v != 0 or isinstance(v, str)
            for x in (f, v)]
    if flat:
        cmds.append(["HSET", key, *flat])
        if ttl_s:
            cmds.append(["EXPIRE", key, ttl_s])
    return cmds


def write_commands(keys: Keys, roll: Rollup, ttl_day_s: int, ttl_hour_s: int) -> list[list]:
    """The commands that replace the roll-up's keys (all on the centre's slot), for the
    aggregator's fenced write; the meta last (a reader that sees the new version finds the
    new figures)."""
    cmds: list[list] = []
    for d, c in roll.days.items():
        cmds += _replace(keys.up_day(roll.code, d), c, ttl_day_s)
    for h, c in roll.hours.items():
        cmds += _replace(keys.up_hour(roll.code, h), c, ttl_hour_s)
    cmds += _replace(keys.up_gauge(roll.code), roll.gauge, None)
    cmds += _replace(keys.up_meta(roll.code), roll.meta, None)
    return cmds
