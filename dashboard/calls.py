"""The calls' desk: starting, ringing, joining, relaying and ending video calls (issue 11).

One `CallDesk` per worker. The Dash callbacks start and end calls (callbacks/vc.py); the
signalling routes (dashboard/vc_api.py) join, decline, relay and leave for the screens. Every
step is checked here against the call in progress (datasources/vc.py) and the screens that
joined it (datasources/signal.py); the start, each centre's answer / decline / leave and the
end are written to the `vc` stream with who.

Errors are `CallError`s: `key` an i18n key (`vc_no_call`), `code` the API's error word
(`no_call`), `status` the HTTP status.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable

import redis

from dashboard.access import Viewer
from dashboard.settings import Settings
from datasources.accesslog import AccessLog
from datasources.janus import JanusClient, JanusError
from datasources.signal import Peer, Signals, is_peer_id
from datasources.topology import Topology
from datasources.vc import Call, Conferences, plan

log = logging.getLogger(__name__)
RELAYED = ("offer", "answer", "candidate")
MAX_SDP = 64 * 1024
MAX_CANDIDATE = 4 * 1024


class CallError(Exception):
    """A refused step: `key` (i18n, `vc_…`), `code` (the API's error), `status` (HTTP)."""

    def __init__(self, key: str, status: int = 400) -> None:
        super().__init__(key)
        self.key = key
        self.status = status

    @property
    def code(self) -> str:
        return self.key.removeprefix("vc_")


class CallDesk:
    def __init__(self, conferences: Conferences, signals: Signals, janus: JanusClient | None,
                 settings: Settings, topo: Topology, calls_changed: Callable[[], None],
                 access_log: AccessLog | None = None) -> None:
        """`access_log`: where calls started and ended are recorded (who did what)."""
        self.access_log = access_log
        self.conferences = conferences
        self.signals = signals
        self.janus = janus
        self.settings = settings
        self.topo = topo
        self.calls_changed = calls_changed

    # -- starting and ending (the Dash callbacks) -----------------------------------------
    def start(self, by: str, convener: str, centres: list[str], group: bool,
              tier: int | None) -> Call | None:
        """Start a call and ring every invited centre; None when it cannot connect (a group
        call with neither an SFU nor an outside template). `CallError("vc_sfu_down")` when
        Janus does not answer. The caller has checked the viewer's right and scope."""
        how = plan(self.topo, self.settings.conference_url_template, convener, centres, group,
                   tier, sfu=self.janus is not None)
        if how is None:
            return None
        mode, url = how
        if mode == "sip" and self.janus is None:
            raise CallError("vc_sip_no_sfu", 503)  # a SIP terminal is reached through Janus
        cid = uuid.uuid4().hex[:16]
        room, pin, secret = None, "", ""
        if mode == "sfu" and self.janus is not None:
            try:
                made = self.janus.create_room(description=cid, publishers=len(centres) + 1)
            except JanusError as e:
                log.warning("vc: Janus could not create a room: %s", e)
                raise CallError("vc_sfu_down", 503) from None
            room, pin, secret = made.room, made.pin, made.secret
        call = self.conferences.start(by, convener, centres, group, tier, mode=mode, url=url,
                                      room=room, pin=pin, secret=secret, cid=cid)
        if mode in ("p2p", "sfu"):  # a SIP terminal or an outside page has no screen to ring
            for code in centres:
                self.signals.send(f"c:{code}", self.ring(call))
        if self.access_log is not None:
            self.access_log.record("call_started", by, cid=call.cid, convener=convener,
                                   centres=",".join(call.centres), mode=call.mode)
        self.calls_changed()
        return call

    def ring(self, call: Call) -> dict:
        info = self.topo.centres.get(call.convener)
        return {"kind": "ring", "cid": call.cid, "from": call.convener,
                "from_name": info.name if info else call.convener, "by": call.by,
                "mode": call.mode, "group": call.group, "ring_s": self.settings.vc_ring_s}

    def simulated(self, call: Call) -> bool:
        """Does a simulated endpoint answer? (a point-to-point call to a centre with no
        screen open, when the setting asks for it)"""
        return (self.settings.vc_simulate and call.mode == "p2p"
                and not self.signals.present(call.centres[0]))

    def end(self, cid: str, by: str, why: str = "ended") -> bool:
        """End call `cid` (audited as by `by`, for `why`: ended, declined, left): its room
        goes, every screen hears `end`."""
        call = self.conferences.get(cid)
        if call is None:
            return False
        joined = self.signals.joined(cid)
        if not self.conferences.end(cid, by):
            return False
        if call.room is not None and self.janus is not None:
            try:
                self.janus.destroy_room(call.room, call.secret)
            except JanusError as e:
                log.warning("vc: Janus room of call %s not destroyed: %s", cid, e)
        body = {"kind": "end", "cid": cid}
        for peer in joined:
            self.signals.send(peer, body)
        for code in call.centres:
            self.signals.send(f"c:{code}", body)
        self.signals.drop_call(cid)
        if self.access_log is not None:
            self.access_log.record("call_ended", by, cid=cid, why=why)
        self.calls_changed()
        return True

    def ringing_for(self, centre: str) -> list[dict]:
        """The ring messages of the calls now inviting `centre` that it has not answered
        (for a screen that opens while a call rings)."""
        now = int(time.time() * 1000)
        out = []
        for call in self.conferences.active():
            if centre not in call.centres or centre == call.convener:
                continue
            if now - call.started >= self.settings.vc_ring_s * 1000:
                continue
            if centre in self.signals.answered(call.cid):
                continue
            if centre in self.signals.joined(call.cid).values():
                continue
            out.append(self.ring(call))
        return out

    # -- the screens (dashboard/vc_api.py) ------------------------------------------------
    def peer_for(self, viewer: Viewer, peer_id: object) -> Peer:
        """The sender's screen, checked: one of this viewer's, of a centre it still sees."""
        if not is_peer_id(peer_id):
            raise CallError("vc_bad_request", 400)
        peer = self.signals.peer(peer_id)
        if peer is None or peer.name != viewer.name or not viewer.sees(self.topo, peer.centre):
            raise CallError("vc_forbidden", 403)
        return peer

    def call_for(self, peer: Peer, cid: object) -> Call:
        """The call in progress `cid`, checked: the peer's centre is in it."""
        if not (isinstance(cid, str) and 0 < len(cid) <= 64 and cid.isascii()):
            raise CallError("vc_bad_request", 400)
        call = self.conferences.get(cid)
        if call is None:
            raise CallError("vc_no_call", 404)
        if peer.centre not in call.members:
            raise CallError("vc_forbidden", 403)
        return call

    def _invited(self, call: Call, centre: str) -> bool:
        return centre in call.centres and centre != call.convener

    def join(self, viewer: Viewer, peer: Peer, call: Call) -> dict:
        invited = self._invited(call, peer.centre)
        single = not (invited and call.group)
        res = self.signals.join(call.cid, peer, single, self.settings.vc_timeout_s)
        if res == "taken":
            raise CallError("vc_answered_elsewhere", 409)
        others = {p: c for p, c in self.signals.joined(call.cid).items() if p != peer.id}
        if res == "joined":
            if invited and self.signals.mark(call.cid, peer.centre, "answer"):
                self.conferences.record(call, "answer", viewer.name, peer.centre)
                if not call.group:
                    self.signals.send(f"c:{peer.centre}", {
                        "kind": "cancel", "cid": call.cid, "reason": "answered_elsewhere",
                        "except": peer.id})
            for other in others:
                self.signals.send(other, {"kind": "joined", "cid": call.cid, "peer": peer.id,
                                          "centre": peer.centre})
        info = {"cid": call.cid, "mode": call.mode, "group": call.group,
                "convener": call.convener, "centres": list(call.centres)}
        if call.mode == "sfu":
            info.update(room=call.room, pin=call.pin)
        elif call.mode in ("sip", "url"):
            info["url"] = call.url
        return {"peers": [{"peer": p, "centre": c} for p, c in others.items()], "call": info}

    def decline(self, viewer: Viewer, peer: Peer, call: Call) -> dict:
        if not self._invited(call, peer.centre):
            raise CallError("vc_forbidden", 403)
        joined = self.signals.joined(call.cid)
        if peer.centre in joined.values():
            raise CallError("vc_answered_elsewhere", 409)
        if self.signals.mark(call.cid, peer.centre, "decline"):
            self.conferences.record(call, "decline", viewer.name, peer.centre)
            for other in joined:
                self.signals.send(other, {"kind": "declined", "cid": call.cid,
                                          "centre": peer.centre})
            self.signals.send(f"c:{peer.centre}", {"kind": "cancel", "cid": call.cid,
                                                   "reason": "declined"})
        ended = False
        if not call.group:
            ended = self.end(call.cid, viewer.name, why="declined")
        return {"declined": True, "ended": ended}

    def relay(self, peer: Peer, call: Call, kind: str, to: object, payload: object) -> dict:
        """Pass an offer / answer (`payload` an SDP string) or a candidate (a dict) from
        `peer` to another screen that joined the same call."""
        if kind not in RELAYED:
            raise CallError("vc_bad_request", 400)
        if kind == "candidate":
            if not isinstance(payload, dict):
                raise CallError("vc_bad_request", 400)
            if len(json.dumps(payload)) > MAX_CANDIDATE:
                raise CallError("vc_too_large", 413)
            field = "candidate"
        else:
            if not isinstance(payload, str) or not payload:
                raise CallError("vc_bad_request", 400)
            if len(payload) > MAX_SDP:
                raise CallError("vc_too_large", 413)
            field = "sdp"
        if not is_peer_id(to):
            raise CallError("vc_bad_request", 400)
        joined = self.signals.joined(call.cid)
        if peer.id not in joined or to not in joined or to == peer.id:
            raise CallError("vc_not_joined", 409)
        self.signals.send(to, {"kind": kind, "cid": call.cid, "from": peer.id,
                               "centre": peer.centre, field: payload})
        return {"sent": True}

    def leave(self, by: str, peer: Peer, call: Call) -> dict:
        if not self.signals.leave(call.cid, peer.id):
            raise CallError("vc_not_joined", 409)
        for other in self.signals.joined(call.cid):
            self.signals.send(other, {"kind": "left", "cid": call.cid, "peer": peer.id,
                                      "centre": peer.centre})
        self.conferences.record(call, "leave", by, peer.centre)
        ended = False
        if peer.centre == call.convener or (not call.group and peer.centre in call.centres):
            ended = self.end(call.cid, by, why="left")
        return {"left": True, "ended": ended}

    def end_by(self, viewer: Viewer, peer: Peer, call: Call) -> dict:
        """`end` from a screen: the convener's own, or a viewer who may call and sees the
        convener."""
        if not (peer.centre == call.convener
                or (viewer.may_call and viewer.sees(self.topo, call.convener))):
            raise CallError("vc_forbidden", 403)
        return {"ended": self.end(call.cid, viewer.name)}

    def calls_of(self, peer: Peer) -> list[str]:
        """The calls in progress that screen `peer` has joined (told to a screen that
        reconnects: a call that ended meanwhile is closed there)."""
        return [c.cid for c in self.conferences.active()
                if peer.centre in c.members and peer.id in self.signals.joined(c.cid)]

    def peer_closed(self, peer: Peer, by: str) -> None:
        """A screen's stream closed: it leaves every call it had joined."""
        with contextlib.suppress(redis.RedisError, OSError):
            for call in self.conferences.active():
                if peer.centre in call.members and peer.id in self.signals.joined(call.cid):
                    with contextlib.suppress(CallError):
                        self.leave(by, peer, call)
