"""`pingan producers add|list|revoke|rotate|acl|stats`: the systems that write the streams (issue 12)."""

from __future__ import annotations

import json
import secrets
import time

import click
import redis

from dashboard.cli_access import cli_who
from dashboard.cli_alerts import when_text
from dashboard.runtime import Runtime
from datasources import producers as P
from datasources.accesslog import AccessLog
from datasources.keys import STREAM_KINDS, Keys


def _rt(ctx: click.Context) -> Runtime:
    from dashboard.settings import Settings

    return Runtime(ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env())


def _notice(rt: Runtime) -> P.Notice:
    keys = Keys(rt.settings.key_prefix)
    log = AccessLog(rt.redis, keys, rt.settings.access_log_days)
    return P.Notice(rt.redis, keys, log, cli_who())


def _warn(notice: P.Notice) -> None:
    for problem in notice.problems:
        click.echo(f"warning: {problem}", err=True)


def _show_token(name: str, token: str, as_json: bool, what: str) -> None:
    if as_json:
        click.echo(json.dumps({"token": token, "name": name}))
        return
    click.echo(token)
    click.echo(f"{what} {name}: the token above is shown once; keep it in the producer's "
               "configuration (Authorization: Bearer <token>)", err=True)


@click.group()
def producers() -> None:
    """Producers: systems (12345, 雪亮, 信访, grid apps) that write the streams with their own
    token (the HTTP gateway) or their own Redis ACL user."""


@producers.command("add")
@click.argument("name")
@click.option("--kinds", required=True, help=f"Comma-separated: {','.join(STREAM_KINDS)}.")
@click.option("--scope", required=True, help="Centre code whose subtree it may write.")
@click.option("--rate", type=int, default=None, help="Entries per second (default PINGAN_API_RATE).")
@click.option("--json", "as_json", is_flag=True, help="Print {\"token\": …, \"name\": …}.")
@click.pass_context
def add(ctx, name, kinds, scope, rate, as_json) -> None:
    """Register producer NAME and print its token (once)."""
    rt = _rt(ctx)
    notice = _notice(rt)
    try:
        token = P.add(rt.engine, name, kinds, scope,
                      rt.settings.api_rate if rate is None else rate, notice=notice)
    except P.ProducerError as exc:
        raise click.ClickException(str(exc)) from None
    _show_token(name, token, as_json, "added")
    _warn(notice)


@producers.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx, as_json) -> None:
    """List producers, revoked ones included (never a token)."""
    rows = P.list_producers(_rt(ctx).engine)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for p in rows:
        state = "active" if p["active"] else f"revoked {p['revoked']}"
        click.echo(f"{p['name']}\t{','.join(p['kinds'])}\t{p['scope']}\t{p['rate']}/s\t{state}")


@producers.command("revoke")
@click.argument("name")
@click.pass_context
def revoke(ctx, name) -> None:
    """Revoke NAME: its token stops working at once (its Redis ACL user, if any, is removed)."""
    rt = _rt(ctx)
    notice = _notice(rt)
    if not P.revoke(rt.engine, name, notice=notice):
        raise click.ClickException(f"no active producer {name!r}")
    _warn(notice)
    try:
        gone = rt.redis.acl_deluser(P.acl_user(name))
    except redis.RedisError:
        gone = 0
    click.echo(f"revoked {name}" + (" and deleted its Redis ACL user" if gone else ""))


@producers.command("rotate")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rotate(ctx, name, as_json) -> None:
    """Give NAME a new token; the old one stops working at once."""
    rt = _rt(ctx)
    notice = _notice(rt)
    try:
        token = P.rotate(rt.engine, name, notice=notice)
    except P.ProducerError as exc:
        raise click.ClickException(str(exc)) from None
    _show_token(name, token, as_json, "rotated")
    _warn(notice)


@producers.command("acl")
@click.argument("name")
@click.option("--apply", "apply_", is_flag=True, help="Run the ACL SETUSER on Redis.")
@click.option("--password", default=None, help="With --apply: the user's password "
              "(default: generated and printed once).")
@click.pass_context
def acl(ctx, name, apply_, password) -> None:
    """Print (or --apply) the Redis ACL user of NAME: XADD to its streams only."""
    rt = _rt(ctx)
    producer = P.get(rt.engine, name)
    if producer is None:
        raise click.ClickException(f"no active producer {name!r}")
    if password is not None and (not password or any(c.isspace() for c in password)
                                 or not password.isprintable()):
        raise click.ClickException("the password must be printable, without spaces")
    keys = Keys(rt.settings.key_prefix)
    if not apply_:
        command = P.acl_setuser(keys, rt.topology, producer, password)
        click.echo(" ".join(command))
        if password is None:
            click.echo("add >PASSWORD before the key patterns, or use --apply", err=True)
        return
    generated = password is None
    secret = secrets.token_urlsafe(32) if generated else password
    command = P.acl_setuser(keys, rt.topology, producer, secret)
    try:
        rt.redis.execute_command(*command)
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis refused the ACL rule: {exc}") from None
    if generated:
        click.echo(secret)
    n = sum(1 for word in command if word.startswith("~"))
    click.echo(f"Redis user {P.acl_user(name)} set (XADD to {n} stream{'s' if n != 1 else ''} only)"
               + ("; its password is above, shown once" if generated else ""), err=True)


@producers.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def stats(ctx, as_json) -> None:
    """Per producer: entries accepted, dead letters by reason, last entry, lag, silent."""
    rt = _rt(ctx)
    try:
        rows = P.stats(rt.redis, Keys(rt.settings.key_prefix), rt.topology, rt.engine,
                       now_ms=int(time.time() * 1000))
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis is not reachable: {exc}") from None
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    tz = rt.settings.tz
    click.echo("producer\taccepted\tdead\tlast entry\tlag\tstate")
    for p in rows:
        lag = "-" if p["lag_ms"] is None else f"{p['lag_ms'] / 1000:.1f}s"
        state = "SILENT" if p["silent"] else "ok"
        dead = ", ".join(f"{k}={v}" for k, v in sorted(p["dead"].items())) or "0"
        click.echo(f"{p['name']}\t{p['accepted']}\t{dead}\t{when_text(p['last_ts'], tz)}\t{lag}\t{state}")
    click.echo(f"{len(rows)} producers, {sum(p['silent'] for p in rows)} silent", err=True)
