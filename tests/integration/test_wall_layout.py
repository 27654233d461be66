"""The wall's layout is a pure function of the view model; its data-* contract with wall.js."""

from __future__ import annotations

import time

from datasources.readmodel import ReadModel
from layouts import viewmodel
from layouts.wall import wall_screen
from tests.components import walk


def attrs(component) -> dict:
    return component.to_plotly_json()["props"]


def build_vm(r, topo, settings, code):
    snap = ReadModel(r, topo, settings.read_model).snapshot(code)
    return viewmodel.build(snap, topo, int(time.time() * 1000))


def test_layout001_every_headline_once_with_its_plain_value(r, topo, settings):
    vm = build_vm(r, topo, settings, topo.roots[0])
    for lang in ("zh", "en"):
        seen = {}
        for c in walk(wall_screen(vm, lang)):
            p = attrs(c)
            if "data-figure" in p:
                assert p["data-figure"] not in seen, p["data-figure"]
                seen[p["data-figure"]] = p["data-value"]
        assert set(seen) == set(viewmodel.HEADLINES)
        for path, value in seen.items():
            raw = vm["figures"][path]
            assert value == ("" if raw is None else str(raw))


def test_layout002_every_child_has_a_row_and_a_call_button(r, topo, settings):
    district = "610204"
    vm = build_vm(r, topo, settings, district)
    rows, calls = set(), set()
    for c in walk(wall_screen(vm, "zh")):
        p = attrs(c)
        if "data-rank-row" in p:
            rows.add(p["data-rank-row"])
        if isinstance(p.get("id"), dict) and p["id"].get("type") == "vc-call":
            calls.add(p["id"]["code"])
    assert rows == set(topo.children[district]) == calls


def test_layout003_a_village_without_children_renders(r, topo, settings):
    village = next(c for c, i in topo.centres.items() if i.level == 4)
    screen = wall_screen(build_vm(r, topo, settings, village), "en")
    assert not [c for c in walk(screen) if "data-rank-row" in attrs(c)]


def test_layout004_names_stay_text(r, topo, settings):
    vm = build_vm(r, topo, settings, topo.roots[0])
    hostile = "<script>alert(1)</script>"
    vm["name"] = hostile
    vm["children"][0]["name"] = hostile
    texts = [c.children for c in walk(wall_screen(vm, "zh")) if isinstance(getattr(c, "children", None), str)]
    assert any(hostile in t for t in texts)
    assert not any(type(c).__name__ in ("Script", "Iframe") for c in walk(wall_screen(vm, "zh")))
