"""datasources/geo.py and the pure parts of layouts/map.py, on the demo registry."""

from __future__ import annotations

import json

import pytest

from datasources.geo import (
    JITTER_DEG,
    build_geo,
    compact_geometry,
    jitter,
    parse_recent,
)
from layouts.map import (
    CAMERA_COLORS,
    hideouts,
    live_props,
    map_ids,
    map_payload,
    map_view,
    regions_hideout,
)


def _inside(bounds, inner) -> bool:
    (s, w), (n, e) = bounds
    (s2, w2), (n2, e2) = inner
    return s <= s2 and w <= w2 and n >= n2 and e >= e2


def test_children_of_the_city_are_its_four_districts(geo, topo):
    city = topo.roots[0]
    fc = geo.children_features(city)
    assert fc["type"] == "FeatureCollection"
    codes = [f["properties"]["code"] for f in fc["features"]]
    assert codes == sorted(topo.children[city]) and len(codes) == 4
    for f in fc["features"]:
        assert f["properties"]["level"] == 2
        assert f["properties"]["name"] == topo.centres[f["properties"]["code"]].name
        assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert geo.children_features(city) is fc  # memoised: one build per drill target


def test_bounds_contain_the_children(geo, topo):
    city = topo.roots[0]
    for parent in (city, topo.children[city][0], topo.children[topo.children[city][0]][0]):
        b = geo.bounds(parent)
        assert b[0][0] < b[1][0] and b[0][1] < b[1][1]
        for ch in topo.children[parent]:
            # the demo subdivides real boundaries: a child lies within its parent (± rounding)
            (s, w), (n, e) = geo.bounds(ch)
            assert _inside([[b[0][0] - 1e-4, b[0][1] - 1e-4], [b[1][0] + 1e-4, b[1][1] + 1e-4]],
                           [[s, w], [n, e]])


def test_coordinates_are_rounded_to_five_decimals():
    g = compact_geometry(json.dumps({"type": "Polygon", "coordinates": [[
        [109.1234567, 35.0000001], [109.2, 35.0], [109.2, 35.1], [109.1234567, 35.0000001]]]}))
    assert g["coordinates"][0][0] == [109.12346, 35.0]
    assert compact_geometry(None) is None


def test_grids_and_cameras_of_a_village(geo, topo):
    village = next(c for c, i in sorted(topo.centres.items()) if i.level == 4)
    grids = geo.grids_features(village)["features"]
    assert sorted(f["properties"]["id"] for f in grids) == sorted(
        g for g, c in topo.grid_centre.items() if c == village)
    assert {f["properties"]["kind"] for f in grids} <= {"urban", "rural"}
    cams = geo.cameras_features(village)["features"]
    assert [f["properties"]["i"] for f in cams] == list(range(len(cams)))
    assert sorted(f["properties"]["id"] for f in cams) == sorted(
        c for c, (centre, _k) in topo.camera.items() if centre == village)
    # the city's cameras are every camera; grids are drawn only at level 4
    assert len(geo.cameras_features(topo.roots[0])["features"]) == len(topo.camera)
    assert geo.grids_features(topo.roots[0])["features"] == []


def test_unknown_centre_is_a_clear_error(geo):
    with pytest.raises(KeyError, match="unknown centre"):
        geo.bounds("nope")


def test_build_geo_from_rows_without_geometry():
    g = build_geo([("1", "City", 1, None, None, 100.0, 30.0)], [], [])
    assert g.bounds("1") == [[29.99, 99.99], [30.01, 100.01]]
    assert g.children_features("1")["features"] == []


def test_jitter_is_deterministic_and_small():
    a, b = jitter("E-1"), jitter("E-1")
    assert a == b and jitter("E-2") != a
    assert all(abs(x) <= JITTER_DEG for x in a)


def test_parse_recent_places_filters_and_orders(topo):
    village = next(c for c, i in sorted(topo.centres.items()) if i.level == 4)
    other = next(c for c, i in sorted(topo.centres.items())
                 if i.level == 4 and i.shard != topo.centres[village].shard)
    now = 1_800_000_000_000
    items = [json.dumps([f"E{i}", village, "fire", now - i * 60_000, "normal"]) for i in range(5)]
    items += [json.dumps(["OLD", village, "fire", now - 3_600_000, "normal"]),
              json.dumps(["ELSE", other, "fire", now, "urgent"]), b"not json"]
    out = parse_recent(items, topo, topo.centres[village].parent, now, 900)
    assert [c["eid"] for c in out] == ["E0", "E1", "E2", "E3", "E4"]
    info = topo.centres[village]
    for c in out:
        assert abs(c["lon"] - info.lon) <= JITTER_DEG + 1e-5
        assert abs(c["lat"] - info.lat) <= JITTER_DEG + 1e-5
    assert parse_recent(items, topo, topo.centres[village].parent, now, 900) == out
    city = parse_recent(items, topo, topo.roots[0], now, 900)
    assert {c["eid"] for c in city} == {"E0", "E1", "E2", "E3", "E4", "ELSE"}


def test_hideouts_shape(geo, topo):
    city = topo.roots[0]
    children = [{"code": c, "name": topo.centres[c].name, "level": 2, "index": 80.0 + i,
                 "reported": 10 * i, "open": i, "overdue": i, "resolution_rate": 0.9,
                 "coverage": 0.8, "online_rate": 0.95, "petitions": i}
                for i, c in enumerate(topo.children[city])]
    vm = {"children": children}
    cams = geo.camera_ids(city)
    states = {cams[0]: "offline", cams[1]: "fault", cams[2]: "online"}
    hs = hideouts(geo, city, vm, {}, states, 123, "index", "en")
    ids = map_ids()
    assert set(hs) == {ids["regions"], ids["grids"], ids["cameras"], ids["cases"]}
    reg = hs[ids["regions"]]
    assert reg["values"] == {c["code"]: c["index"] for c in children}
    assert reg["indicator"] == "index" and reg["selected"] is None
    assert reg["min"] == 80.0 and reg["max"] == 83.0
    assert len(reg["breaks"]) == 4 and len(reg["colors"]) == 5
    assert reg["labels"]["index"] == "Ping'an index"
    cam = hs[ids["cameras"]]["states"]
    assert len(cam) == len(cams) and cam[:4] == "xfou"
    assert hs[ids["cameras"]]["colors"] == CAMERA_COLORS
    assert hs[ids["grids"]]["patrols"] == {}  # no grids drawn at the city
    assert hs[ids["cases"]]["now"] == 123
    counts = regions_hideout(vm, "reported", "zh")
    assert counts["breaks"] == sorted(counts["breaks"]) and counts["fmt"] == "int"
    with pytest.raises(ValueError):
        regions_hideout(vm, "bogus", "zh")
    props = live_props(geo, city, vm, {}, states, [], 123)
    assert props[ids["cases"]]["data"]["features"] == []
    assert "children" in props[ids["legend"]]


def test_payload_and_view(geo, topo):
    city = topo.roots[0]
    village = next(c for c, i in sorted(topo.centres.items()) if i.level == 4)
    for code in (city, village):
        for fmt in ("geojson", "geobuf"):
            p = map_payload(geo, code, {"children": []}, fmt=fmt)
            assert p["bounds"] == geo.bounds(code)
            view = map_view(p, "zh")
            assert view.children[0].id == "wall-map"
    p = map_payload(geo, village, None, fmt="geojson")
    assert len(p["grids"]["features"]) == len(geo.grids[village])
    assert p["children"]["features"] == []  # stays GeoJSON: empty geobuf breaks dash-leaflet


def test_case_markers_are_capped_keeping_every_urgent_and_the_newest():
    from layouts.map import cases_features

    recent = [{"eid": f"e{i}", "centre": "c", "category": "dispute", "ts": 1000 - i,
               "urgency": "urgent" if i % 50 == 49 else "normal", "lon": 0.0, "lat": 0.0}
              for i in range(300)]  # newest first
    got = [f["properties"]["eid"] for f in cases_features(recent, limit=20)["features"]]
    urgent = [c["eid"] for c in recent if c["urgency"] == "urgent"]
    assert len(got) == 20
    assert set(urgent) <= set(got)
    assert [e for e in got if e not in urgent] == [f"e{i}" for i in range(20 - len(urgent))]
    assert len(cases_features(recent[:5], limit=20)["features"]) == 5


def test_geo_a_province_map_draws_its_cities_not_every_camera_or_shard():
    """Above MAP_MAX_CAMERAS cameras / MAP_MAX_SHARDS shards a map shows its children only:
    no camera points or states, no recent-case markers — and Redis is not read for them
    (r=None here: any read would fail), so a province screen costs O(its children)."""
    from datasources import geo as geodata
    from datasources.keys import Keys
    from datasources.topology import build_topology

    rows = [("P", "省", 0, None, None, None, None)]
    cams, geo_rows, geo_cams = [], [("P", "省", 0, None, None, 108.9, 34.3)], []
    per = geodata.MAP_MAX_CAMERAS // (geodata.MAP_MAX_SHARDS + 1) + 1
    for d in range(geodata.MAP_MAX_SHARDS + 1):
        code = f"D{d:02d}"
        rows.append((code, code, 2, "P", None, None, None))
        geo_rows.append((code, code, 2, "P", None, 108.9, 34.3))
        for k in range(per):
            cams.append((f"K{d}-{k}", code, "dome"))
            geo_cams.append((f"K{d}-{k}", code, "dome", 108.9, 34.3))
    topo = build_topology(rows, [], cams)
    g = geodata.build_geo(geo_rows, [], geo_cams)
    assert len(cams) > geodata.MAP_MAX_CAMERAS
    assert geodata.camera_states(None, Keys(), topo, "P") == {}
    assert geodata.recent_cases(None, Keys(), topo, "P", 0) == []
    assert g.cameras_features("P")["features"] == [] and g.camera_ids("P") == ()
    # one district: its cameras are drawn
    assert len(g.cameras_features("D00")["features"]) == per
