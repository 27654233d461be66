"""Many screens on the live push (SSE, `/live/stream`) from one asyncio process, for benches.

Each `Screen` holds one open stream and records when its `events.reported` figure changed
(wall-clock ms, so a bench can subtract the time it wrote a probe entry to Redis). Requests are
HTTP/1.0, so neither gunicorn nor nginx chunks the body: the stream is read line by line until
the server closes it. Only messages that carry the figure are parsed as JSON (most messages of
an idle region are freshness only), which keeps the client's own CPU small next to the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from dashboard.live import STREAM_PATH

FIGURE = "events.reported"
_MARK = b'"' + FIGURE.encode() + b'"'
LINE_LIMIT = 1 << 22  # a city's first message is ~60 KB on one line


@dataclass
class Screen:
    host: str
    port: int
    centre: str
    value: int | None = None  # the last `events.reported` this screen received
    changes: list[tuple[float, int]] = field(default_factory=list)  # (ms, new value)
    messages: int = 0
    received: int = 0  # bytes of the body
    error: str | None = None

    @property
    def path(self) -> str:
        return f"{STREAM_PATH}?centre={quote(self.centre)}&lang=zh"

    def delay_ms(self, sent_ms: float, before: int | None) -> float | None:
        """Ms from `sent_ms` until this screen saw a value above `before` (None: not yet)."""
        for t, v in self.changes:
            if t >= sent_ms and (before is None or v > before):
                return t - sent_ms
        return None

    def _note(self, data: bytes) -> None:
        self.messages += 1
        if _MARK not in data:
            return
        with contextlib.suppress(ValueError, KeyError, TypeError):
            value = int(json.loads(data)["figures"][FIGURE])
            if value != self.value:
                self.value = value
                self.changes.append((time.time() * 1000, value))

    async def watch(self) -> None:
        """Hold the stream open until the task is cancelled (or the server closes it)."""
        writer = None
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port, limit=LINE_LIMIT)
            writer.write(f"GET {self.path} HTTP/1.0\r\nHost: {self.host}:{self.port}\r\n"
                         "Accept: text/event-stream\r\n\r\n".encode())
            await writer.drain()
            status = await reader.readline()
            if b" 200 " not in status:
                self.error = status.decode(errors="replace").strip() or "no answer"
                return
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # headers
            while line := await reader.readline():
                self.received += len(line)
                if line.startswith(b"data:"):
                    self._note(line[5:])
            self.error = "closed by the server"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if writer is not None:
                writer.close()


async def open_screens(screens: list[Screen], per_s: float = 400.0,
                       timeout_s: float = 120.0) -> list[asyncio.Task]:
    """Start every screen's stream, `per_s` a second, and wait until each has its first figure
    (or failed, or `timeout_s` passed); returns the tasks, for `close_screens`."""
    tasks = []
    for i, s in enumerate(screens):
        tasks.append(asyncio.ensure_future(s.watch()))
        if i % 20 == 19:
            await asyncio.sleep(20 / per_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(s.value is not None or s.error for s in screens):
            break
        await asyncio.sleep(0.2)
    return tasks


async def close_screens(tasks: list[asyncio.Task]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
