"""`pingan users add|list|remove|unlock`: the accounts of the wall and the tablet."""

from __future__ import annotations

import json
import sys

import click

from dashboard.cli_registry import registry_engine
from dashboard.settings import Settings
from datasources.topology import load_topology
from datasources.users import ROLES, UserError, add_user, list_users, remove_user


@click.group()
def users() -> None:
    """Accounts: a role (duty | leader | admin) and a scope centre (its subtree is visible)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--scope", "scope", required=True, help="Centre code whose subtree the user sees.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--replace", is_flag=True, help="Change an existing user (role, scope, password).")
@click.pass_context
def add(ctx, name, role, scope, password_stdin, replace) -> None:
    """Add a user (asks for the password twice unless --password-stdin)."""
    engine = registry_engine(ctx)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    centres = set(load_topology(engine).centres)
    try:
        user = add_user(engine, name, password, role, scope, centres=centres, replace=replace)
    except UserError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"user {user.name}: role {user.role}, scope {user.scope}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_(ctx, as_json) -> None:
    """List users (never their password hashes)."""
    rows = [{"name": u.name, "role": u.role, "scope": u.scope} for u in list_users(registry_engine(ctx))]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for r in rows:
        click.echo(f"{r['name']}\t{r['role']}\t{r['scope']}")


@users.command("unlock")
@click.argument("name")
@click.pass_context
def unlock(ctx, name) -> None:
    """Clear the sign-in throttle of NAME (every client address): it may sign in at once."""
    from dashboard.runtime import Runtime
    from dashboard.throttle import unlock as clear

    rt = Runtime(ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env())
    n = clear(rt.redis, rt.settings.key_prefix, name)
    click.echo(f"unlocked {name} ({n} client address{'es' if n != 1 else ''} cleared)")


@users.command("remove")
@click.argument("name")
@click.pass_context
def remove(ctx, name) -> None:
    """Remove a user; their open sessions end within seconds."""
    if not remove_user(registry_engine(ctx), name):
        raise click.ClickException(f"no user {name!r}")
    click.echo(f"removed {name}")
