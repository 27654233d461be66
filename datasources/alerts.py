"""预警: alerts raised and cleared by the aggregator, exactly once per condition (docs/alerts.md).

The rules come from a TOML file (`alert_rules.toml`, or the file `PINGAN_ALERT_RULES` names).
Two kinds of rules:

- event-driven (an urgent case reported, a group or skip-level petition, K cameras of a town
  down within minutes) are evaluated on a batch's validated records by `batch_commands`, whose
  commands go into the batch's own fenced write: the alert and the figures it comes with are
  written in one step, and a retried batch (its XACK guards) writes neither twice;
- time-driven (a case overdue, a shard's data stale, a surge of reports) and every clearing are
  evaluated by `tick_commands` on the aggregator's periodic tick, through a fenced write too.

An alert's id is deterministic (rule, centre, case or window), so replaying the same entries or
running the same tick again finds it and raises nothing. A condition has at most one alert that
is raised or acknowledged (`alerts:active`); when it clears, its alert clears only after the
condition has stayed clear for the rule's hold (`alerts:clearing`), so a condition that flaps
keeps one alert. Only the aggregator writes the alert state; the console asks for an
acknowledgement through the shard's `console` stream (`request_ack`), which the aggregator
validates and applies once, writing who and when to the history stream.

Everything read back from Redis here is untrusted (anyone who reaches Redis can write it): an
alert that does not parse is skipped, never allowed to break a screen.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tomllib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

import redis

from datasources.contract import ALERT_STATES, RULES, SEVERITIES
from datasources.keys import STREAM_KINDS, Keys
from datasources.rollup import (
    CENTRE,
    CI,
    GROUP_F,
    ID,
    SKIP,
    STATE,
    STATUS,
    TS,
    URGENCY,
    CorruptKey,
    K,
)
from datasources.topology import Topology

SRC = "pingan-console"
MAX_USER = 64
MAX_ALERT_ID = 160
ID_RE = re.compile(r"^[A-Za-z0-9:_.-]{1,160}$")
_PART_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
DEFAULT_FILE = "alert_rules.toml"
EVENT_RULES = ("urgent_case", "petition_group", "petition_skip", "camera_outage")
OPEN_STATES = ("raised", "acknowledged")
TICKS_KEEP_MS = 3_600_000

# every rule's parameters beyond severity, enabled and hold_s: name → (type, minimum)
_COMMON = MappingProxyType({"severity": (str, None), "enabled": (bool, None), "hold_s": (float, 0)})
PARAMS: Mapping[str, Mapping[str, tuple[type, float | None]]] = MappingProxyType({
    "urgent_case": {"max_age_h": (float, 0)},
    "overdue_case": {"hours": (float, 0), "max_per_tick": (int, 1)},
    "petition_group": {"clear_after_h": (float, 0)},
    "petition_skip": {"clear_after_h": (float, 0)},
    "camera_outage": {"cameras": (int, 1), "window_min": (float, 0), "clear_below": (int, 1)},
    "stale_shard": {"after_s": (float, 1)},
    "surge": {"sigma": (float, 0), "clear_sigma": (float, 0), "min_count": (int, 1),
              "days": (int, 1), "min_days": (int, 1)},
})
_TOP = MappingProxyType({"tick_s": (float, 0.1), "keep_cleared_days": (float, 0),
                         "history_max": (int, 10)})


class RulesError(ValueError):
    """A rules file that cannot be used: `path:line: reason`."""


class AlertError(ValueError):
    """An acknowledgement that cannot be asked for (unknown or cleared alert, bad user)."""


# ---- the rules -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    hold_s: float
    params: Mapping[str, float | int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float | int:
        return self.params[name]


@dataclass(frozen=True)
class Rules:
    tick_s: float
    keep_cleared_days: float
    history_max: int
    rules: Mapping[str, Rule]

    def on(self, name: str) -> Rule | None:
        return self.rules.get(name)

    @property
    def any_event_rule(self) -> bool:
        return any(n in self.rules for n in EVENT_RULES)


def _line_of(text: str, table: str | None, key: str | None) -> int:
    """The line (1-based) of `key` in `[table]` (or of the table header, or of a top key)."""
    lines = text.splitlines()
    start = 0
    if table is not None:
        head = re.compile(r"^\s*\[\s*" + re.escape(table).replace(r"\.", r"\s*\.\s*") + r"\s*\]")
        for i, line in enumerate(lines):
            if head.match(line):
                start = i
                break
        if key is None:
            return start + 1
    pat = re.compile(r"^\s*" + re.escape(key or "") + r"\s*=")
    for i in range(start, len(lines)):
        if i > start and table is not None and lines[i].lstrip().startswith("["):
            break
        if table is None and lines[i].lstrip().startswith("["):
            break
        if pat.match(lines[i]):
            return i + 1
    return start + 1


def _check(value: object, want: tuple[type, float | None], where: str) -> float | int | str | bool:
    kind, low = want
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be text")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where} must be a number")
    if kind is int and not isinstance(value, int):
        raise ValueError(f"{where} must be a whole number")
    if not math.isfinite(value) or (low is not None and value < low):
        raise ValueError(f"{where} must be at least {low}")
    return value


def parse_rules(text: str, path: str, defaults: Rules | None = None) -> Rules:
    """Rules from the text of a rules file; `defaults` fill what a replacement leaves out.
    RulesError names the file, the line and the reason."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise RulesError(f"{path}:{m.group(1) if m else 1}: {exc}") from None

    def fail(table: str | None, key: str | None, reason: str) -> RulesError:
        return RulesError(f"{path}:{_line_of(text, table, key)}: {reason}")

    top: dict = {}
    for key, value in doc.items():
        if key == "rules":
            continue
        if key not in _TOP:
            raise fail(None, key, f"unknown setting {key!r} (known: {', '.join(_TOP)}, [rules.*])")
        try:
            top[key] = _check(value, _TOP[key], key)
        except ValueError as exc:
            raise fail(None, key, str(exc)) from None
    for key in _TOP:
        if key not in top:
            if defaults is None:
                raise fail(None, None, f"missing setting {key!r}")
            top[key] = getattr(defaults, key)
    tables = doc.get("rules", {})
    if not isinstance(tables, dict):
        raise fail(None, "rules", "rules must be tables [rules.NAME]")
    rules: dict[str, Rule] = {}
    for name, body in tables.items():
        where = f"rules.{name}"
        if name not in RULES:
            raise fail(where, None, f"unknown rule {name!r} (known: {', '.join(RULES)})")
        if not isinstance(body, dict):
            raise fail("rules", name, f"{where} must be a table")
        known = {**_COMMON, **PARAMS[name]}
        base = defaults.rules.get(name) if defaults else None
        values: dict = {}
        for key, value in body.items():
            if key not in known:
                raise fail(where, key, f"unknown parameter {key!r} of rule {name} "
                                       f"(known: {', '.join(known)})")
            try:
                values[key] = _check(value, known[key], f"{where}.{key}")
            except ValueError as exc:
                raise fail(where, key, str(exc)) from None
        if "severity" in values and values["severity"] not in SEVERITIES:
            raise fail(where, "severity", f"severity must be one of {', '.join(SEVERITIES)}")
        if not values.get("enabled", True):
            continue
        for key in known:
            if key in values or key == "enabled":
                continue
            if base is None:
                raise fail(where, None, f"rule {name} is missing {key!r}")
            values[key] = base.severity if key == "severity" else (
                base.hold_s if key == "hold_s" else base.params[key])
        params = {k: v for k, v in values.items() if k not in _COMMON}
        if name == "surge" and params["clear_sigma"] > params["sigma"]:
            raise fail(where, "clear_sigma", "clear_sigma must not be above sigma (hysteresis)")
        if name == "camera_outage" and params["clear_below"] > params["cameras"]:
            raise fail(where, "clear_below", "clear_below must not be above cameras")
        if name == "surge" and params["min_days"] > params["days"]:
            raise fail(where, "min_days", "min_days must not be above days")
        rules[name] = Rule(name, values["severity"], float(values["hold_s"]),
                           MappingProxyType(params))
    return Rules(float(top["tick_s"]), float(top["keep_cleared_days"]),
                 int(top["history_max"]), MappingProxyType(rules))


def default_rules() -> Rules:
    text = resources.files("datasources").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")
    return parse_rules(text, DEFAULT_FILE)


def load_rules(path: Path | str | None) -> Rules:
    """The default rules, or those of the file at `path` (a replacement: the rules it lists
    are on, with the defaults for what it leaves out; the others are off)."""
    defaults = default_rules()
    if path is None or str(path) == "":
        return defaults
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{p}:0: cannot read the rules file ({exc})") from None
    return parse_rules(text, str(p), defaults)


# ---- an alert --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alert:
    id: str
    rule: str
    severity: str
    centre: str
    eid: str
    state: str
    raised_at: int
    acked_by: str = ""
    acked_at: int = 0
    cleared_at: int = 0
    detail: Mapping[str, object] = field(default_factory=dict)
    key: str = ""  # the condition (rule and what it is about): one open alert per condition

    def to_dict(self) -> dict:
        """The alert as the web and the CLI show it (the condition key is internal)."""
        return {"id": self.id, "rule": self.rule, "severity": self.severity,
                "centre": self.centre, "eid": self.eid, "state": self.state,
                "raised_at": self.raised_at, "acked_by": self.acked_by,
                "acked_at": self.acked_at, "cleared_at": self.cleared_at,
                "detail": dict(self.detail)}

    def to_json(self) -> str:
        return json.dumps({**self.to_dict(), "key": self.key}, ensure_ascii=False,
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> Alert | None:
        """The alert stored as `raw`, or None when it is not one the aggregator wrote."""
        if not raw:
            return None
        try:
            d = json.loads(raw)
            a = cls(id=d["id"], rule=d["rule"], severity=d["severity"], centre=d["centre"],
                    eid=d.get("eid", ""), state=d["state"], raised_at=int(d["raised_at"]),
                    acked_by=d.get("acked_by", ""), acked_at=int(d.get("acked_at", 0)),
                    cleared_at=int(d.get("cleared_at", 0)),
                    detail=dict(d.get("detail") or {}), key=d.get("key", ""))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if not (isinstance(a.id, str) and ID_RE.match(a.id) and a.rule in RULES
                and a.severity in SEVERITIES and a.state in ALERT_STATES
                and isinstance(a.centre, str) and isinstance(a.eid, str)
                and isinstance(a.acked_by, str) and len(a.acked_by) <= MAX_USER
                and isinstance(a.key, str)):
            return None
        if not all(isinstance(v, int | float | str | bool) and len(str(v)) <= 64
                   for v in a.detail.values()):
            return None
        return a


def safe_part(text: str) -> str:
    """`text` as a part of an alert id (an HTML attribute's safe characters, no `:`): as is
    when it is safe, else `x` + a digest of it (deterministic)."""
    if _PART_RE.match(text):
        return text
    return "x" + hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def alert_id(rule: str, centre: str, what: str | int) -> str:
    return f"{rule}:{safe_part(centre)}:{safe_part(str(what))}"


def condition(rule: str, what: str) -> str:
    """The condition an alert is about: one open alert per condition."""
    return f"{rule}:{safe_part(what)}"


def raise_commands(keys: Keys, shard: str, alert: Alert, history_max: int) -> list[list]:
    return [["HSET", keys.alerts(shard), alert.id, alert.to_json()],
            ["HSET", keys.alerts_active(shard), alert.key, alert.id],
            ["HDEL", keys.alerts_clearing(shard), alert.key],
            _log(keys, shard, history_max, "raised", alert, alert.raised_at)]


def _log(keys: Keys, shard: str, history_max: int, event: str, a: Alert, at: int,
         by: str = "") -> list:
    return ["XADD", keys.alert_log(shard), "MAXLEN", "~", history_max, "*", "event", event,
            "id", a.id, "rule", a.rule, "severity", a.severity, "centre", a.centre, "eid", a.eid,
            "at", at, "by", by]


# ---- event-driven rules: on a batch's validated records -----------------------------------------
@dataclass(frozen=True)
class Needs:
    """What the event-driven rules need read before a batch's write."""

    ids: tuple[str, ...] = ()  # alert ids that would be raised: do they exist already?
    conditions: tuple[str, ...] = ()  # is there an open alert for these?
    towns: tuple[str, ...] = ()  # the down cameras of these towns

    def __bool__(self) -> bool:
        return bool(self.ids or self.conditions or self.towns)


@dataclass
class BatchState:
    existing: set[str] = field(default_factory=set)  # alert ids stored already
    active: dict[str, str] = field(default_factory=dict)  # condition → open alert id
    down: dict[str, dict[str, int]] = field(default_factory=dict)  # town → {camera: down at}


def town_map(topo: Topology) -> dict[str, str]:
    """Centre → the town its cameras count under: its nearest ancestor of level 3 (a town), or
    itself when it is a town or above."""
    out = {}
    for code in topo.centres:
        cur = code
        while topo.centres[cur].level > 3 and topo.centres[cur].parent is not None:
            cur = topo.centres[cur].parent
        out[code] = cur
    return out


class AlertEngine:
    """The rules of one process, with what they look up per record precomputed."""

    def __init__(self, rules: Rules, topo: Topology, keys: Keys, tz: ZoneInfo) -> None:
        self.rules = rules
        self.topo = topo
        self.keys = keys
        self.tz = tz
        self._shard_centres: dict[str, list[str]] = {}
        for code, c in sorted(topo.centres.items()):
            self._shard_centres.setdefault(c.shard, []).append(code)
        # the surge's baseline per shard and hour: (hour, {centre: counts of the previous days})
        self._baseline: dict[str, tuple[str, dict[str, list[int]]]] = {}
        towns = town_map(topo)
        self._town_of_ci = [towns[code] for code in topo.order]
        self._urgent = rules.on("urgent_case")
        self._group = rules.on("petition_group")
        self._skip = rules.on("petition_skip")
        self._cams = rules.on("camera_outage")
        if self._cams:
            self._cams_k = int(self._cams["cameras"])
            self._cams_window = int(self._cams["window_min"] * 60_000)
        self._cam_condition = {t: condition("camera_outage", t) for t in set(towns.values())}
        self.event_driven = rules.any_event_rule

    # -- the batch ------------------------------------------------------------------------
    def _candidates(self, records: Iterable[tuple],
                    cam_states: Mapping[str, str | None]) -> list[tuple[str, tuple]]:
        """The records an event-driven rule looks at. Of the camera records (most of them
        heartbeats) only the changes count: a state other than online, or online after a
        state that was not; a record older than the camera's last is ignored, as the
        rollup ignores it (`cam_states`: the cameras' states before the batch)."""
        out = []
        urgent, group, skip, cams = self._urgent, self._group, self._skip, self._cams
        last: dict[str, tuple[str, int]] = {}
        for rec in records:
            k = rec[K]
            if k == "e":
                if urgent and rec[URGENCY] == "urgent" and rec[STATUS] == "reported":
                    out.append(("urgent_case", rec))
            elif k == "t":
                if group and rec[GROUP_F] == 1:
                    out.append(("petition_group", rec))
                if skip and rec[SKIP] == 1:
                    out.append(("petition_skip", rec))
            elif k == "c" and cams:
                cam, state, ts = rec[ID], rec[STATE], rec[TS]
                before = last.get(cam)
                if before is None:
                    held = cam_states.get(cam)
                    if held:
                        st, _, t = held.partition("|")
                        before = (st, int(t) if t.isdigit() else -1)
                    else:
                        before = ("", -1)
                if ts < before[1]:
                    continue
                last[cam] = (state, ts)
                if state != "online" or before[0] not in ("", "online"):
                    out.append(("camera_outage", rec))
        return out

    def needs(self, records: list[tuple], cam_states: Mapping[str, str | None] | None = None
              ) -> tuple[Needs, list[tuple[str, tuple]]]:
        """What to read for the batch, and its candidate records (kinds e, t, c only).
        `cam_states`: the cameras' states before the batch (`rollup.State.cams`)."""
        if not self.event_driven:
            return Needs(), []
        cands = self._candidates(records, cam_states or {})
        if not cands:
            return Needs(), cands
        ids: dict[str, None] = {}
        towns: dict[str, None] = {}
        conds: dict[str, None] = {}
        for rule, rec in cands:
            if rule == "camera_outage":
                town = self._town_of_ci[rec[CI]]
                if town not in towns:
                    towns[town] = None
                    conds[self._cam_condition[town]] = None
            else:
                ids[alert_id(rule, rec[CENTRE], rec[ID])] = None
        return Needs(tuple(ids), tuple(conds), tuple(towns)), cands

    def read_batch_state(self, r: redis.Redis, shard: str, needs: Needs) -> BatchState:
        st = BatchState()
        if not needs:
            return st
        pipe = r.pipeline(transaction=False)
        keys = self.keys
        asked = []
        if needs.ids:
            pipe.hmget(keys.alerts(shard), list(needs.ids))
            asked.append(keys.alerts(shard))
        if needs.conditions:
            pipe.hmget(keys.alerts_active(shard), list(needs.conditions))
            asked.append(keys.alerts_active(shard))
        if needs.towns:
            pipe.hmget(keys.alerts_cams(shard), list(needs.towns))
            asked.append(keys.alerts_cams(shard))
        got = pipe.execute(raise_on_error=False)
        for key, reply in zip(asked, got, strict=True):
            if isinstance(reply, redis.ResponseError):
                if "WRONGTYPE" in str(reply):
                    raise CorruptKey(key, str(reply))  # set aside by the aggregator
                raise reply
        replies = iter(got)
        if needs.ids:
            st.existing = {i for i, v in zip(needs.ids, next(replies), strict=True) if v}
        if needs.conditions:
            st.active = {c: v.decode() for c, v in zip(needs.conditions, next(replies),
                                                          strict=True) if v}
        if needs.towns:
            for town, raw in zip(needs.towns, next(replies), strict=True):
                st.down[town] = _down_map(raw)
        return st

    def batch_commands(self, shard: str, cands: list[tuple[str, tuple]], st: BatchState,
                       now_ms: int) -> list[list]:
        """The commands that raise the batch's alerts (pure: `st` was read before)."""
        if not cands:
            return []
        keys, hmax = self.keys, self.rules.history_max
        cmds: list[list] = []
        towns_dirty: set[str] = set()
        back: set[str] = set()  # conditions found again: their clearing stops
        for rule, rec in cands:
            if rule == "camera_outage":
                self._camera(shard, rec, st, now_ms, cmds, towns_dirty, back)
                continue
            centre, what = rec[CENTRE], rec[ID]
            r = self.rules.rules[rule]
            case = rule == "urgent_case"  # a petition is no case: its id goes in the detail
            # raised at the entry's time; an entry older than the rule's life (a replayed
            # history, a backlog caught up after an outage) raises nothing: its alert would
            # be over already, and a wall must not flash last week's petitions as new
            at = min(rec[TS], now_ms)
            if now_ms - at >= r[("max_age_h" if case else "clear_after_h")] * 3_600_000:
                continue
            aid = alert_id(rule, centre, what)
            if aid in st.existing:
                continue
            st.existing.add(aid)
            a = Alert(aid, rule, r.severity, centre, what if case else "", "raised", at,
                      detail={} if case else {"pid": what}, key=condition(rule, what))
            cmds.extend(raise_commands(keys, shard, a, hmax))
        for town in towns_dirty:
            down = st.down.get(town) or {}
            if down:
                cmds.append(["HSET", keys.alerts_cams(shard), town,
                             json.dumps(down, separators=(",", ":"))])
            else:
                cmds.append(["HDEL", keys.alerts_cams(shard), town])
        if back:
            cmds.append(["HDEL", keys.alerts_clearing(shard), *sorted(back)])
        return cmds

    def _camera(self, shard: str, rec: tuple, st: BatchState, now_ms: int, cmds: list,
                towns_dirty: set[str], back: set[str]) -> None:
        rule = self._cams
        assert rule is not None
        town = self._town_of_ci[rec[CI]]
        down = st.down.get(town)
        if down is None:
            down = st.down[town] = {}
        cam, ts = rec[ID], rec[TS]
        if rec[STATE] == "online":
            if cam in down:
                del down[cam]
                towns_dirty.add(town)
            return
        if cam not in down:
            down[cam] = ts
            towns_dirty.add(town)
        if len(down) < self._cams_k:
            return
        ckey = self._cam_condition[town]
        if ckey in st.active:
            # the condition is back (or still there): its alert stays, its clearing stops
            back.add(ckey)
            return
        window = self._cams_window
        if now_ms - ts > window:
            return  # a burst older than the window (a replay, a backlog): not happening now
        recent = sum(1 for t in down.values() if ts - window <= t <= ts)
        if recent < self._cams_k:
            return
        aid = alert_id("camera_outage", town, ts // 1000)
        st.active[ckey] = aid
        a = Alert(aid, "camera_outage", rule.severity, town, "", "raised", min(ts, now_ms),
                  detail={"down": recent, "window_min": rule["window_min"]}, key=ckey)
        cmds.extend(raise_commands(self.keys, shard, a, self.rules.history_max))


    # -- the tick: time-driven rules and every clearing --------------------------------------
    def tick_commands(self, r: redis.Redis, shard: str, now_ms: int, *,
                      top: bool = False) -> list[list]:
        """The commands of one tick of `shard` (empty when nothing changes): raise what the
        time-driven rules find, move open alerts through their hold and clear them. `top`:
        this is the top centre's shard, which also watches every shard for staleness."""
        keys, rules = self.keys, self.rules
        pipe = r.pipeline(transaction=False)
        pipe.hgetall(keys.alerts_active(shard))
        pipe.hgetall(keys.alerts_clearing(shard))
        active_raw, clearing_raw = pipe.execute()
        active = {k.decode(): v.decode() for k, v in active_raw.items()}
        clearing = {k.decode(): _int_or_none(v) for k, v in clearing_raw.items()}
        ids = list(active.values())
        open_alerts: dict[str, Alert] = {}
        cmds: list[list] = []
        if ids:
            for ckey, aid, raw in zip(active, ids, r.hmget(keys.alerts(shard), ids), strict=True):
                a = Alert.from_json(raw)
                if a is None or a.id != aid or a.state == "cleared":
                    cmds.append(["HDEL", keys.alerts_active(shard), ckey])  # not ours: dropped
                    continue
                open_alerts[ckey] = a
        # what the conditions need: open cases, down cameras, shard freshness, surges
        eids = sorted({a.eid for a in open_alerts.values()
                       if a.rule in ("urgent_case", "overdue_case") and a.eid})
        towns = sorted({a.centre for a in open_alerts.values() if a.rule == "camera_outage"})
        overdue = rules.on("overdue_case")
        pipe = r.pipeline(transaction=False)
        if eids:
            pipe.hmget(keys.cases(shard), eids)
        else:
            pipe.exists(keys.cases(shard))  # a placeholder (a cluster pipeline refuses PING)
        if towns:
            pipe.hmget(keys.alerts_cams(shard), towns)
        else:
            pipe.exists(keys.cases(shard))  # a placeholder (a cluster pipeline refuses PING)
        if overdue:
            pipe.zrangebyscore(keys.due(shard, shard), "-inf",
                               now_ms - int(overdue["hours"] * 3_600_000), start=0, num=5000)
        replies = pipe.execute()
        open_cases = {e for e, v in zip(eids, replies[0], strict=True) if v} if eids else set()
        down = {t: _down_map(v) for t, v in zip(towns, replies[1], strict=True)} if towns else {}
        raised: list[Alert] = []
        if overdue:
            self._overdue(r, shard, now_ms, overdue, [e.decode() for e in replies[2]], active,
                          raised)
        stale = self._stale(r, now_ms) if top and rules.on("stale_shard") else {}
        if stale:
            for s, (since, age) in stale.items():
                ckey = condition("stale_shard", s)
                if ckey not in active:
                    r_ = rules.rules["stale_shard"]
                    raised.append(Alert(alert_id("stale_shard", s, since // 1000), "stale_shard",
                                        r_.severity, s, "", "raised", now_ms,
                                        detail={"seconds": age}, key=ckey))
        surges = self._surges(r, shard, now_ms) if rules.on("surge") else {}
        for centre, (up, _clear, detail) in surges.items():
            ckey = condition("surge", centre)
            if up and ckey not in active:
                r_ = rules.rules["surge"]
                hour = self._hour(now_ms)
                raised.append(Alert(alert_id("surge", centre, hour), "surge", r_.severity, centre,
                                    "", "raised", now_ms, detail=detail, key=ckey))
        changed = False
        hmax = rules.history_max
        for a in raised:
            cmds.extend(raise_commands(keys, shard, a, hmax))
            changed = True
        for ckey, a in open_alerts.items():
            rule = rules.on(a.rule)
            if rule is None:
                clear_now, hold = True, 0.0
            else:
                hold = rule.hold_s
                if a.rule in ("urgent_case", "overdue_case"):
                    clear_now = a.eid not in open_cases
                elif a.rule in ("petition_group", "petition_skip"):
                    clear_now = now_ms - a.raised_at >= rule["clear_after_h"] * 3_600_000
                elif a.rule == "camera_outage":
                    clear_now = len(down.get(a.centre, {})) < rule["clear_below"]
                elif a.rule == "stale_shard":
                    clear_now = top and a.centre not in stale
                else:  # surge
                    clear_now = surges.get(a.centre, (False, True, {}))[1]
            verdict, since = hysteresis(clear_now, clearing.get(ckey), now_ms, hold)
            if verdict == "clear":
                done = replace(a, state="cleared", cleared_at=now_ms)
                cmds += [["HSET", keys.alerts(shard), a.id, done.to_json()],
                         ["HDEL", keys.alerts_active(shard), ckey],
                         ["HDEL", keys.alerts_clearing(shard), ckey],
                         _log(keys, shard, hmax, "cleared", done, now_ms)]
                changed = True
            elif verdict == "hold" and clearing.get(ckey) is None:
                cmds.append(["HSET", keys.alerts_clearing(shard), ckey, since])
            elif verdict == "keep" and ckey in clearing:
                cmds.append(["HDEL", keys.alerts_clearing(shard), ckey])
        stray = [c for c in clearing if c not in open_alerts]
        if stray:
            cmds.append(["HDEL", keys.alerts_clearing(shard), *stray])
        if not cmds:
            return []
        ticks = keys.alerts_ticks(shard)
        head = [["!ZADD", ticks, now_ms, uuid.uuid4().hex],
                ["ZREMRANGEBYSCORE", ticks, "-inf", now_ms - TICKS_KEEP_MS]]
        tail = [["HINCRBY", keys.meta(shard), "version", 1]] if changed else []
        return head + cmds + tail

    def _overdue(self, r: redis.Redis, shard: str, now_ms: int, rule: Rule, eids: list[str],
                 active: dict[str, str], raised: list[Alert]) -> None:
        new = [e for e in eids if condition("overdue_case", e) not in active]
        new = new[:int(rule["max_per_tick"])]
        if not new:
            return
        held = r.hmget(self.keys.cases(shard), new)
        for eid, raw in zip(new, held, strict=True):
            if not raw:
                continue
            parts = raw.decode("utf-8", "replace").split("|", 2)
            if len(parts) < 3 or not parts[0].lstrip("-").isdigit():
                continue
            due, centre = int(parts[0]), parts[2].split(",")[0]
            if centre not in self.topo.centres:
                continue
            hours = max(0, (now_ms - due) // 3_600_000)
            raised.append(Alert(alert_id("overdue_case", centre, eid), "overdue_case",
                                rule.severity, centre, eid, "raised", now_ms,
                                detail={"hours": int(hours)}, key=condition("overdue_case", eid)))

    def _stale(self, r: redis.Redis, now_ms: int) -> dict[str, tuple[int, int]]:
        """Shard → (since when, seconds) of the shards whose aggregator heartbeat, or whose
        newest waiting entry, is older than the rule's limit. A shard that never had an
        aggregator (no heartbeat) is not stale: nothing was expected of it yet."""
        rule = self.rules.rules["stale_shard"]
        limit = int(rule["after_s"] * 1000)
        shards = list(self.topo.shards)
        pipe = r.pipeline(transaction=False)
        for s in shards:
            pipe.hmget(self.keys.meta(s), ["heartbeat", "applied_at"])
            for kind in STREAM_KINDS:
                pipe.xrevrange(self.keys.stream(s, kind), count=1)
        replies = pipe.execute(raise_on_error=False)
        out = {}
        step = 1 + len(STREAM_KINDS)
        for i, s in enumerate(shards):
            meta = replies[i * step]
            if not isinstance(meta, list):
                continue
            beat, applied = (_int_or_none(v) for v in meta)
            if beat is None:
                continue
            since = None
            if now_ms - beat > limit:
                since = beat
            else:
                newest = [_entry_ms(x[0][0]) for x in replies[i * step + 1:(i + 1) * step]
                          if isinstance(x, list) and x]
                waiting = [t for t in newest if t > (applied or 0)]
                if waiting and now_ms - min(waiting) > limit:
                    since = min(waiting)
            if since is not None:
                out[s] = (since, int((now_ms - since) // 1000))
        return out

    def _hour(self, ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, self.tz).strftime("%Y%m%d%H")

    def _surges(self, r: redis.Redis, shard: str, now_ms: int) -> dict[str, tuple[bool, bool, dict]]:
        """Centre → (raise, clear, detail) of the surge rule for the centres of `shard`."""
        rule = self.rules.rules["surge"]
        centres = self._shard_centres.get(shard, [])
        hour = self._hour(now_ms)
        cached = self._baseline.get(shard)
        if cached is None or cached[0] != hour:
            cached = (hour, self._read_baseline(r, shard, now_ms, centres, int(rule["days"])))
            self._baseline[shard] = cached
        base = cached[1]
        pipe = r.pipeline(transaction=False)
        for c in centres:
            pipe.hget(self.keys.hour(shard, hour, c), "reported")
        counts = [_int_or_none(v) or 0 for v in pipe.execute(raise_on_error=False)]
        return {c: surge_state(n, base.get(c, []), rule) for c, n in zip(centres, counts, strict=True)}

    def _read_baseline(self, r: redis.Redis, shard: str, now_ms: int, centres: list[str],
                       days: int) -> dict[str, list[int]]:
        """The same hour's reports of every centre on the previous days whose hour figures
        are still kept (the shard's own hour hash exists: a centre without one had none)."""
        hours = [self._hour(now_ms - d * 86_400_000) for d in range(1, days + 1)]
        pipe = r.pipeline(transaction=False)
        for h in hours:
            pipe.exists(self.keys.hour(shard, h, shard))
            for c in centres:
                pipe.hget(self.keys.hour(shard, h, c), "reported")
        replies = pipe.execute(raise_on_error=False)
        out: dict[str, list[int]] = {c: [] for c in centres}
        step = 1 + len(centres)
        for i, _h in enumerate(hours):
            if replies[i * step] != 1:
                continue
            for j, c in enumerate(centres):
                out[c].append(_int_or_none(replies[i * step + 1 + j]) or 0)
        return out

    def prune_commands(self, r: redis.Redis, shard: str, now_ms: int) -> list[list]:
        """Drop cleared alerts older than `keep_cleared_days` (their history stays in the log)."""
        cut = now_ms - int(self.rules.keep_cleared_days * 86_400_000)
        old = []
        for aid, raw in r.hscan_iter(self.keys.alerts(shard), count=500):
            a = Alert.from_json(raw)
            if a is None or (a.state == "cleared" and a.cleared_at < cut):
                old.append(aid.decode("utf-8", "surrogateescape"))
        return [["HDEL", self.keys.alerts(shard), *old[i:i + 2000]]
                for i in range(0, len(old), 2000)]

    # -- acknowledgements from the console stream ------------------------------------------
    def ack_commands(self, r: redis.Redis, shard: str, entries: list[tuple[str, dict[str, str]]],
                     now_ms: int) -> tuple[list[list], list[tuple[int, str]]]:
        """The commands applying the console's ack requests `entries` (entry id, fields), and
        the requests refused: (index, reason) for the dead-letter stream. An ack of an alert
        already acknowledged or cleared changes nothing."""
        bad: list[tuple[int, str]] = []
        wanted: list[tuple[int, str, str, int]] = []
        for i, (entry_id, f) in enumerate(entries):
            reason = check_ack(f)
            if reason:
                bad.append((i, reason))
                continue
            ms = _entry_ms(entry_id)
            wanted.append((i, f["id"], f["user"], min(ms, now_ms) if ms else now_ms))
        if not wanted:
            return [], bad
        ids = list(dict.fromkeys(w[1] for w in wanted))
        stored = dict(zip(ids, (Alert.from_json(v) for v in r.hmget(self.keys.alerts(shard), ids)),
                          strict=True))
        cmds: list[list] = []
        for i, aid, user, at in wanted:
            a = stored.get(aid)
            if a is None or a.id != aid:
                bad.append((i, f"unknown alert: {aid}"))
                continue
            if a.state != "raised":
                continue  # acknowledged already, or cleared: once is enough
            done = replace(a, state="acknowledged", acked_by=user, acked_at=at)
            stored[aid] = done
            cmds += [["HSET", self.keys.alerts(shard), aid, done.to_json()],
                     _log(self.keys, shard, self.rules.history_max, "acknowledged", done, at,
                          user)]
        if cmds:
            cmds.append(["HINCRBY", self.keys.meta(shard), "version", 1])
        bad.sort()
        return cmds, bad


def check_ack(f: Mapping[str, str]) -> str:
    """Why a console entry is not a well-formed ack request ("" when it is)."""
    if f.get("v") != "1":
        return "unsupported version"
    if f.get("action") != "ack":
        return f"unknown action: {str(f.get('action'))[:32]!r}"
    aid = f.get("id") or ""
    if not ID_RE.match(aid):
        return "bad alert id"
    try:
        check_user(f.get("user"))
    except AlertError as exc:
        return str(exc)
    return ""


def _int_or_none(v: bytes | str | None) -> int | None:
    if v is None:
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _entry_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms = text.split("-", 1)[0]
    return int(ms) if ms.isdigit() else 0


def _down_map(raw: bytes | None) -> dict[str, int]:
    if not raw:
        return {}
    try:
        d = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(d, dict):
        return {}
    return {str(k): int(v) for k, v in d.items()
            if isinstance(v, int) and not isinstance(v, bool)}


# ---- hysteresis and the surge's statistics (pure) -----------------------------------------
def hysteresis(clear_now: bool, clearing_since: int | None, now_ms: int,
               hold_s: float) -> tuple[str, int | None]:
    """One step of an open alert's clearing: ("clear", None) when the condition has been clear
    for the hold; ("hold", since) while it is clear but not yet long enough (since: when it was
    first found clear); ("keep", None) when the condition is there (the hold starts again)."""
    if not clear_now:
        return "keep", None
    since = now_ms if clearing_since is None else clearing_since
    if now_ms - since >= hold_s * 1000:
        return "clear", None
    return "hold", since


def surge_limits(samples: list[int], sigma: float, clear_sigma: float) -> tuple[float, float, float]:
    """(mean, raise above, clear at or below) of an hour's count over the previous days."""
    n = len(samples)
    mean = sum(samples) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in samples) / n)
    return mean, mean + sigma * sd, mean + clear_sigma * sd


def surge_state(count: int, samples: list[int], rule: Rule) -> tuple[bool, bool, dict]:
    """(raise, clear, detail) of a centre's reports this hour against `samples`."""
    if len(samples) < rule["min_days"]:
        return False, True, {}
    mean, high, low = surge_limits(samples, rule["sigma"], rule["clear_sigma"])
    detail = {"count": count, "mean": round(mean, 1), "threshold": round(high, 1)}
    return count >= rule["min_count"] and count > high, count <= low, detail


# ---- the readers (web, CLI) ------------------------------------------------------------------
def _in_scope(topo: Topology, centre: str, code: str | None) -> bool:
    if code is None:
        return True
    return centre in topo.centres and topo.is_within(centre, code)


def _shard_alerts(r: redis.Redis, keys: Keys, shards: list[str],
                  open_only: bool) -> list[Alert]:
    pipe = r.pipeline(transaction=False)
    for shard in shards:
        pipe.hvals(keys.alerts_active(shard) if open_only else keys.alerts(shard))
    replies = pipe.execute(raise_on_error=False)
    out: list[Alert] = []
    if open_only:
        pipe = r.pipeline(transaction=False)
        asked = []
        for shard, ids in zip(shards, replies, strict=True):
            if isinstance(ids, list) and ids:
                pipe.hmget(keys.alerts(shard), ids)
                asked.append(shard)
        replies = pipe.execute(raise_on_error=False) if asked else []
    for values in replies:
        if isinstance(values, list):
            out.extend(a for a in map(Alert.from_json, values) if a is not None)
    return out


def list_alerts(r: redis.Redis, topo: Topology, keys: Keys, code: str | None = None,
                states: Iterable[str] = OPEN_STATES, limit: int = 200) -> list[Alert]:
    """The alerts of the centres in `code`'s subtree (all when None) in `states`:
    unacknowledged first, then newest. An alert may live in another shard than its centre's
    (a stale shard's alert is raised on the top centre's shard), so every shard is read."""
    if code is not None and code not in topo.centres:
        raise AlertError(f"unknown centre: {str(code)[:64]}")
    wanted = frozenset(states)
    open_only = wanted <= frozenset(OPEN_STATES)
    found = [a for a in _shard_alerts(r, keys, list(topo.shards), open_only)
             if a.state in wanted]
    return alerts_within(found, topo, code, limit)


def alerts_within(found: Iterable[Alert], topo: Topology, code: str | None,
                  limit: int = 200) -> list[Alert]:
    """Of `found`, the alerts of the centres in `code`'s subtree (all when None),
    unacknowledged first, then newest (pure: a web worker reads every shard's alerts once per
    version and picks each screen's from them, not every shard once per screen)."""
    out = [a for a in found if _in_scope(topo, a.centre, code)]
    out.sort(key=lambda a: (a.state != "raised", -a.raised_at, a.id))
    return out[:max(0, limit)]


def _find(r: redis.Redis, topo: Topology, keys: Keys, alert_id: str) -> tuple[str, Alert] | None:
    if not isinstance(alert_id, str) or not ID_RE.match(alert_id):
        return None
    pipe = r.pipeline(transaction=False)
    shards = list(topo.shards)
    for shard in shards:
        pipe.hget(keys.alerts(shard), alert_id)
    for shard, raw in zip(shards, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(raw, bytes):
            a = Alert.from_json(raw)
            if a is not None and a.id == alert_id:
                return shard, a
    return None


def get_alert(r: redis.Redis, topo: Topology, keys: Keys, alert_id: str) -> Alert | None:
    found = _find(r, topo, keys, alert_id)
    return found[1] if found else None


def check_user(user: object) -> str:
    if not isinstance(user, str) or not user or len(user) > MAX_USER or not user.isprintable():
        raise AlertError("the user must be 1–64 printable characters")
    return user


def request_ack(r: redis.Redis, topo: Topology, keys: Keys, alert_id: str, user: str,
                now_ms: int) -> None:
    """Ask the aggregator to acknowledge `alert_id` for `user` (the console stream of the
    alert's shard); it applies the request once and writes who and when to the history."""
    check_user(user)
    found = _find(r, topo, keys, alert_id)
    if found is None:
        raise AlertError(f"unknown alert: {str(alert_id)[:MAX_ALERT_ID]}")
    shard, a = found
    if a.state == "cleared":
        raise AlertError(f"alert {a.id} is cleared")
    r.xadd(keys.console(shard), {"v": "1", "ts": str(now_ms), "src": SRC, "action": "ack",
                                 "id": a.id, "user": user})


def alert_history(r: redis.Redis, topo: Topology, keys: Keys, code: str | None = None,
                  count: int = 100) -> list[dict]:
    """The newest `count` history entries (raised, acknowledged with who, cleared) of the
    alerts of `code`'s subtree (all when None), newest first."""
    if code is not None and code not in topo.centres:
        raise AlertError(f"unknown centre: {str(code)[:64]}")
    pipe = r.pipeline(transaction=False)
    shards = list(topo.shards)
    for shard in shards:
        pipe.xrevrange(keys.alert_log(shard), count=max(1, count) * 4 if code else max(1, count))
    rows: list[tuple[tuple[int, int], dict]] = []
    for reply in pipe.execute(raise_on_error=False):
        if not isinstance(reply, list):
            continue
        for entry_id, fields in reply:
            row = _history_row(entry_id, fields)
            if row is not None and _in_scope(topo, row["centre"], code):
                ms, _, seq = row["entry"].partition("-")
                rows.append(((int(ms), int(seq or 0)), row))
    rows.sort(key=lambda x: x[0], reverse=True)
    return [row for _k, row in rows[:max(0, count)]]


def _history_row(entry_id: bytes | str, fields: Mapping) -> dict | None:
    try:
        f = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                           else v) for k, v in fields.items()}
        eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        row = {"entry": eid, "event": f["event"], "id": f["id"], "rule": f["rule"],
               "severity": f["severity"], "centre": f["centre"], "eid": f.get("eid", ""),
               "at": int(f["at"]), "by": f.get("by", "")}
    except (KeyError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    if row["event"] not in ALERT_STATES or not ID_RE.match(row["id"]):
        return None
    return row
