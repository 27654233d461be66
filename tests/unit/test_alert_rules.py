"""预警 rules, pure: the rules file (defaults, replacements, refusals with file:line:reason),
the event-driven evaluation of a batch's records, hysteresis, the surge's statistics, ids
safe for an HTML attribute and stored alerts read as untrusted input. No Redis here."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from dashboard.settings import Settings, SettingsError
from datasources.alerts import (
    ID_RE,
    Alert,
    AlertEngine,
    BatchState,
    Rules,
    RulesError,
    alert_id,
    check_ack,
    default_rules,
    hysteresis,
    load_rules,
    parse_rules,
    safe_part,
    surge_limits,
    surge_state,
    town_map,
)
from datasources.contract import RULES, SEVERITIES, Clock, validate
from datasources.keys import Keys
from tests.unit.small_registry import small_topology

NOW = 1_800_000_000_000
KEYS = Keys("u")
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def topo():
    return small_topology()


def _engine(topo, rules: Rules | None = None) -> AlertEngine:
    return AlertEngine(rules or default_rules(), topo, KEYS, TZ)


def _rec(topo, kind: str, shard: str, ts: int = NOW, **f) -> tuple:
    fields = {"v": "1", "ts": str(ts), "src": "t", **f}
    return validate(kind, fields, shard, topo, Clock(TZ, NOW + 60_000), ts)


def _report(topo, eid: str, urgency: str = "urgent", centre: str = "V1") -> tuple:
    return _rec(topo, "events", "D1", eid=eid, status="reported", centre=centre,
                category="fire", channel="video", urgency=urgency, due=str(NOW + 3_600_000))


def _petition(topo, pid: str, group: int, skip: int) -> tuple:
    return _rec(topo, "petitions", "D1", pid=pid, centre="V2", channel="visit",
                group=str(group), skip_level=str(skip))


def _cam(topo, cam: str, state: str, ts: int) -> tuple:
    return _rec(topo, "cameras", "D1", ts=ts, cam=cam, state=state)


def _raised(cmds: list[list]) -> list[Alert]:
    return [Alert.from_json(c[3]) for c in cmds if c[0] == "HSET" and c[1] == KEYS.alerts("D1")]


def _apply(engine: AlertEngine, records: list[tuple], st: BatchState) -> list[Alert]:
    """One batch as the aggregator runs it, with the state a previous batch left in `st`."""
    _needs, cands = engine.needs(records)
    return _raised(engine.batch_commands("D1", cands, st, NOW))


# ---- the rules file ----------------------------------------------------------------------------
def test_rules001_the_defaults_hold_every_rule_with_the_issue_values():
    rules = default_rules()
    assert set(rules.rules) == set(RULES)
    assert rules.rules["urgent_case"].severity == "critical"
    assert rules.rules["stale_shard"].severity == "critical"
    for name in ("overdue_case", "petition_group", "petition_skip", "camera_outage", "surge"):
        assert rules.rules[name].severity == "major"
    assert rules.rules["overdue_case"]["hours"] == 24
    cams = rules.rules["camera_outage"]
    assert (cams["cameras"], cams["window_min"]) == (3, 10)
    assert rules.rules["surge"]["sigma"] == 3.0 and rules.rules["surge"]["min_count"] >= 1
    assert load_rules(None) == rules


def test_rules002_a_replacement_keeps_the_defaults_it_leaves_out_and_turns_off_the_rest(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('tick_s = 2\n[rules.overdue_case]\nhours = 48\n'
                 '[rules.surge]\nenabled = false\n', encoding="utf-8")
    rules = load_rules(p)
    assert set(rules.rules) == {"overdue_case"}
    o = rules.rules["overdue_case"]
    assert o["hours"] == 48 and o.severity == "major" and o["max_per_tick"] == 200
    assert rules.tick_s == 2 and rules.history_max == default_rules().history_max
    p.write_text("", encoding="utf-8")
    assert load_rules(p).rules == {}  # the engine off


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("tick_s = 5\n[rules.urgent_case]\nseverity = \"loud\"\n", 3, "severity must be one of"),
    ("tick_s = 5\n\n[rules.meteor]\nseverity = \"major\"\n", 3, "unknown rule 'meteor'"),
    ("[rules.overdue_case]\nhours = -2\n", 2, "must be at least 0"),
    ("[rules.overdue_case]\nhours = \"a day\"\n", 2, "must be a number"),
    ("[rules.camera_outage]\nseverity = \"major\"\ncameras = 2.5\n", 3, "whole number"),
    ("[rules.camera_outage]\ncolour = 1\n", 2, "unknown parameter 'colour'"),
    ("tick_s = 5\ntickets = 1\n", 2, "unknown setting 'tickets'"),
    ("[rules.surge]\nsigma = 1.0\nclear_sigma = 2.0\n", 3, "hysteresis"),
    ("[rules.urgent_case]\nenabled = \"yes\"\n", 2, "true or false"),
    ("[rules.urgent_case\nseverity = 1\n", 1, ""),
    ("tick_s = 5\n\n\nhold_s = = 3\n", 4, ""),
])
def test_rules003_a_bad_file_is_refused_with_its_path_line_and_reason(tmp_path, text, line,
                                                                      reason):
    p = tmp_path / "bad.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(RulesError) as exc:
        load_rules(p)
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert reason in msg


def test_rules004_the_setting_refuses_a_bad_file_at_start(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[rules.urgent_case]\nseverity = \"loud\"\n", encoding="utf-8")
    with pytest.raises(SettingsError) as exc:
        Settings.from_env(environ={"PINGAN_ALERT_RULES": str(p)})
    assert "PINGAN_ALERT_RULES" in str(exc.value) and f"{p}:2:" in str(exc.value)
    with pytest.raises(SettingsError, match="cannot read"):
        Settings.from_env(environ={"PINGAN_ALERT_RULES": str(tmp_path / "missing.toml")})
    good = tmp_path / "good.toml"
    good.write_text("[rules.urgent_case]\n", encoding="utf-8")
    s = Settings.from_env(environ={"PINGAN_ALERT_RULES": str(good)})
    assert s.pipeline.alert_rules == good


# ---- ids -----------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["E-1", "<script>alert(1)</script>", "a b\"c'd", "案件1", "x" * 64,
                                  "a:b"])
def test_rules005_ids_are_safe_for_an_html_attribute_and_deterministic(what):
    aid = alert_id("urgent_case", "610202", what)
    assert ID_RE.match(aid) and aid == alert_id("urgent_case", "610202", what)
    assert aid.count(":") == 2
    assert safe_part(what) != safe_part(what + "!")


# ---- event-driven rules ------------------------------------------------------------------------
def test_rules006_an_urgent_report_raises_once(topo):
    engine = _engine(topo)
    recs = [_report(topo, "E1"), _report(topo, "E2", "normal"), _report(topo, "E1")]
    needs, cands = engine.needs(recs)
    assert needs.ids == (alert_id("urgent_case", "V1", "E1"),)
    st = BatchState()
    [a] = _raised(engine.batch_commands("D1", cands, st, NOW))
    assert (a.rule, a.severity, a.centre, a.eid, a.state, a.raised_at) == (
        "urgent_case", "critical", "V1", "E1", "raised", NOW)
    # the next batch, the alert stored: the same report raises nothing
    assert _apply(engine, [_report(topo, "E1")], BatchState(existing={a.id})) == []


def test_rules007_other_records_cost_no_read(topo):
    engine = _engine(topo)
    recs = [_report(topo, "E3", "normal"),
            _rec(topo, "patrols", "D1", pid="P1", grid="G1", worker="w1"),
            _petition(topo, "T0", 0, 0)]
    needs, cands = engine.needs(recs)
    assert not needs and cands == []
    off = _engine(topo, parse_rules("", "none.toml", default_rules()))
    assert off.needs([_report(topo, "E4"), _petition(topo, "T1", 1, 1)]) == (off.needs([])[0], [])


def test_rules008_group_and_skip_level_petitions(topo):
    engine = _engine(topo)
    got = _apply(engine, [_petition(topo, "T1", 1, 1), _petition(topo, "T2", 0, 1),
                          _petition(topo, "T3", 0, 0)], BatchState())
    assert sorted((a.rule, a.detail["pid"], a.centre) for a in got) == [
        ("petition_group", "T1", "V2"), ("petition_skip", "T1", "V2"),
        ("petition_skip", "T2", "V2")]


def _two_cameras(topo) -> Rules:
    return parse_rules("[rules.camera_outage]\ncameras = 2\nclear_below = 1\n", "two.toml",
                       default_rules())


def test_rules009_cameras_of_one_town_down_within_the_window_raise_once(topo):
    assert town_map(topo)["V1"] == "T1" and town_map(topo)["T1"] == "T1"
    engine = _engine(topo, _two_cameras(topo))
    st = BatchState()
    flaps = [_cam(topo, "K1", "offline", NOW), _cam(topo, "K1", "online", NOW + 1000),
             _cam(topo, "K1", "fault", NOW + 2000), _cam(topo, "K3", "offline", NOW + 3000),
             _cam(topo, "K3", "online", NOW + 4000), _cam(topo, "K3", "offline", NOW + 5000)]
    [a] = _apply(engine, flaps, st)
    assert (a.rule, a.centre, a.eid, a.detail["down"]) == ("camera_outage", "T1", "", 2)
    assert a.id == alert_id("camera_outage", "T1", (NOW + 3000) // 1000)
    # the condition stays or comes back: the open alert holds it, none more
    st.active = {a.key: a.id}
    assert _apply(engine, [_cam(topo, "K1", "online", NOW + 6000),
                           _cam(topo, "K1", "offline", NOW + 7000)], st) == []


def test_rules010_cameras_down_far_apart_do_not_raise(topo):
    engine = _engine(topo, _two_cameras(topo))
    st = BatchState()
    assert _apply(engine, [_cam(topo, "K1", "offline", NOW - 20 * 60_000),
                           _cam(topo, "K3", "offline", NOW)], st) == []
    assert set(st.down["T1"]) == {"K1", "K3"}


# ---- hysteresis and the surge ----------------------------------------------------------------
def test_rules011_hysteresis_holds_before_clearing_and_restarts_when_the_condition_returns():
    assert hysteresis(False, None, NOW, 60) == ("keep", None)
    assert hysteresis(True, None, NOW, 60) == ("hold", NOW)
    assert hysteresis(True, NOW, NOW + 59_000, 60) == ("hold", NOW)
    assert hysteresis(False, NOW, NOW + 59_000, 60) == ("keep", None)  # back: hold again
    assert hysteresis(True, NOW, NOW + 60_000, 60) == ("clear", None)
    assert hysteresis(True, None, NOW, 0) == ("clear", None)


def test_rules012_surge_above_mean_plus_sigma_with_a_floor_and_hysteresis():
    rule = default_rules().rules["surge"]
    mean, high, low = surge_limits([2, 4, 2, 4], 3.0, 2.0)
    assert (mean, high, low) == (3.0, 6.0, 5.0)
    up, clear, detail = surge_state(12, [2, 4, 2, 4], rule)
    assert up and not clear and detail == {"count": 12, "mean": 3.0, "threshold": 6.0}
    assert surge_state(5, [2, 4, 2, 4], rule)[:2] == (False, True)
    assert surge_state(6, [0, 0, 0], rule)[:2] == (False, False)  # a quiet centre: floor
    assert surge_state(50, [1], rule)[:2] == (False, True)  # too little history


# ---- untrusted input -------------------------------------------------------------------------
def test_rules013_stored_alerts_that_are_not_ours_are_skipped():
    good = Alert("urgent_case:V1:E1", "urgent_case", "critical", "V1", "E1", "raised", NOW,
                 detail={"kind": "case"}, key="urgent_case:E1")
    assert Alert.from_json(good.to_json()) == good
    d = json.loads(good.to_json())
    for bad in ({**d, "id": "<img src=x onerror=alert(1)>"}, {**d, "rule": "meteor"},
                {**d, "severity": "loud"}, {**d, "state": "gone"}, {**d, "raised_at": "soon"},
                {**d, "detail": {"x": "y" * 500}}, {**d, "detail": {"x": {"nested": 1}}},
                {**d, "acked_by": "z" * 65}):
        assert Alert.from_json(json.dumps(bad)) is None
    for raw in (None, b"", b"not json", b"[1, 2]", b"{}"):
        assert Alert.from_json(raw) is None
    assert set(good.to_dict()) == {"id", "rule", "severity", "centre", "eid", "state",
                                   "raised_at", "acked_by", "acked_at", "cleared_at", "detail"}
    assert good.severity in SEVERITIES


@pytest.mark.parametrize(("fields", "reason"), [
    ({"v": "1", "action": "ack", "id": "urgent_case:V1:E1", "user": "alice"}, ""),
    ({"v": "2", "action": "ack", "id": "urgent_case:V1:E1", "user": "alice"}, "version"),
    ({"v": "1", "action": "drop", "id": "urgent_case:V1:E1", "user": "a"}, "unknown action"),
    ({"v": "1", "action": "ack", "id": "<b>", "user": "alice"}, "bad alert id"),
    ({"v": "1", "action": "ack", "id": "urgent_case:V1:E1", "user": ""}, "user"),
    ({"v": "1", "action": "ack", "id": "urgent_case:V1:E1", "user": "a\nb"}, "user"),
    ({"v": "1", "action": "ack", "id": "urgent_case:V1:E1", "user": "u" * 65}, "user"),
])
def test_rules014_ack_requests_are_checked(fields, reason):
    got = check_ack(fields)
    assert (reason in got and got) if reason else got == ""


def test_rules015_camera_heartbeats_cost_nothing_and_late_records_are_ignored(topo):
    engine = _engine(topo, _two_cameras(topo))
    before = {"K1": f"online|{NOW - 5000}", "K3": f"offline|{NOW - 5000}"}
    recs = [_cam(topo, "K1", "online", NOW),  # a heartbeat: nothing changes
            _cam(topo, "K3", "online", NOW),  # back online: its town is looked at
            _cam(topo, "K1", "offline", NOW - 9000)]  # older than K1's last: ignored
    needs, cands = engine.needs(recs, before)
    assert [c[1] for c in cands] == [recs[1]] and needs.towns == ("T1",)
    st = BatchState(down={"T1": {"K3": NOW - 5000}})
    assert engine.batch_commands("D1", cands, st, NOW) == [["HDEL", KEYS.alerts_cams("D1"), "T1"]]
    assert engine.needs([_cam(topo, "K1", "online", NOW)], before) == (engine.needs([])[0], [])


def test_rules016_a_replayed_history_raises_nothing_that_is_over(topo):
    """`pingan demo` replays 30 days and an aggregator back from an outage applies a backlog:
    last week's urgent reports, petitions and camera bursts must not reach the wall as new
    alerts. A recent entry raises its alert at the entry's own time."""
    hour = 3_600_000
    for engine, records, rules in (
            (_engine(topo), [_report(topo, "E9"), _petition(topo, "T9", 1, 1)],
             ["petition_group", "petition_skip", "urgent_case"]),
            (_engine(topo, _two_cameras(topo)),
             [_cam(topo, "K1", "offline", NOW - 1000), _cam(topo, "K3", "offline", NOW)],
             ["camera_outage"])):
        _needs, cands = engine.needs(records)
        assert sorted({rule for rule, _rec in cands}) == rules  # each is looked at ...
        assert _raised(engine.batch_commands("D1", cands, BatchState(), NOW + 25 * hour)) == []
        # ... and five minutes later all of them are still news: raised at the entry's time
        got = _raised(engine.batch_commands("D1", cands, BatchState(), NOW + 5 * 60_000))
        assert sorted((a.rule, a.raised_at) for a in got) == [(r, NOW) for r in rules]
    # a camera burst is only news within its window (10 minutes)
    assert _raised(engine.batch_commands("D1", cands, BatchState(), NOW + 11 * 60_000)) == []
