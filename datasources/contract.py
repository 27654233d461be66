"""Stream contract v1: validation of raw stream entries (see docs/STREAMS.md).

`validate(kind, fields, shard, topo, clock, arrived_ms)` turns the fields of one entry into a
compact record for the aggregator, or raises `InvalidEntry` with the reason that goes to the
dead-letter stream; `dead_letter` is the bounded copy of an entry that goes there. Pure
functions: no Redis here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from datasources.registry import LEVELS
from datasources.topology import Topology
from datasources.vocabulary import DEFAULT

VERSIONS = ("1",)
STATUSES = ("reported", "dispatched", "handling", "resolved", "evaluated", "escalated",
            "supervised")
URGENCIES = ("normal", "urgent")
CAMERA_STATES = ("online", "offline", "fault")
# The region's vocabularies (categories, event and petition channels, camera kinds) are the
# registry's (`topo.vocab`, datasources/vocabulary.py); these names are the defaults', for
# what only ever produces the default codes (the simulator, benches, tests).
CATEGORIES = DEFAULT.codes("category")
EVENT_CHANNELS = DEFAULT.codes("event_channel")
PETITION_CHANNELS = DEFAULT.codes("petition_channel")
CAMERA_KINDS = DEFAULT.codes("camera_kind")
# The tiers a case is closed at, from the bottom up (the read model's closed_at_level): the
# registry's level names (`closed_tiers`: those of one region).
CLOSED_LEVELS = tuple(LEVELS[n] for n in sorted(LEVELS, reverse=True))
# ---- cases behind the figures (issue 10, helper CASES) ----
# the filters of a case list (datasources/cases.py), in the order the screens offer them
STATUS_FILTERS = ("open", "overdue", "urgent", "escalated", "supervised")
MAX_TEXT = 200  # `summary` (any event) and `note` (supervised): plain text, characters
# ---- end cases ----

MAX_ID = 64
MAX_VALUE = 256
MAX_FIELDS = 32
MIN_TS = 946_684_800_000  # 2000-01-01
# a dead letter copies at most this many of the entry's fields, each name and value cut to
# DEAD_VALUE_MAX bytes; the whole entry is summarised by its field count, size and SHA-1
DEAD_FIELDS_MAX = 32
DEAD_VALUE_MAX = 1024
_BLOCK_MS = 900_000  # every UTC offset in use is a multiple of 15 minutes

_VERSIONS = frozenset(VERSIONS)
_STATUSES = frozenset(STATUSES)
_URGENCIES = frozenset(URGENCIES)
_CAMERA_STATES = frozenset(CAMERA_STATES)


def closed_tiers(topo: Topology, code: str) -> tuple[tuple[int, str], ...]:
    """(level, name) of the tiers a case of `code`'s region may be closed at, bottom up: from
    the village to the region's root (a city-rooted region has no province tier, a
    county-rooted one no city tier either). O(depth)."""
    top = topo.centres[topo.ancestors(code)[0]].level
    return tuple((lv, LEVELS[lv]) for lv in sorted(LEVELS, reverse=True) if lv >= top)


class InvalidEntry(ValueError):
    """An entry that breaks the contract; the message is the dead-letter reason."""


@dataclass
class Clock:
    """The time rules of one batch: `now_ms` (the aggregator's clock), how late after its
    arrival and how far ahead of it an entry's `ts` may be, and local day/hour bucket names.

    Bucket names are cached per 15-minute block of UTC, the finest granularity of any time
    zone offset (India's +05:30, Nepal's +05:45), so a half-hour zone's hour boundary never
    falls inside a cached block."""

    tz: ZoneInfo
    now_ms: int
    lateness_ms: int = 48 * 3_600_000
    skew_ms: int = 300_000
    _cache: dict[int, tuple[str, str]] = field(default_factory=dict, repr=False)

    def buckets(self, ts: int) -> tuple[str, str]:
        b = ts // _BLOCK_MS
        got = self._cache.get(b)
        if got is None:
            dt = datetime.fromtimestamp(b * (_BLOCK_MS // 1000), self.tz)
            got = (dt.strftime("%Y%m%d"), dt.strftime("%Y%m%d%H"))
            self._cache[b] = got
        return got

    def arrival(self, entry_id: str) -> int:
        """When an entry arrived: its stream id's time, but never later than now (a producer
        may choose ids, and one far-future id makes every later automatic id follow it)."""
        ms = entry_id.split("-", 1)[0]
        return min(int(ms), self.now_ms) if ms.isdigit() else self.now_ms

    def check_ts(self, ts: int, arrived_ms: int, late: bool = True) -> None:
        if ts < MIN_TS:
            raise InvalidEntry(f"ts out of range: {ts}")
        if ts > arrived_ms + self.skew_ms:
            raise InvalidEntry(f"ts in the future: {ts} is {(ts - arrived_ms) // 1000} s after "
                               f"its arrival (limit {self.skew_ms // 1000} s)")
        if late and arrived_ms - ts > self.lateness_ms:
            raise InvalidEntry(f"too late: ts {ts} is {(arrived_ms - ts) // 3_600_000} h before "
                               f"its arrival (limit {self.lateness_ms // 3_600_000} h)")


# A validated entry is a flat tuple (fast to build and to index).
FIELDS = (
    "k", "id", "ts", "day", "hour", "centre", "ci", "lv", "q", "status", "category",
    "channel", "urgency", "due", "satisfied", "to", "tci", "grid", "worker", "state",
    "cam_kind", "group", "skip",
    # issue 10 (appended, indices above never shift): the event's `summary`; on `supervised`
    # its `by`, `note` and `user`; on a hand-in, what the case carries from the shard it left
    # ("reported_at|supervised|escalated|urgency|channel", see `carry_of`)
    "summary", "by", "note", "user", "carry",
)
# kinds: e event transition, h case handed on from another shard, p patrol, c camera,
# t petition. ci / tci: topology index of the chain's owner (`centre`, or `to` for h) and of
# `to` when it is in the same shard (-1 otherwise). q: idempotency key ("" for cameras).


def decode_fields(fields: Mapping[bytes, bytes]) -> dict[str, str]:
    """Raw stream fields as text; bytes that are not UTF-8 survive as surrogates, so that
    validation can name them and `encode_fields` can restore them exactly."""
    return {k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
            for k, v in fields.items()}


def encode_fields(fields: Mapping[str, str]) -> dict[bytes, bytes]:
    return {k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape")
            for k, v in fields.items()}


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def entry_digest(pairs: Iterable[tuple[str, str]]) -> tuple[int, int, str]:
    """(fields, bytes, SHA-1) of an entry: the SHA-1 of `<len>:<name><len>:<value>` for every
    field in order, concatenated (docs/STREAMS.md §7)."""
    h = hashlib.sha1()
    n = size = 0
    for k, v in pairs:
        kb, vb = _raw(k), _raw(v)
        n += 1
        size += len(kb) + len(vb)
        h.update(b"%d:%b%d:%b" % (len(kb), kb, len(vb), vb))
    return n, size, h.hexdigest()


def _cut(text: str) -> str:
    raw = _raw(text)
    return text if len(raw) <= DEAD_VALUE_MAX else raw[:DEAD_VALUE_MAX].decode(
        "utf-8", "surrogateescape")


def dead_letter(stream: str, entry_id: str, reason: str,
                pairs: list[tuple[str, str]]) -> list[str | bytes]:
    """The fields of a dead letter (docs/STREAMS.md §7): who and why, the entry's size and
    SHA-1, then its first `DEAD_FIELDS_MAX` fields with names and values cut to
    `DEAD_VALUE_MAX` bytes. Bounded whatever the entry's size."""
    n, size, digest = entry_digest(pairs)
    kept = pairs[:DEAD_FIELDS_MAX]
    copied = [(_cut(k), _cut(v)) for k, v in kept]
    truncated = n > len(copied) or copied != kept
    out: list[str | bytes] = [
        "stream", stream, "entry", entry_id, "reason", reason, "nfields", str(n),
        "nbytes", str(size), "sha1", digest, "truncated", "1" if truncated else "0"]
    for k, v in copied:
        out += (_raw(k), _raw(v))  # bytes intact, also those that are not UTF-8
    return out


def _has_surrogate(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _reason(f: Mapping[str, str]) -> str:
    """The precise reason for an entry that failed the fast checks of `validate`."""
    for k, v in f.items():
        if _has_surrogate(k + v):
            name = k.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            return f"invalid UTF-8 in field: {name}"
    for k, v in f.items():
        if len(v) > MAX_VALUE:
            return f"value too long: {k} ({len(v)} > {MAX_VALUE} characters)"
    for k, v in f.items():
        if not (k + v).isprintable():
            return f"control characters in field: {k!r}"
    return "malformed entry"


def _need(f: dict, name: str) -> str:
    v = f.get(name)
    if not v:
        raise InvalidEntry(f"missing field: {name}")
    return v


def _id(f: dict, name: str) -> str:
    v = _need(f, name)
    if len(v) > MAX_ID:
        raise InvalidEntry(f"value too long: {name} ({len(v)} > {MAX_ID} characters)")
    return v


def _one_of(f: dict, name: str, allowed: frozenset[str]) -> str:
    v = _need(f, name)
    if v not in allowed:
        raise InvalidEntry(f"bad {name}: {v[:MAX_ID]!r}")
    return v


def _int(f: dict, name: str) -> int:
    v = _need(f, name)
    if len(v) > 16 or not v.isdigit() or not v.isascii():
        raise InvalidEntry(f"not an integer: {name}")
    return int(v)


def _flag(f: dict, name: str) -> int:
    v = f.get(name)
    if v not in ("0", "1"):
        raise InvalidEntry(f"bad {name}: expected 0 or 1")
    return int(v)


def _centre(f: dict, name: str, topo: Topology) -> str:
    code = _id(f, name)
    if code not in topo.centres:
        raise InvalidEntry(f"unknown centre: {code}")
    return code


def _in_shard(code: str, shard: str, topo: Topology, what: str = "centre",
              name: str | None = None) -> None:
    actual = topo.centres[code].shard
    if actual != shard:
        raise InvalidEntry(
            f"wrong shard: {what} {name or code} belongs to shard {actual}, not {shard}")


def validate(
    kind: str, f: Mapping[str, str], shard: str, topo: Topology, clock: Clock,
    arrived_ms: int | None = None,
) -> tuple:
    """Validate one entry of `kind` read from `shard`'s stream; return its record (FIELDS).

    `f` is the entry's fields as text (see `decode_fields`); `arrived_ms` when it arrived
    (`Clock.arrival` of its stream id; default: now)."""
    if len(f) > MAX_FIELDS:
        raise InvalidEntry(f"too many fields: {len(f)} > {MAX_FIELDS}")
    text = "".join(f.values())
    if not text.isprintable() or (
        len(text) > MAX_VALUE and max(map(len, f.values())) > MAX_VALUE
    ) or not "".join(f).isprintable():
        raise InvalidEntry(_reason(f))
    v = f.get("v")
    if v is None:
        raise InvalidEntry("missing field: v")
    if v not in _VERSIONS:
        raise InvalidEntry(f"unsupported version v={v[:16]!r}")
    ts = _int(f, "ts")
    # a hand-over carries the time of an escalation already accepted in its source shard,
    # however long the forward took: only the future and the far past are refused there
    clock.check_ts(ts, clock.now_ms if arrived_ms is None else arrived_ms,
                   late=kind != "handin")
    _id(f, "src")
    day, hour = clock.buckets(ts)
    index = topo.index
    if kind == "events":
        return _event(f, shard, topo, ts, day, hour)
    if kind == "handin":
        return _handin(f, shard, topo, ts, day, hour)
    if kind == "patrols":
        pid = _id(f, "pid")
        grid = _id(f, "grid")
        centre = topo.grid_centre.get(grid)
        if centre is None:
            raise InvalidEntry(f"unknown grid: {grid}")
        _in_shard(centre, shard, topo, "grid", grid)
        worker = _id(f, "worker")
        return ("p", pid, ts, day, hour, centre, index[centre], topo.centres[centre].level,
                "p|" + pid, "", "", "", "", 0, -1, "", -1, grid, worker, "", "", 0, 0,
                "", "", "", "", "")
    if kind == "cameras":
        cam = _id(f, "cam")
        found = topo.camera.get(cam)
        if found is None:
            raise InvalidEntry(f"unknown camera: {cam}")
        centre, cam_kind = found
        _in_shard(centre, shard, topo, "camera", cam)
        state = _one_of(f, "state", _CAMERA_STATES)
        return ("c", cam, ts, day, hour, centre, index[centre], topo.centres[centre].level,
                "", "", "", "", "", 0, -1, "", -1, "", "", state, cam_kind, 0, 0,
                "", "", "", "", "")
    if kind == "petitions":
        pid = _id(f, "pid")
        centre = _centre(f, "centre", topo)
        _in_shard(centre, shard, topo)
        channel = _one_of(f, "channel", topo.vocab.petition_channels)
        group = _flag(f, "group")
        skip = _flag(f, "skip_level")
        return ("t", pid, ts, day, hour, centre, index[centre], topo.centres[centre].level,
                "t|" + pid, "", "", channel, "", 0, -1, "", -1, "", "", "", "", group, skip,
                "", "", "", "", "")
    raise InvalidEntry(f"unknown kind: {kind}")


@dataclass(frozen=True)
class ShardLookup:
    """What `validate_fast` looks up per entry, for one shard, one dict access each: the
    shard's centres (index, level, in-shard chain), its grids and its cameras (with their
    centre's index and level), and the region's vocabulary (`topo.vocab`'s code sets). Only
    ids within `MAX_ID` are in it, so a hit is a valid id."""

    centres: dict[str, tuple[int, int, tuple[str, ...]]]
    grids: dict[str, tuple[str, int, int, tuple[str, ...]]]
    cameras: dict[str, tuple[str, int, int, str]]
    categories: frozenset[str] = DEFAULT.categories
    event_channels: frozenset[str] = DEFAULT.event_channels
    petition_channels: frozenset[str] = DEFAULT.petition_channels


def shard_lookup(topo: Topology, shard: str) -> ShardLookup:
    centres = {code: (topo.index[code], c.level, c.chain) for code, c in topo.centres.items()
               if c.shard == shard and len(code) <= MAX_ID}
    grids = {g: (c, *centres[c]) for g, c in topo.grid_centre.items()
             if c in centres and len(g) <= MAX_ID}
    cameras = {cam: (c, centres[c][0], centres[c][1], kind)
               for cam, (c, kind) in topo.camera.items() if c in centres and len(cam) <= MAX_ID}
    v = topo.vocab
    return ShardLookup(centres, grids, cameras, v.categories, v.event_channels,
                       v.petition_channels)


def _ok_id(v: str | None) -> bool:
    return bool(v) and len(v) <= MAX_ID


def _fast_int(v: str | None) -> int | None:
    if not v or len(v) > 16 or not v.isdigit() or not v.isascii():
        return None
    return int(v)


def validate_fast(kind: str, f: Mapping[str, str], look: ShardLookup, clock: Clock,
                  arrived_ms: int) -> tuple | None:
    """The record `validate` returns for an entry that is valid in every respect, or None for
    anything else (then `validate` decides, and names the reason). Accepts nothing `validate`
    refuses: the same checks, with the topology looked up in the shard's `ShardLookup`;
    the rarer shapes (hand-ins, escalations beyond the shard) are left to `validate`."""
    if len(f) > MAX_FIELDS:
        return None
    text = "".join(f.values())
    if not text.isprintable() or not "".join(f).isprintable() or (
            len(text) > MAX_VALUE and max(map(len, f.values())) > MAX_VALUE):
        return None
    get = f.get
    if get("v") not in _VERSIONS or not _ok_id(get("src")):
        return None
    ts = _fast_int(get("ts"))
    if ts is None or ts < MIN_TS or ts > arrived_ms + clock.skew_ms \
            or arrived_ms - ts > clock.lateness_ms:
        return None
    day, hour = clock.buckets(ts)
    if kind == "events":
        eid, status, centre, category = get("eid"), get("status"), get("centre"), get("category")
        c = look.centres.get(centre)
        if c is None or not _ok_id(eid) or status not in _STATUSES \
                or category not in look.categories:
            return None
        ci, lv, chain = c
        grid = get("grid", "")
        if grid:
            g = look.grids.get(grid)
            if g is None or centre not in g[3]:
                return None
        channel = urgency = to = by = note = user = ""
        due, satisfied, tci = 0, -1, -1
        summary = get("summary", "")
        if len(summary) > MAX_TEXT:
            return None
        q = f"e|{eid}|{status}|{centre}"
        if status == "reported":
            channel, urgency = get("channel"), get("urgency")
            due = _fast_int(get("due"))
            if channel not in look.event_channels or urgency not in _URGENCIES or due is None:
                return None
        elif status == "evaluated":
            s = get("satisfied")
            if s != "0" and s != "1":
                return None
            satisfied = int(s)
        elif status == "escalated":
            to = get("to")
            t = look.centres.get(to)
            if t is None or to == centre or to not in chain:
                return None
            tci = t[0]
        elif status == "supervised":  # a `by` above the shard (the city) is left to `validate`
            by, note, user = get("by"), get("note", ""), get("user", "")
            if not _ok_id(by) or by == centre or by not in chain or len(note) > MAX_TEXT \
                    or len(user) > MAX_ID:
                return None
            q = f"{q}|{ts}|{by}"
        return ("e", eid, ts, day, hour, centre, ci, lv, q, status,
                category, channel, urgency, due, satisfied, to, tci, grid, "", "", "", 0, 0,
                summary, by, note, user, "")
    if kind == "patrols":
        pid, grid, worker = get("pid"), get("grid"), get("worker")
        g = look.grids.get(grid)
        if g is None or not _ok_id(pid) or not _ok_id(worker):
            return None
        return ("p", pid, ts, day, hour, g[0], g[1], g[2], "p|" + pid, "", "", "", "", 0, -1,
                "", -1, grid, worker, "", "", 0, 0, "", "", "", "", "")
    if kind == "cameras":
        cam, state = get("cam"), get("state")
        found = look.cameras.get(cam)
        if found is None or state not in _CAMERA_STATES:
            return None
        centre, ci, lv, cam_kind = found
        return ("c", cam, ts, day, hour, centre, ci, lv, "", "", "", "", "", 0, -1, "", -1, "",
                "", state, cam_kind, 0, 0, "", "", "", "", "")
    if kind == "petitions":
        pid, centre, channel = get("pid"), get("centre"), get("channel")
        group, skip = get("group"), get("skip_level")
        c = look.centres.get(centre)
        if c is None or not _ok_id(pid) or channel not in look.petition_channels \
                or group not in ("0", "1") or skip not in ("0", "1"):
            return None
        return ("t", pid, ts, day, hour, centre, c[0], c[1], "t|" + pid, "", "", channel, "",
                0, -1, "", -1, "", "", "", "", int(group), int(skip), "", "", "", "", "")
    return None


def validate_handoff(f: Mapping[str, str], shard: str, topo: Topology) -> dict[str, str]:
    """An outbox entry of `shard`'s handoff stream (§6), before it is forwarded: the fields of
    the hand-in entry for the target shard, or `InvalidEntry`. The outbox is written by the
    aggregator, but anyone who reaches Redis can write it too."""
    if len(f) > MAX_FIELDS:
        raise InvalidEntry(f"too many fields: {len(f)} > {MAX_FIELDS}")
    if not "".join(f.values()).isprintable() or not "".join(f).isprintable() or any(
            len(v) > MAX_VALUE for v in f.values()):
        raise InvalidEntry(_reason(f))
    eid = _id(f, "eid")
    centre = _centre(f, "centre", topo)
    _in_shard(centre, shard, topo)
    to = _centre(f, "to", topo)
    if to == centre or not topo.is_within(centre, to):
        raise InvalidEntry(f"bad to: {to} is not above {centre}")
    if topo.centres[to].shard == shard:
        raise InvalidEntry(f"bad to: {to} is in this shard")
    category = _one_of(f, "category", topo.vocab.categories)
    due = _int(f, "due")
    ts = _int(f, "ts")
    if ts < MIN_TS:
        raise InvalidEntry(f"ts out of range: {ts}")
    out = {"v": "1", "ts": str(ts), "src": "pingan-handoff", "eid": eid, "status": "escalated",
           "centre": centre, "to": to, "category": category, "due": str(due)}
    out.update(_carried(f, topo.vocab.event_channels))
    return out


# ---- cases behind the figures (issue 10, helper CASES) ----
_CARRY_INTS = ("reported_at", "supervised", "escalated")
def _carried(f: Mapping[str, str], channels: frozenset[str]) -> dict[str, str]:
    """What a hand-over carries of the case beyond the contract's fields (its report time,
    counts, urgency, channel, summary), each kept only when well formed: they are for the case
    lists, so a bad one is dropped rather than the case."""
    out = {n: f[n] for n in _CARRY_INTS if _fast_int(f.get(n)) is not None}
    out.update({n: f[n] for n, allowed in (("urgency", _URGENCIES), ("channel", channels))
                if f.get(n) in allowed})
    summary = f.get("summary", "")
    if summary and len(summary) <= MAX_TEXT:
        out["summary"] = summary
    return out


def carry_of(rec_carry: str) -> tuple[int, int, int, str, str]:
    """The `carry` field of a hand-in record: (reported_at, supervised, escalated, urgency,
    channel); zeros and "" when the hand-over carried nothing."""
    if not rec_carry:
        return 0, 0, 0, "", ""
    at, sup, esc, urgency, channel = rec_carry.split("|")
    return int(at or 0), int(sup or 0), int(esc or 0), urgency, channel


def _text(f: Mapping[str, str], name: str, limit: int) -> str:
    """An optional plain-text value (printable: checked for the whole entry), at most `limit`
    characters; "" when absent."""
    v = f.get(name, "")
    if len(v) > limit:
        raise InvalidEntry(f"value too long: {name} ({len(v)} > {limit} characters)")
    return v
# ---- end cases ----


def _handin(f: dict, shard: str, topo: Topology, ts: int, day: str, hour: str) -> tuple:
    """A case escalated in another shard arriving here (written by the aggregator only)."""
    eid = _id(f, "eid")
    centre = _centre(f, "centre", topo)
    to = _centre(f, "to", topo)
    _in_shard(to, shard, topo, "to")
    category = _one_of(f, "category", topo.vocab.categories)
    due = _int(f, "due")
    c = _carried(f, topo.vocab.event_channels)
    carry = "|".join((c.get("reported_at", ""), c.get("supervised", ""), c.get("escalated", ""),
                      c.get("urgency", ""), c.get("channel", "")))
    return ("h", eid, ts, day, hour, centre, topo.index[to], topo.centres[centre].level,
            f"h|{eid}|{to}", "escalated", category, "", "", due, -1, to, -1, "", "", "", "", 0, 0,
            c.get("summary", ""), "", "", "", carry)


def _event(f: dict, shard: str, topo: Topology, ts: int, day: str, hour: str) -> tuple:
    eid = _id(f, "eid")
    status = _one_of(f, "status", _STATUSES)
    centre = _centre(f, "centre", topo)
    category = _one_of(f, "category", topo.vocab.categories)
    grid = f.get("grid", "")
    if grid:
        if len(grid) > MAX_ID:
            raise InvalidEntry(f"value too long: grid ({len(grid)} > {MAX_ID} characters)")
        if grid not in topo.grid_centre:
            raise InvalidEntry(f"unknown grid: {grid}")
        if not topo.is_within(topo.grid_centre[grid], centre):
            raise InvalidEntry(f"grid {grid} is not under centre {centre}")
    summary = _text(f, "summary", MAX_TEXT)
    channel = urgency = to = by = note = user = ""
    due, satisfied, tci = 0, -1, -1
    kind = "e"
    q = f"e|{eid}|{status}|{centre}"
    if status == "reported":
        channel = _one_of(f, "channel", topo.vocab.event_channels)
        urgency = _one_of(f, "urgency", _URGENCIES)
        due = _int(f, "due")
    elif status == "evaluated":
        satisfied = _flag(f, "satisfied")
    elif status == "escalated":
        to = _centre(f, "to", topo)
        if to == centre or not topo.is_within(centre, to):
            raise InvalidEntry(f"bad to: {to} is not above {centre}")
        if topo.centres[to].shard == shard:
            tci = topo.index[to]
    elif status == "supervised":
        by = _centre(f, "by", topo)
        if by == centre or not topo.is_within(centre, by):
            raise InvalidEntry(f"bad by: {by} is not above {centre}")
        note = _text(f, "note", MAX_TEXT)
        user = _text(f, "user", MAX_ID)
        q = f"{q}|{ts}|{by}"  # supervised many times: each (time, supervisor) counts once
    _in_shard(centre, shard, topo)
    return (kind, eid, ts, day, hour, centre, topo.index[centre], topo.centres[centre].level,
            q, status, category, channel, urgency, due, satisfied,
            to, tci, grid, "", "", "", 0, 0, summary, by, note, user, "")


# ---- alerts (预警, docs/alerts.md; helper ALERTS) ---------------------------------------------
# the rules of datasources/alert_rules.toml, the severities an alert may have, and its states
RULES = ("urgent_case", "overdue_case", "petition_group", "petition_skip", "camera_outage",
         "stale_shard", "surge")
SEVERITIES = ("critical", "major", "minor")
ALERT_STATES = ("raised", "acknowledged", "cleared")
