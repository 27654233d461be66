"""The `pingan` command (click)."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import click

from dashboard.runtime import Runtime
from dashboard.secret import SecretKeyError
from dashboard.settings import Settings, SettingsError, describe, markdown_table
from dashboard.stopflag import StopFlag
from datasources.migrations import SchemaError


class _Main(click.Group):
    """A registry schema behind this version stops a command with its message, not a trace."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SchemaError as exc:  # e.g. PostgreSQL not yet migrated: says what to run
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Main)
@click.option("--data-dir", envvar="PINGAN_DATA_DIR", default=None, type=click.Path(),
              help="Where the embedded Redis and SQLite live (default ./var).")
@click.pass_context
def main(ctx: click.Context, data_dir: str | None) -> None:
    """Pingan command wall (平安指挥大屏)."""
    try:
        ctx.obj = Settings.from_env(data_dir=data_dir)
    except SettingsError as e:  # a bad variable: its name and value, not a trace
        raise click.ClickException(str(e)) from None


def _runtime(ctx: click.Context) -> Runtime:
    return Runtime(ctx.obj)


def _require_registry(rt: Runtime) -> None:
    if not rt.topology.centres:
        raise click.ClickException("the registry is empty: run `pingan registry demo` or `pingan registry import DIR`")


@main.command()
@click.option("--events", "count", type=int, default=None, help="Stop after N entries.")
@click.option("--rate", type=float, default=None, help="Entries per second, paced to the clock.")
@click.option("--seed", type=int, default=1)
@click.option("--speed", type=float, default=60.0, help="Lifecycle time compression.")
@click.option("--history-hours", type=float, default=0.0,
              help="First write this many past hours at a natural volume.")
@click.option("--cameras/--no-cameras", default=True, help="Start with a heartbeat of every camera.")
@click.option("--quiet", multiple=True, help="A centre whose subtree gets no entries (repeatable).")
@click.pass_context
def simulate(ctx, count, rate, seed, speed, history_hours, cameras, quiet) -> None:
    """Write realistic entries to the streams (the producers' stand-in)."""
    from datasources.simulator import Simulator, recent_entries, write

    rt = _runtime(ctx)
    _require_registry(rt)
    now = int(time.time() * 1000)
    sim = Simulator(rt.topology, rt.grids(), seed=seed, speed=speed, tz=rt.settings.tz,
                    prefix=rt.settings.key_prefix, start_ms=now, quiet=frozenset(quiet))
    stop = StopFlag()
    natural = sim.natural_entries_per_s()
    t0 = now - int(history_hours * 3_600_000)
    if rate:
        sim.scale = rate / natural
        sim.live_from = now
    elif count:
        midnight = datetime.now(ZoneInfo(rt.settings.tz)).replace(hour=0, minute=0, second=0, microsecond=0)
        span_s = max(60.0, min(6 * 3600.0, time.time() - midnight.timestamp() - 60))
        heartbeats = len(sim.cameras) if cameras else 0
        entries = recent_entries(rt.topology, rt.grids(), max(0, count - heartbeats),
                                 now_ms=now, span_ms=int(span_s * 1000), seed=seed, speed=speed,
                                 prefix=rt.settings.key_prefix, tz=rt.settings.tz,
                                 baseline=cameras, quiet=frozenset(quiet))
        n = write(rt.redis, iter(entries), should_stop=stop)
        click.echo(f"wrote {n} entries", err=True)
        return
    n = 0
    if cameras:
        n += write(rt.redis, sim.camera_baseline(t0))
    n += write(rt.redis, sim.stream(t0, None if rate else now), pace=bool(rate),
               should_stop=stop)
    click.echo(f"wrote {n} entries", err=True)


@main.command()
@click.option("--until-idle", is_flag=True, help="Exit when nothing is pending.")
@click.option("--batch", type=int, default=None, help="Entries per stream per batch.")
@click.pass_context
def aggregate(ctx, until_idle, batch) -> None:
    """Apply the streams to the read model (runs until stopped)."""
    import logging

    from datasources import producers
    from datasources.aggregator import Aggregator
    from datasources.keys import Keys
    from datasources.registry_watch import registry_version
    from datasources.topology import load_topology

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = ctx.obj if batch is None else replace(ctx.obj, batch_size=batch)
    rt = Runtime(settings)
    seen = registry_version(rt.redis, Keys(settings.key_prefix))  # before the registry is read
    _require_registry(rt)
    engine = rt.engine
    # registry changes on a running system: reloaded when the registry version moves
    agg = Aggregator(rt.redis, rt.topology, settings.pipeline,
                     reload=lambda: load_topology(engine),
                     producer_names=lambda: producers.names(engine), registry_seen=seen)
    started = time.monotonic()
    totals = agg.run(until_idle=until_idle, should_stop=StopFlag())
    secs = time.monotonic() - started
    click.echo(json.dumps({"read": totals.read, "applied": totals.applied,
                           "duplicates": totals.duplicates, "dead": totals.dead,
                           "seconds": round(secs, 3)}), err=True)


@main.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
def rebuild(ctx, yes, as_json) -> None:
    """Rebuild the read model from the retained streams (docs/operations.md §rebuild)."""
    import logging

    from datasources.aggregator import rebuild as run_rebuild

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    rt = _runtime(ctx)
    _require_registry(rt)
    if not yes and not as_json:
        click.confirm("Rebuild the read model from the streams? Running aggregators pause "
                      "until it is done", abort=True, err=True)
    started = time.monotonic()
    shown = [0.0]

    def progress(totals) -> None:
        if not as_json and time.monotonic() - shown[0] > 1.0:
            shown[0] = time.monotonic()
            click.echo(f"\r  replayed {totals.read:,} entries", nl=False, err=True)

    def shard_reset(shard: str) -> None:
        if not as_json:
            click.echo(f"  reset shard {shard}", err=True)

    totals = run_rebuild(rt.redis, rt.topology, rt.settings.pipeline, on_round=progress,
                         on_shard=shard_reset)
    summary = {"read": totals.read, "applied": totals.applied, "duplicates": totals.duplicates,
               "dead": totals.dead, "shards": len(rt.topology.shards),
               "seconds": round(time.monotonic() - started, 3)}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo("", err=True)
        click.echo(f"rebuilt {summary['shards']} shards from {totals.read:,} entries "
                   f"({totals.applied:,} applied, {totals.duplicates:,} duplicates, "
                   f"{totals.dead:,} new dead letters) in {summary['seconds']} s")


@main.command()
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the default is a summary).")
@click.pass_context
def snapshot(ctx, code, as_json) -> None:
    """Print the figures of centre CODE and its children."""
    from datasources.readmodel import UnknownCentre

    rt = _runtime(ctx)
    try:
        snap = rt.read_model.snapshot(code)
    except UnknownCentre:
        raise click.ClickException(f"unknown centre: {code}") from None
    if as_json:
        click.echo(json.dumps(snap, ensure_ascii=False, indent=1))
        return
    ev = snap["events"]
    click.echo(f"{snap['name']} ({code}) {snap['day']} version {snap['version']}")
    click.echo(f"  events: reported {ev['reported']} resolved {ev['resolved']} open {ev['open']} overdue {ev['overdue']}")
    click.echo(f"  grids patrolled {snap['grids']['patrolled_today']}/{snap['grids']['total']}  "
               f"cameras online {snap['cameras']['online']}/{snap['cameras']['total']}  "
               f"petitions {snap['petitions']['today']}  index {snap['index']}")
    for ch, f in snap["children"].items():
        click.echo(f"  {ch} {f['name']}: reported {f['reported']} open {f['open']} index {f['index']}")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit(ctx, as_json) -> None:
    """Recount today's figures from the raw streams; exit 1 on any difference."""
    from datasources.audit import AuditRegistry
    from datasources.audit import audit as run_audit

    rt = _runtime(ctx)
    _require_registry(rt)
    report = run_audit(rt.redis, rt.topology, rt.settings.pipeline,
                       registry=AuditRegistry.from_engine(rt.engine))
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=1))
    else:
        click.echo(f"{report['centres_checked']} centres, {report['entries_recounted']} entries, "
                   f"{len(report['differences'])} differences, {report['dead_letters']} dead letters")
        for d in report["differences"][:50]:
            click.echo(f"  {d['centre']} {d['figure']}: recount {d['recount']} read model {d['read_model']}")
        if report["backlog"]:
            click.echo(f"  aggregator backlog (run again when idle): {report['backlog']}")
        ups = report.get("rollups") or {}
        if ups.get("checked"):
            click.echo(f"  roll-ups above the shard tier: {ups['checked']} checked"
                       + (f", behind: {', '.join(ups['behind'])}" if ups.get("behind") else ""))
        if report["carried"] or report["carried_cameras"] or report["not_recounted"]:
            click.echo(f"  opening balance (history trimmed): {report['carried']} open cases, "
                       f"{report['carried_cameras']} camera states; days not recounted: "
                       f"{report['not_recounted'] or 'none'}")
        inc = report["incidents"]
        lost = inc["lost"]
        if inc["total"] or inc["expired"]:
            click.echo(f"  incidents: {inc['total']}; lost in Redis rollbacks: {lost['batches']} "
                       f"batches, {lost['entries']}{'+' if lost['at_least'] else ''} entries; "
                       f"{len(inc['quarantined'])} keys quarantined; {inc['expired']} cases expired")
            for q in inc["quarantined"][:10]:
                click.echo(f"    quarantined {q['key']} → {q['aside']}: {q['why']}")
    sys.exit(0 if report["ok"] else 1)


@main.command("settings")
@click.option("--markdown", "fmt", flag_value="markdown",
              help="The settings table of docs/operations.md §1.")
@click.option("--json", "fmt", flag_value="json",
              help="Every setting: variable, kind, default, value, meaning.")
@click.pass_context
def settings_(ctx, fmt) -> None:
    """Print every setting as VARIABLE=value (secrets and URL passwords hidden)."""
    if fmt == "markdown":
        click.echo(markdown_table(), nl=False)
        return
    rows = describe(ctx.obj)
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    for row in rows:
        click.echo(f"{row['env']}={_as_env(row['value'])}")


def _as_env(value) -> str:
    """A setting's value written as its environment variable would be."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return " ".join(value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


@main.command("embed-url")
@click.argument("widget")
@click.argument("code")
@click.option("--ttl", default=None,
              help="How long the URL works: seconds or 30m, 1h, 7d, 2w "
                   "[default: PINGAN_EMBED_DEFAULT_TTL, 1h].")
@click.option("--note", default="", help="What the URL is for (shown by `pingan embeds list`).")
@click.option("--base-url", default="http://127.0.0.1:8050", show_default=True,
              help="The wall's address as the portal's visitors reach it.")
@click.option("--theme", type=click.Choice(["dark", "light", "transparent"]), default=None,
              help="Widget theme (the page's default: dark).")
@click.option("--lang", type=click.Choice(["zh", "en"]), default=None,
              help="Widget language (the page's default: zh).")
@click.option("--json", "as_json", is_flag=True, help='Print {"url", "id", "expires"} only.')
@click.pass_context
def embed_url(ctx, widget, code, ttl, note, base_url, theme, lang, as_json) -> None:
    """Print a signed URL of WIDGET for centre CODE (and the centres below it), for a portal
    iframe, and record its id (`pingan embeds list|revoke`). Widgets: events, trend, closure,
    coverage, cameras, petitions, map."""
    from dashboard.cli_embeds import check_note, mint_url
    from dashboard.embed import WIDGETS, parse_ttl

    if widget not in WIDGETS:
        raise click.BadParameter(f"unknown widget {widget!r}; one of: {', '.join(WIDGETS)}",
                                 param_hint="WIDGET")
    try:
        ttl_s = parse_ttl(ttl if ttl is not None else ctx.obj.embed_default_ttl)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--ttl" if ttl is not None
                                 else "PINGAN_EMBED_DEFAULT_TTL") from None
    limit = ctx.obj.embed_max_ttl_s
    if ttl_s > limit:
        raise click.BadParameter(f"{ttl or ctx.obj.embed_default_ttl} is longer than the longest "
                                 f"allowed ({limit} s, {limit // 86400} days: "
                                 "PINGAN_EMBED_MAX_TTL_S)", param_hint="--ttl")
    note = check_note(note)
    rt = _runtime(ctx)
    _require_registry(rt)
    if code not in rt.topology.centres:
        raise click.BadParameter(f"unknown centre {code[:64]!r}", param_hint="CODE")
    query = {**({"theme": theme} if theme else {}), **({"lang": lang} if lang else {})}
    try:
        mint_url(rt, widget, code, ttl_s, note, base_url, query, as_json)
    except SecretKeyError as e:
        raise click.ClickException(str(e)) from None


def _register_optional() -> None:
    from dashboard.cli_registry import registry

    main.add_command(registry)
    from dashboard.cli_users import users

    main.add_command(users)
    from dashboard.cli_demo import demo, demo_feed, serve

    main.add_command(demo)
    main.add_command(demo_feed)
    main.add_command(serve)
    from dashboard.cli_cases import case, cases  # issue 10: the cases behind the figures

    main.add_command(cases)
    main.add_command(case)
    from dashboard.cli_alerts import alerts  # issue 10: 预警

    main.add_command(alerts)
    from dashboard.cli_embeds import embeds_group  # issue 12: embed tokens

    main.add_command(embeds_group)
    from dashboard.cli_access import access_log  # issue 12: who did what

    main.add_command(access_log)
    from dashboard.cli_producers import producers  # issue 12: producers and their keys

    main.add_command(producers)
    from dashboard.cli_ingest import ingest_cmd  # issue 12: files from systems that only export

    main.add_command(ingest_cmd)


_register_optional()
