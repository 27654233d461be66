"""Audit: recount today's figures from the raw streams and compare with the read model.

Independent of the Lua step: entries are read with XRANGE, validated with the same contract,
de-duplicated with the same idempotency keys, and counted with pandas; the case lifecycle
(open, overdue) and camera states are replayed in stream order. Every rollup of every centre
(each tier inside each shard) is compared field by field.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import redis

from dashboard.settings import Settings
from datasources.aggregator import shard_backlog
from datasources.contract import FIELDS, Clock, InvalidEntry, decode_fields, validate
from datasources.keys import READ_KINDS, Keys
from datasources.topology import Topology


def _read_shard(r: redis.Redis, keys: Keys, topo: Topology, shard: str, clock: Clock) -> list[dict]:
    rows = []
    seq = 0
    for kind in READ_KINDS:
        stream = keys.stream(shard, kind)
        last = "-"
        while True:
            items = r.xrange(stream, min=last, max="+", count=5000)
            if last != "-" and items:
                items = items[1:]
            if not items:
                break
            for entry_id, fields in items:
                eid = entry_id.decode()
                try:
                    rec = validate(kind, decode_fields(fields), shard, topo, clock)
                except InvalidEntry:
                    continue
                ms, n = eid.split("-")
                rows.append((*rec, (int(ms), int(n))))
            last = items[-1][0].decode()
            seq += 1
    rows.sort(key=lambda x: x[-1])  # per-stream order is what matters; this keeps it
    return rows


def recount_shard(rows: list[dict], topo: Topology, shard: str, today: str, now_ms: int,
                  patrols_per_day: int) -> dict[str, tuple[Counter, Counter, int]]:
    """Per centre of the shard: (today's day-hash counters, gauge counters, overdue)."""
    centres = topo.centres
    day: dict[str, Counter] = defaultdict(Counter)
    gauge: dict[str, Counter] = defaultdict(Counter)
    if not rows:
        return {}
    df = pd.DataFrame(rows, columns=[*FIELDS, "seq"])
    # idempotency: a key counts once per local day of its timestamp (cameras have no key)
    keyed = df[df["q"] != ""].drop_duplicates(subset=["day", "q"], keep="first")
    df = pd.concat([keyed, df[df["q"] == ""]]).sort_values("seq", kind="stable")
    df["chain"] = [centres[c].chain for c in df["centre"]]
    t = df[df["day"] == today].explode("chain")

    ev = t[t["k"] == "e"]
    for (c, st), n in ev.groupby(["chain", "status"]).size().items():
        day[c][st] += int(n)
    rep = ev[ev["status"] == "reported"]
    for col, pre in (("category", "cat:"), ("channel", "ch:")):
        for (c, v), n in rep.groupby(["chain", col]).size().items():
            day[c][pre + v] += int(n)
    for c, n in rep[rep["urgency"] == "urgent"].groupby("chain").size().items():
        day[c]["urgent"] += int(n)
    res = ev[ev["status"] == "resolved"]
    for (c, lv), n in res.assign(lv=[centres[x].level for x in res["centre"]]).groupby(
        ["chain", "lv"]
    ).size().items():
        day[c][f"closed:{lv}"] += int(n)
    evl = ev[ev["status"] == "evaluated"]
    for (c, s), n in evl.groupby(["chain", "satisfied"]).size().items():
        day[c][f"sat:{int(s)}"] += int(n)

    pat = t[t["k"] == "p"]
    if len(pat):
        for c, n in pat.groupby("chain").size().items():
            day[c]["patrols"] += int(n)
        per_grid = pat.groupby(["chain", "grid"]).size()
        for c, n in (per_grid >= 1).groupby(level=0).sum().items():
            day[c]["grids_patrolled"] += int(n)
        for c, n in (per_grid >= patrols_per_day).groupby(level=0).sum().items():
            day[c]["grids_patrolled_full"] += int(n)
        # a worker is on duty once per community/village they patrolled in
        pairs = pat.assign(wk=pat["worker"] + "|" + pat["centre"])
        for c, n in pairs.groupby("chain")["wk"].nunique().items():
            day[c]["workers_on_duty"] += int(n)

    pet = t[t["k"] == "t"]
    for c, n in pet.groupby("chain").size().items():
        day[c]["petitions"] += int(n)
    for (c, ch), n in pet.groupby(["chain", "channel"]).size().items():
        day[c][f"pet:{ch}"] += int(n)
    for c, n in pet[pet["group"] == 1].groupby("chain").size().items():
        day[c]["pet_group"] += int(n)
    for c, n in pet[pet["skip"] == 1].groupby("chain").size().items():
        day[c]["pet_skip"] += int(n)

    # case lifecycle over the whole retained history, in stream order
    cases: dict[str, tuple[tuple[str, ...], int]] = {}
    orphans: set[str] = set()
    for rec in df[df["k"].isin(["e", "h"])].itertuples(index=False):
        if rec.k == "h" or rec.status == "reported":
            if rec.id in orphans:
                orphans.discard(rec.id)
            elif rec.id not in cases:
                owner = rec.to if rec.k == "h" else rec.centre
                cases[rec.id] = (centres[owner].chain, int(rec.due))
        elif rec.status == "escalated" and rec.id in cases:
            chain, due = cases[rec.id]
            to = centres[rec.to]
            if to.shard == shard:
                cases[rec.id] = (to.chain, due)
            else:
                del cases[rec.id]
        elif rec.status == "resolved":
            if rec.id in cases:
                del cases[rec.id]
            else:
                orphans.add(rec.id)
    overdue: Counter = Counter()
    for chain, due in cases.values():
        for c in chain:
            gauge[c]["open"] += 1
            if due < now_ms:
                overdue[c] += 1

    # cameras: latest state by timestamp (ties: stream order); failures counted on change
    state: dict[str, tuple[str, int]] = {}
    for rec in df[df["k"] == "c"].itertuples(index=False):
        old = state.get(rec.id)
        if old is not None and rec.ts < old[1]:
            continue
        state[rec.id] = (rec.state, rec.ts)
        if old is not None and old[0] != rec.state and rec.state != "online" and rec.day == today:
            for c in centres[rec.centre].chain:
                day[c]["cam_failures"] += 1
    for cam, (st, _ts) in state.items():
        centre, kind = topo.camera[cam]
        for c in centres[centre].chain:
            gauge[c][f"cam:{st}"] += 1
            gauge[c][f"cam:{st}:{kind}"] += 1

    codes = set(day) | set(gauge) | set(overdue)
    return {c: (day[c], gauge[c], overdue[c]) for c in codes}


def _model(r: redis.Redis, keys: Keys, shard: str, code: str, today: str, now_ms: int):
    pipe = r.pipeline(transaction=False)
    pipe.hgetall(keys.day(shard, today, code))
    pipe.hgetall(keys.gauge(shard, code))
    pipe.zcount(keys.due(shard, code), "-inf", now_ms - 1)
    d, g, o = pipe.execute()
    conv = lambda h: Counter({k.decode(): int(v) for k, v in h.items()})  # noqa: E731
    return conv(d), conv(g), int(o)


def audit(r: redis.Redis, topo: Topology, settings: Settings, now: datetime | None = None) -> dict:
    """Compare the read model with a recount; `differences` is empty when they agree."""
    keys = Keys(settings.key_prefix)
    tz = ZoneInfo(settings.tz)
    now = now or datetime.now(tz)
    now_ms = int(now.timestamp() * 1000)
    today = now.strftime("%Y%m%d")
    clock = Clock(tz, int(time.time() * 1000))
    differences = []
    checked = 0
    entries = 0
    dead = 0
    backlog = {}
    for shard in topo.shards:
        rows = _read_shard(r, keys, topo, shard, clock)
        entries += len(rows)
        dead += r.xlen(keys.dead(shard))
        b = shard_backlog(r, keys, shard)
        if b:
            backlog[shard] = b
        counted = recount_shard(rows, topo, shard, today, now_ms, settings.patrols_per_day)
        for code, info in topo.centres.items():
            if info.shard != shard:
                continue
            checked += 1
            exp_d, exp_g, exp_o = counted.get(code, (Counter(), Counter(), 0))
            got_d, got_g, got_o = _model(r, keys, shard, code, today, now_ms)
            for what, exp, got in (("today", exp_d, got_d), ("now", exp_g, got_g)):
                for f in sorted(set(exp) | set(got)):
                    if exp[f] != got[f]:
                        differences.append({"centre": code, "figure": f"{what}.{f}",
                                            "recount": exp[f], "read_model": got[f]})
            if exp_o != got_o:
                differences.append({"centre": code, "figure": "now.overdue",
                                    "recount": exp_o, "read_model": got_o})
    return {
        "day": today,
        "centres_checked": checked,
        "entries_recounted": entries,
        "dead_letters": dead,
        "backlog": backlog,
        "differences": differences,
        "ok": not differences,
    }
