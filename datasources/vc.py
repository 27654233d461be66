"""Video conference (综治视联网): endpoints, launches and the calls in progress.

Every start and end is written to the `vc` stream of the top centre's shard (contract v1:
`cid`, `action` start|end|answer|decline|leave, `by`, `centres`), and the calls in progress
are kept in one hash next to it, so the wall can show which centres are in a call. A call
ends by an end action or, if nobody ends it, after `vc_timeout_s`.

A call's `mode` says how it connects (docs/video-calls.md): `p2p` (WebRTC between the two
screens, signalled through the app), `sfu` (整体联动 in a Janus VideoRoom), `sip` (a
registry `sip:` endpoint bridged by Janus's SIP plugin) or `url` (an outside conference page
opened in the overlay, as before).

The hash of calls in progress is read as untrusted input (whoever reaches Redis can write
it): an entry that is not a well-formed call of known centres is logged and deleted, never
allowed to break the wall or the call buttons. Starts are capped per user per minute.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass

import redis

from datasources.keys import VC_KIND, Keys
from datasources.topology import Topology
from datasources.validate import is_code, is_conference_url

SRC = "pingan-dashboard"
MAX_CALL_JSON = 256 * 1024  # a group call of a whole province's tier is well below this
log = logging.getLogger(__name__)


_ALLOW_START = """
local now, cap, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= cap then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 1
"""


MODES = ("url", "p2p", "sfu", "sip")


class BadCall(ValueError):
    """A stored call that is not one we wrote (the message says what is wrong)."""


@dataclass(frozen=True)
class Call:
    cid: str
    by: str
    convener: str  # the centre whose screen launched it
    centres: tuple[str, ...]  # the centres invited
    url: str
    started: int
    group: bool
    mode: str = "url"
    room: int | None = None  # sfu: the Janus VideoRoom
    pin: str = ""            # sfu: the room's pin, given to the screens that join
    secret: str = ""         # sfu: the room's secret (destroys it), never leaves the server

    def to_json(self) -> str:
        return json.dumps({"cid": self.cid, "by": self.by, "convener": self.convener,
                           "centres": list(self.centres), "url": self.url,
                           "started": self.started, "group": self.group, "mode": self.mode,
                           "room": self.room, "pin": self.pin, "secret": self.secret})

    @property
    def members(self) -> tuple[str, ...]:
        """The convener and every invited centre."""
        return (self.convener, *self.centres)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Call:
        """The call stored as `raw`; `BadCall` for anything else (any size, any shape)."""
        if len(raw) > MAX_CALL_JSON:
            raise BadCall(f"{len(raw)} bytes")
        try:
            d = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadCall("not JSON") from None
        if not isinstance(d, dict):
            raise BadCall("not an object")
        cid, by, convener, centres = d.get("cid"), d.get("by"), d.get("convener"), d.get("centres")
        url, started, group = d.get("url"), d.get("started"), d.get("group")
        if not (isinstance(cid, str) and 0 < len(cid) <= 64 and isinstance(by, str)
                and len(by) <= 64 and is_code(convener)):
            raise BadCall("bad cid, by or convener")
        if not (isinstance(centres, list) and centres and all(is_code(c) for c in centres)):
            raise BadCall("bad centres")
        mode, room = d.get("mode", "url"), d.get("room")
        pin, secret = d.get("pin", ""), d.get("secret", "")
        if mode not in MODES:
            raise BadCall("bad mode")
        if not (is_conference_url(url) if mode in ("url", "sip") else url == ""):
            raise BadCall("bad url")
        if not (type(started) is int and started >= 0 and isinstance(group, bool)):
            raise BadCall("bad started or group")
        if not (room is None or (type(room) is int and 0 < room < 2**53)):
            raise BadCall("bad room")
        if not (isinstance(pin, str) and len(pin) <= 64 and isinstance(secret, str)
                and len(secret) <= 64):
            raise BadCall("bad pin or secret")
        return cls(cid, by, convener, tuple(centres), url, started, group, mode, room, pin,
                   secret)


def endpoint(topo: Topology, template: str, code: str) -> str:
    """A centre's conference endpoint: its registry value, else the settings template
    ("" when neither: the app's own call)."""
    info = topo.centres[code]
    if info.conference and is_conference_url(info.conference):
        return info.conference
    return template.format(code=code) if template else ""


def plan(topo: Topology, template: str, convener: str, centres: list[str], group: bool,
         tier: int | None, sfu: bool) -> tuple[str, str] | None:
    """How a call connects: (mode, url), or None when it cannot (a group call with neither
    an SFU nor an outside conference template)."""
    if group:
        if sfu:
            return "sfu", ""
        return ("url", group_room(template, convener, tier)) if template else None
    url = endpoint(topo, template, centres[0])
    if not url:
        return "p2p", ""
    return ("sip" if url.lower().startswith(("sip:", "sips:")) else "url"), url


def group_room(template: str, convener: str, tier: int | None) -> str:
    return template.format(code=f"{convener}-all" + (f"-l{tier}" if tier else ""))


def invitees(topo: Topology, convener: str, tier: int | None) -> list[str]:
    """整体联动: the convener's children, or every centre of `tier` below it."""
    if tier is None:
        return list(topo.children.get(convener, ()))
    out, todo = [], list(topo.children.get(convener, ()))
    while todo:
        code = todo.pop(0)
        level = topo.centres[code].level
        if level == tier:
            out.append(code)
        elif level < tier:
            todo.extend(topo.children.get(code, ()))
    return sorted(out)


class Conferences:
    def __init__(self, r: redis.Redis, topo: Topology, prefix: str, template: str,
                 timeout_s: float) -> None:
        self.r = r
        self.topo = topo
        self.keys = Keys(prefix)
        self.template = template
        self.timeout_s = timeout_s
        root_shard = topo.top_shard or "root"
        self.root_shard = root_shard
        self.stream = self.keys.stream(root_shard, VC_KIND)
        self.active_key = self.keys.vc_active(root_shard)
        self._allow = r.register_script(_ALLOW_START)

    def starts_key(self, by: str) -> str:
        """ZSET of the calls `by` started in the last minute, scored by when (ms)."""
        return self.keys.vc_starts(self.root_shard, by)

    def allow_start(self, by: str, per_minute: int) -> bool:
        """Count a start by `by`; False when `per_minute` were started in the last 60 s
        (a sliding window: no burst of twice the cap across a minute's turn; 0: no cap)."""
        if per_minute <= 0:
            return True
        now = int(time.time() * 1000)
        return bool(self._allow(keys=[self.starts_key(by)],
                                args=[now, per_minute, 60_000, uuid.uuid4().hex]))

    def _parse(self, cid: bytes | str, raw: bytes | str) -> Call | None:
        """A stored call, or None (logged) when it is not a well-formed call of known centres."""
        try:
            call = Call.from_json(raw)
            unknown = [c for c in (call.convener, *call.centres) if c not in self.topo.centres]
            if unknown:
                raise BadCall(f"unknown centres {unknown[:5]}")
            if call.cid != (cid.decode("utf-8", "replace") if isinstance(cid, bytes) else cid):
                raise BadCall("cid differs from its field")
        except BadCall as e:
            log.warning("vc: ignoring a malformed call in %s (field %r): %s", self.active_key,
                        cid[:64], e)
            return None
        return call

    def _write(self, pipe, action: str, call: Call, by: str, now: int,
               centres: tuple[str, ...] | None = None) -> None:
        pipe.xadd(self.stream, {"v": "1", "ts": str(now), "src": SRC, "cid": call.cid,
                                "action": action, "by": by,
                                "centres": ",".join(call.centres if centres is None else centres)})

    def record(self, call: Call, action: str, by: str, centre: str) -> None:
        """Audit one centre's part in a call: `answer`, `decline` or `leave` (contract v1)."""
        pipe = self.r.pipeline(transaction=False)
        self._write(pipe, action, call, by, int(time.time() * 1000), (centre,))
        pipe.execute()

    def start(self, by: str, convener: str, centres: list[str], group: bool,
              tier: int | None = None, mode: str | None = None, url: str | None = None,
              room: int | None = None, pin: str = "", secret: str = "",
              cid: str | None = None) -> Call:
        """Record a call (`mode`/`url` as `plan` gives them; without them, as `plan` says
        without an SFU)."""
        now = int(time.time() * 1000)
        if mode is None:  # as plan() says, without an SFU
            how = plan(self.topo, self.template, convener, centres, group, tier, sfu=False)
            if how is None:
                raise ValueError("a group call needs an SFU or a conference template")
            mode, url = how
        call = Call(cid or uuid.uuid4().hex[:16], by, convener, tuple(centres), url or "", now,
                    group, mode, room, pin, secret)
        pipe = self.r.pipeline(transaction=True)
        self._write(pipe, "start", call, by, now)
        pipe.hset(self.active_key, call.cid, call.to_json())
        pipe.execute()
        return call

    def get(self, cid: str) -> Call | None:
        raw = self.r.hget(self.active_key, cid)
        return self._parse(cid, raw) if raw is not None else None

    def end(self, cid: str, by: str) -> bool:
        raw = self.r.hget(self.active_key, cid)
        if raw is None:
            return False
        call = self._parse(cid, raw)
        if call is None:
            self.r.hdel(self.active_key, cid)
            return False
        pipe = self.r.pipeline(transaction=True)
        self._write(pipe, "end", call, by, int(time.time() * 1000))
        pipe.hdel(self.active_key, cid)
        pipe.execute()
        return True

    def active(self) -> list[Call]:
        """Calls in progress; ends (as `timeout`) those older than the timeout."""
        now = int(time.time() * 1000)
        calls, bad = [], []
        for cid, raw in self.r.hgetall(self.active_key).items():
            call = self._parse(cid, raw)
            if call is None:
                bad.append(cid)
            elif now - call.started > self.timeout_s * 1000:
                self.end(cid.decode() if isinstance(cid, bytes) else cid, "timeout")
            else:
                calls.append(call)
        for i in range(0, len(bad), 500):
            self.r.hdel(self.active_key, *bad[i:i + 500])
        return calls

    def in_call(self) -> set[str]:
        codes: set[str] = set()
        for call in self.active():
            codes.update(call.centres)
            codes.add(call.convener)
        return codes
