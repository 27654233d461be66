"""The access log (issue 12 item 11) on a real Redis and a real gunicorn (sign-in on): sign-ins
and failures, the first view of each centre per session, sign-outs, in order and with who;
calls, acknowledgements and 督办 through the desk and the console's own functions; retention
trimmed on write; a Redis away never breaks the action; `pingan access-log` exports it."""

from __future__ import annotations

import json
import logging
import signal
import uuid

import pytest
import redis
from click.testing import CliRunner
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashboard import command
from dashboard.access import Viewer
from dashboard.calls import CallDesk
from dashboard.cli import main
from dashboard.devkit.stack import Stack, copy_registry
from datasources.accesslog import AccessLog, session_tag
from datasources.aggregator import Aggregator
from datasources.alerts import list_alerts
from datasources.keys import Keys
from datasources.registry import make_engine
from datasources.signal import Signals
from datasources.users import add_user
from datasources.vc import Conferences
from tests.helpers import event, now_ms
from tests.integration.test_access import SHOWN, Client, callback

PREFIX = f"alog{uuid.uuid4().hex[:8]}"
DISTRICT = "610202"
PASSWORD = "carol-duty-pw-1"


@pytest.fixture(scope="module")
def lstack(tmp_path_factory, demo_db, redis_url):
    """gunicorn with sign-in on, over the session's Redis (a key prefix of its own); no data
    flows (only the log)."""
    d = tmp_path_factory.mktemp("accesslogstack")
    db_url, _ = copy_registry(demo_db, d)
    engine = make_engine(db_url)
    add_user(engine, "carol", PASSWORD, "duty", DISTRICT)
    engine.dispose()
    s = Stack(d, db_url, prefix=PREFIX)
    # the tests' client is also the trusted SSO proxy (127.0.0.1) when it sends the header
    s.env.update(PINGAN_AUTH="on", REDIS_URL=redis_url, PINGAN_TRUSTED_USER_HEADER="X-Remote-User")
    s.redis = lambda: redis.Redis.from_url(redis_url)
    s.start_web()
    yield s
    s.stop("web", signal.SIGQUIT)  # quick shutdown: nothing of the web needs a graceful end
    s.close()
    r = s.redis()
    for key in r.scan_iter(match=f"{PREFIX}:*", count=1000):
        r.delete(key)


def logged(r: redis.Redis, prefix: str = PREFIX) -> list[dict[str, str]]:
    return list(AccessLog(r, Keys(prefix), 30).entries())


def open_wall(c: Client, centre: str, path: str = "/") -> str:
    route = callback(c.dependencies(), "app-url", "search")
    status, _, body = c.post_callback(
        route, [{"id": "app-url", "property": "pathname", "value": path},
                {"id": "app-url", "property": "search", "value": f"?centre={centre}"}],
        SHOWN, ["app-url.search"])
    assert status == 200, body[:300]
    return body


def test_alog001_sign_in_view_sign_out_in_order(lstack, topo):
    r = lstack.redis()
    c = Client(lstack.url)
    assert c.login("carol", "not-the-password")[0] == 401
    assert c.login("nobody\x1b[31m", "whatever")[0] == 401
    assert c.login("carol", PASSWORD)[0] == 303
    village = sorted(k for k, i in topo.centres.items() if i.parent == DISTRICT)[0]
    assert "wall-canvas" in open_wall(c, DISTRICT)
    open_wall(c, DISTRICT)                       # the same session again: not recorded
    open_wall(c, DISTRICT, "/brief")             # another screen, same centre: not recorded
    open_wall(c, village, "/console")
    open_wall(c, "999999")                       # unknown centre: nothing viewed
    status, _, _ = c.request("/logout", data=f"csrf={c.csrf('/logout')}".encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303
    log = logged(r)
    assert [(e["action"], e["who"]) for e in log] == [
        ("sign_in_failed", "carol"), ("sign_in_failed", "nobody?[31m"), ("sign_in", "carol"),
        ("centre_viewed", "carol"), ("centre_viewed", "carol"), ("sign_out", "carol")]
    failed, unknown, signed, wall, console, out = log
    assert failed["why"] == "bad_password" and failed["addr"] == "127.0.0.1"
    assert unknown["why"] == "unknown_user"
    assert signed["method"] == "password" and signed["addr"] == "127.0.0.1"
    assert (wall["centre"], wall["screen"]) == (DISTRICT, "wall")
    assert (console["centre"], console["screen"]) == (village, "console")
    tag = signed["session"]
    assert wall["session"] == console["session"] == out["session"] == tag
    assert len(tag) == 16
    assert r.ttl(Keys(PREFIX).access_viewed(tag)) > 3600  # the session's lifetime, then gone
    # a new session views the same centre again: recorded again
    c2 = Client(lstack.url)
    assert c2.login("carol", PASSWORD)[0] == 303
    open_wall(c2, DISTRICT)
    assert [e["action"] for e in logged(r)][-2:] == ["sign_in", "centre_viewed"]
    assert logged(r)[-1]["session"] != tag


class ProxiedClient(Client):
    """Requests as the SSO proxy sends them: the user named in a header, no cookie."""

    def request(self, path, data=None, headers=None, method=None):
        return super().request(path, data, {"X-Remote-User": "carol", **(headers or {})}, method)


def test_alog001b_a_proxy_sign_in_once_per_window(lstack):
    r = lstack.redis()
    before = len(logged(r))
    p = ProxiedClient(lstack.url)
    for _ in range(3):
        assert p.request("/auth/ping")[0] == 200
    open_wall(p, DISTRICT)
    open_wall(p, DISTRICT, "/brief")
    new = logged(r)[before:]
    assert [(e["action"], e["who"], e.get("method")) for e in new] == [
        ("sign_in", "carol", "proxy"), ("centre_viewed", "carol", None)]
    assert new[0]["session"] == new[1]["session"]
    assert p.cookie is None


def test_alog002_cli_exports_json_and_filters(lstack, monkeypatch):
    r = lstack.redis()
    log = AccessLog(r, Keys(PREFIX), 30)
    log.record("supervised", "carol", eid="E-1", centre=DISTRICT, by=DISTRICT)
    monkeypatch.setenv("REDIS_URL", lstack.env["REDIS_URL"])
    monkeypatch.setenv("PINGAN_KEY_PREFIX", PREFIX)
    monkeypatch.setenv("DATABASE_URL", lstack.env["DATABASE_URL"])
    runner = CliRunner()
    res = runner.invoke(main, ["access-log", "--json", "--since", "1h"])
    assert res.exit_code == 0, res.output
    every = json.loads(res.stdout)
    assert {e["action"] for e in every} >= {"sign_in", "sign_in_failed", "centre_viewed",
                                            "sign_out", "supervised"}
    assert all(isinstance(e["ts"], int) for e in every)
    res = runner.invoke(main, ["access-log", "--json", "--since", "1h", "--action", "sign_in",
                               "--action", "supervised", "--who", "carol"])
    only = json.loads(res.stdout)
    assert only and {e["action"] for e in only} == {"sign_in", "supervised"}
    assert all(e["who"] == "carol" for e in only)
    assert res.stderr.strip() == f"{len(only)} entries"
    human = runner.invoke(main, ["access-log", "--since", "2026-01-01T00:00+08:00",
                                 "--action", "supervised"])
    assert human.exit_code == 0 and "supervised" in human.stdout and "eid=E-1" in human.stdout
    empty = runner.invoke(main, ["access-log", "--json", "--since", "1h", "--who", "nobody"])
    assert json.loads(empty.stdout) == []
    for bad in (["--since", "yesterday"], ["--since", "9" * 50], ["--since", "24h\x1b"],
                ["--since", "1h", "--until", "2h"], ["--action", "drop_table"],
                ["--since", "'; DROP"]):
        res = runner.invoke(main, ["access-log", "--json", *bad])
        assert res.exit_code == 2 and res.stdout == "", (bad, res.output)
        assert "Traceback" not in res.output


def test_alog003_retention_trims_on_write(r, prefix):
    keys = Keys(prefix)
    now = now_ms()
    r.xadd(keys.access_log(), {"action": "sign_in", "who": "old", "ts": "1000"}, id="1000-0")
    r.xadd(keys.access_log(), {"action": "sign_in", "who": "recent", "ts": str(now - 86_400_000)},
           id=f"{now - 86_400_000}-0")
    log = AccessLog(r, keys, retention_days=7)
    assert log.record("sign_out", "alice")
    assert [e["who"] for e in log.entries()] == ["recent", "alice"]


def test_alog004_a_redis_away_never_breaks_the_action(tmp_path, caplog):
    dead = redis.Redis(unix_socket_path=str(tmp_path / "no.sock"), socket_connect_timeout=0.2,
                       retry=Retry(NoBackoff(), 0))
    log = AccessLog(dead, Keys("gone"), 30)
    with caplog.at_level(logging.WARNING, logger="datasources.accesslog"):
        assert log.record("sign_in", "alice", addr="10.0.0.1", method="password") is False
        assert log.viewed("alice", "abc", DISTRICT, "wall", 60) is False
        assert log.producer_used("gw") is False
    assert '"who": "alice"' in caplog.text and "10.0.0.1" in caplog.text  # kept in the server log


def test_alog005_first_view_once_across_workers(r, prefix):
    a, b = AccessLog(r, Keys(prefix), 30), AccessLog(r, Keys(prefix), 30)
    tag = session_tag("sid-1")
    assert a.viewed("alice", tag, DISTRICT, "wall", 60)
    assert not b.viewed("alice", tag, DISTRICT, "brief", 60)
    assert b.viewed("alice", session_tag("sid-2"), DISTRICT, "brief", 60)
    assert [e["session"] for e in a.entries()] == [tag, session_tag("sid-2")]
    assert "sid-1" not in json.dumps(list(a.entries()))


def test_alog006_entries_page_and_window(r, prefix):
    log = AccessLog(r, Keys(prefix), 30)
    for i in range(7):
        log.record("sign_in", f"u{i}")
    every = list(log.entries(count=2))
    assert [e["who"] for e in every] == [f"u{i}" for i in range(7)]
    middle = int(every[3]["id"].split("-")[0])
    assert all(int(e["id"].split("-")[0]) >= middle for e in log.entries(middle, count=3))
    assert list(log.entries(0, 1000)) == []
    log.record("sign_in", "x" * 10_000, addr="\n\r\x00\u202e")
    last = list(log.entries())[-1]
    assert len(last["who"]) == 256 and last["addr"] == "????"


def test_alog007_calls_started_and_ended(r, prefix, settings, topo):
    log = AccessLog(r, Keys(prefix), 30)
    conf = Conferences(r, topo, prefix, "", 3600)
    desk = CallDesk(conf, Signals(r, topo, prefix), None, settings, topo, lambda: None, log)
    child = topo.children[DISTRICT][0]
    call = desk.start("carol", DISTRICT, [child], group=False, tier=None)
    assert call is not None and call.mode == "p2p"
    assert desk.end(call.cid, "carol")
    assert not desk.end(call.cid, "carol")  # ended already: nothing more recorded
    started, ended = list(log.entries())
    assert (started["action"], started["who"], started["cid"], started["centres"],
            started["mode"]) == ("call_started", "carol", call.cid, child, "p2p")
    assert (ended["action"], ended["who"], ended["cid"], ended["why"]) == (
        "call_ended", "carol", call.cid, "ended")


def test_alog008_acknowledged_and_supervised(r, prefix, settings, topo):
    keys = Keys(prefix)
    log = AccessLog(r, keys, 30)
    village = sorted(c for c, i in topo.centres.items()
                     if i.level == 4 and topo.is_within(c, DISTRICT))[0]
    shard = topo.centres[village].shard
    r.xadd(keys.stream(shard, "events"), event(village, "ALOG-1", urgency="urgent"))
    Aggregator(r, topo, settings.pipeline).run(until_idle=True)
    (alert,) = list_alerts(r, topo, keys)
    duty = Viewer("carol", "duty", DISTRICT)
    command.ack(duty, topo, r, keys, alert.id, now_ms(), access_log=log)
    command.supervise(duty, topo, r, keys, "ALOG-1", "please\nhurry", now_ms(), access_log=log)
    with pytest.raises(command.CommandError):  # refused: nothing recorded
        command.supervise(Viewer("carol", "duty", village), topo, r, keys, "ALOG-1", "", now_ms(),
                          access_log=log)
    acked, supervised = list(log.entries())
    assert (acked["action"], acked["who"], acked["alert"], acked["shard"]) == (
        "alert_acknowledged", "carol", alert.id, shard)
    assert (supervised["action"], supervised["who"], supervised["eid"], supervised["centre"],
            supervised["by"]) == ("supervised", "carol", "ALOG-1", village, DISTRICT)
