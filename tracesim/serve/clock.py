"""The dilated playback clock: wall time since start -> trace time.

At wall time ``w`` seconds after the clock started, every event with trace time
``<= trace_start + speed * w`` has happened. The wall clock is ``time.monotonic`` (immune to
NTP steps); tests pass their own ``time_fn``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class PlaybackClock:
    """Maps wall time to trace time at ``speed`` trace seconds per wall second."""

    def __init__(
        self,
        trace_start_us: int,
        speed: float,
        *,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive number, got {speed}")
        self.speed = float(speed)
        self.time_fn = time_fn
        self.trace_start_us = int(trace_start_us)
        self.wall_start_s = time_fn()

    def rebase(self, trace_start_us: int, wall_start_s: float) -> None:
        """Restart: trace time ``trace_start_us`` is reached at wall time ``wall_start_s``."""
        self.trace_start_us = int(trace_start_us)
        self.wall_start_s = wall_start_s

    def trace_now_us(self, wall_s: float | None = None) -> int:
        """Trace time (microseconds since the epoch) at wall time ``wall_s`` (default: now)."""
        wall = self.time_fn() if wall_s is None else wall_s
        return self.trace_start_us + int((wall - self.wall_start_s) * self.speed * 1e6)

    def wall_at(self, trace_us: int) -> float:
        """Wall time (``time_fn`` seconds) at which trace time ``trace_us`` is reached."""
        return self.wall_start_s + (trace_us - self.trace_start_us) / (self.speed * 1e6)
