"""Redis key templates, kept in one place next to the code that owns them.

Every key that belongs to a shard carries the shard's hash tag `{SHARD}`, so that one
aggregator batch (rollups + XACK) touches one Redis Cluster slot.
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM_KINDS = ("events", "patrols", "cameras", "petitions")
# internal: cases handed on from another shard (written only by the aggregator)
HANDIN = "handin"
READ_KINDS = (*STREAM_KINDS, HANDIN)
VC_KIND = "vc"
GROUP = "aggregator"


@dataclass(frozen=True)
class Keys:
    prefix: str = "pingan"

    # streams written by producers (contract v1)
    def stream(self, shard: str, kind: str) -> str:
        return f"{self.prefix}:{{{shard}}}:{kind}"

    def dead(self, shard: str) -> str:
        return f"{self.prefix}:{{{shard}}}:dead"

    def handoff(self, shard: str) -> str:
        """Outbox of cases escalated to a centre in another shard."""
        return f"{self.prefix}:{{{shard}}}:handoff"

    # read model (all hashes unless said otherwise)
    def meta(self, shard: str) -> str:
        """version, applied_at (ms), last_ts (ms), dead (count)."""
        return f"{self.prefix}:{{{shard}}}:meta"

    def day(self, shard: str, day: str, code: str) -> str:
        return f"{self.prefix}:{{{shard}}}:d:{day}:{code}"

    def hour(self, shard: str, hour: str, code: str) -> str:
        return f"{self.prefix}:{{{shard}}}:h:{hour}:{code}"

    def gauge(self, shard: str, code: str) -> str:
        """Current (not day-scoped) figures: open cases, camera states."""
        return f"{self.prefix}:{{{shard}}}:g:{code}"

    def due(self, shard: str, code: str) -> str:
        """ZSET of open cases under `code` scored by deadline (overdue = score < now)."""
        return f"{self.prefix}:{{{shard}}}:due:{code}"

    def cases(self, shard: str) -> str:
        """HASH eid → 'due|category|chain' for open cases."""
        return f"{self.prefix}:{{{shard}}}:cases"

    def opened(self, shard: str) -> str:
        """ZSET eid → when the open case was opened here (ms): cases open longer than
        `case_max_age_days` expire."""
        return f"{self.prefix}:{{{shard}}}:opened"

    def closed(self, shard: str) -> str:
        """ZSET eid → when the case was closed (ms): tombstones, so that a closed case never
        opens again while its counts are kept (a `resolved` before its `reported` included)."""
        return f"{self.prefix}:{{{shard}}}:closed"

    def incidents(self, shard: str) -> str:
        """STREAM of what the aggregator saw go wrong with Redis itself (a read model or a
        stream that went back in time after a restart): what may have been lost."""
        return f"{self.prefix}:{{{shard}}}:incidents"

    def lease(self, shard: str) -> str:
        """STRING: the token of the aggregator process that holds the shard (SET NX PX)."""
        return f"{self.prefix}:{{{shard}}}:lease"

    def processes(self) -> str:
        """ZSET consumer → heartbeat (ms) of the live aggregator processes."""
        return f"{self.prefix}:aggregators"

    def legacy_orphans(self, shard: str) -> str:
        """HASH of the first release's resolved-before-reported marks (now `closed`)."""
        return f"{self.prefix}:{{{shard}}}:orphans"

    def seen(self, shard: str, day: str) -> str:
        """SET of idempotency keys applied, per day of the entry's timestamp."""
        return f"{self.prefix}:{{{shard}}}:seen:{day}"

    def camera_state(self, shard: str) -> str:
        return f"{self.prefix}:{{{shard}}}:cam"

    def camera_failures(self, shard: str) -> str:
        """LIST of recent camera failures, newest first, capped."""
        return f"{self.prefix}:{{{shard}}}:camfail"

    def recent_cases(self, shard: str) -> str:
        """LIST of recent reported cases for map markers, newest first, capped."""
        return f"{self.prefix}:{{{shard}}}:recent"

    def patrol_counts(self, shard: str, day: str) -> str:
        """HASH grid → patrols that day."""
        return f"{self.prefix}:{{{shard}}}:pg:{day}"

    def workers_seen(self, shard: str, day: str) -> str:
        return f"{self.prefix}:{{{shard}}}:wk:{day}"

    def pattern(self) -> str:
        return f"{self.prefix}:*"
