"""Helpers of the cluster suite."""

from __future__ import annotations

import os
import subprocess
import sys

from dashboard.settings import Settings


def aggregator_process(settings: Settings) -> subprocess.Popen:
    """`pingan aggregate` as a process on the settings' Redis (the cluster), as deployed."""
    env = {**os.environ, "PINGAN_DATA_DIR": str(settings.data_dir),
           "REDIS_URL": settings.redis_url, "DATABASE_URL": settings.database_url,
           "PINGAN_KEY_PREFIX": settings.key_prefix, "PINGAN_LEASE_MS": str(settings.lease_ms),
           "PINGAN_BATCH_SIZE": "300"}
    return subprocess.Popen([sys.executable, "-m", "dashboard", "aggregate"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def clean(r, prefix: str) -> None:
    """Delete every key under `prefix` (on every master)."""
    keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(keys), 500):
        r.delete(*keys[i:i + 500])  # the cluster client splits it per slot
