"""Stream contract v1 (datasources/contract.py, docs/STREAMS.md §4–§7): every field rule and
rejection reason of `validate`, hostile inputs, the fast path's agreement with it, dead
letters; property tests (hypothesis) that nothing raises but `InvalidEntry`, that generated
valid entries always validate, and that validation is deterministic.

On the small hand-built topology of tests/unit/conftest.py (shards C, D1, D2)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasources.contract import (
    CAMERA_STATES,
    CATEGORIES,
    DEAD_FIELDS_MAX,
    DEAD_VALUE_MAX,
    EVENT_CHANNELS,
    FIELDS,
    MAX_FIELDS,
    MAX_ID,
    MAX_VALUE,
    MIN_TS,
    PETITION_CHANNELS,
    STATUSES,
    URGENCIES,
    Clock,
    InvalidEntry,
    dead_letter,
    decode_fields,
    encode_fields,
    entry_digest,
    shard_lookup,
    validate,
    validate_fast,
    validate_handoff,
)
from tests.unit.small_registry import small_topology

SMALL = small_topology()
TZ = ZoneInfo("Asia/Shanghai")
NOW = int(datetime(2026, 11, 20, 10, 30, tzinfo=TZ).timestamp() * 1000)
HOUR = 3_600_000
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def clock() -> Clock:
    return Clock(tz=TZ, now_ms=NOW)


def record(rec: tuple) -> dict:
    return dict(zip(FIELDS, rec, strict=True))


def event(**over) -> dict[str, str]:
    f = {"v": "1", "ts": str(NOW - 60_000), "src": "app", "eid": "E1", "status": "reported",
         "centre": "V1", "category": "fire", "channel": "video", "urgency": "urgent",
         "due": str(NOW + HOUR)}
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def patrol(**over) -> dict[str, str]:
    f = {"v": "1", "ts": str(NOW - 60_000), "src": "gridapp", "pid": "P1", "grid": "G1",
         "worker": "w1"}
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def camera(**over) -> dict[str, str]:
    f = {"v": "1", "ts": str(NOW - 60_000), "src": "vms", "cam": "K1", "state": "online"}
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def petition(**over) -> dict[str, str]:
    f = {"v": "1", "ts": str(NOW - 60_000), "src": "xf", "pid": "X1", "centre": "V1",
         "channel": "visit", "group": "1", "skip_level": "0"}
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def rejects(kind: str, f: dict, topo, reason: str, shard: str = "D1") -> None:
    with pytest.raises(InvalidEntry) as e:
        validate(kind, f, shard, topo, clock())
    assert str(e.value).startswith(reason), str(e.value)
    assert validate_fast(kind, f, shard_lookup(topo, shard), clock(), NOW) is None


# -- valid entries: the record ----------------------------------------------------------------

def test_a_reported_event_becomes_its_record(small_topo):
    rec = record(validate("events", event(), "D1", small_topo, clock()))
    assert rec["k"] == "e" and rec["id"] == "E1" and rec["centre"] == "V1"
    assert rec["ci"] == small_topo.index["V1"] and rec["lv"] == 4
    assert rec["q"] == "e|E1|reported|V1"
    assert (rec["channel"], rec["urgency"], rec["due"]) == ("video", "urgent", NOW + HOUR)
    assert (rec["day"], rec["hour"]) == ("20261120", "2026112010")
    assert len(rec) == len(FIELDS)


def test_an_evaluated_event_carries_its_satisfaction(small_topo):
    rec = record(validate("events", event(status="evaluated", satisfied="0"), "D1", small_topo,
                          clock()))
    assert rec["satisfied"] == 0 and rec["q"] == "e|E1|evaluated|V1"


def test_an_escalation_within_the_shard_names_the_target_index(small_topo):
    rec = record(validate("events", event(status="escalated", to="T1"), "D1", small_topo, clock()))
    assert rec["to"] == "T1" and rec["tci"] == small_topo.index["T1"]


def test_an_escalation_out_of_the_shard_has_no_target_index(small_topo):
    rec = record(validate("events", event(status="escalated", to="C"), "D1", small_topo, clock()))
    assert rec["to"] == "C" and rec["tci"] == -1


def test_a_grid_under_the_centre_is_kept(small_topo):
    assert record(validate("events", event(grid="G1"), "D1", small_topo, clock()))["grid"] == "G1"
    # a town's event may name a grid of one of its villages
    rec = record(validate("events", event(centre="T1", grid="G2"), "D1", small_topo, clock()))
    assert rec["grid"] == "G2"


def test_a_patrol_takes_its_centre_from_the_grid(small_topo):
    rec = record(validate("patrols", patrol(), "D1", small_topo, clock()))
    assert (rec["k"], rec["centre"], rec["grid"], rec["worker"], rec["q"]) == (
        "p", "V1", "G1", "w1", "p|P1")


def test_a_camera_takes_its_centre_and_kind_from_the_registry(small_topo):
    rec = record(validate("cameras", camera(cam="K3", state="fault"), "D1", small_topo, clock()))
    assert (rec["k"], rec["centre"], rec["state"], rec["cam_kind"], rec["q"]) == (
        "c", "T1", "fault", "smart", "")


def test_a_petition_carries_its_flags(small_topo):
    rec = record(validate("petitions", petition(), "D1", small_topo, clock()))
    assert (rec["k"], rec["channel"], rec["group"], rec["skip"], rec["q"]) == (
        "t", "visit", 1, 0, "t|X1")


def test_a_handin_is_owned_by_its_target_and_may_be_old(small_topo):
    f = {"v": "1", "ts": str(NOW - 30 * 24 * HOUR), "src": "pingan-handoff", "eid": "E1",
         "centre": "V1", "to": "C", "category": "fire", "due": str(NOW)}
    rec = record(validate("handin", f, "C", small_topo, clock()))
    assert rec["k"] == "h" and rec["ci"] == small_topo.index["C"] and rec["q"] == "h|E1|C"
    assert rec["lv"] == 4  # the level of the centre the case came from


def test_unicode_ids_are_valid_text(small_topo):
    rec = record(validate("events", event(eid="事件-١٢٣-é", src="平安"), "D1", small_topo, clock()))
    assert rec["id"] == "事件-١٢٣-é"


def test_fields_not_listed_for_a_status_are_ignored(small_topo):
    rec = record(validate("events", event(status="handling", due="not a number", extra="x"),
                          "D1", small_topo, clock()))
    assert rec["due"] == 0 and rec["channel"] == ""


# -- every rejection reason ---------------------------------------------------------------------

@pytest.mark.parametrize("kind, f, reason", [
    ("events", event(v=None), "missing field: v"),
    ("events", event(v="2"), "unsupported version v='2'"),
    ("events", event(ts=None), "missing field: ts"),
    ("events", event(ts=""), "missing field: ts"),
    ("events", event(ts="12a"), "not an integer: ts"),
    ("events", event(ts="-1"), "not an integer: ts"),
    ("events", event(ts="1.7e12"), "not an integer: ts"),
    ("events", event(ts="１７００"), "not an integer: ts"),  # full-width digits
    ("events", event(ts="1" * 17), "not an integer: ts"),
    ("events", event(ts=str(MIN_TS - 1)), "ts out of range"),
    ("events", event(ts=str(NOW + 301_000)), "ts in the future"),
    ("events", event(ts=str(NOW - 49 * HOUR)), "too late"),
    ("events", event(src=None), "missing field: src"),
    ("events", event(src="s" * (MAX_ID + 1)), "value too long: src"),
    ("events", event(eid=None), "missing field: eid"),
    ("events", event(eid="e" * (MAX_ID + 1)), "value too long: eid"),
    ("events", event(status="closed"), "bad status: 'closed'"),
    ("events", event(centre="610999"), "unknown centre: 610999"),
    ("events", event(category="weather"), "bad category: 'weather'"),
    ("events", event(grid="G9"), "unknown grid: G9"),
    ("events", event(grid="G3"), "grid G3 is not under centre V1"),
    ("events", event(grid="g" * (MAX_ID + 1)), "value too long: grid"),
    ("events", event(channel=None), "missing field: channel"),
    ("events", event(channel="fax"), "bad channel: 'fax'"),
    ("events", event(urgency="high"), "bad urgency: 'high'"),
    ("events", event(due="tomorrow"), "not an integer: due"),
    ("events", event(status="evaluated", satisfied="yes"), "bad satisfied: expected 0 or 1"),
    ("events", event(status="evaluated"), "bad satisfied: expected 0 or 1"),
    ("events", event(status="escalated"), "missing field: to"),
    ("events", event(status="escalated", to="V2"), "bad to: V2 is not above V1"),
    ("events", event(status="escalated", to="V1"), "bad to: V1 is not above V1"),
    ("events", event(centre="V3"), "wrong shard: centre V3 belongs to shard D2, not D1"),
    ("patrols", patrol(grid="G9"), "unknown grid: G9"),
    ("patrols", patrol(grid="G3"), "wrong shard: grid G3 belongs to shard D2, not D1"),
    ("patrols", patrol(worker=None), "missing field: worker"),
    ("patrols", patrol(pid=None), "missing field: pid"),
    ("cameras", camera(cam="K9"), "unknown camera: K9"),
    ("cameras", camera(cam="K2"), "wrong shard: camera K2 belongs to shard D2, not D1"),
    ("cameras", camera(state="broken"), "bad state: 'broken'"),
    ("petitions", petition(channel="fax"), "bad channel: 'fax'"),
    ("petitions", petition(group="true"), "bad group: expected 0 or 1"),
    ("petitions", petition(skip_level=None), "bad skip_level: expected 0 or 1"),
    ("petitions", petition(centre="V3"), "wrong shard: centre V3 belongs to shard D2"),
    ("streams", event(), "unknown kind: streams"),
])
def test_rejection_reasons(small_topo, kind, f, reason):
    rejects(kind, f, small_topo, reason)


def test_a_handin_for_another_shard_is_refused(small_topo):
    f = {"v": "1", "ts": str(NOW), "src": "pingan-handoff", "eid": "E1", "centre": "V1",
         "to": "C", "category": "fire", "due": str(NOW)}
    with pytest.raises(InvalidEntry, match="wrong shard: to C belongs to shard C, not D1"):
        validate("handin", f, "D1", small_topo, clock())


# -- hostile inputs -----------------------------------------------------------------------------

def test_too_many_fields(small_topo):
    f = event(**{f"x{i}": "1" for i in range(MAX_FIELDS)})
    rejects("events", f, small_topo, f"too many fields: {len(f)} > {MAX_FIELDS}")


@pytest.mark.parametrize("bad", ["\x00", "\n", "\x1b[31m", "\u200b", "\u202e", "\x7f"])
def test_control_and_invisible_characters_are_refused(small_topo, bad):
    rejects("events", event(eid=f"E{bad}1"), small_topo, "control characters in field: 'eid'")
    rejects("events", {**event(), f"na{bad}me": "x"}, small_topo, "control characters in field")


def test_bytes_that_are_not_utf8_are_named_and_survive_a_round_trip(small_topo):
    raw = {b"v": b"1", b"ts": str(NOW).encode(), b"src": b"app", b"eid": b"E\xff\xfe",
           b"status": b"reported", b"centre": b"V1", b"category": b"fire"}
    f = decode_fields(raw)
    rejects("events", f, small_topo, "invalid UTF-8 in field: eid")
    assert encode_fields(f) == raw


@pytest.mark.parametrize("size", [MAX_VALUE + 1, 10_000, 1_000_000])
def test_huge_values_are_refused_by_length(small_topo, size):
    rejects("events", event(category="x" * size), small_topo,
            f"value too long: category ({size} > {MAX_VALUE} characters)")


def test_many_short_values_are_not_too_long(small_topo):
    # the total may exceed MAX_VALUE as long as every value is within it
    f = event(**{f"note{i}": "n" * 200 for i in range(10)})
    assert validate("events", f, "D1", small_topo, clock())[0] == "e"


def test_an_unprintable_value_in_an_ignored_field_still_refuses_the_entry(small_topo):
    rejects("events", event(note="\x00"), small_topo, "control characters in field: 'note'")


def test_the_skew_and_lateness_bounds_are_inclusive(small_topo):
    assert validate("events", event(ts=str(NOW + 300_000)), "D1", small_topo, clock())
    assert validate("events", event(ts=str(NOW - 48 * HOUR)), "D1", small_topo, clock())


def test_bounds_are_measured_from_the_arrival_not_from_now(small_topo):
    arrived = NOW - 10 * HOUR
    f = event(ts=str(arrived - 47 * HOUR))  # 57 h before now, 47 h before its arrival
    assert validate("events", f, "D1", small_topo, clock(), arrived_ms=arrived)
    with pytest.raises(InvalidEntry, match="ts in the future"):
        validate("events", event(ts=str(arrived + 301_000)), "D1", small_topo, clock(),
                 arrived_ms=arrived)


def test_arrival_is_the_stream_id_time_never_later_than_now():
    c = clock()
    assert c.arrival(f"{NOW - 5000}-3") == NOW - 5000
    assert c.arrival(f"{NOW + 10 * HOUR}-0") == NOW  # a producer-chosen future id
    assert c.arrival("garbage") == NOW


def test_buckets_are_local_days_and_hours_even_in_a_half_hour_zone():
    kolkata = Clock(tz=ZoneInfo("Asia/Kolkata"), now_ms=NOW)
    t = int(datetime(2026, 11, 20, 0, 29, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp() * 1000)
    assert kolkata.buckets(t) == ("20261120", "2026112000")
    assert kolkata.buckets(t - 30 * 60_000) == ("20261119", "2026111923")
    assert clock().buckets(NOW) == ("20261120", "2026112010")


# -- hand-overs -----------------------------------------------------------------------------------

def handoff(**over) -> dict[str, str]:
    f = {"eid": "E1", "centre": "V1", "to": "C", "category": "fire", "due": str(NOW),
         "ts": str(NOW)}
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def test_a_handoff_becomes_the_hand_in_for_the_target_shard(small_topo):
    out = validate_handoff(handoff(), "D1", small_topo)
    assert out == {"v": "1", "ts": str(NOW), "src": "pingan-handoff", "eid": "E1",
                   "status": "escalated", "centre": "V1", "to": "C", "category": "fire",
                   "due": str(NOW)}


@pytest.mark.parametrize("over, reason", [
    ({"to": "T1"}, "bad to: T1 is in this shard"),
    ({"to": "D2"}, "bad to: D2 is not above V1"),
    ({"centre": "V3"}, "wrong shard: centre V3 belongs to shard D2"),
    ({"ts": str(MIN_TS - 1)}, "ts out of range"),
    ({"due": None}, "missing field: due"),
    ({"category": "x" * (MAX_VALUE + 1)}, "value too long: category"),
])
def test_handoff_rejections(small_topo, over, reason):
    with pytest.raises(InvalidEntry) as e:
        validate_handoff(handoff(**over), "D1", small_topo)
    assert str(e.value).startswith(reason)


# -- dead letters --------------------------------------------------------------------------------

def test_a_dead_letter_names_the_entry_and_copies_it(small_topo):
    pairs = list(event().items())
    out = dead_letter("pingan:{D1}:events", "1-0", "bad status: 'x'", pairs)
    head = dict(zip(out[:14:2], out[1:14:2], strict=True))
    n, size, digest = entry_digest(pairs)
    assert head == {"stream": "pingan:{D1}:events", "entry": "1-0", "reason": "bad status: 'x'",
                    "nfields": str(n), "nbytes": str(size), "sha1": digest, "truncated": "0"}
    assert out[14:] == [x.encode() for kv in pairs for x in kv]


def test_a_huge_dead_letter_is_bounded_and_marked_truncated():
    pairs = [(f"f{i}", "x" * 5000) for i in range(100)]
    out = dead_letter("s", "1-0", "too many fields", pairs)
    assert out[out.index("truncated") + 1] == "1"
    copied = out[14:]
    assert len(copied) == 2 * DEAD_FIELDS_MAX
    assert all(len(x) <= DEAD_VALUE_MAX for x in copied)
    assert out[out.index("nfields") + 1] == "100"


def test_the_digest_tells_apart_what_plain_concatenation_would_not():
    assert entry_digest([("ab", "c")])[2] != entry_digest([("a", "bc")])[2]
    assert entry_digest([("a", "b"), ("a", "b")])[:2] == (2, 4)


# -- properties ----------------------------------------------------------------------------------

NAMES = ("v", "ts", "src", "eid", "status", "centre", "category", "channel", "urgency", "due",
         "satisfied", "to", "grid", "pid", "worker", "cam", "state", "group", "skip_level")
CODES = ("C", "D1", "D2", "T1", "T2", "V1", "V2", "V3", "G1", "G2", "G3", "K1", "K2", "K3")
VOCAB = (*STATUSES, *CATEGORIES, *EVENT_CHANNELS, *URGENCIES, *CAMERA_STATES,
         *PETITION_CHANNELS, "0", "1", "2")
HOSTILE = st.text(alphabet=st.characters(categories=("L", "N", "P", "S", "Z", "Cc", "Cf")),
                  max_size=300)
values = st.one_of(
    st.sampled_from(CODES), st.sampled_from(VOCAB), HOSTILE,
    st.integers(-10, 2 * NOW).map(str), st.integers(NOW - 60 * HOUR, NOW + HOUR).map(str),
    st.text(max_size=MAX_ID + 2), st.just(""), st.just("\udcff"),
)
entries = st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=8)), values,
                          max_size=MAX_FIELDS + 3)
kinds = st.sampled_from(("events", "patrols", "cameras", "petitions", "handin", "nope"))
shards = st.sampled_from(("C", "D1", "D2"))


def _invariants(kind: str, rec: dict, shard: str, topo, c: Clock) -> None:
    assert rec["k"] == {"events": "e", "patrols": "p", "cameras": "c", "petitions": "t",
                        "handin": "h"}[kind]
    assert rec["centre"] in topo.centres and 0 < len(rec["id"]) <= MAX_ID
    assert MIN_TS <= rec["ts"] <= NOW + c.skew_ms
    assert (rec["day"], rec["hour"]) == c.buckets(rec["ts"])
    owner = rec["to"] if rec["k"] == "h" else rec["centre"]
    assert rec["ci"] == topo.index[owner] and topo.centres[owner].shard == shard
    if rec["k"] != "h":
        assert NOW - rec["ts"] <= c.lateness_ms
        assert rec["lv"] == topo.centres[rec["centre"]].level
    if rec["k"] == "e":
        assert rec["status"] in STATUSES and rec["category"] in CATEGORIES
        q = f"e|{rec['id']}|{rec['status']}|{rec['centre']}"
        if rec["status"] == "supervised":  # issue 10: many times, once per (ts, by)
            q += f"|{rec['ts']}|{rec['by']}"
            assert rec["by"] != rec["centre"] and topo.is_within(rec["centre"], rec["by"])
        assert rec["q"] == q
        assert len(rec["summary"]) <= 200 and len(rec["note"]) <= 200
        if rec["grid"]:
            assert topo.is_within(topo.grid_centre[rec["grid"]], rec["centre"])
        if rec["status"] == "escalated":
            assert rec["to"] != rec["centre"] and topo.is_within(rec["centre"], rec["to"])


@SETTINGS
@given(kind=kinds, f=entries, shard=shards)
def test_property_any_entry_validates_to_a_sound_record_or_is_refused_with_a_reason(
        small_topo, kind, f, shard):
    c = clock()
    try:
        rec = validate(kind, f, shard, small_topo, c)
    except InvalidEntry as e:
        assert str(e)  # a reason for the dead letter, never empty
        assert validate_fast(kind, f, shard_lookup(small_topo, shard), c, NOW) is None
        return
    _invariants(kind, record(rec), shard, small_topo, c)


@SETTINGS
@given(kind=kinds, f=entries, shard=shards)
def test_property_the_fast_path_accepts_nothing_else(small_topo, kind, f, shard):
    fast = validate_fast(kind, f, shard_lookup(small_topo, shard), clock(), NOW)
    if fast is not None:
        assert fast == validate(kind, f, shard, small_topo, clock(), arrived_ms=NOW)


def _valid(draw, topo) -> tuple[str, str, dict[str, str]]:
    kind = draw(st.sampled_from(("events", "patrols", "cameras", "petitions")))
    ts = str(draw(st.integers(NOW - 48 * HOUR, NOW + 300_000)))
    ident = draw(st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=MAX_ID))
    base = {"v": "1", "ts": ts, "src": draw(st.sampled_from(("app", "网格通", "vms")))}
    if kind == "patrols":
        grid = draw(st.sampled_from(sorted(topo.grid_centre)))
        return kind, topo.centres[topo.grid_centre[grid]].shard, {
            **base, "pid": ident, "grid": grid, "worker": draw(st.sampled_from(("w1", "李四")))}
    if kind == "cameras":
        cam = draw(st.sampled_from(sorted(topo.camera)))
        return kind, topo.centres[topo.camera[cam][0]].shard, {
            **base, "cam": cam, "state": draw(st.sampled_from(CAMERA_STATES))}
    centre = draw(st.sampled_from(sorted(topo.centres)))
    shard = topo.centres[centre].shard
    if kind == "petitions":
        return kind, shard, {**base, "pid": ident, "centre": centre,
                             "channel": draw(st.sampled_from(PETITION_CHANNELS)),
                             "group": draw(st.sampled_from("01")),
                             "skip_level": draw(st.sampled_from("01"))}
    status = draw(st.sampled_from(STATUSES))
    f = {**base, "eid": ident, "status": status, "centre": centre,
         "category": draw(st.sampled_from(CATEGORIES))}
    above = topo.ancestors(centre)[:-1]
    if status in ("escalated", "supervised") and not above:
        f["status"] = "handling"
    elif status == "escalated":
        f["to"] = draw(st.sampled_from(above))
    elif status == "supervised":  # issue 10: by, an optional note and user
        f["by"] = draw(st.sampled_from(above))
        if draw(st.booleans()):
            f.update(note=draw(st.text(alphabet="abc 督办<>&", max_size=200)).strip() or "n",
                     user=draw(st.sampled_from(["u1", "leader.01"])))
    elif status == "reported":
        f.update(channel=draw(st.sampled_from(EVENT_CHANNELS)),
                 urgency=draw(st.sampled_from(URGENCIES)),
                 due=str(draw(st.integers(0, 10 ** 15))))
    elif status == "evaluated":
        f["satisfied"] = draw(st.sampled_from("01"))
    grids = sorted(g for g, c in topo.grid_centre.items() if topo.is_within(c, centre))
    if grids and draw(st.booleans()):
        f["grid"] = draw(st.sampled_from(grids))
    if draw(st.booleans()):  # issue 10: an optional summary on any event
        f["summary"] = draw(st.text(alphabet="xyz 事件<script>", min_size=1, max_size=200))
    return kind, shard, f


@st.composite
def valid_entries(draw):
    return _valid(draw, SMALL)


@SETTINGS
@given(entry=valid_entries())
def test_property_generated_valid_entries_always_validate(small_topo, entry):
    kind, shard, f = entry
    rec = record(validate(kind, f, shard, small_topo, clock()))
    _invariants(kind, rec, shard, small_topo, clock())
    fast = validate_fast(kind, f, shard_lookup(small_topo, shard), clock(), NOW)
    if fast is not None:  # the fast path leaves escalations out of the shard to validate
        assert record(fast) == rec
    else:  # …and an event of the city (its own shard) naming a grid of a district
        assert (rec["status"] == "escalated" and rec["tci"] == -1) or (
            rec["grid"] and rec["lv"] == 1) or (  # …and a supervisor above the shard
            rec["status"] == "supervised"
            and small_topo.centres[rec["by"]].shard != small_topo.centres[rec["centre"]].shard)


@SETTINGS
@given(kind=kinds, f=entries, shard=shards)
def test_property_validation_is_deterministic(small_topo, kind, f, shard):
    def outcome():
        try:
            return validate(kind, dict(f), shard, small_topo, clock())
        except InvalidEntry as e:
            return str(e)

    assert outcome() == outcome()


@SETTINGS
@given(pairs=st.lists(st.tuples(st.text(max_size=2000), st.text(max_size=2000)), max_size=60))
def test_property_dead_letters_are_bounded_and_count_the_whole_entry(pairs):
    out = dead_letter("s", "1-0", "r", pairs)
    assert out[out.index("nfields") + 1] == str(len(pairs))
    copied = out[14:]
    assert len(copied) == 2 * min(len(pairs), DEAD_FIELDS_MAX)
    assert all(len(x) <= DEAD_VALUE_MAX for x in copied)
    cut = len(pairs) > DEAD_FIELDS_MAX or any(
        len(x.encode("utf-8", "surrogateescape")) > DEAD_VALUE_MAX for kv in pairs for x in kv)
    assert out[out.index("truncated") + 1] == ("1" if cut else "0")
