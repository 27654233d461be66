"""Video conference (综治视联网): endpoints, launches and the calls in progress.

Every start and end is written to the `vc` stream of the top centre's shard (contract v1:
`cid`, `action` start|end, `by`, `centres`), and the calls in progress are kept in one hash
next to it, so the wall can show which centres are in a call. A call ends by an end action
or, if nobody ends it, after `vc_timeout_s`.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import redis

from datasources.keys import Keys
from datasources.topology import Topology

SRC = "pingan-dashboard"


@dataclass(frozen=True)
class Call:
    cid: str
    by: str
    convener: str  # the centre whose screen launched it
    centres: tuple[str, ...]  # the centres invited
    url: str
    started: int
    group: bool

    def to_json(self) -> str:
        return json.dumps({"cid": self.cid, "by": self.by, "convener": self.convener,
                           "centres": list(self.centres), "url": self.url,
                           "started": self.started, "group": self.group})

    @classmethod
    def from_json(cls, raw: str | bytes) -> Call:
        d = json.loads(raw)
        return cls(d["cid"], d["by"], d["convener"], tuple(d["centres"]), d["url"],
                   int(d["started"]), bool(d["group"]))


def endpoint(topo: Topology, template: str, code: str) -> str:
    """A centre's conference endpoint: its registry value, else the settings template."""
    info = topo.centres[code]
    return info.conference or template.format(code=code)


def group_room(template: str, convener: str, tier: int | None) -> str:
    return template.format(code=f"{convener}-all" + (f"-l{tier}" if tier else ""))


def invitees(topo: Topology, convener: str, tier: int | None) -> list[str]:
    """整体联动: the convener's children, or every centre of `tier` below it."""
    if tier is None:
        return list(topo.children.get(convener, ()))
    out, todo = [], list(topo.children.get(convener, ()))
    while todo:
        code = todo.pop(0)
        level = topo.centres[code].level
        if level == tier:
            out.append(code)
        elif level < tier:
            todo.extend(topo.children.get(code, ()))
    return sorted(out)


class Conferences:
    def __init__(self, r: redis.Redis, topo: Topology, prefix: str, template: str,
                 timeout_s: float) -> None:
        self.r = r
        self.topo = topo
        self.keys = Keys(prefix)
        self.template = template
        self.timeout_s = timeout_s
        root_shard = topo.centres[topo.roots[0]].shard if topo.roots else "root"
        self.stream = self.keys.stream(root_shard, "vc")
        self.active_key = f"{prefix}:{{{root_shard}}}:vc:active"

    def _write(self, pipe, action: str, call: Call, by: str, now: int) -> None:
        pipe.xadd(self.stream, {"v": "1", "ts": str(now), "src": SRC, "cid": call.cid,
                                "action": action, "by": by, "centres": ",".join(call.centres)})

    def start(self, by: str, convener: str, centres: list[str], group: bool,
              tier: int | None = None) -> Call:
        now = int(time.time() * 1000)
        url = (group_room(self.template, convener, tier) if group
               else endpoint(self.topo, self.template, centres[0]))
        call = Call(uuid.uuid4().hex[:16], by, convener, tuple(centres), url, now, group)
        pipe = self.r.pipeline(transaction=True)
        self._write(pipe, "start", call, by, now)
        pipe.hset(self.active_key, call.cid, call.to_json())
        pipe.execute()
        return call

    def get(self, cid: str) -> Call | None:
        raw = self.r.hget(self.active_key, cid)
        return Call.from_json(raw) if raw is not None else None

    def end(self, cid: str, by: str) -> bool:
        raw = self.r.hget(self.active_key, cid)
        if raw is None:
            return False
        call = Call.from_json(raw)
        pipe = self.r.pipeline(transaction=True)
        self._write(pipe, "end", call, by, int(time.time() * 1000))
        pipe.hdel(self.active_key, cid)
        pipe.execute()
        return True

    def active(self) -> list[Call]:
        """Calls in progress; ends (as `timeout`) those older than the timeout."""
        now = int(time.time() * 1000)
        calls = []
        for cid, raw in self.r.hgetall(self.active_key).items():
            call = Call.from_json(raw)
            if now - call.started > self.timeout_s * 1000:
                self.end(cid.decode() if isinstance(cid, bytes) else cid, "timeout")
            else:
                calls.append(call)
        return calls

    def in_call(self) -> set[str]:
        codes: set[str] = set()
        for call in self.active():
            codes.update(call.centres)
            codes.add(call.convener)
        return codes
