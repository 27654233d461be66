"""The region's own vocabulary (issue 12 item 8): terms, the registry's vocabulary.csv, and
everything that follows it (contract, audit, read model's fields, charts, embeds, case lists).
The read model's count through a real Redis: tests/integration/test_vocabulary_pipeline.py."""

from __future__ import annotations

import time
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from datasources import contract
from datasources.audit import AuditRegistry, Rejected, TimeRules, Tree, check_entry
from datasources.registry_io import RegistryImportError, export_dir, import_dir, read_dir, stats
from datasources.topology import build_topology, load_topology
from datasources.vocabulary import (
    DEFAULT,
    KINDS,
    MAX_TERMS,
    Term,
    Vocabulary,
    check_term,
    from_rows,
    load_vocabulary,
)
from layouts import charts, embed, panels, viewmodel
from layouts.console import case_row
from layouts.wall import command_strings
from tests.unit.small_registry import CAMERAS, CENTRES, GRIDS
from tests.unit.test_registry_io import GOOD, dir_files, engine_at, write_dir

DIGITAL = Term("digital_city", "数字城管", "Digital city management", "#123abc")
CADRE = Term("cadre_visit", "干部走访", "", "#00ff7f")  # no English label: falls back to zh


def region_vocab() -> Vocabulary:
    return (DEFAULT.replace("category", (*DEFAULT.category, DIGITAL))
            .replace("event_channel", (*DEFAULT.event_channel, CADRE)))


def row(kind, code, position, zh="标签", en="Label", colour="#aabbcc"):
    return SimpleNamespace(kind=kind, code=code, position=position, zh=zh, en=en, colour=colour)


# -- terms and vocabularies ---------------------------------------------------------------------

def test_default_is_todays_lists():
    assert DEFAULT.codes("category") == contract.CATEGORIES == (
        "dispute", "security", "fire", "sanitation", "special_population", "citizen_request",
        "other")
    assert DEFAULT.codes("event_channel") == contract.EVENT_CHANNELS
    assert DEFAULT.codes("petition_channel") == ("letter", "visit", "online")
    assert DEFAULT.codes("camera_kind") == ("dome", "face", "checkpoint", "smart", "integrated")
    assert DEFAULT.label("category", "fire", "zh") == "消防"
    assert DEFAULT.label("camera_kind", "dome", "en") == "Dome"
    assert DEFAULT.colour("event_channel", "hotline_12345") == charts.AMBER
    assert DEFAULT.categories == frozenset(contract.CATEGORIES)
    assert Vocabulary.from_plain(DEFAULT.to_plain()) == DEFAULT


def test_labels_fall_back_to_the_other_language_then_the_code():
    v = region_vocab()
    assert v.label("event_channel", "cadre_visit", "en") == "干部走访"
    assert Term("x", "", "Only English", "#000000").label("zh") == "Only English"
    assert Term("x", "", "", "#000000").label("en") == "x"
    assert v.label("category", "not_a_term", "zh") == "not_a_term"
    assert v.colour("category", "not_a_term") == charts.GREY


def test_from_rows_orders_by_position_and_keeps_defaults_of_kinds_without_rows():
    v = from_rows([row("category", "b_two", 1), row("category", "a_one", 0),
                   row("petition_channel", "mail", 0, colour="#ABCDEF")])
    assert v.codes("category") == ("a_one", "b_two")
    assert v.codes("petition_channel") == ("mail",)
    assert v.colour("petition_channel", "mail") == "#abcdef"
    assert v.event_channel == DEFAULT.event_channel and v.camera_kind == DEFAULT.camera_kind
    assert from_rows([]) == DEFAULT


def test_from_rows_leaves_out_what_an_import_refuses():
    hostile = [row("category", "Bad-Code", 0), row("category", "x" * 40, 1),
               row("nonsense", "fine", 0), row("category", "evil", 2, colour="red;x:y"),
               row("category", "ctrl", 3, zh="a\x00b", en=""), row("category", "ok", 4),
               row("category", "ok", 5, zh="dupe"), row("petition_channel", "total", 0)]
    v = from_rows(hostile)
    assert v.codes("category") == ("ok",) and v.label("category", "ok", "zh") == "标签"
    assert v.petition_channel == DEFAULT.petition_channel  # "total" is reserved: no rows left
    many = from_rows([row("category", f"c{i}", i) for i in range(MAX_TERMS + 5)])
    assert len(many.category) == MAX_TERMS


@pytest.mark.parametrize("args, reason", [
    (("colour_kind", "a", "z", "e", "#000000"), "unknown kind"),
    (("category", "", "z", "e", "#000000"), "bad code"),
    (("category", "9lives", "z", "e", "#000000"), "bad code"),
    (("category", "a" * 33, "z", "e", "#000000"), "bad code"),
    (("category", "drop;table", "z", "e", "#000000"), "bad code"),
    (("category", "a", "", "", "#000000"), "empty labels"),
    (("category", "a", "z" * 65, "e", "#000000"), "too long"),
    (("category", "a", "z", "e\u202e", "#000000"), "control characters"),
    (("category", "a", "z\n", "e", "#000000"), "control characters"),
    (("category", "a", "z", "e", "#00000"), "bad colour"),
    (("category", "a", "z", "e", "red"), "bad colour"),
    (("category", "a", "z", "e", "#000000;}"), "bad colour"),
    (("petition_channel", "day", "z", "e", "#000000"), "reserved"),
])
def test_check_term_refuses(args, reason):
    assert reason in check_term(*args)


def test_check_term_accepts_a_label_with_markup_as_text():
    assert check_term("category", "a", "<b>数字</b>", "<script>x</script>", "#A0b1C2") is None


# -- registry files -----------------------------------------------------------------------------

VOCAB_CSV = (
    "kind,code,zh,en,colour\n"
    "category,dispute,矛盾纠纷,Disputes,#2ec7ff\n"
    "category,digital_city,数字城管,Digital city management,#123ABC\n"
    "event_channel,cadre_visit,干部走访,,#00ff7f\n"
    "event_channel,grid_worker,网格员,Grid worker,#2ec7ff\n"
    "camera_kind,dome,球机,Dome,#4f8cff\n"
    "camera_kind,checkpoint,卡口,Checkpoint,#4f8cff\n"
    "camera_kind,smart,智能,,#4f8cff\n"
    "camera_kind,drone,无人机,Drone,#8c7bff\n"
)


def test_vocabulary_csv_imports_exports_and_loads(tmp_path):
    engine = engine_at(tmp_path / "r.sqlite3")
    import_dir(engine, write_dir(tmp_path / "in", {**GOOD, "vocabulary.csv": VOCAB_CSV}))
    v = load_vocabulary(engine)
    assert v.codes("category") == ("dispute", "digital_city")
    assert v.codes("event_channel") == ("cadre_visit", "grid_worker")
    assert v.petition_channel == DEFAULT.petition_channel  # not in the file: the defaults
    assert v.codes("camera_kind") == ("dome", "checkpoint", "smart", "drone")
    assert v.colour("category", "digital_city") == "#123abc"
    topo = load_topology(engine)
    assert topo.vocab == v
    assert topo.totals["610200"]["cameras_drone"] == 0 and "cameras_face" not in topo.totals["610200"]
    assert stats(engine)["cameras"] == {"dome": 1, "checkpoint": 1, "smart": 1, "drone": 0}
    export_dir(engine, tmp_path / "out1")
    assert "vocabulary.csv" in dir_files(tmp_path / "out1")
    again = engine_at(tmp_path / "again.sqlite3")
    import_dir(again, tmp_path / "out1")
    export_dir(again, tmp_path / "out2")
    assert dir_files(tmp_path / "out1") == dir_files(tmp_path / "out2")
    assert load_vocabulary(again) == v
    # an import without the file goes back to the defaults, and the export has none
    import_dir(again, write_dir(tmp_path / "plain", GOOD))
    assert load_vocabulary(again) == DEFAULT
    export_dir(again, tmp_path / "out2")
    assert "vocabulary.csv" not in dir_files(tmp_path / "out2")


def test_vocabulary_csv_errors_are_reported_with_file_and_line(tmp_path):
    bad = (
        "kind,code,zh,en,colour\n"
        "colour_kind,x,甲,A,#000000\n"  # 2
        "category,Digital-City,数字城管,Digital,#123abc\n"  # 3
        "category,digital_city,数字城管,Digital,blue\n"  # 4
        "category,empty,,,#123abc\n"  # 5
        "category,fine,好,Fine,#123abc\n"  # 6
        "category,fine,又一个,Again,#123abc\n"  # 7
        f"category,long,{'长' * 65},Long,#123abc\n"  # 8
        "category,ctrl,\"a\x07b\",Bell,#123abc\n"  # 9
        "petition_channel,total,合计,Total,#123abc\n"  # 10
        "camera_kind,dome,球机,Dome,#4f8cff\n"  # 11: the only camera kind
        "'=cmd,x,甲,A,#000000\n"  # 12: a formula is a bad kind, not a formula
    )
    errors = read_errors(tmp_path, bad)
    for line, words in ((2, "unknown kind"), (3, "bad code"), (4, "bad colour"),
                        (5, "empty labels"), (7, "duplicate category fine (first on line 6)"),
                        (8, "too long"), (9, "control characters"), (10, "reserved"),
                        (12, "unknown kind")):
        assert any(e.startswith(f"vocabulary.csv:{line}: ") and words in e for e in errors), \
            (line, errors)
    # the cameras' kinds are checked against the file's camera kinds
    assert any(e.startswith("cameras.csv:3: bad kind 'checkpoint'") for e in errors), errors
    assert any(e.startswith("cameras.csv:4: bad kind 'smart'") for e in errors), errors


def test_vocabulary_csv_hostile_shapes(tmp_path):
    assert any("missing column 'colour'" in e
               for e in read_errors(tmp_path, "kind,code,zh,en\ncategory,a,甲,A\n"))
    assert any("wrong number of fields" in e
               for e in read_errors(tmp_path, "kind,code,zh,en,colour\ncategory,a\n"))
    too_many = "kind,code,zh,en,colour\n" + "".join(
        f"category,c{i},甲,A,#000000\n" for i in range(MAX_TERMS + 1))
    assert any(e.startswith(f"vocabulary.csv:{MAX_TERMS + 2}: more than {MAX_TERMS}")
               for e in read_errors(tmp_path, too_many))
    ok = read_dir(write_dir(tmp_path / "ok", {**GOOD, "vocabulary.csv":
                                              "kind,code,zh,en,colour\n"
                                              "category,a,'=1+1,<b>x</b>,#000000\n"}))
    assert ok.vocabulary == [{"kind": "category", "code": "a", "position": 0, "zh": "=1+1",
                              "en": "<b>x</b>", "colour": "#000000"}]


def read_errors(tmp_path, text: str) -> list[str]:
    d = write_dir(tmp_path / f"in{abs(hash(text))}", {**GOOD, "vocabulary.csv": text})
    with pytest.raises(RegistryImportError) as info:
        read_dir(d)
    return info.value.errors


# -- the contract and the audit follow topo.vocab ------------------------------------------------

def _topo(vocab: Vocabulary = DEFAULT):
    return build_topology(CENTRES, GRIDS, CAMERAS, vocab)


def _report(category="digital_city", channel="cadre_visit", eid="E1"):
    now = int(time.time() * 1000)
    return {"v": "1", "ts": str(now), "src": "test", "eid": eid, "status": "reported",
            "centre": "V1", "category": category, "channel": channel, "urgency": "normal",
            "due": str(now + 3_600_000)}


def test_contract_accepts_the_regions_category_and_refuses_it_under_the_defaults():
    clock = contract.Clock(tz=ZoneInfo("Asia/Shanghai"), now_ms=int(time.time() * 1000))
    region, plain = _topo(region_vocab()), _topo()
    rec = contract.validate("events", _report(), "D1", region, clock)
    assert rec[contract.FIELDS.index("category")] == "digital_city"
    assert rec[contract.FIELDS.index("channel")] == "cadre_visit"
    fast = contract.validate_fast("events", _report(), contract.shard_lookup(region, "D1"), clock,
                                  clock.now_ms)
    assert fast == rec
    with pytest.raises(contract.InvalidEntry, match="bad category: 'digital_city'"):
        contract.validate("events", _report(), "D1", plain, clock)
    with pytest.raises(contract.InvalidEntry, match="bad channel: 'cadre_visit'"):
        contract.validate("events", _report(channel="cadre_visit", category="fire"), "D1", plain,
                          clock)
    assert contract.validate_fast("events", _report(), contract.shard_lookup(plain, "D1"), clock,
                                  clock.now_ms) is None
    # a region that drops a default term refuses it
    narrow = _topo(DEFAULT.replace("category", [DIGITAL]))
    with pytest.raises(contract.InvalidEntry, match="bad category: 'fire'"):
        contract.validate("events", _report(category="fire"), "D1", narrow, clock)
    # petitions follow the region's petition channels
    pet = {"v": "1", "ts": str(clock.now_ms), "src": "t", "pid": "P1", "centre": "V1",
           "channel": "hotline", "group": "0", "skip_level": "0"}
    with pytest.raises(contract.InvalidEntry, match="bad channel"):
        contract.validate("petitions", pet, "D1", plain, clock)
    own = _topo(DEFAULT.replace("petition_channel", [Term("hotline", "热线", "", "#000000")]))
    assert contract.validate("petitions", pet, "D1", own, clock)[11] == "hotline"


def test_the_audit_validates_with_the_regions_vocabulary():
    now = int(time.time() * 1000)
    rules = TimeRules(ZoneInfo("Asia/Shanghai"), now, 172_800_000, 300_000)
    pairs = list(_report().items())
    region = Tree(AuditRegistry.from_topology(_topo(region_vocab())))
    assert check_entry("events", pairs, "D1", region, rules, now).category == "digital_city"
    with pytest.raises(Rejected, match="bad category"):
        check_entry("events", pairs, "D1", Tree(AuditRegistry.from_topology(_topo())), rules, now)


# -- the screens ---------------------------------------------------------------------------------

def _vm(vocab: Vocabulary) -> dict:
    return {"by_category": {**{c: 1 for c in vocab.codes("category")}},
            "by_channel": {c: 2 for c in vocab.codes("event_channel")},
            "cameras_by_kind": {c: 0.5 for c in vocab.codes("camera_kind")},
            "petitions_7d": [{"day": "2026-01-01", **{c: 1 for c in vocab.codes("petition_channel")}}],
            "vocab": vocab.to_plain()}


def test_charts_show_the_regions_labels_and_colours():
    vm = _vm(region_vocab())
    fig = charts.by_category(vm, "zh")
    keys = fig["data"][0]["y"]
    i = keys.index("digital_city")
    assert fig["layout"]["yaxis"]["ticktext"][i] == "数字城管"
    assert fig["data"][0]["marker"]["color"][i] == "#123abc"
    fig = charts.by_channel(vm, "en")
    i = fig["data"][0]["x"].index("cadre_visit")
    assert fig["layout"]["xaxis"]["ticktext"][i] == "干部走访"  # no English label: zh
    assert fig["data"][0]["marker"]["color"][i] == "#00ff7f"


def test_the_demo_charts_are_todays():
    vm = _vm(DEFAULT)
    fig = charts.by_category(vm, "zh")
    assert fig["layout"]["yaxis"]["ticktext"] == ["矛盾纠纷", "治安隐患", "消防", "环境卫生", "特殊人群",
                                                  "民生诉求", "其他"]
    assert fig["data"][0]["marker"]["color"] == charts.CYAN  # one colour, as before
    ch = charts.by_channel(vm, "en")
    assert ch["data"][0]["marker"]["color"] == [charts.CYAN, charts.AMBER, charts.VIOLET,
                                                charts.TEAL, charts.BLUE]
    assert ch["layout"]["xaxis"]["ticktext"] == ["Grid<br>worker", "12345", "Video", "Public", "110"]
    pet = charts.petitions(vm, "zh", "7d")
    assert [(t["name"], t["marker"]["color"]) for t in pet["data"]] == [
        ("来信", charts.CYAN), ("来访", charts.AMBER), ("网上", charts.VIOLET)]
    cams = charts.camera_kinds(vm, "en")
    assert cams["layout"]["xaxis"]["ticktext"][:2] == ["Dome", "Face"]
    assert cams["data"][0]["marker"]["color"] == charts.BLUE
    # a view model built without a vocabulary is the defaults'
    assert charts.by_category({k: v for k, v in vm.items() if k != "vocab"}, "zh") == \
        charts.by_category(vm, "zh")


def test_labels_are_text_never_markup():
    evil = Term("evil", "<b>粗</b>", "<a href='javascript:x'>a</a> & b", "#000000")
    vocab = DEFAULT.replace("category", [evil]).replace("petition_channel", [evil])
    vm = _vm(vocab)
    assert charts.by_category(vm, "zh")["layout"]["yaxis"]["ticktext"] == ["&lt;b&gt;粗&lt;/b&gt;"]
    assert charts.petitions(vm, "en", "7d")["data"][0]["name"] == \
        "&lt;a href='javascript:x'&gt;a&lt;/a&gt; &amp; b"
    legend = panels.petitions_panel({**vm, "figures": {}, "petitions_30d": vm["petitions_7d"]},
                                    "zh")
    assert "<b>粗</b>" in str(legend)  # a Dash text child: the browser shows it as text


def test_view_model_embeds_case_lists_and_catalogue_follow_the_vocabulary():
    region = _topo(region_vocab())
    vm = {"vocab": region.vocab.to_plain(), "cameras_by_kind": {"dome": 1.0, "drone": 0.5}}
    assert viewmodel.vocab_of(vm) == region.vocab
    assert viewmodel.vocab_of({}) == DEFAULT
    drone = DEFAULT.replace("camera_kind", [*DEFAULT.camera_kind, Term("drone", "无人机", "Drone",
                                                                       "#000000")])
    rows = embed._static("cameras", {**vm, "vocab": drone.to_plain()}, "zh", None, "index")["rows"]
    assert [(r["key"], r["label"]) for r in rows] == [("dome", "球机"), ("drone", "无人机")]
    strings = command_strings("en", region.vocab)
    assert strings["cat_digital_city"] == "Digital city management"
    assert strings["ch_cadre_visit"] == "干部走访" and strings["cat_fire"] == "Fire safety"
    cells = str(case_row({"eid": "E1", "category": "digital_city", "channel": "cadre_visit",
                          "centre": "V1"}, region, "zh", int(time.time() * 1000), "Asia/Shanghai"))
    assert "数字城管" in cells and "干部走访" in cells
    assert set(KINDS) == set(viewmodel.vocab_of(vm).to_plain())
