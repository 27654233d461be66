"""Producers' pure parts: names, tokens, reason classes and the Redis ACL rule (issue 12)."""

from __future__ import annotations

import pytest

from datasources import producers as P
from datasources.keys import Keys
from tests.unit.small_registry import small_topology


@pytest.mark.parametrize("name", ["a", "x12345", "xueliang.cams", "grid_app-2", "9" * 48])
def test_good_names(name):
    assert P.check_name(name) == name


@pytest.mark.parametrize("name", [
    "", "A", "-lead", ".lead", "_lead", "a" * 49, "sp ace", "a|b", "a:b", "a*", "a{b}", "a\nb",
    "a\x00", "名字", "pingan-sim", "pingan-handoff", "(unregistered)", None, 12, ["a"],
    "a'; DROP TABLE producers; --",
])
def test_bad_names_are_refused(name):
    with pytest.raises(P.ProducerError):
        P.check_name(name)


def test_kinds():
    assert P.parse_kinds("events, cameras") == frozenset({"events", "cameras"})
    assert P.parse_kinds(["patrols"]) == frozenset({"patrols"})
    for bad in ("", "events,handin", "vc", "events,,x", "dead", ["meta"], "EVENTS"):
        with pytest.raises(P.ProducerError):
            P.parse_kinds(bad)


def test_tokens_are_prefixed_random_and_stored_hashed():
    a, b = P.new_token(), P.new_token()
    assert a != b and a.startswith(P.TOKEN_PREFIX) and P.is_token_shaped(a)
    assert len(P.hash_token(a)) == 64 and P.hash_token(a) != P.hash_token(b)
    assert P.hash_token(a) == P.hash_token(a) and a not in P.hash_token(a)


@pytest.mark.parametrize("token", [
    None, 12, b"pgp_abc", "", "pgp_", "abc" + "x" * 40, "Bearer pgp_" + "x" * 43,
    "pgp_" + "x" * 97, "pgp_" + "x" * 40 + "\n", "pgp_" + "x" * 40 + "\x00", "pgp_short",
    "pgp_' OR '1'='1' --------------", "pgp_" + "é" * 43, ["pgp_" + "x" * 43],
])
def test_lookup_refuses_what_cannot_be_a_token_before_any_sql(token):
    assert not P.is_token_shaped(token)
    assert P.lookup(None, token) is None  # no engine: nothing reaches SQL


def test_reason_class_is_bounded():
    assert P.reason_class("out of scope: centre X is not under Y") == "out of scope"
    assert P.reason_class("bad ts") == "bad ts"
    assert len(P.reason_class("x" * 500 + ": y")) == P.MAX_REASON_CLASS
    assert P.reason_class("") == "unknown" and P.reason_class(": y") == "unknown"


@pytest.mark.parametrize("value", ["2", "abc", "x" * 16, "v9'\"="])
def test_reason_class_never_carries_a_producers_value(value):
    """The reasons with no ':' before their value (docs/STREAMS.md §7) are masked: a hostile
    producer cannot mint one stats field per entry."""
    assert P.reason_class(f"unsupported version v={value!r}") == "unsupported version …"
    assert P.reason_class(f"grid G{value} is not under centre 6102") == \
        "grid … is not under centre …"


def test_acl_rule_only_xadd_to_its_shards_streams():
    topo, keys = small_topology(), Keys("pingan")
    town = P.Producer("xl", frozenset({"cameras", "events"}), "T1", 10)
    assert P.acl_rule(keys, topo, town) == [
        "resetkeys", "resetchannels", "-@all", "+xadd", "+ping",
        "~pingan:{D1}:events", "~pingan:{D1}:cameras"]
    city = P.Producer("c", frozenset({"petitions"}), "C", 10)
    assert P.acl_rule(keys, topo, city)[5:] == [
        "~pingan:{C}:petitions", "~pingan:{D1}:petitions", "~pingan:{D2}:petitions"]
    gone = P.Producer("g", frozenset({"events"}), "NOPE", 10)
    assert P.acl_rule(keys, topo, gone) == ["resetkeys", "resetchannels", "-@all", "+xadd", "+ping"]


def test_acl_rule_escapes_glob_characters_of_the_prefix():
    rule = P.acl_rule(Keys("p*[x]?"), small_topology(), P.Producer("a", frozenset({"events"}), "D2", 1))
    assert rule[-1] == r"~p\*\[x\]\?:{D2}:events"


def test_acl_setuser_command():
    p = P.Producer("xl", frozenset({"events"}), "D2", 10)
    cmd = P.acl_setuser(Keys("pingan"), small_topology(), p, "s3cret")
    assert cmd[:6] == ["ACL", "SETUSER", "pingan-producer-xl", "reset", "on", ">s3cret"]
    assert cmd[-1] == "~pingan:{D2}:events"
    assert ">" not in " ".join(P.acl_setuser(Keys("pingan"), small_topology(), p))


# ---- the console's 数据来源 panel (pure layout) ----------------------------------------------
NOW = 1_764_500_000_000


def _row(name: str, **kw) -> dict:
    base = {"name": name, "registered": True, "accepted": 0, "dead": {}, "dead_total": 0,
            "last_ts": None, "applied_at": None, "lag_ms": None, "silent": False, "active": True}
    return {**base, **kw}


def _walk(tree):
    from tests.components import walk

    return list(walk(tree if not isinstance(tree, list) else __import__("dash").html.Div(tree)))


def test_console_panel_marks_a_silent_producer():
    from layouts import console as layout
    from layouts.i18n import t

    rows = [_row("busy", accepted=1234, dead={"bad ts": 5, "<b>x</b>": 1}, dead_total=6,
                 last_ts=NOW - 5000, applied_at=NOW - 1000, lag_ms=4000),
            _row("quiet", silent=True),
            _row("pingan-sim", accepted=9, last_ts=NOW, registered=False),
            _row(P.UNREGISTERED, accepted=3, registered=False, active=False)]
    for lang in ("zh", "en"):
        tree = layout.producer_list(rows, lang, NOW, "Asia/Shanghai")
        found = {c.to_plotly_json()["props"].get("data-producer"): c for c in _walk(tree)
                 if "data-producer" in c.to_plotly_json()["props"]}
        assert list(found) == ["busy", "quiet", "pingan-sim", P.UNREGISTERED]
        quiet = found["quiet"].to_plotly_json()["props"]
        assert quiet["data-silent"] == "1" and "is-silent" in quiet["className"]
        texts = [c.children for c in _walk(found["quiet"]) if isinstance(c.children, str)]
        assert t("console_prod_silent", lang) in texts
        busy = found["busy"].to_plotly_json()["props"]
        assert busy["data-silent"] == "0" and "has-dead" in busy["className"]
        busy_texts = [c.children for c in _walk(found["busy"]) if isinstance(c.children, str)]
        assert "1,234" in busy_texts and "6" in busy_texts and "bad ts 5 · <b>x</b> 1" in busy_texts
        assert t("console_span_s", lang, s="4.0") in busy_texts
        assert layout.producer_count(rows, lang) == t("console_producers_count", lang, n=4, silent=1)
    assert t("console_prod_silent", "zh") == "静默" and t("console_prod_silent", "en") == "silent"


def test_console_panel_empty_and_hostile_rows():
    from layouts import console as layout

    assert "empty-note" in layout.producer_list([], "zh", NOW, "UTC")[0].className
    odd = {"name": "x", "dead": {"a": "many", "b": True, "c": 2}, "dead_total": 2, "lag_ms": 90 * 60_000}
    row = layout.producer_row(odd, "en", NOW, "Nowhere/Zone")
    assert row.to_plotly_json()["props"]["data-silent"] == "0"
    texts = [c.children for c in _walk(row) if isinstance(c.children, str)]
    assert "c 2" in texts and "1 h 30 min" in texts


def test_console_screen_has_the_producers_panel():
    from layouts import console as layout
    from layouts import console_ids as cid

    vm = {"code": "D1", "name": "District 1", "level": 2,
          "breadcrumb": [{"code": "C", "name": "City", "level": 1},
                         {"code": "D1", "name": "District 1", "level": 2}]}
    screen = layout.console_screen(vm, "zh", options=[], can_act=True)
    ids_ = {c.id for c in _walk(screen) if isinstance(getattr(c, "id", None), str)}
    assert {cid.PRODUCERS, cid.PRODUCER_COUNT, cid.PRODUCERS_TICK} <= ids_
    panel = layout.command_panel(vm, "zh")  # the tablet's panel: not there
    assert cid.PRODUCERS not in {getattr(c, "id", None) for c in _walk(panel)
                                 if isinstance(getattr(c, "id", None), str)}
