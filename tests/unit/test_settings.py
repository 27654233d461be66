"""Settings: declared once (variable, parser, default, doc), read from the environment with
clear errors, documented by a generated table, and cut into the data layer's configs."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboard.cli import main
from dashboard.settings import (
    INDEX_WEIGHTS,
    Settings,
    SettingsError,
    describe,
    markdown_table,
    spec,
)
from datasources.config import PipelineConfig, ReadModelConfig, RedisConfig

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "docs" / "operations.md"
BEGIN, END = "<!-- settings:begin -->\n", "<!-- settings:end -->"
FIELDS = dataclasses.fields(Settings)
ENV = {f.name: spec(f).env for f in FIELDS}

# field → (text of its variable, the value it gives)
RULES_FILE = ROOT / "datasources" / "alert_rules.toml"
SAMPLES = {
    "api_max_bytes": ("1048576", 1048576),
    "api_max_entries": ("500", 500),
    "api_rate": ("100", 100),
    "embed_key": ("k" * 40, "k" * 40),
    "embed_key_previous": ("p" * 40, "p" * 40),
    "embed_key_previous_until": ("2026-12-08T00:00+08:00", "2026-12-08T00:00+08:00"),
    "embed_default_ttl": ("30m", "30m"),
    "access_log_days": ("30", 30),
    "data_dir": ("/srv/pingan", Path("/srv/pingan")),
    "redis_url": ("redis://cache.lan:6379/2", "redis://cache.lan:6379/2"),
    "database_url": ("postgresql+psycopg://u:p@db/pingan", "postgresql+psycopg://u:p@db/pingan"),
    "tz": ("Asia/Kolkata", "Asia/Kolkata"),
    "key_prefix": ("city2", "city2"),
    "batch_size": ("250", 250),
    "lease_ms": ("3000", 3000),
    "stream_retention_days": ("14", 14),
    "dead_maxlen": ("500", 500),
    "max_lateness_s": ("3600", 3600),
    "max_future_skew_s": ("60", 60),
    "case_max_age_days": ("30", 30),
    "redis_retries": ("0", 0),
    "redis_cluster": ("YES", "yes"),
    "forwarded_from": ("10.0.0.2 10.0.0.3", ("10.0.0.2", "10.0.0.3")),
    "upper_interval_ms": ("250", 250),
    "hour_bucket_ttl_s": ("7200", 7200),
    "day_bucket_ttl_s": ("86400", 86400),
    "patrols_per_day": ("3", 3),
    # alerts: a rules file that loads (here the defaults' own file)
    "alert_rules": (str(RULES_FILE), RULES_FILE),
    "stale_after_s": ("2.5", 2.5),
    "index_weights": ('{"resolution": 0.4}', {**INDEX_WEIGHTS, "resolution": 0.4}),
    "conference_url_template": ("sip:{code}@vc.lan", "sip:{code}@vc.lan"),
    "vc_open": ("window", "window"),
    "vc_timeout_s": ("60", 60.0),
    "tile_url": ("http://tiles.lan/{z}/{x}/{y}.png", "http://tiles.lan/{z}/{x}/{y}.png"),
    "lang": ("en", "en"),
    "auth": ("DEMO", "demo"),  # lower-cased
    "secret_key": ("s" * 40, "s" * 40),
    "cookie_secure": ("0", False),
    "session_hours": ("1.5", 1.5),
    "trusted_user_header": ("X-Remote-User", "X-Remote-User"),
    "trusted_proxies": ("10.0.0.1  10.0.0.2\t::1", ("10.0.0.1", "10.0.0.2", "::1")),
    "embed_origins": ("https://a.gov.cn https://b.gov.cn", ("https://a.gov.cn", "https://b.gov.cn")),
    "embed_max_ttl_s": ("86400", 86400),
    "session_max_hours": ("8", 8.0),
    "kiosk_users": ("wall1 wall2", ("wall1", "wall2")),
    "trusted_hosts": (".example.gov.cn", (".example.gov.cn",)),
    "login_max_concurrent": ("4", 4),
    "max_streams_per_user": ("5", 5),
    "vc_starts_per_min": ("0", 0),
    "vc_auto_answer": ("0", False),
    "vc_ring_s": ("45", 45.0),
    "vc_resume_s": ("20", 20.0),
    "vc_ice_servers": ("stun:stun.lan:3478 turn:turn.lan:3478", ("stun:stun.lan:3478", "turn:turn.lan:3478")),
    "vc_turn_username": ("wall", "wall"),
    "vc_turn_credential": ("s3cret", "s3cret"),
    "vc_simulate": ("1", True),
    "janus_url": ("http://127.0.0.1:8088/janus", "http://127.0.0.1:8088/janus"),
    "janus_public_url": ("https://sfu.lan/janus", "https://sfu.lan/janus"),
    "janus_admin_key": ("k3y", "k3y"),
    "access_log": ("1", True),
}


def _docs_table() -> str:
    text = OPS.read_text(encoding="utf-8")
    assert BEGIN in text and END in text, f"docs/operations.md lost the markers {BEGIN!r}, {END!r}"
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)]


# ---- the declarations ---------------------------------------------------------------------------
def test_set001_every_field_has_one_variable_and_a_doc():
    envs = [spec(f).env for f in FIELDS]
    assert len(envs) == len(set(envs)), "two fields share a variable"
    for f in FIELDS:
        s = spec(f)
        assert s.env.isupper() and s.doc.strip(), f.name
        assert "\n" not in s.doc and "|" not in s.doc, f"{f.name}: one line, no table pipes"


def test_set002_the_samples_cover_every_setting():
    assert set(SAMPLES) == {f.name for f in FIELDS}, "add the new setting to SAMPLES"


def test_set003_no_environment_gives_the_defaults():
    assert Settings.from_env(environ={}) == Settings()
    assert Settings().batch_size == 4000 and Settings().auth == "on"
    assert Settings().index_weights == dict(INDEX_WEIGHTS)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_set004_every_variable_parses(name):
    raw, value = SAMPLES[name]
    got = getattr(Settings.from_env(environ={ENV[name]: raw}), name)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("name", ["batch_size", "tz", "redis_url", "kiosk_users", "cookie_secure"])
def test_set005_an_empty_variable_means_the_default(name):
    assert getattr(Settings.from_env(environ={ENV[name]: ""}), name) == getattr(Settings(), name)


@pytest.mark.parametrize(("raw", "on"), [
    ("0", False), ("false", False), ("FALSE", False), ("no", False), ("No", False),
    ("1", True), ("yes", True), ("true", True), ("anything", True),
])
def test_set006_flags(raw, on):
    assert Settings.from_env(environ={"PINGAN_COOKIE_SECURE": raw}).cookie_secure is on
    assert Settings.from_env(environ={"PINGAN_ACCESS_LOG": raw}).access_log is on


def test_set007_index_weights_are_merged_over_the_defaults():
    s = Settings.from_env(environ={"PINGAN_INDEX_WEIGHTS": '{"cameras": 1, "petitions": "0.5"}'})
    assert s.index_weights == {**INDEX_WEIGHTS, "cameras": 1.0, "petitions": 0.5}
    assert Settings().index_weights == dict(INDEX_WEIGHTS)  # the default is not changed


# ---- bad values name their variable -------------------------------------------------------------
@pytest.mark.parametrize(("env", "raw", "why"), [
    ("PINGAN_BATCH_SIZE", "abc", "not an integer"),
    ("PINGAN_LEASE_MS", "1.5", "not an integer"),
    ("PINGAN_PATROLS_PER_DAY", "two", "not an integer"),
    ("PINGAN_STALE_AFTER_S", "soon", "not a number"),
    ("PINGAN_AUTH", "maybe", "must be on, off or demo"),
    ("PINGAN_VC_OPEN", "popup", "must be overlay or window"),
    ("PINGAN_VC_OPEN", "WINDOW", "must be overlay or window"),  # not lower-cased
    ("PINGAN_INDEX_WEIGHTS", "{resolution: 1}", "not JSON"),
    ("PINGAN_INDEX_WEIGHTS", "[0.4]", "not a JSON object"),
    ("PINGAN_INDEX_WEIGHTS", '{"speed": 1}', "unknown components ['speed']"),
    ("PINGAN_INDEX_WEIGHTS", '{"patrol": "high"}', "weights must be numbers"),
])
def test_set008_a_bad_value_names_its_variable(env, raw, why):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(environ={env: raw})
    assert str(err.value) == f"{env}={raw!r}: {why}"
    assert isinstance(err.value, ValueError)


def test_set009_the_command_line_shows_the_error_not_a_trace():
    result = CliRunner().invoke(main, ["settings"], env={"PINGAN_BATCH_SIZE": "abc"})
    assert result.exit_code == 1
    assert "PINGAN_BATCH_SIZE='abc': not an integer" in result.output
    assert "Traceback" not in result.output


def test_set010_bad_values_are_refused_at_construction_too():
    with pytest.raises(SettingsError, match="PINGAN_AUTH must be on, off or demo"):
        Settings(auth="maybe")
    with pytest.raises(SettingsError, match="PINGAN_VC_OPEN"):
        dataclasses.replace(Settings(), vc_open="tab")


# ---- overrides ----------------------------------------------------------------------------------
def test_set011_overrides_win_over_the_environment():
    env = {"PINGAN_BATCH_SIZE": "10", "PINGAN_TZ": "Asia/Kolkata"}
    s = Settings.from_env(environ=env, batch_size=20)
    assert (s.batch_size, s.tz) == (20, "Asia/Kolkata")


def test_set012_none_overrides_are_ignored_and_paths_made_paths():
    s = Settings.from_env(environ={"PINGAN_BATCH_SIZE": "10"}, batch_size=None, data_dir="/tmp/x")
    assert s.batch_size == 10 and s.data_dir == Path("/tmp/x")


def test_set013_an_unknown_override_is_a_type_error():
    with pytest.raises(TypeError, match="unknown settings: \\['batch'\\]"):
        Settings.from_env(environ={}, batch=5)


def test_set014_overrides_are_checked_like_the_environment():
    with pytest.raises(ValueError, match="idempotency window"):
        Settings.from_env(environ={}, max_lateness_s=10 * 86400)


# ---- the data layer's configs -------------------------------------------------------------------
def test_set015_pipeline_config_carries_the_pipeline_settings():
    s = Settings.from_env(environ={ENV[n]: SAMPLES[n][0] for n in (
        "key_prefix", "tz", "batch_size", "lease_ms", "stream_retention_days", "dead_maxlen",
        "max_lateness_s", "max_future_skew_s", "case_max_age_days", "hour_bucket_ttl_s",
        "day_bucket_ttl_s", "patrols_per_day", "alert_rules", "upper_interval_ms")})
    p = s.pipeline
    assert isinstance(p, PipelineConfig)
    for f in dataclasses.fields(PipelineConfig):
        assert getattr(p, f.name) == getattr(s, f.name) == SAMPLES[f.name][1], f.name
    assert p.idempotency_window_s == s.idempotency_window_s == 14 * 86400


def test_set016_read_model_config_is_a_read_only_copy():
    s = Settings.from_env(environ={"PINGAN_KEY_PREFIX": "c2", "PINGAN_TZ": "Asia/Kolkata",
                                   "PINGAN_INDEX_WEIGHTS": '{"patrol": 0.5}'})
    rm = s.read_model
    assert isinstance(rm, ReadModelConfig)
    assert (rm.key_prefix, rm.tz, dict(rm.index_weights)) == ("c2", "Asia/Kolkata",
                                                              s.index_weights)
    with pytest.raises(TypeError):
        rm.index_weights["patrol"] = 9  # type: ignore[index]
    s.index_weights["patrol"] = 9  # the settings' own dict: the config handed out keeps 0.5
    assert rm.index_weights["patrol"] == 0.5


def test_set017_redis_config():
    s = Settings.from_env(environ={"PINGAN_DATA_DIR": "/srv/p", "PINGAN_REDIS_RETRIES": "5"})
    assert s.redis == RedisConfig(url=None, socket=Path("/srv/p/redis/redis.sock"), retries=5,
                                   cluster="auto")
    assert Settings(redis_url="redis://h/0").redis.url == "redis://h/0"


def test_set018_configs_have_no_defaults_of_their_own():
    """Every default is declared once, in Settings."""
    for cls in (RedisConfig, PipelineConfig, ReadModelConfig):
        for f in dataclasses.fields(cls):
            assert f.default is dataclasses.MISSING, f"{cls.__name__}.{f.name}"
            assert f.default_factory is dataclasses.MISSING, f"{cls.__name__}.{f.name}"


# ---- the lateness rule (it travels with the pipeline config) -----------------------------------
def test_set019_lateness_plus_a_day_must_fit_the_idempotency_window():
    p = Settings().pipeline
    assert p.max_lateness_s + 86400 <= p.idempotency_window_s
    assert p.idempotency_window_s == 7 * 86400  # the stream retention (at least 3 days)
    assert dataclasses.replace(p, max_lateness_s=6 * 86400).max_lateness_s == 6 * 86400
    with pytest.raises(ValueError, match="idempotency window"):
        dataclasses.replace(p, max_lateness_s=6 * 86400 + 1)


def test_set020_settings_refuse_it_naming_the_variables():
    with pytest.raises(SettingsError) as err:
        Settings.from_env(environ={"PINGAN_STREAM_RETENTION_DAYS": "1",
                                   "PINGAN_MAX_LATENESS_S": str(3 * 86400)})
    assert "PINGAN_MAX_LATENESS_S (259200 s)" in str(err.value)
    assert "PINGAN_STREAM_RETENTION_DAYS" in str(err.value)
    # the window is at least 3 days, so 2 days of lateness fit even a 1-day retention
    assert Settings(stream_retention_days=1, max_lateness_s=2 * 86400).idempotency_window_s \
        == 3 * 86400


def test_set021_negative_time_bounds_are_refused():
    with pytest.raises(SettingsError, match="PINGAN_MAX_FUTURE_SKEW_S"):
        Settings(max_future_skew_s=-1)
    with pytest.raises(ValueError, match="negative"):
        dataclasses.replace(Settings().pipeline, max_lateness_s=-1)


# ---- the docs table and `pingan settings` -------------------------------------------------------
def test_set022_the_docs_table_is_the_generated_one():
    assert _docs_table() == markdown_table(), (
        "docs/operations.md §1 differs from the settings declarations: run "
        "`.venv/bin/pingan settings --markdown` and put its output between "
        f"{BEGIN.strip()} and {END}")


def test_set023_the_table_has_one_row_per_setting_in_order():
    rows = markdown_table().splitlines()[2:]
    assert [r.split("`")[1] for r in rows] == [spec(f).env for f in FIELDS]


def test_set024_cli_markdown_prints_the_table():
    result = CliRunner().invoke(main, ["settings", "--markdown"])
    assert result.exit_code == 0 and result.output == markdown_table()


def test_set025_cli_values_read_back_as_the_same_settings():
    env = {**dict.fromkeys(ENV.values()), "PINGAN_BATCH_SIZE": "77",
           "PINGAN_KIOSK_USERS": "wall1 wall2", "PINGAN_COOKIE_SECURE": "no",
           "PINGAN_INDEX_WEIGHTS": '{"cameras": 0.5}', "PINGAN_ACCESS_LOG": "1"}
    result = CliRunner().invoke(main, ["settings"], env=env)
    assert result.exit_code == 0, result.output
    shown = dict(line.split("=", 1) for line in result.output.splitlines())
    assert set(shown) == set(ENV.values())
    given = {k: v for k, v in env.items() if v is not None}
    assert Settings.from_env(environ=shown) == Settings.from_env(environ=given)


def test_set026_secrets_and_url_passwords_are_hidden():
    s = Settings(secret_key="k" * 40, redis_url="redis://:hunter2@cache:6379/0",
                 database_url="postgresql+psycopg://app:hunter2@db/pingan")
    text = json.dumps(describe(s))
    assert "hunter2" not in text and "k" * 40 not in text
    values = {row["env"]: row["value"] for row in describe(s)}
    assert values["REDIS_URL"] == "redis://:***@cache:6379/0"
    assert values["DATABASE_URL"] == "postgresql+psycopg://app:***@db/pingan"
    assert values["PINGAN_SECRET_KEY"] == "(set)"


def test_set027_cli_json_lists_every_setting():
    result = CliRunner().invoke(main, ["settings", "--json"], env=dict.fromkeys(ENV.values()))
    rows = json.loads(result.output)
    assert [r["env"] for r in rows] == list(ENV.values())
    batch = next(r for r in rows if r["field"] == "batch_size")
    assert batch == {"field": "batch_size", "env": "PINGAN_BATCH_SIZE", "kind": "integer",
                     "default": 4000, "doc": batch["doc"], "value": 4000}


# ---- one-way layers -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", sorted((ROOT / "datasources").glob("*.py")), ids=lambda p: p.name)
def test_set028_the_data_layer_imports_nothing_of_the_app(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    bad = [m for m in imported if m.split(".")[0] in ("dashboard", "callbacks", "layouts")]
    assert not bad, f"{path.name} imports {bad}: pass it a datasources.config object instead"
