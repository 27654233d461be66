"""The data dir (`PINGAN_DATA_DIR`, default ./var): private to the service's user.

It holds the signing key (`secret.key`), the embedded Redis server's socket, AOF and log, and
the SQLite registry: whoever can read it can sign cookies or talk to Redis. Every process that
creates or uses it makes it mode 0700 (an existing dir of looser mode is tightened).
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) if missing, mode 0700; tighten it when group or
    others may enter. A dir we do not own is left as it is, with a warning."""
    path = Path(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(0o700)
        except PermissionError:
            log.warning("%s is mode %o and not ours to change: make it 0700", path, mode)
    return path
