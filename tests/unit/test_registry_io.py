"""Registry import/export/stats, the demo region and the `registry` CLI group (SQLite)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import pytest
import shapely
from click.testing import CliRunner
from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.cli_registry import registry
from dashboard.settings import Settings
from datasources.demo_region import allocate, build_demo
from datasources.migrations import migrate
from datasources.registry import (
    BaseData,
    Camera,
    Centre,
    Grid,
    make_engine,
)
from datasources.registry_io import (
    RegistryImportError,
    export_dir,
    import_dir,
    stats,
)
from datasources.validate import is_conference_url

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def engine_at(path: Path):
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    return engine


def snapshot(engine) -> dict:
    """Every row of every registry table, for before/after comparisons."""
    out = {}
    with Session(engine) as s:
        for model in (Centre, Grid, Camera, BaseData):
            cols = list(model.__table__.columns)
            out[model.__tablename__] = sorted(tuple(r) for r in s.execute(select(*cols)).all())
    return out


def dir_files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def square(x: float, y: float, size: float) -> dict:
    return {
        "type": "Polygon",
        "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]],
    }


def fc(features: list[tuple[str, str, dict | None]]) -> str:
    return json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {"type": "Feature", "properties": {k: v}, "geometry": g} for k, v, g in features
            ],
        }
    )


GOOD = {
    "centres.csv": (
        "code,name,level,parent,conference\n"
        "610200,铜川市,1,,https://meet.example.invalid/c\n"
        "610202,王益区,2,610200,\n"
        "610202001,七一路街道,3,610202,\n"
        "610202001001,和平社区,4,610202001,\n"
        "610202001201,王家村,4,610202001,\n"
    ),
    "grids.csv": (
        "id,centre,kind,workers\n"
        "610202001001-G01,610202001001,urban,2\n"
        "610202001201-G01,610202001201,rural,1\n"
    ),
    "cameras.csv": (
        "id,centre,grid,kind,lon,lat\n"
        "CAM-610202001001-0001,610202001001,610202001001-G01,dome,109.05,35.05\n"
        "CAM-610202001201-0001,610202001201,610202001201-G01,checkpoint,109.15,35.05\n"
        "CAM-610202001201-0002,610202001201,,smart,109.16,35.06\n"
    ),
    "base_data.csv": (
        "centre,registered_population,floating_population,houses,rentals,"
        "special_populations,organisations\n"
        "610202001001,3200,800,1500,200,20,40\n"
    ),
    "centres.geojson": fc(
        [
            ("code", "610202001001", square(109.0, 35.0, 0.1)),
            ("code", "610202001201", square(109.1, 35.0, 0.1)),
        ]
    ),
    "grids.geojson": fc([("id", "610202001001-G01", square(109.0, 35.0, 0.1))]),
}


def write_dir(d: Path, files: dict[str, str], bom: bool = False) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        data = text.encode("utf-8")
        if bom and name.endswith(".csv"):
            data = b"\xef\xbb\xbf" + data
        (d / name).write_bytes(data)
    return d


def import_errors(engine, d: Path) -> list[str]:
    with pytest.raises(RegistryImportError) as info:
        import_dir(engine, d)
    return info.value.errors


def has(errors: list[str], prefix: str) -> bool:
    return any(e.startswith(prefix) for e in errors)


# ------------------------------------------------------------------------------------------
# import / export
# ------------------------------------------------------------------------------------------


def test_good_import_with_bom_and_stats(tmp_path):
    engine = engine_at(tmp_path / "r.sqlite3")
    report = import_dir(engine, write_dir(tmp_path / "in", GOOD, bom=True))
    assert (report.centres, report.grids, report.cameras, report.base_data) == (5, 2, 3, 1)
    assert (report.centre_geometries, report.grid_geometries) == (2, 1)
    with Session(engine) as s:
        c = s.get(Centre, "610202001001")
        assert c.name == "和平社区" and c.parent == "610202001"
        assert (c.lon, c.lat) == (109.05, 35.05)  # centroid of its square
        assert s.get(Centre, "610200").conference == "https://meet.example.invalid/c"
        assert s.get(Centre, "610202").conference is None
        assert s.get(Camera, "CAM-610202001201-0002").grid is None
    st = stats(engine)
    assert st == {
        "centres": {"1": 1, "2": 1, "3": 1, "4": 2},
        "centres_total": 5,
        "grids": {"urban": 1, "rural": 1},
        "grids_total": 2,
        "workers": 3,
        "cameras": {"dome": 1, "face": 0, "checkpoint": 1, "smart": 1, "integrated": 0},
        "cameras_total": 3,
    }


def test_csv_errors_are_reported_with_file_and_line(tmp_path):
    files = dict(GOOD)
    files["centres.csv"] = GOOD["centres.csv"] + (
        "610299,幽灵区,2,999999,\n"  # line 7: unknown parent
        "610202002,红旗街街道,5,610202,\n"  # line 8: bad level
        "\n"  # line 9: blank, still counted
        "610202003001,跳级社区,4,610202,\n"  # line 10: level 4 under a level-2 parent
        "610202001001,重复社区,4,610202001,\n"  # line 11: duplicate code
        '610202004,"多行\n名称",x,610202,\n'  # lines 12-13: level not a number
        "610202005,少字段,3\n"  # line 14: wrong number of fields
    )
    files["grids.csv"] = GOOD["grids.csv"] + (
        "G-X,nowhere,urban,1\n"  # line 4: unknown centre
        "G-Y,610202001001,suburban,1\n"  # line 5: bad kind
        "G-Z,610202001001,urban,many\n"  # line 6: non-numeric workers
        "610202001001-G01,610202001001,urban,1\n"  # line 7: duplicate id
    )
    files["cameras.csv"] = GOOD["cameras.csv"] + (
        "CAM-A,610202001001,610202001201-G01,dome,109.1,35.1\n"  # line 5: another centre's grid
        "CAM-B,610202001001,,dome,east,35.1\n"  # line 6: lon not a number
        "CAM-C,610202001001,,dome,109.1,95\n"  # line 7: lat out of range
        "CAM-D,610202001001,,laser,109.1,35.1\n"  # line 8: bad kind
        "CAM-E,610202001001,G-NONE,face,109.1,35.1\n"  # line 9: unknown grid
    )
    files["base_data.csv"] = GOOD["base_data.csv"] + (
        "nowhere,1,1,1,1,1,1\n"  # line 3
        "610202001201,1,1,-4,1,1,1\n"  # line 4
    )
    errors = import_errors(engine_at(tmp_path / "r.sqlite3"), write_dir(tmp_path / "in", files))
    expected = [
        "centres.csv:7: unknown parent 999999",
        "centres.csv:8: level must be 0-4",
        "centres.csv:10: level 4 centre 610202003001 under level 2 parent 610202",
        "centres.csv:11: duplicate code 610202001001 (first on line 5)",
        "centres.csv:12: level must be 0-4, got 'x'",
        "centres.csv:14: wrong number of fields",
        "grids.csv:4: unknown centre 'nowhere'",
        "grids.csv:5: bad kind 'suburban'",
        "grids.csv:6: workers must be a non-negative integer",
        "grids.csv:7: duplicate grid id 610202001001-G01",
        "cameras.csv:5: grid 610202001201-G01 belongs to centre 610202001201",
        "cameras.csv:6: lon is not a number",
        "cameras.csv:7: lat 95.0 out of range",
        "cameras.csv:8: bad kind 'laser'",
        "cameras.csv:9: unknown grid 'G-NONE'",
        "base_data.csv:3: unknown centre 'nowhere'",
        "base_data.csv:4: houses must be a non-negative integer",
    ]
    for prefix in expected:
        assert has(errors, prefix), (prefix, errors)
    assert len(errors) == len(expected), errors


def test_missing_columns_and_files(tmp_path):
    files = dict(GOOD)
    files["grids.csv"] = "id,centre,kind\nG1,610202001001,urban\n"
    del files["cameras.csv"]
    errors = import_errors(engine_at(tmp_path / "r.sqlite3"), write_dir(tmp_path / "in", files))
    assert has(errors, "grids.csv:1: missing column 'workers'")
    assert has(errors, "cameras.csv: file missing")


def test_geojson_errors(tmp_path):
    files = dict(GOOD)
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    files["centres.geojson"] = fc(
        [
            ("code", "610202001001", square(109.0, 35.0, 0.1)),
            ("code", "nowhere", square(109.0, 35.0, 0.1)),  # feature 2
            ("code", "610202001001", square(109.0, 35.0, 0.1)),  # feature 3
            ("code", "610202", bowtie),  # feature 4
            ("code", "610200", {"type": "Point", "coordinates": [109, 35]}),  # feature 5
            ("name", "x", square(109.0, 35.0, 0.1)),  # feature 6
            ("code", "610202001", square(209.0, 35.0, 0.1)),  # feature 7
        ]
    )
    files["grids.geojson"] = "{not json"
    errors = import_errors(engine_at(tmp_path / "r.sqlite3"), write_dir(tmp_path / "in", files))
    for prefix in (
        "centres.geojson:feature 2: unknown code 'nowhere'",
        "centres.geojson:feature 3: duplicate code 610202001001",
        "centres.geojson:feature 4: code 610202: invalid geometry",
        "centres.geojson:feature 5: code 610200: geometry must be a Polygon or MultiPolygon",
        "centres.geojson:feature 6: missing property 'code'",
        "centres.geojson:feature 7: code 610202001: coordinates out of lon/lat range",
        "grids.geojson:1: invalid JSON",
    ):
        assert has(errors, prefix), (prefix, errors)
    assert len(errors) == 7, errors


def test_failed_import_changes_nothing(tmp_path):
    engine = engine_at(tmp_path / "r.sqlite3")
    empty = snapshot(engine)
    bad = dict(GOOD)
    bad["cameras.csv"] = GOOD["cameras.csv"] + "CAM-X,610202001001,,dome,200,35\n"
    bad_dir = write_dir(tmp_path / "bad", bad)
    import_errors(engine, bad_dir)
    assert snapshot(engine) == empty
    import_dir(engine, write_dir(tmp_path / "good", GOOD))
    before = snapshot(engine)
    assert before["centres"]
    errors = import_errors(engine, bad_dir)
    assert errors == ["cameras.csv:5: lon 200.0 out of range -180..180"]
    assert snapshot(engine) == before


def test_import_replaces_contents(tmp_path):
    engine = engine_at(tmp_path / "r.sqlite3")
    import_dir(engine, write_dir(tmp_path / "good", GOOD))
    small = {
        "centres.csv": "code,name,level,parent,conference\n610222,宜君县,2,,\n",
        "grids.csv": "id,centre,kind,workers\n",
        "cameras.csv": "id,centre,grid,kind,lon,lat\n",
    }
    report = import_dir(engine, write_dir(tmp_path / "small", small))
    assert report.centres == 1
    snap = snapshot(engine)
    assert [r[0] for r in snap["centres"]] == ["610222"]
    assert snap["grids"] == snap["cameras"] == snap["base_data"] == []


def test_small_round_trip(tmp_path):
    a = engine_at(tmp_path / "a.sqlite3")
    import_dir(a, write_dir(tmp_path / "in", GOOD))
    export_dir(a, tmp_path / "out1")
    b = engine_at(tmp_path / "b.sqlite3")
    import_dir(b, tmp_path / "out1")
    export_dir(b, tmp_path / "out2")
    assert dir_files(tmp_path / "out1") == dir_files(tmp_path / "out2")
    assert snapshot(a) == snapshot(b)
    assert set(dir_files(tmp_path / "out1")) == set(GOOD)


def test_codes_ids_and_conference_endpoints_are_checked_with_file_and_line(tmp_path):
    files = dict(GOOD)
    files["centres.csv"] = GOOD["centres.csv"] + (
        "6102 03,空格区,2,610200,\n"  # line 7: a space inside the code
        "610204<b>,标签区,2,610200,\n"  # line 8: markup in the code
        f"{'6' * 33},长码区,2,610200,\n"  # line 9: 33 characters
        "610205,脚本区,2,610200,javascript:alert(1)\n"  # line 10
        "610206,数据区,2,610200,data:text/html;base64;PHNjcmlwdD4=\n"  # line 11
        "610207,视联区,2,610200,sip:610207@vc.example.gov.cn\n"  # line 12: a SIP URI is fine
        "610208,网址区,2,610200,https://meet.example.gov.cn/r?a=1\n"  # line 13: fine
        "610209,无主机,2,610200,https:///nohost\n"  # line 14: no host
    )
    files["grids.csv"] = GOOD["grids.csv"] + "G 1,610202001001,urban,1\n"  # line 4
    files["cameras.csv"] = GOOD["cameras.csv"] + "CAM/1,610202001001,,dome,109.1,35.1\n"  # line 5
    errors = import_errors(engine_at(tmp_path / "r.sqlite3"), write_dir(tmp_path / "in", files))
    expected = [
        "centres.csv:7: bad code '6102 03' (1-32 of A-Z a-z 0-9 _ -)",
        "centres.csv:8: bad code '610204<b>'",
        f"centres.csv:9: bad code '{'6' * 33}'",
        "centres.csv:10: bad conference endpoint 'javascript:alert(1)'",
        "centres.csv:11: bad conference endpoint 'data:text/html",
        "centres.csv:14: bad conference endpoint 'https:///nohost'",
        "grids.csv:4: bad grid id 'G 1'",
        "cameras.csv:5: bad camera id 'CAM/1'",
    ]
    for prefix in expected:
        assert has(errors, prefix), (prefix, errors)
    assert len(errors) == len(expected), errors


@pytest.mark.parametrize("url, ok", [
    ("https://meet.example.gov.cn/pingan-610202", True), ("http://10.1.2.3:8080/r", True),
    ("HTTPS://MEET.example/x", True), ("sip:610202@vc.example.gov.cn", True),
    ("sips:conf@10.0.0.5:5061", True), ("javascript:alert(1)", False),
    ("JaVaScRiPt:alert(1)", False), ("data:text/html,<script>", False), ("vbscript:x", False),
    ("file:///etc/passwd", False), ("//evil.example/x", False), ("https://", False),
    ("http:/x", False), ("sip:", False), ("https://a.example/ x", False),
    ("https://a.example/\tx", False), ('https://a.example/"onload=x', False), ("", False),
    ("https://a.example/" + "x" * 600, False), ("meet.example/x", False),
])
def test_conference_endpoints(url, ok):
    assert is_conference_url(url) is ok


HOSTILE = ["=HYPERLINK(\"http://evil.example\",\"点我\")", "+86 10 12345", "-2-3", "@SUM(A1:A9)",
           "\t=cmd|' /C calc'!A0", "\r=1+1", "'以引号开头", "''两个引号", "正常名称"]


def test_export_is_safe_from_spreadsheet_formulas_and_round_trips(tmp_path):
    """Every text cell a spreadsheet would run as a formula is written behind an apostrophe;
    the import takes it off again, so export → import → export is exact."""
    a = engine_at(tmp_path / "a.sqlite3")
    import_dir(a, write_dir(tmp_path / "in", GOOD))
    with Session(a) as s, s.begin():  # names (and an id) as a hostile registry could hold them
        codes = [c for (c,) in s.execute(select(Centre.code).order_by(Centre.code))]
        for code, name in zip(codes, HOSTILE, strict=False):
            s.execute(Centre.__table__.update().where(Centre.code == code).values(name=name))
        s.execute(Camera.__table__.update().where(Camera.id == "CAM-610202001201-0002")
                  .values(id="-2-3"))
    export_dir(a, tmp_path / "out1")
    for name in ("centres.csv", "cameras.csv"):
        text = (tmp_path / "out1" / name).read_text(encoding="utf-8")
        for row in csv.reader(io.StringIO(text, newline="")):
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
    assert "'=HYPERLINK(" in (tmp_path / "out1" / "centres.csv").read_text(encoding="utf-8")
    b = engine_at(tmp_path / "b.sqlite3")
    import_dir(b, tmp_path / "out1")
    assert snapshot(a) == snapshot(b)
    with Session(b) as s:
        names = set(s.scalars(select(Centre.name)))
        assert set(HOSTILE[:len(codes)]) <= names
        assert s.get(Camera, "-2-3") is not None
    export_dir(b, tmp_path / "out2")
    assert dir_files(tmp_path / "out1") == dir_files(tmp_path / "out2")


# ------------------------------------------------------------------------------------------
# the demo region
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    engine = engine_at(base / "demo.sqlite3")
    build_demo(engine, seed=7)
    export_dir(engine, base / "export")
    return engine, base


def test_demo_counts(demo):
    engine, _ = demo
    st = stats(engine)
    assert st["centres"] == {"1": 1, "2": 4, "3": 38, "4": 432}
    assert st["grids"] == {"urban": 961, "rural": 1870}
    assert st["grids_total"] == 2831
    assert st["workers"] == 3198
    assert set(st["cameras"]) == {"dome", "face", "checkpoint", "smart", "integrated"}
    assert all(n > 0 for n in st["cameras"].values())
    assert 3000 <= st["cameras_total"] <= 6000
    with Session(engine) as s:
        centres = {c.code: c for c in s.scalars(select(Centre))}
        grids = list(s.scalars(select(Grid)))
        cameras = list(s.scalars(select(Camera)))
        base = {b.centre: b for b in s.scalars(select(BaseData))}
    assert centres["610200"].name == "铜川市" and centres["610200"].level == 1
    assert {c: centres[c].name for c in ("610202", "610203", "610204", "610222")} == {
        "610202": "王益区",
        "610203": "印台区",
        "610204": "耀州区",
        "610222": "宜君县",
    }
    level4 = [c for c in centres.values() if c.level == 4]
    communities = [c for c in level4 if c.name.endswith("社区")]
    villages = [c for c in level4 if c.name.endswith("村")]
    assert (len(communities), len(villages)) == (73, 359)
    for c in level4:
        assert len(c.code) == 12 and c.code.startswith(c.parent)
    urban_centres = {g.centre for g in grids if g.kind == "urban"}
    rural_centres = {g.centre for g in grids if g.kind == "rural"}
    assert urban_centres == {c.code for c in communities}
    assert rural_centres == {c.code for c in villages}
    towns = [c for c in centres.values() if c.level == 3]
    children = defaultdict(list)
    for c in centres.values():
        children[c.parent].append(c.code)
    assert all(children[t.code] for t in towns)
    streets = [t for t in towns if t.name.endswith("街道")]
    in_streets = sum(1 for c in communities if centres[c.parent].name.endswith("街道"))
    assert len(streets) == 17 and in_streets > len(communities) / 2
    assert all(g.workers >= 1 for g in grids)
    assert all(c.conference is None for c in centres.values() if c.level > 1)
    assert all(c.lon is not None and c.geometry for c in centres.values())
    # every camera sits inside a grid of its own centre
    gshape = {g.id: shape(json.loads(g.geometry)) for g in grids}
    gcentre = {g.id: g.centre for g in grids}
    for cam in cameras:
        assert gcentre[cam.grid] == cam.centre
        assert gshape[cam.grid].contains(shapely.Point(cam.lon, cam.lat)), cam.id
    assert cameras[0].id.startswith("CAM-") and len(cameras[0].id) == len("CAM-610202001001-0007")
    assert all(len(g.id) == len("610202001001-G03") for g in grids)
    assert set(base) == {c.code for c in level4}
    assert all(100 <= b.registered_population <= 20000 for b in base.values())
    # geometry is valid and the grids layer stays light enough for the wall
    assert all(s.is_valid for s in gshape.values())
    assert all(shape(json.loads(c.geometry)).is_valid for c in centres.values())
    assert sum(len(g.geometry) for g in grids) < 1_500_000


def _assert_tiles(parent, kids):
    total = sum(k.area for k in kids)
    assert abs(total - parent.area) <= 1e-6 * parent.area
    union = shapely.union_all(kids)
    assert parent.difference(union).area <= 1e-9 * parent.area
    assert union.difference(parent).area <= 1e-9 * parent.area
    tree = shapely.STRtree(kids)
    overlap = 0.0
    for i, j in zip(*tree.query(kids, predicate="intersects"), strict=True):
        if i < j:
            overlap += kids[i].intersection(kids[j]).area
    assert overlap <= 1e-9 * parent.area


def test_demo_children_tile_their_parent(demo):
    engine, _ = demo
    with Session(engine) as s:
        centres = {c.code: c for c in s.scalars(select(Centre))}
        grids = list(s.scalars(select(Grid)))
    geo = {c: shape(json.loads(v.geometry)) for c, v in centres.items()}
    kids = defaultdict(list)
    for c in centres.values():
        if c.parent:
            kids[c.parent].append(geo[c.code])
    for g in grids:
        kids[g.centre].append(shape(json.loads(g.geometry)))
    village = next(c for c, v in sorted(centres.items()) if v.name.endswith("村"))
    for code in ("610200", "610204", "610202001", "610222101", village):
        _assert_tiles(geo[code], kids[code])
    # every parent's children sum to it (cheap check over the whole tree)
    for code, ks in kids.items():
        assert abs(sum(k.area for k in ks) - geo[code].area) <= 1e-6 * geo[code].area, code
    # districts keep their real boundaries (up to the snap rounding on a 1e-6° grid)
    real = json.loads(
        (ROOT / "datasources/data/tongchuan-610200-districts.geojson").read_text("utf-8")
    )
    for feat in real["features"]:
        g = shape(feat["geometry"])
        d = geo[str(feat["properties"]["adcode"])]
        assert g.symmetric_difference(d).area <= 1e-5 * g.area
        assert g.hausdorff_distance(d) < 1e-5


def test_demo_round_trip(demo, tmp_path):
    _, base = demo
    engine = engine_at(tmp_path / "copy.sqlite3")
    import_dir(engine, base / "export")
    export_dir(engine, tmp_path / "again")
    first, second = dir_files(base / "export"), dir_files(tmp_path / "again")
    assert set(first) == {
        "centres.csv",
        "grids.csv",
        "cameras.csv",
        "base_data.csv",
        "centres.geojson",
        "grids.geojson",
    }
    assert first == second
    assert len(first["grids.geojson"]) < 1_500_000


def test_demo_is_deterministic(demo, tmp_path):
    _, base = demo
    engine = engine_at(tmp_path / "again.sqlite3")
    build_demo(engine, seed=7)
    export_dir(engine, tmp_path / "export")
    assert dir_files(tmp_path / "export") == dir_files(base / "export")


def test_allocate():
    assert allocate(10, [1, 1, 2]) == [3, 2, 5]
    assert sum(allocate(961, [0.3] * 73, 1)) == 961
    assert min(allocate(30, [100, 0.001, 0.001], 1)) == 1
    with pytest.raises(ValueError):
        allocate(2, [1, 1, 1], 1)


# ------------------------------------------------------------------------------------------
# the CLI group
# ------------------------------------------------------------------------------------------


def test_cli(tmp_path):
    settings = Settings(data_dir=tmp_path / "var")
    runner = CliRunner()

    def run(*args):
        return runner.invoke(registry, list(args), obj=settings, catch_exceptions=False)

    r = run("import", str(write_dir(tmp_path / "good", GOOD)))
    assert r.exit_code == 0, r.output
    assert (tmp_path / "var" / "registry.sqlite3").exists()
    r = run("stats", "--json")
    assert r.exit_code == 0
    assert json.loads(r.stdout)["centres_total"] == 5

    bad = dict(GOOD)
    bad["grids.csv"] = GOOD["grids.csv"] + "G-9,610202001001,urban,-1\n"
    r = run("import", str(write_dir(tmp_path / "bad", bad)))
    assert r.exit_code == 1
    assert "grids.csv:4: workers must be a non-negative integer" in r.stderr
    assert r.stdout == ""

    r = run("demo")
    assert r.exit_code == 1 and "--force" in r.stderr
    r = run("export", str(tmp_path / "out"))
    assert r.exit_code == 0
    assert (tmp_path / "out" / "centres.csv").exists()
    r = run("stats")
    assert r.exit_code == 0 and "centres: 5" in r.stdout
