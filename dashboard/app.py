"""App factory: `create_app(settings)` builds the Dash app; `dashboard.server` exposes it.

The wiring lives here: from the Runtime (Redis, registry, topology) it builds the version
watcher, the one screen-data service and the video-call service, and hands each route and
callback module what it needs. Nothing else reaches into the Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dash import Dash, html

from dashboard.auth import install_auth
from dashboard.calls import CallDesk
from dashboard.command_api import install_console
from dashboard.embed import register_embed_routes
from dashboard.gateway import Gateway, register_gateway_routes
from dashboard.headers import install_headers
from dashboard.live import register_routes
from dashboard.runtime import Runtime
from dashboard.screen_api import register_screen_routes
from dashboard.screens import (
    REPLAY_CACHE_SIZE,
    WALL_JSON,
    WALL_JSON_CACHE_SIZE,
    FlightCache,
    ScreenData,
)
from dashboard.settings import Settings
from dashboard.vc_api import register_vc_routes
from dashboard.versions import VersionWatcher
from datasources.accesslog import AccessLog
from datasources.janus import JanusClient
from datasources.keys import Keys
from datasources.registry_watch import registry_version_or_none
from datasources.signal import SignalHub, Signals
from datasources.topology import Topology
from datasources.validate import is_conference_url
from datasources.vc import Conferences

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SERVICES = "PINGAN_SERVICES"  # app.server.config key of the `Services` (for tests and tools)


@dataclass(frozen=True)
class Services:
    """What one web worker shares between its routes and callbacks."""

    settings: Settings
    topology: Topology
    watcher: VersionWatcher
    screens: ScreenData
    conferences: Conferences
    calls: CallDesk      # video calls: start, ring, join, relay, end (dashboard/calls.py)
    signal_hub: SignalHub  # this worker's reader of the calls' signalling mailbox
    access_log: AccessLog  # who did what (datasources/accesslog.py)


def build_services(runtime: Runtime) -> Services:
    settings, r = runtime.settings, runtime.redis
    keys = Keys(settings.key_prefix)
    seen = registry_version_or_none(r, keys)  # read before the registry it was loaded at
    topo = runtime.topology
    conferences = Conferences(r, topo, settings.key_prefix, settings.conference_url_template,
                              settings.vc_timeout_s)
    cache = FlightCache(limits={"replay": REPLAY_CACHE_SIZE, WALL_JSON: WALL_JSON_CACHE_SIZE})

    def reload_registry() -> None:  # the registry version moved: datasources/registry_watch.py
        runtime.reload_registry()  # the shared `topo` is refreshed in place (the watcher's)
        screens.registry_changed()

    watcher = VersionWatcher(r, keys, topo, conferences, on_rewind=cache.invalidate,
                             on_registry=reload_registry, registry_seen=seen)
    screens = ScreenData(r=r, keys=keys, topology=topo, settings=settings,
                         read_model=runtime.read_model, geo=lambda: runtime.geo,
                         watcher=watcher, cache=cache)
    signals = Signals(r, topo, settings.key_prefix)
    janus = (JanusClient(settings.janus_url, settings.janus_admin_key) if settings.janus_url
             else None)
    access_log = AccessLog(r, keys, settings.access_log_days)
    calls = CallDesk(conferences, signals, janus, settings, topo, watcher.refresh_calls,
                     access_log)
    return Services(settings, topo, watcher, screens, conferences, calls, SignalHub(signals),
                    access_log)


def create_app(settings: Settings | None = None) -> Dash:
    settings = settings or Settings.from_env()
    template = settings.conference_url_template
    if template and not is_conference_url(template.replace("{code}", "x")):
        raise ValueError("PINGAN_CONFERENCE_URL must be an http:// or https:// URL or a sip: URI "
                         "(with {code} for the centre code), or unset (the app's own calls)")
    runtime = Runtime(settings)
    svc = build_services(runtime)
    app = Dash(
        __name__,
        title="平安指挥大屏",
        assets_folder=str(ASSETS),
        serve_locally=True,
        update_title=None,
        compress=True,  # GeoJSON and view models gzip 4-10x (bench/map.py)
    )
    from callbacks import brief, poll, router, vc
    from layouts import brief as brief_layout
    from layouts import map as mapview
    from layouts import shell

    app.layout = shell.page
    # the screens the router renders hold components the callbacks listen to
    app.validation_layout = html.Div([shell.page(), *mapview.validation_components(),
                                      *brief_layout.validation_components()])
    router.register(app, svc.topology, settings, svc.screens, svc.access_log)
    poll.register(app, svc.topology, svc.screens)
    vc.register(app, svc.topology, settings, svc.calls)
    brief.register(app, svc.topology, svc.screens)
    # the duty console: JSON routes and callbacks
    install_console(app, svc.screens, settings, svc.access_log, runtime.engine)
    register_routes(app.server, svc.watcher, svc.screens, runtime.redis, settings)
    register_vc_routes(app.server, svc.calls, svc.signal_hub, settings, svc.topology)
    register_embed_routes(app.server, settings, svc.screens, runtime.engine)
    register_screen_routes(app.server, svc.screens, settings)
    register_gateway_routes(app.server, Gateway(settings, lambda: runtime.engine, runtime.redis,
                                                svc.topology, svc.access_log))
    install_auth(app.server, runtime, svc.access_log)
    install_headers(app, settings, (c.conference for c in svc.topology.centres.values()))
    app.server.config[SERVICES] = svc
    return app
