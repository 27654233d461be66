"""Settings in one place: explicit argument, then environment variable, then default.

One immutable `Settings` object is built at the edge (CLI, app factory) and passed in;
nothing else in the code base reads the environment.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


AUTH_MODES = ("on", "off", "demo")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    redis_url: str | None = None          # None → embedded redis-server under data_dir
    database_url: str | None = None       # None → SQLite under data_dir
    tz: str = "Asia/Shanghai"
    key_prefix: str = "pingan"
    # aggregator
    batch_size: int = 4000
    lease_ms: int = 10_000                 # a dead aggregator's shards move after this
    stream_retention_days: int = 7
    dead_maxlen: int = 100_000
    # time bounds on entries (docs/STREAMS.md §4): later than this after its event time an entry
    # is a dead letter "too late"; never longer than the idempotency window (seen sets)
    max_lateness_s: int = 48 * 3600
    max_future_skew_s: int = 300
    # a case still open this long after it was opened leaves the open count (meta `expired`)
    case_max_age_days: int = 90
    redis_retries: int = 3                 # redis-py retries on a lost connection (scripts are idempotent)
    # read model retention
    hour_bucket_ttl_s: int = 3 * 86400
    day_bucket_ttl_s: int = 40 * 86400
    # wall
    patrols_per_day: int = 2               # 一日双巡
    stale_after_s: float = 10.0
    index_weights: dict[str, float] = field(
        default_factory=lambda: {
            "resolution": 0.30,
            "overdue": 0.20,
            "patrol": 0.20,
            "cameras": 0.15,
            "petitions": 0.15,
        }
    )
    conference_url_template: str = "https://meet.example.invalid/pingan-{code}"
    vc_open: str = "overlay"               # overlay on the wall | window (a new window)
    vc_timeout_s: float = 4 * 3600.0       # a call nobody ends is ended after this
    tile_url: str | None = None            # optional intranet basemap, e.g. http://tiles.lan/{z}/{x}/{y}.png
    lang: str = "zh"
    # access (docs/security.md)
    auth: str = "on"                       # on | off (explicit, trusted networks only) | demo
    secret_key: str | None = None          # None → data_dir/secret.key, created on first use
    cookie_secure: bool = True             # False only for plain-HTTP intranets
    session_hours: float = 12.0
    trusted_user_header: str | None = None  # e.g. X-Remote-User from an SSO reverse proxy
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    embed_origins: tuple[str, ...] = ()    # portal origins allowed to frame /embed/*
    embed_max_ttl_s: int = 366 * 86400
    # web hardening (docs/security.md)
    session_max_hours: float = 24.0        # absolute: sign in again after this, however active
    kiosk_users: tuple[str, ...] = ()      # wall accounts whose sessions may slide past it
    trusted_hosts: tuple[str, ...] = ()    # Host names served; () → localhost and IP addresses
    login_max_concurrent: int = 2          # password checks at once per worker; more → "busy"
    max_streams_per_user: int = 20         # open live streams per user, all workers together
    vc_starts_per_min: int = 10            # video calls a user may start per minute

    def __post_init__(self) -> None:
        if self.max_lateness_s + 86400 > self.idempotency_window_s:
            raise ValueError(
                f"PINGAN_MAX_LATENESS_S ({self.max_lateness_s} s) plus one day must fit in the "
                f"idempotency window ({self.idempotency_window_s} s, from "
                "PINGAN_STREAM_RETENTION_DAYS): a late retry could otherwise count twice")
        if self.max_lateness_s < 0 or self.max_future_skew_s < 0:
            raise ValueError("time bounds must not be negative")

    @property
    def idempotency_window_s(self) -> int:
        """How long an applied entry's idempotency key is kept (its day's `seen` set)."""
        return max(3 * 86400, self.stream_retention_days * 86400)

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Build settings from the environment; keyword overrides win over it."""
        env = cls(
            data_dir=Path(os.environ.get("PINGAN_DATA_DIR") or "var"),
            redis_url=os.environ.get("REDIS_URL") or None,
            database_url=os.environ.get("DATABASE_URL") or None,
            tz=os.environ.get("PINGAN_TZ") or "Asia/Shanghai",
            key_prefix=os.environ.get("PINGAN_KEY_PREFIX") or "pingan",
            batch_size=_env_int("PINGAN_BATCH_SIZE", 4000),
            lease_ms=_env_int("PINGAN_LEASE_MS", 10_000),
            stream_retention_days=_env_int("PINGAN_STREAM_RETENTION_DAYS", 7),
            max_lateness_s=_env_int("PINGAN_MAX_LATENESS_S", 48 * 3600),
            max_future_skew_s=_env_int("PINGAN_MAX_FUTURE_SKEW_S", 300),
            case_max_age_days=_env_int("PINGAN_CASE_MAX_AGE_DAYS", 90),
            redis_retries=_env_int("PINGAN_REDIS_RETRIES", 3),
            stale_after_s=_env_float("PINGAN_STALE_AFTER_S", 10.0),
            conference_url_template=os.environ.get("PINGAN_CONFERENCE_URL")
            or "https://meet.example.invalid/pingan-{code}",
            lang=os.environ.get("PINGAN_LANG") or "zh",
            vc_open=os.environ.get("PINGAN_VC_OPEN") or "overlay",
            vc_timeout_s=_env_float("PINGAN_VC_TIMEOUT_S", 4 * 3600.0),
            tile_url=os.environ.get("PINGAN_TILE_URL") or None,
            auth=(os.environ.get("PINGAN_AUTH") or "on").lower(),
            secret_key=os.environ.get("PINGAN_SECRET_KEY") or None,
            cookie_secure=(os.environ.get("PINGAN_COOKIE_SECURE") or "1").lower() not in ("0", "false", "no"),
            session_hours=_env_float("PINGAN_SESSION_HOURS", 12.0),
            trusted_user_header=os.environ.get("PINGAN_TRUSTED_USER_HEADER") or None,
            trusted_proxies=tuple((os.environ.get("PINGAN_TRUSTED_PROXIES") or "127.0.0.1 ::1").split()),
            embed_origins=tuple((os.environ.get("PINGAN_EMBED_ORIGINS") or "").split()),
            session_max_hours=_env_float("PINGAN_SESSION_MAX_HOURS", 24.0),
            kiosk_users=tuple((os.environ.get("PINGAN_KIOSK_USERS") or "").split()),
            trusted_hosts=tuple((os.environ.get("PINGAN_TRUSTED_HOSTS") or "").split()),
            login_max_concurrent=_env_int("PINGAN_LOGIN_MAX_CONCURRENT", 2),
            max_streams_per_user=_env_int("PINGAN_MAX_STREAMS_PER_USER", 20),
            vc_starts_per_min=_env_int("PINGAN_VC_STARTS_PER_MIN", 10),
        )
        if env.auth not in AUTH_MODES:
            raise ValueError("PINGAN_AUTH must be on, off or demo")
        if env.vc_open not in ("overlay", "window"):
            raise ValueError("PINGAN_VC_OPEN must be overlay or window")
        if os.environ.get("PINGAN_INDEX_WEIGHTS"):
            # e.g. '{"resolution": 0.4, "overdue": 0.2, "patrol": 0.2, "cameras": 0.1, "petitions": 0.1}'
            weights = json.loads(os.environ["PINGAN_INDEX_WEIGHTS"])
            bad = set(weights) - set(env.index_weights)
            if bad:
                raise ValueError(f"PINGAN_INDEX_WEIGHTS: unknown components {sorted(bad)}")
            env = replace(env, index_weights={**env.index_weights, **{k: float(v) for k, v in weights.items()}})
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in clean:
            clean["data_dir"] = Path(clean["data_dir"])
        return replace(env, **clean)

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
