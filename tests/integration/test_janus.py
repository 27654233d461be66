"""The Janus client and the private Janus server (整体联动 rooms), against a real Janus.

Janus is a test requirement (scripts/test.sh installs the Debian package): a missing binary
fails loudly here, it does not skip. A hostile "Janus" (a real HTTP server answering garbage)
checks that the client turns every malformed answer into a JanusError."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dashboard.janus_server import (
    ENABLED_PLUGINS,
    ENABLED_TRANSPORTS,
    INSTALL_HINT,
    KNOWN_PLUGINS,
    KNOWN_TRANSPORTS,
    JanusServer,
    JanusServerError,
    janus_binary,
    write_config,
)
from datasources.janus import JanusClient, JanusError, Room

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "assets" / "vendor"


@pytest.fixture(scope="module")
def janus(tmp_path_factory):
    if janus_binary() is None:
        pytest.fail(INSTALL_HINT + " (scripts/test.sh installs it)")
    with JanusServer() as server:
        server.start(tmp_path_factory.mktemp("janus"))
        yield server


@pytest.fixture
def client(janus) -> JanusClient:
    return JanusClient(janus.url, janus.admin_key, timeout_s=5.0)


@pytest.fixture
def room(client):
    r = client.create_room("test-call", 3)
    yield r
    client.destroy_room(r.room, r.secret)


def _post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _browser_join(url: str, body: dict) -> dict:
    """What a browser's janus.js does: a session, the VideoRoom handle, a join request; the
    plugin's answer to it (it comes as an event, fetched by long poll)."""
    session = _post(url, {"janus": "create", "transaction": "t1"})["data"]["id"]
    try:
        handle = _post(f"{url}/{session}", {"janus": "attach", "plugin": "janus.plugin.videoroom",
                                            "transaction": "t2"})["data"]["id"]
        first = _post(f"{url}/{session}/{handle}", {"janus": "message", "body": body,
                                                    "transaction": "t3"})
        if "plugindata" in first:
            return first["plugindata"]["data"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(f"{url}/{session}?maxev=1&rid={time.time_ns()}",
                                        timeout=35) as resp:
                ev = json.loads(resp.read())
            if ev.get("transaction") == "t3" and "plugindata" in ev:
                return ev["plugindata"]["data"]
        raise AssertionError("no answer to the join")
    finally:
        _post(f"{url}/{session}", {"janus": "destroy", "transaction": "t4"})


# -- a real Janus -------------------------------------------------------------------------------

def test_janus001_info_names_only_videoroom_sip_and_http(client):
    info = client.info()
    assert info["version_string"].startswith("1.")
    assert set(info["plugins"]) == {"janus.plugin.videoroom", "janus.plugin.sip"}
    assert set(info["transports"]) == {"janus.transport.http"}
    assert not info.get("event_handlers") and not info.get("events")


def test_janus002_a_new_room_is_empty_private_and_secret(client, room):
    assert isinstance(room, Room) and 0 < room.room < 2**53
    assert len(room.secret) >= 20 and len(room.pin) >= 12 and room.secret != room.pin
    assert room.secret not in repr(room) and room.pin not in repr(room)
    assert client.participants(room.room) == []
    other = client.create_room("another", 1)  # fresh id, secret and pin every time
    try:
        assert (other.room, other.secret, other.pin) != (room.room, room.secret, room.pin)
    finally:
        client.destroy_room(other.room, other.secret)
    # private: not in the public list a browser can ask for
    listed = _browser_join(client.url, {"request": "list"})
    assert room.room not in [r.get("room") for r in listed.get("list", [])]


def test_janus003_only_the_admin_key_creates_rooms(janus):
    for key in (None, "", "wrong-" + secrets.token_hex(4)):
        with pytest.raises(JanusError) as e:
            JanusClient(janus.url, key or None).create_room("browser-made", 2)
        assert e.value.code in (429, 433), e.value  # missing element / unauthorized
    # nor by a raw request, as a browser could send one
    answer = _browser_join(janus.url, {"request": "create", "room": 4242, "publishers": 2})
    assert "error_code" in answer


def test_janus004_destroy_needs_the_secret_and_is_idempotent(client):
    r = client.create_room("to-destroy", 2)
    with pytest.raises(JanusError) as e:
        client.destroy_room(r.room, "not-" + r.secret)
    assert e.value.code == 433
    assert client.participants(r.room) == []  # still there
    client.destroy_room(r.room, r.secret)
    client.destroy_room(r.room, r.secret)  # twice: fine
    client.destroy_room(123456789, "whatever")  # never existed: fine
    with pytest.raises(JanusError) as e:
        client.participants(r.room)
    assert e.value.code == 426


def test_janus005_joining_needs_the_pin(client, room):
    join = {"request": "join", "ptype": "publisher", "room": room.room, "display": "x"}
    refused = _browser_join(client.url, join)
    assert refused.get("error_code") == 429, refused  # missing element (pin)
    refused = _browser_join(client.url, {**join, "pin": "wrong"})
    assert refused.get("error_code") == 433, refused
    joined = _browser_join(client.url, {**join, "pin": room.pin})
    assert joined.get("videoroom") == "joined", joined


def test_janus006_stop_leaves_no_process(tmp_path):
    with JanusServer() as j:
        j.start(tmp_path / "j", http_port=None)
        pid, url = j.pid, j.url
        assert pid and JanusClient(url, None, 1.0).info()
        j.stop()
        j.stop()  # idempotent
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        with pytest.raises(JanusError):
            JanusClient(url, None, 1.0).info()
        j2 = JanusServer()
        with j2:
            j2.start(tmp_path / "j2")
            pid2 = j2.pid
        with pytest.raises(ProcessLookupError):  # the context manager stops it too
            os.kill(pid2, 0)
    assert "apt-get install janus" in INSTALL_HINT
    log = (tmp_path / "j" / "janus.log").read_text()
    assert j.admin_key not in log


def test_janus006b_a_killed_parent_takes_its_janus_along(tmp_path):
    """`pingan demo` (or a test) killed by SIGKILL leaves no Janus behind (PR_SET_PDEATHSIG)."""
    code = ("import sys, time\nfrom pathlib import Path\nfrom dashboard.janus_server import JanusServer\n"
            "j = JanusServer(); j.start(Path(sys.argv[1])); print(j.pid, flush=True); time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "j")],
                              stdout=subprocess.PIPE, text=True)
    janus_pid = int(parent.stdout.readline())
    os.kill(janus_pid, 0)  # running
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and Path(f"/proc/{janus_pid}").exists():
        time.sleep(0.1)
    if Path(f"/proc/{janus_pid}").exists():
        os.kill(janus_pid, signal.SIGKILL)
        pytest.fail("Janus outlived the process that started it")


def test_janus007_a_missing_binary_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no janus on this PATH
    with pytest.raises(JanusServerError, match="apt-get install janus"):
        JanusServer().start(tmp_path / "j")


# -- unreachable and hostile servers --------------------------------------------------------------

def test_janus008_a_dead_port_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = JanusClient(f"http://127.0.0.1:{port}/janus", "k", timeout_s=2.0)
    for op in (c.info, lambda: c.create_room("x", 2), lambda: c.participants(1),
               lambda: c.destroy_room(1, "s")):
        t = time.monotonic()
        with pytest.raises(JanusError, match="unreachable"):
            op()
        assert time.monotonic() - t < 2.0


def test_janus009_a_silent_server_times_out():
    with socket.socket() as s:  # accepts connections (backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        c = JanusClient(f"http://127.0.0.1:{s.getsockname()[1]}/janus", "k", timeout_s=0.5)
        for op in (c.info, lambda: c.create_room("x", 2)):
            t = time.monotonic()
            with pytest.raises(JanusError):
                op()
            assert time.monotonic() - t < 1.5


def test_janus010_bad_urls_are_refused():
    for url in ("file:///etc/passwd", "ftp://x/janus", "janus", ""):
        with pytest.raises(ValueError):
            JanusClient(url, None)


class _Hostile(BaseHTTPRequestHandler):
    """A 'Janus' answering the session and the handle, then whatever `server.mode` says."""

    def log_message(self, *a) -> None:
        pass

    def _send(self, status: int, raw: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        self._answer({})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self._answer(body)

    def _answer(self, body: dict) -> None:
        mode, tr = self.server.mode, body.get("transaction")
        kind = body.get("janus")
        if mode == "http500":
            return self._send(500, b"{}")
        if mode == "notjson":
            return self._send(200, b"<html>proxy error</html>")
        if mode == "list":
            return self._send(200, b"[1, 2, 3]")
        if mode == "huge":
            return self._send(200, b'{"janus": "' + b"x" * (1 << 21) + b'"}')
        if mode == "no-session" and kind == "create":
            return self._send(200, json.dumps({"janus": "success", "transaction": tr}).encode())
        if mode == "string-id" and kind == "create":
            return self._send(200, json.dumps({"janus": "success", "transaction": tr,
                                               "data": {"id": "1/../admin"}}).encode())
        if mode == "wrong-transaction":
            tr = "someone-else"
        if kind in ("create", "attach", "destroy"):
            return self._send(200, json.dumps({"janus": "success", "transaction": tr,
                                               "data": {"id": 7}}).encode())
        if kind == "message":
            data = {
                "no-plugindata": None,
                "plugindata-list": [],
                "bad-participants": {"videoroom": "participants", "participants": "all"},
                "bad-entry": {"videoroom": "participants", "participants": ["x"]},
                "odd-entry": {"videoroom": "participants",
                              "participants": [{"id": 5, "display": {"html": "<b>"},
                                                "publisher": "yes"}]},
                "wrong-room": {"videoroom": "created", "room": 1},
                "error": {"videoroom": "event", "error_code": "433; drop", "error": "x" * 5000},
            }.get(mode)
            answer: dict = {"janus": "success", "transaction": tr}
            if data is not None:
                answer["plugindata"] = data if mode == "plugindata-list" else {"data": data}
            return self._send(200, json.dumps(answer).encode())
        self._send(200, json.dumps({"janus": "server_info"}).encode())


@pytest.fixture(scope="module")
def hostile():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    srv.mode = ""
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("mode, op, message", [
    ("http500", "info", "HTTP 500"),
    ("notjson", "info", "did not answer JSON"),
    ("list", "info", "answered"),
    ("huge", "info", "larger than"),
    ("no-session", "participants", "no session id"),
    ("string-id", "participants", "no session id"),
    ("wrong-transaction", "participants", "answered"),
    ("no-plugindata", "participants", "no plugin data"),
    ("plugindata-list", "participants", "no plugin data"),
    ("bad-participants", "participants", "no participants list"),
    ("bad-entry", "participants", "malformed entry"),
    ("wrong-room", "create_room", "not"),
    ("error", "destroy_room", "refused"),
])
def test_janus011_hostile_answers_are_janus_errors(hostile, mode, op, message):
    hostile.mode = mode
    c = JanusClient(f"http://127.0.0.1:{hostile.server_address[1]}/janus", "k", timeout_s=3.0)
    call = {"info": c.info, "participants": lambda: c.participants(1),
            "create_room": lambda: c.create_room("x", 2),
            "destroy_room": lambda: c.destroy_room(1, "s")}[op]
    with pytest.raises(JanusError, match=message) as e:
        call()
    assert len(str(e.value)) < 400
    if mode == "error":
        assert e.value.code is None  # a non-integer code is not taken for "no such room"


def test_janus012_odd_participant_fields_are_normalised(hostile):
    hostile.mode = "odd-entry"
    c = JanusClient(f"http://127.0.0.1:{hostile.server_address[1]}/janus", "k", timeout_s=3.0)
    assert c.participants(1) == [{"id": 5, "display": "", "publisher": False}]


# -- the private config ---------------------------------------------------------------------------

def test_janus013_write_config_enables_only_three_modules(tmp_path):
    lib = tmp_path / "lib"
    for folder, names in (("plugins", [*KNOWN_PLUGINS, "libjanus_future.so"]),
                          ("transports", KNOWN_TRANSPORTS), ("events", ["libjanus_sampleevh.so"]),
                          ("loggers", ["libjanus_jsonlog.so"])):
        (lib / folder).mkdir(parents=True)
        for n in names:
            (lib / folder / n).write_bytes(b"")
    key = 'k"ey\\' + secrets.token_hex(4)
    conf = write_config(tmp_path / "j", 18099, key, "31000-31999", lib_dir=lib)
    assert conf == tmp_path / "j" / "conf"
    assert sorted(p.name for p in conf.iterdir()) == [
        "janus.jcfg", "janus.plugin.sip.jcfg", "janus.plugin.videoroom.jcfg",
        "janus.transport.http.jcfg"]
    core = (conf / "janus.jcfg").read_text()

    def disabled(section: str) -> set[str]:
        block = re.search(section + r": \{(.*?)\n\}", core, re.S).group(1)
        return set(re.search(r'disable = "([^"]*)"', block).group(1).split(","))

    assert disabled("plugins") == {*KNOWN_PLUGINS, "libjanus_future.so"} - set(ENABLED_PLUGINS)
    assert disabled("transports") == set(KNOWN_TRANSPORTS) - set(ENABLED_TRANSPORTS)
    assert "libjanus_websockets.so" in disabled("transports")
    assert disabled("events") >= {"libjanus_sampleevh.so"} and "broadcast = false" in core
    assert disabled("loggers") == {"libjanus_jsonlog.so"}
    assert f'configs_folder = "{conf}"' in core and f'"{lib / "plugins"}"' in core
    assert 'rtp_port_range = "31000-31999"' in core and "log_to_file" not in core
    http = (conf / "janus.transport.http.jcfg").read_text()
    assert "port = 18099" in http and 'ip = "127.0.0.1"' in http
    assert 'base_path = "/janus"' in http and "admin_http = false" in http
    assert "allow_origin" not in http and "enforce_cors" not in http  # any origin (default)
    room = (conf / "janus.plugin.videoroom.jcfg").read_text()
    assert "room-" not in room  # no sample rooms
    assert 'admin_key = "k\\"ey\\\\' in room  # quoted for libconfig
    assert 'rtp_port_range = "31000-31999"' in (conf / "janus.plugin.sip.jcfg").read_text()
    for p in conf.iterdir():
        assert p.stat().st_mode & 0o077 == 0, p  # the admin key is the owner's only
    assert not any("8188" in p.read_text() for p in conf.iterdir())


# -- the vendored browser library -----------------------------------------------------------------

def test_janus014_vendored_scripts_are_served_as_classic_scripts_in_order():
    from dash import Dash, html

    from dashboard.app import ASSETS

    sources = (VENDOR / "SOURCES.md").read_text()
    for name in ("adapter.js", "janus.js"):
        digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
        assert digest in sources, f"{name} differs from SOURCES.md: run scripts/vendor_js.sh"
    js = (VENDOR / "janus.js").read_text()
    assert js.rstrip().endswith("window.Janus = Janus;")
    assert not re.search(r"^\s*(import|export)\b", js, re.M)
    app = Dash(__name__, assets_folder=str(ASSETS), serve_locally=True)
    app.layout = html.Div()
    web = app.server.test_client()
    page = web.get("/").get_data(as_text=True)
    srcs = re.findall(r'<script src="([^"]+)"', page)
    names = [s.split("?")[0] for s in srcs]
    assert "/assets/vendor/adapter.js" in names and "/assets/vendor/janus.js" in names
    assert names.index("/assets/vendor/adapter.js") < names.index("/assets/vendor/janus.js")
    for src in srcs:
        if "/vendor/" in src:
            resp = web.get(src)
            assert resp.status_code == 200 and "javascript" in resp.content_type
            assert resp.get_data() == (VENDOR / src.split("?")[0].rsplit("/", 1)[1]).read_bytes()
    assert "/assets/vendor/SOURCES.md" not in names


def test_janus015_the_test_stack_runs_its_own_janus(tmp_path):
    from dashboard.devkit.stack import Stack

    s = Stack(tmp_path, "sqlite:///" + str(tmp_path / "none.sqlite3"))
    try:
        j = s.start_janus()
        assert s.env["PINGAN_JANUS_URL"] == j.url and s.env["PINGAN_JANUS_ADMIN_KEY"] == j.admin_key
        assert JanusClient(j.url, j.admin_key, 2.0).info()["janus"] == "server_info"
        assert (tmp_path / "janus" / "janus.log").exists()
    finally:
        s.close()
    with pytest.raises(ProcessLookupError):
        os.kill(j.pid, 0)
