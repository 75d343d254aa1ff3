"""Cluster state as numpy columns, indexed by node.

One :class:`ClusterState` holds everything a placement decision reads: per node allocatable and
used CPU (milli-CPU), memory (bytes) and pod slots, the GPU model as an integer code, and the
free milli-GPU of every GPU as a 2-D array (nodes x GPU slots). Policies are vectorised over
these columns; nothing on the hot path is a Python object per node. The integer resource
columns are views into one (nodes x 8) array, :attr:`ClusterState.resources`, so a policy that
looks at a few changed nodes gathers all their numbers with one fancy index.

Every change to a node bumps ``version[node]``. A policy (or the scheduling framework) may cache
any per-node result together with the version it was computed at and recompute only the nodes
whose version moved: a node's scores only change when that node changes. Each bump is also
appended to a change log, so a cache can ask which nodes changed since it last looked
(:meth:`ClusterState.changed_since`) without comparing every node's version.

The same class backs the fill experiment and the replay engine, so it also supports nodes
joining and leaving (``active`` mask; slots are never reused, so node indices stay stable) and
keeps room for label and taint codes (integer codes into :attr:`vocab`, ``-1`` = empty slot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

#: Marks a GPU slot that does not exist on a node (a node with 2 GPUs in an 8-slot array).
ABSENT = -1
#: Capacity of one GPU, milli-GPU.
GPU_MILLI = 1000
#: kube-scheduler scores a pod that requests no CPU / memory as if it asked for these
#: (``pkg/scheduler/util/pod_resources.go``: DefaultMilliCPURequest, DefaultMemoryRequest).
NONZERO_CPU_MILLI = 100
NONZERO_MEMORY_BYTES = 200 * 1024 * 1024
#: The integer node columns of :attr:`ClusterState.resources`, in order: allocatable, used and
#: non-zero requests (a pod asking no CPU / memory counts NONZERO_* there). assign/release and
#: kube-default's few-node path unpack rows in this order.
RESOURCE_COLUMNS = (
    "alloc_cpu_milli",
    "alloc_memory_bytes",
    "alloc_pods",
    "used_cpu_milli",
    "used_memory_bytes",
    "used_pods",
    "nonzero_cpu_milli",
    "nonzero_memory_bytes",
)
#: Length at which the change log of :class:`ClusterState` is dropped (bounds its memory).
CHANGE_LOG_MAX = 1 << 16
_NO_NODES = np.zeros(0, np.int64)


@dataclass(frozen=True, slots=True)
class PodRequest:
    """What one pod asks for, in the units of the cluster columns.

    ``gpu_milli`` is the share PER GPU (< 1000 only for a GPU-sharing pod with ``gpu_count`` 1);
    ``model_mask`` is a bit set over GPU model codes (bit ``c`` = model code ``c`` allowed;
    0 = any model). ``constraint`` indexes :attr:`ClusterState.constraints` (tolerations, node
    selector, required node affinity; 0 = none). ``key`` identifies the shape: two pods with
    the same key are interchangeable for filtering and scoring, so policies may cache per key.
    """

    cpu_milli: int
    memory_bytes: int
    gpu_count: int = 0
    gpu_milli: int = 0
    model_mask: int = 0
    constraint: int = 0

    @property
    def key(self) -> tuple[int, ...]:
        return (
            self.cpu_milli,
            self.memory_bytes,
            self.gpu_count,
            self.gpu_milli,
            self.model_mask,
            self.constraint,
        )

    @property
    def nonzero_cpu_milli(self) -> int:
        """CPU request as kube-scheduler's scoring counts it (100m when none), milli-CPU."""
        return self.cpu_milli or NONZERO_CPU_MILLI

    @property
    def nonzero_memory_bytes(self) -> int:
        """Memory request as kube-scheduler's scoring counts it (200 MiB when none), bytes."""
        return self.memory_bytes or NONZERO_MEMORY_BYTES

    @property
    def gpu_total_milli(self) -> int:
        """GPU requested in total, milli-GPU (count x per-GPU share)."""
        return self.gpu_count * self.gpu_milli

    @property
    def gpu_kind(self) -> int:
        """GPU-request kind: -1 no GPU, 0 a shared GPU, k >= 1 k whole GPUs."""
        if self.gpu_count == 0:
            return -1
        return 0 if self.gpu_milli < GPU_MILLI else self.gpu_count


@dataclass(frozen=True, slots=True)
class PodConstraints:
    """A pod's placement constraints as trace strings (docs/trace-format.md, "Conventions").

    ``tolerations``: ``key=value:Effect`` / ``key:Effect`` / ``*`` (effect optional);
    ``node_selector``: ``key=value`` labels the node must carry; ``node_affinity``: required
    terms (ORed), each a comma-separated list of requirements (ANDed).
    """

    tolerations: tuple[str, ...] = ()
    node_selector: tuple[str, ...] = ()
    node_affinity: tuple[str, ...] = ()


class Vocabulary:
    """Interns strings (GPU models, labels, taints) as small integer codes."""

    def __init__(self, values: Sequence[str] = ()) -> None:
        self.values: list[str] = []
        self._codes: dict[str, int] = {}
        for v in values:
            self.code(v)

    def code(self, value: str) -> int:
        """The code of ``value``, adding it if new."""
        c = self._codes.get(value)
        if c is None:
            c = self._codes[value] = len(self.values)
            self.values.append(value)
        return c

    def get(self, value: str) -> int | None:
        """The code of ``value`` or None when it was never seen."""
        return self._codes.get(value)

    def __len__(self) -> int:
        return len(self.values)


class ClusterState:
    """Node columns plus exact assign/release bookkeeping.

    Parameters
    ----------
    max_gpus: GPU slots per node (the widest node); fixed for the lifetime of the state.
    capacity: initial number of node slots (grows by doubling when nodes are added).
    max_labels, max_taints: slots per node for label / taint codes (room for kube-default).
    """

    # ``kind_pods[node, k]`` counts pods by GPU-request kind (see PodRequest.gpu_kind): column 0
    # GPU-sharing pods, column k pods with k whole GPUs; GPU-clustering policies read it.
    def __init__(
        self,
        max_gpus: int = 8,
        capacity: int = 64,
        *,
        max_labels: int = 0,
        max_taints: int = 0,
    ) -> None:
        self.max_gpus = int(max_gpus)
        self.n_nodes = 0
        self.names: list[str] = []
        self.models = Vocabulary()
        self.vocab = Vocabulary()  # labels and taints, as "key=value" / "key=value:Effect"
        #: Interned pod constraints; ``PodRequest.constraint`` indexes this list (0 = none).
        self.constraints: list[PodConstraints] = [PodConstraints()]
        self._index: dict[str, int] = {}
        cap = max(int(capacity), 1)
        i64 = np.int64
        # The RESOURCE_COLUMNS (allocatable, used and, as kube-scheduler's scoring counts
        # them, non-zero requests) side by side, one row per node; each is also an attribute
        # (a column view): one fancy index gathers all of them for a few nodes.
        self.resources = np.zeros((cap, len(RESOURCE_COLUMNS)), i64)
        self._view_resources()
        self.gpu_count = np.zeros(cap, i64)
        self.gpu_model = np.full(cap, -1, i64)  # -1 = no GPU model
        self.gpu_free_milli = np.full((cap, self.max_gpus), ABSENT, i64)
        self.gpu_free_total_milli = np.zeros(cap, i64)
        self.kind_pods = np.zeros((cap, self.max_gpus + 1), i64)
        self.label_codes = np.full((cap, max_labels), -1, np.int32)
        self.taint_codes = np.full((cap, max_taints), -1, np.int32)
        self.active = np.zeros(cap, bool)
        self.version = np.zeros(cap, i64)
        #: Change log: the node of every version bump since ``changes_base`` (an absolute
        #: position), so a cache can find the nodes changed since its last look in
        #: O(changes) instead of comparing all versions (:meth:`changed_since`).
        self.changes: list[int] = []
        self.changes_base = 0
        self._active_nodes: np.ndarray | None = None  # cache of active_nodes()

    # -- building ----------------------------------------------------------------------------
    _COLUMNS = (
        "resources",
        "gpu_count",
        "gpu_model",
        "gpu_free_milli",
        "gpu_free_total_milli",
        "kind_pods",
        "label_codes",
        "taint_codes",
        "active",
        "version",
    )

    _FILL: ClassVar[dict[str, int]] = {
        "gpu_free_milli": ABSENT,
        "gpu_model": -1,
        "label_codes": -1,
        "taint_codes": -1,
    }

    def _view_resources(self) -> None:
        for j, name in enumerate(RESOURCE_COLUMNS):
            setattr(self, name, self.resources[:, j])

    def _grow(self, need: int) -> None:
        cap = len(self.active)
        if need <= cap:
            return
        new_cap = max(need, 2 * cap)
        for name in self._COLUMNS:
            old = getattr(self, name)
            fill = self._FILL.get(name, 0)
            new = np.full((new_cap, *old.shape[1:]), fill, old.dtype)
            new[:cap] = old
            setattr(self, name, new)
        self._view_resources()

    def add_node(
        self,
        name: str,
        cpu_milli: int,
        memory_bytes: int,
        *,
        pods: int = 110,
        gpu_count: int = 0,
        gpu_model: str | None = None,
        labels: Sequence[str] = (),
        taints: Sequence[str] = (),
    ) -> int:
        """Add an empty node; returns its index. Names must be unique among all nodes ever added."""
        if name in self._index:
            raise ValueError(f"node {name!r} already exists")
        if not 0 <= gpu_count <= self.max_gpus:
            raise ValueError(
                f"node {name!r}: {gpu_count} GPUs, this state holds 0..{self.max_gpus}"
            )
        if len(labels) > self.label_codes.shape[1] or len(taints) > self.taint_codes.shape[1]:
            raise ValueError(f"node {name!r}: more labels/taints than the state has slots for")
        i = self.n_nodes
        self._grow(i + 1)
        self.n_nodes += 1
        self.names.append(name)
        self._index[name] = i
        self.alloc_cpu_milli[i] = cpu_milli
        self.alloc_memory_bytes[i] = memory_bytes
        self.alloc_pods[i] = pods
        self.gpu_count[i] = gpu_count
        self.gpu_model[i] = self.models.code(gpu_model) if gpu_model else -1
        self.gpu_free_milli[i, :gpu_count] = GPU_MILLI
        self.gpu_free_total_milli[i] = gpu_count * GPU_MILLI
        for j, label in enumerate(labels):
            self.label_codes[i, j] = self.vocab.code(label)
        for j, taint in enumerate(taints):
            self.taint_codes[i, j] = self.vocab.code(taint)
        self.active[i] = True
        self._active_nodes = None
        self._bump(i)
        return i

    def update_node(
        self,
        node: int,
        *,
        cpu_milli: int | None = None,
        memory_bytes: int | None = None,
        pods: int | None = None,
        labels: Sequence[str] | None = None,
        taints: Sequence[str] | None = None,
        active: bool | None = None,
    ) -> None:
        """Change a node's allocatable, labels, taints or active flag (None = keep).

        Pods already accounted stay accounted (the API server does not evict on a shrink);
        the GPU layout is fixed for the life of the slot.
        """
        if cpu_milli is not None:
            self.alloc_cpu_milli[node] = cpu_milli
        if memory_bytes is not None:
            self.alloc_memory_bytes[node] = memory_bytes
        if pods is not None:
            self.alloc_pods[node] = pods
        for values, codes in ((labels, self.label_codes), (taints, self.taint_codes)):
            if values is None:
                continue
            if len(values) > codes.shape[1]:
                raise ValueError(f"node {self.names[node]}: more labels/taints than slots")
            codes[node] = -1
            for j, value in enumerate(values):
                codes[node, j] = self.vocab.code(value)
        if active is not None:
            self.active[node] = active
            self._active_nodes = None
        self._bump(node)

    def constraint_code(self, constraints: PodConstraints) -> int:
        """The index of ``constraints`` in :attr:`constraints`, adding it if new."""
        index = getattr(self, "_constraint_index", None)
        if index is None:
            index = self._constraint_index = {c: i for i, c in enumerate(self.constraints)}
        code = index.get(constraints)
        if code is None:
            code = index[constraints] = len(self.constraints)
            self.constraints.append(constraints)
        return code

    def remove_node(self, node: int) -> None:
        """Deactivate a node (its slot and index stay; filters must honour ``active``)."""
        self.active[node] = False
        self._active_nodes = None
        self._bump(node)

    def _bump(self, node: int) -> None:
        """``node`` changed: a new version, and an entry in the change log."""
        self.version[node] += 1
        changes = self.changes
        changes.append(node)
        if len(changes) >= CHANGE_LOG_MAX:
            # Drop the log: caches older than this position compare all versions once.
            self.changes_base += len(changes)
            self.changes = []

    @property
    def change_position(self) -> int:
        """Absolute position of the next change (pass it to :meth:`changed_since` later)."""
        return self.changes_base + len(self.changes)

    def changed_since(
        self, position: int, limit: int, *, ordered: bool = True
    ) -> np.ndarray | None:
        """Sorted distinct nodes whose version moved since ``position`` (from
        :attr:`change_position`), or None when the log no longer reaches back there or more
        than ``limit`` changes happened (the caller then compares every version).
        ``ordered=False``: the same nodes in no particular (but deterministic) order, for a
        caller whose use does not depend on it (saves the sort)."""
        changes = self.changes
        start = position - self.changes_base
        if start < 0 or len(changes) - start > limit:
            return None
        if start == len(changes):
            return _NO_NODES
        # A few nodes each time: a Python set is cheaper than np.unique here.
        if ordered:
            return np.array(sorted(set(changes[start:])), np.int64)
        return np.fromiter(set(changes[start:]), np.int64)

    def active_nodes(self) -> np.ndarray:
        """Indices of the active nodes, ascending (cached until a node is added, changed or
        removed: the caller must not modify the array)."""
        nodes = self._active_nodes
        if nodes is None:
            nodes = self._active_nodes = np.flatnonzero(self.active[: self.n_nodes])
            nodes.flags.writeable = False
        return nodes

    @property
    def n_active(self) -> int:
        """Number of active nodes (cached like :meth:`active_nodes`)."""
        return len(self.active_nodes())

    def index_of(self, name: str) -> int:
        """Index of the node called ``name``; KeyError if unknown."""
        return self._index[name]

    @classmethod
    def from_arrays(
        cls,
        names: Sequence[str],
        cpu_milli: np.ndarray,
        memory_bytes: np.ndarray,
        gpu_count: np.ndarray,
        gpu_model: Sequence[str | None],
        *,
        pods: int | np.ndarray = 110,
        max_gpus: int | None = None,
        models: Sequence[str] = (),
    ) -> ClusterState:
        """A state with one empty node per row (vectorised ``add_node``).

        ``models`` pre-assigns GPU model codes in that order (stable codes across node orders).
        """
        n = len(names)
        gpu_count = np.asarray(gpu_count, np.int64)
        width = int(gpu_count.max(initial=0)) if max_gpus is None else max_gpus
        state = cls(max_gpus=max(width, 1), capacity=n)
        state.models = Vocabulary(models)
        state.n_nodes = n
        state.names = list(names)
        state._index = {name: i for i, name in enumerate(state.names)}
        if len(state._index) != n:
            raise ValueError("node names must be unique")
        state.alloc_cpu_milli[:n] = cpu_milli
        state.alloc_memory_bytes[:n] = memory_bytes
        state.alloc_pods[:n] = pods
        state.gpu_count[:n] = gpu_count
        state.gpu_model[:n] = [state.models.code(m) if m else -1 for m in gpu_model]
        slots = np.arange(state.max_gpus)
        state.gpu_free_milli[:n] = np.where(slots[None, :] < gpu_count[:, None], GPU_MILLI, ABSENT)
        state.gpu_free_total_milli[:n] = gpu_count * GPU_MILLI
        state.active[:n] = True
        state.version[:n] = 1
        state._active_nodes = None
        return state

    # -- views -------------------------------------------------------------------------------
    def free_cpu_milli(self, nodes: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Unrequested CPU of ``nodes``, milli-CPU."""
        return self.alloc_cpu_milli[nodes] - self.used_cpu_milli[nodes]

    def free_memory_bytes(self, nodes: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Unrequested memory of ``nodes``, bytes."""
        return self.alloc_memory_bytes[nodes] - self.used_memory_bytes[nodes]

    @property
    def gpu_capacity_milli(self) -> int:
        """GPU capacity of the active nodes, milli-GPU."""
        n = self.n_nodes
        return int(self.gpu_count[:n][self.active[:n]].sum()) * GPU_MILLI

    @property
    def gpu_used_milli(self) -> int:
        """GPU allocated on the active nodes, milli-GPU."""
        n = self.n_nodes
        act = self.active[:n]
        return int((self.gpu_count[:n][act] * GPU_MILLI - self.gpu_free_total_milli[:n][act]).sum())

    # -- assign / release --------------------------------------------------------------------
    def assign(self, node: int, pod: PodRequest, gpus: Sequence[int] | np.ndarray = ()) -> None:
        """Account ``pod`` on ``node`` using GPU slots ``gpus`` (``pod.gpu_milli`` from each).

        Raises ValueError (and changes nothing) if the node or a GPU would be over-committed:
        callers filter first, so this is a guard against bugs, not a scheduling decision.
        """
        gpu_count = pod.gpu_count
        if gpu_count or len(gpus):
            gpus = np.asarray(gpus, np.int64)
            if len(gpus) != gpu_count or len(set(gpus.tolist())) != len(gpus):
                raise ValueError(f"pod needs {gpu_count} distinct GPUs, got {gpus.tolist()}")
        if not self.active[node]:
            raise ValueError(f"node {self.names[node]} is not active")
        # One row read and five element writes (Python ints): cheaper than five += on columns.
        res = self.resources[node]
        a_cpu, a_mem, a_pods, u_cpu, u_mem, u_pods, n_cpu, n_mem = res.tolist()
        cpu, memory = pod.cpu_milli, pod.memory_bytes
        if u_cpu + cpu > a_cpu or u_mem + memory > a_mem or u_pods >= a_pods:
            raise ValueError(f"node {self.names[node]} cannot hold the pod (cpu/memory/pods)")
        if gpu_count:
            row = self.gpu_free_milli[node]
            if (row[gpus] < pod.gpu_milli).any():
                raise ValueError(
                    f"node {self.names[node]}: GPUs {gpus.tolist()} lack free milli-GPU"
                )
        res[3] = u_cpu + cpu
        res[4] = u_mem + memory
        res[5] = u_pods + 1
        # PodRequest.nonzero_cpu_milli / nonzero_memory_bytes, without the property calls.
        res[6] = n_cpu + (cpu or NONZERO_CPU_MILLI)
        res[7] = n_mem + (memory or NONZERO_MEMORY_BYTES)
        if gpu_count:
            row[gpus] -= pod.gpu_milli
            self.gpu_free_total_milli[node] -= pod.gpu_total_milli
            self.kind_pods[node, pod.gpu_kind] += 1
        self._bump(node)

    def release(self, node: int, pod: PodRequest, gpus: Sequence[int] | np.ndarray = ()) -> None:
        """Undo :meth:`assign` of the same pod and GPUs exactly."""
        gpu_count = pod.gpu_count
        if gpu_count or len(gpus):
            row = self.gpu_free_milli[node]
            gpus = np.asarray(gpus, np.int64)
            if len(gpus) != gpu_count or (
                len(gpus) and (row[gpus] + pod.gpu_milli > GPU_MILLI).any()
            ):
                raise ValueError(f"node {self.names[node]}: releasing GPUs that were not assigned")
        res = self.resources[node]
        _, _, _, u_cpu, u_mem, u_pods, n_cpu, n_mem = res.tolist()
        cpu, memory = pod.cpu_milli, pod.memory_bytes
        if u_pods < 1 or u_cpu < cpu:
            raise ValueError(f"node {self.names[node]}: releasing a pod that was not assigned")
        res[3] = u_cpu - cpu
        res[4] = u_mem - memory
        res[5] = u_pods - 1
        res[6] = n_cpu - (cpu or NONZERO_CPU_MILLI)
        res[7] = n_mem - (memory or NONZERO_MEMORY_BYTES)
        if gpu_count:
            row[gpus] += pod.gpu_milli
            self.gpu_free_total_milli[node] += pod.gpu_total_milli
            self.kind_pods[node, pod.gpu_kind] -= 1
        self._bump(node)

    def copy(self) -> ClusterState:
        """An independent deep copy (same node indices)."""
        new = object.__new__(ClusterState)
        new.__dict__.update(self.__dict__)
        for name in self._COLUMNS:
            setattr(new, name, getattr(self, name).copy())
        new._view_resources()
        new.names = list(self.names)
        new.changes = list(self.changes)
        new._index = dict(self._index)
        new.models = Vocabulary(self.models.values)
        new.vocab = Vocabulary(self.vocab.values)
        new.constraints = list(self.constraints)
        new.__dict__.pop("_constraint_index", None)
        return new


@dataclass(frozen=True)
class PodTable:
    """A list of pods as numpy columns (same units as :class:`PodRequest`).

    ``model_mask`` uses the GPU model codes of the cluster the table was built for.
    """

    names: np.ndarray
    cpu_milli: np.ndarray
    memory_bytes: np.ndarray
    gpu_count: np.ndarray
    gpu_milli: np.ndarray
    model_mask: np.ndarray

    def __len__(self) -> int:
        return len(self.cpu_milli)

    def request(self, i: int) -> PodRequest:
        """Row ``i`` as a :class:`PodRequest`."""
        return PodRequest(
            int(self.cpu_milli[i]),
            int(self.memory_bytes[i]),
            int(self.gpu_count[i]),
            int(self.gpu_milli[i]),
            int(self.model_mask[i]),
        )

    def take(self, index: np.ndarray) -> PodTable:
        """The rows at ``index``, in that order."""
        return PodTable(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    @property
    def gpu_total_milli(self) -> np.ndarray:
        """GPU requested per pod in total, milli-GPU."""
        return self.gpu_count * self.gpu_milli
