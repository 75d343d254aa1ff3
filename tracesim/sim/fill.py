"""The fill protocol of the FGD paper: place an inflated pod list one by one, never delete.

One run = one cluster x one pod list x one policy x one seed (see
``../shared/design/gpu-sharing-experiment.md``). All randomness comes from one
``numpy.random.Generator`` seeded with the run's seed, consumed in this order: the node order
(a permutation), the pod shuffle, the inflation draws (in chunks of :data:`DRAW_CHUNK`), then
the scheduler's tie-breaks and GPU choices.

Ties. The protocol's node order "decides tie order": among equal best scores the first node
in the seeded permutation wins (``tie_break="order"``, the published simulator's behaviour and
what reproduces the paper's ranking). ``tie_break="random"`` draws afresh for every pod
(kube-scheduler's selectHost); it spreads pods over all equally good nodes, which costs FGD
its advantage (see docs/validation.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..models.schedulers.base import Scheduler, SchedulerPolicy
from .cluster import ClusterState, PodRequest, PodTable

#: Inflation target: total requested GPU / cluster GPU capacity.
DEFAULT_INFLATE = 1.3
#: Highest arrived-GPU bucket reported, percent of capacity.
MAX_BUCKET = 130
#: Tie-break of the protocol: the first best node in the seeded node order (see Scheduler).
DEFAULT_TIE_BREAK = "order"
#: Inflation draws are taken from the generator this many at a time.
DRAW_CHUNK = 256


@dataclass
class FillResult:
    """The outcome of one run.

    ``order`` indexes the ORIGINAL pod table (inflated copies repeat indices); per submitted
    pod: ``placed``, ``node`` (-1 if it failed), ``arrived_milli`` and ``used_milli`` (GPU
    requested by every pod submitted so far / allocated after this pod, milli-GPU).
    """

    seed: int
    capacity_milli: int
    n_original: int
    order: np.ndarray
    placed: np.ndarray
    node: np.ndarray
    arrived_milli: np.ndarray
    used_milli: np.ndarray
    node_names: list[str]

    @property
    def n_submitted(self) -> int:
        return len(self.order)

    @property
    def n_failed(self) -> int:
        return int((~self.placed).sum())

    def allocation_by_bucket(self, max_bucket: int = MAX_BUCKET) -> np.ndarray:
        """GPU allocation ratio (percent of capacity) per arrived bucket x = 0..max_bucket:
        the mean over the pods whose x = round(100 * arrived / capacity) (half up) is x of
        100 * used / capacity. NaN for a bucket with no pod."""
        return allocation_by_bucket(
            self.arrived_milli, self.used_milli, self.capacity_milli, max_bucket
        )


def allocation_by_bucket(
    arrived_milli: np.ndarray, used_milli: np.ndarray, capacity_milli: int, max_bucket: int
) -> np.ndarray:
    """See :meth:`FillResult.allocation_by_bucket`."""
    x = np.floor(100.0 * arrived_milli / capacity_milli + 0.5).astype(np.int64)
    keep = x <= max_bucket
    ratio = 100.0 * used_milli[keep] / capacity_milli
    sums = np.bincount(x[keep], weights=ratio, minlength=max_bucket + 1)
    counts = np.bincount(x[keep], minlength=max_bucket + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def submission_order(
    pods: PodTable, capacity_milli: int, rng: np.random.Generator, inflate: float
) -> np.ndarray:
    """Indices into ``pods``: sorted by name, shuffled, then uniform draws (with replacement)
    appended while the total GPU request stays within ``inflate`` x capacity (none if no pod
    requests a GPU)."""
    by_name = np.argsort(pods.names.astype(str), kind="stable")
    order = by_name[rng.permutation(len(by_name))]
    request = pods.gpu_total_milli
    limit = inflate * capacity_milli
    total = int(request.sum())
    extra: list[np.ndarray] = []
    # Without any GPU request no draw can ever reach the limit: nothing to inflate.
    while len(pods) and request.max() > 0:
        draws = by_name[rng.integers(len(pods), size=DRAW_CHUNK)]
        totals = total + np.cumsum(request[draws])
        over = np.flatnonzero(totals > limit)
        if len(over):
            extra.append(draws[: over[0]])
            break
        extra.append(draws)
        total = int(totals[-1])
    return np.concatenate([order, *extra]).astype(np.int64)


def run_fill(
    make_cluster: Callable[[np.ndarray | None], ClusterState],
    n_nodes: int,
    pods: Callable[[ClusterState], PodTable],
    policy: SchedulerPolicy,
    seed: int,
    *,
    inflate: float = DEFAULT_INFLATE,
    cache: bool = True,
    tie_break: str = DEFAULT_TIE_BREAK,
) -> FillResult:
    """Run the fill protocol once.

    ``make_cluster(order)`` builds the empty cluster with its nodes in ``order`` (a
    permutation of ``n_nodes``); ``pods(cluster)`` gives the workload's pods as a table for that
    cluster (model codes). ``policy`` is prepared with the cluster and the original pods.
    ``cache=False`` disables the framework's per-(pod shape, node) cache (same results).
    ``tie_break``: see :class:`~tracesim.models.schedulers.base.Scheduler`; the default
    ``"order"`` (first best node in the seeded node order) is the published simulator's.
    """
    rng = np.random.default_rng(seed)
    node_order = rng.permutation(n_nodes)
    cluster = make_cluster(node_order)
    table = pods(cluster)
    capacity = cluster.gpu_capacity_milli
    order = submission_order(table, capacity, rng, inflate)
    prepare = getattr(policy, "prepare", None)
    if prepare is not None:
        prepare(cluster, table)
    scheduler = Scheduler(cluster, policy, rng, cache=cache, tie_break=tie_break)

    # Pods with the same shape share one PodRequest (and one cache entry).
    shapes = np.stack(
        [table.cpu_milli, table.memory_bytes, table.gpu_count, table.gpu_milli, table.model_mask],
        axis=1,
    )
    uniq, shape_of = np.unique(shapes, axis=0, return_inverse=True)
    requests = [PodRequest(*map(int, row)) for row in uniq]
    shape_seq = shape_of.reshape(-1)[order].tolist()

    node = np.full(len(order), -1, np.int64)
    schedule = scheduler.schedule
    for i, s in enumerate(shape_seq):
        placement = schedule(requests[s])
        if placement is not None:
            node[i] = placement.node
    placed = node >= 0
    request = table.gpu_total_milli[order]
    return FillResult(
        seed=seed,
        capacity_milli=capacity,
        n_original=len(table),
        order=order,
        placed=placed,
        node=node,
        arrived_milli=np.cumsum(request),
        used_milli=np.cumsum(np.where(placed, request, 0)),
        node_names=cluster.names,
    )
