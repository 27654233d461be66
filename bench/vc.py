"""Video calls: time from the click on 连线 to the first remote frame, and what the web workers
spend on a call.

    .venv/bin/python bench/vc.py [--runs 5] [--hold 20]

On a stack of its own (embedded Redis, the demo registry, a private Janus, 2 gunicorn
workers, auth demo), in headless Chromium with fake cameras (640x360), the caller is the
city's wall; each run, in the same order every time:

- `loopback` (the baseline): 连线 to a centre with no screen open, answered by the simulated
  endpoint in the caller's own browser — the Dash start callback and a WebRTC set-up with no
  signalling and no network;
- `p2p`: 连线 to a district whose wall is open in a second browser (ring, auto-answer after
  1.5 s, offer/answer through /vc/signal, ICE between the two browsers);
- `janus`: 整体联动 of the city's four districts, each wall open in its own browser, through
  the Janus VideoRoom: until the first and until the last of the four videos decodes.

Times are taken in the page: from the click to the first `requestVideoFrameCallback` of the
remote <video data-vc-peer>. The auto-answer delay (1.5 s, a setting of the callee's wall
kept so a desk can decline first) is part of p2p and janus; `p2p − 1.5 s` is printed too.

CPU: the web workers' user+system time (from /proc) over `--hold` seconds with the walls open
and no call (baseline), then over the same time with a point-to-point call and with the
four-centre 整体联动 in progress — signalling only, media never passes through Python.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from selenium.webdriver.common.by import By

from dashboard.devkit.browser import FAKE_MEDIA, VC_READY, chromium
from dashboard.devkit.stack import Stack, demo_registry

CITY, DISTRICT = "610200", "610203"
DISTRICTS = ("610202", "610203", "610204", "610222")
AUTO_ANSWER_S = 1.5

# Clicks `selector` (or asks for a call to `code`, as a map popup does) and records, per remote
# centre, the first decoded frame after the click.
CLICK = """
var sel = arguments[0], want = arguments[1], code = arguments[2];
var out = window.__vcb = {t0: performance.now(), first: {}};
var watch = setInterval(function () {
  want.forEach(function (code) {
    var v = document.querySelector('video[data-vc-peer="' + code + '"]');
    if (!v || v.__vcb || !v.requestVideoFrameCallback) return;
    v.__vcb = true;
    v.requestVideoFrameCallback(function () { out.first[code] = performance.now() - out.t0; });
  });
  if (Object.keys(out.first).length === want.length) clearInterval(watch);
}, 10);
if (sel) { document.querySelector(sel).click(); } else { window.pinganWall.call(code, false); }
"""


MARKS = "var c = window.pinganVC.state().call; return c ? c.marks : null;"


def cpu_s(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def workers(stack: Stack) -> list[int]:
    master = stack.procs["web"].pid
    kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, kids)]


def open_wall(d, url: str) -> None:
    d.get(url)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if d.execute_script(VC_READY) and \
                d.find_elements(By.CSS_SELECTOR, ".live-screen [data-rank-row], .live-screen .wall-canvas"):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url}: the wall or its signalling stream did not come up")


def timed_call(caller, selector: str | None, want: list[str], timeout: float = 60) -> list[float]:
    """`selector` None: a call to want[0] as a map popup asks for it."""
    caller.execute_script(CLICK, selector, want, want[0])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        first = caller.execute_script("return window.__vcb.first")
        if len(first) == len(want):
            return sorted(first.values())
        time.sleep(0.05)
    raise RuntimeError(f"no frame from {want} in {timeout}s: {caller.execute_script('return window.__vcb')}")


def end(caller, callees=()) -> None:
    caller.find_element(By.CSS_SELECTOR, '#vc-live [data-vc-act="end"]').click()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not any(d.find_elements(By.ID, "vc-live") for d in (caller, *callees)):
            time.sleep(0.5)
            return
        time.sleep(0.1)
    raise RuntimeError("the call did not end on every screen")


def town_without_screen(stack: Stack) -> str:
    """A town of the district under test: no screen of it is open, the simulated endpoint answers."""
    db = stack.db_url.removeprefix("sqlite:///")
    with sqlite3.connect(db) as con:
        row = con.execute("SELECT code FROM centres WHERE parent = ? ORDER BY code LIMIT 1",
                          (DISTRICT,)).fetchone()
    return row[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--hold", type=float, default=20.0, help="seconds of each CPU window")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vcbench-") as tmp:
        stack = Stack(Path(tmp), demo_registry(Path(tmp)), prefix="vcbench")
        stack.env.update(PINGAN_AUTH="demo", PINGAN_VC_SIMULATE="1", PINGAN_CONFERENCE_URL="",
                         PINGAN_VC_STARTS_PER_MIN="0")
        browsers = []
        try:
            stack.start_redis()
            stack.run("simulate", "--events", "2000")
            stack.start_janus()
            stack.start_aggregator()
            stack.start_web(workers=2)
            caller = chromium(1280, 720, FAKE_MEDIA)
            browsers.append(caller)
            walls = {}
            for code in DISTRICTS:
                walls[code] = chromium(960, 540, FAKE_MEDIA)
                browsers.append(walls[code])
            open_wall(caller, stack.url + "/")
            for code, d in walls.items():
                open_wall(d, f"{stack.url}/?centre={code}")
            nobody = town_without_screen(stack)
            row = '[data-rank-row="{}"] .vc-btn'
            res: dict[str, list[float]] = {"loopback": [], "p2p": [], "janus first": [], "janus all": []}
            for i in range(args.runs):
                res["loopback"].append(timed_call(caller, None, [nobody])[0])
                end(caller)
                res["p2p"].append(timed_call(caller, row.format(DISTRICT), [DISTRICT])[0])
                end(caller, [walls[DISTRICT]])
                times = timed_call(caller, ".vc-btn-group", list(DISTRICTS))
                res["janus first"].append(times[0])
                res["janus all"].append(times[-1])
                marks = {"convener": caller.execute_script(MARKS),
                         "a convened wall": walls[DISTRICT].execute_script(MARKS)}
                end(caller, list(walls.values()))
                print(f"run {i + 1}: " + "  ".join(f"{k} {v[-1]:.0f} ms" for k, v in res.items()), flush=True)
            med = {k: statistics.median(v) for k, v in res.items()}
            print("\nclick → first remote frame, median of", args.runs, "runs (ms):")
            for k, v in med.items():
                print(f"  {k:12s} {v:8.0f}   × loopback {v / med['loopback']:.2f}")
            print(f"  p2p − auto-answer delay {med['p2p'] - AUTO_ANSWER_S * 1000:.0f} ms;"
                  f" janus all / p2p {med['janus all'] / med['p2p']:.2f}")

            print("\nwhere the time went in the last 整体联动 (ms after the call started on that screen):")
            for who, m in marks.items():
                print(f"  {who:16s} " + "  ".join(f"{k} {v}" for k, v in sorted((m or {}).items(), key=lambda kv: kv[1])))
            pids = workers(stack)
            windows = {}
            for name in ("idle", "p2p call", "janus 4"):
                if name == "p2p call":
                    timed_call(caller, row.format(DISTRICT), [DISTRICT])
                elif name == "janus 4":
                    timed_call(caller, ".vc-btn-group", list(DISTRICTS))
                c0, t0 = cpu_s(pids), time.monotonic()
                time.sleep(args.hold)
                windows[name] = (cpu_s(pids) - c0) / (time.monotonic() - t0)
                if name == "p2p call":
                    end(caller, [walls[DISTRICT]])
                elif name == "janus 4":
                    end(caller, list(walls.values()))
            print(f"\nweb workers' CPU ({len(pids)} processes, {args.hold:.0f} s windows, "
                  "5 walls open with their live and call streams):")
            for name, v in windows.items():
                print(f"  {name:10s} {100 * v:6.2f} % of a core   × idle {v / windows['idle']:.2f}")
        finally:
            for d in browsers:
                d.quit()
            stack.close()


if __name__ == "__main__":
    main()
