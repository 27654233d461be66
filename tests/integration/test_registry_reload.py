"""Registry changes on a running system (issue 12 item 9) and the aggregator's per-producer
figures: `pingan registry import` of a changed registry reaches a running `pingan aggregate`
and a running gunicorn within seconds, without a restart of either."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
import urllib.request
import uuid

import pytest
import redis

from dashboard.devkit.stack import Stack, copy_registry
from datasources.aggregator import Aggregator
from datasources.keys import Keys
from datasources.producers import UNREGISTERED
from datasources.registry_watch import registry_version
from tests.helpers import wait_until

CITY, DISTRICT = "610200", "610202"
NEW_NAME = "王益新区"
NEW_GRID, NEW_CAM = "610202001001-G99", "CAM-610202001001-9999"
VILLAGE = "610202001001"


def _event(centre: str, eid: str, src: str, category: str = "dispute", **extra) -> dict:
    now = int(time.time() * 1000)
    f = {"v": "1", "ts": str(now), "src": src, "eid": eid, "status": "reported",
         "centre": centre, "category": category, "channel": "hotline_12345",
         "urgency": "normal", "due": str(now + 3_600_000)}
    f.update(extra)
    return f


# ---- the aggregator's per-producer figures (real Redis) -------------------------------------
def test_producer_figures_per_src(r, topo, settings):
    keys = Keys(settings.key_prefix)
    shard = topo.centres[VILLAGE].shard
    stream = keys.stream(shard, "events")
    before = int(time.time() * 1000)
    for entry in (_event(VILLAGE, "p-1", "city12345"), _event(VILLAGE, "p-1", "city12345"),
                  _event(VILLAGE, "p-2", "city12345", ts=str(before - 5000)),
                  _event(VILLAGE, "s-1", "pingan-sim"),
                  _event(VILLAGE, "u-1", "evil|src:junk"),
                  _event(VILLAGE, "u-2", "revoked-one"),
                  _event("999999", "d-1", "city12345"),  # unknown centre: a dead letter
                  {**_event(VILLAGE, "d-2", "x" * 60), "ts": "yesterday"}):
        r.xadd(stream, entry)
    agg = Aggregator(r, topo, settings.pipeline,
                     producer_names=lambda: frozenset({"city12345"}))
    agg.run(until_idle=True)
    after = int(time.time() * 1000)
    h = {k.decode(): int(v) for k, v in r.hgetall(keys.producer_stats(shard)).items()}
    assert h["city12345|accepted"] == 3  # the duplicate counts as accepted
    assert h["pingan-sim|accepted"] == 1
    assert h[f"{UNREGISTERED}|accepted"] == 2  # an unknown and a revoked producer's src
    assert h["city12345|dead|unknown centre"] == 1
    assert h[f"{UNREGISTERED}|dead|not an integer"] == 1
    assert before <= h["city12345|last_ts"] <= after
    assert before <= h["city12345|applied_at"] <= after
    assert 0 <= h["city12345|lag_ms"] < 60_000
    assert not [k for k in h if "evil" in k or "revoked" in k or "xxx" in k]
    assert agg.totals.applied == 5 and agg.totals.dead == 2


def test_a_producer_added_a_moment_ago_is_counted_under_its_name(r, topo, settings):
    """Entries of a producer registered after the aggregator last polled the registry (the
    gateway accepts them at once) are not `(unregistered)`: the batch re-reads the registry."""
    keys = Keys(settings.key_prefix)
    shard = topo.centres[VILLAGE].shard
    names = {"old": frozenset({"city12345"})}
    agg = Aggregator(r, topo, settings.pipeline, producer_names=lambda: names["old"])
    agg.check_registry()  # the names as of now
    names["old"] = frozenset({"city12345", "newcomer"})
    r.incr(keys.registry_version())  # what `pingan producers add` does
    r.xadd(keys.stream(shard, "events"), _event(VILLAGE, "n-1", "newcomer"))
    agg.run(until_idle=True)
    h = {k.decode(): int(v) for k, v in r.hgetall(keys.producer_stats(shard)).items()}
    assert h["newcomer|accepted"] == 1 and f"{UNREGISTERED}|accepted" not in h


def test_aggregator_reloads_between_batches_and_keeps_the_old_registry_on_failure(
        r, topo, settings, demo_db):
    from datasources.registry import make_engine
    from datasources.topology import load_topology

    keys = Keys(settings.key_prefix)
    engine = make_engine(demo_db)
    new = load_topology(engine)
    engine.dispose()
    sql_up = [False]

    def reload():
        if not sql_up[0]:
            raise OSError("SQL is away")
        return new

    agg = Aggregator(r, topo, settings.pipeline, reload=reload,
                     producer_names=lambda: frozenset({"city12345"}),
                     registry_seen=registry_version(r, keys))
    assert not agg.check_registry(force=True)  # the version has not moved: names only
    assert "city12345" in agg._producers and agg.topo is topo
    shard = topo.centres[VILLAGE].shard
    agg._lookup(shard)
    r.incr(keys.registry_version())
    assert not agg.check_registry(force=True) and agg.topo is topo  # failed: kept, logged
    sql_up[0] = True
    assert not agg.check_registry()  # at most once a second
    assert agg.check_registry(force=True)
    assert agg.topo is new and agg.alerts.topo is new and not agg._lookups
    assert agg._lookup(shard) is not None and agg._lookups[shard][0] is new
    # hostile: the version key overwritten with another type is not followed, not fatal
    r.delete(keys.registry_version())
    r.hset(keys.registry_version(), "x", "1")
    assert not agg.check_registry(force=True)
    r.xadd(keys.stream(shard, "events"), _event(VILLAGE, "h-1", "city12345"))
    agg.run(until_idle=True)
    assert agg.totals.applied == 1


# ---- a running system picks up `pingan registry import` -------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db, redis_url):
    """`pingan aggregate` and gunicorn on the session's Redis (a Redis of its own takes
    seconds to stop) under a key prefix of their own."""
    d = tmp_path_factory.mktemp("reloadstack")
    db_url, _ = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix=f"rld{uuid.uuid4().hex[:8]}")
    s.env["REDIS_URL"] = redis_url
    s.start_aggregator()
    s.start_web()
    yield s
    for name in list(s.procs):
        s.stop(name, signal.SIGQUIT if name == "web" else signal.SIGTERM)  # gunicorn: at once
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=f"{s.prefix}:*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def _changed_registry(stack: Stack, out) -> None:
    """The registry exported, then: a district renamed, a grid and a camera added and, when
    the registry takes a vocabulary, the category 数字城管."""
    stack.run("registry", "export", str(out))
    rows = list(csv.reader((out / "centres.csv").open(encoding="utf-8")))
    for row in rows:
        if row[0] == DISTRICT:
            row[1] = NEW_NAME
    with (out / "centres.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    with (out / "grids.csv").open("a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow([NEW_GRID, VILLAGE, "urban", 2])
    with (out / "cameras.csv").open("a", encoding="utf-8", newline="") as f:
        csv.writer(f).writerow([NEW_CAM, VILLAGE, NEW_GRID, "dome", "109.113", "35.089"])
    from datasources.vocabulary import DEFAULT, KINDS

    with (out / "vocabulary.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "code", "zh", "en", "colour"])
        for kind in KINDS:
            for t in DEFAULT.terms(kind):
                w.writerow([kind, t.code, t.zh, t.en, t.colour])
        w.writerow(["category", "digital_city", "数字城管", "Digital city management",
                    "#3a7bd5"])


def _wall(stack: Stack, code: str) -> str:
    with urllib.request.urlopen(f"{stack.url}/screen/wall?centre={code}", timeout=20) as resp:
        return resp.read().decode("utf-8")


def test_registry_import_reaches_running_processes(stack, tmp_path, redis_url):
    r = redis.Redis.from_url(redis_url)
    keys = Keys(stack.prefix)
    assert NEW_NAME not in _wall(stack, CITY)
    v0 = registry_version(r, keys)
    _changed_registry(stack, tmp_path / "reg")
    res = subprocess.run(stack.pingan("registry", "import", str(tmp_path / "reg")),
                         env=stack.env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "registry version" in res.stderr
    assert int(registry_version(r, keys)) == int(v0) + 1
    shard = DISTRICT
    # entries the old registry refuses: a new category, the new camera, the new grid
    r.xadd(keys.stream(shard, "events"),
           _event(VILLAGE, "dc-1", "pingan-sim", category="digital_city", grid=NEW_GRID))
    r.xadd(keys.stream(shard, "cameras"), {"v": "1", "ts": str(int(time.time() * 1000)),
                                           "src": "pingan-sim", "cam": NEW_CAM,
                                           "state": "online"})

    def applied() -> bool:  # both taken: applied or dead-lettered
        stats = r.hgetall(keys.producer_stats(shard))
        return sum(int(v) for k, v in stats.items() if k.startswith(b"pingan-sim|")
                   and (k.endswith(b"|accepted") or b"|dead|" in k)) >= 2

    wait_until(applied, timeout=15)
    assert r.xlen(keys.dead(shard)) == 0, r.xrange(keys.dead(shard))
    assert int(r.hget(keys.producer_stats(shard), "pingan-sim|accepted")) == 2
    # the wall: the new name and the category's label, without a restart
    wait_until(lambda: NEW_NAME in _wall(stack, CITY) and "数字城管" in _wall(stack, CITY),
               timeout=15)
    body = json.loads(_wall(stack, DISTRICT))
    assert NEW_NAME in json.dumps(body, ensure_ascii=False)
    assert stack.procs["aggregate"].poll() is None and stack.procs["web"].poll() is None


def test_watcher_reads_the_version_in_its_round_trip_and_survives_a_hostile_one(r, settings):
    from dashboard.versions import VersionWatcher

    keys = Keys(settings.key_prefix)
    reloads: list[int] = []
    w = VersionWatcher(r, keys, ("610202",), None, on_registry=lambda: reloads.append(1))
    assert w.read_metas() == {"610202": {}} and w._registry_read == "0"
    w.check_registry()  # the first version read: the one the registry was loaded at
    r.incr(keys.registry_version())
    w.read_metas()
    assert w.check_registry() and reloads == [1]
    r.delete(keys.registry_version())
    r.hset(keys.registry_version(), "x", "1")  # another type: the metas are still read
    assert w.read_metas() == {"610202": {}} and w._registry_read is None
    assert not w.check_registry() and reloads == [1]
