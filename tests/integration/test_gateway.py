"""The producer gateway (POST /api/v1/<kind>) on the real server: gunicorn with PINGAN_AUTH=off
(the API still wants its token), a Redis of the module's own, producers in the registry, and
the aggregator run in-process to see that accepted entries are applied, and counted once.
Then schemathesis fuzzes the OpenAPI document with a valid token: no 5xx, and nothing it got
accepted is dead-lettered by the aggregator."""

from __future__ import annotations

import json
import random
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from dashboard.devkit.stack import Stack, copy_registry
from dashboard.runtime import Runtime
from dashboard.settings import Settings
from datasources import producers
from datasources.accesslog import AccessLog
from datasources.aggregator import Aggregator
from datasources.keys import Keys

DISTRICT, OTHER = "610202", "610203"
VILLAGE = "610202001001"
MAX_BYTES, MAX_ENTRIES = 64 * 1024, 50


@pytest.fixture(scope="module")
def gw(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("gatewaystack")
    db_url, _ = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix="gw")
    s.env.update(PINGAN_AUTH="off", PINGAN_API_MAX_BYTES=str(MAX_BYTES),
                 PINGAN_API_MAX_ENTRIES=str(MAX_ENTRIES))
    s.start_redis()
    s.start_web()
    yield s
    s.close()


@pytest.fixture(scope="module")
def rt(gw) -> Runtime:
    return Runtime(Settings.from_env(data_dir=gw.dir, redis_url=gw.env["REDIS_URL"],
                                     database_url=gw.db_url, key_prefix=gw.prefix))


@pytest.fixture(scope="module")
def tokens(rt) -> dict[str, str]:
    e = rt.engine
    out = {
        "city": producers.add(e, "city", ["events", "patrols", "cameras", "petitions"],
                              "610200", 1000),
        "hotline": producers.add(e, "hotline", ["events"], DISTRICT, 1000),
        "slow": producers.add(e, "slow", ["events"], DISTRICT, 5),
        "gone": producers.add(e, "gone", ["events"], DISTRICT, 1000),
    }
    assert producers.revoke(e, "gone")
    return out


@pytest.fixture(scope="module")
def http():
    with requests.Session() as s:
        yield s


def post(http, gw, kind: str, body, token: str | None = None, **headers):
    h = {"Content-Type": "application/json", **headers}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    data = body if isinstance(body, bytes | str) or body is None else json.dumps(body)
    return http.post(f"{gw.url}/api/v1/{kind}", data=data, headers=h, timeout=20)


def event(eid: str, centre: str = VILLAGE, **over) -> dict:
    ts = int(time.time() * 1000) - 5_000
    e = {"v": 1, "ts": ts, "src": "evil", "eid": eid, "status": "reported", "centre": centre,
         "category": "dispute", "channel": "hotline_12345", "urgency": "normal",
         "due": ts + 86_400_000}
    e.update(over)
    return e


def aggregate(rt) -> tuple[int, int]:
    """Apply everything pending; (applied, dead) of this run, after checking that nothing was
    ever dead-lettered (every entry of this module came through the gateway)."""
    totals = Aggregator(rt.redis, rt.topology, rt.settings.pipeline).run(until_idle=True)
    keys = Keys(rt.settings.key_prefix)
    dead = sum(int(rt.redis.hget(keys.meta(s), "dead") or 0) for s in rt.topology.shards)
    assert dead == 0, [rt.redis.xrange(keys.dead(s)) for s in rt.topology.shards]
    return totals.applied, totals.dead


def reported(rt, code: str) -> int:
    return rt.read_model.snapshot(code)["events"]["reported"]


def is_json_error(resp, status: int) -> dict:
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"error"} and body["error"]
    assert "Traceback" not in resp.text
    return body


# -- tests ----------------------------------------------------------------------------------

def test_openapi_document_without_token(gw, http):
    resp = http.get(gw.url + "/api/v1/openapi.json", timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    doc = resp.json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {f"/api/v1/{k}" for k in
                                 ("events", "patrols", "cameras", "petitions")}
    schemas = doc["components"]["schemas"]
    assert "dispute" in schemas["event_reported"]["properties"]["category"]["enum"]
    assert schemas["event_escalated"]["required"][-1] == "to"
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    ops = doc["paths"]["/api/v1/events"]["post"]
    assert {"200", "401", "403", "413", "415", "429"} <= set(ops["responses"])
    assert ops["requestBody"]["content"]["application/json"]["schema"]["maxItems"] == MAX_ENTRIES


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Bearer pgp_" + "A" * 43,
    "Bearer ' OR 1=1 --", "Bearer pgp_\u00e9\u00e9", "Bearer " + "pgp_" + "x" * 6000])
def test_no_or_bad_token_is_401_even_with_auth_off(gw, http, tokens, header):
    h = {} if header is None else {"Authorization": header}
    resp = post(http, gw, "events", [event("E-401")], **h)
    body = is_json_error(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "token" in body["error"]


def test_revoked_token_and_wrong_kind(gw, http, tokens):
    is_json_error(post(http, gw, "events", [event("E-1")], tokens["gone"]), 401)
    body = is_json_error(post(http, gw, "cameras", [], tokens["hotline"]), 403)
    assert "cameras" in body["error"]


def test_unknown_kind_path_and_method(gw, http, tokens):
    for kind in ("handin", "vc", "dead", "events%00", "..%2Fmeta"):
        is_json_error(post(http, gw, kind, [], tokens["city"]), 404)
    is_json_error(http.get(gw.url + "/api/v1/events/x/y", timeout=10), 404)
    is_json_error(http.get(gw.url + "/api/v1/", timeout=10), 404)
    resp = http.get(gw.url + "/api/v1/events", timeout=10)
    is_json_error(resp, 405)
    assert resp.headers["Allow"] == "POST"
    is_json_error(http.delete(gw.url + "/api/v1/events", timeout=10), 405)
    is_json_error(http.options(gw.url + "/api/v1/events", timeout=10), 405)
    is_json_error(http.post(gw.url + "/api/v1/openapi.json", timeout=10), 405)


def test_results_in_order_scope_src_and_applied(gw, http, tokens, rt):
    before = reported(rt, DISTRICT)
    text = '王益区 "引号" \\ 反斜杠 <b>&amp;</b> \'; DROP TABLE 😀𠀀'
    body = [event("E-ok-1", summary=text), event("E-out", centre="610203001001"),
            event("E-bad", category="x"),
            "not an object", event("E-ok-2", src="pingan-sim"), event("E-float", due=1.5),
            event("E\u0000"), event("E-old", ts=1_000)]
    # a cross-site Origin is no matter to a bearer-token API
    resp = post(http, gw, "events", body, tokens["hotline"], Origin="https://evil.example")
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [r["ok"] for r in results] == [True, False, False, False, True, False, False, False]
    errors = [r.get("error", "") for r in results]
    assert errors[1] == "out of scope: centre 610203001001 is not under 610202"
    assert errors[2] == "bad category: 'x'"
    assert errors[3] == "entry must be a JSON object, not a string"
    assert errors[5] == "bad value type: 'due' is a fraction (a string or an integer is expected)"
    assert errors[6].startswith("control characters") and errors[7].startswith("ts out of range")
    stream = Keys(gw.prefix).stream(DISTRICT, "events")
    for r, sent in ((results[0], body[0]), (results[4], body[4])):
        [(_id, fields)] = rt.redis.xrange(stream, r["id"], r["id"])
        expected = {k: str(v) for k, v in sent.items()} | {"src": "hotline"}
        assert [(k.decode(), v.decode()) for k, v in fields.items()] == list(expected.items())
    assert aggregate(rt) == (2, 0)
    assert reported(rt, DISTRICT) == before + 2
    log = list(AccessLog(rt.redis, Keys(gw.prefix), 30).entries())
    assert any(e["action"] == "producer_used" and e["who"] == "hotline" for e in log)


def test_same_entry_twice_counts_once(gw, http, tokens, rt):
    before = reported(rt, DISTRICT)
    entry = event("E-dup")
    first = post(http, gw, "events", [entry], tokens["city"]).json()["results"]
    again = post(http, gw, "events", [entry, entry], tokens["city"]).json()["results"]
    assert all(r["ok"] for r in first + again)
    assert len({r["id"] for r in first + again}) == 3
    applied, _dead = aggregate(rt)
    assert applied == 1
    assert reported(rt, DISTRICT) == before + 1


def test_rate_limit(gw, http, tokens, rt):
    # start early in a second: the two posts fall in one window
    while time.time() % 1 > 0.3:
        time.sleep(0.02)
    assert post(http, gw, "events", [event("E-r1"), event("E-r2"), event("E-r3")],
                tokens["slow"]).status_code == 200
    resp = post(http, gw, "events", [event("E-r4"), event("E-r5"), event("E-r6")], tokens["slow"])
    is_json_error(resp, 429)
    assert resp.headers["Retry-After"] == "1"
    # a batch no window could ever take is too large, not "later"
    is_json_error(post(http, gw, "events", [event(f"E-{i}") for i in range(6)], tokens["slow"]),
                  413)
    time.sleep(1.0)
    assert post(http, gw, "events", [event("E-r4")], tokens["slow"]).status_code == 200
    aggregate(rt)


def test_size_limits(gw, http, tokens):
    big = json.dumps([event("E-big", summary="x" * 200)] * 40 + [{"pad": "y" * MAX_BYTES}])
    assert is_json_error(post(http, gw, "events", big, tokens["city"]), 413)
    # chunked (no Content-Length): read no further than the limit
    chunks = (b"[" + b" " * 8192 for _ in range(20))
    resp = http.post(gw.url + "/api/v1/events", data=chunks, timeout=20, headers={
        "Authorization": f"Bearer {tokens['city']}", "Content-Type": "application/json"})
    is_json_error(resp, 413)
    body = is_json_error(post(http, gw, "events", [{}] * (MAX_ENTRIES + 1), tokens["city"]), 413)
    assert str(MAX_ENTRIES) in body["error"]
    # just under both limits is fine (every entry refused on its own)
    ok = post(http, gw, "events", [{}] * MAX_ENTRIES, tokens["city"])
    assert ok.status_code == 200
    assert ok.json()["results"][0] == {"ok": False, "error": "missing field: v"}


@pytest.mark.parametrize("ctype, body, status", [
    ("text/plain", "[]", 415), (None, "[]", 415), ("application/x-www-form-urlencoded", "a=1", 415),
    ("application/json", "", 400), ("application/json", "[{]", 400),
    ("application/json", '{"v": 1}', 400), ("application/json", "null", 400),
    ("application/json", b"[\"\xff\xfe\"]", 400), ("application/json", "[" * 50_000, 400),
    ("application/json", "[" + "9" * 5000 + "]", 400), ("application/json", "NaN", 400),
    ("application/json; charset=utf-8", "[]", 200)])
def test_content_type_and_json(gw, http, tokens, ctype, body, status):
    h = {"Authorization": f"Bearer {tokens['city']}"}
    if ctype:
        h["Content-Type"] = ctype
    resp = http.post(gw.url + "/api/v1/events", data=body, headers=h, timeout=20)
    if status == 200:
        assert resp.status_code == 200 and resp.json() == {"results": []}
    else:
        is_json_error(resp, status)


def fuzz(op, base_url: str, http, auth: dict, checks: list, accepted: list[int]) -> None:
    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case):
        resp = case.call(base_url=base_url, session=http, headers=auth)
        case.validate_response(resp, checks=checks)
        if resp.status_code == 200:
            accepted[0] += sum(r["ok"] for r in resp.json()["results"])

    run()


def test_fuzzed_schema_no_5xx_and_accepted_entries_aggregate(gw, http, tokens, rt):
    """schemathesis on the served document with a valid token (scope: the whole city)."""
    schema = schemathesis.openapi.from_url(gw.url + "/api/v1/openapi.json")
    auth = {"Authorization": f"Bearer {tokens['city']}"}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    accepted = [0]
    t0 = time.monotonic()
    for kind in ("events", "patrols", "cameras", "petitions"):
        op = schema[f"/api/v1/{kind}"]["POST"]
        fuzz(op, gw.url, http, auth, checks, accepted)
        # the document's example: a valid entry of each kind
        example = op.definition.raw["requestBody"]["content"]["application/json"]["example"]
        resp = post(http, gw, kind, example, tokens["city"])
        assert resp.status_code == 200 and resp.json()["results"][0]["ok"], resp.text
        accepted[0] += 1
    assert time.monotonic() - t0 < 15
    applied, dead = aggregate(rt)  # asserts: no dead letter at all
    assert dead == 0 and accepted[0] >= 4


def test_entries_near_every_bound_are_accepted_only_when_they_will_apply(gw, http, tokens, rt):
    """Random entries of every status near the time bounds, with `to`/`by`/`grid` right or
    wrong: whatever the gateway accepts, the aggregator applies (no dead letter)."""
    rng = random.Random(12)
    topo = rt.topology
    codes = [c for c in topo.order if topo.centres[c].level >= 3][::20]
    grids = sorted(topo.grid_centre)[::50]
    late, skew = rt.settings.max_lateness_s * 1000, rt.settings.max_future_skew_s * 1000
    accepted = 0
    for _ in range(3):
        now = int(time.time() * 1000)
        batch = []
        for i in range(MAX_ENTRIES):
            centre = rng.choice(codes)
            status = rng.choice(("reported", "handling", "escalated", "supervised", "evaluated"))
            ts = rng.choice((now - late - 60_000, now - late + 10_000, now - late + 40_000,
                             now - 1000, now + skew - 10_000, now + skew - 40_000))
            e = {"v": 1, "ts": ts, "eid": f"B-{i}-{ts}", "status": status, "centre": centre,
                 "category": rng.choice(topo.vocab.codes("category")),
                 "channel": rng.choice(topo.vocab.codes("event_channel")),
                 "urgency": "normal", "due": ts + 3_600_000, "satisfied": rng.choice((0, 1, 2)),
                 "grid": rng.choice(["", "", rng.choice(grids)])}
            e["to" if status == "escalated" else "by"] = rng.choice(
                [*topo.ancestors(centre), rng.choice(codes)])
            batch.append(e)
        resp = post(http, gw, "events", batch, tokens["city"])
        assert resp.status_code == 200, resp.text
        accepted += sum(r["ok"] for r in resp.json()["results"])
    applied, dead = aggregate(rt)  # asserts: no dead letter at all
    assert accepted > 10 and dead == 0 and applied == accepted


def test_redis_down_is_503_json(gw, http, tokens):
    """The module's last test: its Redis stays down."""
    gw.stop_redis()
    resp = post(http, gw, "events", [event("E-503")], tokens["city"])
    is_json_error(resp, 503)
    assert resp.headers["Retry-After"]
