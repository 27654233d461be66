"""The cases behind every figure (issue 10): case lists, the case card, and 督办.

Everything here reads what the aggregator keeps in its fenced step (`datasources/rollup.py`):
per shard the open cases (`keys.cases`: due, category, in-shard chain), what the lists need
of them (`keys.case_info`), per centre the indexes of open, escalated and supervised cases
(`keys.case_index`, scored urgent first then newest) beside the deadline set (`keys.due`),
and per case its record and timeline (`keys.case`), kept the day figures' life after it
closed. A list reads a bounded number of members per shard head of the centre (never a
stream, never the history); the city merges its shards' tops. 督办 is written as an event
entry like any producer's, so the aggregator counts it exactly once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis

from datasources.contract import MAX_ID, MAX_TEXT, STATUS_FILTERS, STATUSES
from datasources.keys import Keys
from datasources.rollup import URGENT_RANK, info_of, step_of
from datasources.topology import Topology

MAX_LIMIT = 1000
# urgent / escalated / supervised lists sort at most this many of a head's newest members
# (overdue first needs each one's deadline); open and overdue read at most 2 x limit
FILTER_CAP = 5000
SRC = "pingan-console"


class CaseError(ValueError):
    """A request about a case that cannot be served (the message says why)."""


@dataclass(frozen=True)
class CaseRow:
    eid: str
    category: str
    channel: str
    urgency: str
    centre: str  # the current owner
    tier: int  # the owner's level: 0 province … 4 community/village (-1: no longer registered)
    status: str  # the last transition
    reported_at: int  # ms (0: unknown, e.g. opened before the record existed)
    due: int  # ms
    overdue_ms: int  # >= 0; 0 when not overdue or closed
    supervised: int
    escalated: int
    summary: str
    open: bool
    shard: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CaseList:
    code: str
    status: str
    total: int
    cases: tuple[CaseRow, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "status": self.status, "total": self.total,
                "cases": [c.to_dict() for c in self.cases]}


@dataclass(frozen=True)
class Step:
    status: str
    ts: int
    centre: str
    to: str  # "" unless escalated
    by: str  # "" unless supervised
    note: str
    summary: str
    user: str
    spent_ms: int  # since the previous step
    over_ms: int  # the part of this step after the case's due (> 0: it ended late)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CaseCard:
    row: CaseRow
    steps: tuple[Step, ...]
    closed_at: int  # ms, 0 while open

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row.to_dict(), "steps": [s.to_dict() for s in self.steps],
                "closed_at": self.closed_at}


def _text(v: bytes | str | None) -> str:
    if v is None:
        return ""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _int(v: object) -> int:
    try:
        return int(_text(v))  # type: ignore[arg-type]
    except ValueError:
        return 0


def _heads(topo: Topology, code: str) -> list[tuple[str, str]]:
    """(shard, centre) whose in-shard indexes together hold `code`'s subtree."""
    return [(topo.centres[h].shard, h) for h in topo.shard_heads(code)]


def _queue_count(pipe, keys: Keys, shard: str, head: str, status: str, now_ms: int) -> None:
    """Queue on `pipe` the count of `status`'s cases under `head` in `shard` (one reply): the
    one definition of each filter's total, for the lists and the tabs' counts."""
    if status == "open":  # every open case (also any not yet indexed)
        pipe.zcard(keys.due(shard, head))
    elif status == "overdue":
        pipe.zcount(keys.due(shard, head), "-inf", now_ms - 1)
    elif status == "urgent":
        pipe.zcount(keys.case_index(shard, "open", head), URGENT_RANK, "+inf")
    else:
        pipe.zcard(keys.case_index(shard, "esc" if status == "escalated" else "sup", head))


def count_cases(r: redis.Redis, topo: Topology, keys: Keys, code: str,
                now_ms: int) -> dict[str, int]:
    """How many cases each of STATUS_FILTERS holds under `code` (the `total` of each list), in
    one pipelined round of counts (no member is read)."""
    if code not in topo.centres:
        raise CaseError(f"unknown centre: {code}")
    heads = _heads(topo, code)
    pipe = r.pipeline(transaction=False)
    for shard, head in heads:
        for status in STATUS_FILTERS:
            _queue_count(pipe, keys, shard, head, status, now_ms)
    replies = iter(pipe.execute())
    out = dict.fromkeys(STATUS_FILTERS, 0)
    for _head in heads:
        for status in STATUS_FILTERS:
            out[status] += int(next(replies))
    return out


def list_cases(r: redis.Redis, topo: Topology, keys: Keys, code: str, status: str = "open",
               limit: int = 100, now_ms: int = 0) -> CaseList:
    """The open cases of `code` and its subtree matching `status` (STATUS_FILTERS), overdue
    first (most overdue first), then urgent, then newest; `total` counts them all.

    Three pipelined rounds over the shard heads of `code`: the tops of the indexes (at most
    `limit` overdue and 2 x `limit` by rank per head for open and overdue; at most FILTER_CAP
    members per head for the other filters), their deadlines, then the rows of the `limit`
    cases kept. The overdue part of a head's top `limit` is enough: the merged list holds at
    most `limit` overdue cases."""
    if code not in topo.centres:
        raise CaseError(f"unknown centre: {code}")
    if status not in STATUS_FILTERS:
        raise CaseError(f"unknown status filter: {status} (one of {', '.join(STATUS_FILTERS)})")
    try:
        limit = max(1, min(int(limit), MAX_LIMIT))
    except (TypeError, ValueError):
        raise CaseError(f"bad limit: {str(limit)[:20]!r}") from None
    heads = _heads(topo, code)
    idx = keys.case_index
    pipe = r.pipeline(transaction=False)
    for shard, head in heads:
        if status in ("open", "overdue"):
            pipe.zrangebyscore(keys.due(shard, head), "-inf", now_ms - 1, start=0, num=limit,
                               withscores=True)
        if status == "open":
            pipe.zrevrange(idx(shard, "open", head), 0, 2 * limit - 1, withscores=True)
        elif status == "urgent":
            pipe.zrevrangebyscore(idx(shard, "open", head), "+inf", URGENT_RANK, start=0,
                                  num=FILTER_CAP, withscores=True)
        elif status != "overdue":
            kind = "esc" if status == "escalated" else "sup"
            pipe.zrevrange(idx(shard, kind, head), 0, FILTER_CAP - 1, withscores=True)
        _queue_count(pipe, keys, shard, head, status, now_ms)
    replies = iter(pipe.execute())
    total = 0
    picked: list[tuple] = []  # (order key, shard, eid)
    ranked: list[tuple[str, str, list]] = []  # (shard, head, [(eid, rank)]): deadlines needed
    for shard, head in heads:
        if status in ("open", "overdue"):
            picked += [((0, int(d), e), shard, e) for e, d in
                       ((_text(m), score) for m, score in next(replies))]
        top = next(replies) if status != "overdue" else None
        total += next(replies)
        if top:
            ranked.append((shard, head, [(_text(m), int(score)) for m, score in top]))
    if ranked:
        pipe = r.pipeline(transaction=False)
        for shard, head, members in ranked:
            pipe.execute_command("ZMSCORE", keys.due(shard, head), *(e for e, _ in members))
        for (shard, _head, members), dues in zip(ranked, pipe.execute(), strict=True):
            for (eid, rank), d in zip(members, dues, strict=True):
                if d is None:
                    continue  # closed since the index was read
                due = int(float(d))
                if due >= now_ms:
                    picked.append(((1, -rank, eid), shard, eid))
                elif status != "open":  # open: its overdue cases came from `due` above
                    picked.append(((0, due, eid), shard, eid))
    picked.sort(key=lambda x: x[0])
    picked = picked[:limit]
    wanted: dict[str, list[str]] = {}
    for _key, shard, eid in picked:
        wanted.setdefault(shard, []).append(eid)
    pipe = r.pipeline(transaction=False)
    for shard, eids in wanted.items():
        pipe.hmget(keys.cases(shard), eids)
        pipe.hmget(keys.case_info(shard), eids)
    replies = iter(pipe.execute())
    rows: dict[tuple[str, str], CaseRow] = {}
    for shard, eids in wanted.items():
        held, infos = next(replies), next(replies)
        for eid, h, i in zip(eids, held, infos, strict=True):
            row = _open_row(topo, shard, eid, _text(h), i, now_ms)
            if row is not None:
                rows[(shard, eid)] = row
    out = tuple(rows[(shard, eid)] for _key, shard, eid in picked if (shard, eid) in rows)
    return CaseList(code, status, total, out)


def _open_row(topo: Topology, shard: str, eid: str, held: str, info, now_ms: int
              ) -> CaseRow | None:
    """An open case's row from its `cases` value ('due|category|chain') and info."""
    parts = held.split("|", 2)
    if len(parts) < 3:
        return None  # closed since the index was read (or a value someone else wrote)
    due, category, chain = _int(parts[0]), parts[1], parts[2].split(",")
    owner = chain[0]
    v = info_of(info)
    c = topo.centres.get(owner)
    return CaseRow(eid=eid, category=category, channel=v[2], urgency=v[0], centre=owner,
                   tier=c.level if c else -1, status=v[3] or "reported", reported_at=v[1],
                   due=due, overdue_ms=max(0, now_ms - due) if due < now_ms else 0,
                   supervised=v[4], escalated=v[5], summary=v[6], open=True, shard=shard)


def _ok_eid(eid: object) -> bool:
    return isinstance(eid, str) and 0 < len(eid) <= MAX_ID and eid.isprintable()


def _records(r: redis.Redis, topo: Topology, keys: Keys, eid: str
             ) -> list[tuple[str, dict[str, str], str]]:
    """(shard, record, open `cases` value) of every shard that knows the case."""
    pipe = r.pipeline(transaction=False)
    for shard in topo.shards:
        pipe.hgetall(keys.case(shard, eid))
        pipe.hget(keys.cases(shard), eid)
    replies = iter(pipe.execute())
    out = []
    for shard in topo.shards:
        rec, held = next(replies), next(replies)
        if rec or held:
            out.append((shard, {_text(k): _text(v) for k, v in rec.items()}, _text(held)))
    return out


def _current(found: list[tuple[str, dict[str, str], str]]) -> tuple[str, dict[str, str], str]:
    """The shard where the case is now: where it is open, else where it moved last."""
    for item in found:
        if item[2]:
            return item
    return max(found, key=lambda x: (_int(x[1].get("closed_at")), _last_ts(x[1])))


def _last_ts(rec: dict[str, str]) -> int:
    """When the record's latest transition happened (its step fields are `s|<ts>|…`)."""
    return max((_int(k.split("|", 2)[1]) for k in rec if k.startswith("s|")), default=0)


def case_centre(r: redis.Redis, topo: Topology, keys: Keys, eid: str) -> str | None:
    """The case's current owner (for scope checks), or None when unknown or past retention."""
    if not _ok_eid(eid):
        return None
    found = _records(r, topo, keys, eid)
    if not found:
        return None
    _shard, rec, held = _current(found)
    return held.split("|", 2)[2].split(",")[0] if held.count("|") >= 2 else (
        rec.get("centre") or None)


def case_card(r: redis.Redis, topo: Topology, keys: Keys, eid: str, now_ms: int
              ) -> CaseCard | None:
    """The case's whole life: its row and every transition (merged over the shards it went
    through), with the time spent at each step against its deadline. None: unknown, or past
    the retention window."""
    if not _ok_eid(eid):
        return None
    found = _records(r, topo, keys, eid)
    if not found:
        return None
    shard, rec, held = _current(found)
    steps: dict[str, dict] = {}
    reported_at = 0
    for _s, other, _h in found:
        for name, value in other.items():
            if name.startswith("s|"):
                step = step_of(value)
                if step:
                    steps[name] = step
        at = _int(other.get("reported_at"))
        if at and (not reported_at or at < reported_at):
            reported_at = at
    is_open = bool(held)
    if held.count("|") >= 2:
        d, category, chain = held.split("|", 2)
        due, owner = _int(d), chain.split(",")[0]
    else:
        due, category, owner = _int(rec.get("due")), rec.get("category", ""), rec.get("centre", "")
    due = due or max((_int(o.get("due")) for _s, o, _h in found), default=0)
    info = info_of(r.hget(keys.case_info(shard), eid)) if is_open else None
    last = max(steps.values(), key=_step_ts, default={})
    c = topo.centres.get(owner)
    summary = (info[6] if info else "") or next(
        (s.get("summary", "") for s in sorted(steps.values(), key=_step_ts, reverse=True)
         if s.get("summary")), "")
    row = CaseRow(
        eid=eid, category=category or rec.get("category", ""),
        channel=rec.get("channel", "") or (info[2] if info else ""),
        urgency=rec.get("urgency", "") or (info[0] if info else "normal"), centre=owner,
        tier=c.level if c else -1, status=last.get("status", "") or (info[3] if info else ""),
        reported_at=reported_at or (info[1] if info else 0), due=due,
        overdue_ms=max(0, now_ms - due) if is_open and due and due < now_ms else 0,
        supervised=_int(rec.get("supervised")), escalated=_int(rec.get("escalated")),
        summary=summary, open=is_open, shard=shard)
    closed_at = 0 if is_open else max(_int(o.get("closed_at")) for _s, o, _h in found)
    out: list[Step] = []
    prev = None
    for s in sorted(steps.values(), key=_step_ts):
        ts = _int(s.get("ts"))
        spent = ts - prev if prev is not None else 0
        start = prev if prev is not None else ts
        over = max(0, ts - max(due, start)) if due else 0
        out.append(Step(status=str(s.get("status", "")), ts=ts, centre=str(s.get("centre", "")),
                        to=str(s.get("to", "")), by=str(s.get("by", "")),
                        note=str(s.get("note", "")), summary=str(s.get("summary", "")),
                        user=str(s.get("user", "")), spent_ms=max(0, spent), over_ms=over))
        prev = ts
    return CaseCard(row=row, steps=tuple(out), closed_at=closed_at)


_STEP_ORDER = {s: i for i, s in enumerate(STATUSES)}  # steps of one ms: lifecycle order


def _step_ts(step: dict) -> tuple[int, int]:
    return _int(step.get("ts")), _STEP_ORDER.get(str(step.get("status")), 9)


def _plain(text: str, limit: int, what: str) -> str:
    """User text as the contract takes it: whitespace runs become one space; printable;
    at most `limit` characters."""
    text = " ".join(str(text).split())
    if not text.isprintable():
        raise CaseError(f"{what} has characters that cannot be stored")
    if len(text) > limit:
        raise CaseError(f"{what} is too long ({len(text)} > {limit} characters)")
    return text


def supervise(r: redis.Redis, topo: Topology, keys: Keys, eid: str, by: str, note: str,
              user: str, now_ms: int) -> str:
    """督办: write a `supervised` event entry for an open case to its shard's events stream
    (src pingan-console) and return the entry id. The aggregator applies it exactly once (its
    key holds `ts` and `by`: a retried XADD of the same entry counts once)."""
    if not _ok_eid(eid):
        raise CaseError("unknown case")
    note = _plain(note, MAX_TEXT, "note")
    user = _plain(user, MAX_ID, "user")
    pipe = r.pipeline(transaction=False)
    for shard in topo.shards:
        pipe.hget(keys.cases(shard), eid)
    for shard, held in zip(topo.shards, pipe.execute(), strict=True):
        value = _text(held)
        if value.count("|") >= 2:
            _due, category, chain = value.split("|", 2)
            owner, target = chain.split(",")[0], shard
            break
    else:
        raise CaseError(f"unknown or closed case: {eid}")
    if by not in topo.centres or by == owner or not topo.is_within(owner, by):
        raise CaseError(f"{by} is not above the case's centre {owner}")
    fields = {"v": "1", "ts": str(int(now_ms)), "src": SRC, "eid": eid,
              "status": "supervised", "centre": owner, "category": category, "by": by}
    if note:
        fields["note"] = note
    if user:
        fields["user"] = user
    return _text(r.xadd(keys.stream(target, "events"), fields))
