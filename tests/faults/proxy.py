"""A small threaded TCP proxy that breaks connections on purpose (no outside tool).

It forwards a local port to an upstream server (Redis) and can
- cut every connection at a random moment: each connection lives a random time drawn from
  `lifetime_s` (low, high) and is then closed on both sides, whatever it was doing;
- lose replies: when a client's request contains `marker` (e.g. the fenced write script's
  `!XACK`), with probability `lose_reply`, forward the request to the server and then close
  the connection instead of forwarding the server's reply. The server has executed the
  request; the client sees a dropped connection and, with a retry policy, sends it again.

Counters (`cuts`, `lost_replies`, `connections`) say how often that happened.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket,
                 deadline: float | None) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.deadline = deadline
        self.drop_reply = False
        self.closed = False
        self.lock = threading.Lock()

    def close(self) -> bool:
        """Close both sides (once); True if this call closed them."""
        with self.lock:
            if self.closed:
                return False
            self.closed = True
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()
        self.proxy._forget(self)
        return True

    def pump_requests(self) -> None:
        try:
            while True:
                data = self.client.recv(65536)
                if not data:
                    break
                p = self.proxy
                if p.marker and p.marker in data and p.rng.random() < p.lose_reply:
                    self.drop_reply = True  # set before the server can answer
                self.upstream.sendall(data)
        except OSError:
            pass
        self.close()

    def pump_replies(self) -> None:
        try:
            while True:
                data = self.upstream.recv(65536)
                if not data:
                    break
                if self.drop_reply:
                    if self.close():
                        self.proxy.count("lost_replies")
                    return
                self.client.sendall(data)
        except OSError:
            pass
        self.close()


class FaultProxy:
    def __init__(self, upstream: tuple[str, int], *, lifetime_s: tuple[float, float] | None = None,
                 lose_reply: float = 0.0, marker: bytes = b"", seed: int = 1) -> None:
        self.upstream = upstream
        self.lifetime_s = lifetime_s
        self.lose_reply = lose_reply
        self.marker = marker
        self.rng = random.Random(seed)
        self.cuts = 0
        self.lost_replies = 0
        self.connections = 0
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def count(self, what: str) -> None:
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    def _forget(self, link: _Link) -> None:
        with self._lock:
            self._links.discard(link)

    def start(self) -> FaultProxy:
        for target in (self._accept, self._reap):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            links = list(self._links)
        for link in links:
            link.close()

    def cut_all(self) -> int:
        """Cut every open connection now (a network blip); how many."""
        with self._lock:
            links = list(self._links)
        n = sum(1 for link in links if link.close())
        with self._lock:
            self.cuts += n
        return n

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            deadline = None
            if self.lifetime_s:
                deadline = time.monotonic() + self.rng.uniform(*self.lifetime_s)
            link = _Link(self, client, upstream, deadline)
            with self._lock:
                self._links.add(link)
                self.connections += 1
            for target in (link.pump_requests, link.pump_replies):
                threading.Thread(target=target, daemon=True).start()

    def _reap(self) -> None:
        """Cut connections whose random lifetime is over."""
        while not self._stop.wait(0.01):
            now = time.monotonic()
            with self._lock:
                due = [lk for lk in self._links if lk.deadline is not None and lk.deadline <= now]
            for link in due:
                if link.close():
                    self.count("cuts")
