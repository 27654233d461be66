"""layouts/formats.py: how figures and dates are written (pure). The browser's twin,
assets/format.js, is compared with these in tests/integration/test_format_parity.py."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from layouts.formats import DASH, KINDS, MONTHS_EN, date_strings, date_text, fmt, raw
from layouts.i18n import t


def test_fmt001_int_groups_thousands():
    assert fmt(0, "int") == "0"
    assert fmt(999, "int") == "999"
    assert fmt(1234, "int") == "1,234"
    assert fmt(1_000_000_000, "int") == "1,000,000,000"
    assert fmt(-1234567, "int") == "-1,234,567"


@pytest.mark.parametrize(("value", "want"), [
    (0.5, "1"), (1.5, "2"), (2.5, "3"), (3.5, "4"), (1234.5, "1,235"),
    (-0.5, "-1"), (-1.5, "-2"), (-2.5, "-3"),
])
def test_fmt002_int_rounds_halves_away_from_zero(value, want):
    """Not Python's round() (2.5 → 2): the browser's rounding, whatever the parity."""
    assert fmt(value, "int") == want


def test_fmt003_int_just_below_a_half_rounds_down():
    assert fmt(2.4999999999999996, "int") == "2"
    assert fmt(0.49999999999999994, "int") == "0"


def test_fmt004_no_negative_zero():
    assert fmt(-0.0, "int") == "0"
    assert fmt(-0.4, "int") == "0"
    assert fmt(-0.0, "pct") == "0.0%"
    assert fmt(-0.0004, "pct") == "0.0%"
    assert fmt(-0.04, "index") == "0.0"


def test_fmt005_pct_one_decimal():
    assert fmt(0.9668, "pct") == "96.7%"
    assert fmt(1.0, "pct") == "100.0%"
    assert fmt(0, "pct") == "0.0%"
    assert fmt(0.5, "pct") == "50.0%"
    assert fmt(1.5, "pct") == "150.0%"
    assert fmt(-0.25, "pct") == "-25.0%"


def test_fmt006_pct_rounds_the_binary_value_of_value_times_100():
    # 0.1245 * 100 is 12.4499999… in binary, 0.0005 * 100 is 0.05000000000000000277…
    assert Fraction(0.1245 * 100) < Fraction(1245, 100)
    assert fmt(0.1245, "pct") == "12.4%"
    assert Fraction(0.0005 * 100) > Fraction(1, 20)
    assert fmt(0.0005, "pct") == "0.1%"


def test_fmt007_index_exact_binary_halves_round_up():
    assert fmt(0.25, "index") == "0.3"
    assert fmt(2.5, "index") == "2.5"
    assert fmt(-0.25, "index") == "-0.3"
    assert fmt(0.75, "index") == "0.8"


def test_fmt008_index_decimal_halves_follow_their_binary_value():
    assert Fraction(92.35) < Fraction(9235, 100)
    assert fmt(92.35, "index") == "92.3"
    assert Fraction(92.45) > Fraction(9245, 100)
    assert fmt(92.45, "index") == "92.5"
    assert fmt(92.44, "index") == "92.4"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_fmt009_no_number_is_the_dash(value, kind):
    assert fmt(value, kind) == DASH


def test_fmt010_a_pct_that_overflows_is_the_dash():
    assert math.isinf(1e307 * 100)
    assert fmt(1e307, "pct") == DASH
    assert fmt(1e307, "index").endswith(".0")


def test_fmt011_huge_values_keep_every_digit():
    assert fmt(2.0**70, "int") == f"{2**70:,}"
    assert fmt(1e21, "int") == "1,000,000,000,000,000,000,000"
    assert fmt(1e21, "index") == "1000000000000000000000.0"
    assert fmt(1.7e308, "int").replace(",", "") == str(int(1.7e308))


def test_fmt012_tiny_values():
    assert fmt(5e-324, "pct") == "0.0%"
    assert fmt(1e-10, "index") == "0.0"
    assert fmt(0.05000001, "index") == "0.1"
    assert fmt(0.04999, "index") == "0.0"


def test_fmt013_ints_and_floats_alike():
    assert fmt(7, "pct") == fmt(7.0, "pct") == "700.0%"
    assert fmt(92, "index") == fmt(92.0, "index") == "92.0"
    assert fmt(10**30, "int") == f"{10**30:,}"


def test_fmt014_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown format"):
        fmt(1, "percent")
    with pytest.raises(ValueError):
        fmt(None, "")


def test_fmt015_raw_is_the_data_value():
    assert raw(None) == ""
    assert raw(0) == "0"
    assert raw(0.9668) == "0.9668"
    assert raw(-0.0) == "-0.0"
    assert raw("x") == "x"


def test_fmt016_date_text_in_both_languages():
    assert date_text("2026-11-30", "zh") == "11月30日 星期一"
    assert date_text("2026-11-30", "en") == "Mon 30 Nov"
    assert date_text("2027-01-03", "zh") == "1月3日 星期日"
    assert date_text("2027-01-03", "en") == "Sun 3 Jan"


def test_fmt017_date_text_of_a_bad_day_is_the_text_itself():
    assert date_text("", "zh") == ""
    assert date_text(None, "en") == ""  # type: ignore[arg-type]
    assert date_text("tomorrow", "zh") == "tomorrow"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_fmt018_date_strings_are_the_weekdays_monday_first(lang):
    s = date_strings(lang)
    assert list(s) == [f"wd_{i}" for i in range(7)]
    assert s["wd_0"] == t("wd_0", lang)
    assert date_text("2026-11-30", lang).count(s["wd_0"]) == 1  # a Monday


def test_fmt019_months_every_month():
    assert len(MONTHS_EN) == 12
    for m in range(1, 13):
        assert date_text(f"2026-{m:02d}-15", "en").endswith(" " + MONTHS_EN[m - 1])
        assert date_text(f"2026-{m:02d}-15", "zh").startswith(f"{m}月15日 ")
