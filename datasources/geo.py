"""Map geometry and the live map figures (grid patrols, camera states, recent cases).

`load_geometry(engine)` reads every polygon and camera point once per process into an
immutable `Geo`; its methods give GeoJSON FeatureCollections for one centre in view (cached:
the same drill step returns the same object). Coordinates are rounded to 5 decimals (≈1 m).

The Redis readers touch only the keys of the scope in view, in one pipelined round trip:
`grid_coverage` and `camera_states` HMGET just the grids/cameras under the centre,
`recent_cases` reads the shards' capped `recent` lists.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from datasources.keys import Keys
from datasources.registry import Camera, Centre, Grid
from datasources.topology import Topology, shards_in_scope, subtree
from datasources.validate import as_int

PRECISION = 5  # decimals of a degree: 1e-5° ≈ 1.1 m
CAMERA_STATES = ("online", "offline", "fault", "unknown")
# one letter per camera in the compact `states` hideout (see layouts/map.py)
STATE_CODE = {"online": "o", "offline": "x", "fault": "f", "unknown": "u"}
# Above these a centre's map draws its children only (a province: ~39,000 cameras, ~110 shards):
# no camera points, no recent-case markers, so a screen's cost stays O(its children).
MAP_MAX_CAMERAS = 12_000
MAP_MAX_SHARDS = 32
JITTER_DEG = 0.004  # recent-case markers spread ±0.004° (≈ ±400 m) around the centre centroid


def _round_coords(coords: Any) -> Any:
    if isinstance(coords, (int, float)):
        return round(float(coords), PRECISION)
    out = [_round_coords(c) for c in coords]
    # drop consecutive duplicates that rounding creates in rings (keeps rings closed)
    if out and isinstance(out[0], list) and out[0] and isinstance(out[0][0], float):
        dedup = [out[0]]
        for p in out[1:]:
            if p != dedup[-1]:
                dedup.append(p)
        if len(dedup) >= 4 or len(dedup) == len(out):
            out = dedup
    return out


def compact_geometry(text: str | None) -> dict | None:
    """A GeoJSON geometry text → a dict with coordinates rounded to PRECISION decimals."""
    if not text:
        return None
    g = json.loads(text)
    if "coordinates" not in g:
        return None
    return {"type": g["type"], "coordinates": _round_coords(g["coordinates"])}


def _walk_points(coords: Any):
    if coords and isinstance(coords[0], (int, float)):
        yield coords
    else:
        for c in coords:
            yield from _walk_points(c)


def geometry_bounds(geom: dict | None) -> list[list[float]] | None:
    """[[south, west], [north, east]] of a geometry, or None."""
    if not geom:
        return None
    xs, ys = [], []
    for p in _walk_points(geom["coordinates"]):
        xs.append(p[0])
        ys.append(p[1])
    if not xs:
        return None
    return [[min(ys), min(xs)], [max(ys), max(xs)]]


def union_bounds(bounds: list) -> list[list[float]] | None:
    bs = [b for b in bounds if b]
    if not bs:
        return None
    return [[min(b[0][0] for b in bs), min(b[0][1] for b in bs)],
            [max(b[1][0] for b in bs), max(b[1][1] for b in bs)]]


def _fc(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


@dataclass(frozen=True)
class CentreGeo:
    code: str
    name: str
    level: int
    parent: str | None
    geometry: dict | None
    lon: float | None
    lat: float | None


@dataclass(frozen=True)
class Geo:
    """All map geometry, immutable; feature collections are built on demand and memoised."""

    centres: MappingProxyType  # code → CentreGeo
    children: MappingProxyType  # code → tuple of child codes (sorted)
    grids: MappingProxyType  # level-4 code → tuple of (grid id, kind, geometry)
    cameras: MappingProxyType  # centre code → tuple of (camera id, kind, lon, lat), by id
    _memo: dict = field(default_factory=dict, compare=False, repr=False)

    def _cached(self, key: tuple, build):
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = build()
        return hit

    def _check(self, code: str) -> CentreGeo:
        try:
            return self.centres[code]
        except KeyError:
            raise KeyError(f"unknown centre {code!r}") from None

    def subtree(self, code: str) -> tuple[str, ...]:
        """`code` and every centre below it, depth first, children in code order."""
        self._check(code)

        def build():
            out, stack = [], [code]
            while stack:
                c = stack.pop()
                out.append(c)
                stack.extend(reversed(self.children.get(c, ())))
            return tuple(out)

        return self._cached(("subtree", code), build)

    def self_feature(self, code: str) -> dict:
        c = self._check(code)
        return {"type": "Feature", "geometry": c.geometry,
                "properties": {"code": c.code, "name": c.name, "level": c.level}}

    def children_features(self, code: str) -> dict:
        """The children of `code` as polygons (properties code, name, level)."""
        self._check(code)
        return self._cached(("children", code), lambda: _fc([
            self.self_feature(ch) for ch in self.children.get(code, ())
            if self.centres[ch].geometry is not None
        ]))

    def grids_features(self, code: str) -> dict:
        """The grids of a level-4 centre (properties id, kind); empty above level 4."""
        self._check(code)
        return self._cached(("grids", code), lambda: _fc([
            {"type": "Feature", "geometry": geom, "properties": {"id": gid, "kind": kind}}
            for gid, kind, geom in self.grids.get(code, ()) if geom is not None
        ]))

    def camera_ids(self, code: str) -> tuple[str, ...]:
        """Camera ids of the subtree in the order of `cameras_features(code)`."""
        return self._cached(("camera_ids", code), lambda: tuple(
            f["properties"]["id"] for f in self.cameras_features(code)["features"]))

    def cameras_features(self, code: str) -> dict:
        """Every camera under `code` as a point (properties id, kind, i = its position, the
        index into the compact `states` hideout). The centre is left out: it adds 25% to the
        bytes of a drill step and the map does not need it (`Topology.camera` has it)."""

        def build():
            feats: list[dict] = []
            if sum(len(self.cameras.get(c, ())) for c in self.subtree(code)) > MAP_MAX_CAMERAS:
                return _fc(feats)  # a province: its map shows its cities, not every camera
            for c in self.subtree(code):
                for cid, kind, lon, lat in self.cameras.get(c, ()):
                    feats.append({"type": "Feature",
                                  "geometry": {"type": "Point", "coordinates": [lon, lat]},
                                  "properties": {"id": cid, "kind": kind, "i": len(feats)}})
            return _fc(feats)

        return self._cached(("cameras", code), build)

    def bounds(self, code: str) -> list[list[float]]:
        """[[south, west], [north, east]] of the centre (its own polygon, else its children's)."""
        c = self._check(code)

        def build():
            b = geometry_bounds(c.geometry)
            if b is None:
                b = union_bounds([self.bounds(ch) for ch in self.children.get(code, ())])
            if b is None and c.lat is not None and c.lon is not None:
                b = [[c.lat - 0.01, c.lon - 0.01], [c.lat + 0.01, c.lon + 0.01]]
            return b or [[-1.0, -1.0], [1.0, 1.0]]

        return self._cached(("bounds", code), build)


def build_geo(centre_rows, grid_rows, camera_rows) -> Geo:
    """From plain rows: centres (code, name, level, parent, geometry text, lon, lat),
    grids (id, centre, kind, geometry text), cameras (id, centre, kind, lon, lat)."""
    centres = {}
    children: dict[str, list[str]] = defaultdict(list)
    for code, name, level, parent, geom, lon, lat in centre_rows:
        centres[code] = CentreGeo(code, name, level, parent, compact_geometry(geom), lon, lat)
        if parent is not None:
            children[parent].append(code)
    grids: dict[str, list] = defaultdict(list)
    for gid, centre, kind, geom in sorted(grid_rows):
        grids[centre].append((gid, kind, compact_geometry(geom)))
    cams: dict[str, list] = defaultdict(list)
    for cid, centre, kind, lon, lat in sorted(camera_rows):
        cams[centre].append((cid, kind, round(lon, PRECISION), round(lat, PRECISION)))
    return Geo(
        centres=MappingProxyType(centres),
        children=MappingProxyType({k: tuple(sorted(v)) for k, v in children.items()}),
        grids=MappingProxyType({k: tuple(v) for k, v in grids.items()}),
        cameras=MappingProxyType({k: tuple(v) for k, v in cams.items()}),
    )


def load_geometry(engine: Engine) -> Geo:
    """Read all centre and grid polygons and camera points (once per process)."""
    with Session(engine) as s:
        centre_rows = [tuple(r) for r in s.execute(select(
            Centre.code, Centre.name, Centre.level, Centre.parent, Centre.geometry,
            Centre.lon, Centre.lat))]
        grid_rows = [tuple(r) for r in s.execute(select(Grid.id, Grid.centre, Grid.kind,
                                                        Grid.geometry))]
        camera_rows = [tuple(r) for r in s.execute(select(Camera.id, Camera.centre, Camera.kind,
                                                          Camera.lon, Camera.lat))]
    return build_geo(centre_rows, grid_rows, camera_rows)


# -- scope indexes over the topology (built once per Topology object) ------------------------

_SCOPES: dict[int, tuple[Topology, dict]] = {}


def _scope_index(topo: Topology) -> dict:
    hit = _SCOPES.get(id(topo))
    if hit is not None and hit[0] is topo:
        return hit[1]
    grids_of: dict[str, list[str]] = defaultdict(list)
    for gid, c in sorted(topo.grid_centre.items()):
        grids_of[c].append(gid)
    cams_of: dict[str, list[str]] = defaultdict(list)
    for cid, (c, _kind) in sorted(topo.camera.items()):
        cams_of[c].append(cid)
    idx = {"grids": grids_of, "cams": cams_of, "memo": {}}
    if len(_SCOPES) > 8:
        _SCOPES.clear()
    _SCOPES[id(topo)] = (topo, idx)
    return idx


def _subtree(topo: Topology, code: str) -> list[str]:
    if code not in topo.centres:
        raise KeyError(f"unknown centre {code!r}")
    return subtree(topo, code)


def _in_scope(topo: Topology, code: str, what: str) -> dict[str, list[str]]:
    """shard → ids (grids or cameras) under `code`, memoised per topology."""
    idx = _scope_index(topo)
    key = (what, code)
    hit = idx["memo"].get(key)
    if hit is None:
        by_shard: dict[str, list[str]] = defaultdict(list)
        for c in _subtree(topo, code):
            by_shard[topo.centres[c].shard].extend(idx[what].get(c, ()))
        hit = idx["memo"][key] = {s: ids for s, ids in sorted(by_shard.items()) if ids}
    return hit


def _s(v: Any) -> str | None:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def grid_coverage(r, keys: Keys, topo: Topology, code: str, day: str) -> dict[str, int]:
    """Patrols today (`day` = YYYYMMDD, local) of every grid under `code`: {grid id: n}."""
    scope = _in_scope(topo, code, "grids")
    if not scope:
        return {}
    pipe = r.pipeline(transaction=False)
    for shard, ids in scope.items():
        pipe.hmget(keys.patrol_counts(shard, day), ids)
    out: dict[str, int] = {}
    for (_shard, ids), vals in zip(scope.items(), pipe.execute(), strict=True):
        for gid, v in zip(ids, vals, strict=True):
            out[gid] = as_int(v)
    return out


def camera_states(r, keys: Keys, topo: Topology, code: str) -> dict[str, str]:
    """State of every camera under `code`: online | offline | fault | unknown (never reported);
    none above MAP_MAX_CAMERAS (the map draws none there)."""
    scope = _in_scope(topo, code, "cams")
    if not scope or sum(map(len, scope.values())) > MAP_MAX_CAMERAS:
        return {}
    pipe = r.pipeline(transaction=False)
    for shard, ids in scope.items():
        pipe.hmget(keys.camera_state(shard), ids)
    out: dict[str, str] = {}
    for (_shard, ids), vals in zip(scope.items(), pipe.execute(), strict=True):
        for cid, v in zip(ids, vals, strict=True):
            state = _s(v).split("|", 1)[0] if v is not None else "unknown"
            out[cid] = state if state in STATE_CODE else "unknown"
    return out


def jitter(eid: str) -> tuple[float, float]:
    """A deterministic offset (dlon, dlat) in ±JITTER_DEG from the event id's hash."""
    h = hashlib.blake2b(eid.encode(), digest_size=8).digest()
    a = int.from_bytes(h[:4], "big") / 0xFFFFFFFF
    b = int.from_bytes(h[4:], "big") / 0xFFFFFFFF
    return (round((2 * a - 1) * JITTER_DEG, PRECISION), round((2 * b - 1) * JITTER_DEG * 0.8, PRECISION))


def place_case(topo: Topology, eid: str, centre: str) -> tuple[float, float] | None:
    """Where a case's marker goes: its centre's centroid plus `jitter(eid)`."""
    info = topo.centres.get(centre)
    if info is None or info.lon is None or info.lat is None:
        return None
    dx, dy = jitter(eid)
    return round(info.lon + dx, PRECISION), round(info.lat + dy, PRECISION)


def parse_recent(items: list, topo: Topology, code: str, now_ms: int, max_age_s: float) -> list[dict]:
    """Entries of the `recent` lists (JSON [eid, centre, category, ts_ms, urgency]) → cases
    under `code` younger than max_age_s, newest first (pure)."""
    oldest = now_ms - int(max_age_s * 1000)
    out, seen = [], set()
    for raw in items:
        try:
            eid, centre, category, ts, *rest = json.loads(raw)
            ts = int(ts)
        except (ValueError, TypeError):
            continue
        if not (isinstance(eid, str) and isinstance(centre, str) and isinstance(category, str)):
            continue  # written by the aggregator, but read as untrusted all the same
        if ts < oldest or ts > now_ms + 60_000 or eid in seen or centre not in topo.centres:
            continue
        if code not in topo.centres[centre].chain and not topo.is_within(centre, code):
            continue
        pos = place_case(topo, eid, centre)
        if pos is None:
            continue
        seen.add(eid)
        urgency = rest[0] if rest and isinstance(rest[0], str) else "normal"
        out.append({"eid": eid, "centre": centre, "category": category, "ts": ts,
                    "urgency": urgency, "lon": pos[0], "lat": pos[1]})
    out.sort(key=lambda c: (-c["ts"], c["eid"]))
    return out


def recent_cases(r, keys: Keys, topo: Topology, code: str, now_ms: int,
                 max_age_s: float = 900.0) -> list[dict]:
    """Cases reported under `code` in the last max_age_s seconds, newest first, each
    {eid, centre, category, ts, urgency, lon, lat}. Reads only the shards in scope, and none
    above MAP_MAX_SHARDS of them (a province's map shows its cities: the cost of a screen must
    not grow with the shards below it)."""
    if code not in topo.centres:
        raise KeyError(f"unknown centre {code!r}")
    shards = shards_in_scope(topo, code)
    if len(shards) > MAP_MAX_SHARDS:
        return []
    pipe = r.pipeline(transaction=False)
    for s in shards:
        pipe.lrange(keys.recent_cases(s), 0, -1)
    items = [x for reply in pipe.execute() for x in reply]
    return parse_recent(items, topo, code, now_ms, max_age_s)
