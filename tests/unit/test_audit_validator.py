"""The audit's own validator, tree walk and bucketing agree with the aggregator's contract.

`datasources.audit.check_entry` is written from docs/STREAMS.md §4, not from
`datasources/contract.py`; both must accept and reject exactly the same entries, and name the
same local day, hour, centre and idempotency key for the ones they accept. A hand-written
corpus of good and hostile entries, then property-based entries (hypothesis) built by
mutating good ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasources.audit import (
    TS_MIN,
    AuditRegistry,
    Rejected,
    TimeRules,
    Tree,
    check_entry,
    first_whole_day,
    local_buckets,
)
from datasources.contract import Clock, InvalidEntry, validate
from datasources.registry import make_engine
from datasources.topology import build_topology

NOW = 1_795_000_000_000  # a fixed "now" (2026-11-18)
LATE = 48 * 3_600_000
SKEW = 300_000
KINDS = ("events", "patrols", "cameras", "petitions", "handin")
DAY_FIELD, HOUR_FIELD, CENTRE_FIELD, Q_FIELD = 3, 4, 5, 8


@pytest.fixture(scope="module")
def world(topo):
    tree = Tree(AuditRegistry.from_topology(topo))
    village = sorted(c for c, i in topo.centres.items() if i.level == 4)[0]
    town, district, city = tree.up[village][1], tree.up[village][2], tree.up[village][3]
    other = next(c for c, i in sorted(topo.centres.items())
                 if i.level == 4 and tree.shard[c] != tree.shard[village])
    grid = next(g for g, c in sorted(topo.grid_centre.items()) if c == village)
    far_grid = next(g for g, c in sorted(topo.grid_centre.items()) if c == other)
    cam = next(c for c, (centre, _k) in sorted(topo.camera.items()) if centre == village)
    far_cam = next(c for c, (centre, _k) in sorted(topo.camera.items()) if centre == other)
    return dict(topo=topo, tree=tree, v=village, t=town, d=district, city=city, other=other,
                grid=grid, far_grid=far_grid, cam=cam, far_cam=far_cam,
                shard=tree.shard[village], city_shard=tree.shard[city])


def _good(w, kind: str, ts: int = NOW - 60_000) -> dict[str, str]:
    base = {"v": "1", "ts": str(ts), "src": "test"}
    if kind == "events":
        return {**base, "eid": "E-1", "status": "reported", "centre": w["v"],
                "category": "dispute", "channel": "video", "urgency": "normal",
                "due": str(NOW + 3_600_000), "grid": w["grid"]}
    if kind == "patrols":
        return {**base, "pid": "P-1", "grid": w["grid"], "worker": "W-1"}
    if kind == "cameras":
        return {**base, "cam": w["cam"], "state": "fault"}
    if kind == "petitions":
        return {**base, "pid": "T-1", "centre": w["v"], "channel": "visit", "group": "0",
                "skip_level": "1"}
    return {**base, "eid": "E-1", "status": "escalated", "centre": w["d"], "to": w["city"],
            "category": "fire", "due": str(NOW)}


def _both(w, kind, fields: dict[str, str], shard: str | None = None, arrived: int = NOW,
          tz: str = "Asia/Shanghai"):
    """(contract verdict, audit verdict): None for a rejected entry, else the comparable part
    of the record (day, hour, centre, key)."""
    shard = shard or (w["city_shard"] if kind == "handin" else w["shard"])
    clock = Clock(ZoneInfo(tz), NOW, lateness_ms=LATE, skew_ms=SKEW)
    try:
        rec = validate(kind, fields, shard, w["topo"], clock, arrived)
        theirs = (rec[DAY_FIELD], rec[HOUR_FIELD], rec[CENTRE_FIELD], rec[Q_FIELD])
    except InvalidEntry:
        theirs = None
    pairs = [(k.encode("utf-8", "surrogateescape") if _encodable(k) else k,
              v.encode("utf-8", "surrogateescape") if _encodable(v) else v)
             for k, v in fields.items()]
    rules = TimeRules(ZoneInfo(tz), NOW, LATE, SKEW)
    try:
        e = check_entry(kind, pairs, shard, w["tree"], rules, arrived)
        ours = (e.day, e.hour, e.centre, e.key)
    except Rejected:
        ours = None
    return theirs, ours


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False


def _hostile(w) -> list[tuple[str, dict, str | None, int]]:
    """(kind, fields, shard or None for the right one, arrival)."""
    ev = _good(w, "events")
    out: list[tuple[str, dict, str | None, int]] = []

    def add(kind, fields, shard=None, arrived=NOW):
        out.append((kind, fields, shard, arrived))

    for kind in KINDS:
        g = _good(w, kind)
        add(kind, g)
        for name in list(g):
            add(kind, {k: v for k, v in g.items() if k != name})  # each field missing
            add(kind, {**g, name: ""})  # each field empty
            add(kind, {**g, name: g[name] + "\t"})
            add(kind, {**g, name: "x" * 65})
            add(kind, {**g, name: "x" * 257})
        add(kind, {**g, **{f"extra{i}": "1" for i in range(32 - len(g))}})  # exactly 32
        add(kind, {**g, **{f"extra{i}": "1" for i in range(33 - len(g))}})  # 33
        add(kind, g, "nope")
        add(kind, g, w["shard"] if kind == "handin" else w["city_shard"])
        for ts in (TS_MIN - 1, TS_MIN, NOW + SKEW, NOW + SKEW + 1, NOW - LATE, NOW - LATE - 1,
                   NOW - 9 * 86_400_000):
            add(kind, {**g, "ts": str(ts)})
        for bad_ts in ("", "-5", "+5", "1e12", " 1795000000000", "１７９５０００００００００",
                       "12345678901234567", "0" * 16, "²"):
            add(kind, {**g, "ts": bad_ts})
        add(kind, g, None, NOW - 3 * 86_400_000)  # arrived three days ago, ts today
        add(kind, {**g, "v": "2"})
        add(kind, {**g, "v": " 1"})
        add(kind, {**g, "src": "源" * 64})
        add(kind, {**g, "src": "源" * 65})
        add(kind, {**g, "src": "12345\u00a0hotline"})
        add(kind, {**g, "src": "12345\u3000hotline"})
        add(kind, {**g, "src": "a\u200bb"})
        add(kind, {**g, "src": "a\udcffb"})  # an invalid byte as the client decodes it
        add(kind, {**g, "src": "a\ud800b"})  # a lone surrogate
        add(kind, {**g, "src": "a\x7fb"})
        add(kind, {**g, "src": "\U000e0001"})  # a format character (language tag)
        add(kind, {**g, "src": "a\ue000b"})  # private use
        add(kind, {**g, "src": "網格 hotline ✓"})
        add(kind, {**g, "na\tme": "1"})
        add(kind, {**g, "": "1"})
        add(kind, {**g, "x": "y" * 300})  # an unknown field, too long
    for st_ in ("dispatched", "handling", "resolved", "evaluated", "escalated", "teleported",
                "Reported"):
        add("events", {**ev, "status": st_})
        add("events", {**ev, "status": st_, "satisfied": "1", "to": w["t"]})
    add("events", {**ev, "status": "evaluated", "satisfied": "2"})
    for to in (w["v"], w["t"], w["d"], w["city"], w["other"], "999999", ""):
        add("events", {**ev, "status": "escalated", "to": to})
    add("events", {**ev, "status": "escalated", "centre": w["t"], "to": w["v"]})
    # issue 10: `supervised` (by, note, user) and a `summary` on any event
    for by in (w["v"], w["t"], w["d"], w["city"], w["other"], "999999", ""):
        add("events", {**ev, "status": "supervised", "by": by})
        add("events", {**ev, "status": "supervised", "by": by, "user": "u1",
                       "note": "督办 <script>alert(1)</script>"})
    for note, user in (("n" * 200, "u" * 64), ("n" * 201, "u"), ("n", "u" * 65), ("a\tb", "")):
        add("events", {**ev, "status": "supervised", "by": w["t"], "note": note, "user": user})
    add("events", {**ev, "status": "supervised", "centre": w["t"], "by": w["v"]})
    for summary in ("s" * 200, "s" * 201, "", "<img src=x onerror=alert(1)>", "a\nb"):
        add("events", {**ev, "summary": summary})
        add("events", {**ev, "status": "resolved", "summary": summary})
    add("events", {**ev, "grid": w["far_grid"]})
    add("events", {**ev, "grid": "G-unknown"})
    add("events", {**ev, "grid": ""})
    add("events", {**ev, "centre": w["t"]})  # the grid is under the town too
    add("events", {**ev, "centre": w["other"], "grid": ""})
    add("events", {**ev, "channel": "telegram"})
    add("events", {**ev, "urgency": "URGENT"})
    add("events", {**ev, "due": "0"})
    add("events", {**ev, "category": "other"})
    add("cameras", {**_good(w, "cameras"), "cam": w["far_cam"]})
    add("cameras", {**_good(w, "cameras"), "state": "broken"})
    add("patrols", {**_good(w, "patrols"), "grid": w["far_grid"]})
    add("petitions", {**_good(w, "petitions"), "group": "yes"})
    add("petitions", {**_good(w, "petitions"), "channel": "online"})
    add("handin", {**_good(w, "handin"), "to": w["d"]})  # to not in the target shard
    add("handin", {**_good(w, "handin"), "centre": w["other"]})  # centre anywhere
    add("handin", {**_good(w, "handin"), "ts": str(NOW - 9 * 86_400_000)})  # no lateness
    return out


def test_audval001_corpus_agrees_with_the_contract(world):
    cases = _hostile(world)
    accepted = 0
    for kind, fields, shard, arrived in cases:
        theirs, ours = _both(world, kind, fields, shard, arrived)
        assert theirs == ours, (kind, fields, shard, arrived)
        accepted += theirs is not None
    print(f"{len(cases)} corpus entries, {accepted} accepted by both")
    assert 50 < accepted < len(cases) - 300


def test_audval002_repeated_field_names_and_raw_bytes(world):
    """The audit reads raw pairs: bytes that are not UTF-8 are rejected; a repeated name
    counts as a field and its last value is read."""
    tree, w = world["tree"], world
    rules = TimeRules(ZoneInfo("Asia/Shanghai"), NOW, LATE, SKEW)
    good = [(k.encode(), v.encode()) for k, v in _good(w, "patrols").items()]
    assert check_entry("patrols", good, w["shard"], tree, rules, NOW).key == "p|P-1"
    for junk in (b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b"W\x00"):
        with pytest.raises(Rejected):
            check_entry("patrols", [*good, (b"worker", junk)], w["shard"], tree, rules, NOW)
    again = [*good, (b"pid", b"P-2")]
    assert check_entry("patrols", again, w["shard"], tree, rules, NOW).key == "p|P-2"


TZS = ("Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns",
       "Australia/Lord_Howe", "Europe/Berlin", "Pacific/Chatham")


@pytest.mark.parametrize("tz", TZS)
def test_audval003_buckets_in_every_offset(tz):
    """Local day and hour per entry, right across half- and quarter-hour offsets and DST."""
    zone = ZoneInfo(tz)
    clock = Clock(zone, NOW)
    start = datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC"))
    step = timedelta(minutes=7, seconds=30)
    t = start
    while t < start + timedelta(days=400):
        ms = int(t.timestamp() * 1000)
        for probe in (ms, ms + 1, ms - 1):
            local = datetime.fromtimestamp(probe / 1000, zone)
            want = (local.strftime("%Y%m%d"), local.strftime("%Y%m%d%H"))
            assert local_buckets(probe, zone) == want, (tz, probe)
            assert clock.buckets(probe) == want, (tz, probe)
        t += step * 97  # walks through every minute-of-hour over the year


def test_audval004_kolkata_half_hour_boundary():
    zone = ZoneInfo("Asia/Kolkata")
    midnight = int(datetime(2026, 11, 18, tzinfo=zone).timestamp() * 1000)  # 18:30 UTC
    assert local_buckets(midnight - 1, zone) == ("20261117", "2026111723")
    assert local_buckets(midnight, zone) == ("20261118", "2026111800")
    assert local_buckets(midnight + 30 * 60_000, zone) == ("20261118", "2026111800")
    assert local_buckets(midnight + 60 * 60_000 - 1, zone) == ("20261118", "2026111800")
    assert local_buckets(midnight + 60 * 60_000, zone) == ("20261118", "2026111801")


def test_audval005_tree_and_registry(topo, demo_db):
    """The audit's walk gives the tree the registry describes (checked against the topology
    here, as an outside view); the registry read with SQL equals the topology's plain fields."""
    engine = make_engine(demo_db)
    reg = AuditRegistry.from_engine(engine)
    engine.dispose()
    assert reg == AuditRegistry.from_topology(topo)
    tree = Tree(reg)
    for code, info in topo.centres.items():
        assert tree.shard[code] == info.shard
        assert tree.chain[code] == info.chain
        assert tree.up[code] == tuple(reversed(topo.ancestors(code)))
    # a region with a root below the district level, and a second city
    rows = [("C", "c", 1, None, None, None, None), ("D", "d", 2, "C", None, None, None),
            ("T", "t", 3, "D", None, None, None), ("V", "v", 4, "T", None, None, None),
            ("R", "r", 3, None, None, None, None), ("RV", "rv", 4, "R", None, None, None),
            ("C2", "c2", 1, None, None, None, None)]
    small = build_topology(rows, [], [])
    tree = Tree(AuditRegistry.from_topology(small))
    assert tree.shard == {c: i.shard for c, i in small.centres.items()}
    assert tree.chain == {c: i.chain for c, i in small.centres.items()}
    assert tree.chain["V"] == ("V", "T", "D") and tree.chain["RV"] == ("RV", "R")


def test_audval006_first_whole_day():
    zone = ZoneInfo("Asia/Kolkata")
    midnight = int(datetime(2026, 11, 18, tzinfo=zone).timestamp() * 1000)
    assert first_whole_day(midnight - SKEW, SKEW, zone) == "20261118"
    assert first_whole_day(midnight - SKEW + 1, SKEW, zone) == "20261119"
    assert first_whole_day(midnight - 5 * 3_600_000, SKEW, zone) == "20261118"


# ---- property-based ----------------------------------------------------------------------
ODD = ("", " ", "0", "1", "2", "-1", "\t", "\n", "\u00a0", "\u3000", "\u200b", "\x00", "\udcff",
       "\ud800", "１", "²", "x" * 64, "x" * 65, "x" * 256, "x" * 257, "源" * 64, "源" * 65,
       "reported", "escalated", "resolved", "evaluated", "online", "fault", "letter", "urgent",
       "video", "dispute", "9" * 16, "9" * 17, "supervised", "x" * 200, "x" * 201)


@st.composite
def entries(draw, w):
    kind = draw(st.sampled_from(KINDS))
    fields = _good(w, kind)
    registry_values = [w["v"], w["t"], w["d"], w["city"], w["other"], w["grid"],
                       w["far_grid"], w["cam"], w["far_cam"]]
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["drop", "set", "set", "add", "ts", "many"]))
        names = sorted(fields) or ["v"]
        if op == "drop" and fields:
            fields.pop(draw(st.sampled_from(names)))
        elif op == "set":
            name = draw(st.sampled_from(names + ["to", "grid", "satisfied", "status", "by",
                                                 "summary", "note"]))
            fields[name] = draw(st.one_of(st.sampled_from(ODD), st.sampled_from(registry_values),
                                          st.text(max_size=12)))
        elif op == "add":
            fields[draw(st.text(max_size=6))] = draw(st.text(max_size=8))
        elif op == "ts":
            fields["ts"] = str(draw(st.one_of(
                st.sampled_from([TS_MIN - 1, TS_MIN, NOW + SKEW, NOW + SKEW + 1, NOW - LATE,
                                 NOW - LATE - 1]),
                st.integers(NOW - 4 * LATE, NOW + 2 * SKEW))))
        else:
            for i in range(draw(st.integers(20, 40))):
                fields[f"f{i}"] = "1"
    shard = draw(st.sampled_from([None, None, None, w["shard"], w["city_shard"], "nope"]))
    arrived = draw(st.sampled_from([NOW, NOW, NOW - 3_600_000, NOW - 3 * 86_400_000]))
    tz = draw(st.sampled_from(["Asia/Shanghai", "Asia/Kolkata", "Asia/Kathmandu"]))
    return kind, fields, shard, arrived, tz


def test_audval007_property_agrees_with_the_contract(world):
    seen = {"accepted": 0, "rejected": 0}

    @settings(max_examples=1500, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(entries(world))
    def check(case):
        kind, fields, shard, arrived, tz = case
        theirs, ours = _both(world, kind, fields, shard, arrived, tz)
        assert theirs == ours
        seen["accepted" if theirs else "rejected"] += 1

    check()
    print(seen)
    assert seen["accepted"] > 100 and seen["rejected"] > 100
