"""The access modes of the app, in process (Flask's WSGI test client on the real app, real
Redis and SQL): demo, off, the optional SSO proxy header, the secret key file."""

from __future__ import annotations

import json
import stat

import pytest

from dashboard.app import SERVICES, create_app
from dashboard.devkit.stack import copy_registry
from dashboard.settings import Settings
from datasources.registry import make_engine
from datasources.users import add_user

CITY, DISTRICT = "610200", "610202"


@pytest.fixture(scope="module")
def registry(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("authmodes")
    url, _ = copy_registry(demo_db, d)
    engine = make_engine(url)
    add_user(engine, "sso-user", "sso-user-password", "leader", DISTRICT)
    engine.dispose()
    return d, url


MADE: list = []  # the apps of the test running, whose threads are stopped after it


@pytest.fixture(autouse=True)
def _stop_services():
    yield
    while MADE:
        svc = MADE.pop().server.config[SERVICES]
        svc.watcher.stop()
        svc.signal_hub.stop(wait_s=0)


def app_for(registry, redis_url, prefix, **kw):
    d, url = registry
    s = Settings.from_env(data_dir=d, database_url=url, redis_url=redis_url, key_prefix=prefix, **kw)
    app = create_app(s)
    MADE.append(app)
    return app.server.test_client()


def route_post(client, search: str, headers: dict | None = None):
    body = {"output": "..app-screen.children...app-tour.interval...app-tour.disabled..."
                      "live-poll.disabled...live-poll-version.data...live-poll-vm.data@"
                      "28c5a054fc0682ec1c4cec33f4312cac050bcb5cc9ad250b96b54ad0baef1eea..",
            "outputs": [{"id": i, "property": p} for i, p in (
                ("app-screen", "children"), ("app-tour", "interval"), ("app-tour", "disabled"),
                ("live-poll", "disabled"), ("live-poll-version", "data"), ("live-poll-vm", "data"))],
            "inputs": [{"id": "app-url", "property": "pathname", "value": "/"},
                       {"id": "app-url", "property": "search", "value": search}],
            "state": [{"id": "app-screen-shown", "property": "data", "value": None}],  # the route's State
            "changedPropIds": ["app-url.search"]}
    return client.post("/_dash-update-component", data=json.dumps(body),
                       content_type="application/json", headers=headers or {})


def test_mode001_demo_signs_everyone_in_as_the_labelled_demo_user(registry, redis_url, prefix):
    c = app_for(registry, redis_url, prefix, auth="demo")
    assert c.get("/").status_code == 200
    assert c.get("/login").status_code == 303  # nothing to sign in to
    resp = route_post(c, f"?centre={DISTRICT}")
    assert resp.status_code == 200
    text = resp.get_data(as_text=True)
    assert "viewer-chip-demo" in text and "演示账号" in json.loads(text)["response"]["app-screen"]["children"].__repr__()
    assert c.get(f"/live/version?centre={CITY}").status_code == 200


def test_mode002_off_is_open(registry, redis_url, prefix):
    c = app_for(registry, redis_url, prefix, auth="off")
    assert c.get(f"/live/version?centre={CITY}").status_code == 200
    assert "viewer-chip" not in route_post(c, f"?centre={CITY}").get_data(as_text=True)


def test_mode003_sso_header_only_from_the_trusted_proxy(registry, redis_url, prefix):
    c = app_for(registry, redis_url, prefix, trusted_user_header="X-Remote-User")
    h = {"X-Remote-User": "sso-user"}
    ok = c.get(f"/live/version?centre={DISTRICT}", headers=h, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert ok.status_code == 200
    assert c.get(f"/live/version?centre={CITY}", headers=h,
                 environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 403  # scope still holds
    assert c.get(f"/live/version?centre={DISTRICT}", headers=h,
                 environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 401  # not the proxy
    assert c.get(f"/live/version?centre={DISTRICT}", headers={"X-Remote-User": "nobody"},
                 environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 401


def test_mode004_secret_key_file_is_private_and_stable(registry, redis_url, prefix):
    d, _ = registry
    app_for(registry, redis_url, prefix)
    key = d / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first = key.read_text()
    app_for(registry, redis_url, prefix)
    assert key.read_text() == first and len(first) >= 64


def test_mode005_bad_auth_mode_is_refused(monkeypatch):
    monkeypatch.setenv("PINGAN_AUTH", "maybe")
    with pytest.raises(ValueError, match="PINGAN_AUTH"):
        Settings.from_env()
