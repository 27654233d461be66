"""Video-conference launches from any centre card, ranking row or map popup."""

from __future__ import annotations

from collections.abc import Callable

from dash import ALL, ClientsideFunction, Dash, Input, Output, State, no_update

from callbacks.clicks import clicked
from callbacks.router import BadQuery, current_query
from dashboard import access
from dashboard.settings import Settings
from datasources.topology import Topology, in_subtree
from datasources.vc import Conferences, invitees
from layouts import ids, vc
from layouts.i18n import t


def register(app: Dash, topo: Topology, settings: Settings, conferences: Conferences,
             calls_changed: Callable[[], None]) -> None:
    """`calls_changed()` is called after a call started or ended (the version watcher
    re-reads the calls in progress, so the screens show it at once)."""
    names = {c: i.name for c, i in topo.centres.items()}

    @app.callback(
        Output(ids.VC_BODY, "children"),
        Output(ids.VC_OVERLAY, "hidden"),
        Output(ids.VC_CALL, "data"),
        Output(ids.VC_OPEN, "data"),
        Input({"type": ids.VC_CALL_BTN, "code": ALL}, "n_clicks"),
        Input({"type": ids.VC_GROUP_BTN, "code": ALL}, "n_clicks"),
        Input(ids.VC_REQUEST, "data"),
        State({"type": ids.VC_TIER, "code": ALL}, "value"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def start(_calls, _groups, request, tiers, search):
        trigger = clicked()
        if trigger is None:
            return no_update, no_update, no_update, no_update  # buttons (re)rendered
        q = current_query(search, topo)
        viewer = access.require_viewer()
        if isinstance(q, BadQuery) or not viewer.may_call:
            return no_update, no_update, no_update, no_update
        if trigger == ids.VC_REQUEST:
            request = request if isinstance(request, dict) else {}
            code, group = str(request.get("code", "")), bool(request.get("group"))
        else:
            code, group = trigger["code"], trigger["type"] == ids.VC_GROUP_BTN
        if not in_subtree(topo, code, q.centre):
            return no_update, no_update, no_update, no_update  # only the subtree in view
        tier = None
        if group:
            tier = next((int(v) for v in tiers or () if str(v).isascii() and str(v).isdigit()), 0) or None
            centres = invitees(topo, code, tier)
            if not centres:
                return no_update, no_update, no_update, no_update
        if not conferences.allow_start(viewer.name, settings.vc_starts_per_min):
            return vc.refused(t("vc_too_many", q.lang)), False, no_update, no_update
        if group:
            call = conferences.start(viewer.name, code, centres, group=True, tier=tier)
        else:
            call = conferences.start(viewer.name, q.centre, [code], group=False)
        calls_changed()
        data = {"cid": call.cid, "centres": list(call.centres), "convener": call.convener,
                "group": call.group, "url": call.url}
        if settings.vc_open == "window":
            return no_update, True, data, call.url
        return vc.overlay(data, names, q.lang), False, data, no_update

    @app.callback(
        Output(ids.VC_BODY, "children", allow_duplicate=True),
        Output(ids.VC_OVERLAY, "hidden", allow_duplicate=True),
        Output(ids.VC_CALL, "data", allow_duplicate=True),
        Input(ids.VC_END, "n_clicks"),
        State(ids.VC_CALL, "data"),
        prevent_initial_call=True,
    )
    def end(n, call):
        if not n or not isinstance(call, dict) or not isinstance(call.get("cid"), str):
            return no_update, True, no_update
        viewer = access.require_viewer()
        active = conferences.get(call["cid"])
        if active is None or not viewer.may_call or not viewer.sees(topo, active.convener):
            return [], True, None
        conferences.end(active.cid, viewer.name)
        calls_changed()
        return [], True, None

    app.clientside_callback(
        ClientsideFunction(namespace="pingan", function_name="openWindow"),
        Output(ids.VC_SINK, "children"),
        Input(ids.VC_OPEN, "data"),
    )
