"""Live push: the SSE and poll routes, fanning one Redis read per worker per tick out to
every screen.

The version watcher (`dashboard.versions`) reads the meta hashes of the figures sources of
the centres in view once per tick and wakes the streams (an open stream keeps its centre
watched); a screen's stream then takes its centre's view model and map layers from the
screen-data service (`dashboard.screens`, one single-flight cache keyed by the versions of
the centre's sources) and sends only the top-level keys that changed. Freshness
(heartbeats, data age) travels with every message and at least every `keepalive_s`, so a
screen notices a stalled aggregator, a silent shard, an unreachable Redis or a dead server by
itself. Measured against interval polling in docs/live-push.md.

Hardening (docs/security.md):
- A stream re-checks its viewer every `RECHECK_S` (signed out, removed, password or scope
  changed) and ends with an `end` event when the viewer no longer holds.
- Open streams are capped per signed-in user across workers (`PINGAN_MAX_STREAMS_PER_USER`):
  one more is answered 429.
- A failure to build a view costs the figures of one message, never the stream.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator

import redis
from flask import Flask, Response, abort, request

from dashboard import access
from dashboard.screens import ScreenData
from dashboard.settings import Settings
from dashboard.versions import VersionWatcher
from datasources.keys import Keys
from datasources.wallcontrol import BadGroup, check_group
from layouts import viewmodel

STREAM_PATH = "/live/stream"
VERSION_PATH = "/live/version"
POLL_PATH = "/live/poll"
RECHECK_S = 2.0        # an open stream re-checks its viewer this often
FOLLOW_S = 0.25        # a wall following a console's group looks at its directive this often
log = logging.getLogger(__name__)


def stream(watcher: VersionWatcher, screens: ScreenData, code: str, lang: str = "zh",
           min_gap_s: float = 0.25, keepalive_s: float = 2.0, max_s: float | None = None,
           still_valid: Callable[[], str | None] | None = None,
           recheck_s: float = RECHECK_S,
           follow: Callable[[], dict | None] | None = None) -> Iterator[str]:
    """Server-sent events for one screen: the changed view-model keys, the alert strip
    (`alerts`, when it changed), freshness.

    `still_valid()` is called every `recheck_s` (outside the request context): None while
    the viewer may go on watching, else the reason, sent as a last `end` event before
    the stream closes. A failure to build the view is logged and costs the figures of
    that message, never the stream: freshness keeps flowing. `follow()` (a wall of a
    console's group, `?screen=`): the group's directive as this viewer may follow it, or
    None; looked at every FOLLOW_S (a directive moves no shard version) and sent as
    `directive` when it changed. The centre is watched while the stream is open
    (`VersionWatcher.hold`)."""
    yield "retry: 2000\n\n"
    with watcher.hold(code):
        yield from _messages(watcher, screens, code, lang, min_gap_s, keepalive_s, max_s,
                             still_valid, recheck_s, follow)


def _messages(watcher: VersionWatcher, screens: ScreenData, code: str, lang: str,
              min_gap_s: float, keepalive_s: float, max_s: float | None,
              still_valid: Callable[[], str | None] | None, recheck_s: float,
              follow: Callable[[], dict | None] | None) -> Iterator[str]:
    """The messages of `stream` after its first line."""
    last: dict | None = None
    last_calls: list[str] | None = None
    last_map: dict | None = None
    last_alerts: dict | None = None
    last_directive: dict | None = None
    sent_directive = False
    sent_cases: dict[str, set[str]] = {}  # per cases layer: the case ids this screen has
    tick = -1
    sent_at = 0.0
    started = checked = time.monotonic()
    failures = 0
    while max_s is None or time.monotonic() - started < max_s:
        seen = tick
        tick = watcher.wait(tick, FOLLOW_S if follow is not None else keepalive_s)
        directive_moved = False
        if follow is not None:
            try:
                directive = follow()
            except (redis.RedisError, OSError):
                directive = last_directive
            directive_moved = not sent_directive or directive != last_directive
            if (tick == seen and not directive_moved
                    and time.monotonic() - sent_at < keepalive_s):
                continue  # nothing new: the next look at the directive
        gap = time.monotonic() - sent_at
        if gap < min_gap_s:
            time.sleep(min_gap_s - gap)
        if still_valid is not None and time.monotonic() - checked >= recheck_s:
            checked = time.monotonic()
            reason = still_valid()
            if reason:
                yield f"event: end\ndata: {json.dumps({'reason': reason})}\n\n"
                return
        metas, down = watcher.state()
        payload: dict = {}
        if metas is not None:
            try:
                vm = screens.view(code, metas)
                payload = viewmodel.diff(last, vm)
                payload.pop("freshness", None)
                last = vm
                live_map = screens.map_live(code, lang, metas)
                if live_map is not last_map and live_map != last_map:
                    payload["map"] = cases_delta(live_map, sent_cases)
                    last_map = live_map
                alerts = screens.alerts(code, metas)
                if alerts is not last_alerts and alerts != last_alerts:
                    payload["alerts"] = last_alerts = alerts
            except (redis.RedisError, OSError):
                pass
            except Exception:
                failures += 1
                if failures <= 3 or failures % 100 == 0:
                    log.exception("live: the view of %s failed (%d times in this stream)",
                                  code, failures)
        if directive_moved:
            payload["directive"] = last_directive = directive
            sent_directive = True
        payload["freshness"] = screens.freshness(code, metas, down)
        calls = screens.in_call(code)
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
        return Keys(self.prefix).stream_slots(name)

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


def _allowed_centre(screens: ScreenData) -> str:
    """The `centre` argument when the viewer may see it; 403 otherwise (also for unknown
    codes, so the answer does not tell which codes exist outside the viewer's scope)."""
    code = request.args.get("centre", "")
    if not access.allowed(screens.topology, code):
        abort(403)
    return code


def register_routes(server: Flask, watcher: VersionWatcher, screens: ScreenData,
                    r: redis.Redis, settings: Settings) -> None:
    """`/live/poll`, `/live/version` and `/live/stream` (SSE) of `server`."""
    topo = screens.topology
    slots = StreamSlots(r, settings.key_prefix, settings.max_streams_per_user)

    @server.get(POLL_PATH)
    def live_poll():
        """The same answer as the Dash poll callback, as plain JSON (baseline of bench/serve)."""
        code = _allowed_centre(screens)
        payload, version = screens.poll(code, request.args.get("have"))
        return {"version": version, "vm": payload}

    @server.get(VERSION_PATH)
    def live_version():
        """The centre's data version and freshness, as plain JSON (for monitoring)."""
        code = _allowed_centre(screens)
        watcher.watch(code)
        metas, down = watcher.state()
        version = sum(screens.versions(code, metas or {}))
        return {"centre": code, "version": version,
                "freshness": screens.freshness(code, metas, down)}

    @server.get(STREAM_PATH)
    def live_stream():
        code = _allowed_centre(screens)
        lang = request.args.get("lang", "zh")
        if lang not in ("zh", "en"):
            abort(400)
        group = request.args.get("screen", "")
        if group:
            try:
                check_group(group)
            except BadGroup:
                abort(400)
        viewer = access.require_viewer()
        still_valid = access.stream_check(topo, code)  # when it cannot tell, stale is shown

        def follow() -> dict | None:
            """The group's directive, when this viewer may see its centre (else ignored)."""
            return viewmodel.directive_view(screens.directive(group), topo, viewer.scope)

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
                yield from stream(watcher, screens, code, lang, still_valid=valid,
                                  follow=follow if group else None)
            finally:
                slots.close(viewer.name, slot)

        resp = Response(body(), mimetype="text/event-stream")
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        return resp
