"""callbacks/clicks.py: a click merged with a redraw into one callback request is not lost."""

from __future__ import annotations

import json

import pytest

from callbacks.clicks import first_click


def pid(i: dict | str, prop: str = "n_clicks") -> str:
    return (json.dumps(i, sort_keys=True, separators=(",", ":")) if isinstance(i, dict) else i) \
        + "." + prop


WALL = {"type": "con-wall", "eid": "E.1"}
ALERT = {"type": "con-wall-alert", "alert": "urgent_case:610202001001:E.1"}


def test_click001_a_click_after_a_redraw_in_the_same_request_is_found():
    # the renderer merged a redraw of the alert rows (n_clicks 0) and the click on the card's
    # 上墙 (n_clicks 1) into one request: the redraw is listed first
    triggered = [{"prop_id": pid(ALERT), "value": 0}, {"prop_id": pid(WALL), "value": 1}]
    assert first_click(triggered) == WALL


@pytest.mark.parametrize("triggered", [
    [], None, [{"prop_id": ".", "value": None}], [{"prop_id": pid(WALL), "value": 0}],
    [{"prop_id": pid(WALL), "value": None}, {"prop_id": pid(ALERT), "value": 0}],
    [{"prop_id": "{not json.n_clicks", "value": 3}], ["junk"],
])
def test_click002_redraws_alone_are_no_click(triggered):
    assert first_click(triggered) is None


def test_click003_plain_ids_and_dots_inside_dict_ids():
    assert first_click([{"prop_id": "con-wall-centre.n_clicks", "value": 2}]) == "con-wall-centre"
    # the eid holds a dot: only the last dot separates the property
    assert first_click([{"prop_id": pid(WALL), "value": 1}]) == {"type": "con-wall", "eid": "E.1"}
