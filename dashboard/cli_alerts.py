"""`pingan alerts [CODE]` and `pingan alerts ack ID --user NAME`: the 预警 alerts (issue 10)."""

from __future__ import annotations

import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from dashboard.runtime import Runtime
from datasources.alerts import OPEN_STATES, AlertError, alert_history, list_alerts, request_ack
from datasources.contract import ALERT_STATES
from datasources.keys import Keys


def when_text(ms: int | None, tz: str) -> str:
    """A time in ms as the CLI tables show it (local, to the second); `-` for none."""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).strftime("%m-%d %H:%M:%S") if ms else "-"


@click.command("alerts")
@click.argument("args", nargs=-1, metavar="[CODE] | ack ID --user NAME")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default is a table).")
@click.option("--all", "every_state", is_flag=True, help="Cleared alerts too.")
@click.option("--history", is_flag=True, help="The history (raised, acknowledged, cleared).")
@click.option("--limit", type=click.IntRange(1, 1000), default=200, show_default=True)
@click.option("--user", default=None, help="ack: who acknowledges (1–64 printable characters).")
@click.pass_context
def alerts(ctx, args, as_json, every_state, history, limit, user) -> None:
    """List the open alerts of centre CODE and its subtree (all without CODE): unacknowledged
    first, then newest. `pingan alerts ack ID --user NAME` asks the aggregator to acknowledge
    alert ID (it applies the request once and writes who and when to the history)."""
    rt = Runtime(ctx.obj)
    keys = Keys(rt.settings.key_prefix)
    if args and args[0] == "ack":
        if len(args) != 2:
            raise click.UsageError("pingan alerts ack ID --user NAME")
        if not user:
            raise click.UsageError("--user NAME is required to acknowledge")
        try:
            request_ack(rt.redis, rt.topology, keys, args[1], user, int(time.time() * 1000))
        except AlertError as exc:
            raise click.ClickException(str(exc)) from None
        if as_json:
            click.echo(json.dumps({"requested": args[1], "user": user}, ensure_ascii=False))
        else:
            click.echo(f"asked the aggregator to acknowledge {args[1]} for {user}")
        return
    if len(args) > 1:
        raise click.UsageError("at most one CODE")
    code = args[0] if args else None
    if code is not None and code not in rt.topology.centres:
        raise click.BadParameter(f"unknown centre {code!r}", param_hint="CODE")
    if history:
        rows = alert_history(rt.redis, rt.topology, keys, code, count=limit)
        if as_json:
            click.echo(json.dumps({"history": rows}, ensure_ascii=False, indent=1))
            return
        for h in rows:
            by = f" by {h['by']}" if h["by"] else ""
            click.echo(f"{when_text(h['at'], rt.settings.tz)} {h['event']:<12} {h['id']}{by}")
        return
    states = ALERT_STATES if every_state else OPEN_STATES
    found = list_alerts(rt.redis, rt.topology, keys, code, states, limit)
    if as_json:
        click.echo(json.dumps({"alerts": [a.to_dict() for a in found]}, ensure_ascii=False,
                              indent=1))
        return
    tz = rt.settings.tz
    click.echo(f"{len(found)} alerts")
    for a in found:
        name = rt.topology.centres[a.centre].name if a.centre in rt.topology.centres else ""
        acked = f" ({a.acked_by} {when_text(a.acked_at, tz)})" if a.acked_by else ""
        detail = " ".join(f"{k}={v}" for k, v in a.detail.items())
        click.echo(f"{a.severity:<8} {a.state:<12} {when_text(a.raised_at, tz)} {a.centre} {name} "
                   f"{a.rule} {a.eid} {detail}{acked}\n         {a.id}")
