"""`pingan ingest` on a real Redis and a real SQLite registry (run in-process with click's
runner): a dry run reports every bad row and writes nothing; an ingest writes the good rows as
the registered producer; ingesting the same file twice (a CSV of events, an XLSX of
petitions) counts nothing twice in the read model; clear errors for a bad producer, mapping
or file."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import redis
from click.testing import CliRunner

from dashboard.cli import main
from dashboard.devkit.stack import copy_registry
from dashboard.settings import Settings
from datasources import producers
from datasources.aggregator import Aggregator
from datasources.keys import Keys
from datasources.readmodel import ReadModel
from datasources.registry import make_engine
from datasources.topology import load_topology

DATA = Path(__file__).resolve().parents[1] / "data" / "ingest"
VILLAGE, OTHER_DISTRICT_VILLAGE = "610202001002", "610203001001"
HEADER = "工单编号,受理时间,所属社区编码,事项类别,紧急程度,诉求内容"


@pytest.fixture(scope="module")
def env(tmp_path_factory, demo_db, redis_url):
    d = tmp_path_factory.mktemp("ingest")
    db_url, _ = copy_registry(demo_db, d)
    prefix = f"ti{uuid.uuid4().hex[:8]}"
    engine = make_engine(db_url)
    producers.add(engine, "hotline-12345", ["events"], "610202", 1000)
    producers.add(engine, "xinfang", ["petitions"], "610200", 1000)
    engine.dispose()
    vars_ = {"PINGAN_DATA_DIR": str(d), "REDIS_URL": redis_url, "DATABASE_URL": db_url,
             "PINGAN_KEY_PREFIX": prefix}
    yield {"vars": vars_, "dir": d, "prefix": prefix, "db": db_url}
    r = redis.Redis.from_url(redis_url)
    keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def pingan(env, *args: str):
    return CliRunner().invoke(main, list(args), env=env["vars"], catch_exceptions=False)


def local(ms_ago: int, tz: str) -> str:
    return datetime.fromtimestamp(time.time() - ms_ago / 1000, ZoneInfo(tz)).strftime(
        "%Y-%m-%d %H:%M:%S")


def settings_of(env) -> Settings:
    v = env["vars"]
    return Settings.from_env(data_dir=env["dir"], redis_url=v["REDIS_URL"],
                             database_url=v["DATABASE_URL"], key_prefix=env["prefix"])


def aggregate(env) -> ReadModel:
    s = settings_of(env)
    r = redis.Redis.from_url(s.redis_url)
    topo = load_topology(make_engine(s.effective_database_url))
    Aggregator(r, topo, s.pipeline).run(until_idle=True)
    return ReadModel(r, topo, s.read_model)


def test_events_dry_run_then_twice_counts_once(env, tmp_path):
    s = settings_of(env)
    t = local(600_000, "Asia/Shanghai")  # the mapping's zone, not PINGAN_TZ
    csv = tmp_path / "12345.csv"
    csv.write_bytes((HEADER + "\r\n"
                     + f"GD-1,{t},{VILLAGE},矛盾纠纷,一般,邻里纠纷\r\n"
                     + f"GD-2,{t},{VILLAGE},环境卫生,紧急,垃圾\r\n"
                     + f"GD-3,{t},{OTHER_DISTRICT_VILLAGE},矛盾纠纷,一般,x\r\n"   # out of scope
                     + f"GD-4,{t},{VILLAGE},算命,一般,x\r\n"                        # unmapped
                     + f"GD-5,{t},{VILLAGE},矛盾纠纷\r\n"                           # too few
                     + f"GD-6,{t},{VILLAGE},治安隐患,一般,=cmd|' /C calc'!A0\r\n"
                     ).encode("gb18030"))  # a GBK export, detected
    args = (str(csv), "--kind", "events", "--mapping", str(DATA / "events.toml"),
            "--producer", "hotline-12345")
    r = redis.Redis.from_url(s.redis_url)
    stream = Keys(env["prefix"]).stream("610202", "events")

    dry = pingan(env, "ingest", *args, "--dry-run")
    assert dry.exit_code == 1, dry.output
    assert dry.stdout == ""
    assert f"{csv}:4: out of scope: centre {OTHER_DISTRICT_VILLAGE} is not under 610202" \
        in dry.stderr
    assert f"{csv}:5: bad category: '算命'" in dry.stderr
    assert f"{csv}:6: 4 cells, the header has 6" in dry.stderr
    assert dry.stderr.rstrip().endswith("6 rows: 3 good, 3 bad (dry run, nothing written)")
    assert r.exists(stream) == 0  # a dry run writes nothing

    js = pingan(env, "ingest", *args, "--dry-run", "--json")
    out = json.loads(js.stdout)  # only JSON on stdout
    assert (out["rows"], out["good"], out["bad"], out["written"]) == (6, 3, 3, 0)
    assert [e["line"] for e in out["errors"]] == [4, 5, 6]

    for _ in range(2):  # the same file twice: the aggregator counts each row once
        run = pingan(env, "ingest", *args, "--json")
        assert run.exit_code == 1  # bad rows: reported, not written
        assert json.loads(run.stdout)["written"] == 3
    assert r.xlen(stream) == 6
    entries = [f for _, f in r.xrange(stream)]
    assert {f[b"src"] for f in entries} == {b"hotline-12345"}
    assert {f[b"eid"] for f in entries} == {b"GD-1", b"GD-2", b"GD-6"}
    assert entries[2][b"summary"] == b"=cmd|' /C calc'!A0"  # a string, nothing more
    log = [f for _, f in r.xrange(Keys(env["prefix"]).access_log())]
    assert [(f[b"action"], f[b"who"], f[b"via"], f[b"written"]) for f in log] == \
        [(b"producer_used", b"hotline-12345", b"file", b"3")] * 2  # one per file ingested
    rm = aggregate(env)
    snap = rm.snapshot(VILLAGE)
    assert snap["events"]["reported"] == 3
    assert int(r.hget(Keys(env["prefix"]).meta("610202"), "duplicates") or 0) >= 3
    assert int(r.hget(Keys(env["prefix"]).meta("610202"), "dead") or 0) == 0


def test_petitions_xlsx_twice_counts_once(env, tmp_path):
    now = int(time.time() * 1000) - 300_000
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["信访件编号", "登记时间", "所属社区编码", "信访方式", "是否集体访", "是否越级"])
    ws.append(["XF-1", now, int(VILLAGE), "来访", "否", "是"])
    ws.append(["XF-2", now, VILLAGE, "网上信访", "是", "否"])
    ws.append(["XF-3", now, OTHER_DISTRICT_VILLAGE, "来信", "否", "否"])
    ws.append(["XF-4", now, VILLAGE, "电话", "否", "否"])  # not a petition channel
    path = tmp_path / "信访.xlsx"
    wb.save(path)
    args = ("ingest", str(path), "--kind", "petitions", "--mapping",
            str(DATA / "petitions.toml"), "--producer", "xinfang")
    for _ in range(2):
        run = pingan(env, *args)
        assert run.exit_code == 1
        assert f"{path}:5: bad channel: '电话'" in run.stderr
        assert run.stderr.rstrip().endswith("4 rows: 3 good, 1 bad, 3 written")
    rm = aggregate(env)
    assert rm.snapshot(VILLAGE)["petitions"]["today"] == 2
    assert rm.snapshot(OTHER_DISTRICT_VILLAGE)["petitions"]["today"] == 1
    assert rm.snapshot("610200")["petitions"]["group"] >= 1


def test_clear_errors(env, tmp_path):
    csv = tmp_path / "a.csv"
    csv.write_text(HEADER + "\n", "utf-8")
    base = ("ingest", str(csv), "--kind", "events", "--mapping", str(DATA / "events.toml"))
    cases = [
        ((*base, "--producer", "nobody"), "unknown or revoked producer 'nobody'"),
        ((*base, "--producer", "xinfang"), "producer 'xinfang' may not write events"),
        ((*base, "--producer", "hotline-12345"), "no rows below the header"),
        (("ingest", str(csv), "--kind", "events", "--mapping", str(DATA / "petitions.toml"),
          "--producer", "hotline-12345"), "the mapping is for kind 'petitions'"),
    ]
    for args, needle in cases:
        res = pingan(env, *args, "--json")
        assert res.exit_code == 1
        assert needle in json.loads(res.stdout)["error"]
        assert needle in res.stderr
    bad = tmp_path / "b.xlsx"
    bad.write_bytes(b"=cmd|' /C calc'!A0\n")
    res = pingan(env, "ingest", str(bad), *base[2:], "--producer", "hotline-12345")
    assert res.exit_code == 1 and "not a readable XLSX workbook" in res.stderr
