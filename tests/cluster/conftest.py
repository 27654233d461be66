"""Fixtures of the cluster suite: one local Redis Cluster (3 masters + 3 replicas, the
machine's redis-server) for the session, and `redis_url` / `r` overriding the root conftest's,
so that tests imported from tests/integration run against the cluster (the root `settings`
takes this `redis_url`; PINGAN_REDIS_CLUSTER stays `auto`: connect() must find out by itself)."""

from __future__ import annotations

import shutil

import pytest
from redis.cluster import RedisCluster

from dashboard.devkit.redis_cluster import ClusterHandle, start_cluster
from tests.conftest import IN_CI
from tests.helpers import delete_prefix


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
    delete_prefix(client, prefix)
    client.close()
