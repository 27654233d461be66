"""A private Janus (WebRTC SFU) for the demo and the tests: its own config folder, port and
admin key, so it never clashes with a system Janus (8088/8188) or another run.

Only the VideoRoom and SIP plugins and the plain-HTTP transport load (the WebSocket transport
would bind 8188); no admin API, no event handlers, no loggers; the log is `DIR/janus.log`.
The installed Debian package (`apt-get install janus`) provides the binary and the modules.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from datasources.janus import JanusClient, JanusError

ENABLED_PLUGINS = ("libjanus_videoroom.so", "libjanus_sip.so")
ENABLED_TRANSPORTS = ("libjanus_http.so",)
# the modules of Janus 1.1: disabled by name even when their folder cannot be listed
KNOWN_PLUGINS = ("libjanus_audiobridge.so", "libjanus_duktape.so", "libjanus_echotest.so",
                 "libjanus_lua.so", "libjanus_nosip.so", "libjanus_recordplay.so",
                 "libjanus_sip.so", "libjanus_streaming.so", "libjanus_textroom.so",
                 "libjanus_videocall.so", "libjanus_videoroom.so", "libjanus_voicemail.so")
KNOWN_TRANSPORTS = ("libjanus_http.so", "libjanus_mqtt.so", "libjanus_nanomsg.so",
                    "libjanus_pfunix.so", "libjanus_rabbitmq.so", "libjanus_websockets.so")
KNOWN_LOGGERS = ("libjanus_jsonlog.so",)
KNOWN_EVENTS = ("libjanus_gelfevh.so", "libjanus_mqttevh.so", "libjanus_nanomsgevh.so",
                "libjanus_rabbitmqevh.so", "libjanus_sampleevh.so", "libjanus_wsevh.so")
LIB_DIRS = ("/usr/lib/*/janus", "/usr/lib/janus", "/usr/local/lib/janus", "/opt/janus/lib/janus")
START_S = 20.0
PR_SET_PDEATHSIG = 1  # prctl(2)
INSTALL_HINT = "Janus is not installed: `apt-get install janus` (Debian/Ubuntu)"


class JanusServerError(RuntimeError):
    pass


def janus_binary() -> str | None:
    return shutil.which("janus")


def janus_lib_dir() -> Path | None:
    """The folder holding Janus's plugins/ and transports/ (Debian: /usr/lib/<triplet>/janus)."""
    for pattern in LIB_DIRS:
        for hit in sorted(glob.glob(pattern)):
            if (Path(hit) / "plugins").is_dir():
                return Path(hit)
    return None


def _disabled(folder: Path, known: tuple[str, ...], keep: tuple[str, ...]) -> str:
    found = {p.name for p in folder.glob("*.so")} if folder.is_dir() else set()
    return ",".join(sorted((found | set(known)) - set(keep)))


def _q(value: str) -> str:
    """A libconfig string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(directory: Path, http_port: int, admin_key: str, rtp_range: str = "20000-40000",
                 *, ip: str = "127.0.0.1", lib_dir: Path | None = None) -> Path:
    """Write a private config folder `directory/conf`; returns it."""
    lib = lib_dir or janus_lib_dir() or Path("/usr/lib/x86_64-linux-gnu/janus")
    conf = Path(directory) / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    files = {
        "janus.jcfg": f"""general: {{
	configs_folder = {_q(str(conf))}
	plugins_folder = {_q(str(lib / "plugins"))}
	transports_folder = {_q(str(lib / "transports"))}
	events_folder = {_q(str(lib / "events"))}
	loggers_folder = {_q(str(lib / "loggers"))}
	debug_level = 3
	debug_colors = false
	server_name = "pingan"
	session_timeout = 60
	protected_folders = ["/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/sbin", "/sys", "/usr", "/var"]
}}
media: {{
	rtp_port_range = {_q(rtp_range)}
}}
nat: {{
	nice_debug = false
	ice_ignore_list = "vmnet"
}}
plugins: {{
	disable = {_q(_disabled(lib / "plugins", KNOWN_PLUGINS, ENABLED_PLUGINS))}
}}
transports: {{
	disable = {_q(_disabled(lib / "transports", KNOWN_TRANSPORTS, ENABLED_TRANSPORTS))}
}}
loggers: {{
	disable = {_q(_disabled(lib / "loggers", KNOWN_LOGGERS, ()))}
}}
events: {{
	broadcast = false
	disable = {_q(_disabled(lib / "events", KNOWN_EVENTS, ()))}
}}
""",
        # CORS: Janus answers any origin by default (browsers call it directly)
        "janus.transport.http.jcfg": f"""general: {{
	json = "plain"
	base_path = "/janus"
	http = true
	port = {int(http_port)}
	ip = {_q(ip)}
	https = false
}}
admin: {{
	admin_http = false
	admin_https = false
}}
cors: {{
}}
""",
        # no sample rooms; rooms are created through the API with the admin key only
        "janus.plugin.videoroom.jcfg": f"""general: {{
	admin_key = {_q(admin_key)}
	lock_rtp_forward = true
	events = false
}}
""",
        "janus.plugin.sip.jcfg": f"""general: {{
	keepalive_interval = 120
	behind_nat = false
	register_ttl = 3600
	rtp_port_range = {_q(rtp_range)}
	sip_timer_t1x64 = 32000
	events = false
}}
""",
    }
    for name, text in files.items():
        path = conf / name
        path.write_text(text)
        path.chmod(0o600)  # the admin key
    return conf


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the process that started Janus dies,
    even by SIGKILL, so a killed demo or test leaves no Janus behind. Elsewhere: nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class JanusServer:
    """`with JanusServer() as j: j.start(dir)` … `j.url`, `j.admin_key`; stopped on exit."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.url: str = ""
        self.admin_key: str = ""
        self.directory: Path | None = None
        self.pid: int | None = None  # the last started process (kept after stop, for checks)

    def __enter__(self) -> JanusServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def log(self) -> Path:
        assert self.directory is not None
        return self.directory / "janus.log"

    def start(self, directory: Path, http_port: int | None = None, *, ip: str = "127.0.0.1",
              rtp_range: str = "20000-40000") -> JanusServer:
        """Start Janus and wait until its /info answers (≤ 20 s; else the log tail is raised).
        With no `http_port` a free one is picked (retried if another process takes it first)."""
        binary = janus_binary()
        if binary is None:
            raise JanusServerError(INSTALL_HINT)
        if self.proc is not None:
            raise JanusServerError("this JanusServer is already started")
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.admin_key = secrets.token_urlsafe(24)
        for attempt in range(1 if http_port else 3):
            port = http_port or _free_port()
            conf = write_config(self.directory, port, self.admin_key, rtp_range, ip=ip)
            host = "127.0.0.1" if ip in ("0.0.0.0", "::") else ip
            host = f"[{host}]" if ":" in host else host
            self.url = f"http://{host}:{port}/janus"
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [binary, "-F", str(conf), "-C", str(conf / "janus.jcfg"), "-o", "-d", "3"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # the terminal's Ctrl-C goes to the demo, not here
                    preexec_fn=_die_with_parent)
            self.pid = self.proc.pid
            if self._wait():
                return self
            self.stop()
            if attempt == 2 or http_port:
                break
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise JanusServerError(f"Janus did not come up on {self.url}; janus.log ends:\n{tail}")

    def _wait(self) -> bool:
        client = JanusClient(self.url, None, timeout_s=1.0)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                client.info()
                return True
            except JanusError:
                time.sleep(0.1)
        return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; idempotent."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
