"""Shared parts of the fault suite (issue 8): the summary line, independent counting of what
reached the streams and what the read model holds, dead letters read as raw pairs, and the
aggregator as a real process.

Every fault test ends with one line

    FAULT <name>: injected=<what, how many> written=<n> applied=<n> dead=<n> lost=<n> doubled=<n>

printed, and appended as a JSON line to the file named by `PINGAN_FAULT_REPORT` when it is set
(`scripts/fault_table.py` turns those lines into the table of docs/reliability.md). The line is
written before the test's assertions, so a failing test still reports what it saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import redis

from datasources.aggregator import shard_backlog
from datasources.keys import GROUP, READ_KINDS, Keys
from tests import helpers
from tests.helpers import now_ms

REPORT_ENV = "PINGAN_FAULT_REPORT"
DEAD_HEAD = (b"stream", b"entry", b"reason", b"nfields", b"nbytes", b"sha1", b"truncated")
DEAD_FIELDS_MAX = 32  # docs/STREAMS.md §7
DEAD_VALUE_MAX = 1024
# figures of the day hashes that the independent recount of tests/helpers.py also counts
FIGURES = ("reported", "dispatched", "handling", "resolved", "evaluated", "escalated",
           "patrols", "petitions")


# ---- the summary ---------------------------------------------------------------------------
def report(name: str, *, injected: str, written: int, applied: int, dead: int, lost: int,
           doubled: int, **extra) -> str:
    line = (f"FAULT {name}: injected={injected} written={written} applied={applied} "
            f"dead={dead} lost={lost} doubled={doubled}")
    print(line, flush=True)
    path = os.environ.get(REPORT_ENV)
    if path:
        row = {"name": name, "injected": injected, "written": written, "applied": applied,
               "dead": dead, "lost": lost, "doubled": doubled,
               "test": (os.environ.get("PYTEST_CURRENT_TEST") or "").rsplit(" (", 1)[0],
               **extra}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return line


def shortfall(expected: Counter, got: Counter, names=FIGURES) -> tuple[int, int]:
    """(lost, doubled): what the read model lacks and what it has too much of, per figure."""
    lost = sum(max(0, expected[f] - got[f]) for f in names)
    doubled = sum(max(0, got[f] - expected[f]) for f in names)
    return lost, doubled


# ---- entries -------------------------------------------------------------------------------
def event(centre: str, eid: str, status: str = "reported", ts: int | None = None,
          **extra) -> dict[str, str]:
    return helpers.event(centre, eid, status, ts, **{"src": "fault", **extra})  # a test may set src


def xadd_pairs(r: redis.Redis, stream: str, pairs: list[tuple], entry_id: str = "*") -> str:
    """XADD with the fields exactly as given: in order, duplicates and raw bytes kept."""
    flat = [x for pair in pairs for x in pair]
    got = r.execute_command("XADD", stream, entry_id, *flat)
    return got.decode() if isinstance(got, bytes) else got


def as_bytes(x) -> bytes:
    return x if isinstance(x, bytes) else str(x).encode("utf-8")


def digest(pairs: list[tuple]) -> tuple[int, int, str]:
    """(fields, bytes, SHA-1) of an entry, recomputed here from what the test wrote:
    the SHA-1 of `<len>:<name><len>:<value>` for every field in order (len in bytes)."""
    h = hashlib.sha1()
    size = 0
    for name, value in pairs:
        nb, vb = as_bytes(name), as_bytes(value)
        size += len(nb) + len(vb)
        h.update(str(len(nb)).encode() + b":" + nb + str(len(vb)).encode() + b":" + vb)
    return len(pairs), size, h.hexdigest()


def raw_entries(r: redis.Redis, stream: str) -> list[tuple[str, list[tuple[bytes, bytes]]]]:
    """XRANGE as (id, [(name, value), ...]): order and repeated names kept (redis-py's own
    parser makes a dict of the fields, which drops a repeated name)."""
    raw = redis.Redis(connection_pool=r.connection_pool)
    raw.set_response_callback("XRANGE", lambda reply, **_kw: reply)
    out = []
    last = "-"
    while True:
        batch = raw.execute_command("XRANGE", stream, last, "+", "COUNT", 5000)
        if last != "-":
            batch = batch[1:]
        if not batch:
            return out
        for entry_id, flat in batch:
            out.append((entry_id.decode(), list(zip(flat[::2], flat[1::2], strict=True))))
        last = batch[-1][0].decode()


def dead_letters(r: redis.Redis, keys: Keys, shards) -> list[dict]:
    """Every dead letter of `shards`: its own first seven fields, and the copied pairs."""
    out = []
    for shard in shards:
        for dead_id, pairs in raw_entries(r, keys.dead(shard)):
            head = dict(pairs[:7])
            out.append({"shard": shard, "id": dead_id, "pairs": pairs, "head_names":
                        tuple(n for n, _v in pairs[:7]), "copied": pairs[7:],
                        "stream": head.get(b"stream", b"").decode(),
                        "entry": head.get(b"entry", b"").decode(),
                        "reason": head.get(b"reason", b"").decode("utf-8", "replace"),
                        "nfields": int(head.get(b"nfields", b"-1")),
                        "nbytes": int(head.get(b"nbytes", b"-1")),
                        "sha1": head.get(b"sha1", b"").decode(),
                        "truncated": head.get(b"truncated", b"").decode()})
    return out


def check_dead_letter(d: dict, pairs: list[tuple]) -> list[str]:
    """What is wrong with dead letter `d` of an entry written as `pairs` (docs/STREAMS.md §7)."""
    problems = []
    if d["head_names"] != DEAD_HEAD:
        problems.append(f"first seven fields are {d['head_names']}")
    if len(d["pairs"]) > 7 + DEAD_FIELDS_MAX:
        problems.append(f"{len(d['pairs'])} fields")
    for name, value in d["pairs"]:
        if len(name) > DEAD_VALUE_MAX or len(value) > DEAD_VALUE_MAX:
            problems.append(f"a name or value of {max(len(name), len(value))} bytes")
            break
    n, size, sha = digest(pairs)
    if (d["nfields"], d["nbytes"], d["sha1"]) != (n, size, sha):
        problems.append(f"nfields/nbytes/sha1 {d['nfields']}/{d['nbytes']}/{d['sha1']} "
                        f"!= {n}/{size}/{sha}")
    want = [(as_bytes(k)[:DEAD_VALUE_MAX], as_bytes(v)[:DEAD_VALUE_MAX])
            for k, v in pairs[:DEAD_FIELDS_MAX]]
    if d["copied"] != want:
        problems.append("the copied fields are not the entry's first 32, cut to 1024 bytes")
    truncated = n > DEAD_FIELDS_MAX or want != [(as_bytes(k), as_bytes(v))
                                                for k, v in pairs[:DEAD_FIELDS_MAX]]
    if d["truncated"] != ("1" if truncated else "0"):
        problems.append(f"truncated={d['truncated']}, expected {int(truncated)}")
    return problems


# ---- what the pipeline holds ---------------------------------------------------------------
def all_streams(keys: Keys, shards) -> list[str]:
    return [keys.stream(s, k) for s in shards for k in READ_KINDS] + [
        keys.handoff(s) for s in shards]


def pending_total(r: redis.Redis, keys: Keys, shards) -> int:
    """Entries delivered to a consumer and not acknowledged, over every stream (XPENDING)."""
    total = 0
    for stream in all_streams(keys, shards):
        if r.exists(stream):
            with contextlib.suppress(redis.ResponseError):  # no group: nothing delivered
                total += int(r.xpending(stream, GROUP)["pending"])
    return total


def backlog_total(r: redis.Redis, keys: Keys, shards) -> int:
    return sum(shard_backlog(r, keys, s) for s in shards)


def model_day(r: redis.Redis, topo, keys: Keys, day: str, code: str | None = None) -> Counter:
    """A centre's day figures from the read model (the root: summed over its shard heads)."""
    code = code or topo.roots[0]
    out: Counter = Counter()
    for head in topo.shard_heads(code):
        shard = topo.centres[head].shard
        for k, v in r.hgetall(keys.day(shard, day, head)).items():
            try:
                out[k.decode()] += int(v)
            except ValueError:
                out[k.decode()] += 0
    return out


def recount_as_figures(counted: Counter) -> Counter:
    """tests/helpers.py `independent_counts` keys (events.<status>, patrols, petitions) as
    day-hash figure names."""
    return Counter({k.split(".", 1)[1] if k.startswith("events.") else k: v
                    for k, v in counted.items()})


def local_day(tz: str, ms: int | None = None) -> str:
    ms = now_ms() if ms is None else ms
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%Y%m%d")


# ---- the aggregator as a process -----------------------------------------------------------
def aggregator_env(settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PINGAN_DATA_DIR=str(settings.data_dir), REDIS_URL=settings.redis_url,
        DATABASE_URL=settings.database_url, PINGAN_KEY_PREFIX=settings.key_prefix,
        PINGAN_LEASE_MS=str(settings.lease_ms), PINGAN_TZ=settings.tz,
    )
    env.pop(REPORT_ENV, None)
    env.update(extra)
    return env


def start_aggregator(settings, *args: str, log=None, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dashboard", "aggregate", *args],
                            env=aggregator_env(settings, **extra), stdout=subprocess.DEVNULL,
                            stderr=log if log is not None else subprocess.DEVNULL)


def run_bounded(agg, seconds: float) -> bool:
    """`agg.run(until_idle=True)` in a thread for at most `seconds`; True when it went idle
    by itself (it is stopped either way)."""
    stop = threading.Event()
    runner = threading.Thread(target=agg.run, kwargs={"until_idle": True,
                                                      "should_stop": stop.is_set})
    runner.start()
    runner.join(seconds)
    went_idle = not runner.is_alive()
    stop.set()
    runner.join(60)
    return went_idle


def totals_from(stderr: str) -> dict:
    """The `{"read", "applied", "duplicates", "dead", "seconds"}` line `pingan aggregate`
    prints to stderr when it stops ({} when it printed none)."""
    for line in reversed(stderr.splitlines()):
        line = line.strip()
        if line.startswith("{") and '"applied"' in line:
            return json.loads(line)
    return {}
