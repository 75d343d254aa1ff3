"""``kube-default``: kube-scheduler's default plugins as one vectorised policy.

Sources: kubernetes/kubernetes ``pkg/scheduler/framework/plugins/noderesources/`` (fit,
least_allocated, most_allocated, requested_to_capacity_ratio, balanced_allocation),
``tainttoleration/``, ``nodeaffinity/``, ``nodeunschedulable/``, ``helper/normalize_score.go``,
``apis/config/v1/default_plugins.go``; formulas summarised in
``../shared/design/control-plane-facts.md`` ("kube-scheduler").

Filters, in kube-scheduler's plugin order (a node is reported under the first that rejects it):
NodeUnschedulable (the ``node.kubernetes.io/unschedulable:NoSchedule`` taint the engine sets
on cordoned nodes), TaintToleration (NoSchedule / NoExecute taints the pod does not tolerate),
NodeAffinity (nodeSelector, required node affinity, and the GPU model the pod accepts) and
NodeResourcesFit (cpu, memory, pod slots, GPUs as the extended resource ``nvidia.com/gpu``;
a GPU-sharing pod needs one device with its share free).

Scores, each 0..100, weighted: TaintToleration 3 (intolerable PreferNoSchedule taints,
normalised reversed over the scored nodes), NodeAffinity 2 (no preferred terms in traces: 0),
NodeResourcesFit 1 (LeastAllocated / MostAllocated / RequestedToCapacityRatio over cpu:1,
memory:1 with the scheduler's non-zero request defaults), NodeResourcesBalancedAllocation 1.
Not modelled: PodTopologySpread, InterPodAffinity, ImageLocality, volumes, ports, preemption.

The node-local part (fit + balanced) is what the framework caches per pod shape; the
PreferNoSchedule count travels as the per-node hint and is normalised in :meth:`finalize`
over the nodes actually scored, as NormalizeScore does. The framework calls
:meth:`KubeDefaultPolicy.filter_score` with the nodes changed since the shape's last decision;
up to ``SCALAR_NODES`` of them are computed on Python ints from one gather of their resource
rows, more with numpy. Failure reasons (:meth:`KubeDefaultPolicy.explain`) are cached per pod
shape the same way, with their totals, so explaining a repeated failure costs O(changes).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence

import numpy as np

from ...errors import TracesimError
from ...sim.cluster import ClusterState, PodConstraints, PodRequest
from .base import _LOG_MIN, MAX_SCORE, BasePolicy
from .gpushare import best_gpus, model_allowed

#: Taint the engine puts on a node whose spec.unschedulable is true (as the node lifecycle
#: controller does); kube-scheduler's NodeUnschedulable filter reports it separately.
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable:NoSchedule"
#: Taint for a node whose Ready condition is not True (node lifecycle controller).
NOT_READY_TAINT = "node.kubernetes.io/not-ready:NoSchedule"
EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
STRATEGIES = ("LeastAllocated", "MostAllocated", "RequestedToCapacityRatio")
#: Default RequestedToCapacityRatio shape (utilisation %, score 0..10): bin packing, the
#: example of the Kubernetes docs "Resource Bin Packing".
DEFAULT_SHAPE = ((0, 0), (100, 10))
#: kube-scheduler's MaxCustomPriorityScore: shape scores are 0..10, scaled to 0..100.
MAX_CUSTOM_PRIORITY_SCORE = 10

#: The GPU choice of a pod that asks for none (shared, read-only).
_NO_GPUS = np.zeros(0, np.int64)
_NO_GPUS.flags.writeable = False

MSG_UNSCHEDULABLE = "node(s) were unschedulable"
# Reason bit sets have 6 bits (taint, affinity, pods, cpu, memory, GPU): 64 values.
_N_BIT_VALUES = 64
_BIT_MATRIX = (np.arange(_N_BIT_VALUES)[None, :] >> np.arange(6)[:, None]) & 1
MSG_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
MSG_PODS = "Too many pods"
GPU_RESOURCE = "nvidia.com/gpu"

#: Up to this many nodes, filter and score run on Python scalars: the framework's cache leaves
#: a few changed nodes per decision, where numpy's per-call overhead would dominate
#: (measured here: about 1 us per node on Python ints against ~30 us for a vectorised call).
SCALAR_NODES = 32

# Effect codes of parsed vocabulary entries.
_LABEL, _NO_SCHEDULE, _PREFER, _NO_EXECUTE = 0, 1, 2, 3
_EFFECT_CODE = {"NoSchedule": _NO_SCHEDULE, "PreferNoSchedule": _PREFER, "NoExecute": _NO_EXECUTE}


def parse_entry(text: str) -> tuple[str, str | None, int]:
    """A vocabulary string as (key, value or None, effect code): ``key=value`` is a label
    (effect 0); ``key=value:Effect`` / ``key:Effect`` a taint. Label values cannot contain
    ``:``, so a known effect suffix marks a taint."""
    head, sep, tail = text.rpartition(":")
    effect = _EFFECT_CODE.get(tail) if sep else None
    if effect is None:
        head, effect = text, _LABEL
    key, eq, value = head.partition("=")
    return key, (value if eq else None), effect


def parse_toleration(text: str) -> tuple[str | None, str | None, bool, int | None]:
    """``key=value:Effect`` (Equal), ``key:Effect`` (Exists), ``*`` (Exists, any key), effect
    optional -> (key or None for any, value, exists, effect code or None for any)."""
    head, sep, tail = text.rpartition(":")
    effect = _EFFECT_CODE.get(tail) if sep else None
    if effect is None:
        head = text
    if head == "*" or head == "":
        return None, None, True, effect
    key, eq, value = head.partition("=")
    return key, (value if eq else None), not eq, effect


def tolerates(tolerations: Sequence[str], key: str, value: str | None, effect: int) -> bool:
    """Does any toleration tolerate the taint (``v1.Toleration.ToleratesTaint``)?"""
    for text in tolerations:
        t_key, t_value, exists, t_effect = parse_toleration(text)
        if t_effect is not None and t_effect != effect:
            continue
        if t_key is None:
            return True
        if t_key != key:
            continue
        if exists or (t_value or "") == (value or ""):
            return True
    return False


def _requirement(text: str) -> tuple[bool, str, str, list[str]]:
    """``[field:]key Op [v1|v2]`` -> (is_field, key, op, values)."""
    words = text.strip().split(" ", 2)
    if len(words) < 2:
        raise TracesimError(f"node affinity requirement {text!r} is not 'key Op values'")
    key, op = words[0], words[1]
    values = words[2].split("|") if len(words) > 2 and words[2] else []
    is_field = key.startswith("field:")
    return is_field, key.removeprefix("field:"), op, values


def _label_matches(op: str, values: list[str], value: str) -> bool:
    """Does a label value satisfy ``op`` (In/NotIn as "value in set", Exists, Gt, Lt)?"""
    if op in ("In", "NotIn"):
        return value in values
    if op in ("Exists", "DoesNotExist"):
        return True
    if op in ("Gt", "Lt") and values:
        try:
            v, ref = int(value), int(values[0])
        except ValueError:
            return False
        return v > ref if op == "Gt" else v < ref
    return False


class _Tables:
    """Per-constraint lookup arrays over the vocabulary codes, extended as the vocabulary grows.

    Each array has one extra trailing False so that an empty slot (code -1) looks up False.
    """

    def __init__(self, constraint: PodConstraints) -> None:
        self.constraint = constraint
        self.size = 0
        self.has_hard = self.has_soft = False
        self.hard = np.zeros(1, bool)  # untolerated NoSchedule / NoExecute taint
        self.hard_codes: frozenset[int] = frozenset()  # the codes where ``hard`` is True
        self.soft = np.zeros(1, bool)  # untolerated PreferNoSchedule taint
        self.selector: list[str] = list(constraint.node_selector)
        # terms -> requirements: (is_field, key, op, values, lookup over codes)
        self.terms = [
            [[*_requirement(r), np.zeros(1, bool)] for r in term.split(",") if r.strip()]
            for term in constraint.node_affinity
        ]

    def extend(self, parsed: list[tuple[str, str | None, int]]) -> None:
        new = parsed[self.size :]
        if not new:
            return
        tol = self.constraint.tolerations
        hard = [e in (_NO_SCHEDULE, _NO_EXECUTE) and not tolerates(tol, k, v, e) for k, v, e in new]
        soft = [e == _PREFER and not tolerates(tol, k, v, e) for k, v, e in new]
        self.hard = np.concatenate([self.hard[:-1], hard, [False]])
        self.soft = np.concatenate([self.soft[:-1], soft, [False]])
        self.has_hard = bool(self.hard.any())
        self.has_soft = bool(self.soft.any())
        self.hard_codes = frozenset(np.flatnonzero(self.hard).tolist())
        for term in self.terms:
            for req in term:
                is_field, key, op, values, lookup = req
                if is_field:
                    continue
                hits = [
                    e == _LABEL and k == key and _label_matches(op, values, v or "")
                    for k, v, e in new
                ]
                req[4] = np.concatenate([lookup[:-1], hits, [False]])
        self.size = len(parsed)


class _Explained:
    """One pod shape's cached failure reasons: per node slot the version they were computed
    at, the reason bit set and the first untolerated taint (-1 = none); their totals over the
    slots (``hist``: nodes per bit set, where bucket 0, no reason, feeds no message;
    ``taints``: nodes per first-taint code); and the last answer (``reasons``, valid at change
    position ``seen`` with ``n`` node slots)."""

    __slots__ = ("bits", "first", "hist", "n", "reasons", "seen", "taints", "version")

    def __init__(self, size: int) -> None:
        self.version = np.zeros(size, np.int64)  # 0 never matches a live node
        self.bits = np.zeros(size, np.int64)
        self.first = np.full(size, -1, np.int64)
        self.hist = np.zeros(_N_BIT_VALUES, np.int64)
        self.taints: dict[int, int] = {}
        self.seen = -1
        self.n = 0
        self.reasons: dict[str, int] | None = None

    def grow(self, size: int) -> None:
        extra = size - len(self.bits)
        self.version = np.concatenate([self.version, np.zeros(extra, np.int64)])
        self.bits = np.concatenate([self.bits, np.zeros(extra, np.int64)])
        self.first = np.concatenate([self.first, np.full(extra, -1, np.int64)])

    def count(self, stale: np.ndarray, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) the reasons of ``stale`` from the totals."""
        self.hist += sign * np.bincount(self.bits[stale], minlength=_N_BIT_VALUES)
        first = self.first[stale]
        taints = self.taints
        for code in first[first >= 0].tolist():
            taints[code] = taints.get(code, 0) + sign


class KubeDefaultPolicy(BasePolicy):
    """kube-scheduler's default plugins: resource fit, balance, taints, affinity, sampling.

    Options (``--set``): ``strategy`` (LeastAllocated, MostAllocated, RequestedToCapacityRatio),
    ``percentage_of_nodes_to_score`` (0 = adaptive), ``shape`` (RequestedToCapacityRatio points
    ``"0:0,100:10"``), ``cpu_weight`` / ``memory_weight`` (resource weights), and the plugin
    weights ``taint_weight``, ``affinity_weight``, ``fit_weight``, ``balanced_weight``.
    """

    name = "kube-default"

    def __init__(
        self,
        *,
        strategy: str = "LeastAllocated",
        percentage_of_nodes_to_score: int = 0,
        shape: str | Sequence[tuple[int, int]] = DEFAULT_SHAPE,
        cpu_weight: int = 1,
        memory_weight: int = 1,
        taint_weight: int = 3,
        affinity_weight: int = 2,
        fit_weight: int = 1,
        balanced_weight: int = 1,
    ) -> None:
        if strategy not in STRATEGIES:
            raise TracesimError(f"strategy {strategy!r} unknown; choose {', '.join(STRATEGIES)}")
        if not 0 <= int(percentage_of_nodes_to_score) <= 100:
            raise TracesimError("percentage_of_nodes_to_score must be 0 (adaptive) to 100")
        self.strategy = strategy
        self.percentage_of_nodes_to_score = int(percentage_of_nodes_to_score)
        self.shape = _parse_shape(shape)
        self.cpu_weight = int(cpu_weight)
        self.memory_weight = int(memory_weight)
        self.taint_weight = int(taint_weight)
        self.affinity_weight = int(affinity_weight)
        self.fit_weight = int(fit_weight)
        self.balanced_weight = int(balanced_weight)
        self._tables: dict[int, _Tables] = {}
        self._explained: dict[Hashable, _Explained] = {}  # per pod shape, see explain()
        self._explain_cluster: ClusterState | None = None
        self._parsed: list[tuple[str, str | None, int]] = []

    # -- constraints -------------------------------------------------------------------------
    def _table(self, cluster: ClusterState, code: int) -> _Tables:
        vocab = cluster.vocab.values
        table = self._tables.get(code)
        if (
            table is not None
            and table.size == len(vocab)
            and table.constraint is cluster.constraints[code]
        ):
            return table  # the common case: nothing new in the vocabulary
        if len(self._parsed) < len(vocab):
            self._parsed.extend(parse_entry(v) for v in vocab[len(self._parsed) :])
        table = self._tables.get(code)
        if table is None or table.constraint is not cluster.constraints[code]:
            table = self._tables[code] = _Tables(cluster.constraints[code])
        table.extend(self._parsed)
        return table

    def _affinity_ok(
        self, cluster: ClusterState, pod: PodRequest, table: _Tables, nodes: np.ndarray
    ) -> np.ndarray:
        """NodeAffinity: nodeSelector, required terms and the accepted GPU model."""
        ok = model_allowed(cluster, pod, nodes) if pod.model_mask else np.ones(len(nodes), bool)
        if not table.selector and not table.terms:
            return ok
        labels = cluster.label_codes[nodes]
        for label in table.selector:
            code = cluster.vocab.get(label)
            ok &= False if code is None else (labels == code).any(axis=1)
        if table.terms:
            any_term = np.zeros(len(nodes), bool)
            for term in table.terms:
                term_ok = np.ones(len(nodes), bool)
                for is_field, key, op, values, lookup in term:
                    if is_field:
                        # matchFields: only metadata.name is supported by Kubernetes.
                        index = [cluster._index[v] for v in values if v in cluster._index]
                        hit = np.isin(nodes, index) if key == "metadata.name" else False
                    else:
                        hit = lookup[labels].any(axis=1)
                    term_ok &= ~hit if op in ("NotIn", "DoesNotExist") else hit
                any_term |= term_ok
            ok &= any_term
        return ok

    # -- protocol ----------------------------------------------------------------------------
    def cache_key(self, pod: PodRequest) -> Hashable | None:
        return pod.key

    def _fit_masks(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> list[tuple[str, np.ndarray]]:
        """NodeResourcesFit: (reason, rejected mask) per resource."""
        c = cluster
        out = [(MSG_PODS, c.used_pods[nodes] >= c.alloc_pods[nodes])]
        if pod.cpu_milli:
            out.append(
                (
                    "Insufficient cpu",
                    c.alloc_cpu_milli[nodes] - c.used_cpu_milli[nodes] < pod.cpu_milli,
                )
            )
        if pod.memory_bytes:
            free = c.alloc_memory_bytes[nodes] - c.used_memory_bytes[nodes]
            out.append(("Insufficient memory", free < pod.memory_bytes))
        if pod.gpu_count:
            fit = (c.gpu_free_milli[nodes] >= pod.gpu_milli).sum(axis=1)
            out.append((f"Insufficient {GPU_RESOURCE}", fit < pod.gpu_count))
        return out

    def filter(self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray) -> np.ndarray:
        table = self._table(cluster, pod.constraint)
        if len(nodes) <= SCALAR_NODES:  # the incremental case: few nodes changed since
            rows = cluster.resources[nodes].tolist()
            return np.array(self._filter_rows(cluster, pod, table, nodes, rows), bool)
        ok = None
        if table.has_hard:
            ok = ~table.hard[cluster.taint_codes[nodes]].any(axis=1)
        for _, rejected in self._fit_masks(cluster, pod, nodes):
            ok = ~rejected if ok is None else ok & ~rejected
        if pod.model_mask or pod.constraint:
            ok &= self._affinity_ok(cluster, pod, table, nodes)
        return ok

    def _reasons(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per node: a bit set of rejecting reasons (bit 0 taint, 1 affinity, 2+ the
        NodeResourcesFit resources in :meth:`_fit_masks` order) and the code of the first
        untolerated taint (-1 = none). Each node is reported by the first plugin that rejects
        it, as kube-scheduler's filter loop stops there."""
        table = self._table(cluster, pod.constraint)
        if len(nodes) <= SCALAR_NODES and not (pod.model_mask or table.selector or table.terms):
            return self._reasons_rows(cluster, pod, table, nodes)
        taints = cluster.taint_codes[nodes]
        if table.has_hard and taints.shape[1]:
            bad = table.hard[taints]
            tainted = bad.any(axis=1)
            first = np.where(tainted, taints[np.arange(len(nodes)), bad.argmax(axis=1)], -1)
        else:  # no taint the pod minds, or no taint slots at all
            tainted = np.zeros(len(nodes), bool)
            first = np.full(len(nodes), -1, np.int64)
        rest = ~tainted
        bits = tainted.astype(np.int64)
        off_affinity = rest & ~self._affinity_ok(cluster, pod, table, nodes)
        bits |= off_affinity.astype(np.int64) << 1
        rest &= ~off_affinity
        for b, (_, rejected) in enumerate(self._fit_masks(cluster, pod, nodes)):
            bits |= (rest & rejected).astype(np.int64) << (b + 2)
        return bits, first

    def _reasons_rows(
        self, c: ClusterState, pod: PodRequest, table: _Tables, nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_reasons` of a few nodes for a pod without node affinity or GPU model, on
        Python ints from their resource and GPU rows (the affinity bit is never set: nothing
        to match)."""
        cpu, memory = pod.cpu_milli, pod.memory_bytes
        # Bit positions of the NodeResourcesFit reasons, as :meth:`_fit_masks` orders them.
        cpu_bit = 1 << 3 if cpu else 0
        memory_bit = 1 << (4 if cpu else 3) if memory else 0
        gpu_bit = 1 << (3 + bool(cpu) + bool(memory))
        gpu_count, gpu_milli = pod.gpu_count, pod.gpu_milli
        gpus = c.gpu_free_milli[nodes].tolist() if gpu_count else None
        hard = table.hard_codes if table.has_hard else None
        taints = c.taint_codes[nodes].tolist() if hard else None
        bits, first = [], []
        for i, (a_cpu, a_mem, a_pods, u_cpu, u_mem, u_pods, _, _) in enumerate(
            c.resources[nodes].tolist()
        ):
            code = next((t for t in taints[i] if t in hard), -1) if hard else -1
            first.append(code)
            if code >= 0:
                bits.append(1)
                continue
            b = 1 << 2 if u_pods >= a_pods else 0
            if cpu and a_cpu - u_cpu < cpu:
                b |= cpu_bit
            if memory and a_mem - u_mem < memory:
                b |= memory_bit
            if gpus is not None and sum(g >= gpu_milli for g in gpus[i]) < gpu_count:
                b |= gpu_bit
            bits.append(b)
        return np.array(bits, np.int64), np.array(first, np.int64)

    def _filter_rows(
        self, c: ClusterState, pod: PodRequest, table: _Tables, nodes: np.ndarray, rows: list
    ) -> list[bool]:
        """:meth:`filter` for a few nodes from their resource rows (``c.resources[nodes]`` as
        lists), compared as Python ints: numpy's per-call overhead would dominate. A test
        checks it against the vectorised path."""
        cpu, memory = pod.cpu_milli, pod.memory_bytes
        # Row layout: RESOURCE_COLUMNS (alloc cpu, memory, pods; used cpu, memory, pods; ...).
        ok = [
            u_pods < a_pods
            and (not cpu or a_cpu - u_cpu >= cpu)
            and (not memory or a_mem - u_mem >= memory)
            for a_cpu, a_mem, a_pods, u_cpu, u_mem, u_pods, _, _ in rows
        ]
        if table.has_hard:
            hard = table.hard_codes
            taints = c.taint_codes[nodes].tolist()
            ok = [o and hard.isdisjoint(t) for o, t in zip(ok, taints, strict=True)]
        if pod.gpu_count or pod.model_mask or pod.constraint:
            mask = np.array(ok, bool)
            if pod.gpu_count:
                mask &= (c.gpu_free_milli[nodes] >= pod.gpu_milli).sum(axis=1) >= pod.gpu_count
            if pod.model_mask or pod.constraint:
                mask &= self._affinity_ok(c, pod, table, nodes)
            ok = mask.tolist()
        return ok

    def _score_rows(self, pod: PodRequest, rows: list) -> list[int]:
        """Node-local scores (Least/MostAllocated) from resource rows on Python ints and
        floats: the same integer and float64 arithmetic as the vectorised path and Go."""
        cpu, memory = pod.cpu_milli, pod.memory_bytes
        nz_cpu, nz_mem = pod.nonzero_cpu_milli, pod.nonzero_memory_bytes
        w_cpu, w_mem = self.cpu_weight, self.memory_weight
        fit_weight, balanced_weight = self.fit_weight, self.balanced_weight
        least = self.strategy == "LeastAllocated"
        w_both = w_cpu + w_mem
        out = []
        for a_cpu, a_mem, _, u_cpu, u_mem, _, n_cpu, n_mem in rows:
            r_cpu, r_mem = n_cpu + nz_cpu, n_mem + nz_mem
            if least and a_cpu and a_mem and w_both:  # the common case, unrolled
                s_cpu = 0 if r_cpu > a_cpu else (a_cpu - r_cpu) * MAX_SCORE // a_cpu
                s_mem = 0 if r_mem > a_mem else (a_mem - r_mem) * MAX_SCORE // a_mem
                fit = (s_cpu * w_cpu + s_mem * w_mem) // w_both
            else:
                total = weight_sum = 0
                for r, a, w in ((r_cpu, a_cpu, w_cpu), (r_mem, a_mem, w_mem)):
                    if a == 0:
                        continue
                    if least:
                        s = 0 if r > a else (a - r) * MAX_SCORE // a
                    else:
                        s = min(r, a) * MAX_SCORE // a
                    total += s * w
                    weight_sum += w
                fit = total // weight_sum if weight_sum else 0
            local = fit_weight * fit
            if balanced_weight:
                if a_cpu and a_mem:
                    std = abs(min((u_cpu + cpu) / a_cpu, 1.0) - min((u_mem + memory) / a_mem, 1.0))
                    std /= 2
                else:  # one resource left (or none): no spread
                    std = 0.0
                local += balanced_weight * int((1.0 - std) * MAX_SCORE)
            out.append(local)
        return out

    def _prefer(self, c: ClusterState, table: _Tables, nodes: np.ndarray) -> np.ndarray:
        """The score hint: untolerated PreferNoSchedule taints per node."""
        if not table.has_soft:
            return np.zeros(len(nodes), np.int64)
        return table.soft[c.taint_codes[nodes]].sum(axis=1)

    def filter_score(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`filter` and :meth:`score` of ``nodes`` in one pass: node-local scores (-1
        where the filter rejects) and hints. A few nodes (the framework's cache leaves a few
        changed ones per decision) are gathered once and computed on Python ints; a plain
        case (LeastAllocated, no node affinity or GPU model to match) in one loop, or for
        more nodes in one set of array operations on their gathered resource rows."""
        c = cluster
        table = self._table(c, pod.constraint)
        plain = (
            self.strategy == "LeastAllocated"
            and self.cpu_weight + self.memory_weight > 0
            and not (pod.model_mask or table.selector or table.terms)
        )
        if len(nodes) > SCALAR_NODES or self.strategy == "RequestedToCapacityRatio":
            if plain:
                scores = self._plain_array(c, pod, table, nodes)
                if scores is not None:
                    return scores, self._prefer(c, table, nodes)
            mask = self.filter(c, pod, nodes)
            scores = np.full(len(nodes), -1, np.int64)
            ok = nodes[mask]
            if len(ok):
                scores[mask] = self.score(c, pod, ok)[0]
            return scores, self._prefer(c, table, nodes)
        # take(): the same gather as fancy indexing, with less per-call overhead.
        rows = c.resources.take(nodes, 0).tolist()
        if plain:
            taints = c.taint_codes.take(nodes, 0).tolist() if table.has_hard else None
            gpus = c.gpu_free_milli.take(nodes, 0).tolist() if pod.gpu_count else None
            local = self._plain_rows(pod, table, rows, taints, gpus)
            return np.array(local, np.int64), self._prefer(c, table, nodes)
        ok = self._filter_rows(c, pod, table, nodes, rows)
        it = iter(self._score_rows(pod, [r for r, o in zip(rows, ok, strict=True) if o]))
        scores = np.array([next(it) if o else -1 for o in ok], np.int64)
        return scores, self._prefer(c, table, nodes)

    def _plain_rows(
        self,
        pod: PodRequest,
        table: _Tables,
        rows: list,
        taints: list | None,
        gpus: list | None,
    ) -> list[int]:
        """:meth:`filter_score` in the plain case (LeastAllocated, no node affinity or GPU
        model) from resource rows (and the nodes' taint codes when the pod minds a taint,
        their GPUs' free milli-GPU when it asks for GPUs) in one loop: the checks of
        :meth:`_filter_rows` and the arithmetic of :meth:`_score_rows`; -1 where the filter
        rejects."""
        cpu, memory = pod.cpu_milli, pod.memory_bytes
        # A resource the pod does not request rejects no node (not even an overcommitted
        # one): its free amount is then compared with -inf.
        need_cpu = cpu or -math.inf
        need_mem = memory or -math.inf
        nz_cpu, nz_mem = pod.nonzero_cpu_milli, pod.nonzero_memory_bytes
        w_cpu, w_mem = self.cpu_weight, self.memory_weight
        w_both = w_cpu + w_mem
        fit_weight, balanced_weight = self.fit_weight, self.balanced_weight
        hard = table.hard_codes if taints is not None else None
        gpu_count, gpu_milli = pod.gpu_count, pod.gpu_milli
        top = MAX_SCORE
        out: list[int] = []
        append = out.append
        # min(f, 1.0) and abs() written as comparisons: the same floats, fewer calls.
        for i, (a_cpu, a_mem, a_pods, u_cpu, u_mem, u_pods, n_cpu, n_mem) in enumerate(rows):
            if (
                u_pods >= a_pods
                or a_cpu - u_cpu < need_cpu
                or a_mem - u_mem < need_mem
                or (hard is not None and not hard.isdisjoint(taints[i]))
                or (gpus is not None and sum(g >= gpu_milli for g in gpus[i]) < gpu_count)
            ):
                append(-1)
            elif a_cpu and a_mem:
                r_cpu = n_cpu + nz_cpu
                r_mem = n_mem + nz_mem
                s_cpu = 0 if r_cpu > a_cpu else (a_cpu - r_cpu) * top // a_cpu
                s_mem = 0 if r_mem > a_mem else (a_mem - r_mem) * top // a_mem
                local = fit_weight * ((s_cpu * w_cpu + s_mem * w_mem) // w_both)
                if balanced_weight:
                    f_cpu = (u_cpu + cpu) / a_cpu
                    if f_cpu > 1.0:
                        f_cpu = 1.0
                    f_mem = (u_mem + memory) / a_mem
                    if f_mem > 1.0:
                        f_mem = 1.0
                    std = f_cpu - f_mem
                    if std < 0.0:
                        std = -std
                    local += balanced_weight * int((1.0 - std / 2) * top)
                append(local)
            else:  # a resource with no allocatable: the general arithmetic
                append(self._score_rows(pod, [rows[i]])[0])
        return out

    def _plain_array(
        self, c: ClusterState, pod: PodRequest, table: _Tables, nodes: np.ndarray
    ) -> np.ndarray | None:
        """:meth:`filter_score` scores in the plain case (see :meth:`_plain_rows`) with array
        operations on the gathered resource rows (the vectorised filter and score, fused);
        None when a node has no allocatable cpu or memory (the general path handles it)."""
        res = c.resources.take(nodes, 0)  # take(): fancy indexing with less overhead
        if not res[:, :2].all():
            return None
        a_cpu, a_mem, a_pods, u_cpu, u_mem, u_pods, n_cpu, n_mem = res.T
        cpu, memory = pod.cpu_milli, pod.memory_bytes
        ok = u_pods < a_pods
        if cpu:
            ok &= a_cpu - u_cpu >= cpu
        if memory:
            ok &= a_mem - u_mem >= memory
        if table.has_hard:
            # any(axis=1) without ndarray.any's Python-level wrapper.
            ok &= ~np.logical_or.reduce(table.hard[c.taint_codes.take(nodes, 0)], axis=1)
        if pod.gpu_count:
            ok &= (c.gpu_free_milli[nodes] >= pod.gpu_milli).sum(axis=1) >= pod.gpu_count
        # LeastAllocated as fit_score's common case; balanced as balanced_allocation.
        s_cpu = np.maximum((a_cpu - (n_cpu + pod.nonzero_cpu_milli)) * MAX_SCORE, 0) // a_cpu
        s_mem = np.maximum((a_mem - (n_mem + pod.nonzero_memory_bytes)) * MAX_SCORE, 0) // a_mem
        w_cpu, w_mem = self.cpu_weight, self.memory_weight
        if w_cpu == w_mem == self.fit_weight == 1:  # the defaults: the same integers, 3 calls less
            s_cpu += s_mem
            local = s_cpu // 2
        else:
            local = self.fit_weight * ((s_cpu * w_cpu + s_mem * w_mem) // (w_cpu + w_mem))
        if self.balanced_weight:
            # As balanced_allocation, computed in place: the same float operations in order.
            f_cpu = (u_cpu + cpu) / a_cpu
            np.minimum(f_cpu, 1.0, out=f_cpu)
            f_mem = (u_mem + memory) / a_mem
            np.minimum(f_mem, 1.0, out=f_mem)
            f_cpu -= f_mem
            std = np.abs(f_cpu, out=f_cpu)
            std /= 2
            np.subtract(1.0, std, out=std)
            std *= MAX_SCORE
            local += self.balanced_weight * std.astype(np.int64)
        return np.where(ok, local, -1)

    def _reason_messages(self, pod: PodRequest) -> list[str]:
        """Messages of reason bits 1.. (affinity, then :meth:`_fit_masks` order)."""
        out = [MSG_AFFINITY, MSG_PODS]
        if pod.cpu_milli:
            out.append("Insufficient cpu")
        if pod.memory_bytes:
            out.append("Insufficient memory")
        if pod.gpu_count:
            out.append(f"Insufficient {GPU_RESOURCE}")
        return out

    def explain(self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray) -> dict[str, int]:
        """Rejected-node counts per kube-scheduler reason over the active nodes (``nodes`` is
        accepted for the protocol; the cache covers all node slots). Per-node reasons are
        cached per pod shape with the node versions, like the framework's scores, together
        with their counts (per reason bit set and per first untolerated taint), so a pod that
        fails again costs O(nodes changed since), not O(nodes); with nothing changed it gets
        the previous answer."""
        if self._explain_cluster is not cluster:  # positions belong to one cluster's log
            self._explain_cluster = cluster
            self._explained = {}
        key = pod.key
        entry = self._explained.get(key)
        n = cluster.n_nodes
        position = cluster.change_position
        if entry is None:
            entry = self._explained[key] = _Explained(len(cluster.version))
        elif entry.seen == position and entry.n == n and entry.reasons is not None:
            return dict(entry.reasons)  # nothing changed: the same answer as last time
        elif len(entry.bits) < len(cluster.version):
            entry.grow(len(cluster.version))
        # Nodes changed since this shape's last explanation: the cluster's change log when it
        # reaches back and is cheaper than comparing all versions (as in the framework's
        # _node_scores; each of them has moved from its cached version), else every version
        # compared. Their order does not matter: the totals are sums.
        limit = max(n // 80, _LOG_MIN)
        changed = (
            cluster.changed_since(entry.seen, limit, ordered=False) if entry.seen >= 0 else None
        )
        entry.seen, entry.n = position, n
        if changed is None:
            stale = (entry.version[:n] != cluster.version[:n]).nonzero()[0]
        else:
            stale = changed
        if len(stale):
            entry.count(stale, -1)
            live = stale[cluster.active[stale]]
            entry.bits[stale], entry.first[stale] = 0, -1  # a removed node is not counted
            if len(live):
                entry.bits[live], entry.first[live] = self._reasons(cluster, pod, live)
            entry.version[stale] = cluster.version[stale]
            entry.count(stale, 1)
        elif entry.reasons is not None:
            return dict(entry.reasons)
        reasons: dict[str, int] = {}
        for code, count in sorted(entry.taints.items()):
            if not count:
                continue
            text = cluster.vocab.values[code]
            if text == UNSCHEDULABLE_TAINT:
                msg = MSG_UNSCHEDULABLE
            else:
                t_key, value, _ = parse_entry(text)
                msg = f"node(s) had untolerated taint {{{t_key}: {value or ''}}}"
            reasons[msg] = reasons.get(msg, 0) + count
        per_bit = (_BIT_MATRIX @ entry.hist).tolist()
        for i, msg in enumerate(self._reason_messages(pod), start=1):
            reasons[msg] = reasons.get(msg, 0) + per_bit[i]
        entry.reasons = reasons
        return dict(reasons)

    def score(
        self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Node-local score (fit * fit_weight + balanced * balanced_weight) and, as the hint,
        the number of intolerable PreferNoSchedule taints (normalised in :meth:`finalize`)."""
        c = cluster
        table = self._table(c, pod.constraint)
        if len(nodes) <= SCALAR_NODES and self.strategy != "RequestedToCapacityRatio":
            local = np.array(self._score_rows(pod, c.resources[nodes].tolist()), np.int64)
        else:
            local = self.fit_weight * self.fit_score(c, pod, nodes)
            if self.balanced_weight:
                local += self.balanced_weight * balanced_allocation(c, pod, nodes)
        return local, self._prefer(c, table, nodes)

    def finalize(
        self,
        cluster: ClusterState,
        pod: PodRequest,
        nodes: np.ndarray,
        scores: np.ndarray,
        hints: np.ndarray,
    ) -> np.ndarray:
        """Weighted sum over the scored nodes: TaintToleration normalised reversed
        (``DefaultNormalizeScore(100, reverse=true)``) plus the cached local part. NodeAffinity
        has no preferred terms here, so it scores 0 on every node."""
        if not self._table(cluster, pod.constraint).has_soft:
            # No PreferNoSchedule taint the pod minds (hints all 0): all normalise to 100.
            return scores + self.taint_weight * MAX_SCORE
        return scores + self.taint_weight * normalize_reverse(hints)

    def finalize_uniform(self, cluster: ClusterState, pod: PodRequest) -> bool:
        """True when :meth:`finalize` adds one amount to every scored node (no
        PreferNoSchedule taint the pod minds): the ranking is the cached scores'."""
        return not self._table(cluster, pod.constraint).has_soft

    def choose_gpus(
        self,
        cluster: ClusterState,
        pod: PodRequest,
        node: int,
        hint: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        if not pod.gpu_count:
            return _NO_GPUS  # most pods: no call, no allocation
        return best_gpus(cluster, pod, node)

    # -- NodeResourcesFit scoring ------------------------------------------------------------
    def fit_score(self, cluster: ClusterState, pod: PodRequest, nodes: np.ndarray) -> np.ndarray:
        """NodeResourcesFit score 0..100 of ``nodes`` for ``pod`` with the configured strategy
        (requested = the node's non-zero requests + the pod's)."""
        c = cluster
        req = (
            c.nonzero_cpu_milli[nodes] + pod.nonzero_cpu_milli,
            c.nonzero_memory_bytes[nodes] + pod.nonzero_memory_bytes,
        )
        cap = (c.alloc_cpu_milli[nodes], c.alloc_memory_bytes[nodes])
        weights = (self.cpu_weight, self.memory_weight)
        total = np.zeros(len(nodes), np.int64)
        weight_sum = np.zeros(len(nodes), np.int64)
        if self.strategy == "RequestedToCapacityRatio":
            for r, a, w in zip(req, cap, weights, strict=True):
                util = np.where((a == 0) | (r > a), 100, r * 100 // np.maximum(a, 1))
                s = broken_linear(self.shape, util)
                use = (a > 0) & (s > 0)
                total += np.where(use, s * w, 0)
                weight_sum += np.where(use, w, 0)
            # Go: int64(math.Round(float64(nodeScore) / float64(weightSum))), half away from 0
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.floor(total / np.maximum(weight_sum, 1) + 0.5).astype(np.int64)
            return np.where(weight_sum > 0, out, 0)
        if self.strategy == "LeastAllocated" and cap[0].all() and cap[1].all():
            # The common case, in fewer array operations (this runs for every stale node):
            # requested > capacity gives a negative numerator, clipped to Go's 0.
            s_cpu = np.maximum((cap[0] - req[0]) * MAX_SCORE, 0) // cap[0]
            s_mem = np.maximum((cap[1] - req[1]) * MAX_SCORE, 0) // cap[1]
            return (s_cpu * weights[0] + s_mem * weights[1]) // max(sum(weights), 1)
        for r, a, w in zip(req, cap, weights, strict=True):
            safe = np.maximum(a, 1)
            if self.strategy == "LeastAllocated":
                s = np.where((a > 0) & (r <= a), (a - r) * MAX_SCORE // safe, 0)
            else:  # MostAllocated: requested capped at capacity
                s = np.where(a > 0, np.minimum(r, a) * MAX_SCORE // safe, 0)
            total += np.where(a > 0, s * w, 0)
            weight_sum += np.where(a > 0, w, 0)
        return np.where(weight_sum > 0, total // np.maximum(weight_sum, 1), 0)


def balanced_allocation(cluster: ClusterState, pod: PodRequest, nodes: np.ndarray) -> np.ndarray:
    """NodeResourcesBalancedAllocation 0..100: ``int((1 - std) * 100)`` of the cpu and memory
    fractions requested/allocatable (actual requests incl. the pod, capped at 1); with two
    resources std = |f_cpu - f_mem| / 2; a resource with no allocatable is left out."""
    c = cluster
    a_cpu, a_mem = c.alloc_cpu_milli[nodes], c.alloc_memory_bytes[nodes]
    f_cpu = np.minimum((c.used_cpu_milli[nodes] + pod.cpu_milli) / np.maximum(a_cpu, 1), 1.0)
    f_mem = np.minimum((c.used_memory_bytes[nodes] + pod.memory_bytes) / np.maximum(a_mem, 1), 1.0)
    std = np.abs(f_cpu - f_mem) / 2
    if not (a_cpu.all() and a_mem.all()):
        std[(a_cpu == 0) | (a_mem == 0)] = 0.0  # one resource left: no spread
    return ((1.0 - std) * MAX_SCORE).astype(np.int64)  # Go's int64() truncates


def normalize_reverse(counts: np.ndarray) -> np.ndarray:
    """``DefaultNormalizeScore(MaxNodeScore, reverse=true)``: 100 - 100 * count // max(count)
    over the scored nodes; all 100 when no node has a count."""
    top = int(counts.max(initial=0))
    if top == 0:
        return np.full(len(counts), MAX_SCORE, np.int64)
    return MAX_SCORE - MAX_SCORE * counts // top


def broken_linear(shape: Sequence[tuple[int, int]], util: np.ndarray) -> np.ndarray:
    """``helper.BuildBrokenLinearFunction`` over utilisation percentages; ``shape`` points are
    (utilisation, score 0..10), scores scaled by 10 to 0..100, integer arithmetic."""
    scale = MAX_SCORE // MAX_CUSTOM_PRIORITY_SCORE
    pts = [(u, s * scale) for u, s in shape]
    out = np.full(util.shape, pts[-1][1], np.int64)
    done = np.zeros(util.shape, bool)
    for i, (u, s) in enumerate(pts):
        here = ~done & (util <= u)
        if i == 0:
            out[here] = s
        else:
            u0, s0 = pts[i - 1]
            # Go integer division truncates toward zero (a falling segment is negative).
            num = (s - s0) * (util[here] - u0)
            out[here] = s0 + np.trunc(num / (u - u0)).astype(np.int64)
        done |= here
    return out


def _parse_shape(shape: str | Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    if isinstance(shape, str):
        try:
            pts = tuple(
                (int(u), int(s)) for u, s in (p.split(":") for p in shape.split(",") if p.strip())
            )
        except ValueError:
            raise TracesimError(
                f"shape {shape!r}: write utilisation:score points, e.g. 0:0,100:10"
            ) from None
    else:
        pts = tuple((int(u), int(s)) for u, s in shape)
    if not pts or any(b[0] <= a[0] for a, b in itertools.pairwise(pts)):
        raise TracesimError("shape needs points with increasing utilisation, e.g. 0:0,100:10")
    if any(not 0 <= u <= 100 or not 0 <= s <= MAX_CUSTOM_PRIORITY_SCORE for u, s in pts):
        raise TracesimError("shape points need utilisation 0..100 and score 0..10")
    return pts


def node_taints(taints: Sequence[str] | None, unschedulable: bool, ready: bool) -> list[str]:
    """A node's effective taints: its own plus the ones the node lifecycle controller adds
    for spec.unschedulable and a not-Ready node."""
    out = list(taints or ())
    if unschedulable and UNSCHEDULABLE_TAINT not in out:
        out.append(UNSCHEDULABLE_TAINT)
    if not ready and NOT_READY_TAINT not in out:
        out.append(NOT_READY_TAINT)
    return out


def option_names() -> list[str]:
    """Names accepted by ``--set`` for this policy."""
    import inspect

    return [p for p in inspect.signature(KubeDefaultPolicy.__init__).parameters if p != "self"]


__all__ = [
    "KubeDefaultPolicy",
    "balanced_allocation",
    "broken_linear",
    "node_taints",
    "normalize_reverse",
    "option_names",
]
