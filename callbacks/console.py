"""Callbacks of the duty console (/console) and of the tablet's command panel (/brief): the same
components (layouts/console.py, ids in layouts/console_ids.py) on either screen.

Thin: every read and action is dashboard/command.py's, checked there against the viewer of the
request (scope, role, 督办 only below). The centre is the URL's, checked by `current_query`
against the viewer's scope like every screen callback; a refused URL gets nothing at all.

Live: a 1 s interval compares the versions of the centre's figures sources and the root's
(held in memory by the worker's version watcher, which watches the centre while the console
shows it: no Redis read per tick); the lists and the open card are read again only when a
version moved, or right after an action.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import replace

import redis
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, ctx, no_update
from dash.exceptions import PreventUpdate
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from callbacks.clicks import clicked
from callbacks.router import BadQuery, Query, current_query, search_for
from dashboard import access, command
from dashboard.screens import ScreenData
from dashboard.settings import Settings
from datasources import producers
from datasources.accesslog import AccessLog
from datasources.contract import STATUS_FILTERS
from datasources.topology import Topology, in_subtree
from layouts import console as layout
from layouts import console_ids as cid
from layouts import ids
from layouts.i18n import t

LIST_LIMIT = 100
ERRORS = {"not_found": "console_err_refused", "forbidden": "console_err_refused",
          "role": "console_err_role", "not_above": "console_err_not_above",
          "note": "console_err_note", "group": "console_err_group",
          "closed": "console_err_closed", "cleared": "console_err_closed"}


def now_ms() -> int:
    return int(time.time() * 1000)


def refusal(e: command.CommandError, lang: str) -> str:
    return t(ERRORS.get(e.key, "console_err_unavailable"), lang)


def register(app: Dash, topo: Topology, settings: Settings, screens: ScreenData,
             access_log: AccessLog | None = None, engine: Engine | None = None) -> None:
    """`engine`: the registry, for the producers panel's list of registered producers."""
    r, keys, tz = screens.r, screens.keys, settings.tz
    registered = _Registered(r, keys.registry_version(), engine)

    def query(search: object) -> Query:
        q = current_query(search if isinstance(search, str) else None, topo)
        if isinstance(q, BadQuery):
            raise PreventUpdate  # a refused URL gets nothing (its screen is a message)
        return q

    @app.callback(
        Output(cid.VERSION, "data"),
        Input(cid.TICK, "n_intervals"),
        State(ids.URL, "search"),
        State(cid.VERSION, "data"),
        prevent_initial_call=True,
    )
    def tick(_n, search, have):
        """A new value only when one of the centre's sources moved (versions from the
        worker's memory), or the root's (its roll-up moves with every shard below it: the
        alert of a stale shard is raised on the top centre's shard)."""
        q = query(search)
        metas = screens.metas(q.centre)
        now = [*screens.versions(q.centre, metas), *screens.root_versions(metas)]
        return no_update if now == have else now

    @app.callback(
        Output(cid.ALERTS, "children"),
        Output(cid.ALERT_COUNT, "children"),
        Output(cid.TABS, "children"),
        Output(cid.CASES, "children"),
        Output(cid.LISTS_SHOWN, "data"),
        Input(cid.VERSION, "data"),
        Input(cid.STATUS, "data"),
        Input(cid.ACTED, "data"),
        State(ids.URL, "search"),
        State(cid.SELECTED, "data"),
        State(cid.LISTS_SHOWN, "data"),
    )
    def lists(_version, status, _acted, search, selected, shown_digest):
        """The alert queue, the tabs' counts and the case list; not redrawn when what they
        would show is what they show (a redraw is a new DOM: assets/console.js keeps the
        keyboard's place across one)."""
        q = query(search)
        v = access.require_viewer()
        status = status if status in STATUS_FILTERS else STATUS_FILTERS[0]
        selected = selected if isinstance(selected, str) else None
        now = now_ms()
        try:
            alerts = [a.to_dict() for a in command.alerts_for(v, topo, r, keys, q.centre)]
            shown = command.cases_for(v, topo, r, keys, q.centre, status, now, LIST_LIMIT)
            counts = {**command.case_counts(v, topo, r, keys, q.centre, now),
                      status: shown.total}
        except (command.CommandError, redis.RedisError, OSError):
            raise PreventUpdate from None  # keep what is shown
        can = command.may_act(v)
        data = shown.to_dict()
        d = digest(alerts, counts, data, status, selected, can, q.lang, now // 60_000)
        if d == shown_digest:
            raise PreventUpdate
        return (layout.alert_list(alerts, topo, q.lang, now, tz, can),
                layout.alert_count(alerts, q.lang),
                layout.status_tabs(counts, status, q.lang),
                layout.case_list(data, topo, q.lang, now, tz, selected), d)

    @app.callback(
        Output(cid.STATUS, "data"),
        Input({"type": cid.TAB, "status": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def tab(_clicks):
        trigger = clicked()
        status = trigger.get("status") if isinstance(trigger, dict) else None
        return status if status in STATUS_FILTERS else no_update

    @app.callback(
        Output(cid.SELECTED, "data"),
        Input({"type": cid.CASE_ROW, "eid": ALL}, "n_clicks"),
        Input({"type": cid.ALERT_ROW, "alert": ALL}, "n_clicks"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def select(_rows, _alerts, search):
        """A case row, or an alert's 查看, opens the card (the card checks the scope again)."""
        trigger = clicked()
        if not isinstance(trigger, dict):
            return no_update
        if trigger.get("type") == cid.CASE_ROW:
            eid = trigger.get("eid")
            return eid if isinstance(eid, str) else no_update
        query(search)
        try:
            alert = command.alert_for(access.require_viewer(), topo, r, keys, trigger.get("alert"))
        except (command.CommandError, redis.RedisError, OSError):
            return no_update
        return alert.eid or no_update

    @app.callback(
        Output(cid.CARD, "children"),
        Output(cid.CARD_SHOWN, "data"),
        Input(cid.SELECTED, "data"),
        Input(cid.VERSION, "data"),
        Input(cid.ACTED, "data"),
        State(ids.URL, "search"),
        State(cid.CARD_SHOWN, "data"),
        prevent_initial_call=True,
    )
    def card(selected, _version, _acted, search, shown_digest):
        q = query(search)
        if not selected:
            if ctx.triggered_id != cid.SELECTED:
                raise PreventUpdate
            return layout.card_note("console_card_none", q.lang), None
        now = now_ms()
        try:
            data = command.card_for(access.require_viewer(), topo, r, keys, selected,
                                    now).to_dict()
        except command.CommandError:
            return layout.card_note("console_card_gone", q.lang), None
        except (redis.RedisError, OSError):
            raise PreventUpdate from None
        d = digest(data, q.lang, now // 60_000)
        if d == shown_digest:
            raise PreventUpdate
        return layout.card_body(data, topo, q.lang, now, tz), d

    @app.callback(
        Output(cid.CARD_ACTIONS, "children"),
        Input(cid.SELECTED, "data"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def actions(selected, search):
        """The card's actions, drawn when a case is opened (not with every data change: a note
        being typed survives)."""
        q = query(search)
        v = access.require_viewer()
        if not selected:
            return []
        try:
            c = command.card_for(v, topo, r, keys, selected, now_ms())
        except (command.CommandError, redis.RedisError, OSError):
            return []
        return layout.card_actions(c.to_dict(), q.lang,
                                   can_supervise=command.may_supervise(v, topo, c.row.centre),
                                   can_act=command.may_act(v), calls=v.may_call, here=q.centre)

    @app.callback(
        Output(cid.MESSAGE, "children", allow_duplicate=True),
        Output(cid.ACTED, "data", allow_duplicate=True),
        Input({"type": cid.ACK, "alert": ALL}, "n_clicks"),
        State(ids.URL, "search"),
        State(cid.ACTED, "data"),
        prevent_initial_call=True,
    )
    def ack(_clicks, search, acted):
        trigger = clicked()
        if not isinstance(trigger, dict):
            return no_update, no_update
        q = query(search)
        try:
            a = command.ack(access.require_viewer(), topo, r, keys, trigger.get("alert"), now_ms(),
                            access_log=access_log)
        except command.CommandError as e:
            return refusal(e, q.lang), no_update
        except (redis.RedisError, OSError):
            return t("console_err_unavailable", q.lang), no_update
        return t("console_done_ack", q.lang, id=a.id), _bump(acted)

    @app.callback(
        Output(cid.MESSAGE, "children", allow_duplicate=True),
        Output(cid.ACTED, "data", allow_duplicate=True),
        Output({"type": cid.NOTE, "eid": ALL}, "value"),
        Input({"type": cid.SUPERVISE, "eid": ALL}, "n_clicks"),
        State({"type": cid.NOTE, "eid": ALL}, "value"),
        State(ids.URL, "search"),
        State(cid.ACTED, "data"),
        prevent_initial_call=True,
    )
    def supervise(_clicks, _notes, search, acted):
        keep = [no_update for _ in ctx.outputs_list[2]]  # a wildcard output wants a list
        trigger = clicked()
        if not isinstance(trigger, dict):
            return no_update, no_update, keep
        q = query(search)
        eid = trigger.get("eid")
        states = ctx.states_list[0] if ctx.states_list else []
        note = next((s.get("value") for s in states
                     if isinstance(s, dict) and s.get("id", {}).get("eid") == eid), "")
        try:
            command.supervise(access.require_viewer(), topo, r, keys, eid, note, now_ms(),
                              access_log=access_log)
        except command.CommandError as e:
            return refusal(e, q.lang), no_update, keep
        except (redis.RedisError, OSError):
            return t("console_err_unavailable", q.lang), no_update, keep
        return (t("console_done_supervise", q.lang, eid=str(eid)), _bump(acted),
                ["" for _ in states])

    @app.callback(
        Output(cid.MESSAGE, "children", allow_duplicate=True),
        Input({"type": cid.WALL, "eid": ALL}, "n_clicks"),
        Input({"type": cid.WALL_ALERT, "alert": ALL}, "n_clicks"),
        Input(cid.WALL_CENTRE, "n_clicks"),
        State(cid.GROUP, "value"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def wall(_cases, _alerts, _centre, group, search):
        """上墙: the walls of the group show the centre in view, spotlighting the case or the
        alert (at the case's or alert's own centre when it lies outside the view)."""
        trigger = clicked()
        if trigger is None:
            return no_update
        q = query(search)
        v = access.require_viewer()
        case = trigger.get("eid", "") if isinstance(trigger, dict) else ""
        alert = trigger.get("alert", "") if isinstance(trigger, dict) else ""
        try:
            try:
                d = command.show_on_wall(v, topo, r, keys, group, q.centre, case, alert,
                                         now_ms=now_ms())
            except command.BadInput as e:
                if e.key != "outside":
                    raise
                d = command.show_on_wall(v, topo, r, keys, group, "", case, alert,
                                         now_ms=now_ms())
        except command.CommandError as e:
            return refusal(e, q.lang)
        except (redis.RedisError, OSError):
            return t("console_err_unavailable", q.lang)
        return t("console_done_wall", q.lang, group=d.group, name=layout.centre_name(topo, d.centre))

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Input(cid.PICKER, "value"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def pick(code, search):
        """The centre picker moves the console (the URL follows, like a drill)."""
        q = query(search)
        if code == q.centre or not in_subtree(topo, code, access.require_viewer().scope):
            return no_update
        return search_for(replace(q, tour=None, tour_root=None), code)

    @app.callback(
        Output(cid.PRODUCERS, "children"),
        Output(cid.PRODUCER_COUNT, "children"),
        Input(cid.PRODUCERS_TICK, "n_intervals"),
        State(ids.URL, "search"),
    )
    def producer_panel(_n, search):
        """数据来源 (the console only): the figures of the producers writing into the shards of
        the centre in view, on the panel's own cadence."""
        q = query(search)
        access.require_viewer()
        now = now_ms()
        try:
            rows = producers.figures(r, keys, topo, registered.rows(), now, scope=q.centre)
        except (redis.RedisError, OSError, SQLAlchemyError):
            raise PreventUpdate from None  # keep what is shown
        return layout.producer_list(rows, q.lang, now, tz), layout.producer_count(rows, q.lang)

    app.clientside_callback(
        ClientsideFunction(namespace="pinganConsole", function_name="mark"),
        Output(cid.SINK, "children"),
        Input(cid.SELECTED, "data"),
    )


def digest(*parts: object) -> str:
    """What a piece would show, in 16 hex digits (the same data: the same digest)."""
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _bump(acted: object) -> int:
    return (acted if isinstance(acted, int) and not isinstance(acted, bool) else 0) + 1


class _Registered:
    """The registered producers (SQL), read again only when the registry version moved."""

    def __init__(self, r: redis.Redis, version_key: str, engine: Engine | None) -> None:
        self.r, self.version_key, self.engine = r, version_key, engine
        self._lock = threading.Lock()
        self._seen: tuple[bytes | None, list[dict]] | None = None

    def rows(self) -> list[dict]:
        if self.engine is None:
            return []
        version = self.r.get(self.version_key)
        with self._lock:
            if self._seen is not None and self._seen[0] == version:
                return self._seen[1]
        rows = producers.list_producers(self.engine)
        with self._lock:
            self._seen = (version, rows)
        return rows
