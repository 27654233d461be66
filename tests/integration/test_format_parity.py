"""The browser's formatter (assets/format.js, the file Dash serves) writes every figure exactly
as the server's first paint (layouts/formats.py `fmt`): run in headless Chromium over a few
hundred values — halves in binary and in decimal, negatives, huge and tiny values, null, NaN,
±inf — and compared with Python, value by value."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from dashboard.devkit.browser import chromium
from layouts.formats import DASH, KINDS, fmt

pytestmark = pytest.mark.slow

FORMAT_JS = Path(__file__).resolve().parents[2] / "assets" / "format.js"

# The values go to the browser as text: JSON has no NaN or infinity, and repr() is the
# shortest text that reads back as the same double in both languages.
FORMAT_ALL = """
var f = window.pinganFormat.fmt, values = arguments[0], kinds = arguments[1], out = {};
function parse(s) {
  if (s === null) { return null; }
  if (s === "nan") { return NaN; }
  if (s === "inf") { return Infinity; }
  if (s === "-inf") { return -Infinity; }
  return Number(s);
}
kinds.forEach(function (k) { out[k] = values.map(function (s) { return f(parse(s), k); }); });
return out;
"""

HALVES = [
    0.1245, 0.0005, 0.00005, 0.0015, 0.0025, 0.9995, 0.99995, 0.12345, 0.5, 1.5, 2.5, 3.5, -0.5,
    -1.5, -2.5, 0.25, 0.35, 0.45, 0.05, 0.15, 92.35, 92.45, 99.95, 1.005, 2.675, 1234.5, 1235.5,
    -0.25, -0.05, -92.35, 0.045, 0.955, 0.9665, 0.9675, 12.45, 1e-4, 5e-4, 4.9999e-4,
]
EDGES = [
    None, math.nan, math.inf, -math.inf, 0, 0.0, -0.0, 1, -1, 1e9, -1e9, 1e9 + 0.5, 999.95,
    999_999.5, 1e15 + 0.5, 2.0**53, 2.0**53 + 2, 1e20, 1e21, 1.5e21, -1e21, 2.0**70, 1e300,
    1.7e308, 5e-324, -5e-324, 1e-10, -1e-10, -0.04, -0.0004, 0.04999, 0.05000001,
]


def values() -> list[float | None]:
    rnd = random.Random(20261130)
    out: list[float | None] = [*HALVES, *EDGES]
    out += [k / 2 for k in range(-21, 22)]                   # integer halves
    out += [rnd.randrange(-20_000, 20_001) / 20 for _ in range(60)]      # x.x5
    out += [rnd.randrange(0, 20_001) / 20_000 for _ in range(60)]        # ratios at .x5%
    out += [rnd.randrange(-10_000, 10_001) / 10_000 for _ in range(60)]  # 4-decimal ratios
    out += [rnd.random() for _ in range(40)]
    out += [rnd.uniform(-1e7, 1e7) for _ in range(30)]
    out += [rnd.randrange(0, 10**12) + 0.5 for _ in range(20)]
    out += [10.0 ** rnd.uniform(-8, 25) * rnd.choice((1, -1)) for _ in range(30)]
    return out


def as_text(v: float | None) -> str | None:
    if v is None:
        return None
    if math.isnan(v):
        return "nan"
    return repr(float(v))


@pytest.fixture(scope="module")
def page():
    d = chromium(400, 300)
    d.get("about:blank")
    d.execute_script(FORMAT_JS.read_text(encoding="utf-8"))
    yield d
    d.quit()


def test_fmtp001_the_browser_writes_every_figure_as_the_server(page):
    vals = values()
    assert len(vals) > 300
    got = page.execute_script(FORMAT_ALL, [as_text(v) for v in vals], list(KINDS))
    diffs = [f"{kind} {v!r}: server {fmt(v, kind)!r}, browser {b!r}"
             for kind in KINDS for v, b in zip(vals, got[kind], strict=True) if fmt(v, kind) != b]
    assert not diffs, f"{len(diffs)} of {len(vals) * len(KINDS)} differ:\n" + "\n".join(diffs[:30])


def test_fmtp002_the_edges_are_what_the_wall_shows(page):
    """The cases the two used to disagree on, written out (the comparison above would pass
    if both sides were wrong the same way)."""
    cases = [(2.5, "int", "3"), (-2.5, "int", "-3"), (0.5, "int", "1"), (-0.4, "int", "0"),
             (1e21, "int", "1,000,000,000,000,000,000,000"), (-0.0, "pct", "0.0%"),
             (-0.0004, "pct", "0.0%"), (0.25, "index", "0.3"), (92.35, "index", "92.3"),
             (math.inf, "pct", DASH), (-math.inf, "int", DASH), (math.nan, "index", DASH),
             (None, "int", DASH), (1e9, "int", "1,000,000,000"), (0.9668, "pct", "96.7%")]
    got = page.execute_script(FORMAT_ALL, [as_text(v) for v, _, _ in cases], list(KINDS))
    for i, (v, kind, want) in enumerate(cases):
        assert fmt(v, kind) == want, (v, kind)
        assert got[kind][i] == want, (v, kind, got[kind][i])


def test_fmtp003_empty_and_text_values_from_data_attributes(page):
    """brief.js hands back a kept data-value (text, "" for none)."""
    got = page.execute_script(
        "var f = window.pinganFormat.fmt;"
        "return [f('', 'int'), f(undefined, 'pct'), f('1234.5', 'int'), f('0.9668', 'pct'),"
        "        f('abc', 'index')];")
    assert got == [DASH, DASH, fmt(1234.5, "int"), fmt(0.9668, "pct"), DASH]
