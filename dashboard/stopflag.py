"""SIGTERM/SIGINT as a flag that long-running commands poll between whole steps."""

from __future__ import annotations

import signal


class StopFlag:
    """Installs itself as the SIGTERM and SIGINT handler; calling it says whether one came.
    The loops that poll it finish the batch or chunk in hand: a stop never cuts one in half."""

    def __init__(self) -> None:
        self.stopped = False
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, *_a) -> None:
        self.stopped = True

    def __call__(self) -> bool:
        return self.stopped
