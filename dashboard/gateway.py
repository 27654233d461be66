"""The producer gateway: `POST /api/v1/<kind>` with a bearer token (docs/producers.md).

A machine API beside the screens: its own authentication (a producer token looked up in the
registry on every request, so revocation is immediate), no viewer sign-in, no browser CSRF
rules (a bearer token is never sent by a browser on its own), JSON in every answer. The
whole request is refused with a status for what concerns it all (token, kind, size, type,
rate); each entry is then judged alone (`datasources.intake`) and answered in `results`.

Order of the checks: kind (404), method (405), token (401), kind allowed (403), content type
(415), size (413), JSON (400), entry count (413), rate (429), then the entries.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from flask import Blueprint, Flask, Response, request
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from dashboard import command_api
from dashboard.openapi import document
from dashboard.settings import Settings
from datasources import producers
from datasources.accesslog import AccessLog, SeenOnce
from datasources.intake import Intake
from datasources.keys import STREAM_KINDS, Keys
from datasources.producers import Producer
from datasources.topology import Topology

PREFIX = "/api/v1/"
OPENAPI_PATH = PREFIX + "openapi.json"
CHUNK = 64 * 1024
RETRY_AFTER_S = 1  # the rate window is one second
_KINDS = frozenset(STREAM_KINDS)
log = logging.getLogger(__name__)


class Refused(Exception):
    """A whole request refused: its status, reason and extra headers."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


def answer(status: int, body: dict, headers: dict[str, str] | None = None) -> Response:
    """The console API's JSON answer (no-store), with the refusal's own headers."""
    resp = command_api.answer(body, status)
    resp.headers.update(headers or {})
    return resp


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def read_body(limit: int) -> bytes:
    """At most `limit` bytes of the request body, with or without Content-Length (chunked);
    `Refused(413)` beyond. A declared length over the limit is refused before reading."""
    length = request.content_length
    if length is not None and length > limit:
        raise Refused(413, f"body of {length} bytes is over the limit of {limit}",
                      {"Connection": "close"})
    request.max_content_length = limit + 1  # the app-wide cap is for the screens' posts
    out = bytearray()
    try:
        stream = request.stream
        while len(out) <= limit:
            chunk = stream.read(min(CHUNK, limit + 1 - len(out)))
            if not chunk:
                break
            out += chunk
    except RequestEntityTooLarge:
        out = bytearray(limit + 1)
    if len(out) > limit:
        raise Refused(413, f"body over the limit of {limit} bytes", {"Connection": "close"})
    return bytes(out)


def parse(body: bytes) -> list:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise Refused(400, "the body is not valid JSON") from None
    if not isinstance(data, list):
        raise Refused(400, "the body must be a JSON array of entries")
    return data


@dataclass
class Gateway:
    """What the routes need; one per web worker. `topo` is refreshed in place on a registry
    change (datasources/registry_watch.py), and the producer is read per request."""

    settings: Settings
    engine: Callable[[], Engine]  # the registry's (Runtime.engine is created on first use)
    r: redis.Redis
    topo: Topology
    access_log: AccessLog
    # the access log's producer_used: once a minute per producer, asked of Redis only the
    # first time in this worker
    _used: SeenOnce = field(default_factory=lambda: SeenOnce(max_age_s=60))

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.key_prefix)
        self.intake = Intake(self.r, self.topo, self.settings.pipeline)

    def producer(self) -> Producer:
        token = bearer(request.headers.get("Authorization"))
        challenge = {"WWW-Authenticate": 'Bearer realm="pingan"'}
        if token is None:
            raise Refused(401, "a bearer token is required (Authorization: Bearer <token>)",
                          challenge)
        try:
            found = producers.lookup(self.engine(), token)
        except SQLAlchemyError:
            log.exception("producer lookup failed")
            raise Refused(503, "the registry is unavailable", {"Retry-After": "5"}) from None
        if found is None:
            raise Refused(401, "unknown or revoked token",
                          {"WWW-Authenticate": 'Bearer realm="pingan", error="invalid_token"'})
        return found

    def within_rate(self, producer: Producer, n: int) -> None:
        """A fixed one-second window per producer across every worker (one round trip);
        a refused request takes its entries back out of the window."""
        if n > producer.rate:
            raise Refused(413, f"{n} entries are more than this producer's rate of "
                               f"{producer.rate} per second: send smaller batches")
        key = self.keys.producer_rate(producer.name, int(time.time()))
        pipe = self.r.pipeline(transaction=False)
        pipe.incrby(key, n)
        pipe.expire(key, 2)
        count, _ = pipe.execute()
        if count > producer.rate:
            self.r.decrby(key, n)
            raise Refused(429, f"over this producer's rate of {producer.rate} entries per "
                               "second", {"Retry-After": str(RETRY_AFTER_S)})

    def used(self, name: str) -> None:
        """The access log's `producer_used`, at most once per minute per producer (and per
        worker, before asking Redis)."""
        if self._used.first(name):
            self.access_log.producer_used(name)

    def post(self, kind: str) -> Response:
        if kind == "openapi.json":  # its route takes GET only
            raise Refused(405, "use GET", {"Allow": "GET, HEAD"})
        if kind not in _KINDS:
            raise Refused(404, f"unknown kind: {kind[:64]}: one of {', '.join(STREAM_KINDS)}")
        if request.method != "POST":
            raise Refused(405, "use POST", {"Allow": "POST"})
        producer = self.producer()
        if kind not in producer.kinds:
            raise Refused(403, f"this producer may not write {kind}")
        if request.mimetype != "application/json":
            raise Refused(415, "the body must be application/json")
        entries = parse(read_body(self.settings.api_max_bytes))
        if len(entries) > self.settings.api_max_entries:
            raise Refused(413, f"{len(entries)} entries are over the limit of "
                               f"{self.settings.api_max_entries} per request")
        try:
            self.within_rate(producer, len(entries))
            self.used(producer.name)
            results = self.intake.submit(producer, kind, entries)
        except (redis.RedisError, OSError):
            log.exception("gateway: Redis unavailable")
            raise Refused(503, "the store is unavailable", {"Retry-After": "5"}) from None
        return answer(200, {"results": results})


def register_gateway_routes(server: Flask, gateway: Gateway) -> None:
    """`POST /api/v1/<kind>`, `GET /api/v1/openapi.json`, and JSON answers for anything else
    under /api/v1/ (unknown paths, wrong methods, errors)."""
    bp = Blueprint("gateway", __name__, url_prefix=PREFIX.rstrip("/"))
    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]  # all answered here, in JSON

    @bp.route("/openapi.json", methods=["GET"])
    def openapi() -> Response:
        return answer(200, document(gateway.topo, gateway.settings))

    @bp.route("/<kind>", methods=methods)
    def post(kind: str) -> Response:
        return gateway.post(kind)

    @bp.route("/", methods=methods)
    @bp.route("/<path:rest>", methods=methods)
    def unknown(rest: str = "") -> Response:
        raise Refused(404, "unknown path: POST /api/v1/<kind> or GET /api/v1/openapi.json")

    @bp.errorhandler(Refused)
    def refused(e: Refused) -> Response:
        return answer(e.status, {"error": e.reason}, e.headers)

    @bp.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        return answer(e.code or 400, {"error": e.name.lower()})

    @bp.errorhandler(Exception)
    def unexpected(e: Exception) -> Response:
        log.exception("gateway: unexpected error on %s", request.path)
        return answer(500, {"error": "server error"})

    server.register_blueprint(bp)
