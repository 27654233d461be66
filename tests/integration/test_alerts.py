"""预警 end to end on a real Redis with the real aggregator in-process (private key prefix):
each rule raises once (replaying the entries or running the tick again raises nothing new),
hysteresis, acknowledgement by a named user, forged requests dead-lettered, and an urgent
report's alert written in the very write that counts the report."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dashboard.settings import Settings
from datasources.aggregator import Aggregator
from datasources.alerts import AlertError, alert_history, get_alert, list_alerts, request_ack
from datasources.clock import TimeSource
from datasources.keys import GROUP, Keys
from tests.helpers import event, now_ms


def _petition(centre: str, pid: str, group: int = 0, skip: int = 0) -> dict[str, str]:
    return {"v": "1", "ts": str(now_ms()), "src": "test", "pid": pid, "centre": centre,
            "channel": "visit", "group": str(group), "skip_level": str(skip)}


def _camera(cam: str, state: str, ts: int) -> dict[str, str]:
    return {"v": "1", "ts": str(ts), "src": "test", "cam": cam, "state": state}


def _village(topo) -> str:
    return sorted(c for c, i in topo.centres.items() if i.level == 4)[0]


def run(r, topo, settings) -> Aggregator:
    agg = Aggregator(r, topo, settings.pipeline)
    agg.run(until_idle=True)
    return agg


def tick(r, topo, settings, at_ms: int, before=None) -> None:
    """One alert tick of every shard, on a clock set to `at_ms` (`before(agg)`: after the
    shards are taken, e.g. to make one look dead)."""
    agg = Aggregator(r, topo, settings.pipeline, clock=TimeSource(start_ms=at_ms))
    agg.balance()
    assert set(agg.held) == set(topo.shards)
    if before is not None:
        before(agg)
    for st in list(agg.held.values()):
        agg.alert_tick(st)
    agg.release_all()


def replay(r, keys: Keys, shard: str, kind: str) -> None:
    r.xgroup_setid(keys.stream(shard, kind), GROUP, "0")


def history(r, topo, keys, code=None) -> list[dict]:
    return alert_history(r, topo, keys, code, count=1000)


def test_alert001_urgent_report_raises_once_and_replay_raises_nothing(r, topo, settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    r.xadd(keys.stream(shard, "events"), event(v, "urg-1", urgency="urgent"))
    r.xadd(keys.stream(shard, "events"), event(v, "calm-1"))
    run(r, topo, settings)
    alerts = list_alerts(r, topo, keys)
    assert [(a.rule, a.severity, a.centre, a.eid, a.state) for a in alerts] == [
        ("urgent_case", "critical", v, "urg-1", "raised")]
    a = alerts[0]
    assert get_alert(r, topo, keys, a.id) == a
    assert a.to_dict()["id"] == a.id and "key" not in a.to_dict()
    # the same entries again (a producer's retry, a consumer group reset): nothing new
    r.xadd(keys.stream(shard, "events"), event(v, "urg-1", urgency="urgent"))
    replay(r, keys, shard, "events")
    run(r, topo, settings)
    assert [x.id for x in list_alerts(r, topo, keys)] == [a.id]
    assert [h["event"] for h in history(r, topo, keys)] == ["raised"]
    # in scope of its centre and every ancestor, not of another district
    assert list_alerts(r, topo, keys, topo.roots[0]) == [a]
    other = next(d for d in topo.children[topo.roots[0]] if not topo.is_within(v, d))
    assert list_alerts(r, topo, keys, other) == []
    with pytest.raises(AlertError):
        list_alerts(r, topo, keys, "no-such-centre")


def test_alert002_the_alert_is_written_in_the_write_that_counts_the_report(r, redis_url, topo,
                                                                          settings):
    """The alert is not a second step after the count: the one fenced write (EVALSHA) that
    acknowledges the entry and adds it to the day's `urgent` figure also raises its alert, so
    no crash can leave one without the other. Seen on the wire with MONITOR."""
    import redis as redis_lib

    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    sentinel = f"stop-{uuid.uuid4().hex}"
    seen: list[list[str]] = []
    mon_client = redis_lib.Redis.from_url(redis_url)
    started = threading.Event()

    def watch():
        with mon_client.monitor() as m:
            started.set()
            while True:
                cmd = m.next_command()["command"]
                if sentinel in cmd:
                    return
                if settings.key_prefix in cmd and cmd.startswith("EVALSHA"):
                    seen.append(cmd)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    started.wait(5)
    time.sleep(0.2)
    r.xadd(keys.stream(shard, "events"), event(v, "urg-2", urgency="urgent"))
    run(r, topo, settings)
    r.echo(sentinel)
    t.join(10)
    mon_client.close()
    a = list_alerts(r, topo, keys)[0]
    writes = [c for c in seen if f"{keys.alerts(shard)} {a.id}" in c]
    assert len(writes) == 1, seen
    w = writes[0]
    day = datetime.now(ZoneInfo(settings.tz)).strftime("%Y%m%d")
    assert f"!XACK {keys.stream(shard, 'events')} {GROUP}" in w  # the batch's guard
    assert keys.day(shard, day, v) in w and " urgent 1" in w  # the count
    assert f"HSET {keys.alerts_active(shard)}" in w and f"XADD {keys.alert_log(shard)}" in w
    assert int(r.hget(keys.day(shard, day, v), "urgent")) == 1


def test_alert003_group_and_skip_level_petitions(r, topo, settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    r.xadd(keys.stream(shard, "petitions"), _petition(v, "pet-1", group=1, skip=1))
    r.xadd(keys.stream(shard, "petitions"), _petition(v, "pet-2", group=0, skip=1))
    r.xadd(keys.stream(shard, "petitions"), _petition(v, "pet-3"))
    run(r, topo, settings)
    got = sorted((a.rule, a.detail["pid"], a.severity) for a in list_alerts(r, topo, keys))
    assert {a.eid for a in list_alerts(r, topo, keys)} == {""}  # a petition is no case
    assert got == [("petition_group", "pet-1", "major"), ("petition_skip", "pet-1", "major"),
                   ("petition_skip", "pet-2", "major")]
    replay(r, keys, shard, "petitions")
    run(r, topo, settings)
    tick(r, topo, settings, now_ms())
    assert len(list_alerts(r, topo, keys)) == 3
    assert len(history(r, topo, keys)) == 3
    # they clear a day after they were raised (clear_after_h), once
    tick(r, topo, settings, now_ms() + 25 * 3_600_000)
    assert list_alerts(r, topo, keys) == []
    assert len(list_alerts(r, topo, keys, states=("cleared",))) == 3
    tick(r, topo, settings, now_ms() + 26 * 3_600_000)
    assert sorted(h["event"] for h in history(r, topo, keys)) == ["cleared"] * 3 + ["raised"] * 3


def _town_with_cameras(topo, n: int) -> tuple[str, list[str]]:
    from datasources.alerts import town_map

    towns = town_map(topo)
    by_town: dict[str, list[str]] = {}
    for cam, (centre, _kind) in sorted(topo.camera.items()):
        by_town.setdefault(towns[centre], []).append(cam)
    town = next(t for t, cams in sorted(by_town.items())
                if len(cams) >= n and topo.centres[t].level == 3)
    return town, by_town[town][:n]


def test_alert004_flapping_cameras_raise_one_alert_and_clear_after_the_hold(r, topo, settings):
    keys = Keys(settings.key_prefix)
    town, cams = _town_with_cameras(topo, 4)
    shard = topo.centres[town].shard
    stream = keys.stream(shard, "cameras")
    t0 = now_ms() - 60_000
    flaps = [(cams[0], "offline"), (cams[0], "online"), (cams[0], "offline"),
             (cams[1], "fault"), (cams[1], "online"), (cams[2], "offline"),
             (cams[1], "offline"), (cams[0], "online"), (cams[0], "offline"),
             (cams[3], "fault"), (cams[3], "online")]
    for i, (cam, state) in enumerate(flaps):
        r.xadd(stream, _camera(cam, state, t0 + i * 1000))
    run(r, topo, settings)
    [a] = list_alerts(r, topo, keys)
    assert (a.rule, a.centre, a.severity, a.eid) == ("camera_outage", town, "major", "")
    assert a.detail["down"] >= 3
    # all back online: the hold starts, the alert stays
    for i, cam in enumerate(cams):
        r.xadd(stream, _camera(cam, "online", t0 + 20_000 + i))
    run(r, topo, settings)
    tick(r, topo, settings, now_ms())
    assert [x.state for x in list_alerts(r, topo, keys)] == ["raised"]
    assert r.hexists(keys.alerts_clearing(shard), a.key)
    # down again within the hold: the same alert, its hold stops; no second alert
    for i, cam in enumerate(cams[:3]):
        r.xadd(stream, _camera(cam, "offline", t0 + 30_000 + i))
    run(r, topo, settings)
    assert [x.id for x in list_alerts(r, topo, keys)] == [a.id]
    assert not r.hexists(keys.alerts_clearing(shard), a.key)
    tick(r, topo, settings, now_ms() + 700_000)  # still down: nothing clears
    assert [x.id for x in list_alerts(r, topo, keys)] == [a.id]
    # back for good: clears once the hold (600 s) has passed, not before
    for i, cam in enumerate(cams):
        r.xadd(stream, _camera(cam, "online", t0 + 40_000 + i))
    run(r, topo, settings)
    start = now_ms()
    tick(r, topo, settings, start)
    tick(r, topo, settings, start + 300_000)
    assert [x.id for x in list_alerts(r, topo, keys)] == [a.id]
    tick(r, topo, settings, start + 601_000)
    assert list_alerts(r, topo, keys) == []
    [cleared] = list_alerts(r, topo, keys, states=("cleared",))
    assert cleared.id == a.id and start + 601_000 <= cleared.cleared_at < start + 660_000
    assert [h["event"] for h in history(r, topo, keys)] == ["cleared", "raised"]


def test_alert005_ack_by_a_named_user_is_applied_once_and_in_the_history(r, topo, settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    r.xadd(keys.stream(shard, "events"), event(v, "urg-3", urgency="urgent"))
    r.xadd(keys.stream(shard, "events"), event(v, "urg-4", urgency="urgent"))
    run(r, topo, settings)
    a = next(x for x in list_alerts(r, topo, keys) if x.eid == "urg-3")
    version = int(r.hget(keys.meta(shard), "version"))
    request_ack(r, topo, keys, a.id, "alice 值班", now_ms())
    request_ack(r, topo, keys, a.id, "bob", now_ms())  # a second ack changes nothing
    run(r, topo, settings)
    got = get_alert(r, topo, keys, a.id)
    assert got.state == "acknowledged" and got.acked_by == "alice 值班" and got.acked_at > 0
    assert int(r.hget(keys.meta(shard), "version")) > version  # the web's push notices
    # still listed until cleared, after the unacknowledged ones
    assert [x.eid for x in list_alerts(r, topo, keys)] == ["urg-4", "urg-3"]
    acks = [h for h in history(r, topo, keys) if h["event"] == "acknowledged"]
    assert [(h["id"], h["by"]) for h in acks] == [(a.id, "alice 值班")]
    # the console stream read again: applied once
    r.xgroup_setid(keys.console(shard), GROUP, "0")
    run(r, topo, settings)
    assert len([h for h in history(r, topo, keys) if h["event"] == "acknowledged"]) == 1
    with pytest.raises(AlertError):
        request_ack(r, topo, keys, a.id, "", now_ms())
    with pytest.raises(AlertError):
        request_ack(r, topo, keys, a.id, "x" * 65, now_ms())


def test_alert006_forged_acks_are_dead_letters_with_their_reason(r, topo, settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    r.xadd(keys.stream(shard, "events"), event(v, "urg-5", urgency="urgent"))
    run(r, topo, settings)
    a = list_alerts(r, topo, keys)[0]
    with pytest.raises(AlertError):
        request_ack(r, topo, keys, "urgent_case:x:nope", "alice", now_ms())
    base = {"v": "1", "ts": str(now_ms()), "src": "forger", "action": "ack"}
    stream = keys.console(shard)
    r.xadd(stream, {**base, "id": "urgent_case:x:nope", "user": "mallory"})
    r.xadd(stream, {**base, "id": a.id, "user": "bell\x07"})
    r.xadd(stream, {**base, "id": a.id, "user": "m" * 65})
    r.xadd(stream, {**base, "id": "<script>alert(1)</script>", "user": "mallory"})
    r.xadd(stream, {**base, "action": "clear", "id": a.id, "user": "mallory"})
    run(r, topo, settings)
    dead = [{k.decode(): v.decode("utf-8", "replace") for k, v in f.items()}
            for _i, f in r.xrange(keys.dead(shard))]
    reasons = [d["reason"] for d in dead if d["stream"] == stream]
    assert reasons == ["unknown alert: urgent_case:x:nope",
                       "the user must be 1–64 printable characters",
                       "the user must be 1–64 printable characters",
                       "bad alert id", "unknown action: 'clear'"]
    assert get_alert(r, topo, keys, a.id).state == "raised"
    assert [h["event"] for h in history(r, topo, keys)] == ["raised"]


def test_alert007_overdue_case_raised_by_the_tick_once_and_cleared_when_resolved(r, topo,
                                                                                settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    ts = now_ms()
    r.xadd(keys.stream(shard, "events"), event(v, "late-1", ts=ts, due=str(ts - 26 * 3_600_000)))
    r.xadd(keys.stream(shard, "events"), event(v, "late-2", ts=ts, due=str(ts - 3_600_000)))
    run(r, topo, settings)
    assert list_alerts(r, topo, keys) == []  # time-driven: the tick raises it
    tick(r, topo, settings, now_ms())
    tick(r, topo, settings, now_ms())
    [a] = list_alerts(r, topo, keys)
    assert (a.rule, a.eid, a.centre, a.severity) == ("overdue_case", "late-1", v, "major")
    assert a.detail["hours"] >= 26
    assert len(history(r, topo, keys)) == 1
    r.xadd(keys.stream(shard, "events"), event(v, "late-1", "resolved"))
    run(r, topo, settings)
    at = now_ms()
    tick(r, topo, settings, at)
    assert list_alerts(r, topo, keys)[0].state == "raised"  # held (60 s)
    tick(r, topo, settings, at + 61_000)
    # late-2 is now overdue by more than 24 h on that clock? no: 1 h + 61 s
    assert list_alerts(r, topo, keys) == []
    assert list_alerts(r, topo, keys, states=("cleared",))[0].id == a.id


def test_alert008_a_dead_shard_is_raised_stale_by_the_top_shard(r, topo, settings):
    keys = Keys(settings.key_prefix)
    root_shard = topo.centres[topo.roots[0]].shard
    dead = next(s for s in topo.shards if s != root_shard)
    run(r, topo, settings)
    at = now_ms()

    def kill(agg):  # its aggregator stopped beating two minutes ago
        r.hset(keys.meta(dead), "heartbeat", at - 120_000)
        agg.held.pop(dead)
        r.delete(keys.lease(dead))

    tick(r, topo, settings, at, before=kill)
    [a] = list_alerts(r, topo, keys)
    assert (a.rule, a.centre, a.severity) == ("stale_shard", dead, "critical")
    assert a.detail["seconds"] >= 120
    assert r.hexists(keys.alerts(root_shard), a.id)  # kept by a live process
    assert list_alerts(r, topo, keys, dead) == [a]
    tick(r, topo, settings, at + 1000, before=kill)
    assert len(history(r, topo, keys)) == 1
    # it beats again: cleared after the hold (30 s)
    tick(r, topo, settings, at + 2000)
    tick(r, topo, settings, at + 40_000)
    assert list_alerts(r, topo, keys) == []


def test_alert009_surge_above_the_same_hour_of_previous_days(r, topo, settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    tz = ZoneInfo(settings.tz)
    now = now_ms()
    for d, n in ((1, 1), (2, 2), (3, 1)):
        hour = datetime.fromtimestamp((now - d * 86_400_000) / 1000, tz).strftime("%Y%m%d%H")
        for c in topo.centres[v].chain:
            r.hset(keys.hour(shard, hour, c), "reported", n)
    for i in range(12):
        r.xadd(keys.stream(shard, "events"), event(v, f"s-{i}"))
    run(r, topo, settings)
    tick(r, topo, settings, now_ms())
    tick(r, topo, settings, now_ms())
    surges = [a for a in list_alerts(r, topo, keys) if a.rule == "surge"]
    assert v in {a.centre for a in surges}
    mine = next(a for a in surges if a.centre == v)
    assert mine.detail["count"] == 12 and mine.detail["threshold"] < 12
    assert len([h for h in history(r, topo, keys) if h["rule"] == "surge"]) == len(surges)
    # a quiet centre with one report above a zero baseline does not alarm (min_count)
    other = sorted(c for c, i in topo.centres.items() if i.level == 4 and i.shard == shard
                   and c != v)[0]
    assert other not in {a.centre for a in surges}


def test_alert010_no_rules_no_alerts(r, topo, settings, tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text("tick_s = 5\n", encoding="utf-8")
    off = Settings.from_env(redis_url=settings.redis_url, database_url=settings.database_url,
                            key_prefix=settings.key_prefix, lease_ms=1500, alert_rules=path,
                            data_dir=tmp_path)
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    r.xadd(keys.stream(shard, "events"), event(v, "urg-9", urgency="urgent"))
    r.xadd(keys.stream(shard, "petitions"), _petition(v, "pet-9", group=1))
    run(r, topo, off)
    tick(r, topo, off, now_ms())
    assert list_alerts(r, topo, keys) == []


def test_alert011_cli_lists_and_acknowledges(r, topo, settings):
    import json

    from click.testing import CliRunner

    from dashboard.cli_alerts import alerts as alerts_cmd

    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    r.xadd(keys.stream(shard, "events"), event(v, "urg-cli", urgency="urgent"))
    run(r, topo, settings)
    invoke = CliRunner().invoke
    out = invoke(alerts_cmd, [topo.roots[0], "--json"], obj=settings)
    assert out.exit_code == 0, out.output
    [row] = json.loads(out.output)["alerts"]
    assert {"id", "rule", "severity", "centre", "eid", "state", "raised_at"} <= set(row)
    assert (row["rule"], row["eid"], row["state"]) == ("urgent_case", "urg-cli", "raised")
    out = invoke(alerts_cmd, ["ack", row["id"], "--user", "duty-7"], obj=settings)
    assert out.exit_code == 0 and "duty-7" in out.output
    run(r, topo, settings)
    [row] = json.loads(invoke(alerts_cmd, ["--json"], obj=settings).output)["alerts"]
    assert (row["state"], row["acked_by"]) == ("acknowledged", "duty-7")
    out = invoke(alerts_cmd, [v, "--history"], obj=settings)
    assert "acknowledged" in out.output and "by duty-7" in out.output
    assert "urg-cli" in invoke(alerts_cmd, [], obj=settings).output
    for bad in (invoke(alerts_cmd, ["999999"], obj=settings),
                invoke(alerts_cmd, ["ack", "urgent_case:x:y", "--user", "a"], obj=settings),
                invoke(alerts_cmd, ["ack", row["id"]], obj=settings)):
        assert bad.exit_code != 0


def test_alert012_a_rebuild_keeps_the_alerts_and_raises_nothing_again(r, topo, settings):
    from datasources.aggregator import rebuild

    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    r.xadd(keys.stream(shard, "events"), event(v, "urg-rb", urgency="urgent"))
    r.xadd(keys.stream(shard, "petitions"), _petition(v, "pet-rb", group=1))
    run(r, topo, settings)
    a = next(x for x in list_alerts(r, topo, keys) if x.rule == "urgent_case")
    request_ack(r, topo, keys, a.id, "carol", now_ms())
    run(r, topo, settings)
    before = history(r, topo, keys)
    rebuild(r, topo, settings.pipeline, lease_ms=1500)
    assert get_alert(r, topo, keys, a.id).acked_by == "carol"
    assert len(list_alerts(r, topo, keys)) == 2
    assert history(r, topo, keys) == before


def test_alert013_an_overwritten_alert_key_is_set_aside_and_the_batch_goes_on(r, topo, settings):
    keys = Keys(settings.key_prefix)
    v = _village(topo)
    shard = topo.centres[v].shard
    r.set(keys.alerts(shard), "not a hash")  # anyone who reaches Redis can write it
    r.xadd(keys.stream(shard, "events"), event(v, "urg-q", urgency="urgent"))
    run(r, topo, settings)
    day = datetime.now(ZoneInfo(settings.tz)).strftime("%Y%m%d")
    assert int(r.hget(keys.day(shard, day, v), "reported")) == 1  # not a dead letter
    assert [x.eid for x in list_alerts(r, topo, keys)] == ["urg-q"]
    kinds = [f[b"kind"] for _i, f in r.xrange(keys.incidents(shard))]
    assert b"quarantined" in kinds
