"""Timer callbacks on a SimPy environment: ``call_later(env, delay_s, fn, *args)``.

The models' hot paths (an etcd batch's WAL and apply stages and its reply, the apiserver's
request CPU, a wave's spread offers, a watch dispatch) need "call ``fn(*args)`` in
``delay_s``" hundreds of thousands of times per simulated hour. SimPy's way is an
``env.timeout`` with a callback: a full :class:`simpy.events.Timeout` (an ``__init__`` in
Python setting six attributes) and a closure per call. :func:`call_later` puts a small
slotted event straight on the environment's heap instead, with the same time, priority and
sequence number a Timeout created at that moment would get. So the order of events, and
every result, is unchanged. Alone, a timer is scheduled and fired about 1.7x faster
(``benchmarks/bench_models.py``); in a replay the saving is small (about 2 % of the
instructions of an apiserver + etcd request group), as the timer is a small part of the work
it triggers.

A timer cannot be cancelled, yielded from a process or waited on: it only calls. Code that
needs any of these uses ``env.timeout``. A loop that waits (the replay's feeder and scheduler)
stays a process: it keeps its locals between waits, and rewritten as timers that rebuild them
on every call it ran no faster (callgrind instruction counts of a 3,000-node replay: +0.3 %).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import Any

import simpy

#: SimPy's priority of a Timeout (``simpy.events.NORMAL``).
_NORMAL = 1


def _fire(timer: _Timer) -> None:
    timer.fn(*timer.args)


_CALLBACKS = (_fire,)


class _Timer:
    """The event :func:`call_later` schedules: what ``Environment.step`` reads of an event
    (``callbacks``, ``_ok``) and the call to make."""

    __slots__ = ("args", "callbacks", "fn")
    _ok = True  # step() checks it after the callbacks: a timer never fails

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.callbacks = _CALLBACKS  # step() sets it to None once fired
        self.fn = fn
        self.args = args


def call_later(env: simpy.Environment, delay_s: float, fn: Callable[..., Any], *args: Any) -> None:
    """Call ``fn(*args)`` ``delay_s`` seconds of simulated time from now (0: after the events
    already due now, as a zero Timeout). Raises ValueError for a negative delay, as
    ``env.timeout`` does."""
    if delay_s < 0:
        raise ValueError(f"negative delay {delay_s}")
    # Environment.schedule inlined: (time, priority, sequence number, event).
    heappush(env._queue, (env._now + delay_s, _NORMAL, next(env._eid), _Timer(fn, args)))
