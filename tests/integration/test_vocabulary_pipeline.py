"""A region's own category and channel through the real pipeline (issue 12 item 8): a real
Redis, the aggregator, the read model's fields (`cat:digital_city`, `ch:cadre_visit`), the
audit's recount and the wall's chart built from the snapshot."""

from __future__ import annotations

from datasources.aggregator import Aggregator
from datasources.audit import audit
from datasources.keys import Keys
from datasources.readmodel import ReadModel
from datasources.topology import build_topology
from datasources.vocabulary import DEFAULT, Term
from layouts import charts, viewmodel
from tests.helpers import event, now_ms
from tests.unit.small_registry import CAMERAS, CENTRES, GRIDS

DIGITAL = Term("digital_city", "数字城管", "Digital city management", "#123abc")
CADRE = Term("cadre_visit", "干部走访", "Cadre visits", "#00ff7f")
HOTLINE = Term("hotline", "热线", "Hotline", "#ff00ff")


def test_the_read_model_counts_the_regions_own_terms(r, settings):
    vocab = (DEFAULT.replace("category", (*DEFAULT.category, DIGITAL))
             .replace("event_channel", (*DEFAULT.event_channel, CADRE))
             .replace("petition_channel", (HOTLINE, *DEFAULT.petition_channel)))
    topo = build_topology(CENTRES, GRIDS, CAMERAS, vocab)
    plain = build_topology(CENTRES, GRIDS, CAMERAS)
    keys = Keys(settings.key_prefix)
    stream = keys.stream("D1", "events")
    r.xadd(stream, event("V1", "E1", category="digital_city", channel="cadre_visit"))
    r.xadd(stream, event("V2", "E2", category="digital_city"))
    r.xadd(stream, event("V1", "E3", category="fire"))
    r.xadd(keys.stream("D1", "petitions"), {"v": "1", "ts": str(now_ms()), "src": "test",
                                            "pid": "P1", "centre": "V1", "channel": "hotline",
                                            "group": "0", "skip_level": "0"})
    agg = Aggregator(r, topo, settings.pipeline)
    agg.run(until_idle=True)
    assert agg.totals.applied == 4 and r.xlen(keys.dead("D1")) == 0

    snap = ReadModel(r, topo, settings.read_model).snapshot("C")
    assert snap["events"]["by_category"]["digital_city"] == 2
    assert snap["events"]["by_category"]["fire"] == 1
    assert list(snap["events"]["by_category"]) == list(vocab.codes("category"))
    assert snap["events"]["by_channel"]["cadre_visit"] == 1
    assert snap["petitions"]["by_channel"]["hotline"] == 1
    assert snap["petitions"]["trend_7d"][-1]["hotline"] == 1
    assert snap["children"]["D1"]["reported"] == 3
    assert audit(r, topo, settings.pipeline)["differences"] == []

    vm = viewmodel.build(snap, topo, now_ms())
    fig = charts.by_category(vm, "zh")
    i = fig["data"][0]["y"].index("digital_city")
    assert fig["data"][0]["x"][i] == 2
    assert fig["layout"]["yaxis"]["ticktext"][i] == "数字城管"
    assert fig["data"][0]["marker"]["color"][i] == "#123abc"

    # under the default vocabulary the same entries are dead letters, with the reason
    r.xadd(stream, event("V1", "E4", category="digital_city"))
    Aggregator(r, plain, settings.pipeline).run(until_idle=True)
    dead = r.xrange(keys.dead("D1"))
    assert [f[b"reason"] for _id, f in dead] == [b"bad category: 'digital_city'"]
    assert "digital_city" not in ReadModel(r, plain, settings.read_model).snapshot(
        "C")["events"]["by_category"]
