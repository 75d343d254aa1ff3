"""The SimPy server primitive every contended model component is built from.

:class:`FcfsServer` is a first-come-first-served queue in front of ``capacity`` identical
servers (an M/G/c station). It is driven by SimPy events with callbacks rather than one SimPy
process per job: a job costs one ``env.timeout`` and a deque entry, so a model can push hundreds
of thousands of jobs through it. Time is SimPy's: every delay is an ``env.timeout``.

It keeps the time-integrals needed for utilisation and mean queue length, so a sampler can
compute both over any window without touching the jobs. ``tests/test_queueing.py`` checks it
against the M/M/1 and M/D/1 closed forms.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

#: ``on_done(wait_s)``: called when a job finishes, with the time it waited in the queue.
DoneFn = Callable[[float], Any]


class FcfsServer:
    """FCFS queue + ``capacity`` servers. Jobs have a known service time in seconds."""

    __slots__ = (
        "_area_t",
        "_busy_area",
        "_queue",
        "_queue_area",
        "capacity",
        "completed",
        "env",
        "in_service",
        "name",
    )

    def __init__(self, env: simpy.Environment, capacity: int = 1, name: str = "") -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.env = env
        self.capacity = capacity
        self.name = name
        self.in_service = 0
        self.completed = 0
        self._queue: deque[tuple[float, float, DoneFn | None]] = deque()
        self._busy_area = 0.0  # server-seconds of service delivered up to _area_t
        self._queue_area = 0.0  # job-seconds spent waiting up to _area_t
        self._area_t = env.now

    # -- accounting -------------------------------------------------------------------------

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._area_t
        if dt:
            self._busy_area += self.in_service * dt
            self._queue_area += len(self._queue) * dt
            self._area_t = now

    def busy_area_s(self) -> float:
        """Server-seconds of busy time since the start (divide by capacity x span: utilisation)."""
        self._advance()
        return self._busy_area

    def queue_area_s(self) -> float:
        """Integral of the queue length over time, job-seconds (divide by span: mean length)."""
        self._advance()
        return self._queue_area

    @property
    def queue_len(self) -> int:
        """Jobs waiting (not in service) right now."""
        return len(self._queue)

    # -- jobs -------------------------------------------------------------------------------

    def submit(self, service_s: float, on_done: DoneFn | None = None) -> None:
        """Queue a job needing ``service_s`` s of one server; ``on_done(wait_s)`` at its end."""
        self._advance()
        if self.in_service < self.capacity:
            self._start(self.env.now, service_s, on_done)
        else:
            self._queue.append((self.env.now, service_s, on_done))

    def serve(self, service_s: float) -> simpy.Event:
        """Like :meth:`submit`, for a SimPy process: ``wait_s = yield server.serve(s)``."""
        ev = self.env.event()
        self.submit(service_s, ev.succeed)
        return ev

    def _start(self, t_arrival: float, service_s: float, on_done: DoneFn | None) -> None:
        self.in_service += 1
        wait_s = self.env.now - t_arrival
        ev = self.env.timeout(service_s)
        ev.callbacks.append(lambda _ev: self._finish(wait_s, on_done))

    def _finish(self, wait_s: float, on_done: DoneFn | None) -> None:
        self._advance()
        self.in_service -= 1
        self.completed += 1
        if self._queue:
            self._start(*self._queue.popleft())
        if on_done is not None:
            on_done(wait_s)
