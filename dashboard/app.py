"""App factory: `create_app(settings)` builds the Dash app; `dashboard.server` exposes it."""

from __future__ import annotations

from pathlib import Path

from dash import Dash, html

from dashboard.auth import install_auth
from dashboard.embed import register_embed_routes
from dashboard.headers import install_headers
from dashboard.live import LiveHub, register_routes
from dashboard.runtime import Runtime
from dashboard.settings import Settings
from datasources.validate import is_conference_url

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def create_app(settings: Settings | None = None) -> Dash:
    settings = settings or Settings.from_env()
    if not is_conference_url(settings.conference_url_template.replace("{code}", "x")):
        raise ValueError("PINGAN_CONFERENCE_URL must be an http:// or https:// URL or a sip: URI "
                         "(with {code} for the centre code)")
    runtime = Runtime(settings)
    hub = LiveHub(runtime)
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
    router.register(app, hub)
    poll.register(app, hub)
    vc.register(app, hub)
    brief.register(app, hub)
    register_routes(app.server, hub)
    register_embed_routes(app.server, hub)
    install_auth(app.server, runtime)
    install_headers(app, settings)
    app.server.config["PINGAN_HUB"] = hub
    return app
