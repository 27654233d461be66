"""The wall as a command post (issue 10), pure parts: the alert strip's rows, the directive a
wall follows, the counts that open their cases, the map's overdue pulses and escalation arcs,
and the `screen` / `sound` parameters of the wall's URL. No Redis."""

from __future__ import annotations

import pytest

from callbacks.router import BadQuery, Query, parse_query, search_for
from datasources.geo import build_geo
from datasources.topology import build_topology
from layouts import map as mapview
from layouts import viewmodel
from layouts.i18n import STRINGS
from layouts.panels import CASE_FILTERS
from layouts.wall import command_strings, wall_screen
from tests.unit.test_wall_pure import props, snapshot, topology, vm_for, walk

ROWS = [("100", "测试市", 1, None, 109.0, 35.0),
        ("101", "北区", 2, "100", 109.1, 35.1),
        ("102", "南区", 2, "100", 108.9, 34.9),
        ("101001", "一镇", 3, "101", 109.12, 35.12),
        ("101001001", "一村", 4, "101001", 109.13, 35.13)]


def topo():
    return build_topology([(c, n, lv, p, lon, lat, None) for c, n, lv, p, lon, lat in ROWS], [], [])


def geo():
    return build_geo([(c, n, lv, p, None, lon, lat) for c, n, lv, p, lon, lat in ROWS], [], [])


def alert(i: int, centre: str, state: str = "raised", rule: str = "urgent_case",
          severity: str = "critical", **detail) -> dict:
    return {"id": f"a:{i}", "rule": rule, "severity": severity, "centre": centre,
            "eid": f"e{i}", "state": state, "raised_at": 1000 + i, "acked_by": "",
            "acked_at": 0, "cleared_at": 0, "detail": detail}


def test_shown_region_is_the_child_on_the_path_or_the_centre_itself():
    t = topo()
    assert viewmodel.shown_region(t, "100", "101001001") == "101"
    assert viewmodel.shown_region(t, "101", "101001001") == "101001"
    assert viewmodel.shown_region(t, "101001001", "101001001") == "101001001"
    assert viewmodel.shown_region(t, "101", "102") is None  # another subtree
    assert viewmodel.shown_region(t, "100", "nope") is None
    assert viewmodel.shown_region(t, "100", None) is None


def test_alert_rows_newest_first_raised_only_in_scope_with_panel_and_region():
    t = topo()
    alerts = [alert(1, "101001001"), alert(2, "102", rule="camera_outage", severity="major",
                                              offline=5),
              alert(3, "101001", state="acknowledged"), alert(4, "101", state="cleared"),
              alert(5, "101001001", rule="petition_group", severity="minor",
                    bad={"nested": 1}, flag=True, hours=3)]
    got = viewmodel.alert_rows(alerts, t, "100")
    assert [r["id"] for r in got["rows"]] == ["a:5", "a:2", "a:1"]
    assert got["total"] == 3 and got["code"] == "100"
    first = got["rows"][0]
    assert first["region"] == "101" and first["panel"] == "petitions" and first["name"] == "一村"
    assert first["detail"] == {"hours": 3}  # small plain values only
    assert got["rows"][1]["panel"] == "cameras" and got["rows"][1]["region"] == "102"
    # the district's wall sees only its own subtree
    mine = viewmodel.alert_rows(alerts, t, "101")
    assert [r["id"] for r in mine["rows"]] == ["a:5", "a:1"]
    assert {r["region"] for r in mine["rows"]} == {"101001"}
    assert got["panels"] == {"petitions": "minor", "cameras": "major", "events": "critical"}
    assert got["regions"] == {"101": "critical", "102": "major"}
    capped = viewmodel.alert_rows([alert(i, "102") for i in range(10)]
                                  + [alert(-5, "101", severity="major")], t, "100", limit=4)
    assert capped["total"] == 11 and len(capped["rows"]) == 4
    assert capped["rows"][0]["id"] == "a:9"
    assert capped["regions"] == {"102": "critical", "101": "major"}  # beyond the cap too


def test_directive_view_ignores_centres_outside_the_viewers_scope():
    t = topo()
    d = {"group": "main", "seq": 4, "centre": "101001", "case": "e1", "alert": "", "by": "x",
         "at": 5}
    assert viewmodel.directive_view(d, t, "100") == {
        "group": "main", "seq": 4, "centre": "101001", "case": "e1", "alert": "", "at": 5}
    assert viewmodel.directive_view(d, t, "101")["seq"] == 4
    assert viewmodel.directive_view(d, t, "102") is None
    assert viewmodel.directive_view({**d, "centre": "zzz"}, t, "100") is None
    assert viewmodel.directive_view(None, t, "100") is None


def test_counts_open_their_cases_and_the_wall_shows_supervised_today():
    vm = vm_for()
    assert vm["figures"]["events.supervised"] == 0  # a read model without the field yet
    seen = {}
    strips = []
    for c in walk(wall_screen(vm, "zh")):
        p = props(c)
        if "data-cases" in p:
            seen[p["data-kpi"]] = p["data-cases"]
            assert p["role"] == "button"
        if "alert-strip" in (p.get("className") or "").split():
            strips.append(c)
    assert seen == CASE_FILTERS
    assert set(CASE_FILTERS.values()) == {"open", "overdue", "urgent", "escalated", "supervised"}
    assert len(strips) == 1


def test_the_ranking_shows_each_childs_supervised_today():
    """督办数 today per centre, in the ranking (issue 10 item 5), live like its other figures."""
    topo = topology(("北区", "南区", "东区"))
    snap = snapshot(topo, "100")
    for i, f in enumerate(snap["children"].values()):
        f["supervised"] = i + 3
    vm = viewmodel.build(snap, topo, 4_000)
    cells = {props(c)["data-child"]: props(c)["data-value"]
             for c in walk(wall_screen(vm, "zh")) if props(c).get("data-field") == "supervised"}
    assert cells == {c: str(i + 3) for i, c in enumerate(snap["children"])}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_command_strings_reach_the_browser(lang):
    strings = command_strings(lang)
    for key in STRINGS:
        if key.startswith("wc_"):
            assert strings[key] and STRINGS[key]["zh"] and STRINGS[key]["en"]
    assert strings["cat_fire"] and strings["level_1"]
    for rule in viewmodel.ALERT_PANELS:
        assert f"wc_rule_{rule}" in strings


def test_alert_panels_cover_the_contract_rules():
    from datasources import contract

    rules = getattr(contract, "RULES", None)
    if rules is None:  # pragma: no cover - before the alerts vocabulary exists
        pytest.skip("contract.RULES not defined yet")
    assert set(viewmodel.ALERT_PANELS) == set(rules)


def test_overdue_buckets_by_the_maps_overdue_classes():
    kids = [{"code": f"c{i}", "overdue": v} for i, v in enumerate([0, 1, 9, 25, 40])]
    got = mapview.overdue_buckets({"code": "p", "children": kids, "figures": {}})
    assert "c0" not in got
    assert got["c1"] == 1 and got["c4"] == 3
    assert 1 <= got["c2"] <= got["c3"] <= 3
    leaf = {"code": "v", "children": [], "figures": {"events.overdue": 2}}
    assert mapview.overdue_buckets(leaf) == {"v": 2}
    assert mapview.overdue_buckets({**leaf, "figures": {"events.overdue": 0}}) == {}


def test_escalation_arcs_from_the_lower_centre_to_the_upper_one():
    g = geo()
    esc = [{"eid": "e1", "from": "101001001", "to": "101001", "ts": 9_000},
           {"eid": "e2", "from": "101001", "to": "101", "ts": 10_000},
           {"eid": "e3", "from": "102", "to": "100", "ts": 10_000},
           {"eid": "old", "from": "101001", "to": "101", "ts": 1}]
    arcs = mapview.escalation_arcs(g, "101", esc, now_ms=20_000, max_age_s=15)
    assert [a["eid"] for a in arcs] == ["e2", "e1"]  # in the district's subtree, recent
    assert arcs[0]["from"] == [35.12, 109.12] and arcs[0]["to"] == [35.1, 109.1]
    marks = mapview.marks(g, "100", {"code": "100", "children": [
        {"code": "101", "overdue": 3}, {"code": "102", "overdue": 0}]}, esc, 20_000)
    assert set(marks["points"]) == {"100", "101", "102"}
    assert marks["overdue"] == {"101": 3}
    assert mapview.marks(g, "101001001", None)["points"] == {"101001001": [35.13, 109.13]}


def parse(search: str, scope: str = "100"):
    return parse_query(search, topo(), scope)


def test_screen_and_sound_parameters():
    q = parse("?centre=101&screen=main&sound=1")
    assert isinstance(q, Query) and q.screen == "main" and q.sound
    assert search_for(q, "102") == "?centre=102&screen=main&sound=1"
    assert parse(search_for(q, "102")) == Query("102", screen="main", sound=True)
    assert parse("?centre=101").screen == ""
    bad = parse("?screen=<script>x</script>")
    assert isinstance(bad, BadQuery) and bad.key == "bad_screen"
    assert parse("?screen=" + "a" * 33).key == "bad_screen"
    assert parse("?sound=2").key == "bad_param"
