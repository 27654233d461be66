"""Live push: one Redis read per worker per tick, fanned out to every screen over SSE.

Per worker process, one `LiveHub` polls the shards' meta hashes (version, heartbeat, …) every
`poll_s` and wakes the screens' streams when a version moves. A screen's stream then takes the
view model of its centre from a cache keyed by the versions of the shards it depends on, so a
version is read and shaped once per worker however many screens show it, and sends only the
top-level keys that changed. Freshness (heartbeats, data age) travels with every message and
at least every `keepalive_s`, so a screen notices a stalled aggregator, a silent shard, an
unreachable Redis or a dead server by itself. Measured against interval polling in
docs/live-push.md.

Hardening (docs/security.md):
- The meta hashes are read as untrusted input (`readmodel.parse_meta`), and the polling loop
  logs and survives any exception: one garbage value must not freeze every screen.
- A shard version that goes backwards (Redis restored from an older AOF, `pingan rebuild`)
  or a changed `epoch` clears the cached view models: nothing cached before may look fresh.
- A stream re-checks its viewer every `RECHECK_S` (signed out, removed, password or scope
  changed) and ends with an `end` event when the viewer no longer holds.
- Open streams are capped per signed-in user across workers (`PINGAN_MAX_STREAMS_PER_USER`):
  one more is answered 429.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import redis
from flask import Flask, Response, abort, request

from dashboard import access
from dashboard.runtime import Runtime
from datasources import geo
from datasources.keys import Keys
from datasources.readmodel import parse_meta
from datasources.vc import Conferences
from layouts import map as mapview
from layouts import viewmodel

STREAM_PATH = "/live/stream"
VERSION_PATH = "/live/version"
RECHECK_S = 2.0        # an open stream re-checks its viewer this often
log = logging.getLogger(__name__)


def version_tag(code: str, vm: dict) -> str:
    """What a polling screen holds: the centre, its data version and, once the aggregator
    writes them, a digest of the shards' epochs (a rebuild can bring back an old version
    number with other figures)."""
    shards = (vm.get("freshness") or {}).get("shards") or {}
    epochs = [str(m.get("epoch")) for m in shards.values() if m.get("epoch")]
    tag = f"{code}:{vm['version']}"
    return tag + ":" + hashlib.sha256(",".join(epochs).encode()).hexdigest()[:8] if epochs else tag


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
        self._generation = 0          # bumped when a version goes backwards or an epoch moves
        self._last_good: dict[str, dict] = {}
        self._bad_meta: frozenset[tuple[str, str]] = frozenset()
        self._errors = 0
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
        """Every shard's meta hash (garbage values left out and logged, readmodel.parse_meta);
        None while Redis cannot be reached."""
        shards = self.runtime.topology.shards
        try:
            pipe = self.runtime.redis.pipeline(transaction=False)
            for s in shards:
                pipe.hgetall(self.keys.meta(s))
            replies = pipe.execute()
        except (redis.RedisError, OSError):
            return None
        metas, bad = {}, set()
        for s, raw in zip(shards, replies, strict=True):
            metas[s], fields = parse_meta(raw)
            bad.update((s, f) for f in fields)
        if bad != self._bad_meta:  # logged when it changes, not 20 times a second
            self._bad_meta = frozenset(bad)
            if bad:
                log.warning("live: ignoring malformed meta fields %s", sorted(bad)[:20])
        return metas

    def _invalidate_if_rewound(self, metas: dict[str, dict]) -> None:
        """A shard whose version went down, or whose epoch changed, since the last answer
        from Redis (also across an outage): forget every cached view model."""
        rewound = [s for s, m in metas.items()
                   if (old := self._last_good.get(s)) is not None
                   and (m.get("version", 0) < old.get("version", 0)
                        or m.get("epoch") != old.get("epoch"))]
        self._last_good = metas
        if rewound:
            log.warning("live: read model of shards %s went back (version or epoch): "
                        "cached views dropped", rewound)
            with self._vm_lock:
                self._generation += 1
                self._vms.clear()
                self._flights.clear()

    def _publish(self, metas: dict[str, dict] | None) -> None:
        if metas is not None:
            self._invalidate_if_rewound(metas)
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
        """Never ends: an exception is logged (rate-limited) and the next tick tries again;
        a dead loop would freeze every screen of this worker."""
        n = 0
        while True:
            time.sleep(self.poll_s)
            try:
                self._publish(self.read_metas())
                n += 1
                if n % max(1, int(1 / self.poll_s)) == 0:
                    self.refresh_calls()
            except Exception:
                self._errors += 1
                if self._errors <= 3 or self._errors % 1000 == 0:
                    log.exception("live: polling failed (%d so far); going on", self._errors)
                time.sleep(min(1.0, 10 * self.poll_s))

    def refresh_calls(self) -> None:
        """Which centres are in a video call (ends timed-out calls); wakes screens on change."""
        try:
            codes = frozenset(self.conferences.in_call())
        except (redis.RedisError, OSError):
            return
        except Exception:
            log.exception("live: reading the calls in progress failed")
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
        """The cache key of a centre's views: this worker's cache generation, then the
        versions of the shards it depends on."""
        metas = metas if metas is not None else (self.state()[0] or self.read_metas() or {})
        return (self._generation,
                *(metas.get(s, {}).get("version", 0) for s in self.shards_of(code)))

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
                if key[0] != self._generation:
                    return value  # computed from before a rewind: not for the cache
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
            current = version_tag(code, vm)
            if current != have:
                payload = {k: v for k, v in vm.items() if k != "freshness"}
                version = current
        payload["freshness"] = self.freshness(code, metas, down)
        payload["in_call"] = self.in_call(code)
        return payload, version

    # -- SSE ----------------------------------------------------------------------------
    def stream(self, code: str, lang: str = "zh", min_gap_s: float = 0.25,
               keepalive_s: float = 2.0, max_s: float | None = None,
               still_valid: Callable[[], str | None] | None = None,
               recheck_s: float = RECHECK_S) -> Iterator[str]:
        """Server-sent events for one screen: the changed view-model keys, freshness.

        `still_valid()` is called every `recheck_s` (outside the request context): None while
        the viewer may go on watching, else the reason, sent as a last `end` event before
        the stream closes. A failure to build the view is logged and costs the figures of
        that message, never the stream: freshness keeps flowing."""
        yield "retry: 2000\n\n"
        last: dict | None = None
        last_calls: list[str] | None = None
        last_map: dict | None = None
        sent_cases: dict[str, set[str]] = {}  # per cases layer: the case ids this screen has
        tick = -1
        sent_at = 0.0
        started = checked = time.monotonic()
        failures = 0
        while max_s is None or time.monotonic() - started < max_s:
            tick = self.wait(tick, keepalive_s)
            gap = time.monotonic() - sent_at
            if gap < min_gap_s:
                time.sleep(min_gap_s - gap)
            if still_valid is not None and time.monotonic() - checked >= recheck_s:
                checked = time.monotonic()
                reason = still_valid()
                if reason:
                    yield f"event: end\ndata: {json.dumps({'reason': reason})}\n\n"
                    return
            metas, down = self.state()
            payload: dict = {}
            if metas is not None:
                try:
                    vm = self.view(code, metas)
                    payload = viewmodel.diff(last, vm)
                    payload.pop("freshness", None)
                    last = vm
                    live_map = self.map_live(code, lang, metas)
                    if live_map is not last_map and live_map != last_map:
                        payload["map"] = cases_delta(live_map, sent_cases)
                        last_map = live_map
                except (redis.RedisError, OSError):
                    pass
                except Exception:
                    failures += 1
                    if failures <= 3 or failures % 100 == 0:
                        log.exception("live: the view of %s failed (%d times in this stream)",
                                      code, failures)
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

_OPEN_SLOT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class StreamSlots:
    """Open live streams per user, counted in Redis so the cap holds across workers and
    hosts: one sorted set per user of stream ids scored by when they lapse. An open stream
    renews its entry every `RENEW_S`, a closed one removes it; the entries of a worker that
    died lapse after `TTL_S`. Without Redis the cap is not enforced (there is nothing to
    stream either)."""

    TTL_S = 60
    RENEW_S = 15

    def __init__(self, r: redis.Redis, prefix: str, cap: int) -> None:
        self.r = r
        self.prefix = prefix
        self.cap = cap
        self._open = r.register_script(_OPEN_SLOT)

    def key(self, name: str) -> str:
        return f"{self.prefix}:{{auth}}:streams:{name}"

    def open(self, name: str) -> str | None:
        """A slot id for a new stream of `name`; None when the user has `cap` open ("" when
        Redis could not be asked, or there is no cap)."""
        if self.cap <= 0:
            return ""
        slot = secrets.token_hex(8)
        try:
            ok = self._open(keys=[self.key(name)], args=[int(time.time() * 1000), self.cap,
                                                         self.TTL_S * 1000, slot])
        except (redis.RedisError, OSError):
            return ""
        return slot if ok else None

    def renew(self, name: str, slot: str) -> None:
        if not slot:
            return
        with contextlib.suppress(redis.RedisError, OSError):
            pipe = self.r.pipeline(transaction=True)
            pipe.zadd(self.key(name), {slot: int(time.time() * 1000) + self.TTL_S * 1000})
            pipe.pexpire(self.key(name), self.TTL_S * 1000)
            pipe.execute()

    def close(self, name: str, slot: str) -> None:
        if not slot:
            return
        with contextlib.suppress(redis.RedisError, OSError):
            self.r.zrem(self.key(name), slot)


def _allowed_centre(hub: LiveHub) -> str:
    """The `centre` argument when the viewer may see it; 403 otherwise (also for unknown
    codes, so the answer does not tell which codes exist outside the viewer's scope)."""
    code = request.args.get("centre", "")
    if not access.allowed(hub.runtime.topology, code):
        abort(403)
    return code


def register_routes(server: Flask, hub: LiveHub) -> None:
    topo = hub.runtime.topology
    slots = StreamSlots(hub.runtime.redis, hub.runtime.settings.key_prefix,
                        hub.runtime.settings.max_streams_per_user)

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
        viewer = access.require_viewer()
        recheck = access.revalidator()  # captured now: the stream runs outside the request

        def still_valid() -> str | None:
            try:
                now = recheck()
            except Exception:  # cannot tell (database down): keep streaming, stale is shown
                log.exception("live: re-checking %s's session failed", viewer.name)
                return None
            if now is None:
                return "signed_out"
            return None if now.sees(topo, code) else "scope"

        slot = "" if viewer.demo or viewer.open else slots.open(viewer.name)
        if slot is None:
            return Response("too many open live streams for this user\n", status=429,
                            mimetype="text/plain", headers={"Retry-After": "30"})

        def body() -> Iterator[str]:
            renewed = time.monotonic()

            def valid() -> str | None:
                nonlocal renewed
                if slot and time.monotonic() - renewed >= slots.RENEW_S:
                    renewed = time.monotonic()
                    slots.renew(viewer.name, slot)
                return still_valid()

            try:
                yield from hub.stream(code, lang, still_valid=valid)
            finally:
                slots.close(viewer.name, slot)

        resp = Response(body(), mimetype="text/event-stream")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        return resp
