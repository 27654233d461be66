"""Fixtures of the cluster suite: one local Redis Cluster (3 masters + 3 replicas, the
machine's redis-server) for the session, and `redis_url` / `r` / `settings` overriding the root
conftest's, so that tests imported from tests/integration run against the cluster."""

from __future__ import annotations

import shutil

import pytest
from redis.cluster import RedisCluster

from dashboard.devkit.redis_cluster import ClusterHandle, start_cluster
from dashboard.settings import Settings
from tests.cluster.common import clean
from tests.conftest import IN_CI


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> ClusterHandle:
    if not (shutil.which("redis-server") and shutil.which("redis-cli")):
        if IN_CI:
            pytest.fail("redis-server / redis-cli are not installed (scripts/test.sh installs them)")
        pytest.skip("no redis-server / redis-cli binary")
    handle = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def redis_url(cluster) -> str:
    return cluster.url


@pytest.fixture
def r(redis_url, prefix):
    client = RedisCluster.from_url(redis_url)
    yield client
    clean(client, prefix)
    client.close()


@pytest.fixture
def settings(tmp_path, redis_url, demo_db, prefix) -> Settings:
    # PINGAN_REDIS_CLUSTER stays `auto`: connect() must find out by itself
    return Settings.from_env(
        data_dir=tmp_path, redis_url=redis_url, database_url=demo_db, key_prefix=prefix,
        lease_ms=1500,
    )
