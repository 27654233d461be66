"""`pingan registry ...`: migrate the schema, import/export, build the demo region, statistics."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from sqlalchemy.engine import Engine

from dashboard.datadir import private_dir
from dashboard.settings import Settings
from datasources.migrations import SchemaError, ensure_schema, migrate, status
from datasources.registry import is_empty, make_engine


def _engine(ctx: click.Context) -> Engine:
    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env()
    if settings.database_url is None:
        private_dir(Path(settings.data_dir))
    return make_engine(settings.effective_database_url)


def registry_engine(ctx: click.Context) -> Engine:
    """The registry engine for the settings in the click context (or from the environment),
    its schema at head (SQLite migrated on the spot; PostgreSQL must have been migrated)."""
    engine = _engine(ctx)
    try:
        ensure_schema(engine)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    return engine


def _print_stats(st: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(st, ensure_ascii=False, indent=2, sort_keys=True))
        return
    c = st["centres"]
    click.echo(
        f"centres: {st['centres_total']} (city {c['1']}, district {c['2']}, "
        f"town/street {c['3']}, community/village {c['4']})"
    )
    g = st["grids"]
    click.echo(f"grids:   {st['grids_total']} (urban {g['urban']}, rural {g['rural']})")
    click.echo(f"workers: {st['workers']}")
    cams = ", ".join(f"{k} {n}" for k, n in st["cameras"].items())
    click.echo(f"cameras: {st['cameras_total']} ({cams})")


@click.group("registry")
def registry() -> None:
    """The registry of centres, grids, cameras and base data."""


@registry.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_context
def import_cmd(ctx: click.Context, directory: Path) -> None:
    """Replace the registry with the CSV/GeoJSON files in DIRECTORY (all or nothing)."""
    from datasources.registry_io import RegistryImportError, import_dir

    engine = registry_engine(ctx)
    try:
        report = import_dir(engine, directory)
    except RegistryImportError as exc:
        for msg in exc.errors:
            click.echo(msg, err=True)
        click.echo(f"import refused: {len(exc.errors)} error(s); registry unchanged", err=True)
        ctx.exit(1)
        return
    click.echo(
        f"imported {report.centres} centres, {report.grids} grids, {report.cameras} cameras, "
        f"{report.base_data} base-data rows ({report.centre_geometries} centre and "
        f"{report.grid_geometries} grid geometries)"
    )
    announce_change(ctx)


def announce_change(ctx: click.Context) -> None:
    """After a committed registry change: bump the registry version, so that the running
    aggregators and web workers reload within seconds (datasources/registry_watch.py). Redis
    being away is said on stderr, not an error: the SQL change stands, and processes started
    later read it anyway."""
    import redis

    from datasources.connection import connect
    from datasources.keys import Keys
    from datasources.registry_watch import bump

    settings = ctx.obj if isinstance(ctx.obj, Settings) else Settings.from_env()
    if not settings.redis_url and not settings.embedded_redis_socket.exists():
        return  # no embedded Redis running: no running process to tell (none is started)
    try:
        version = bump(connect(settings.redis), Keys(settings.key_prefix))
    except (redis.RedisError, OSError) as exc:
        click.echo(f"warning: could not tell running processes ({exc}); restart the "
                   "aggregators and web workers to see the change", err=True)
        return
    click.echo(f"registry version {version}: running processes reload within seconds",
               err=True)


@registry.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def export_cmd(ctx: click.Context, directory: Path) -> None:
    """Write the registry to DIRECTORY as CSV/GeoJSON files (re-importable)."""
    from datasources.registry_io import export_dir

    export_dir(registry_engine(ctx), directory)
    click.echo(f"exported the registry to {directory}")


@registry.command("demo")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")
@click.option("--force", is_flag=True, help="Replace a registry that is not empty.")
@click.pass_context
def demo_cmd(ctx: click.Context, seed: int, force: bool) -> None:
    """Build the demo region (铜川市) into the registry."""
    from datasources.demo_region import build_demo

    engine = registry_engine(ctx)
    if not force and not is_empty(engine):
        click.echo("the registry is not empty; use --force to replace it", err=True)
        ctx.exit(1)
        return
    t0 = time.perf_counter()
    st = build_demo(engine, seed=seed)
    click.echo(f"built the demo region (seed {seed}) in {time.perf_counter() - t0:.1f} s")
    _print_stats(st, as_json=False)
    announce_change(ctx)


@registry.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stats_cmd(ctx: click.Context, as_json: bool) -> None:
    """Counts of centres per level, grids, grid workers and cameras."""
    from datasources.registry_io import stats

    _print_stats(stats(registry_engine(ctx)), as_json)


@registry.command("migrate")
@click.option("--check", is_flag=True, help="Change nothing; exit 1 unless the schema is at head.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def migrate_cmd(ctx: click.Context, check: bool, as_json: bool) -> None:
    """Upgrade the registry schema to this version's newest revision (safe to repeat)."""
    engine = _engine(ctx)
    before = status(engine)
    if check:
        out = {"database": engine.dialect.name, "current": before.current, "head": before.head,
               "at_head": before.at_head, "legacy": before.legacy}
        _echo(out, as_json, f"registry schema: {before.current or 'none'}, head {before.head}"
                            f" ({'up to date' if before.at_head else 'needs pingan registry migrate'})")
        ctx.exit(0 if before.at_head else 1)
        return
    try:
        from_rev, to_rev = migrate(engine)
    except SchemaError as exc:
        if as_json:
            click.echo(json.dumps({"error": str(exc)}, ensure_ascii=False))
        click.echo(f"migration refused: {exc}", err=True)
        ctx.exit(1)
        return
    changed = from_rev != to_rev or before.legacy
    out = {"database": engine.dialect.name, "from": from_rev, "to": to_rev,
           "changed": changed, "stamped": before.legacy}
    if before.legacy:
        line = f"registry schema: tables from before migrations recognised as {from_rev}"
        line += f", upgraded to {to_rev}" if to_rev != from_rev else " and stamped"
    elif changed:
        line = f"registry schema: {from_rev or 'empty'} → {to_rev}"
    else:
        line = f"registry schema: at {to_rev} already, nothing to do"
    _echo(out, as_json, line)


def _echo(out: dict, as_json: bool, line: str) -> None:
    click.echo(json.dumps(out, ensure_ascii=False, sort_keys=True) if as_json else line)
