"""`pingan ingest FILE --kind … --mapping MAP.toml --producer NAME`: CSV/XLSX exports of systems
that cannot post (issue 12 item 7; datasources/file_ingest.py, docs/producers.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import redis

from dashboard.runtime import Runtime
from datasources.accesslog import AccessLog
from datasources.file_ingest import (
    KIND_FIELDS,
    FileError,
    MappingError,
    Report,
    ingest,
    load_mapping,
    open_table,
)
from datasources.keys import Keys


def _fail(as_json: bool, message: str) -> None:
    if as_json:
        click.echo(json.dumps({"error": message}, ensure_ascii=False))
    raise click.ClickException(message)


@click.command("ingest")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--kind", required=True, type=click.Choice(tuple(KIND_FIELDS)),
              help="The stream the rows go to.")
@click.option("--mapping", "mapping_path", required=True,
              type=click.Path(exists=True, dir_okay=False),
              help="TOML: columns, value and time mapping, constants.")
@click.option("--producer", required=True, help="A registered producer (pingan producers add); "
              "its kinds and scope apply and its name is every entry's src.")
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.pass_context
def ingest_cmd(ctx, file, kind, mapping_path, producer, dry_run, as_json) -> None:
    """Check the rows of a CSV or XLSX export and write the good ones to the streams.

    Every bad row is reported as FILE:LINE: reason and is not written; exit 1 if any."""
    from datasources import producers
    from datasources.intake import Intake

    rt = Runtime(ctx.obj)
    try:
        mapping = load_mapping(mapping_path, kind, rt.settings.tz)
    except MappingError as exc:
        _fail(as_json, f"mapping {exc}")
    who = producers.get(rt.engine, producer)
    if who is None:
        _fail(as_json, f"unknown or revoked producer {producer[:64]!r} "
                       "(register it with `pingan producers add`)")
    if kind not in who.kinds:
        _fail(as_json, f"producer {producer!r} may not write {kind} "
                       f"(its kinds: {', '.join(sorted(who.kinds))})")
    if not rt.topology.centres:
        _fail(as_json, "the registry is empty: run `pingan registry import DIR`")
    intake = Intake(rt.redis, rt.topology, rt.settings.pipeline)
    started = time.monotonic()

    def on_error(line: int, reason: str) -> None:
        if not as_json:
            click.echo(f"{file}:{line}: {reason}", err=True)

    def on_progress(rep: Report) -> None:
        click.echo(f"… {rep.rows:,} rows ({rep.bad:,} bad), {time.monotonic() - started:.0f} s",
                   err=True)

    try:
        table = open_table(file, mapping)
        report = ingest(table, mapping, who, intake, dry_run=dry_run, on_error=on_error,
                        on_progress=on_progress)
    except FileError as exc:
        _fail(as_json, f"{file}: {exc}")
    except redis.RedisError as exc:  # some batches may be written: a re-run counts them once
        _fail(as_json, f"{file}: Redis: {exc}; ingest the file again (nothing counts twice)")
    if report.written:  # who wrote what: one access-log entry per file ingested
        AccessLog(rt.redis, Keys(rt.settings.key_prefix), rt.settings.access_log_days).record(
            "producer_used", who.name, via="file", file=Path(file).name, kind=kind,
            written=report.written, bad=report.bad)
    if as_json:
        click.echo(json.dumps({"file": str(file), "kind": kind, "producer": producer,
                               "dry_run": dry_run, **report.to_dict()}, ensure_ascii=False))
    click.echo(f"{file}: {report.summary(dry_run)}", err=True)
    ctx.exit(1 if report.bad else 0)
