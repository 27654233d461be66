"""wall_screen is pure: a synthetic topology + snapshot (no Redis) → components with the
data-* contract of assets/wall.js, every string from the catalogue, data as plain text."""

from __future__ import annotations

import json

import pytest

from datasources.topology import build_topology
from layouts import viewmodel
from layouts import wall_ids as wid
from layouts.formats import fmt, raw
from layouts.i18n import CLIENT_KEYS, STRINGS, t
from layouts.wall import wall_screen
from tests.components import walk

HOSTILE = "<script>alert(1)</script>"


def topology(child_names=("北区", "南区", "东区")):
    rows = [("100", "测试市", 1, None, None, None, None)]
    rows += [(f"1{i:02d}", name, 2, "100", None, None, None) for i, name in enumerate(child_names, 1)]
    rows += [("101001", "一村", 3, "101", None, None, None)]
    grids = [(f"g{i}", c, "urban", 1) for i, c in enumerate(["101001", "102", "103"])]
    cams = [("c1", "101001", "dome"), ("c2", "102", "face")]
    return build_topology(rows, grids, cams)


def figures(seed: int) -> dict:
    return {
        "events": {
            "reported": 1200 + seed, "dispatched": 3, "handling": 4, "resolved": 1100,
            "evaluated": 5, "escalated": 6, "urgent": 7, "open": 90, "overdue": seed % 3,
            "by_category": {"dispute": 3, "security": 2, "fire": 1, "sanitation": 0,
                            "special_population": 0, "citizen_request": 5, "other": 1},
            "by_channel": {"grid_worker": 4, "hotline_12345": 3, "video": 2, "public": 1,
                           "police_110": 0},
            "resolution_rate": 0.9167, "satisfaction_rate": None,
            "closed_at_level": {"village": 5, "town": 3, "district": 1, "city": 0},
        },
        "grids": {"total": 30, "urban": 20, "rural": 10, "staffed": 29, "workers": 33,
                  "patrolled_today": 28, "patrolled_full": 20, "coverage": 0.9333,
                  "full_coverage": 0.6667, "workers_on_duty": 25, "patrols": 50},
        "cameras": {"total": 40, "online": 37, "offline": 2, "fault": 1, "unknown": 0,
                    "online_rate": 0.925, "failures_today": 1,
                    "by_kind": {k: {"total": 8, "online": 7, "offline": 1, "fault": 0,
                                    "online_rate": 0.875}
                                for k in ("dome", "face", "checkpoint", "smart", "integrated")}},
        "petitions": {"today": 4, "by_channel": {"letter": 1, "visit": 2, "online": 1},
                      "group": 1, "skip_level": 0},
    }


def snapshot(topo, code: str) -> dict:
    own = figures(0)
    days = [f"2026-11-{d:02d}" for d in range(1, 31)]
    trend = [{"day": d, "total": 3, "letter": 1, "visit": 1, "online": 1} for d in days]
    own["petitions"]["trend_7d"] = trend[-7:]
    own["petitions"]["trend_30d"] = trend
    own["trend"] = {"hours": [f"{h:02d}" for h in range(24)],
                    "today": {"reported": list(range(24)), "resolved": [0] * 24, "petitions": [0] * 24},
                    "yesterday": {"reported": [1] * 24, "resolved": [0] * 24, "petitions": [0] * 24}}
    own["index"] = 88.25
    children = {}
    for i, ch in enumerate(topo.children.get(code, ())):
        info = topo.centres[ch]
        children[ch] = {"name": info.name, "level": info.level, "reported": 10 + i, "resolved": 9,
                        "open": 1, "overdue": i % 2, "resolution_rate": 0.9,
                        "satisfaction_rate": None, "grids": 1, "patrolled_today": 1,
                        "coverage": 1.0, "workers_on_duty": 1, "cameras": 1,
                        "cameras_online": 1, "online_rate": None if i == 2 else 0.8 + i / 100,
                        "petitions": i, "index": 90.0 - i}
    info = topo.centres[code]
    return {"code": code, "name": info.name, "level": info.level, "parent": info.parent,
            "day": "2026-11-22", **own, "base": {"registered_population": 1000, "houses": 300},
            "children": children, "version": 3, "versions": {"100": 3},
            "shards": {"100": {"version": 3, "applied_at": 1_000, "heartbeat": 1_000,
                               "last_ts": 1_000, "dead": 0}},
            "as_of": 1_000}


def vm_for(code: str = "100", names=("北区", "南区", "东区")) -> dict:
    topo = topology(names)
    return viewmodel.build(snapshot(topo, code), topo, 4_000)


def props(c) -> dict:
    return c.to_plotly_json()["props"]


def resolve(vm: dict, path: str, keys: list | None = None) -> list:
    """The path syntax of meta.series / meta.x (as assets/wall.js reads it)."""
    if path.endswith("{}"):
        d = vm[path[:-2]]
        return [d[k] for k in (keys or list(d))]
    if "[]." in path:
        rows, field = path.split("[].")
        return [r[field] for r in vm[rows]]
    cur = vm
    for part in path.split("."):
        cur = cur[part]
    return cur


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_pure001_every_headline_exactly_once_with_raw_value_and_text(lang):
    vm = vm_for()
    seen = {}
    for c in walk(wall_screen(vm, lang)):
        p = props(c)
        if "data-figure" in p:
            path = p["data-figure"]
            assert path not in seen, f"{path} twice"
            seen[path] = p
    assert set(seen) == set(viewmodel.HEADLINES)
    for path, p in seen.items():
        value = vm["figures"][path]
        assert p["data-value"] == raw(value)
        assert p["data-format"] == viewmodel.HEADLINES[path]
        assert p["children"] == fmt(value, viewmodel.HEADLINES[path])


def test_pure002_rows_and_child_figures_for_every_child():
    vm = vm_for()
    rows = {}
    for c in walk(wall_screen(vm, "zh")):
        p = props(c)
        if "data-rank-row" in p:
            fields = {props(x)["data-field"]: props(x) for x in walk(c)
                      if "data-field" in props(x)}
            rows[p["data-rank-row"]] = fields
            assert "order" in p["style"]
    assert list(rows) == [ch["code"] for ch in vm["children"]]
    for ch in vm["children"]:
        assert set(rows[ch["code"]]) == set(viewmodel.CHILD_FIGURES)
        for f, p in rows[ch["code"]].items():
            assert p["data-child"] == ch["code"]
            assert p["data-value"] == raw(ch[f])
            assert p["data-format"] == viewmodel.CHILD_FIGURES[f]


def test_pure003_root_carries_centre_lang_and_client_strings():
    for lang in ("zh", "en"):
        root = props(wall_screen(vm_for(), lang))
        assert root["data-centre"] == "100" and root["data-lang"] == lang
        strings = json.loads(root["data-i18n"])
        assert set(CLIENT_KEYS) <= set(strings)
        assert strings["stale"] == t("stale", lang)
        assert "{n}" in strings["ago_s"]


def test_pure004_charts_have_constant_ids_and_resolvable_meta():
    vm = vm_for()
    graphs = {props(c)["id"]: props(c) for c in walk(wall_screen(vm, "zh"))
              if type(c).__name__ == "Graph"}
    assert set(graphs) == set(wid.CHARTS)
    for gid, p in graphs.items():
        assert p["config"]["displayModeBar"] is False, gid
        assert p["style"] == {"height": "100%", "width": "100%"}
        for tr in p["figure"]["data"]:
            meta = tr["meta"]
            horizontal = tr.get("orientation") == "h"
            values, cats = (tr["x"], tr["y"]) if horizontal else (tr["y"], tr["x"])
            keys = list(cats) if meta["series"].endswith("{}") else None
            assert resolve(vm, meta["series"], keys) == list(values), (gid, meta)
            if not meta["x"].endswith("{}"):
                assert resolve(vm, meta["x"]) == list(cats), (gid, meta)


def test_pure005_a_centre_without_children_renders():
    vm = vm_for("101001")
    assert vm["children"] == []
    screen = wall_screen(vm, "en")
    texts = [c.children for c in walk(screen) if isinstance(getattr(c, "children", None), str)]
    assert t("no_children", "en") in texts
    assert not [c for c in walk(screen) if "data-rank-row" in props(c)]
    ids = {props(c).get("id") for c in walk(screen)}
    assert wid.MAP_AREA in ids


def test_pure006_hostile_names_stay_plain_text():
    vm = vm_for(names=(HOSTILE, "南区", "东区"))
    vm["name"] = HOSTILE
    screen = wall_screen(vm, "zh")
    texts = [c.children for c in walk(screen) if isinstance(getattr(c, "children", None), str)]
    assert HOSTILE in texts
    for c in walk(screen):
        assert "dangerouslySetInnerHTML" not in props(c)
        assert type(c).__name__ not in ("Script", "Iframe", "Markdown")


def test_pure007_breadcrumb_links_keep_the_language():
    vm = vm_for("101001")
    links = [props(c)["href"] for c in walk(wall_screen(vm, "en")) if type(c).__name__ == "A"]
    assert links == ["?centre=100&lang=en", "?centre=101&lang=en", "?centre=101001&lang=en"]
    links = [props(c)["href"] for c in walk(wall_screen(vm, "zh")) if type(c).__name__ == "A"]
    assert links[-1] == "?centre=101001"


def test_pure008_formats():
    assert fmt(1234, "int") == "1,234"
    assert fmt(0.9668, "pct") == "96.7%"
    assert fmt(1.0, "pct") == "100.0%"
    assert fmt(None, "pct") == fmt(None, "int") == fmt(None, "index") == "—"
    assert fmt(92.44, "index") == "92.4"
    assert raw(None) == "" and raw(0.9668) == "0.9668"


def test_pure009_catalogue_is_complete():
    for key, entry in STRINGS.items():
        assert entry.get("zh") and entry.get("en"), key
    assert t("ago_s", "en", n=3) == "3 s ago"
    assert t("unknown_centre", "zh", code="X") == "未找到中心代码 X"
    assert t("missing-key", "en") == "missing-key"
