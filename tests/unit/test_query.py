"""The screen's URL query (callbacks/router.py): `parse_query` against the viewer's scope,
`current_query` for the request's viewer, the tour (`next_stop`) and `search_for`, which
writes a query back. Hostile URLs become a `BadQuery` message, never an exception.

On the small hand-built topology of tests/unit/small_registry.py."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask, g
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import Unauthorized

from callbacks.router import (
    MAX_TOUR_S,
    BadQuery,
    Query,
    current_query,
    next_stop,
    parse_query,
    search_for,
)
from dashboard.access import Viewer
from layouts.map import INDICATORS
from tests.unit.small_registry import small_topology

TOPO = small_topology()


def q(search, scope: str = "C"):
    return parse_query(search, TOPO, scope)


# -- valid queries ----------------------------------------------------------------------------

@pytest.mark.parametrize("search", [None, "", "?", "?foo=bar&utm_source=x"])
def test_no_parameters_show_the_scope_with_the_defaults(search):
    assert q(search) == Query("C", "zh", None, None, "sse", "index")
    assert q(search, "D1") == Query("D1")


def test_a_centre_in_the_scope():
    assert q("?centre=V1") == Query("V1")
    assert q("centre=V1") == Query("V1")  # with or without the '?'
    assert q("?centre=V1", "T1").centre == "V1"
    assert q("?centre=D1", "D1").centre == "D1"  # the scope itself


def test_the_centre_is_trimmed_and_the_last_value_wins():
    assert q("?centre=%20V1%20").centre == "V1"
    assert q("?centre=V1&centre=V2").centre == "V2"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_languages(lang):
    assert q(f"?lang={lang}").lang == lang


@pytest.mark.parametrize("indicator", sorted(INDICATORS))
def test_every_map_indicator(indicator):
    assert q(f"?indicator={indicator}").indicator == indicator


def test_push_modes():
    assert q("?push=poll").push == "poll"
    assert q("?push=sse").push == "sse"


# -- bad queries: a message, in the language asked for when that is valid ----------------------

@pytest.mark.parametrize("search, expected", [
    ("?lang=fr", BadQuery("bad_param", "zh", {"name": "lang"})),
    ("?lang=fr&centre=nope", BadQuery("bad_param", "zh", {"name": "lang"})),  # lang first
    ("?lang=", BadQuery("bad_param", "zh", {"name": "lang"})),
    ("?centre=nope", BadQuery("unknown_centre", "zh", {"code": "nope"})),
    ("?centre=nope&lang=en", BadQuery("unknown_centre", "en", {"code": "nope"})),
    ("?centre=", BadQuery("unknown_centre", "zh", {"code": "—"})),
    ("?centre", BadQuery("unknown_centre", "zh", {"code": "—"})),
    ("?push=ws", BadQuery("bad_param", "zh", {"name": "push"})),
    ("?indicator=crime&lang=en", BadQuery("bad_param", "en", {"name": "indicator"})),
    ("?tour=abc", BadQuery("bad_param", "zh", {"name": "tour"})),
])
def test_bad_parameters(search, expected):
    assert q(search) == expected


@pytest.mark.parametrize("search", [
    "?centre=<script>alert(1)</script>", "?centre=%3Cimg%20src%3Dx%3E", "?centre=%E5%B9%B3%E5%AE%89",
    "?centre=V1%00", "?centre=../../etc/passwd", "?centre=V1'%20OR%20'1'='1", "?centre=%FF%FE",
])
def test_hostile_centre_codes_are_unknown_centres(search):
    out = q(search)
    assert isinstance(out, BadQuery) and out.key == "unknown_centre"


def test_a_huge_code_is_cut_in_the_message():
    out = q("?centre=" + "x" * 100_000)
    assert out.key == "unknown_centre" and out.fmt["code"] == "x" * 40


@pytest.mark.parametrize("search", [123, b"?centre=V1", ["?centre=V1"], {"centre": "V1"}])
def test_a_search_that_is_not_text_is_refused(search):
    assert q(search) == BadQuery("bad_param", "zh", {"name": "search"})


# -- scope escapes ----------------------------------------------------------------------------

@pytest.mark.parametrize("scope, centre", [
    ("D1", "D2"),   # a sibling district
    ("D1", "V3"),   # a village of another district
    ("D1", "C"),    # the parent
    ("T1", "D1"),
    ("V1", "V2"),
])
def test_a_centre_outside_the_scope_is_forbidden(scope, centre):
    assert q(f"?centre={centre}", scope) == BadQuery("forbidden", "zh", {"code": centre})


def test_an_unknown_scope_sees_nothing():
    assert q("?centre=C", "gone").key == "forbidden"
    assert q(None, "gone").key == "unknown_centre"


# -- the tour -----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, ok", [
    ("5", True), (str(MAX_TOUR_S), True), ("60", True),
    ("4", False), ("0", False), (str(MAX_TOUR_S + 1), False), ("-5", False), ("5.5", False),
    ("", False), ("1e3", False), ("99999999999999999999", False),
])
def test_tour_seconds(raw, ok):
    out = q(f"?tour={raw}")
    if ok:
        assert out.tour == int(raw) and out.tour_root == "C"
    else:
        assert out == BadQuery("bad_param", "zh", {"name": "tour"})


def test_the_tour_root_must_be_above_the_centre_and_in_the_scope():
    assert q("?centre=T1&tour=10&tour_root=D1").tour_root == "D1"
    assert q("?centre=T1&tour=10&tour_root=D2").tour_root == "T1"    # not above T1
    assert q("?centre=T1&tour=10&tour_root=C", "D1").tour_root == "T1"  # above the scope
    assert q("?centre=T1&tour=10&tour_root=nope").tour_root == "T1"
    assert q("?centre=T1&tour_root=D1").tour_root is None            # no tour, no root


def test_next_stop_visits_each_child_then_the_root():
    assert next_stop(TOPO, "C", "C") == "D1"
    assert next_stop(TOPO, "C", "D1") == "D2"
    assert next_stop(TOPO, "C", "D2") == "C"
    assert next_stop(TOPO, "C", "V1") == "D1"  # somewhere else: start again
    assert next_stop(TOPO, "V1", "V1") == "V1"  # no children: stay


# -- writing the query back -------------------------------------------------------------------

@pytest.mark.parametrize("search", [
    "", "?lang=en", "?push=poll&indicator=coverage", "?centre=T1&tour=10&tour_root=D1&lang=en",
])
def test_search_for_round_trips(search):
    query = q(search)
    for centre in ("C", "D1", "V1"):
        if query.tour_root and not TOPO.is_within(centre, query.tour_root):
            continue  # a tour stays under its root (test above)
        assert q(search_for(query, centre)) == replace(query, centre=centre)


def test_search_for_leaves_out_the_defaults():
    assert search_for(Query("C"), "V1") == "?centre=V1"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["centre", "lang", "tour", "tour_root", "push",
                                        "indicator", "x", ""]),
                       st.one_of(st.sampled_from(["C", "D1", "V1", "en", "zh", "10", "poll",
                                                  "coverage"]), st.text(max_size=50)),
                       max_size=7),
       st.sampled_from(["C", "D1", "T2", "V1"]))
def test_property_any_query_parses_to_a_query_in_scope_or_a_message(params, scope):
    from urllib.parse import urlencode

    out = q("?" + urlencode(params), scope)
    if isinstance(out, BadQuery):
        assert out.key in ("bad_param", "unknown_centre", "forbidden") and out.lang in ("zh", "en")
        return
    assert TOPO.is_within(out.centre, scope)
    assert out.lang in ("zh", "en") and out.push in ("sse", "poll") and out.indicator in INDICATORS
    if out.tour is None:
        assert out.tour_root is None
    else:
        assert 5 <= out.tour <= MAX_TOUR_S
        assert TOPO.is_within(out.centre, out.tour_root) and TOPO.is_within(out.tour_root, scope)


# -- the request's viewer -------------------------------------------------------------------------

def test_current_query_uses_the_viewers_scope():
    app = Flask(__name__)
    with app.test_request_context("/"):
        g.pingan_viewer = Viewer("wang", "leader", "D1")
        assert current_query("?centre=V1", TOPO).centre == "V1"
        assert current_query("", TOPO).centre == "D1"
        assert current_query("?centre=V3", TOPO).key == "forbidden"


def test_current_query_without_a_viewer_is_refused():
    app = Flask(__name__)
    with app.test_request_context("/"), pytest.raises(Unauthorized):
        current_query("?centre=V1", TOPO)
