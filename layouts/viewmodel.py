"""The wall's view model: what a screen shows, derived from `snapshot(code)` (pure).

The same dict renders the page (layouts) and travels to the browser on every change (the
live stream sends only its top-level keys that changed); `assets/wall.js` writes its values
into the elements that carry `data-figure="<path>"` and into the chart traces whose
`meta.series` names a list here. Keep it flat and small: it is sent to every screen.
"""

from __future__ import annotations

from typing import Any

from datasources.contract import CLOSED_LEVELS, SEVERITIES
from datasources.keys import UP
from datasources.registry import LEVEL_OF
from datasources.topology import Topology
from datasources.vocabulary import DEFAULT, Vocabulary
from layouts.i18n import t

# Every headline figure on screen: its snapshot path and how it is formatted.
HEADLINES: dict[str, str] = {
    "events.reported": "int",
    "events.open": "int",
    "events.resolved": "int",
    "events.overdue": "int",
    "events.urgent": "int",
    "events.escalated": "int",
    "events.supervised": "int",  # 督办数 today (issue 10)
    "events.resolution_rate": "pct",
    "events.satisfaction_rate": "pct",
    "grids.total": "int",
    "grids.staffed": "int",
    "grids.workers": "int",
    "grids.workers_on_duty": "int",
    "grids.patrolled_today": "int",
    "grids.patrolled_full": "int",
    "grids.coverage": "pct",
    "grids.full_coverage": "pct",
    "cameras.total": "int",
    "cameras.online": "int",
    "cameras.offline": "int",
    "cameras.fault": "int",
    "cameras.online_rate": "pct",
    "petitions.today": "int",
    "petitions.group": "int",
    "petitions.skip_level": "int",
    "index": "index",
}

CHILD_FIGURES: dict[str, str] = {
    "index": "index",
    "reported": "int",
    "open": "int",
    "overdue": "int",
    "supervised": "int",
    "resolution_rate": "pct",
    "coverage": "pct",
    "online_rate": "pct",
    "petitions": "int",
}


# Figures a read model written before they existed does not hold yet: shown as 0.
OPTIONAL_HEADLINES = frozenset({"events.supervised"})
OPTIONAL_CHILD_FIGURES = frozenset({"supervised"})


def _path(snap: dict, path: str) -> Any:
    cur: Any = snap
    for part in path.split("."):
        if path in OPTIONAL_HEADLINES and (not isinstance(cur, dict) or part not in cur):
            return 0
        cur = cur[part]
    return cur


def source_name(src: str) -> str:
    """How freshness names a figures source (`topology.sources`): a shard by its name, a
    roll-up (`^CODE`) by its centre, the code a screen's children rows carry as `shard`
    (assets/wall.js marks a row stale by it)."""
    return src.removeprefix(UP)


def breadcrumb(topo: Topology, code: str) -> list[dict]:
    return [{"code": c, "name": topo.centres[c].name, "level": topo.centres[c].level}
            for c in topo.ancestors(code)]


def build(snap: dict, topo: Topology, now_ms: int) -> dict:
    """The view model of one centre's screen."""
    code = snap["code"]
    children = [
        {"code": c, "name": f["name"], "level": f["level"],
         "shard": topo.centres[c].shard,
         **{k: f.get(k, 0) if k in OPTIONAL_CHILD_FIGURES else f[k] for k in CHILD_FIGURES}}
        for c, f in snap["children"].items()
    ]
    children.sort(key=lambda x: (-(x["index"] or 0), x["code"]))
    worst_cameras = sorted(
        (c for c in children if c["online_rate"] is not None),
        key=lambda x: (x["online_rate"], x["code"]),
    )[:5]
    ev = snap["events"]
    return {
        "code": code,
        "name": snap["name"],
        "level": snap["level"],
        "day": snap["day"],
        "breadcrumb": breadcrumb(topo, code),
        "figures": {p: _path(snap, p) for p in HEADLINES},
        "by_category": ev["by_category"],
        "by_channel": ev["by_channel"],
        "closed_at_level": ev["closed_at_level"],
        "cameras_by_kind": {k: v["online_rate"] for k, v in snap["cameras"]["by_kind"].items()},
        "hourly": {
            "hours": snap["trend"]["hours"],
            # hours still to come are gaps, not zeros
            "today": [v if i <= snap["trend"].get("current_hour", 23) else None
                      for i, v in enumerate(snap["trend"]["today"]["reported"])],
            "yesterday": snap["trend"]["yesterday"]["reported"],
        },
        "petitions_7d": snap["petitions"]["trend_7d"],
        "petitions_30d": snap["petitions"]["trend_30d"],
        "children": children,
        "worst_cameras": [c["code"] for c in worst_cameras],
        "base": snap.get("base", {}),
        "freshness": {"now": now_ms, "as_of": snap["as_of"],
                      "shards": {source_name(s): m for s, m in snap["shards"].items()}},
        "version": snap["version"],
        "demo": snap.get("demo"),
        # the region's labels and colours of categories, channels and camera kinds (the
        # charts' and embeds' labels; sent to a browser once, it changes with the registry)
        "vocab": topo.vocab.to_plain(),
    }


def vocab_of(vm: dict) -> Vocabulary:
    """The vocabulary a view model carries (`DEFAULT` for one built without it)."""
    plain = vm.get("vocab")
    return DEFAULT if plain is None else Vocabulary.from_plain(plain)


def tier_name(vm: dict, level: object, lang: str) -> str:
    """The region's name of a tier (its vocabulary's `tier` terms): `level` is a level (0 …
    4) or a level's name as the read model's closed_at_level keys it ("town")."""
    return vocab_of(vm).tier_name(LEVEL_OF.get(level, level), lang)  # type: ignore[arg-type]


def centre_tier(vm: dict, lang: str) -> str:
    """The centre card's tier: 区县综治中心, or 县综治中心 in a region that names it 县."""
    return t("centre_of_tier", lang, tier=tier_name(vm, vm["level"], lang))


def closed_keys(vm: dict) -> list[str]:
    """The closed-at-tier figures the view model carries (its region's tiers), bottom up."""
    levels = vm["closed_at_level"]
    return [k for k in CLOSED_LEVELS if k in levels] + [k for k in levels if k not in CLOSED_LEVELS]


def demo_note(vm: dict, lang: str) -> str | None:
    """The label of simulated figures ("演示数据 · 办理流程加速 ×60"), None for real ones."""
    demo = vm.get("demo")
    if not demo:
        return None
    speed = demo.get("speed") or 1
    if speed == 1:
        return t("demo_data", lang)
    return t("demo_data_speed", lang, speed=f"{speed:g}")


def diff(old: dict | None, new: dict) -> dict:
    """Top-level keys of `new` whose value differs from `old` (all of them when old is None)."""
    if old is None:
        return new
    return {k: v for k, v in new.items() if old.get(k) != v}


# -- the wall as a command post (issue 10): alerts, directives ---------------------------
# The panel an alert of each rule marks on the wall (rules: datasources/contract.py).
ALERT_PANELS: dict[str, str] = {
    "urgent_case": "events", "overdue_case": "events", "surge": "events",
    "petition_group": "petitions", "petition_skip": "petitions",
    "camera_outage": "cameras", "stale_shard": "map",
}
MAX_STRIP_ALERTS = 60  # the strip shows what fits and counts the rest: never more than this


def shown_region(topo: Topology, code: str, centre: object) -> str | None:
    """The region drawn on the map of `code` that holds `centre`: the child of `code` on its
    path, `code` itself, or None when `centre` is not in `code`'s subtree."""
    if not isinstance(centre, str) or centre not in topo.centres or code not in topo.centres:
        return None
    path = topo.ancestors(centre)
    if code not in path:
        return None
    i = path.index(code)
    return path[i + 1] if i + 1 < len(path) else code


def alert_rows(alerts: list[dict], topo: Topology, code: str,
               limit: int = MAX_STRIP_ALERTS) -> dict:
    """The wall's alert strip of `code`: its unacknowledged alerts (dicts of
    datasources.alerts.Alert.to_dict), newest first, each with the region that holds its
    centre on this map and the panel it marks. Language-neutral (the browser formats the
    message from the catalogue strings in data-i18n): one entry per shard version serves
    every screen. `total` counts all of them, `rows` holds at most `limit`; `panels` and
    `regions` give the worst severity per marked panel and per map region over all of them."""
    rows = []
    for a in alerts:
        if a.get("state") != "raised":
            continue
        region = shown_region(topo, code, a.get("centre"))
        if region is None:
            continue
        detail = a.get("detail") if isinstance(a.get("detail"), dict) else {}
        rows.append({
            "id": str(a["id"]), "rule": str(a.get("rule", "")),
            "severity": str(a.get("severity", "minor")), "centre": a["centre"],
            "name": topo.centres[a["centre"]].name, "region": region,
            "eid": str(a.get("eid") or ""), "raised_at": int(a.get("raised_at") or 0),
            "panel": ALERT_PANELS.get(str(a.get("rule")), "map"),
            "detail": {str(k): v for k, v in detail.items()
                       if isinstance(v, (int, float, str)) and not isinstance(v, bool)},
        })
    rows.sort(key=lambda x: (-x["raised_at"], x["id"]))
    return {"code": code, "total": len(rows), "rows": rows[:limit],
            "panels": _worst(rows, "panel"), "regions": _worst(rows, "region")}


def _worst(rows: list[dict], field: str) -> dict[str, str]:
    """`field` value → the most severe severity among `rows` (all of them, not only the
    rows the strip has room for): what the panels and the map's pulses show."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    out: dict[str, str] = {}
    for row in rows:
        sev = row["severity"] if row["severity"] in rank else SEVERITIES[-1]
        key = row[field]
        if key not in out or rank[sev] < rank[out[key]]:
            out[key] = sev
    return out


def directive_view(directive: dict | None, topo: Topology, scope: str) -> dict | None:
    """What a wall of the viewer `scope` does with a group's directive (wallcontrol
    Directive.to_dict): the directive, or None when its centre is outside the viewer's scope
    (the wall ignores it) or unknown."""
    if not directive:
        return None
    centre = directive.get("centre")
    if not isinstance(centre, str) or centre not in topo.centres or scope not in topo.centres:
        return None
    if not topo.is_within(centre, scope):
        return None
    return {k: directive.get(k) for k in ("group", "seq", "centre", "case", "alert", "at")}
