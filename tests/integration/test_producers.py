"""Producers on real Redis and SQLite (issue 12 items 4-6): the CLI's tokens, revocation and
rotation, the Redis ACL user refused outside its streams, per-producer figures over shards."""

from __future__ import annotations

import json

import pytest
import redis
from click.testing import CliRunner
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashboard.cli import main
from dashboard.devkit.stack import copy_registry
from datasources import producers as P
from datasources.accesslog import AccessLog
from datasources.keys import Keys
from datasources.registry import make_engine
from datasources.topology import load_topology

CITY, DISTRICT, OTHER = "610200", "610202", "610203"


@pytest.fixture(scope="module")
def db(tmp_path_factory, demo_db):
    url, _ = copy_registry(demo_db, tmp_path_factory.mktemp("producers"))
    return url


@pytest.fixture
def cli(db, redis_url, prefix, tmp_path):
    env = {"REDIS_URL": redis_url, "DATABASE_URL": db, "PINGAN_KEY_PREFIX": prefix,
           "PINGAN_DATA_DIR": str(tmp_path)}

    def run(*args: str, ok: bool = True):
        res = CliRunner().invoke(main, ["producers", *args], env=env, catch_exceptions=False)
        assert (res.exit_code == 0) is ok, res.output + res.stderr
        return res

    return run


@pytest.fixture(scope="module")
def engine(db):
    e = make_engine(db)
    yield e
    e.dispose()


def test_cli_tokens_rotate_revoke_and_access_log(cli, engine, r, prefix):
    name = f"hot-{prefix}"
    res = cli("add", name, "--kinds", "events,petitions", "--scope", DISTRICT, "--json")
    out = json.loads(res.stdout)  # machine-clean: only JSON on stdout
    assert out["name"] == name and out["token"].startswith(P.TOKEN_PREFIX)
    assert P.lookup(engine, out["token"]) == P.Producer(
        name, frozenset({"events", "petitions"}), DISTRICT, P.get(engine, name).rate)
    listed = cli("list", "--json").stdout
    assert out["token"] not in listed and P.hash_token(out["token"]) not in listed
    assert any(p["name"] == name and p["active"] for p in json.loads(listed))

    rotated = json.loads(cli("rotate", name, "--json").stdout)["token"]
    assert P.lookup(engine, out["token"]) is None and P.lookup(engine, rotated).name == name
    assert "revoked" in cli("revoke", name).stdout
    assert P.lookup(engine, rotated) is None and P.get(engine, name) is None
    assert name not in P.names(engine)

    keys = Keys(prefix)
    assert int(r.get(keys.registry_version())) == 3
    log = [e for e in AccessLog(r, keys, 1).entries() if e.get("producer") == name]
    assert [e["action"] for e in log] == ["producer_created", "producer_rotated", "producer_revoked"]
    assert all(e["who"].startswith("cli:") for e in log)

    human = cli("add", f"h-{prefix}", "--kinds", "cameras", "--scope", CITY, "--rate", "5")
    assert human.stdout.strip().startswith(P.TOKEN_PREFIX) and "shown once" in human.stderr


@pytest.mark.parametrize("args, says", [
    (["x1", "--kinds", "events", "--scope", "999999"], "unknown centre"),
    (["x1", "--kinds", "events,handin", "--scope", CITY], "unknown kind"),
    (["x1", "--kinds", "events", "--scope", CITY, "--rate", "0"], "rate"),
    (["Bad Name", "--kinds", "events", "--scope", CITY], "producer names"),
    (["pingan-sim", "--kinds", "events", "--scope", CITY], "reserved"),
    (["x1", "--kinds", "events", "--scope", "610200' OR 1=1 --"], "unknown centre"),
])
def test_cli_refuses_with_clear_messages(cli, args, says):
    res = cli("add", *args, "--json", ok=False)
    assert says in res.stderr and res.stdout == ""


def test_cli_refuses_a_duplicate_and_unknown_names(cli, prefix):
    cli("add", f"dup-{prefix}", "--kinds", "events", "--scope", CITY)
    assert "exists" in cli("add", f"dup-{prefix}", "--kinds", "events", "--scope", CITY,
                           ok=False).stderr
    for command in ("revoke", "rotate", "acl"):
        assert "no active producer" in cli(command, "nobody-" + prefix, ok=False).stderr


def refusals(user: redis.Redis, keys: Keys) -> list:
    """What a producer's Redis user of DISTRICT's events must not do."""
    return [
        lambda: user.xadd(keys.stream(OTHER, "events"), {"v": "1"}),
        lambda: user.xadd(keys.stream(DISTRICT, "cameras"), {"v": "1"}),  # a kind it lacks
        lambda: user.xadd(keys.meta(DISTRICT), {"v": "1"}),
        lambda: user.xadd(keys.day(DISTRICT, "20260101", DISTRICT), {"v": "1"}),
        lambda: user.xadd(keys.lease(DISTRICT), {"v": "1"}),
        lambda: user.xadd(keys.dead(DISTRICT), {"v": "1"}),
        lambda: user.xadd(keys.handoff(DISTRICT), {"v": "1"}),
        lambda: user.set(keys.lease(DISTRICT), "mine"),
        lambda: user.hset(keys.meta(DISTRICT), "version", "0"),
        lambda: user.xrange(keys.stream(DISTRICT, "events")),
        lambda: user.xread({keys.stream(DISTRICT, "events"): "0"}),
        lambda: user.get(keys.lease(DISTRICT)),
        lambda: user.keys("*"),
        lambda: user.delete(keys.stream(DISTRICT, "events")),
        lambda: user.xtrim(keys.stream(DISTRICT, "events"), maxlen=0),
        lambda: user.eval("return redis.call('SET', KEYS[1], 1)", 1, keys.meta(DISTRICT)),
        lambda: user.publish("x", "y"),
        lambda: user.execute_command("ACL", "SETUSER", "evil", "on", "nopass", "+@all"),
        lambda: user.flushall(),
    ]


def test_acl_user_on_redis_7(redis7, redis7_url, engine, prefix):
    """The same rule on the machine's Redis (7), applied as the CLI applies it."""
    name, keys = f"acl7-{prefix}", Keys(prefix)
    producer = P.Producer(name, frozenset({"events"}), DISTRICT, 10)
    redis7.execute_command(*P.acl_setuser(keys, load_topology(engine), producer, "pw-" + prefix))
    user = redis.Redis.from_url(redis7_url, username=P.acl_user(name), password="pw-" + prefix)
    try:
        assert user.ping() and user.xadd(keys.stream(DISTRICT, "events"), {"v": "1"})
        for call in refusals(user, keys):
            with pytest.raises(redis.exceptions.NoPermissionError):
                call()
    finally:
        user.close()
        redis7.acl_deluser(P.acl_user(name))


def test_acl_user_may_only_xadd_to_its_streams(cli, r, redis_url, prefix):
    name = f"acl-{prefix}"
    cli("add", name, "--kinds", "events", "--scope", DISTRICT)
    printed = cli("acl", name).stdout.strip()
    assert printed.startswith(f"ACL SETUSER pingan-producer-{name} reset on resetkeys")
    cli("acl", name, "--apply", "--password", "pw-" + prefix)
    keys = Keys(prefix)
    user = redis.Redis.from_url(redis_url, username=P.acl_user(name), password="pw-" + prefix)
    try:
        assert user.ping()
        assert user.xadd(keys.stream(DISTRICT, "events"), {"v": "1"})
        for call in refusals(user, keys):
            with pytest.raises(redis.exceptions.NoPermissionError):
                call()
        assert r.xlen(keys.stream(OTHER, "events")) == 0 and not r.exists(keys.meta(DISTRICT))
        assert "deleted its Redis ACL user" in cli("revoke", name).stdout
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(redis_url, username=P.acl_user(name),
                                 password="pw-" + prefix).ping()
    finally:
        user.close()
        r.acl_deluser(P.acl_user(name))


def test_acl_apply_generates_a_password(cli, r, prefix):
    name = f"gen-{prefix}"
    cli("add", name, "--kinds", "patrols", "--scope", DISTRICT)
    try:
        res = cli("acl", name, "--apply")
        assert len(res.stdout.strip()) >= 40 and "shown once" in res.stderr
        assert "printable" in cli(
            "acl", name, "--apply", "--password", "a b\n", ok=False).stderr
    finally:
        r.acl_deluser(P.acl_user(name))


def test_stats_sum_two_shards_and_show_a_silent_producer(cli, r, engine, prefix):
    keys, topo = Keys(prefix), load_topology(engine)
    busy, quiet = f"busy-{prefix}", f"quiet-{prefix}"
    cli("add", busy, "--kinds", "events", "--scope", CITY)
    cli("add", quiet, "--kinds", "events", "--scope", CITY)
    now = 1_800_000_000_000
    r.hset(keys.producer_stats(DISTRICT), mapping={
        f"{busy}|accepted": 7, f"{busy}|last_ts": now - 5000, f"{busy}|applied_at": now - 1000,
        f"{busy}|lag_ms": 4000, f"{busy}|dead|bad ts": 2, f"{busy}|dead|out of scope": 1,
        "pingan-sim|accepted": 100, "pingan-sim|last_ts": now, "pingan-sim|applied_at": now,
        f"{P.UNREGISTERED}|accepted": 3, f"{P.UNREGISTERED}|dead|bad ts": 1,
        f"{busy}|junk": "not a number", "no-bar-field": 1})
    r.hset(keys.producer_stats(OTHER), mapping={
        f"{busy}|accepted": 5, f"{busy}|last_ts": now - 60_000,
        f"{busy}|applied_at": now - 50_000, f"{busy}|lag_ms": 99_000, f"{busy}|dead|bad ts": 3})
    rows = {p["name"]: p for p in P.stats(r, keys, topo, engine, now_ms=now)}
    b = rows[busy]
    assert (b["accepted"], b["dead"], b["dead_total"]) == (12, {"bad ts": 5, "out of scope": 1}, 6)
    assert (b["last_ts"], b["applied_at"], b["lag_ms"], b["silent"]) == (now - 5000, now - 1000, 4000, False)
    q = rows[quiet]
    assert (q["accepted"], q["last_ts"], q["silent"], q["registered"]) == (0, None, True, True)
    assert rows["pingan-sim"]["accepted"] == 100 and not rows["pingan-sim"]["silent"]
    assert rows[P.UNREGISTERED]["dead"] == {"bad ts": 1} and not rows[P.UNREGISTERED]["silent"]
    assert list(rows)[-1] == P.UNREGISTERED
    later = {p["name"]: p for p in P.stats(r, keys, topo, engine, now_ms=now + 11 * 60_000)}
    assert later[busy]["silent"]

    printed = json.loads(cli("stats", "--json").stdout)
    assert {p["name"] for p in printed} >= {busy, quiet, "pingan-sim", P.UNREGISTERED}
    table = cli("stats")
    assert "SILENT" in table.stdout and "silent" in table.stderr


def props_of(tree: object):
    """Every component's props in a callback's JSON answer."""
    if isinstance(tree, dict):
        if isinstance(tree.get("props"), dict):
            yield tree["props"]
        for v in tree.values():
            yield from props_of(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from props_of(v)


def test_console_panel_callback_lists_the_producers_of_the_centre_in_view(
        cli, db, redis_url, prefix, tmp_path, request):
    """The 数据来源 callback in a real app (sign-in off): a silent producer of the district
    in view is listed and marked, one writing only another district is not; a refused URL
    gets nothing."""
    from dashboard.app import SERVICES, create_app
    from dashboard.settings import Settings

    here, there = f"here-{prefix}", f"there-{prefix}"
    cli("add", here, "--kinds", "events", "--scope", DISTRICT)
    cli("add", there, "--kinds", "events", "--scope", OTHER)
    app = create_app(Settings.from_env(data_dir=tmp_path, redis_url=redis_url, database_url=db,
                                       key_prefix=prefix, auth="off"))
    # the app's version watcher thread must not outlive the test: a thread left polling a
    # Redis that is gone logs tracebacks while later tests run (and CPython 3.11's traceback
    # formatting parses source with `ast`, which is not thread-safe: gh-106905)
    request.addfinalizer(app.server.config[SERVICES].watcher.stop)
    client = app.server.test_client()

    def panel(search: str):
        return client.post("/_dash-update-component", json={
            "output": "..console-producers.children...console-producer-count.children..",
            "outputs": [{"id": "console-producers", "property": "children"},
                        {"id": "console-producer-count", "property": "children"}],
            "inputs": [{"id": "console-producers-tick", "property": "n_intervals", "value": 3}],
            "state": [{"id": "app-url", "property": "search", "value": search}],
            "changedPropIds": ["console-producers-tick.n_intervals"]})

    res = panel(f"?centre={DISTRICT}")
    assert res.status_code == 200
    rows = {p["data-producer"]: p for p in props_of(res.get_json()["response"])
            if "data-producer" in p}
    assert rows[here]["data-silent"] == "1" and "is-silent" in rows[here]["className"]
    assert there not in rows and "静默" in json.dumps(rows[here], ensure_ascii=False)
    for hostile in ("?centre=999999", "?centre=610202%27%20OR%201=1", "?centre=%00"):
        res = panel(hostile)
        assert res.status_code == 204 and here not in res.get_data(as_text=True), hostile


def test_a_token_is_not_lost_when_redis_is_away(engine, prefix):
    """The producer is committed first: Redis away afterwards costs the version bump and the
    log entry (reported), never the token."""
    away = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5,
                       retry=Retry(NoBackoff(), 0))
    notice = P.Notice(away, Keys(prefix), AccessLog(away, Keys(prefix), 1), "cli:test")
    token = P.add(engine, f"away-{prefix}", ["events"], CITY, 5, notice=notice)
    assert P.lookup(engine, token).name == f"away-{prefix}"
    assert len(notice.problems) == 2 and "registry version" in notice.problems[0]


def test_stats_of_what_the_aggregator_wrote_in_two_shards(cli, r, engine, topo, settings, prefix):
    """End to end: entries of one producer in two shards (one dead-lettered), the aggregator's
    batches, then `stats` sums them."""
    from datasources.aggregator import Aggregator
    from tests.helpers import event, now_ms

    name, keys = f"e2e-{prefix}", Keys(prefix)
    cli("add", name, "--kinds", "events", "--scope", CITY)
    ts = now_ms() - 60_000
    for i, centre in enumerate((DISTRICT, OTHER, OTHER)):
        r.xadd(keys.stream(centre, "events"), event(centre, f"E2E-{prefix}-{i}", ts=ts + i, src=name))
    r.xadd(keys.stream(OTHER, "events"), event("999999", f"E2E-{prefix}-x", ts=ts, src=name))
    Aggregator(r, topo, settings.pipeline, producer_names=lambda: frozenset({name})).run(
        until_idle=True)
    row = next(p for p in P.stats(r, keys, topo, engine) if p["name"] == name)
    assert (row["accepted"], row["dead_total"], row["silent"]) == (3, 1, False)
    assert row["last_ts"] == ts + 2 and 0 <= row["lag_ms"] < 120_000
    assert list(row["dead"]) == [P.reason_class("unknown centre: 999999")]
