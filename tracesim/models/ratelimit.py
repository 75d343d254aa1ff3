"""Client-side token bucket, as client-go's ``flowcontrol.NewTokenBucketRateLimiter(qps, burst)``.

client-go wraps ``golang.org/x/time/rate.Limiter``: the bucket holds at most ``burst`` tokens,
starts full, refills at ``qps`` tokens per second, and ``Wait`` reserves a token, sleeping until
it would exist. Reservations may drive the balance negative, so a queue of waiters is served in
arrival order at exactly ``qps`` once the burst is spent. The kube-scheduler's client (50 QPS,
burst 100 by default; facts file) gates its binding and Event writes through one of these.
"""

from __future__ import annotations

import numpy as np
import simpy


class TokenBucket:
    """A token bucket of ``burst`` tokens refilled at ``qps`` per second (client-go semantics)."""

    __slots__ = ("_last_s", "_tokens", "admitted", "burst", "qps", "waited_s")

    def __init__(self, qps: float, burst: int, start_s: float = 0.0) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("token bucket needs qps > 0 and burst >= 1")
        self.qps = float(qps)
        self.burst = int(burst)
        self._tokens = float(burst)  # starts full, like rate.NewLimiter
        self._last_s = float(start_s)
        self.waited_s = 0.0  # total delay imposed, seconds
        self.admitted = 0

    def reserve(self, now_s: float) -> float:
        """Take one token at ``now_s``; the delay in seconds before the caller may proceed."""
        if now_s > self._last_s:
            self._tokens = min(self.burst, self._tokens + (now_s - self._last_s) * self.qps)
            self._last_s = now_s
        self._tokens -= 1.0
        delay = -self._tokens / self.qps if self._tokens < 0 else 0.0
        self.waited_s += delay
        self.admitted += 1
        return delay

    def wait(self, env: simpy.Environment) -> simpy.Event:
        """For a SimPy process: ``yield bucket.wait(env)`` returns when a token is granted."""
        return env.timeout(self.reserve(env.now))

    def admit_times(self, arrivals_s: np.ndarray) -> np.ndarray:
        """Times (s) at which requests arriving at sorted ``arrivals_s`` get their tokens."""
        arrivals = np.asarray(arrivals_s, dtype=float)
        out = np.empty_like(arrivals)
        for i, a in enumerate(arrivals.tolist()):
            out[i] = a + self.reserve(a)
        return out
