"""Video-call signalling in Redis: the open call screens (peers), who joined which call, and
one mailbox stream that every web worker reads (docs/video-calls.md).

- A *peer* is one open call screen (`/vc/events`): a random id bound to (viewer name, centre),
  kept with a TTL while its stream is open, and listed in its centre's presence set, so
  `present(centre)` tells whether any screen of that centre is open.
- The *joined* hash of a call: which peers joined it (peer → centre), and how each invited
  centre answered (`a:<centre>` → answer | decline).
- The *mailbox*: one capped stream of messages `to` a peer or to `c:<centre>` (every screen of
  that centre). Per worker one `SignalHub` thread reads it and hands each message to the
  screens streaming from that worker, so a message posted in one worker reaches a screen
  streaming from another.

Everything read back from Redis is untrusted (whoever reaches Redis can write it): a malformed
peer, joined entry or mailbox message is logged and ignored, never allowed to break a stream.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass

import redis

from datasources.keys import Keys
from datasources.topology import Topology
from datasources.validate import is_code

log = logging.getLogger(__name__)
THREAD_NAME = "pingan-vc-signal"
PEER_TTL_S = 60           # a peer not renewed for this long is gone (its worker died)
MAILBOX_MAXLEN = 10_000   # the mailbox stream is trimmed to about this many messages
MAX_BODY = 128 * 1024     # a message body larger than this is not ours (sdp ≤ 64 KiB)
QUEUE_SIZE = 256          # messages waiting for one screen; more are dropped (logged)
PEER_RE = re.compile(r"[A-Za-z0-9_-]{16}")  # secrets.token_urlsafe(12)
ANSWERED = "a:"           # joined-hash field prefix of a centre's answer (peer ids have no ':')
VERDICTS = ("answer", "decline")

_JOIN = """
local peer, centre, single, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if redis.call('HEXISTS', KEYS[1], peer) == 1 then return 2 end
if single == '1' then
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    if all[i + 1] == centre and not string.find(all[i], ':', 1, true) then return 0 end
  end
end
redis.call('HSET', KEYS[1], peer, centre)
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

_RATE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1])) end
return n
"""


def is_peer_id(value: object) -> bool:
    return isinstance(value, str) and PEER_RE.fullmatch(value) is not None


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass(frozen=True)
class Peer:
    id: str
    name: str     # the viewer who opened the screen
    centre: str   # the centre whose screen it is


class Signals:
    """The Redis primitives of signalling (one per worker; stateless apart from the client)."""

    def __init__(self, r: redis.Redis, topo: Topology, prefix: str,
                 peer_ttl_s: float = PEER_TTL_S) -> None:
        self.r = r
        self.topo = topo
        self.keys = Keys(prefix)
        self.shard = topo.top_shard or "root"
        self.peer_ttl_ms = int(peer_ttl_s * 1000)
        self.mailbox = self.keys.vc_signal(self.shard)
        self._join = r.register_script(_JOIN)
        self._rate = r.register_script(_RATE)

    # -- peers ----------------------------------------------------------------------------
    def register(self, peer: Peer, stream: str = "") -> None:
        """Record an open screen (or renew it: the same call every ~15 s); `stream` names
        the stream it is attached to (a screen that reconnects takes its peer along)."""
        now = int(time.time() * 1000)
        presence = self.keys.vc_presence(self.shard, peer.centre)
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.keys.vc_peer(self.shard, peer.id),
                 json.dumps({"name": peer.name, "centre": peer.centre, "stream": stream}),
                 px=self.peer_ttl_ms)
        pipe.zremrangebyscore(presence, "-inf", now)
        pipe.zadd(presence, {peer.id: now + self.peer_ttl_ms})
        pipe.pexpire(presence, self.peer_ttl_ms)
        pipe.execute()

    renew = register

    def unregister(self, peer: Peer) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(self.keys.vc_peer(self.shard, peer.id))
        pipe.zrem(self.keys.vc_presence(self.shard, peer.centre), peer.id)
        pipe.execute()

    def _load(self, peer_id: str) -> tuple[Peer, str] | None:
        """The open screen `peer_id` and the stream it is attached to, or None (unknown,
        lapsed, malformed: logged)."""
        raw = self.r.get(self.keys.vc_peer(self.shard, peer_id))
        if raw is None:
            return None
        try:
            d = json.loads(raw) if len(raw) <= 1024 else None
        except (ValueError, UnicodeDecodeError):
            d = None
        d = d if isinstance(d, dict) else {}
        name, centre, stream = d.get("name"), d.get("centre"), d.get("stream", "")
        if not (isinstance(name, str) and 0 < len(name) <= 64 and is_code(centre)
                and centre in self.topo.centres and isinstance(stream, str)):
            log.warning("vc: ignoring a malformed peer %s", peer_id)
            return None
        return Peer(peer_id, name, centre), stream

    def peer(self, peer_id: object) -> Peer | None:
        """The open screen `peer_id`, or None (unknown, lapsed, malformed: logged)."""
        got = self._load(peer_id) if is_peer_id(peer_id) else None
        return got[0] if got else None

    def attached(self, peer_id: str) -> str | None:
        """The stream `peer_id` is attached to now ("" unnamed), None when it is gone (or
        its record is not one we wrote)."""
        got = self._load(peer_id)
        return got[1] if got else None

    def present(self, centre: str) -> bool:
        """Is any screen of `centre` open (registered and not lapsed)?"""
        now = int(time.time() * 1000)
        return self.r.zcount(self.keys.vc_presence(self.shard, centre), now, "+inf") > 0

    # -- who joined a call ----------------------------------------------------------------
    def join(self, cid: str, peer: Peer, single: bool, ttl_s: float) -> str:
        """Add `peer` to call `cid`: `joined`, `already` (it had), or `taken` (`single`:
        another screen of its centre joined first)."""
        res = self._join(keys=[self.keys.vc_joined(self.shard, cid)],
                         args=[peer.id, peer.centre, "1" if single else "0",
                               max(1000, int(ttl_s * 1000))])
        return {0: "taken", 1: "joined", 2: "already"}[int(res)]

    def leave(self, cid: str, peer_id: str) -> bool:
        """Remove `peer_id` from call `cid`; False when it had not joined."""
        return bool(self.r.hdel(self.keys.vc_joined(self.shard, cid), peer_id))

    def joined(self, cid: str) -> dict[str, str]:
        """peer → centre of the screens in call `cid` (malformed entries logged, left out)."""
        out = {}
        for k, v in self._joined_raw(cid).items():
            if k.startswith(ANSWERED):
                continue
            if is_peer_id(k) and is_code(v) and v in self.topo.centres:
                out[k] = v
            else:
                log.warning("vc: ignoring a malformed joined entry of call %s: %r", cid, k[:40])
        return out

    def mark(self, cid: str, centre: str, verdict: str) -> bool:
        """Record how invited `centre` answered call `cid` (the first verdict stays); True
        when this was the first."""
        return bool(self.r.hsetnx(self.keys.vc_joined(self.shard, cid), ANSWERED + centre,
                                  verdict))

    def answered(self, cid: str) -> dict[str, str]:
        """centre → answer | decline of the invited centres that answered call `cid`."""
        return {k[len(ANSWERED):]: v for k, v in self._joined_raw(cid).items()
                if k.startswith(ANSWERED) and v in VERDICTS}

    def drop_call(self, cid: str) -> None:
        self.r.delete(self.keys.vc_joined(self.shard, cid))

    def _joined_raw(self, cid: str) -> dict[str, str]:
        raw = self.r.hgetall(self.keys.vc_joined(self.shard, cid))
        return {_text(k): _text(v) for k, v in raw.items()}

    # -- the mailbox ----------------------------------------------------------------------
    def send(self, to: str, body: dict) -> None:
        """Post `body` to peer `to` or to every screen of a centre (`c:<code>`)."""
        self.r.xadd(self.mailbox, {"to": to, "body": json.dumps(body, ensure_ascii=False,
                                                                separators=(",", ":"))},
                    maxlen=MAILBOX_MAXLEN, approximate=True)

    def allow(self, peer_id: str, cap: int, window_s: float) -> bool:
        """Count one message of `peer_id`; False past `cap` in the current `window_s`."""
        n = self._rate(keys=[self.keys.vc_rate(self.shard, peer_id)],
                       args=[max(1, int(window_s * 1000))])
        return int(n) <= cap


def parse_message(fields: dict) -> tuple[str, dict] | None:
    """(to, body) of a mailbox entry, or None when it is not one we wrote."""
    to, body = fields.get(b"to", fields.get("to")), fields.get(b"body", fields.get("body"))
    if to is None or body is None or len(body) > MAX_BODY:
        return None
    to = _text(to)
    if not (is_peer_id(to) or (to.startswith("c:") and is_code(to[2:]))):
        return None
    try:
        d = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not (isinstance(d, dict) and isinstance(d.get("kind"), str)):
        return None
    return to, d


class Subscription:
    """What one screen receives: `get(timeout)` → the next message (a dict) or None."""

    def __init__(self, peer: str, centre: str) -> None:
        self.peer = peer
        self.centre = centre
        self.queue: queue.Queue[dict] = queue.Queue(QUEUE_SIZE)
        self.dropped = 0

    def get(self, timeout: float) -> dict | None:
        try:
            return self.queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def put(self, body: dict) -> None:
        try:
            self.queue.put_nowait(body)
        except queue.Full:
            self.dropped += 1
            if self.dropped <= 3 or self.dropped % 100 == 0:
                log.warning("vc: screen %s is not reading; %d messages dropped", self.peer,
                            self.dropped)


class SignalHub:
    """The one mailbox reader of a worker (a daemon thread, started by the first subscriber)
    and its local subscribers by peer id and by centre."""

    def __init__(self, signals: Signals, block_ms: int = 1000) -> None:
        self.signals = signals
        self.block_ms = block_ms
        self._lock = threading.Lock()
        self._by_peer: dict[str, Subscription] = {}
        self._by_centre: dict[str, set[Subscription]] = {}
        self._started = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._errors = 0
        self._bad = 0

    def subscribe(self, peer: str, centre: str) -> Subscription:
        sub = Subscription(peer, centre)
        with self._lock:
            self._by_peer[peer] = sub
            self._by_centre.setdefault(centre, set()).add(sub)
        self.start()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if self._by_peer.get(sub.peer) is sub:
                del self._by_peer[sub.peer]
            subs = self._by_centre.get(sub.centre)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._by_centre[sub.centre]

    def start(self, wait_s: float = 5.0) -> None:
        """Start the reader (once); waits until it knows where the mailbox ends, so that a
        message sent after a subscription is never missed."""
        with self._lock:
            first = not self._started
            self._started = True
        if first:
            self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
            self._thread.start()
        self._ready.wait(wait_s)

    def stop(self, wait_s: float = 5.0) -> None:
        """End the thread after its current read, waiting up to `wait_s` for it (a worker
        never does; tests and tools do)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait_s)

    def deliver(self, to: str, body: dict) -> int:
        """Hand `body` to the local screens it is addressed to; how many."""
        with self._lock:
            if to.startswith("c:"):
                subs = list(self._by_centre.get(to[2:], ()))
            else:
                sub = self._by_peer.get(to)
                subs = [sub] if sub is not None else []
        for sub in subs:
            sub.put(body)
        return len(subs)

    def _tail(self) -> str:
        last = self.signals.r.xrevrange(self.signals.mailbox, count=1)
        return _text(last[0][0]) if last else "0-0"

    def _loop(self) -> None:
        last: str | None = None
        while not self._stop.is_set():
            try:
                if last is None:
                    last = self._tail()
                    self._ready.set()
                reply = self.signals.r.xread({self.signals.mailbox: last}, count=500,
                                             block=self.block_ms)
                for _stream, entries in reply or ():
                    for entry_id, fields in entries:
                        last = _text(entry_id)
                        self._handle(last, fields)
            except Exception:
                self._errors += 1
                if self._errors <= 3 or self._errors % 1000 == 0:
                    log.exception("vc: reading the signalling mailbox failed (%d so far); "
                                  "going on", self._errors)
                self._stop.wait(1.0)

    def _handle(self, entry_id: str, fields: dict) -> None:
        msg = parse_message(fields)
        if msg is None:
            self._bad += 1
            if self._bad <= 3 or self._bad % 1000 == 0:
                log.warning("vc: ignoring a malformed signalling message %s (%d so far)",
                            entry_id, self._bad)
            return
        self.deliver(*msg)
