"""A synthetic province registry (issue 13): the shape of Shaanxi, generated from data.

`province_registry(out_dir, cities=10, counties_per_city=10, towns_per_county=13,
villages_per_town=15, grids_per_village=5, …)` writes a folder that `pingan registry import`
reads (`datasources/registry_io.py`): ``centres.csv`` (province 610000 → cities 61xx00 →
counties 61xxyy → towns of 9 digits → villages of 12), ``grids.csv``, ``cameras.csv``,
``base_data.csv``, ``vocabulary.csv`` (the `tier` names 省/市/区县/镇街/村社) and, unless
`geometry=False`, ``centres.geojson`` (nested rectangles over the province's extent: each
centre's children tile it exactly, good enough for the map and the drill).

Real where we have it (``datasources/data``): 铜川市 (610200) is the second city, with its four
districts and their 38 towns/streets (names and codes; as many as `towns_per_county` allows).
Everything else is SYNTHETIC: the other cities, counties and towns are named from the demo's
word lists (``demo-tongchuan.json``: 和平县, 幸福镇 …, numbered when the words run out), the
villages like the demo's (王家村, 东沟村 …), grids, workers, cameras and base data are drawn
from a seeded generator: the same arguments always write the same files.
"""

from __future__ import annotations

import csv
import json
import math
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from datasources.registry import BASE_DATA_FIELDS
from datasources.registry_io import (
    BASE_DATA_COLUMNS,
    BASE_DATA_CSV,
    CAMERA_COLUMNS,
    CAMERAS_CSV,
    CENTRE_COLUMNS,
    CENTRES_CSV,
    CENTRES_GEOJSON,
    GRID_COLUMNS,
    GRIDS_CSV,
    VOCABULARY_COLUMNS,
    VOCABULARY_CSV,
)
from datasources.vocabulary import DEFAULT, DEFAULT_TIERS, TIER

DATA_DIR = Path(__file__).parent / "data"
PROVINCE = ("610000", "陕西省")  # the parent adcode of 铜川市 in tongchuan-610200-city.geojson
REAL_CITY = 2  # 铜川市 is 610200: the second city
EXTENT = (105.49, 31.70, 111.25, 39.59)  # Shaanxi's lon/lat box (the rectangles tile it)
# the synthetic province's tier names (the task's 省/市/区县/镇街/村社); colours: the defaults'
TIER_NAMES = (("省", "Province"), ("市", "City"), ("区县", "District"), ("镇街", "Town"),
              ("村社", "Village"))
STREETS_PER_COUNTY = 3  # the first towns of a county are streets (街道) with urban grids
MAX_CODE_PART = 99  # cities and counties per parent: two digits of the code

Progress = Callable[[str], None]


def _words() -> dict[str, Any]:
    spec = json.loads((DATA_DIR / "demo-tongchuan.json").read_text(encoding="utf-8"))
    return {"names": spec["names"], "base": spec["base_data"]}


def _real_tongchuan() -> list[dict[str, Any]]:
    """铜川市's districts with their towns (code, name), from towns-names-codes.json."""
    doc = json.loads((DATA_DIR / "towns-names-codes.json").read_text(encoding="utf-8"))
    city = next(r for r in doc["regions"] if str(r["adcode"]) == "610200")
    return [{"code": str(d["adcode"]), "name": d["name"],
             "towns": [(str(t["code"]), t["name"]) for t in sorted(d["towns"], key=lambda t: t["code"])]}
            for d in sorted(city["districts"], key=lambda d: str(d["adcode"]))]


class _Namer:
    """Unique names among a parent's children: words + suffix, then numbered ones."""

    def __init__(self, words: list[str], rng: random.Random) -> None:
        self.words = list(words)
        self.rng = rng

    def names(self, n: int, suffix: str, taken: Iterable[str] = ()) -> list[str]:
        used = set(taken)
        out: list[str] = []
        for w in self.rng.sample(self.words, len(self.words)):
            if len(out) == n:
                break
            if w + suffix not in used:
                used.add(w + suffix)
                out.append(w + suffix)
        i = 1
        while len(out) < n:
            name = f"第{i}{suffix}"
            if name not in used:
                used.add(name)
                out.append(name)
            i += 1
        return out


def _village_name(names: dict[str, Any], rng: random.Random) -> str:
    """Like the demo's villages (datasources/demo_region.py): 王家村, 李家沟村, 东塬村."""
    suffix, fam = names.get("village_suffix", "村"), names.get("village_family_suffix", "家")
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(names["village_surnames"]) + fam + suffix
    if roll < 0.7:
        return rng.choice(names["village_surnames"]) + fam + rng.choice(names["village_places"]) + suffix
    return rng.choice(names["village_prefixes"]) + rng.choice(names["village_places"]) + suffix


def _fresh(make: Callable[[], str], used: set[str], fallback: str) -> str:
    """A name from `make` not in `used` (recorded there), else `fallback` after 50 draws."""
    for _ in range(50):
        name = make()
        if name not in used:
            break
    else:
        name = fallback
    used.add(name)
    return name


def _split(box: tuple[float, float, float, float], n: int) -> list[tuple[float, float, float, float]]:
    """`n` rectangles tiling `box` (rows × columns near its aspect, the last row shorter)."""
    x0, y0, x1, y1 = box
    cols = max(1, min(n, round(math.sqrt(n * (x1 - x0) / max(y1 - y0, 1e-9)))))
    rows = math.ceil(n / cols)
    out = []
    for i in range(n):
        r, c = divmod(i, cols)
        in_row = cols if r < rows - 1 else n - cols * (rows - 1)
        w, h = (x1 - x0) / in_row, (y1 - y0) / rows
        top = y1 - r * h
        out.append((x0 + c * w, top - h, x0 + (c + 1) * w, top))
    return out


def _rect(box: tuple[float, float, float, float]) -> dict[str, Any]:
    x0, y0, x1, y1 = (round(v, 6) for v in box)
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x0, y1], [x1, y1], [x1, y0], [x0, y0]]]}


def _write(path: Path, columns: tuple[str, ...], rows: Iterable[Iterable[Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        w.writerows(rows)


def province_registry(out_dir: Path, *, cities: int = 10, counties_per_city: int = 10,
                      towns_per_county: int = 13, villages_per_town: int = 15,
                      grids_per_village: int = 5, cameras_per_town: int = 30, seed: int = 0,
                      geometry: bool = True, progress: Progress | None = None) -> dict:
    """Write a province-rooted registry folder (see the module docstring) to `out_dir`;
    returns its counts: centres per level, grids, workers, cameras."""
    for name, v, lo, hi in (("cities", cities, 1, MAX_CODE_PART),
                            ("counties_per_city", counties_per_city, 1, MAX_CODE_PART),
                            ("towns_per_county", towns_per_county, 1, 999),
                            ("villages_per_town", villages_per_town, 1, 999),
                            ("grids_per_village", grids_per_village, 1, 99),
                            ("cameras_per_town", cameras_per_town, 0, 9999)):
        if not lo <= v <= hi:
            raise ValueError(f"{name} must be {lo}-{hi}, got {v}")
    say = progress or (lambda _msg: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    data = _words()
    names, base_ranges = data["names"], data["base"]
    namer = _Namer(names["community_words"], rng)
    real = _real_tongchuan()

    centres: list[tuple[str, str, int, str]] = [(PROVINCE[0], PROVINCE[1], 0, "")]
    boxes: dict[str, tuple[float, float, float, float]] = {PROVINCE[0]: EXTENT}
    # ---- cities, counties, towns
    towns: list[tuple[str, bool]] = []  # (code, is a street)
    city_names = namer.names(cities, "市", taken=["铜川市"])
    for ci, cbox in enumerate(_split(EXTENT, cities), start=1):
        ccode = f"61{ci:02d}00"
        is_real = ci == REAL_CITY
        centres.append((ccode, "铜川市" if is_real else city_names[ci - 1], 1, PROVINCE[0]))
        boxes[ccode] = cbox
        real_counties = real[:counties_per_city] if is_real else []
        county_codes = [d["code"] for d in real_counties]
        free = (f"{ccode[:4]}{j:02d}" for j in range(1, 100))
        county_codes += [c for c in free if c not in county_codes][:counties_per_city - len(county_codes)]
        county_names = [d["name"] for d in real_counties]
        county_names += namer.names(counties_per_city - len(county_names), "县", taken=county_names)
        for k, (kcode, kname, kbox) in enumerate(zip(county_codes, county_names,
                                                     _split(cbox, counties_per_city), strict=True)):
            centres.append((kcode, kname, 2, ccode))
            boxes[kcode] = kbox
            real_towns = real_counties[k]["towns"][:towns_per_county] if k < len(real_counties) else []
            tcodes = [c for c, _n in real_towns]
            tcodes += [c for c in (f"{kcode}{t:03d}" for t in range(1, 1000))
                       if c not in tcodes][:towns_per_county - len(tcodes)]
            synth = towns_per_county - len(real_towns)
            streets = max(0, min(STREETS_PER_COUNTY, synth) - sum(n.endswith("街道") for _c, n in real_towns))
            tnames = [n for _c, n in real_towns]
            tnames += namer.names(streets, "街道", taken=tnames)
            tnames += namer.names(synth - streets, "镇", taken=tnames)
            for tcode, tname, tbox in zip(tcodes, tnames, _split(kbox, towns_per_county), strict=True):
                centres.append((tcode, tname, 3, kcode))
                boxes[tcode] = tbox
                towns.append((tcode, tname.endswith("街道")))
        say(f"city {ci}/{cities}: {counties_per_city} counties, "
            f"{counties_per_city * towns_per_county} towns")

    # ---- villages (communities under streets), grids, cameras, base data
    grids: list[tuple[str, str, str, int]] = []
    cameras: list[tuple[str, str, str, str, float, float]] = []
    base: list[list[Any]] = []
    kinds = DEFAULT.codes("camera_kind")
    for n, (tcode, street) in enumerate(towns, start=1):
        used: set[str] = set()
        vboxes = _split(boxes[tcode], villages_per_town)
        vcodes = []
        for v, vbox in enumerate(vboxes, start=1):
            vcode = f"{tcode}{v:03d}"
            if street:
                vname = namer.names(1, "社区", taken=used)[0]
                used.add(vname)
            else:
                vname = _fresh(lambda: _village_name(names, rng), used, f"第{v}村")
            centres.append((vcode, vname, 4, tcode))
            boxes[vcode] = vbox
            vcodes.append(vcode)
            kind = "urban" if street else "rural"
            for g in range(1, grids_per_village + 1):
                grids.append((f"{vcode}-G{g:02d}", vcode, kind, rng.choice((1, 1, 1, 2, 2, 3))))
            r = base_ranges["community" if street else "village"]
            row = [vcode, *(rng.randint(*r[f]) for f in BASE_DATA_FIELDS)]
            row[1 + BASE_DATA_FIELDS.index("rentals")] = min(
                row[1 + BASE_DATA_FIELDS.index("rentals")], row[1 + BASE_DATA_FIELDS.index("houses")])
            base.append(row)
        for c in range(cameras_per_town):
            vcode = vcodes[c % len(vcodes)]
            x0, y0, x1, y1 = boxes[vcode]
            cameras.append((f"CAM-{vcode}-{c // len(vcodes) + 1:03d}", vcode,
                            f"{vcode}-G{rng.randint(1, grids_per_village):02d}", rng.choice(kinds),
                            round(rng.uniform(x0, x1), 6), round(rng.uniform(y0, y1), 6)))
        if n % 200 == 0:
            say(f"towns {n}/{len(towns)}: villages, grids and cameras")

    # ---- files
    say("writing the files")
    _write(out / CENTRES_CSV, CENTRE_COLUMNS, ((c, nm, lv, p, "") for c, nm, lv, p in centres))
    _write(out / GRIDS_CSV, GRID_COLUMNS, grids)
    _write(out / CAMERAS_CSV, CAMERA_COLUMNS, cameras)
    _write(out / BASE_DATA_CSV, BASE_DATA_COLUMNS, base)
    _write(out / VOCABULARY_CSV, VOCABULARY_COLUMNS,
           ((TIER, d.code, zh, en, d.colour) for d, (zh, en) in zip(DEFAULT_TIERS, TIER_NAMES, strict=True)))
    geo = out / CENTRES_GEOJSON
    if geometry:
        with geo.open("w", encoding="utf-8", newline="\n") as fh:
            fh.write('{"type": "FeatureCollection", "features": [\n')
            fh.write(",\n".join(json.dumps({"type": "Feature", "properties": {"code": c},
                                            "geometry": _rect(boxes[c])}, separators=(",", ":"))
                                for c, _n, _lv, _p in centres))
            fh.write("\n]}\n")
    else:
        geo.unlink(missing_ok=True)
    per_level: dict[str, int] = {}
    for _c, _n, lv, _p in centres:
        per_level[str(lv)] = per_level.get(str(lv), 0) + 1
    return {"directory": str(out), "centres": per_level, "centres_total": len(centres),
            "grids_total": len(grids), "workers": sum(g[3] for g in grids),
            "cameras_total": len(cameras), "base_data": len(base), "geometry": geometry}
