"""The wall's clock and date, and the tablet's date, are those of the configured zone
(PINGAN_TZ, Settings.tz), not the browser's: Chromium runs in New York here, the app in
Shanghai. The date also rolls over at midnight in Shanghai (the page's clock is moved there)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By

from dashboard.devkit.browser import chromium
from dashboard.devkit.stack import Stack, copy_registry
from layouts.formats import date_strings, date_text
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

APP_TZ = "Asia/Shanghai"
BROWSER_TZ = "America/New_York"
DAY_S = 86_400
ASSETS = Path(__file__).resolve().parents[2] / "assets"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, demo_db):
    d = tmp_path_factory.mktemp("clockstack")
    db_url, _ = copy_registry(demo_db, d)
    s = Stack(d, db_url, prefix="clock")
    s.env["PINGAN_TZ"] = APP_TZ
    s.start_redis()
    s.start_web()
    yield s
    s.close()


@pytest.fixture(scope="module")
def browser():
    """Chromium whose own zone is New York (chromedriver and Chromium inherit TZ)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TZ", BROWSER_TZ)
        d = chromium(1920, 1080)
    yield d
    d.quit()


def open_screen(browser, url: str) -> None:
    browser.get(url)
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, ".live-screen .wall-date"), 30)


def text(browser, selector: str) -> str:
    return browser.execute_script(
        "var e = document.querySelector(arguments[0]); return e ? e.textContent : null;", selector)


def seconds_apart(hms: str, when: datetime) -> int:
    h, m, s = (int(x) for x in hms.split(":"))
    d = abs(h * 3600 + m * 60 + s - (when.hour * 3600 + when.minute * 60 + when.second))
    return min(d, DAY_S - d)


def test_clk001_the_browser_really_is_elsewhere(browser):
    browser.get("about:blank")
    offset_min = browser.execute_script("return new Date().getTimezoneOffset()")
    assert offset_min in (240, 300), offset_min  # New York, summer or winter time
    assert browser.execute_script("return Intl.DateTimeFormat().resolvedOptions().timeZone") == BROWSER_TZ


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_clk002_wall_clock_and_date_are_shanghai_time(stack, browser, lang):
    open_screen(browser, f"{stack.url}/?lang={lang}")
    assert browser.execute_script(
        "return document.querySelector('.live-screen').getAttribute('data-tz')") == APP_TZ
    clock = wait_until(lambda: text(browser, ".wall-clock"), 10)
    now = datetime.now(ZoneInfo(APP_TZ))
    assert seconds_apart(clock, now) <= 60, (clock, now.isoformat())
    # New York is 12 or 13 hours behind: the browser's own clock would be far off
    local = datetime.now(ZoneInfo(BROWSER_TZ))
    assert seconds_apart(clock, local) > 3600
    today = now.date().isoformat()
    assert text(browser, ".wall-date") == date_text(today, lang)


def test_clk003_the_date_rolls_over_at_midnight_in_shanghai(stack, browser):
    """The page's clock moved to 23:59:58 in Shanghai (11:59:58 or 10:59:58 in New York, the
    same day there): the header's date turns to the next day two seconds later."""
    open_screen(browser, f"{stack.url}/")
    eve = datetime(2026, 11, 30, 23, 59, 58, tzinfo=ZoneInfo(APP_TZ))
    browser.execute_script(
        "var t0 = Date.now(), at = arguments[0];"
        "Date.now = function () { return at + (Date.prototype.getTime.call(new Date()) - t0); };",
        int(eve.timestamp() * 1000))
    wait_until(lambda: text(browser, ".wall-clock") in ("23:59:58", "23:59:59"), 5, every=0.05)
    assert text(browser, ".wall-date") == date_text("2026-11-30", "zh") == "11月30日 星期一"
    wait_until(lambda: text(browser, ".wall-clock") == "00:00:00", 5, every=0.05)
    wait_until(lambda: text(browser, ".wall-date") == "12月1日 星期二", 2, every=0.05)
    assert date_text("2026-12-01", "zh") == "12月1日 星期二"


def test_clk004_dates_and_times_of_an_instant_in_any_zone(browser):
    """pinganFormat on its own, around midnight in Shanghai and in Kolkata (+05:30)."""
    browser.get("about:blank")
    browser.execute_script(open_asset("format.js"))
    cases = [
        ("2026-11-30T15:59:59+00:00", APP_TZ, "23:59:59", "2026-11-30"),
        ("2026-11-30T16:00:00+00:00", APP_TZ, "00:00:00", "2026-12-01"),
        ("2026-11-30T18:29:59+00:00", "Asia/Kolkata", "23:59:59", "2026-11-30"),
        ("2026-11-30T18:30:00+00:00", "Asia/Kolkata", "00:00:00", "2026-12-01"),
        ("2026-12-31T16:00:00+00:00", APP_TZ, "00:00:00", "2027-01-01"),
    ]
    for iso, tz, hms, day in cases:
        ms = int(datetime.fromisoformat(iso).timestamp() * 1000)
        for lang in ("zh", "en"):
            got = browser.execute_script(
                "var f = window.pinganFormat, s = {};"
                "for (var i = 0; i < 7; i++) { s['wd_' + i] = arguments[3][i]; }"
                "return [f.clock(arguments[0], arguments[1]), f.hhmm(arguments[0], arguments[1]),"
                "        f.dateText(arguments[0], arguments[1], arguments[2], s)];",
                ms, tz, lang, weekdays(lang))
            assert got == [hms, hms[:5], date_text(day, lang)], (iso, tz, lang, got)


def test_clk005_tablet_date_is_shanghai_time(stack, browser):
    open_screen(browser, f"{stack.url}/brief?lang=en")
    today = datetime.now(ZoneInfo(APP_TZ)).date().isoformat()
    wait_until(lambda: text(browser, ".brief-date .wall-date") == date_text(today, "en"), 5)


def test_clk006_the_screens_format_through_the_one_formatter(stack, browser):
    """wall.js and map.js (brief.js alike) write what pinganFormat writes (itself checked against the
    server in test_format_parity.py)."""
    open_screen(browser, f"{stack.url}/")
    got = browser.execute_script(
        "var v = [2.5, -2.5, 0.25, 0.9995, null, NaN, 1e21], out = [];"
        "['int', 'pct', 'index'].forEach(function (k) { v.forEach(function (x) {"
        "  out.push([window.pinganFormat.fmt(x, k), window.pinganWall.format(x, k),"
        "            window.pinganMap.fmt(x, k)]); }); });"
        "return out;")
    assert all(a == b == c for a, b, c in got), got


def open_asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def weekdays(lang: str) -> list[str]:
    return list(date_strings(lang).values())
