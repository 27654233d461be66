"""Live push: one Redis read per worker per tick, fanned out to every screen over SSE.

Per worker process, one `LiveHub` polls the shards' meta hashes (version, heartbeat, …) every
`poll_s` and wakes the screens' streams when a version moves. A screen's stream then takes the
view model of its centre from a cache keyed by the versions of the shards it depends on, so a
version is read and shaped once per worker however many screens show it, and sends only the
top-level keys that changed. Freshness (heartbeats, data age) travels with every message and
at least every `keepalive_s`, so a screen notices a stalled aggregator, a silent shard, an
unreachable Redis or a dead server by itself. Measured against interval polling in
docs/live-push.md.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import redis
from flask import Flask, Response, abort, request

from dashboard import access
from dashboard.runtime import Runtime
from datasources import geo
from datasources.keys import Keys
from datasources.vc import Conferences
from layouts import map as mapview
from layouts import viewmodel

STREAM_PATH = "/live/stream"
VERSION_PATH = "/live/version"


class LiveHub:
    def __init__(self, runtime: Runtime, poll_s: float = 0.05, cache_size: int = 512) -> None:
        self.runtime = runtime
        self.poll_s = poll_s
        self.cache_size = cache_size
        self.keys = Keys(runtime.settings.key_prefix)
        self._cond = threading.Condition()
        self._metas: dict[str, dict] | None = None
        self._down_since: int | None = None
        self._tick = 0
        self._vms: OrderedDict[str, tuple[tuple, object]] = OrderedDict()
        self._vm_lock = threading.Lock()
        self._flights: dict[str, threading.Lock] = {}
        self._started = False
        self._start_lock = threading.Lock()
        self._in_call: frozenset[str] = frozenset()
        s = runtime.settings
        self.conferences = Conferences(runtime.redis, runtime.topology, s.key_prefix,
                                       s.conference_url_template, s.vc_timeout_s)

    # -- polling ------------------------------------------------------------------------
    def start(self) -> None:
        with self._start_lock:
            if not self._started:
                self._started = True
                self._publish(self.read_metas())  # the first screens need not wait a tick
                self.refresh_calls()
                threading.Thread(target=self._loop, name="pingan-live-hub", daemon=True).start()

    def read_metas(self) -> dict[str, dict] | None:
        """Every shard's meta hash; None while Redis cannot be reached."""
        shards = self.runtime.topology.shards
        try:
            pipe = self.runtime.redis.pipeline(transaction=False)
            for s in shards:
                pipe.hgetall(self.keys.meta(s))
            replies = pipe.execute()
        except (redis.RedisError, OSError):
            return None
        return {
            s: {k.decode(): int(v) for k, v in m.items()}
            for s, m in zip(shards, replies, strict=True)
        }

    def _publish(self, metas: dict[str, dict] | None) -> None:
        with self._cond:
            changed = metas != self._metas
            if metas is None and self._down_since is None:
                self._down_since = int(time.time() * 1000)
            elif metas is not None:
                self._down_since = None
            self._metas = metas
            if changed:
                self._tick += 1
                self._cond.notify_all()

    def _loop(self) -> None:
        n = 0
        while True:
            time.sleep(self.poll_s)
            self._publish(self.read_metas())
            n += 1
            if n % max(1, int(1 / self.poll_s)) == 0:
                self.refresh_calls()

    def refresh_calls(self) -> None:
        """Which centres are in a video call (ends timed-out calls); wakes screens on change."""
        try:
            codes = frozenset(self.conferences.in_call())
        except (redis.RedisError, OSError):
            return
        with self._cond:
            if codes != self._in_call:
                self._in_call = codes
                self._tick += 1
                self._cond.notify_all()

    def in_call(self, code: str) -> list[str]:
        """The centres in view (the centre and its children) that are in a call."""
        scope = {code, *self.runtime.topology.children.get(code, ())}
        with self._cond:
            return sorted(scope & self._in_call)

    def wait(self, seen_tick: int, timeout: float) -> int:
        """Block until the metas changed after `seen_tick` (or timeout); return the tick."""
        self.start()
        with self._cond:
            if self._tick == seen_tick:
                self._cond.wait(timeout)
            return self._tick

    def state(self) -> tuple[dict[str, dict] | None, int | None]:
        self.start()
        with self._cond:
            return self._metas, self._down_since

    # -- view models --------------------------------------------------------------------
    def shards_of(self, code: str) -> list[str]:
        topo = self.runtime.topology
        return sorted({topo.centres[h].shard for h in topo.shard_heads(code)})

    def _versions(self, code: str, metas: dict[str, dict] | None) -> tuple:
        metas = metas if metas is not None else (self.state()[0] or self.read_metas() or {})
        return tuple(metas.get(s, {}).get("version", 0) for s in self.shards_of(code))

    def _memo(self, name: str, key: tuple, compute):
        """Per-worker cache of `compute()` for `name` at versions `key`, single flight: when a
        version moves, the first request computes it and the others wait for that result
        instead of all reading Redis at once. Bounded (LRU)."""
        hit = self._cached(name, key)
        if hit is not None:
            return hit
        with self._vm_lock:
            flight = self._flights.setdefault(name, threading.Lock())
        with flight:
            hit = self._cached(name, key)
            if hit is not None:
                return hit
            value = compute()
            with self._vm_lock:
                self._vms[name] = (key, value)
                self._vms.move_to_end(name)
                while len(self._vms) > self.cache_size:
                    old, _ = self._vms.popitem(last=False)
                    self._flights.pop(old, None)
            return value

    def _cached(self, name: str, key: tuple):
        with self._vm_lock:
            hit = self._vms.get(name)
            if hit is not None and hit[0] >= key:
                self._vms.move_to_end(name)
                return hit[1]
        return None

    def view(self, code: str, metas: dict[str, dict] | None = None) -> dict:
        """The centre's view model, computed once per version of its shards (per worker)."""
        rt = self.runtime
        return self._memo(
            f"vm:{code}", self._versions(code, metas),
            lambda: viewmodel.build(rt.read_model.snapshot(code), rt.topology,
                                    int(time.time() * 1000)))

    def map_data(self, code: str, metas: dict[str, dict] | None = None) -> dict:
        """What the map shows beyond the view model: patrols per grid (at a village), camera
        states and recent cases in scope; once per version per worker."""
        rt = self.runtime

        def compute() -> dict:
            now = datetime.now(ZoneInfo(rt.settings.tz))
            now_ms = int(now.timestamp() * 1000)
            info = rt.topology.centres[code]
            coverage = (geo.grid_coverage(rt.redis, self.keys, rt.topology, code,
                                          now.strftime("%Y%m%d"))
                        if info.level >= 4 or not rt.topology.children.get(code) else {})
            return {
                "coverage": coverage,
                "states": geo.camera_states(rt.redis, self.keys, rt.topology, code),
                "recent": geo.recent_cases(rt.redis, self.keys, rt.topology, code, now_ms),
            }

        return self._memo(f"map:{code}", self._versions(code, metas), compute)

    def map_live(self, code: str, lang: str, metas: dict[str, dict] | None = None) -> dict:
        """Component id → props for the map's live layers (hideouts, recent cases)."""
        rt = self.runtime
        key = self._versions(code, metas)

        def compute() -> dict:
            vm = self.view(code, metas)
            data = self.map_data(code, metas)
            props = mapview.live_props(
                rt.geo, code, vm, data["coverage"], data["states"], data["recent"],
                int(time.time() * 1000), lang=lang,
                patrols_per_day=rt.settings.patrols_per_day)
            props.pop(mapview.map_ids()["legend"], None)  # components: sent with the page
            return props

        return self._memo(f"maplive:{code}:{lang}", key, compute)

    def freshness(self, code: str, metas: dict[str, dict] | None, down_since: int | None) -> dict:
        shards = self.shards_of(code)
        return {
            "now": int(time.time() * 1000),
            "redis_down_since": down_since,
            "shards": {s: (metas or {}).get(s, {}) for s in shards},
        }

    def poll(self, code: str, have: str | None) -> tuple[dict, str | None]:
        """One poll of a screen that has version `have` ("code:version"): the changed view
        model keys (all of them when the version moved) and always the freshness."""
        metas, down = self.state()
        payload: dict = {}
        version = have
        if metas is not None:
            vm = self.view(code, metas)
            current = f"{code}:{vm['version']}"
            if current != have:
                payload = {k: v for k, v in vm.items() if k != "freshness"}
                version = current
        payload["freshness"] = self.freshness(code, metas, down)
        payload["in_call"] = self.in_call(code)
        return payload, version

    # -- SSE ----------------------------------------------------------------------------
    def stream(self, code: str, lang: str = "zh", min_gap_s: float = 0.25,
               keepalive_s: float = 2.0, max_s: float | None = None) -> Iterator[str]:
        """Server-sent events for one screen: the changed view-model keys, freshness."""
        yield "retry: 2000\n\n"
        last: dict | None = None
        last_calls: list[str] | None = None
        last_map: dict | None = None
        sent_cases: dict[str, set[str]] = {}  # per cases layer: the case ids this screen has
        tick = -1
        sent_at = 0.0
        started = time.monotonic()
        while max_s is None or time.monotonic() - started < max_s:
            tick = self.wait(tick, keepalive_s)
            gap = time.monotonic() - sent_at
            if gap < min_gap_s:
                time.sleep(min_gap_s - gap)
            metas, down = self.state()
            payload: dict = {}
            if metas is not None:
                try:
                    vm = self.view(code, metas)
                except (redis.RedisError, OSError):
                    vm = None
                if vm is not None:
                    payload = viewmodel.diff(last, vm)
                    payload.pop("freshness", None)
                    last = vm
                    try:
                        live_map = self.map_live(code, lang, metas)
                    except (redis.RedisError, OSError):
                        live_map = last_map
                    if live_map is not last_map and live_map != last_map:
                        payload["map"] = cases_delta(live_map, sent_cases)
                        last_map = live_map
            payload["freshness"] = self.freshness(code, metas, down)
            calls = self.in_call(code)
            if calls != last_calls:
                payload["in_call"] = last_calls = calls
            sent_at = time.monotonic()
            yield f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def cases_delta(live_map: dict, sent: dict[str, set[str]]) -> dict:
    """The map's live props with each recent-cases layer as a delta against what this screen
    already has: `add` (new case features) and `drop` (ids gone); the first message carries the
    whole `data`. A busy city has hundreds of recent cases: resending all of them 4x a second
    was ~180 KB per message per screen (docs/live-push.md); a delta is a few KB.
    Updates `sent` in place."""
    out = {}
    for cid, props in live_map.items():
        if not cid.endswith("-cases") or "data" not in props:
            out[cid] = props
            continue
        features = (props.get("data") or {}).get("features") or []
        by_id = {f["properties"]["eid"]: f for f in features}
        have = sent.get(cid)
        if have is None:
            out[cid] = props
        else:
            rest = {k: v for k, v in props.items() if k != "data"}
            out[cid] = {**rest, "add": [f for e, f in by_id.items() if e not in have],
                        "drop": sorted(have - by_id.keys())}
        sent[cid] = set(by_id)
    return out


POLL_PATH = "/live/poll"


def _allowed_centre(hub: LiveHub) -> str:
    """The `centre` argument when the viewer may see it; 403 otherwise (also for unknown
    codes, so the answer does not tell which codes exist outside the viewer's scope)."""
    code = request.args.get("centre", "")
    if not access.allowed(hub.runtime.topology, code):
        abort(403)
    return code


def register_routes(server: Flask, hub: LiveHub) -> None:
    @server.get(POLL_PATH)
    def live_poll():
        """The same answer as the Dash poll callback, as plain JSON (baseline of bench/serve)."""
        code = _allowed_centre(hub)
        payload, version = hub.poll(code, request.args.get("have"))
        return {"version": version, "vm": payload}

    @server.get(VERSION_PATH)
    def live_version():
        """The centre's data version and freshness, as plain JSON (for monitoring)."""
        code = _allowed_centre(hub)
        metas, down = hub.state()
        shards = hub.shards_of(code)
        version = sum((metas or {}).get(s, {}).get("version", 0) for s in shards)
        return {"centre": code, "version": version, "freshness": hub.freshness(code, metas, down)}

    @server.get(STREAM_PATH)
    def live_stream():
        code = _allowed_centre(hub)
        lang = request.args.get("lang", "zh")
        if lang not in ("zh", "en"):
            abort(400)
        resp = Response(hub.stream(code, lang), mimetype="text/event-stream")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        return resp
