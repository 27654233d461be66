"""The video calls' signalling routes (issue 11; docs/video-calls.md):

    GET  /vc/events?centre=CODE   SSE: `hello` (peer id, config), rings, then the messages of
                                  this screen (its peer id) and of its centre (`c:CODE`)
    POST /vc/signal               JSON {peer, cid, kind, to?, sdp?|candidate?}: join, decline,
                                  offer, answer, candidate, leave, end

Every answer of /vc/signal is JSON, errors too (`{"error": word}`: 400 bad_request, 401, 403
forbidden, 404 no_call, 409 answered_elsewhere | not_joined, 413 too_large, 415 unsupported,
429 busy, 503 unavailable); so are the guard's refusals of any /vc/ path. The checks are
dashboard/calls.py's; who the viewer is and CSRF (same-origin POSTs) are dashboard/auth.py's.

Hardening, as /live/stream (dashboard/live.py): the stream re-checks its viewer every
`RECHECK_S` and ends with an `end` event when it no longer holds; open call streams are
capped per signed-in user across workers by a cap of their own (`VcStreamSlots`, the same
number as PINGAN_MAX_STREAMS_PER_USER, apart from the live streams' so that a wall's call
stream does not halve its screens). A keepalive comment every `KEEPALIVE_S` also tells the
server soon when a screen went away, so its centre stops counting as present.

A dropped stream (a network blip, a web worker restarted) does not end a call: the screen
reconnects with `resume=<its peer id>` and keeps its peer (same user, same centre); only when
it has not come back after PINGAN_VC_RESUME_S does it leave its calls. Media flows between the
browsers meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
from collections.abc import Iterator

import redis
from flask import Flask, Response, request

from dashboard import access
from dashboard.calls import CallDesk, CallError
from dashboard.command_api import answer, error
from dashboard.live import StreamSlots
from dashboard.settings import Settings
from datasources.keys import Keys
from datasources.signal import Peer, SignalHub
from datasources.topology import Topology

VC_PREFIX = "/vc/"
EVENTS_PATH = "/vc/events"
SIGNAL_PATH = "/vc/signal"
RECHECK_S = 2.0       # an open stream re-checks its viewer this often
KEEPALIVE_S = 5.0     # a comment this often: proxies keep the stream, a gone screen is noticed
RENEW_S = 15.0        # the peer's registration and the stream slot are renewed this often
RATE_CAP = 50         # messages per peer …
RATE_WINDOW_S = 10.0  # … per this window; more → 429
KINDS = ("join", "decline", "offer", "answer", "candidate", "leave", "end")


class VcStreamSlots(StreamSlots):
    """Open call streams per user (a ZSET of their own beside the live streams')."""

    def key(self, name: str) -> str:
        return Keys(self.prefix).vc_stream_slots(name)


def ice_servers(settings: Settings) -> list[dict]:
    """The RTCIceServer dicts of the settings (TURN ones with the TURN user and password)."""
    out = []
    for url in settings.vc_ice_servers:
        entry: dict = {"urls": url}
        if url.lower().startswith(("turn:", "turns:")) and settings.vc_turn_username:
            entry.update(username=settings.vc_turn_username,
                         credential=settings.vc_turn_credential or "")
        out.append(entry)
    return out


def client_config(settings: Settings) -> dict:
    return {"ice_servers": ice_servers(settings), "auto_answer": settings.vc_auto_answer,
            "ring_s": settings.vc_ring_s,
            "janus": settings.janus_public_url or settings.janus_url or None,
            "simulate": settings.vc_simulate}


def sse(body: dict, event: str | None = None) -> str:
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return (f"event: {event}\n" if event else "") + f"data: {data}\n\n"


def register_vc_routes(server: Flask, calls: CallDesk, hub: SignalHub, settings: Settings,
                       topo: Topology) -> None:
    signals = calls.signals
    slots = VcStreamSlots(signals.r, settings.key_prefix, settings.max_streams_per_user)

    def resumed(name: str, code: str, peer_id: object) -> Peer | None:
        """The peer a reconnecting screen asks to keep: only its own (same user, same centre)."""
        if not peer_id:
            return None
        old = signals.peer(peer_id)
        return old if old is not None and old.name == name and old.centre == code else None

    @server.get(EVENTS_PATH)
    def vc_events():
        viewer = access.require_viewer()
        code = request.args.get("centre", "")
        if not access.allowed(topo, code):
            return error(403)
        still_valid = access.stream_check(topo, code)

        slot = "" if viewer.demo or viewer.open else slots.open(viewer.name)
        if slot is None:
            resp = error(429, "too_many_streams")
            resp.headers["Retry-After"] = "30"
            return resp
        token = secrets.token_hex(8)  # this stream: a newer one of the same peer takes over
        try:
            peer = resumed(viewer.name, code, request.args.get("resume"))
            peer = peer or Peer(secrets.token_urlsafe(12), viewer.name, code)
            signals.register(peer, token)
            rings = calls.ringing_for(code)
            in_calls = calls.calls_of(peer)
        except (redis.RedisError, OSError):
            slots.close(viewer.name, slot)
            return error(503)
        sub = hub.subscribe(peer.id, code)

        closed = False

        def close() -> None:
            """Once, when the stream ends (also one closed before it started): the screen
            leaves its calls and is gone."""
            nonlocal closed
            if closed:
                return
            closed = True
            hub.unsubscribe(sub)
            slots.close(viewer.name, slot)
            timer = threading.Timer(settings.vc_resume_s, gone)
            timer.daemon = True
            timer.start()

        def gone() -> None:
            """The screen did not come back (no newer stream of its peer): it is gone."""
            try:
                if signals.attached(peer.id) not in (token, None):
                    return  # resumed
                signals.unregister(peer)
            except (redis.RedisError, OSError):
                return  # it lapses (TTL)
            calls.peer_closed(peer, viewer.name)

        def body() -> Iterator[str]:
            checked = renewed = sent = time.monotonic()
            try:
                yield "retry: 2000\n\n"
                yield sse({"peer": peer.id, "centre": code, "config": client_config(settings),
                           "in_calls": in_calls}, "hello")
                for ring in rings:
                    yield sse(ring)
                while True:
                    wait = min(checked + RECHECK_S, sent + KEEPALIVE_S) - time.monotonic()
                    msg = sub.get(wait)
                    if msg is not None and msg.get("except") != peer.id:
                        yield sse({k: v for k, v in msg.items() if k != "except"})
                        sent = time.monotonic()
                    now = time.monotonic()
                    if now - checked >= RECHECK_S:
                        checked = now
                        reason = still_valid()
                        if reason:
                            yield sse({"reason": reason}, "end")
                            return
                    if now - renewed >= RENEW_S:
                        renewed = now
                        slots.renew(viewer.name, slot)
                        with contextlib.suppress(redis.RedisError, OSError):
                            if signals.attached(peer.id) not in (token, None):
                                return  # a newer stream of this screen took over
                            signals.renew(peer, token)  # else it lapses after the TTL
                    if now - sent >= KEEPALIVE_S:
                        sent = now
                        yield ": keepalive\n\n"
            finally:
                close()

        resp = Response(body(), mimetype="text/event-stream")
        resp.call_on_close(close)
        resp.headers["Cache-Control"] = "no-store"
        resp.headers["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
        return resp

    @server.post(SIGNAL_PATH)
    def vc_signal():
        viewer = access.require_viewer()
        if not request.is_json:
            return error(415)
        msg = request.get_json(silent=True)
        if not isinstance(msg, dict) or msg.get("kind") not in KINDS:
            return error(400)
        kind = msg["kind"]
        try:
            peer = calls.peer_for(viewer, msg.get("peer"))
            if not signals.allow(peer.id, RATE_CAP, RATE_WINDOW_S):
                resp = error(429)
                resp.headers["Retry-After"] = str(int(RATE_WINDOW_S))
                return resp
            call = calls.call_for(peer, msg.get("cid"))
            if kind == "join":
                out = calls.join(viewer, peer, call)
            elif kind == "decline":
                out = calls.decline(viewer, peer, call)
            elif kind == "leave":
                out = calls.leave(viewer.name, peer, call)
            elif kind == "end":
                out = calls.end_by(viewer, peer, call)
            else:
                payload = msg.get("candidate") if kind == "candidate" else msg.get("sdp")
                out = calls.relay(peer, call, kind, msg.get("to"), payload)
        except CallError as e:
            return error(e.status, e.code)
        except (redis.RedisError, OSError):
            return error(503)
        return answer({"ok": True, **out})

    @server.after_request
    def vc_json(resp: Response) -> Response:
        """What the guard (or Flask) answered for a /vc/ path in its own words (a sign-in
        redirect, a plain-text refusal, an HTML 404) becomes a JSON error."""
        if not request.path.startswith(VC_PREFIX) or resp.mimetype in (
                "application/json", "text/event-stream"):
            return resp
        status = 401 if resp.status_code in (302, 303) else resp.status_code
        if status < 400:
            return resp
        return error(status)
