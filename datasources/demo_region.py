"""The default demo region (铜川市, Tongchuan) built from data files in ``datasources/data``.

Real: the city, its 4 districts with their boundaries, its 38 towns/streets (names and codes).
Synthetic: everything below (communities, villages, grids, workers, cameras, base data) and the
town/village/grid boundaries, which subdivide the real district polygons so that, at every
level, the children tile their parent exactly (a common noded coverage, see `_snap_coverage`).

The parameters (target counts, name word lists, base-data ranges) live in
``data/demo-tongchuan.json``; the same seed always gives the same registry.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPoint, mapping, shape
from sqlalchemy.engine import Engine

from datasources.registry import BASE_DATA_FIELDS
from datasources.registry_io import RegistryData, stats, write_registry
from datasources.vocabulary import DEFAULT

DATA_DIR = Path(__file__).parent / "data"
DEFAULT_SPEC = DATA_DIR / "demo-tongchuan.json"


# --------------------------------------------------------------------------------------------
# geometry helpers
# --------------------------------------------------------------------------------------------


def _polygons(geom) -> list:
    """The polygon parts of any geometry (drops points/lines from GeometryCollections)."""
    parts = shapely.get_parts(geom)
    return [p for p in parts if p.geom_type == "Polygon" and not p.is_empty]


def _sample_points(poly, k: int, rng: random.Random) -> list[tuple[float, float]]:
    minx, miny, maxx, maxy = poly.bounds
    pts: list[tuple[float, float]] = []
    while len(pts) < k:
        n = max(16, 2 * (k - len(pts)))
        xs = np.array([rng.uniform(minx, maxx) for _ in range(n)])
        ys = np.array([rng.uniform(miny, maxy) for _ in range(n)])
        inside = shapely.contains_xy(poly, xs, ys)
        for x, y, ok in zip(xs, ys, inside, strict=True):
            if ok and len(pts) < k:
                pts.append((float(x), float(y)))
    return pts


def _cells(poly, pts: list[tuple[float, float]]) -> list:
    vor = shapely.voronoi_polygons(MultiPoint(pts), extend_to=poly, ordered=True)
    cells = shapely.intersection(np.array(list(vor.geoms), dtype=object), poly)
    return list(cells)


def _fix_cells(cells: list, pts: list[tuple[float, float]]) -> list | None:
    """Make every cell one non-empty Polygon: stray parts go to the neighbour sharing most edge."""
    main: list = []
    orphans: list = []
    for i, cell in enumerate(cells):
        parts = _polygons(cell)
        if not parts:
            return None
        gen = shapely.Point(pts[i])
        keep = max(parts, key=lambda p: (p.intersects(gen), p.area))
        main.append(keep)
        orphans.extend(p for p in parts if p is not keep)
    for _ in range(10):
        if not orphans:
            break
        left = []
        for orphan in orphans:
            best, best_len = None, 0.0
            for j, m in enumerate(main):
                if not m.intersects(orphan):
                    continue
                shared = m.boundary.intersection(orphan.boundary).length
                if shared > best_len:
                    best, best_len = j, shared
            if best is None:
                left.append(orphan)
                continue
            merged = _polygons(shapely.union_all([main[best], orphan]))
            if len(merged) != 1:
                left.append(orphan)
                continue
            main[best] = merged[0]
        orphans = left
    return None if orphans else main


def subdivide(poly, k: int, rng: random.Random, lloyd_steps: int = 2) -> list:
    """Split `poly` into `k` polygons tiling it (Voronoi cells of relaxed random points)."""
    if k <= 1:
        return [poly]
    for _attempt in range(20):
        pts = _sample_points(poly, k, rng)
        for _ in range(lloyd_steps):
            moved = []
            for cell, pt in zip(_cells(poly, pts), pts, strict=True):
                c = cell.centroid
                if cell.is_empty or not poly.contains(c):
                    moved.append(pt)
                else:
                    moved.append((c.x, c.y))
            if len(set(moved)) == k:
                pts = moved
        cells = _fix_cells(_cells(poly, pts), pts)
        if cells is not None:
            return cells
    raise RuntimeError("could not subdivide polygon")  # pragma: no cover


def _snap_coverage(leaves: list, precision: int) -> list:
    """Node all leaf boundaries together on a 10**-precision grid and rebuild each leaf.

    Independently computed neighbours never share their vertices exactly; the polygonized,
    snap-rounded line network does, so unions of leaves are exact at every level above.
    """
    grid = 10.0**-precision
    lines = shapely.union_all(shapely.boundary(np.array(leaves, dtype=object)), grid_size=grid)
    faces = list(shapely.get_parts(shapely.polygonize(shapely.get_parts(lines))))
    faces = [f for f in faces if f.area > 0]
    tree = shapely.STRtree(leaves)
    reps = shapely.point_on_surface(np.array(faces, dtype=object))
    owner = [-1] * len(faces)
    face_idx, leaf_idx = tree.query(reps, predicate="within")
    for f, leaf in zip(face_idx.tolist(), leaf_idx.tolist(), strict=True):
        if owner[f] < 0 or leaf < owner[f]:
            owner[f] = leaf
    missing = [i for i, o in enumerate(owner) if o < 0]
    if missing:
        near = tree.query_nearest(reps[missing], all_matches=False)
        for m, leaf in zip(near[0].tolist(), near[1].tolist(), strict=True):
            owner[missing[m]] = leaf
    groups: dict[int, list] = defaultdict(list)
    for f, o in enumerate(owner):
        groups[o].append(faces[f])
    out = []
    for i in range(len(leaves)):
        if not groups.get(i):
            raise RuntimeError(f"leaf {i} vanished when snapping")  # pragma: no cover
        out.append(shapely.coverage_union_all(groups[i]))
    return out


def _coverage_union(geoms: list):
    return shapely.coverage_union_all(geoms)


def _round_coords(obj: Any, precision: int) -> Any:
    if isinstance(obj, (list, tuple)):
        if obj and isinstance(obj[0], (int, float)):
            return [round(float(v), precision) for v in obj]
        return [_round_coords(o, precision) for o in obj]
    return obj


def geometry_text(geom, precision: int) -> str:
    g = mapping(geom)
    data = {"type": g["type"], "coordinates": _round_coords(g["coordinates"], precision)}
    return json.dumps(data, separators=(",", ":"))


def _centroid(geom, precision: int) -> tuple[float, float]:
    c = geom.centroid
    return round(c.x, precision), round(c.y, precision)


# --------------------------------------------------------------------------------------------
# allocation helpers
# --------------------------------------------------------------------------------------------


def allocate(total: int, weights: list[float], minimum: int = 0) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder), each ≥ minimum."""
    n = len(weights)
    if n == 0:
        if total:
            raise ValueError("nothing to allocate to")
        return []
    base = [minimum] * n
    rest = total - minimum * n
    if rest < 0:
        raise ValueError(f"cannot give {n} items at least {minimum} out of {total}")
    wsum = sum(weights) or 1.0
    shares = [rest * w / wsum for w in weights]
    floors = [int(math.floor(s)) for s in shares]
    left = rest - sum(floors)
    order = sorted(range(n), key=lambda i: (-(shares[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [b + f for b, f in zip(base, floors, strict=True)]


def _unique_name(make, used: set[str], rng: random.Random) -> str:
    for _ in range(200):
        name = make(rng)
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError("ran out of names")  # pragma: no cover


# --------------------------------------------------------------------------------------------
# the build
# --------------------------------------------------------------------------------------------


def load_spec(spec_path: str | Path | None = None) -> dict:
    path = Path(spec_path) if spec_path else DEFAULT_SPEC
    return json.loads(path.read_text(encoding="utf-8"))


def generate_demo(seed: int = 7, spec_path: str | Path | None = None) -> RegistryData:
    """Generate the demo registry in memory (no database)."""
    spec = load_spec(spec_path)
    base_dir = Path(spec_path).parent if spec_path else DATA_DIR
    region = spec["region"]
    counts = spec["counts"]
    dist = spec.get("distribution", {})
    names = spec["names"]
    prec = int(spec.get("geometry", {}).get("precision", 6))
    lloyd = int(spec.get("geometry", {}).get("lloyd_steps", 2))
    rng = random.Random(seed)

    districts_fc = json.loads((base_dir / region["districts_file"]).read_text(encoding="utf-8"))
    towns_doc = json.loads((base_dir / region["towns_file"]).read_text(encoding="utf-8"))
    city_doc = next(r for r in towns_doc["regions"] if str(r["adcode"]) == str(region["adcode"]))
    city_code = str(city_doc["adcode"])
    town_lists = {str(d["adcode"]): d for d in city_doc["districts"]}

    # ---- districts (real) and towns (real names, synthetic boundaries)
    district_geoms: dict[str, Any] = {}
    district_names: dict[str, str] = {}
    district_seats: dict[str, tuple[float, float]] = {}
    for feat in sorted(districts_fc["features"], key=lambda f: str(f["properties"]["adcode"])):
        code = str(feat["properties"]["adcode"])
        geom = shapely.make_valid(shape(feat["geometry"]))
        district_geoms[code] = geom
        district_names[code] = feat["properties"]["name"]
        seat = feat["properties"].get("center") or feat["properties"].get("centroid")
        district_seats[code] = tuple(seat) if seat else (geom.centroid.x, geom.centroid.y)
    if set(district_geoms) != set(town_lists):
        raise ValueError("districts file and towns file disagree on the districts")

    centre_rows: dict[str, dict] = {}
    town_geoms: dict[str, Any] = {}
    town_is_street: dict[str, bool] = {}
    town_district: dict[str, str] = {}
    for dcode in sorted(district_geoms):
        towns = sorted(town_lists[dcode]["towns"], key=lambda t: t["code"])
        # streets first, so they take the cells nearest the district seat (the urban core)
        towns.sort(key=lambda t: (not t["name"].endswith("街道"), t["code"]))
        cells = subdivide(district_geoms[dcode], len(towns), rng, lloyd)
        seat = shapely.Point(district_seats[dcode])
        cells.sort(key=lambda c: (round(c.distance(seat), 9), c.centroid.x, c.centroid.y))
        for town, cell in zip(towns, cells, strict=True):
            tcode = str(town["code"])
            town_geoms[tcode] = cell
            town_is_street[tcode] = town["name"].endswith("街道")
            town_district[tcode] = dcode
            centre_rows[tcode] = {"code": tcode, "name": town["name"], "level": 3, "parent": dcode}

    # ---- level 4: communities mostly under streets, villages mostly under towns
    tcodes = sorted(town_geoms)
    streets = [t for t in tcodes if town_is_street[t]]
    rural = [t for t in tcodes if not town_is_street[t]]
    n_comm, n_vill = int(counts["communities"]), int(counts["villages"])
    comm_streets = round(n_comm * float(dist.get("communities_in_streets", 0.9)))
    vill_towns = round(n_vill * float(dist.get("villages_in_towns", 0.92)))
    comm = dict.fromkeys(tcodes, 0)
    vill = dict.fromkeys(tcodes, 0)
    jitter = {t: rng.uniform(0.6, 1.4) for t in tcodes}
    for t, n in zip(streets, allocate(comm_streets, [jitter[t] for t in streets], 1), strict=True):
        comm[t] += n
    # the remaining communities sit in the seats of the biggest towns
    seats = sorted(rural, key=lambda t: (-town_geoms[t].area * jitter[t], t))
    for i in range(n_comm - comm_streets):
        comm[seats[i % len(seats)]] += 1
    area_w = {t: town_geoms[t].area * jitter[t] for t in tcodes}
    for t, n in zip(rural, allocate(vill_towns, [area_w[t] for t in rural], 1), strict=True):
        vill[t] += n
    for t, n in zip(
        streets, allocate(n_vill - vill_towns, [area_w[t] for t in streets]), strict=True
    ):
        vill[t] += n

    used_names: dict[str, set[str]] = defaultdict(set)  # per district
    comm_words = names["community_words"]
    surnames = names["village_surnames"]
    places = names["village_places"]
    prefixes = names["village_prefixes"]

    def community_name(r: random.Random) -> str:
        return r.choice(comm_words) + names.get("community_suffix", "社区")

    def village_name(r: random.Random) -> str:
        suffix = names.get("village_suffix", "村")
        fam = names.get("village_family_suffix", "家")
        roll = r.random()
        if roll < 0.45:
            return r.choice(surnames) + fam + suffix
        if roll < 0.7:
            return r.choice(surnames) + fam + r.choice(places) + suffix
        return r.choice(prefixes) + r.choice(places) + suffix

    l4_geoms: dict[str, Any] = {}
    l4_kind: dict[str, str] = {}
    for tcode in tcodes:
        n = comm[tcode] + vill[tcode]
        cells = subdivide(town_geoms[tcode], n, rng, lloyd)
        core = town_geoms[tcode].point_on_surface()
        cells.sort(key=lambda c: (round(c.distance(core), 9), c.centroid.x, c.centroid.y))
        dcode = town_district[tcode]
        for i, cell in enumerate(cells):
            if i < comm[tcode]:
                code = f"{tcode}{i + 1:03d}"
                name = _unique_name(community_name, used_names[dcode], rng)
                kind = "community"
            else:
                code = f"{tcode}{200 + i - comm[tcode] + 1:03d}"
                name = _unique_name(village_name, used_names[dcode], rng)
                kind = "village"
            l4_geoms[code] = cell
            l4_kind[code] = kind
            centre_rows[code] = {"code": code, "name": name, "level": 4, "parent": tcode}

    # ---- grids: urban grids in communities, rural grids in villages
    l4codes = sorted(l4_geoms)
    comms = [c for c in l4codes if l4_kind[c] == "community"]
    vills = [c for c in l4codes if l4_kind[c] == "village"]
    n_grids: dict[str, int] = {}
    for group, total in ((comms, counts["urban_grids"]), (vills, counts["rural_grids"])):
        weights = [math.sqrt(l4_geoms[c].area) * rng.uniform(0.7, 1.3) for c in group]
        n_grids.update(zip(group, allocate(int(total), weights, 1), strict=True))

    grid_ids: list[str] = []
    grid_centre: dict[str, str] = {}
    leaves: list = []
    for code in l4codes:
        cells = subdivide(l4_geoms[code], n_grids[code], rng, lloyd)
        cells.sort(key=lambda c: (-round(c.centroid.y, 9), round(c.centroid.x, 9)))
        for i, cell in enumerate(cells):
            gid = f"{code}-G{i + 1:02d}"
            grid_ids.append(gid)
            grid_centre[gid] = code
            leaves.append(cell)

    # ---- one noded coverage: grids, then every level is the exact union of its children
    snapped = _snap_coverage(leaves, prec)
    grid_geom = dict(zip(grid_ids, snapped, strict=True))
    by_centre: dict[str, list] = defaultdict(list)
    for gid in grid_ids:
        by_centre[grid_centre[gid]].append(grid_geom[gid])
    final: dict[str, Any] = {c: _coverage_union(g) for c, g in by_centre.items()}
    for level, parent_of in ((3, lambda c: c[:9]), (2, lambda c: town_district[c[:9]])):
        kids: dict[str, list] = defaultdict(list)
        for c in [c for c in final if centre_rows[c]["level"] == level + 1]:
            kids[parent_of(c)].append(final[c])
        for p, g in kids.items():
            final[p] = _coverage_union(g)
    final[city_code] = _coverage_union([final[d] for d in sorted(district_geoms)])

    centre_rows[city_code] = {
        "code": city_code,
        "name": city_doc["name"],
        "level": 1,
        "parent": None,
    }
    for dcode in district_geoms:
        centre_rows[dcode] = {
            "code": dcode,
            "name": district_names[dcode],
            "level": 2,
            "parent": city_code,
        }
    centres = []
    for code in sorted(centre_rows, key=lambda c: (centre_rows[c]["level"], c)):
        row = dict(centre_rows[code])
        row["conference"] = None
        row["geometry"] = geometry_text(final[code], prec)
        row["lon"], row["lat"] = _centroid(shape(json.loads(row["geometry"])), prec)
        centres.append(row)

    # ---- workers: one per grid, the rest spread (urban grids weigh more)
    kind_of_grid = {
        g: ("urban" if l4_kind[grid_centre[g]] == "community" else "rural") for g in grid_ids
    }
    workers = dict.fromkeys(grid_ids, 1)
    extra = int(counts["grid_workers"]) - len(grid_ids)
    if extra < 0:
        raise ValueError("fewer grid workers than grids")
    ww = dist.get("extra_worker_weight", {"urban": 2.0, "rural": 1.0})
    for gid in rng.choices(grid_ids, weights=[ww[kind_of_grid[g]] for g in grid_ids], k=extra):
        workers[gid] += 1
    grids = [
        {
            "id": gid,
            "centre": grid_centre[gid],
            "kind": kind_of_grid[gid],
            "workers": workers[gid],
            "geometry": geometry_text(grid_geom[gid], prec),
        }
        for gid in grid_ids
    ]

    # ---- cameras: each in a grid of its centre, at a point inside that grid
    cw = dist.get("camera_weight", {"urban": 3.0, "rural": 1.0})
    grid_weights = [cw[kind_of_grid[g]] for g in grid_ids]
    placed: dict[str, list[tuple[str, str]]] = defaultdict(list)  # centre -> [(grid, kind)]
    for kind in DEFAULT.codes("camera_kind"):  # the demo region keeps the default lists
        n = int(counts["cameras"].get(kind, 0))
        for gid in rng.choices(grid_ids, weights=grid_weights, k=n):
            placed[grid_centre[gid]].append((gid, kind))
    grid_shapes = {g["id"]: shape(json.loads(g["geometry"])) for g in grids}
    cameras = []
    for code in sorted(placed):
        items = sorted(placed[code])
        for i, (gid, kind) in enumerate(items):
            poly = grid_shapes[gid]
            minx, miny, maxx, maxy = poly.bounds
            for _ in range(1000):
                x = round(rng.uniform(minx, maxx), prec)
                y = round(rng.uniform(miny, maxy), prec)
                if shapely.contains_xy(poly, x, y):
                    break
            else:  # pragma: no cover - a tiny sliver grid
                p = poly.point_on_surface()
                x, y = round(p.x, prec), round(p.y, prec)
            cameras.append(
                {
                    "id": f"CAM-{code}-{i + 1:04d}",
                    "centre": code,
                    "grid": gid,
                    "kind": kind,
                    "lon": x,
                    "lat": y,
                }
            )

    # ---- base data for every level-4 centre
    ranges = spec["base_data"]
    base_data = []
    for code in l4codes:
        r = ranges[l4_kind[code]]
        row: dict[str, Any] = {"centre": code}
        for f in BASE_DATA_FIELDS:
            lo, hi = r[f]
            row[f] = rng.randint(int(lo), int(hi))
        row["rentals"] = min(row["rentals"], row["houses"])
        base_data.append(row)

    cameras.sort(key=lambda c: c["id"])
    return RegistryData(centres=centres, grids=grids, cameras=cameras, base_data=base_data)


def build_demo(engine: Engine, seed: int = 7, spec_path: str | Path | None = None) -> dict:
    """Replace the registry with the demo region; returns `registry_io.stats`."""
    data = generate_demo(seed=seed, spec_path=spec_path)
    write_registry(engine, data)
    return stats(engine)
