"""The aggregator's sense of time, injectable so that tests and `bench/growth.py` can run it
on a controlled clock.

Production uses the wall clock. A `TimeSource` with `scale > 1` runs simulated time faster
than real time (e.g. one simulated day in ten real seconds): `now_ms()` is simulated time, and
`ttl_s()` converts a retention in simulated seconds into the real seconds Redis must wait,
so that keys expire on the simulated timeline too. Leases stay in real time (they are about
process liveness, not about data).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TimeSource:
    """Simulated ms = start_ms + scale × (real elapsed ms since construction)."""

    start_ms: int | None = None  # None: the wall clock
    scale: float = 1.0
    _real0: float = field(default_factory=time.time, repr=False, compare=False)

    def now_ms(self) -> int:
        if self.start_ms is None and self.scale == 1.0:
            return int(time.time() * 1000)
        start = self.start_ms if self.start_ms is not None else int(self._real0 * 1000)
        return start + int((time.time() - self._real0) * 1000 * self.scale)

    def ttl_s(self, seconds: float) -> int:
        """A retention of `seconds` of (simulated) time as a Redis TTL in real seconds (≥ 1)."""
        return max(1, math.ceil(seconds / self.scale))


WALL = TimeSource()
