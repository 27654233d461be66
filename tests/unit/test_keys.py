"""Every Redis key is made by `Keys`: the exact strings (data compatibility), the hash tags
Redis Cluster needs, prefixes that keep deployments apart, and docs/operations.md §7."""

from __future__ import annotations

import inspect
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
from redis.crc import key_slot

from datasources.keys import AUTH_TAG, QUARANTINED, STREAM_KINDS, Keys, glob_escape

K = Keys("pingan")
OPS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"

# method, arguments, the key (the arguments are the placeholders docs/operations.md §7 uses)
SHARD_KEYS = [
    ("vc_peer", ("S", "P"), "pingan:{S}:vc:peer:P"),
    ("vc_presence", ("S", "C"), "pingan:{S}:vc:present:C"),
    ("vc_joined", ("S", "CID"), "pingan:{S}:vc:joined:CID"),
    ("vc_signal", ("S",), "pingan:{S}:vc:signal"),
    ("vc_rate", ("S", "P"), "pingan:{S}:vc:rate:P"),
    ("stream", ("S", "events"), "pingan:{S}:events"),
    ("stream", ("S", "patrols"), "pingan:{S}:patrols"),
    ("stream", ("S", "cameras"), "pingan:{S}:cameras"),
    ("stream", ("S", "petitions"), "pingan:{S}:petitions"),
    ("stream", ("S", "handin"), "pingan:{S}:handin"),
    ("stream", ("S", "vc"), "pingan:{S}:vc"),
    ("dead", ("S",), "pingan:{S}:dead"),
    ("handoff", ("S",), "pingan:{S}:handoff"),
    ("meta", ("S",), "pingan:{S}:meta"),
    ("day", ("S", "YYYYMMDD", "CODE"), "pingan:{S}:d:YYYYMMDD:CODE"),
    ("hour", ("S", "YYYYMMDDHH", "CODE"), "pingan:{S}:h:YYYYMMDDHH:CODE"),
    ("gauge", ("S", "CODE"), "pingan:{S}:g:CODE"),
    ("due", ("S", "CODE"), "pingan:{S}:due:CODE"),
    ("cases", ("S",), "pingan:{S}:cases"),
    ("opened", ("S",), "pingan:{S}:opened"),
    ("closed", ("S",), "pingan:{S}:closed"),
    ("incidents", ("S",), "pingan:{S}:incidents"),
    ("lease", ("S",), "pingan:{S}:lease"),
    ("legacy_orphans", ("S",), "pingan:{S}:orphans"),
    ("seen", ("S", "DAY"), "pingan:{S}:seen:DAY"),
    ("camera_state", ("S",), "pingan:{S}:cam"),
    ("camera_failures", ("S",), "pingan:{S}:camfail"),
    ("recent_cases", ("S",), "pingan:{S}:recent"),
    ("patrol_counts", ("S", "DAY"), "pingan:{S}:pg:DAY"),
    ("workers_seen", ("S", "DAY"), "pingan:{S}:wk:DAY"),
    ("vc_active", ("S",), "pingan:{S}:vc:active"),
    ("vc_starts", ("S", "USER"), "pingan:{S}:vc:starts:USER"),
    ("received", ("S",), "pingan:{S}:rcv"),
    # alerts (datasources/alerts.py)
    ("alerts", ("S",), "pingan:{S}:alerts"),
    ("alerts_active", ("S",), "pingan:{S}:alerts:active"),
    ("alerts_clearing", ("S",), "pingan:{S}:alerts:clearing"),
    ("alerts_cams", ("S",), "pingan:{S}:alerts:cams"),
    ("alert_log", ("S",), "pingan:{S}:alerts:log"),
    ("alerts_ticks", ("S",), "pingan:{S}:alerts:ticks"),
    ("console", ("S",), "pingan:{S}:console"),
    # cases (datasources/cases.py)
    ("case", ("S", "EID"), "pingan:{S}:case:EID"),
    ("case_info", ("S",), "pingan:{S}:caseinfo"),
    ("case_index", ("S", "KIND", "CODE"), "pingan:{S}:ci:KIND:CODE"),
    # producers (datasources/producers.py)
    ("producer_stats", ("S",), "pingan:{S}:producers"),
    # roll-ups above the shard tier (datasources/upper.py): an upper centre is its own shard
    ("up_day", ("S", "DAY"), "pingan:{S}:u:d:DAY"),
    ("up_hour", ("S", "HOUR"), "pingan:{S}:u:h:HOUR"),
    ("up_gauge", ("S",), "pingan:{S}:u:g"),
    ("up_meta", ("S",), "pingan:{S}:u:meta"),
]
AUTH_KEYS = [
    ("session_ended", ("SID",), "pingan:{auth}:ended:SID"),
    ("login_attempts", ("alice", "10.0.0.1"), "pingan:{auth}:login:alice:10.0.0.1"),
    ("stream_slots", ("USER",), "pingan:{auth}:streams:USER"),
    ("vc_stream_slots", ("USER",), "pingan:{auth}:vcstreams:USER"),
    ("wall_directive", ("GROUP",), "pingan:{auth}:wall:GROUP"),
    ("producer_rate", ("NAME", "W"), "pingan:{auth}:gw:rate:NAME:W"),
    ("producer_used", ("NAME", "MINUTE"), "pingan:{auth}:gw:used:NAME:MINUTE"),
    ("access_log", (), "pingan:{auth}:access"),
    ("access_viewed", ("SID",), "pingan:{auth}:viewed:SID"),
]
OTHER = [
    ("processes", (), "pingan:aggregators"),
    ("demo_run", (), "pingan:demo"),
    ("registry_version", (), "pingan:registry:version"),
    ("quarantined", ("pingan:{S}:cases", 1700000000000),
     "pingan:{S}:cases:quarantined:1700000000000"),
    ("login_attempts_head", ("Alice",), "pingan:{auth}:login:alice:"),
    ("shard_head", ("S",), "pingan:{S}:"),
    ("shard_pattern", ("S",), "pingan:{S}:*"),
    ("pattern", (), "pingan:*"),
]
ALL = SHARD_KEYS + AUTH_KEYS + OTHER
NOT_KEYS = {"shard_of", "source_meta"}  # reads a key / picks one of the others


def _section7() -> str:
    text = OPS.read_text(encoding="utf-8")
    return text[text.index("## 7."):text.index("## 8.")]


@pytest.mark.parametrize(("method", "args", "key"), ALL, ids=[f"{m}{a}" for m, a, _ in ALL])
def test_keys001_every_method_gives_the_documented_string(method, args, key):
    assert getattr(K, method)(*args) == key


def test_keys002_every_public_method_is_in_the_table():
    public = {n for n, _ in inspect.getmembers(Keys, inspect.isfunction) if not n.startswith("_")}
    assert public - NOT_KEYS == {m for m, _, _ in ALL}, "add the new Keys method to the table"


@pytest.mark.parametrize(("method", "args", "key"), SHARD_KEYS,
                         ids=[f"{m}{a}" for m, a, _ in SHARD_KEYS])
def test_keys003_shard_keys_carry_exactly_the_shard_tag(method, args, key):
    shard = "610202"
    k = getattr(K, method)(shard, *args[1:])
    assert k.count("{") == 1 and k.count("}") == 1
    assert k.startswith("pingan:{610202}:")


def test_keys004_one_shard_is_one_cluster_slot():
    shard = "610203"
    slots = {key_slot(getattr(K, m)(shard, *a[1:]).encode()) for m, a, _ in SHARD_KEYS}
    assert slots == {key_slot(b"{610203}")}
    assert key_slot(K.quarantined(K.cases(shard), 1).encode()) in slots


def test_keys005_the_web_keys_share_the_auth_slot():
    slots = {key_slot(getattr(K, m)(*a).encode()) for m, a, _ in AUTH_KEYS}
    assert slots == {key_slot(b"{" + AUTH_TAG.encode() + b"}")}


def test_keys006_shards_differ_in_their_tag():
    assert key_slot(K.meta("610202").encode()) != key_slot(K.meta("610203").encode())
    assert K.day("610202", "20261130", "610202") != K.day("610203", "20261130", "610202")


@pytest.mark.parametrize(("method", "args", "key"), ALL, ids=[f"{m}{a}" for m, a, _ in ALL])
def test_keys007_prefixes_isolate(method, args, key):
    if method == "quarantined":  # keeps the key it is given
        args = (Keys("t-other").cases("S"), 1)
    other = getattr(Keys("t-other"), method)(*args)
    assert other.startswith("t-other:") and other != key
    assert not fnmatchcase(other, K.pattern())
    assert not fnmatchcase(key, Keys("t-other").pattern())


def test_keys008_a_prefix_does_not_match_a_longer_one():
    assert not fnmatchcase(Keys("pingan2").meta("S"), K.pattern())
    assert fnmatchcase(K.meta("S"), K.pattern())


def test_keys009_the_shard_pattern_matches_that_shard_only():
    pattern = K.shard_pattern("6102")
    assert fnmatchcase(K.meta("6102"), pattern)
    assert not fnmatchcase(K.meta("610202"), pattern)  # a shard code that starts the same
    assert not fnmatchcase(K.session_ended("x"), pattern)


@pytest.mark.parametrize(("method", "args", "key"), SHARD_KEYS,
                         ids=[f"{m}{a}" for m, a, _ in SHARD_KEYS])
def test_keys010_shard_of_reads_the_tag_back(method, args, key):
    assert K.shard_of(key) == "S"
    assert K.shard_of(getattr(K, method)("610202", *args[1:])) == "610202"


@pytest.mark.parametrize("key", [
    "pingan:aggregators", "pingan:{auth}:ended:x", "other:{S}:meta", "pingan:S:meta",
    "pingan:{S}", "pinganx:{S}:meta",
])
def test_keys011_shard_of_refuses_what_is_not_a_shard_key(key):
    assert K.shard_of(key) is None


def test_keys012_a_quarantined_key_stays_in_its_shard_and_is_recognised():
    aside = K.quarantined(K.due("S", "610202"), 42)
    assert K.shard_of(aside) == "S"
    assert f":{QUARANTINED}:" in aside.removeprefix(K.shard_head("S"))


def test_keys013_login_keys_ignore_the_case_of_the_name():
    assert K.login_attempts("Alice", "::1") == K.login_attempts("alice", "::1")
    assert K.login_attempts("Alice", "::1").startswith(K.login_attempts_head("ALICE"))
    assert not K.login_attempts("alicea", "::1").startswith(K.login_attempts_head("alice"))


def test_keys014_glob_escape_makes_special_characters_literal():
    assert glob_escape("a*b?c[d]e\\f") == "a\\*b\\?c\\[d\\]e\\\\f"
    assert Keys("we*ird").pattern() == "we\\*ird:*"
    assert glob_escape("pingan:{S}:") == "pingan:{S}:"


def test_keys015_stream_kinds_are_the_contract_kinds():
    assert [K.stream("S", k).rsplit(":", 1)[1] for k in STREAM_KINDS] == list(STREAM_KINDS)


@pytest.mark.parametrize(("method", "args", "key"), SHARD_KEYS,
                         ids=[f"{m}{a}" for m, a, _ in SHARD_KEYS])
def test_keys016_operations_section7_lists_every_shard_key(method, args, key):
    family = key.removeprefix("pingan:{S}:")
    assert f"`{family}`" in _section7(), f"docs/operations.md §7 does not list `{family}`"


@pytest.mark.parametrize("key", [k for _m, _a, k in AUTH_KEYS if ":login:" not in k]
                         + ["pingan:{auth}:login:NAME:ADDRESS", "pingan:aggregators", "pingan:demo",
                            "pingan:registry:version"])
def test_keys017_operations_section7_lists_the_other_keys(key):
    assert f"`{key}`" in _section7(), f"docs/operations.md §7 does not list `{key}`"


def test_keys018_keys_are_values():
    assert Keys("p") == Keys("p") and hash(Keys("p")) == hash(Keys("p"))
    with pytest.raises(AttributeError):
        Keys("p").prefix = "q"  # type: ignore[misc]
    assert re.fullmatch(r"pingan:\{S\}:d:20261130:610202", K.day("S", "20261130", "610202"))


def test_keys019_source_meta_names_a_shard_or_a_rollup():
    k = Keys()
    assert k.source_meta("610202") == k.meta("610202")
    assert k.source_meta("^610200") == k.up_meta("610200") == "pingan:{610200}:u:meta"
