"""What the walls of a named group show, set from the duty console (值班席).

A wall opened as `/wall?screen=GROUP` follows the group's directive: the centre in view and,
optionally, a case or an alert to spotlight. The console writes it (`set_directive`); the live
push reads it once per tick per worker and sends it to the group's walls, which drill in place.
`seq` grows with every directive, so a wall acts on each one once, even the same centre twice.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import redis

from datasources.keys import Keys

GROUP_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
DIRECTIVE_TTL_S = 7 * 86_400


class BadGroup(ValueError):
    """A wall-group name that is not 1–32 letters, digits, `_` or `-`."""


@dataclass(frozen=True)
class Directive:
    group: str
    seq: int
    centre: str
    case: str = ""
    alert: str = ""
    by: str = ""
    at: int = 0  # ms

    def to_dict(self) -> dict:
        return asdict(self)


def check_group(group: object) -> str:
    if not isinstance(group, str) or not GROUP_RE.match(group):
        raise BadGroup(f"bad wall group: {str(group)[:40]!r}")
    return group


def set_directive(r: redis.Redis, keys: Keys, group: str, centre: str, *, case: str = "",
                  alert: str = "", by: str = "", now_ms: int) -> Directive:
    """Point the walls of `group` at `centre` (and spotlight `case` or `alert`). The caller
    has checked that `by` may see `centre` and the case or alert."""
    key = keys.wall_directive(check_group(group))
    pipe = r.pipeline(transaction=True)
    pipe.hincrby(key, "seq", 1)
    pipe.hset(key, mapping={"centre": centre, "case": case, "alert": alert, "by": by,
                            "at": now_ms})
    pipe.expire(key, DIRECTIVE_TTL_S)
    seq = pipe.execute()[0]
    return Directive(group, int(seq), centre, case, alert, by, now_ms)


def get_directive(r: redis.Redis, keys: Keys, group: str) -> Directive | None:
    raw = r.hgetall(keys.wall_directive(check_group(group)))
    if not raw or b"seq" not in raw or b"centre" not in raw:
        return None
    text = {k.decode(): v.decode("utf-8", "replace") for k, v in raw.items()}
    try:
        return Directive(group, int(text["seq"]), text["centre"], text.get("case", ""),
                         text.get("alert", ""), text.get("by", ""), int(text.get("at") or 0))
    except ValueError:
        return None
