"""What the data layer is configured with: small frozen objects, one per consumer.

The data layer never imports the app: `dashboard.settings.Settings` (the one place settings
are declared, with their defaults and environment variables) builds these objects
(`settings.redis`, `settings.pipeline`, `settings.read_model`) and hands them in. They have no
defaults of their own, so every fact has one source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

DAY_S = 86_400


@dataclass(frozen=True, kw_only=True)
class RedisConfig:
    """How to reach Redis (`datasources.connection`)."""

    url: str | None  # None → the embedded redis-server listening on `socket`
    socket: Path
    retries: int  # redis-py retries on a lost connection (the aggregator's scripts are idempotent)
    cluster: str  # auto | yes | no: is `url` a Redis Cluster node (connection.connect)


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """What the aggregator, the rebuild and the audit read: the stream contract's time bounds,
    the read model's retention and the aggregator's batching and leases."""

    key_prefix: str
    tz: str
    batch_size: int
    lease_ms: int
    stream_retention_days: int
    dead_maxlen: int
    max_lateness_s: int
    max_future_skew_s: int
    case_max_age_days: int
    hour_bucket_ttl_s: int
    day_bucket_ttl_s: int
    patrols_per_day: int
    alert_rules: Path | None  # the 预警 rules file (None: datasources/alert_rules.toml)
    upper_interval_ms: int  # roll-up period of the centres above the shard tier

    def __post_init__(self) -> None:
        if self.max_lateness_s < 0 or self.max_future_skew_s < 0:
            raise ValueError("max_lateness_s and max_future_skew_s must not be negative")
        if self.max_lateness_s + DAY_S > self.idempotency_window_s:
            raise ValueError(
                f"max_lateness_s ({self.max_lateness_s} s) plus one day must fit in the "
                f"idempotency window ({self.idempotency_window_s} s, from "
                "stream_retention_days): a late retry could otherwise count twice")

    @property
    def idempotency_window_s(self) -> int:
        """How long an applied entry's idempotency key is kept (its day's `seen` set)."""
        return max(3 * DAY_S, self.stream_retention_days * DAY_S)


@dataclass(frozen=True, kw_only=True)
class ReadModelConfig:
    """What `ReadModel` reads."""

    key_prefix: str
    tz: str
    index_weights: Mapping[str, float]

    def __post_init__(self) -> None:
        # a read-only copy: the caller's dict cannot change a config already handed out
        object.__setattr__(self, "index_weights", MappingProxyType(dict(self.index_weights)))
