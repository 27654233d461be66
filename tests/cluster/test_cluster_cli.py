"""The CLI unchanged against the cluster: REDIS_URL at a node is enough (auto-detected)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from datasources.keys import Keys


def _pingan(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dashboard", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_cluster_cli001_import_simulate_aggregate_audit_rebuild(r, settings, demo_db, tmp_path):
    env = {**os.environ, "PINGAN_DATA_DIR": str(tmp_path), "REDIS_URL": settings.redis_url,
           "PINGAN_KEY_PREFIX": settings.key_prefix, "PINGAN_LEASE_MS": "1500"}
    exported = _pingan({**env, "DATABASE_URL": demo_db}, "registry", "export", str(tmp_path / "reg"))
    assert exported.returncode == 0, exported.stderr
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'imported.sqlite3'}"
    steps = [("registry", "import", str(tmp_path / "reg")),
             ("simulate", "--events", "1500", "--seed", "3"),
             ("aggregate", "--until-idle"),
             ("audit", "--json"),
             ("rebuild", "--yes", "--json"),
             ("audit", "--json"),
             ("snapshot", "610200")]
    out = {}
    for step in steps:
        done = _pingan(env, *step)
        assert done.returncode == 0, (step, done.stdout[-1500:], done.stderr[-1500:])
        out[step[0]] = done.stdout
    keys = Keys(settings.key_prefix)
    assert r.get(keys.registry_version())  # the import told the (clustered) workers
    report = json.loads(out["audit"])
    assert report["differences"] == [] and report["entries_recounted"] >= 1500
    assert json.loads(out["rebuild"])
    assert "610200" in out["snapshot"]
