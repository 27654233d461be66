"""Metric definitions of datasources/readmodel.py (docs/metrics.md), pure parts only: the
ping'an index and its components, the shape of a centre's figures from its counters (ratios,
clamping, registry totals), and the meta hash read as untrusted input. 办结率
(resolution_rate) is left to its own tests.

On the small hand-built topology of tests/unit/small_registry.py; `ReadModel` is built with
no Redis client (the shaping never reads)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasources.config import ReadModelConfig
from datasources.readmodel import META_INT_MAX, ReadModel, parse_meta, pingan_index
from tests.unit.small_registry import small_topology

TOPO = small_topology()
WEIGHTS = {"resolution": 0.30, "overdue": 0.20, "patrol": 0.20, "cameras": 0.15,
           "petitions": 0.15}
COMPONENTS = tuple(WEIGHTS)


def figures(*, rate=None, open_=0, overdue=0, coverage=None, online_rate=None, petitions=0,
            grids=0) -> dict:
    return {"events": {"resolution_rate": rate, "open": open_, "overdue": overdue},
            "grids": {"coverage": coverage, "total": grids},
            "cameras": {"online_rate": online_rate},
            "petitions": {"today": petitions}}


def only(component: str) -> dict[str, float]:
    return {component: 1.0}


def shape(code: str, day: dict | None = None, gauge: dict | None = None, overdue: int = 0):
    rm = ReadModel(None, TOPO, ReadModelConfig(key_prefix="t", tz="Asia/Shanghai",
                                               index_weights=WEIGHTS))
    return rm._shape(code, Counter(day or {}), Counter(gauge or {}), overdue)


# -- the index ----------------------------------------------------------------------------------

def test_a_perfect_centre_scores_100():
    fig = figures(rate=1.0, open_=5, coverage=1.0, online_rate=1.0, grids=40)
    assert pingan_index(fig, WEIGHTS) == 100.0


def test_an_empty_centre_scores_what_the_definitions_say():
    # no case → resolution 1; nothing open → overdue 1; no grids/cameras → 0; no petitions → 1
    assert pingan_index(figures(), WEIGHTS) == round(100 * (0.30 + 0.20 + 0.15), 1)


@pytest.mark.parametrize("fig, score", [
    (figures(open_=10, overdue=5), 0.5),
    (figures(open_=10, overdue=0), 1.0),
    (figures(open_=10, overdue=10), 0.0),
    (figures(open_=0, overdue=0), 1.0),
])
def test_overdue_component(fig, score):
    assert pingan_index(fig, only("overdue")) == round(100 * score, 1)


@pytest.mark.parametrize("coverage, score", [(None, 0.0), (0.0, 0.0), (0.8, 0.8), (1.0, 1.0)])
def test_patrol_component(coverage, score):
    assert pingan_index(figures(coverage=coverage), only("patrol")) == round(100 * score, 1)


@pytest.mark.parametrize("rate, score", [(None, 0.0), (0.0, 0.0), (0.9, 0.9), (1.0, 1.0)])
def test_cameras_component(rate, score):
    assert pingan_index(figures(online_rate=rate), only("cameras")) == round(100 * score, 1)


@pytest.mark.parametrize("petitions, grids, score", [
    (0, 40, 1.0),
    (1, 40, 0.5),    # one a day per 20 grids is the bottom: 2 for 40 grids
    (2, 40, 0.0),
    (9, 40, 0.0),    # clamped at 0
    (1, 0, 0.0),     # fewer than 20 grids: one petition is the bottom
    (1, 10, 0.0),
    (1, 100, 0.8),
])
def test_petitions_component(petitions, grids, score):
    fig = figures(petitions=petitions, grids=grids)
    assert pingan_index(fig, only("petitions")) == round(100 * score, 1)


def test_weights_are_normalised_by_their_sum():
    fig = figures(open_=10, overdue=5, coverage=1.0)
    assert pingan_index(fig, {"overdue": 2.0, "patrol": 2.0}) == 75.0
    assert pingan_index(fig, {"overdue": 0.5, "patrol": 0.5}) == 75.0


def test_a_component_without_weight_does_not_count():
    assert pingan_index(figures(coverage=0.0, online_rate=0.0), {"overdue": 1.0}) == 100.0


def test_all_zero_weights_give_zero_not_a_division_error():
    assert pingan_index(figures(), {k: 0.0 for k in COMPONENTS}) == 0.0


def test_the_index_is_rounded_to_one_decimal():
    value = pingan_index(figures(coverage=0.33333, online_rate=0.6667), WEIGHTS)
    assert value == round(value, 1)


rates = st.one_of(st.none(), st.floats(0, 3, allow_nan=False))
counts = st.integers(0, 10_000)


@settings(max_examples=300, deadline=None)
@given(rate=rates, open_=counts, overdue=counts, coverage=rates, online_rate=rates,
       petitions=counts, grids=counts,
       weights=st.dictionaries(st.sampled_from(COMPONENTS), st.floats(0, 10), min_size=1))
def test_property_the_index_stays_within_0_and_100(rate, open_, overdue, coverage, online_rate,
                                                   petitions, grids, weights):
    """Whatever the counters say: a gauge can outrun the registry (cameras removed by an
    import keep their state in Redis) or another counter (overdue above open)."""
    fig = figures(rate=rate, open_=open_, overdue=overdue, coverage=coverage,
                  online_rate=online_rate, petitions=petitions, grids=grids)
    assert 0.0 <= pingan_index(fig, weights) <= 100.0


@settings(max_examples=200, deadline=None)
@given(better=st.sampled_from(["coverage", "online_rate", "fewer_overdue", "fewer_petitions"]),
       base=st.floats(0, 0.9), step=st.floats(0.01, 0.1))
def test_property_a_better_component_never_lowers_the_index(better, base, step):
    kw = {"coverage": base, "online_rate": base, "open_": 100, "overdue": int(100 * (1 - base)),
          "petitions": int(10 * (1 - base)), "grids": 200}
    worse = pingan_index(figures(**kw), WEIGHTS)
    if better == "coverage":
        kw["coverage"] = base + step
    elif better == "online_rate":
        kw["online_rate"] = base + step
    elif better == "fewer_overdue":
        kw["overdue"] = max(0, kw["overdue"] - 1)
    else:
        kw["petitions"] = max(0, kw["petitions"] - 1)
    assert pingan_index(figures(**kw), WEIGHTS) >= worse


# -- the figures of a centre ------------------------------------------------------------------

def test_grid_figures_come_from_the_registry_and_todays_counters():
    g = shape("V1", {"grids_patrolled": 1, "grids_patrolled_full": 1, "patrols": 3,
                     "workers_on_duty": 2})["grids"]
    assert (g["total"], g["urban"], g["rural"], g["staffed"], g["workers"]) == (2, 1, 1, 1, 2)
    assert (g["patrolled_today"], g["patrolled_full"], g["patrols"]) == (1, 1, 3)
    assert g["coverage"] == 0.5 and g["full_coverage"] == 0.5


def test_totals_add_up_over_the_subtree():
    g = shape("C")["grids"]
    assert (g["total"], g["workers"]) == (3, 3)
    assert shape("C")["cameras"]["total"] == 3 and shape("T1")["cameras"]["total"] == 2


def test_a_centre_without_grids_or_cameras_has_no_rates():
    fig = shape("V2", {"grids_patrolled": 0})
    assert fig["grids"]["total"] == 0 and fig["grids"]["coverage"] is None
    assert fig["grids"]["full_coverage"] is None
    assert fig["cameras"]["total"] == 0 and fig["cameras"]["online_rate"] is None


def test_ratios_are_rounded_to_four_places():
    g = shape("C", {"grids_patrolled": 1})["grids"]
    assert g["coverage"] == 0.3333


def test_camera_states_and_the_never_reported_rest():
    cams = shape("T1", gauge={"cam:online": 1, "cam:fault": 1, "cam:online:dome": 1,
                              "cam:fault:smart": 1})["cameras"]
    assert (cams["total"], cams["online"], cams["offline"], cams["fault"], cams["unknown"]) == (
        2, 1, 0, 1, 0)
    assert cams["online_rate"] == 0.5
    assert cams["by_kind"]["dome"] == {"total": 1, "online": 1, "offline": 0, "fault": 0,
                                       "online_rate": 1.0}
    assert cams["by_kind"]["smart"]["fault"] == 1 and cams["by_kind"]["smart"]["online_rate"] == 0.0
    assert cams["by_kind"]["face"]["online_rate"] is None  # no such camera under T1


def test_unknown_cameras_never_go_below_zero():
    """More states than cameras in the registry (cameras removed by an import)."""
    cams = shape("V1", gauge={"cam:online": 3, "cam:offline": 2})["cameras"]
    assert cams["unknown"] == 0


def test_satisfaction_is_the_share_of_satisfied_evaluations():
    ev = shape("V1", {"sat:1": 3, "sat:0": 1})["events"]
    assert ev["satisfaction_rate"] == 0.75
    assert shape("V1")["events"]["satisfaction_rate"] is None


def test_case_counts_and_breakdowns():
    day = {"reported": 7, "dispatched": 6, "handling": 5, "resolved": 4, "evaluated": 3,
           "escalated": 2, "urgent": 1, "cat:fire": 4, "ch:video": 5, "closed:4": 3, "closed:3": 1}
    ev = shape("V1", day, {"open": 9}, overdue=2)["events"]
    assert (ev["reported"], ev["dispatched"], ev["handling"], ev["resolved"], ev["evaluated"],
            ev["escalated"], ev["urgent"]) == (7, 6, 5, 4, 3, 2, 1)
    assert ev["open"] == 9 and ev["overdue"] == 2
    assert ev["by_category"]["fire"] == 4 and sum(ev["by_category"].values()) == 4
    assert ev["by_channel"]["video"] == 5 and sum(ev["by_channel"].values()) == 5
    assert ev["closed_at_level"] == {"village": 3, "town": 1, "district": 0, "city": 0}


def test_petition_figures():
    pet = shape("V1", {"petitions": 4, "pet:visit": 3, "pet:online": 1, "pet_group": 2,
                       "pet_skip": 1})["petitions"]
    assert pet == {"today": 4, "by_channel": {"letter": 0, "visit": 3, "online": 1},
                   "group": 2, "skip_level": 1}


# -- the meta hash (untrusted) ------------------------------------------------------------------

def test_meta_integers_and_the_epoch_are_read():
    meta, bad = parse_meta({b"version": b"12", b"heartbeat": b"0", b"epoch": b"abc-1"})
    assert meta == {"version": 12, "heartbeat": 0, "epoch": "abc-1"} and bad == []


@pytest.mark.parametrize("value", [b"-1", b"1.5", b"", b"12a", b" 1", b"\xef\xbc\x91",
                                   str(META_INT_MAX + 1).encode(), b"1" * 17])
def test_meta_values_that_are_not_small_non_negative_integers_are_left_out(value):
    meta, bad = parse_meta({b"version": value, b"dead": b"3"})
    assert meta == {"dead": 3} and bad == ["version"]


def test_the_largest_exact_integer_is_kept():
    assert parse_meta({"version": str(META_INT_MAX)})[0] == {"version": META_INT_MAX}


@pytest.mark.parametrize("name", ["Version", "1version", "ver-sion", "v" * 33, "版本", "", "a b"])
def test_meta_field_names_outside_the_pattern_are_left_out(name):
    meta, bad = parse_meta({name.encode(): b"1", b"ok": b"2"})
    assert meta == {"ok": 2} and len(bad) == 1


def test_a_long_epoch_is_replaced_by_its_hash():
    meta, _bad = parse_meta({b"epoch": b"e" * 65})
    assert len(meta["epoch"]) == 64 and meta["epoch"] != "e" * 64
    assert parse_meta({b"epoch": b"e" * 64})[0]["epoch"] == "e" * 64


def test_at_most_32_meta_fields_are_read():
    meta, bad = parse_meta({f"f{i:02d}": "1" for i in range(40)})
    assert len(meta) == 32 and len(bad) == 8


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.one_of(st.text(max_size=40), st.binary(max_size=40)),
                       st.one_of(st.text(max_size=80), st.binary(max_size=80)), max_size=50))
def test_property_meta_parsing_never_raises_and_keeps_only_what_it_promises(raw):
    meta, bad = parse_meta(raw)
    assert len(meta) <= 32 and len(meta) + len(bad) == len(raw)
    for k, v in meta.items():
        if k == "epoch":
            assert isinstance(v, str) and len(v) <= 64
        else:
            assert isinstance(v, int) and 0 <= v <= META_INT_MAX
