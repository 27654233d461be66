"""Screenshots of video calls on a running demo (`pingan demo`), for docs/screenshots/.

    .venv/bin/python scripts/screenshot_calls.py URL OUTDIR

Headless Chromium with fake cameras: the city's wall calls a district whose wall is open in a
second browser (both sides, 1920x1080, and the caller at 7680x2160), a call answered by the
simulated endpoint, 整体联动 of the city's districts with every district's wall open, and a
call from the leader's tablet.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from selenium.webdriver.common.by import By

from dashboard.devkit.browser import FAKE_MEDIA, VC_DECODING, VC_READY, chromium, resize

CITY, DISTRICT = "610200", "610203"
DISTRICTS = ("610202", "610203", "610204", "610222")


def wait(fn, timeout: float = 40):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise RuntimeError("timed out")


def open_wall(d, url: str) -> None:
    d.get(url)
    wait(lambda: d.execute_script(VC_READY))
    wait(lambda: d.find_elements(By.CSS_SELECTOR, ".live-screen .js-plotly-plot .main-svg"))
    time.sleep(2)


def end(d) -> None:
    d.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
    time.sleep(2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    caller = chromium(1920, 1080, FAKE_MEDIA)
    callee = chromium(1920, 1080, FAKE_MEDIA)
    others = []
    try:
        open_wall(callee, f"{args.url}/?centre={DISTRICT}")
        open_wall(caller, f"{args.url}/")
        caller.find_element(By.CSS_SELECTOR, f'[data-rank-row="{DISTRICT}"] .vc-btn').click()
        wait(lambda: callee.find_elements(By.ID, "vc-ring"), 10)
        callee.save_screenshot(str(args.out / "vc-ringing-1920x1080.png"))
        wait(lambda: caller.execute_script(VC_DECODING, DISTRICT))
        wait(lambda: callee.execute_script(VC_DECODING, CITY))
        time.sleep(3)
        caller.save_screenshot(str(args.out / "vc-call-1920x1080.png"))
        callee.save_screenshot(str(args.out / "vc-callee-1920x1080.png"))
        resize(caller, 7680, 2160)
        time.sleep(3)
        caller.save_screenshot(str(args.out / "vc-call-7680x2160.png"))
        resize(caller, 1920, 1080)
        end(caller)

        town = "610203001"  # no screen open: the simulated endpoint answers
        caller.execute_script("window.pinganWall.call(arguments[0], false)", town)
        wait(lambda: caller.execute_script(VC_DECODING, town))
        time.sleep(2)
        caller.save_screenshot(str(args.out / "vc-simulated-1920x1080.png"))
        end(caller)

        walls = {DISTRICT: callee}
        for code in DISTRICTS:
            if code not in walls:
                walls[code] = chromium(960, 540, FAKE_MEDIA)
                others.append(walls[code])
                open_wall(walls[code], f"{args.url}/?centre={code}")
        caller.find_element(By.CSS_SELECTOR, ".vc-btn-group").click()
        for code in DISTRICTS:
            wait(lambda code=code: caller.execute_script(VC_DECODING, code), 60)
        time.sleep(3)
        caller.save_screenshot(str(args.out / "vc-group-1920x1080.png"))
        end(caller)

        tablet = chromium(1366, 1024, FAKE_MEDIA)  # a leader's tablet calls from a brief card
        others.append(tablet)
        tablet.get(f"{args.url}/brief")
        wait(lambda: tablet.execute_script(VC_READY))
        time.sleep(3)
        tablet.find_element(By.CSS_SELECTOR, f'.brief-card[data-rank-row="{DISTRICT}"] .vc-btn').click()
        wait(lambda: tablet.execute_script(VC_DECODING, DISTRICT))
        time.sleep(2)
        tablet.save_screenshot(str(args.out / "vc-tablet-1366x1024.png"))
        end(tablet)
    finally:
        for d in (caller, callee, *others):
            d.quit()


if __name__ == "__main__":
    main()
