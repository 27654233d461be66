"""Rollups of one batch of a shard, computed in Python, written to Redis in one fenced step.

The lease holder of a shard is its only writer (a batch from a holder that lost its lease is
refused whole by `fenced_write.lua`). So a batch can be applied in three steps without losing
atomicity: read the state the batch depends on (idempotency keys, open cases, patrol counts,
camera states) in one pipeline, compute every change in Python, then write all changes,
dead letters and the XACKs in one Lua call that first checks the lease. A crash before that
call leaves the entries pending and nothing written; the call itself is all or nothing.
Doing the arithmetic here keeps Redis's share of the work per entry small, so adding
aggregator processes adds throughput (bench/ingest.py).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from functools import lru_cache

import redis

from datasources.contract import FIELDS, carry_of
from datasources.keys import GROUP, Keys
from datasources.topology import Topology

(K, ID, TS, DAY, HOUR, CENTRE, CI, LV, Q, STATUS, CATEGORY, CHANNEL, URGENCY, DUE, SATISFIED,
 TO, TCI, GRID, WORKER, STATE, CAM_KIND, GROUP_F, SKIP, SUMMARY, BY, NOTE, USER,
 CARRY) = range(len(FIELDS))

CHUNK = 2000  # members per bulk command (Lua's unpack limit is ~8000 arguments)
# day/hour field: cases reported in the bucket (the report that opened the case here) that
# have been resolved since; 办结率 = this / reported (docs/metrics.md), never above 1
RESOLVED_OF_REPORTED = "reported_resolved"
DAY_S = 86_400

# ---- cases behind the figures (issue 10, helper CASES) ----
URGENT_RANK = 10**13  # added to an urgent case's report time: urgent first, then newest
INDEX_KINDS = ("open", "esc", "sup")  # keys.case_index: open, escalated, supervised
_MOVES = frozenset({"reported", "escalated", "supervised", "resolved"})
# the parts of an open case's info and of a timeline step are joined by the ASCII unit
# separator, which no valid entry's value holds (contract §4.1: printable text only)
SEP = "\x1f"
STEP_PARTS = ("status", "ts", "centre", "to", "by", "note", "summary", "user")
_NO_INFO = ("normal", 0, "", "", 0, 0, "")


def case_rank(urgency: str, reported_at: int) -> int:
    """The score of an open case in its centres' case indexes: urgent first, then newest."""
    return reported_at + (URGENT_RANK if urgency == "urgent" else 0)


def _int(v: object) -> int:
    try:
        return max(0, int(v))  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def info_of(value: str | bytes | None) -> list:
    """An open case's [urgency, reported_at, channel, status, supervised, escalated, summary]
    from keys.case_info; defaults for a case opened before the record existed, or a value
    someone else wrote."""
    if value:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        v = value.split(SEP)
        if len(v) == len(_NO_INFO):
            return [v[0], _int(v[1]), v[2], v[3], _int(v[4]), _int(v[5]), v[6]]
    return list(_NO_INFO)


def info_text(v: list | tuple) -> str:
    """The keys.case_info value of `info_of`'s list."""
    return SEP.join(map(str, v))


def step_text(*parts: object) -> str:
    """A timeline step (STEP_PARTS, in order) as its keys.case field value."""
    return SEP.join(map(str, parts))


def step_of(value: str) -> dict[str, str]:
    """A timeline step's parts by name ({} for a value someone else wrote)."""
    v = value.split(SEP)
    return dict(zip(STEP_PARTS, v, strict=True)) if len(v) == len(STEP_PARTS) else {}


def case_members(held: str | None, info: str | None) -> dict[tuple[str, str], int]:
    """The index entries an open case (`cases` value `held`, info) belongs to: (kind, centre)
    → score; none when it is not open."""
    if not held:
        return {}
    chain = held.split("|", 2)[2].split(",")
    v = info_of(info)
    rank = case_rank(v[0], v[1])
    kinds = ("open",) + (("esc",) if v[5] else ()) + (("sup",) if v[4] else ())
    return {(kind, c): rank for c in chain for kind in kinds}

# ---- end cases ----


@dataclass(frozen=True)
class Limits:
    ttl_day: int
    ttl_hour: int
    ttl_seen: int
    patrols_per_day: int
    recent_max: int
    dead_max: int
    # a rebuild (`pingan rebuild`) recounts only the days whose entries are all still in the
    # streams: entries of earlier days change state (cases, cameras) but no day or hour count
    count_from_day: str = ""
    # how long a case's record lives while the case is open (0: four day-figure lives, well
    # beyond the case age limit by default); once closed it lives `ttl_day` (datasources/cases.py)
    ttl_case_open: int = 0

    def rebuilding(self, day: str) -> Limits:
        return replace(self, count_from_day=day)


@dataclass
class State:
    """What a batch depends on, read before it is applied."""

    seen: set[tuple[str, str]] = field(default_factory=set)  # (day, q) already applied
    cases: dict[str, str | None] = field(default_factory=dict)
    closed: dict[str, int | None] = field(default_factory=dict)  # tombstones: eid → closed at
    cams: dict[str, str | None] = field(default_factory=dict)
    pcount: dict[tuple[str, str], int] = field(default_factory=dict)  # (day, grid) → patrols
    workers: set[tuple[str, str]] = field(default_factory=set)  # (day, worker|village) seen
    # open cases opened here by a report: eid → 'YYYYmmddHH|centre' of that report
    received: dict[str, str | None] = field(default_factory=dict)
    # open cases: eid → what the case lists need (JSON, `CaseInfo`), from keys.case_info
    info: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Outcome:
    commands: list[list]
    applied: int = 0
    duplicates: int = 0


class CorruptKey(Exception):
    """A read-model key holds the wrong type (someone else wrote it): `key`, `why`."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


def _plan_key(keys: Keys, shard: str, what: str, day: str | None) -> str:
    return {"seen": lambda: keys.seen(shard, day), "cases": lambda: keys.cases(shard),
            "closed": lambda: keys.closed(shard), "cams": lambda: keys.camera_state(shard),
            "received": lambda: keys.received(shard), "info": lambda: keys.case_info(shard),
            "pcount": lambda: keys.patrol_counts(shard, day),
            "workers": lambda: keys.workers_seen(shard, day)}[what]()


def load_state(r: redis.Redis, keys: Keys, shard: str, records: list[tuple], topo: Topology) -> State:
    """One pipelined read of everything the batch's entries depend on."""
    qs: dict[str, list[str]] = defaultdict(list)
    eids: dict[str, None] = {}
    cams: dict[str, None] = {}
    grids: dict[str, dict[str, None]] = defaultdict(dict)
    pairs: dict[str, dict[str, None]] = defaultdict(dict)
    order = topo.order
    for rec in records:
        if rec[Q]:
            qs[rec[DAY]].append(rec[Q])
        k = rec[K]
        if k == "e" or k == "h":
            eids[rec[ID]] = None
        elif k == "c":
            cams[rec[ID]] = None
        elif k == "p":
            grids[rec[DAY]][rec[GRID]] = None
            pairs[rec[DAY]][f"{rec[WORKER]}|{order[rec[CI]]}"] = None
    pipe = r.pipeline(transaction=False)
    plan = []
    for day, names in qs.items():
        for i in range(0, len(names), CHUNK):
            part = names[i:i + CHUNK]
            pipe.execute_command("SMISMEMBER", keys.seen(shard, day), *part)
            plan.append(("seen", day, part))
    el = list(eids)
    if el:
        pipe.hmget(keys.cases(shard), el)
        plan.append(("cases", None, el))
        pipe.execute_command("ZMSCORE", keys.closed(shard), *el)
        plan.append(("closed", None, el))
        pipe.hmget(keys.received(shard), el)
        plan.append(("received", None, el))
        pipe.hmget(keys.case_info(shard), el)
        plan.append(("info", None, el))
    cl = list(cams)
    if cl:
        pipe.hmget(keys.camera_state(shard), cl)
        plan.append(("cams", None, cl))
    for day, g in grids.items():
        gl = list(g)
        pipe.hmget(keys.patrol_counts(shard, day), gl)
        plan.append(("pcount", day, gl))
    for day, p in pairs.items():
        pl = list(p)
        pipe.execute_command("SMISMEMBER", keys.workers_seen(shard, day), *pl)
        plan.append(("workers", day, pl))
    st = State()
    replies = pipe.execute(raise_on_error=False)
    for (what, day, _names), reply in zip(plan, replies, strict=True):
        if isinstance(reply, redis.ResponseError):
            if "WRONGTYPE" in str(reply):
                raise CorruptKey(_plan_key(keys, shard, what, day), str(reply))
            raise reply
    for (what, day, names), reply in zip(plan, replies, strict=True):
        if what == "seen":
            st.seen.update((day, q) for q, hit in zip(names, reply, strict=True) if hit)
        elif what == "workers":
            st.workers.update((day, p) for p, hit in zip(names, reply, strict=True) if hit)
        elif what == "pcount":
            st.pcount.update(((day, g), int(v) if v else 0) for g, v in zip(names, reply, strict=True))
        elif what == "closed":
            st.closed.update((n, int(float(v)) if v is not None else None)
                             for n, v in zip(names, reply, strict=True))
        else:
            target = getattr(st, what)
            target.update((n, v.decode() if v else None) for n, v in zip(names, reply, strict=True))
    return st


def compute(records: list[tuple], st: State, topo: Topology, keys: Keys, shard: str,
            limits: Limits) -> Outcome:
    """Apply the batch to `st` in order; return the write commands (no I/O here).

    Additive figures are collected as (bucket kind, bucket, centre index, field) tuples and
    counted in one `Counter` pass, then spread over each centre's in-shard ancestors once per
    distinct tuple rather than once per entry."""
    order, centres = topo.order, topo.centres
    due_key, day_key, hour_key, gauge_key = keys.due, keys.day, keys.hour, keys.gauge
    counted: list[tuple] = []  # ("d"|"h"|"g", bucket, ci, field), each one +1
    minus: list[tuple] = []  # gauge decrements: ("g", "", ci or chain tuple, field)
    seen_add: dict[str, list[str]] = defaultdict(list)
    batch_seen: set[tuple[str, str]] = set()
    cases_dirty: set[str] = set()
    closed_add: dict[str, int] = {}
    opened: dict[str, int | None] = {}  # eid → opened at, or None: no longer open here
    cams_dirty: set[str] = set()
    pdirty: set[tuple[str, str]] = set()
    wk_add: dict[str, list[str]] = defaultdict(list)
    zsets: dict[str, dict[str, int | None]] = defaultdict(dict)
    gauge_chain: list[tuple[tuple[str, ...], str, int]] = []  # (chain, field, delta)
    recent: list[str] = []
    camfail: list[str] = []
    handoffs: list[list] = []
    out = Outcome(commands=[])
    ppd = limits.patrols_per_day
    seen, cases, closed, cams = st.seen, st.cases, st.closed, st.cams
    pcount, workers = st.pcount, st.workers
    count_from = limits.count_from_day
    received, received_dirty = st.received, set()
    credit_ttl: dict[tuple[str, str], int] = {}  # ("d"|"h", bucket) → what is left of its life
    # cases behind the figures: each touched case's state before the batch, its record's
    # changes (fields set, counters added) and whether it is open after the batch
    info, info_dirty = st.info, set()
    case_before: dict[str, tuple[str | None, str | None]] = {}
    rec_set: dict[str, dict[str, str | int]] = defaultdict(dict)
    rec_inc: dict[str, dict[str, int]] = defaultdict(dict)
    rec_ttl: set[str] = set()  # records whose life changes (opened, closed, not open here)

    def case_step(rec: tuple, was_open: bool) -> None:
        """The record, timeline and open-case info of one applied case transition. A
        transition that leaves an open case open where it is (dispatched, handling, 督办)
        writes its step alone (and 督办 its count): the record's other fields and its life stay
        as they are. The summary is in the step (the card shows the latest)."""
        eid, status, ts, summary = rec[ID], rec[STATUS], rec[TS], rec[SUMMARY]
        held = cases.get(eid)
        fields = rec_set[eid]
        step_centre = rec[CENTRE]
        if rec[K] == "h":
            at, sup, esc, urgency, channel = carry_of(rec[CARRY])
            if held and not was_open:
                info[eid] = info_text((urgency or "normal", at or ts, channel, "escalated",
                                       sup, esc, summary))
                info_dirty.add(eid)
            fields.update(category=rec[CATEGORY], due=rec[DUE], supervised=sup, escalated=esc)
            rec_inc.pop(eid, None)
            fields.update({n: v for n, v in (("urgency", urgency), ("channel", channel),
                                             ("reported_at", at)) if v})
        else:
            if status == "reported" and not was_open:  # a second report changes nothing
                fields.update(channel=rec[CHANNEL], urgency=rec[URGENCY], reported_at=ts,
                              due=rec[DUE])
                if held:
                    info[eid] = info_text((rec[URGENCY], ts, rec[CHANNEL], status, 0, 0,
                                           summary))
                    info_dirty.add(eid)
            elif status == "supervised" or status == "escalated":
                inc = rec_inc[eid]
                inc[status] = inc.get(status, 0) + 1
            if was_open:
                raw = info.get(eid)
                v = raw.split(SEP) if raw else []
                if len(v) != len(_NO_INFO):
                    v = [str(x) for x in info_of(raw)]
                v[3] = status
                if status == "supervised":
                    v[4] = str(_int(v[4]) + 1)
                elif status == "escalated":
                    v[5] = str(_int(v[5]) + 1)
                if summary:
                    v[6] = summary
                info[eid] = SEP.join(v) if held else None
                info_dirty.add(eid)
                if not held:
                    fields["closed_at"] = ts
                    if status == "escalated":
                        fields["moved_to"] = rec[TO]
        if not (held and was_open) or status == "escalated":  # opened, closed, not open, moved
            fields.update(open=1 if held else 0,
                          centre=held.split("|", 2)[2].split(",", 1)[0] if held else rec[CENTRE])
            if not was_open:  # the record may not exist yet
                fields["category"] = rec[CATEGORY]
            if not (held and was_open):
                rec_ttl.add(eid)
        fields[f"s|{ts}|{status}|{step_centre}|{rec[BY]}"] = step_text(
            status, ts, step_centre, rec[TO], rec[BY], rec[NOTE], summary, rec[USER])

    def open_case(eid: str, due: int, cat: str, chain: tuple[str, ...], ts: int,
                  report: str | None = None) -> None:
        if closed.get(eid) is not None:  # closed (or resolved before it was reported here)
            return
        if cases.get(eid):
            return
        cases[eid] = f"{due}|{cat}|{','.join(chain)}"
        cases_dirty.add(eid)
        opened[eid] = ts
        gauge_chain.append((chain, "open", 1))
        for c in chain:
            zsets[due_key(shard, c)][eid] = due
        if report:
            received[eid] = report
            received_dirty.add(eid)

    def forget_report(eid: str) -> str | None:
        report = received.get(eid)
        if report:
            received[eid] = None
            received_dirty.add(eid)
        return report

    def credit(eid: str, day_now: str) -> None:
        """A resolution of a case opened here by a report, credited to that report's day
        and hour buckets and centre: so in every bucket and centre it counts only among the
        reports counted there. Buckets past their life (or before a rebuild's first day)
        get nothing, and a credit never extends a bucket's life."""
        report = forget_report(eid)
        if not report:
            return
        hour, _, centre = report.partition("|")
        rci, day = topo.index.get(centre), hour[:8]
        if rci is None or (count_from and day < count_from):
            return
        age_s = max(0, _ordinal(day_now) - _ordinal(day)) * DAY_S
        for kind, bucket, life in (("d", day, limits.ttl_day), ("h", hour, limits.ttl_hour)):
            left = life - age_s
            if left > 0:
                counted.append((kind, bucket, rci, RESOLVED_OF_REPORTED))
                credit_ttl[(kind, bucket)] = max(credit_ttl.get((kind, bucket), 0), left)

    def close(eid: str, ts: int) -> None:
        """A tombstone: the case never opens here again while counts are kept."""
        if closed.get(eid) is None:
            closed[eid] = ts
            closed_add[eid] = ts
        opened[eid] = None

    def leave(eid: str, chain, keep=()) -> None:
        gone = tuple(c for c in chain if c not in keep)
        gauge_chain.append((gone, "open", -1))
        for c in gone:
            zsets[due_key(shard, c)][eid] = None

    for rec in records:
        q = rec[Q]
        day = rec[DAY]
        if q:
            key = (day, q)
            if key in seen or key in batch_seen:
                out.duplicates += 1
                continue
            batch_seen.add(key)
            seen_add[day].append(q)
        out.applied += 1
        k = rec[K]
        ci = rec[CI]
        # a rebuild, before the first day it recounts: state only
        add = _skip_count if count_from and day < count_from else counted.append
        if k == "p":
            if add is _skip_count:
                continue
            pk = (day, rec[GRID])
            n = pcount.get(pk, 0) + 1
            pcount[pk] = n
            pdirty.add(pk)
            add(("d", day, ci, "patrols"))
            if n == 1:
                add(("d", day, ci, "grids_patrolled"))
            if n == ppd:
                add(("d", day, ci, "grids_patrolled_full"))
            pair = (day, f"{rec[WORKER]}|{order[ci]}")
            if pair not in workers:
                workers.add(pair)
                wk_add[day].append(pair[1])
                add(("d", day, ci, "workers_on_duty"))
        elif k == "e":
            status, eid = rec[STATUS], rec[ID]
            # the case indexes can move only on these (dispatched, handling, evaluated: never)
            if status in _MOVES and eid not in case_before:
                case_before[eid] = (cases.get(eid), info.get(eid))
            was_open = bool(cases.get(eid))
            add(("d", day, ci, status))
            if status == "reported":
                add(("d", day, ci, "cat:" + rec[CATEGORY]))
                add(("d", day, ci, "ch:" + rec[CHANNEL]))
                if rec[URGENCY] == "urgent":
                    add(("d", day, ci, "urgent"))
                add(("h", rec[HOUR], ci, "reported"))
                open_case(eid, rec[DUE], rec[CATEGORY], centres[order[ci]].chain, rec[TS],
                          f"{rec[HOUR]}|{rec[CENTRE]}")
                recent.append(json.dumps([eid, rec[CENTRE], rec[CATEGORY], rec[TS], rec[URGENCY]]))
            elif status == "resolved":
                add(("d", day, ci, f"closed:{rec[LV]}"))
                add(("h", rec[HOUR], ci, "resolved"))
                held = cases.get(eid)
                if held:
                    leave(eid, held.split("|", 2)[2].split(","))
                    cases[eid] = None
                    cases_dirty.add(eid)
                    credit(eid, day)
                close(eid, rec[TS])
            elif status == "evaluated":
                add(("d", day, ci, f"sat:{rec[SATISFIED]}"))
            elif status == "escalated":
                held = cases.get(eid)
                if held:
                    due, cat, cs = held.split("|", 2)
                    old = cs.split(",")
                    if rec[TCI] >= 0:
                        new = centres[order[rec[TCI]]].chain
                        leave(eid, old, new)
                        arrived = tuple(c for c in new if c not in old)
                        gauge_chain.append((arrived, "open", 1))
                        for c in arrived:
                            zsets[due_key(shard, c)][eid] = int(due)
                        cases[eid] = f"{due}|{cat}|{','.join(new)}"
                    else:
                        # the case moves to another shard: leave here, hand on via the outbox
                        leave(eid, old)
                        cases[eid] = None
                        forget_report(eid)  # resolved elsewhere: not credited here
                        close(eid, rec[TS])
                        v = info_of(info.get(eid))  # what the case lists carry on
                        carried = ["reported_at", v[1], "supervised", v[4],
                                   "escalated", v[5] + 1, "urgency", v[0]]
                        for name, value in (("channel", v[2]), ("summary", rec[SUMMARY] or v[6])):
                            if value:
                                carried += [name, value]
                        handoffs.append(["XADD", keys.handoff(shard), "*", "eid", eid,
                                         "centre", rec[CENTRE], "to", rec[TO], "due", due,
                                         "category", cat, "ts", rec[TS], *carried])
                    cases_dirty.add(eid)
            case_step(rec, was_open)
        elif k == "h":
            eid = rec[ID]
            if eid not in case_before:
                case_before[eid] = (cases.get(eid), info.get(eid))
            was_open = bool(cases.get(eid))
            open_case(eid, rec[DUE], rec[CATEGORY], centres[order[ci]].chain, rec[TS])
            case_step(rec, was_open)
        elif k == "c":
            cam, state, ts = rec[ID], rec[STATE], rec[TS]
            old = cams.get(cam)
            old_state, old_ts = (old.split("|") if old else (None, -1))
            if ts >= int(old_ts):
                cams[cam] = f"{state}|{ts}"
                cams_dirty.add(cam)
                if old_state != state:
                    kind = rec[CAM_KIND]
                    if old_state:
                        minus.append(("g", "", ci, "cam:" + old_state))
                        minus.append(("g", "", ci, f"cam:{old_state}:{kind}"))
                    counted.append(("g", "", ci, "cam:" + state))  # state: never skipped
                    counted.append(("g", "", ci, f"cam:{state}:{kind}"))
                    if state != "online" and old_state is not None:
                        add(("d", day, ci, "cam_failures"))
                        camfail.append(json.dumps([cam, rec[CENTRE], state, ts]))
        elif k == "t":
            add(("d", day, ci, "petitions"))
            add(("d", day, ci, "pet:" + rec[CHANNEL]))
            if rec[GROUP_F] == 1:
                add(("d", day, ci, "pet_group"))
            if rec[SKIP] == 1:
                add(("d", day, ci, "pet_skip"))
            add(("h", rec[HOUR], ci, "petitions"))

    # spread the counted figures over each centre's in-shard ancestors
    inc: dict[str, dict[str, int]] = defaultdict(dict)
    ttl: dict[str, int] = {}
    delta = Counter(counted)
    delta.subtract(minus)
    for (kind, bucket, ci, f), n in delta.items():
        for c in centres[order[ci]].chain:
            if kind == "d":
                hk = day_key(shard, bucket, c)
                life = limits.ttl_day if f != RESOLVED_OF_REPORTED else credit_ttl[(kind, bucket)]
                ttl[hk] = max(ttl.get(hk, 0), life)
            elif kind == "h":
                hk = hour_key(shard, bucket, c)
                life = limits.ttl_hour if f != RESOLVED_OF_REPORTED else credit_ttl[(kind, bucket)]
                ttl[hk] = max(ttl.get(hk, 0), life)
            else:
                hk = gauge_key(shard, c)
            h = inc[hk]
            h[f] = h.get(f, 0) + n
    for chain, f, n in gauge_chain:
        for c in chain:
            h = inc[gauge_key(shard, c)]
            h[f] = h.get(f, 0) + n

    cmds = out.commands
    for day, qs in seen_add.items():
        sk = keys.seen(shard, day)
        _bulk(cmds, ["SADD", sk], qs)
        ttl[sk] = limits.ttl_seen
    _write_hash(cmds, keys.cases(shard), cases_dirty, cases)
    _write_hash(cmds, keys.received(shard), received_dirty, received)
    if closed_add:
        _bulk(cmds, ["ZADD", keys.closed(shard)],
              [x for eid, ts in closed_add.items() for x in (ts, eid)], pairs=True)
    opens = [x for eid, ts in opened.items() if ts is not None for x in (ts, eid)]
    _bulk(cmds, ["ZADD", keys.opened(shard)], opens, pairs=True)
    _bulk(cmds, ["ZREM", keys.opened(shard)], [e for e, ts in opened.items() if ts is None])
    _write_hash(cmds, keys.camera_state(shard), cams_dirty, cams)
    by_day: dict[str, set[str]] = defaultdict(set)
    for day, grid in pdirty:
        by_day[day].add(grid)
    for day, grids in by_day.items():
        pk = keys.patrol_counts(shard, day)
        _write_hash(cmds, pk, grids, {g: str(pcount[(day, g)]) for g in grids})
        ttl[pk] = limits.ttl_seen
    for day, pairs in wk_add.items():
        wk = keys.workers_seen(shard, day)
        _bulk(cmds, ["SADD", wk], pairs)
        ttl[wk] = limits.ttl_seen
    _case_commands(cmds, keys, shard, limits, case_before, cases, info, info_dirty, rec_set,
                   rec_inc, rec_ttl, zsets, ttl)
    for zk, members in zsets.items():
        adds: list = []
        rems = []
        for m, score in members.items():
            if score is None:
                rems.append(m)
            else:
                adds.extend((score, m))
        _bulk(cmds, ["ZADD", zk], adds, pairs=True)
        _bulk(cmds, ["ZREM", zk], rems)
    for hk, fields in inc.items():
        flat = [x for f, n in fields.items() if n for x in (f, n)]
        if flat:
            _bulk(cmds, ["HINCRBYMANY", hk], flat, pairs=True)
    cmds.extend(handoffs)
    for lk, items in ((keys.recent_cases(shard), recent), (keys.camera_failures(shard), camfail)):
        if items:
            _bulk(cmds, ["LPUSH", lk], items)
            cmds.append(["LTRIM", lk, 0, limits.recent_max - 1])
    for k_, t in ttl.items():
        cmds.append(["EXPIRE", k_, t])
    return out


def _case_commands(cmds: list, keys: Keys, shard: str, limits: Limits,
                   case_before: dict[str, tuple[str | None, str | None]],
                   cases: dict[str, str | None], info: dict[str, str | None],
                   info_dirty: set[str], rec_set: dict[str, dict], rec_inc: dict[str, dict],
                   rec_ttl: set[str], zsets: dict[str, dict[str, int | None]],
                   ttl: dict[str, int]) -> None:
    """The writes of the cases behind the figures: each touched case's record and timeline,
    the open cases' info, and the case indexes moved from the state before the batch to the
    state after it (so a case touched many times in a batch moves once)."""
    _write_hash(cmds, keys.case_info(shard), info_dirty, info)
    open_ttl = limits.ttl_case_open or 4 * limits.ttl_day
    for eid, fields in rec_set.items():
        ck = keys.case(shard, eid)
        _bulk(cmds, ["HSET", ck], [x for item in fields.items() for x in item], pairs=True)
        inc = rec_inc.get(eid)
        if inc:
            cmds.append(["HINCRBYMANY", ck, *(x for item in inc.items() for x in item)])
        if eid in rec_ttl:
            ttl[ck] = open_ttl if cases.get(eid) else limits.ttl_day
    index = keys.case_index
    for eid, (held0, info0) in case_before.items():
        old = case_members(held0, info0)
        new = case_members(cases.get(eid), info.get(eid))
        for (kind, c), score in new.items():
            if old.get((kind, c)) != score:
                zsets[index(shard, kind, c)][eid] = score
        for kind, c in old.keys() - new.keys():
            zsets[index(shard, kind, c)][eid] = None


@lru_cache(maxsize=512)
def _ordinal(day: str) -> int:
    """'YYYYmmdd' → a day number."""
    return date(int(day[:4]), int(day[4:6]), int(day[6:8])).toordinal()


def _skip_count(_item: tuple) -> None:
    """`add` for entries whose day a rebuild does not recount."""


def _bulk(cmds: list, head: list, members: list, pairs: bool = False) -> None:
    step = CHUNK * (2 if pairs else 1)
    for i in range(0, len(members), step):
        cmds.append([*head, *members[i:i + step]])


def _write_hash(cmds: list, key: str, dirty, values: dict) -> None:
    sets: list = []
    dels = []
    for name in dirty:
        v = values.get(name)
        if v:
            sets.extend((name, v))
        else:
            dels.append(name)
    _bulk(cmds, ["HSET", key], sets, pairs=True)
    _bulk(cmds, ["HDEL", key], dels)


def tail_commands(keys: Keys, shard: str, dead: list[list], acks: dict[str, list],
                  limits: Limits, now_ms: int, applied: int, duplicates: int,
                  max_ts: int) -> list[list]:
    """Dead letters (each the bounded field list of `contract.dead_letter`), the XACKs (the
    batch's guards, see fenced_write.lua) and the shard's meta (version) at the end of a
    batch."""
    cmds: list[list] = []
    for fields in dead:
        cmds.append(["XADD", keys.dead(shard), "MAXLEN", "~", limits.dead_max, "*", *fields])
    for stream, ids in acks.items():
        _bulk(cmds, ["!XACK", stream, GROUP], ids)
    meta = keys.meta(shard)
    if dead:
        cmds.append(["HINCRBY", meta, "dead", len(dead)])
    if duplicates:
        cmds.append(["HINCRBY", meta, "duplicates", duplicates])
    cmds.append(["HSET", meta, "applied_at", now_ms])
    if max_ts:
        cmds.append(["HMAXLAST", meta, "last_ts", max_ts])
    cmds.append(["HINCRBY", meta, "version", 1])
    return cmds


def producer_commands(keys: Keys, shard: str, accepted: dict[str, list[int]],
                      refused: dict[tuple[str, str], int], now_ms: int) -> list[list]:
    """The per-producer figures of a batch (`Keys.producer_stats`), for its own fenced write:
    `accepted` {name: [entries, newest ts]}, `refused` {(name, reason class): dead letters}.
    Counters add up (HINCRBYMANY), `last_ts` only grows (HMAXLAST), `applied_at` and `lag_ms`
    (applied_at − the batch's newest ts of that producer, never below 0) are set."""
    if not accepted and not refused:
        return []
    key = keys.producer_stats(shard)
    counts: list = []
    for name, (n, _ts) in accepted.items():
        counts += (f"{name}|accepted", n)
    for (name, cls), n in refused.items():
        counts += (f"{name}|dead|{cls}", n)
    cmds: list[list] = []
    _bulk(cmds, ["HINCRBYMANY", key], counts, pairs=True)
    sets: list = []
    for name, (_n, ts) in accepted.items():
        sets += (f"{name}|applied_at", now_ms, f"{name}|lag_ms", max(0, now_ms - ts))
        cmds.append(["HMAXLAST", key, f"{name}|last_ts", ts])
    _bulk(cmds, ["HSET", key], sets, pairs=True)
    return cmds


def expire_commands(keys: Keys, shard: str, topo: Topology, eids: list[str],
                    held: list[str | None], now_ms: int, limits: Limits) -> list[list]:
    """Close open cases that have been open longer than the case age limit: they leave the
    open count and the deadline sets, get a tombstone, and are counted in the shard's meta
    (`expired`). The ZREM from `opened` is the guard: a retried call changes nothing."""
    cmds: list[list] = [["!ZREM", keys.opened(shard), *eids]]
    minus: dict[str, int] = defaultdict(int)
    dues: dict[str, list[str]] = defaultdict(list)
    gone = []
    for eid, value in zip(eids, held, strict=True):
        if not value:
            continue  # not open any more (or never was): only the age entry goes
        chain = value.split("|", 2)[2].split(",")
        for c in chain:
            if c in topo.centres:
                minus[c] += 1
                dues[c].append(eid)
        gone.append(eid)
    if gone:
        _bulk(cmds, ["HDEL", keys.cases(shard)], gone)
        _bulk(cmds, ["HDEL", keys.received(shard)], gone)
        _bulk(cmds, ["ZADD", keys.closed(shard)], [x for e in gone for x in (now_ms, e)],
              pairs=True)
    for c, n in minus.items():
        cmds.append(["HINCRBYMANY", keys.gauge(shard, c), "open", -n])
        _bulk(cmds, ["ZREM", keys.due(shard, c)], dues[c])
        for kind in INDEX_KINDS:  # the case indexes (issue 10): ZREM of a non-member is a no-op
            _bulk(cmds, ["ZREM", keys.case_index(shard, kind, c)], dues[c])
    meta = keys.meta(shard)
    if gone:
        _bulk(cmds, ["HDEL", keys.case_info(shard)], gone)
        for e in gone:  # the record stays openable for the day figures' life
            cmds.append(["HSET", keys.case(shard, e), "open", 0, "closed_at", now_ms,
                         "expired", 1])
            cmds.append(["EXPIRE", keys.case(shard, e), limits.ttl_day])
        cmds.append(["HINCRBY", meta, "expired", len(gone)])
    cmds.append(["HINCRBY", meta, "version", 1])
    return cmds
