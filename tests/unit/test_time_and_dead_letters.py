"""Issue 8: time bounds, bucket names in every zone, bounded dead letters (pure, no Redis)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dashboard.settings import Settings
from datasources.aggregator import first_whole_day
from datasources.contract import (
    DEAD_FIELDS_MAX,
    DEAD_VALUE_MAX,
    Clock,
    InvalidEntry,
    dead_letter,
    entry_digest,
    validate_handoff,
)
from datasources.topology import build_topology

H = 3_600_000


def _ms(tz: str, *args) -> int:
    return int(datetime(*args, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


@pytest.mark.parametrize("tz,local,day,hour", [
    ("Asia/Shanghai", (2026, 11, 30, 23, 59, 59, 900_000), "20261130", "2026113023"),
    ("Asia/Shanghai", (2026, 12, 1, 0, 0, 0), "20261201", "2026120100"),
    ("Asia/Kolkata", (2026, 11, 30, 10, 29), "20261130", "2026113010"),
    ("Asia/Kolkata", (2026, 11, 30, 10, 31), "20261130", "2026113010"),
    ("Asia/Kolkata", (2026, 11, 30, 11, 29), "20261130", "2026113011"),
    ("Asia/Kolkata", (2026, 11, 30, 23, 59, 59, 900_000), "20261130", "2026113023"),
    ("Asia/Kolkata", (2026, 12, 1, 0, 0, 0), "20261201", "2026120100"),
    ("Asia/Kathmandu", (2026, 11, 30, 0, 14), "20261130", "2026113000"),
    ("Asia/Kathmandu", (2026, 11, 29, 23, 46), "20261129", "2026112923"),
    ("America/St_Johns", (2026, 7, 1, 0, 1), "20260701", "2026070100"),
    ("Europe/Berlin", (2026, 3, 29, 3, 30), "20260329", "2026032903"),  # after the DST jump
])
def test_time001_buckets_in_every_zone(tz, local, day, hour):
    """The cache (per 15-minute block of UTC) never lends one block's names to another:
    a half-hour zone's hour starts at :30 UTC, Nepal's at :15."""
    clock = Clock(ZoneInfo(tz), 0)
    ts = _ms(tz, *local)
    # warm the cache with the minutes around, in both orders
    for d in (-40, -20, -1, 1, 20, 40):
        clock.buckets(ts + d * 60_000)
    assert clock.buckets(ts) == (day, hour)


def test_time002_every_minute_of_a_day_matches_zoneinfo():
    for tz in ("Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "Asia/Shanghai"):
        zone = ZoneInfo(tz)
        clock = Clock(zone, 0)
        start = _ms(tz, 2026, 11, 30)
        for m in range(0, 24 * 60 + 30, 7):
            ts = start + m * 60_000 + 59_999
            dt = datetime.fromtimestamp(ts / 1000, zone)
            assert clock.buckets(ts) == (dt.strftime("%Y%m%d"), dt.strftime("%Y%m%d%H")), (tz, m)


def _clock(now: int = 1_800_000_000_000) -> Clock:
    return Clock(ZoneInfo("Asia/Shanghai"), now, lateness_ms=48 * H, skew_ms=300_000)


def test_time003_lateness_and_skew_are_judged_against_arrival():
    c = _clock()
    arrived = c.now_ms - 5 * H
    c.check_ts(arrived - 48 * H, arrived)  # exactly at the bound: accepted
    c.check_ts(arrived + 300_000, arrived)
    with pytest.raises(InvalidEntry, match=r"too late: ts \d+ is 48 h before its arrival"):
        c.check_ts(arrived - 48 * H - 1, arrived)
    with pytest.raises(InvalidEntry, match=r"ts in the future: \d+ is 300 s after its arrival"):
        c.check_ts(arrived + 300_001, arrived)
    with pytest.raises(InvalidEntry, match="ts out of range"):
        c.check_ts(946_684_799_999, arrived)
    with pytest.raises(InvalidEntry, match="too late"):
        c.check_ts(946_684_800_000, arrived)  # the year 2000 is in range, but far too late
    c.check_ts(arrived - 400 * H, arrived, late=False)  # hand-ins: no lateness bound


def test_time004_arrival_is_the_stream_id_capped_at_now():
    c = _clock()
    assert c.arrival(f"{c.now_ms - 1000}-3") == c.now_ms - 1000
    assert c.arrival("99999999999999-0") == c.now_ms  # a producer's far-future explicit id
    assert c.arrival("garbage") == c.now_ms


def test_time005_camera_fault_dated_a_day_ahead_is_refused():
    c = _clock()
    with pytest.raises(InvalidEntry, match="in the future"):
        c.check_ts(c.now_ms + 23 * H, c.now_ms)


def test_time006_settings_keep_lateness_inside_the_idempotency_window():
    s = Settings()
    assert s.max_lateness_s + 86400 <= s.idempotency_window_s
    with pytest.raises(ValueError, match="idempotency window"):
        replace(s, max_lateness_s=7 * 86400)
    with pytest.raises(ValueError, match="idempotency window"):
        Settings(stream_retention_days=1, max_lateness_s=3 * 86400)
    assert replace(s, stream_retention_days=30, max_lateness_s=29 * 86400).max_lateness_s


def test_time007_first_whole_day_after_a_trim():
    tz = ZoneInfo("Asia/Shanghai")
    # trimmed up to 10:00 on the 20th: the 20th is partly gone, the 21st is whole
    assert first_whole_day(_ms("Asia/Shanghai", 2026, 11, 20, 10), 300_000, tz) == "20261121"
    # trimmed up to 23:57: an entry of 00:01 on the 21st may have arrived at 23:56 (skew)
    assert first_whole_day(_ms("Asia/Shanghai", 2026, 11, 20, 23, 57), 300_000, tz) == "20261122"
    # trimmed exactly to midnight minus the skew: that midnight's day is whole
    assert first_whole_day(_ms("Asia/Shanghai", 2026, 11, 21) - 300_000, 300_000, tz) == "20261121"


# ---- dead letters ----------------------------------------------------------------------------
def _fields(out: list) -> list[tuple]:
    return list(zip(out[::2], out[1::2], strict=True))


def test_dead001_a_huge_entry_gives_a_bounded_dead_letter():
    pairs = [(f"f{i}", "x") for i in range(4500)]
    out = _fields(dead_letter("s", "1-0", "too many fields: 4500 > 32", pairs))
    head = dict(out[:7])
    assert head["nfields"] == "4500" and head["truncated"] == "1"
    assert len(out) == 7 + DEAD_FIELDS_MAX
    assert out[7] == (b"f0", b"x") and out[-1] == (b"f31", b"x")
    n, size, digest = entry_digest(pairs)
    assert head["nbytes"] == str(size) and head["sha1"] == digest


def test_dead002_long_values_are_cut_to_bytes_and_named_by_their_hash():
    big = "象" * 1_000_000  # 3 MB of UTF-8
    out = _fields(dead_letter("s", "1-0", "value too long", [("summary", big), ("v", "1")]))
    head = dict(out[:7])
    assert head["truncated"] == "1" and head["nfields"] == "2"
    assert head["nbytes"] == str(len("summary") + 3_000_000 + 2)
    name, value = out[7]
    assert name == b"summary" and len(value) == DEAD_VALUE_MAX
    assert big.encode()[:DEAD_VALUE_MAX] == value  # a cut mid-character keeps the bytes
    assert sum(len(k) + len(v) for k, v in out) < 70_000


def test_dead003_bytes_survive_and_the_digest_is_of_the_raw_bytes():
    raw = b"\xff\xfe\x00junk"
    text = raw.decode("utf-8", "surrogateescape")
    pairs = [("category", text), ("stream", "fake"), ("reason", "forged")]
    out = _fields(dead_letter("pingan:{1}:events", "5-1", "invalid UTF-8", pairs))
    assert out[0] == ("stream", "pingan:{1}:events") and out[2] == ("reason", "invalid UTF-8")
    assert (b"category", raw) in out and (b"stream", b"fake") in out
    h = hashlib.sha1()
    for k, v in ((b"category", raw), (b"stream", b"fake"), (b"reason", b"forged")):
        h.update(b"%d:%b%d:%b" % (len(k), k, len(v), v))
    assert dict(out[:7])["sha1"] == h.hexdigest()
    assert dict(out[:7])["truncated"] == "0"


# ---- the hand-over outbox is untrusted ---------------------------------------------------------
@pytest.fixture(scope="module")
def small_topo():
    rows = [("1", "city", 1, None, None, None, None), ("11", "d1", 2, "1", None, None, None),
            ("12", "d2", 2, "1", None, None, None), ("111", "t", 3, "11", None, None, None)]
    return build_topology(rows, [], [])


def _handoff(**kw) -> dict:
    f = {"eid": "E1", "centre": "111", "to": "1", "due": "1800000000000", "category": "fire",
         "ts": "1800000000000"}
    f.update(kw)
    return {k: v for k, v in f.items() if v is not None}


def test_handoff001_a_good_outbox_entry_becomes_a_hand_in(small_topo):
    got = validate_handoff(_handoff(), "11", small_topo)
    assert got == {"v": "1", "ts": "1800000000000", "src": "pingan-handoff", "eid": "E1",
                   "status": "escalated", "centre": "111", "to": "1", "category": "fire",
                   "due": "1800000000000"}


@pytest.mark.parametrize("fields,reason", [
    ({"to": None}, "missing field: to"),
    ({"eid": None}, "missing field: eid"),
    ({"to": "999"}, "unknown centre: 999"),
    ({"to": "12"}, "bad to: 12 is not above 111"),
    ({"to": "11"}, "bad to: 11 is in this shard"),
    ({"centre": "12", "to": "1"}, "wrong shard: centre 12"),
    ({"category": "aliens"}, "bad category"),
    ({"due": "soon"}, "not an integer: due"),
    ({"ts": "5"}, "ts out of range"),
    ({"eid": "x\n"}, "control characters"),
    ({**{f"f{i}": "x" for i in range(40)}}, "too many fields"),
])
def test_handoff002_a_bad_outbox_entry_is_refused_with_its_reason(small_topo, fields, reason):
    with pytest.raises(InvalidEntry, match=reason):
        validate_handoff(_handoff(**fields), "11", small_topo)
