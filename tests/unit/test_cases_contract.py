"""Issue 10 contract additions (datasources/contract.py): `summary` on any event, `supervised`
with `by`, `note`, `user`; both validation paths, each reason, hostile text kept as text."""

from __future__ import annotations

import pytest

from datasources.contract import (
    FIELDS,
    InvalidEntry,
    carry_of,
    shard_lookup,
    validate,
    validate_fast,
    validate_handoff,
)
from tests.unit.test_contract import NOW, clock, event, record


def _sup(**over) -> dict[str, str]:
    return event(**{"status": "supervised", "channel": None, "urgency": None, "due": None,
                    "by": "T1", **over})


def _both(f: dict, topo, shard: str = "D1") -> dict:
    rec = record(validate("events", f, shard, topo, clock()))
    fast = validate_fast("events", f, shard_lookup(topo, shard), clock(), NOW)
    if fast is not None:
        assert record(fast) == rec
    return rec


def _refused(f: dict, topo, reason: str, shard: str = "D1") -> None:
    with pytest.raises(InvalidEntry) as e:
        validate("events", f, shard, topo, clock())
    assert str(e.value) == reason
    assert validate_fast("events", f, shard_lookup(topo, shard), clock(), NOW) is None


def test_cc001_new_fields_are_appended(small_topo):
    assert FIELDS[:23][-2:] == ("group", "skip") and FIELDS[23:] == (
        "summary", "by", "note", "user", "carry")


def test_cc002_a_summary_on_any_status_is_plain_text(small_topo):
    text = "<script>alert(1)</script> 路灯坏了"
    for status in ("reported", "resolved"):
        f = event(summary=text) if status == "reported" else event(
            status=status, channel=None, urgency=None, due=None, summary=text)
        rec = _both(f, small_topo)
        assert rec["summary"] == text and rec["q"] == f"e|E1|{status}|V1"
    assert _both(event(summary="s" * 200), small_topo)["summary"] == "s" * 200
    _refused(event(summary="s" * 201), small_topo,
             "value too long: summary (201 > 200 characters)")
    _refused(event(summary="a\nb"), small_topo, "control characters in field: 'summary'")
    assert _both(event(summary=""), small_topo)["summary"] == ""


def test_cc003_supervised_by_a_strict_ancestor_once_per_ts_and_by(small_topo):
    rec = _both(_sup(note="请尽快 <b>办理</b>", user="duty.1"), small_topo)
    assert (rec["by"], rec["note"], rec["user"]) == ("T1", "请尽快 <b>办理</b>", "duty.1")
    assert rec["q"] == f"e|E1|supervised|V1|{NOW - 60_000}|T1"
    later = _both(_sup(ts=str(NOW - 1000)), small_topo)
    assert later["q"] != rec["q"]  # supervised again: another key
    city = _both(_sup(by="C"), small_topo)  # above the shard: left to `validate`
    assert city["by"] == "C" and city["q"].endswith("|C")
    for by in ("V1", "V2", "D2", "T2"):
        _refused(_sup(by=by), small_topo, f"bad by: {by} is not above V1")
    _refused(_sup(by=None), small_topo, "missing field: by")
    _refused(_sup(by="NOPE"), small_topo, "unknown centre: NOPE")
    _refused(_sup(note="n" * 201), small_topo, "value too long: note (201 > 200 characters)")
    _refused(_sup(user="u" * 65), small_topo, "value too long: user (65 > 64 characters)")


def test_cc004_fields_of_other_statuses_are_ignored(small_topo):
    rec = _both(event(by="NOPE", note="x", user="u" * 64), small_topo)
    assert (rec["by"], rec["note"], rec["user"]) == ("", "", "")


def test_cc005_the_hand_over_carries_what_is_well_formed(small_topo):
    f = {"v": "1", "ts": str(NOW), "eid": "E1", "centre": "V1", "to": "C", "category": "fire",
         "due": str(NOW + 1), "reported_at": str(NOW - 5), "supervised": "2", "escalated": "x",
         "urgency": "URGENT", "channel": "video", "summary": "s" * 201}
    out = validate_handoff(f, "D1", small_topo)
    assert (out["reported_at"], out["supervised"], out["channel"]) == (str(NOW - 5), "2", "video")
    assert not {"escalated", "urgency", "summary"} & set(out)
    rec = record(validate("handin", {**out, "urgency": "urgent", "summary": "ok"}, "C",
                          small_topo, clock()))
    assert carry_of(rec["carry"]) == (NOW - 5, 2, 0, "urgent", "video")
    assert rec["summary"] == "ok"
    assert carry_of("") == (0, 0, 0, "", "")
