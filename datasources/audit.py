"""Audit: an independent recount of the read model from the raw streams (`pingan audit`).

The recount shares no logic with the aggregator. From the aggregator's side it uses only key
names (`datasources.keys.Keys`), the registry's plain data (each centre's parent and level,
grid → centre, camera → centre and kind, the region's vocabulary) and the backlog report
(`shard_backlog`). Everything that decides a figure is written here again from
docs/STREAMS.md:

- the ancestor walk and the shard rule (§1: the level-2 ancestor; a level-1 centre is its own
  shard), and so each centre's in-shard rollup chain;
- validation of every entry (§4), on the raw bytes read with XRANGE: the same entries are
  accepted and rejected as by `datasources/contract.py` (tests/unit/test_audit_validator.py);
- the local day and hour of each `ts` in `PINGAN_TZ`, computed per entry with zoneinfo;
- idempotency (§5: a key per kind, once per shard per local day of `ts`);
- the case lifecycle (§3: tombstones, escalation within and out of the shard, hand-ins,
  expiry) and camera states (latest `ts` wins, failures on a change to a non-online state);
- the hand-over outbox: every escalation of an open case to another shard must be in the
  source shard's outbox and, once forwarded, in the target shard's inbox (§6);
- the roll-ups above the shard tier (a city, a province: `Keys.up_*`): today's figures, hours
  and gauges of each must be the sum of the recounts of the shard heads below it (`rollups`
  also names those written before the last batches below them).

What cannot be recounted is taken from the read model as an opening balance and reported as
such: open cases, tombstones and camera states whose entries were trimmed by the retention
(`meta.trimmed_to`); days before the first whole retained day are not compared. What the
aggregator recorded as lost (rollback and quarantine incidents, expired cases) is reported
under `incidents`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import redis
from redis.client import NEVER_DECODE
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from datasources.aggregator import shard_backlog
from datasources.config import PipelineConfig
from datasources.connection import raw_replies
from datasources.contract import CAMERA_STATES, STATUSES, URGENCIES
from datasources.keys import Keys
from datasources.registry import Camera, Centre, Grid
from datasources.topology import Topology
from datasources.vocabulary import DEFAULT, Vocabulary, load_vocabulary

# ---- the contract, as written in docs/STREAMS.md (not imported from contract.py) -----------
MAX_FIELDS = 32
MAX_VALUE = 256
MAX_ID = 64
MAX_TEXT = 200  # `summary`, `note` (issue 10)
TS_MIN = 946_684_800_000  # 2000-01-01T00:00Z
# The vocabularies are the contract's (one source) and the region's (the registry's
# vocabulary, `AuditRegistry.vocab`); the rules that use them are the audit's own.
STATUS = frozenset(STATUSES)
URGENCY = frozenset(URGENCIES)
CAMERA_STATE = frozenset(CAMERA_STATES)
FLAG = frozenset({"0", "1"})
AUDITED_KINDS = ("events", "patrols", "cameras", "petitions", "handin")
HOUR_FIELDS = ("reported", "resolved", "petitions")

XRANGE_COUNT = 5000
EXPIRY_GRACE_MS = 120_000  # the aggregator expires old cases every 30 s or so
INCIDENTS_LISTED = 50

_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS = re.compile(r"[0-9]{1,16}")


# ---- the registry ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditRegistry:
    """The registry's plain data: nothing derived (no chains, no shards)."""

    level: dict[str, int]
    parent: dict[str, str | None]
    grid_centre: dict[str, str]
    camera: dict[str, tuple[str, str]]  # camera id → (centre, kind)
    vocab: Vocabulary = DEFAULT  # the region's categories and channels

    @classmethod
    def from_topology(cls, topo: Topology) -> AuditRegistry:
        """The plain fields of a loaded topology (`parent`, `level`, grids' and cameras'
        centres, the vocabulary) — never its `chain`, `shard`, `index` or `order`."""
        return cls(level={c: i.level for c, i in topo.centres.items()},
                   parent={c: i.parent for c, i in topo.centres.items()},
                   grid_centre=dict(topo.grid_centre), camera=dict(topo.camera),
                   vocab=topo.vocab)

    @classmethod
    def from_engine(cls, engine: Engine) -> AuditRegistry:
        """Straight from the registry tables."""
        with Session(engine) as s:
            centres = s.execute(select(Centre.code, Centre.level, Centre.parent)).all()
            grids = s.execute(select(Grid.id, Grid.centre)).all()
            cameras = s.execute(select(Camera.id, Camera.centre, Camera.kind)).all()
        return cls(level={c: int(lv) for c, lv, _p in centres},
                   parent={c: p for c, _lv, p in centres},
                   grid_centre={g: c for g, c in grids},
                   camera={cid: (c, k) for cid, c, k in cameras},
                   vocab=load_vocabulary(engine))


class Tree:
    """The audit's own walk of the registry tree: ancestors, shard and in-shard chain."""

    def __init__(self, reg: AuditRegistry) -> None:
        self.reg = reg
        self.up: dict[str, tuple[str, ...]] = {}  # the centre and its ancestors, nearest first
        self.shard: dict[str, str] = {}
        self.chain: dict[str, tuple[str, ...]] = {}  # up to and including the shard's centre
        for code in reg.level:
            path = [code]
            cur = reg.parent.get(code)
            while cur is not None and cur in reg.level and cur not in path:
                path.append(cur)
                cur = reg.parent.get(cur)
            self.up[code] = tuple(path)
            # the shard is the district (level-2) ancestor; a centre at level 1 or 2 is its
            # own, and a centre with no district above it belongs to its root's
            cut = next((i for i, c in enumerate(path) if reg.level[c] <= 2), len(path) - 1)
            self.shard[code] = path[cut]
            self.chain[code] = tuple(path[:cut + 1])

    @property
    def shards(self) -> list[str]:
        return sorted(set(self.shard.values()))


# ---- validation (docs/STREAMS.md §4) ---------------------------------------------------------
class Rejected(ValueError):
    """An entry the contract refuses (it is a dead letter of the aggregator)."""


@dataclass(frozen=True)
class TimeRules:
    tz: ZoneInfo
    now_ms: int
    lateness_ms: int
    skew_ms: int

    @classmethod
    def of(cls, config: PipelineConfig, now_ms: int) -> TimeRules:
        return cls(ZoneInfo(config.tz), now_ms, config.max_lateness_s * 1000,
                   config.max_future_skew_s * 1000)

    def arrival(self, entry_id: str) -> int:
        """The stream id's milliseconds, but never later than now."""
        ms = entry_id.split("-", 1)[0]
        return min(int(ms), self.now_ms) if ms.isdigit() else self.now_ms


class Entry(NamedTuple):
    kind: str  # events | handin | patrols | cameras | petitions
    key: str  # idempotency key ("" for cameras)
    ts: int
    day: str  # local YYYYMMDD of ts
    hour: str  # local YYYYMMDDHH of ts
    centre: str  # the entry's centre (patrols: the grid's, cameras: the camera's)
    id: str  # eid, pid or camera id
    status: str = ""
    category: str = ""
    channel: str = ""
    urgency: str = ""
    due: int = 0
    satisfied: str = ""
    to: str = ""
    grid: str = ""
    worker: str = ""
    state: str = ""
    cam_kind: str = ""
    group: str = ""
    skip: str = ""


def local_buckets(ts_ms: int, tz: ZoneInfo) -> tuple[str, str]:
    """Local day and hour of a time stamp, computed for this one entry."""
    t = datetime.fromtimestamp(ts_ms // 1000, tz)
    day = f"{t.year:04d}{t.month:02d}{t.day:02d}"
    return day, f"{day}{t.hour:02d}"


def _printable(text: str) -> bool:
    """No control, format, private-use, unassigned or separator characters but the space."""
    if text.isascii():
        return _ASCII_CONTROL.search(text) is None
    return all(ch == " " or unicodedata.category(ch)[0] not in "CZ" for ch in text)


def _decode(raw: bytes | str) -> str:
    try:
        if isinstance(raw, str):  # text as the aggregator's client decodes it
            raw = raw.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8")
    except UnicodeError:
        raise Rejected("invalid UTF-8") from None


class _Fields:
    def __init__(self, f: dict[str, str]) -> None:
        self.f = f

    def need(self, name: str) -> str:
        v = self.f.get(name, "")
        if v == "":
            raise Rejected(f"missing field: {name}")
        return v

    def ident(self, name: str) -> str:
        v = self.need(name)
        if len(v) > MAX_ID:
            raise Rejected(f"value too long: {name}")
        return v

    def among(self, name: str, allowed: frozenset[str]) -> str:
        v = self.need(name)
        if v not in allowed:
            raise Rejected(f"bad {name}")
        return v

    def integer(self, name: str) -> int:
        v = self.need(name)
        if not _DIGITS.fullmatch(v):
            raise Rejected(f"not an integer: {name}")
        return int(v)

    def flag(self, name: str) -> str:
        v = self.f.get(name)
        if v not in FLAG:
            raise Rejected(f"bad {name}: expected 0 or 1")
        return v

    def centre(self, name: str, tree: Tree) -> str:
        code = self.ident(name)
        if code not in tree.reg.level:
            raise Rejected(f"unknown centre: {code}")
        return code


def _shard_is(code: str, shard: str, tree: Tree, what: str) -> None:
    if tree.shard[code] != shard:
        raise Rejected(f"wrong shard: {what}")


def check_entry(kind: str, pairs: Sequence[tuple[bytes | str, bytes | str]], shard: str,
                tree: Tree, rules: TimeRules, arrived_ms: int) -> Entry:
    """Validate one raw entry of `kind` read from `shard`'s stream (docs/STREAMS.md §4);
    return what the recount needs, or raise `Rejected`."""
    if len(pairs) > MAX_FIELDS:
        raise Rejected("too many fields")
    f: dict[str, str] = {}
    for k, v in pairs:
        name, value = _decode(k), _decode(v)
        if len(value) > MAX_VALUE:
            raise Rejected(f"value too long: {name}")
        if not _printable(name) or not _printable(value):
            raise Rejected("control characters")
        f[name] = value  # a repeated name: the last value
    x = _Fields(f)
    if "v" not in f:
        raise Rejected("missing field: v")
    if f["v"] != "1":
        raise Rejected("unsupported version")
    ts = x.integer("ts")
    if ts < TS_MIN:
        raise Rejected("ts out of range")
    if ts - arrived_ms > rules.skew_ms:
        raise Rejected("ts in the future")
    if kind != "handin" and arrived_ms - ts > rules.lateness_ms:
        raise Rejected("too late")
    x.ident("src")
    try:
        day, hour = local_buckets(ts, rules.tz)
    except (OverflowError, OSError, ValueError):
        raise Rejected("ts out of range") from None
    if kind == "events":
        return _event(x, shard, tree, ts, day, hour)
    if kind == "handin":
        eid = x.ident("eid")
        centre = x.centre("centre", tree)
        to = x.centre("to", tree)
        _shard_is(to, shard, tree, "to")
        category = x.among("category", tree.reg.vocab.categories)
        due = x.integer("due")
        return Entry("handin", f"h|{eid}|{to}", ts, day, hour, centre, eid, "escalated",
                     category, due=due, to=to)
    if kind == "patrols":
        pid = x.ident("pid")
        grid = x.ident("grid")
        if grid not in tree.reg.grid_centre:
            raise Rejected("unknown grid")
        centre = tree.reg.grid_centre[grid]
        _shard_is(centre, shard, tree, "grid")
        worker = x.ident("worker")
        return Entry("patrols", "p|" + pid, ts, day, hour, centre, pid, grid=grid,
                     worker=worker)
    if kind == "cameras":
        cam = x.ident("cam")
        if cam not in tree.reg.camera:
            raise Rejected("unknown camera")
        centre, cam_kind = tree.reg.camera[cam]
        _shard_is(centre, shard, tree, "camera")
        state = x.among("state", CAMERA_STATE)
        return Entry("cameras", "", ts, day, hour, centre, cam, state=state, cam_kind=cam_kind)
    if kind == "petitions":
        pid = x.ident("pid")
        centre = x.centre("centre", tree)
        _shard_is(centre, shard, tree, "centre")
        channel = x.among("channel", tree.reg.vocab.petition_channels)
        group = x.flag("group")
        skip = x.flag("skip_level")
        return Entry("petitions", "t|" + pid, ts, day, hour, centre, pid, channel=channel,
                     group=group, skip=skip)
    raise Rejected(f"unknown kind: {kind}")


def _event(x: _Fields, shard: str, tree: Tree, ts: int, day: str, hour: str) -> Entry:
    eid = x.ident("eid")
    status = x.among("status", STATUS)
    centre = x.centre("centre", tree)
    category = x.among("category", tree.reg.vocab.categories)
    grid = x.f.get("grid", "")
    if grid:
        if len(grid) > MAX_ID:
            raise Rejected("value too long: grid")
        if grid not in tree.reg.grid_centre:
            raise Rejected("unknown grid")
        if centre not in tree.up[tree.reg.grid_centre[grid]]:
            raise Rejected("grid not under centre")
    summary = x.f.get("summary", "")
    if len(summary) > MAX_TEXT:
        raise Rejected("value too long: summary")
    channel = urgency = satisfied = to = ""
    due = 0
    key = f"e|{eid}|{status}|{centre}"
    if status == "reported":
        channel = x.among("channel", tree.reg.vocab.event_channels)
        urgency = x.among("urgency", URGENCY)
        due = x.integer("due")
    elif status == "evaluated":
        satisfied = x.flag("satisfied")
    elif status == "escalated":
        to = x.centre("to", tree)
        if to not in tree.up[centre][1:]:
            raise Rejected("bad to")
    elif status == "supervised":  # issue 10: by a centre above, many times (key: ts and by)
        by = x.centre("by", tree)
        if by not in tree.up[centre][1:]:
            raise Rejected("bad by")
        if len(x.f.get("note", "")) > MAX_TEXT:
            raise Rejected("value too long: note")
        if len(x.f.get("user", "")) > MAX_ID:
            raise Rejected("value too long: user")
        key = f"{key}|{ts}|{by}"
    _shard_is(centre, shard, tree, "centre")
    return Entry("events", key, ts, day, hour, centre, eid, status,
                 category, channel, urgency, due, satisfied, to, grid)


# ---- reading ---------------------------------------------------------------------------------
def _raw_client(r: redis.Redis) -> redis.Redis:
    """A client on the same connections whose XRANGE replies stay a flat list of raw pairs
    (redis-py's reply parsing would fold repeated field names into one)."""
    return raw_replies(r, "XRANGE")  # a RedisCluster too


def _text(v) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def read_stream(raw: redis.Redis, key: str) -> list[tuple[str, list[tuple[bytes, bytes]]]]:
    """Every retained entry of a stream: (id, [(name, value), ...]) with bytes intact."""
    out: list[tuple[str, list[tuple[bytes, bytes]]]] = []
    start = "-"
    while True:
        try:
            items = raw.execute_command("XRANGE", key, start, "+", "COUNT", XRANGE_COUNT,
                                        **{NEVER_DECODE: True})
        except redis.ResponseError:  # not a stream: nothing the aggregator reads either
            return out
        if not items:
            return out
        for entry_id, flat in items:
            flat = flat or []
            out.append((_text(entry_id), list(zip(flat[::2], flat[1::2], strict=False))))
        if len(items) < XRANGE_COUNT:
            return out
        start = "(" + out[-1][0]


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _safe(call, default):
    try:
        return call()
    except redis.ResponseError:  # a key of the wrong type: the read model has nothing there
        return default


def _int_or(v, default: int | None = None) -> int | None:
    try:
        return int(_text(v))
    except (TypeError, ValueError):
        return default


def first_whole_day(trimmed_to_ms: int, skew_ms: int, tz: ZoneInfo) -> str:
    """The first local day all of whose entries are retained when the streams were trimmed up
    to `trimmed_to_ms` (an entry of a day arrives at most `skew_ms` before the day starts)."""
    t = datetime.fromtimestamp((trimmed_to_ms + skew_ms) / 1000, tz)
    d = t.date()
    if (t.hour, t.minute, t.second, t.microsecond) != (0, 0, 0, 0):
        d += timedelta(days=1)
    return d.strftime("%Y%m%d")


# ---- the recount of one shard ----------------------------------------------------------------
@dataclass
class Case:
    owner: str
    due: int
    category: str
    opened: int
    carried: bool = False


@dataclass
class Recount:
    day: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    hour: dict[tuple[str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))
    gauge: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    overdue: Counter = field(default_factory=Counter)
    # today's figures that may be up to this much higher (camera failures whose previous state
    # was trimmed)
    slack: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    uncertain: int = 0
    handoffs: set[tuple] = field(default_factory=set)  # (eid, centre, to, due, category, ts)
    rejected: int = 0
    duplicates: int = 0
    carried: int = 0
    carried_cameras: int = 0


@dataclass
class Opening:
    """What the read model holds from history that is no longer in the streams."""

    cutoff: int | None  # entries that opened or closed before this may have been trimmed
    cases: dict[str, Case]  # open cases, as the read model has them (eid → case)
    closed: dict[str, int]  # tombstones
    cams: dict[str, tuple[str, int]]


def _spread(tree: Tree, target: dict, key_of, own: Counter) -> None:
    for (bucket, centre, name), n in own.items():
        for c in tree.chain[centre]:
            target[key_of(bucket, c)][name] += n


def recount_shard(shard: str, entries: dict[str, list[tuple[str, Entry]]], tree: Tree,
                  config: PipelineConfig, opening: Opening, today: str, now_ms: int) -> Recount:
    """Recount a shard from its validated entries (per kind, in stream order) on top of the
    opening balance."""
    out = Recount()
    # idempotency: a key counts once per shard per local day of its ts, first in stream order
    seen: set[tuple[str, str]] = set()
    kept: dict[str, list[tuple[str, Entry]]] = {}
    for kind, items in entries.items():
        keep = []
        for entry_id, e in items:
            if e.key:
                k = (e.day, e.key)
                if k in seen:
                    out.duplicates += 1
                    continue
                seen.add(k)
            keep.append((entry_id, e))
        kept[kind] = keep

    level = tree.reg.level
    own_day: Counter = Counter()  # (day, centre, field)
    own_hour: Counter = Counter()  # (hour, centre, field)
    for _id, e in kept.get("events", []):
        if e.day != today:
            continue
        own_day[(e.day, e.centre, e.status)] += 1
        if e.status == "reported":
            own_day[(e.day, e.centre, "cat:" + e.category)] += 1
            own_day[(e.day, e.centre, "ch:" + e.channel)] += 1
            if e.urgency == "urgent":
                own_day[(e.day, e.centre, "urgent")] += 1
            own_hour[(e.hour, e.centre, "reported")] += 1
        elif e.status == "resolved":
            own_day[(e.day, e.centre, f"closed:{level[e.centre]}")] += 1
            own_hour[(e.hour, e.centre, "resolved")] += 1
        elif e.status == "evaluated":
            own_day[(e.day, e.centre, "sat:" + e.satisfied)] += 1
    per_grid: Counter = Counter()
    pairs: set[tuple[str, str]] = set()
    ppd = config.patrols_per_day
    for _id, e in kept.get("patrols", []):
        if e.day != today:
            continue
        own_day[(e.day, e.centre, "patrols")] += 1
        per_grid[e.grid] += 1
        if per_grid[e.grid] == 1:
            own_day[(e.day, e.centre, "grids_patrolled")] += 1
        if per_grid[e.grid] == ppd:
            own_day[(e.day, e.centre, "grids_patrolled_full")] += 1
        pair = (e.worker, e.centre)  # a worker counts once per community/village a day
        if pair not in pairs:
            pairs.add(pair)
            own_day[(e.day, e.centre, "workers_on_duty")] += 1
    for _id, e in kept.get("petitions", []):
        if e.day != today:
            continue
        own_day[(e.day, e.centre, "petitions")] += 1
        own_day[(e.day, e.centre, "pet:" + e.channel)] += 1
        if e.group == "1":
            own_day[(e.day, e.centre, "pet_group")] += 1
        if e.skip == "1":
            own_day[(e.day, e.centre, "pet_skip")] += 1
        own_hour[(e.hour, e.centre, "petitions")] += 1

    for (d, h, c), n in _cases(shard, kept, tree, config, opening, now_ms, out).items():
        if d == today:  # resolutions credited to their report's day and hour (metrics.md)
            own_day[(d, c, "reported_resolved")] += n
            own_hour[(h, c, "reported_resolved")] += n

    # cameras: the latest ts wins (an equal ts read later too); a change to a non-online state
    # from a known, different state is a failure on the day of the entry. After a trim, the
    # state a camera had before its first retained entry may be unknown (the read model keeps
    # only the latest): a failure that depends on it is uncertain, counted in `slack`
    state: dict[str, tuple[str, int]] = dict(opening.cams)
    out.carried_cameras = len(state)
    cutoff = opening.cutoff
    unsure: set[str] = set()  # a trimmed entry may have held a newer state than `state`
    own_slack: Counter = Counter()
    for _id, e in kept.get("cameras", []):
        old = state.get(e.id)
        if old is not None and e.ts < old[1]:
            continue
        prior_unknown = e.id in unsure or (old is None and cutoff is not None)
        state[e.id] = (e.state, e.ts)
        if cutoff is not None and e.ts < cutoff and e.id not in opening.cams:
            unsure.add(e.id)
        else:
            unsure.discard(e.id)
        if e.state == "online" or e.day != today:
            continue
        if prior_unknown:
            own_slack[(e.day, e.centre, "cam_failures")] += 1
            out.uncertain += 1
        elif old is not None and old[0] != e.state:
            own_day[(e.day, e.centre, "cam_failures")] += 1
    own_gauge: Counter = Counter()
    for cam, (st, _ts) in state.items():
        centre, kind = tree.reg.camera.get(cam, (None, None))
        if centre is None or tree.shard.get(centre) != shard:
            continue  # a camera no longer in the registry, or moved away
        own_gauge[("", centre, "cam:" + st)] += 1
        own_gauge[("", centre, f"cam:{st}:{kind}")] += 1

    _spread(tree, out.day, lambda _b, c: c, own_day)
    _spread(tree, out.slack, lambda _b, c: c, own_slack)
    _spread(tree, out.hour, lambda b, c: (b, c), own_hour)
    _spread(tree, out.gauge, lambda _b, c: c, own_gauge)
    return out


def _cases(shard: str, kept: dict[str, list[tuple[str, Entry]]], tree: Tree,
           config: PipelineConfig, opening: Opening, now_ms: int, out: Recount) -> Counter:
    """The case lifecycle (docs/STREAMS.md §3), events and hand-ins in stream-id order.
    Returns the resolutions of cases opened here by a report, by (day, hour, centre) of
    that report."""
    max_age = config.case_max_age_days * 86_400_000
    keep_closed = config.day_bucket_ttl_s * 1000
    stream = sorted(kept.get("events", []) + kept.get("handin", []),
                    key=lambda x: _id_key(x[0]))
    # the opening balance: open cases and tombstones from trimmed history only — an open case
    # or a tombstone with a retained entry that opened or closed it is recounted instead
    opened_here: dict[str, set[int]] = defaultdict(set)
    closed_here: dict[str, set[int]] = defaultdict(set)
    for _id, e in stream:
        if e.kind == "handin" or e.status == "reported":
            opened_here[e.id].add(e.ts)
        elif e.status in ("resolved", "escalated"):
            closed_here[e.id].add(e.ts)
    cases: dict[str, Case] = {}
    closed: dict[str, int] = {}
    if opening.cutoff is not None:
        for eid, c in opening.cases.items():
            if (c.opened < opening.cutoff and c.opened not in opened_here.get(eid, ())
                    and tree.shard.get(c.owner) == shard):
                cases[eid] = Case(c.owner, c.due, c.category, c.opened, carried=True)
        for eid, t in opening.closed.items():
            if t < opening.cutoff and t not in closed_here.get(eid, ()):
                closed[eid] = t

    def tombstone(eid: str, t: int) -> None:
        if eid not in closed:
            closed[eid] = t

    def open_case(eid: str, owner: str, due: int, category: str, ts: int, arrived: int) -> None:
        t = closed.get(eid)
        if t is not None and t >= arrived - keep_closed:
            return  # closed here: never opens again while its counts are kept
        if eid in cases:
            return
        cases[eid] = Case(owner, due, category, ts)

    report: dict[str, tuple[str, str, str]] = {}  # open cases opened here by a report
    credits: Counter = Counter()
    for entry_id, e in stream:
        arrived = min(_id_key(entry_id)[0], now_ms)
        held = cases.get(e.id)
        if held is not None and held.opened <= arrived - max_age:
            del cases[e.id]  # expired before this entry arrived
            report.pop(e.id, None)
            tombstone(e.id, arrived)
            held = None
        if e.kind == "handin":
            open_case(e.id, e.to, e.due, e.category, e.ts, arrived)
        elif e.status == "reported":
            fresh = e.id not in cases
            open_case(e.id, e.centre, e.due, e.category, e.ts, arrived)
            if fresh and e.id in cases:
                report[e.id] = (e.day, e.hour, e.centre)
        elif e.status == "resolved":
            if cases.pop(e.id, None) is not None and e.id in report:
                credits[report.pop(e.id)] += 1
            tombstone(e.id, e.ts)
        elif e.status == "escalated" and held is not None:
            if tree.shard[e.to] == shard:
                held.owner = e.to
            else:
                del cases[e.id]
                report.pop(e.id, None)
                tombstone(e.id, e.ts)
                out.handoffs.add((e.id, e.centre, e.to, held.due, held.category, e.ts))
    for eid, c in list(cases.items()):
        if c.opened <= now_ms - max_age and (c.opened <= now_ms - max_age - EXPIRY_GRACE_MS
                                             or eid not in opening.cases):
            del cases[eid]
    own: Counter = Counter()
    late: Counter = Counter()
    for c in cases.values():
        own[("", c.owner, "open")] += 1
        if c.due < now_ms:
            late[c.owner] += 1
        out.carried += c.carried
    _spread(tree, out.gauge, lambda _b, c: c, own)
    for owner, n in late.items():
        for c in tree.chain[owner]:
            out.overdue[c] += n
    return credits


# ---- the audit -------------------------------------------------------------------------------
def _opening(r: redis.Redis, keys: Keys, shard: str, meta: dict, skew_ms: int) -> Opening:
    trimmed = _int_or(meta.get(b"trimmed_to"))
    cutoff = trimmed + skew_ms if trimmed is not None else None
    cases: dict[str, Case] = {}
    closed: dict[str, int] = {}
    cams: dict[str, tuple[str, int]] = {}
    held = _safe(lambda: r.hgetall(keys.cases(shard)), {})
    opened = dict(_safe(lambda: r.zrange(keys.opened(shard), 0, -1, withscores=True), []))
    for eid, value in held.items():
        due, category, chain = (_text(value).split("|", 2) + ["", ""])[:3]
        owner = chain.split(",")[0]
        at = opened.get(eid)
        cases[_text(eid)] = Case(owner, _int_or(due, 0), category,
                                 int(at) if at is not None else -1)
    if cutoff is None:  # nothing trimmed: every case is recounted (the read model's cases
        return Opening(None, cases, closed, cams)  # decide only an expiry in progress)
    for eid, t in _safe(lambda: r.zrange(keys.closed(shard), 0, -1, withscores=True), []):
        closed[_text(eid)] = int(t)
    for cam, value in _safe(lambda: r.hgetall(keys.camera_state(shard)), {}).items():
        st, _, ts = _text(value).partition("|")
        t = _int_or(ts)
        if t is not None and t < cutoff:
            cams[_text(cam)] = (st, t)
    return Opening(cutoff, cases, closed, cams)


def _read_model(r: redis.Redis, keys: Keys, shard: str, codes: list[str], today: str,
                now_ms: int) -> dict[str, tuple[Counter, dict[str, Counter], Counter, int]]:
    """Per centre: today's day hash, today's hour hashes, the gauges and the overdue count."""
    hours = [f"{today}{h:02d}" for h in range(24)]
    pipe = r.pipeline(transaction=False)
    for code in codes:
        pipe.hgetall(keys.day(shard, today, code))
        for h in hours:
            pipe.hgetall(keys.hour(shard, h, code))
        pipe.hgetall(keys.gauge(shard, code))
        pipe.zcount(keys.due(shard, code), "-inf", now_ms - 1)
    replies = pipe.execute(raise_on_error=False)

    def counts(h) -> Counter:
        if not isinstance(h, dict):
            return Counter()
        return Counter({_text(k): _int_or(v, 0) for k, v in h.items()})

    out = {}
    step = 27
    for i, code in enumerate(codes):
        rep = replies[i * step:(i + 1) * step]
        out[code] = (counts(rep[0]), {h: counts(x) for h, x in zip(hours, rep[1:25], strict=True)},
                     counts(rep[25]), rep[26] if isinstance(rep[26], int) else 0)
    return out


def _incidents(r: redis.Redis, raw: redis.Redis, keys: Keys, shards: Iterable[str],
               metas: dict[str, dict]) -> dict:
    """What the aggregator recorded as lost or set aside, from `pingan:{S}:incidents` and the
    shards' meta (`incidents`, `expired`)."""
    total = expired = batches = entries = rollbacks = 0
    partial = False
    quarantined: list[dict] = []
    listed: list[dict] = []
    by_shard: dict[str, dict] = {}
    for shard in shards:
        meta = metas[shard]
        n_meta = _int_or(meta.get(b"incidents"), 0)
        n_exp = _int_or(meta.get(b"expired"), 0)
        total += n_meta
        expired += n_exp
        row = Counter()
        for entry_id, pairs in read_stream(raw, keys.incidents(shard)):
            f = {_text(k): _text(v) for k, v in pairs}
            kind = f.get("kind", "")
            row[kind] += 1
            if kind == "rollback":
                rollbacks += 1
                b = _int_or(f.get("batches_lost"), 0)
                n = _int_or(f.get("entries_lost"), 0)
                batches += b
                entries += n
                row["batches_lost"] += b
                row["entries_lost"] += n
                partial = partial or "+" in f.get("streams", "")
            elif kind == "quarantined":
                quarantined.append({"shard": shard, "key": f.get("key"),
                                    "aside": f.get("aside"), "why": f.get("why"),
                                    "at": _int_or(f.get("ts"))})
            listed.append({"shard": shard, "id": entry_id, **f})
        if n_meta or n_exp or row:
            by_shard[shard] = {"incidents": n_meta, "expired": n_exp, **row}
    listed.sort(key=lambda x: _id_key(x["id"]))
    return {
        "total": total,
        "lost": {"rollbacks": rollbacks, "batches": batches, "entries": entries,
                 # a stream that came back with part of a read range: more may be lost
                 "at_least": partial},
        "quarantined": quarantined,
        "expired": expired,
        "by_shard": by_shard,
        "recent": listed[-INCIDENTS_LISTED:],
    }


def audit(r: redis.Redis, topo: Topology, config: PipelineConfig, now: datetime | None = None,
          registry: AuditRegistry | None = None) -> dict:
    """Recount from the retained streams and compare with the read model; `differences` is
    empty when they agree. `registry` defaults to the plain fields of `topo`."""
    reg = registry or AuditRegistry.from_topology(topo)
    tree = Tree(reg)
    keys = Keys(config.key_prefix)
    tz = ZoneInfo(config.tz)
    now = (now or datetime.now(tz)).astimezone(tz)
    now_ms = int(now.timestamp() * 1000)
    today = now.strftime("%Y%m%d")
    rules = TimeRules.of(config, now_ms)
    raw = _raw_client(r)
    differences: list[dict] = []
    checked = valid = rejected = duplicates = dead = carried = carried_cams = uncertain = 0
    backlog: dict[str, int] = {}
    not_recounted: dict[str, str] = {}
    metas: dict[str, dict] = {}
    recounts: dict[str, Recount] = {}
    outboxes: dict[str, tuple[dict, bool]] = {}
    inboxes: dict[str, set[tuple]] = {}
    trimmed: dict[str, int | None] = {}
    by_shard: dict[str, list[str]] = defaultdict(list)
    for code in sorted(reg.level):
        by_shard[tree.shard[code]].append(code)

    for shard in tree.shards:
        meta = _safe(lambda s=shard: r.hgetall(keys.meta(s)), {})
        metas[shard] = meta
        trimmed[shard] = _int_or(meta.get(b"trimmed_to"))
        dead += _safe(lambda s=shard: r.xlen(keys.dead(s)), 0)
        b = shard_backlog(r, keys, shard)
        if b:
            backlog[shard] = b
        entries: dict[str, list[tuple[str, Entry]]] = {}
        n_bad = 0
        for kind in AUDITED_KINDS:
            got = []
            for entry_id, pairs in read_stream(raw, keys.stream(shard, kind)):
                try:
                    got.append((entry_id, check_entry(kind, pairs, shard, tree, rules,
                                                      rules.arrival(entry_id))))
                except Rejected:
                    n_bad += 1
            entries[kind] = got
        inboxes[shard] = {(e.id, e.centre, e.to, e.due, e.category, e.ts)
                          for _i, e in entries["handin"]}
        outboxes[shard] = _outbox(r, raw, keys, shard)
        opening = _opening(r, keys, shard, meta, rules.skew_ms)
        rc = recount_shard(shard, entries, tree, config, opening, today, now_ms)
        rc.rejected = n_bad
        recounts[shard] = rc
        valid += sum(len(v) for v in entries.values())
        rejected += n_bad
        duplicates += rc.duplicates
        carried += rc.carried
        carried_cams += rc.carried_cameras
        uncertain += rc.uncertain

        whole = (first_whole_day(trimmed[shard], rules.skew_ms, tz)
                 if trimmed[shard] is not None else None)
        count_today = whole is None or today >= whole
        if not count_today:
            not_recounted[shard] = whole
        codes = by_shard[shard]
        model = _read_model(r, keys, shard, codes, today, now_ms)
        for code in codes:
            checked += 1
            got_d, got_h, got_g, got_o = model[code]
            none = Counter()
            pairs_ = [("now", rc.gauge.get(code, none), got_g, none)]
            if count_today:
                pairs_.insert(0, ("today", rc.day.get(code, none), got_d,
                                  rc.slack.get(code, none)))
                for h, got in got_h.items():
                    pairs_.append((f"hour.{h[-2:]}", rc.hour.get((h, code), none), got, none))
            for what, exp, got, slack in pairs_:
                for f in sorted(set(exp) | set(got)):
                    if not exp[f] <= got[f] <= exp[f] + slack[f]:
                        differences.append({"centre": code, "figure": f"{what}.{f}",
                                            "recount": exp[f] + (slack[f] if got[f] > exp[f]
                                                                 else 0),
                                            "read_model": got[f]})
            if rc.overdue[code] != got_o:
                differences.append({"centre": code, "figure": "now.overdue",
                                    "recount": rc.overdue[code], "read_model": got_o})

    differences += _handover_differences(tree, recounts, outboxes, inboxes, trimmed)
    rolled_diffs, rollups = _rollup_differences(r, keys, tree, recounts, set(not_recounted),
                                                today, now_ms)
    differences += rolled_diffs
    return {
        "day": today,
        "now": now_ms,
        "centres_checked": checked,
        "entries_recounted": valid,
        "entries_rejected": rejected,
        "duplicates": duplicates,
        "dead_letters": dead,
        "backlog": backlog,
        "carried": carried,
        "carried_cameras": carried_cams,
        "uncertain_camera_failures": uncertain,
        "not_recounted": not_recounted,
        "incidents": _incidents(r, raw, keys, tree.shards, metas),
        "rollups": rollups,
        "differences": differences,
        "ok": not differences,
    }


def _outbox(r: redis.Redis, raw: redis.Redis, keys: Keys, shard: str) -> tuple[dict, bool]:
    """The hand-over outbox of a shard: (eid, centre, to, due, category, ts) → the stream id
    of its latest copy, and whether that copy has been forwarded (read and acknowledged)."""
    stream = keys.handoff(shard)
    found: dict[tuple, tuple[int, int]] = {}
    for entry_id, pairs in read_stream(raw, stream):
        f = {_text(k): _text(v) for k, v in pairs}
        h = (f.get("eid"), f.get("centre"), f.get("to"), _int_or(f.get("due")),
             f.get("category"), _int_or(f.get("ts")))
        found[h] = _id_key(entry_id)
    delivered, pending = (0, 0), True
    for g in _safe(lambda: r.xinfo_groups(stream) if r.exists(stream) else [], []):
        if _text(g.get("name")) == "aggregator":
            delivered = _id_key(_text(g.get("last-delivered-id")))
            pending = bool(g.get("pending"))
    forwarded = {h: not pending and at <= delivered for h, at in found.items()}
    return {h: (found[h], forwarded[h]) for h in found}, pending


def _handover_differences(tree: Tree, recounts: dict[str, Recount], outboxes: dict[str, dict],
                          inboxes: dict[str, set[tuple]],
                          trimmed: dict[str, int | None]) -> list[dict]:
    """Every escalation of an open case to another shard is in the source shard's outbox
    (written in the same step) and, once forwarded, in the target shard's inbox (unless the
    target's history was trimmed past the time it was written)."""
    out = []
    for shard, rc in recounts.items():
        box = outboxes[shard][0]
        for h in sorted(rc.handoffs):
            eid, centre, to, _due, _cat, _ts = h
            if h not in box:
                out.append({"centre": centre, "figure": f"handoff.{eid}",
                            "recount": f"escalated to {to}", "read_model": "not in the outbox"})
                continue
            (at_ms, _seq), forwarded = box[h]
            cut = trimmed.get(tree.shard[to])
            if forwarded and h not in inboxes.get(tree.shard[to], set()) and (
                    cut is None or at_ms >= cut):
                out.append({"centre": to, "figure": f"handin.{eid}",
                            "recount": f"handed over from {centre}",
                            "read_model": "forwarded, not in the inbox"})
    return out


# ---- the roll-ups above the shard tier (datasources/upper.py) --------------------------------
def _heads_of_rolled(tree: Tree) -> dict[str, list[str]]:
    """Each rolled-up centre (above the district tier, with children) → the centres whose
    shard it is (the shard heads) in its subtree, itself included."""
    reg = tree.reg
    parents = {p for p in reg.parent.values() if p is not None}
    heads: dict[str, list[str]] = {c: [] for c in sorted(reg.level)
                                   if reg.level[c] < 2 and c in parents}
    for code, shard in tree.shard.items():
        if shard == code:
            for above in tree.up[code]:
                if above in heads:
                    heads[above].append(code)
    return heads


def _recounted(recounts: dict[str, Recount], heads: list[str], hours: list[str]) -> dict:
    """The recounts of `heads` (shard heads) summed: today, its slack, its hours, gauges."""
    none = Counter()
    out = {"day": Counter(), "slack": Counter(), "gauge": Counter(),
           "hours": {h: Counter() for h in hours}}
    for head in heads:
        rc = recounts[head]
        out["day"].update(rc.day.get(head, none))
        out["slack"].update(rc.slack.get(head, none))
        out["gauge"].update(rc.gauge.get(head, none))
        for h in hours:
            out["hours"][h].update(rc.hour.get((h, head), none))
    return out


def _queue_figures(pipe, keys: Keys, code: str, shard: str, up: bool, today: str,
                   hours: list[str]) -> None:
    """Meta (version, rolled_at), today, today's hours and the gauges of a roll-up (`up`) or
    of a shard head."""
    pipe.hmget(keys.up_meta(code) if up else keys.meta(shard), ["version", "rolled_at"])
    pipe.hgetall(keys.up_day(code, today) if up else keys.day(shard, today, code))
    for h in hours:
        pipe.hgetall(keys.up_hour(code, h) if up else keys.hour(shard, h, code))
    pipe.hgetall(keys.up_gauge(code) if up else keys.gauge(shard, code))


def _rollup_differences(r: redis.Redis, keys: Keys, tree: Tree, recounts: dict[str, Recount],
                        not_recounted: set[str], today: str,
                        now_ms: int) -> tuple[list[dict], dict]:
    """Every rolled-up centre's roll-up (today, today's hours, the gauges) against the sum of
    what it is rolled up from — its own shard head and each child's figures (a rolled
    child's roll-up, else its shard head; a child in the centre's own shard is in the head
    already) — and against the recounts of the shard heads below it, summed. A figure equal
    to neither is a finding (named at this tier); one equal to its contributions is as right
    as they are, and they are audited themselves (a wrong figure below is named where it is
    wrong, not again at every tier above); one equal to the recount is right. `overdue` was
    counted when it was rolled: it must lie between the open cases below it due before then
    and those due before now. `behind` names roll-ups whose version is not the sum of their
    contributions' (batches applied since: run the audit again after a roll-up pass)."""
    heads = _heads_of_rolled(tree)
    hours = [f"{today}{h:02d}" for h in range(24)]
    parts: dict[str, list[tuple[str, str, bool]]] = {c: [(c, c, False)] for c in heads}
    for code, parent in sorted(tree.reg.parent.items()):
        if parent in heads and tree.shard[code] != parent:
            parts[parent].append((code, tree.shard[code], code in heads))
    pipe = r.pipeline(transaction=False)
    for code in heads:
        _queue_figures(pipe, keys, code, code, True, today, hours)
        for part in parts[code]:
            _queue_figures(pipe, keys, *part, today, hours)
    replies = iter(pipe.execute(raise_on_error=False))
    width = 3 + len(hours)

    def counts(h) -> Counter:
        if not isinstance(h, dict):
            return Counter()
        return Counter({_text(k): _int_or(v, 0) for k, v in h.items() if _int_or(v, 0)})

    def figures() -> tuple[int, int | None, Counter, list[Counter], Counter]:
        rep = [next(replies) for _ in range(width)]
        meta = rep[0] if isinstance(rep[0], list) else [None, None]
        return (_int_or(meta[0], 0) or 0, _int_or(meta[1]), counts(rep[1]),
                [counts(h) for h in rep[2:-1]], counts(rep[-1]))

    out: list[dict] = []
    behind: list[str] = []
    since: dict[str, int] = {}
    got_overdue: dict[str, int] = {}
    for code in heads:
        version, rolled_at, got_d, got_h, got_g = figures()
        got_overdue[code] = got_g.pop("overdue", 0)
        exp_d, exp_g, total = Counter(), Counter(), 0
        exp_h = [Counter() for _ in hours]
        times = [rolled_at if rolled_at is not None else now_ms]
        for _code, _shard, up in parts[code]:
            v, at, d, hs, g = figures()
            total += v
            exp_d.update(d)
            g.pop("overdue", None)  # checked below, against the due cases themselves
            exp_g.update(g)
            for acc, h in zip(exp_h, hs, strict=True):
                acc.update(h)
            if up and at is not None:
                times.append(at)
        since[code] = min(times)
        if version != total:
            behind.append(code)
        rec = _recounted(recounts, heads[code], hours)
        counted = not not_recounted & set(heads[code])
        none = Counter()
        compared = [("today", exp_d, got_d, rec["day"] if counted else None, rec["slack"]),
                    ("now", exp_g, got_g, rec["gauge"], none)]
        compared += [(f"hour.{h[-2:]}", e, g, rec["hours"][h] if counted else None, none)
                     for h, e, g in zip(hours, exp_h, got_h, strict=True)]
        for what, exp, got, truth, slack in compared:
            for f in sorted(set(exp) | set(got) | set(truth or ())):
                if got[f] == exp[f] or (truth is not None
                                        and truth[f] <= got[f] <= truth[f] + slack[f]):
                    continue
                out.append({"centre": code, "figure": f"rollup.{what}.{f}",
                            "recount": exp[f] if truth is None else truth[f],
                            "read_model": got[f]})

    # overdue: the open cases of every shard head below, due before the roll-up and before now
    pipe = r.pipeline(transaction=False)
    for code, below in heads.items():
        for head in below:
            pipe.zcount(keys.due(head, head), "-inf", min(since[code], now_ms) - 1)
            pipe.zcount(keys.due(head, head), "-inf", max(since[code], now_ms) - 1)
    replies = iter(pipe.execute(raise_on_error=False))
    for code, below in heads.items():
        low = high = 0
        for _head in below:
            lo, hi = next(replies), next(replies)
            low += lo if isinstance(lo, int) else 0
            high += hi if isinstance(hi, int) else 0
        if not low <= got_overdue[code] <= high:
            out.append({"centre": code, "figure": "rollup.now.overdue",
                        "recount": high if got_overdue[code] > high else low,
                        "read_model": got_overdue[code]})
    return out, {"checked": len(heads), "behind": behind}
