"""Unit tests need no Redis and no browser: this guard makes any attempt fail loudly.

Every unit test runs with redis-py's connect (sync and asyncio), the embedded server's
start and Chromium's start replaced by a refusal, and fails at teardown if it tried one
(in the test's thread) even when the code under test swallowed the error (a live hub logs
and survives anything).
The session fixtures that start a server (`redis_dir`, `redis7_url`) refuse too, and
`settings` points at a Redis that is never reached. A test that needs Redis belongs in
tests/integration.

    REDIS_URL= .venv/bin/pytest -q tests/unit -p no:cacheprovider
"""

from __future__ import annotations

import threading

import pytest
import redis.asyncio.connection
import redis.connection

from dashboard.settings import Settings
from datasources import connection

NO_REDIS_URL = "redis://unit-tests-have-no-redis.invalid:1/0"
MOVE = "unit tests run with no Redis and no browser: move this test to tests/integration"


class RefusedInUnitTest(AssertionError):
    """Raised by the guard; an AssertionError, so no `except redis.RedisError` hides it."""


@pytest.fixture(autouse=True)
def _no_redis_no_browser(monkeypatch):
    attempts: list[str] = []
    test_thread = threading.get_ident()

    def refuse(what: str):
        def _refused(*_args, **_kwargs):
            # refused in every thread; counted against the test in its own thread only (a
            # thread an earlier integration test left polling is not this test's doing)
            if threading.get_ident() == test_thread:
                attempts.append(what)
            raise RefusedInUnitTest(f"{what}: {MOVE}")
        return _refused

    for cls in (redis.connection.AbstractConnection, redis.asyncio.connection.AbstractConnection):
        for name in ("connect", "connect_check_health"):
            if hasattr(cls, name):
                monkeypatch.setattr(cls, name, refuse(f"Redis {cls.__module__}.{name}"))
    monkeypatch.setattr(connection, "redis_binary", refuse("embedded redis-server"))
    monkeypatch.setattr(connection, "start_embedded", refuse("embedded redis-server"))
    try:
        from selenium import webdriver
    except ImportError:  # pragma: no cover - selenium is a dev extra
        pass
    else:
        monkeypatch.setattr(webdriver, "Chrome", refuse("Chromium"))
    yield
    if attempts:
        pytest.fail(f"{attempts[0]} was attempted ({len(attempts)}x): {MOVE}")


@pytest.fixture(scope="session")
def redis_dir():
    pytest.fail(f"the session Redis server was requested: {MOVE}")


@pytest.fixture(scope="session")
def redis7_url():
    pytest.fail(f"a Redis 7 server was requested: {MOVE}")


@pytest.fixture
def settings(tmp_path, demo_db, prefix) -> Settings:
    """Settings of a unit test: the demo registry, and a Redis URL nothing may connect to."""
    return Settings.from_env(
        data_dir=tmp_path, redis_url=NO_REDIS_URL, database_url=demo_db, key_prefix=prefix,
        lease_ms=1500,
    )



@pytest.fixture(scope="session")
def small_topo():
    """The small hand-built topology of tests/unit/small_registry.py."""
    from tests.unit.small_registry import small_topology

    return small_topology()
