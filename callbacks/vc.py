"""Video-conference launches from any centre card, ranking row or map popup.

The call itself is dashboard/calls.py's (CallDesk: how it connects, the Janus room, the
ring); an outside endpoint (`url` mode) opens in the overlay or a window as before, the
app's own calls (p2p, sfu, sip) are handed to assets/vc.js through the VC_CALL store.
"""

from __future__ import annotations

from dash import ALL, ClientsideFunction, Dash, Input, Output, State, no_update

from callbacks.clicks import clicked
from callbacks.router import BadQuery, current_query
from dashboard import access
from dashboard.calls import CallDesk, CallError
from dashboard.settings import Settings
from datasources.topology import Topology, in_subtree
from datasources.vc import invitees
from layouts import ids, vc
from layouts.i18n import t


def register(app: Dash, topo: Topology, settings: Settings, calls: CallDesk) -> None:

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
        if not in_subtree(topo, code, q.centre) or (not group and code == q.centre):
            return no_update, no_update, no_update, no_update  # only the subtree in view
        tier = None
        if group:
            tier = next((int(v) for v in tiers or () if str(v).isascii() and str(v).isdigit()), 0) or None
            centres = invitees(topo, code, tier)
            if not centres:
                return no_update, no_update, no_update, no_update
        else:
            centres = [code]
        if not calls.conferences.allow_start(viewer.name, settings.vc_starts_per_min):
            return vc.refused(t("vc_too_many", q.lang)), False, no_update, no_update
        try:
            call = calls.start(viewer.name, q.centre, centres, group=group, tier=tier)
        except CallError as e:
            return vc.refused(t(e.key, q.lang)), False, no_update, no_update
        if call is None:
            return vc.refused(t("vc_no_sfu", q.lang)), False, no_update, no_update
        names = {c: i.name for c, i in topo.centres.items()}  # as of the last registry reload
        data = {"cid": call.cid, "centres": list(call.centres), "convener": call.convener,
                "group": call.group, "url": call.url, "mode": call.mode,
                "names": {c: names[c] for c in call.members},
                "simulate": calls.simulated(call)}
        if call.mode != "url":  # the app's own call: assets/vc.js takes it from here
            return [], True, data, no_update
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
        active = calls.conferences.get(call["cid"])
        if active is None or not viewer.may_call or not viewer.sees(topo, active.convener):
            return [], True, None
        calls.end(active.cid, viewer.name)
        return [], True, None

    app.clientside_callback(
        ClientsideFunction(namespace="pingan", function_name="openWindow"),
        Output(ids.VC_SINK, "children"),
        Input(ids.VC_OPEN, "data"),
    )

    app.clientside_callback(
        ClientsideFunction(namespace="pinganvc", function_name="start"),
        Output(ids.VC_LIVE_SINK, "children"),
        Input(ids.VC_CALL, "data"),
    )
