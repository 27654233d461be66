"""Scale-out benchmark (issue 13): the figures of a province-sized deployment, one run each,
ratios side by side.

    .venv/bin/python -m bench.scale [--only ingest,province,web,memory] [--quick] [--json]

(as a module, from the repository's root: it imports bench/ingest.py's backlog writer)

Sections (each selectable with `--only`; `--quick` is a smoke-test size of each):

- ingest: the same pre-written backlog applied by 1 standalone redis-server + 1 aggregator and
  by a local 3-master Redis Cluster (+3 replicas) with 1, 2 and 3 aggregator processes
  (`python -m dashboard aggregate`, REDIS_URL = the cluster). The processes are started first
  and left until the shards' leases are spread over all of them, then stopped (SIGSTOP) while
  the backlog is written, and continued: the time is from SIGCONT until every stream group of
  every shard has nothing pending and nothing undelivered (`shard_backlog`).
- province: a synthetic province registry imported into SQLite, traffic aggregated, then
  `ReadModel.snapshot` at the province, a city, a county and a town: median/p95 latency and the
  Redis commands each issues (the server's command counter around one snapshot).
- web: screens on the SSE push (`/live/stream`, PINGAN_AUTH=off) through nginx (deploy/nginx.conf
  rendered by dashboard.devkit.nginx_front) to one gunicorn
  host (N/2 screens) vs two hosts (N screens), same run: after each probe entry written to Redis
  (a reported case in one village), the delay until every screen of that village's chain
  (city, district, town, village) received the changed `events.reported`.
- memory: bench/growth.py for a few simulated days, each key family's bytes per day per
  entry/s extrapolated to 2,000 entries/s.

Everything runs on this machine: its cores are shared by the load generator, the servers and
the Redis nodes, which the printed CPU figures show. `--json` prints only the JSON document.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis
from redis.crc import key_slot

from bench.ingest import make_entries, xadd_all
from dashboard.devkit import nginx_front
from dashboard.devkit.private_redis import start_private_redis, stop_private_redis
from dashboard.devkit.sse_load import Screen, close_screens, open_screens
from dashboard.devkit.stack import Stack, demo_registry, free_port
from dashboard.devkit.stats import pct
from dashboard.settings import Settings
from datasources.aggregator import Aggregator, shard_backlog
from datasources.connection import connect
from datasources.keys import GROUP, STREAM_KINDS, Keys
from datasources.migrations import migrate
from datasources.registry import make_engine
from datasources.registry_io import import_dir
from datasources.synthetic import province_registry
from datasources.topology import (
    Topology,
    load_topology,
    rolled,
    shards_in_scope,
)
from datasources.topology import (
    source as figures_source,
)

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("ingest", "province", "web", "memory")
LEASE_MS = 20_000  # longer than writing the backlog while the aggregators are stopped
TARGET_RATE = 2_000  # entries/s of the province
LATE_S = 10.0  # web: a screen that has not seen a probe this long after the last one missed it
CLK = os.sysconf("SC_CLK_TCK")

# the province's size: cities, counties per city, towns per county, villages per town, grids per
# village (the issue: 10 cities, ~100 counties, ~1,300 towns, ~20,000 villages, ~100,000 grids)
PROVINCE_REGION = {"full": (10, 10, 13, 15, 5), "quick": (3, 3, 3, 4, 2)}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                          capture_output=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           text=True, capture_output=True).stdout.strip()
    return head + (" + uncommitted changes" if dirty else "")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (0 when it is gone)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    return 0.0


def tree_cpu(roots: list[int]) -> float:
    """CPU seconds of the processes `roots` and all their descendants (gunicorn's workers)."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
    todo, seen = list(roots), set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += [c for c, pp in parent.items() if pp == pid]
    return sum(cpu_s(pid) for pid in seen)


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    vals = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


def busy_since(mark: tuple[int, int]) -> float:
    busy, total = machine_busy()
    return (busy - mark[0]) / max(1, total - mark[1])


# ---- a synthetic region ----------------------------------------------------------------------
def region(out: Path, sizes: tuple[int, int, int, int, int], seed: int = 13) -> tuple[str, str]:
    """A synthetic province registry (`datasources.synthetic`) of `sizes` imported into a
    fresh SQLite file; returns the database URL and a description."""
    cities, counties, towns, villages, grids = sizes
    province_registry(out / "registry", cities=cities, counties_per_city=counties,
                      towns_per_county=towns, villages_per_town=villages,
                      grids_per_village=grids, seed=seed)
    db = f"sqlite:///{out / 'registry.sqlite3'}"
    engine = make_engine(db)
    migrate(engine)
    import_dir(engine, out / "registry")
    engine.dispose()
    return db, f"datasources.synthetic.province_registry{sizes}"


# ---- ingest ----------------------------------------------------------------------------------
def _client(url: str):
    return connect(Settings.from_env(redis_url=url).redis)


def _holders(r, keys: Keys, topo: Topology) -> dict[str, str | None]:
    out = {}
    for s in topo.shards:
        token = r.get(keys.lease(s))
        out[s] = token.decode().rsplit(":", 1)[0] if token else None
    return out


def _wait_spread(r, keys: Keys, topo: Topology, procs: int, timeout_s: float) -> None:
    """Until every shard is leased, by exactly `procs` processes, unchanged for 2 s."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        held = _holders(r, keys, topo)
        ok = None not in held.values() and len(set(held.values())) == min(procs, len(held))
        if ok and held == last:
            return
        last = held if ok else None
        time.sleep(1.0)
    raise RuntimeError(f"the leases were not spread over {procs} processes in {timeout_s:.0f} s")


def _drained(r, keys: Keys, topo: Topology, streams: list[str]) -> bool:
    """Nothing pending or undelivered: first the cheap look (the group of every written stream,
    one pipeline), then, once that says so, `shard_backlog` of every shard (also the streams
    the aggregators write to each other)."""
    pipe = r.pipeline(transaction=False)
    for stream in streams:
        pipe.xinfo_groups(stream)
    for groups in pipe.execute():
        g = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
        if g is None or g["pending"] or g.get("lag"):  # lag None (unknown): shard_backlog says
            return False
    return not any(shard_backlog(r, keys, s) for s in topo.shards)


def ingest_run(url: str, db: str, topo: Topology, entries: list, procs: int, tmp: Path,
               label: str, server_pids: list[int], batch: int) -> dict:
    prefix = f"sc{label}{procs}"
    keys = Keys(prefix)
    r = _client(url)
    env = {**os.environ, "REDIS_URL": url, "DATABASE_URL": db, "PINGAN_KEY_PREFIX": prefix,
           "PINGAN_LEASE_MS": str(LEASE_MS), "PINGAN_BATCH_SIZE": str(batch),
           "PINGAN_DATA_DIR": str(tmp), "PYTHONPATH": str(ROOT)}
    ps = []
    with open(tmp / f"aggregate-{label}{procs}.log", "ab") as errlog:
        for _ in range(procs):
            ps.append(subprocess.Popen([sys.executable, "-m", "dashboard", "aggregate"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=errlog, cwd=ROOT))
    try:
        _wait_spread(r, keys, topo, procs, 3 * LEASE_MS / 1000 + 60)
        for p in ps:
            p.send_signal(signal.SIGSTOP)
        write_s = xadd_all(r, entries, "bench", prefix)
        cpu0 = [cpu_s(p.pid) for p in ps], [cpu_s(pid) for pid in server_pids]
        busy0 = machine_busy()
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        for p in ps:
            p.send_signal(signal.SIGCONT)
        streams = sorted({prefix + key[len("bench"):] for key, _f in entries})
        while not _drained(r, keys, topo, streams):
            time.sleep(0.1)
        secs = time.perf_counter() - t0
        busy = busy_since(busy0)
        aggs = [cpu_s(p.pid) - c for p, c in zip(ps, cpu0[0], strict=True)]
        nodes = [cpu_s(pid) - c for pid, c in zip(server_pids, cpu0[1], strict=True)]
    finally:
        for p in ps:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGCONT)
            p.terminate()
        for p in ps:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    n = len(entries)
    applied = sum(int(r.hget(keys.meta(s), "version") or 0) > 0 for s in topo.shards)
    # what the CPU the processes used allows: on this machine's idle cores, and with a core
    # of its own for every process (separate hosts): the busiest process is then the bound
    cores = os.cpu_count() or 1
    on_cores = n / max(max(aggs), max(nodes, default=0), (sum(aggs) + sum(nodes)) / cores)
    own_cores = n / max(max(aggs), max(nodes, default=0))
    r.flushall()
    r.close()
    return {"setup": label, "processes": procs, "entries": n, "seconds": round(secs, 3),
            "entries_per_s": round(n / secs), "write_s": round(write_s, 2),
            "aggregator_cpu_us_per_entry": round(sum(aggs) * 1e6 / n, 1),
            "redis_cpu_us_per_entry": round(sum(nodes) * 1e6 / n, 1),
            "cpu_bound_idle_cores": round(on_cores), "cpu_bound_core_each": round(own_cores),
            "machine_busy": round(busy, 3), "load_avg_1m": round(load, 1),
            "shards_written": applied}


def ingest(quick: bool, entries_n: int | None, batch: int) -> dict:
    from dashboard.devkit.redis_cluster import start_cluster

    tmp = Path(tempfile.mkdtemp(prefix="pingan-scale-ingest-"))
    db, source = region(tmp, PROVINCE_REGION["quick" if quick else "full"])
    topo = load_topology(make_engine(db))
    n = entries_n or (20_000 if quick else 100_000)
    entries = make_entries(topo, n, "bench")
    log(f"ingest: {len(entries):,} entries over {len(topo.shards)} shards ({source})")
    runs = []
    url, proc = start_private_redis(tmp / "redis", "system")
    try:
        pids = [proc.pid] if proc else []
        runs.append(ingest_run(url, db, topo, entries, 1, tmp, "standalone", pids, batch))
        log(f"  {runs[-1]}")
    finally:
        stop_private_redis(tmp / "redis", proc)
    handle = start_cluster(tmp / "cluster")
    try:
        by_master: Counter = Counter()
        for key, _f in entries:
            by_master[handle.master_of(key_slot(key.encode()))] += 1
        pids = [p.pid for p in handle.procs.values()]
        for procs in (1, 2, 3):
            runs.append(ingest_run(handle.url, db, topo, entries, procs, tmp, "cluster", pids,
                                   batch))
            log(f"  {runs[-1]}")
    finally:
        handle.stop()
    base = runs[0]["entries_per_s"]
    for x in runs:
        x["ratio_vs_standalone"] = round(x["entries_per_s"] / base, 2)
        x["ratio_core_each"] = round(x["cpu_bound_core_each"] / runs[0]["cpu_bound_core_each"], 2)
    return {"region": source, "shards": len(topo.shards), "batch": batch,
            "entries_by_master": sorted((round(c / len(entries), 3) for c in by_master.values()),
                                        reverse=True),
            "runs": runs}


def print_ingest(res: dict) -> None:
    print(f"\n## ingest — {res['runs'][0]['entries']:,} entries, {res['shards']} shards "
          f"({res['region']}); entries per cluster master: "
          + ", ".join(f"{x:.0%}" for x in res["entries_by_master"]))
    print(f"{'setup':<11} {'procs':>5} {'entries/s':>10} {'ratio':>6} {'seconds':>8} "
          f"{'agg µs/e':>8} {'redis µs/e':>10} {'CPU allows: idle cores':>22} "
          f"{'core each':>10} {'ratio':>6} {'busy':>5} {'load':>5}")
    for x in res["runs"]:
        print(f"{x['setup']:<11} {x['processes']:>5} {x['entries_per_s']:>10,} "
              f"{x['ratio_vs_standalone']:>6.2f} {x['seconds']:>8.2f} "
              f"{x['aggregator_cpu_us_per_entry']:>8.1f} {x['redis_cpu_us_per_entry']:>10.1f} "
              f"{x['cpu_bound_idle_cores']:>22,} {x['cpu_bound_core_each']:>10,} "
              f"{x['ratio_core_each']:>6.2f} {x['machine_busy']:>5.0%} {x['load_avg_1m']:>5}")
    print("ratio: vs the standalone run. CPU allows: entries / the CPU seconds the processes "
          "used, bound by the busiest process and by this machine's cores (idle cores), or by the "
          "busiest process alone (a core each, as on separate hosts). busy: the whole machine "
          "(other work included); load: 1-minute load average at the start.")


# ---- province --------------------------------------------------------------------------------
def export_tree(commit_ish: str, out: Path) -> None:
    """The project's files at `commit_ish` (git archive: the working tree is not touched)."""
    out.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit_ish], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)


# Run in a child process whose PYTHONPATH is the project tree to measure (this one, or an
# older commit's: `--baseline`), so that it uses only what every version of it has.
SNAPSHOT_COSTS = """
import json, sys, time
import redis
import datasources
from dashboard.settings import Settings
from datasources.readmodel import ReadModel
from datasources.registry import make_engine
from datasources.topology import load_topology
url, db, prefix, samples, *codes = sys.argv[1:]
r = redis.Redis.from_url(url)
count = lambda: r.info("stats")["total_commands_processed"]
settings = Settings.from_env(redis_url=url, database_url=db, key_prefix=prefix)
rm = ReadModel(r, load_topology(make_engine(db)), settings.read_model)
out = {"__tree__": datasources.__file__}
for code in codes:
    for _ in range(3):
        rm.snapshot(code)
    c0 = count()
    c1 = count()
    rm.snapshot(code)
    cmds = count() - c1 - (c1 - c0)  # less the INFO itself
    lat = []
    for _ in range(int(samples)):
        t = time.perf_counter()
        rm.snapshot(code)
        lat.append((time.perf_counter() - t) * 1000)
    out[code] = [cmds, lat]
print(json.dumps(out))
"""


def snapshot_costs(tree: Path, url: str, db: str, prefix: str, samples: int,
                   codes: list[str]) -> dict[str, list]:
    """code → [Redis commands of one snapshot, latencies in ms] as `tree`'s code reads."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", SNAPSHOT_COSTS, url, db, prefix, str(samples),
                          *codes], env=env, cwd=tree, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"snapshots with {tree} failed: {out.stderr[-2000:]}")
    got = json.loads(out.stdout)
    if not got.pop("__tree__").startswith(str(tree)):
        raise RuntimeError(f"the child did not import the project from {tree}")
    return got


def province(quick: bool, entries_n: int | None, samples: int, drill_runs: int,
             baseline: str | None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="pingan-scale-province-"))
    t = time.perf_counter()
    db, source = region(tmp, PROVINCE_REGION["quick" if quick else "full"])
    import_s = time.perf_counter() - t
    t = time.perf_counter()
    topo = load_topology(make_engine(db))
    load_s = time.perf_counter() - t
    levels = Counter(c.level for c in topo.centres.values())
    url, proc = start_private_redis(tmp / "redis", "system")
    try:
        r = redis.Redis.from_url(url)
        settings = Settings.from_env(redis_url=url, database_url=db, key_prefix="prov",
                                     lease_ms=60_000)
        n = entries_n or (20_000 if quick else 200_000)
        entries = make_entries(topo, n, "prov")
        xadd_all(r, entries, "prov", "prov")
        t = time.perf_counter()
        agg = Aggregator(r, topo, settings.pipeline)
        agg.run(until_idle=True)
        agg_s = time.perf_counter() - t
        log(f"province: {len(topo.centres):,} centres, {len(entries):,} entries aggregated "
            f"in {agg_s:.1f} s")
        root = topo.roots[0]
        picks = {}
        cur = root
        while cur is not None and topo.centres[cur].level <= 3:
            picks[cur] = topo.centres[cur].level
            kids = topo.children.get(cur, ())
            cur = sorted(kids)[0] if kids else None
        trees = {"now": ROOT}
        if baseline:
            trees["baseline"] = tmp / "baseline"
            export_tree(baseline, trees["baseline"])
        costs: dict[str, dict[str, list]] = {name: {} for name in trees}
        for rep in range(2):  # alternated, in halves: a busy moment of the machine hits both
            for name, tree in (trees.items() if rep == 0 else reversed(trees.items())):
                got = snapshot_costs(tree, url, db, "prov", max(1, samples // 2), list(picks))
                for code, (cmds, lat) in got.items():
                    costs[name].setdefault(code, [cmds, []])[1].extend(lat)
        rows = []
        for code, level in picks.items():
            row = {"centre": code, "level": level, "children": len(topo.children.get(code, ())),
                   "shards_below": len(shards_in_scope(topo, code)),
                   "rolled": rolled(topo, code)}
            for name, got in costs.items():
                cmds, lat = got[code]
                tag = "" if name == "now" else "baseline_"
                row.update({f"{tag}commands": cmds, f"{tag}p50_ms": round(statistics.median(lat), 2),
                            f"{tag}p95_ms": round(pct(lat, 95), 2)})
            rows.append(row)
            log(f"  {row}")
        r.flushall()
    finally:
        stop_private_redis(tmp / "redis", proc)
    walls = None
    if drill_runs:
        path = [c for c, lv in picks.items() if lv <= 2]
        log(f"province: the wall's drill {' → '.join(path)}")
        walls = drill(db, tmp / "stack", path, drill_runs)
        for x in walls["steps"]:
            x["level"] = topo.centres[x["to"]].level
    return {"drill": walls, "region": source, "centres_by_level": dict(sorted(levels.items())),
            "grids": len(topo.grid_centre), "shards": len(topo.shards),
            "import_s": round(import_s, 1), "topology_load_s": round(load_s, 1),
            "entries": len(entries), "aggregate_s": round(agg_s, 1), "samples": samples,
            "baseline": baseline and subprocess.run(
                ["git", "rev-parse", "--short", baseline], cwd=ROOT, capture_output=True,
                text=True).stdout.strip(), "snapshots": rows}


def drill(db: str, tmp: Path, path: list[str], runs: int) -> dict:
    """bench/wall_drill.py's in-place drill along `path` (province → city → county) on a stack
    of this registry, in headless Chromium: ms from the tap until the figures and map, and
    until the charts, of the new centre are on screen."""
    from bench.wall_drill import load, step
    from dashboard.devkit.browser import chromium

    stack = Stack(tmp, db, prefix="drill")
    stack.start_redis()
    got: dict[str, list[dict]] = {c: [] for c in path[1:]}
    try:
        stack.run("simulate", "--events", "5000")
        stack.start_aggregator()
        stack.start_web(workers=2)
        d = chromium(1920, 1080)
        d.set_script_timeout(120)
        try:
            for _ in range(runs):
                load(d, stack.url, path[0], True)
                for code in path[1:]:
                    got[code].append(step(d, code, leaf=False))
                    time.sleep(1.0)
        finally:
            d.quit()
    finally:
        stack.close()
    return {"runs": runs, "steps": [
        {"to": code, "level": None,
         "figures_ms": round(statistics.median(x["fig"] for x in xs)),
         "figures_max_ms": round(max(x["fig"] for x in xs)),
         "charts_ms": round(statistics.median(x["charts"] for x in xs)),
         "charts_max_ms": round(max(x["charts"] for x in xs)),
         "json_kb": round(statistics.median(x["body"] for x in xs) / 1024)}
        for code, xs in got.items()]}


def print_province(res: dict) -> None:
    lv = ", ".join(f"level {k}: {v:,}" for k, v in res["centres_by_level"].items())
    print(f"\n## province — {res['region']}: {lv}; {res['grids']:,} grids, {res['shards']} "
          f"shards; import {res['import_s']} s, topology load {res['topology_load_s']} s; "
          f"{res['entries']:,} entries aggregated in {res['aggregate_s']} s")
    base = res["baseline"]
    print(f"ReadModel.snapshot, {res['samples']} each; commands: what the server counted for one"
          + (f"; baseline: the same data read by the code of {base}" if base else ""))
    print(f"{'centre':<12} {'level':>5} {'children':>8} {'shards below':>12} {'rolled':>6} "
          f"{'commands':>8} {'p50 ms':>7} {'p95 ms':>7}"
          + (f" {'base cmds':>9} {'p50 ms':>7} {'p95 ms':>7} {'p50 ratio':>9}" if base else ""))
    for x in res["snapshots"]:
        line = (f"{x['centre']:<12} {x['level']:>5} {x['children']:>8} {x['shards_below']:>12} "
                f"{str(x['rolled']):>6} {x['commands']:>8,} {x['p50_ms']:>7.2f} {x['p95_ms']:>7.2f}")
        if base:
            line += (f" {x['baseline_commands']:>9,} {x['baseline_p50_ms']:>7.2f} "
                     f"{x['baseline_p95_ms']:>7.2f} {x['baseline_p50_ms'] / x['p50_ms']:>9.1f}")
        print(line)
    if res["drill"]:
        print(f"the wall's drill (bench/wall_drill.py, in place, 1920x1080, {res['drill']['runs']} "
              "runs; ms after the tap, median (max))")
        print(f"{'to':<14} {'level':>5} {'figures+map':>15} {'charts':>15} {'json KB':>8}")
        for x in res["drill"]["steps"]:
            print(f"{x['to']:<14} {x['level']:>5} "
                  f"{x['figures_ms']:>8} ({x['figures_max_ms']:>4}) "
                  f"{x['charts_ms']:>8} ({x['charts_max_ms']:>4}) {x['json_kb']:>8}")


# ---- web -------------------------------------------------------------------------------------
def _probe(r: redis.Redis, stream: str, village: str, i: int) -> float:
    """A reported case in `village`; returns when it was written (ms, before the XADD)."""
    now = time.time() * 1000
    r.xadd(stream, {"v": "1", "ts": str(int(now)), "src": "bench", "eid": f"scale-{int(now)}-{i}",
                    "status": "reported", "centre": village, "category": "fire",
                    "channel": "video", "urgency": "normal", "due": str(int(now) + 3_600_000)})
    return now


async def _web_run(port: int, topo: Topology, prefix: str, chain: list[str], n: int,
                   r: redis.Redis, probes: int, gap_s: float, hosts: list[int],
                   nginx: int) -> dict:
    """`hosts`: the gunicorn masters' pids, `nginx`: nginx's (their CPU is measured). Also
    when each centre's figures source (shard meta or roll-up meta) moved after a probe: the
    pipeline's part of the delay (aggregator, roll-up), the rest is the web's."""
    stream = Keys(prefix).stream(topo.centres[chain[-1]].shard, "events")
    screens = [Screen("127.0.0.1", port, chain[i % len(chain)]) for i in range(n)]
    t = time.monotonic()
    tasks = await open_screens(screens)
    open_s = time.monotonic() - t
    await asyncio.sleep(3)
    sent: list[tuple[float, list[int | None]]] = []
    busy0 = machine_busy()
    load = os.getloadavg()[0]
    cpu0 = time.process_time(), tree_cpu(hosts), tree_cpu([nginx])
    t0 = time.monotonic()
    metas = [Keys(prefix).source_meta(figures_source(topo, c)) for c in chain]
    marks: list[list[float | None]] = []  # per probe: ms until each chain centre's source moved
    for i in range(probes):
        before = [s.value for s in screens]
        versions = [r.hget(k, "version") for k in metas]
        at = _probe(r, stream, chain[-1], i)
        sent.append((at, before))
        got: list[float | None] = [None] * len(metas)
        while time.time() * 1000 - at < gap_s * 1000:
            await asyncio.sleep(0.01)
            for j, k in enumerate(metas):
                if got[j] is None and r.hget(k, "version") != versions[j]:
                    got[j] = time.time() * 1000 - at
        marks.append(got)
    busy = busy_since(busy0)
    secs = time.monotonic() - t0
    client, web_cpu, nginx_cpu = (time.process_time() - cpu0[0], tree_cpu(hosts) - cpu0[1],
                                  tree_cpu([nginx]) - cpu0[2])
    await asyncio.sleep(LATE_S)  # a screen later than the gap still counts, as late
    delays: list[float] = []
    missed = 0
    for at, before in sent:
        for s, b in zip(screens, before, strict=True):
            d = s.delay_ms(at, b)
            if d is None:
                missed += 1
            else:
                delays.append(d)
    await close_screens(tasks)
    # a screen that missed a probe counts as later than any that saw it
    p95 = pct(delays + [math.inf] * missed, 95) if delays else math.inf
    errors = Counter(s.error for s in screens if s.error and s.value is None)
    return {"screens": n, "connected": sum(s.value is not None for s in screens),
            "open_s": round(open_s, 1), "probes": probes, "samples": len(delays),
            "missed": missed, "p50_ms": round(statistics.median(delays)) if delays else None,
            "p95_ms": round(p95) if p95 < math.inf else None,
            "max_ms": round(max(delays)) if delays else None,
            "within_1s": round(sum(d <= 1000 for d in delays) / max(1, len(delays) + missed), 4),
            "machine_busy": round(busy, 3), "load_avg_1m": round(load, 1),
            "cores_web": round(web_cpu / secs, 2), "cores_nginx": round(nginx_cpu / secs, 2),
            "cores_client": round(client / secs, 2),
            # the web's CPU per screen per probe (keepalives between probes included)
            "web_cpu_ms_per_screen_change": round(web_cpu * 1000 / (probes * n), 2),
            "source_moved_p50_ms": {c: _median([m[j] for m in marks]) for j, c in enumerate(chain)},
            "errors": dict(errors.most_common(3))}


def web(quick: bool, screens: int | None, workers: int, probes: int) -> dict:
    n = screens or (100 if quick else 2000)
    probes = probes or (4 if quick else 10)
    tmp = Path(tempfile.mkdtemp(prefix="pingan-scale-web-"))
    host_a = Stack(tmp, demo_registry(tmp), prefix="scaleweb")
    host_b = Stack(tmp, host_a.db_url, prefix=host_a.prefix)
    host_a.start_redis()
    runs = []
    try:
        host_a.run("simulate", "--events", "3000")
        host_a.start_aggregator()
        host_a.start_web(workers=workers)
        host_b.start_web(workers=workers)
        topo = load_topology(make_engine(host_a.db_url))
        village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
        chain = topo.ancestors(village)
        r = host_a.redis()
        for label, ups, count in (("1 host", [host_a.port], n // 2),
                                  ("2 hosts", [host_a.port, host_b.port], n)):
            port = free_port()
            nginx = nginx_front.start(tmp / f"nginx-{len(ups)}", port,
                                      [f"127.0.0.1:{p}" for p in ups],
                                      worker_connections=2 * count + 1000)
            try:
                log(f"web: {label}, {count} screens")
                pids = [h.procs["web"].pid for h in (host_a, host_b)][:len(ups)]
                res = asyncio.run(_web_run(port, topo, host_a.prefix, chain, count, r, probes,
                                           3.0, pids, nginx.proc.pid))
            finally:
                nginx.stop()
            runs.append({"setup": label, **res})
            log(f"  {runs[-1]}")
            time.sleep(3)  # the hosts notice the closed streams
    finally:
        host_b.stop("web")
        host_a.close()
    return {"centres": chain, "gunicorn_workers_per_host": workers, "runs": runs}


def _median(xs: list[float | None]) -> int | None:
    got = [x for x in xs if x is not None]
    return round(statistics.median(got)) if got else None


def _ms(v: int | None) -> str:
    return "missed" if v is None else str(v)


def print_web(res: dict) -> None:
    print(f"\n## web — SSE screens through nginx, {res['gunicorn_workers_per_host']} gevent "
          f"workers per host; screens spread over {', '.join(res['centres'])}; delay = probe "
          "XADD → each screen's changed events.reported")
    print(f"{'setup':<8} {'screens':>7} {'connected':>9} {'samples':>7} {'missed':>6} "
          f"{'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'≤1 s':>6} {'web cores':>9} "
          f"{'nginx':>5} {'client':>6} {'busy':>5} {'load':>5} {'web ms/screen/change':>20}")
    for x in res["runs"]:
        print(f"{x['setup']:<8} {x['screens']:>7} {x['connected']:>9} {x['samples']:>7} "
              f"{x['missed']:>6} {_ms(x['p50_ms']):>7} {_ms(x['p95_ms']):>7} {_ms(x['max_ms']):>7} "
              f"{x['within_1s']:>6.1%} {x['cores_web']:>9.2f} {x['cores_nginx']:>5.2f} "
              f"{x['cores_client']:>6.2f} {x['machine_busy']:>5.0%} {x['load_avg_1m']:>5} "
              f"{x['web_cpu_ms_per_screen_change']:>20.2f}")
        print("         figures source moved (aggregator, roll-up), p50 ms after the XADD: "
              + ", ".join(f"{c} {_ms(v)}" for c, v in x["source_moved_p50_ms"].items()))
        if x["errors"]:
            print(f"         errors: {x['errors']}")
    print("cores: CPU seconds per second of the probe phase (web: the gunicorn hosts with their "
          "workers; client: this process, all screens); busy: the whole machine, other work "
          "included; load: 1-minute load average at the start")


# ---- memory ----------------------------------------------------------------------------------
_ROW = re.compile(r"^  (\S+)\s+((?:\s*\d+)+)\s+(-?[\d,]+)$")


def memory(quick: bool, days: int | None, rate: float, day_seconds: float) -> dict:
    days = days or (3 if quick else 6)
    cmd = [sys.executable, str(ROOT / "bench" / "growth.py"), "--days", str(days),
           "--rate", str(rate), "--day-seconds", str(day_seconds)]
    log("memory: " + " ".join(cmd[1:]))
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(f"bench/growth.py failed: {out.stderr[-2000:]}")
    s = Settings.from_env()
    stream_days = s.stream_retention_days
    kept = {**dict.fromkeys((*STREAM_KINDS, "seen"), stream_days),
            **dict.fromkeys(("d", "wk", "pg"), s.day_bucket_ttl_s / 86400),
            "h": s.hour_bucket_ttl_s / 86400}
    families = []
    for line in out.stdout.splitlines():
        m = _ROW.match(line)
        if not m:
            continue
        slope = int(m.group(3).replace(",", ""))
        per_day = slope * TARGET_RATE
        families.append({"family": m.group(1), "bytes_per_day_per_entry_s": slope,
                         "gb_per_day_at_2000": round(per_day / 1e9, 2),
                         "retained_days": kept.get(m.group(1)),
                         "gb_retained_at_2000": round(per_day * kept[m.group(1)] / 1e9, 1)
                         if m.group(1) in kept else None})
    return {"days": days, "rate": rate, "day_seconds": day_seconds, "families": families,
            "growth_head": out.stdout.splitlines()[0] if out.stdout else ""}


def print_memory(res: dict) -> None:
    print(f"\n## memory — bench/growth.py, {res['days']} simulated days at {res['rate']} "
          f"entries/s, growth between its last two checkpoints × {TARGET_RATE:,} entries/s")
    print(f"   ({res['growth_head']})")
    print(f"{'family':<14} {'B/day per entry/s':>17} {'GB/day at 2,000/s':>17} "
          f"{'kept days':>9} {'GB kept':>8}")
    for x in res["families"]:
        kept = f"{x['retained_days']:g}" if x["retained_days"] else "-"
        gb = f"{x['gb_retained_at_2000']:,.1f}" if x["gb_retained_at_2000"] is not None else "-"
        print(f"{x['family']:<14} {x['bytes_per_day_per_entry_s']:>17,} "
              f"{x['gb_per_day_at_2000']:>17,.2f} {kept:>9} {gb:>8}")


# ---- main ------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    ap.add_argument("--quick", action="store_true", help="smoke-test sizes")
    ap.add_argument("--json", action="store_true", help="print only the JSON document")
    ap.add_argument("--entries", type=int, default=None, help="ingest/province backlog")
    ap.add_argument("--batch", type=int, default=4000)
    ap.add_argument("--samples", type=int, default=200, help="snapshots per centre")
    ap.add_argument("--baseline", default="44dde8d",
                    help="province: also snapshot with this commit's code ('' for none; "
                         "default: the groundwork of issue 13, before the roll-ups)")
    ap.add_argument("--drill-runs", type=int, default=3, help="province: 0 skips the drill")
    ap.add_argument("--screens", type=int, default=None, help="web: screens over two hosts")
    ap.add_argument("--workers", type=int, default=2, help="web: gevent workers per host")
    ap.add_argument("--probes", type=int, default=None)
    ap.add_argument("--days", type=int, default=None)
    ap.add_argument("--rate", type=float, default=1.0, help="memory: entries per simulated s")
    ap.add_argument("--day-seconds", type=float, default=6.0)
    args = ap.parse_args()
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    bad = set(only) - set(SECTIONS)
    if bad:
        ap.error(f"unknown sections {sorted(bad)} (choose from {', '.join(SECTIONS)})")
    doc: dict = {"commit": commit(), "cpus": os.cpu_count(), "quick": args.quick,
                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sections": {}}
    runners = {
        "ingest": (lambda: ingest(args.quick, args.entries, args.batch), print_ingest),
        "province": (lambda: province(args.quick, args.entries, args.samples, args.drill_runs,
                                      args.baseline or None), print_province),
        "web": (lambda: web(args.quick, args.screens, args.workers, args.probes), print_web),
        "memory": (lambda: memory(args.quick, args.days, args.rate, args.day_seconds),
                   print_memory),
    }
    if not args.json:
        print(f"bench.scale on {doc['commit']}, {doc['cpus']} cores, {doc['started']}"
              + (" (--quick)" if args.quick else ""))
    for name in SECTIONS:
        if name not in only:
            continue
        t = time.monotonic()
        res = runners[name][0]()
        res["wall_s"] = round(time.monotonic() - t, 1)
        doc["sections"][name] = res
        if not args.json:
            runners[name][1](res)
            sys.stdout.flush()
    if args.json:
        print(json.dumps(doc, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
