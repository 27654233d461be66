"""Intake of producers' entries from outside Redis: the HTTP gateway and `pingan ingest`.

An entry is judged here exactly as the aggregator will judge it (`contract.validate` with the
pipeline's time bounds), plus what only the front door knows: the producer may write this
kind, the entry's centre lies in its scope, and `src` is the producer's name whatever the
body says. So an entry accepted here is never dead-lettered by the aggregator (docs/producers.md).

Time: the aggregator judges `ts` against the entry's arrival (its stream id's time, i.e. the
Redis server's clock when XADD ran); here it is judged against this host's clock, with a
margin (`EDGE_MS`) on both bounds for the difference between the two and the time between the
check and the XADD.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import redis

from datasources.config import PipelineConfig
from datasources.connection import on_cluster
from datasources.contract import (
    MAX_FIELDS,
    Clock,
    InvalidEntry,
    ShardLookup,
    shard_lookup,
    validate,
    validate_fast,
)
from datasources.keys import STREAM_KINDS, Keys
from datasources.topology import Topology, subtree

if TYPE_CHECKING:
    from datasources.producers import Producer

# XADD of a request's entries of one stream in one call (one key: one Cluster slot). ARGV[1]:
# a JSON array of entries, each the array of its names and values in order (one argument, so
# packing costs nothing per field); returns the new ids in order.
_XADD_MANY = """
local ids = {}
for i, flat in ipairs(cjson.decode(ARGV[1])) do
  ids[i] = redis.call('XADD', KEYS[1], '*', unpack(flat))
end
return ids
"""
EDGE_MS = 30_000  # refused this close to the lateness or future bound (clocks, transit)
_KINDS = frozenset(STREAM_KINDS)


def to_fields(obj: object) -> dict[str, str]:
    """One JSON entry as the contract's string fields: strings as they are, integers as their
    decimal text. Anything else (true/false, floats, null, lists, objects, an entry that is not
    an object) raises `InvalidEntry` naming the field, rather than guessing a conversion."""
    if not isinstance(obj, dict):
        raise InvalidEntry(f"entry must be a JSON object, not {_json_type(obj)}")
    if len(obj) > MAX_FIELDS:
        raise InvalidEntry(f"too many fields: {len(obj)} > {MAX_FIELDS}")
    out: dict[str, str] = {}
    for name, value in obj.items():
        if type(value) is str:
            out[name] = value
        elif type(value) is int:
            out[name] = str(value)
        else:
            shown = repr(name[:64]) if isinstance(name, str) else "?"
            raise InvalidEntry(f"bad value type: {shown} is {_json_type(value)} "
                               "(a string or an integer is expected)")
    return out


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return {int: "an integer", float: "a fraction", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), "not JSON")


@dataclass
class Intake:
    """Checks and writes entries for one process; `topo` may be refreshed in place (its
    dicts are swapped, never mutated), so the per-shard lookups are keyed on `topo.centres`."""

    r: redis.Redis
    topo: Topology
    config: PipelineConfig
    # per registry (keyed on `topo.centres`): shard lookups, and the centres of each scope
    _lookups: tuple[object, dict[str, ShardLookup], dict[str, frozenset[str]]] = field(
        default_factory=lambda: (None, {}, {}), repr=False)

    def __post_init__(self) -> None:
        self.keys = Keys(self.config.key_prefix)
        self.tz = ZoneInfo(self.config.tz)
        self._xadd_many = self.r.register_script(_XADD_MANY)

    def clock(self, now_ms: int | None = None) -> Clock:
        """The time rules of one request, as the aggregator's `batch_clock`."""
        c = self.config
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return Clock(self.tz, now, lateness_ms=c.max_lateness_s * 1000,
                     skew_ms=c.max_future_skew_s * 1000)

    def _caches(self) -> tuple[dict[str, ShardLookup], dict[str, frozenset[str]]]:
        centres = self.topo.centres
        owner, looks, scopes = self._lookups
        if owner is not centres:
            looks, scopes = {}, {}
            self._lookups = (centres, looks, scopes)
        return looks, scopes

    def _lookup(self, shard: str) -> ShardLookup:
        looks, _ = self._caches()
        look = looks.get(shard)
        if look is None:
            look = looks[shard] = shard_lookup(self.topo, shard)
        return look

    def subtree(self, scope: str) -> frozenset[str]:
        """The centres a producer of `scope` may write (empty for an unknown scope)."""
        _, scopes = self._caches()
        found = scopes.get(scope)
        if found is None:
            found = scopes[scope] = frozenset(subtree(self.topo, scope))
        return found

    def centre_of(self, kind: str, fields: dict[str, str]) -> str | None:
        """The centre an entry belongs to (it decides the shard and the scope): `centre` for
        events and petitions, the grid's centre for patrols, the camera's for cameras; None
        when it names no known one (then `validate` names the reason)."""
        topo = self.topo
        if kind == "patrols":
            return topo.grid_centre.get(fields.get("grid", ""))
        if kind == "cameras":
            found = topo.camera.get(fields.get("cam", ""))
            return found[0] if found else None
        code = fields.get("centre", "")
        return code if code in topo.centres else None

    def check(self, producer: Producer, kind: str, entry: object,
              clock: Clock | None = None) -> tuple[str, dict[str, str]]:
        """(shard, fields) of an entry `producer` may write, or `InvalidEntry` with the
        reason: the kind, the entry's shape, its scope, then anything the contract refuses."""
        if kind not in _KINDS:
            raise InvalidEntry(f"unknown kind: {kind[:64]}")
        if kind not in producer.kinds:
            raise InvalidEntry(f"kind not allowed: {kind}")
        fields = to_fields(entry)
        fields["src"] = producer.name
        clock = clock or self.clock()
        topo = self.topo
        centre = self.centre_of(kind, fields)
        if centre is None:  # unknown or missing: the contract's reason
            validate(kind, fields, topo.top_shard or "", topo, clock, clock.now_ms)
            raise InvalidEntry("unknown centre")  # not reached: validate refuses it
        if centre not in self.subtree(producer.scope):
            raise InvalidEntry(f"out of scope: centre {centre} is not under {producer.scope}")
        shard = topo.centres[centre].shard
        now = clock.now_ms
        if validate_fast(kind, fields, self._lookup(shard), clock, now) is None:
            validate(kind, fields, shard, topo, clock, now)
        ts = int(fields["ts"])  # valid: 1-16 ASCII digits
        if ts > now + clock.skew_ms - EDGE_MS:
            raise InvalidEntry(f"ts in the future: {ts} is within {EDGE_MS // 1000} s of the "
                               f"limit ({clock.skew_ms // 1000} s after now)")
        if now - ts > clock.lateness_ms - EDGE_MS:
            raise InvalidEntry(f"too late: ts {ts} is within {EDGE_MS // 1000} s of the limit "
                               f"({clock.lateness_ms // 3_600_000} h before now)")
        return shard, fields

    def submit(self, producer: Producer, kind: str, entries: list[object]) -> list[dict]:
        """Check every entry and XADD the valid ones: one script call per stream (a request's
        entries of one shard in one round of Redis's work, not one command each), all in one
        non-transactional pipeline. Results in order: {"ok": True, "id": …} or
        {"ok": False, "error": reason}. Redis errors propagate (a retry of the request is
        counted once, by the aggregator's idempotency)."""
        clock = self.clock()
        results: list[dict] = []
        streams: dict[str, tuple[list, list[dict]]] = {}
        for entry in entries:
            try:
                shard, fields = self.check(producer, kind, entry, clock)
            except InvalidEntry as exc:
                results.append({"ok": False, "error": str(exc)})
                continue
            ok = {"ok": True, "id": ""}
            results.append(ok)
            flats, oks = streams.setdefault(shard, ([], []))
            flats.append(list(chain.from_iterable(fields.items())))
            oks.append(ok)
        if streams:
            # a cluster pipeline refuses EVALSHA: there, one call per stream
            pipe = self.r if on_cluster(self.r) else self.r.pipeline(transaction=False)
            replies = [self._xadd_many(keys=[self.keys.stream(shard, kind)], client=pipe,
                                       args=[json.dumps(flats, ensure_ascii=False)])
                       for shard, (flats, _oks) in streams.items()]
            if pipe is not self.r:
                replies = pipe.execute()
            for (_flats, oks), ids in zip(streams.values(), replies, strict=True):
                for ok, entry_id in zip(oks, ids, strict=True):
                    ok["id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        return results
