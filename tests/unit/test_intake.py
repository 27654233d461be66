"""datasources/intake.py without Redis: JSON entries → contract fields (`to_fields`) and the
gateway's per-entry decision (`Intake.check`): kind, scope, `src`, the contract's reasons, the
time margins, hostile shapes. On the small topology (city C; shards D1, D2)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis

from datasources.contract import MAX_FIELDS, Clock, InvalidEntry, validate
from datasources.intake import EDGE_MS, Intake, to_fields
from datasources.producers import Producer
from tests.unit.small_registry import small_topology

TZ = "Asia/Shanghai"
NOW = int(datetime(2026, 11, 20, 10, 30, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)
ALL = frozenset({"events", "patrols", "cameras", "petitions"})
T1 = Producer("hotline", ALL, "T1", 100)      # scope: town T1 (villages V1, V2) in shard D1
CITY = Producer("city", ALL, "C", 100)


@pytest.fixture
def intake(settings) -> Intake:
    # a client object that is never used: check() touches no Redis
    return Intake(redis.Redis(), small_topology(), settings.pipeline)


def clock(intake: Intake) -> Clock:
    return intake.clock(NOW)


def event(**over) -> dict:
    e = {"v": 1, "ts": NOW - 60_000, "src": "ignored", "eid": "E-1", "status": "reported",
         "centre": "V1", "category": "dispute", "channel": "hotline_12345",
         "urgency": "normal", "due": NOW + 86_400_000}
    e.update(over)
    return {k: v for k, v in e.items() if v is not None}


def refused(intake: Intake, entry: object, kind: str = "events", who: Producer = T1) -> str:
    with pytest.raises(InvalidEntry) as exc:
        intake.check(who, kind, entry, clock(intake))
    return str(exc.value)


# -- to_fields ----------------------------------------------------------------------------------

def test_to_fields_strings_and_integers():
    assert to_fields({"v": 1, "ts": 1_795_000_000_000, "eid": "E", "n": -3}) == {
        "v": "1", "ts": "1795000000000", "eid": "E", "n": "-3"}


@pytest.mark.parametrize("value, shown", [
    (True, "true"), (False, "false"), (None, "null"), (1.0, "a fraction"),
    (1e300, "a fraction"), ([1], "an array"), ({"a": 1}, "an object")])
def test_to_fields_refuses_other_json_types(value, shown):
    with pytest.raises(InvalidEntry, match=f"bad value type: 'x' is {shown}"):
        to_fields({"v": "1", "x": value})


@pytest.mark.parametrize("entry, shown", [
    ([], "an array"), ("text", "a string"), (5, "an integer"), (None, "null"), (True, "true")])
def test_to_fields_entry_must_be_an_object(entry, shown):
    with pytest.raises(InvalidEntry, match=f"entry must be a JSON object, not {shown}"):
        to_fields(entry)


def test_to_fields_too_many_fields_is_the_contracts_reason():
    with pytest.raises(InvalidEntry, match=f"too many fields: 5000 > {MAX_FIELDS}"):
        to_fields({f"f{i}": "x" for i in range(5000)})


def test_to_fields_names_a_hostile_field_name_cut():
    with pytest.raises(InvalidEntry) as exc:
        to_fields({"<script>" * 100: 1.5})
    assert len(str(exc.value)) < 160


# -- check --------------------------------------------------------------------------------------

def test_valid_entry_goes_to_its_shard_with_src_overwritten(intake):
    shard, fields = intake.check(T1, "events", event(), clock(intake))
    assert shard == "D1"
    assert fields["src"] == "hotline" and fields["v"] == "1" and fields["ts"] == str(NOW - 60_000)
    # the aggregator takes it as it is (same shard, same clock)
    validate("events", fields, shard, intake.topo, clock(intake), NOW)


def test_src_is_set_even_when_absent_or_hostile(intake):
    for src in (None, "", "x" * 500, "pingan-sim", "\x00"):
        _shard, fields = intake.check(T1, "events", event(src=src), clock(intake))
        assert fields["src"] == "hotline"


@pytest.mark.parametrize("kind, entry, shard", [
    ("patrols", {"v": "1", "ts": NOW, "pid": "P-1", "grid": "G1", "worker": "W-1"}, "D1"),
    ("cameras", {"v": "1", "ts": NOW, "cam": "K2", "state": "fault"}, "D2"),
    ("petitions", {"v": "1", "ts": NOW, "pid": "T-1", "centre": "V3", "channel": "visit",
                   "group": 0, "skip_level": 1}, "D2"),
])
def test_shard_of_each_kind(intake, kind, entry, shard):
    got, fields = intake.check(CITY, kind, entry, clock(intake))
    assert got == shard and fields["src"] == "city"


def test_kind_not_allowed_and_unknown_kind(intake):
    only_cams = Producer("cams", frozenset({"cameras"}), "C", 10)
    assert refused(intake, event(), "events", only_cams) == "kind not allowed: events"
    assert refused(intake, event(), "handin", CITY) == "unknown kind: handin"
    assert refused(intake, event(), "vc", CITY) == "unknown kind: vc"


def test_out_of_scope_per_kind(intake):
    assert refused(intake, event(centre="V3")) == "out of scope: centre V3 is not under T1"
    assert refused(intake, event(centre="D1")) == "out of scope: centre D1 is not under T1"
    assert refused(intake, {"v": "1", "ts": NOW, "pid": "P", "grid": "G3", "worker": "W"},
                   "patrols") == "out of scope: centre V3 is not under T1"
    assert refused(intake, {"v": "1", "ts": NOW, "cam": "K2", "state": "online"},
                   "cameras") == "out of scope: centre V3 is not under T1"


def test_a_producer_whose_scope_left_the_registry_writes_nothing(intake):
    gone = Producer("gone", ALL, "T9", 10)
    assert refused(intake, event(), "events", gone) == "out of scope: centre V1 is not under T9"


def test_the_contracts_reasons(intake):
    assert refused(intake, event(centre="NOPE")) == "unknown centre: NOPE"
    assert refused(intake, event(centre=None)) == "missing field: centre"
    assert refused(intake, event(category="arson")) == "bad category: 'arson'"
    assert refused(intake, event(v=2)) == "unsupported version v='2'"
    assert refused(intake, event(ts=-5)) == "not an integer: ts"
    assert refused(intake, event(ts="1e12")) == "not an integer: ts"
    assert refused(intake, event(grid="G3")) == "grid G3 is not under centre V1"
    assert refused(intake, event(status="escalated", to="V2")) == "bad to: V2 is not above V1"
    assert refused(intake, {"v": "1", "ts": NOW, "pid": "P", "grid": "G9", "worker": "W"},
                   "patrols") == "unknown grid: G9"
    assert refused(intake, {"v": "1", "ts": NOW, "cam": "K9", "state": "online"},
                   "cameras") == "unknown camera: K9"
    assert refused(intake, event(summary="x" * 201)) == "value too long: summary (201 > 200 characters)"


@pytest.mark.parametrize("hostile, reason", [
    ("E\x00", "control characters"), ("E\n1", "control characters"),
    ("E\u200b", "control characters"), ("E\u3000", "control characters"),
    ("\ud800", "control characters"), ("x" * 65, "value too long: eid (65 > 64")])
def test_hostile_ids(intake, hostile, reason):
    assert refused(intake, event(eid=hostile)).startswith(reason)


def test_printable_injection_text_is_just_an_id(intake):
    for eid in ("' OR 1=1 --", "<script>alert(1)</script>", "{610202}:meta", "*"):
        _shard, fields = intake.check(T1, "events", event(eid=eid), clock(intake))
        assert fields["eid"] == eid


def test_hostile_field_names(intake):
    assert refused(intake, event(**{"a\x00b": "1"})).startswith("control characters in field")
    assert refused(intake, event(**{"x": "y" * 300})) == "value too long: x (300 > 256 characters)"


def test_time_margins(intake):
    c = clock(intake)
    late, skew = c.lateness_ms, c.skew_ms
    intake.check(T1, "events", event(ts=NOW - late + EDGE_MS + 1), c)
    intake.check(T1, "events", event(ts=NOW + skew - EDGE_MS), c)
    assert refused(intake, event(ts=NOW - late + EDGE_MS - 1)).startswith(
        f"too late: ts {NOW - late + EDGE_MS - 1} is within 30 s of the limit")
    assert refused(intake, event(ts=NOW + skew - EDGE_MS + 1)).startswith("ts in the future")
    assert refused(intake, event(ts=NOW - late - 1)).startswith("too late: ts")
    assert refused(intake, event(ts=NOW + skew + 1000)).startswith("ts in the future: ")


def test_lookups_follow_a_topology_refreshed_in_place(intake):
    before = intake._lookup("D1")
    assert intake._lookup("D1") is before
    fresh = small_topology()
    object.__setattr__(intake.topo, "__dict__", dict(fresh.__dict__))
    assert intake._lookup("D1") is not before
