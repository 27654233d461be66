"""The registry schema by Alembic migrations, on SQLite and on PostgreSQL.

A fresh database migrates to exactly `Base.metadata` (alembic's compare_metadata finds nothing);
a database made by the old `create_all` keeps its rows and is stamped at 0001, or is refused
unchanged when its tables differ; migrating twice changes nothing; downgrading to base drops
every table; `pingan registry migrate --json` prints one JSON object; migrators that start
together all succeed, one of them doing the work.

PostgreSQL: each test gets its own database `pingan_mig_<hex>` on 127.0.0.1:5432 (as in
test_registry_postgres.py: user postgres, maintenance database `test`, override with
PINGAN_TEST_PG_ADMIN_URL), dropped after. Without a server those tests are skipped (failed in CI).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datasources.migrations import (
    INITIAL,
    SchemaError,
    check_current,
    downgrade,
    ensure_schema,
    head_revision,
    migrate,
    status,
)
from datasources.registry import (
    Base,
    BaseData,
    Camera,
    Centre,
    Grid,
    UserRow,
    make_engine,
    session_scope,
)

ADMIN_URL = os.environ.get(
    "PINGAN_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PINGAN = Path(sys.executable).with_name("pingan")
REGISTRY_TABLES = {"centres", "grids", "cameras", "base_data", "users"}


def _admin_connect():
    import psycopg

    url = make_url(ADMIN_URL)
    return psycopg.connect(
        host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
        password=url.password, dbname=url.database or "test", autocommit=True, connect_timeout=5,
    )


@pytest.fixture()
def pg_url():
    """A fresh PostgreSQL database of this test's own; dropped afterwards."""
    try:
        admin = _admin_connect()
    except Exception as exc:  # no driver, no server, auth refused...
        msg = f"PostgreSQL not reachable at {ADMIN_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(msg + " (CI is set, so this is an error)")
        pytest.skip(msg)
    name = f"pingan_mig_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with _admin_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture()
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'registry.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    """The same test on a fresh SQLite file and on a fresh PostgreSQL database."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture()
def engine(db_url):
    e = make_engine(db_url)
    yield e
    e.dispose()


def _differences(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def _version(engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _rows(engine) -> dict[str, list[tuple]]:
    with Session(engine) as s:
        return {
            m.__tablename__: sorted(tuple(r) for r in s.execute(select(*m.__table__.columns)))
            for m in (Centre, Grid, Camera, BaseData, UserRow)
        }


def _fill(engine) -> None:
    """A little of everything, written straight into the tables (no function that migrates)."""
    with session_scope(engine) as s:
        s.add(Centre(code="C1", name="城", level=1, lon=109.0, lat=35.0))
        s.add(Centre(code="C2", name="区", level=2, parent="C1", geometry='{"type":"Point"}'))
        s.flush()
        s.add(Grid(id="G1", centre="C2", kind="urban", workers=3))
        s.flush()
        s.add(Camera(id="K1", centre="C2", grid="G1", kind="dome", lon=109.1, lat=35.1))
        s.add(BaseData(centre="C2", registered_population=10, floating_population=2, houses=4,
                       rentals=1, special_populations=0, organisations=5))
        s.add(UserRow(name="alice", role="leader", scope="C2", password_hash="x" * 60,
                      created=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)))


def _cli(url: str, *args: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "PINGAN_DATA_DIR": str(data_dir)}
    return subprocess.run([str(PINGAN), "registry", "migrate", *args], env=env,
                          capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------------------------


def test_mig001_fresh_database_migrates_to_the_models(engine):
    assert status(engine).current is None and not status(engine).legacy
    assert not check_current(engine)
    assert migrate(engine) == (None, head_revision())
    assert check_current(engine)
    assert _version(engine) == [head_revision()]
    assert _tables(engine) >= REGISTRY_TABLES
    assert _differences(engine) == []


def test_mig002_sqlite_ddl_is_what_create_all_made(tmp_path):
    """The migrations write the very CREATE statements create_all writes (sqlite_master):
    0001 those the old create_all wrote, each later revision those of its tables."""
    old, new = make_engine(f"sqlite:///{tmp_path / 'old.db'}"), make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    Base.metadata.create_all(old)
    migrate(new)
    q = text("SELECT type, name, tbl_name, sql FROM sqlite_master "
             "WHERE tbl_name != 'alembic_version' ORDER BY name")
    with old.connect() as a, new.connect() as b:
        assert a.execute(q).all() == b.execute(q).all()


# what the old `create_all` made, before the registry had migrations: the tables of revision
# 0001 (the tables added since, e.g. by 0002, never existed in such a database)
TABLES_0001 = ("centres", "grids", "cameras", "base_data", "users")


def _old_create_all(engine) -> None:
    Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in TABLES_0001])


def test_mig003_create_all_database_keeps_its_rows_and_is_stamped(engine):
    _old_create_all(engine)
    _fill(engine)
    before = _rows(engine)
    st = status(engine)
    assert st.legacy and st.current is None and not st.at_head
    assert migrate(engine) == (INITIAL, head_revision())
    assert _version(engine) == [head_revision()]
    assert _rows(engine) == before
    assert check_current(engine) and not status(engine).legacy
    assert _differences(engine) == []


def test_mig004_create_all_database_that_differs_is_refused_unchanged(engine):
    _old_create_all(engine)
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_grids_centre"))
        conn.execute(text("ALTER TABLE cameras ADD COLUMN vendor VARCHAR(20)"))
    before = _rows(engine)
    with pytest.raises(SchemaError) as info:
        migrate(engine)
    msg = str(info.value)
    assert "ix_grids_centre" in msg and "vendor" in msg, msg
    assert "alembic_version" not in _tables(engine)
    assert _rows(engine) == before


def test_mig005_migrating_twice_changes_nothing(engine):
    migrate(engine)
    _fill(engine)
    before = _rows(engine)
    head = head_revision()
    assert migrate(engine) == (head, head)
    assert migrate(engine) == (head, head)
    assert _version(engine) == [head]
    assert _rows(engine) == before


def test_mig006_downgrade_to_base_and_up_again(engine):
    migrate(engine)
    _fill(engine)
    assert downgrade(engine, "base") == (head_revision(), None)
    assert not (REGISTRY_TABLES & _tables(engine))
    assert status(engine).current is None and not status(engine).legacy
    assert migrate(engine) == (None, head_revision())
    assert _differences(engine) == []
    with pytest.raises(IntegrityError), session_scope(engine) as s:  # SQLite: keys back on
        s.add(Grid(id="G9", centre="nowhere", kind="urban", workers=0))


def test_mig007_other_servers_are_not_migrated_behind_the_admins_back(pg_url):
    """SQLite is migrated where it is opened; PostgreSQL needs `pingan registry migrate`."""
    engine = make_engine(pg_url)
    try:
        with pytest.raises(SchemaError, match="pingan registry migrate"):
            ensure_schema(engine)
        assert not (REGISTRY_TABLES & _tables(engine))
        migrate(engine)
        ensure_schema(engine)  # at head: fine
    finally:
        engine.dispose()


def test_mig008_ensure_schema_migrates_sqlite(sqlite_url):
    engine = make_engine(sqlite_url)
    ensure_schema(engine)
    assert check_current(engine)


def test_mig009_cli_json(sqlite_url, tmp_path):
    first = _cli(sqlite_url, "--json", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {"database": "sqlite", "from": None,
                                        "to": head_revision(), "changed": True, "stamped": False}
    again = json.loads(_cli(sqlite_url, "--json", data_dir=tmp_path).stdout)
    assert again["changed"] is False and again["from"] == again["to"] == head_revision()
    check = _cli(sqlite_url, "--check", "--json", data_dir=tmp_path)
    assert check.returncode == 0 and json.loads(check.stdout)["at_head"] is True
    text_out = _cli(sqlite_url, data_dir=tmp_path)
    assert text_out.returncode == 0 and "nothing to do" in text_out.stdout


def test_mig010_cli_on_a_create_all_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    _old_create_all(engine)
    _fill(engine)
    check = _cli(url, "--check", "--json", data_dir=tmp_path)
    assert check.returncode == 1
    assert json.loads(check.stdout) == {"database": "sqlite", "current": None,
                                        "head": head_revision(), "at_head": False, "legacy": True}
    out = _cli(url, "--json", data_dir=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"database": "sqlite", "from": INITIAL,
                                      "to": head_revision(), "changed": True, "stamped": True}


def test_mig011_an_unmigrated_postgres_stops_commands_with_a_message(pg_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": pg_url, "PINGAN_DATA_DIR": str(tmp_path)}
    r = subprocess.run([str(PINGAN), "registry", "stats", "--json"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stdout == ""
    assert "pingan registry migrate" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_mig012_migrators_starting_together_all_succeed(db_url, tmp_path):
    procs = [
        subprocess.Popen([str(PINGAN), "registry", "migrate", "--json"],
                         env={**os.environ, "DATABASE_URL": db_url,
                              "PINGAN_DATA_DIR": str(tmp_path / f"d{i}")},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in results), results
    outs = [json.loads(out) for out, _, _ in results]
    assert sum(o["changed"] for o in outs) == 1, outs
    assert {o["to"] for o in outs} == {head_revision()}
    engine = make_engine(db_url)
    try:
        assert _version(engine) == [head_revision()]
    finally:
        engine.dispose()


def test_mig013_sqlite_migrator_waits_for_a_writer_longer_than_sqlites_5_s(sqlite_url, tmp_path):
    """A loaded machine once held the lock past SQLite's default busy wait: 'database is locked'."""
    engine = make_engine(sqlite_url)
    with engine.connect():
        pass  # the file exists, in WAL mode
    holder = sqlite3.connect(tmp_path / "registry.sqlite3", isolation_level=None,
                             check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(6.5, holder.commit)
    release.start()
    t0 = time.perf_counter()
    try:
        assert migrate(engine) == (None, head_revision())
    finally:
        release.join()
        holder.close()
    assert time.perf_counter() - t0 >= 6.0  # it did wait for the writer
    with engine.connect() as conn:  # the pooled connection got its defaults back
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
