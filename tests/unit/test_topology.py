"""datasources/topology.py: the tree, shards, in-shard chains, shard heads, scope checks and
static subtree totals; on the small hand-built registry, on the demo registry loaded from
SQLite (no Redis), and on random trees (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasources.registry import make_engine
from datasources.topology import (
    build_topology,
    drill_target,
    in_subtree,
    load_topology,
    shard_of,
    shards_in_scope,
)
from tests.unit.small_registry import small_topology

TOPO = small_topology()


# -- the small registry -------------------------------------------------------------------------

def test_roots_shards_and_children():
    assert TOPO.roots == ("C",)
    assert TOPO.shards == ("C", "D1", "D2")
    assert TOPO.children == {"C": ("D1", "D2"), "D1": ("T1",), "D2": ("T2",),
                             "T1": ("V1", "V2"), "T2": ("V3",)}
    assert "V1" not in TOPO.children  # a leaf has no entry


@pytest.mark.parametrize("code, shard, chain", [
    ("C", "C", ("C",)),
    ("D1", "D1", ("D1",)),
    ("T1", "D1", ("T1", "D1")),
    ("V1", "D1", ("V1", "T1", "D1")),
    ("V3", "D2", ("V3", "T2", "D2")),
])
def test_shard_and_in_shard_chain(code, shard, chain):
    info = TOPO.centres[code]
    assert info.shard == shard and info.chain == chain


def test_ancestors_run_from_the_root_down():
    assert TOPO.ancestors("V1") == ["C", "D1", "T1", "V1"]
    assert TOPO.ancestors("C") == ["C"]


@pytest.mark.parametrize("code, scope, within", [
    ("V1", "C", True), ("V1", "D1", True), ("V1", "T1", True), ("V1", "V1", True),
    ("V1", "D2", False), ("V1", "V2", False), ("D1", "V1", False), ("C", "D1", False),
])
def test_is_within(code, scope, within):
    assert TOPO.is_within(code, scope) is within


@pytest.mark.parametrize("code, scope, expected", [
    ("V1", "D1", True), ("D1", "D1", True), ("V3", "D1", False),
    ("nope", "C", False), ("V1", "nope", False), (None, "C", False), ("V1", None, False),
    (["V1"], "C", False), (1, "C", False),
])
def test_in_subtree_accepts_anything_a_client_sends(code, scope, expected):
    assert in_subtree(TOPO, code, scope) is expected


@pytest.mark.parametrize("code, allowed", [
    ("D1", True), ("V1", True), ("C", False), ("nope", False), ({"code": "D1"}, False),
])
def test_drill_targets_are_strictly_below(code, allowed):
    assert drill_target(TOPO, "C", code) is allowed
    assert drill_target(TOPO, "D1", "D2") is False


def test_shard_heads_make_up_the_subtree():
    assert TOPO.shard_heads("C") == ["C", "D1", "D2"]
    assert TOPO.shard_heads("D1") == ["D1"]
    assert TOPO.shard_heads("V1") == ["V1"]
    assert shards_in_scope(TOPO, "C") == ["C", "D1", "D2"]
    assert shards_in_scope(TOPO, "T2") == ["D2"]


def test_shard_of_climbs_to_the_level_2_ancestor():
    raw = {c[0]: (c[2], c[3]) for c in [
        ("C", "", 1, None), ("D", "", 2, "C"), ("T", "", 3, "D"), ("V", "", 4, "T")]}
    assert [shard_of(c, raw) for c in "CDTV"] == ["C", "D", "D", "D"]


def test_order_and_index_are_the_sorted_codes():
    assert TOPO.order == tuple(sorted(TOPO.centres))
    assert all(TOPO.order[i] == code for code, i in TOPO.index.items())


def test_static_totals_add_up_over_the_subtree():
    assert TOPO.totals["V1"]["grids"] == 2 and TOPO.totals["V1"]["grids_urban"] == 1
    assert TOPO.totals["V1"]["grids_staffed"] == 1 and TOPO.totals["V1"]["workers"] == 2
    assert TOPO.totals["T1"]["cameras"] == 2  # K1 in V1 and T1's own K3
    assert TOPO.totals["T1"]["cameras_smart"] == 1 and TOPO.totals["T1"]["cameras_dome"] == 1
    assert TOPO.totals["C"]["grids"] == 3 and TOPO.totals["C"]["cameras"] == 3
    assert TOPO.totals["C"]["workers"] == 3
    assert "V2" not in TOPO.totals  # nothing below it


def test_grid_and_camera_lookups():
    assert TOPO.grid_centre == {"G1": "V1", "G2": "V1", "G3": "V3"}
    assert TOPO.camera["K3"] == ("T1", "smart")


def test_centre_details_are_kept():
    d2 = TOPO.centres["D2"]
    assert (d2.name, d2.level, d2.parent, d2.conference) == ("District 2", 2, "C", "sip:d2@vc.example")
    assert (TOPO.centres["V1"].lon, TOPO.centres["V1"].lat) == (109.111, 35.111)


# -- the demo registry from SQLite --------------------------------------------------------------

@pytest.fixture(scope="module")
def demo(demo_db):
    engine = make_engine(demo_db)
    try:
        return load_topology(engine)
    finally:
        engine.dispose()


def test_demo_region_sizes(demo):
    root = demo.roots[0]
    assert len(demo.roots) == 1 and len(demo.centres) == 475
    assert demo.totals[root]["grids"] == 2831 and demo.totals[root]["cameras"] == 4520
    assert len(demo.shards) == 1 + len(demo.children[root])


def test_demo_tree_is_consistent(demo):
    for code, info in demo.centres.items():
        assert info.chain[0] == code and info.chain[-1] == info.shard
        assert all(demo.centres[c].shard == info.shard for c in info.chain)
        assert demo.ancestors(code)[-len(info.chain):] == list(reversed(info.chain))
        if info.parent is not None:
            assert demo.centres[info.parent].level == info.level - 1
            assert code in demo.children[info.parent]
    for kids in demo.children.values():
        assert list(kids) == sorted(kids)


def test_demo_grids_sit_in_villages_and_totals_sum_over_children(demo):
    assert {demo.centres[c].level for c in demo.grid_centre.values()} == {4}
    for code, kids in demo.children.items():
        own = sum(1 for c in demo.grid_centre.values() if c == code)
        assert demo.totals[code]["grids"] == own + sum(
            demo.totals.get(k, {}).get("grids", 0) for k in kids)


# -- random trees ---------------------------------------------------------------------------------

@st.composite
def trees(draw):
    """A random 4-level registry: rows as build_topology takes them."""
    rows = [("R", "root", 1, None, None, None, None)]
    level_codes = {1: ["R"]}
    for level in (2, 3, 4):
        level_codes[level] = []
        for i in range(draw(st.integers(0, 5))):
            parent = draw(st.sampled_from(level_codes[level - 1])) if level_codes[level - 1] else None
            if parent is None:
                break
            code = f"L{level}-{i}"
            level_codes[level].append(code)
            rows.append((code, code, level, parent, None, None, None))
    codes = [r[0] for r in rows]
    grids = [(f"G{i}", draw(st.sampled_from(codes)), draw(st.sampled_from(["urban", "rural"])),
              draw(st.integers(0, 3))) for i in range(draw(st.integers(0, 8)))]
    cams = [(f"K{i}", draw(st.sampled_from(codes)), "dome") for i in range(draw(st.integers(0, 8)))]
    return rows, grids, cams


@settings(max_examples=150, deadline=None)
@given(trees())
def test_property_shards_chains_and_heads(tree):
    rows, grids, cams = tree
    topo = build_topology(*tree)
    for code, info in topo.centres.items():
        # the shard is the level-2 ancestor (the root is its own)
        expected = "R" if info.level == 1 else topo.ancestors(code)[1]
        assert info.shard == expected
        assert info.chain[0] == code and info.chain[-1] == info.shard
        # the heads partition the subtree: a head at level ≥ 2 rolls up its whole subtree,
        # the root only its own shard (itself), so each centre below is in exactly one
        heads = topo.shard_heads(code)
        for other in topo.centres:
            covering = [h for h in heads if (other == h if topo.centres[h].level == 1
                                             else topo.is_within(other, h))]
            assert len(covering) == (1 if topo.is_within(other, code) else 0)
    assert topo.totals.get("R", {}).get("grids", 0) == len(grids)
    assert topo.totals.get("R", {}).get("cameras", 0) == len(cams)
    assert topo.totals.get("R", {}).get("workers", 0) == sum(g[3] for g in grids)
