"""`pingan access-log`: export the access log, who did what (docs/security.md "Access log")."""

from __future__ import annotations

import getpass
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from dashboard.runtime import Runtime
from datasources.accesslog import ACTIONS, AccessLog
from datasources.keys import Keys


def cli_who() -> str:
    """`cli:<the OS account>`: who a command's entries of the access log name."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container)
        name = f"uid{os.getuid()}"
    return f"cli:{name}"

_SPAN = re.compile(r"(\d{1,6})([smhdw])", re.ASCII)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_SPAN_S = 20 * 366 * 86400   # "--since 99999d" is a typo, not twenty-seven centuries
MAX_WHEN = 40
PROGRESS_AFTER_S = 2.0          # a slow export tells stderr how far it got
PROGRESS_EVERY = 10_000


def parse_when(text: str, tz: str, now_ms: int) -> int:
    """`24h`, `30m`, `7d`, `2w` (that long before `now_ms`), or an ISO date and time
    (`2026-12-01T08:00+08:00`; without a zone, in `tz`; a date alone is its midnight) → ms.
    ValueError with the reason for anything else."""
    if not isinstance(text, str) or not 0 < len(text.strip()) <= MAX_WHEN:
        raise ValueError("expected a span like 24h, 30m, 7d or an ISO time like "
                         "2026-12-01T08:00+08:00")
    raw = text.strip()
    span = _SPAN.fullmatch(raw)
    if span:
        seconds = int(span.group(1)) * _UNIT_S[span.group(2)]
        if seconds > MAX_SPAN_S:
            raise ValueError(f"{raw} is longer than 20 years")
        return now_ms - seconds * 1000
    if not raw.isascii() or not raw.isprintable():
        raise ValueError("expected a span like 24h or an ISO time (ASCII)")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is neither a span (24h, 30m, 7d) nor an ISO time "
                         "(2026-12-01T08:00+08:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz))
    ms = int(when.timestamp() * 1000)
    if ms < 0:
        raise ValueError(f"{raw} is before 1970")
    return ms


def matches(entry: dict[str, str], actions: frozenset[str], who: str | None) -> bool:
    return (not actions or entry.get("action") in actions) and (who is None
                                                                  or entry.get("who") == who)


def as_json(entry: dict[str, str]) -> dict:
    """An entry as exported: its fields, `ts` as a number (ms)."""
    out: dict = dict(entry)
    ts = out.get("ts", "")
    if ts.isascii() and ts.isdigit():
        out["ts"] = int(ts)
    return out


def as_line(entry: dict[str, str], tz: str) -> str:
    """One line: local time, action, who, then the action's own fields as key=value."""
    ts = entry.get("ts", "")
    when = (datetime.fromtimestamp(int(ts) / 1000, ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S")
            if ts.isascii() and ts.isdigit() else "-")
    rest = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("id", "ts", "action", "who"))
    return f"{when}  {entry.get('action', '-'):<18} {entry.get('who', '-'):<16} {rest}".rstrip()


def _with_progress(entries: Iterable[dict[str, str]]) -> Iterator[dict[str, str]]:
    t0 = time.monotonic()
    for n, entry in enumerate(entries, 1):
        if n % PROGRESS_EVERY == 0 and time.monotonic() - t0 > PROGRESS_AFTER_S:
            click.echo(f"… {n} entries read", err=True)
        yield entry


def _when_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_when(value, ctx.obj.tz, int(time.time() * 1000))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command("access-log")
@click.option("--since", default="24h", show_default=True, callback=_when_option,
              help="A span back from now (24h, 30m, 7d) or an ISO time (2026-12-01T08:00+08:00).")
@click.option("--until", default=None, callback=_when_option,
              help="The end, like --since (default: now).")
@click.option("--action", "actions", multiple=True, type=click.Choice(ACTIONS),
              help="Only these actions (repeatable).")
@click.option("--who", default=None, help="Only entries of this user or producer.")
@click.option("--json", "as_json_out", is_flag=True,
              help="One JSON array on stdout (the default is a line per entry).")
@click.pass_context
def access_log(ctx: click.Context, since: int, until: int | None, actions: tuple[str, ...],
               who: str | None, as_json_out: bool) -> None:
    """Export the access log: sign-ins, centres viewed, calls, acknowledgements, 督办, embed
    and producer tokens, oldest first."""
    if until is not None and until < since:
        raise click.BadParameter("--until is before --since", param_hint="--until")
    s = ctx.obj
    log = AccessLog(Runtime(s).redis, Keys(s.key_prefix), s.access_log_days)
    wanted = frozenset(actions)
    n = 0
    if as_json_out:
        click.echo("[", nl=False)
    for entry in _with_progress(log.entries(since, until)):
        if not matches(entry, wanted, who):
            continue
        if as_json_out:  # streamed: a large log is never held whole
            click.echo(("\n" if n == 0 else ",\n")
                       + json.dumps(as_json(entry), ensure_ascii=False, sort_keys=True), nl=False)
        else:
            click.echo(as_line(entry, s.tz))
        n += 1
    if as_json_out:
        click.echo("\n]" if n else "]")
    click.echo(f"{n} entries", err=True)
