"""The duty console's actions, checked on the server against the viewer (值班席, issue 10).

Every route (dashboard/command_api.py) and every callback (callbacks/console.py) that reads a
case or an alert, acknowledges, supervises (督办) or drives the walls goes through here, so the
scope rules are written once:

- a centre outside the viewer's subtree is refused (`Refused`, 403), like the screens do;
- a case or an alert whose centre lies outside the viewer's subtree gets exactly the answer an
  unknown id gets (`Refused`, 404): ids of other subtrees are not revealed;
- duty officers, leaders and administrators may act (acknowledge, 督办, 上墙);
- 督办 only when the viewer's scope is a strict ancestor of the case's current centre, and
  `by` is that scope: a town supervises its villages' cases, not its own;
- a note is plain text of at most `contract.MAX_TEXT` characters; whitespace is folded into
  single spaces (the stream contract takes no newlines), any other invisible character refused;
- `PINGAN_AUTH=off` (the open viewer: an administrator at the top, named "—") works as the
  demo does.

Each action is logged with who and when (logger `dashboard.command`) and also leaves its own
record where the data live: an acknowledgement in the alerts' history (written by the
aggregator with the user and time), a 督办 as a `supervised` event entry (`by`, `user`, `ts`),
a wall directive with `by` and `at` (datasources/wallcontrol.py).
"""

from __future__ import annotations

import logging

import redis

from dashboard.access import ROLES, Viewer
from datasources import alerts, cases
from datasources.accesslog import AccessLog
from datasources.alerts import Alert, AlertError
from datasources.cases import CaseCard, CaseError, CaseList
from datasources.contract import MAX_ID, MAX_TEXT, STATUS_FILTERS
from datasources.keys import Keys
from datasources.topology import Topology, in_subtree
from datasources.wallcontrol import BadGroup, Directive, check_group, set_directive

ACT_ROLES = frozenset(ROLES)  # 值班员, 领导, 管理员: acknowledge, 督办, 上墙
MAX_LIMIT = 500
log = logging.getLogger(__name__)


class CommandError(Exception):
    """An action or a read that is not done: `key` names the reason (an i18n suffix and the
    JSON `error`), `status` is the HTTP answer."""

    status = 400

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"{key}: {detail}" if detail else key)
        self.key = key


class Refused(CommandError):
    """Not the viewer's to see: an unknown id or one of another subtree (404, the same for
    both), or a centre outside the scope (403, as the screens answer)."""

    def __init__(self, key: str = "not_found", detail: str = "") -> None:
        super().__init__(key, detail)
        self.status = 403 if key == "forbidden" else 404


class Forbidden(CommandError):
    """Visible, but this viewer may not do it (role; 督办 of a case that is not below)."""

    status = 403


class BadInput(CommandError):
    status = 400


class Conflict(CommandError):
    """The case is closed or moved, the alert cleared: nothing to do any more."""

    status = 409


# -- who may do what -------------------------------------------------------------------------
def may_act(viewer: Viewer | None) -> bool:
    return viewer is not None and viewer.role in ACT_ROLES


def may_supervise(viewer: Viewer | None, topo: Topology, centre: str) -> bool:
    """督办: the viewer's scope sits strictly above the case's current centre."""
    return (may_act(viewer) and viewer is not None and centre != viewer.scope
            and in_subtree(topo, centre, viewer.scope))


def _viewer(viewer: Viewer | None) -> Viewer:
    if viewer is None:
        raise Refused("forbidden", "no viewer")
    return viewer


def _actor(viewer: Viewer | None) -> Viewer:
    v = _viewer(viewer)
    if not may_act(v):
        raise Forbidden("role", v.role)
    return v


def _centre(v: Viewer, topo: Topology, code: object) -> str:
    if not isinstance(code, str) or not v.sees(topo, code):
        raise Refused("forbidden", str(code)[:40])
    return code


def _id(value: object, limit: int) -> str:
    """An id the client sent: a non-empty printable string of at most `limit` characters, else
    unknown (a malformed id names nothing)."""
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isprintable():
        raise Refused("not_found", "malformed id")
    return value


def clean_note(note: object) -> str:
    """A 督办 note as the stream contract takes it: whitespace runs (newlines, tabs, U+3000)
    folded into one space, at most MAX_TEXT characters, no other invisible character."""
    if note is None:
        return ""
    if not isinstance(note, str):
        raise BadInput("note", "not text")
    text = " ".join(note.split())
    if len(text) > MAX_TEXT or not text.isprintable():
        raise BadInput("note", f"{len(text)} characters" if len(text) > MAX_TEXT else "invisible")
    return text


def _audit(action: str, v: Viewer, now_ms: int, **what: object) -> None:
    log.info("console %s by %s (%s, scope %s) at %d: %s", action, v.name, v.role, v.scope,
             now_ms, " ".join(f"{k}={str(x)[:80]!r}" for k, x in what.items()))


# -- reads -----------------------------------------------------------------------------------
def cases_for(viewer: Viewer | None, topo: Topology, r: redis.Redis, keys: Keys, code: object,
              status: object, now_ms: int, limit: object = 100) -> CaseList:
    """The cases behind a figure of `code` (its subtree), for a viewer who may see `code`."""
    v = _viewer(viewer)
    code = _centre(v, topo, code)
    if status not in STATUS_FILTERS:
        raise BadInput("status", str(status)[:40])
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
        raise BadInput("limit", str(limit)[:40])
    try:
        return cases.list_cases(r, topo, keys, code, str(status), limit=limit, now_ms=now_ms)
    except CaseError as e:
        raise BadInput("status", str(e)) from None


def case_counts(viewer: Viewer | None, topo: Topology, r: redis.Redis, keys: Keys, code: object,
                now_ms: int) -> dict[str, int]:
    """How many cases each filter of `code`'s subtree holds (the tabs' counts), for a viewer
    whose scope holds `code`."""
    return cases.count_cases(r, topo, keys, _centre(_viewer(viewer), topo, code), now_ms)


def case_centre_for(viewer: Viewer | None, topo: Topology, r: redis.Redis, keys: Keys,
                    eid: object) -> str:
    """The current centre of a case the viewer may see (`Refused` for any other id)."""
    v = _viewer(viewer)
    eid = _id(eid, MAX_ID)
    centre = cases.case_centre(r, topo, keys, eid)
    if centre is None or not v.sees(topo, centre):
        raise Refused("not_found", eid)
    return centre


def card_for(viewer: Viewer | None, topo: Topology, r: redis.Redis, keys: Keys, eid: object,
             now_ms: int) -> CaseCard:
    """A case's card, for a viewer whose subtree holds its current centre."""
    v = _viewer(viewer)
    case_centre_for(v, topo, r, keys, eid)
    card = cases.case_card(r, topo, keys, str(eid), now_ms)
    if card is None or not v.sees(topo, card.row.centre):  # moved away in between
        raise Refused("not_found", str(eid))
    return card


def alerts_for(viewer: Viewer | None, topo: Topology, r: redis.Redis, keys: Keys, code: object,
               limit: int = 200) -> list[Alert]:
    """The raised and acknowledged alerts of `code`'s subtree, unacknowledged first."""
    v = _viewer(viewer)
    code = _centre(v, topo, code)
    return alerts.list_alerts(r, topo, keys, code, limit=limit)


def alert_for(viewer: Viewer | None, topo: Topology, r: redis.Redis, keys: Keys,
              alert_id: object) -> Alert:
    v = _viewer(viewer)
    alert_id = _id(alert_id, alerts.MAX_ALERT_ID)
    a = alerts.get_alert(r, topo, keys, alert_id)
    if a is None or not v.sees(topo, a.centre):
        raise Refused("not_found", alert_id)
    return a


# -- actions ---------------------------------------------------------------------------------
def ack(viewer: Viewer | None, topo: Topology, r: redis.Redis, keys: Keys, alert_id: object,
        now_ms: int, *, access_log: AccessLog | None = None) -> Alert:
    """Acknowledge an alert as the viewer (a request the aggregator applies once and writes to
    the history with the user and time). An alert acknowledged already is left as it is.
    A request made is recorded in `access_log` (alert_acknowledged)."""
    v = _actor(viewer)
    a = alert_for(v, topo, r, keys, alert_id)
    if a.state == "cleared":
        raise Conflict("cleared", a.id)
    if a.state == "raised":
        try:
            alerts.request_ack(r, topo, keys, a.id, v.name, now_ms)
        except AlertError as e:
            raise Conflict("cleared", str(e)) from None
        if access_log is not None:
            access_log.record("alert_acknowledged", v.name, alert=a.id,
                              shard=topo.centres[a.centre].shard, centre=a.centre)
    _audit("ack", v, now_ms, alert=a.id, state=a.state)
    return a


def supervise(viewer: Viewer | None, topo: Topology, r: redis.Redis, keys: Keys, eid: object,
              note: object, now_ms: int, *, access_log: AccessLog | None = None) -> str:
    """督办 a case below the viewer's scope with a note; returns the event entry's id (the
    aggregator counts it once, at the case's centre and its ancestors). Recorded in
    `access_log` (supervised)."""
    v = _actor(viewer)
    text = clean_note(note)
    centre = case_centre_for(v, topo, r, keys, eid)
    if not may_supervise(v, topo, centre):
        raise Forbidden("not_above", centre)
    try:
        entry = cases.supervise(r, topo, keys, str(eid), by=v.scope, note=text, user=v.name,
                                now_ms=now_ms)
    except CaseError as e:
        raise Conflict("closed", str(e)) from None
    if access_log is not None:
        access_log.record("supervised", v.name, eid=str(eid), centre=centre, by=v.scope)
    _audit("supervise", v, now_ms, eid=eid, centre=centre, by=v.scope, entry=entry, note=text)
    return entry


def show_on_wall(viewer: Viewer | None, topo: Topology, r: redis.Redis, keys: Keys,
                 group: object, centre: object = "", case: object = "", alert: object = "", *,
                 now_ms: int) -> Directive:
    """Point the walls of `group` at a centre, spotlighting a case or an alert (上墙). Without
    a centre, the case's or the alert's own; with one, the case or alert must lie in its
    subtree (a wall spotlights only what it shows)."""
    v = _actor(viewer)
    try:
        group = check_group(group)
    except BadGroup:
        raise BadInput("group", str(group)[:40]) from None
    owner = ""
    if case:
        owner = case_centre_for(v, topo, r, keys, case)
    if alert:
        owner = alert_for(v, topo, r, keys, alert).centre
    code = _centre(v, topo, centre or owner or v.scope)
    if owner and not in_subtree(topo, owner, code):
        raise BadInput("outside", f"{owner} is not under {code}")
    d = set_directive(r, keys, group, code, case=str(case or ""), alert=str(alert or ""),
                      by=v.name, now_ms=now_ms)
    _audit("wall", v, now_ms, group=group, centre=code, case=case, alert=alert, seq=d.seq)
    return d
