"""ClusterState: the packed resource columns, the active-node cache, exact assign/release."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesim.sim.cluster import RESOURCE_COLUMNS, ClusterState, PodRequest

GiB = 2**30


def _columns_are_views(c: ClusterState) -> None:
    for j, name in enumerate(RESOURCE_COLUMNS):
        column = getattr(c, name)
        assert np.shares_memory(column, c.resources)
        assert column.tolist() == c.resources[:, j].tolist()


def test_resource_columns_stay_views_of_one_array_through_growth_and_copy():
    c = ClusterState(max_gpus=1, capacity=1)
    for i in range(5):  # grows 1 -> 2 -> 4 -> 8
        c.add_node(f"n{i}", 1_000 * (i + 1), (i + 1) * GiB, pods=10 + i)
    c.assign(3, PodRequest(500, GiB))
    _columns_are_views(c)
    assert c.alloc_cpu_milli[:5].tolist() == [1_000, 2_000, 3_000, 4_000, 5_000]
    assert c.resources[3].tolist()[:6] == [4_000, 4 * GiB, 13, 500, GiB, 1]
    copy = c.copy()
    _columns_are_views(copy)
    copy.release(3, PodRequest(500, GiB))
    assert copy.used_cpu_milli[3] == 0 and c.used_cpu_milli[3] == 500  # independent


def test_active_nodes_cache_follows_add_update_remove():
    c = ClusterState(capacity=2)
    for i in range(4):
        c.add_node(f"n{i}", 1_000, GiB)
    assert c.active_nodes().tolist() == [0, 1, 2, 3] and c.n_active == 4
    c.remove_node(1)
    assert c.active_nodes().tolist() == [0, 2, 3] and c.n_active == 3
    c.update_node(1, active=True)
    c.update_node(2, active=False)
    assert c.active_nodes().tolist() == [0, 1, 3]
    with pytest.raises(ValueError):  # shared with callers: read-only
        c.active_nodes()[0] = 5


def test_assign_refuses_overcommit_and_changes_nothing():
    c = ClusterState(capacity=1)
    c.add_node("n0", 1_000, GiB, pods=1)
    before = c.resources[0].tolist()
    for pod in (PodRequest(1_001, 1), PodRequest(1, GiB + 1)):
        with pytest.raises(ValueError, match="cannot hold"):
            c.assign(0, pod)
        assert c.resources[0].tolist() == before
    c.assign(0, PodRequest(0, 0))  # no requests: counted with the non-zero defaults
    assert c.nonzero_cpu_milli[0] == 100 and c.used_cpu_milli[0] == 0
    with pytest.raises(ValueError, match="cannot hold"):
        c.assign(0, PodRequest(0, 0))  # the pod slot is taken


pod_st = st.tuples(st.integers(0, 3_000), st.integers(0, 3), st.integers(0, 9))


@settings(max_examples=40, deadline=None)
@given(st.lists(pod_st, min_size=1, max_size=40))
def test_assign_then_release_restores_every_column(pods):
    c = ClusterState(max_gpus=1, capacity=10)
    for i in range(10):
        c.add_node(f"n{i}", 4_000, 4 * GiB, pods=4)
    start = c.resources.copy()
    held = []
    for cpu, mem, node in pods:
        pod = PodRequest(cpu, mem * GiB)
        try:
            c.assign(node, pod)
        except ValueError:
            continue
        held.append((node, pod))
        assert (c.used_cpu_milli <= c.alloc_cpu_milli).all()
        assert (c.used_pods <= c.alloc_pods).all()
    for node, pod in reversed(held):
        c.release(node, pod)
    assert (c.resources == start).all()


def test_changed_since_unordered_gives_the_same_nodes():
    c = ClusterState(capacity=8)
    for i in range(8):
        c.add_node(f"n{i}", 1_000, GiB)
    pos = c.change_position
    for node in (5, 1, 5, 7, 1, 0):
        c.assign(node, PodRequest(10, 1))
    ordered = c.changed_since(pos, 10)
    unordered = c.changed_since(pos, 10, ordered=False)
    assert ordered.tolist() == [0, 1, 5, 7] and sorted(unordered.tolist()) == [0, 1, 5, 7]
    assert c.changed_since(pos, 5, ordered=False) is None  # 6 changes > limit
    assert len(c.changed_since(c.change_position, 10, ordered=False)) == 0
