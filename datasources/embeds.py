"""The registry of embed tokens (table `embeds`, `EmbedRow`): record, list, revoke, check.

Every token `pingan embed-url` mints carries a random id (`i`) recorded here; a web worker
accepts a token only while its id is on record and not revoked (`EmbedStates`, a per-worker
cache of a few seconds, so a portal's many polling iframes do not query SQL per request).
The token itself (signature, expiry, widget, scope) is checked by dashboard/embed.py.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine

from datasources.registry import EmbedRow, session_scope

ID = re.compile(r"[A-Za-z0-9_-]{12,32}")  # what `new_id` makes, with room for longer ones
NOTE_CHARS = 128
STATES = ("active", "expired", "revoked")


def new_id() -> str:
    """16 url-safe random characters (96 bits), never starting with '-' (one in 64 would, and
    `pingan embeds revoke -x…` reads as an option)."""
    while True:
        token_id = secrets.token_urlsafe(12)
        if not token_id.startswith("-"):
            return token_id


def _utc(dt: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were written in UTC."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def record(engine: Engine, token_id: str, widget: str, centre: str, created: datetime,
           expires: datetime, note: str = "") -> None:
    """Record a minted token (before its URL is shown to anyone)."""
    if not ID.fullmatch(token_id):
        raise ValueError(f"bad embed id {token_id!r}")
    with session_scope(engine) as s:
        s.add(EmbedRow(id=token_id, widget=widget, centre=centre, created=_utc(created),
                       expires=_utc(expires), note=note[:NOTE_CHARS], revoked=None))


def _row(e: EmbedRow, now: datetime) -> dict:
    revoked = _utc(e.revoked) if e.revoked else None
    expires = _utc(e.expires)
    state = "revoked" if revoked else ("expired" if expires <= now else "active")
    return {"id": e.id, "widget": e.widget, "centre": e.centre, "created": _utc(e.created),
            "expires": expires, "note": e.note or "", "state": state, "revoked": revoked}


def list_embeds(engine: Engine, now: datetime, include_all: bool = False) -> list[dict]:
    """The tokens on record, newest first: active ones only unless `include_all`. Each row:
    id, widget, centre, created, expires, note, state (one of STATES), revoked (or None)."""
    now = _utc(now)
    with session_scope(engine) as s:
        q = select(EmbedRow).order_by(EmbedRow.created.desc(), EmbedRow.id)
        if not include_all:
            q = q.where(EmbedRow.revoked.is_(None), EmbedRow.expires > now)
        return [_row(e, now) for e in s.scalars(q)]


def revoke(engine: Engine, token_id: str, now: datetime) -> tuple[dict, bool] | None:
    """Revoke token `token_id`: (its row, whether this call revoked it), None when unknown.
    Revoking twice keeps the first time."""
    if not ID.fullmatch(token_id):
        return None
    now = _utc(now)
    with session_scope(engine) as s:
        e = s.get(EmbedRow, token_id)
        if e is None:
            return None
        changed = e.revoked is None
        if changed:
            e.revoked = now
        return _row(e, now), changed


def is_active(engine: Engine, token_id: str) -> bool:
    """True when `token_id` is on record and not revoked (expiry is the token's own)."""
    if not ID.fullmatch(token_id):
        return False
    with session_scope(engine) as s:
        revoked = s.execute(select(EmbedRow.revoked).where(EmbedRow.id == token_id)).first()
    return revoked is not None and revoked[0] is None


class EmbedStates:
    """Per web worker: whether an id is active, remembered for `ttl_s` seconds (so a
    revocation reaches every worker within that time). At most `max_ids` ids are kept; past
    that the memory starts over. Database errors propagate (the caller answers 503)."""

    def __init__(self, engine: Engine, ttl_s: float = 2.0, max_ids: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.max_ids = max_ids
        self.clock = clock
        self._seen: dict[str, tuple[bool, float]] = {}

    def active(self, token_id: str) -> bool:
        now = self.clock()
        hit = self._seen.get(token_id)
        if hit is not None and now - hit[1] < self.ttl_s:
            return hit[0]
        state = is_active(self.engine, token_id)
        if len(self._seen) >= self.max_ids:
            self._seen = {}
        self._seen[token_id] = (state, now)
        return state
