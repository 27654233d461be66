"""Issue 10: the cases behind every figure and 督办, on a real Redis through the real aggregator
(datasources/cases.py, the read model kept by datasources/rollup.py)."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from dashboard.cli_cases import case as case_cmd
from dashboard.cli_cases import cases as cases_cmd
from datasources.audit import audit
from datasources.cases import CaseError, case_card, case_centre, list_cases, supervise
from datasources.keys import Keys
from datasources.readmodel import ReadModel
from datasources.rollup import INDEX_KINDS, info_of
from tests.helpers import run_until_idle, simulate

H = 3_600_000


def _now() -> int:
    return int(time.time() * 1000)


def _villages(topo, n: int = 3) -> list[str]:
    """Villages of one district, each under its own town if possible."""
    root = topo.roots[0]
    district = sorted(topo.children[root])[0]
    out = []
    for town in sorted(topo.children[district]):
        kids = sorted(topo.children.get(town, ()))
        if kids:
            out.append(kids[0])
        if len(out) == n:
            break
    return out


def _add(r, keys, topo, centre, eid, status="reported", ts=None, **extra) -> str:
    now = _now()
    f = {"v": "1", "ts": str(ts or now), "src": "test", "eid": eid, "status": status,
         "centre": centre, "category": "dispute"}
    if status == "reported":
        f.update(channel="hotline_12345", urgency="normal", due=str(now + H))
    f.update({k: str(v) for k, v in extra.items()})
    return r.xadd(keys.stream(topo.centres[centre].shard, "events"), f).decode()


def _index_matches_cases(r, topo, keys) -> int:
    """Every centre's case indexes hold exactly the open cases of the `cases` hash under it
    (with their escalated / supervised flags); returns the open cases seen."""
    n = 0
    for shard in topo.shards:
        held = {k.decode(): v.decode() for k, v in r.hgetall(keys.cases(shard)).items()}
        infos = {k.decode(): v.decode() for k, v in r.hgetall(keys.case_info(shard)).items()}
        assert set(infos) <= set(held)
        want: dict[tuple[str, str], set[str]] = {}
        for eid, value in held.items():
            v = info_of(infos.get(eid))
            for c in value.split("|", 2)[2].split(","):
                want.setdefault(("open", c), set()).add(eid)
                if v[5]:
                    want.setdefault(("esc", c), set()).add(eid)
                if v[4]:
                    want.setdefault(("sup", c), set()).add(eid)
        for code, info in topo.centres.items():
            if info.shard != shard:
                continue
            for kind in INDEX_KINDS:
                got = {m.decode() for m in r.zrange(keys.case_index(shard, kind, code), 0, -1)}
                assert got == want.get((kind, code), set()), (shard, kind, code)
            due = {m.decode() for m in r.zrange(keys.due(shard, code), 0, -1)}
            assert due == want.get(("open", code), set()), (shard, code)
        n += len(held)
    return n


def test_cases001_lists_order_and_cards_across_shards(r, topo, settings):
    keys = Keys(settings.key_prefix)
    root = topo.roots[0]
    v1, v2, v3 = _villages(topo)
    town = topo.centres[v1].parent
    now = _now()
    _add(r, keys, topo, v1, "LATE-1", due=now - 5 * H, summary="路灯 <b>坏</b>", ts=now - 9 * H)
    _add(r, keys, topo, v2, "LATE-2", due=now - 2 * H, ts=now - 8 * H)
    _add(r, keys, topo, v3, "URG-1", urgency="urgent", ts=now - 3 * H)
    _add(r, keys, topo, v1, "NEW-1", ts=now - 1 * H)
    _add(r, keys, topo, v2, "OLD-1", ts=now - 6 * H)
    _add(r, keys, topo, v1, "UP-1", ts=now - 4 * H)
    _add(r, keys, topo, v1, "UP-1", "escalated", ts=now - 3 * H, to=town)
    _add(r, keys, topo, v2, "CITY-1", ts=now - 4 * H, urgency="urgent")
    _add(r, keys, topo, v2, "CITY-1", "escalated", ts=now - 2 * H, to=root, summary="上报市级")
    _add(r, keys, topo, v3, "DONE-1", ts=now - 5 * H)
    _add(r, keys, topo, v3, "DONE-1", "resolved", ts=now - 4 * H)
    _add(r, keys, topo, v3, "DONE-1", "evaluated", ts=now - 3 * H, satisfied=1)
    run_until_idle(r, topo, settings)
    run_until_idle(r, topo, settings)  # the hand-over to the city's shard

    city = list_cases(r, topo, keys, root, "open", 100, now)
    order = [c.eid for c in city.cases]
    assert order == ["LATE-1", "LATE-2", "URG-1", "CITY-1", "NEW-1", "UP-1", "OLD-1"]
    assert city.total == 7
    late = city.cases[0]
    assert late.overdue_ms >= 5 * H - 60_000 and late.summary == "路灯 <b>坏</b>"
    assert (late.centre, late.tier, late.open, late.channel) == (v1, 4, True, "hotline_12345")
    moved = city.cases[3]
    assert (moved.centre, moved.tier, moved.shard, moved.urgency) == (root, 1, root, "urgent")
    assert moved.escalated == 1 and moved.reported_at == now - 4 * H

    assert [c.eid for c in list_cases(r, topo, keys, root, "overdue", 10, now).cases] == [
        "LATE-1", "LATE-2"]
    assert [c.eid for c in list_cases(r, topo, keys, root, "urgent", 10, now).cases] == [
        "URG-1", "CITY-1"]
    esc = list_cases(r, topo, keys, root, "escalated", 10, now)
    assert {c.eid for c in esc.cases} == {"CITY-1", "UP-1"} and esc.total == 2
    town_list = list_cases(r, topo, keys, town, "open", 10, now)
    assert "UP-1" in {c.eid for c in town_list.cases}
    assert "UP-1" not in {c.eid for c in list_cases(r, topo, keys, v1, "open", 10, now).cases}
    assert [c.eid for c in list_cases(r, topo, keys, root, "open", 2, now).cases] == [
        "LATE-1", "LATE-2"]
    d = city.to_dict()
    assert set(d) == {"code", "status", "total", "cases"} and d["cases"][0]["eid"] == "LATE-1"

    card = case_card(r, topo, keys, "CITY-1", now)
    assert [s.status for s in card.steps] == ["reported", "escalated"]
    assert card.steps[1].to == root and card.steps[1].centre == v2
    assert card.steps[1].spent_ms == 2 * H and card.steps[1].summary == "上报市级"
    assert card.row.open and card.row.centre == root and card.closed_at == 0
    assert case_centre(r, topo, keys, "CITY-1") == root
    done = case_card(r, topo, keys, "DONE-1", now)
    assert [s.status for s in done.steps] == ["reported", "resolved", "evaluated"]
    assert not done.row.open and done.closed_at == now - 4 * H and done.row.overdue_ms == 0
    assert done.to_dict()["steps"][1]["status"] == "resolved"
    assert case_card(r, topo, keys, "NOPE", now) is None
    assert case_card(r, topo, keys, "x" * 65, now) is None
    assert case_centre(r, topo, keys, "NOPE") is None
    with pytest.raises(CaseError):
        list_cases(r, topo, keys, "999999", "open", 10, now)
    with pytest.raises(CaseError):
        list_cases(r, topo, keys, root, "teleported", 10, now)
    _index_matches_cases(r, topo, keys)
    assert audit(r, topo, settings.pipeline)["differences"] == []

    # the CLI: JSON and the table; exit 2 on an unknown centre, case or filter
    run = CliRunner().invoke
    out = run(cases_cmd, [root, "--json"], obj=settings)
    assert out.exit_code == 0, out.output
    listed = json.loads(out.output)
    assert listed["total"] == 7 and listed["cases"][0]["eid"] == "LATE-1"
    assert {"eid", "centre", "status", "reported_at", "due"} <= set(listed["cases"][0])
    out = run(cases_cmd, [root, "--status", "escalated", "--limit", "1"], obj=settings)
    assert out.exit_code == 0 and "2 cases, 1 shown" in out.output
    out = run(case_cmd, ["CITY-1", "--json"], obj=settings)
    assert out.exit_code == 0 and json.loads(out.output)["row"]["centre"] == root
    assert "escalated" in run(case_cmd, ["CITY-1"], obj=settings).output
    for bad in (run(cases_cmd, ["999999"], obj=settings), run(case_cmd, ["NOPE"], obj=settings),
                run(cases_cmd, [root, "--status", "nope"], obj=settings)):
        low = bad.output.lower()
        assert bad.exit_code == 2 and ("unknown" in low or "invalid value" in low), bad.output


def test_cases002_supervise_counts_once_per_entry(r, topo, settings):
    keys = Keys(settings.key_prefix)
    root = topo.roots[0]
    (v1,) = _villages(topo, 1)
    town = topo.centres[v1].parent
    district = topo.centres[town].parent
    now = _now()
    _add(r, keys, topo, v1, "SUP-1", ts=now - H)
    run_until_idle(r, topo, settings)
    first = supervise(r, topo, keys, "SUP-1", town, "请尽快 <script>alert(1)</script>", "duty1",
                      now - 1000)
    supervise(r, topo, keys, "SUP-1", root, "市级督办", "leader1", now)
    fields = dict(r.xrange(keys.stream(topo.centres[v1].shard, "events"), first, first)[0][1])
    r.xadd(keys.stream(topo.centres[v1].shard, "events"), fields)  # a retried identical XADD
    with pytest.raises(CaseError, match="not above"):
        supervise(r, topo, keys, "SUP-1", v1, "", "", now)
    with pytest.raises(CaseError, match="unknown or closed"):
        supervise(r, topo, keys, "NOPE", town, "", "", now)
    with pytest.raises(CaseError, match="too long"):
        supervise(r, topo, keys, "SUP-1", town, "x" * 201, "", now)
    other = next(c for c in sorted(topo.children[root]) if c != district)
    _add(r, keys, topo, v1, "SUP-1", "supervised", ts=now, by=other, note="n")  # not above
    _add(r, keys, topo, v1, "SUP-1", "supervised", ts=now)  # no by
    agg = run_until_idle(r, topo, settings)
    assert agg.totals.duplicates >= 1

    card = case_card(r, topo, keys, "SUP-1", now + 1000)
    sup = [s for s in card.steps if s.status == "supervised"]
    assert [(s.by, s.note, s.user) for s in sup] == [
        (town, "请尽快 <script>alert(1)</script>", "duty1"), (root, "市级督办", "leader1")]
    assert card.row.supervised == 2 and card.row.status == "supervised"
    assert [c.eid for c in list_cases(r, topo, keys, root, "supervised", 10, now).cases] == [
        "SUP-1"]
    assert list_cases(r, topo, keys, town, "open", 10, now).cases[0].supervised == 2
    snap = ReadModel(r, topo, settings.read_model)
    today = snap.snapshot(root)["day"].replace("-", "")
    for c in (v1, town, district):
        assert int(r.hget(keys.day(topo.centres[v1].shard, today, c), "supervised")) == 2
    reasons = [f[b"reason"].decode() for _id, f in r.xrange(keys.dead(topo.centres[v1].shard))]
    assert f"bad by: {other} is not above {v1}" in reasons
    assert "missing field: by" in reasons
    assert audit(r, topo, settings.pipeline)["differences"] == []


def test_cases003_indexes_follow_a_simulated_day(r, topo, settings):
    """After a simulated day (reports, escalations in and out of shards, resolutions), every
    index equals what the open cases say, and the audit agrees."""
    simulate(r, topo, settings, 6000)
    run_until_idle(r, topo, settings)
    run_until_idle(r, topo, settings)
    keys = Keys(settings.key_prefix)
    assert _index_matches_cases(r, topo, keys) > 0
    root = topo.roots[0]
    now = _now()
    # the simulator's summaries and 督办 are valid entries, and 督办 is counted
    assert sum(r.xlen(keys.dead(s)) for s in topo.shards) == 0
    today = ReadModel(r, topo, settings.read_model).snapshot(root)["day"].replace("-", "")
    assert sum(int(r.hget(keys.day(s, today, s), "supervised") or 0) for s in topo.shards) > 0
    assert any(r.hget(keys.case_info(s), e) for s in topo.shards
               for e in r.hkeys(keys.case_info(s))[:50])
    city = list_cases(r, topo, keys, root, "open", 50, now)
    gauge = ReadModel(r, topo, settings.read_model).snapshot(root)["events"]["open"]
    assert city.total == gauge and len(city.cases) == min(50, gauge)
    for row in city.cases[:5]:
        card = case_card(r, topo, keys, row.eid, now)
        assert card is not None and card.row.centre == row.centre and card.steps
    assert audit(r, topo, settings.pipeline)["differences"] == []


def test_cases004_rebuild_makes_the_same_case_model(r, topo, settings):
    """`pingan rebuild` deletes the case model with the rest of the read model and makes the
    same lists, cards and indexes again from the retained entries."""
    from datasources.aggregator import rebuild

    keys = Keys(settings.key_prefix)
    root = topo.roots[0]
    v1, v2, _v3 = _villages(topo)
    now = _now()
    _add(r, keys, topo, v1, "RB-1", ts=now - 5 * H, due=now - H, summary="<i>x</i>")
    _add(r, keys, topo, v2, "RB-2", ts=now - 4 * H, urgency="urgent")
    _add(r, keys, topo, v2, "RB-2", "escalated", ts=now - 3 * H, to=root)
    _add(r, keys, topo, v1, "RB-3", ts=now - 2 * H)
    _add(r, keys, topo, v1, "RB-3", "resolved", ts=now - H)
    simulate(r, topo, settings, 1500)
    run_until_idle(r, topo, settings)
    run_until_idle(r, topo, settings)
    supervise(r, topo, keys, "RB-1", topo.centres[v1].parent, "第一次", "u1", now)
    run_until_idle(r, topo, settings)

    def state():
        lists = {s: list_cases(r, topo, keys, root, s, 200, now).to_dict()
                 for s in ("open", "overdue", "urgent", "escalated", "supervised")}
        cards = {e: case_card(r, topo, keys, e, now).to_dict() for e in ("RB-1", "RB-2", "RB-3")}
        return lists, cards

    before = state()
    n = _index_matches_cases(r, topo, keys)
    rebuild(r, topo, settings.pipeline, lease_ms=settings.lease_ms)
    run_until_idle(r, topo, settings)  # the replayed hand-overs
    assert state() == before
    assert _index_matches_cases(r, topo, keys) == n
    assert before[1]["RB-1"]["row"]["supervised"] == 1
    assert audit(r, topo, settings.pipeline)["differences"] == []
