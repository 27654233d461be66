"""Password checks off the web server's event loop, a few at a time.

An Argon2id check costs ~0.2 s of CPU. Under gunicorn's gevent workers a check run inline
holds the worker's one event loop for that long: every live stream of the worker stalls
(five bad sign-ins a second stretched a wall's worst gap between messages from 0.4 s to
2.8 s, docs/security.md). So a check runs in a real OS thread — gevent's thread pool when
the worker runs under gevent (`gevent.get_hub().threadpool`; argon2-cffi releases the GIL
while hashing), a `ThreadPoolExecutor` otherwise — and at most `max_concurrent` checks run at
once per worker: a sign-in that finds every slot taken is answered at once ("busy, try
again"), never queued behind a flood.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any


class Busy(Exception):
    """Every hashing slot of this worker is taken: answer "try again" now."""


def _under_gevent() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return monkey.is_module_patched("threading")


class HashPool:
    def __init__(self, max_concurrent: int) -> None:
        self.max_concurrent = max(1, int(max_concurrent))
        self._slots = threading.BoundedSemaphore(self.max_concurrent)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one hashing slot for the block, or raise `Busy` at once."""
        if not self._slots.acquire(blocking=False):
            raise Busy
        try:
            yield
        finally:
            self._slots.release()

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` in a real thread; the calling greenlet (or thread) waits for it."""
        if _under_gevent():
            import gevent

            return gevent.get_hub().threadpool.apply(fn, args)
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.max_concurrent,
                                                    thread_name_prefix="pingan-hash")
        return self._executor.submit(fn, *args).result()
