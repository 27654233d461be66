"""Wiring: from Settings to the engine, Redis client and topology a command needs."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import redis
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from dashboard.datadir import private_dir
from dashboard.settings import Settings
from datasources.connection import ensure_redis
from datasources.geo import Geo, load_geometry
from datasources.migrations import ensure_schema
from datasources.readmodel import ReadModel
from datasources.registry import Grid, make_engine
from datasources.registry_watch import refresh_in_place
from datasources.topology import Topology, load_base_data, load_topology


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def engine(self) -> Engine:
        if not self.settings.database_url:
            private_dir(self.settings.data_dir)
        engine = make_engine(self.settings.effective_database_url)
        ensure_schema(engine)  # SQLite: migrated here; PostgreSQL: `pingan registry migrate`
        return engine

    @cached_property
    def redis(self) -> redis.Redis:
        if not self.settings.redis_url:  # the embedded server's socket lives in the data dir
            private_dir(self.settings.data_dir)
            private_dir(self.settings.embedded_redis_socket.parent)
        return ensure_redis(self.settings.redis)

    @cached_property
    def topology(self) -> Topology:
        return load_topology(self.engine)

    def grids(self) -> list[tuple[str, str, int]]:
        with Session(self.engine) as s:
            return [tuple(r) for r in s.execute(select(Grid.id, Grid.centre, Grid.workers).order_by(Grid.id))]

    @cached_property
    def geo(self) -> Geo:
        return load_geometry(self.engine)

    @cached_property
    def read_model(self) -> ReadModel:
        return ReadModel(self.redis, self.topology, self.settings.read_model,
                         load_base_data(self.engine, self.topology))

    def reload_registry(self) -> Topology:
        """Read the registry again and refresh what this runtime derived from it in place:
        the shared topology (`refresh_in_place`: every holder sees the new registry), the read
        model's base data; the geometry is loaded again when next used. Everything is read
        before anything changes, so a failure (SQL away) leaves the old registry whole."""
        new = load_topology(self.engine)
        base = load_base_data(self.engine, new)
        topo = self.topology
        refresh_in_place(topo, new)
        if "read_model" in self.__dict__:
            self.read_model.base_data = base
        self.__dict__.pop("geo", None)
        return topo
