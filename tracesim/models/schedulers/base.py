"""The scheduler-policy protocol and the framework that places one pod.

A policy is a filter and a score, both vectorised over an array of node indices, plus the
choice of GPUs inside the chosen node. The framework (:class:`Scheduler`) runs the filter over
the nodes, scores the feasible ones, picks the highest score with ties broken uniformly at
random by the seeded generator, asks the policy for the GPUs and assigns the pod.

Caching. When :meth:`SchedulerPolicy.cache_key` returns a key for a pod, the policy promises
that the filter result, score and GPU hint of a (pod, node) pair depend only on that key and
on the node's own state. The framework then keeps per key one array of scores for all nodes
with the node ``version`` each was computed at, and recomputes only the nodes whose version
moved since (in the fill experiment: one node per placed pod). A policy whose scores depend on
other nodes (normalisation over the feasible set, as in kube-scheduler's NormalizeScore)
returns raw per-node scores here and implements :meth:`SchedulerPolicy.normalize`, which the
framework applies after the cache; a policy that cannot be cached returns ``None``.

Sampling (kube-scheduler's ``percentageOfNodesToScore``). A policy with an integer attribute
``percentage_of_nodes_to_score`` (0 = the adaptive default) makes the framework score only the
first :func:`num_feasible_nodes_to_find` feasible nodes, walking the node slots from a start
index that rotates by the number of nodes each walk examined. With the cache this is one mask
over all nodes: roll from the start index, take the first K feasible. An optional
``finalize(cluster, pod, nodes, scores, hints)`` then turns the cached per-node scores of those
candidates into final scores (kube-scheduler's NormalizeScore over the scored nodes, plus the
weighted sum); an optional ``finalize_uniform(cluster, pod) -> bool`` says when finalize would
add one amount to every candidate, so the framework may rank the cached scores as they are.
An optional ``explain(cluster, pod, nodes) -> {reason: node count}`` gives the
failure reasons of an unschedulable pod (see :func:`fit_error_message`). An optional
``filter_score(cluster, pod, nodes) -> (scores, hints)`` does filter and score in one pass
(scores -1 where the filter rejects; hints of rejected nodes are never read); the framework
prefers it to the two calls, which a policy may do cheaper together (one gather of a few
changed nodes' columns).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ...sim.cluster import ClusterState, PodRequest, PodTable

#: Highest node score a policy may give (kube-scheduler's MaxNodeScore).
MAX_SCORE = 100
#: Tie-breaking modes of :class:`Scheduler`.
TIE_BREAKS = ("random", "order")
#: kube-scheduler's minFeasibleNodesToFind and minFeasibleNodesPercentageToFind
#: (``pkg/scheduler/schedule_one.go``).
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
#: Requests remembered by identity before the memo is cleared (see Scheduler._entry).
_BY_REQUEST_MAX = 4096
#: The change log is read for at most max(n_nodes / 80, this) changes: past that, comparing
#: every node's version (one numpy pass) is cheaper (see Scheduler._node_scores).
_LOG_MIN = 32


def num_feasible_nodes_to_find(percentage: int, num_all_nodes: int) -> int:
    """How many feasible nodes kube-scheduler looks for before it stops filtering.

    Fewer than 100 nodes: all of them. Otherwise ``percentage`` (0 = adaptive:
    ``50 - N // 125``, floored at 5) of N, integer arithmetic, but at least 100
    (``numFeasibleNodesToFind`` in ``pkg/scheduler/schedule_one.go``).
    """
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_all_nodes
    if percentage <= 0:
        percentage = max(50 - num_all_nodes // 125, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    if percentage >= 100:
        return num_all_nodes
    return max(num_all_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


def walk_feasible(scores: np.ndarray, start: int, k: int) -> tuple[np.ndarray, int]:
    """kube-scheduler's filter walk over node slots from ``start`` (wrapping around).

    ``scores`` < 0 marks infeasible slots. Returns the first ``k`` feasible slots in walk
    order and the number of slots examined: the walk stops when it finds a (k+1)-th feasible
    node (``findNodesThatPassFilters`` cancels there; the nodes before it were processed), so
    that node is where the next walk starts; with fewer feasible nodes every slot is examined.
    Looks at a chunk of ``max(2k, 512)`` slots first (a mostly feasible cluster costs O(k)),
    else at all slots at once (a few numpy calls, not one per chunk).
    """
    n = len(scores)
    chunk = max(2 * k, 512)
    end = start + chunk
    if end <= n:  # the common case: the first chunk holds k+1 feasible slots
        idx = (scores[start:end] >= 0).nonzero()[0]
        if len(idx) > k:
            return idx[:k] + start, int(idx[k])
    # Otherwise one pass over all slots (a few numpy calls whatever the feasible density;
    # scanning in growing chunks cost up to five rounds of calls on a sparse cluster).
    feasible = (scores >= 0).nonzero()[0]
    pos = int(feasible.searchsorted(start))
    after = len(feasible) - pos  # feasible slots from start to the end
    if after > k:
        walk = feasible[pos : pos + k + 1]
    else:
        walk = np.concatenate([feasible[pos:], feasible[: min(k + 1 - after, pos)]])
    if len(walk) > k:
        return walk[:k], (int(walk[k]) - start) % n
    return walk, n


def fit_error_message(num_nodes: int, reasons: dict[str, int]) -> str:
    """kube-scheduler's FitError text: ``0/N nodes are available: <count> <reason>, ...``
    with the ``"<count> <reason>"`` strings sorted as strings, as Go's ``sort.Strings`` does."""
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items() if count)
    msg = f"0/{num_nodes} nodes are available"
    return f"{msg}: {', '.join(parts)}." if parts else f"{msg}."


@runtime_checkable
class SchedulerPolicy(Protocol):
    """What a placement policy implements. Scores are integers 0..MAX_SCORE, higher wins."""

    name: str

    def prepare(self, cluster: ClusterState, workload: PodTable | None) -> None:
        """Called once before a run with the empty cluster and the workload's pods, if known."""

    def cache_key(self, pod: PodRequest) -> Hashable | None:
        """A key such that filter/score of (pod, node) depend only on it and the node's state."""

    def filter(self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray) -> np.ndarray:
        """Bool mask over ``nodes`` (active nodes only): can the pod run there?"""

    def score(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Int scores 0..100 for feasible ``nodes``, and an optional per-node GPU hint
        (int array, -1 = none) that :meth:`choose_gpus` receives for the chosen node."""

    def normalize(self, scores: np.ndarray, feasible: np.ndarray) -> np.ndarray:
        """Scores of all nodes after cross-node normalisation (identity for most policies)."""

    def choose_gpus(
        self,
        cluster: ClusterState,
        pod: PodRequest,
        node: int,
        hint: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """GPU slots of ``node`` to give the pod (``pod.gpu_count`` of them)."""


class BasePolicy:
    """Defaults for the optional parts of the protocol."""

    name = "base"

    def prepare(self, cluster: ClusterState, workload: PodTable | None) -> None:
        return None

    def cache_key(self, pod: PodRequest) -> Hashable | None:
        return pod.key

    def normalize(self, scores: np.ndarray, feasible: np.ndarray) -> np.ndarray:
        return scores

    def choose_gpus(
        self,
        cluster: ClusterState,
        pod: PodRequest,
        node: int,
        hint: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        return np.empty(0, np.int64)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the framework put a pod: node index and GPU slots."""

    node: int
    gpus: np.ndarray


class _CacheEntry:
    __slots__ = ("explained", "hint", "scores", "seen", "version")

    def __init__(self, size: int) -> None:
        #: ((change position, node count), failure message) of the last explain().
        self.explained: tuple[tuple[int, int], str] | None = None
        self.seen = -1  # cluster change position at the last sync (-1: compare all versions)
        self.scores = np.full(size, -1, np.int64)  # -1 = infeasible
        self.hint = np.full(size, -1, np.int64)
        self.version = np.zeros(size, np.int64)  # 0 never matches a live node (versions start at 1)

    def grow(self, size: int) -> None:
        extra = size - len(self.scores)
        if extra > 0:
            self.scores = np.concatenate([self.scores, np.full(extra, -1, np.int64)])
            self.hint = np.concatenate([self.hint, np.full(extra, -1, np.int64)])
            self.version = np.concatenate([self.version, np.zeros(extra, np.int64)])


class Scheduler:
    """Places pods one at a time on ``cluster`` with ``policy``.

    Parameters
    ----------
    cluster: the state to place into (mutated by :meth:`schedule`).
    policy: a :class:`SchedulerPolicy`.
    rng: the seeded generator that breaks ties (and any randomness of the policy).
    cache: reuse per-(pod shape, node) results across pods (see the module docstring);
        ``False`` recomputes every node for every pod (the naive baseline; same results).
    tie_break: how a node is picked among equal best scores. ``"random"`` (kube-scheduler's
        selectHost): a fresh uniform draw from ``rng`` per decision. ``"order"``: the first in
        node-index order; with nodes laid out in a seeded random permutation each decision is
        still a uniformly random pick, but the same permutation is reused by every pod, as in
        the FGD paper's published simulator. A policy with a ``tie_break`` attribute (Random
        has ``"random"``) overrides this.
    """

    def __init__(
        self,
        cluster: ClusterState,
        policy: SchedulerPolicy,
        rng: np.random.Generator,
        *,
        cache: bool = True,
        tie_break: str = "random",
    ) -> None:
        tie_break = getattr(policy, "tie_break", None) or tie_break
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"tie_break must be one of {', '.join(TIE_BREAKS)}")
        self.tie_break = tie_break
        self.cluster = cluster
        self.policy = policy
        self.rng = rng
        self.use_cache = cache
        self._cache: dict[Hashable, _CacheEntry] = {}
        # id(request) -> (request, its shape's entry or None): see _entry().
        self._by_request: dict[int, tuple[PodRequest, _CacheEntry | None]] = {}
        # Optional protocol parts: a plugin without them is uncached and unnormalised.
        self._cache_key = getattr(policy, "cache_key", None) if cache else None
        self._normalize = getattr(policy, "normalize", None)
        self._finalize = getattr(policy, "finalize", None)
        self._finalize_uniform = getattr(policy, "finalize_uniform", None)
        self._filter_score = getattr(policy, "filter_score", None)
        self._percentage = getattr(policy, "percentage_of_nodes_to_score", None)
        if self._percentage is not None:
            self._percentage = int(self._percentage)
        self._k_for = (-1, 0)  # (active nodes, feasible nodes to find) of the last walk
        self.next_start_index = 0  # kube-scheduler's nextStartNodeIndex (a node slot)
        self.evaluations = 0  # node filter evaluations, to show what the cache saves
        #: Node slots the last decision's filter walk examined (input of a timing model).
        self.last_examined = 0

    def _entry(self, pod: PodRequest) -> _CacheEntry | None:
        """The cache entry of ``pod``'s shape (None: the policy does not cache this pod).

        Looked up by the request object first: the engine shares one :class:`PodRequest` per
        shape, so this skips building and hashing the key tuple on every decision.
        """
        hit = self._by_request.get(id(pod))
        if hit is not None and hit[0] is pod:
            return hit[1]
        key = self._cache_key(pod) if self._cache_key is not None else None
        entry = None
        if key is not None:
            entry = self._cache.get(key)
            if entry is None:
                entry = self._cache[key] = _CacheEntry(len(self.cluster.version))
        if len(self._by_request) >= _BY_REQUEST_MAX:  # callers making one request per pod
            self._by_request.clear()
        self._by_request[id(pod)] = (pod, entry)  # holding ``pod`` keeps its id unique
        return entry

    def _node_scores(self, pod: PodRequest) -> tuple[np.ndarray, np.ndarray]:
        """Scores (-1 = infeasible) and GPU hints of all node slots ``[:n_nodes]``."""
        c = self.cluster
        n = c.n_nodes
        entry = self._entry(pod)
        if entry is None:
            entry = _CacheEntry(n)
            nodes = np.flatnonzero(c.active[:n])
        else:
            if len(entry.scores) < n:
                entry.grow(len(c.version))
            # The nodes changed since this shape's last look, from the cluster's change log
            # (O(changes)); the full version comparison (O(nodes), but one numpy pass: cheaper
            # than the log's Python set past about n/80 changes) when the log does not reach
            # back. After each look the cached versions equal the cluster's, so every node in
            # the log has moved from the version cached for it: both give the same nodes (the
            # order does not matter: each node's score depends on that node only).
            stale = None
            if entry.seen >= 0:
                stale = c.changed_since(entry.seen, max(n // 80, _LOG_MIN), ordered=False)
            entry.seen = c.change_position
            if stale is None:
                stale = (entry.version[:n] != c.version[:n]).nonzero()[0]
            if not len(stale):
                return entry.scores[:n], entry.hint[:n]
            entry.version[stale] = c.version[stale]
            if c.n_active == n:
                nodes = stale
            else:
                entry.scores[stale] = -1  # a removed node stays infeasible
                nodes = stale[c.active[stale]]
        if len(nodes):
            self.evaluations += len(nodes)
            if self._filter_score is not None:
                scores, hint = self._filter_score(c, pod, nodes)
                entry.scores[nodes] = scores
                if hint is not None:
                    entry.hint[nodes] = hint
            else:
                entry.scores[nodes] = -1
                ok = nodes[self.policy.filter(c, pod, nodes)]
                if len(ok):
                    scores, hint = self.policy.score(c, pod, ok)
                    entry.scores[ok] = scores
                    if hint is not None:
                        entry.hint[ok] = hint
        return entry.scores[:n], entry.hint[:n]

    def schedule(self, pod: PodRequest) -> Placement | None:
        """Filter, score, pick (random among the best), choose GPUs and assign.

        Returns the placement, or None when no node passes the filter (nothing changes).
        """
        scores, hints = self._node_scores(pod)
        if self._percentage is not None or self._finalize is not None:
            return self._schedule_sampled(pod, scores, hints)
        self.last_examined = len(scores)
        feasible = scores >= 0
        if self._normalize is not None:
            scores = self._normalize(scores, feasible)
        best = scores.max(initial=-1)
        if best < 0:
            return None
        if self.tie_break == "order":
            node = int(scores.argmax())  # first index holding the maximum
            gpus = self.policy.choose_gpus(self.cluster, pod, node, int(hints[node]), self.rng)
            self.cluster.assign(node, pod, gpus)
            return Placement(node, gpus)
        candidates = np.flatnonzero(scores == best)
        if len(candidates) == 1:
            node = int(candidates[0])
        else:
            node = int(candidates[self.rng.integers(len(candidates))])
        gpus = self.policy.choose_gpus(self.cluster, pod, node, int(hints[node]), self.rng)
        self.cluster.assign(node, pod, gpus)
        return Placement(node, gpus)

    def _schedule_sampled(
        self, pod: PodRequest, scores: np.ndarray, hints: np.ndarray
    ) -> Placement | None:
        """kube-scheduler's walk: the first K feasible nodes from the rotating start index."""
        c = self.cluster
        n = len(scores)
        if n == 0:
            self.last_examined = 0
            return None
        if self._percentage is None:
            k = n
        else:
            n_active = c.n_active
            if n_active != self._k_for[0]:  # recomputed only when the cluster size moves
                self._k_for = (n_active, num_feasible_nodes_to_find(self._percentage, n_active))
            k = self._k_for[1]
        start = self.next_start_index % n
        # walk_feasible's common case inline (its first chunk holds k+1 feasible slots),
        # where the walked slots are needed as an array only if the ranking below needs them.
        nodes = first = None
        if start + max(2 * k, 512) <= n:
            first = (scores[start : start + max(2 * k, 512)] >= 0).nonzero()[0]
            if len(first) > k:
                examined = int(first[k])
            else:
                first = None
        if first is None:
            nodes, examined = walk_feasible(scores, start, k)
        self.next_start_index = (start + examined) % n
        self.last_examined = examined
        if not k or (nodes is not None and len(nodes) == 0):  # k = 0 walks no node either
            return None
        uniform = self._finalize is None or (
            self._finalize_uniform is not None and self._finalize_uniform(c, pod)
        )
        if uniform and start + examined <= n:
            # The walk did not wrap and the final ranking is the cached one: rank the walked
            # slots in place (infeasible ones score -1, never the best), in walk order.
            ranked = scores[start : start + examined]
            offset = start
        else:
            if nodes is None:
                nodes = first[:k] + start
            ranked = scores[nodes]
            if self._finalize is not None:
                ranked = self._finalize(c, pod, nodes, ranked, hints[nodes])
            offset = -1
        if self.tie_break == "order":
            pick = int(ranked.argmax())  # the first best in walk order
        else:
            ties = (ranked == ranked.max()).nonzero()[0]
            # One tie: no draw (the generator's sequence depends on it).
            pick = int(ties[0]) if len(ties) == 1 else int(ties[self.rng.integers(len(ties))])
        node = offset + pick if offset >= 0 else int(nodes[pick])
        gpus = self.policy.choose_gpus(c, pod, node, int(hints[node]), self.rng)
        c.assign(node, pod, gpus)
        return Placement(node, gpus)

    def explain(self, pod: PodRequest) -> str:
        """Why no node fits ``pod``, in kube-scheduler's words (call it only after a failure).

        Uses the policy's ``explain`` when it has one, else counts the nodes its filter
        rejects.
        """
        c = self.cluster
        # The same shape on an unchanged cluster (same change position and node count) gets
        # the same answer: the cache key promises that the filter, hence the reasons, depend
        # only on it and the nodes' state, and every change to a node moves the position.
        entry = self._entry(pod) if self._cache_key is not None else None
        at = (c.change_position, c.n_nodes)
        if entry is not None and entry.explained is not None and entry.explained[0] == at:
            return entry.explained[1]
        message = self._explain(pod)
        if entry is not None:
            entry.explained = (at, message)
        return message

    def _explain(self, pod: PodRequest) -> str:
        c = self.cluster
        nodes = c.active_nodes()
        explain = getattr(self.policy, "explain", None)
        if explain is not None:
            reasons = explain(c, pod, nodes)
        else:
            rejected = int((~self.policy.filter(c, pod, nodes)).sum()) if len(nodes) else 0
            name = getattr(self.policy, "name", "policy")
            reasons = {f"node(s) didn't pass the {name} filter": rejected}
        return fit_error_message(len(nodes), reasons)


def describe(policy: Any) -> str:
    """First line of a policy's docstring (for listings)."""
    doc = (type(policy).__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""
