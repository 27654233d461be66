"""Stream contract v1: validation of raw stream entries (see docs/STREAMS.md).

`validate(kind, fields, shard, topo, clock)` turns the fields of one entry into a compact
record for the aggregator's Lua step, or raises `InvalidEntry` with the reason that goes to the
dead-letter stream. Pure functions: no Redis here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from datasources.topology import Topology

VERSIONS = ("1",)
STATUSES = ("reported", "dispatched", "handling", "resolved", "evaluated", "escalated")
CATEGORIES = (
    "dispute",
    "security",
    "fire",
    "sanitation",
    "special_population",
    "citizen_request",
    "other",
)
EVENT_CHANNELS = ("grid_worker", "hotline_12345", "video", "public", "police_110")
URGENCIES = ("normal", "urgent")
CAMERA_STATES = ("online", "offline", "fault")
PETITION_CHANNELS = ("letter", "visit", "online")

MAX_ID = 64
MAX_VALUE = 256
MAX_FIELDS = 32
MIN_TS = 946_684_800_000  # 2000-01-01
FUTURE_SKEW_MS = 86_400_000

_VERSIONS = frozenset(VERSIONS)
_STATUSES = frozenset(STATUSES)
_CATEGORIES = frozenset(CATEGORIES)
_EVENT_CHANNELS = frozenset(EVENT_CHANNELS)
_URGENCIES = frozenset(URGENCIES)
_CAMERA_STATES = frozenset(CAMERA_STATES)
_PETITION_CHANNELS = frozenset(PETITION_CHANNELS)


class InvalidEntry(ValueError):
    """An entry that breaks the contract; the message is the dead-letter reason."""


@dataclass
class Clock:
    """Maps event timestamps to local day/hour bucket names, cached per hour."""

    tz: ZoneInfo
    now_ms: int

    def __post_init__(self) -> None:
        self._cache: dict[int, tuple[str, str]] = {}

    def buckets(self, ts: int) -> tuple[str, str]:
        h = ts // 3_600_000
        got = self._cache.get(h)
        if got is None:
            dt = datetime.fromtimestamp(h * 3600, self.tz)
            got = (dt.strftime("%Y%m%d"), dt.strftime("%Y%m%d%H"))
            self._cache[h] = got
        return got


# A validated entry is a flat tuple (fast to build and to index).
FIELDS = (
    "k", "id", "ts", "day", "hour", "centre", "ci", "lv", "q", "status", "category",
    "channel", "urgency", "due", "satisfied", "to", "tci", "grid", "worker", "state",
    "cam_kind", "group", "skip",
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
    kind: str, f: Mapping[str, str], shard: str, topo: Topology, clock: Clock
) -> tuple:
    """Validate one entry of `kind` read from `shard`'s stream; return its record (FIELDS).

    `f` is the entry's fields as text (see `decode_fields`)."""
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
    if ts < MIN_TS or ts > clock.now_ms + FUTURE_SKEW_MS:
        raise InvalidEntry(f"ts out of range: {ts}")
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
                "p|" + pid, "", "", "", "", 0, -1, "", -1, grid, worker, "", "", 0, 0)
    if kind == "cameras":
        cam = _id(f, "cam")
        found = topo.camera.get(cam)
        if found is None:
            raise InvalidEntry(f"unknown camera: {cam}")
        centre, cam_kind = found
        _in_shard(centre, shard, topo, "camera", cam)
        state = _one_of(f, "state", _CAMERA_STATES)
        return ("c", cam, ts, day, hour, centre, index[centre], topo.centres[centre].level,
                "", "", "", "", "", 0, -1, "", -1, "", "", state, cam_kind, 0, 0)
    if kind == "petitions":
        pid = _id(f, "pid")
        centre = _centre(f, "centre", topo)
        _in_shard(centre, shard, topo)
        channel = _one_of(f, "channel", _PETITION_CHANNELS)
        group = _flag(f, "group")
        skip = _flag(f, "skip_level")
        return ("t", pid, ts, day, hour, centre, index[centre], topo.centres[centre].level,
                "t|" + pid, "", "", channel, "", 0, -1, "", -1, "", "", "", "", group, skip)
    raise InvalidEntry(f"unknown kind: {kind}")


def _handin(f: dict, shard: str, topo: Topology, ts: int, day: str, hour: str) -> tuple:
    """A case escalated in another shard arriving here (written by the aggregator only)."""
    eid = _id(f, "eid")
    centre = _centre(f, "centre", topo)
    to = _centre(f, "to", topo)
    _in_shard(to, shard, topo, "to")
    category = _one_of(f, "category", _CATEGORIES)
    due = _int(f, "due")
    return ("h", eid, ts, day, hour, centre, topo.index[to], topo.centres[centre].level,
            f"h|{eid}|{to}", "escalated", category, "", "", due, -1, to, -1, "", "", "", "", 0, 0)


def _event(f: dict, shard: str, topo: Topology, ts: int, day: str, hour: str) -> tuple:
    eid = _id(f, "eid")
    status = _one_of(f, "status", _STATUSES)
    centre = _centre(f, "centre", topo)
    category = _one_of(f, "category", _CATEGORIES)
    grid = f.get("grid", "")
    if grid:
        if len(grid) > MAX_ID:
            raise InvalidEntry(f"value too long: grid ({len(grid)} > {MAX_ID} characters)")
        if grid not in topo.grid_centre:
            raise InvalidEntry(f"unknown grid: {grid}")
        if not topo.is_within(topo.grid_centre[grid], centre):
            raise InvalidEntry(f"grid {grid} is not under centre {centre}")
    channel = urgency = to = ""
    due, satisfied, tci = 0, -1, -1
    kind = "e"
    if status == "reported":
        channel = _one_of(f, "channel", _EVENT_CHANNELS)
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
    _in_shard(centre, shard, topo)
    return (kind, eid, ts, day, hour, centre, topo.index[centre], topo.centres[centre].level,
            f"e|{eid}|{status}|{centre}", status, category, channel, urgency, due, satisfied,
            to, tci, grid, "", "", "", 0, 0)
