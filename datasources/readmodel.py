"""Read API: `snapshot(code)` → the centre's figures, its children's, and trends.

One pipelined round trip per call; the number of commands depends on the number of
children (and the fixed trend windows), never on the event rate, history length or the
number of shards below the centre: a centre above the shard tier (a city, a province) reads
the roll-up the aggregator keeps of its subtree (datasources/upper.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis

from datasources.config import ReadModelConfig
from datasources.contract import closed_tiers
from datasources.keys import Keys
from datasources.rollup import RESOLVED_OF_REPORTED
from datasources.topology import Topology, rolled, sources
from datasources.validate import as_int


class UnknownCentre(KeyError):
    pass


OVERDUE = "overdue"  # the roll-up's gauge field: its subtree's overdue cases (upper.py)


def trend_hours(now: datetime) -> list[str]:
    """The 48 hour buckets (YYYYmmddHH) of a snapshot's hourly trend: yesterday 00 to today
    23, local to `now`."""
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return [(day0 - timedelta(days=1) + timedelta(hours=i)).strftime("%Y%m%d%H")
            for i in range(48)]


def trend_days(now: datetime) -> list[str]:
    """The 30 day buckets (YYYYmmdd) of a snapshot's petition trend, oldest first."""
    return [(now - timedelta(days=i)).strftime("%Y%m%d") for i in range(29, -1, -1)]


def hour_key(keys: Keys, topo: Topology, code: str, hour: str) -> str:
    """The hour figures of `code`'s whole subtree: its roll-up when it is rolled (a city, a
    province), else its shard head's."""
    if rolled(topo, code):
        return keys.up_hour(code, hour)
    return keys.hour(topo.centres[code].shard, hour, code)


def day_key(keys: Keys, topo: Topology, code: str, day: str) -> str:
    """The day figures of `code`'s whole subtree (as `hour_key`)."""
    if rolled(topo, code):
        return keys.up_day(code, day)
    return keys.day(topo.centres[code].shard, day, code)


META_FIELD = re.compile(r"[a-z][a-z0-9_]{0,31}")
META_MAX_FIELDS = 32
META_INT_MAX = 2**53 - 1  # what a browser's number holds exactly


def parse_meta(raw: dict) -> tuple[dict, list[str]]:
    """A shard's meta hash → ({field: int, "epoch": str}, [fields left out]).

    The aggregator writes counters and times (non-negative integers) and `epoch`, an opaque
    string that changes when the read model is rebuilt. The hash is internal, but whoever
    reaches Redis can write it, so it is read as untrusted input: a value that is not an
    integer 0…2**53-1, a field name that is not [a-z][a-z0-9_]{0,31}, fields beyond 32 are
    left out (and named, for a log line) instead of stopping the wall; a long epoch is
    replaced by its hash."""
    out: dict = {}
    bad: list[str] = []
    for k, v in raw.items():
        key = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
        if not META_FIELD.fullmatch(key) or len(out) >= META_MAX_FIELDS:
            bad.append(key[:40])
            continue
        text = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
        if key == "epoch":
            out[key] = text if len(text) <= 64 else hashlib.sha256(text.encode()).hexdigest()
            continue
        if not (0 < len(text) <= 16 and text.isascii() and text.isdigit()) \
                or int(text) > META_INT_MAX:
            bad.append(key)
            continue
        out[key] = int(text)
    return out, bad


def hash_counts(reply: object) -> Counter:
    """A hash reply (HGETALL) as integers; a reply that is not a hash (an error for a key
    someone overwrote with another type, in a pipeline that does not raise) counts nothing —
    the audit finds the difference."""
    if not isinstance(reply, dict):
        return Counter()
    return Counter({(k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): as_int(v)
                    for k, v in reply.items()})


def demo_info(raw: bytes | str | None) -> dict | None:
    """{"speed": n} when Redis holds the demo simulation's run (`pingan demo`): the figures are
    simulated and case handling runs n times faster, which the screens say. Untrusted input
    like the meta hash: anything odd reads as speed 1."""
    if not raw:
        return None
    try:
        speed = float(json.loads(raw).get("speed", 1))
    except (ValueError, TypeError, AttributeError):
        speed = 1.0
    return {"speed": round(speed, 1) if 0 < speed <= 10_000 else 1.0}


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def pingan_index(fig: dict, weights: dict[str, float]) -> float:
    """Transparent 0–100 composite; each component is a 0–1 score (docs/metrics.md)."""
    ev, grids, cams, pet = fig["events"], fig["grids"], fig["cameras"], fig["petitions"]
    scores = {
        "resolution": min(1.0, ev["resolution_rate"]) if ev["resolution_rate"] is not None else 1.0,
        "overdue": 1.0 - (ev["overdue"] / ev["open"] if ev["open"] else 0.0),
        "patrol": grids["coverage"] if grids["coverage"] is not None else 0.0,
        "cameras": cams["online_rate"] if cams["online_rate"] is not None else 0.0,
        # one petition a day per 20 grids counts as the bottom of the scale
        "petitions": max(0.0, 1.0 - pet["today"] / max(1.0, grids["total"] / 20)),
    }
    # each score 0–1 whatever the counters say: a gauge can outrun the registry (the states
    # of cameras a registry import removed) or another counter (overdue above open)
    scores = {k: min(1.0, max(0.0, s)) for k, s in scores.items()}
    total_w = sum(weights.values()) or 1.0
    return round(100 * sum(weights.get(k, 0) * s for k, s in scores.items()) / total_w, 1)


class ReadModel:
    """Reads figures for a centre and its children from the aggregator's read model."""

    def __init__(self, r: redis.Redis, topo: Topology, config: ReadModelConfig,
                 base_data: dict[str, dict[str, int]] | None = None) -> None:
        self.r = r
        self.topo = topo
        self.config = config
        self.keys = Keys(config.key_prefix)
        self.tz = ZoneInfo(config.tz)
        self.base_data = base_data or {}

    # -- raw reads ---------------------------------------------------------------------
    def _queue_figures(self, pipe, code: str, today: str, now_ms: int) -> int:
        """Today's figures of `code`'s subtree: its roll-up when it is rolled (the overdue
        count is a field of the roll-up's gauge), else its shard head. Returns how many
        commands were queued."""
        if rolled(self.topo, code):
            pipe.hgetall(self.keys.up_day(code, today))
            pipe.hgetall(self.keys.up_gauge(code))
            return 2
        shard = self.topo.centres[code].shard
        pipe.hgetall(self.keys.day(shard, today, code))
        pipe.hgetall(self.keys.gauge(shard, code))
        pipe.zcount(self.keys.due(shard, code), "-inf", now_ms - 1)
        return 3

    def _figures(self, code: str, replies: list) -> dict:
        day, gauge = hash_counts(replies[0]), hash_counts(replies[1])
        overdue = gauge.pop(OVERDUE, 0) if len(replies) == 2 else as_int(replies[2])
        return self._shape(code, day, gauge, overdue)

    def _shape(self, code: str, d: Counter, g: Counter, overdue: int) -> dict:
        tot = self.topo.totals.get(code, {})
        levels = {name: d[f"closed:{lv}"] for lv, name in closed_tiers(self.topo, code)}
        sat_yes, sat_no = d["sat:1"], d["sat:0"]
        cams_total = tot.get("cameras", 0)
        online, offline, fault = g["cam:online"], g["cam:offline"], g["cam:fault"]
        grids_total = tot.get("grids", 0)
        vocab = self.topo.vocab  # the region's categories, channels and camera kinds
        return {
            "events": {
                "reported": d["reported"],
                "dispatched": d["dispatched"],
                "handling": d["handling"],
                "resolved": d["resolved"],
                "reported_resolved": d[RESOLVED_OF_REPORTED],
                "evaluated": d["evaluated"],
                "escalated": d["escalated"],
                "supervised": d["supervised"],  # 督办数 today (issue 10: the wall shows it)
                "urgent": d["urgent"],
                "open": g["open"],
                "overdue": overdue,
                "by_category": {c: d[f"cat:{c}"] for c in vocab.codes("category")},
                "by_channel": {c: d[f"ch:{c}"] for c in vocab.codes("event_channel")},
                # 办结率: today's reports resolved since / today's reports (never above 1)
                "resolution_rate": _ratio(d[RESOLVED_OF_REPORTED], d["reported"]),
                "satisfaction_rate": _ratio(sat_yes, sat_yes + sat_no),
                "closed_at_level": levels,
            },
            "grids": {
                "total": grids_total,
                "urban": tot.get("grids_urban", 0),
                "rural": tot.get("grids_rural", 0),
                "staffed": tot.get("grids_staffed", 0),
                "workers": tot.get("workers", 0),
                "patrolled_today": d["grids_patrolled"],
                "patrolled_full": d["grids_patrolled_full"],
                "coverage": _ratio(d["grids_patrolled"], grids_total),
                "full_coverage": _ratio(d["grids_patrolled_full"], grids_total),
                "workers_on_duty": d["workers_on_duty"],
                "patrols": d["patrols"],
            },
            "cameras": {
                "total": cams_total,
                "online": online,
                "offline": offline,
                "fault": fault,
                "unknown": max(0, cams_total - online - offline - fault),
                "online_rate": _ratio(online, cams_total),
                "failures_today": d["cam_failures"],
                "by_kind": {
                    k: {
                        "total": tot.get(f"cameras_{k}", 0),
                        "online": g[f"cam:online:{k}"],
                        "offline": g[f"cam:offline:{k}"],
                        "fault": g[f"cam:fault:{k}"],
                        "online_rate": _ratio(g[f"cam:online:{k}"], tot.get(f"cameras_{k}", 0)),
                    }
                    for k in vocab.codes("camera_kind")
                },
            },
            "petitions": {
                "today": d["petitions"],
                "by_channel": {c: d[f"pet:{c}"] for c in vocab.codes("petition_channel")},
                "group": d["pet_group"],
                "skip_level": d["pet_skip"],
            },
        }

    # -- public ------------------------------------------------------------------------
    def snapshot(self, code: str, now: datetime | None = None) -> dict:
        """The centre's figures, its children's and its trends, in one pipelined round trip
        whose length depends on the number of children (and the fixed trend windows), never on
        the number of shards below the centre: a rolled-up centre (a city, a province) reads
        its roll-up (datasources/upper.py). `versions` / `shards` are keyed by the figures
        sources read (`topology.sources`: a shard, or `^CODE` for a roll-up)."""
        if code not in self.topo.centres:
            raise UnknownCentre(code)
        now = now or datetime.now(self.tz)
        today = now.strftime("%Y%m%d")
        now_ms = int(time.time() * 1000)
        info = self.topo.centres[code]
        children = list(self.topo.children.get(code, ()))
        srcs = sources(self.topo, code)

        pipe = self.r.pipeline(transaction=False)
        counts = [self._queue_figures(pipe, code, today, now_ms)]
        for ch in children:
            counts.append(self._queue_figures(pipe, ch, today, now_ms))
        hour_names = trend_hours(now)
        for hn in hour_names:
            pipe.hgetall(hour_key(self.keys, self.topo, code, hn))
        days = trend_days(now)
        pet_channels = self.topo.vocab.codes("petition_channel")
        pet_fields = ["petitions", *(f"pet:{c}" for c in pet_channels)]
        for dn in days:
            pipe.hmget(day_key(self.keys, self.topo, code, dn), pet_fields)
        for s in srcs:
            pipe.hgetall(self.keys.source_meta(s))
        pipe.hget(self.keys.demo_run(), "run")
        replies = pipe.execute()

        pos = 0
        figs = []
        for n in counts:
            figs.append(replies[pos:pos + n])
            pos += n
        own = self._figures(code, figs[0])
        child_figs = {ch: self._figures(ch, f) for ch, f in zip(children, figs[1:], strict=True)}

        hourly = {"reported": [0] * 48, "resolved": [0] * 48, "petitions": [0] * 48}
        for i in range(48):
            h = hash_counts(replies[pos])
            pos += 1
            for k in hourly:
                hourly[k][i] += h[k]
        trend = []
        for dn in days:
            row = Counter()
            for f, v in zip(pet_fields, replies[pos], strict=True):
                row[f] += as_int(v)
            pos += 1
            trend.append({"day": f"{dn[:4]}-{dn[4:6]}-{dn[6:]}", "total": row["petitions"],
                          **{c: row[f"pet:{c}"] for c in pet_channels}})
        metas = {}
        for s in srcs:
            m, _bad = parse_meta(replies[pos])
            pos += 1
            metas[s] = {
                "version": m.get("version", 0),
                "applied_at": m.get("applied_at") or None,
                "heartbeat": m.get("heartbeat") or None,
                "last_ts": m.get("last_ts") or None,
                "dead": m.get("dead", 0),
                **({"epoch": m["epoch"]} if "epoch" in m else {}),
            }

        weights = self.config.index_weights
        own["petitions"]["trend_7d"] = trend[-7:]
        own["petitions"]["trend_30d"] = trend
        own["trend"] = {
            "hours": [f"{hn[8:]}" for hn in hour_names[24:]],
            "current_hour": now.hour,
            "today": {k: v[24:] for k, v in hourly.items()},
            "yesterday": {k: v[:24] for k, v in hourly.items()},
        }
        own["index"] = pingan_index(own, weights)
        children_out = {}
        for ch, f in child_figs.items():
            ci = self.topo.centres[ch]
            children_out[ch] = {
                "name": ci.name,
                "level": ci.level,
                "reported": f["events"]["reported"],
                "resolved": f["events"]["resolved"],
                "open": f["events"]["open"],
                "overdue": f["events"]["overdue"],
                "supervised": f["events"]["supervised"],  # 督办数 today, in the ranking
                "resolution_rate": f["events"]["resolution_rate"],
                "satisfaction_rate": f["events"]["satisfaction_rate"],
                "grids": f["grids"]["total"],
                "patrolled_today": f["grids"]["patrolled_today"],
                "coverage": f["grids"]["coverage"],
                "workers_on_duty": f["grids"]["workers_on_duty"],
                "cameras": f["cameras"]["total"],
                "cameras_online": f["cameras"]["online"],
                "online_rate": f["cameras"]["online_rate"],
                "petitions": f["petitions"]["today"],
                "index": pingan_index(f, weights),
            }
        versions = {s: m["version"] for s, m in metas.items()}
        applied = [m["applied_at"] for m in metas.values() if m["applied_at"]]
        return {
            "code": code,
            "name": info.name,
            "level": info.level,
            "parent": info.parent,
            "day": f"{today[:4]}-{today[4:6]}-{today[6:]}",
            **own,
            "base": self.base_data.get(code, {}),
            "children": children_out,
            "version": sum(versions.values()),
            "versions": versions,
            "shards": metas,
            "as_of": max(applied) if applied else None,
            "demo": demo_info(replies[pos]),
        }
