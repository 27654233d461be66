"""The access log: who did what, append-only, in one Redis stream (docs/security.md).

Each entry has `action` (one of ACTIONS), `who` (a user or producer name, or `-`), `ts` (ms)
and the action's own fields (centre, widget, id, cid, …), all plain text, each cut to
`MAX_VALUE` characters. Nothing personal beyond the account name. Entries older than the
retention (`PINGAN_ACCESS_LOG_DAYS`) are trimmed by MINID as new ones are written; nothing
else ever deletes or changes one. `pingan access-log` exports it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis

from datasources.keys import Keys

ACTIONS = (
    "sign_in", "sign_in_failed", "sign_out", "centre_viewed",
    "embed_minted", "embed_revoked",
    "call_started", "call_ended",
    "alert_acknowledged", "supervised",
    "producer_created", "producer_revoked", "producer_rotated", "producer_used",
)
MAX_VALUE = 256
TAG_CHARS = 16     # a session's tag: this many hex digits of SHA-256 of its id
_DAY_MS = 86_400_000
log = logging.getLogger(__name__)


def clean(value: object, limit: int = MAX_VALUE) -> str:
    """A field as the log keeps it: text of at most `limit` characters, every control or
    other invisible character (newlines, ANSI escapes, bidi overrides) replaced by `?`, so
    that no entry can forge a line or a colour in a terminal that prints it."""
    text = str(value)[:limit]
    return "".join("?" if _invisible(c) else c for c in text)


def _invisible(c: str) -> bool:
    cat = unicodedata.category(c)
    return cat[0] == "C" or cat in ("Zl", "Zp")


def session_tag(sid: str) -> str:
    """What the log says of a session: a short hash of its id, never the id (a cookie's
    secret part)."""
    return hashlib.sha256(sid.encode("utf-8", "replace")).hexdigest()[:TAG_CHARS]


class AccessLog:
    """Append to and read the access log. Recording never raises into the caller's request:
    a Redis error while logging is returned as False (the caller's action has happened)."""

    def __init__(self, r: redis.Redis, keys: Keys, retention_days: int) -> None:
        self.r = r
        self.key = keys.access_log()
        self.keys = keys
        self.retention_ms = max(1, retention_days) * _DAY_MS

    def record(self, action: str, who: str, now_ms: int | None = None, **fields: object) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown access-log action {action!r}")
        now = int(time.time() * 1000) if now_ms is None else now_ms
        entry = {"action": action, "who": clean(who or "-"), "ts": str(now)}
        entry.update({k: clean(v) for k, v in fields.items() if v is not None})
        try:
            # exact MINID: an entry past the retention goes with the next write (a stream
            # of a few entries has no whole node for `~` to drop)
            self.r.xadd(self.key, entry, minid=now - self.retention_ms, approximate=False)
        except (redis.RedisError, OSError) as e:
            log.warning("access log not written (%s): %s", e.__class__.__name__,
                        json.dumps(entry, ensure_ascii=False))
            return False
        return True

    def first_view(self, tag: str, centre: str, ttl_s: int) -> bool:
        """Is this the first time session `tag` opens `centre`? (SADD to the session's set,
        which lives `ttl_s`, the session's longest life; shared by every worker.) False when
        Redis cannot say: nothing is recorded then."""
        pipe = self.r.pipeline(transaction=False)
        key = self.keys.access_viewed(tag)
        pipe.sadd(key, centre)
        pipe.expire(key, max(1, int(ttl_s)))
        try:
            added, _ = pipe.execute()
        except (redis.RedisError, OSError) as e:
            log.warning("access log: the views of session %s not read (%s)", tag,
                        e.__class__.__name__)
            return False
        return bool(added)

    def viewed(self, who: str, tag: str, centre: str, screen: str, ttl_s: int) -> bool:
        """Record `centre_viewed` the first time session `tag` opens `centre` (on any
        screen, in any worker); True when it was recorded now."""
        return (self.first_view(tag, centre, ttl_s)
                and self.record("centre_viewed", who, centre=centre, screen=screen,
                                session=tag))

    def producer_used(self, name: str, now_ms: int | None = None) -> bool:
        """Record that producer `name` used its token, at most once per minute."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        minute = now // 60_000
        try:
            first = self.r.set(self.keys.producer_used(name, minute), 1, nx=True, ex=120)
        except redis.RedisError:
            return False
        return bool(first) and self.record("producer_used", name, now, minute=minute * 60_000)

    def entries(self, since_ms: int = 0, until_ms: int | None = None,
                count: int = 1000) -> Iterator[dict[str, str]]:
        """The entries from `since_ms` to `until_ms` (inclusive), oldest first, each with its
        stream `id`; read in pages of `count`."""
        start = f"{since_ms}-0"
        end = "+" if until_ms is None else f"{until_ms}-18446744073709551615"
        while True:
            page = self.r.xrange(self.key, start, end, count=count)
            for entry_id, fields in page:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                yield {"id": eid, **{_text(k): _text(v) for k, v in fields.items()}}
            if len(page) < count:
                return
            last = page[-1][0]
            start = "(" + (last.decode() if isinstance(last, bytes) else last)


def _text(v: bytes | str) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


@dataclass
class SeenOnce:
    """Per process: has this key been seen in its current window? (Spares a Redis round trip
    on every request of a proxied user or of a producer, and caps the log's throttled entries
    per address.) At most 10,000 keys are kept; past that the memory starts over."""

    max_age_s: int
    _items: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def window_tag(self, kind: str, name: str) -> str:
        """A session tag for a viewer without a session id (proxy, demo, off): one per
        account and lifetime window."""
        return session_tag(f"{kind}|{name}|{int(time.time()) // self.max_age_s}")

    def first(self, key: str, window_s: int | None = None) -> bool:
        window = int(time.time()) // (window_s or self.max_age_s)
        with self._lock:
            if self._items.get(key) == window:
                return False
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = window
        return True
