"""The polling fallback of the live push (`?push=poll`): one request per screen per tick.

For networks whose proxies buffer server-sent events. The client sends only the version it
has; the answer carries the changed top-level keys of the view model (a `Patch` on the store)
and always the freshness, so the screen can still judge staleness.
"""

from __future__ import annotations

from dash import ClientsideFunction, Dash, Input, Output, Patch, State, no_update

from callbacks.router import BadQuery, current_query
from dashboard import access
from dashboard.screens import ScreenData
from datasources.topology import Topology
from layouts import ids


def register(app: Dash, topo: Topology, screens: ScreenData) -> None:
    @app.callback(
        Output(ids.POLL_VM, "data"),
        Output(ids.POLL_VERSION, "data", allow_duplicate=True),
        Input(ids.POLL, "n_intervals"),
        State(ids.URL, "search"),
        State(ids.POLL_VERSION, "data"),
        prevent_initial_call=True,
    )
    def poll(_n, search, version):
        q = current_query(search, topo)
        if isinstance(q, BadQuery):
            return no_update, no_update
        payload, version = screens.poll(
            q.centre, version if isinstance(version, str) else None,
            group=q.screen, scope=access.require_viewer().scope if q.screen else None)
        patch = Patch()
        for key, value in payload.items():
            patch[key] = value
        return patch, version

    app.clientside_callback(
        ClientsideFunction(namespace="pingan", function_name="applyPatch"),
        Output(ids.POLL_SINK, "children"),
        Input(ids.POLL_VM, "data"),
    )
