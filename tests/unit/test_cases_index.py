"""Issue 10: the case read model kept by `rollup.compute` and `rollup.expire_commands` (pure, no
Redis). The write commands are applied to an in-memory model of the keys; after random
sequences of transitions (reports, escalations within the shard and to the city's shard with
the hand-over's arrival there, 督办, resolutions, expiry, replays), in batches of any size,
every case index equals what the open cases say, and every record agrees with them."""

from __future__ import annotations

from collections import defaultdict
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from datasources.contract import Clock, validate
from datasources.keys import Keys
from datasources.rollup import (
    INDEX_KINDS,
    Limits,
    State,
    case_rank,
    compute,
    expire_commands,
    info_of,
    info_text,
    step_of,
    step_text,
)
from datasources.topology import build_topology

T0 = 1_800_000_000_000 - 1_800_000_000_000 % 86_400_000 - 8 * 3_600_000
H = 3_600_000
LIMITS = Limits(ttl_day=100, ttl_hour=10, ttl_seen=50, patrols_per_day=2, recent_max=10,
                dead_max=100)
KEYS = Keys("u")
TZ = ZoneInfo("Asia/Shanghai")
PARENT = {"1111": "111", "1112": "111", "111": "11", "11": "1"}
CENTRES = ("1111", "1112", "111", "11")
EIDS = ("E1", "E2", "E3", "E4")
TOPO = build_topology(
    [("1", "city", 1, None, None, None, None), ("11", "d", 2, "1", None, None, None),
     ("111", "t", 3, "11", None, None, None), ("1111", "v", 4, "111", None, None, None),
     ("1112", "w", 4, "111", None, None, None)], [], [])


class Model:
    """The keys as the write commands leave them (hashes and sorted sets)."""

    def __init__(self) -> None:
        self.h: dict[str, dict[str, str]] = defaultdict(dict)
        self.z: dict[str, dict[str, float]] = defaultdict(dict)
        self.seen: set[tuple[str, str]] = set()
        self.handoffs: list[dict[str, str]] = []

    def apply(self, cmds: list[list]) -> None:
        for c in cmds:
            name, key, args = c[0].lstrip("!"), c[1], [str(a) for a in c[2:]]
            if name == "HSET":
                self.h[key].update(zip(args[::2], args[1::2], strict=True))
            elif name == "HDEL":
                for f in args:
                    self.h[key].pop(f, None)
            elif name == "HINCRBYMANY":
                for f, n in zip(args[::2], args[1::2], strict=True):
                    self.h[key][f] = str(int(self.h[key].get(f, "0")) + int(n))
            elif name == "ZADD":
                self.z[key].update((m, float(s)) for s, m in zip(args[::2], args[1::2],
                                                                  strict=True))
            elif name == "ZREM":
                for m in args:
                    self.z[key].pop(m, None)
            elif name == "SADD" and ":seen:" in key:
                self.seen.update((key.rsplit(":", 1)[1], q) for q in args)
            elif name == "XADD" and key.endswith(":handoff"):
                self.handoffs.append(dict(zip(args[1::2], args[2::2], strict=True)))

    def state(self, shard: str, records: list[tuple]) -> State:
        """What `load_state` reads for the batch."""
        eids = {r[1] for r in records if r[0] in ("e", "h")}
        closed = self.z[KEYS.closed(shard)]
        return State(
            seen=set(self.seen),
            cases={e: self.h[KEYS.cases(shard)].get(e) for e in eids},
            closed={e: int(closed[e]) if e in closed else None for e in eids},
            received={e: self.h[KEYS.received(shard)].get(e) for e in eids},
            info={e: self.h[KEYS.case_info(shard)].get(e) for e in eids})


def _rec(eid: str, status: str, centre: str, ts: int, to: str) -> tuple:
    f = {"v": "1", "ts": str(ts), "src": "t", "eid": eid, "status": status, "centre": centre,
         "category": "fire", "summary": f"s{ts % 7}"}
    if status == "reported":
        f.update(channel="video", urgency="urgent" if ts % 3 == 0 else "normal",
                 due=str(ts + 2 * H))
    elif status == "evaluated":
        f["satisfied"] = "1"
    elif status == "escalated":
        f["to"] = to
    elif status == "supervised":
        f.update(by=to, note="<script>x</script>", user="u1")
    return validate("events", f, "11", TOPO, Clock(TZ, ts + 60 * 24 * H), ts)


def check(m: Model) -> int:
    """The indexes equal what the open cases say, in both shards; returns open cases."""
    n = 0
    for shard in ("11", "1"):
        held = m.h[KEYS.cases(shard)]
        infos = m.h[KEYS.case_info(shard)]
        assert set(infos) == set(held), shard  # info exactly for the open cases
        want: dict[str, dict[str, float]] = defaultdict(dict)
        for eid, value in held.items():
            v = info_of(infos[eid])
            rank = case_rank(v[0], v[1])
            for c in value.split("|", 2)[2].split(","):
                want[KEYS.case_index(shard, "open", c)][eid] = rank
                if v[5]:
                    want[KEYS.case_index(shard, "esc", c)][eid] = rank
                if v[4]:
                    want[KEYS.case_index(shard, "sup", c)][eid] = rank
            rec = m.h[KEYS.case(shard, eid)]
            assert rec["open"] == "1" and rec["centre"] == value.split("|", 2)[2].split(",")[0]
            # the card counts every 督办 applied here, the list those while open (a 督办 may
            # arrive before its report)
            assert int(rec.get("supervised", 0)) >= v[4], (shard, eid, rec, v)
        for code, info in TOPO.centres.items():
            if info.shard != shard:
                continue
            for kind in INDEX_KINDS:
                key = KEYS.case_index(shard, kind, code)
                assert m.z[key] == want[key], (key, m.z[key], want[key])
            assert set(m.z[KEYS.due(shard, code)]) == set(want[KEYS.case_index(shard, "open",
                                                                                code)])
        for key, rec in m.h.items():
            if key.startswith(KEYS.case(shard, "")) and rec.get("open") == "1":
                assert key[len(KEYS.case(shard, "")):] in held, key
        n += len(held)
    return n


transition = st.tuples(st.sampled_from(EIDS),
                       st.sampled_from(("reported", "reported", "dispatched", "escalated",
                                        "supervised", "supervised", "resolved", "evaluated")),
                       st.sampled_from(CENTRES), st.integers(0, 4 * 24 * 4 - 1),
                       st.booleans())


@settings(max_examples=300, deadline=None)
@given(st.lists(transition, max_size=40), st.integers(1, 9), st.data())
def test_cases_index_equals_the_open_cases(steps, batch, data):
    records = []
    for eid, status, centre, q, far in steps:
        to = "1" if far or centre == "11" else PARENT[centre]
        records.append(_rec(eid, status, centre, T0 + q * 15 * 60_000, to))
    if records:  # replays: retried entries
        records += data.draw(st.lists(st.sampled_from(records), max_size=5))
    m = Model()
    forwarded = 0
    for i in range(0, len(records), batch):
        part = records[i:i + batch]
        m.apply(compute(part, m.state("11", part), TOPO, KEYS, "11", LIMITS).commands)
        # the hand-overs arrive at the city's shard (some twice: a forward retried)
        arrivals = []
        for f in m.handoffs[forwarded:]:
            fields = {"v": "1", "src": "pingan-handoff", "status": "escalated", **f}
            rec = validate("handin", fields, "1", TOPO, Clock(TZ, int(f["ts"]) + H),
                           int(f["ts"]))
            arrivals += [rec, rec] if data.draw(st.booleans()) else [rec]
        forwarded = len(m.handoffs)
        if arrivals:
            m.apply(compute(arrivals, m.state("1", arrivals), TOPO, KEYS, "1", LIMITS).commands)
        check(m)
        if data.draw(st.integers(0, 5)) == 0:  # expiry of some open cases
            held = m.h[KEYS.cases("11")]
            eids = data.draw(st.lists(st.sampled_from(EIDS), unique=True, max_size=3))
            if eids:
                m.apply(expire_commands(KEYS, "11", TOPO, eids, [held.get(e) for e in eids],
                                        T0 + 99 * 24 * H, LIMITS))
                for e in eids:
                    assert e not in m.h[KEYS.cases("11")]
                check(m)
    check(m)


def test_case001_handed_over_case_carries_its_list_data():
    """A case escalated to the city arrives there urgent, with its report time, counts,
    channel and summary; its timeline in the city's shard starts with the escalation."""
    m = Model()
    recs = [_rec("E1", "reported", "1111", T0, ""), _rec("E1", "supervised", "1111", T0 + 1, "11"),
            _rec("E1", "escalated", "1111", T0 + 2, "1")]
    m.apply(compute(recs, m.state("11", recs), TOPO, KEYS, "11", LIMITS).commands)
    (f,) = m.handoffs
    assert (f["reported_at"], f["supervised"], f["escalated"], f["urgency"], f["channel"]) == (
        str(T0), "1", "1", "urgent", "video")
    hin = validate("handin", {"v": "1", "src": "pingan-handoff", "status": "escalated", **f},
                   "1", TOPO, Clock(TZ, T0 + H), T0 + 2)
    m.apply(compute([hin], m.state("1", [hin]), TOPO, KEYS, "1", LIMITS).commands)
    info = info_of(m.h[KEYS.case_info("1")]["E1"])
    assert info == ["urgent", T0, "video", "escalated", 1, 1, f["summary"]]
    assert m.z[KEYS.case_index("1", "sup", "1")] == {"E1": case_rank("urgent", T0)}
    left = m.h[KEYS.case("11", "E1")]
    assert (left["open"], left["moved_to"], left["closed_at"]) == ("0", "1", str(T0 + 2))
    steps = [step_of(v) for k, v in m.h[KEYS.case("11", "E1")].items() if k.startswith("s|")]
    assert {s["status"] for s in steps} == {"reported", "supervised", "escalated"}
    sup = next(s for s in steps if s["status"] == "supervised")
    assert (sup["by"], sup["note"], sup["user"]) == ("11", "<script>x</script>", "u1")
    city = [k for k in m.h[KEYS.case("1", "E1")] if k.startswith("s|")]
    assert city == [k for k in left if k.startswith("s|") and "|escalated|" in k]
    check(m)


def test_case002_values_someone_else_wrote_are_read_as_defaults():
    assert info_of(None) == ["normal", 0, "", "", 0, 0, ""]
    assert info_of("garbage") == ["normal", 0, "", "", 0, 0, ""]
    assert info_of(info_text(("urgent", "x", "video", "handling", -3, "2", "a|b"))) == [
        "urgent", 0, "video", "handling", 0, 2, "a|b"]
    assert step_of("nope") == {}
    s = step_of(step_text("supervised", 5, "111", "", "11", "n", "", "u"))
    assert (s["status"], s["ts"], s["by"], s["user"]) == ("supervised", "5", "11", "u")
