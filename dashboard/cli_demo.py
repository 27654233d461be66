"""`pingan demo` (everything on the embedded default) and `pingan serve` (gunicorn)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

import click

from dashboard.datadir import private_dir
from dashboard.janus_server import JanusServer, JanusServerError, janus_binary
from dashboard.runtime import Runtime
from dashboard.secret import SecretKeyError, load_embed_keys, load_secret
from dashboard.stopflag import StopFlag
from datasources.connection import embedded_alive, ensure_redis, redis_url, stop_embedded
from datasources.users import list_users


def gunicorn_cmd(port: int, host: str, workers: int, connections: int = 1000,
                 access_log: bool = False) -> list[str]:
    """gevent workers: each open live stream (SSE) is a greenlet, not a thread, so hundreds of
    screens per worker do not starve the callbacks (docs/live-push.md)."""
    return [
        sys.executable, "-m", "gunicorn", "dashboard.server:server",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        "--worker-class", "gevent",
        "--worker-connections", str(connections),
        "--no-control-socket",
        "--timeout", "60",
        "--graceful-timeout", "10",
        "--access-logfile", "-" if access_log else "/dev/null",
    ]


def _start_janus(rt: Runtime, host: str, env: dict[str, str]) -> JanusServer | None:
    """整体联动 (many-party calls) needs Janus: a private one when it is installed and no
    PINGAN_JANUS_URL is configured; its URL and admin key go into the web server's `env`."""
    if rt.settings.janus_url:
        click.echo(f"整体联动: Janus at {rt.settings.janus_url} (PINGAN_JANUS_URL)", err=True)
        return None
    if janus_binary() is None:
        click.echo("整体联动 needs Janus: `apt-get install janus` (point-to-point calls work "
                   "without it)", err=True)
        return None
    wildcard = host in ("0.0.0.0", "::", "")
    ip = "127.0.0.1" if host in ("localhost", "127.0.0.1", "::1") else host
    try:
        janus = JanusServer().start(rt.settings.data_dir.resolve() / "janus",
                                    ip="0.0.0.0" if wildcard else ip)
    except JanusServerError as e:
        click.echo(f"整体联动 is off: Janus did not start ({e})", err=True)
        return None
    env.update(PINGAN_JANUS_URL=janus.url, PINGAN_JANUS_ADMIN_KEY=janus.admin_key)
    click.echo(f"整体联动: a private Janus at {janus.url} (log: {janus.log})", err=True)
    if wildcard and not rt.settings.janus_public_url:
        click.echo("  browsers on other machines reach it with PINGAN_JANUS_PUBLIC_URL="
                   f"http://<this machine>:{urlsplit(janus.url).port}/janus", err=True)
    return janus


def _child_env(rt: Runtime) -> dict[str, str]:
    env = dict(os.environ)
    env["PINGAN_DATA_DIR"] = str(rt.settings.data_dir.resolve())
    env["REDIS_URL"] = redis_url(rt.settings.redis)
    if rt.settings.database_url:
        env["DATABASE_URL"] = rt.settings.database_url
    return env


@click.command()
@click.option("--port", type=int, default=8050, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@click.pass_context
def serve(ctx, port, host, workers) -> None:
    """Serve the wall with gunicorn (gevent workers)."""
    rt = Runtime(ctx.obj)
    s = rt.settings
    try:
        load_secret(s)  # refused here, not in every gunicorn worker
        load_embed_keys(s)
    except SecretKeyError as e:
        raise click.ClickException(str(e)) from None
    rt.redis.ping()
    if s.auth == "on" and not s.trusted_user_header and not list_users(rt.engine):
        click.echo("no users yet: add one with `pingan users add NAME --role leader --scope CODE`",
                   err=True)
    if s.auth == "off":
        click.echo("WARNING: PINGAN_AUTH=off: anyone who reaches this port sees everything", err=True)
    if s.auth == "on" and s.cookie_secure and host not in ("127.0.0.1", "localhost", "::1"):
        click.echo("note: session cookies are Secure: serve behind HTTPS (reverse proxy), or set "
                   "PINGAN_COOKIE_SECURE=0 on a plain-HTTP intranet", err=True)
    click.echo(f"Pingan wall: http://{host}:{port}/", err=True)
    os.execvpe(sys.executable, gunicorn_cmd(port, host, workers, access_log=s.access_log),
               _child_env(rt))


@click.command()
@click.option("--port", type=int, default=8050, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--speed", type=float, default=60.0, show_default=True,
              help="Case handling runs this many times faster (said on screen).")
@click.option("--history-days", type=click.IntRange(1, 35), default=30, show_default=True)
@click.pass_context
def demo(ctx, port, host, seed, speed, history_days) -> None:
    """The whole live demo: registry, simulator, aggregator and the web server.

    The simulated traffic has Tongchuan's volume (a few hundred cases a day); the first start
    writes `--history-days` of it, a restart continues the same run (docs/operations.md)."""
    from datasources.demo_region import build_demo
    from datasources.registry import is_empty

    rt = Runtime(ctx.obj)
    private_dir(rt.settings.data_dir)
    if is_empty(rt.engine):
        click.echo("building the demo region (Tongchuan)…", err=True)
        build_demo(rt.engine, seed=seed)
    rt.redis.ping()
    env = _child_env(rt)
    env["PINGAN_AUTH"] = "demo"  # every viewer is the labelled demo user (docs/security.md)
    env["PINGAN_VC_SIMULATE"] = "1"  # 连线 to a centre with no screen open: a simulated endpoint
    janus = _start_janus(rt, host, env)
    pingan = [sys.executable, "-m", "dashboard"]
    procs = [
        subprocess.Popen([*pingan, "aggregate"], env=env),
        subprocess.Popen([*pingan, "demo-feed", "--seed", str(seed), "--speed", str(speed),
                          "--history-days", str(history_days)], env=env),
        subprocess.Popen(gunicorn_cmd(port, host, 2, access_log=rt.settings.access_log), env=env),
    ]
    url = f"http://{host}:{port}/"
    click.echo(f"Pingan wall demo running: {url}  (Ctrl-C to stop)")

    def _terminate(*_a) -> None:  # `kill` stops the demo like Ctrl-C: children too
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(1.0)
            if not rt.settings.redis_url and not embedded_alive(rt.settings.redis):
                # the embedded server died (kill -9, OOM killer): bring it back from its AOF;
                # the aggregator, the simulator and the web workers reconnect by themselves
                click.echo("embedded Redis stopped; restarting it", err=True)
                ensure_redis(rt.settings.redis)
    except KeyboardInterrupt:
        pass
    finally:
        # a second Ctrl-C or `kill` (timeout(1) sends two) must not cut the clean-up short and
        # leave the embedded redis-server running
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if janus is not None:
            janus.stop()
        if not rt.settings.redis_url:  # the embedded server goes with the demo (AOF keeps its data)
            stop_embedded(rt.settings.embedded_redis_socket.parent)
    failed = [p.args[2] if len(p.args) > 2 else p.args for p in procs if p.returncode not in (0, -15, None)]
    if failed:
        raise click.ClickException(f"a demo process stopped: {failed}")


@click.command("demo-feed", hidden=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--speed", type=float, default=60.0, show_default=True)
@click.option("--history-days", type=click.IntRange(1, 35), default=30, show_default=True)
@click.pass_context
def demo_feed(ctx, seed, speed, history_days) -> None:
    """The demo's producer: its history once, then live traffic; a restart continues the run
    recorded in Redis (same seed and origin) where it stopped."""
    from datasources.keys import Keys
    from datasources.simulator import (
        DemoFeed,
        DemoMismatch,
        DemoRun,
        demo_run,
        history_origin,
        registry_fingerprint,
    )

    rt = Runtime(ctx.obj)
    s = rt.settings
    grids = rt.grids()
    keys = Keys(s.key_prefix)
    now = int(time.time() * 1000)
    proposed = DemoRun(seed, history_origin(now, history_days, s.tz), speed,
                       registry_fingerprint(rt.topology, grids))
    try:
        run, written = demo_run(rt.redis, keys, proposed)
    except DemoMismatch as e:
        raise click.ClickException(str(e)) from None

    def report(st) -> None:
        click.echo("demo history: " + json.dumps({
            "continued": written > 0, "skipped": st.skipped,
            "regenerate_s": round(st.regenerate_s, 2), "written": st.backfilled,
            "write_s": round(st.backfill_s, 2)}), err=True)

    feed = DemoFeed(rt.redis, rt.topology, grids, keys, run, tz=s.tz)
    stats = feed.feed(written, should_stop=StopFlag(), on_backfilled=report)
    click.echo(f"demo feed stopped: {stats.live} live entries written", err=True)
