"""Headless-Chromium screenshots of a running app (for docs/ and for looking at the screens).

    .venv/bin/python scripts/screenshot.py URL OUT.png [WIDTHxHEIGHT] [--wait SECONDS]
"""

from __future__ import annotations

import argparse
import time

from dashboard.devkit.browser import chromium


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("out")
    ap.add_argument("size", nargs="?", default="1920x1080")
    ap.add_argument("--wait", type=float, default=4.0)
    args = ap.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    d = chromium(w, h)
    try:
        d.get(args.url)
        time.sleep(args.wait)
        d.save_screenshot(args.out)
    finally:
        d.quit()


if __name__ == "__main__":
    main()
