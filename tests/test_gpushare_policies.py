"""The six GPU-sharing policies: filter, GPU choice and scores pinned on hand-computed cases.

Every expected number is derived in a comment from the definitions in
../shared/design/gpu-sharing-experiment.md (normalisers 128,000 milli-CPU, 8,000 milli-GPU).
"""

from __future__ import annotations

import numpy as np
import pytest

from tracesim.models.registry import load_scheduler
from tracesim.models.schedulers.base import Scheduler
from tracesim.models.schedulers.gpushare import (
    FGDPolicy,
    TypicalPods,
    best_gpus,
    gpushare_filter,
)
from tracesim.sim.cluster import ClusterState, PodRequest, PodTable

GiB = 2**30


def make_cluster() -> ClusterState:
    """a: 64 CPU, 2 idle T4;  b: 96 CPU, 8 G2 with GPU0 at 400 free (one 600-milli sharing pod
    using 4 CPU);  c: 96 CPU, 8 idle G2;  d: 8 CPU, 1 V100M16."""
    c = ClusterState.from_arrays(
        ["a", "b", "c", "d"],
        [64_000, 96_000, 96_000, 8_000],
        [256 * GiB, 384 * GiB, 384 * GiB, 32 * GiB],
        [2, 8, 8, 1],
        ["T4", "G2", "G2", "V100M16"],
        models=["G2", "T4", "V100M16"],  # codes 0, 1, 2
    )
    c.assign(1, PodRequest(4_000, GiB, 1, 600), [0])
    return c


ALL = np.arange(4)


def test_filter_cpu_memory_gpu_and_model():
    c = make_cluster()
    # 10 CPU: d (8 CPU) fails on CPU only.
    assert gpushare_filter(c, PodRequest(10_000, GiB, 1, 500), ALL).tolist() == [1, 1, 1, 0]
    # 300 GiB memory: only b and c (384 GiB).
    assert gpushare_filter(c, PodRequest(1_000, 300 * GiB, 0, 0), ALL).tolist() == [0, 1, 1, 0]
    # 8 whole GPUs: b has only 7 fully free GPUs (GPU0 holds 600), so only c.
    assert gpushare_filter(c, PodRequest(1_000, GiB, 8, 1000), ALL).tolist() == [0, 0, 1, 0]
    # gpu_spec "T4|V100M16" = codes 1 and 2 -> mask 0b110: a and d.
    assert gpushare_filter(c, PodRequest(1_000, GiB, 1, 100, 0b110), ALL).tolist() == [1, 0, 0, 1]
    # A node that is removed never passes (checked by the framework through ``active``).
    c.remove_node(2)
    sched = Scheduler(c, load_scheduler("bestfit"), np.random.default_rng(0))
    assert sched.schedule(PodRequest(1_000, GiB, 8, 1000)) is None


def test_best_gpu_choice():
    c = make_cluster()
    # Sharing 300: fitting GPUs on b are GPU0 (400 free) and GPU1..7 (1000): least free -> 0.
    assert best_gpus(c, PodRequest(1_000, 0, 1, 300), 1).tolist() == [0]
    # Sharing 500: GPU0 (400) too small; lowest fully free -> 1.
    assert best_gpus(c, PodRequest(1_000, 0, 1, 500), 1).tolist() == [1]
    # Whole 3 GPUs on b: lowest-numbered fully free -> 1, 2, 3.
    assert best_gpus(c, PodRequest(1_000, 0, 3, 1000), 1).tolist() == [1, 2, 3]


def scores(name: str, pod: PodRequest, cluster: ClusterState | None = None) -> list[int]:
    c = cluster or make_cluster()
    policy = load_scheduler(name)
    s, _ = policy.score(c, pod, np.arange(3))  # a, b, c (all feasible for these pods)
    return s.tolist()


def test_bestfit():
    pod = PodRequest(8_000, GiB, 1, 500)
    # a: cpu_left 64000-8000 = 56000, gpu_left 2000-500 = 1500:
    #    100 * (1 - (0.5*56000/128000 + 0.5*1500/8000)) = 100 * (1 - 0.21875 - 0.09375) = 68.75
    # b: cpu_left 96000-4000-8000 = 84000, gpu_left 7400-500 = 6900:
    #    100 * (1 - 0.328125 - 0.43125) = 24.0625
    # c: cpu_left 88000, gpu_left 7500: 100 * (1 - 0.34375 - 0.46875) = 18.75
    assert scores("bestfit", pod) == [68, 24, 18]


def test_dotprod():
    pod = PodRequest(8_000, GiB, 1, 500)
    # pod vector (8000/128000, 500/8000) = (0.0625, 0.0625)
    # a: (0.5, 0.25):      dot = 0.03125 + 0.015625 = 0.046875; 100*(1 - dot/2) = 97.65625
    # b: (0.71875, 0.925): dot = 0.044921875 + 0.0578125 = 0.102734375 -> 94.86328125
    # c: (0.75, 1.0):      dot = 0.046875 + 0.0625 = 0.109375 -> 94.53125
    assert scores("dotprod", pod) == [97, 94, 94]
    # A CPU-only pod (1.0, 0)-ish: only the CPU term. a: 64000*16000/128000^2 = 0.0625 -> 96.875
    assert scores("dotprod", PodRequest(16_000, GiB))[0] == 96


def test_gpupacking():
    # Sharing 300: a idle with 2 GPUs -> 33 - 2 = 31; b uses GPU0 (400 free = 40%):
    #   100 - 40 // 10 = 96; c idle with 8 GPUs -> 33 - 8 = 25.
    assert scores("gpupacking", PodRequest(1_000, GiB, 1, 300)) == [31, 96, 25]
    # Sharing 500 on b must take a fully free GPU of a partly used node: 50 - 1 = 49.
    assert scores("gpupacking", PodRequest(1_000, GiB, 1, 500)) == [31, 49, 25]
    # Two whole GPUs on b: 50 - 2 = 48.
    assert scores("gpupacking", PodRequest(1_000, GiB, 2, 1000)) == [31, 48, 25]
    # 370 free = 37%: 100 - 37 // 10 = 97.
    c = make_cluster()
    c.assign(1, PodRequest(1_000, 0, 1, 30), [0])
    assert scores("gpupacking", PodRequest(1_000, GiB, 1, 300), c)[1] == 97
    # CPU-only pods score 0 everywhere.
    assert scores("gpupacking", PodRequest(1_000, GiB)) == [0, 0, 0]


def test_gpuclustering():
    # b holds one sharing pod (kind "sharing"), free 7400: in-band 25 * 600 // 8000 = 1.
    # Sharing pod: b has only its kind -> 75 + 1 = 76; a idle -> 25 + 25*6000//8000 = 25 + 18;
    # c idle with 8000 free -> 25 + 0.
    assert scores("gpuclustering", PodRequest(1_000, GiB, 1, 300)) == [43, 76, 25]
    # A 1-GPU pod: b has other kinds only -> 0 + 1.
    assert scores("gpuclustering", PodRequest(1_000, GiB, 1, 1000)) == [43, 1, 25]
    # After a 1-GPU pod joins b, b has kinds {sharing, 1-GPU}, free 6400 -> in-band
    # 25 * 1600 // 8000 = 5: a sharing pod scores 50 + 5.
    c = make_cluster()
    c.assign(1, PodRequest(1_000, 0, 1, 1000), [5])
    assert scores("gpuclustering", PodRequest(1_000, GiB, 1, 300), c)[1] == 55
    assert scores("gpuclustering", PodRequest(1_000, GiB)) == [0, 0, 0]


def _workload(shapes: list[tuple[int, int, int, int]]) -> PodTable:
    arr = np.array(shapes, np.int64)
    n = len(arr)
    return PodTable(
        names=np.array([f"p{i}" for i in range(n)], object),
        cpu_milli=arr[:, 0],
        memory_bytes=np.zeros(n, np.int64),
        gpu_count=arr[:, 1],
        gpu_milli=arr[:, 2],
        model_mask=arr[:, 3],
    )


def test_typical_pods_cover_95_percent():
    # 60 x A, 30 x B, 6 x C, 4 x D: cumulative 60, 90, 96 -> the smallest prefix >= 95% is
    # {A, B, C}; frequencies renormalised: 60/96, 30/96, 6/96.
    shapes = [(1000, 1, 500, 0)] * 60 + [(2000, 0, 0, 0)] * 30
    shapes += [(4000, 1, 1000, 0)] * 6 + [(8000, 8, 1000, 0)] * 4
    typ = TypicalPods(_workload(shapes))
    assert typ.gpu_count.tolist() == [1, 0, 1]
    assert np.allclose(typ.freq, [60 / 96, 30 / 96, 6 / 96])


def fgd_case() -> tuple[FGDPolicy, ClusterState]:
    """Typical pods: t1 = (1 CPU, 1 x 500) with freq 2/3, t2 = CPU-only (1 CPU) with 1/3."""
    c = ClusterState.from_arrays(
        ["a", "b"], [64_000, 64_000], [GiB, GiB], [2, 2], ["T4", "T4"], models=["T4"]
    )
    c.assign(1, PodRequest(0, 0, 1, 400), [0])  # b: GPUs [600, 1000]
    policy = FGDPolicy()
    policy.prepare(c, _workload([(1000, 1, 500, 0)] * 2 + [(1000, 0, 0, 0)]))
    return policy, c


def test_fgd_fragmentation_and_score():
    policy, c = fgd_case()
    # F(a) = 2/3 * 0 (t1 fits, no GPU < 500 free) + 1/3 * 2000 (t2 needs no GPU) = 666.67
    # F(b) = 2/3 * 0 (600 >= 500) + 1/3 * 1600 = 533.33
    assert np.allclose(policy.fragmentation(c, np.array([0, 1])), [2000 / 3, 1600 / 3])
    s, gpu = policy.score(c, PodRequest(1000, 0, 1, 500), np.array([0, 1]))
    # a, GPU0 -> [500, 1000]: t1 still fits, 500 is not < 500 -> 0; t2: 1500/3 = 500.
    #   dF = 666.67 - 500 = 166.67 -> 100 * sigmoid(0.16667) = 54.16 -> 54 (GPU1 ties; first).
    # b, GPU0 -> [100, 1000]: t1 fragment 100 -> 66.67; t2 1100/3 = 366.67; F = 433.33
    #   dF = 100 -> 100 * sigmoid(0.1) = 52.50 -> 52
    # b, GPU1 -> [600, 500]: t1 fragment 0; t2 366.67; dF = 166.67 -> 54: GPU1 wins.
    assert s.tolist() == [54, 54]
    assert gpu.tolist() == [0, 1]
    # Sharing 700 on a, GPU0 -> [300, 1000]: t1 fragment 300 -> 200; t2 1300/3 = 433.33;
    #   dF = 666.67 - 633.33 = 33.33 -> 100 * sigmoid(0.0333) = 50.83 -> 50
    s, _ = policy.score(c, PodRequest(1000, 0, 1, 700), np.array([0]))
    assert s.tolist() == [50]
    # Whole GPU on a -> [0, 1000]: t1 fits, fragment 0; t2 1000/3: dF = 333.33 -> 58.26 -> 58
    s, hint = policy.score(c, PodRequest(1000, 0, 1, 1000), np.array([0]))
    assert s.tolist() == [58] and hint is None
    # CPU-only 63.5 CPU on a leaves 500 milli-CPU < t1's 1000: t1 no longer fits -> its
    #   fragment is all 2000 -> F_after = 2/3*2000 + 1/3*2000 = 2000; dF = -1333.33
    #   -> 100 * sigmoid(-1.3333) = 20.86 -> 20
    s, _ = policy.score(c, PodRequest(63_500, 0, 0, 0), np.array([0]))
    assert s.tolist() == [20]


def test_fgd_chooses_its_gpu_through_the_framework():
    policy, c = fgd_case()
    sched = Scheduler(c, policy, np.random.default_rng(0), tie_break="order")
    placed = sched.schedule(PodRequest(1000, 0, 1, 500))
    # a and b tie at 54; "order" takes a (index 0), GPU 0.
    assert (placed.node, placed.gpus.tolist()) == (0, [0])
    # b's best GPU is 1 (see above), not bestfit's GPU0.
    assert policy.choose_gpus(c, PodRequest(1000, 0, 1, 500), 1, -1, sched.rng).tolist() == [1]


def test_fgd_model_constraint_counts_all_free_gpu_as_fragment():
    # Typical pod allowed only on G2 (code 0): on a T4 node (code 1) it can never run, so all
    # free GPU is its fragment: F = 2000 on an idle 2-GPU T4 node.
    c = ClusterState.from_arrays(["t4"], [64_000], [GiB], [2], ["T4"], models=["G2", "T4"])
    policy = FGDPolicy()
    policy.prepare(c, _workload([(1000, 1, 500, 0b01)]))
    assert policy.fragmentation(c, np.array([0])).tolist() == [2000.0]


@pytest.mark.parametrize("name", ["random", "bestfit", "dotprod", "gpupacking", "gpuclustering"])
def test_scores_are_integers_in_range(name):
    c = make_cluster()
    for pod in (PodRequest(8_000, GiB, 1, 500), PodRequest(1_000, GiB), PodRequest(1, 0, 2, 1000)):
        s, _ = load_scheduler(name).score(c, pod, np.arange(3))
        assert s.dtype.kind == "i" and ((s >= 0) & (s <= 100)).all()


def test_random_picks_uniformly():
    # Three idle identical nodes: over 3000 single-pod decisions each gets about a third.
    counts = np.zeros(3)
    rng = np.random.default_rng(7)
    policy = load_scheduler("random")
    for _ in range(3000):
        c = ClusterState.from_arrays(["x", "y", "z"], [1000] * 3, [GiB] * 3, [1] * 3, ["T4"] * 3)
        counts[Scheduler(c, policy, rng, tie_break="order").schedule(PodRequest(1, 0)).node] += 1
    assert np.all(np.abs(counts / 3000 - 1 / 3) < 0.04)
