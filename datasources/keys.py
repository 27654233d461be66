"""Redis key templates: every key the code writes or reads is made here (docs/operations.md §7).

Every key that belongs to a shard carries the shard's hash tag `{SHARD}`, so that one
aggregator batch (rollups + XACK) touches one Redis Cluster slot. The web's sign-in and
stream-cap keys share the hash tag `{auth}`; untagged: `processes()` and `demo_run()`.
"""

from __future__ import annotations

from dataclasses import dataclass

STREAM_KINDS = ("events", "patrols", "cameras", "petitions")
# internal: cases handed on from another shard (written only by the aggregator)
HANDIN = "handin"
READ_KINDS = (*STREAM_KINDS, HANDIN)
VC_KIND = "vc"
GROUP = "aggregator"
AUTH_TAG = "auth"
QUARANTINED = "quarantined"
UP = "^"  # a figures source that is an upper centre's roll-up (`Keys.source_meta`)


def glob_escape(text: str) -> str:
    """`text` as a literal in a SCAN/KEYS MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True)
class Keys:
    prefix: str = "pingan"

    def shard_head(self, shard: str) -> str:
        """What every key of the shard starts with (`pingan:{S}:`)."""
        return f"{self.prefix}:{{{shard}}}:"

    def shard_pattern(self, shard: str) -> str:
        """A SCAN MATCH pattern of every key of the shard."""
        return glob_escape(self.shard_head(shard)) + "*"

    def shard_of(self, key: str) -> str | None:
        """The shard whose hash tag `key` carries, or None when it is not one of our shard
        keys (another prefix, the `{auth}` keys, no tag)."""
        head = self.prefix + ":{"
        if not key.startswith(head):
            return None
        shard, sep, _rest = key[len(head):].partition("}:")
        return shard if sep and shard != AUTH_TAG else None

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

    def quarantined(self, key: str, at_ms: int) -> str:
        """Where the aggregator moves aside an internal key someone overwrote (kept a week)."""
        return f"{key}:{QUARANTINED}:{at_ms}"

    # video calls: one stream and state per deployment, on the top centre's shard
    def vc_active(self, shard: str) -> str:
        """HASH cid → the call (JSON) of the calls in progress."""
        return f"{self.prefix}:{{{shard}}}:vc:active"

    def vc_starts(self, shard: str, by: str) -> str:
        """ZSET of the calls `by` started in the last minute, scored by when (ms)."""
        return f"{self.prefix}:{{{shard}}}:vc:starts:{by}"

    # video-call signalling (datasources/signal.py): next to the calls, same shard
    def vc_peer(self, shard: str, peer: str) -> str:
        """STRING (JSON: name, centre) of an open call screen `peer`; expires unless renewed."""
        return f"{self.prefix}:{{{shard}}}:vc:peer:{peer}"

    def vc_presence(self, shard: str, centre: str) -> str:
        """ZSET peer → when its registration lapses (ms): the open call screens of `centre`."""
        return f"{self.prefix}:{{{shard}}}:vc:present:{centre}"

    def vc_joined(self, shard: str, cid: str) -> str:
        """HASH of call `cid`: peer → centre of the screens that joined it, and `a:<centre>` →
        answer | decline (how each invited centre answered); deleted when the call ends."""
        return f"{self.prefix}:{{{shard}}}:vc:joined:{cid}"

    def vc_signal(self, shard: str) -> str:
        """STREAM of signalling messages (`to`: a peer or `c:<centre>`, `body`: JSON), capped;
        every web worker reads it and hands each message to its own screens."""
        return f"{self.prefix}:{{{shard}}}:vc:signal"

    def vc_rate(self, shard: str, peer: str) -> str:
        """STRING: the signalling messages `peer` posted in the current window (rate cap)."""
        return f"{self.prefix}:{{{shard}}}:vc:rate:{peer}"

    # the web: sign-in and live-stream keys, one hash tag for all
    def session_ended(self, sid: str) -> str:
        """STRING set when session `sid` signs out (a copy of its cookie must not outlive it)."""
        return f"{self.prefix}:{{{AUTH_TAG}}}:ended:{sid}"

    def login_attempts(self, name: str, addr: str) -> str:
        """HASH of the sign-in attempts at user `name` from address `addr` (throttle)."""
        return self.login_attempts_head(name) + addr

    def login_attempts_head(self, name: str) -> str:
        """What the attempt keys of every address at `name` start with (user names are
        compared lower-cased)."""
        return f"{self.prefix}:{{{AUTH_TAG}}}:login:{name.lower()}:"

    def stream_slots(self, name: str) -> str:
        """ZSET of user `name`'s open live streams, scored by when they lapse."""
        return f"{self.prefix}:{{{AUTH_TAG}}}:streams:{name}"

    def vc_stream_slots(self, name: str) -> str:
        """ZSET of user `name`'s open call-signalling streams (/vc/events), scored by when they
        lapse (a cap of their own, beside `stream_slots`)."""
        return f"{self.prefix}:{{{AUTH_TAG}}}:vcstreams:{name}"

    def received(self, shard: str) -> str:
        """HASH eid → 'YYYYmmddHH|centre': the hour and centre of the report that opened the
        case here (a resolution is credited to that report's buckets: docs/metrics.md)."""
        return f"{self.prefix}:{{{shard}}}:rcv"

    # ---- cases behind the figures (issue 10, helper CASES) ----
    def case(self, shard: str, eid: str) -> str:
        """HASH of one case as this shard saw it: its record (category, channel, urgency,
        centre, reported_at, due, supervised, escalated, open, closed_at, moved_to)
        and its timeline, one field `s|<ts>|<status>|<centre>|<by>` per transition (value:
        `rollup.step_text`).
        Kept while open, and the day figures' life after it closed here."""
        return f"{self.prefix}:{{{shard}}}:case:{eid}"

    def case_info(self, shard: str) -> str:
        """HASH eid → JSON of what the case lists need of an open case beyond `cases`
        (urgency, reported_at, channel, status, supervised, escalated, summary)."""
        return f"{self.prefix}:{{{shard}}}:caseinfo"

    def case_index(self, shard: str, kind: str, code: str) -> str:
        """ZSET of the open cases under `code` (`kind` open | esc: escalated at least once |
        sup: supervised at least once), scored urgent first, then newest (`rollup.case_rank`)."""
        return f"{self.prefix}:{{{shard}}}:ci:{kind}:{code}"
    # ---- end cases ----

    # the duty console drives the walls of a named group (`/wall?screen=main`)
    def wall_directive(self, group: str) -> str:
        """HASH: what the walls of `group` show now, set by the console (`datasources/wallcontrol.py`)."""
        return f"{self.prefix}:{{{AUTH_TAG}}}:wall:{group}"

    # alerts (预警, datasources/alerts.py): state per shard, written by the aggregator only
    def alerts(self, shard: str) -> str:
        """HASH alert id → the alert (JSON), cleared ones included until they are pruned."""
        return f"{self.prefix}:{{{shard}}}:alerts"

    def alerts_active(self, shard: str) -> str:
        """HASH condition → the id of its alert while raised or acknowledged (one per condition)."""
        return f"{self.prefix}:{{{shard}}}:alerts:active"

    def alerts_clearing(self, shard: str) -> str:
        """HASH condition → since when (ms) it has been found clear (the hysteresis hold)."""
        return f"{self.prefix}:{{{shard}}}:alerts:clearing"

    def alerts_cams(self, shard: str) -> str:
        """HASH town → JSON {camera: went down at (ms)} of its cameras now offline or faulty."""
        return f"{self.prefix}:{{{shard}}}:alerts:cams"

    def alert_log(self, shard: str) -> str:
        """STREAM of the alerts' history: raised, acknowledged (by, at), cleared; capped."""
        return f"{self.prefix}:{{{shard}}}:alerts:log"

    def alerts_ticks(self, shard: str) -> str:
        """ZSET of the alert ticks written in the last hour (the guard of a retried write)."""
        return f"{self.prefix}:{{{shard}}}:alerts:ticks"

    def console(self, shard: str) -> str:
        """STREAM of the duty console's requests to the aggregator (acknowledge an alert)."""
        return f"{self.prefix}:{{{shard}}}:console"

    # ---- issue 12: producers, registry version, embeds, access log ----
    def registry_version(self) -> str:
        """STRING (INCR): bumped by every change of the registry that running processes must
        pick up (`pingan registry import`, producers, vocabulary, embed revocations); the
        aggregators and every web worker watch it and reload."""
        return f"{self.prefix}:registry:version"

    def producer_stats(self, shard: str) -> str:
        """HASH of the shard's per-producer figures, written by the aggregator in each batch:
        `<name>|accepted`, `<name>|last_ts`, `<name>|applied_at`, `<name>|lag_ms`,
        `<name>|dead|<reason>` (datasources/producers.py reads them)."""
        return f"{self.prefix}:{{{shard}}}:producers"

    def producer_rate(self, name: str, window: int) -> str:
        """STRING: the entries producer `name` posted in rate window `window` (gateway)."""
        return f"{self.prefix}:{{{AUTH_TAG}}}:gw:rate:{name}:{window}"

    def producer_used(self, name: str, minute: int) -> str:
        """STRING (SET NX): producer `name` used its token in `minute` (one access-log
        entry per producer per minute)."""
        return f"{self.prefix}:{{{AUTH_TAG}}}:gw:used:{name}:{minute}"

    def access_log(self) -> str:
        """STREAM: the append-only access log (datasources/accesslog.py)."""
        return f"{self.prefix}:{{{AUTH_TAG}}}:access"

    def access_viewed(self, sid: str) -> str:
        """SET of the centres session `sid` has viewed (the access log records the first view
        of each); expires with the session."""
        return f"{self.prefix}:{{{AUTH_TAG}}}:viewed:{sid}"

    # ---- issue 13: roll-ups above the shard tier (city, province) ----
    # A centre above the shard tier (level 0/1 with children) is its own shard; the aggregator
    # holding that shard's lease writes these sums of its children's figures (datasources/upper.py)
    # so that its snapshot reads O(its children), never every shard below it.
    def up_day(self, code: str, day: str) -> str:
        """HASH: the day figures of `code`'s whole subtree (as `day` of a shard head)."""
        return f"{self.prefix}:{{{code}}}:u:d:{day}"

    def up_hour(self, code: str, hour: str) -> str:
        """HASH: the hour figures of `code`'s whole subtree (as `hour`)."""
        return f"{self.prefix}:{{{code}}}:u:h:{hour}"

    def up_gauge(self, code: str) -> str:
        """HASH: the current figures of `code`'s subtree (as `gauge`), plus `overdue` (the
        sum of the children's overdue counts when rolled up)."""
        return f"{self.prefix}:{{{code}}}:u:g"

    def up_meta(self, code: str) -> str:
        """HASH of the roll-up, shaped like a shard's meta: version (sum of the versions it
        was rolled from), heartbeat (the oldest of them), applied_at / last_ts (the newest),
        dead (sum), rolled_at (ms, when written)."""
        return f"{self.prefix}:{{{code}}}:u:meta"

    def source_meta(self, source: str) -> str:
        """The meta hash of a figures source (`Topology.sources`): a shard name, or `^CODE`
        for the roll-up of an upper centre."""
        return self.up_meta(source[1:]) if source.startswith(UP) else self.meta(source)

    # the demo (`pingan demo`): its simulation, kept so that a restart continues it
    def demo_run(self) -> str:
        """HASH of the demo simulation: `run` (JSON: seed, origin, speed, …) and `written`
        (entries of its deterministic sequence already in the streams)."""
        return f"{self.prefix}:demo"

    def pattern(self) -> str:
        """A SCAN MATCH pattern of every key under the prefix."""
        return glob_escape(self.prefix) + ":*"
