"""Hardening of the web layer (issue 8), in process: Flask's test client on the real app, real
Redis and SQL. Each test injects the fault or the hostile input that broke the old code: a
flood of wrong passwords, parallel posts, an old session, a foreign Host header, a short key,
garbage in the meta hashes and the calls in progress, a version that goes backwards."""

from __future__ import annotations

import json
import stat
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from dashboard.app import SERVICES, create_app
from dashboard.cli import main as pingan
from dashboard.devkit.stack import copy_registry
from dashboard.embed import issue
from dashboard.hashing import Busy, HashPool
from dashboard.live import stream
from dashboard.runtime import Runtime
from dashboard.secret import SecretKeyError
from dashboard.settings import Settings
from datasources.connection import stop_embedded
from datasources.keys import Keys
from datasources.registry import make_engine
from datasources.users import UserError, add_user
from datasources.vc import Conferences
from tests.helpers import wait_until
from tests.integration.test_access import callback, outputs

CITY, DISTRICT, OTHER = "610200", "610202", "610203"
PASSWORDS = {"alice": "alice-leader-pw", "kiosk1": "kiosk-wall-pw-1", "duty1": "duty1-city-pw!"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("hardening")
    url, _ = copy_registry(demo_db, d)
    engine = make_engine(url)
    add_user(engine, "alice", PASSWORDS["alice"], "leader", DISTRICT)
    add_user(engine, "kiosk1", PASSWORDS["kiosk1"], "duty", DISTRICT)
    add_user(engine, "duty1", PASSWORDS["duty1"], "duty", CITY)
    engine.dispose()
    return d, url


MADE: list = []  # the apps of the running test: their version watchers stop after it


@pytest.fixture(autouse=True)
def _stop_watchers():
    yield
    while MADE:
        MADE.pop().server.config[SERVICES].watcher.stop()


def make(registry, redis_url, prefix, **kw):
    d, url = registry
    s = Settings.from_env(data_dir=d, database_url=url, redis_url=redis_url, key_prefix=prefix,
                          **kw)
    app = create_app(s)
    MADE.append(app)
    return app


def mint(settings: Settings, widget: str, code: str, ttl_s: int) -> str:
    """An embed token recorded in the registry (issue 12: tokens carry an id on record)."""
    engine = make_engine(settings.effective_database_url)
    try:
        return issue(engine, settings, widget, code, ttl_s).token
    finally:
        engine.dispose()


def client(app, addr: str = "10.0.0.1"):
    c = app.server.test_client()
    c.environ_base["REMOTE_ADDR"] = addr
    return c


def login(c, name: str, password: str):
    c.get("/login")
    with c.session_transaction() as sess:
        token = sess["csrf"]
    return c.post("/login", data={"csrf": token, "username": name, "password": password})


def text(resp) -> str:
    return resp.get_data(as_text=True)


def readable(resp) -> str:
    """A JSON answer with its non-ASCII text unescaped."""
    return json.dumps(json.loads(text(resp)), ensure_ascii=False)


# -- item 10: the sign-in throttle -------------------------------------------------------------
def test_hard001_a_flood_against_a_name_does_not_lock_out_its_user(registry, redis_url, prefix, r):
    app = make(registry, redis_url, prefix)
    attacker, user = client(app, "10.66.0.1"), client(app, "10.0.0.7")
    for _ in range(5):
        resp = login(attacker, "alice", "a wrong guess")
        assert resp.status_code == 401 and "用户名或密码错误" in text(resp)
    resp = login(attacker, "alice", "another guess")
    assert resp.status_code == 401 and "尝试次数过多" in text(resp)
    # the real user, from another address, signs in at once (the old code locked the name)
    resp = login(user, "alice", PASSWORDS["alice"])
    assert resp.status_code == 303, text(resp)[-300:]
    assert user.get("/auth/ping").status_code == 200
    # …while the attacker is slowed down: even the right password is not checked now
    resp = login(attacker, "alice", PASSWORDS["alice"])
    assert resp.status_code == 401 and "尝试次数过多" in text(resp)
    assert int(resp.headers["Retry-After"]) >= 1
    # the delays grow: let the attacker's wait pass, one more wrong guess, a longer wait
    key = f"{prefix}:{{auth}}:login:alice:10.66.0.1"
    first_wait = int(login(attacker, "alice", "x").headers["Retry-After"])
    r.hset(key, "until", 1)
    assert "用户名或密码错误" in text(login(attacker, "alice", "still wrong"))
    assert int(login(attacker, "alice", "x").headers["Retry-After"]) > first_wait
    # an administrator lifts the throttle of the name (every address)
    env = {"REDIS_URL": redis_url, "PINGAN_KEY_PREFIX": prefix, "DATABASE_URL": registry[1],
           "PINGAN_DATA_DIR": str(registry[0])}
    out = CliRunner().invoke(pingan, ["users", "unlock", "alice"], env=env)
    assert out.exit_code == 0, out.output
    assert "unlocked alice" in out.output
    assert not r.exists(key)
    assert login(attacker, "alice", PASSWORDS["alice"]).status_code == 303


def test_hard002_parallel_posts_cannot_pass_the_limit(registry, redis_url, prefix, r):
    """20 wrong posts at once from one address: the count is taken before the check, so
    exactly 5 passwords are checked and 15 posts are throttled (the old code read the count,
    checked the password, then counted: all 20 were checked)."""
    app = make(registry, redis_url, prefix, login_max_concurrent=20)
    n = 20
    clients = [client(app, "10.66.0.2") for _ in range(n)]
    tokens = []
    for c in clients:
        c.get("/login")
        with c.session_transaction() as sess:
            tokens.append(sess["csrf"])
    start = threading.Barrier(n)
    answers: list[str] = []

    def post(c, token):
        start.wait()
        resp = c.post("/login", data={"csrf": token, "username": "duty1", "password": "wrong!"})
        answers.append(text(resp))

    threads = [threading.Thread(target=post, args=ct) for ct in zip(clients, tokens, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    checked = sum("用户名或密码错误" in a for a in answers)
    throttled = sum("尝试次数过多" in a for a in answers)
    assert (checked, throttled) == (5, 15), (checked, throttled)
    assert int(r.hget(f"{prefix}:{{auth}}:login:duty1:10.66.0.2", "n")) == n


def test_hard003_password_checks_are_capped_and_busy_is_answered_at_once(registry, redis_url,
                                                                        prefix):
    pool = HashPool(1)
    with pool.slot(), pytest.raises(Busy), pool.slot():
        pass  # the second check does not wait for the first
    assert pool.run(lambda a, b: a + b, 2, 3) == 5
    assert threading.current_thread() is threading.main_thread()
    ran_in = pool.run(lambda: threading.current_thread().name)
    assert ran_in.startswith("pingan-hash")  # a thread of the pool, not the caller's
    # in the app: more posts at once than slots → the extra ones are told to retry
    app = make(registry, redis_url, prefix, login_max_concurrent=1)
    n = 8
    clients = [client(app, f"10.66.1.{i}") for i in range(n)]
    tokens = []
    for c in clients:
        c.get("/login")
        with c.session_transaction() as sess:
            tokens.append(sess["csrf"])
    start = threading.Barrier(n)
    statuses: list[tuple[int, str]] = []

    def post(c, token):
        start.wait()
        resp = c.post("/login", data={"csrf": token, "username": "nobody", "password": "wrong!"})
        statuses.append((resp.status_code, text(resp)))

    threads = [threading.Thread(target=post, args=ct) for ct in zip(clients, tokens, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    busy = [body for status, body in statuses if status == 503]
    assert busy and all("服务器繁忙" in b for b in busy)
    assert any(status == 401 for status, _ in statuses)


# -- item 11: smaller items ---------------------------------------------------------------------
def test_hard004_a_short_secret_key_is_refused_at_start(registry, redis_url, prefix):
    with pytest.raises(SecretKeyError, match="PINGAN_SECRET_KEY is 31 bytes.*at least 32"):
        make(registry, redis_url, prefix, secret_key="k" * 31)
    make(registry, redis_url, prefix, secret_key="k" * 32)  # long enough
    env = {"REDIS_URL": redis_url, "PINGAN_KEY_PREFIX": prefix, "DATABASE_URL": registry[1],
           "PINGAN_DATA_DIR": str(registry[0]), "PINGAN_SECRET_KEY": "short"}
    out = CliRunner().invoke(pingan, ["serve", "--port", "1"], env=env)
    assert out.exit_code == 1 and "PINGAN_SECRET_KEY is 5 bytes" in out.output


def test_hard005_sessions_end_after_the_absolute_lifetime_except_kiosks(registry, redis_url,
                                                                        prefix):
    app = make(registry, redis_url, prefix, session_max_hours=24, kiosk_users=("kiosk1",))
    day = 24 * 3600
    for name, survives in (("alice", False), ("kiosk1", True)):
        c = client(app)
        assert login(c, name, PASSWORDS[name]).status_code == 303
        assert c.get("/auth/ping").status_code == 200
        with c.session_transaction() as sess:
            sess["t0"] -= day - 60  # signed in 23 h 59 min ago: still fine
        assert c.get("/auth/ping").status_code == 200
        with c.session_transaction() as sess:
            sess["t0"] -= 120  # now 24 h 1 min ago, however active the screen was
        resp = c.get("/auth/ping")
        assert resp.status_code == (200 if survives else 401), name
        if not survives:  # the ended session is not refreshed: the cookie is dropped
            assert "pingan_session=;" in resp.headers.get("Set-Cookie", "")
            assert c.get(f"/?centre={DISTRICT}").status_code == 303
    # a cookie from before the limit existed (no start time) signs in again
    c = client(app)
    login(c, "alice", PASSWORDS["alice"])
    with c.session_transaction() as sess:
        del sess["t0"]
    assert c.get("/auth/ping").status_code == 401


def test_hard006_hsts_when_cookies_are_secure(registry, redis_url, prefix):
    secure = client(make(registry, redis_url, prefix))
    for path in ("/login", "/assets/wall.js", "/auth/ping"):
        assert secure.get(path).headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = client(make(registry, redis_url, prefix, cookie_secure=False))
    assert "Strict-Transport-Security" not in plain.get("/login").headers


def test_hard007_data_endpoints_are_never_stored(registry, redis_url, prefix, r):
    app = make(registry, redis_url, prefix, auth="off")
    c = client(app)
    token = mint(app.server.config[SERVICES].settings, "events", DISTRICT, 3600)
    deps = json.loads(text(c.get("/_dash-dependencies")))
    route = callback(deps, "app-url", "search")
    body = {"output": route["output"], "outputs": outputs(route["output"]),
            "inputs": [{"id": "app-url", "property": "pathname", "value": "/"},
                       {"id": "app-url", "property": "search", "value": f"?centre={DISTRICT}"}],
            "state": [{"id": "app-screen-shown", "property": "data", "value": None}],
            "changedPropIds": ["app-url.search"]}
    answers = {
        "/live/version": c.get(f"/live/version?centre={DISTRICT}"),
        "/live/poll": c.get(f"/live/poll?centre={DISTRICT}"),
        "/live/stream": c.get(f"/live/stream?centre={DISTRICT}", buffered=False),
        "/_dash-update-component": c.post("/_dash-update-component", data=json.dumps(body),
                                          content_type="application/json"),
        "/auth/ping": c.get("/auth/ping"),
        "/embed/events/data": c.get(f"/embed/events/data?token={token}"),
    }
    answers["/live/stream"].close()
    auth_on = client(make(registry, redis_url, prefix))
    answers["/login"] = auth_on.get("/login")
    answers["/auth/ping (401)"] = auth_on.get("/auth/ping")
    for path, resp in answers.items():
        assert resp.status_code in (200, 401), (path, resp.status_code)
        assert resp.headers.get("Cache-Control") == "no-store", path
    # static files stay cacheable
    assert c.get("/assets/wall.js").headers.get("Cache-Control") != "no-store"


def test_hard008_trusted_hosts_against_dns_rebinding(registry, redis_url, prefix):
    c = client(make(registry, redis_url, prefix, auth="off"))
    for host in ("localhost", "localhost:8050", "127.0.0.1:8050", "[::1]:8050", "10.2.3.4"):
        assert c.get(f"/live/version?centre={CITY}", headers={"Host": host}).status_code == 200, host
    for host in ("rebind.attacker.example", "rebind.attacker.example:8050", "127.0.0.1.nip.io",
                 "", "a b"):
        for path in ("/", f"/live/version?centre={CITY}", "/assets/wall.js", "/login"):
            resp = c.get(path, headers={"Host": host})
            assert resp.status_code == 400, (host, path)
    named = client(make(registry, redis_url, prefix, auth="off",
                        trusted_hosts=("wall.example.gov.cn", ".portal.gov.cn")))
    for host, ok in (("wall.example.gov.cn", True), ("WALL.example.gov.cn:443", True),
                     ("a.portal.gov.cn", True), ("portal.gov.cn", True),
                     ("evil.example.gov.cn", False), ("10.2.3.4", False), ("localhost", False)):
        status = named.get(f"/live/version?centre={CITY}", headers={"Host": host}).status_code
        assert (status == 200) is ok, (host, status)
    anyone = client(make(registry, redis_url, prefix, auth="off", trusted_hosts=("*",)))
    assert anyone.get(f"/live/version?centre={CITY}",
                      headers={"Host": "x.example"}).status_code == 200


def test_hard009_the_data_dir_is_private(tmp_path, registry, redis_url, prefix):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    make((loose, registry[1]), redis_url, prefix)  # auth on: writes secret.key there
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    assert stat.S_IMODE((loose / "secret.key").stat().st_mode) == 0o600
    fresh = tmp_path / "new" / "var"
    make((fresh, registry[1]), redis_url, prefix)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    # the embedded Redis (no REDIS_URL): its folder and socket live in the private dir
    embedded = tmp_path / "emb"
    rt = Runtime(Settings(data_dir=embedded, database_url=registry[1], key_prefix=prefix))
    try:
        assert rt.redis.ping()
        assert stat.S_IMODE(embedded.stat().st_mode) == 0o700
        assert stat.S_IMODE((embedded / "redis").stat().st_mode) == 0o700
    finally:
        stop_embedded(embedded / "redis")


def test_hard010_open_streams_per_user_are_capped(registry, redis_url, prefix, r):
    app = make(registry, redis_url, prefix, max_streams_per_user=2)
    alice, duty = client(app), client(app, "10.0.0.9")
    login(alice, "alice", PASSWORDS["alice"])
    login(duty, "duty1", PASSWORDS["duty1"])
    url = f"/live/stream?centre={DISTRICT}"

    def open_stream(c):
        resp = c.get(url, buffered=False)
        if resp.status_code == 200:
            assert next(iter(resp.response)).startswith(b"retry:")
        return resp

    first, second = open_stream(alice), open_stream(alice)
    assert (first.status_code, second.status_code) == (200, 200)
    third = open_stream(alice)
    assert third.status_code == 429 and third.headers["Retry-After"]
    other = open_stream(duty)  # another user is not affected
    assert other.status_code == 200
    first.close()  # a closed stream frees its place at once
    again = open_stream(alice)
    assert again.status_code == 200
    for resp in (second, other, again):
        resp.close()
    assert r.zcard(f"{prefix}:{{auth}}:streams:alice") == 0


def _vc_post(c, deps, code: str, n: int):
    vc = callback(deps, "vc-request", "data")
    body = {"output": vc["output"], "outputs": outputs(vc["output"]),
            "inputs": [{"id": '{"code":["ALL"],"type":"vc-call"}', "property": "n_clicks", "value": []},
                       {"id": '{"code":["ALL"],"type":"vc-group"}', "property": "n_clicks", "value": []},
                       {"id": "vc-request", "property": "data", "value": {"code": code, "t": n}}],
            "state": [{"id": '{"code":["ALL"],"type":"vc-tier"}', "property": "value", "value": []},
                      {"id": "app-url", "property": "search", "value": f"?centre={CITY}"}],
            "changedPropIds": ["vc-request.data"]}
    return c.post("/_dash-update-component", data=json.dumps(body),
                  content_type="application/json")


def test_hard011_video_call_starts_are_capped_per_user_per_minute(registry, redis_url, prefix, r):
    app = make(registry, redis_url, prefix, auth="demo", vc_starts_per_min=3)
    svc = app.server.config[SERVICES]
    c = client(app)
    deps = json.loads(text(c.get("/_dash-dependencies")))
    for i in range(3):
        resp = _vc_post(c, deps, DISTRICT, i)
        assert resp.status_code == 200 and '"vc-call-state":{"data":{"cid":' in text(resp)
    assert r.hlen(svc.conferences.active_key) == 3
    resp = _vc_post(c, deps, DISTRICT, 9)
    assert resp.status_code == 200
    assert "发起连线过于频繁" in readable(resp) and '"cid":' not in text(resp)
    assert r.hlen(svc.conferences.active_key) == 3


# -- item 7 / item 2: untrusted meta, a rewound read model, garbage calls -------------------------
def _day_key(prefix: str, tz: str, code: str) -> str:
    today = datetime.now(ZoneInfo(tz)).strftime("%Y%m%d")
    return Keys(prefix).day(code, today, code)  # a district is its own shard and head


def _next_data(gen, timeout: float = 15.0) -> dict:
    """The next data message of a stream generator (skipping the retry line)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = next(gen)
        if msg.startswith("data: "):
            return json.loads(msg[6:])
    raise AssertionError("no data message")


def _figure_via_stream(gen, want: int, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        msg = _next_data(gen)
        seen.append(msg.get("figures", {}).get("events.reported"))
        if msg.get("figures", {}).get("events.reported") == want:
            return msg
    raise AssertionError(f"events.reported never became {want}: {seen}")


HOSTILE_META = [("version", "abc"), ("version", "9" * 5000), ("version", "-5"),
                ("version", "1e400"), ("heartbeat", "x" * 1_000_000), ("dead", "²"),
                ("Bad Field!", "1"), ("applied_at", "-1")]


def test_hard012_garbage_meta_neither_kills_the_hub_nor_the_stream(registry, redis_url, prefix, r):
    app = make(registry, redis_url, prefix, auth="off")
    svc = app.server.config[SERVICES]
    svc.watcher.poll_s = 0.02
    meta = Keys(prefix).meta(DISTRICT)
    day = _day_key(prefix, svc.settings.tz, DISTRICT)
    now = int(time.time() * 1000)
    r.hset(meta, mapping={"version": 10, "heartbeat": now, "applied_at": now})
    r.hset(day, "reported", 3)
    gen = stream(svc.watcher, svc.screens, DISTRICT, min_gap_s=0.01, keepalive_s=0.2)
    _figure_via_stream(gen, 3)
    c = client(app)
    token = mint(svc.settings, "events", DISTRICT, 3600)
    for field, value in HOSTILE_META:
        r.hset(meta, field, value)
        time.sleep(0.1)  # a few ticks of the version watcher with the garbage in place
        msg = _next_data(gen)
        assert msg["freshness"]["shards"][DISTRICT].get(field) in (None, 10, now), field
        for path in (f"/live/poll?centre={DISTRICT}", f"/live/version?centre={DISTRICT}",
                     f"/embed/events/data?token={token}"):
            resp = c.get(path)
            assert resp.status_code == 200, (field, path, text(resp)[:200])
        r.hdel(meta, "Bad Field!")
        r.hset(meta, mapping={"version": 10, "heartbeat": now, "applied_at": now, "dead": 0})
    assert any(t.name == "pingan-live-hub" and t.is_alive() for t in threading.enumerate())
    # sane again: the new figures flow
    r.hset(day, "reported", 8)
    r.hset(meta, mapping={"version": 11, "heartbeat": int(time.time() * 1000)})
    _figure_via_stream(gen, 8)
    gen.close()


def test_hard013_a_version_that_goes_back_drops_the_cached_views(registry, redis_url, prefix, r):
    app = make(registry, redis_url, prefix, auth="off")
    svc = app.server.config[SERVICES]
    svc.watcher.poll_s = 0.02
    c = client(app)
    meta = Keys(prefix).meta(DISTRICT)
    day = _day_key(prefix, svc.settings.tz, DISTRICT)

    def polled() -> int:
        return json.loads(text(c.get(f"/live/poll?centre={DISTRICT}")))["vm"]["figures"][
            "events.reported"]

    r.hset(meta, "version", 100)
    r.hset(day, "reported", 3)
    wait_until(lambda: polled() == 3, 10)
    gen = stream(svc.watcher, svc.screens, DISTRICT, min_gap_s=0.01, keepalive_s=0.2)
    _figure_via_stream(gen, 3)
    # Redis restarted from an older AOF: version 5 (< 100) and other figures
    r.hset(meta, "version", 5)
    r.hset(day, "reported", 9)
    wait_until(lambda: polled() == 9, 10)
    _figure_via_stream(gen, 9)
    assert svc.screens.view(DISTRICT)["figures"]["events.reported"] == 9
    # a rebuild (`epoch` changes) with the same version number
    r.hset(meta, mapping={"version": 5, "epoch": "rebuild-1"})
    wait_until(lambda: polled() == 9, 10)
    r.hset(day, "reported", 11)
    r.hset(meta, "epoch", "rebuild-2")
    wait_until(lambda: polled() == 11, 10)
    _figure_via_stream(gen, 11)
    gen.close()


def test_hard014_garbage_calls_in_progress_are_dropped(registry, redis_url, prefix, r):
    app = make(registry, redis_url, prefix, auth="demo")
    svc = app.server.config[SERVICES]
    conf: Conferences = svc.conferences
    good = conf.start("demo", CITY, [DISTRICT], group=False)
    hostile = {
        "not-json": "{nope",
        "list": json.dumps([1, 2, 3]),
        "wrong-shape": json.dumps({"cid": "wrong-shape"}),
        "unknown-centre": json.dumps({"cid": "unknown-centre", "by": "x", "convener": CITY,
                                      "centres": ["999999", "<img src=x>"],
                                      "url": "https://meet.example/x", "started": 1,
                                      "group": False}),
        "js-url": json.dumps({"cid": "js-url", "by": "x", "convener": CITY, "centres": [OTHER],
                              "url": "javascript:alert(1)", "started": int(time.time() * 1000),
                              "group": False}),
        "centres-str": json.dumps({"cid": "centres-str", "by": "x", "convener": CITY,
                                   "centres": OTHER, "url": "https://m.example/",
                                   "started": 1, "group": False}),
        "huge": "x" * 2_000_000,
        "bytes": b"\xff\xfe\x00garbage",
    }
    r.hset(conf.active_key, mapping=hostile)
    svc.watcher.refresh_calls()  # the old code raised here (JSONDecodeError) and its loop died
    assert svc.screens.in_call(CITY) == sorted({CITY, DISTRICT})
    assert OTHER not in svc.screens.in_call(CITY)
    assert [k.decode() for k in r.hkeys(conf.active_key)] == [good.cid]  # garbage deleted
    # the stream of a screen and the call buttons keep working with garbage in the hash
    r.hset(conf.active_key, mapping=hostile)
    gen = stream(svc.watcher, svc.screens, CITY, min_gap_s=0.01, keepalive_s=0.2)
    assert DISTRICT in _next_data(gen)["in_call"]
    gen.close()
    r.hset(conf.active_key, mapping=hostile)
    c = client(app)
    deps = json.loads(text(c.get("/_dash-dependencies")))
    resp = _vc_post(c, deps, OTHER, 1)
    assert resp.status_code == 200 and '"vc-call-state":{"data":{"cid":' in text(resp)
    end = callback(deps, "vc-end", "n_clicks")
    r.hset(conf.active_key, mapping=hostile)
    for cid in ("not-json", "js-url", "huge"):
        body = {"output": end["output"], "outputs": outputs(end["output"]),
                "inputs": [{"id": "vc-end", "property": "n_clicks", "value": 1}],
                "state": [{"id": "vc-call-state", "property": "data", "value": {"cid": cid}}],
                "changedPropIds": ["vc-end.n_clicks"]}
        resp = c.post("/_dash-update-component", data=json.dumps(body),
                      content_type="application/json")
        assert resp.status_code == 200, (cid, text(resp)[:200])
    assert conf.get("js-url") is None and conf.end("not-json", "demo") is False


def test_hard015_a_scope_must_be_a_centre_code(registry):
    engine = make_engine(registry[1])
    for scope in ("610202<script>", "610202 OR 1=1", "*", "6" * 33, ""):
        with pytest.raises(UserError, match="centre code"):
            add_user(engine, "x-scope", "long-enough-pw", "duty", scope)
    engine.dispose()
    env = {"DATABASE_URL": registry[1], "PINGAN_DATA_DIR": str(registry[0])}
    out = CliRunner().invoke(pingan, ["users", "add", "x-scope", "--role", "duty", "--scope",
                                      "61020*", "--password-stdin"], input="long-enough-pw\n",
                             env=env)
    assert out.exit_code == 1 and "centre code" in out.output


def test_hard016_an_embed_refresh_sees_a_new_epoch_with_the_same_version(registry, redis_url,
                                                                        prefix, r):
    """A portal widget holds a version; after a rebuild (a new `epoch`) the same version number
    with other figures must not be answered as "unchanged"."""
    app = make(registry, redis_url, prefix, auth="off")
    svc = app.server.config[SERVICES]
    svc.watcher.poll_s = 0.02
    c = client(app)
    token = mint(svc.settings, "events", DISTRICT, 3600)
    meta = Keys(prefix).meta(DISTRICT)
    day = _day_key(prefix, svc.settings.tz, DISTRICT)
    r.hset(meta, mapping={"version": 40, "epoch": "e1", "heartbeat": int(time.time() * 1000)})
    r.hset(day, "reported", 3)

    def data(have: str = "") -> dict:
        q = f"/embed/events/data?token={token}" + (f"&have={have}" if have else "")
        return json.loads(text(c.get(q)))

    first = wait_until(lambda: (d := data()) and d["figures"]["events.reported"] == 3 and d, 10)
    held = first["version"]
    assert "figures" not in data(held)  # unchanged: freshness only
    r.hset(day, "reported", 8)
    r.hset(meta, "epoch", "e2")  # rebuilt: same version number, other figures
    fresh = wait_until(lambda: (d := data(held)) and "figures" in d and d, 10)
    assert fresh["figures"]["events.reported"] == 8 and fresh["version"] != held


def test_hard020_behind_nginx_the_throttle_counts_the_forwarded_client(registry, redis_url,
                                                                         prefix, r):
    """Behind a reverse proxy every request comes from the proxy's address: the throttle must
    count the client nginx names in X-Forwarded-For (PINGAN_FORWARDED_FROM), or a flood from
    one outsider locks the account for everyone; a forged header from anywhere else is ignored."""
    app = make(registry, redis_url, prefix, forwarded_from=("10.9.9.9",))
    attacker, user = client(app, "10.9.9.9"), client(app, "10.9.9.9")
    attacker.environ_base["HTTP_X_FORWARDED_FOR"] = "1.2.3.4, 203.0.113.5"  # nginx: the last
    user.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.7"
    for _ in range(6):
        login(attacker, "alice", "a wrong guess")
    assert "尝试次数过多" in text(login(attacker, "alice", "x"))
    assert r.exists(f"{prefix}:{{auth}}:login:alice:203.0.113.5")
    assert login(user, "alice", PASSWORDS["alice"]).status_code == 303  # not locked out
    # a client that is not the proxy cannot pick its address with the header
    forger = client(app, "10.66.0.9")
    forger.environ_base["HTTP_X_FORWARDED_FOR"] = "192.0.2.1"
    login(forger, "alice", "wrong")
    assert r.exists(f"{prefix}:{{auth}}:login:alice:10.66.0.9")
    assert not r.exists(f"{prefix}:{{auth}}:login:alice:192.0.2.1")
    # garbage in the header from the proxy: the proxy's own address, never the garbage
    junk = client(app, "10.9.9.9")
    junk.environ_base["HTTP_X_FORWARDED_FOR"] = "alice:*{auth}"
    login(junk, "alice", "wrong")
    assert r.exists(f"{prefix}:{{auth}}:login:alice:10.9.9.9")
