"""A small hand-built registry for pure tests: city C over two districts (the shards D1, D2,
plus the city's own shard C); D1 → town T1 → villages V1, V2; D2 → town T2 → village V3."""

from __future__ import annotations

from datasources.topology import Topology, build_topology

CENTRES = [
    ("C", "City", 1, None, 109.0, 35.0, None),
    ("D1", "District 1", 2, "C", 109.1, 35.1, None),
    ("D2", "District 2", 2, "C", 108.9, 34.9, "sip:d2@vc.example"),
    ("T1", "Town 1", 3, "D1", 109.11, 35.11, None),
    ("T2", "Town 2", 3, "D2", 108.91, 34.91, None),
    ("V1", "Village 1", 4, "T1", 109.111, 35.111, None),
    ("V2", "Village 2", 4, "T1", 109.112, 35.112, None),
    ("V3", "Village 3", 4, "T2", 108.911, 34.911, None),
]
GRIDS = [("G1", "V1", "urban", 2), ("G2", "V1", "rural", 0), ("G3", "V3", "urban", 1)]
CAMERAS = [("K1", "V1", "dome"), ("K2", "V3", "face"), ("K3", "T1", "smart")]


def small_topology() -> Topology:
    return build_topology(CENTRES, GRIDS, CAMERAS)
