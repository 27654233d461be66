"""How figures and dates are written on the screens. `assets/format.js` (`window.pinganFormat`)
implements exactly the same rules for the live updates (tests/integration/test_format_parity.py
compares the two value by value).

- "int":   nearest integer, thousands separators   1234.5  → "1,235"
- "pct":   a 0–1 ratio, one decimal + "%"          0.9668  → "96.7%"
- "index": one decimal                             92.44   → "92.4"
- None, NaN or ±inf (no data, e.g. a rate with a zero denominator) → "—" in every format.

Rounding is half away from zero on the exact binary value of the float, the value a browser
sees too: 2.5 → "3", -2.5 → "-3", 0.25 → "0.3" but 92.35 → "92.3" (92.35 is 92.3499… in
binary). A result that rounds to zero carries no sign ("0", "0.0%", never "-0.0").

`raw(value)` is what goes into `data-value`: `str(value)`, and "" for None.
`date_text(day, lang)` is the header's date; assets/format.js writes it the same way from the
clock in the configured time zone (the strings it needs: `date_strings(lang)`).
"""

from __future__ import annotations

import math
from datetime import date
from decimal import ROUND_HALF_UP, Context, Decimal

from layouts.i18n import t

DASH = "—"
KINDS = ("int", "pct", "index")
# English month abbreviations of the header's date (the Chinese date writes the number).
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_ONE = Decimal("1")
_TENTH = Decimal("0.1")
_EXACT = Context(prec=400, rounding=ROUND_HALF_UP)  # every digit of the largest float (~1.8e308)


def _rounded(x: float, step: Decimal) -> str:
    q = Decimal(x).quantize(step, context=_EXACT)
    return str(abs(q) if q.is_zero() else q)


def fmt(value: float | int | None, kind: str) -> str:
    """The text of a figure."""
    if kind not in KINDS:
        raise ValueError(f"unknown format {kind!r}")
    if value is None:
        return DASH
    x = value * 100 if kind == "pct" else value
    if not math.isfinite(x):
        return DASH
    if kind == "int":
        return f"{int(_rounded(x, _ONE)):,}"
    return _rounded(x, _TENTH) + ("%" if kind == "pct" else "")


def raw(value: object) -> str:
    """The `data-value` attribute of a figure."""
    return "" if value is None else str(value)


def date_strings(lang: str) -> dict[str, str]:
    """What the browser needs to write `date_text`: the weekday names (wd_0 = Monday)."""
    return {f"wd_{i}": t(f"wd_{i}", lang) for i in range(7)}


def date_text(day: str, lang: str) -> str:
    """The header's date of `day` (ISO "YYYY-MM-DD"): "11月30日 星期一" / "Mon 30 Nov"; the
    year is known in the room and the header needs the width."""
    try:
        d = date.fromisoformat(day)
    except (TypeError, ValueError):
        return str(day or "")
    wd = t(f"wd_{d.weekday()}", lang)
    if lang == "zh":
        return f"{d.month}月{d.day}日 {wd}"
    return f"{wd} {d.day} {MONTHS_EN[d.month - 1]}"
