"""The access log's pure parts: fields cleaned, session tags, `pingan access-log`'s time
parsing, filters and output forms (tests/integration/test_access_log.py: against Redis)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis

from dashboard.cli_access import MAX_SPAN_S, as_json, as_line, matches, parse_when
from datasources.accesslog import ACTIONS, MAX_VALUE, AccessLog, SeenOnce, clean, session_tag
from datasources.keys import Keys

NOW = 1_796_083_200_000  # 2026-12-01T08:00+08:00
TZ = "Asia/Shanghai"


@pytest.mark.parametrize(("text", "expected"), [
    ("24h", NOW - 86_400_000), ("30m", NOW - 1_800_000), ("7d", NOW - 7 * 86_400_000),
    ("2w", NOW - 14 * 86_400_000), ("90s", NOW - 90_000), (" 1h ", NOW - 3_600_000),
    ("2026-12-01T08:00+08:00", NOW), ("2026-12-01T00:00Z", NOW),
    ("2026-12-01T08:00", NOW),  # no zone: settings.tz
    ("2026-12-01", NOW - 8 * 3_600_000),
])
def test_parse_when_spans_and_iso_times(text, expected):
    assert parse_when(text, TZ, NOW) == expected


def test_parse_when_naive_time_follows_the_zone():
    assert parse_when("2026-12-01T08:00", "UTC", NOW) == NOW + 8 * 3_600_000


@pytest.mark.parametrize("text", [
    "", "   ", "yesterday", "24", "h", "-1h", "1.5h", "24H", "1y", "9" * 7 + "d",
    "999999w",                       # within the digits, past 20 years
    "9" * 100,                       # huge
    "24h\x1b[2J", "2026-12-01\n08:00", "２４h", "2026-13-01", "2026-12-01T25:00",
    "'; DROP TABLE users; --", "$(rm -rf /)", "1h; 2h", "0001-01-01T00:00+14:00",
])
def test_parse_when_refuses_hostile_input_with_a_reason(text):
    with pytest.raises(ValueError) as e:
        parse_when(text, TZ, NOW)
    assert str(e.value)


@pytest.mark.parametrize("bad", [None, 24, b"24h", ["24h"]])
def test_parse_when_refuses_wrong_types(bad):
    with pytest.raises(ValueError):
        parse_when(bad, TZ, NOW)  # type: ignore[arg-type]


def test_the_longest_span_is_bounded():
    days = MAX_SPAN_S // 86400
    assert parse_when(f"{days}d", TZ, NOW) == NOW - days * 86_400_000
    with pytest.raises(ValueError):
        parse_when(f"{days + 1}d", TZ, NOW)


def test_clean_keeps_text_and_removes_what_forges_lines():
    assert clean("张三 alice") == "张三 alice"
    assert clean("a\nb\r\tc\x00d\x1b[31me\u202ef\u2028g\ud800") == "a?b??c?d?[31me?f?g?"
    assert clean("x" * 10_000) == "x" * MAX_VALUE
    assert clean(12) == "12" and clean("　") == "　"  # U+3000 is a space, kept


def test_session_tag_is_short_stable_and_not_the_id():
    sid = "Abc_123-secret"
    tag = session_tag(sid)
    assert tag == session_tag(sid) != session_tag(sid + "x")
    assert len(tag) == 16 and int(tag, 16) >= 0 and sid not in tag
    assert len(session_tag("\ud800" * 3)) == 16  # never raises on what a cookie held


def test_record_refuses_an_unknown_action_before_any_write():
    log = AccessLog(redis.Redis(), Keys("t"), 30)  # never connects: refused first
    with pytest.raises(ValueError):
        log.record("drop_everything", "mallory")
    assert "sign_in" in ACTIONS and len(set(ACTIONS)) == len(ACTIONS)


def test_filters():
    e = {"action": "sign_in", "who": "alice", "ts": "1"}
    assert matches(e, frozenset(), None)
    assert matches(e, frozenset({"sign_in", "sign_out"}), "alice")
    assert not matches(e, frozenset({"sign_out"}), None)
    assert not matches(e, frozenset(), "Alice")


def test_output_forms():
    e = {"id": "1-0", "action": "centre_viewed", "who": "alice", "ts": str(NOW),
         "centre": "610202", "screen": "wall", "session": "ab" * 8}
    assert as_json(e)["ts"] == NOW and as_json(e)["centre"] == "610202"
    assert as_json({**e, "ts": "x"})["ts"] == "x"
    line = as_line(e, TZ)
    local = datetime.fromtimestamp(NOW / 1000, ZoneInfo(TZ)).strftime("%Y-%m-%d %H:%M:%S")
    assert line.startswith(local + "  centre_viewed") and "centre=610202" in line
    assert "1-0" not in line and "\n" not in line
    assert as_line({"action": "sign_out", "ts": "bad"}, TZ).startswith("-  sign_out")
    json.dumps(as_json(e))


def test_seen_once_per_window():
    seen = SeenOnce(max_age_s=3600)
    assert seen.first("a") and not seen.first("a") and seen.first("b")
    assert seen.window_tag("proxy", "alice") == seen.window_tag("proxy", "alice")
    assert seen.window_tag("proxy", "alice") != seen.window_tag("demo", "alice")
