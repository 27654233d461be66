"""Settings in one place: explicit argument, then environment variable, then default.

Each setting is declared once, as a field of `Settings` made by `setting(env, parser, default,
doc)`; the defaults, `Settings.from_env`, `pingan settings` and the table in
docs/operations.md §1 (`markdown_table`) are all made from these declarations. One immutable
`Settings` object is built at the edge (CLI, app factory) and passed in; nothing else in the
code base reads the environment. The data layer gets its own small configs from it
(`redis`, `pipeline`, `read_model`: `datasources/config.py`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from datasources.config import PipelineConfig, ReadModelConfig, RedisConfig

AUTH_MODES = ("on", "off", "demo")
VC_OPEN_MODES = ("overlay", "window")
INDEX_WEIGHTS: Mapping[str, float] = MappingProxyType({
    "resolution": 0.30,
    "overdue": 0.20,
    "patrol": 0.20,
    "cameras": 0.15,
    "petitions": 0.15,
})
_SPEC = "setting"


class SettingsError(ValueError):
    """A setting's value is refused; the message names its environment variable."""


# ---- parsers: the text of an environment variable → the field's value -------------------------
@dataclass(frozen=True)
class Parser:
    kind: str  # shown in `pingan settings --json`
    parse: Callable[[str], Any]  # raises ValueError("why") on a bad value


def _integer(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ValueError("not an integer") from None


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError("not a number") from None


def _weights(raw: str) -> dict[str, float]:
    """JSON of some components, e.g. '{"resolution": 0.4}'; the others keep their default."""
    try:
        given = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError("not JSON") from None
    if not isinstance(given, dict):
        raise ValueError("not a JSON object")
    bad = set(given) - set(INDEX_WEIGHTS)
    if bad:
        raise ValueError(f"unknown components {sorted(bad)}")
    try:
        return {**INDEX_WEIGHTS, **{k: float(v) for k, v in given.items()}}
    except (TypeError, ValueError):
        raise ValueError("weights must be numbers") from None


def parse_instant(raw: str) -> datetime:
    """An ISO 8601 date and time with its UTC offset, e.g. 2026-12-08T00:00+08:00."""
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise ValueError("not an ISO 8601 date and time, e.g. 2026-12-08T00:00+08:00") from None
    if when.tzinfo is None:
        raise ValueError("needs its UTC offset, e.g. 2026-12-08T00:00+08:00")
    return when


def _instant(raw: str) -> str:
    parse_instant(raw)
    return raw.strip()


def choice(*options: str, lower: bool = False) -> Parser:
    def parse(raw: str) -> str:
        value = raw.lower() if lower else raw
        if value not in options:
            raise ValueError(f"must be {_alternatives(options)}")
        return value

    return Parser("one of " + "|".join(options), parse)


def _alternatives(options: tuple[str, ...]) -> str:
    return ", ".join(options[:-1]) + " or " + options[-1]


TEXT = Parser("text", str)
INTEGER = Parser("integer", _integer)
NUMBER = Parser("number", _number)
PATH = Parser("path", Path)
FLAG = Parser("flag", lambda raw: raw.lower() not in ("0", "false", "no"))  # else on
WORDS = Parser("words", lambda raw: tuple(raw.split()))
WEIGHTS = Parser("JSON object", _weights)
INSTANT = Parser("ISO 8601 date and time with offset", _instant)


def _alert_rules(raw: str) -> Path:
    """A rules file that loads (else its path, line and reason, at start)."""
    from datasources.alerts import load_rules

    load_rules(Path(raw))
    return Path(raw)


ALERT_RULES = Parser("path", _alert_rules)


@dataclass(frozen=True)
class Spec:
    env: str
    parser: Parser
    doc: str
    shown: str | None  # the default as the docs show it, when not just the value


def setting(env: str, parser: Parser, default: Any, doc: str, *, shown: str | None = None) -> Any:
    """One declaration: environment variable, parser, default and a line of documentation."""
    meta = {_SPEC: Spec(env, parser, doc, shown)}
    if isinstance(default, Mapping):
        frozen = dict(default)
        return field(default_factory=lambda: dict(frozen), metadata=meta)
    return field(default=default, metadata=meta)


def spec(f: Field) -> Spec:
    """The declaration of a `Settings` field."""
    return f.metadata[_SPEC]


# ---- the settings ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    data_dir: Path = setting(
        "PINGAN_DATA_DIR", PATH, Path("var"),
        "embedded Redis, SQLite and `secret.key`; created (or tightened to) mode 0700; also "
        "`pingan --data-dir DIR`", shown="`var` (relative to the working directory)")
    redis_url: str | None = setting(
        "REDIS_URL", TEXT, None, "e.g. `redis://host:6379/0`", shown="unset → embedded Redis")
    database_url: str | None = setting(
        "DATABASE_URL", TEXT, None, "SQLAlchemy URL of the registry",
        shown="unset → `sqlite:///<data dir>/registry.sqlite3`")
    tz: str = setting("PINGAN_TZ", TEXT, "Asia/Shanghai", "local day and hour of every bucket")
    key_prefix: str = setting("PINGAN_KEY_PREFIX", TEXT, "pingan", "prefix of every Redis key")
    # aggregator
    batch_size: int = setting(
        "PINGAN_BATCH_SIZE", INTEGER, 4000,
        "entries read per stream per batch (`aggregate --batch` overrides)")
    lease_ms: int = setting(
        "PINGAN_LEASE_MS", INTEGER, 10_000,
        "shard lease; a dead aggregator's shards move after this")
    stream_retention_days: int = setting(
        "PINGAN_STREAM_RETENTION_DAYS", INTEGER, 7,
        "stream history kept; also the idempotency window, max(3 days, this)")
    dead_maxlen: int = setting(
        "PINGAN_DEAD_MAXLEN", INTEGER, 100_000,
        "dead letters kept per shard (`dead` stream, oldest dropped)")
    max_lateness_s: int = setting(
        "PINGAN_MAX_LATENESS_S", INTEGER, 48 * 3600,
        "an entry whose `ts` is more than this before its arrival is a dead letter `too late`; "
        "plus one day it must fit in the idempotency window (refused at start otherwise)",
        shown="`172800` (48 h)")
    max_future_skew_s: int = setting(
        "PINGAN_MAX_FUTURE_SKEW_S", INTEGER, 300,
        "an entry whose `ts` is more than this after its arrival is a dead letter "
        "`ts in the future`")
    case_max_age_days: int = setting(
        "PINGAN_CASE_MAX_AGE_DAYS", INTEGER, 90,
        "a case still open this long after it was opened leaves the open and overdue counts "
        "(meta `expired`)")
    redis_retries: int = setting(
        "PINGAN_REDIS_RETRIES", INTEGER, 3,
        "redis-py retries a command whose connection broke (back-off 50 ms … 1 s); safe for "
        "the aggregator, whose batches are idempotent")
    redis_cluster: str = setting(
        "PINGAN_REDIS_CLUSTER", choice("auto", "yes", "no", lower=True), "auto",
        "is `REDIS_URL` a Redis Cluster node: `auto` asks the server (`INFO cluster`) once per "
        "process; `yes`/`no` skip the question")
    upper_interval_ms: int = setting(
        "PINGAN_UPPER_INTERVAL_MS", INTEGER, 500,
        "how often the aggregator rolls up the figures of the centres above the shard tier "
        "(city, province) from their children's totals")
    # read model retention
    hour_bucket_ttl_s: int = setting(
        "PINGAN_HOUR_BUCKET_TTL_S", INTEGER, 3 * 86400,
        "hour figures (`h:…`) are kept this long", shown="`259200` (3 days)")
    day_bucket_ttl_s: int = setting(
        "PINGAN_DAY_BUCKET_TTL_S", INTEGER, 40 * 86400,
        "day figures (`d:…`) and the tombstones of closed cases are kept this long",
        shown="`3456000` (40 days)")
    # alerts (预警, docs/alerts.md)
    alert_rules: Path | None = setting(
        "PINGAN_ALERT_RULES", ALERT_RULES, None,
        "a TOML file of 预警 rules that replaces the defaults (`datasources/alert_rules.toml`; "
        "rules it does not list are off); a file that is not valid is refused at start with "
        "its line and reason", shown="none (the defaults)")
    # wall
    patrols_per_day: int = setting(
        "PINGAN_PATROLS_PER_DAY", INTEGER, 2,
        "patrols a grid needs in a day to count as fully patrolled (一日双巡)")
    stale_after_s: float = setting(
        "PINGAN_STALE_AFTER_S", NUMBER, 10.0,
        "a screen turns stale (数据延迟) when no message arrived, or a shard's aggregator "
        "heartbeat is older, than this")
    index_weights: dict[str, float] = setting(
        "PINGAN_INDEX_WEIGHTS", WEIGHTS, INDEX_WEIGHTS,
        "JSON of the ping'an index weights, e.g. `{\"resolution\": 0.4}` (missing components "
        "keep their default; docs/metrics.md)")
    conference_url_template: str = setting(
        "PINGAN_CONFERENCE_URL", TEXT, "",
        "an outside conference endpoint for centres without one in the registry; `{code}` is "
        "replaced (整体联动 rooms use `<code>-all[-l<tier>]`); an `http(s)://` URL or a `sip:` "
        "URI, else the app refuses to start. Unset: calls are the app's own (WebRTC point to "
        "point, 整体联动 on Janus; docs/video-calls.md)", shown="unset")
    vc_open: str = setting(
        "PINGAN_VC_OPEN", choice(*VC_OPEN_MODES), "overlay",
        "`overlay` on the wall, or `window` (a new window)")
    vc_timeout_s: float = setting(
        "PINGAN_VC_TIMEOUT_S", NUMBER, 4 * 3600.0,
        "a call nobody ends is ended (written as `by=timeout`) after this", shown="`14400`")
    vc_auto_answer: bool = setting(
        "PINGAN_VC_AUTO_ANSWER", FLAG, True,
        "a wall answers a call from a higher tier by itself (it is unattended); the duty desk "
        "rings and may decline")
    vc_ring_s: float = setting(
        "PINGAN_VC_RING_S", NUMBER, 30.0,
        "a centre that has not answered after this is marked 未应答")
    vc_resume_s: float = setting(
        "PINGAN_VC_RESUME_S", NUMBER, 10.0,
        "a screen whose signalling stream dropped (a network blip, a web restart) may reconnect "
        "to its calls within this; after it, it has left them")
    vc_ice_servers: tuple[str, ...] = setting(
        "PINGAN_VC_ICE_SERVERS", WORDS, (),
        "STUN/TURN URLs for networks that need them (`stun:host:3478 turn:host:3478`, space "
        "separated); unset → none (a LAN needs none)")
    vc_turn_username: str | None = setting(
        "PINGAN_VC_TURN_USERNAME", TEXT, None, "the TURN servers' user name")
    vc_turn_credential: str | None = setting(
        "PINGAN_VC_TURN_CREDENTIAL", TEXT, None, "the TURN servers' password")
    vc_simulate: bool = setting(
        "PINGAN_VC_SIMULATE", FLAG, False,
        "`1`: a call to a centre with no screen open is answered by a simulated endpoint (a "
        "test picture labelled 模拟); `pingan demo` sets it")
    janus_url: str | None = setting(
        "PINGAN_JANUS_URL", TEXT, None,
        "Janus HTTP API the server creates 整体联动 rooms through (`http://127.0.0.1:8088/janus`); "
        "unset → no SFU (`pingan demo` starts one when Janus is installed)")
    janus_public_url: str | None = setting(
        "PINGAN_JANUS_PUBLIC_URL", TEXT, None,
        "the Janus URL the browsers use, when it differs from `PINGAN_JANUS_URL`")
    janus_admin_key: str | None = setting(
        "PINGAN_JANUS_ADMIN_KEY", TEXT, None,
        "the VideoRoom plugin's `admin_key` (only the server may create rooms)")
    tile_url: str | None = setting(
        "PINGAN_TILE_URL", TEXT, None,
        "an intranet basemap tile URL (`…/{z}/{x}/{y}.png`); without it the map draws "
        "boundaries on the dark canvas")
    lang: str = setting(
        "PINGAN_LANG", TEXT, "zh",
        "the portal widgets' language when their URL has no `lang=` (`zh` or `en`); the wall and the tablet take theirs from `?lang=en` and default to zh")
    # access (docs/security.md)
    auth: str = setting(
        "PINGAN_AUTH", choice(*AUTH_MODES, lower=True), "on",
        "`on`: sign-in required (`pingan serve`, gunicorn); `demo`: every viewer is the "
        "labelled demo user (`pingan demo` sets it); `off`: open, only when set explicitly "
        "(docs/security.md)")
    secret_key: str | None = setting(
        "PINGAN_SECRET_KEY", TEXT, None,
        "signs session cookies and embed tokens, at least 32 bytes (a shorter one is refused "
        "at start); unset → `$PINGAN_DATA_DIR/secret.key` (0600) is created on first use. "
        "Hosts behind one load balancer must share it")
    cookie_secure: bool = setting(
        "PINGAN_COOKIE_SECURE", FLAG, True,
        "`0` only on a plain-HTTP intranet (browsers drop Secure cookies over http except on "
        "localhost)")
    session_hours: float = setting(
        "PINGAN_SESSION_HOURS", NUMBER, 12.0,
        "idle lifetime of a session (an open screen keeps its session alive)", shown="`12`")
    trusted_user_header: str | None = setting(
        "PINGAN_TRUSTED_USER_HEADER", TEXT, None,
        "e.g. `X-Remote-User`: an SSO reverse proxy names the user (who must exist in "
        "`pingan users`)")
    trusted_proxies: tuple[str, ...] = setting(
        "PINGAN_TRUSTED_PROXIES", WORDS, ("127.0.0.1", "::1"),
        "the only client addresses whose user header is believed")
    forwarded_from: tuple[str, ...] = setting(
        "PINGAN_FORWARDED_FROM", WORDS, (),
        "addresses of the reverse proxies (nginx, deploy/nginx.conf) whose `X-Forwarded-For` "
        "names the client for the sign-in throttle and the access log; unset → the peer's "
        "address, the header ignored")
    embed_origins: tuple[str, ...] = setting(
        "PINGAN_EMBED_ORIGINS", WORDS, (),
        "portal origins allowed to frame `/embed/*` (space separated); unset → no one "
        "(docs/embeds.md)")
    embed_max_ttl_s: int = setting(
        "PINGAN_EMBED_MAX_TTL_S", INTEGER, 90 * 86400,
        "the longest an embed URL may work (`pingan embed-url --ttl`)",
        shown="`7776000` (90 days)")
    # web hardening (docs/security.md)
    session_max_hours: float = setting(
        "PINGAN_SESSION_MAX_HOURS", NUMBER, 24.0,
        "absolute lifetime of a session: sign in again after this, however active the screen "
        "(docs/security.md)", shown="`24`")
    kiosk_users: tuple[str, ...] = setting(
        "PINGAN_KIOSK_USERS", WORDS, (),
        "space-separated accounts (the wall PCs) whose sessions slide without the absolute "
        "lifetime")
    trusted_hosts: tuple[str, ...] = setting(
        "PINGAN_TRUSTED_HOSTS", WORDS, (),
        "host names the wall is served under (`.example.gov.cn` matches subdomains, `*` any); "
        "any other `Host` → 400 (DNS rebinding)", shown="unset → `localhost` and IP addresses")
    login_max_concurrent: int = setting(
        "PINGAN_LOGIN_MAX_CONCURRENT", INTEGER, 2,
        "password checks (Argon2, ~0.2 s CPU each) at once per web worker, in threads off the "
        "event loop; more sign-ins at once are answered \"busy\" (503)")
    max_streams_per_user: int = setting(
        "PINGAN_MAX_STREAMS_PER_USER", INTEGER, 20,
        "open live streams (SSE) per signed-in user across all workers; one more → 429")
    vc_starts_per_min: int = setting(
        "PINGAN_VC_STARTS_PER_MIN", INTEGER, 10,
        "video calls a user may start in any 60 s (`0`: no cap)")
    access_log: bool = setting(
        "PINGAN_ACCESS_LOG", FLAG, False,
        "`1`: gunicorn access log to stdout (`serve`, `demo`); `0`, `false` or `no`: none")
    # issue 12: the producer gateway, embed keys, the audit trail (docs/producers.md)
    api_max_bytes: int = setting(
        "PINGAN_API_MAX_BYTES", INTEGER, 4 * 1024 * 1024,
        "the largest request body `POST /api/v1/<kind>` takes (bytes); larger → 413",
        shown="`4194304` (4 MiB)")
    api_max_entries: int = setting(
        "PINGAN_API_MAX_ENTRIES", INTEGER, 2000,
        "the most entries one `POST /api/v1/<kind>` may carry; more → 413")
    api_rate: int = setting(
        "PINGAN_API_RATE", INTEGER, 2000,
        "entries per second a producer may post, when `pingan producers add` is not given "
        "`--rate`; more → 429")
    embed_key: str | None = setting(
        "PINGAN_EMBED_KEY", TEXT, None,
        "signs embed tokens, at least 32 bytes (a shorter one is refused at start), apart from "
        "the session key so that it can rotate alone; unset → the server secret "
        "(`PINGAN_SECRET_KEY` or `secret.key`), as before (docs/embeds.md)")
    embed_key_previous: str | None = setting(
        "PINGAN_EMBED_KEY_PREVIOUS", TEXT, None,
        "the embed key before the last rotation: tokens it signed are still accepted until "
        "`PINGAN_EMBED_KEY_PREVIOUS_UNTIL`")
    embed_key_previous_until: str | None = setting(
        "PINGAN_EMBED_KEY_PREVIOUS_UNTIL", INSTANT, None,
        "the end of the rotation's grace period (ISO date and time, e.g. "
        "`2026-12-08T00:00+08:00`); unset → the previous key is accepted while it is set")
    embed_default_ttl: str = setting(
        "PINGAN_EMBED_DEFAULT_TTL", TEXT, "1h",
        "how long an embed URL works when `pingan embed-url` is not given `--ttl`")
    access_log_days: int = setting(
        "PINGAN_ACCESS_LOG_DAYS", INTEGER, 180,
        "how long the access log (`pingan access-log`) keeps its entries, in days")

    def __post_init__(self) -> None:
        for name, options in (("auth", AUTH_MODES), ("vc_open", VC_OPEN_MODES)):
            if getattr(self, name) not in options:
                raise SettingsError(f"{_env(name)} must be {_alternatives(options)}, "
                                    f"not {getattr(self, name)!r}")
        try:
            self.pipeline  # noqa: B018 - the data layer's own checks (the lateness rule)
        except ValueError as e:
            raise SettingsError(_in_env_terms(str(e))) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from the environment (`os.environ` unless `environ` is given);
        keyword overrides that are not None win over it. An empty variable means the default."""
        environ = os.environ if environ is None else environ
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            s = spec(f)
            raw = environ.get(s.env)
            if raw:
                try:
                    values[f.name] = s.parser.parse(raw)
                except ValueError as e:
                    raise SettingsError(f"{s.env}={raw!r}: {e}") from None
        values.update((k, v) for k, v in overrides.items() if v is not None)
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        return cls(**values)

    # ---- derived --------------------------------------------------------------------------
    @property
    def idempotency_window_s(self) -> int:
        return self.pipeline.idempotency_window_s

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "registry.sqlite3"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.sqlite_path.resolve()}"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def embedded_redis_socket(self) -> Path:
        return self.data_dir / "redis" / "redis.sock"

    # ---- the data layer's configs ---------------------------------------------------------
    @property
    def redis(self) -> RedisConfig:
        return RedisConfig(url=self.redis_url, socket=self.embedded_redis_socket,
                           retries=self.redis_retries, cluster=self.redis_cluster)

    @property
    def pipeline(self) -> PipelineConfig:
        return PipelineConfig(
            key_prefix=self.key_prefix, tz=self.tz, batch_size=self.batch_size,
            lease_ms=self.lease_ms, stream_retention_days=self.stream_retention_days,
            dead_maxlen=self.dead_maxlen, max_lateness_s=self.max_lateness_s,
            max_future_skew_s=self.max_future_skew_s, case_max_age_days=self.case_max_age_days,
            hour_bucket_ttl_s=self.hour_bucket_ttl_s, day_bucket_ttl_s=self.day_bucket_ttl_s,
            patrols_per_day=self.patrols_per_day, alert_rules=self.alert_rules,
            upper_interval_ms=self.upper_interval_ms)

    @property
    def read_model(self) -> ReadModelConfig:
        return ReadModelConfig(key_prefix=self.key_prefix, tz=self.tz,
                               index_weights=self.index_weights)


def _env(name: str) -> str:
    return next(spec(f).env for f in fields(Settings) if f.name == name)


def _in_env_terms(message: str) -> str:
    """A data-layer config's message with its field names as the variables that set them."""
    envs = {f.name: spec(f).env for f in fields(Settings)}
    return re.sub(r"\b[a-z][a-z0-9_]*\b", lambda m: envs.get(m.group(0), m.group(0)), message)


# ---- what `pingan settings` shows --------------------------------------------------------------
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def _plain(value: Any) -> Any:
    """A value as JSON holds it."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _redacted(name: str, value: Any) -> Any:
    if value and name in ("secret_key", "embed_key", "embed_key_previous"):
        return "(set)"
    if isinstance(value, str):
        return _PASSWORD.sub(r"\1***@", value)
    return value


def describe(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every setting: field, variable, kind, default, doc and (with `settings`) its value,
    secrets and URL passwords hidden."""
    out = []
    for f in fields(Settings):
        s = spec(f)
        default = f.default if f.default_factory is MISSING else f.default_factory()
        row = {"field": f.name, "env": s.env, "kind": s.parser.kind,
               "default": _plain(default), "doc": s.doc}
        if settings is not None:
            row["value"] = _plain(_redacted(f.name, getattr(settings, f.name)))
        out.append(row)
    return out


def _shown_default(row: dict[str, Any], s: Spec) -> str:
    if s.shown is not None:
        return s.shown
    value = row["default"]
    if value is None or value == [] or value == {}:
        return "unset"
    if isinstance(value, dict):
        return "`" + json.dumps(value) + "`"
    if isinstance(value, list):
        return "`" + " ".join(value) + "`"
    if isinstance(value, bool):
        return "`1`" if value else "unset"
    return f"`{value}`"


def markdown_table() -> str:
    """The settings table of docs/operations.md §1."""
    specs = {f.name: spec(f) for f in fields(Settings)}
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for row in describe():
        s = specs[row["field"]]
        lines.append(f"| `{s.env}` | {_shown_default(row, s)} | {s.doc} |")
    return "\n".join(lines) + "\n"
