"""`pingan embeds list|revoke` and the work of `pingan embed-url` (docs/embeds.md).

Every minted token is recorded (datasources/embeds.py) and logged (`embed_minted`); a revoked
one is refused by every web worker within seconds (`embed_revoked`, registry version bumped).
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import click
import redis

from dashboard.cli_access import cli_who
from dashboard.runtime import Runtime
from dashboard.settings import Settings
from datasources import embeds
from datasources.accesslog import AccessLog
from datasources.keys import Keys


def check_note(note: str) -> str:
    """A note is one line of at most embeds.NOTE_CHARS printable characters."""
    if len(note) > embeds.NOTE_CHARS:
        raise click.BadParameter(f"at most {embeds.NOTE_CHARS} characters", param_hint="--note")
    if any(unicodedata.category(ch).startswith("C") for ch in note):
        raise click.BadParameter("control characters are not allowed", param_hint="--note")
    return note


def log_action(rt: Runtime, action: str, **fields: object) -> None:
    """Record in the access log; a Redis that cannot be reached is said on stderr (the
    action itself has happened and is on record in the registry)."""
    s = rt.settings
    try:
        ok = AccessLog(rt.redis, Keys(s.key_prefix), s.access_log_days).record(
            action, cli_who(), **fields)
    except (redis.RedisError, OSError):
        ok = False
    if not ok:
        click.echo(f"warning: the access log could not be written ({action})", err=True)


def _local(dt: datetime | None, tz: str) -> str | None:
    return dt.astimezone(ZoneInfo(tz)).isoformat(timespec="seconds") if dt else None


def mint_url(rt: Runtime, widget: str, code: str, ttl_s: int, note: str, base_url: str,
             query: dict[str, str], as_json: bool) -> None:
    """Mint, record, log and print an embed URL (`pingan embed-url`)."""
    from urllib.parse import urlencode

    from dashboard.embed import issue

    minted = issue(rt.engine, rt.settings, widget, code, ttl_s, note=note)
    tz = rt.settings.tz
    expires = _local(datetime.fromtimestamp(minted.expires, UTC), tz)
    log_action(rt, "embed_minted", id=minted.token_id, widget=widget, centre=code,
               expires=expires)
    url = f"{base_url.rstrip('/')}/embed/{widget}?{urlencode({'token': minted.token, **query})}"
    if as_json:
        click.echo(json.dumps({"url": url, "id": minted.token_id, "expires": expires}))
        return
    click.echo(url)
    click.echo(f"id {minted.token_id} expires {expires} ({tz})", err=True)


def _row_out(row: dict, tz: str) -> dict:
    return {**row, **{k: _local(row[k], tz) for k in ("created", "expires", "revoked")}}


@click.group("embeds")
def embeds_group() -> None:
    """The embed tokens minted by `pingan embed-url`: list and revoke."""


@embeds_group.command("list")
@click.option("--all", "include_all", is_flag=True,
              help="Every token on record with its state (default: the active ones).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of tokens).")
@click.pass_context
def list_cmd(ctx: click.Context, include_all: bool, as_json: bool) -> None:
    """The tokens on record, newest first: id, widget, centre, created, expires, state, note."""
    settings: Settings = ctx.obj
    rows = embeds.list_embeds(Runtime(settings).engine, datetime.now(UTC), include_all)
    rows = [_row_out(r, settings.tz) for r in rows]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
    else:
        for r in rows:
            note = f"  {r['note']}" if r["note"] else ""
            click.echo(f"{r['id']}  {r['widget']:9s} {r['centre']:12s} "
                       f"expires {r['expires']}  {r['state']}{note}")
    states = {s: sum(r["state"] == s for r in rows) for s in embeds.STATES}
    click.echo(f"{len(rows)} tokens" + (
        f" ({', '.join(f'{n} {s}' for s, n in states.items() if n)})" if include_all
        else " active"), err=True)


@embeds_group.command("revoke")
@click.argument("token_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the revoked token as JSON.")
@click.pass_context
def revoke_cmd(ctx: click.Context, token_id: str, as_json: bool) -> None:
    """Revoke token ID: every web worker refuses it within seconds."""
    rt = Runtime(ctx.obj)
    done = embeds.revoke(rt.engine, token_id, datetime.now(UTC))
    if done is None:
        raise click.ClickException(f"unknown embed id {token_id[:64]!r} "
                                   "(see `pingan embeds list --all`)")
    row, changed = done
    if changed:
        log_action(rt, "embed_revoked", id=row["id"], widget=row["widget"],
                   centre=row["centre"])
        try:
            rt.redis.incr(Keys(rt.settings.key_prefix).registry_version())
        except (redis.RedisError, OSError):
            click.echo("warning: the registry version could not be bumped (the workers "
                       "still refuse the token within seconds)", err=True)
    out = _row_out(row, rt.settings.tz)
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False))
    click.echo(f"{'revoked' if changed else 'already revoked at ' + str(out['revoked'])}: "
               f"{row['id']} ({row['widget']} {row['centre']})", err=True)
