"""The OpenAPI 3.1 document of the producer gateway (`GET /api/v1/openapi.json`).

Built per request from the same facts the gateway checks against: the contract's limits and
fields, the region's vocabulary (`topo.vocab`) and the settings' limits. The schemas describe the shapes; the registry (known centres, grids, cameras, the tree
for `to` and `by`) and the time bounds are checked per entry and answered in `results`.
"""

from __future__ import annotations

import time

from dashboard.settings import Settings
from datasources import contract
from datasources.keys import STREAM_KINDS
from datasources.topology import Topology

VERSION = "1"
# printable, no whitespace but the ASCII space (the contract's text rule, approximately: the
# server's check is Python's str.isprintable)
_TEXT = r"^[^\u0000-\u001f\u007f-\u00a0\u2000-\u200f\u2028-\u202f\u3000\ufeff]*$"
_DIGITS = r"^[0-9]{1,16}$"


def _codes(topo: Topology, kind: str) -> list[str]:
    """A vocabulary's codes: the region's (`topo.vocab`, followed on a registry reload)."""
    return list(topo.vocab.codes(kind))


def _id(description: str, limit: int = contract.MAX_ID) -> dict:
    return {"type": "string", "minLength": 1, "maxLength": limit, "pattern": _TEXT,
            "description": description}


def _enum(values: list[str] | tuple[str, ...], description: str) -> dict:
    return {"type": "string", "enum": list(values), "description": description}


def _int(description: str) -> dict:
    return {"oneOf": [{"type": "integer", "minimum": 0, "maximum": 9_999_999_999_999_999},
                      {"type": "string", "pattern": _DIGITS}],
            "description": description + " (a JSON integer or its decimal digits)"}


def _flag(description: str) -> dict:
    return {"oneOf": [{"type": "integer", "enum": [0, 1]}, {"type": "string", "enum": ["0", "1"]}],
            "description": description}


def _common() -> dict:
    return {
        "v": {"oneOf": [{"type": "integer", "enum": [1]}, {"type": "string", "enum": ["1"]}],
              "description": "contract version"},
        "ts": _int("event time, ms since the epoch (UTC); within the lateness and future bounds "
                   "of docs/STREAMS.md §4.1 at arrival"),
        "src": {"type": "string", "maxLength": contract.MAX_VALUE,
                "description": "ignored: the gateway sets it to the producer's name"},
    }


def _object(props: dict, required: list[str], description: str) -> dict:
    return {"type": "object", "description": description, "properties": props,
            "required": ["v", "ts", *required], "maxProperties": contract.MAX_FIELDS,
            "additionalProperties": {"type": ["string", "integer"],
                                     "maxLength": contract.MAX_VALUE}}


def _event_schemas(topo: Topology) -> dict:
    base = {
        **_common(),
        "eid": _id("the producer's case id"),
        "centre": _id("code of the centre that owns the case (in the producer's scope)"),
        "category": _enum(_codes(topo, "category"), "case category (the region's vocabulary)"),
        "grid": _id("grid id, under `centre` (optional)"),
        "summary": _id("plain text (optional)", contract.MAX_TEXT),
    }
    extra = {
        "reported": ({"channel": _enum(_codes(topo, "event_channel"), "source channel"),
                      "urgency": _enum(contract.URGENCIES, "urgency"),
                      "due": _int("deadline, ms since the epoch")},
                     ["channel", "urgency", "due"]),
        "evaluated": ({"satisfied": _flag("1 satisfied, 0 not")}, ["satisfied"]),
        "escalated": ({"to": _id("the centre the case moves up to: a strict ancestor of "
                                 "`centre`")}, ["to"]),
        "supervised": ({"by": _id("the supervising centre (督办): a strict ancestor of `centre`"),
                        "note": _id("plain text (optional)", contract.MAX_TEXT),
                        "user": _id("id of the user who acted (optional)")}, ["by"]),
    }
    out = {}
    for status in contract.STATUSES:
        props, required = extra.get(status, ({}, []))
        out[f"event_{status}"] = _object(
            {**base, "status": {"type": "string", "const": status}, **props},
            ["eid", "status", "centre", "category", *required],
            f"an event transition `{status}`")
    return out


def _schemas(topo: Topology) -> dict:
    events = _event_schemas(topo)
    return {
        **events,
        "events": {"oneOf": [{"$ref": f"#/components/schemas/{n}"} for n in events]},
        "patrols": _object({**_common(), "pid": _id("unique patrol id"),
                            "grid": _id("grid id (its centre is in the producer's scope)"),
                            "worker": _id("grid worker id (not a name)")},
                           ["pid", "grid", "worker"], "a grid worker's check-in"),
        "cameras": _object({**_common(), "cam": _id("camera id (its centre is in the scope)"),
                            "state": _enum(contract.CAMERA_STATES, "camera state")},
                           ["cam", "state"], "a camera's state change or heartbeat"),
        "petitions": _object({**_common(), "pid": _id("unique petition id"),
                              "centre": _id("centre code (in the producer's scope)"),
                              "channel": _enum(_codes(topo, "petition_channel"), "channel"),
                              "group": _flag("group petition"),
                              "skip_level": _flag("skipped a level")},
                             ["pid", "centre", "channel", "group", "skip_level"],
                             "a registered petition"),
        "Result": {"oneOf": [
            {"type": "object", "required": ["ok", "id"], "additionalProperties": False,
             "properties": {"ok": {"const": True},
                            "id": {"type": "string", "description": "the stream entry id"}}},
            {"type": "object", "required": ["ok", "error"], "additionalProperties": False,
             "properties": {"ok": {"const": False},
                            "error": {"type": "string", "description": "why it was refused"}}},
        ]},
        "Results": {"type": "object", "required": ["results"], "additionalProperties": False,
                    "properties": {"results": {"type": "array",
                                               "items": {"$ref": "#/components/schemas/Result"}}}},
        "Error": {"type": "object", "required": ["error"], "additionalProperties": False,
                  "properties": {"error": {"type": "string"}}},
    }


def _examples(topo: Topology, now_ms: int) -> dict[str, dict]:
    """One valid entry per kind, from the registry (shown in the document, sent by fuzzers)."""
    centre = next((c for c in topo.order if topo.centres[c].level >= 3), None) or (
        topo.order[0] if topo.order else "610202001001")
    grid = next(iter(sorted(topo.grid_centre)), "610202001001-G01")
    cam = next(iter(sorted(topo.camera)), "CAM-1")
    ts = now_ms - 60_000
    cat = _codes(topo, "category")[0]
    return {
        "events": {"v": 1, "ts": ts, "eid": f"E-{ts}", "status": "reported", "centre": centre,
                   "category": cat, "channel": _codes(topo, "event_channel")[0],
                   "urgency": "normal", "due": ts + 86_400_000},
        "patrols": {"v": 1, "ts": ts, "pid": f"P-{ts}", "grid": grid, "worker": "W-1"},
        "cameras": {"v": 1, "ts": ts, "cam": cam, "state": "online"},
        "petitions": {"v": 1, "ts": ts, "pid": f"T-{ts}", "centre": centre,
                      "channel": _codes(topo, "petition_channel")[0], "group": 0,
                      "skip_level": 0},
    }


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


def _operation(kind: str, settings: Settings, example: dict) -> dict:
    return {
        "operationId": f"post_{kind}",
        "summary": f"Write {kind} entries",
        "description": (
            "A JSON array of entries; each is validated like the aggregator does (docs/"
            "STREAMS.md), must lie in the producer's scope, and is answered in `results` in "
            "the order sent. Idempotent by the contract's key: an entry posted twice counts "
            "once."),
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "array", "maxItems": settings.api_max_entries,
                       "items": {"$ref": f"#/components/schemas/{kind}"}},
            "example": [example]}}},
        "responses": {
            "200": {"description": "one result per entry, in order", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Results"}}}},
            "400": _error("the body is not valid JSON, or not an array"),
            "401": {**_error("no token, or an unknown or revoked one"), "headers": {
                "WWW-Authenticate": {"schema": {"type": "string"}}}},
            "403": _error("this producer may not write this kind"),
            "413": _error(f"more than {settings.api_max_bytes} bytes or "
                          f"{settings.api_max_entries} entries, or more entries than the "
                          "producer's rate per second"),
            "415": _error("the body is not `application/json`"),
            "429": {**_error("over the producer's rate (entries per second)"), "headers": {
                "Retry-After": {"schema": {"type": "integer"}}}},
            "503": _error("the store is unavailable: retry later"),
        },
    }


def document(topo: Topology, settings: Settings, now_ms: int | None = None) -> dict:
    """The OpenAPI document; `now_ms` dates the examples."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    examples = _examples(topo, now)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pingan producer gateway", "version": VERSION,
                 "description": "HTTP ingest of the stream contract v1 (docs/producers.md, "
                                "docs/STREAMS.md)."},
        "paths": {f"/api/v1/{kind}": {"post": _operation(kind, settings, examples[kind])}
                  for kind in STREAM_KINDS},
        "components": {
            "schemas": _schemas(topo),
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "a producer token (`pingan producers add`)"}},
        },
    }
