"""Two web hosts behind a real nginx configured by deploy/nginx.conf (issue 13): gunicorn
processes on two ports sharing Redis, the SQLite registry and the secret key (each its own
data dir), Debian's nginx with the site file rendered by dashboard.devkit.nginx_front.
Sessions, sign-outs and alert acknowledgements hold across hosts; through nginx both hosts
serve one session, the live streams arrive unbuffered, static files come cached and gzipped,
and sign-in posts are limited per client address."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis

from dashboard.cli_demo import gunicorn_cmd
from dashboard.devkit.nginx_front import NginxError, NginxHandle, binary, start
from dashboard.devkit.stack import copy_registry, free_port
from dashboard.settings import Settings
from datasources.aggregator import Aggregator
from datasources.keys import Keys
from datasources.registry import make_engine
from datasources.users import add_user
from tests.helpers import event
from tests.integration.test_access import Client

CITY = "610200"
USER, PASSWORD = "duty-hosts", "duty-hosts-pw-1"
UP_S = 90  # a loaded 2-core CI machine boots a worker slowly


@dataclass
class Hosts:
    dir: Path
    prefix: str
    settings: Settings
    ports: dict[str, int]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    nginx: NginxHandle | None = None
    via: Client | None = None  # signed in through nginx once, before any test

    def url(self, host: str) -> str:
        return f"http://127.0.0.1:{self.ports[host]}"

    def log(self, host: str) -> str:
        return (self.dir / f"{host}.log").read_text(errors="replace")


def _nginx_or_skip() -> None:
    try:
        binary()
    except NginxError as e:
        if os.environ.get("CI"):
            pytest.fail(f"{e} (scripts/test.sh installs it)")
        pytest.skip(str(e))


def _wait_up(h: Hosts, host: str) -> None:
    deadline = time.monotonic() + UP_S
    while time.monotonic() < deadline and h.procs[host].poll() is None:
        try:
            urllib.request.urlopen(h.url(host) + "/login", timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"web host {host} did not come up:\n{h.log(host)[-2000:]}")


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, demo_db, redis_url):
    _nginx_or_skip()
    d = tmp_path_factory.mktemp("hosts")
    db_url, _ = copy_registry(demo_db, d)
    engine = make_engine(db_url)
    add_user(engine, USER, PASSWORD, "duty", CITY)
    engine.dispose()
    prefix = f"t{uuid.uuid4().hex[:10]}"
    s = Settings.from_env(data_dir=d, redis_url=redis_url, database_url=db_url,
                          key_prefix=prefix, lease_ms=1500)
    h = Hosts(d, prefix, s, {"a": free_port(), "b": free_port()})
    secret = secrets.token_hex(32)  # the one thing the hosts must share besides the servers
    try:
        for host, port in h.ports.items():
            env = dict(os.environ, PINGAN_DATA_DIR=str(d / host), REDIS_URL=redis_url,
                       DATABASE_URL=db_url, PINGAN_KEY_PREFIX=prefix, PINGAN_AUTH="on",
                       PINGAN_SECRET_KEY=secret)
            with open(d / f"{host}.log", "ab") as log:  # the access log says who served what
                h.procs[host] = subprocess.Popen(
                    gunicorn_cmd(port, "127.0.0.1", 1, access_log=True), env=env,
                    stdout=log, stderr=subprocess.STDOUT)
        for host in h.ports:
            _wait_up(h, host)
        h.nginx = start(d / "nginx", free_port(), [f"127.0.0.1:{p}" for p in h.ports.values()])
        h.via = Client(h.nginx.url)
        # as a browser posts the form: with its Origin, which the app compares with Host
        token = h.via.csrf()
        status, _, _ = h.via.request(
            "/login", data=urlencode({"csrf": token, "username": USER,
                                      "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Origin": h.nginx.url})
        assert status == 303, "signing in through nginx (Origin and Host must agree)"
        yield h
    finally:
        if h.nginx is not None:
            h.nginx.stop()
        for p in h.procs.values():
            p.send_signal(signal.SIGQUIT)  # gunicorn's quick stop: a test needs no grace
        for p in h.procs.values():
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        r = redis.Redis.from_url(redis_url)
        keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            r.delete(*keys[i:i + 500])
        r.close()


def test_hosts001_a_session_of_one_host_holds_on_the_other_and_a_sign_out_there_ends_it(hosts):
    a = Client(hosts.url("a"))
    status, _, _ = a.login(USER, PASSWORD)
    assert status == 303 and a.cookie
    b = Client(hosts.url("b"))
    b.cookie = a.cookie
    status, _, body = b.request("/auth/ping")
    assert status == 200 and json.loads(body)["user"] == USER
    # B's sign-out form carries the session's token: the same session, signed by the same key
    token = b.csrf("/logout")
    status, headers, _ = b.request("/logout", data=f"csrf={token}".encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 303 and headers["Location"].startswith("/login")
    status, _, _ = a.request("/auth/ping")  # A still holds the cookie B signed out
    assert status == 401
    status, _, _ = a.request(f"/api/alerts?centre={CITY}")
    assert status == 401


def test_hosts002_through_nginx_both_hosts_serve_one_session(hosts):
    before = {h: hosts.log(h).count("GET /auth/ping") for h in hosts.ports}
    for _ in range(8):
        status, headers, body = hosts.via.request("/auth/ping")
        assert status == 200 and json.loads(body)["user"] == USER
        assert "Strict-Transport-Security" in headers  # the app's headers pass through
    time.sleep(0.3)  # the access log line is written after the answer
    served = {h: hosts.log(h).count("GET /auth/ping") - before[h] for h in hosts.ports}
    assert sum(served.values()) == 8 and all(n >= 2 for n in served.values()), served


def test_hosts003_an_alert_acknowledged_through_one_host_is_seen_through_the_other(hosts, topo):
    keys = Keys(hosts.prefix)
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
    r = redis.Redis.from_url(hosts.settings.redis_url)
    r.xadd(keys.stream(topo.centres[village].shard, "events"),
           event(village, "hosts-urg-1", urgency="urgent"))
    Aggregator(r, topo, hosts.settings.pipeline).run(until_idle=True)
    a, b = Client(hosts.url("a")), Client(hosts.url("b"))
    assert a.login(USER, PASSWORD)[0] == 303
    b.cookie = a.cookie
    status, _, body = b.request(f"/api/alerts?centre={CITY}")
    assert status == 200
    [alert] = [x for x in json.loads(body)["alerts"] if x.get("eid") == "hosts-urg-1"]
    assert alert["state"] == "raised"
    status, _, body = a.request(f"/api/alerts/{alert['id']}/ack", data=b"{}",
                                headers={"Content-Type": "application/json",
                                         "Origin": hosts.url("a")})
    assert status == 200 and json.loads(body)["by"] == USER
    Aggregator(r, topo, hosts.settings.pipeline).run(until_idle=True)  # applies the request
    r.close()
    status, _, body = b.request(f"/api/alerts?centre={CITY}")
    [seen] = [x for x in json.loads(body)["alerts"] if x["id"] == alert["id"]]
    assert (seen["state"], seen["acked_by"]) == ("acknowledged", USER)


def _events(hosts: Hosts, path: str, want: int) -> tuple[list[float], list[str], dict]:
    """Open `path` through nginx (asking for gzip) and read `want` SSE messages; returns
    their arrival times, their first lines and the answer's headers. The connection is
    open throughout (a buffered stream would only arrive when it closes)."""
    conn = http.client.HTTPConnection("127.0.0.1", hosts.nginx.listen, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": f"pingan_session={hosts.via.cookie}",
                                           "Accept-Encoding": "gzip"})
        t0 = time.monotonic()
        resp = conn.getresponse()
        assert resp.status == 200, resp.read()[:300]
        times, firsts, block = [], [], []
        while len(times) < want:
            line = resp.readline()
            assert line, "the stream ended"
            line = line.decode().rstrip("\n")
            if line:
                block.append(line)
                continue
            if any(x.startswith(("data:", "event:")) for x in block):
                times.append(time.monotonic() - t0)
                firsts.append(block[0])
            block = []
        assert not resp.isclosed()
        return times, firsts, dict(resp.getheaders())
    finally:
        conn.close()


def test_hosts004_live_streams_through_nginx_arrive_unbuffered(hosts):
    times, _, headers = _events(hosts, f"/live/stream?centre={CITY}", 2)
    assert headers["Content-Type"].startswith("text/event-stream")
    assert "Content-Encoding" not in headers  # gzip would hold the events back
    assert times[0] < 5.0, times  # the first message at once: the whole view
    assert times[1] - times[0] < 5.0, times  # then at least one every 2 s (keepalive_s)
    times, firsts, headers = _events(hosts, f"/vc/events?centre={CITY}", 1)
    assert firsts[0] == "event: hello" and times[0] < 5.0
    assert "Content-Encoding" not in headers


def test_hosts005_static_files_come_cached_and_gzipped(hosts):
    c = hosts.via  # signed in: its cookie is refreshed on other answers, not on these
    plain = Client(hosts.url("a")).request("/assets/wall.js")[2]
    for path, cache in (("/assets/wall.js?m=1796097531.9", "public, max-age=86400"),
                        ("/assets/login.css", "no-cache")):
        resp, body = _raw(hosts, path, c.cookie)
        assert resp.status == 200
        assert resp.getheader("Cache-Control") == cache
        assert resp.getheader("Set-Cookie") is None
        assert resp.headers.get_all("Vary") == ["Accept-Encoding"]  # once, and not Cookie
        if path.startswith("/assets/wall.js"):
            assert resp.getheader("Content-Encoding") == "gzip"
            assert gzip.decompress(body).decode() == plain
    page = c.request("/")[2]
    bundle = page.split('src="/_dash-component-suites/', 1)[1].split('"', 1)[0]
    resp, _ = _raw(hosts, "/_dash-component-suites/" + bundle, c.cookie)
    assert resp.status == 200 and "max-age=31536000" in resp.getheader("Cache-Control")
    assert resp.getheader("Content-Encoding") == "gzip"
    assert resp.getheader("Set-Cookie") is None and resp.getheader("Vary") == "Accept-Encoding"


def _raw(hosts: Hosts, path: str, cookie: str) -> tuple[http.client.HTTPResponse, bytes]:
    """GET through nginx as a browser does (gzip accepted), the body as sent."""
    conn = http.client.HTTPConnection("127.0.0.1", hosts.nginx.listen, timeout=10)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": "gzip",
                                           "Cookie": f"pingan_session={cookie}"})
        resp = conn.getresponse()
        return resp, resp.read()
    finally:
        conn.close()


def test_hosts006_nginx_limits_sign_in_posts_per_client_address(hosts):
    """The app's throttle sees nginx's address behind it; nginx counts the real client's.
    Posts without a valid form token: refused at once by the app (no password check)."""
    c = Client(hosts.nginx.url)
    codes = [c.request("/login", data=b"csrf=x&username=u&password=p",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})[0]
             for _ in range(30)]
    assert codes[:15] == [401] * 15 and codes[-1] == 429, codes
    assert c.request("/login")[0] == 200  # the form itself is not limited
