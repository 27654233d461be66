"""`pingan registry ...`: migrate the schema, import/export, build the demo region, write a
synthetic province, statistics."""

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
from datasources.vocabulary import DEFAULT


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
    per_level = ", ".join(f"{DEFAULT.tier_name(lv, 'en').lower()} {n}"
                          for lv, n in st["centres"].items())
    click.echo(f"centres: {st['centres_total']} ({per_level})")
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


@registry.command("synth")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--cities", type=click.IntRange(1, 99), default=10, show_default=True)
@click.option("--counties-per-city", type=click.IntRange(1, 99), default=10, show_default=True)
@click.option("--towns-per-county", type=click.IntRange(1, 999), default=13, show_default=True)
@click.option("--villages-per-town", type=click.IntRange(1, 999), default=15, show_default=True)
@click.option("--grids-per-village", type=click.IntRange(1, 99), default=5, show_default=True)
@click.option("--cameras-per-town", type=click.IntRange(0, 9999), default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--no-geometry", is_flag=True, help="Write no centres.geojson.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON (only that).")
def synth_cmd(directory: Path, cities: int, counties_per_city: int, towns_per_county: int,
              villages_per_town: int, grids_per_village: int, cameras_per_town: int, seed: int,
              no_geometry: bool, as_json: bool) -> None:
    """Write a synthetic province (Shaanxi's shape by default: 10 cities, 100 counties, 1,300
    towns, 19,500 villages, 97,500 grids) to DIRECTORY as registry files; load it with
    `pingan registry import DIRECTORY`. The registry database is not touched."""
    from datasources.synthetic import province_registry

    t0 = time.perf_counter()
    counts = province_registry(
        directory, cities=cities, counties_per_city=counties_per_city,
        towns_per_county=towns_per_county, villages_per_town=villages_per_town,
        grids_per_village=grids_per_village, cameras_per_town=cameras_per_town, seed=seed,
        geometry=not no_geometry, progress=lambda msg: click.echo(msg, err=True))
    if as_json:
        click.echo(json.dumps(counts, ensure_ascii=False, sort_keys=True))
        return
    per_level = ", ".join(f"{DEFAULT.tier_name(lv, 'en').lower()} {n}"
                          for lv, n in counts["centres"].items())
    click.echo(f"wrote {counts['centres_total']} centres ({per_level}), {counts['grids_total']} "
               f"grids, {counts['cameras_total']} cameras to {directory} in "
               f"{time.perf_counter() - t0:.1f} s")


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
