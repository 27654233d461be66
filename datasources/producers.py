"""Producers: the systems that write the streams, each with its own token (issue 12).

A producer has a name (it becomes the `src` of every entry it writes, a Redis ACL user name and
part of key names, hence the narrow alphabet), the stream kinds it may write, a scope centre
(it may write entries of that subtree) and a rate (entries per second, the gateway's cap).

Its token is `TOKEN_PREFIX` + 32 random bytes (URL-safe base64), shown once; the registry keeps
only its SHA-256: a token is random, not a password, so a fast hash behind the unique index is
the lookup (no per-row comparison). `lookup` refuses anything that cannot be a token before any
SQL. Revoking and rotating take effect at once: every lookup reads the database.

add/rotate/revoke change what running processes allow; given a `Notice`, they bump the registry
version and record the access log after the SQL commit.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from datasources.accesslog import AccessLog
from datasources.keys import STREAM_KINDS, Keys, glob_escape
from datasources.registry import Centre, ProducerRow, session_scope
from datasources.topology import Topology, shards_in_scope

TOKEN_PREFIX = "pgp_"
MAX_TOKEN = 100
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,47}")
_TOKEN_BODY = re.compile(r"[A-Za-z0-9_-]{16,96}")
SIMULATOR = "pingan-sim"
HANDOFF = "pingan-handoff"
UNREGISTERED = "(unregistered)"
RESERVED = frozenset({SIMULATOR, HANDOFF, UNREGISTERED})
ACL_USER_PREFIX = "pingan-producer-"
SILENT_MS = 10 * 60_000  # no entry for longer than this: the producer is shown as silent
MAX_REASON_CLASS = 48


class ProducerError(ValueError):
    """A producer command that cannot be carried out (the message says why)."""


@dataclass(frozen=True)
class Producer:
    name: str
    kinds: frozenset[str]
    scope: str
    rate: int


@dataclass(frozen=True)
class Notice:
    """Where add/rotate/revoke announce a change: the registry version and the access log.
    The change is committed before; a Redis error here must not lose a token that was just
    made, so it is kept in `problems` (the caller warns) instead of raised."""

    r: redis.Redis
    keys: Keys
    log: AccessLog
    who: str
    problems: list[str] = field(default_factory=list)

    def changed(self, action: str, name: str) -> None:
        try:
            self.r.incr(self.keys.registry_version())
        except redis.RedisError as exc:
            self.problems.append(f"the registry version was not bumped ({exc}); running "
                                 "processes pick the change up at their next reload")
        if not self.log.record(action, self.who, producer=name):
            self.problems.append(f"the access log did not record {action}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def is_token_shaped(token: object) -> bool:
    """Could `token` be one of ours (checked before any SQL)."""
    return (isinstance(token, str) and len(token) <= MAX_TOKEN and token.startswith(TOKEN_PREFIX)
            and _TOKEN_BODY.fullmatch(token[len(TOKEN_PREFIX):]) is not None)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ProducerError("producer names are 1-48 of a-z 0-9 _ . - (starting with a letter "
                            "or digit)")
    if name in RESERVED:
        raise ProducerError(f"the name {name!r} is reserved")
    return name


def parse_kinds(kinds: Iterable[str] | str) -> frozenset[str]:
    """Stream kinds from a list or comma-separated text; each must be a producer stream kind."""
    items = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    out = set()
    for k in items:
        k = str(k).strip()
        if k not in STREAM_KINDS:
            raise ProducerError(f"unknown kind {k[:40]!r}: kinds are {', '.join(STREAM_KINDS)}")
        out.add(k)
    if not out:
        raise ProducerError("at least one kind is needed")
    return frozenset(out)


def _kinds_text(kinds: frozenset[str]) -> str:
    return ",".join(k for k in STREAM_KINDS if k in kinds)


def _producer(row: ProducerRow) -> Producer:
    return Producer(row.name, frozenset(k for k in row.kinds.split(",") if k), row.scope, row.rate)


def _now() -> datetime:
    return datetime.now(UTC)


def add(engine: Engine, name: str, kinds: Iterable[str], scope: str, rate: int,
        notice: Notice | None = None) -> str:
    """Register a producer; returns its token (shown once, stored hashed)."""
    check_name(name)
    kind_set = parse_kinds(kinds)
    if not isinstance(rate, int) or isinstance(rate, bool) or not 1 <= rate <= 1_000_000:
        raise ProducerError("rate must be an integer from 1 to 1000000 entries per second")
    token = new_token()
    try:
        with session_scope(engine) as s:
            if not isinstance(scope, str) or s.get(Centre, scope) is None:
                raise ProducerError(f"unknown centre {str(scope)[:40]!r}")
            old = s.get(ProducerRow, name)
            if old is not None:
                state = " (revoked; names are never reused)" if old.revoked else ""
                raise ProducerError(f"producer {name!r} exists{state}")
            s.add(ProducerRow(name=name, kinds=_kinds_text(kind_set), scope=scope, rate=rate,
                              token_hash=hash_token(token), created=_now()))
    except IntegrityError:  # added at the same moment by another command
        raise ProducerError(f"producer {name!r} exists") from None
    if notice is not None:
        notice.changed("producer_created", name)
    return token


def lookup(engine: Engine, token: object) -> Producer | None:
    """The active producer of `token`; None for an unknown, malformed or revoked token."""
    if not is_token_shaped(token):
        return None
    with session_scope(engine) as s:
        row = s.scalar(select(ProducerRow).where(ProducerRow.token_hash == hash_token(token)))
        return None if row is None or row.revoked is not None else _producer(row)


def get(engine: Engine, name: str) -> Producer | None:
    """The active producer called `name`."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return None
    with session_scope(engine) as s:
        row = s.get(ProducerRow, name)
        return None if row is None or row.revoked is not None else _producer(row)


def rotate(engine: Engine, name: str, notice: Notice | None = None) -> str:
    """A new token for `name`; the old one stops working at once."""
    token = new_token()
    with session_scope(engine) as s:
        row = s.get(ProducerRow, name) if isinstance(name, str) else None
        if row is None or row.revoked is not None:
            raise ProducerError(f"no active producer {str(name)[:60]!r}")
        row.token_hash = hash_token(token)
        row.rotated = _now()
    if notice is not None:
        notice.changed("producer_rotated", name)
    return token


def revoke(engine: Engine, name: str, notice: Notice | None = None) -> bool:
    """Revoke `name` (its token stops at once); False when there is no active producer so named."""
    with session_scope(engine) as s:
        row = s.get(ProducerRow, name) if isinstance(name, str) else None
        if row is None or row.revoked is not None:
            return False
        row.revoked = _now()
    if notice is not None:
        notice.changed("producer_revoked", name)
    return True


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="seconds")


def list_producers(engine: Engine) -> list[dict]:
    """Every producer, revoked ones included (never a token or its hash)."""
    with session_scope(engine) as s:
        rows = s.scalars(select(ProducerRow).order_by(ProducerRow.name)).all()
        return [{"name": r.name, "kinds": [k for k in STREAM_KINDS if k in r.kinds.split(",")],
                 "scope": r.scope, "rate": r.rate, "created": _iso(r.created),
                 "rotated": _iso(r.rotated), "revoked": _iso(r.revoked),
                 "active": r.revoked is None} for r in rows]


def names(engine: Engine) -> frozenset[str]:
    """The active producers' names."""
    with session_scope(engine) as s:
        return frozenset(s.scalars(select(ProducerRow.name).where(ProducerRow.revoked.is_(None))))


def reason_class(reason: str) -> str:
    """A dead letter's reason → a bounded class: the text before the first ':' (the reasons
    of docs/STREAMS.md §7 name their values after it), with any word that carries a value
    (a digit, a quote or '=': `unsupported version v='x'`, `grid G3 is not under centre V1`)
    masked, so a producer cannot mint a new class per entry."""
    head = str(reason).split(":", 1)[0].split()
    words = ["…" if any(c.isdigit() or c in "'\"=" for c in w) else w for w in head]
    if len(words) >= 2 and words[0] == "grid" and "under" in words:  # `grid <id> is not under …`
        words = ["grid", "…", *words[2:]]
    return " ".join(words)[:MAX_REASON_CLASS] or "unknown"


def acl_user(name: str) -> str:
    return ACL_USER_PREFIX + name



# ---- Redis ACL users of producers that write Redis directly ----------------------------------
def acl_rule(keys: Keys, topo: Topology, producer: Producer) -> list[str]:
    """The ACL rules of the producer's Redis user: XADD (and PING) only, to exactly the
    streams of its kinds in the shards of its scope (a scope below a shard head writes that
    shard's streams). An unknown scope leaves no key at all."""
    shards = shards_in_scope(topo, producer.scope) if producer.scope in topo.centres else []
    patterns = ["~" + glob_escape(keys.stream(shard, kind))
                for shard in shards for kind in STREAM_KINDS if kind in producer.kinds]
    return ["resetkeys", "resetchannels", "-@all", "+xadd", "+ping", *patterns]


def acl_setuser(keys: Keys, topo: Topology, producer: Producer,
                password: str | None = None) -> list[str]:
    """The whole `ACL SETUSER` command (re-applying it replaces the user's old rules); without
    a password the user is on but cannot sign in until one is added."""
    secret = [">" + password] if password else []
    return ["ACL", "SETUSER", acl_user(producer.name), "reset", "on", *secret,
            *acl_rule(keys, topo, producer)]


# ---- per-producer figures (written by the aggregator in Keys.producer_stats) ------------------
def _int(v: object) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _text(v: bytes | str) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def _empty(name: str) -> dict:
    return {"name": name, "registered": False, "kinds": [], "scope": None, "accepted": 0,
            "dead": {}, "dead_total": 0, "last_ts": None, "applied_at": None, "lag_ms": None,
            "silent": False}


def _fold(row: dict, field: str, rest: str, value: int) -> None:
    if field == "accepted":
        row["accepted"] += value
    elif field == "dead" and rest:
        row["dead"][rest] = row["dead"].get(rest, 0) + value
        row["dead_total"] += value
    elif field == "last_ts":
        row["last_ts"] = value if row["last_ts"] is None else max(row["last_ts"], value)


def stats(r: redis.Redis, keys: Keys, topo: Topology, engine: Engine,
          now_ms: int | None = None, silent_ms: int = SILENT_MS,
          scope: str | None = None) -> list[dict]:
    """Per producer, summed over every shard (or those of `scope`): see `figures`."""
    return figures(r, keys, topo, list_producers(engine), now_ms, silent_ms, scope)


def _writes_into(topo: Topology, producer_scope: str, shards: set[str]) -> bool:
    return producer_scope in topo.centres and bool(shards & set(shards_in_scope(topo, producer_scope)))


def figures(r: redis.Redis, keys: Keys, topo: Topology, registered: list[dict],
            now_ms: int | None = None, silent_ms: int = SILENT_MS,
            scope: str | None = None) -> list[dict]:
    """Per producer, summed over the shards (one pipeline): accepted, dead letters by reason
    class, the newest entry's time, when its newest batch was applied and that batch's lag (of
    the shard applied last: the current lag). `registered` is `list_producers`: every active
    producer is listed, a silent one too (with `scope`: those writing into its shards); then
    the simulator, revoked producers with figures and the unregistered bucket. `silent`: no
    entry applied (or dated) within `silent_ms`, or never (active producers and the simulator:
    a revoked one is expected to be quiet, the unregistered bucket is not a producer)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    shards = (shards_in_scope(topo, scope) if scope in topo.centres else []) if scope \
        else list(topo.shards)
    pipe = r.pipeline(transaction=False)
    for shard in shards:
        pipe.hgetall(keys.producer_stats(shard))
    rows: dict[str, dict] = {}
    latest: dict[str, int] = {}
    for found in pipe.execute():
        lag_of: dict[str, int] = {}
        applied: dict[str, int] = {}
        for k, v in found.items():
            name, _, tail = _text(k).partition("|")
            field, _, rest = tail.partition("|")
            value = _int(_text(v))
            if not name or value is None:
                continue
            row = rows.setdefault(name, _empty(name))
            if field == "lag_ms":
                lag_of[name] = value
            elif field == "applied_at":
                applied[name] = value
            else:
                _fold(row, field, rest[:MAX_REASON_CLASS], value)
        for name, at in applied.items():
            if at >= latest.get(name, -1):
                latest[name] = at
                rows[name]["applied_at"] = at
                rows[name]["lag_ms"] = lag_of.get(name)
    wanted = set(shards)
    registered_by = {p["name"]: p for p in registered}
    for name, p in registered_by.items():
        if name in rows or (p["active"] and (scope is None or _writes_into(topo, p["scope"], wanted))):
            row = rows.setdefault(name, _empty(name))
            row.update(registered=True, kinds=p["kinds"], scope=p["scope"])
    for row in rows.values():
        seen = max(row["applied_at"] or 0, row["last_ts"] or 0)
        row["active"] = row["name"] == SIMULATOR or registered_by.get(row["name"], {}).get("active", False)
        row["silent"] = row["active"] and (not seen or now - seen > silent_ms)

    def order(row: dict) -> tuple[int, bool, str]:  # the silent ones first in their group
        rank = 3 if row["name"] == UNREGISTERED else 1 if row["name"] == SIMULATOR else (
            0 if row["active"] else 2)
        return rank, not row["silent"], row["name"]

    return sorted(rows.values(), key=order)
