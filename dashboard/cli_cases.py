"""`pingan cases CODE` and `pingan case EID`: the cases behind the figures (issue 10)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from dashboard.runtime import Runtime
from datasources.cases import CaseError, case_card, list_cases
from datasources.contract import STATUS_FILTERS
from datasources.keys import Keys


def _when(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%m-%d %H:%M") if ms else "-"


def _hours(ms: int) -> str:
    return f"{ms / 3_600_000:.1f}h" if ms else ""


@click.command("cases")
@click.argument("code")
@click.option("--status", type=click.Choice(STATUS_FILTERS), default="open", show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default is a table).")
@click.pass_context
def cases(ctx, code, status, limit, as_json) -> None:
    """List the open cases of centre CODE and its subtree: overdue first, then urgent, then
    newest."""
    rt = Runtime(ctx.obj)
    if code not in rt.topology.centres:
        raise click.BadParameter(f"unknown centre {code!r}", param_hint="CODE")
    try:
        found = list_cases(rt.redis, rt.topology, Keys(rt.settings.key_prefix), code, status,
                           limit, int(time.time() * 1000))
    except CaseError as exc:
        raise click.BadParameter(str(exc), param_hint="CODE") from None
    if as_json:
        click.echo(json.dumps({"cases": [c.to_dict() for c in found.cases], "total": found.total,
                               "code": found.code, "status": found.status},
                              ensure_ascii=False, indent=1))
        return
    tz = rt.settings.tz
    click.echo(f"{code} {status}: {found.total} cases, {len(found.cases)} shown")
    click.echo(f"{'eid':<24} {'centre':<14} {'tier':>4} {'status':<11} {'urgency':<7} "
               f"{'category':<18} {'reported':<11} {'due':<11} {'overdue':>8} {'督办':>4}")
    for c in found.cases:
        click.echo(f"{c.eid:<24} {c.centre:<14} {c.tier:>4} {c.status:<11} {c.urgency:<7} "
                   f"{c.category:<18} {_when(c.reported_at, tz):<11} {_when(c.due, tz):<11} "
                   f"{_hours(c.overdue_ms):>8} {c.supervised:>4}")


@click.command("case")
@click.argument("eid")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default is a summary).")
@click.pass_context
def case(ctx, eid, as_json) -> None:
    """Print the card of case EID: its record and every transition."""
    rt = Runtime(ctx.obj)
    card = case_card(rt.redis, rt.topology, Keys(rt.settings.key_prefix), eid,
                     int(time.time() * 1000))
    if card is None:
        raise click.BadParameter(f"unknown case {eid!r} (or closed before the retention window)",
                                 param_hint="EID")
    if as_json:
        click.echo(json.dumps(card.to_dict(), ensure_ascii=False, indent=1))
        return
    row, tz = card.row, rt.settings.tz
    state = "open" if row.open else f"closed {_when(card.closed_at, tz)}"
    click.echo(f"{row.eid} {row.category} {row.channel} {row.urgency}: {state}, at {row.centre} "
               f"(tier {row.tier}), reported {_when(row.reported_at, tz)}, due "
               f"{_when(row.due, tz)}, overdue {_hours(row.overdue_ms) or '-'}, "
               f"督办 {row.supervised}, escalated {row.escalated}")
    if row.summary:
        click.echo(f"  {row.summary}")
    for s in card.steps:
        extra = " ".join(x for x in (f"→ {s.to}" if s.to else "", f"by {s.by}" if s.by else "",
                                     f"({s.user})" if s.user else "", s.note, s.summary) if x)
        click.echo(f"  {_when(s.ts, tz)} {s.status:<11} {s.centre:<14} +{_hours(s.spent_ms) or '0'}"
                   f"{' late ' + _hours(s.over_ms) if s.over_ms else ''} {extra}".rstrip())
