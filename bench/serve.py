"""Serving: N screens refreshing every second against gunicorn, the Dash path vs plain Flask.

    .venv/bin/python bench/serve.py [--screens 50,200,500] [--seconds 10]

Starts the production stack (gunicorn with 2 gevent workers, the aggregator, a private Redis,
a background simulator so versions keep moving). Each simulated screen holds one keep-alive
connection and once a second asks for what changed, exactly as the wall's polling fallback
does: a POST of the Dash poll callback (`live-poll`), which answers with a Patch of the view
model. The baseline is a plain Flask route doing the same work (`/live/poll`: the same
`ScreenData.poll` of the worker's one screen-data service, as JSON), measured in the same run. Then both are driven closed-loop by 16 connections for their capacity.
Targets (issue #3): 500 screens at p95 ≤ 100 ms; the Dash path ≥ 50% of the plain throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from dashboard.devkit.stack import Stack, demo_registry
from dashboard.devkit.stats import pct

CENTRE = "610200"


class Conn:
    """A minimal HTTP/1.1 keep-alive client (Content-Length responses only)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> bytes:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port)
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.w.write(head.encode() + body)
        await self.w.drain()
        status = await self.r.readline()
        length = 0
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await self.r.readexactly(length)
        if b" 200 " not in status:
            raise RuntimeError(f"{status!r} {data[:200]!r}")
        return data

    def close(self) -> None:
        if self.w is not None:
            self.w.close()


class DashPoll:
    """The wall's poll callback request, from /_dash-dependencies."""

    def __init__(self, deps: list[dict]) -> None:
        dep = next(d for d in deps if any(i["id"] == "live-poll" for i in d["inputs"]))
        self.output = dep["output"]
        outs = self.output.strip(".").split("...")
        self.outputs = [dict(zip(("id", "property"), o.rsplit(".", 1), strict=True)) for o in outs]

    def body(self, have: str | None) -> bytes:
        return json.dumps({
            "output": self.output, "outputs": self.outputs,
            "inputs": [{"id": "live-poll", "property": "n_intervals", "value": 1}],
            "changedPropIds": ["live-poll.n_intervals"],
            "state": [{"id": "app-url", "property": "search", "value": f"?centre={CENTRE}&push=poll"},
                      {"id": "live-poll-version", "property": "data", "value": have}],
        }).encode()

    @staticmethod
    def version(reply: bytes) -> str | None:
        resp = json.loads(reply)["response"]
        return next(v["data"] for k, v in resp.items() if k == "live-poll-version")


async def one_request(kind: str, conn: Conn, dash: DashPoll, have: str | None) -> str | None:
    if kind == "dash":
        reply = await conn.request("POST", "/_dash-update-component", dash.body(have))
        return DashPoll.version(reply)
    reply = await conn.request("GET", f"/live/poll?centre={CENTRE}&have={quote(have or '')}")
    return json.loads(reply)["version"]


async def screens(port: int, kind: str, n: int, seconds: float, dash: DashPoll) -> list[float]:
    """n screens, each asking once a second (starts spread over the first second)."""
    lat: list[float] = []
    end = time.monotonic() + seconds

    async def screen(i: int) -> None:
        conn = Conn(port)
        have = None
        await asyncio.sleep(i / n)
        nxt = time.monotonic()
        try:
            while nxt < end:
                t = time.perf_counter()
                have = await one_request(kind, conn, dash, have)
                lat.append((time.perf_counter() - t) * 1000)
                nxt += 1.0
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
        finally:
            conn.close()

    await asyncio.gather(*(screen(i) for i in range(n)))
    return lat


async def capacity(port: int, kind: str, conns: int, seconds: float, dash: DashPoll) -> float:
    count = 0
    end = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal count
        conn = Conn(port)
        have = None
        try:
            while time.monotonic() < end:
                have = await one_request(kind, conn, dash, have)
                count += 1
        finally:
            conn.close()

    t0 = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(conns)))
    return count / (time.monotonic() - t0)


async def run(port: int, sizes: list[int], seconds: float) -> None:
    conn = Conn(port)
    deps = json.loads(await conn.request("GET", "/_dash-dependencies"))
    conn.close()
    dash = DashPoll(deps)
    print(f"{'screens':>7} {'path':<6} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7}")
    for n in sizes:
        for kind in ("plain", "dash"):
            lat = await screens(port, kind, n, seconds, dash)
            print(f"{n:>7} {kind:<6} {len(lat) / seconds:>7.0f} {statistics.median(lat):>7.1f} "
                  f"{pct(lat, 95):>7.1f}")
    plain = await capacity(port, "plain", 16, 5, dash)
    dash_rate = await capacity(port, "dash", 16, 5, dash)
    print(f"capacity, 16 connections closed-loop: plain {plain:,.0f} req/s, dash {dash_rate:,.0f} req/s")
    print(f"ratio dash/plain throughput: {dash_rate / plain:.2f}   (target ≥ 0.50)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--screens", default="50,200,500")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--load", type=float, default=100.0, help="background entries/s")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="pingan-serve-"))
    stack = Stack(tmp, demo_registry(tmp), prefix="serve")
    stack.start_redis()
    try:
        stack.run("simulate", "--events", "5000")
        stack.start_aggregator()
        stack.start("load", stack.pingan("simulate", "--rate", str(args.load), "--no-cameras"))
        stack.start_web(workers=2)
        time.sleep(2)
        print(f"gunicorn: 2 gevent workers; background load {args.load:.0f} entries/s; centre {CENTRE}")
        asyncio.run(run(stack.port, [int(x) for x in args.screens.split(",")], args.seconds))
    finally:
        stack.close()


if __name__ == "__main__":
    main()
