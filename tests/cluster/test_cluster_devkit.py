"""The cluster helpers themselves: the client kind `connect` picks, and the hash-tag scan."""

from __future__ import annotations

import dataclasses

import redis
from redis.cluster import RedisCluster

from dashboard.devkit.stack import free_port
from datasources.connection import connect, hash_tag, scan_iter, server_id, text_client
from datasources.keys import Keys


def test_cluster_dev001_connect_detects_the_cluster_and_text_client_follows(r, settings):
    auto = connect(settings.redis)
    plain = connect(dataclasses.replace(settings.redis, cluster="no"))
    try:
        assert isinstance(auto, RedisCluster)
        assert type(plain) is redis.Redis
        text = text_client(auto)
        key = Keys(settings.key_prefix).meta("610202")
        auto.hset(key, "name", "\u94dc\u5ddd".encode() + b"\xff")  # not UTF-8 at the end
        assert text.hget(key, "name") == "\u94dc\u5ddd\udcff"  # surrogateescape, nothing lost
        assert len(server_id(auto).split(",")) == 3  # the three masters' run ids
    finally:
        auto.close()
        plain.close()


def test_cluster_dev002_a_tagged_scan_reads_one_node_and_finds_every_key(r, settings):
    keys = Keys(settings.key_prefix)
    for shard in ("610202", "610203", "610204"):
        for i in range(20):
            r.set(keys.day(shard, "20260101", f"c{i}"), 1)
    assert hash_tag(keys.shard_pattern("610203")) == "{610203}"
    assert hash_tag(f"{settings.key_prefix}:*") is None
    found = {k.decode() for k in scan_iter(r, keys.shard_pattern("610203"))}
    assert found == {keys.day("610203", "20260101", f"c{i}") for i in range(20)}
    assert len(list(scan_iter(r, f"{settings.key_prefix}:*"))) == 60  # every master


def test_cluster_dev003_a_server_away_at_start_gives_the_lazy_standalone_client(settings, caplog):
    """As before the cluster support: a process started while Redis is away gets its client
    (which connects when first used) instead of failing at start; the log says why."""
    away = dataclasses.replace(settings.redis, url=f"redis://127.0.0.1:{free_port()}",
                               retries=1)
    client = connect(away)
    assert type(client) is redis.Redis
    assert "PINGAN_REDIS_CLUSTER" in caplog.text
    client.close()
