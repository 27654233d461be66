"""Portal embeds (/embed/<widget>) against the production stack: gunicorn, the aggregator and
the simulator as processes, a Redis server of this module's own. Plain HTTP for the tokens,
headers, figures and sizes; one Chromium test of an embed framed by a page of another origin."""

from __future__ import annotations

import functools
import gzip
import html
import json
import re
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from selenium.webdriver.common.by import By

from dashboard import cli, embed
from dashboard.devkit.browser import chromium
from dashboard.devkit.stack import Stack, copy_registry, free_port
from dashboard.runtime import Runtime
from dashboard.settings import Settings
from datasources.accesslog import AccessLog
from datasources.keys import Keys
from datasources.registry import make_engine
from layouts import viewmodel
from tests.helpers import wait_until as wait_for

PORTAL = "https://portal.example.gov.cn"
CITY, DISTRICT, OTHER = "610200", "610204", "610202"
HOSTILE = '<img src=x onerror="window.__xss=1">王益区<script>window.__xss=2</script>'
WIDGETS = ("events", "trend", "closure", "coverage", "cameras", "petitions", "map")
# the figures (snapshot paths) each widget must carry
FIGURES = {
    "events": {"events.reported", "events.resolved", "events.open", "events.overdue",
               "events.urgent", "events.escalated"},
    "trend": {"hourly.today", "hourly.yesterday", "trend.today_total",
              "trend.yesterday_same_hours", "trend.yesterday_total"},
    "closure": {"events.resolution_rate", "events.satisfaction_rate", "events.reported",
                "events.resolved", *(f"closed_at_level.{lv}" for lv in
                                     ("village", "town", "district", "city"))},
    "coverage": {"grids.coverage", "grids.full_coverage", "grids.patrolled_today",
                 "grids.total", "grids.workers_on_duty"},
    "cameras": {"cameras.online_rate", "cameras.online", "cameras.offline", "cameras.fault",
                "cameras.total", *(f"cameras_by_kind.{k}" for k in
                                   ("dome", "face", "checkpoint", "smart", "integrated"))},
    "petitions": {"petitions.today", "petitions.group", "petitions.skip_level", "petitions_7d",
                  "petitions_30d", "petitions_30d.total"},
}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors ")


# -- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """Another origin: a tiny static server whose pages frame the embeds."""
    root = tmp_path_factory.mktemp("portal")
    srv = ThreadingHTTPServer(("127.0.0.1", free_port()),
                              partial(SimpleHTTPRequestHandler, directory=str(root)))
    srv.RequestHandlerClass.log_message = lambda *a: None
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], root
    srv.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db, portal):
    d = tmp_path_factory.mktemp("embedstack")
    db_url, db_path = copy_registry(demo_db, d)
    with sqlite3.connect(db_path) as con:  # a hostile name in the registry
        con.execute("UPDATE centres SET name = ? WHERE code = ?", (HOSTILE, OTHER))
    s = Stack(d, db_url, prefix="emb", stale_after_s=5)
    s.env.update(PINGAN_EMBED_ORIGINS=f"{PORTAL} http://127.0.0.1:{portal[0]}",
                 PINGAN_AUTH="off")
    s.start_redis()
    s.run("simulate", "--events", "9000")  # history: 4,520 camera heartbeats + events
    s.start_aggregator()
    s.start_web(workers=2)  # a revocation must reach every worker
    yield s
    s.close()


@pytest.fixture(scope="module")
def settings(stack) -> Settings:
    return Settings.from_env(data_dir=stack.dir, redis_url=stack.env["REDIS_URL"],
                             database_url=stack.db_url, key_prefix=stack.prefix)


@pytest.fixture(scope="module")
def rt(settings, stack):
    runtime = Runtime(settings)
    wait_for(lambda: runtime.read_model.snapshot(CITY)["events"]["reported"] > 0, 20)
    # drained: the version stops moving
    wait_for(lambda: _same_version_for(runtime, 1.0), 20)
    return runtime


@pytest.fixture(scope="module")
def live(stack):
    """Live traffic from here on (the figure-equality tests run before it)."""
    stack.start("live", stack.pingan("simulate", "--rate", "40", "--no-cameras", "--seed", "9"))
    yield
    stack.stop("live")


# -- helpers ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _engine(url: str):
    return make_engine(url)


def mint(settings: Settings, widget: str, code: str, ttl_s: int, now: float | None = None) -> str:
    """A token recorded in the stack's registry, as `pingan embed-url` makes them."""
    return embed.issue(_engine(settings.effective_database_url), settings, widget, code, ttl_s,
                       now=now).token



def _same_version_for(runtime: Runtime, seconds: float) -> bool:
    v = runtime.read_model.snapshot(CITY)["version"]
    time.sleep(seconds)
    return runtime.read_model.snapshot(CITY)["version"] == v


def fetch(url: str) -> tuple[int, dict, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def url(stack, widget: str, token: str | None, **params: str) -> str:
    q = urlencode({**({"token": token} if token else {}), **params})
    return f"{stack.url}/embed/{widget}" + (f"?{q}" if q else "")


def page_figures(body: str) -> dict[str, str]:
    return {p: html.unescape(v) for p, v in
            re.findall(r'data-figure="([^"]*)" data-value="([^"]*)"', body)}


def page_version(body: str) -> int:
    return int(re.search(r'data-version="(\d+)"', body).group(1))


def as_raw(v) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def expected(path: str, vm: dict):
    """A widget's figure, straight from the wall's view model (not from layouts/embed.py)."""
    if path in vm["figures"]:
        return vm["figures"][path]
    head, _, rest = path.partition(".")
    today, yday = vm["hourly"]["today"], vm["hourly"]["yesterday"]
    simple = {
        "hourly.today": today, "hourly.yesterday": yday,
        "trend.today_total": sum(v for v in today if v is not None),
        "trend.yesterday_same_hours": sum(y for v, y in zip(today, yday, strict=True) if v is not None),
        "trend.yesterday_total": sum(yday),
        "petitions_7d": [d["total"] for d in vm["petitions_7d"]],
        "petitions_30d": [d["total"] for d in vm["petitions_30d"]],
        "petitions_30d.total": sum(d["total"] for d in vm["petitions_30d"]),
    }
    if path in simple:
        return simple[path]
    if head in ("closed_at_level", "cameras_by_kind"):
        return vm[head][rest]
    if head == "regions":
        return next(c["index"] for c in vm["children"] if c["code"] == rest)
    raise KeyError(path)


def assert_embed_headers(headers: dict, portal_port: int, cached: bool = False) -> None:
    assert headers["Content-Security-Policy"] == \
        CSP + f"{PORTAL} http://127.0.0.1:{portal_port}", headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    # figures are never cached; the one script and style every widget shares are
    assert headers["Cache-Control"] == ("public, max-age=3600" if cached else "no-store")
    assert "X-Frame-Options" not in headers


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def assert_safe_markup(body: str) -> None:
    """No link, no inline script or handler, no style attribute, nothing loaded from elsewhere."""
    parser = _Tags()
    parser.feed(body)
    for tag, attrs in parser.tags:
        assert tag not in ("a", "iframe", "object", "embed", "form", "img"), tag
        assert "style" not in attrs, (tag, attrs)
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        if tag == "script":
            assert attrs.get("src", "").startswith("/embed/static/"), attrs
        for key in ("href", "src", "xlink:href"):
            if key in attrs:
                assert attrs[key].startswith(("/embed/static/", "data:")), attrs
    assert "Traceback" not in body


# -- refusals ---------------------------------------------------------------------------------

def test_embed001_every_refusal_names_its_case(stack, settings, portal):
    ok = mint(settings, "events", DISTRICT, 3600)
    payload, sig = ok.rsplit(".", 1)
    flip = {"A": "B"}
    expired = mint(settings, "events", DISTRICT, 3600, now=time.time() - 7200)
    other_secret = mint(Settings.from_env(data_dir=stack.dir, secret_key="x" * 64),
                        "events", DISTRICT, 3600)
    cases = [
        (url(stack, "events", None), 403, "missing", "缺少访问令牌"),
        (url(stack, "events", None, lang="en"), 403, "missing", "The access token is missing"),
        (url(stack, "events", expired), 403, "expired", "过期"),
        (url(stack, "events", expired, lang="en"), 403, "expired", "This embed link expired at"),
        (url(stack, "events", payload[:-3] + flip.get(payload[-3], "A") + payload[-2:] + "." + sig),
         403, "tampered", "访问令牌无效"),
        (url(stack, "events", payload + "." + sig[:9] + flip.get(sig[9], "A") + sig[10:], lang="en"),
         403, "tampered", "its signature does not match"),
        (url(stack, "events", other_secret), 403, "tampered", "访问令牌无效"),
        (url(stack, "trend", ok), 403, "wrong_widget", "该访问令牌不能用于组件“trend”"),
        (url(stack, "events", ok, centre=OTHER), 403, "out_of_scope",
         f"中心 {OTHER} 不在该链接的授权范围内"),
        (url(stack, "events", ok, centre=CITY, lang="en"), 403, "out_of_scope",
         f"Centre {CITY} is outside the scope of this link"),
        (url(stack, "events", ok, centre="<b>x</b>"), 403, "out_of_scope", "&lt;b&gt;x&lt;/b&gt;"),
        (url(stack, "video", ok), 404, "unknown_widget", "未知组件“video”"),
        (url(stack, "<script>", ok), 404, "unknown_widget", "&lt;script&gt;"),
        (f"{stack.url}/embed/events/x/y", 404, "unknown_widget", "未知组件"),
        (f"{stack.url}/embed/", 404, "unknown_widget", "未知组件"),
        (url(stack, "events", ok, theme="neon"), 400, "bad_param", "参数 theme 的值无效"),
        (url(stack, "events", ok, lang="fr"), 400, "bad_param", "参数 lang 的值无效"),
        (url(stack, "map", mint(settings, "map", CITY, 60), indicator="x", lang="en"), 400,
         "bad_param", "Bad value for the parameter indicator"),
    ]
    for u, status, reason, text in cases:
        got, headers, body = fetch(u)
        assert (got, reason) == (status, re.search(r'data-reason="([^"]+)"', body).group(1)), u
        assert text in body, (u, body[-600:])
        assert_embed_headers(headers, portal[0])
        assert_safe_markup(body)
        assert "<script" not in body and "data-token" not in body  # a refusal carries nothing
    # the same checks guard the data endpoint, as JSON
    got, headers, body = fetch(url(stack, "events", expired).replace("/events?", "/events/data?"))
    assert got == 403 and json.loads(body)["error"] == "expired"
    assert_embed_headers(headers, portal[0])
    got, _, body = fetch(url(stack, "events", ok, centre=OTHER).replace("/events?", "/events/data?"))
    assert got == 403 and json.loads(body)["error"] == "out_of_scope"


def test_embed002_headers_on_pages_data_and_static_files(stack, settings, portal):
    tok = mint(settings, "cameras", CITY, 600)
    for u in (url(stack, "cameras", tok), url(stack, "cameras", tok, theme="light"),
              url(stack, "cameras", tok).replace("/cameras?", "/cameras/data?"),
              f"{stack.url}/embed/static/embed.js", f"{stack.url}/embed/static/embed.css",
              f"{stack.url}/embed/static/missing.js"):
        status, headers, body = fetch(u)
        assert status == (404 if "missing" in u else 200), u
        assert_embed_headers(headers, portal[0], cached="/static/" in u and "missing" not in u)
        assert "Traceback" not in body
    status, headers, _ = fetch(f"{stack.url}/embed/static/embed.js")
    assert "javascript" in headers["Content-Type"]


# -- figures, sizes, markup -------------------------------------------------------------------

def test_embed003_each_widget_shows_the_wall_figures_small_and_clean(stack, settings, rt, topo):
    sizes = {}
    cameras = set(topo.camera)
    for widget in WIDGETS:
        tok = mint(settings, widget, CITY, 600)
        for centre in (CITY, DISTRICT):
            for _attempt in range(5):  # the page and our view model of the same version
                status, headers, body = fetch(url(stack, widget, tok, centre=centre))
                assert status == 200, body[-500:]
                vm = viewmodel.build(rt.read_model.snapshot(centre), rt.topology,
                                     int(time.time() * 1000))
                figures = page_figures(body)
                want = {p: as_raw(expected(p, vm)) for p in figures}
                if page_version(body) == vm["version"] and figures == want:
                    break
                time.sleep(0.5)
            assert page_version(body) == vm["version"]
            assert figures == want, widget
            if widget == "map":
                children = {c["code"] for c in vm["children"]}
                assert {p.split(".", 1)[1] for p in figures if p.startswith("regions.")} == children
                assert len(re.findall(r'<path class="region"', body)) == len(children)
                assert body.count("<title data-k=\"region.") == len(children)
            else:
                assert set(figures) == FIGURES[widget], widget
            assert_safe_markup(body)
            assert not any(c in body for c in cameras), "a camera id in an embed"
            assert "meet.example" not in body  # no video conference
            data_status, _, data_body = fetch(
                url(stack, widget, tok, centre=centre).replace(f"/{widget}?", f"/{widget}/data?"))
            assert data_status == 200
            data = json.loads(data_body)
            assert {k: as_raw(v) for k, v in data["figures"].items()} == want or \
                data["version"] != vm["version"]
            sizes[(widget, centre)] = (len(body.encode()), len(gzip.compress(body.encode())),
                                       len(data_body.encode()))
            if widget != "map":
                assert len(body.encode()) < 30_000, (widget, centre)
            else:
                assert len(body.encode()) < 60_000, (widget, centre)
    print("\nembed sizes (page bytes, page gzip bytes, /data bytes):")
    for (widget, centre), (b, gz, d) in sizes.items():
        print(f"  {widget:10s} {centre:10s} page {b:6d}  gzip {gz:6d}  data {d:5d}")


def test_embed004_figures_equal_pingan_snapshot(stack, settings, rt):
    """`pingan snapshot CODE --json` (the CLI, its own process) and the embed agree."""
    tok = mint(settings, "events", CITY, 600)
    for _attempt in range(5):
        snap = json.loads(subprocess.run(stack.pingan("snapshot", DISTRICT, "--json"),
                                         env=stack.env, capture_output=True, check=True).stdout)
        _, _, body = fetch(url(stack, "events", tok, centre=DISTRICT))
        if page_version(body) == snap["version"]:
            break
    figures = page_figures(body)
    assert page_version(body) == snap["version"]
    for key in ("reported", "resolved", "open", "overdue", "urgent", "escalated"):
        assert figures[f"events.{key}"] == str(snap["events"][key])
    assert int(figures["events.reported"]) > 0


def test_embed005_hostile_names_stay_text(stack, settings):
    tok = mint(settings, "map", CITY, 600)
    for u in (url(stack, "map", tok), url(stack, "map", tok, centre=OTHER)):
        status, _, body = fetch(u)
        assert status == 200
        assert "<script>window.__xss" not in body and "<img src=x" not in body
        assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in body
        assert_safe_markup(body)


def test_embed006_cli_mints_a_working_url_and_refuses_bad_input(stack, topo):
    out = subprocess.run(stack.pingan("embed-url", "coverage", DISTRICT, "--ttl", "30m",
                                      "--base-url", stack.url, "--lang", "en", "--theme", "light"),
                         env=stack.env, capture_output=True, text=True, check=True)
    minted = out.stdout.strip()
    assert minted.startswith(f"{stack.url}/embed/coverage?token=")
    assert re.match(r"id [A-Za-z0-9_-]{12,} expires 20\d\d-", out.stderr), out.stderr
    status, _, body = fetch(minted)
    assert status == 200 and "Grid patrol coverage" in body and 'class="theme-light"' in body
    status, _, body = fetch(minted + f"&centre={topo.children[DISTRICT][0]}")
    assert status == 200 and topo.centres[topo.children[DISTRICT][0]].name in body
    status, _, _ = fetch(minted + f"&centre={CITY}")
    assert status == 403
    runner = CliRunner()  # the refusals in-process (one process start is slow enough)
    for args, message in ((("events", CITY, "--ttl", "400d"), "longer than the longest allowed"),
                          (("events", CITY, "--ttl", "soon"), "bad duration"),
                          (("video", CITY), "unknown widget 'video'"),
                          (("events", "999999"), "unknown centre '999999'")):
        r = runner.invoke(cli.main, ["embed-url", *args], env=stack.env)
        assert r.exit_code == 2 and message in r.output, (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception


def _refusals(urls: list[str]) -> list[str | None]:
    """Fetch the URLs at once (so that both workers answer); each one's refusal reason or None."""
    got: list[str | None] = [None] * len(urls)

    def one(i: int) -> None:
        status, _, body = fetch(urls[i])
        got[i] = json.loads(body).get("error") if status != 200 else None

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(15)
    return got


def test_embed009_revoked_on_every_worker_within_seconds(stack, settings):
    runner = CliRunner()
    r = runner.invoke(cli.main, ["embed-url", "events", DISTRICT, "--ttl", "10m", "--json",
                                 "--note", "门户首页 <b>", "--base-url", stack.url], env=stack.env)
    assert r.exit_code == 0, r.output
    minted = json.loads(r.stdout)  # only JSON on stdout
    assert set(minted) == {"url", "id", "expires"} and minted["url"].startswith(stack.url)
    data_url = minted["url"].replace("/events?", "/events/data?")
    assert _refusals([data_url] * 12) == [None] * 12  # both workers have it as active
    listed = runner.invoke(cli.main, ["embeds", "list", "--json"], env=stack.env)
    rows = {row["id"]: row for row in json.loads(listed.stdout)}
    assert rows[minted["id"]]["state"] == "active" and rows[minted["id"]]["note"] == "门户首页 <b>"
    assert rows[minted["id"]]["expires"] == minted["expires"]

    version = stack.redis().get(Keys(stack.prefix).registry_version())
    r = runner.invoke(cli.main, ["embeds", "revoke", minted["id"]], env=stack.env)
    assert r.exit_code == 0 and r.stdout == "" and "revoked" in r.stderr, r.output
    revoked_at = time.monotonic()
    assert stack.redis().get(Keys(stack.prefix).registry_version()) != version
    wait_for(lambda: _refusals([data_url] * 12) == ["revoked"] * 12, 6, every=0.25)
    assert time.monotonic() - revoked_at < 5
    status, _, body = fetch(minted["url"] + "&lang=en")
    assert status == 403 and 'data-reason="revoked"' in body and "has been revoked" in body

    listed = runner.invoke(cli.main, ["embeds", "list", "--all", "--json"], env=stack.env)
    assert {r["id"]: r["state"] for r in json.loads(listed.stdout)}[minted["id"]] == "revoked"
    active = json.loads(runner.invoke(cli.main, ["embeds", "list", "--json"], env=stack.env).stdout)
    assert minted["id"] not in {r["id"] for r in active}
    log = [e for e in AccessLog(stack.redis(), Keys(stack.prefix), 1).entries()
           if e.get("id") == minted["id"]]
    assert [(e["action"], e["widget"], e["centre"]) for e in log] == \
        [("embed_minted", "events", DISTRICT), ("embed_revoked", "events", DISTRICT)]
    assert all(e["who"].startswith("cli:") for e in log) and log[0]["expires"] == minted["expires"]

    # revoking again changes nothing; an unknown or odd id is a clear error
    again = runner.invoke(cli.main, ["embeds", "revoke", minted["id"]], env=stack.env)
    assert again.exit_code == 0 and "already revoked" in again.stderr
    for odd in ("nope", "' OR 1=1 --", "x" * 5000, "../../etc", "ab\x1bcdefghijklmn"):
        r = runner.invoke(cli.main, ["embeds", "revoke", odd], env=stack.env)
        assert r.exit_code == 1 and "unknown embed id" in r.stderr and r.stdout == "", r.output
    # huge or garbled tokens: refused before any work
    for bad in ("e" * 3000, minted["url"].split("token=")[1] + "\x00"):
        assert _refusals([url(stack, "events", bad).replace("/events?", "/events/data?")]) == \
            ["tampered"], bad[:80]
    # a signed token whose id is not on record (another registry, the same key): refused
    stray = embed.mint(settings, "events", DISTRICT, 600).token
    assert _refusals([url(stack, "events", stray).replace("/events?", "/events/data?")]) == \
        ["revoked"]
    for args, message in ((("--note", "a\nb"), "control characters"),
                          (("--note", "x" * 129), "at most 128")):
        r = runner.invoke(cli.main, ["embed-url", "events", DISTRICT, *args], env=stack.env)
        assert r.exit_code == 2 and message in r.output, r.output


# -- live -------------------------------------------------------------------------------------

def test_embed007_data_changes_while_the_simulator_runs(stack, settings, live):
    tok = mint(settings, "events", CITY, 600)
    data_url = url(stack, "events", tok).replace("/events?", "/events/data?")
    first = json.loads(fetch(data_url)[2])
    assert first["stale"] is False
    changed = wait_for(lambda: (lambda d: d if d["version"] != first["version"]
                                and d["figures"] != first["figures"] else None)(
        json.loads(fetch(data_url)[2])), 15, every=0.5)
    assert changed["figures"]["events.reported"] >= first["figures"]["events.reported"]
    # a client that has the current version gets only the freshness
    same = json.loads(fetch(f"{data_url}&have={changed['version']}")[2])
    if same["version"] == changed["version"]:
        assert set(same) == {"widget", "centre", "version", "stale", "text"}


def test_embed008_framed_by_an_allowed_portal_live_without_csp_violations(stack, settings,
                                                                          portal, live):
    port, root = portal
    src = url(stack, "events", mint(settings, "events", CITY, 600))
    (root / "portal.html").write_text(
        f'<!doctype html><meta charset="utf-8"><title>portal</title>'
        f'<iframe id="w" src="{html.escape(src)}" width="480" height="300"></iframe>')
    d = chromium(1024, 768)
    try:
        d.get(f"http://127.0.0.1:{port}/portal.html")
        d.switch_to.frame("w")
        wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "[data-embed]"), 15)
        text = d.find_element(By.TAG_NAME, "body").text
        assert "今日上报" in text and "铜川" in text
        before = d.execute_script(
            "return document.querySelector('[data-figure=\"events.reported\"]').textContent")
        wait_for(lambda: d.execute_script(
            "var e = document.querySelector('[data-figure=\"events.reported\"]');"
            "return e.textContent !== arguments[0] && "
            "document.querySelector('[data-embed]').getAttribute('data-updates');", before), 25)
        assert d.execute_script(
            "return document.querySelector('[data-embed]').getAttribute('data-stale')") == "0"
        d.switch_to.default_content()
        logs = d.get_log("browser")
        assert not [e for e in logs if "Content Security Policy" in e["message"]
                    or "Refused" in e["message"]], logs
        # the same page on an origin that is not configured: the browser refuses the frame
        d.get(f"http://localhost:{port}/portal.html")
        time.sleep(1.5)
        d.switch_to.frame("w")
        assert not d.find_elements(By.CSS_SELECTOR, "[data-embed]")
        d.switch_to.default_content()
        assert any("frame-ancestors" in e["message"] for e in d.get_log("browser"))
    finally:
        d.quit()
