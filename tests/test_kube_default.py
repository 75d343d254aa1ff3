"""kube-default: scores pinned on hand-computed cases, filters, sampling walk, failure text."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesim.errors import TracesimError
from tracesim.models.registry import load_scheduler
from tracesim.models.schedulers import kube_default
from tracesim.models.schedulers.base import (
    Placement,
    Scheduler,
    fit_error_message,
    num_feasible_nodes_to_find,
    walk_feasible,
)
from tracesim.models.schedulers.kube_default import (
    UNSCHEDULABLE_TAINT,
    KubeDefaultPolicy,
    broken_linear,
    normalize_reverse,
    tolerates,
)
from tracesim.sim.cluster import ClusterState, PodConstraints, PodRequest

GiB = 2**30
MiB = 2**20


def _cluster() -> ClusterState:
    """n0: 4 cpu / 8 GiB empty; n1: 8 cpu / 8 GiB with 2 cpu / 4 GiB used; n2: 4 cpu / 16 GiB
    tainted dedicated=gpu:NoSchedule."""
    c = ClusterState(max_gpus=2, capacity=4, max_labels=3, max_taints=3)
    c.add_node("n0", 4_000, 8 * GiB, labels=["zone=a", "size=3"])
    c.add_node("n1", 8_000, 8 * GiB, labels=["zone=b", "size=10"])
    c.add_node("n2", 4_000, 16 * GiB, taints=["dedicated=gpu:NoSchedule"])
    c.assign(1, PodRequest(2_000, 4 * GiB))
    return c


POD = PodRequest(1_000, 2 * GiB)
BOTH = np.array([0, 1])


def _scores(policy: KubeDefaultPolicy, c: ClusterState, pod: PodRequest = POD) -> list[int]:
    local, _ = policy.score(c, pod, BOTH)
    return local.tolist()


def test_least_allocated_and_balanced_by_hand():
    c = _cluster()
    p = KubeDefaultPolicy()
    # LeastAllocated: n0 cpu (4000-1000)*100//4000 = 75, mem (8-2)*100//8 = 75 -> 75.
    #   n1 cpu (8000-3000)*100//8000 = 62, mem (8-6)*100//8 = 25 -> (62+25)//2 = 43.
    assert p.fit_score(c, POD, BOTH).tolist() == [75, 43]
    # BalancedAllocation: n0 fractions 0.25/0.25 -> 100; n1 0.375/0.75 -> std 0.1875
    #   -> int(81.25) = 81.
    assert _scores(KubeDefaultPolicy(fit_weight=0), c) == [100, 81]
    # Weighted local part: fit 1 + balanced 1.
    assert _scores(p, c) == [175, 124]
    # The single-node (scalar) path gives the same numbers.
    assert [p.score(c, POD, np.array([i]))[0][0] for i in (0, 1)] == [175, 124]


def test_most_allocated_by_hand():
    c = _cluster()
    p = KubeDefaultPolicy(strategy="MostAllocated")
    # n0: cpu 1000*100//4000 = 25, mem 2*100//8 = 25 -> 25.
    # n1: cpu 3000*100//8000 = 37, mem 6*100//8 = 75 -> (37+75)//2 = 56.
    assert p.fit_score(c, POD, BOTH).tolist() == [25, 56]


def test_requested_to_capacity_ratio_by_hand():
    c = _cluster()
    # Shape (0,10),(50,5),(100,0) scaled x10: n1 cpu util 3000*100//8000 = 37 ->
    #   100 + (50-100)*(37-0)//(50-0) = 100 - 37 = 63; mem util 75 -> 50 - 50*25//50 = 25;
    #   round((63+25)/2) = 44.  n0: util 25/25 -> 100 - 50*25//50 = 75 -> 75.
    p = KubeDefaultPolicy(strategy="RequestedToCapacityRatio", shape="0:10,50:5,100:0")
    assert p.fit_score(c, POD, BOTH).tolist() == [75, 44]
    # Shape (0,0),(30,10): util 25 -> 100*25//30 = 83 (truncated); util 75 > 30 -> 100.
    # n0 (83+83)/2 = 83; n1 cpu util 37 -> 100, mem 75 -> 100.
    p = KubeDefaultPolicy(strategy="RequestedToCapacityRatio", shape="0:0,30:10")
    assert p.fit_score(c, POD, BOTH).tolist() == [83, 100]
    assert broken_linear(((0, 0), (30, 10)), np.array([0, 25, 30, 99])).tolist() == [
        0,
        83,
        100,
        100,
    ]


def test_pod_without_requests_scores_with_nonzero_defaults():
    c = ClusterState(max_gpus=1)
    c.add_node("n", 1_000, 1024 * MiB)
    p = KubeDefaultPolicy()
    empty = PodRequest(0, 0)
    # cpu counted as 100m: (1000-100)*100//1000 = 90; memory as 200 MiB:
    # (1024-200)*100//1024 = 80 -> (90+80)//2 = 85. Balanced uses real requests: 100.
    assert p.fit_score(c, empty, np.array([0])).tolist() == [85]
    assert p.score(c, empty, np.array([0]))[0].tolist() == [185]
    c.assign(0, empty)
    assert c.nonzero_cpu_milli[0] == 100 and c.used_cpu_milli[0] == 0
    c.release(0, empty)
    assert c.nonzero_cpu_milli[0] == 0 and c.nonzero_memory_bytes[0] == 0


def test_prefer_no_schedule_normalised_reversed():
    c = ClusterState(max_gpus=1, max_taints=2)
    c.add_node("a", 4_000, GiB, taints=["x=1:PreferNoSchedule", "y:PreferNoSchedule"])
    c.add_node("b", 4_000, GiB, taints=["x=1:PreferNoSchedule"])
    c.add_node("c", 4_000, GiB)
    p = KubeDefaultPolicy()
    nodes = np.arange(3)
    _, counts = p.score(c, POD, nodes)
    assert counts.tolist() == [2, 1, 0]
    # 100 - 100*count//max: 100 - 100 = 0, 100 - 50 = 50, 100.
    assert normalize_reverse(counts).tolist() == [0, 50, 100]
    local = np.array([10, 10, 10])
    assert p.finalize(c, POD, nodes, local, counts).tolist() == [10, 160, 310]
    code = c.constraint_code(PodConstraints(tolerations=("y:PreferNoSchedule",)))
    tolerant = PodRequest(1_000, 2 * GiB, constraint=code)
    assert p.score(c, tolerant, nodes)[1].tolist() == [1, 1, 0]
    assert normalize_reverse(np.zeros(3, np.int64)).tolist() == [100, 100, 100]


def test_taints_tolerations_selector_affinity_filters():
    c = _cluster()
    p = KubeDefaultPolicy()
    all3 = np.arange(3)
    assert p.filter(c, POD, all3).tolist() == [True, True, False]

    def ok(**kw) -> list[bool]:
        pod = PodRequest(100, MiB, constraint=c.constraint_code(PodConstraints(**kw)))
        vector = p.filter(c, pod, all3).tolist()
        scalar = [bool(p.filter(c, pod, np.array([i]))[0]) for i in range(3)]
        assert vector == scalar
        return vector

    assert ok(tolerations=("dedicated=gpu:NoSchedule",)) == [True, True, True]
    assert ok(tolerations=("dedicated:NoSchedule",)) == [True, True, True]
    assert ok(tolerations=("dedicated=cpu:NoSchedule",)) == [True, True, False]
    assert ok(tolerations=("*",)) == [True, True, True]
    assert ok(tolerations=("dedicated=gpu:NoExecute",)) == [True, True, False]
    assert ok(node_selector=("zone=b",)) == [False, True, False]
    assert ok(node_selector=("zone=z",)) == [False, False, False]
    assert ok(node_affinity=("zone In a|c",)) == [True, False, False]
    assert ok(node_affinity=("size Gt 5",)) == [False, True, False]
    assert ok(node_affinity=("size Lt 5,zone Exists",)) == [True, False, False]
    # NotIn / DoesNotExist also match a node without the label (n2 is still tainted).
    assert ok(node_affinity=("zone NotIn a",), tolerations=("*",)) == [False, True, True]
    assert ok(node_affinity=("zone DoesNotExist",), tolerations=("*",)) == [False, False, True]
    # Terms are ORed.
    assert ok(node_affinity=("zone In a", "size Gt 5")) == [True, True, False]
    assert ok(node_affinity=("field:metadata.name In n1",)) == [False, True, False]
    assert tolerates(["k=v"], "k", "v", 1) and not tolerates(["k=v"], "k", "w", 1)


def test_resources_and_gpu_filter():
    c = ClusterState(max_gpus=2)
    c.add_node("g", 8_000, 8 * GiB, gpu_count=2, gpu_model="A100")
    c.add_node("cpu", 8_000, 8 * GiB, pods=1)
    p = KubeDefaultPolicy()
    both = np.arange(2)
    assert p.filter(c, PodRequest(1_000, GiB, 2, 1000), both).tolist() == [True, False]
    assert p.filter(c, PodRequest(1_000, GiB, 3, 1000), both).tolist() == [False, False]
    c.assign(1, PodRequest(100, MiB))
    assert p.filter(c, PodRequest(100, MiB), both).tolist() == [True, False]  # 1 pod slot
    model_b = PodRequest(100, MiB, 1, 1000, model_mask=1 << c.models.code("V100"))
    assert p.filter(c, model_b, both).tolist() == [False, False]


def test_failure_message_in_kube_scheduler_style():
    c = ClusterState(max_gpus=1, max_taints=2)
    c.add_node("full", 8_000, 8 * GiB, pods=1)
    c.add_node("small", 500, 8 * GiB)
    c.add_node("tainted", 8_000, 8 * GiB, taints=["dedicated=gpu:NoSchedule"])
    c.add_node("cordoned", 8_000, 8 * GiB, taints=[UNSCHEDULABLE_TAINT])
    c.add_node("tiny", 500, GiB // 2)
    c.assign(0, PodRequest(100, MiB))
    sched = Scheduler(c, KubeDefaultPolicy(), np.random.default_rng(0))
    pod = PodRequest(1_000, GiB)
    assert sched.schedule(pod) is None
    assert sched.explain(pod) == (
        "0/5 nodes are available: 1 Insufficient memory, 1 Too many pods, "
        "1 node(s) had untolerated taint {dedicated: gpu}, 1 node(s) were unschedulable, "
        "2 Insufficient cpu."
    )
    # Explaining again after a node changed re-examines only that node (cached per shape).
    c.release(0, PodRequest(100, MiB))
    assert "Too many pods" not in sched.explain(pod)
    assert fit_error_message(0, {}) == "0/0 nodes are available."


@pytest.mark.parametrize(
    ("n", "pct", "expected"),
    [
        (50, 0, 50),  # fewer than 100 nodes: all
        (100, 0, 100),  # 50% of 100 = 50, at least 100
        (1_000, 0, 420),  # 50 - 1000//125 = 42%
        (5_000, 0, 500),  # 50 - 40 = 10%
        (6_000, 0, 300),  # 50 - 48 = 2% -> floored at 5%
        (10_000, 0, 500),  # 5%
        (20_000, 0, 1_000),  # 5%
        (6_000, 10, 600),  # configured
        (6_000, 100, 6_000),
        (1_000, 1, 100),  # at least 100
    ],
)
def test_num_feasible_nodes_to_find(n, pct, expected):
    assert num_feasible_nodes_to_find(pct, n) == expected


def test_walk_feasible_rotates_like_kube_scheduler():
    scores = np.array([-1, 5, 5, -1, 5, 5])
    # From 2: feasible 2, 4 (k=2); the 3rd feasible (5) stops the walk: 2 and 3, 4 examined.
    nodes, examined = walk_feasible(scores, 2, 2)
    assert nodes.tolist() == [2, 4] and examined == 3
    # From 5, k=3: 5, 1, 2; the 4th feasible is 4 -> examined 5, 0, 1, 2, 3.
    nodes, examined = walk_feasible(scores, 5, 3)
    assert nodes.tolist() == [5, 1, 2] and examined == 5
    # Not more feasible nodes than k: all examined, start unchanged next time.
    nodes, examined = walk_feasible(scores, 3, 4)
    assert nodes.tolist() == [4, 5, 1, 2] and examined == 6
    assert walk_feasible(np.full(4, -1), 1, 2)[0].tolist() == []


def test_scheduler_samples_and_rotates_the_start_index():
    c = ClusterState(max_gpus=1, capacity=300)
    for i in range(300):
        c.add_node(f"n{i}", 64_000, 64 * GiB)
    # 300 nodes: p = 50 - 2 = 48% -> 144 nodes to find; all feasible.
    sched = Scheduler(c, KubeDefaultPolicy(), np.random.default_rng(0))
    first = sched.schedule(PodRequest(100, MiB))
    assert first is not None and first.node < 144
    assert sched.last_examined == 144 and sched.next_start_index == 144
    second = sched.schedule(PodRequest(100, MiB))
    assert 144 <= second.node < 288 and sched.next_start_index == 288


node_st = st.tuples(
    st.integers(0, 16_000), st.integers(0, 16), st.integers(0, 2), st.integers(1, 4)
)
pod_st = st.tuples(st.integers(0, 4_000), st.integers(0, 4), st.integers(0, 1))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(node_st, min_size=10, max_size=20),
    st.lists(pod_st, min_size=1, max_size=30),
    st.sampled_from(["LeastAllocated", "MostAllocated"]),
)
def test_scalar_path_matches_vector_path(nodes, pods, strategy):
    c = ClusterState(max_gpus=2, capacity=len(nodes), max_taints=1)
    for i, (cpu, mem, gpus, max_pods) in enumerate(nodes):
        taints = ["dedicated=gpu:NoSchedule"] if i % 4 == 3 else []
        c.add_node(f"n{i}", cpu, mem * GiB, gpu_count=gpus, pods=max_pods, taints=taints)
    p = KubeDefaultPolicy(strategy=strategy)
    all_nodes = np.arange(len(nodes))

    def vectorised(method, pod):  # the numpy path, whatever the node count
        saved, kube_default.SCALAR_NODES = kube_default.SCALAR_NODES, 0
        try:
            return method(c, pod, all_nodes)
        finally:
            kube_default.SCALAR_NODES = saved

    for cpu, mem, gpu in pods:
        pod = PodRequest(cpu, mem * GiB // 2, gpu, 1000 if gpu else 0)
        mask = vectorised(p.filter, pod)
        assert mask.tolist() == [bool(p.filter(c, pod, np.array([i]))[0]) for i in all_nodes]
        assert p.filter(c, pod, all_nodes).tolist() == mask.tolist()
        local, _prefer = vectorised(p.score, pod)
        singles = [int(p.score(c, pod, np.array([i]))[0][0]) for i in all_nodes]
        assert local.tolist() == singles
        # filter_score (one pass) = filter, then score of the feasible nodes; -1 elsewhere.
        want = np.where(mask, local, -1).tolist()
        assert p.filter_score(c, pod, all_nodes)[0].tolist() == want
        assert vectorised(p.filter_score, pod)[0].tolist() == want
        # Failure reasons (bit sets, first untolerated taint) of the few-node path.
        bits, first = p._reasons(c, pod, all_nodes)
        want_bits, want_first = vectorised(p._reasons, pod)
        assert bits.tolist() == want_bits.tolist() and first.tolist() == want_first.tolist()
        ok = np.flatnonzero(mask)
        if len(ok):
            gpus = p.choose_gpus(c, pod, int(ok[0]), -1, np.random.default_rng(0))
            c.assign(int(ok[0]), pod, gpus)


@settings(max_examples=15, deadline=None)
@given(st.lists(pod_st, min_size=1, max_size=60), st.integers(0, 3))
def test_cache_gives_the_same_placements_as_the_naive_baseline(pods, seed):
    def run(cache: bool) -> list[int]:
        c = ClusterState(max_gpus=2, capacity=130)
        for i in range(130):
            c.add_node(f"n{i}", 4_000 + 1_000 * (i % 3), 8 * GiB, gpu_count=i % 3)
        sched = Scheduler(
            c, load_scheduler("kube-default"), np.random.default_rng(seed), cache=cache
        )
        out = []
        for cpu, mem, gpu in pods:
            placed = sched.schedule(PodRequest(cpu, mem * GiB, gpu, 1000 if gpu else 0))
            out.append(-1 if placed is None else placed.node)
        return out

    assert run(True) == run(False)


def test_bad_options():
    with pytest.raises(TracesimError, match="strategy"):
        KubeDefaultPolicy(strategy="Spread")
    with pytest.raises(TracesimError, match="shape"):
        KubeDefaultPolicy(shape="0:0,0:10")
    with pytest.raises(TracesimError, match="percentage"):
        KubeDefaultPolicy(percentage_of_nodes_to_score=120)


def _reference_walk(scores: np.ndarray, start: int, k: int) -> tuple[list[int], int]:
    """walk_feasible, one slot at a time."""
    n = len(scores)
    found: list[int] = []
    for step in range(n):
        slot = (start + step) % n
        if scores[slot] >= 0:
            if len(found) == k:
                return found, step
            found.append(slot)
    return found, n


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 5_000),
    st.sampled_from([0.0, 0.01, 0.3, 0.9, 1.0]),
    st.integers(0, 2**32),
    st.integers(0, 10_000),
    st.integers(0, 700),
)
def test_walk_feasible_matches_a_slot_by_slot_walk(n, feasible, seed, start, k):
    scores = np.where(np.random.default_rng(seed).random(n) < feasible, 5, -1)
    start %= n
    nodes, examined = walk_feasible(scores, start, k)
    want_nodes, want_examined = _reference_walk(scores, start, k)
    assert nodes.tolist() == want_nodes and examined == want_examined


change_st = st.tuples(
    st.sampled_from(["assign", "release", "taint", "remove", "add"]), st.integers()
)


@settings(max_examples=30, deadline=None)
@given(st.lists(change_st, max_size=40), st.lists(pod_st, min_size=1, max_size=4))
def test_cached_explain_matches_a_fresh_policy(changes, pods):
    """The per-shape reason counts, updated from the change log (and the answer reused when
    nothing changed), equal what a new policy computes from scratch after every change."""
    c = ClusterState(max_gpus=2, capacity=8, max_taints=2)
    for i in range(8):
        c.add_node(f"n{i}", 2_000 + 1_000 * (i % 3), 4 * GiB, gpu_count=i % 3, pods=3)
    shapes = [PodRequest(cpu, mem * GiB, gpu, 1000 if gpu else 0) for cpu, mem, gpu in pods]
    kept = KubeDefaultPolicy()
    placed: list[tuple[int, PodRequest]] = []
    for step, (what, x) in enumerate(changes):
        n = c.n_nodes
        node = x % n
        if what == "assign" and c.active[node]:
            pod = PodRequest(500, GiB // 2)
            if kept.filter(c, pod, np.array([node]))[0]:
                c.assign(node, pod)
                placed.append((node, pod))
        elif what == "release" and placed:
            c.release(*placed.pop(x % len(placed)))
        elif what == "taint":
            taint = [UNSCHEDULABLE_TAINT] if x % 2 else ["dedicated=gpu:NoSchedule"]
            c.update_node(node, taints=taint if x % 3 else [])
        elif what == "remove" and c.n_active > 1:
            c.remove_node(node)
        elif what == "add":
            c.add_node(f"extra{step}", 3_000, 2 * GiB)
        for pod in shapes:
            fresh = KubeDefaultPolicy().explain(c, pod, c.active_nodes())
            assert kept.explain(c, pod, c.active_nodes()) == fresh
            assert kept.explain(c, pod, c.active_nodes()) == fresh  # nothing changed since


def test_filter_score_scheduler_matches_filter_then_score():
    """The framework's one-pass path (filter_score) places like the two-call path."""

    class TwoCalls(KubeDefaultPolicy):
        filter_score = None  # the framework then calls filter and score

    def run(policy) -> list[int]:
        c = ClusterState(max_gpus=2, capacity=200, max_taints=1)
        for i in range(200):
            taints = ["dedicated=gpu:NoSchedule"] if i % 9 == 0 else []
            c.add_node(f"n{i}", 4_000 + 1_000 * (i % 3), 8 * GiB, gpu_count=i % 3, taints=taints)
        sched = Scheduler(c, policy, np.random.default_rng(7))
        out = []
        for j in range(600):
            gpu = int(j % 11 == 0)
            pod = PodRequest(100 * (j % 7), (j % 5) * GiB // 2, gpu, 1000 if gpu else 0)
            placed = sched.schedule(pod)
            out.append(-1 if placed is None else placed.node)
            if j % 3 == 0 and placed is not None:
                c.release(placed.node, pod, placed.gpus)
        return out

    assert run(KubeDefaultPolicy()) == run(TwoCalls())


@pytest.mark.parametrize("tie_break", ["random", "order"])
def test_ranking_in_place_when_finalize_is_uniform(tie_break):
    """Ranking the cached scores of the walked slots in place (finalize adds one amount to
    all) places every pod as finalize over the gathered candidates does, and draws the same
    random numbers; pods that mind a PreferNoSchedule taint take the finalize path."""

    class AlwaysFinalize(KubeDefaultPolicy):
        finalize_uniform = None  # the framework then gathers and finalizes every decision

    def run(policy) -> tuple[list[int], float]:
        c = ClusterState(max_gpus=2, capacity=300, max_taints=1)
        for i in range(300):
            taints = ["spot=yes:PreferNoSchedule"] if i % 13 == 0 else []
            c.add_node(f"n{i}", 2_000 + 1_000 * (i % 3), 8 * GiB, taints=taints)
        tolerant = c.constraint_code(PodConstraints(tolerations=("spot=yes:PreferNoSchedule",)))
        rng = np.random.default_rng(11)
        sched = Scheduler(c, policy, rng, tie_break=tie_break)
        out = []
        for j in range(900):
            pod = PodRequest(1_000 * (j % 4), (j % 3) * GiB // 4, constraint=tolerant * (j % 2))
            placed = sched.schedule(pod)
            out.append(-1 if placed is None else placed.node)
            if j % 4 == 0 and placed is not None:
                c.release(placed.node, pod, placed.gpus)
        return out, float(rng.random())

    fast, slow = run(KubeDefaultPolicy()), run(AlwaysFinalize())
    assert fast == slow
    assert fast[0].count(-1) > 10 and len(set(fast[0])) > 100  # full nodes and wide spread


class _GeneralWalk(Scheduler):
    """The framework's ranking as it was before the inline walk: walk_feasible on every
    decision, the candidates gathered and finalized (no ranking in place)."""

    def _schedule_sampled(self, pod, scores, hints):
        c = self.cluster
        n = len(scores)
        k = num_feasible_nodes_to_find(self._percentage, c.n_active)
        start = self.next_start_index % n
        nodes, examined = walk_feasible(scores, start, k)
        self.next_start_index = (start + examined) % n
        self.last_examined = examined
        if len(nodes) == 0:
            return None
        ranked = self._finalize(c, pod, nodes, scores[nodes], hints[nodes])
        ties = (ranked == ranked.max()).nonzero()[0]
        pick = int(ties[0]) if len(ties) == 1 else int(ties[self.rng.integers(len(ties))])
        node = int(nodes[pick])
        gpus = self.policy.choose_gpus(c, pod, node, int(hints[node]), self.rng)
        c.assign(node, pod, gpus)
        return Placement(node, gpus)


def test_inline_walk_and_explain_memo_match_the_general_path():
    """Over 1,500 nodes (the framework's inline first-chunk walk needs more than 512) that fill
    up (sparse feasibility, walks that wrap), the framework places, examines and draws as the
    general walk does; failure messages, reused while the cluster is unchanged, equal a fresh
    scheduler's."""

    def run(cls) -> tuple[list[tuple[int, int]], list[str], float]:
        c = ClusterState(max_gpus=2, capacity=1_500, max_taints=1)
        for i in range(1_500):
            taints = ["dedicated=gpu:NoSchedule"] if i % 7 == 0 else []
            c.add_node(f"n{i}", 2_000 + 1_000 * (i % 3), 4 * GiB, gpu_count=i % 3, taints=taints)
        rng = np.random.default_rng(3)
        sched = cls(c, KubeDefaultPolicy(), rng)
        out, messages, placed = [], [], []
        for j in range(3_000):
            gpu = int(j % 13 == 0)
            pod = PodRequest(1_000 * (1 + j % 4), (j % 3) * GiB // 2, gpu, 1000 if gpu else 0)
            got = sched.schedule(pod)
            out.append((-1 if got is None else got.node, sched.last_examined))
            if got is None:
                message = sched.explain(pod)
                assert sched.explain(pod) == message  # unchanged cluster: the same answer
                if len(messages) % 4 == 0:  # (a fresh scheduler looks at every node)
                    fresh = Scheduler(c, KubeDefaultPolicy(), np.random.default_rng(0))
                    assert message == fresh.explain(pod)
                messages.append(message)
            else:
                placed.append((got.node, pod, got.gpus))
            if j % 5 == 0 and placed:
                c.release(*placed.pop(j % len(placed)))
        return out, messages, float(rng.random())

    fast, general = run(Scheduler), run(_GeneralWalk)
    assert fast == general
    examined = [e for _, e in fast[0]]
    assert len(fast[1]) > 20 and max(examined) == 1_500 and min(examined) < 700
