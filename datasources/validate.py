"""Checks on identifiers and URLs that enter from outside (registry files, the CLI, Redis).

Centre codes end up in Redis key names, URLs, HTML attributes and CSV cells; grid and camera
ids in hash fields and map features; conference URLs in an iframe's `src` and a link's `href`.
One definition each, used wherever they enter: `registry import`, `pingan users add --scope`,
the calls in progress read back from Redis.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")      # a centre code
ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")        # a grid or camera id (the column width)
CONFERENCE_SCHEMES = ("http", "https", "sip", "sips")
MAX_URL = 512                                      # the registry column width


def is_code(value: object) -> bool:
    return isinstance(value, str) and CODE_RE.fullmatch(value) is not None


def is_id(value: object) -> bool:
    return isinstance(value, str) and ID_RE.fullmatch(value) is not None


def is_conference_url(value: object) -> bool:
    """An http(s) URL with a host, or a SIP URI (`sip:`/`sips:` user@host): never
    `javascript:`, `data:` or anything else a browser would run or render from the URL."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URL:
        return False
    if any(ord(c) < 0x21 or c in '"<>\\^`{|}' or ord(c) == 0x7F for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return bool(parts.netloc) and value[len(scheme):len(scheme) + 3] == "://"
    if scheme in ("sip", "sips"):
        rest = value[len(scheme) + 1:]
        return bool(rest) and not rest.startswith("/")
    return False


def as_int(value: object, default: int = 0) -> int:
    """A counter read back from Redis: its integer, or `default` for anything else (a
    garbage value must cost one figure, not the whole screen)."""
    if value is None:
        return default
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
