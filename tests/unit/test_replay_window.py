"""The pure part of datasources/replay.py: the replay window of 24 local hour buckets (the
reads of the buckets and streams are in tests/integration/test_replay.py)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from datasources.replay import HOUR_MS, hour_starts

TZ = "Asia/Shanghai"
# 2026-11-20 10:30:00 local: the window is 11:00 the day before … 10:30
NOW = int(datetime(2026, 11, 20, 10, 30, tzinfo=ZoneInfo(TZ)).timestamp() * 1000)


def hour_name(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(TZ)).strftime("%Y%m%d%H")


def test_replay001_window_is_24_hourly_buckets_ending_now():
    starts = hour_starts(NOW)
    assert len(starts) == 24
    assert starts[-1] <= NOW < starts[-1] + HOUR_MS
    assert all(b - a == HOUR_MS for a, b in zip(starts, starts[1:], strict=False))
    assert hour_name(starts[0]) == "2026111911" and hour_name(starts[-1]) == "2026112010"

