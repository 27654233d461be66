"""The registry: centres, grids, cameras, base data and users (SQLAlchemy 2, SQLite or PostgreSQL).

Every table of the registry database is declared here (`Base.metadata`); the database gets them
from the Alembic migrations in `datasources.migrations` (`migrate(engine)`), never from
`create_all`, so that an installation's schema has a version and upgrades in order. A change to a
table here needs a new migration (see that package's docstring).

Geometry is stored as GeoJSON text so the same schema runs on SQLite and PostgreSQL
without a spatial extension; the wall only ever needs to draw it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import (
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

# The tiers of centres (a region's root is a province, a city or a county: level 0, 1 or 2);
# these names are codes (the read model's closed_at_level keys), the region's words for them
# are its vocabulary's `tier` terms (datasources/vocabulary.py).
LEVELS = {0: "province", 1: "city", 2: "district", 3: "town", 4: "village"}
LEVEL_OF = {name: level for level, name in LEVELS.items()}
GRID_KINDS = ("urban", "rural")
# camera kinds are the region's vocabulary (datasources/vocabulary.py, `topo.vocab`)


class Base(DeclarativeBase):
    pass


class Centre(Base):
    __tablename__ = "centres"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    level: Mapped[int] = mapped_column(Integer, index=True)
    parent: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("centres.code", ondelete="RESTRICT"), index=True, nullable=True
    )
    conference: Mapped[str | None] = mapped_column(String(512), nullable=True)
    geometry: Mapped[str | None] = mapped_column(Text, nullable=True)  # GeoJSON geometry
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)  # centroid
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)


class Grid(Base):
    __tablename__ = "grids"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    centre: Mapped[str] = mapped_column(String(32), ForeignKey("centres.code"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    workers: Mapped[int] = mapped_column(Integer, default=0)
    geometry: Mapped[str | None] = mapped_column(Text, nullable=True)


class Camera(Base):
    __tablename__ = "cameras"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    centre: Mapped[str] = mapped_column(String(32), ForeignKey("centres.code"), index=True)
    grid: Mapped[str | None] = mapped_column(String(64), ForeignKey("grids.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)


class BaseData(Base):
    """人、地、事、物、组织 counts per centre (its own area, not its subtree)."""

    __tablename__ = "base_data"

    centre: Mapped[str] = mapped_column(String(32), ForeignKey("centres.code"), primary_key=True)
    registered_population: Mapped[int] = mapped_column(Integer, default=0)
    floating_population: Mapped[int] = mapped_column(Integer, default=0)
    houses: Mapped[int] = mapped_column(Integer, default=0)
    rentals: Mapped[int] = mapped_column(Integer, default=0)
    special_populations: Mapped[int] = mapped_column(Integer, default=0)
    organisations: Mapped[int] = mapped_column(Integer, default=0)


class UserRow(Base):
    """An account of the wall and the tablet (the functions are in datasources.users).

    `scope` is a plain centre code, not a foreign key, so re-importing the registry never
    deletes accounts."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(32))
    password_hash: Mapped[str] = mapped_column(String(256))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProducerRow(Base):
    """A system that writes the streams (issue 12, datasources/producers.py): its token is
    stored hashed (SHA-256 of a random token: a lookup, not a password); `kinds` is a
    comma-separated list of stream kinds, `scope` the centre whose subtree it may write."""

    __tablename__ = "producers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kinds: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(32))
    rate: Mapped[int] = mapped_column(Integer)  # entries per second
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rotated: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VocabularyRow(Base):
    """One term of a region's vocabulary (issue 12, datasources/vocabulary.py): `kind` is
    category | event_channel | petition_channel | camera_kind; `code` what the streams carry;
    labels and a chart colour; `position` the order the screens show them in."""

    __tablename__ = "vocabulary"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    zh: Mapped[str] = mapped_column(String(64))
    en: Mapped[str] = mapped_column(String(64))
    colour: Mapped[str] = mapped_column(String(16))


class EmbedRow(Base):
    """An embed token that was minted (issue 12, dashboard/embed.py): its id is in the
    token; revoking it refuses the token on every worker."""

    __tablename__ = "embeds"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    widget: Mapped[str] = mapped_column(String(32))
    centre: Mapped[str] = mapped_column(String(32))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(String(128), default="")
    revoked: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


BASE_DATA_FIELDS = (
    "registered_population",
    "floating_population",
    "houses",
    "rentals",
    "special_populations",
    "organisations",
)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets foreign keys and WAL so readers never block the writer."""
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any error."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def is_empty(engine: Engine) -> bool:
    """True when the registry holds no centre (or has no tables yet)."""
    if not inspect(engine).has_table(Centre.__tablename__):
        return True
    with Session(engine) as s:
        return (s.scalar(select(func.count()).select_from(Centre)) or 0) == 0
