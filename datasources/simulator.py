"""The simulator: a producer that writes realistic entries per the stream contract.

Activities (case reports, patrols, camera failures, petitions) arrive as Poisson processes
whose intensity follows a daily rhythm; each case then lives through its lifecycle
(dispatched → handling → escalated up the tiers → resolved → evaluated), scheduled on a
virtual clock. The same generator serves these modes:
- live (`rate`): the clock follows the wall clock, the volume is scaled to `rate` entries/s;
- fast (`count`): a span of the recent past, as fast as Redis takes it;
- history (`backfill`): the last hours at a natural volume, so a fresh demo has trends;
- the demo (`DemoFeed`): 30 days of history and then live traffic, all at the natural volume
  of a region of Tongchuan's size (a few hundred cases a day), as one deterministic sequence
  recorded in Redis (seed, origin, how much of it is written), so a restart continues it
  instead of writing its history again.
Lifecycle delays are divided by `speed`, so a demo shows escalations and overdue cases within
minutes rather than hours (the demo says so on screen).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import redis

from datasources.connection import on_cluster
from datasources.contract import CAMERA_STATES, CATEGORIES
from datasources.keys import Keys
from datasources.topology import Topology

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS

# natural volume for a region of Tongchuan's size (about 700,000 people), per day: a few
# hundred cases (each ~5 transition entries), two patrols per grid, a few dozen petitions
BASE_PER_DAY = {"case": 420.0, "patrol_per_grid": 2.3, "camera_change_share": 0.04, "petition": 35.0}

RHYTHM = {
    "case": [0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 1.0, 1.5, 1.7, 1.7, 1.4,
             1.0, 1.1, 1.5, 1.6, 1.6, 1.4, 1.2, 1.1, 1.0, 0.8, 0.5, 0.3],
    "patrol": [0, 0, 0, 0, 0, 0, 0.2, 1.0, 2.2, 2.4, 2.2, 1.2,
               0.6, 1.0, 2.0, 2.3, 2.1, 1.4, 0.8, 0.4, 0.2, 0, 0, 0],
    "camera": [1.0] * 24,
    "petition": [0, 0, 0, 0, 0, 0, 0, 0.2, 1.8, 2.6, 2.6, 2.0,
                 0.6, 1.0, 2.4, 2.6, 2.2, 1.2, 0.1, 0, 0, 0, 0, 0],
}
# by weekday (Monday first), at most 1: fewer cases at the weekend, petitions offices mostly shut
WEEKLY = {
    "case": [1.0, 0.97, 0.97, 0.95, 0.95, 0.8, 0.75],
    "patrol": [1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.7],
    "camera": [1.0] * 7,
    "petition": [1.0, 0.9, 0.9, 0.85, 0.8, 0.2, 0.15],
}
CATEGORY_WEIGHTS = [28, 18, 8, 16, 6, 20, 4]
CHANNEL_WEIGHTS = {"grid_worker": 45, "hotline_12345": 20, "video": 10, "public": 15, "police_110": 10}
PETITION_CHANNELS = {"letter": 30, "visit": 35, "online": 35}
OTHER_WEIGHT = 5  # a term of the region's own vocabulary the tables above do not weigh


def drawn(codes: tuple[str, ...], weights: dict[str, int]) -> tuple[list[str], list[int]]:
    """The region's codes (`topo.vocab`) with their weights, for `random.choices`: the
    demo's own lists draw exactly as they always have, a region's new term gets
    `OTHER_WEIGHT`."""
    return list(codes), [weights.get(c, OTHER_WEIGHT) for c in codes]
# ---- cases behind the figures (issue 10, helper CASES) ----
# what a hotline operator or grid worker writes (`summary`, producer data, not UI text), and
# 督办 from a centre above: share of reports with a summary, of cases in handling supervised
SUMMARIES = {
    "dispute": ("邻里噪音纠纷，双方诉求已记录", "宅基地边界争议，待现场调解"),
    "security": ("小区后门监控盲区，存在安全隐患", "夜间有人员聚集，需加强巡查"),
    "fire": ("楼道堆放杂物堵塞消防通道", "电动车楼内充电"),
    "sanitation": ("垃圾清运不及时，异味明显", "道路积水影响通行"),
    "special_population": ("社区矫正对象走访记录", "独居老人需定期探访"),
    "citizen_request": ("路灯损坏，夜间照明不足", "供暖温度不达标，居民反映"),
    "other": ("群众来电反映情况，待核实",),
}
SUMMARY_SHARE = 0.6
SUPERVISE_SHARE = 0.05
SUPERVISE_NOTES = ("请加快办理进度", "请今日内反馈处置结果", "超时风险，请重点跟进")


@dataclass
class Case:
    eid: str
    owner: str
    category: str
    urgent: bool
    due: int


@dataclass
class Simulator:
    topo: Topology
    grids: list[tuple[str, str, int]]  # (grid id, centre, workers)
    seed: int = 1
    speed: float = 60.0
    scale: float = 1.0
    start_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    tz: str = "Asia/Shanghai"
    prefix: str = "pingan"
    live_from: int | None = None  # before this virtual time, use the natural volume (history)
    quiet: frozenset[str] = frozenset()  # centres whose subtree gets no entries (benchmarks)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._tz = ZoneInfo(self.tz)
        self.keys = Keys(self.prefix)
        self._heap: list[tuple[int, int, str, object]] = []
        self._seq = itertools.count()
        self._case_seq = itertools.count(1)
        self._run = f"S{self.seed}T{self.start_ms // 1000}"
        # summaries and 督办 draw from their own generator, so the rest of the sequence (and a
        # demo continued by a newer version) is drawn as before
        self.case_rng = random.Random(f"{self.seed}-cases")
        vocab = self.topo.vocab  # draw only what the region's contract accepts
        self._categories = drawn(vocab.codes("category"), dict(zip(CATEGORIES, CATEGORY_WEIGHTS,
                                                                   strict=True)))
        self._channels = drawn(vocab.codes("event_channel"), CHANNEL_WEIGHTS)
        self._petition_channels = drawn(vocab.codes("petition_channel"), PETITION_CHANNELS)
        def loud(code: str) -> bool:
            return not self.quiet or not set(self.topo.ancestors(code)) & self.quiet

        self.grids = [g for g in self.grids if loud(g[1])]
        self.by_level: dict[int, list[str]] = {}
        for c in self.topo.centres.values():
            if loud(c.code):
                self.by_level.setdefault(c.level, []).append(c.code)
        for v in self.by_level.values():
            v.sort()
        self.grids_of: dict[str, list[tuple[str, int]]] = {}
        for gid, centre, workers in self.grids:
            self.grids_of.setdefault(centre, []).append((gid, workers))
        self.cameras = sorted(c for c, (centre, _k) in self.topo.camera.items() if loud(centre))
        self.camera_state: dict[str, str] = {}
        self._natural = {
            "case": BASE_PER_DAY["case"],
            "patrol": BASE_PER_DAY["patrol_per_grid"] * len(self.grids),
            "camera": BASE_PER_DAY["camera_change_share"] * len(self.cameras) * 2,
            "petition": BASE_PER_DAY["petition"],
        }

    # -- rates -------------------------------------------------------------------------
    def natural_entries_per_s(self) -> float:
        """Average entries per second at scale 1 (a case produces ~5 entries)."""
        per_day = self._natural["case"] * 5.2 + sum(
            v for k, v in self._natural.items() if k != "case"
        )
        return per_day / 86400

    def _hour(self, t: int) -> tuple[int, int]:
        """Local hour and weekday of `t`."""
        d = datetime.fromtimestamp(t / 1000, self._tz)
        return d.hour, d.weekday()

    def _next_arrival(self, t: int) -> tuple[int, str]:
        """Time and kind of the next spontaneous activity (thinning of Poisson processes)."""
        scale = self.scale if self.live_from is None or t >= self.live_from else 1.0
        peak = {k: self._natural[k] * scale * max(RHYTHM[k]) / 86400_000 for k in self._natural}
        total = sum(peak.values())
        while True:
            t += max(1, int(self.rng.expovariate(total)))
            kind = self.rng.choices(list(peak), weights=list(peak.values()))[0]
            hour, weekday = self._hour(t)
            rel = RHYTHM[kind][hour] / max(RHYTHM[kind]) * WEEKLY[kind][weekday]
            if self.rng.random() < rel:
                return t, kind

    def _schedule(self, t: int, what: str, payload: object) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), what, payload))

    def _delay(self, mean_hours: float) -> int:
        return max(1000, int(self.rng.lognormvariate(math.log(mean_hours * HOUR_MS), 0.8) / self.speed))

    # -- entries -----------------------------------------------------------------------
    def _entry(self, t: int, centre: str, kind: str, fields: dict) -> tuple[int, str, dict]:
        shard = self.topo.centres[centre].shard
        return t, self.keys.stream(shard, kind), {"v": "1", "ts": str(t), "src": "pingan-sim", **fields}

    def camera_baseline(self, t: int) -> Iterator[tuple[int, str, dict]]:
        """A heartbeat for every camera: most online, a few offline or faulty."""
        for cam in self.cameras:
            state = self.rng.choices(CAMERA_STATES, [95, 3, 2])[0]  # online, offline, fault
            if state != "online" and self.rng.random() < 0.5:
                yield from self._camera(t, cam, state)  # repaired later
            else:
                self.camera_state[cam] = state
                yield self._entry(t, self.topo.camera[cam][0], "cameras", {"cam": cam, "state": state})

    def _spawn(self, t: int, kind: str) -> list[tuple[int, str, dict]]:
        rng = self.rng
        if kind == "case":
            level = 4 if rng.random() < 0.8 else 3
            owner = rng.choice(self.by_level.get(level) or self.by_level[max(self.by_level)])
            urgent = rng.random() < 0.12
            due = t + (4 if urgent else 24) * HOUR_MS // int(self.speed)
            case = Case(f"{self._run}-{next(self._case_seq):07d}", owner,
                        rng.choices(*self._categories)[0], urgent, due)
            fields = {"eid": case.eid, "status": "reported", "centre": owner,
                      "category": case.category,
                      "channel": rng.choices(*self._channels)[0],
                      "urgency": "urgent" if urgent else "normal", "due": str(due)}
            if owner in self.grids_of:
                fields["grid"] = rng.choice(self.grids_of[owner])[0]
            texts = SUMMARIES.get(case.category)
            if texts and self.case_rng.random() < SUMMARY_SHARE:
                fields["summary"] = self.case_rng.choice(texts)
            self._schedule(t + self._delay(0.3), "dispatched", case)
            return [self._entry(t, owner, "events", fields)]
        if kind == "patrol":
            gid, centre, workers = rng.choice(self.grids)
            worker = f"W-{gid}-{rng.randint(1, max(1, workers))}"
            return [self._entry(t, centre, "patrols",
                                {"pid": f"{self._run}-P{next(self._seq)}", "grid": gid, "worker": worker})]
        if kind == "camera":
            if not self.cameras:
                return []
            cam = rng.choice(self.cameras)
            if self.camera_state.get(cam, "online") != "online":
                return []
            return self._camera(t, cam, rng.choice(["offline", "fault"]))
        # petition
        level = rng.choices([4, 3, 2], [60, 30, 10])[0]
        centre = rng.choice(self.by_level.get(level) or self.by_level[max(self.by_level)])
        return [self._entry(t, centre, "petitions", {
            "pid": f"{self._run}-T{next(self._seq)}", "centre": centre,
            "channel": rng.choices(*self._petition_channels)[0],
            "group": "1" if rng.random() < 0.08 else "0",
            "skip_level": "1" if rng.random() < 0.05 else "0"})]

    def _camera(self, t: int, cam: str, state: str) -> list[tuple[int, str, dict]]:
        """A camera changes state; a failed one is repaired after a while."""
        self.camera_state[cam] = state
        if state != "online":
            self._schedule(t + self._delay(2), "recover", cam)
        return [self._entry(t, self.topo.camera[cam][0], "cameras", {"cam": cam, "state": state})]

    def _advance(self, t: int, what: str, case) -> list[tuple[int, str, dict]]:
        rng = self.rng
        if what == "recover":
            return self._camera(t, case, "online")
        base = {"eid": case.eid, "centre": case.owner, "category": case.category}
        if what in ("dispatched", "handling"):
            nxt = "handling" if what == "dispatched" else (
                "escalated" if rng.random() < 0.15 and self.topo.centres[case.owner].parent else "resolved")
            self._schedule(t + self._delay(0.5 if what == "dispatched" else (2 if case.urgent else 6)),
                           nxt, case)
            out = [self._entry(t, case.owner, "events", {**base, "status": what})]
            above = self.topo.ancestors(case.owner)[:-1]  # root … parent
            if what == "handling" and above and self.case_rng.random() < SUPERVISE_SHARE:
                by = self.case_rng.choice(above)  # 督办 from a centre above the owner
                out.append(self._entry(t, case.owner, "events", {
                    **base, "status": "supervised", "by": by, "user": f"duty-{by}",
                    "note": self.case_rng.choice(SUPERVISE_NOTES)}))
            return out
        if what == "escalated":
            to = self.topo.centres[case.owner].parent
            out = [self._entry(t, case.owner, "events", {**base, "status": "escalated", "to": to})]
            case.owner = to
            up = self.topo.centres[to].parent
            nxt = "escalated" if up and rng.random() < 0.25 else "resolved"
            self._schedule(t + self._delay(4), nxt, case)
            return out
        if what == "resolved":
            if rng.random() < 0.7:
                self._schedule(t + self._delay(3), "evaluated", case)
            return [self._entry(t, case.owner, "events", {**base, "status": "resolved"})]
        satisfied = "1" if rng.random() < 0.92 else "0"
        return [self._entry(t, case.owner, "events", {**base, "status": "evaluated", "satisfied": satisfied})]

    def stream(self, t0: int, t_end: int | None = None) -> Iterator[tuple[int, str, dict]]:
        """Entries in time order from virtual time t0 (until t_end, if given)."""
        t_next, kind = self._next_arrival(t0)
        while True:
            if self._heap and self._heap[0][0] <= t_next:
                t, _, what, payload = heapq.heappop(self._heap)
                if t_end is not None and t > t_end:
                    return
                yield from self._advance(t, what, payload)
                continue
            if t_end is not None and t_next > t_end:
                return
            yield from self._spawn(t_next, kind)
            t_next, kind = self._next_arrival(t_next)


def recent_entries(topo: Topology, grids: list[tuple[str, str, int]], count: int, *,
                   now_ms: int, span_ms: int, seed: int = 1, speed: float = 60.0,
                   prefix: str = "pingan", tz: str = "Asia/Shanghai",
                   baseline: bool = True, quiet: frozenset[str] = frozenset(),
                   ) -> list[tuple[int, str, dict]]:
    """`count` entries spread over the recent past [now − span, now], none dated later than
    now (the contract refuses entries from the future), after one heartbeat per camera when
    `baseline`. The volume follows the daily rhythm, so the scale that yields `count` depends
    on the hours in the span: it is raised until the span holds them (same seed each try),
    and a span too short for `count` (a minute after midnight) is widened."""
    natural = Simulator(topo, grids, seed=seed, tz=tz).natural_entries_per_s()
    scale = 1.2 * count / (natural * max(1.0, span_ms / 1000))
    for attempt in itertools.count():
        sim = Simulator(topo, grids, seed=seed, speed=speed, prefix=prefix, start_ms=now_ms,
                        tz=tz, quiet=quiet)
        sim.scale = scale
        head = list(sim.camera_baseline(now_ms - span_ms)) if baseline else []
        body = list(itertools.islice(sim.stream(now_ms - span_ms, now_ms), count))
        if len(body) >= count:
            return head + body
        if attempt % 4 == 3:  # too many for so short a span (arrivals are 1 ms apart at most)
            span_ms *= 2
        else:
            scale *= min(10.0, 1.5 * count / max(1, len(body)))
    raise AssertionError("unreachable")


def write(r: redis.Redis, entries: Iterator[tuple[int, str, dict]], *, limit: int | None = None,
          pace: bool = False, chunk: int = 500, should_stop=lambda: False) -> int:
    """XADD entries (pipelined); with `pace`, none is written before its timestamp.

    Like a real producer, it outlives a Redis restart: a chunk that could not be written is
    sent again once Redis answers (the contract's idempotency keys make a chunk that did
    arrive count once)."""
    n = 0
    batch: list[tuple[str, dict]] = []

    def flush() -> None:
        while True:
            pipe = r.pipeline(transaction=False)
            for key, fields in batch:
                pipe.xadd(key, fields)
            try:
                pipe.execute()
                batch.clear()
                return
            except (redis.ConnectionError, redis.TimeoutError):
                if should_stop():
                    raise
                time.sleep(1.0)

    for t, key, fields in entries:
        if limit is not None and n >= limit:
            break
        if pace:
            delay = t / 1000 - time.time()
            if delay > 0:
                if batch:
                    flush()
                time.sleep(delay)
        batch.append((key, fields))
        n += 1
        if len(batch) >= chunk:
            flush()
        if should_stop():
            break
    if batch:
        flush()
    return n


# ---- the demo: one deterministic sequence, written once -------------------------------------
# of the generator: bump it whenever a seed would give another sequence (rates, rhythms, the
# order of random draws), since a restart skips entries by their place in the sequence; a run
# recorded by another version is not continued
DEMO_VERSION = 1


class DemoMismatch(Exception):
    """Redis holds a demo run this registry or generator cannot continue."""


@dataclass(frozen=True)
class DemoRun:
    """Everything the demo's sequence of entries is generated from: the same run gives the
    same entries, so a restart regenerates the sequence and writes only what is missing."""

    seed: int
    origin_ms: int  # the history starts here (a local midnight)
    speed: float
    registry: str  # fingerprint of the registry the run was made for
    quiet: tuple[str, ...] = ()
    scale: float = 1.0  # of the natural volume (tests use less)
    version: int = DEMO_VERSION


def registry_fingerprint(topo: Topology, grids: list[tuple[str, str, int]]) -> str:
    """Centres, grids and cameras the sequence depends on, hashed."""
    h = hashlib.sha1()
    for part in (sorted(topo.centres), sorted(map(repr, grids)), sorted(topo.camera)):
        h.update("\n".join(part).encode())
    return h.hexdigest()[:16]


def history_origin(now_ms: int, days: int, tz: str) -> int:
    """Local midnight `days - 1` days before today: with today, `days` whole days."""
    zone = ZoneInfo(tz)
    today = datetime.fromtimestamp(now_ms / 1000, zone).date()
    first = datetime.fromordinal(today.toordinal() - (days - 1)).replace(tzinfo=zone)
    return int(first.timestamp() * 1000)


def demo_run(r: redis.Redis, keys: Keys, proposed: DemoRun) -> tuple[DemoRun, int]:
    """The demo run recorded in Redis (`proposed` is recorded if there is none yet) and how
    many entries of its sequence are written."""
    key = keys.demo_run()
    r.hsetnx(key, "run", json.dumps(asdict(proposed)))
    raw, written = r.hmget(key, "run", "written")
    try:
        data = json.loads(raw)
        data["quiet"] = tuple(data.get("quiet", ()))
        run = DemoRun(**data)
    except (TypeError, ValueError) as e:
        raise DemoMismatch(f"{key} does not hold a demo run ({e})") from None
    if run.version != DEMO_VERSION or run.registry != proposed.registry:
        raise DemoMismatch(f"{key} holds a demo run of another registry or generator: start "
                           "the demo on a fresh data dir (or delete the key to start over)")
    return run, int(written or 0)


@dataclass
class DemoStats:
    skipped: int = 0  # entries an earlier start wrote: regenerated, not written
    regenerate_s: float = 0.0
    backfilled: int = 0  # entries dated up to the start, written with ids at their own time
    backfill_s: float = 0.0
    live: int = 0  # entries written when their time came


@dataclass
class DemoFeed:
    """Writes a `DemoRun`'s sequence: what is dated up to `now` at once, the rest as its
    time comes. Each chunk of entries goes in one MULTI/EXEC with the count of entries
    written, so a crash or a stop at any point leaves exactly the written part counted and
    a restart writes each entry once.

    History older than the contract's lateness bound (48 h) would be a dead letter if it
    arrived now: entries dated before the start are written with stream ids at their own
    time (as if they had arrived then; every stream id stays above the stream's last one),
    live entries with ids given by Redis."""

    r: redis.Redis
    topo: Topology
    grids: list[tuple[str, str, int]]
    keys: Keys
    run: DemoRun
    tz: str = "Asia/Shanghai"
    chunk: int = 500
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    _last: dict[str, tuple[int, int]] = field(default_factory=dict)

    def sequence(self) -> Iterator[tuple[int, str, dict]]:
        run = self.run
        sim = Simulator(self.topo, self.grids, seed=run.seed, speed=run.speed,
                        start_ms=run.origin_ms, tz=self.tz, prefix=self.keys.prefix,
                        quiet=frozenset(run.quiet))
        sim.scale = run.scale
        return itertools.chain(sim.camera_baseline(run.origin_ms), sim.stream(run.origin_ms))

    def feed(self, written: int, *, live: bool = True, now_ms: int | None = None,
             should_stop: Callable[[], bool] = lambda: False,
             on_backfilled: Callable[[DemoStats], None] = lambda _s: None) -> DemoStats:
        """Skip the `written` entries, write the rest dated up to `now_ms` (default: now),
        then, with `live`, each later entry at its time until `should_stop`."""
        stats = DemoStats(skipped=written)
        started = time.monotonic()
        seq = self.sequence()
        for _ in itertools.islice(seq, written):
            pass
        stats.regenerate_s = time.monotonic() - started
        horizon = int(self.clock() * 1000) if now_ms is None else now_ms
        n = written
        pending: list[tuple[str, str, dict]] = []
        backfilling = True
        for t, stream, fields in seq:
            if should_stop():
                break
            if t <= horizon:
                pending.append((stream, self._next_id(stream, t), fields))
                stats.backfilled += 1
            else:
                if backfilling:
                    n = self._flush(pending, n, should_stop)
                    stats.backfill_s = time.monotonic() - started - stats.regenerate_s
                    backfilling = False
                    on_backfilled(stats)
                if not live or not self._wait(t, should_stop):
                    break
                pending.append((stream, "*", fields))
                stats.live += 1
                n = self._flush(pending, n, should_stop)  # a few a minute: each as it comes
                continue
            if len(pending) >= self.chunk:
                n = self._flush(pending, n, should_stop)
        self._flush(pending, n, should_stop)
        if backfilling:
            stats.backfill_s = time.monotonic() - started - stats.regenerate_s
            on_backfilled(stats)
        return stats

    def _wait(self, t: int, should_stop: Callable[[], bool]) -> bool:
        """Sleep until `t` (ms) in short steps; False when stopped first."""
        while (delay := t / 1000 - self.clock()) > 0:
            if should_stop():
                return False
            self.sleep(min(delay, 0.5))
        return not should_stop()

    def _next_id(self, stream: str, t: int) -> str:
        last = self._last.get(stream)
        if last is None:
            last = self._stream_last(stream)
        ms, seq = (t, 0) if t > last[0] else (last[0], last[1] + 1)
        self._last[stream] = (ms, seq)
        return f"{ms}-{seq}"

    def _stream_last(self, stream: str) -> tuple[int, int]:
        try:
            got = self.r.xinfo_stream(stream)["last-generated-id"]
        except redis.ResponseError:  # no such stream yet
            return (0, 0)
        ms, _, seq = (got.decode() if isinstance(got, bytes) else str(got)).partition("-")
        return int(ms), int(seq or 0)

    def _flush(self, pending: list, n: int, should_stop: Callable[[], bool]) -> int:
        """Write `pending` and the new count in one transaction; returns the count. Like a
        real producer it outlives a Redis restart: after a lost connection the count in Redis
        says whether the chunk went in."""
        if not pending:
            return n
        total = n + len(pending)
        key = self.keys.demo_run()
        while True:
            try:
                # on a cluster the chunk spans slots: no transaction, so a retry may write
                # an entry twice (the aggregator counts it once: its idempotency key)
                pipe = self.r.pipeline(transaction=not on_cluster(self.r))
                for stream, entry_id, fields in pending:
                    pipe.xadd(stream, fields, id=entry_id)
                pipe.hset(key, "written", total)
                pipe.execute()
                break
            except (redis.ConnectionError, redis.TimeoutError):
                if should_stop():
                    raise
                self.sleep(1.0)
                try:
                    if int(self.r.hget(key, "written") or 0) >= total:
                        break
                except (redis.ConnectionError, redis.TimeoutError):
                    continue
                self._last.clear()  # the server may have come back older: ask again
                pending[:] = [(s, "*" if i == "*" else self._next_id(s, int(i.split("-")[0])), f)
                              for s, i, f in pending]
        pending.clear()
        return total
