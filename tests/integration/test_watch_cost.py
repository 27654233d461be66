"""The web's version watcher (dashboard/versions.py) against a real Redis: what one tick costs
does not grow with the number of shards, centres come into and out of the watch, a centre
newly in view is read at once, and a read model going back is still seen per source."""

from __future__ import annotations

import json
import time

from dashboard import live
from dashboard.screens import FlightCache, ScreenData
from dashboard.versions import VersionWatcher
from datasources.keys import UP, Keys
from datasources.readmodel import ReadModel
from datasources.registry_watch import refresh_in_place
from datasources.topology import Topology, build_topology, sources
from datasources.vc import Conferences
from tests.helpers import wait_until

CITY = "610200"
DISTRICT = "610202"
PROVINCE = "610000"


def _rows(topo: Topology) -> list[tuple]:
    return [(c.code, c.name, c.level, c.parent, c.lon, c.lat, c.conference)
            for c in topo.centres.values()]


def _province(topo: Topology, cities: int, districts_per_city: int) -> Topology:
    """The demo region under a province, beside `cities` other cities of their own districts."""
    rows = [(PROVINCE, "省", 0, None, None, None, None)]
    rows += [(c, n, lv, PROVINCE if p is None else p, *rest) for c, n, lv, p, *rest in _rows(topo)]
    for i in range(cities):
        city = f"69{i:02d}00"
        rows.append((city, f"市{i}", 1, PROVINCE, None, None, None))
        rows += [(f"69{i:02d}{j + 1:02d}", f"区{i}-{j}", 2, city, None, None, None)
                 for j in range(districts_per_city)]
    return build_topology(rows, [], [])


def _with_districts(topo: Topology, n: int) -> Topology:
    """The demo region with `n` more districts under the city."""
    extra = [(f"6199{j:02d}", f"区{j}", 2, CITY, None, None, None) for j in range(n)]
    return build_topology(_rows(topo) + extra, [], [])


def _commands(r, act) -> int:
    """How many commands the server ran for `act()` (INFO itself not counted)."""
    def calls() -> dict[str, int]:
        return {k: v["calls"] for k, v in r.info("commandstats").items()}

    before = calls()
    act()
    after = calls()
    return sum(n - before.get(k, 0) for k, n in after.items() if k != "cmdstat_info")


def _watcher(r, keys, topo, **kw) -> VersionWatcher:
    return VersionWatcher(r, keys, topo, Conferences(r, topo, keys.prefix, "", 60), **kw)


def _figures_only(r, settings, topo: Topology, w: VersionWatcher) -> ScreenData:
    """Screens of `w` with no read model or map: what versions and alert strips need."""
    return ScreenData(r=r, keys=Keys(settings.key_prefix), topology=topo, settings=settings,
                      read_model=None, geo=lambda: None, watcher=w, cache=FlightCache())


def _tick_cost(r, keys, topo: Topology, *shown: str) -> int:
    w = _watcher(r, keys, topo)
    for code in shown:
        w.watch(code)
    return _commands(r, w.read_metas)


def test_watch001_a_tick_costs_the_same_with_many_more_shards(r, settings, topo):
    keys = Keys(settings.key_prefix)
    small = _province(topo, cities=0, districts_per_city=0)
    large = _province(topo, cities=20, districts_per_city=10)
    assert len(large.shards) - len(small.shards) == 220  # 20 more cities, 200 districts
    for shown in ([CITY], [DISTRICT], [CITY, DISTRICT, f"{DISTRICT}001"]):
        cost = _tick_cost(r, keys, small, *shown)
        assert _tick_cost(r, keys, large, *shown) == cost, shown
        # what is read: the metas of the screens' sources, the province's roll-up, the
        # registry version; never one per shard
        want = {UP + PROVINCE, *(s for c in shown for s in sources(large, c))}
        assert cost == len(want) + 1
    # the demo region as it is (the city is the root): the city's screen reads its roll-up and
    # its four districts; 200 more districts elsewhere in a city do not touch a district's tick
    assert _tick_cost(r, keys, topo, CITY) == len(sources(topo, CITY)) + 1 == 6
    assert (_tick_cost(r, keys, topo, DISTRICT) == _tick_cost(
        r, keys, _with_districts(topo, 200), DISTRICT) == 3)  # 610202, ^610200, registry
    # the fixed list of before (every shard) for comparison: 1 + shards
    assert _commands(r, VersionWatcher(r, keys, large.shards, None).read_metas) == 1 + len(
        large.shards)


def test_watch002_a_centre_in_view_is_watched_until_idle(r, settings, topo):
    keys = Keys(settings.key_prefix)
    now = [100.0]
    w = _watcher(r, keys, topo, idle_s=60.0, clock=lambda: now[0])
    assert w.sources == (UP + CITY,) and w.watching() == ()  # the root: always
    w.watch(f"{DISTRICT}001")  # a town: its shard
    assert w.sources == (UP + CITY, DISTRICT)
    now[0] += 30
    w.watch(f"{DISTRICT}001")  # touched again: 60 s from now
    now[0] += 45
    w.expire()
    assert w.watching() == (f"{DISTRICT}001",)
    now[0] += 20
    w.expire()
    assert w.watching() == () and w.sources == (UP + CITY,)
    # a live stream holds its centre however long it stays open, and idle_s after it ends
    with w.hold(CITY):
        assert set(w.sources) == set(sources(topo, CITY))
        now[0] += 600
        w.expire()
        assert w.watching() == (CITY,)
    now[0] += 59
    w.expire()
    assert w.watching() == (CITY,)
    now[0] += 2
    w.expire()
    assert w.watching() == () and w.sources == (UP + CITY,)
    w.watch("no-such-centre")
    assert w.watching() == ()


def test_watch003_the_loop_reads_a_new_centre_at_once_and_lets_it_go(r, settings, topo):
    keys = Keys(settings.key_prefix)
    r.hset(keys.meta(DISTRICT), mapping={"version": 7, "heartbeat": 1})
    w = _watcher(r, keys, topo, poll_s=0.02, idle_s=0.3)
    try:
        metas, _down = w.state()  # starts the thread
        assert set(metas) == {UP + CITY}
        w.stop()  # no tick from now on: what follows is read by watch() itself
        time.sleep(0.1)
        w.watch(DISTRICT)
        assert w.state()[0][DISTRICT]["version"] == 7
    finally:
        w.stop()
    w = _watcher(r, keys, topo, poll_s=0.02, idle_s=0.3)
    try:
        w.start()
        w.watch(DISTRICT)
        assert DISTRICT in w.sources
        wait_until(lambda: DISTRICT not in w.sources and DISTRICT not in w.state()[0],
                   timeout=3, every=0.05)
    finally:
        w.stop()


def test_watch004_a_rewind_is_seen_per_source_also_after_a_pause(r, settings, topo):
    keys = Keys(settings.key_prefix)
    rewinds: list[int] = []
    now = [0.0]
    # no tick of its own (poll_s): the test publishes what it reads
    w = _watcher(r, keys, topo, on_rewind=lambda: rewinds.append(1), clock=lambda: now[0],
                 poll_s=3600)
    try:
        _rewinds_per_source(r, keys, w, rewinds, now)
    finally:
        w.stop()


def _rewinds_per_source(r, keys, w, rewinds, now) -> None:
    r.hset(keys.up_meta(CITY), mapping={"version": 20, "epoch": "a"})
    r.hset(keys.meta(DISTRICT), mapping={"version": 10})
    w.watch(CITY)
    w.publish(w.read_metas())
    assert w.state()[0][UP + CITY] == {"version": 20, "epoch": "a"} and not rewinds
    r.hset(keys.up_meta(CITY), "epoch", "b")  # the roll-up's epoch changed
    w.publish(w.read_metas())
    assert rewinds == [1]
    r.hset(keys.meta(DISTRICT), "version", 4)  # a district's version went back
    w.publish(w.read_metas())
    assert rewinds == [1, 1]
    # the city leaves the view; its district goes back meanwhile: seen when it is back in view
    r.hset(keys.meta(DISTRICT), "version", 9)
    w.publish(w.read_metas())
    now[0] += 120
    w.expire()
    w.publish(w.read_metas())
    assert DISTRICT not in w.state()[0]
    r.hset(keys.meta(DISTRICT), "version", 2)
    w.publish(w.read_metas())
    assert rewinds == [1, 1]
    w.watch(DISTRICT)
    w.publish(w.read_metas())
    assert rewinds == [1, 1, 1]
    # an empty roll-up meta (the aggregator has not rolled it yet) that appears is no rewind
    r.delete(keys.up_meta(CITY))
    w.publish(w.read_metas())
    assert len(rewinds) == 4  # from version 20 to nothing: back
    r.hset(keys.up_meta(CITY), mapping={"version": 3, "epoch": "c"})
    w.publish(w.read_metas())
    assert len(rewinds) == 4


def test_watch005_screens_key_and_name_by_source(r, settings, topo):
    keys = Keys(settings.key_prefix)
    w = _watcher(r, keys, topo)
    screens = _figures_only(r, settings, topo, w)
    hb = int(time.time() * 1000)
    r.hset(keys.up_meta(CITY), mapping={"version": 30, "heartbeat": hb})
    for d in topo.children[CITY]:
        r.hset(keys.meta(d), mapping={"version": 5, "heartbeat": hb})
    r.hset(keys.meta(CITY), mapping={"version": 99, "heartbeat": 1})  # rolled into ^CITY
    try:
        assert screens.versions(CITY) == (30, 5, 5, 5, 5)
        assert CITY in w.watching()
        metas, down = w.state()
        fresh = screens.freshness(CITY, metas, down)["shards"]
        assert set(fresh) == {CITY, *topo.children[CITY]} and fresh[CITY]["version"] == 30
        assert screens.is_fresh(CITY)
        assert screens.root_versions(metas) == (30,)
        r.hset(keys.meta(DISTRICT), "heartbeat", 1)  # one district's aggregator is silent
        w.publish(w.read_metas())
        assert not screens.is_fresh(CITY) and screens.is_fresh(f"{DISTRICT}001") is False
        assert screens.is_fresh("610203")
    finally:
        w.stop()


def test_watch006_a_registry_reload_recomputes_the_sources(r, settings, topo):
    keys = Keys(settings.key_prefix)
    mine = build_topology(_rows(topo), [], [])  # a copy: refreshed in place below
    grown = _with_districts(topo, 2)

    w = VersionWatcher(r, keys, mine, None, on_registry=lambda: refresh_in_place(mine, grown),
                       registry_seen="0")
    w.watch(CITY)
    assert "619900" not in w.sources
    r.incr(keys.registry_version())
    w.publish(w.read_metas())
    assert w.check_registry()
    assert {"619900", "619901"} <= set(w.sources) and w.registry_generation == 1


def test_watch007_a_live_stream_holds_its_centre_while_open(r, settings, topo, geo):
    keys = Keys(settings.key_prefix)
    now = [0.0]
    w = _watcher(r, keys, topo, clock=lambda: now[0], idle_s=60.0)
    screens = ScreenData(r=r, keys=keys, topology=topo, settings=settings,
                         read_model=ReadModel(r, topo, settings.read_model), geo=lambda: geo,
                         watcher=w, cache=FlightCache())
    r.hset(keys.meta(DISTRICT), mapping={"version": 3, "heartbeat": int(time.time() * 1000)})
    messages = live.stream(w, screens, DISTRICT, min_gap_s=0, keepalive_s=0.05)
    try:
        assert next(messages).startswith("retry:")
        first = json.loads(next(messages).removeprefix("data: "))
        assert first["freshness"]["shards"] == {DISTRICT: w.state()[0][DISTRICT]}
        assert first["freshness"]["shards"][DISTRICT]["version"] == 3
        now[0] += 3600  # open for an hour: still watched
        w.expire()
        assert w.watching() == (DISTRICT,) and DISTRICT in w.sources
        messages.close()  # the browser went away
        now[0] += 61
        w.expire()
        assert w.watching() == () and DISTRICT not in w.sources
    finally:
        messages.close()
        w.stop()


def test_watch008_alert_strips_of_many_centres_read_the_shards_once(r, settings, topo):
    """Every centre's alert strip picks its alerts from one read of every shard's raised
    alerts per version of the roots (before: every shard read once per centre on screen —
    a worker showing 20 county walls of a province read its 111 shards 20 times a change)."""
    from datasources.alerts import Alert

    keys = Keys(settings.key_prefix)
    w = _watcher(r, keys, topo)
    screens = _figures_only(r, settings, topo, w)
    hb = int(time.time() * 1000)
    r.hset(keys.up_meta(CITY), mapping={"version": 7, "heartbeat": hb})
    town = f"{DISTRICT}001"
    a = Alert(id="A1", rule="urgent_case", severity="critical", centre=town, eid="E1",
              state="raised", raised_at=hb, key="urgent_case:E1")
    r.hset(keys.alerts(DISTRICT), "A1", a.to_json())
    r.hset(keys.alerts_active(DISTRICT), "urgent_case:E1", "A1")
    centres = [CITY, DISTRICT, town, *topo.children[town][:3], *topo.children[CITY]]
    try:
        metas = w.read_metas()
        first = _commands(r, lambda: [screens.alerts(c, metas) for c in centres[:1]])
        every = _commands(r, lambda: [screens.alerts(c, metas) for c in centres[1:]])
        assert first >= len(topo.shards)  # one read of every shard's active alerts …
        assert every == 0  # … shared by every other centre's strip at the same version
        shown = {c: [row["id"] for row in screens.alerts(c, metas)["rows"]] for c in centres}
        assert shown[CITY] == shown[DISTRICT] == shown[town] == ["A1"]
        assert all(shown[c] == [] for c in topo.children[CITY] if c != DISTRICT)
        r.hset(keys.up_meta(CITY), "version", 8)  # a change below: read again, once
        metas = w.read_metas()
        again = _commands(r, lambda: [screens.alerts(c, metas) for c in centres])
        assert len(topo.shards) <= again <= first
    finally:
        w.stop()
