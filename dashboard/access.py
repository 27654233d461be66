"""Who is looking: the signed-in viewer of this request, their role and scope.

Set on `flask.g` by the server's before-request guard (dashboard/auth.py); every route and
callback asks here, so the scope is enforced on the server, not only hidden in the UI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import abort, g, has_request_context

from datasources.topology import Topology, in_subtree

ROLES = ("duty", "leader", "admin")  # 值班员, 领导, 管理员
CALL_ROLES = frozenset(ROLES)         # who may start/end video calls
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Viewer:
    name: str
    role: str
    scope: str        # a centre code: the viewer sees its subtree only
    demo: bool = False
    open: bool = False  # PINGAN_AUTH=off: nobody signed in, nothing restricted

    def sees(self, topo: Topology, code: str) -> bool:
        return in_subtree(topo, code, self.scope)

    @property
    def may_call(self) -> bool:
        return self.role in CALL_ROLES


def viewer() -> Viewer | None:
    """The viewer of the current request (None outside a request or before the guard)."""
    return g.get("pingan_viewer") if has_request_context() else None


def session_tag() -> str | None:
    """The access log's tag of this request's session (a short hash of its id, never the id;
    for a viewer without a session, of the account and the lifetime window), set by the
    guard; None outside a request the guard let through."""
    return g.get("pingan_session_tag") if has_request_context() else None


def revalidator() -> Callable[[], Viewer | None]:
    """For a request that outlives its start (a live stream): a function that checks again,
    outside the request context, whether this request's viewer still holds (signed in, not
    signed out, same password, within the session's lifetime) and returns the viewer as it
    is now (its scope may have changed), or None. Set by the guard (dashboard/auth.py);
    without it nobody holds (fail closed)."""
    fn = g.get("pingan_recheck") if has_request_context() else None
    return fn if fn is not None else (lambda: None)


def stream_check(topo: Topology, code: str) -> Callable[[], str | None]:
    """For a stream of centre `code` that outlives its request (`/live/stream`,
    `/vc/events`): a function to call now and then, outside the request context, that
    answers None while this viewer may go on watching, else why not (`signed_out`,
    `scope`). When it cannot tell (the database is down) the stream goes on."""
    viewer, recheck = require_viewer(), revalidator()  # captured now, inside the request

    def still_valid() -> str | None:
        try:
            now = recheck()
        except Exception:
            log.exception("re-checking %s's session for a stream failed", viewer.name)
            return None
        if now is None:
            return "signed_out"
        return None if now.sees(topo, code) else "scope"

    return still_valid


def require_viewer() -> Viewer:
    v = viewer()
    if v is None:
        abort(401)
    return v


def scope_of(topo: Topology) -> str:
    """The centre the current viewer's view is rooted at."""
    v = viewer()
    if v is not None and v.scope in topo.centres:
        return v.scope
    return topo.roots[0] if topo.roots else ""


def allowed(topo: Topology, code: str) -> bool:
    """May the current viewer see `code`? (False without a viewer: fail closed.)"""
    v = viewer()
    return v is not None and v.sees(topo, code)
