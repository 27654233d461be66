"""An immutable in-memory view of the registry: the tree, shards and static subtree totals.

Loaded once per process (and reloaded when the registry changes); the aggregator uses it to
validate entries and to find every ancestor of a centre within its shard, the read API to
find children and static totals (grids, workers, cameras) without touching SQL per request.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from datasources.keys import UP
from datasources.registry import BaseData, Camera, Centre, Grid
from datasources.vocabulary import DEFAULT, Vocabulary, load_vocabulary

SHARD_LEVEL = 2  # a district/county (区县) and everything below it is one shard


@dataclass(frozen=True)
class CentreInfo:
    code: str
    name: str
    level: int
    parent: str | None
    shard: str
    chain: tuple[str, ...]  # the centre and its ancestors inside its shard, nearest first
    lon: float | None = None
    lat: float | None = None
    conference: str | None = None


@dataclass(frozen=True)
class Topology:
    centres: dict[str, CentreInfo]
    children: dict[str, tuple[str, ...]]
    grid_centre: dict[str, str]
    camera: dict[str, tuple[str, str]]  # camera id → (centre, kind)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)  # subtree static figures
    order: tuple[str, ...] = ()  # centre codes, sorted: a centre's index is its position
    index: dict[str, int] = field(default_factory=dict)
    vocab: Vocabulary = DEFAULT  # the region's categories, channels and camera kinds

    @property
    def shards(self) -> tuple[str, ...]:
        return tuple(sorted({c.shard for c in self.centres.values()}))

    @property
    def roots(self) -> tuple[str, ...]:
        return tuple(sorted(c.code for c in self.centres.values() if c.parent is None))

    @property
    def top_shard(self) -> str | None:
        """The top centre's shard (where deployment-wide things live: the video calls, the
        alert of a stale shard), None for an empty registry."""
        roots = self.roots
        return self.centres[roots[0]].shard if roots else None

    def ancestors(self, code: str) -> list[str]:
        """Path from the root down to `code` (inclusive)."""
        path = []
        cur: str | None = code
        while cur is not None:
            path.append(cur)
            cur = self.centres[cur].parent
        return list(reversed(path))

    def is_within(self, code: str, scope: str) -> bool:
        return scope in self.ancestors(code)

    def shard_heads(self, code: str) -> list[str]:
        """Centres whose in-shard rollups together make up `code`'s subtree.

        A centre inside a shard has its own rollup; a centre above the shards (the city) is the
        sum of its own shard and its children's heads.
        """
        if self.centres[code].level >= 2:
            return [code]
        heads = [code]
        for child in self.children.get(code, ()):
            heads.extend(self.shard_heads(child))
        return heads


def rolled(topo: Topology, code: str) -> bool:
    """Is `code` rolled up (datasources/upper.py): a centre above the shard tier with children,
    whose figures are the sum of its own shard head and its children's figures."""
    return topo.centres[code].level < SHARD_LEVEL and bool(topo.children.get(code))


def upper_order(topo: Topology) -> list[str]:
    """The rolled-up centres, deepest first (a city's sums are written before the province
    reads them)."""
    return sorted((c for c in topo.centres if rolled(topo, c)),
                  key=lambda c: (-topo.centres[c].level, c))


def source(topo: Topology, code: str) -> str:
    """Where `code`'s own figures and their meta come from: `^CODE` (its roll-up) for a
    rolled-up centre, else its shard (`Keys.source_meta`)."""
    return UP + code if rolled(topo, code) else topo.centres[code].shard


def sources(topo: Topology, code: str) -> list[str]:
    """The figures sources a screen of `code` reads: its own and its children's — O(children),
    never every shard below it. Their versions key the screen's caches."""
    out = [source(topo, code)]
    for child in topo.children.get(code, ()):
        s = source(topo, child)
        if s not in out:
            out.append(s)
    return out


def in_subtree(topo: Topology, code: object, scope: object) -> bool:
    """Is `code` a known centre in the subtree of the known centre `scope` (itself included)?
    Anything else (an unknown code, a value that is not a string) is False, so callers may
    pass what a client sent."""
    return (isinstance(code, str) and isinstance(scope, str) and code in topo.centres
            and scope in topo.centres and topo.is_within(code, scope))


def subtree(topo: Topology, code: str) -> list[str]:
    """`code` and every centre below it, depth first; [] for an unknown code."""
    out, stack = [], [code] if code in topo.centres else []
    while stack:
        c = stack.pop()
        out.append(c)
        stack.extend(topo.children.get(c, ()))
    return out


def drill_target(topo: Topology, centre: str, code: object) -> bool:
    """May a screen of `centre` drill to `code`: a known centre strictly below it."""
    return code != centre and in_subtree(topo, code, centre)


def shards_in_scope(topo: Topology, code: str) -> list[str]:
    """The shards whose read model makes up `code`'s figures (the shards of its heads)."""
    return sorted({topo.centres[h].shard for h in topo.shard_heads(code)})


def shard_of(code: str, centres: dict[str, tuple[int, str | None]]) -> str:
    """The level-2 ancestor (district) of a centre; a level-1 centre is its own shard."""
    level, parent = centres[code]
    cur = code
    while level > 2 and parent is not None:
        cur = parent
        level, parent = centres[cur]
    return cur


def build_topology(
    centre_rows: list[tuple[str, str, int, str | None, float | None, float | None, str | None]],
    grid_rows: list[tuple[str, str, str, int]],
    camera_rows: list[tuple[str, str, str]],
    vocab: Vocabulary = DEFAULT,
) -> Topology:
    """Build the topology from plain rows (code, name, level, parent, lon, lat, conference);
    the static totals `cameras_<kind>` follow `vocab`'s camera kinds."""
    raw = {r[0]: (r[2], r[3]) for r in centre_rows}
    children: dict[str, list[str]] = defaultdict(list)
    centres: dict[str, CentreInfo] = {}
    for code, name, level, parent, lon, lat, conf in centre_rows:
        shard = shard_of(code, raw)
        chain = [code]
        if level > 2:
            cur = parent
            while cur is not None:
                chain.append(cur)
                if cur == shard:
                    break
                cur = raw[cur][1]
        centres[code] = CentreInfo(code, name, level, parent, shard, tuple(chain), lon, lat, conf)
        if parent is not None:
            children[parent].append(code)

    totals: dict[str, Counter] = defaultdict(Counter)

    def add_up(code: str, key: str, n: int = 1) -> None:
        cur: str | None = code
        while cur is not None:
            totals[cur][key] += n
            cur = raw[cur][1]

    grid_centre = {}
    for gid, centre, kind, workers in grid_rows:
        grid_centre[gid] = centre
        add_up(centre, "grids")
        add_up(centre, f"grids_{kind}")
        add_up(centre, "workers", workers)
        if workers > 0:
            add_up(centre, "grids_staffed")
    camera = {}
    for cid, centre, kind in camera_rows:
        camera[cid] = (centre, kind)
        add_up(centre, "cameras")
        add_up(centre, f"cameras_{kind}")
    full = {
        code: {
            "grids": t["grids"],
            "grids_urban": t["grids_urban"],
            "grids_rural": t["grids_rural"],
            "grids_staffed": t["grids_staffed"],
            "workers": t["workers"],
            "cameras": t["cameras"],
            **{f"cameras_{k}": t[f"cameras_{k}"] for k in vocab.codes("camera_kind")},
        }
        for code, t in totals.items()
        if code in centres
    }
    order = tuple(sorted(centres))
    return Topology(
        order=order,
        index={c: i for i, c in enumerate(order)},
        centres=centres,
        children={k: tuple(sorted(v)) for k, v in children.items()},
        grid_centre=grid_centre,
        camera=camera,
        totals=full,
        vocab=vocab,
    )


def load_topology(engine: Engine) -> Topology:
    with Session(engine) as s:
        centre_rows = [
            tuple(r)
            for r in s.execute(
                select(
                    Centre.code, Centre.name, Centre.level, Centre.parent, Centre.lon,
                    Centre.lat, Centre.conference,
                )
            )
        ]
        grid_rows = [tuple(r) for r in s.execute(select(Grid.id, Grid.centre, Grid.kind, Grid.workers))]
        camera_rows = [tuple(r) for r in s.execute(select(Camera.id, Camera.centre, Camera.kind))]
    return build_topology(centre_rows, grid_rows, camera_rows, load_vocabulary(engine))


def load_base_data(engine: Engine, topo: Topology) -> dict[str, dict[str, int]]:
    """Base data summed over each centre's subtree."""
    from datasources.registry import BASE_DATA_FIELDS

    sums: dict[str, Counter] = defaultdict(Counter)
    with Session(engine) as s:
        for row in s.scalars(select(BaseData)):
            for code in topo.ancestors(row.centre):
                for f in BASE_DATA_FIELDS:
                    sums[code][f] += getattr(row, f)
    return {code: {f: sums[code][f] for f in BASE_DATA_FIELDS} for code in topo.centres}
