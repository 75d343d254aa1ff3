"""The SimPy server primitive every contended model component is built from.

:class:`FcfsServer` is a first-come-first-served queue in front of ``capacity`` identical
servers (an M/G/c station). It is driven by SimPy events with callbacks rather than one SimPy
process per job: a job costs one timer (:func:`~tracesim.models.timers.call_later`) and a deque
entry, so a model can push hundreds of thousands of jobs through it. Time is SimPy's.

It keeps the time-integrals needed for utilisation and mean queue length, so a sampler can
compute both over any window without touching the jobs. ``tests/test_queueing.py`` checks it
against the M/M/1 and M/D/1 closed forms.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from .timers import call_later

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
        call_later(self.env, service_s, self._finish, wait_s, on_done)

    def _finish(self, wait_s: float, on_done: DoneFn | None) -> None:
        self._advance()
        self.in_service -= 1
        self.completed += 1
        if self._queue:
            self._start(*self._queue.popleft())
        if on_done is not None:
            on_done(wait_s)


class LindleyServer:
    """An FCFS single server whose job times follow from the Lindley recursion.

    The same station as ``FcfsServer(env, 1)`` (tests check they agree job by job), for jobs
    whose service time is known on arrival and that arrive in time order: a job arriving at
    ``t`` starts at ``max(t, finish of the previous job)`` and ends ``service_s`` later, so no
    SimPy event is needed to *run* it. SimPy still owns time: ``on_done`` callbacks fire from
    an ``env.timeout`` at the job's end, and only jobs that have one cost an event (a watch
    dispatcher whose events nobody waits for costs a few float operations per job).
    Utilisation and queue-length integrals are exact at any ``env.now``.
    """

    __slots__ = (
        "_busy_area_done",
        "_last_finish",
        "_service_total",
        "_starts",
        "_wait_done",
        "_waiting_arrivals",
        "capacity",
        "completed",
        "env",
        "name",
    )

    def __init__(self, env: simpy.Environment, name: str = "") -> None:
        self.env = env
        self.name = name
        self.capacity = 1
        self.completed = 0
        self._last_finish = env.now
        self._service_total = 0.0  # service assigned to all jobs so far (s)
        self._busy_area_done = 0.0
        # Jobs not yet started: (start time, arrival time), in FCFS (= start) order.
        self._starts: deque[tuple[float, float]] = deque()
        self._wait_done = 0.0  # job-seconds waited by jobs that have started
        self._waiting_arrivals = 0.0  # sum of arrival times of jobs still waiting

    def _settle(self) -> None:
        now = self.env.now
        q = self._starts
        while q and q[0][0] <= now:
            start, arrival = q.popleft()
            self._wait_done += start - arrival
            self._waiting_arrivals -= arrival

    def submit(self, service_s: float, on_done: DoneFn | None = None) -> float:
        """Queue a job of ``service_s`` s arriving now; returns its end time (s).

        ``on_done(wait_s)`` is called at the end time (through a SimPy timeout)."""
        now = self.env.now
        start = self._last_finish if self._last_finish > now else now
        end = start + service_s
        self._last_finish = end
        self._service_total += service_s
        if start > now:
            self._settle()
            self._starts.append((start, now))
            self._waiting_arrivals += now
        self.completed += 1
        if on_done is not None:
            call_later(self.env, end - now, on_done, start - now)
        return end

    def busy_area_s(self) -> float:
        """Server-seconds of busy time up to now (work still to do is not counted)."""
        remaining = self._last_finish - self.env.now
        return self._service_total - (remaining if remaining > 0 else 0.0)

    def queue_area_s(self) -> float:
        """Integral of the number of waiting jobs up to now, job-seconds."""
        self._settle()
        return self._wait_done + len(self._starts) * self.env.now - self._waiting_arrivals

    @property
    def queue_len(self) -> int:
        """Jobs waiting (not yet started) right now."""
        self._settle()
        return len(self._starts)

    @property
    def in_service(self) -> int:
        """1 if a job is being served right now, else 0."""
        return 1 if self._last_finish > self.env.now else 0
