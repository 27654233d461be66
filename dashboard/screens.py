"""What the screens show, per centre, computed once per version of its sources per worker.

`ScreenData` turns (centre, the versions of its figures sources) into the view model, the
map's data and live layers, the tablet's replay and the portal widgets' data. A centre's
sources (`topology.sources`) are its own and its children's: a shard, or `^CODE`, the roll-up
of a centre above the shard tier — O(children), never every shard below it. Everything goes
through one `FlightCache` keyed by (name, centre, versions of its sources): when a version moves,
the first request computes the new value and the others wait for it instead of all reading
Redis at once (at 500 polling screens that stampede once ran gunicorn out of connections,
docs/live-push.md). The version watcher (`dashboard.versions`) invalidates the cache when a
read model goes back (a version down, a new epoch). Every read of a centre's versions tells
the watcher that a screen shows it (`VersionWatcher.watch`): the watcher reads only the
sources of centres in view.

The wall's router, its poll callback, the live stream and poll routes, the briefing view and
the embeds all use this one service; it is built in the app factory and handed in.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime
from typing import TypeVar
from zoneinfo import ZoneInfo

import redis

from dashboard.settings import Settings
from dashboard.versions import VersionWatcher
from datasources import alerts as alertdata
from datasources import cases as casedata
from datasources import geo as geodata
from datasources import wallcontrol
from datasources.geo import Geo
from datasources.keys import Keys
from datasources.readmodel import ReadModel
from datasources.replay import replay_data
from datasources.topology import Topology, source, sources
from layouts import map as mapview
from layouts import viewmodel

T = TypeVar("T")
CACHE_SIZE = 512
REPLAY_MAX_AGE_S = 60.0  # a replay payload younger than this is served again (per worker)
WALL_JSON = "walljson"     # the in-place drill's answers (dashboard/screen_api.py), ~50-250 KB
WALL_JSON_CACHE_SIZE = 64
REPLAY_CACHE_SIZE = 64   # replays are large (up to 5,000 case markers): fewer of them
ALERTS_SENT = "+a"        # ends a polling screen's version tag once it has the alert strip
DIRECTIVE_TICK_S = 0.2   # a wall group's directive is read at most this often per worker
ESCALATIONS_MAX_AGE_S = 5.0  # the map's escalation arcs are looked up at most this often
ESCALATED_CASES = 12     # the newest open escalated cases whose cards give the arcs


def version_tag(code: str, vm: dict) -> str:
    """What a polling screen or a portal widget holds: the centre, its data version and, once
    the aggregator writes them, a digest of the sources' epochs (a rebuild can bring back an
    old version number with other figures)."""
    shards = (vm.get("freshness") or {}).get("shards") or {}
    epochs = [str(m.get("epoch")) for m in shards.values() if m.get("epoch")]
    tag = f"{code}:{vm['version']}"
    return tag + ":" + hashlib.sha256(",".join(epochs).encode()).hexdigest()[:8] if epochs else tag


class FlightCache:
    """A bounded (LRU) cache of computed values by name, single flight per name.

    `get(name, versions, compute)` answers the cached value when it was computed at
    `versions` or later (tuples compare element-wise: a newer value serves an older request),
    else computes it, one caller per name at a time: the others wait for that result.
    `invalidate()` forgets everything, and a value computed across an invalidation is
    answered to its caller but not kept. `max_age_s` also refuses values older than that.
    Names are tuples whose first item is a kind; `limits` bounds the entries of a kind
    (least recently used first) within the overall `size`."""

    def __init__(self, size: int = CACHE_SIZE, limits: Mapping[str, int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.limits = dict(limits or {})
        self.clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[tuple, float, object]] = OrderedDict()
        self._flights: dict[Hashable, threading.Lock] = {}
        self._generation = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, name: Hashable) -> bool:
        with self._lock:
            return name in self._items

    def get(self, name: Hashable, versions: tuple, compute: Callable[[], T],
            max_age_s: float | None = None) -> T:
        with self._lock:
            key = (self._generation, *versions)
        hit = self._cached(name, key, max_age_s)
        if hit is not None:
            return hit[0]
        with self._lock:
            flight = self._flights.setdefault(name, threading.Lock())
        with flight:
            hit = self._cached(name, key, max_age_s)
            if hit is not None:
                return hit[0]
            started = self.clock()
            value = compute()
            with self._lock:
                if key[0] != self._generation:
                    return value  # computed from before an invalidation: not for the cache
                self._items[name] = (key, started, value)
                self._items.move_to_end(name)
                self._evict(name)
            return value

    def _evict(self, added: Hashable) -> None:
        """Drop the least recently used entries over `size`, and over the limit of the kind
        of `added`. Called with the lock held."""
        kind = added[0] if isinstance(added, tuple) and added else None
        limit = self.limits.get(kind) if isinstance(kind, str) else None
        if limit is not None:
            same = [n for n in self._items if isinstance(n, tuple) and n and n[0] == kind]
            for old in same[:max(0, len(same) - limit)]:
                del self._items[old]
                self._flights.pop(old, None)
        while len(self._items) > self.size:
            old, _ = self._items.popitem(last=False)
            self._flights.pop(old, None)

    def _cached(self, name: Hashable, key: tuple, max_age_s: float | None) -> tuple | None:
        """(value,) of a usable entry, else None (a cached None is a value too)."""
        with self._lock:
            hit = self._items.get(name)
            if hit is None or hit[0] < key:
                return None
            if max_age_s is not None and self.clock() - hit[1] >= max_age_s:
                return None
            self._items.move_to_end(name)
            return (hit[2],)

    def invalidate(self) -> None:
        """Forget every value (the read model went back: nothing before may look fresh)."""
        with self._lock:
            self._generation += 1
            self._items.clear()
            self._flights.clear()


class ScreenData:
    """The figures, map layers, replay and widget data of a centre, from one cache."""

    def __init__(self, *, r: redis.Redis, keys: Keys, topology: Topology, settings: Settings,
                 read_model: ReadModel, geo: Callable[[], Geo], watcher: VersionWatcher,
                 cache: FlightCache) -> None:
        """`geo` loads the geometry when first needed (0.4 s for the demo region: an app that
        never draws a map does not pay it)."""
        self.r = r
        self.keys = keys
        self.topology = topology
        self.settings = settings
        self.read_model = read_model
        self.watcher = watcher
        self.cache = cache
        self._load_geo = geo
        self._geo: Geo | None = None
        self._geo_lock = threading.Lock()

    @property
    def geo(self) -> Geo:
        with self._geo_lock:
            if self._geo is None:
                self._geo = self._load_geo()
            return self._geo

    def registry_changed(self) -> None:
        """The registry was reloaded in place (dashboard/versions.py): drop the geometry and
        every cached view (names, vocabulary, children and totals may all have changed)."""
        with self._geo_lock:
            self._geo = None
        self.cache.invalidate()

    def metas(self, code: str) -> dict[str, dict]:
        """The current metas, `code` watched first (a centre newly in view has its sources
        read at once)."""
        self.watcher.watch(code)
        return self.watcher.metas_now()

    def versions(self, code: str, metas: dict[str, dict] | None = None) -> tuple:
        """The versions of `code`'s sources (its own, its children's): the cache key of its
        views. Marks `code` as in view (`VersionWatcher.watch`)."""
        self.watcher.watch(code)
        metas = metas if metas is not None else self.watcher.metas_now()
        return tuple(metas.get(s, {}).get("version", 0) for s in sources(self.topology, code))

    def root_versions(self, metas: dict[str, dict]) -> tuple:
        """The versions of the roots' own sources (always watched): a root's roll-up moves
        whenever any shard below it moves, its shard when the region is one shard."""
        return tuple(metas.get(source(self.topology, root), {}).get("version", 0)
                     for root in self.topology.roots)

    # -- live figures and map -------------------------------------------------------------
    def view(self, code: str, metas: dict[str, dict] | None = None) -> dict:
        """The centre's view model, computed once per version of its sources (per worker)."""
        return self.cache.get(
            ("vm", code), self.versions(code, metas),
            lambda: viewmodel.build(self.read_model.snapshot(code), self.topology,
                                    int(time.time() * 1000)))

    def map_data(self, code: str, metas: dict[str, dict] | None = None) -> dict:
        """What the map shows beyond the view model: patrols per grid (at a village), camera
        states and recent cases in scope; once per version per worker."""
        topo = self.topology

        def compute() -> dict:
            now = datetime.now(ZoneInfo(self.settings.tz))
            now_ms = int(now.timestamp() * 1000)
            info = topo.centres[code]
            coverage = (geodata.grid_coverage(self.r, self.keys, topo, code,
                                              now.strftime("%Y%m%d"))
                        if info.level >= 4 or not topo.children.get(code) else {})
            return {
                "coverage": coverage,
                "states": geodata.camera_states(self.r, self.keys, topo, code),
                "recent": geodata.recent_cases(self.r, self.keys, topo, code, now_ms),
            }

        return self.cache.get(("map", code), self.versions(code, metas), compute)

    def map_live(self, code: str, lang: str, metas: dict[str, dict] | None = None) -> dict:
        """Component id → props for the map's live layers (hideouts, recent cases)."""

        def compute() -> dict:
            vm = self.view(code, metas)
            data = self.map_data(code, metas)
            try:
                escalations = self.escalations(code)
            except (redis.RedisError, casedata.CaseError):
                escalations = []  # the arcs are decoration: the figures go on without them
            props = mapview.live_props(
                self.geo, code, vm, data["coverage"], data["states"], data["recent"],
                int(time.time() * 1000), lang=lang,
                patrols_per_day=self.settings.patrols_per_day, escalations=escalations)
            props.pop(mapview.map_ids()["legend"], None)  # components: sent with the page
            return props

        return self.cache.get(("maplive", code, lang), self.versions(code, metas), compute)

    def map_payload(self, code: str, vm: dict, indicator: str, lang: str) -> dict:
        """The drill-down map of a screen as it is first drawn, with its current live layers
        (recent cases are drawn in place by assets/map.js from the live stream)."""
        data = self.map_data(code)
        return mapview.map_payload(
            self.geo, code, vm, coverage=data["coverage"], states=data["states"],
            recent=[], now_ms=int(time.time() * 1000), indicator=indicator,
            lang=lang, patrols_per_day=self.settings.patrols_per_day)

    # -- the wall as a command post (issue 10) ---------------------------------------------
    def alerts(self, code: str, metas: dict[str, dict] | None = None) -> dict:
        """The alert strip of `code`'s wall (viewmodel.alert_rows), once per version per
        worker. The key is the versions of `code`'s sources and of the roots' own: an alert
        may live on another shard than its centre's (datasources.alerts.list_alerts), and a
        root's roll-up moves with any shard below it (within the roll-up's interval)."""
        metas = metas if metas is not None else self.metas(code)
        versions = (*self.versions(code, metas), *self.root_versions(metas))

        def compute() -> dict:
            # every shard's raised alerts, read once per worker per version of the roots'
            # own sources (a roll-up moves with any shard below, within its interval): a
            # worker showing 100 centres reads them once, not 100 times (a province: 111
            # shards each)
            raised = self.cache.get(
                ("alerts-raised",), self.root_versions(metas),
                lambda: alertdata.list_alerts(self.r, self.topology, self.keys, None,
                                              states=("raised",), limit=10**9))
            found = alertdata.alerts_within(raised, self.topology, code,
                                            limit=4 * viewmodel.MAX_STRIP_ALERTS)
            return viewmodel.alert_rows([a.to_dict() for a in found], self.topology, code)

        return self.cache.get(("alerts", code), versions, compute)

    def escalations(self, code: str) -> list[dict]:
        """Recent escalations in `code`'s subtree ({eid, from, to, ts}) for the map's arcs:
        the escalation steps of the cards of its newest open escalated cases (the read model
        keeps no list of escalations). Bounded: one list and ESCALATED_CASES cards, at most
        every ESCALATIONS_MAX_AGE_S per centre per worker, not once per version."""

        def compute() -> list[dict]:
            now = int(time.time() * 1000)
            found = casedata.list_cases(self.r, self.topology, self.keys, code, "escalated",
                                        limit=ESCALATED_CASES, now_ms=now)
            out = []
            for row in found.cases:
                card = casedata.case_card(self.r, self.topology, self.keys, row.eid, now)
                for step in card.steps if card is not None else ():
                    if (step.status == "escalated" and step.to
                            and now - step.ts <= mapview.ARC_MAX_AGE_S * 1000):
                        out.append({"eid": row.eid, "from": step.centre, "to": step.to,
                                    "ts": step.ts})
            return out

        return self.cache.get(("escalations", code), (), compute,
                              max_age_s=ESCALATIONS_MAX_AGE_S)

    def directive(self, group: str) -> dict | None:
        """The current directive of the wall group `group` (datasources.wallcontrol): one
        Redis read per worker per DIRECTIVE_TICK_S, whatever the number of walls following
        it. Not scope-checked here: viewmodel.directive_view does that per viewer."""
        tick = int(time.monotonic() / DIRECTIVE_TICK_S)

        def compute() -> dict | None:
            d = wallcontrol.get_directive(self.r, self.keys, group)
            return d.to_dict() if d is not None else None

        return self.cache.get(("directive", group), (tick,), compute)

    # -- freshness, calls, polling ----------------------------------------------------------
    def freshness(self, code: str, metas: dict[str, dict] | None, down_since: int | None) -> dict:
        """Now, since when Redis is away, and the meta of each of `code`'s sources under
        `shards`, named by `viewmodel.source_name` (assets/wall.js judges staleness per
        entry), as in the view model's own freshness."""
        return {
            "now": int(time.time() * 1000),
            "redis_down_since": down_since,
            "shards": {viewmodel.source_name(s): (metas or {}).get(s, {})
                       for s in sources(self.topology, code)},
        }

    def is_fresh(self, code: str) -> bool:
        """Redis answers and every one of `code`'s sources had an aggregator heartbeat lately
        (a roll-up's heartbeat is the oldest of what it was rolled from)."""
        self.watcher.watch(code)
        metas, _down = self.watcher.state()
        if metas is None:
            return False
        now = time.time() * 1000
        for src in sources(self.topology, code):
            hb = metas.get(src, {}).get("heartbeat")
            if not hb or now - hb > self.settings.stale_after_s * 1000:
                return False
        return True

    def in_call(self, code: str) -> list[str]:
        """The centres in view (the centre and its children) that are in a call."""
        return self.watcher.in_call({code, *self.topology.children.get(code, ())})

    def poll(self, code: str, have: str | None, group: str = "",
             scope: str | None = None) -> tuple[dict, str | None]:
        """One poll of a screen that holds `have` (a `version_tag`): the view model's keys
        and the alert strip (all of them when the tag moved), always the freshness and the
        calls in view, and for a wall of the group `group` (`?screen=`) seen by a viewer of
        `scope` the group's directive as that viewer may follow it."""
        self.watcher.watch(code)
        metas, down = self.watcher.state()
        payload: dict = {}
        version = have
        if metas is not None:
            vm = self.view(code, metas)
            current = version_tag(code, vm)
            if self.watcher.registry_generation:  # a reloaded registry: every screen redraws
                current += f":r{self.watcher.registry_generation}"
            # the page is rendered with the view model but not the alert strip: a tag the
            # strip went with ends in ALERTS_SENT (the router's first tag does not)
            base = (have or "").removesuffix(ALERTS_SENT)
            if current != base:
                payload = {k: v for k, v in vm.items() if k != "freshness"}
            if current != base or not (have or "").endswith(ALERTS_SENT):
                payload["alerts"] = self.alerts(code, metas)
            version = current + ALERTS_SENT
        payload["freshness"] = self.freshness(code, metas, down)
        payload["in_call"] = self.in_call(code)
        if group and scope is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                payload["directive"] = viewmodel.directive_view(self.directive(group),
                                                                self.topology, scope)
        return payload, version

    # -- the tablet's replay and the portal widgets -----------------------------------------
    def replay(self, code: str) -> dict:
        """The last 24 hours of `code` for the briefing view's replay, recomputed when older
        than REPLAY_MAX_AGE_S (it reads hours of streams: not once per version)."""

        def compute() -> dict:
            data = replay_data(self.r, self.keys, self.topology, code, int(time.time() * 1000),
                               tz=self.settings.tz)
            data["colors"] = mapview.CASE_COLORS
            return data

        return self.cache.get(("replay", code), (), compute, max_age_s=REPLAY_MAX_AGE_S)

    def embed(self, code: str) -> tuple[dict, bool]:
        """A portal widget's view model and whether it is fresh. Its `version` is the
        `version_tag` without the code: after a rebuild or a Redis restart the same version
        number can come back with other figures."""
        vm = self.view(code)
        return {**vm, "version": version_tag(code, vm).split(":", 1)[1]}, self.is_fresh(code)

    def features(self, code: str) -> list[dict]:
        """The regions a map widget draws: the children, or the centre itself at a leaf."""
        return self.geo.children_features(code)["features"] or [self.geo.self_feature(code)]
