"""The duty console's JSON routes (issue 10), and the hook that installs the console.

    GET  /api/cases?centre=CODE&status=open|overdue|urgent|escalated|supervised&limit=N
    GET  /api/case/<eid>
    GET  /api/alerts?centre=CODE
    POST /api/alerts/<id>/ack
    POST /api/case/<eid>/supervise          note (form field or JSON)
    POST /api/wall/<group>                  centre, case, alert (form fields or JSON)

Every answer is JSON, errors too: `{"error": key}` with 400 (bad input), 403 (a centre outside
the viewer's scope, a role or a 督办 not allowed), 404 (an unknown case or alert, or one of
another subtree: the same answer), 409 (closed, cleared), 503 (Redis away), 401 (not signed in).
Auth and CSRF are the server's guard's (dashboard/auth.py): a signed-in viewer, and a POST only
from our own origin (Origin / Sec-Fetch-Site); the guard's own refusals (sign-in redirect,
cross-site, unknown host, body too large) are turned into JSON here for /api/ paths. The scope
checks are dashboard/command.py's, the same the console's callbacks use.
"""

from __future__ import annotations

import json
import logging
import time

import redis
from dash import Dash, html
from flask import Flask, Response, request
from sqlalchemy.engine import Engine

from dashboard import access, command
from dashboard.screens import ScreenData
from dashboard.settings import Settings
from datasources.accesslog import AccessLog

API_PREFIX = "/api/"
STATUS_KEYS = {400: "bad_request", 401: "login_required", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "too_large", 415: "unsupported", 429: "busy",
               500: "server_error", 503: "unavailable"}


def answer(body: dict, status: int = 200) -> Response:
    resp = Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                    mimetype="application/json")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def error(status: int, key: str | None = None) -> Response:
    return answer({"error": key or STATUS_KEYS.get(status, "error")}, status)


def now_ms() -> int:
    return int(time.time() * 1000)


def fields() -> dict:
    """The POST's fields: a JSON object, or the form (`BadInput` for any other JSON)."""
    if request.is_json:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise command.BadInput("body", "not a JSON object")
        return body
    return request.form.to_dict()


def register_command_routes(server: Flask, screens: ScreenData,
                            access_log: AccessLog | None = None) -> None:
    topo, r, keys = screens.topology, screens.r, screens.keys

    def run(action):
        """The answer of `action()` (a dict), or the error it raised, as JSON."""
        try:
            return answer(action())
        except command.CommandError as e:
            return error(e.status, e.key)
        except (redis.RedisError, OSError):
            return error(503)

    @server.get(API_PREFIX + "cases")
    def api_cases():
        v = access.require_viewer()
        args = request.args
        raw_limit = args.get("limit", "100")
        if not raw_limit.isascii() or not raw_limit.isdigit() or len(raw_limit) > 4:
            return error(400, "limit")
        return run(lambda: command.cases_for(
            v, topo, r, keys, args.get("centre", v.scope), args.get("status", "open"), now_ms(),
            limit=int(raw_limit)).to_dict())

    @server.get(API_PREFIX + "case/<path:eid>")
    def api_case(eid: str):
        v = access.require_viewer()
        return run(lambda: command.card_for(v, topo, r, keys, eid, now_ms()).to_dict())

    @server.get(API_PREFIX + "alerts")
    def api_alerts():
        v = access.require_viewer()
        code = request.args.get("centre", v.scope)
        return run(lambda: {"centre": code, "alerts": [
            a.to_dict() for a in command.alerts_for(v, topo, r, keys, code)]})

    @server.post(API_PREFIX + "alerts/<path:alert_id>/ack")
    def api_ack(alert_id: str):
        v = access.require_viewer()

        def act() -> dict:
            a = command.ack(v, topo, r, keys, alert_id, now_ms(), access_log=access_log)
            return {"ok": True, "alert": a.id, "state": a.state, "by": v.name}
        return run(act)

    @server.post(API_PREFIX + "case/<path:eid>/supervise")
    def api_supervise(eid: str):
        v = access.require_viewer()

        def act() -> dict:
            entry = command.supervise(v, topo, r, keys, eid, fields().get("note", ""), now_ms(),
                                      access_log=access_log)
            return {"ok": True, "eid": eid, "by": v.scope, "user": v.name, "entry": entry}
        return run(act)

    @server.post(API_PREFIX + "wall/<group>")
    def api_wall(group: str):
        v = access.require_viewer()

        def act() -> dict:
            f = fields()
            d = command.show_on_wall(v, topo, r, keys, group, f.get("centre", ""),
                                     f.get("case", ""), f.get("alert", ""), now_ms=now_ms())
            return {"ok": True, **d.to_dict()}
        return run(act)

    @server.after_request
    def api_json(resp: Response) -> Response:
        """What the guard (or Flask) answered for an /api/ path in its own words (a sign-in
        redirect, a plain-text refusal, an HTML 404) becomes a JSON error."""
        if not request.path.startswith(API_PREFIX) or resp.mimetype == "application/json":
            return resp
        status = 401 if resp.status_code in (302, 303) else resp.status_code
        if status < 400:
            return resp
        return error(status)


def install_console(app: Dash, screens: ScreenData, settings: Settings,
                    access_log: AccessLog | None = None, engine: Engine | None = None) -> None:
    """The duty console (/console) and the tablet's command panel: the JSON routes, the
    callbacks, and their components in the app's validation layout. Acknowledgements and
    督办 go to `access_log`; `engine` (the registry) lists the producers of the console's
    数据来源 panel."""
    from callbacks import console
    from layouts import console as console_layout

    register_command_routes(app.server, screens, access_log)
    console.register(app, screens.topology, settings, screens, access_log, engine)
    audit = logging.getLogger(command.__name__)
    if not audit.handlers and not logging.getLogger().handlers:
        # the actions' log lines (who, when) go to stderr: gunicorn's log, the demo's terminal
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        audit.addHandler(handler)
        audit.setLevel(logging.INFO)
    app.validation_layout = html.Div([app.validation_layout,
                                      *console_layout.validation_components()])
