"""A whole running stack for browser tests and benchmarks: a Redis server of its own (so it
can be stopped), a registry, the aggregator and simulator as processes, gunicorn."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

from dashboard.cli_demo import gunicorn_cmd
from dashboard.janus_server import JanusServer
from datasources.connection import start_embedded, stop_embedded


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    dir: Path
    db_url: str
    prefix: str = "stack"
    stale_after_s: float = 10.0
    port: int = field(default_factory=free_port)
    procs: dict = field(default_factory=dict)
    env: dict = field(default_factory=dict)
    janus: JanusServer | None = None

    def __post_init__(self) -> None:
        self.env = dict(os.environ)
        self.env.update(
            PINGAN_DATA_DIR=str(self.dir), REDIS_URL=f"unix://{self.redis_dir / 'redis.sock'}",
            DATABASE_URL=self.db_url, PINGAN_KEY_PREFIX=self.prefix,
            PINGAN_STALE_AFTER_S=str(self.stale_after_s), PINGAN_LEASE_MS="1500",
            # tests of the screens run open; tests/integration/test_access.py signs in
            PINGAN_AUTH="off",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def redis_dir(self) -> Path:
        return self.dir / "redis"

    def redis(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.redis_dir / "redis.sock"))

    # -- processes -----------------------------------------------------------------------
    def start_redis(self) -> None:
        start_embedded(self.redis_dir)

    def stop_redis(self) -> None:
        stop_embedded(self.redis_dir)

    def start(self, name: str, cmd: list[str]) -> None:
        with open(self.dir / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL,
                                                stderr=log)

    def stop(self, name: str, sig=signal.SIGTERM) -> None:
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def pingan(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "dashboard", *args]

    def run(self, *args: str) -> None:
        subprocess.run(self.pingan(*args), env=self.env, check=True, capture_output=True)

    def start_janus(self) -> JanusServer:
        """A private Janus (整体联动 rooms) in dir/janus; before start_web, whose env it sets."""
        self.janus = JanusServer().start(self.dir / "janus")
        self.env.update(PINGAN_JANUS_URL=self.janus.url,
                        PINGAN_JANUS_ADMIN_KEY=self.janus.admin_key)
        return self.janus

    def start_aggregator(self, name: str = "aggregate") -> None:
        self.start(name, self.pingan("aggregate"))

    def add_user(self, name: str, role: str, scope: str, password: str) -> None:
        """`pingan users add` through the CLI, as an operator would; fails loudly."""
        res = subprocess.run(self.pingan("users", "add", name, "--role", role, "--scope", scope,
                                         "--password-stdin"),
                             input=password + "\n", env=self.env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"pingan users add {name}: {res.stderr.strip()}")

    def start_web(self, workers: int = 1) -> None:
        self.start("web", gunicorn_cmd(self.port, "127.0.0.1", workers))
        deadline = time.monotonic() + 90  # a loaded 2-core CI machine boots a worker slowly
        while time.monotonic() < deadline:
            if self.procs["web"].poll() is not None:
                break  # it died: say why at once
            try:
                urllib.request.urlopen(self.url + "/", timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        log = (self.dir / "web.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the web server did not come up; web.log ends:\n{log}")

    def close(self) -> None:
        """Stop everything. gunicorn gets SIGQUIT, its quick shutdown: on SIGTERM it waits its
        graceful timeout (10 s) for the live streams of browsers that have gone, which notice
        only at their next write."""
        for name in list(self.procs):
            gunicorn = "gunicorn" in self.procs[name].args
            self.stop(name, signal.SIGQUIT if gunicorn else signal.SIGTERM)
        if self.janus is not None:
            self.janus.stop()
        self.stop_redis()


def demo_registry(directory: Path) -> str:
    """A demo registry in a fresh SQLite file; returns its URL."""
    from datasources.demo_region import build_demo
    from datasources.migrations import migrate
    from datasources.registry import make_engine

    path = directory / "registry.sqlite3"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate(engine)
    build_demo(engine, seed=7)
    engine.dispose()
    return url


def copy_registry(src_url: str, directory: Path) -> tuple[str, Path]:
    path = directory / "registry.sqlite3"
    shutil.copy(src_url.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}", path
