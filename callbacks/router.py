"""Routing: the URL (path + query) decides which screen of which centre is shown."""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import parse_qs, urlencode

from dash import Dash, Input, Output, State, no_update

from dashboard import access, command
from dashboard.screens import ScreenData, version_tag
from dashboard.settings import Settings
from datasources.accesslog import AccessLog
from datasources.topology import Topology, drill_target, in_subtree
from datasources.wallcontrol import BadGroup, check_group
from layouts import ids, shell
from layouts import map as mapview
from layouts.brief import brief_screen
from layouts.console import centre_options, console_screen
from layouts.wall import wall_screen

WALL_PATHS = ("/", "/wall", "/wall/")
BRIEF_PATHS = ("/brief", "/brief/")  # the leaders' tablet briefing view (callbacks/brief.py)
CONSOLE_PATHS = ("/console", "/console/")  # the duty desk 值班席 (callbacks/console.py)
SCREENS = {**dict.fromkeys(WALL_PATHS, wall_screen), **dict.fromkeys(BRIEF_PATHS, brief_screen)}
LANGS = ("zh", "en")
PUSH_MODES = ("sse", "poll")
MAX_TOUR_S = 3600


@dataclass(frozen=True)
class Query:
    centre: str
    lang: str = "zh"
    tour: int | None = None
    tour_root: str | None = None
    push: str = "sse"
    indicator: str = "index"
    screen: str = ""     # the wall group this wall follows (?screen=main, issue 10)
    sound: bool = False  # ?sound=1: a chime when an alert is raised


@dataclass(frozen=True)
class BadQuery:
    key: str  # i18n key of the message
    lang: str
    fmt: dict


def parse_query(search: str | None, topo: Topology, scope: str) -> Query | BadQuery:
    """Validate the query string against the viewer's `scope` (a centre: its subtree may be
    shown); anything wrong becomes a message, never an exception."""
    if search is not None and not isinstance(search, str):
        return BadQuery("bad_param", "zh", {"name": "search"})
    params = parse_qs((search or "").lstrip("?"), keep_blank_values=True)
    one = {k: v[-1] for k, v in params.items()}
    lang = one.get("lang", "zh")
    if lang not in LANGS:
        return BadQuery("bad_param", "zh", {"name": "lang"})
    centre = one.get("centre", scope).strip()
    if centre not in topo.centres:
        return BadQuery("unknown_centre", lang, {"code": centre[:40] or "—"})
    if not in_subtree(topo, centre, scope):
        return BadQuery("forbidden", lang, {"code": centre})
    tour = None
    if "tour" in one:
        raw = one["tour"]
        if not raw.isdigit() or not 5 <= int(raw) <= MAX_TOUR_S:
            return BadQuery("bad_param", lang, {"name": "tour"})
        tour = int(raw)
    root = one.get("tour_root", centre)
    if not (in_subtree(topo, centre, root) and in_subtree(topo, root, scope)):
        root = centre
    push = one.get("push", "sse")
    if push not in PUSH_MODES:
        return BadQuery("bad_param", lang, {"name": "push"})
    indicator = one.get("indicator", "index")
    if indicator not in mapview.INDICATORS:
        return BadQuery("bad_param", lang, {"name": "indicator"})
    screen = one.get("screen", "")
    if screen:
        try:
            check_group(screen)
        except BadGroup:
            return BadQuery("bad_screen", lang, {"name": screen[:40]})
    sound = one.get("sound", "0")
    if sound not in ("0", "1"):
        return BadQuery("bad_param", lang, {"name": "sound"})
    return Query(centre, lang, tour, root if tour else None, push, indicator, screen,
                 sound == "1")


def current_query(search: str | None, topo: Topology) -> Query | BadQuery:
    """`parse_query` for the viewer of this request (a request without one is refused)."""
    return parse_query(search, topo, access.require_viewer().scope)


def viewer_chip(v: access.Viewer, lang: str):
    """Who is signed in, for the screen's header (none when access control is off)."""
    return None if v.open else shell.viewer_chip(v.name, v.role, v.demo, lang)


def next_stop(topo: Topology, root: str, current: str) -> str:
    """The tour: the root, then each of its children in turn, then the root again."""
    children = list(topo.children.get(root, ()))
    if not children:
        return root
    if current == root or current not in children:
        return children[0]
    i = children.index(current)
    return children[i + 1] if i + 1 < len(children) else root


def search_for(q: Query, centre: str) -> str:
    params = {"centre": centre}
    if q.lang != "zh":
        params["lang"] = q.lang
    if q.tour:
        params["tour"] = str(q.tour)
        params["tour_root"] = q.tour_root or centre
    if q.push != "sse":
        params["push"] = q.push
    if q.indicator != "index":
        params["indicator"] = q.indicator
    if q.screen:
        params["screen"] = q.screen
    if q.sound:
        params["sound"] = "1"
    return "?" + urlencode(params)


def wall_map(screens: ScreenData, settings: Settings, q: Query, vm: dict):
    """The drill-down map of the centre in view, with its current live layers (recent cases
    are drawn in place by assets/map.js from the live stream)."""
    payload = screens.map_payload(q.centre, vm, q.indicator, q.lang)
    return mapview.map_view(payload, q.lang, indicator=q.indicator, tile_url=settings.tile_url)


def note_view(access_log: AccessLog | None, settings: Settings, viewer: access.Viewer,
              centre: str, screen: str) -> None:
    """The access log's `centre_viewed`: the first time this session opens `centre` (every
    screen opens its centre here; the set of centres seen lives as long as a session may)."""
    tag = access.session_tag()
    if access_log is not None and tag is not None:
        access_log.viewed(viewer.name, tag, centre, screen,
                          int(settings.session_max_hours * 3600))


def register(app: Dash, topo: Topology, settings: Settings, screens: ScreenData,
             access_log: AccessLog | None = None) -> None:
    @app.callback(
        Output(ids.SCREEN, "children"),
        Output(ids.TOUR, "interval"),
        Output(ids.TOUR, "disabled"),
        Output(ids.POLL, "disabled"),
        Output(ids.POLL_VERSION, "data"),
        Output(ids.POLL_VM, "data", allow_duplicate=True),
        Input(ids.URL, "pathname"),
        Input(ids.URL, "search"),
        State(ids.SCREEN_SHOWN, "data"),
        prevent_initial_call="initial_duplicate",
    )
    def route(pathname, search, shown=None):
        q = current_query(search, topo)
        if isinstance(q, BadQuery):
            return shell.message_screen(q.key, q.lang, **q.fmt), 60_000, True, True, None, {}
        if pathname in CONSOLE_PATHS:  # not a live screen: its lists follow the versions
            viewer = access.require_viewer()
            note_view(access_log, settings, viewer, q.centre, "console")
            screen = console_screen(screens.view(q.centre), q.lang,
                                    options=centre_options(topo, viewer.scope, q.lang),
                                    can_act=command.may_act(viewer),
                                    chip=viewer_chip(viewer, q.lang), tz=settings.tz)
            return screen, 60_000, True, True, None, {}
        make = SCREENS.get(pathname) if isinstance(pathname, str) else None
        if make is None:
            return shell.message_screen("not_found", q.lang), 60_000, True, True, None, {}
        note_view(access_log, settings, access.require_viewer(), q.centre,
                  "wall" if make is wall_screen else "brief")
        if make is wall_screen and shown == f"{pathname}{search}":  # drawn in place (drill.js)
            return no_update, 60_000, True, q.push != "poll", None, {}
        vm = screens.view(q.centre)
        viewer = access.require_viewer()
        screen = shell.live_screen(
            make(vm, q.lang, wall_map(screens, settings, q, vm), calls=viewer.may_call,
                 chip=viewer_chip(viewer, q.lang)),
            q.centre, q.lang, settings.stale_after_s, q.push, tz=settings.tz,
            kind="wall" if make is wall_screen else "tablet")
        touring = q.tour is not None and make is wall_screen  # the tablet does not tour
        tour_ms = (q.tour or 60) * 1000
        return screen, tour_ms, not touring, q.push != "poll", version_tag(q.centre, vm), {}

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Input(mapview.map_ids()["regions"], "n_clicks"),
        State(mapview.map_ids()["regions"], "clickData"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def drill(_n, click, search):
        """A click or tap on a child region drills the whole screen to it (URL follows)."""
        q = current_query(search, topo)
        props = click.get("properties") if isinstance(click, dict) else None
        code = props.get("code") if isinstance(props, dict) else None
        if isinstance(q, BadQuery) or not drill_target(topo, q.centre, code):
            return no_update
        return search_for(replace(q, tour=None, tour_root=None), code)

    @app.callback(
        Output(ids.URL, "search"),
        Input(ids.TOUR, "n_intervals"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    def tour(_n, search):
        q = current_query(search, topo)
        if isinstance(q, BadQuery) or not q.tour:
            return no_update
        return search_for(q, next_stop(topo, q.tour_root or q.centre, q.centre))
