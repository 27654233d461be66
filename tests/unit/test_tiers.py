"""Tiers are the region's own (issue 13 item 4): levels 0-4 (a root is a province, a city or a
county), the vocabulary's `tier` names on every screen, and the synthetic province generator.
The pipeline on a province-rooted registry: tests/integration/test_province.py."""

from __future__ import annotations

import json
from collections import defaultdict
from types import SimpleNamespace

import shapely
from click.testing import CliRunner
from shapely.geometry import shape

from dashboard.cli_registry import registry
from datasources.contract import closed_tiers
from datasources.registry_io import export_dir, import_dir, read_dir, stats
from datasources.synthetic import province_registry
from datasources.topology import build_topology, load_topology
from datasources.vocabulary import DEFAULT, DEFAULT_TIERS, Term, Vocabulary, check_term, from_rows
from layouts import brief, charts, embed, viewmodel
from layouts.console import centre_options, tier_text
from layouts.vc import group_controls
from layouts.wall import command_strings, wall_screen
from tests.unit.test_registry_io import engine_at, import_errors, write_dir
from tests.unit.test_wall_pure import snapshot

SMALL = {"cities": 2, "counties_per_city": 2, "towns_per_county": 2, "villages_per_town": 2,
         "grids_per_village": 2, "cameras_per_town": 3}

# a county-rooted region that calls its tiers 县/镇/村
COUNTY_FILES = {
    "centres.csv": "code,name,level,parent,conference\n"
                   "610222,宜君县,2,,\n610222100,彭镇,3,610222,\n610222100001,西村,4,610222100,\n"
                   "610222100002,东村,4,610222100,\n",
    "grids.csv": "id,centre,kind,workers\nG1,610222100001,rural,1\nG2,610222100002,rural,2\n",
    "cameras.csv": "id,centre,grid,kind,lon,lat\nK1,610222100001,G1,dome,109.1,35.4\n",
    "vocabulary.csv": "kind,code,zh,en,colour\ntier,2,县,County,\ntier,3,镇,Town,#123456\n"
                      "tier,4,村,Village,\n",
}


def row(kind, code, zh="县", en="County", colour=""):
    return SimpleNamespace(kind=kind, code=code, position=0, zh=zh, en=en, colour=colour)


# -- the vocabulary's tiers ---------------------------------------------------------------------

def test_default_tiers_are_todays_names_and_a_province():
    assert [DEFAULT.tier_name(lv, "zh") for lv in range(5)] == ["省级", "市级", "区县", "镇街", "村社区"]
    assert [DEFAULT.tier_name(lv, "en") for lv in range(5)] == [
        "Province", "City", "District", "Town/street", "Community/village"]
    assert DEFAULT.codes("tier") == ("0", "1", "2", "3", "4")


def test_a_tier_row_renames_one_tier_and_keeps_the_rest():
    vocab = from_rows([row("tier", "2"), row("tier", "3", "镇", "", "#123456")])
    assert vocab.tier_name(2, "zh") == "县" and vocab.tier_name(2, "en") == "County"
    assert vocab.tier_name(3, "en") == "镇"  # no English: the Chinese name
    assert vocab.tier_name(1, "zh") == "市级" and vocab.tier_name(4, "zh") == "村社区"
    assert vocab.colour("tier", "2") == DEFAULT_TIERS[2].colour  # empty colour: the default's
    assert vocab.colour("tier", "3") == "#123456"
    assert vocab.codes("tier") == DEFAULT.codes("tier")  # always the five levels, in order
    assert vocab.codes("category") == DEFAULT.codes("category")
    assert Vocabulary.from_plain(vocab.to_plain()) == vocab
    old = {k: v for k, v in vocab.to_plain().items() if k != "tier"}  # a view model from before
    assert Vocabulary.from_plain(old).tier == DEFAULT.tier


def test_tier_terms_are_checked():
    assert check_term("tier", "0", "省", "Province", "") is None
    assert "bad tier '5'" in check_term("tier", "5", "x", "x", "")
    assert "bad tier 'town'" in check_term("tier", "town", "x", "x", "")
    assert "bad colour" in check_term("tier", "2", "县", "", "red")
    assert "bad colour" in check_term("category", "fire", "火", "", "")  # others need one
    assert "bad code" in check_term("category", "2", "x", "x", "#000000")


# -- the registry files ---------------------------------------------------------------------------

def test_a_county_rooted_region_imports_with_its_tier_names(tmp_path):
    engine = engine_at(tmp_path / "r.sqlite3")
    import_dir(engine, write_dir(tmp_path / "in", COUNTY_FILES))
    topo = load_topology(engine)
    assert [topo.vocab.tier_name(lv, "zh") for lv in (2, 3, 4)] == ["县", "镇", "村"]
    assert topo.vocab.tier_name(1, "zh") == "市级"
    assert stats(engine)["centres"] == {"2": 1, "3": 1, "4": 2}  # the region's tiers only
    assert [n for _lv, n in closed_tiers(topo, "610222100001")] == ["village", "town", "district"]
    export_dir(engine, tmp_path / "out")
    assert (tmp_path / "out" / "vocabulary.csv").read_text(encoding="utf-8").splitlines() == [
        "kind,code,zh,en,colour", "tier,2,县,County,", "tier,3,镇,Town,#123456",
        "tier,4,村,Village,"]
    assert read_dir(tmp_path / "out").vocabulary == read_dir(tmp_path / "in").vocabulary


def test_levels_are_0_to_4_and_a_root_is_a_province_city_or_county(tmp_path):
    files = dict(COUNTY_FILES)
    files["centres.csv"] = ("code,name,level,parent,conference\n"
                            "61,陕西省,0,,\n"  # line 2: a province root: fine
                            "6101,西安市,1,61,\n"  # line 3
                            "X5,五级,5,6101,\n"  # line 4: no level 5
                            "X9,负级,-1,,\n"  # line 5: nor -1
                            "T1,孤镇,3,,\n"  # line 6: a town cannot be a root
                            "610222,宜君县,2,,\n610222100,彭镇,3,610222,\n"
                            "610222100001,西村,4,610222100,\n610222100002,东村,4,610222100,\n")
    errors = import_errors(engine_at(tmp_path / "r.sqlite3"), write_dir(tmp_path / "in", files))
    assert errors == [
        "centres.csv:4: level must be 0-4, got '5'",
        "centres.csv:5: level must be 0-4, got '-1'",
        "centres.csv:6: root centre T1 (no parent) of level 3: a region's root is a province, "
        "a city or a county (level 0, 1 or 2)",
    ]


def test_closed_tiers_are_the_regions_from_its_root_down():
    rows = [("P", "省", 0, None, None, None, None), ("C", "市", 1, "P", None, None, None),
            ("D", "县", 2, "C", None, None, None), ("T", "镇", 3, "D", None, None, None),
            ("V", "村", 4, "T", None, None, None)]
    topo = build_topology(rows, [], [])
    assert closed_tiers(topo, "V") == ((4, "village"), (3, "town"), (2, "district"),
                                       (1, "city"), (0, "province"))
    assert closed_tiers(topo, "P") == closed_tiers(topo, "D")  # the region's, at any centre
    city = build_topology([("C", "市", 1, None, None, None, None), *rows[2:]], [], [])
    assert [n for _lv, n in closed_tiers(city, "C")] == ["village", "town", "district", "city"]
    # the shard tier stays level 2: a province and a city are each their own shard
    assert [topo.centres[c].shard for c in "PCDTV"] == ["P", "C", "D", "D", "D"]


# -- the screens -------------------------------------------------------------------------------

def _county_topo():
    rows = [("610222", "宜君县", 2, None, None, None, None),
            ("T1", "彭镇", 3, "610222", None, None, None),
            ("T2", "哭泉镇", 3, "610222", None, None, None),
            ("V1", "西村", 4, "T1", None, None, None)]
    vocab = DEFAULT.replace("tier", [Term("2", "县", "County", ""), Term("3", "镇", "Town", ""),
                                     Term("4", "村", "Village", "#010203")])
    return build_topology(rows, [("g1", "V1", "rural", 1)], [("c1", "V1", "dome")], vocab)


def _county_vm():
    topo = _county_topo()
    snap = snapshot(topo, "610222")
    snap["events"]["closed_at_level"] = {"village": 5, "town": 3, "district": 1}
    return topo, viewmodel.build(snap, topo, now_ms=2_000)


def test_the_wall_names_tiers_in_the_regions_words():
    topo, vm = _county_vm()
    for lang, chip, ranking, bars in (("zh", "县综治中心", "镇排名", ["村", "镇", "县"]),
                                      ("en", "County centre", "Town ranking",
                                       ["Village", "Town", "County"])):
        text = str(wall_screen(vm, lang))
        assert chip in text and ranking in text
        text = str(brief.header(vm, lang)) + str(brief.children_panel(vm, lang))
        assert chip in text and ranking in text
        fig = charts.closed_at_level(vm, lang)
        assert fig["data"][0]["x"] == ["village", "town", "district"]  # no city bar in a county
        assert fig["layout"]["xaxis"]["ticktext"] == bars
        assert fig["data"][0]["marker"]["color"][0] == "#010203"  # the region's tier colour
        rows = embed._static("closure", vm, lang, None, "index")["rows"]
        assert [(r["key"], r["label"]) for r in rows] == list(zip(fig["data"][0]["x"], bars, strict=True))
    assert command_strings("zh", topo.vocab)["level_3"] == "镇"
    assert tier_text(2, "en", topo.vocab) == "County" and tier_text(None, "zh") == "—"
    assert [o["label"] for o in centre_options(topo, "610222", "zh")][:2] == ["宜君县 · 县", "\u3000彭镇 · 镇"]
    tiers = group_controls("610222", 2, "zh", topo.vocab).children[0].options
    assert [o["label"] for o in tiers] == ["全部下级", "村"]


def test_a_city_region_without_tier_rows_keeps_todays_names():
    topo = build_topology([("100", "测试市", 1, None, None, None, None),
                           ("101", "北区", 2, "100", None, None, None)], [], [])
    snap = snapshot(topo, "100")
    vm = viewmodel.build(snap, topo, now_ms=2_000)
    text = str(wall_screen(vm, "zh"))
    assert "市级综治中心" in text and "区县排名" in text
    assert charts.closed_at_level(vm, "zh")["layout"]["xaxis"]["ticktext"] == [
        "村社区", "镇街", "区县", "市级"]
    assert command_strings("en")["level_4"] == "Community/village"


# -- the synthetic province ------------------------------------------------------------------------

def test_synthetic_province_imports_with_its_shape_codes_and_names(tmp_path):
    counts = province_registry(tmp_path / "p", seed=3, **SMALL)
    assert counts["centres"] == {"0": 1, "1": 2, "2": 4, "3": 8, "4": 16}
    assert (counts["grids_total"], counts["cameras_total"]) == (32, 24)
    engine = engine_at(tmp_path / "r.sqlite3")
    report = import_dir(engine, tmp_path / "p")
    assert (report.centres, report.grids, report.cameras, report.centre_geometries) == (31, 32, 24, 31)
    topo = load_topology(engine)
    assert topo.roots == ("610000",) and topo.centres["610000"].name == "陕西省"
    assert [topo.vocab.tier_name(lv, "zh") for lv in range(5)] == ["省", "市", "区县", "镇街", "村社"]
    by_level = defaultdict(list)
    for c in topo.centres.values():
        by_level[c.level].append(c.code)
        # 61 → 61xx00 → 61xxyy → 61xxyyzzz → 61xxyyzzzvvv
        head = {0: "", 1: "61", 2: (c.parent or "")[:4]}.get(c.level, c.parent)
        assert c.code.startswith(head), c
    assert {len(code) for lv in range(5) for code in by_level[lv]} == {6, 9, 12}
    assert [len(by_level[lv][0]) for lv in range(5)] == [6, 6, 6, 9, 12]
    assert "610200" in topo.centres and topo.centres["610200"].name == "铜川市"  # real names
    assert topo.centres["610202"].name == "王益区" and topo.centres["610202001"].name == "七一路街道"
    assert len(topo.shards) == 1 + 2 + 4  # the province, each city, each county
    # each centre's rectangle is tiled by its children's
    geo = {c["code"]: shape(json.loads(c["geometry"])) for c in read_dir(tmp_path / "p").centres}
    for code, kids in topo.children.items():
        union = shapely.union_all([geo[k] for k in kids])
        assert abs(union.area - geo[code].area) < 1e-9 * max(1.0, geo[code].area), code
    again = province_registry(tmp_path / "q", seed=3, **SMALL)
    assert again["centres"] == counts["centres"]
    for name in ("centres.csv", "grids.csv", "cameras.csv", "base_data.csv", "centres.geojson"):
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "q" / name).read_bytes(), name


def test_registry_synth_cli_prints_clean_json(tmp_path):
    args = ["synth", str(tmp_path / "p"), "--cities", "1", "--counties-per-city", "1",
            "--towns-per-county", "2", "--villages-per-town", "1", "--no-geometry", "--json"]
    res = CliRunner().invoke(registry, args)
    assert res.exit_code == 0, res.output
    counts = json.loads(res.stdout)
    assert counts["centres"] == {"0": 1, "1": 1, "2": 1, "3": 2, "4": 2}
    assert "towns" in res.stderr and not (tmp_path / "p" / "centres.geojson").exists()
    res = CliRunner().invoke(registry, ["synth", str(tmp_path / "q"), "--cities", "1",
                                        "--counties-per-city", "1", "--towns-per-county", "1",
                                        "--villages-per-town", "1"])
    assert res.exit_code == 0 and res.stdout.startswith("wrote 5 centres (province 1, city 1, ")
    res = CliRunner().invoke(registry, ["synth", str(tmp_path / "r"), "--cities", "100"])
    assert res.exit_code == 2 and "100" in res.output
