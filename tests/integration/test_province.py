"""A province-rooted region end to end on a real Redis (issue 13 item 4): the synthetic province
(2 cities × 2 counties × 2 towns × 2 villages) imports, the simulator and the aggregator run on
it, the audit is clean and the snapshots at the province, a city and a county are exact against
counts taken straight from the streams; the wall names its tiers in the region's words."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from dashboard.settings import Settings
from datasources.audit import audit
from datasources.keys import Keys
from datasources.migrations import migrate
from datasources.readmodel import ReadModel
from datasources.registry import make_engine
from datasources.registry_io import import_dir
from datasources.synthetic import province_registry
from datasources.topology import load_topology, subtree
from layouts import viewmodel
from layouts.wall import wall_screen
from tests.helpers import event, now_ms, run_until_idle, simulate

SIZES = {"cities": 2, "counties_per_city": 2, "towns_per_county": 2, "villages_per_town": 2,
         "grids_per_village": 2, "cameras_per_town": 4}


@pytest.fixture(scope="module")
def province_db(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("province")
    province_registry(d / "files", seed=11, **SIZES)
    url = f"sqlite:///{d / 'registry.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    import_dir(engine, d / "files")
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def ptopo(province_db):
    engine = make_engine(province_db)
    topo = load_topology(engine)
    engine.dispose()
    return topo


def counts_under(r, topo, keys: Keys, today: str, tz: str, code: str) -> Counter:
    """Today's events (by status, deduplicated, hand-offs left out), resolutions per level and
    patrols of `code`'s subtree, straight from XRANGE."""
    under = set(subtree(topo, code))
    zone = ZoneInfo(tz)
    seen: set = set()
    out: Counter = Counter()
    for shard in topo.shards:
        for kind in ("events", "patrols"):
            for _id, f in r.xrange(keys.stream(shard, kind)):
                if datetime.fromtimestamp(int(f[b"ts"]) / 1000, zone).strftime("%Y%m%d") != today:
                    continue
                if kind == "events":
                    centre = f[b"centre"].decode()
                    key = (f[b"eid"], f[b"status"], centre)
                    if f.get(b"handoff") == b"1" or key in seen or centre not in under:
                        continue
                    seen.add(key)
                    status = f[b"status"].decode()
                    out[status] += 1
                    if status == "resolved":
                        out[f"closed:{topo.centres[centre].level}"] += 1
                elif (b"p", f[b"pid"]) not in seen and topo.grid_centre[f[b"grid"].decode()] in under:
                    seen.add((b"p", f[b"pid"]))
                    out["patrols"] += 1
    return out


def test_province_pipeline_is_exact_at_every_tier_and_audits_clean(r, ptopo, province_db,
                                                                   redis_url, prefix, tmp_path):
    settings = Settings.from_env(data_dir=tmp_path, redis_url=redis_url, database_url=province_db,
                                 key_prefix=prefix, lease_ms=1500)
    topo, keys = ptopo, Keys(prefix)
    province = topo.roots[0]
    city = sorted(topo.children[province])[1]  # 铜川市
    county = sorted(topo.children[city])[0]
    assert (topo.centres[province].level, topo.centres[city].level) == (0, 1)
    # the shard tier stays level 2: the province and each city are their own shard
    assert topo.centres[province].shard == province and topo.centres[city].shard == city
    assert len(topo.shards) == 1 + 2 + 4

    assert simulate(r, topo, settings, 1500, seed=9) >= 1500
    # cases reported and closed at the province itself and at a city
    for centre, eid in ((province, "P-1"), (province, "P-2"), (city, "C-1")):
        shard = topo.centres[centre].shard
        ts = now_ms() - 60_000
        r.xadd(keys.stream(shard, "events"), event(centre, eid, ts=ts))
        r.xadd(keys.stream(shard, "events"), event(centre, eid, "resolved", ts=ts + 1000))
    run_until_idle(r, topo, settings)

    report = audit(r, topo, settings.pipeline)
    assert report["differences"] == []
    assert report["centres_checked"] == len(topo.centres) == 31

    rm = ReadModel(r, topo, settings.read_model)
    for code in (province, city, county):
        snap = rm.snapshot(code)
        today = snap["day"].replace("-", "")
        want = counts_under(r, topo, keys, today, settings.tz, code)
        ev = snap["events"]
        assert (ev["reported"], ev["resolved"], snap["grids"]["patrols"]) == \
            (want["reported"], want["resolved"], want["patrols"]), code
        assert want["reported"] > 0 and want["patrols"] > 0
        # closed at each of the region's tiers, province included
        assert list(ev["closed_at_level"]) == ["village", "town", "district", "city", "province"]
        assert ev["closed_at_level"] == {name: want[f"closed:{lv}"] for lv, name in
                                         enumerate(("province", "city", "district", "town",
                                                    "village"))}
        assert sum(ev["closed_at_level"].values()) == ev["resolved"]
    top = rm.snapshot(province)
    today = top["day"].replace("-", "")
    whole = counts_under(r, topo, keys, today, settings.tz, province)
    below = [counts_under(r, topo, keys, today, settings.tz, c) for c in topo.children[province]]
    own = whole["reported"] - sum(b["reported"] for b in below)  # reported at the province itself
    assert own > 0 and whole["closed:0"] > 0  # the simulator works the province's own cases too
    assert top["events"]["closed_at_level"]["province"] == whole["closed:0"]
    assert top["events"]["closed_at_level"]["city"] >= 1
    assert top["events"]["reported"] == sum(rm.snapshot(c)["events"]["reported"]
                                            for c in topo.children[province]) + own

    vm = viewmodel.build(top, topo, now_ms())
    text = str(wall_screen(vm, "zh"))
    assert "省综治中心" in text and "市排名" in text  # the synthetic province's tier names
