"""The scheduling queue: priority order, backoff, the unschedulable pool and its flushes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesim.sim.queue import (
    ACTIVE,
    BACKOFF,
    GONE,
    IN_FLIGHT,
    UNSCHEDULABLE,
    SchedulingQueue,
)


def test_pops_by_priority_then_arrival():
    q = SchedulingQueue()
    q.add(0, priority=0, now=1.0)
    q.add(1, priority=100, now=2.0)
    q.add(2, priority=0, now=0.5)
    q.add(3, priority=100, now=1.5)
    assert [q.pop() for _ in range(4)] == [3, 1, 2, 0]
    assert q.pop() is None


def test_backoff_doubles_to_the_cap():
    q = SchedulingQueue()
    assert [q.backoff_duration_s(a) for a in range(1, 8)] == [1, 2, 4, 8, 10, 10, 10]
    q = SchedulingQueue(initial_backoff_s=0.5, max_backoff_s=3)
    assert [q.backoff_duration_s(a) for a in range(1, 5)] == [0.5, 1, 2, 3]


def test_failed_pod_waits_in_pool_until_a_cluster_change():
    q = SchedulingQueue()
    q.add(7, 0, 0.0)
    assert q.pop() == 7 and q.where(7) == IN_FLIGHT
    assert q.failed(7, 10.0) is None  # no move request during its attempt: the pool
    assert q.where(7) == UNSCHEDULABLE and len(q) == 1
    assert q.pop() is None
    # A change 0.5 s later: backoff (1 s after 1 attempt) not over -> backoffQ until 11.0.
    assert q.move_all(10.5) == [11.0]
    assert q.where(7) == BACKOFF
    assert q.flush_backoff(10.99) == 0
    assert q.flush_backoff(11.0) == 1 and q.where(7) == ACTIVE
    assert q.pop() == 7 and q.attempts[7] == 2


def test_move_after_backoff_goes_straight_to_active():
    q = SchedulingQueue()
    q.add(1, 0, 0.0)
    q.pop()
    q.failed(1, 0.0)
    assert q.move_all(5.0) == []
    assert q.where(1) == ACTIVE


def test_move_request_during_attempt_sends_failed_pod_to_backoff():
    q = SchedulingQueue()
    q.add(1, 0, 0.0)
    q.pop()
    q.note_move_request()  # the cluster changed while the pod was being scheduled
    assert q.failed(1, 3.0) == 4.0
    assert q.where(1) == BACKOFF and q.next_backoff_expiry() == 4.0


def test_leftover_flush_after_five_minutes():
    q = SchedulingQueue()
    q.add(1, 0, 0.0)
    q.pop()
    q.failed(1, 100.0)
    assert q.flush_leftover(399.0) == []
    assert q.where(1) == UNSCHEDULABLE
    q.flush_leftover(400.0)
    assert q.where(1) == ACTIVE


def test_remove_anywhere():
    q = SchedulingQueue()
    for pod in range(3):
        q.add(pod, 0, 0.0)
    assert q.pop() == 0
    q.failed(0, 0.0)
    assert q.remove(0) and q.remove(1)
    assert not q.remove(1)
    assert q.where(0) == GONE and len(q) == 1
    assert q.pop() == 2 and q.pop() is None
    with pytest.raises(ValueError):
        q.add(2, 0, 0.0)  # still in flight


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=40))
def test_every_pod_comes_out_once_in_priority_order(pods):
    q = SchedulingQueue()
    for i, (prio, t) in enumerate(pods):
        q.add(i, prio, float(t))
    out = []
    while (pod := q.pop()) is not None:
        out.append(pod)
    assert sorted(out) == list(range(len(pods)))
    keys = [(-pods[i][0], pods[i][1]) for i in out]
    assert keys == sorted(keys)
