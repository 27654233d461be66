"""Which button a click callback answers to.

Buttons in lists that live updates redraw share one callback through a pattern-matching
Input (``{"type": ..., "code": ALL}``). Such a callback also fires when the list is redrawn
(the new buttons' ``n_clicks`` is 0 or None), and the Dash renderer merges a click that comes
while such a firing is queued into one request: ``ctx.triggered`` then lists the redraw first
and the click after it. Reading only the first trigger (``ctx.triggered_id``) lost that click.
"""

from __future__ import annotations

import json

from dash import ctx


def first_click(triggered: list[dict]) -> dict | str | None:
    """The id of the first trigger with a click count (a truthy value), else None."""
    for t in triggered or []:
        if not isinstance(t, dict) or not t.get("value"):
            continue
        prop_id = str(t.get("prop_id", ""))
        name = prop_id.rsplit(".", 1)[0]  # property names have no dot; dict ids may
        if name.startswith("{"):
            try:
                parsed = json.loads(name)
            except ValueError:
                continue
            return parsed if isinstance(parsed, dict) else None
        return name or None
    return None


def clicked() -> dict | str | None:
    """The id of the component whose click fired the running callback; None when it fired
    only because components were (re)drawn."""
    return first_click(ctx.triggered)
