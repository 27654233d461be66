"""Replay of the last hours for the briefing view (/brief): hourly counters and case markers.

`replay_data(r, keys, topo, code, now_ms)` returns, for the centre `code` and a window of the
last `hours` hourly buckets (the current, partial hour included):

- counters per hour (reported, resolved, petitions, and `reported_resolved`: the hour's
  reports resolved since, the numerator of 办结率) from the same hourly buckets
  `ReadModel.snapshot` reads (`keys.hour(shard, 'YYYYmmddHH', head)` for each shard head of
  the centre): one pipelined HMGET per hour and head;
- case markers: the `reported` entries of the `events` streams of the shards in scope, read
  with pipelined XRANGE over the window in slices of `slice_s` seconds with a COUNT cap per
  slice, so the cost of a request is bounded by `budget` entries however busy the region
  (kept: cases under `code` whose `ts` lies in the window, placed like the live map's markers
  with `geo.place_case`) → compact rows `[ts_ms, lat, lon, category, urgent 0|1]`.

Stream ids are arrival times, `ts` is event time: an entry arrives at or after its `ts`, so
every case of the window has an id inside it. Entries that arrive in a burst long after their
`ts` (a grid-worker app syncing after a day offline, a backfill) crowd one slice with hours of
cases, oldest first; a capped slice like that is read again in FANOUT parts of its remaining
id span, and its crowded parts again (at most MAX_ROUNDS round trips, within the same budget
again), so the sample stays spread over the hours the burst covers. Whenever a read hit its
cap the markers are a sample, and the result says so (`sample`); the counters are always
complete (they come from the buckets).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from datasources.geo import place_case
from datasources.keys import Keys
from datasources.readmodel import hour_key
from datasources.rollup import RESOLVED_OF_REPORTED
from datasources.topology import Topology, shards_in_scope
from datasources.validate import as_int

HOUR_MS = 3_600_000
COUNTERS = ("reported", "resolved", "petitions", RESOLVED_OF_REPORTED)
SKEW_MS = 60_000  # a producer clock this much ahead still has its cases found
FANOUT = 16  # a capped slice of late arrivals is read again in this many parts…
MAX_ROUNDS = 5  # …and its crowded parts again, this many times at most (one round trip each)
MIN_CAP = 4  # entries per slice, at least
MIN_SLICES = 24


def hour_starts(now_ms: int, hours: int = 24) -> list[int]:
    """Start (ms) of each hourly bucket of the window, oldest first; the last holds `now_ms`.
    Buckets are hours of the epoch (as `contract.Clock.buckets` cuts them)."""
    current = now_ms - now_ms % HOUR_MS
    return [current - (hours - 1 - i) * HOUR_MS for i in range(hours)]


def hourly_counts(r, keys: Keys, topo: Topology, code: str, starts: list[int],
                  tz: str) -> dict[str, list[int]]:
    """The `COUNTERS` per hourly bucket of `starts` for `code`'s subtree."""
    zone = ZoneInfo(tz)
    pipe = r.pipeline(transaction=False)
    for s in starts:
        name = datetime.fromtimestamp(s / 1000, zone).strftime("%Y%m%d%H")
        pipe.hmget(hour_key(keys, topo, code, name), COUNTERS)  # a city: its roll-up's
    out: dict[str, list[int]] = {k: [0] * len(starts) for k in COUNTERS}
    for i, values in enumerate(pipe.execute()):
        for k, v in zip(COUNTERS, values, strict=True):
            out[k][i] = as_int(v)
    return out


def _ms(entry_id: bytes | str) -> int:
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(s.split("-", 1)[0])


def _next_id(entry_id: bytes | str) -> str:
    """The smallest stream id after `entry_id` (an exclusive start for XRANGE on Redis 6.2)."""
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, seq = s.split("-", 1)
    return f"{ms}-{int(seq) + 1}"


class _Reader:
    """Pipelined, capped XRANGE reads; counts what they cost."""

    def __init__(self, r) -> None:
        self.r = r
        self.read = 0
        self.commands = 0

    def ranges(self, queries: list[tuple[str, str, str, int]]) -> list[list]:
        """[(stream, start id, end id, count)] → the entries of each, in one round trip."""
        if not queries:
            return []
        pipe = self.r.pipeline(transaction=False)
        for stream, lo, hi, count in queries:
            pipe.xrange(stream, lo, hi, count=count)
        replies = pipe.execute()
        self.commands += len(queries)
        self.read += sum(len(x) for x in replies)
        return replies


def _late(entries: list, slice_ms: int) -> bool:
    """Did these entries arrive long after their `ts` (a burst of old cases)?"""
    lags = []
    for eid, f in entries:
        try:
            lags.append(_ms(eid) - int(f.get(b"ts", b"0")))
        except ValueError:
            continue
    if not lags:
        return False
    lags.sort()
    return lags[len(lags) // 2] > slice_ms


def _split(query: tuple[str, str, str, int], entries: list, parts: int) -> list[tuple]:
    """The rest of a capped XRANGE (after its last entry) in `parts` equal id-time parts."""
    stream, _lo, hi, count = query
    last = entries[-1][0]
    first, end = _ms(last), int(hi)
    k = max(1, min(parts, end - first + 1))
    step = (end - first + 1) / k
    out = []
    for j in range(k):
        a = first + int(j * step)
        b = end if j == k - 1 else first + int((j + 1) * step) - 1
        if b >= a:
            out.append((stream, _next_id(last) if j == 0 else str(a), str(b), count))
    return out


def read_reported(r, keys: Keys, topo: Topology, code: str, start_ms: int, end_ms: int, *,
                  slice_s: int = 600, budget: int = 12_000, refine: bool = True) -> dict:
    """The reported cases under `code` with `start_ms <= ts <= end_ms`, from the raw streams.

    Reads at most about `budget` entries for the slices (and as many again to refine
    slices of late arrivals). Returns {"cases": [(ts, eid, centre, category, urgent)],
    "sample": bool, "cap": entries per slice, "read": entries read, "commands": XRANGEs}."""
    shards = shards_in_scope(topo, code)
    lo_all = start_ms - SKEW_MS
    slice_ms = slice_s * 1000
    n_slices = -(-(end_ms + 1 - lo_all) // slice_ms)
    if len(shards) * n_slices * MIN_CAP > budget:  # a very wide scope: fewer, longer slices
        n_slices = max(MIN_SLICES, budget // (len(shards) * MIN_CAP))
        slice_ms = -(-(end_ms + 1 - lo_all) // n_slices)
    edges = list(range(lo_all, end_ms + 1, slice_ms))
    slices = [(a, min(a + slice_ms, end_ms + 1) - 1) for a in edges]
    cap = max(MIN_CAP, min(1000, budget // max(1, len(shards) * len(slices))))
    reader = _Reader(r)
    queries = [(keys.stream(s, "events"), str(a), str(b), cap) for s in shards for a, b in slices]
    replies = reader.ranges(queries)

    results = list(replies)
    capped = [(q, rep) for q, rep in zip(queries, replies, strict=True) if len(rep) >= cap]
    sample = False
    spare = budget  # entries the refinement may read
    for _round in range(MAX_ROUNDS):
        late = [(q, rep) for q, rep in capped if refine and _late(rep, slice_ms)]
        sample = sample or len(late) < len(capped)  # busy but on time: a sample, by design
        fanout = min(FANOUT, spare // (cap * len(late))) if late else 0
        if fanout < 2:
            sample = sample or bool(late)
            break
        sub = [part for q, rep in late for part in _split(q, rep, fanout)]
        before = reader.read
        sub_replies = reader.ranges(sub)
        spare -= reader.read - before
        results.extend(sub_replies)
        capped = [(q, rep) for q, rep in zip(sub, sub_replies, strict=True) if len(rep) >= cap]
    else:
        sample = sample or bool(capped)

    cases: dict[tuple[str, str], tuple] = {}
    for rep in results:
        for _id, f in rep:
            if f.get(b"status") != b"reported" or f.get(b"handoff") == b"1":
                continue
            try:
                ts = int(f[b"ts"])
                eid = f[b"eid"].decode()
                centre = f[b"centre"].decode()
                category = f[b"category"].decode()
            except (KeyError, ValueError, UnicodeDecodeError):
                continue
            key = (eid, centre)  # the aggregator's idempotency key of a report
            if not start_ms <= ts <= end_ms or centre not in topo.centres or key in cases:
                continue
            if category not in topo.vocab.categories or not topo.is_within(centre, code):
                continue
            cases[key] = (ts, eid, centre, category, 1 if f.get(b"urgency") == b"urgent" else 0)
    return {"cases": sorted(cases.values()), "sample": sample, "cap": cap,
            "read": reader.read, "commands": reader.commands}


def _thin(rows: list, limit: int) -> list:
    """Every k-th row so that at most `limit` remain (keeps the spread over time)."""
    if len(rows) <= limit:
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def replay_data(r, keys: Keys, topo: Topology, code: str, now_ms: int, *,
                tz: str = "Asia/Shanghai", hours: int = 24, slice_s: int = 600,
                budget: int = 12_000, max_markers: int = 5_000) -> dict:
    """Everything the briefing view's replay needs for `code`, sent once to the browser.

    - `starts`: start (ms) of each hourly bucket; `offsets`: the local UTC offset (minutes)
      at each; `labels`: local "HH:00" of each; `now`: end of the window (ms);
    - `reported`, `resolved`, `petitions`, `reported_resolved`: per bucket (the replay's
      办结率 at a moment is Σ reported_resolved / Σ reported of the buckets ended by then:
      of the cases reported in the window so far, the share resolved by now — never above 1;
      `resolved` counts resolutions of the hour, of cases reported at any time);
    - `cases`: `[ts_ms, lat, lon, category, urgent]` by ts; `sample`: markers are a sample;
    - `cost`: {"read": entries read, "commands": XRANGEs, "cap": entries per slice}.
    """
    if code not in topo.centres:
        raise KeyError(f"unknown centre {code!r}")
    zone = ZoneInfo(tz)
    starts = hour_starts(now_ms, hours)
    counts = hourly_counts(r, keys, topo, code, starts, tz)
    found = read_reported(r, keys, topo, code, starts[0], now_ms, slice_s=slice_s,
                          budget=budget)
    rows = []
    for ts, eid, centre, category, urgent in found["cases"]:
        pos = place_case(topo, eid, centre)
        if pos is not None:
            rows.append([ts, pos[1], pos[0], category, urgent])
    thinned = _thin(rows, max_markers)
    local = [datetime.fromtimestamp(s / 1000, zone) for s in starts]
    return {
        "code": code,
        "now": now_ms,
        "hour_ms": HOUR_MS,
        "starts": starts,
        "offsets": [int(d.utcoffset().total_seconds() // 60) for d in local],
        "labels": [d.strftime("%H:00") for d in local],
        **counts,
        "cases": thinned,
        "sample": found["sample"] or len(thinned) < len(rows),
        "cost": {"read": found["read"], "commands": found["commands"], "cap": found["cap"]},
    }
