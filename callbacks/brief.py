"""Callbacks of the tablet briefing view (/brief): the replay payload and drilling by tap.

The screen itself is rendered by the router (callbacks/router.py, BRIEF_PATHS); a tap on a
child region of the map drills through the router's `drill` callback (the brief shows the
wall's map). Playback runs in the browser: one clientside callback (assets/brief.js,
`pinganBrief.step`) moves the slider, the counters, the chart cursor and the map's markers
from the payload sent once, with no round trip per frame.

Every server callback validates the URL with `current_query` (the viewer's scope) and
answers nothing for a URL it refuses.
"""

from __future__ import annotations

from dataclasses import replace

import redis
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, no_update
from dash.exceptions import PreventUpdate

from callbacks.clicks import clicked
from callbacks.router import BadQuery, current_query, search_for
from dashboard.screens import ScreenData
from datasources.topology import Topology, drill_target
from layouts import brief as layout
from layouts import brief_ids as bid
from layouts import ids


def register(app: Dash, topo: Topology, screens: ScreenData) -> None:
    @app.callback(
        Output(bid.REPLAY, "data"),
        Output(bid.SLIDER, "max"),
        Output(bid.SLIDER, "marks"),
        Output(bid.SLIDER, "disabled"),
        Output(bid.PLAY, "disabled"),
        Output(bid.CHART, "figure"),
        Input(bid.REPLAY_REQ, "data"),
        State(ids.URL, "search"),
    )
    def load(_request, search):
        """The replay of the centre in the URL (never a code sent by the client)."""
        q = current_query(search, topo)
        if isinstance(q, BadQuery):
            raise PreventUpdate  # a refused URL gets nothing (and its screen is a message)
        try:
            data = screens.replay(q.centre)
        except (redis.RedisError, OSError):
            return {"error": "unavailable"}, no_update, no_update, True, True, no_update
        return (data, layout.slider_max(data), layout.slider_marks(data), False, False,
                layout.replay_figure(data, q.lang))

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Input({"type": bid.DRILL, "code": ALL}, "n_clicks"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def drill(_clicks, search):
        """A tap on a child's card opens that centre (the URL follows, like the map)."""
        trigger = clicked()
        if not isinstance(trigger, dict):
            return no_update  # cards (re)rendered
        q = current_query(search, topo)
        code = trigger.get("code")
        if isinstance(q, BadQuery) or not drill_target(topo, q.centre, code):
            return no_update
        return search_for(replace(q, tour=None, tour_root=None), code)

    app.clientside_callback(
        ClientsideFunction(namespace="pinganBrief", function_name="step"),
        Output(bid.STATE, "data"),
        Output(bid.SLIDER, "value"),
        Output(bid.TICK, "disabled"),
        Output(bid.SINK, "children"),
        Input(bid.PLAY, "n_clicks"),
        Input(bid.LIVE, "n_clicks"),
        *[Input(bid.SPEED.format(s), "n_clicks") for s in bid.SPEEDS],
        Input(bid.TICK, "n_intervals"),
        Input(bid.SLIDER, "value"),
        Input(bid.REPLAY, "data"),
        State(bid.STATE, "data"),
    )
