"""The duty console's layouts are pure: plain dicts (the data modules' to_dict shapes) and a
hand-built topology in, components out. Hostile text stays text; every string is in the
catalogue; the rows carry the attributes the keyboard, the callbacks and the tests use."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest
from dash import html

from datasources.contract import STATUS_FILTERS
from layouts import console as layout
from layouts import console_ids as cid
from layouts.i18n import STRINGS, t
from tests.components import walk

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
NOW = 1_764_500_000_000  # 2025-11-30 10:53 UTC
HOUR = 3_600_000
TZ = "Asia/Shanghai"


def texts(component) -> list[str]:
    out = []
    for c in walk(component if not isinstance(component, list) else html.Div(component)):
        ch = getattr(c, "children", None)
        for x in ch if isinstance(ch, list | tuple) else [ch]:
            if isinstance(x, str):
                out.append(x)
    return out


def attrs(component) -> list[dict]:
    return [c.to_plotly_json()["props"] for c in walk(
        component if not isinstance(component, list) else html.Div(component))]


def no_markup(tree) -> None:
    """Hostile text appears only as text children: no component that renders HTML, no
    hostile value in an attribute (href, src, style …)."""
    for c in walk(tree if not isinstance(tree, list) else html.Div(tree)):
        assert type(c).__name__ not in ("Markdown", "Iframe", "Script"), type(c).__name__
        props = c.to_plotly_json()["props"]
        assert "dangerously_allow_html" not in props
        for name, value in props.items():
            if name != "children" and isinstance(value, str):
                assert "<" not in value, (name, value)


def alert(i: int, state: str = "raised", severity: str = "critical", **kw) -> dict:
    return {"id": f"urgent_case:V1:E{i}", "rule": "urgent_case", "severity": severity,
            "centre": "V1", "eid": f"E{i}", "state": state, "raised_at": NOW - i * 60_000,
            "acked_by": "", "acked_at": 0, "cleared_at": 0, "detail": {"kind": "case"}, **kw}


def row(eid: str = "E1", **kw) -> dict:
    base = {"eid": eid, "category": "fire", "channel": "video", "urgency": "urgent",
            "centre": "V1", "tier": 4, "status": "handling", "reported_at": NOW - 30 * HOUR,
            "due": NOW - 2 * HOUR, "overdue_ms": 2 * HOUR + 5 * 60_000, "supervised": 1,
            "escalated": 0, "summary": HOSTILE, "open": True, "shard": "D1"}
    return {**base, **kw}


def card() -> dict:
    steps = [
        {"status": "reported", "ts": NOW - 30 * HOUR, "centre": "V1", "to": "", "by": "",
         "note": "", "summary": HOSTILE, "user": "", "spent_ms": 0, "over_ms": 0},
        {"status": "dispatched", "ts": NOW - 29 * HOUR, "centre": "V1", "to": "", "by": "",
         "note": "", "summary": "", "user": "", "spent_ms": HOUR, "over_ms": 0},
        {"status": "escalated", "ts": NOW - 20 * HOUR, "centre": "V1", "to": "T1", "by": "",
         "note": "", "summary": "", "user": "", "spent_ms": 9 * HOUR, "over_ms": 0},
        {"status": "supervised", "ts": NOW - HOUR, "centre": "T1", "to": "", "by": "D1",
         "note": HOSTILE, "summary": "", "user": "duty<b>1</b>", "spent_ms": 19 * HOUR,
         "over_ms": HOUR},
    ]
    return {"row": row(centre="T1", tier=3), "steps": steps, "closed_at": 0}


# -- text helpers ------------------------------------------------------------------------------
def test_spans_and_clocks():
    assert layout.span_text(5 * 60_000, "zh") == "5分钟"
    assert layout.span_text(2 * HOUR + 5 * 60_000, "en") == "2 h 5 min"
    assert layout.span_text(50 * HOUR, "en") == "2 d 2 h"
    assert layout.span_text(-5, "en") == "0 min"
    assert layout.span_text(None, "zh") == layout.DASH
    assert layout.clock_text(NOW, "UTC", NOW) == "10:53"
    assert layout.clock_text(NOW - 30 * HOUR, "UTC", NOW) == "11-29 04:53"
    assert layout.clock_text(0, "UTC", NOW) == layout.DASH
    assert layout.clock_text(NOW, "Not/AZone", NOW) == "10:53"  # a bad zone: UTC, no error


def test_centre_options_are_the_subtree_depth_first(small_topo):
    opts = layout.centre_options(small_topo, "D1", "zh")
    assert [o["value"] for o in opts] == ["D1", "T1", "V1", "V2"]
    assert opts[2]["label"].startswith("\u3000\u3000Village 1")
    assert layout.centre_options(small_topo, "nope", "zh") == []
    assert [o["value"] for o in layout.centre_options(small_topo, "C", "en")][:2] == ["C", "D1"]


# -- alerts ------------------------------------------------------------------------------------
def test_alert_rows_carry_their_id_state_and_actions(small_topo):
    alerts = [alert(1), alert(2, state="acknowledged", severity="major", acked_by="duty1",
                                acked_at=NOW - 60_000)]
    out = layout.alert_list(alerts, small_topo, "zh", NOW, TZ, can_ack=True)
    assert [r.to_plotly_json()["props"]["data-alert"] for r in out] == [a["id"] for a in alerts]
    first, second = (r.to_plotly_json()["props"] for r in out)
    assert first["data-state"] == "raised" and "sev-critical" in first["className"]
    assert second["data-state"] == "acknowledged" and "sev-major" in second["className"]
    ids = [p.get("id") for p in attrs(out)]
    assert {"type": cid.ACK, "alert": alerts[0]["id"]} in ids
    assert {"type": cid.ACK, "alert": alerts[1]["id"]} not in ids  # acknowledged: no button
    assert {"type": cid.ALERT_ROW, "alert": alerts[0]["id"]} in ids  # opens its case
    assert any("duty1" in x for x in texts(out))
    assert t("wc_rule_urgent_case", "zh") in texts(out)
    # a viewer who may not act sees no buttons
    quiet = layout.alert_list(alerts, small_topo, "zh", NOW, TZ, can_ack=False)
    assert not any(isinstance(p.get("id"), dict) and p["id"]["type"] in (cid.ACK, cid.WALL_ALERT)
                   for p in attrs(quiet))
    assert layout.alert_count(alerts, "en") == "1 to acknowledge / 2"
    assert texts(layout.alert_list([], small_topo, "en", NOW, TZ, True)) == ["No alerts"]


def test_alert_detail_in_words_and_hostile_detail_as_text(small_topo):
    a = alert(3, rule="camera_outage", detail={"down": 5, "window_min": 10, "kind": "x",
                                               "weird": HOSTILE[:60]})
    text = layout.alert_text(a, "zh")
    assert "5 路离线或故障" in text and "10 分钟内" in text and "kind" not in text
    petition = alert(4, rule="petition_group", eid="", detail={"pid": "T-9"})
    assert layout.alert_text(petition, "en") == t("wc_rule_petition_group", "en")
    row = layout.alert_row(petition, small_topo, "en", NOW, TZ, True)
    assert "Village 1 · T-9" in texts(row)
    assert not any(isinstance(p.get("id"), dict) and p["id"]["type"] == cid.ALERT_ROW
                   for p in attrs(row))  # a petition is no case: nothing to open
    tree = layout.alert_row({**a, "centre": "nope", "severity": "bogus", "state": "bogus"},
                            small_topo, "en", NOW, TZ, True)
    no_markup(tree)
    props = tree.to_plotly_json()["props"]
    assert props["data-severity"] == "minor" and props["data-state"] == "raised"


# -- cases -------------------------------------------------------------------------------------
def test_tabs_show_counts_and_the_active_filter():
    tabs = layout.status_tabs({"open": 1234, "overdue": 7}, "overdue", "zh")
    assert [b.to_plotly_json()["props"]["data-status"] for b in tabs] == list(STATUS_FILTERS)
    on = [b for b in tabs if "is-on" in b.className]
    assert len(on) == 1 and on[0].id == {"type": cid.TAB, "status": "overdue"}
    assert "1,234" in texts(tabs) and layout.DASH in texts(tabs)  # unknown counts: —


def test_case_rows_hostile_summary_stays_text(small_topo):
    data = {"code": "C", "status": "open", "total": 250, "cases": [row(), row("E2", overdue_ms=0,
                                                                          urgency="normal",
                                                                          summary="")]}
    out = layout.case_list(data, small_topo, "en", NOW, TZ, selected="E2")
    no_markup(out)
    rows = [c for c in out if isinstance(getattr(c, "id", None), dict)]
    assert [r.id for r in rows] == [{"type": cid.CASE_ROW, "eid": "E1"},
                                    {"type": cid.CASE_ROW, "eid": "E2"}]
    first = rows[0].to_plotly_json()["props"]
    assert first["data-case"] == "E1" and "is-overdue" in first["className"]
    assert "is-selected" in rows[1].className and "is-overdue" not in rows[1].className
    assert HOSTILE in texts(out)
    assert "2 h 5 min" in texts(out) and "Village 1" in texts(out) and "Fire safety" in texts(out)
    assert "The first 2 of 250" in texts(out)
    assert texts(layout.case_list({"cases": []}, small_topo, "zh", NOW, TZ)) == ["暂无事件"]


# -- the card ----------------------------------------------------------------------------------
def test_card_timeline_stages_escalation_and_supervision(small_topo):
    body = layout.card_body(card(), small_topo, "zh", NOW, TZ)
    no_markup(body)
    all_text = texts(body)
    assert HOSTILE in all_text  # the summary and the note, as text
    assert all_text.count(HOSTILE) >= 3  # the row's summary, the report's and the note
    stages = [p for p in attrs(body) if "data-stage" in p]
    assert [p["data-stage"] for p in stages] == [s for s, _ in layout.STAGES]
    done = [p["data-stage"] for p in stages if "is-done" in p["className"]]
    assert done == ["reported", "dispatched"]
    steps = [p for p in attrs(body) if "data-step" in p]
    assert [p["data-step"] for p in steps] == ["reported", "dispatched", "escalated", "supervised"]
    assert "is-late" in steps[3]["className"]
    assert "Village 1（村社区）→ Town 1（镇街）" in all_text
    assert "District 1 督办 · duty<b>1</b>" in all_text
    assert "超期 1小时0分" in all_text and "用时 19小时0分" in all_text
    assert "已超期 2小时5分" in all_text


def test_card_actions_follow_the_viewer(small_topo):
    c = card()
    acts = layout.card_actions(c, "zh", can_supervise=True, can_act=True, calls=True)
    ids = [p.get("id") for p in attrs(acts)]
    assert {"type": cid.NOTE, "eid": "E1"} in ids and {"type": cid.SUPERVISE, "eid": "E1"} in ids
    assert {"type": cid.WALL, "eid": "E1"} in ids
    assert any(isinstance(i, dict) and i.get("code") == "T1" for i in ids)  # 视频连线 to its centre
    note = next(p for p in attrs(acts) if p.get("id") == {"type": cid.NOTE, "eid": "E1"})
    assert note["maxLength"] == 200
    closed = {**c, "row": {**c["row"], "open": False}}
    ids = [p.get("id") for p in attrs(layout.card_actions(closed, "zh", can_supervise=True,
                                                          can_act=True, calls=False))]
    assert {"type": cid.SUPERVISE, "eid": "E1"} not in ids
    assert layout.card_actions(c, "zh", can_supervise=False, can_act=False, calls=False) == []
    # a case of the screen's own centre: no call to itself
    ids = [p.get("id") for p in attrs(layout.card_actions(c, "zh", can_supervise=True,
                                                          can_act=True, calls=True, here="T1"))]
    assert not any(isinstance(i, dict) and i.get("code") == "T1" for i in ids)


# -- the screens -------------------------------------------------------------------------------
VM = {"code": "D1", "name": "District 1", "level": 2,
      "breadcrumb": [{"code": "C", "name": "City", "level": 1},
                     {"code": "D1", "name": "District 1", "level": 2}]}


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_console_and_panel_hold_every_piece(small_topo, lang):
    screen = layout.console_screen(VM, lang, options=layout.centre_options(small_topo, "C", lang),
                                   can_act=True, tz=TZ)
    panel = layout.command_panel(VM, lang)
    needed = {cid.TICK, cid.VERSION, cid.REQUEST, cid.STATUS, cid.SELECTED, cid.ACTED, cid.SINK,
              cid.ALERTS, cid.ALERT_COUNT, cid.TABS, cid.CASES, cid.CARD, cid.CARD_ACTIONS,
              cid.MESSAGE, cid.GROUP, cid.WALL_CENTRE}
    for tree in (screen, panel):
        have = {p.get("id") for p in attrs(tree) if isinstance(p.get("id"), str)}
        assert needed <= have, needed - have
        no_markup(tree)
    assert cid.PICKER in [p.get("id") for p in attrs(screen)]
    props = screen.to_plotly_json()["props"]
    assert props["data-centre"] == "D1" and props["id"] == cid.ROOT
    group = next(p for p in attrs(screen) if p.get("id") == cid.GROUP)
    assert group["value"] == cid.DEFAULT_GROUP
    # the validation layout has a stand-in for every fixed id
    stand_ins = {p.get("id") for p in attrs(html.Div(layout.validation_components()))
                 if isinstance(p.get("id"), str)}
    assert needed | {cid.PICKER} <= stand_ins


def test_console_strings_are_in_both_languages_with_the_same_placeholders():
    keys = [k for k in STRINGS if k.startswith("console_")]
    assert len(keys) > 60
    fields = string.Formatter()
    for k in keys:
        zh, en = STRINGS[k]["zh"], STRINGS[k]["en"]
        assert zh and en, k
        assert {f for _, f, _, _ in fields.parse(zh) if f} == \
            {f for _, f, _, _ in fields.parse(en) if f}, k
    # every key the layout names exists (no raw key shown on a screen)
    src = Path(layout.__file__).read_text(encoding="utf-8")
    for k in set(re.findall(r'"(console_[a-z_]+)"', src)):
        if not k.endswith("_"):
            assert k in STRINGS, k
    for s in (*STATUS_FILTERS,):
        assert f"console_tab_{s}" in STRINGS


# -- dashboard/command.py: what is refused before Redis is asked ------------------------------
def no_redis():
    import redis

    from tests.unit.conftest import NO_REDIS_URL
    return redis.Redis.from_url(NO_REDIS_URL)


def test_notes_are_folded_to_plain_text_or_refused():
    from dashboard import command

    assert command.clean_note(" a\n\tb\u3000c\u00a0d ") == "a b c d"
    assert command.clean_note(None) == "" and command.clean_note("") == ""
    assert command.clean_note("界" * 200) == "界" * 200
    for bad in ("界" * 201, "zero\u200bwidth", "bell\x07", "\ud800", 42, ["x"]):
        with pytest.raises(command.BadInput) as e:
            command.clean_note(bad)
        assert e.value.status == 400 and e.value.key == "note"


def test_scope_and_roles_are_checked_before_any_read(small_topo):
    from dashboard import command
    from dashboard.access import Viewer
    from datasources.keys import Keys

    r, keys = no_redis(), Keys("t")
    town = Viewer("t1", "duty", "T1")
    assert command.may_supervise(town, small_topo, "V1")
    assert not command.may_supervise(town, small_topo, "T1")  # its own centre: not above
    assert not command.may_supervise(town, small_topo, "V3")  # another subtree
    assert not command.may_supervise(Viewer("x", "guest", "C"), small_topo, "V1")
    assert not command.may_supervise(None, small_topo, "V1")
    for code in ("D2", "C", "nope", None, ["T1"]):
        with pytest.raises(command.Refused) as e:
            command.cases_for(town, small_topo, r, keys, code, "open", NOW)
        assert e.value.status == 403
    with pytest.raises(command.BadInput):
        command.cases_for(town, small_topo, r, keys, "T1", "bogus", NOW)
    with pytest.raises(command.BadInput):
        command.cases_for(town, small_topo, r, keys, "T1", "open", NOW, limit=10_000)
    for eid in ("", "x" * 65, "tab\there", 7, None):
        with pytest.raises(command.Refused) as e:
            command.card_for(town, small_topo, r, keys, eid, NOW)
        assert e.value.status == 404 and e.value.key == "not_found"
    with pytest.raises(command.Forbidden):
        command.ack(Viewer("x", "guest", "C"), small_topo, r, keys, "a:b:c", NOW)
    with pytest.raises(command.Refused):
        command.ack(None, small_topo, r, keys, "a:b:c", NOW)
    with pytest.raises(command.BadInput) as e:
        command.show_on_wall(town, small_topo, r, keys, "bad group!", "T1", now_ms=NOW)
    assert e.value.key == "group"
    with pytest.raises(command.Refused) as e:
        command.show_on_wall(town, small_topo, r, keys, "main", "D2", now_ms=NOW)
    assert e.value.status == 403
    with pytest.raises(command.BadInput):
        command.supervise(town, small_topo, r, keys, "E1", "x" * 201, NOW)
