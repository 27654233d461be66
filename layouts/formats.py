"""How figures are written on the wall. `assets/wall.js` re-implements exactly these rules.

- "int":   thousands separators            1234    → "1,234"
- "pct":   a 0–1 ratio, one decimal + "%"  0.9668  → "96.7%"
- "index": one decimal                     92.44   → "92.4"
- None (no data, e.g. a rate with a zero denominator) → "—" in every format.

`raw(value)` is what goes into `data-value`: `str(value)`, and "" for None.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

DASH = "—"


def _one_decimal(x: float) -> str:
    # Same as JS `x.toFixed(1)`: round the exact binary value half up (92.35 → "92.3" since
    # 92.35 is 92.34999… in binary; 0.25 → "0.3", where an f-string would give "0.2").
    return str(Decimal(x).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def fmt(value: float | int | None, kind: str) -> str:
    """The text of a figure."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if kind == "int":
        return f"{int(round(value)):,}"
    if kind == "pct":
        return _one_decimal(value * 100) + "%"
    if kind == "index":
        return _one_decimal(value)
    raise ValueError(f"unknown format {kind!r}")


def raw(value: object) -> str:
    """The `data-value` attribute of a figure."""
    return "" if value is None else str(value)
