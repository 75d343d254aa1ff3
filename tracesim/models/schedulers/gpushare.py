"""The six GPU-sharing placement policies of the FGD paper (Weng et al., USENIX ATC '23).

Definitions: ``docs/../shared/design/gpu-sharing-experiment.md`` ("The six policies"). All
share the GPU-share filter (:func:`gpushare_filter`) and score with integer arithmetic where the
definition allows, so hand-computed scores in the tests are exact. Normalisers: 128,000
milli-CPU and 8,000 milli-GPU (the largest node of the openb cluster).

Interpretations where the prose leaves a choice (they follow the published simulator):
- "idle" / "partly used" in GpuPacking refer to the node's GPUs (CPU-only pods on a node do
  not make it used); the free percentage of a GPU is ``free_milli * 100 // 1000`` taken before
  placement, and its tenth is floored.
- GpuClustering's in-band term is ``25 * (8000 - free_total) // 8000`` (floored).
- FGD picks, for a GPU-sharing pod, the first GPU with the highest (integer) score.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

from ...sim.cluster import GPU_MILLI, ClusterState, PodRequest, PodTable
from .base import BasePolicy

#: Normalisers of the published policies: the largest node, milli-CPU and milli-GPU.
CPU_NORM_MILLI = 128_000
GPU_NORM_MILLI = 8_000
#: Share of the workload's pods that FGD's typical-pod set covers.
TYPICAL_COVERAGE = 0.95


def model_allowed(cluster: ClusterState, pod: PodRequest, nodes: np.ndarray) -> np.ndarray:
    """Bool mask: the node's GPU model is one the pod accepts (always true for mask 0)."""
    if not pod.model_mask:
        return np.ones(len(nodes), bool)
    model = cluster.gpu_model[nodes]
    return (model >= 0) & (((pod.model_mask >> np.maximum(model, 0)) & 1) == 1)


def gpushare_filter(cluster: ClusterState, pod: PodRequest, nodes: np.ndarray) -> np.ndarray:
    """The GPU-share filter over ``nodes``: CPU, memory and a pod slot fit; a sharing pod finds
    one GPU with ``gpu_milli`` free; a k-GPU pod finds k fully free GPUs; the model is allowed."""
    c = cluster
    ok = (
        (c.alloc_cpu_milli[nodes] - c.used_cpu_milli[nodes] >= pod.cpu_milli)
        & (c.alloc_memory_bytes[nodes] - c.used_memory_bytes[nodes] >= pod.memory_bytes)
        & (c.used_pods[nodes] < c.alloc_pods[nodes])
    )
    if pod.gpu_count:
        # A whole-GPU pod has gpu_milli == 1000, so ">= gpu_milli" means "fully free" for it.
        ok &= (c.gpu_free_milli[nodes] >= pod.gpu_milli).sum(axis=1) >= pod.gpu_count
    if pod.model_mask:
        ok &= model_allowed(c, pod, nodes)
    return ok


def best_gpus(cluster: ClusterState, pod: PodRequest, node: int) -> np.ndarray:
    """GPU choice "best": a sharing pod takes the fitting GPU with the least free milli-GPU
    (lowest slot on ties); a k-GPU pod takes the k lowest-numbered fully free GPUs."""
    if pod.gpu_count == 0:
        return np.empty(0, np.int64)
    row = cluster.gpu_free_milli[node]
    if pod.gpu_milli < GPU_MILLI:
        fit = row >= pod.gpu_milli
        return np.array([int(np.where(fit, row, 2 * GPU_MILLI).argmin())], np.int64)
    return np.flatnonzero(row == GPU_MILLI)[: pod.gpu_count].astype(np.int64)


class GpuSharePolicy(BasePolicy):
    """Common part: the GPU-share filter and the "best" GPU choice."""

    name = "gpushare"

    def filter(self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray) -> np.ndarray:
        return gpushare_filter(cluster, pod, nodes)

    def choose_gpus(
        self,
        cluster: ClusterState,
        pod: PodRequest,
        node: int,
        hint: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        return best_gpus(cluster, pod, node)


class RandomPolicy(GpuSharePolicy):
    """Random: a uniformly random feasible node, a random fitting GPU."""

    name = "random"
    # Every feasible node ties at 0; a fresh uniform draw per pod makes the pick uniform.
    tie_break = "random"

    def score(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, None]:
        # Equal scores: the framework's uniform tie-break is the random choice.
        return np.zeros(len(nodes), np.int64), None

    def choose_gpus(
        self,
        cluster: ClusterState,
        pod: PodRequest,
        node: int,
        hint: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        if pod.gpu_count == 0:
            return np.empty(0, np.int64)
        fitting = np.flatnonzero(cluster.gpu_free_milli[node] >= pod.gpu_milli)
        return np.sort(rng.choice(fitting, size=pod.gpu_count, replace=False)).astype(np.int64)


class BestFitPolicy(GpuSharePolicy):
    """BestFit: 100 * (1 - [0.5 * cpu_left/128000 + 0.5 * gpu_left/8000]), left after placing."""

    name = "bestfit"

    def score(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, None]:
        cpu_left = cluster.free_cpu_milli(nodes) - pod.cpu_milli
        gpu_left = cluster.gpu_free_total_milli[nodes] - pod.gpu_total_milli
        # 100 * (1 - 0.5 a/128000 - 0.5 b/8000) = (12,800,000 - 50 a - 800 b) / 128,000, exact.
        num = (
            100 * CPU_NORM_MILLI
            - 50 * cpu_left
            - 50 * (CPU_NORM_MILLI // GPU_NORM_MILLI) * gpu_left
        )
        return np.clip(num // CPU_NORM_MILLI, 0, 100), None


class DotProdPolicy(GpuSharePolicy):
    """DotProd: 100 * (1 - dot/2) of the node's free and the pod's requested (cpu, gpu) vectors."""

    name = "dotprod"

    def score(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, None]:
        ratio = CPU_NORM_MILLI // GPU_NORM_MILLI  # 16: 1/8000 = 16/128000
        cpu_free = cluster.free_cpu_milli(nodes)
        gpu_free = cluster.gpu_free_total_milli[nodes]
        # dot * 128000^2 = cpu_free*cpu_req + 16^2 * gpu_free*gpu_req (exact in int64).
        dot_num = cpu_free * pod.cpu_milli + ratio * ratio * gpu_free * pod.gpu_total_milli
        den = CPU_NORM_MILLI * CPU_NORM_MILLI
        return np.clip((100 * den - 50 * dot_num) // den, 0, 100), None


class GpuPackingPolicy(GpuSharePolicy):
    """GpuPacking: prefer partly used GPUs, then partly used nodes, then idle nodes."""

    name = "gpupacking"

    def score(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, None]:
        if pod.gpu_count == 0:
            return np.zeros(len(nodes), np.int64), None
        free = cluster.gpu_free_milli[nodes]
        count = cluster.gpu_count[nodes]
        fully_free = (free == GPU_MILLI).sum(axis=1)
        idle = fully_free == count
        if pod.gpu_milli < GPU_MILLI:
            # The GPU it would use: the fitting one with the least free milli-GPU.
            chosen = np.where(free >= pod.gpu_milli, free, 2 * GPU_MILLI).min(axis=1)
            shared = np.maximum(50, 100 - (chosen * 100 // GPU_MILLI) // 10)
            busy = np.where(chosen == GPU_MILLI, max(33, 50 - 1), shared)
        else:
            busy = np.full(len(nodes), max(33, 50 - pod.gpu_count), np.int64)
        return np.where(idle, 33 - count, busy).astype(np.int64), None


class GpuClusteringPolicy(GpuSharePolicy):
    """GpuClustering: put pods with the same GPU-request kind together."""

    name = "gpuclustering"

    def score(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, None]:
        kind = pod.gpu_kind
        if kind < 0:
            return np.zeros(len(nodes), np.int64), None
        has = cluster.kind_pods[nodes] > 0
        n_kinds = has.sum(axis=1)
        mine = has[:, kind]
        band = np.where(mine, np.where(n_kinds == 1, 75, 50), np.where(n_kinds == 0, 25, 0))
        used = np.maximum(GPU_NORM_MILLI - cluster.gpu_free_total_milli[nodes], 0)
        return band + 25 * used // GPU_NORM_MILLI, None


class TypicalPods:
    """FGD's typical pods: the most frequent resource shapes covering 95% of the workload.

    Columns (length T): ``cpu_milli``, ``gpu_count``, ``gpu_milli`` (per GPU), ``model_mask``
    and ``freq`` (renormalised to sum to 1).
    """

    def __init__(self, workload: PodTable, coverage: float = TYPICAL_COVERAGE) -> None:
        shapes = np.stack(
            [workload.cpu_milli, workload.gpu_count, workload.gpu_milli, workload.model_mask],
            axis=1,
        ).astype(np.int64)
        uniq, counts = np.unique(shapes, axis=0, return_counts=True)
        # Most frequent first; equal counts in shape order (np.unique sorts), so deterministic.
        order = np.argsort(-counts, kind="stable")
        uniq, counts = uniq[order], counts[order]
        covered = np.cumsum(counts) / counts.sum()
        keep = int(np.searchsorted(covered, coverage - 1e-12, side="left")) + 1
        uniq, counts = uniq[:keep], counts[:keep]
        self.cpu_milli, self.gpu_count, self.gpu_milli, self.model_mask = uniq.T.copy()
        self.freq = counts / counts.sum()
        self.needs_gpu = self.gpu_count > 0

    def __len__(self) -> int:
        return len(self.freq)

    def model_table(self, n_models: int) -> np.ndarray:
        """Bool (n_models + 1, T): typical pod t accepts model code m; the last row is for
        nodes without a GPU model (index -1), which only unconstrained pods accept."""
        codes = np.arange(n_models)
        ok = ((self.model_mask[None, :] >> codes[:, None]) & 1) == 1
        ok |= self.model_mask[None, :] == 0
        return np.vstack([ok, (self.model_mask == 0)[None, :]])


def _fragment(
    typ: TypicalPods,
    model_ok: np.ndarray,
    cpu_free: np.ndarray,
    total: np.ndarray,
    count_ge: np.ndarray,
    big: np.ndarray,
) -> np.ndarray:
    """F = sum_t freq_t * fragment_t, milli-GPU, from per-node statistics.

    Shapes broadcast over leading axes: ``cpu_free``/``total`` (...), ``model_ok``,
    ``count_ge`` (GPUs with at least t's gpu_milli free) and ``big`` (their free milli) (..., T).
    A typical pod that fits leaves the GPUs too small for it (total - big) as fragment; one that
    needs no GPU, is not allowed, or does not fit leaves all free GPU.
    """
    fits = (
        typ.needs_gpu
        & model_ok
        & (count_ge >= typ.gpu_count)
        & (cpu_free[..., None] >= typ.cpu_milli)
    )
    frag = np.where(fits, (total[..., None] - big), total[..., None])
    return frag @ typ.freq


def _sigmoid_score(f_before: np.ndarray, f_after: np.ndarray) -> np.ndarray:
    """int(100 * sigmoid((F_before - F_after) / 1000))."""
    x = (f_before - f_after) / 1000.0
    return (100.0 / (1.0 + np.exp(-x))).astype(np.int64)


class FGDPolicy(GpuSharePolicy):
    """FGD: place where the expected GPU fragmentation for typical pods drops the most.

    ``incremental`` keeps per-node fragmentation statistics (per typical pod: GPUs that fit it
    and their free milli) keyed by the node's version; ``False`` recomputes them each call
    (the naive baseline of the benchmark; identical results).
    """

    name = "fgd"

    def __init__(self, *, incremental: bool = True) -> None:
        self.incremental = incremental
        self.typical: TypicalPods | None = None

    def prepare(self, cluster: ClusterState, workload: PodTable | None) -> None:
        if workload is None or len(workload) == 0:
            raise ValueError("fgd needs the workload's pods to derive its typical pods")
        self.typical = TypicalPods(workload)
        self._model_table = self.typical.model_table(len(cluster.models))
        self._n_models = len(cluster.models)
        T = len(self.typical)
        size = len(cluster.version)
        self._ver = np.zeros(size, np.int64)
        self._count_ge = np.zeros((size, T), np.int64)
        self._big = np.zeros((size, T), np.int64)

    def cache_key(self, pod: PodRequest) -> Hashable | None:
        return pod.key

    def _stats(self, cluster: ClusterState, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(count_ge, big) of ``nodes``, refreshing those whose version moved."""
        typ = self.typical
        assert typ is not None, "prepare() first"
        if len(cluster.models) != self._n_models:
            self._model_table = typ.model_table(len(cluster.models))
            self._n_models = len(cluster.models)
        if len(self._ver) < len(cluster.version):
            extra = len(cluster.version) - len(self._ver)
            self._ver = np.concatenate([self._ver, np.zeros(extra, np.int64)])
            pad = np.zeros((extra, len(typ)), np.int64)
            self._count_ge = np.vstack([self._count_ge, pad])
            self._big = np.vstack([self._big, pad])
        stale = nodes if not self.incremental else nodes[self._ver[nodes] != cluster.version[nodes]]
        if len(stale):
            free = np.maximum(cluster.gpu_free_milli[stale], 0)[:, :, None]
            ge = free >= typ.gpu_milli
            self._count_ge[stale] = ge.sum(axis=1)
            self._big[stale] = (free * ge).sum(axis=1)
            self._ver[stale] = cluster.version[stale]
        return self._count_ge[nodes], self._big[nodes]

    def fragmentation(self, cluster: ClusterState, nodes: np.ndarray) -> np.ndarray:
        """F(node) for ``nodes``: expected fragmented milli-GPU for the typical pods."""
        count_ge, big = self._stats(cluster, nodes)
        model_ok = self._model_table[cluster.gpu_model[nodes]]
        return _fragment(
            self.typical,
            model_ok,
            cluster.free_cpu_milli(nodes),
            cluster.gpu_free_total_milli[nodes],
            count_ge,
            big,
        )

    def score(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        typ = self.typical
        count_ge, big = self._stats(cluster, nodes)
        model_ok = self._model_table[cluster.gpu_model[nodes]]
        cpu = cluster.free_cpu_milli(nodes)
        total = cluster.gpu_free_total_milli[nodes]
        f_before = _fragment(typ, model_ok, cpu, total, count_ge, big)
        cpu_after = cpu - pod.cpu_milli
        if pod.gpu_count == 0 or pod.gpu_milli >= GPU_MILLI:
            # k whole GPUs: k fully free GPUs (>= any typical share) become 0.
            k = pod.gpu_count
            f_after = _fragment(
                typ,
                model_ok,
                cpu_after,
                total - k * GPU_MILLI,
                count_ge - k,
                big - k * GPU_MILLI,
            )
            return _sigmoid_score(f_before, f_after), None
        # A sharing pod tries every GPU g: only that GPU's free milli changes, f -> f - p.
        p = pod.gpu_milli
        free = cluster.gpu_free_milli[nodes][:, :, None]  # (m, G, 1); absent = -1 never fits
        after = free - p
        tm = typ.gpu_milli
        ge_before, ge_after = free >= tm, after >= tm
        count_after = count_ge[:, None, :] - ge_before + ge_after
        big_after = big[:, None, :] - free * ge_before + after * ge_after
        f_after = _fragment(
            typ,
            model_ok[:, None, :],
            np.broadcast_to(cpu_after[:, None], free.shape[:2]),
            np.broadcast_to((total - p)[:, None], free.shape[:2]),
            count_after,
            big_after,
        )
        per_gpu = _sigmoid_score(f_before[:, None], f_after)
        per_gpu[free[:, :, 0] < p] = -1
        best = per_gpu.argmax(axis=1)  # first GPU with the highest score
        return per_gpu[np.arange(len(nodes)), best], best

    def choose_gpus(
        self,
        cluster: ClusterState,
        pod: PodRequest,
        node: int,
        hint: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        if pod.gpu_count == 1 and pod.gpu_milli < GPU_MILLI:
            if hint < 0:  # not scored through the framework: recompute for this node
                _, gpu = self.score(cluster, pod, np.array([node]))
                hint = int(gpu[0])
            return np.array([hint], np.int64)
        return best_gpus(cluster, pod, node)


#: Built-in policies of this module: name -> class.
POLICIES: dict[str, type[GpuSharePolicy]] = {
    cls.name: cls
    for cls in (
        RandomPolicy,
        BestFitPolicy,
        DotProdPolicy,
        GpuPackingPolicy,
        GpuClusteringPolicy,
        FGDPolicy,
    )
}
