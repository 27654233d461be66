"""Roll-ups above the shard tier on a real Redis (issue 13 item 5): exact after the pipeline is
idle, audited, a snapshot's cost independent of the shards below, a province above cities,
and the roll-up moving with its shard's lease."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import datasources.aggregator as aggregator_module
from datasources.aggregator import Aggregator
from datasources.audit import audit
from datasources.keys import Keys
from datasources.readmodel import ReadModel, trend_days, trend_hours
from datasources.simulator import write
from datasources.topology import build_topology, rolled, sources
from datasources.upper import OVERDUE
from tests.helpers import now_ms, run_until_idle, simulate, todays_entries


def _ints(h: dict) -> Counter:
    return Counter({k.decode(): int(v) for k, v in h.items() if int(v)})


def _summed_heads(r, topo, keys: Keys, code: str, now: datetime) -> dict:
    """The old way, straight from every shard head below `code`: what its roll-up must hold."""
    heads = topo.shard_heads(code)
    days, hours = trend_days(now), trend_hours(now)
    pipe = r.pipeline(transaction=False)
    for h in heads:
        s = topo.centres[h].shard
        for d in days:
            pipe.hgetall(keys.day(s, d, h))
        for hn in hours:
            pipe.hgetall(keys.hour(s, hn, h))
        pipe.hgetall(keys.gauge(s, h))
        pipe.zcount(keys.due(s, h), "-inf", now_ms() - 1)
    replies = iter(pipe.execute())
    out = {"days": {d: Counter() for d in days}, "hours": {hn: Counter() for hn in hours},
           "gauge": Counter()}
    for _h in heads:
        for d in days:
            out["days"][d].update(_ints(next(replies)))
        for hn in hours:
            out["hours"][hn].update(_ints(next(replies)))
        out["gauge"].update(_ints(next(replies)))
        out["gauge"][OVERDUE] += next(replies)
    out["gauge"] = +out["gauge"]
    return out


def _rollup(r, keys: Keys, code: str, now: datetime) -> dict:
    return {"days": {d: _ints(r.hgetall(keys.up_day(code, d))) for d in trend_days(now)},
            "hours": {h: _ints(r.hgetall(keys.up_hour(code, h))) for h in trend_hours(now)},
            "gauge": _ints(r.hgetall(keys.up_gauge(code)))}


def _province(districts_per_city: int, towns_per_district: int = 1):
    """Province P over cities C1, C2; each city over `districts_per_city` districts, each
    district over towns, each town over one village with one grid and one camera."""
    centres = [("P", "Province", 0, None, None, None, None)]
    grids, cameras = [], []
    for c in (1, 2):
        city = f"C{c}"
        centres.append((city, f"City {c}", 1, "P", None, None, None))
        for d in range(districts_per_city):
            dist = f"{city}D{d}"
            centres.append((dist, f"District {dist}", 2, city, None, None, None))
            for t in range(towns_per_district):
                town, village = f"{dist}T{t}", f"{dist}T{t}V"
                centres.append((town, f"Town {town}", 3, dist, None, None, None))
                centres.append((village, f"Village {village}", 4, town, None, None, None))
                grids.append((f"G{village}", village, "urban", 1))
                cameras.append((f"K{village}", village, "dome"))
    return build_topology(centres, grids, cameras)


class CountingRedis:
    """A client whose pipelines count the commands they send."""

    def __init__(self, r) -> None:
        self.r = r
        self.commands = 0

    def pipeline(self, transaction: bool = True):
        pipe = self.r.pipeline(transaction=transaction)
        execute = pipe.execute

        def counted(*args, **kwargs):
            self.commands += len(pipe.command_stack)
            return execute(*args, **kwargs)

        pipe.execute = counted
        return pipe

    def __getattr__(self, name):
        return getattr(self.r, name)


def _commands(r, topo, settings, code: str) -> int:
    counting = CountingRedis(r)
    ReadModel(counting, topo, settings.read_model).snapshot(code)
    return counting.commands


def test_upper101_a_snapshot_costs_its_children_never_the_shards_below(r, topo, settings):
    small, wide, deep = _province(2), _province(12), _province(2, towns_per_district=9)
    assert len(wide.shards) > 3 * len(small.shards)
    # the province: two children (rolled cities) whatever is below them
    assert _commands(r, small, settings, "P") == _commands(r, wide, settings, "P") \
        == _commands(r, deep, settings, "P")
    # a city: its districts are its children (O(children)), the towns below cost nothing
    per_child = (_commands(r, wide, settings, "C1") - _commands(r, small, settings, "C1")) / 10
    assert per_child == 4  # a district's day, gauge, overdue count and meta
    assert _commands(r, small, settings, "C1") == _commands(r, deep, settings, "C1")
    # the demo city reads its roll-up: no hour or day key of any district
    root = topo.roots[0]
    n_children = len(topo.children[root])
    assert _commands(r, topo, settings, root) == 2 + 48 + 30 + 1 + 1 + 4 * n_children


def test_upper102_exact_at_the_city_after_idle_and_audited(r, topo, settings):
    keys = Keys(settings.key_prefix)
    simulate(r, topo, settings, 1500)
    run_until_idle(r, topo, settings)
    root = topo.roots[0]
    assert rolled(topo, root)
    now = datetime.now(ZoneInfo(settings.tz))
    expected = _summed_heads(r, topo, keys, root, now)
    assert _rollup(r, keys, root, now) == expected
    assert expected["days"][now.strftime("%Y%m%d")]["reported"] > 0
    snap = ReadModel(r, topo, settings.read_model).snapshot(root, now)
    today = expected["days"][now.strftime("%Y%m%d")]
    assert snap["events"]["reported"] == today["reported"]
    assert snap["events"]["open"] == expected["gauge"]["open"]
    assert snap["events"]["overdue"] == expected["gauge"][OVERDUE]
    assert [d["total"] for d in snap["petitions"]["trend_30d"]] == \
        [expected["days"][d]["petitions"] for d in trend_days(now)]
    assert snap["trend"]["today"]["reported"] == \
        [expected["hours"][h]["reported"] for h in trend_hours(now)[24:]]
    # versions and freshness come from the sources read: the roll-up and the children's shards
    assert list(snap["versions"]) == sources(topo, root) and sources(topo, root)[0] == "^" + root
    assert snap["versions"]["^" + root] == sum(
        int(r.hget(keys.meta(s), "version") or 0) for s in [root, *topo.children[root]])

    report = audit(r, topo, settings.pipeline, now=now)
    assert report["differences"] == [] and report["rollups"] == {"checked": 1, "behind": []}

    # the audit finds a roll-up figure someone changed, and a gauge
    r.hincrby(keys.up_day(root, now.strftime("%Y%m%d")), "reported", 3)
    r.hincrby(keys.up_gauge(root), "open", -1)
    found = {(d["centre"], d["figure"], d["read_model"] - d["recount"])
             for d in audit(r, topo, settings.pipeline, now=now)["differences"]}
    assert found == {(root, "rollup.today.reported", 3), (root, "rollup.now.open", -1)}
    # the next full pass writes it right again
    run_until_idle(r, topo, settings)
    assert audit(r, topo, settings.pipeline)["ok"]


def test_upper103_a_province_above_cities_above_districts(r, settings):
    topo = _province(2)
    keys = Keys(settings.key_prefix)
    assert rolled(topo, "P") and rolled(topo, "C1") and topo.centres["P"].level == 0
    write(r, iter(todays_entries(topo, settings, 1500)))  # ~10 patrols: 400 gave none at times
    run_until_idle(r, topo, settings)
    now = datetime.now(ZoneInfo(settings.tz))
    for code in ("P", "C1", "C2"):
        assert _rollup(r, keys, code, now) == _summed_heads(r, topo, keys, code, now), code
    rm = ReadModel(r, topo, settings.read_model)
    snap = rm.snapshot("P", now)
    cities = [rm.snapshot(c, now) for c in ("C1", "C2")]
    assert snap["events"]["reported"] == sum(c["events"]["reported"] for c in cities) > 0
    assert snap["grids"]["patrols"] == sum(c["grids"]["patrols"] for c in cities) > 0
    assert snap["children"]["C1"]["reported"] == cities[0]["events"]["reported"]
    assert set(snap["versions"]) == {"^P", "^C1", "^C2"}
    # the province's version sums its own shard's and the cities' roll-ups'
    assert snap["versions"]["^P"] == int(r.hget(keys.meta("P"), "version") or 0) + sum(
        snap["versions"][f"^{c}"] for c in ("C1", "C2"))
    report = audit(r, topo, settings.pipeline, now=now)
    assert report["differences"] == [] and report["rollups"] == {"checked": 3, "behind": []}


def test_upper104_the_roll_up_follows_the_lease(r, settings, monkeypatch):
    monkeypatch.setattr(aggregator_module, "REFRESH_S", 600.0)  # a loaded machine's pauses
    topo = _province(2)
    keys = Keys(settings.key_prefix)
    write(r, iter(todays_entries(topo, settings, 150)))
    a = Aggregator(r, topo, settings.pipeline, consumer="upper-a")
    while a.step() or not a.all_idle():
        pass
    assert a.roll_up(full=True) == 3 and set(a.held) == set(topo.shards)
    day = datetime.now(ZoneInfo(settings.tz)).strftime("%Y%m%d")
    before = int(r.hget(keys.up_day("C1", day), "reported") or 0)
    rolled_at = r.hget(keys.up_meta("C1"), "rolled_at")

    # process a stalls: the leases of C1 and P lapse and b takes them
    r.delete(keys.lease("C1"), keys.lease("P"))
    r.zrem(keys.processes(), a.consumer)
    b = Aggregator(r, topo, settings.pipeline, consumer="upper-b")
    b.balance()
    assert {"C1", "P"} <= set(b.held) and "C1D0" not in b.held
    # a batch below C1 (its district is still a's)
    r.hincrby(keys.day("C1D0", day, "C1D0"), "reported", 5)
    # fenced: a writes C1 and P no more and lets them go (C2 is still its own)
    assert a.roll_up(full=True) == 1
    assert "C1" not in a.held and "P" not in a.held and {"C1D0", "C2"} <= set(a.held)
    assert r.hget(keys.up_meta("C1"), "rolled_at") == rolled_at
    assert b.roll_up() == 2  # C1, then P, from the figures below them
    assert int(r.hget(keys.up_day("C1", day), "reported")) == before + 5
    assert int(r.hget(keys.up_day("P", day), "reported")) == \
        int(r.hget(keys.up_day("C1", day), "reported")) + int(
            r.hget(keys.up_day("C2", day), "reported") or 0) + int(
            r.hget(keys.day("P", day, "P"), "reported") or 0)
    # nothing new below: the next passes (within REFRESH_S) read the versions only
    assert b.roll_up() == 0
    r.hincrby(keys.meta("C1D0"), "version", 1)  # a batch below C1: C1, then P, again
    assert b.roll_up() == 2
    a.release_all()
    b.release_all()


def test_upper105_a_run_until_idle_waits_for_a_dead_holders_roll_up(r, topo, settings):
    """A process died holding the city's shard after a partial roll-up pass (its older hour
    buckets never rolled): a run until idle must not end before it has taken the city over and
    written the full roll-up (it used to end at once — nothing pending anywhere — and the audit
    found the city's older hours behind: seen in tests/cluster crash001)."""
    import time

    write(r, iter(todays_entries(topo, settings, 1500)))
    dead = Aggregator(r, topo, settings.pipeline, consumer="upper-dead")
    dead._last_full_roll = time.monotonic()  # its passes so far were all partial ones
    while dead.step() or not dead.all_idle():
        pass
    city = topo.roots[0]
    assert city in dead._upper and topo.centres[city].shard in dead.held
    dead.roll_up()  # partial: today, the recent hours only; then it dies holding its leases
    behind = audit(r, topo, settings.pipeline)
    assert behind["differences"], "the partial pass should leave older hours behind"
    assert dead.roll_ups_orphaned() == []  # its own: not orphaned for itself
    dead.balance()  # its leases renewed just now (they lapse in lease_ms) …
    r.zadd(Keys(settings.key_prefix).processes(), {dead.consumer: now_ms() - 10_000})  # … dead

    survivor = Aggregator(r, topo, settings.pipeline, consumer="upper-survivor")
    t0 = time.monotonic()
    survivor.run(until_idle=True)
    assert time.monotonic() - t0 >= 0.5  # it waited for the dead lease (nothing was pending)
    report = audit(r, topo, settings.pipeline)
    assert report["differences"] == [] and report["ok"], report["differences"][:5]
