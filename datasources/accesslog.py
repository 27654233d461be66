"""The access log: who did what, append-only, in one Redis stream (docs/security.md).

Each entry has `action` (one of ACTIONS), `who` (a user or producer name, or `-`), `ts` (ms)
and the action's own fields (centre, widget, id, cid, …), all plain text, each cut to
`MAX_VALUE` characters. Nothing personal beyond the account name. Entries older than the
retention (`PINGAN_ACCESS_LOG_DAYS`) are trimmed by MINID as new ones are written; nothing
else ever deletes or changes one. `pingan access-log` exports it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

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
_DAY_MS = 86_400_000


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
        entry = {"action": action, "who": str(who or "-")[:MAX_VALUE], "ts": str(now)}
        entry.update({k: str(v)[:MAX_VALUE] for k, v in fields.items() if v is not None})
        try:
            self.r.xadd(self.key, entry, minid=now - self.retention_ms, approximate=True)
        except redis.RedisError:
            return False
        return True

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
