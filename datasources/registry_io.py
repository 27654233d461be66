"""Import/export of the registry as a directory of CSV (+ optional GeoJSON) files.

Files (UTF-8, a BOM is accepted; the header is line 1):

- ``centres.csv``   code,name,level,parent,conference; level 0 province, 1 city, 2 county
  (district), 3 town, 4 village; a root (no parent) is level 0, 1 or 2, a child one level
  below its parent.
- ``grids.csv``     id,centre,kind,workers
- ``cameras.csv``   id,centre,grid,kind,lon,lat
- ``centres.geojson`` / ``grids.geojson`` (optional) FeatureCollections whose feature property
  ``code`` / ``id`` picks the row; the geometry is stored as GeoJSON text and a centre's
  centroid (lon/lat) is computed from it.
- ``base_data.csv`` (optional) centre + the six `BaseData` fields.
- ``vocabulary.csv`` (optional) kind,code,zh,en,colour: the region's categories, event and
  petition channels and camera kinds (`datasources.vocabulary`), in the order the screens show
  them. A kind the file lists replaces that kind's whole default list; a kind it does not list
  (or no file) keeps the defaults. Cameras' kinds are checked against the resulting list.
  Kind ``tier`` (codes 0-4, the levels) names the region's tiers: each row renames one.

An import is validated completely before anything is written; any error raises
`RegistryImportError` with every problem as ``file:line: reason`` and leaves the database as it
was. A good import replaces the whole registry in one transaction.

Centre codes are 1-32 of ``A-Z a-z 0-9 _ -`` (they end up in Redis keys, URLs and HTML), grid
and camera ids 1-64 of the same; a conference endpoint is an ``http(s)://`` URL or a ``sip:``
URI (it becomes an iframe's address): `datasources.validate`.

Spreadsheets run a cell that begins with ``= + - @``, a tab or a carriage return as a formula.
The export writes such a text cell (and one that begins with an apostrophe) behind a leading
apostrophe, which spreadsheets show as text; the import removes one leading apostrophe from
every cell, so an export imports back unchanged.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape
from shapely.validation import explain_validity
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine

from datasources.migrations import ensure_schema
from datasources.registry import (
    BASE_DATA_FIELDS,
    GRID_KINDS,
    LEVELS,
    BaseData,
    Camera,
    Centre,
    Grid,
    VocabularyRow,
    session_scope,
)
from datasources.validate import is_code, is_conference_url, is_id
from datasources.vocabulary import DEFAULT, KINDS, MAX_TERMS, check_term, load_vocabulary

LEVEL_RULE = f"{min(LEVELS)}-{max(LEVELS)}"
ROOT_LEVELS = (0, 1, 2)  # a region is a province, a city or a county (the shard tier: topology)

CENTRES_CSV = "centres.csv"
GRIDS_CSV = "grids.csv"
CAMERAS_CSV = "cameras.csv"
BASE_DATA_CSV = "base_data.csv"
VOCABULARY_CSV = "vocabulary.csv"
CENTRES_GEOJSON = "centres.geojson"
GRIDS_GEOJSON = "grids.geojson"

CENTRE_COLUMNS = ("code", "name", "level", "parent", "conference")
GRID_COLUMNS = ("id", "centre", "kind", "workers")
CAMERA_COLUMNS = ("id", "centre", "grid", "kind", "lon", "lat")
BASE_DATA_COLUMNS = ("centre", *BASE_DATA_FIELDS)
VOCABULARY_COLUMNS = ("kind", "code", "zh", "en", "colour")

CENTROID_PRECISION = 6


class RegistryImportError(Exception):
    """An import was refused; `errors` lists every problem as ``file:line: reason``."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__(
            f"{len(self.errors)} error(s) in registry import:\n" + "\n".join(self.errors)
        )


@dataclass
class RegistryData:
    """Registry rows as plain dicts (column name → value), ready to insert."""

    centres: list[dict[str, Any]] = field(default_factory=list)
    grids: list[dict[str, Any]] = field(default_factory=list)
    cameras: list[dict[str, Any]] = field(default_factory=list)
    base_data: list[dict[str, Any]] = field(default_factory=list)
    # VocabularyRow rows (kind, code, position, zh, en, colour); none: the defaults
    vocabulary: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ImportReport:
    centres: int
    grids: int
    cameras: int
    base_data: int
    centre_geometries: int
    grid_geometries: int


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _read_csv(
    path: Path, columns: tuple[str, ...], errors: list[str]
) -> list[tuple[int, dict[str, str]]] | None:
    """Rows as (physical start line, {column: stripped text}); None if the file is unusable."""
    name = path.name
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        errors.append(f"{name}: file missing")
        return None
    except UnicodeDecodeError as exc:
        errors.append(f"{name}: not valid UTF-8 ({exc.reason} at byte {exc.start})")
        return None
    reader = csv.reader(text.splitlines(keepends=True))
    rows: list[tuple[int, dict[str, str]]] = []
    header: list[str] | None = None
    prev = 0
    try:
        for record in reader:
            line = prev + 1
            prev = reader.line_num
            if not record:
                continue
            if header is None:
                header = [h.strip() for h in record]
                missing = [c for c in columns if c not in header]
                for c in missing:
                    errors.append(f"{name}:{line}: missing column '{c}'")
                dupes = sorted({h for h in header if header.count(h) > 1 and h})
                for c in dupes:
                    errors.append(f"{name}:{line}: duplicate column '{c}'")
                if missing or dupes:
                    return None
                continue
            if len(record) != len(header):
                errors.append(
                    f"{name}:{line}: wrong number of fields (expected {len(header)}, got {len(record)})"
                )
                continue
            rows.append((line, {h: _unescape(v.strip()) for h, v in zip(header, record, strict=True)}))
    except csv.Error as exc:
        errors.append(f"{name}:{reader.line_num}: {exc}")
        return None
    if header is None:
        errors.append(f"{name}:1: empty file (no header)")
        return None
    return rows


FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _escape(text: str) -> str:
    """A text cell a spreadsheet would run as a formula, behind an apostrophe."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _unescape(text: str) -> str:
    return text[1:] if text.startswith("'") else text


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _float(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _read_features(
    path: Path, key: str, errors: list[str]
) -> list[tuple[int, str, dict[str, Any], Any]] | None:
    """Features as (1-based index, key value, GeoJSON geometry dict, shapely geometry)."""
    name = path.name
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        errors.append(f"{name}: not valid UTF-8 ({exc.reason} at byte {exc.start})")
        return None
    except json.JSONDecodeError as exc:
        errors.append(f"{name}:{exc.lineno}: invalid JSON ({exc.msg})")
        return None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        errors.append(f"{name}: not a GeoJSON FeatureCollection")
        return None
    feats = doc.get("features")
    if not isinstance(feats, list):
        errors.append(f"{name}: FeatureCollection without a 'features' list")
        return None
    out = []
    for n, feat in enumerate(feats, start=1):
        where = f"{name}:feature {n}"
        if not isinstance(feat, dict) or feat.get("type") != "Feature":
            errors.append(f"{where}: not a Feature")
            continue
        props = feat.get("properties")
        value = props.get(key) if isinstance(props, dict) else None
        if value is None or str(value).strip() == "":
            errors.append(f"{where}: missing property '{key}'")
            continue
        value = str(value).strip()
        geom = feat.get("geometry")
        if not isinstance(geom, dict):
            errors.append(f"{where}: {key} {value}: missing geometry")
            continue
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            errors.append(f"{where}: {key} {value}: geometry must be a Polygon or MultiPolygon")
            continue
        try:
            shp = shape(geom)
        except Exception as exc:  # shapely raises several types for malformed coordinates
            errors.append(f"{where}: {key} {value}: malformed coordinates ({exc})")
            continue
        if shp.is_empty:
            errors.append(f"{where}: {key} {value}: empty geometry")
            continue
        minx, miny, maxx, maxy = shp.bounds
        if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)) or not (
            -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
        ):
            errors.append(f"{where}: {key} {value}: coordinates out of lon/lat range")
            continue
        if not shp.is_valid:
            errors.append(f"{where}: {key} {value}: invalid geometry ({explain_validity(shp)})")
            continue
        out.append((n, value, geom, shp))
    return out


def geometry_text(geom: dict[str, Any]) -> str:
    """The canonical stored text of a GeoJSON geometry."""
    return json.dumps(
        {"type": geom["type"], "coordinates": geom["coordinates"]},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def centroid_of(shp) -> tuple[float, float]:
    c = shapely.centroid(shp)
    return round(c.x, CENTROID_PRECISION), round(c.y, CENTROID_PRECISION)


CODE_RULE = "1-32 of A-Z a-z 0-9 _ -"
ID_RULE = "1-64 of A-Z a-z 0-9 _ -"


def _new_id(where: str, rid: str, noun: str, line: int, seen: dict[str, int],
            errors: list[str]) -> str | None:
    """A row's id when it is present and not seen before (recorded in `seen`), else None."""
    if not rid:
        errors.append(f"{where}: empty id")
        return None
    if not is_id(rid):
        errors.append(f"{where}: bad {noun} id '{rid[:40]}' ({ID_RULE})")
        return None
    if rid in seen:
        errors.append(f"{where}: duplicate {noun} id {rid} (first on line {seen[rid]})")
        return None
    seen[rid] = line
    return rid


def _check(errors: list[str], ok: bool, message: str) -> bool:
    """Record `message` unless `ok`; returns `ok` (for `ok &= _check(...)` chains)."""
    if not ok:
        errors.append(message)
    return ok


def _bad_kind(where: str, kind: str, kinds: tuple[str, ...]) -> str:
    return f"{where}: bad kind '{kind}' (expected one of {', '.join(kinds)})"


def _read_vocabulary(d: Path, errors: list[str]) -> list[dict[str, Any]]:
    """The rows of the optional ``vocabulary.csv``, each checked (`vocabulary.check_term`);
    `position` is the row's place among its kind's rows."""
    if not (d / VOCABULARY_CSV).exists():
        return []
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    count: dict[str, int] = {}
    for line, r in _read_csv(d / VOCABULARY_CSV, VOCABULARY_COLUMNS, errors) or []:
        where = f"{VOCABULARY_CSV}:{line}"
        kind, code, zh, en, colour = (r[c] for c in VOCABULARY_COLUMNS)
        reason = check_term(kind, code, zh, en, colour)
        if reason is not None:
            errors.append(f"{where}: {reason}")
            continue
        if (kind, code) in seen:
            errors.append(f"{where}: duplicate {kind} {code} (first on line {seen[kind, code]})")
            continue
        seen[kind, code] = line
        count[kind] = count.get(kind, 0) + 1
        if count[kind] > MAX_TERMS:
            errors.append(f"{where}: more than {MAX_TERMS} terms of kind {kind}")
            continue
        out.append({"kind": kind, "code": code, "position": count[kind] - 1, "zh": zh,
                    "en": en, "colour": colour.lower()})
    return out


def read_dir(path: str | Path) -> RegistryData:
    """Read and fully validate a registry directory; raise `RegistryImportError` on any error."""
    d = Path(path)
    errors: list[str] = []
    if not d.is_dir():
        raise RegistryImportError([f"{d}: not a directory"])
    data = RegistryData()

    # ---- the vocabulary (optional): first, cameras' kinds are checked against it
    vocabulary = _read_vocabulary(d, errors)
    camera_kinds = tuple(r["code"] for r in vocabulary if r["kind"] == "camera_kind") \
        or DEFAULT.codes("camera_kind")

    # ---- centres
    centre_rows = _read_csv(d / CENTRES_CSV, CENTRE_COLUMNS, errors) or []
    centres: dict[str, dict[str, Any]] = {}
    centre_line: dict[str, int] = {}
    pending_parent: list[tuple[int, str, int, str]] = []
    for line, r in centre_rows:
        where = f"{CENTRES_CSV}:{line}"
        code, name, parent = r["code"], r["name"], r["parent"]
        ok = True
        if not code:
            errors.append(f"{where}: empty code")
            continue
        if not is_code(code):
            errors.append(f"{where}: bad code '{code[:40]}' ({CODE_RULE})")
            continue
        if code in centres or code in centre_line:
            errors.append(f"{where}: duplicate code {code} (first on line {centre_line[code]})")
            continue
        centre_line[code] = line
        if not name:
            errors.append(f"{where}: empty name")
            ok = False
        level = _int(r["level"])
        if level is None or level not in LEVELS:
            errors.append(f"{where}: level must be {LEVEL_RULE}, got '{r['level']}'")
            ok = False
        elif not parent and level not in ROOT_LEVELS:
            errors.append(f"{where}: root centre {code} (no parent) of level {level}: a region's "
                          "root is a province, a city or a county (level 0, 1 or 2)")
            ok = False
        if parent == code:
            errors.append(f"{where}: centre {code} is its own parent")
            ok = False
        conference = r["conference"]
        if conference and not is_conference_url(conference):
            errors.append(f"{where}: bad conference endpoint '{conference[:60]}' "
                          "(an http:// or https:// URL, or a sip: URI)")
            ok = False
        if ok and parent:
            pending_parent.append((line, code, level, parent))
        if ok:
            centres[code] = {
                "code": code,
                "name": name,
                "level": level,
                "parent": parent or None,
                "conference": conference or None,
                "geometry": None,
                "lon": None,
                "lat": None,
            }
    for line, code, level, parent in pending_parent:
        where = f"{CENTRES_CSV}:{line}"
        if parent not in centre_line:
            errors.append(f"{where}: unknown parent {parent}")
        elif parent in centres and centres[parent]["level"] != level - 1:
            errors.append(
                f"{where}: level {level} centre {code} under level "
                f"{centres[parent]['level']} parent {parent} (child level must be parent level + 1)"
            )

    # ---- grids
    grid_rows = _read_csv(d / GRIDS_CSV, GRID_COLUMNS, errors) or []
    grids: dict[str, dict[str, Any]] = {}
    grid_line: dict[str, int] = {}
    for line, r in grid_rows:
        where = f"{GRIDS_CSV}:{line}"
        gid = _new_id(where, r["id"], "grid", line, grid_line, errors)
        if gid is None:
            continue
        ok = _check(errors, r["centre"] in centre_line, f"{where}: unknown centre '{r['centre']}'")
        ok &= _check(errors, r["kind"] in GRID_KINDS, _bad_kind(where, r["kind"], GRID_KINDS))
        workers = _int(r["workers"])
        if workers is None or workers < 0:
            errors.append(f"{where}: workers must be a non-negative integer, got '{r['workers']}'")
            ok = False
        if ok:
            grids[gid] = {
                "id": gid,
                "centre": r["centre"],
                "kind": r["kind"],
                "workers": workers,
                "geometry": None,
            }

    # ---- cameras
    camera_rows = _read_csv(d / CAMERAS_CSV, CAMERA_COLUMNS, errors) or []
    cameras: list[dict[str, Any]] = []
    camera_line: dict[str, int] = {}
    for line, r in camera_rows:
        where = f"{CAMERAS_CSV}:{line}"
        cid = _new_id(where, r["id"], "camera", line, camera_line, errors)
        if cid is None:
            continue
        ok = _check(errors, r["centre"] in centre_line, f"{where}: unknown centre '{r['centre']}'")
        gid = r["grid"]
        if gid:
            if gid not in grid_line:
                errors.append(f"{where}: unknown grid '{gid}'")
                ok = False
            elif gid in grids and ok and grids[gid]["centre"] != r["centre"]:
                errors.append(
                    f"{where}: grid {gid} belongs to centre {grids[gid]['centre']}, "
                    f"not to the camera's centre {r['centre']}"
                )
                ok = False
        ok &= _check(errors, r["kind"] in camera_kinds, _bad_kind(where, r["kind"], camera_kinds))
        lon, lat = _float(r["lon"]), _float(r["lat"])
        if lon is None:
            errors.append(f"{where}: lon is not a number: '{r['lon']}'")
            ok = False
        elif not -180 <= lon <= 180:
            errors.append(f"{where}: lon {lon} out of range -180..180")
            ok = False
        if lat is None:
            errors.append(f"{where}: lat is not a number: '{r['lat']}'")
            ok = False
        elif not -90 <= lat <= 90:
            errors.append(f"{where}: lat {lat} out of range -90..90")
            ok = False
        if ok:
            cameras.append(
                {"id": cid, "centre": r["centre"], "grid": gid or None, "kind": r["kind"],
                 "lon": lon, "lat": lat}
            )  # fmt: skip

    # ---- base data (optional)
    base_data: list[dict[str, Any]] = []
    if (d / BASE_DATA_CSV).exists():
        bd_line: dict[str, int] = {}
        for line, r in _read_csv(d / BASE_DATA_CSV, BASE_DATA_COLUMNS, errors) or []:
            where = f"{BASE_DATA_CSV}:{line}"
            code = r["centre"]
            if code not in centre_line:
                errors.append(f"{where}: unknown centre '{code}'")
                continue
            if code in bd_line:
                errors.append(f"{where}: duplicate centre {code} (first on line {bd_line[code]})")
                continue
            bd_line[code] = line
            row: dict[str, Any] = {"centre": code}
            for f in BASE_DATA_FIELDS:
                v = _int(r[f])
                if v is None or v < 0:
                    errors.append(f"{where}: {f} must be a non-negative integer, got '{r[f]}'")
                row[f] = v
            if all(row[f] is not None and row[f] >= 0 for f in BASE_DATA_FIELDS):
                base_data.append(row)

    # ---- geometry (optional)
    for fname, key, known, target in (
        (CENTRES_GEOJSON, "code", centre_line, centres),
        (GRIDS_GEOJSON, "id", grid_line, grids),
    ):
        seen: dict[str, int] = {}
        for n, value, geom, shp in _read_features(d / fname, key, errors) or []:
            where = f"{fname}:feature {n}"
            if value not in known:
                errors.append(f"{where}: unknown {key} '{value}'")
                continue
            if value in seen:
                errors.append(f"{where}: duplicate {key} {value} (first in feature {seen[value]})")
                continue
            seen[value] = n
            if value in target:
                target[value]["geometry"] = geometry_text(geom)
                if key == "code":
                    target[value]["lon"], target[value]["lat"] = centroid_of(shp)

    if errors:
        raise RegistryImportError(errors)
    data.centres = sorted(centres.values(), key=lambda c: (c["level"], c["code"]))
    data.grids = sorted(grids.values(), key=lambda g: g["id"])
    data.cameras = sorted(cameras, key=lambda c: c["id"])
    data.base_data = sorted(base_data, key=lambda b: b["centre"])
    data.vocabulary = vocabulary
    return data


# --------------------------------------------------------------------------------------------
# writing to the database
# --------------------------------------------------------------------------------------------


def write_registry(engine: Engine, data: RegistryData) -> None:
    """Replace the whole registry with `data` in one transaction (parents inserted first)."""
    ensure_schema(engine)
    centres = sorted(data.centres, key=lambda c: (c["level"], c["code"]))
    with session_scope(engine) as s:
        s.execute(delete(Camera))
        s.execute(delete(BaseData))
        s.execute(delete(VocabularyRow))
        s.execute(delete(Grid))
        s.execute(update(Centre).values(parent=None))
        s.execute(delete(Centre))
        for model, rows in (
            (Centre, centres),
            (Grid, data.grids),
            (Camera, data.cameras),
            (BaseData, data.base_data),
            (VocabularyRow, data.vocabulary),
        ):
            for i in range(0, len(rows), 2000):
                if rows[i : i + 2000]:
                    s.execute(insert(model), rows[i : i + 2000])


def import_dir(engine: Engine, path: str | Path) -> ImportReport:
    """Validate the directory completely, then replace the registry with its contents."""
    data = read_dir(path)
    write_registry(engine, data)
    return ImportReport(
        centres=len(data.centres),
        grids=len(data.grids),
        cameras=len(data.cameras),
        base_data=len(data.base_data),
        centre_geometries=sum(1 for c in data.centres if c["geometry"]),
        grid_geometries=sum(1 for g in data.grids if g["geometry"]),
    )


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return _escape(v)
    return str(v)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[tuple]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_cell(v) for v in r])


def _write_features(path: Path, key: str, items: list[tuple[str, str]]) -> None:
    """A FeatureCollection, one feature per line (diff-friendly), from (key value, geometry text)."""
    lines = [
        json.dumps({"type": "Feature", "properties": {key: k}}, ensure_ascii=False)[:-1]
        + ', "geometry": '
        + g
        + "}"
        for k, g in items
    ]
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write('{"type": "FeatureCollection", "features": [\n')
        fh.write(",\n".join(lines))
        fh.write("\n]}\n")


def export_dir(engine: Engine, path: str | Path) -> None:
    """Write the registry as files that `import_dir` reads back unchanged."""
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    ensure_schema(engine)
    with session_scope(engine) as s:
        centres = s.execute(
            select(Centre.code, Centre.name, Centre.level, Centre.parent, Centre.conference,
                   Centre.geometry).order_by(Centre.level, Centre.code)
        ).all()  # fmt: skip
        grids = s.execute(
            select(Grid.id, Grid.centre, Grid.kind, Grid.workers, Grid.geometry).order_by(Grid.id)
        ).all()
        cameras = s.execute(
            select(Camera.id, Camera.centre, Camera.grid, Camera.kind, Camera.lon, Camera.lat)
            .order_by(Camera.id)
        ).all()  # fmt: skip
        base = s.execute(
            select(BaseData.centre, *[getattr(BaseData, f) for f in BASE_DATA_FIELDS]).order_by(
                BaseData.centre
            )
        ).all()
        vocab = s.execute(
            select(VocabularyRow.kind, VocabularyRow.code, VocabularyRow.zh, VocabularyRow.en,
                   VocabularyRow.colour, VocabularyRow.position)
        ).all()  # fmt: skip
    _write_csv(d / CENTRES_CSV, CENTRE_COLUMNS, [tuple(r[:5]) for r in centres])
    _write_csv(d / GRIDS_CSV, GRID_COLUMNS, [tuple(r[:4]) for r in grids])
    _write_csv(d / CAMERAS_CSV, CAMERA_COLUMNS, [tuple(r) for r in cameras])
    rank = {k: i for i, k in enumerate(KINDS)}
    vocab = sorted(vocab, key=lambda r: (rank.get(r.kind, len(KINDS)), r.kind, r.position, r.code))
    optional = {
        VOCABULARY_CSV: bool(vocab),
        BASE_DATA_CSV: bool(base),
        CENTRES_GEOJSON: any(r.geometry for r in centres),
        GRIDS_GEOJSON: any(r.geometry for r in grids),
    }
    for fname, present in optional.items():
        if not present:
            (d / fname).unlink(missing_ok=True)
    if vocab:
        _write_csv(d / VOCABULARY_CSV, VOCABULARY_COLUMNS, [tuple(r[:5]) for r in vocab])
    if base:
        _write_csv(d / BASE_DATA_CSV, BASE_DATA_COLUMNS, [tuple(r) for r in base])
    if optional[CENTRES_GEOJSON]:
        _write_features(
            d / CENTRES_GEOJSON, "code", [(r.code, r.geometry) for r in centres if r.geometry]
        )
    if optional[GRIDS_GEOJSON]:
        _write_features(d / GRIDS_GEOJSON, "id", [(r.id, r.geometry) for r in grids if r.geometry])


# --------------------------------------------------------------------------------------------
# stats
# --------------------------------------------------------------------------------------------


def stats(engine: Engine) -> dict[str, Any]:
    ensure_schema(engine)
    with session_scope(engine) as s:
        levels = dict(s.execute(select(Centre.level, func.count()).group_by(Centre.level)).all())
        grid_kinds = dict(s.execute(select(Grid.kind, func.count()).group_by(Grid.kind)).all())
        workers = s.scalar(select(func.coalesce(func.sum(Grid.workers), 0))) or 0
        cam_kinds = dict(s.execute(select(Camera.kind, func.count()).group_by(Camera.kind)).all())
    # the region's tiers, from its top one down (a city-rooted registry: "1" … "4")
    top = min(levels, default=1)
    centres = {str(lv): int(levels.get(lv, 0)) for lv in sorted(LEVELS) if lv >= top}
    grids = {k: int(grid_kinds.get(k, 0)) for k in GRID_KINDS}
    cams = {k: int(cam_kinds.get(k, 0)) for k in load_vocabulary(engine).codes("camera_kind")}
    for k, n in cam_kinds.items():
        cams.setdefault(k, int(n))
    return {
        "centres": centres,
        "centres_total": sum(int(n) for n in levels.values()),
        "grids": grids,
        "grids_total": sum(int(n) for n in grid_kinds.values()),
        "workers": int(workers),
        "cameras": cams,
        "cameras_total": sum(int(n) for n in cam_kinds.values()),
    }
