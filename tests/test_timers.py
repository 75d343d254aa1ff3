"""call_later: the same firing order as SimPy Timeouts created at the same moments."""

from __future__ import annotations

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesim.models.timers import call_later


def _fire_order(plan: list[tuple[float, bool, list[tuple[float, bool]]]], slotted: bool) -> list:
    """Run ``plan``: (delay, use call_later, children to start when it fires) per timer;
    returns (time, label) in firing order. ``slotted`` False: every timer a Timeout."""
    env = simpy.Environment()
    fired: list[tuple[float, str]] = []

    def start(label: str, delay: float, use_timer: bool, children: list) -> None:
        def fire(lbl: str = label, kids: list = children) -> None:
            fired.append((env.now, lbl))
            for j, (d, u) in enumerate(kids):
                start(f"{lbl}.{j}", d, u, [])

        if slotted and use_timer:
            call_later(env, delay, fire)
        else:
            ev = env.timeout(delay)
            ev.callbacks.append(lambda _e: fire())

    for i, (delay, use_timer, children) in enumerate(plan):
        start(str(i), delay, use_timer, children)
    env.run()
    return fired


delays = st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0])
plans = st.lists(
    st.tuples(delays, st.booleans(), st.lists(st.tuples(delays, st.booleans()), max_size=3)),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(plans)
def test_timers_fire_in_the_order_timeouts_would(plan):
    # Ties (same time) are many: the order among them must be the Timeouts' order.
    assert _fire_order(plan, slotted=True) == _fire_order(plan, slotted=False)


def test_call_later_passes_its_arguments_at_the_right_time():
    env = simpy.Environment()
    got = []
    call_later(env, 2.5, lambda a, b: got.append((env.now, a, b)), "x", 3)
    env.run()
    assert got == [(2.5, "x", 3)]


def test_a_timer_runs_after_a_process_waiting_on_a_timeout_created_before_it():
    env = simpy.Environment()
    order = []

    def proc():
        yield env.timeout(1.0)
        order.append("process")

    env.process(proc())
    env.run(until=0.5)  # the process now waits on its Timeout (created first)
    call_later(env, 0.5, order.append, "timer")
    env.run()
    assert order == ["process", "timer"]


def test_negative_delay_is_refused():
    env = simpy.Environment()
    with pytest.raises(ValueError, match="negative delay"):
        call_later(env, -1e-9, print)
