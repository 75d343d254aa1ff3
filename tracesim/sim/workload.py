"""A trace as typed numpy arrays for the replay engine.

:func:`load_workload` reads the Pod and Node events of a trace (only the columns the engine
needs, in one pass through ``Trace.to_arrow_by_kind``; never per-row JSON; :func:`load_replay`
reads the other writes of :func:`load_trace_writes` in the same pass) and turns them into:

- **nodes**: one slot per node name, and node operations (add / update / remove) with the
  node's allocatable, labels and effective taints (its own plus the ones the node lifecycle
  controller adds for cordoned and not-Ready nodes). NodeStatus heartbeats that change nothing
  the scheduler reads are dropped here, so they do not flush the scheduling queue.
- **pods**: one row per pod (by uid) with its requests (GPU share per device = total / count),
  allowed GPU models, priority, constraints (interned :class:`PodConstraints`), its recorded
  node when it was already bound when the trace (or the window) starts, and pod operations:
  create, terminal (Succeeded/Failed: resources are released, kube-scheduler ignores terminal
  pods) and delete.
- **ops**: node and pod operations merged in trace order (time, then ``seq``).

Inconsistent traces are counted in :attr:`Workload.inconsistencies`, never fatal: a delete (or
other event) before any create, a duplicate create of a uid, events after a delete.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import TracesimError
from ..models.schedulers.kube_default import node_taints
from ..trace.reader import Trace, open_trace
from ..trace.schema import SCHEMA
from .cluster import GPU_MILLI, PodConstraints

# Operation codes of :attr:`Workload.op`.
NODE_ADD, NODE_UPDATE, NODE_REMOVE, POD_CREATE, POD_TERMINAL, POD_DELETE = range(6)
OP_NAMES = ("node_add", "node_update", "node_remove", "pod_create", "pod_terminal", "pod_delete")
TERMINAL_PHASES = ("Succeeded", "Failed")

POD_COLUMNS = [
    "ts",
    "seq",
    "event_type",
    "namespace",
    "name",
    "uid",
    "node_name",
    "phase",
    "scheduler_name",
    "priority",
    "req_cpu_milli",
    "req_memory_bytes",
    "req_gpu_count",
    "req_gpu_milli",
    "gpu_model",
    "node_selector",
    "node_affinity",
    "tolerations",
    "size_bytes",
]
NODE_COLUMNS = [
    "ts",
    "seq",
    "event_type",
    "name",
    "alloc_cpu_milli",
    "alloc_memory_bytes",
    "alloc_pods",
    "alloc_gpu_count",
    "gpu_model",
    "unschedulable",
    "ready",
    "labels",
    "taints",
]
_BIG = np.iinfo(np.int64).max
#: The columns of a pod's creation row that become its per-pod values: all but the event's
#: own (time, order, type) and those the pod operations read from every row (uid, node, phase).
_PER_POD = frozenset(POD_COLUMNS) - {"ts", "seq", "event_type", "uid", "node_name", "phase"}


@dataclass
class NodeOps:
    """Node operations that change what the scheduler sees (one row per kept node event)."""

    node: np.ndarray  # node slot (index into Workload.node_names)
    cpu_milli: np.ndarray
    memory_bytes: np.ndarray
    pods: np.ndarray
    gpu_count: np.ndarray
    gpu_model: list[str | None]
    labels: list[list[str]]
    taints: list[list[str]]  # effective taints


@dataclass
class Workload:
    """Typed arrays of one trace (or window of it) for the engine. Times in simulated seconds
    from the start of the replay (trace time minus the window start, divided by dilation)."""

    start: str  # ISO time of simulated second 0
    duration_s: float  # simulated end
    node_names: list[str]
    node_ops: NodeOps
    # per pod
    uid: np.ndarray
    name: np.ndarray
    namespace: np.ndarray
    cpu_milli: np.ndarray
    memory_bytes: np.ndarray
    gpu_count: np.ndarray
    gpu_milli: np.ndarray  # per GPU
    gpu_models: np.ndarray  # object: allowed models "A|B" or None
    priority: np.ndarray
    constraint: np.ndarray  # index into constraints
    scheduler_name: np.ndarray
    initial_node: np.ndarray  # object: node name bound at start (kept), else None
    initial_terminal: np.ndarray  # bool: already Succeeded/Failed at start
    constraints: list[PodConstraints]
    size_bytes: np.ndarray  # JSON size of the pod object at its creation (trace size_bytes)
    preexisting: np.ndarray  # bool: existed when the replay starts (LISTED or before window)
    # merged operations, in order
    op_t_s: np.ndarray
    op: np.ndarray
    op_index: np.ndarray  # row of node_ops or pod index
    inconsistencies: dict[str, int] = field(default_factory=dict)
    max_gpus: int = 1
    max_labels: int = 0
    max_taints: int = 0

    @property
    def n_pods(self) -> int:
        return len(self.uid)


def _ints(table: pa.Table, name: str, default: int = 0) -> np.ndarray:
    col = table.column(name)
    return pc.fill_null(col, default).to_numpy().astype(np.int64)


def _objs(table: pa.Table, name: str) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False)


def _joined(col: pa.ChunkedArray) -> pa.ChunkedArray:
    return pc.binary_join(col, ",")


def parse_window(text: str | None) -> tuple[float, float | None]:
    """``"START:END"`` seconds into the trace (either side may be empty) -> (start, end)."""
    if not text:
        return 0.0, None
    a, sep, b = text.partition(":")
    try:
        start = float(a) if a.strip() else 0.0
        end = float(b) if sep and b.strip() else None
    except ValueError:
        raise TracesimError(
            f"--window {text!r}: write START:END in seconds into the trace, e.g. 600:1800"
        ) from None
    if start < 0 or (end is not None and end <= start):
        raise TracesimError(f"--window {text!r}: need 0 <= START < END")
    return start, end


def load_workload(
    trace: Trace | str,
    *,
    window: tuple[float, float | None] = (0.0, None),
    dilation: float = 1.0,
) -> Workload:
    """Read ``trace`` into a :class:`Workload`.

    ``window`` = (start, end) seconds into the trace: the state at ``start`` (nodes, pods
    alive then, bound ones on their recorded node) is the initial state and events in
    [start, end) are replayed. ``dilation`` divides replayed times (2 = events arrive twice
    as fast).
    """
    return load_replay(trace, window=window, dilation=dilation)[0]


def load_replay(
    trace: Trace | str,
    *,
    window: tuple[float, float | None] = (0.0, None),
    dilation: float = 1.0,
    heartbeats_modelled: bool | None = None,
) -> tuple[Workload, TraceWrites | None]:
    """:func:`load_workload` and, unless ``heartbeats_modelled`` is None,
    :func:`load_trace_writes` of ``trace``, from one pass over it: the columns the pods,
    nodes and other writes share (time, seq, kind, names, uids, sizes) are decoded once.
    Returns (workload, writes or None); each equals what its own function returns."""
    if not dilation > 0:
        raise TracesimError("--dilation must be positive (2 = events twice as fast)")
    tr = open_trace(trace) if isinstance(trace, str) else trace
    wanted: dict[str | tuple[str, ...], list[str]] = {"Pod": POD_COLUMNS, "Node": NODE_COLUMNS}
    write_kinds = None if heartbeats_modelled is None else _write_kinds(tr, heartbeats_modelled)
    if write_kinds:
        wanted[tuple(write_kinds)] = _write_columns()
    tables = tr.to_arrow_by_kind(wanted)
    workload = _workload(tr, tables.pop("Pod"), tables.pop("Node"), window, dilation)
    writes = None
    if write_kinds is not None:
        writes = _writes(
            tables.pop(tuple(write_kinds), None),
            start=workload.start,
            duration_s=workload.duration_s,
            window=window,
            dilation=dilation,
        )
    return workload, writes


def _workload(
    tr: Trace,
    pods: pa.Table,
    nodes: pa.Table,
    window: tuple[float, float | None],
    dilation: float,
) -> Workload:
    """The :class:`Workload` of the trace's Pod and Node rows (``POD_COLUMNS``,
    ``NODE_COLUMNS``, in trace order)."""
    first_us = []
    for t in (pods, nodes):
        if t.num_rows:
            first_us.append(int(pc.min(t.column("ts").cast(pa.int64())).as_py()))
    span = tr.manifest.get("time_span") or {}
    if span.get("start"):
        import pandas as pd

        t0_us = int(pd.Timestamp(span["start"]).value // 1000)
        if first_us:
            t0_us = min(t0_us, *first_us)
    elif first_us:
        t0_us = min(first_us)
    else:
        raise TracesimError(f"{tr.path}: the trace has no Pod or Node events to replay")
    w0, w1 = window
    w0_us = t0_us + round(w0 * 1e6)
    issues: dict[str, int] = {}

    def t_of(table: pa.Table) -> np.ndarray:
        return (table.column("ts").cast(pa.int64()).to_numpy() - w0_us) / 1e6

    last_us = max(
        [int(pc.max(t.column("ts").cast(pa.int64())).as_py()) for t in (pods, nodes) if t.num_rows]
    )
    if span.get("duration_s"):
        last_us = max(last_us, t0_us + round(float(span["duration_s"]) * 1e6))
    end_s = (last_us - w0_us) / 1e6 if w1 is None else w1 - w0
    if end_s < 0 or (end_s == 0 and w1 is not None):
        raise TracesimError(f"--window starts at {w0:g} s but the trace ends before that")

    node_names, node_ops, n_t, n_op, n_seq, n_idx, sizes = _node_ops(nodes, t_of(nodes))
    pod_cols, p_t, p_op, p_seq, p_idx = _pod_ops(pods, t_of(pods), issues)

    t_all = np.concatenate([n_t, p_t])
    op_all = np.concatenate([n_op, p_op]).astype(np.int8)
    seq_all = np.concatenate([n_seq, p_seq])
    idx_all = np.concatenate([n_idx, p_idx]).astype(np.int64)
    # Before the window: nodes first (in order), then the pods alive at its start.
    rank = np.where(t_all <= 0, np.where(op_all <= NODE_REMOVE, 0, 1), 2)
    t_all = np.maximum(t_all, 0.0)
    # The trace's last event belongs to the replay; a window's end does not.
    keep = t_all < end_s if w1 is not None else t_all <= end_s
    t_all, op_all, seq_all, idx_all, rank = (
        a[keep] for a in (t_all, op_all, seq_all, idx_all, rank)
    )
    order = np.lexsort((seq_all, rank, t_all))
    t_all, op_all, idx_all = t_all[order] / dilation, op_all[order], idx_all[order]
    max_gpus, max_labels, max_taints = sizes
    return Workload(
        start=_iso(w0_us),
        duration_s=end_s / dilation,
        node_names=node_names,
        node_ops=node_ops,
        **pod_cols,
        op_t_s=t_all,
        op=op_all,
        op_index=idx_all,
        inconsistencies=issues,
        max_gpus=max(max_gpus, 1),
        max_labels=max_labels,
        max_taints=max_taints,
    )


def _iso(us: int) -> str:
    import pandas as pd

    return pd.Timestamp(us * 1000, tz="UTC").isoformat()


def _node_ops(
    nodes: pa.Table, t_s: np.ndarray
) -> tuple[list[str], NodeOps, np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Node operations; heartbeats that change nothing the scheduler reads are dropped."""
    n = nodes.num_rows
    etype = _objs(nodes, "event_type")
    names = _objs(nodes, "name")
    codes, uniques = _factorize(names)
    sig = pc.binary_join_element_wise(
        *(
            pc.cast(nodes.column(c), pa.string())
            for c in (
                "alloc_cpu_milli",
                "alloc_memory_bytes",
                "alloc_pods",
                "alloc_gpu_count",
                "gpu_model",
                "unschedulable",
                "ready",
            )
        ),
        _joined(nodes.column("labels")),
        _joined(nodes.column("taints")),
        "|",
        null_handling="replace",
        null_replacement="~",
    )
    sig = np.asarray(sig.to_numpy(zero_copy_only=False), dtype=object)
    order = np.argsort(codes, kind="stable")
    same_node = np.zeros(n, bool)
    same_sig = np.zeros(n, bool)
    if n > 1:
        same_node[order[1:]] = codes[order[1:]] == codes[order[:-1]]
        same_sig[order[1:]] = sig[order[1:]] == sig[order[:-1]]
    keep = ~(same_node & same_sig & (etype == "MODIFIED"))
    rows = np.flatnonzero(keep)
    sub = nodes.take(pa.array(rows))
    et = etype[rows]
    op = np.where(et == "DELETED", NODE_REMOVE, np.where(et == "MODIFIED", NODE_UPDATE, NODE_ADD))
    labels = sub.column("labels").to_pylist()
    raw_taints = sub.column("taints").to_pylist()
    unsched = pc.fill_null(sub.column("unschedulable"), False).to_numpy(zero_copy_only=False)
    ready = pc.fill_null(sub.column("ready"), True).to_numpy(zero_copy_only=False)
    taints = [
        node_taints(t, bool(u), bool(r)) for t, u, r in zip(raw_taints, unsched, ready, strict=True)
    ]
    labels = [list(x or ()) for x in labels]
    ops = NodeOps(
        node=codes[rows],
        cpu_milli=_ints(sub, "alloc_cpu_milli"),
        memory_bytes=_ints(sub, "alloc_memory_bytes"),
        pods=_ints(sub, "alloc_pods", 110),
        gpu_count=_ints(sub, "alloc_gpu_count"),
        gpu_model=list(_objs(sub, "gpu_model")),
        labels=labels,
        taints=taints,
    )
    sizes = (
        int(ops.gpu_count.max(initial=0)),
        max((len(x) for x in labels), default=0),
        max((len(x) for x in taints), default=0),
    )
    seq = _ints(sub, "seq")
    return (
        list(uniques),
        ops,
        t_s[rows],
        op,
        seq,
        np.arange(len(rows)),
        sizes,
    )


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes in order of first appearance, and the unique values."""
    import pandas as pd

    codes, uniques = pd.factorize(pd.Series(values, dtype=object), sort=False)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _pod_keys(pods: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the code of its pod (the uid, or ``namespace/name`` without one; codes in
    order of first appearance) and the keys of the codes, computed in Arrow."""
    if pods.num_rows == 0:
        return np.zeros(0, np.int64), np.zeros(0, object)
    uid = pods.column("uid")
    if uid.null_count:
        none = pa.scalar("None", pa.string())  # how a missing part reads in f"{ns}/{name}"
        ns_name = pc.binary_join_element_wise(
            pc.fill_null(pods.column("namespace"), none),
            pc.fill_null(pods.column("name"), none),
            "/",
        )
        uid = pc.coalesce(uid, ns_name)
    key = uid.combine_chunks()
    enc = pc.dictionary_encode(key)
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, np.asarray(enc.dictionary.to_numpy(zero_copy_only=False), dtype=object)


def _pod_ops(
    pods: pa.Table, t_s: np.ndarray, issues: dict[str, int]
) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-pod columns and pod operations (create, terminal, delete)."""
    n = pods.num_rows
    # Per-row strings stay in Arrow (no Python object per event row: a million-row trace
    # would leave hundreds of MB of fragmented heap behind); only per-pod values become
    # Python objects, below.
    codes, uniques = _pod_keys(pods)

    def is_(column: str, values: tuple[str, ...]) -> np.ndarray:
        hit = pc.is_in(pods.column(column), value_set=pa.array(values, pa.string()))
        return pc.fill_null(hit, False).to_numpy(zero_copy_only=False).astype(bool)

    seq = _ints(pods, "seq")
    row = np.arange(n, dtype=np.int64)
    # The event types as codes into this tuple (-1: another or null), in one lookup pass.
    etype = pc.index_in(
        pods.column("event_type"),
        value_set=pa.array(("LISTED", "ADDED", "DELETED", "MODIFIED"), pa.string()),
    )
    etype = pc.fill_null(etype, -1).to_numpy(zero_copy_only=False)
    is_listed = etype == 0
    is_create = is_listed | (etype == 1)
    is_delete = etype == 2
    is_modified = etype == 3
    del etype
    is_terminal = is_("phase", TERMINAL_PHASES)
    before = t_s < 0  # before the window start

    order = np.argsort(codes, kind="stable")  # rows grouped by pod, time order inside
    g = codes[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if n else np.zeros(0, np.int64)

    # ``row[order]`` is ``order`` itself (rows are 0..n-1).
    def gmin(mask: np.ndarray) -> np.ndarray:
        v = np.where(mask[order], order, _BIG)
        return np.minimum.reduceat(v, starts) if n else v

    def gmax(mask: np.ndarray) -> np.ndarray:
        v = np.where(mask[order], order, -1)
        return np.maximum.reduceat(v, starts) if n else v

    def gcount(mask: np.ndarray) -> np.ndarray:
        return np.add.reduceat(mask[order].astype(np.int64), starts) if n else mask

    first_create = gmin(is_create)
    n_create = gcount(is_create)
    first_delete = gmin(is_delete)
    # A pod first seen as MODIFIED (the trace started or resumed mid-life) is created then.
    no_create = first_create == _BIG
    first_modified = gmin(is_modified)
    create = np.where(no_create, first_modified, first_create)
    _count(issues, "delete_before_create", int((first_delete < create).sum()))
    _count(issues, "modified_before_create", int((no_create & (first_modified < _BIG)).sum()))
    _count(issues, "duplicate_uid", int(np.maximum(n_create - 1, 0).sum()))
    valid = create < _BIG
    # The delete that counts is the first one after the creation.
    # Groups are the pod codes 0..G-1 in order, so per-pod arrays index by ``codes``.
    create_of_row = create[codes]
    delete = gmin(is_delete & (row > create_of_row))
    after_delete = gcount(row > np.where(delete < _BIG, delete, _BIG)[codes])
    _count(issues, "event_after_delete", int(after_delete.sum()))
    terminal = gmin(is_terminal & (row >= create_of_row))
    # Pods deleted before the window starts are gone; those alive then start in the state
    # of their last event before the window.
    t_row = np.append(t_s, np.inf)
    create_t = t_row[np.where(valid, create, n)]
    delete_t = t_row[np.where(delete < _BIG, delete, n)]
    term_t = t_row[np.where(terminal < _BIG, terminal, n)]
    valid &= ~(delete_t < 0)
    last_before = gmax(before & (row >= create_of_row))
    state_row = np.where(last_before >= 0, last_before, create)
    state_at = np.clip(state_row, 0, max(n - 1, 0))
    initially = (last_before >= 0) | (is_listed[state_at] if n else is_listed)
    node_at = (
        pods.column("node_name").take(pa.array(state_at)).to_numpy(zero_copy_only=False)
        if n
        else np.zeros(0, object)
    )
    init_node = np.where(valid & initially, node_at, None).astype(object)
    init_terminal = valid & initially & (term_t < 0) & (init_node != None)  # noqa: E711

    pod_rows = np.flatnonzero(valid)
    src = create[pod_rows]  # the row the pod's requests come from
    # Only the per-pod columns, taken once per pod.
    sub = pods.select([c for c in POD_COLUMNS if c in _PER_POD]).take(pa.array(src))
    gpu_count = _ints(sub, "req_gpu_count")
    gpu_total = _ints(sub, "req_gpu_milli")
    per_gpu = np.where(
        gpu_count > 0,
        np.where(gpu_total > 0, gpu_total // np.maximum(gpu_count, 1), GPU_MILLI),
        0,
    )
    per_gpu = np.minimum(per_gpu, GPU_MILLI)
    constraints = [PodConstraints()]
    index = {constraints[0]: 0}
    constraint = np.zeros(len(pod_rows), np.int32)
    # Only the pods with a non-empty list become Python objects (most have none).
    lists = ("tolerations", "node_selector", "node_affinity")
    has = np.zeros(len(pod_rows), bool)
    for c in lists:
        has |= pc.fill_null(pc.list_value_length(sub.column(c)), 0).to_numpy() > 0
    with_lists = np.flatnonzero(has)
    tol, sel, aff = (sub.column(c).take(pa.array(with_lists)).to_pylist() for c in lists)
    for i, a, b, c in zip(with_lists.tolist(), tol, sel, aff, strict=True):
        pc_ = PodConstraints(tuple(a or ()), tuple(b or ()), tuple(c or ()))
        code = index.get(pc_)
        if code is None:
            code = index[pc_] = len(constraints)
            constraints.append(pc_)
        constraint[i] = code
    cols: dict[str, Any] = {
        "uid": np.asarray(uniques, dtype=object)[pod_rows],
        "name": _objs(sub, "name"),
        "namespace": _objs(sub, "namespace"),
        "cpu_milli": _ints(sub, "req_cpu_milli"),
        "memory_bytes": _ints(sub, "req_memory_bytes"),
        "gpu_count": gpu_count,
        "gpu_milli": per_gpu,
        "gpu_models": _objs(sub, "gpu_model"),
        "priority": _ints(sub, "priority"),
        "constraint": constraint,
        "scheduler_name": _objs(sub, "scheduler_name"),
        "initial_node": init_node[pod_rows],
        "initial_terminal": init_terminal[pod_rows],
        "constraints": constraints,
        "size_bytes": _ints(sub, "size_bytes"),
        "preexisting": (initially | (create_t < 0))[pod_rows],
    }
    # Operations: create (at the window start for pods alive then), terminal, delete.
    m = len(pod_rows)
    pidx = np.arange(m, dtype=np.int64)
    c_t = np.where(create_t[pod_rows] < 0, -1e-9, create_t[pod_rows])
    t_parts = [c_t]
    op_parts = [np.full(m, POD_CREATE)]
    seq_parts = [seq[src]]
    idx_parts = [pidx]
    term_rows = terminal[pod_rows]
    has_term = (term_rows < _BIG) & ~init_terminal[pod_rows]
    has_term &= term_t[pod_rows] >= 0
    t_parts.append(term_t[pod_rows][has_term])
    op_parts.append(np.full(int(has_term.sum()), POD_TERMINAL))
    seq_parts.append(seq[term_rows[has_term]])
    idx_parts.append(pidx[has_term])
    del_rows = delete[pod_rows]
    has_del = del_rows < _BIG
    t_parts.append(delete_t[pod_rows][has_del])
    op_parts.append(np.full(int(has_del.sum()), POD_DELETE))
    seq_parts.append(seq[del_rows[has_del]])
    idx_parts.append(pidx[has_del])
    return (
        cols,
        np.concatenate(t_parts),
        np.concatenate(op_parts),
        np.concatenate(seq_parts),
        np.concatenate(idx_parts),
    )


def _count(issues: dict[str, int], name: str, count: int) -> None:
    if count:
        issues[name] = issues.get(name, 0) + count


#: Trace kinds whose rows the control-plane replay models itself (never replayed as writes).
MODELLED_KINDS = ("Pod",)
#: Kinds the kubelet model writes when it generates heartbeats.
HEARTBEAT_KINDS = ("Node", "Lease")
#: Events the scheduler model writes itself (``detail`` = the Event's reason in traces that
#: carry it, e.g. synthetic ones): their rows are not replayed again.
SCHEDULER_EVENT_REASONS = ("Scheduled",)
_IRREGULAR = {"Endpoints": "endpoints"}


def resource_of(kind: str) -> str:
    """The API resource (lower-case plural) of a kind: Event -> events, Ingress -> ingresses."""
    if kind in _IRREGULAR:
        return _IRREGULAR[kind]
    low = kind.lower()
    if low.endswith("y") and not low.endswith(("ay", "ey", "oy", "uy")):
        return low[:-1] + "ies"
    if low.endswith(("s", "x", "ch", "sh")):
        return low + "es"
    return low + "s"


@dataclass
class TraceWrites:
    """The trace's other writes (not pods; nodes/leases only without modelled heartbeats), as
    arrays in time order. ``op``: 0 create, 1 update, 2 delete (etcd op codes); ``key``: an
    integer per object, unique within its kind; ``t_s`` replay time (<= 0: existed at start,
    preloaded into etcd)."""

    kinds: list[str]  # kind code -> kind name
    kind: np.ndarray  # int16 codes into ``kinds``
    t_s: np.ndarray
    op: np.ndarray  # int8
    key: np.ndarray  # int64
    size_bytes: np.ndarray  # float64, JSON bytes
    namespaced: np.ndarray  # bool
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t_s)


WRITE_COLUMNS = ["ts", "seq", "kind", "event_type", "namespace", "name", "uid", "size_bytes"]


def load_trace_writes(
    trace: Trace | str,
    *,
    start: str,
    duration_s: float,
    window: tuple[float, float | None] = (0.0, None),
    dilation: float = 1.0,
    heartbeats_modelled: bool = True,
) -> TraceWrites:
    """Every write of ``trace`` the control-plane replay does not model itself.

    ``start`` is :attr:`Workload.start` (ISO time of replay second 0). An object's first row
    creates it (a first ``MODIFIED`` too: the trace started mid-life), ``DELETED`` deletes it;
    rows at or before the window start are its initial state (preloaded). Scheduler Events
    (:data:`SCHEDULER_EVENT_REASONS`, when the trace records reasons in ``detail``) and GAP
    markers are skipped and counted in :attr:`TraceWrites.skipped`.
    """
    tr = open_trace(trace) if isinstance(trace, str) else trace
    kinds = _write_kinds(tr, heartbeats_modelled)
    t = tr.to_arrow(kinds=kinds, columns=_write_columns()) if kinds else None
    return _writes(t, start=start, duration_s=duration_s, window=window, dilation=dilation)


def _write_kinds(tr: Trace, heartbeats_modelled: bool) -> list[str]:
    """The kinds :func:`load_trace_writes` replays, sorted."""
    skip = set(MODELLED_KINDS) | (set(HEARTBEAT_KINDS) if heartbeats_modelled else set())
    return sorted(k for k in (tr.manifest.get("kinds") or {}) if k not in skip)


def _write_columns() -> list[str]:
    # Every trace of format v1 has the ``detail`` column (null where unused).
    return [*WRITE_COLUMNS, "detail"] if "detail" in SCHEMA.names else list(WRITE_COLUMNS)


def _writes(
    t: pa.Table | None,
    *,
    start: str,
    duration_s: float,
    window: tuple[float, float | None],
    dilation: float,
) -> TraceWrites:
    """:class:`TraceWrites` from the rows of the written kinds (``_write_columns()``, in
    trace order; None: no such kinds)."""
    import pandas as pd

    empty = TraceWrites(
        [],
        *(np.zeros(0, dt) for dt in (np.int16, float, np.int8, np.int64)),
        np.zeros(0),
        np.zeros(0, bool),
    )
    if t is None or t.num_rows == 0:
        return empty
    has_detail = "detail" in t.column_names
    skipped: dict[str, int] = {}

    def is_(column: str, values: tuple[str, ...]) -> np.ndarray:
        # Compared in Arrow: no Python string per row (nulls match nothing).
        hit = pc.is_in(t.column(column), value_set=pa.array(values, pa.string()))
        return pc.fill_null(hit, False).to_numpy(zero_copy_only=False).astype(bool)

    keep = ~is_("event_type", ("GAP",))
    _count(skipped, "gap_markers", int((~keep).sum()))
    deleted = is_("event_type", ("DELETED",))
    # Kinds as codes into the dictionary of kind names (-1: null).
    kind_enc = pc.dictionary_encode(t.column("kind")).combine_chunks()
    kind = pc.fill_null(kind_enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    kind_dict = kind_enc.dictionary.to_pylist()
    has_ns = pc.is_valid(t.column("namespace")).to_numpy(zero_copy_only=False).astype(bool)
    # One integer per object: kind|uid, or kind|namespace/name without a uid.
    uid = t.column("uid")
    if uid.null_count:
        ns_name = pc.binary_join_element_wise(
            pc.fill_null(t.column("namespace"), ""), pc.fill_null(t.column("name"), ""), "/"
        )
        uid = pc.coalesce(uid, ns_name)
    full_key = pc.binary_join_element_wise(t.column("kind"), uid, "|")
    enc = pc.dictionary_encode(full_key).combine_chunks()
    codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if has_detail:
        sched = is_("kind", ("Event",)) & is_("detail", SCHEDULER_EVENT_REASONS)
        drop = np.isin(codes, np.unique(codes[sched]))
        _count(skipped, "scheduler_events", int((drop & keep).sum()))
        keep &= ~drop
    t0_us = int(pd.Timestamp(start).value // 1000)
    t_s = (t.column("ts").cast(pa.int64()).to_numpy() - t0_us) / 1e6
    w1 = window[1]
    end = duration_s * dilation
    keep &= (t_s < end) if w1 is not None else (t_s <= end)
    rows = np.flatnonzero(keep)
    codes, t_s, deleted, kind = codes[rows], t_s[rows], deleted[rows], kind[rows]
    seq = _ints(t, "seq")[rows]
    sizes = _ints(t, "size_bytes")[rows].astype(float)
    namespaced = has_ns[rows]
    order = np.lexsort((seq, t_s))
    codes, t_s, deleted, kind, sizes, namespaced = (
        a[order] for a in (codes, t_s, deleted, kind, sizes, namespaced)
    )
    op = np.where(deleted, 2, 1).astype(np.int8)
    # First row of each object creates it (LISTED, ADDED or a first MODIFIED).
    _, first = np.unique(codes, return_index=True)
    first_row = np.zeros(len(codes), bool)
    first_row[first] = True
    _count(skipped, "delete_of_unknown_object", int((first_row & (op == 2)).sum()))
    op[first_row & (op != 2)] = 0
    valid = ~(first_row & (op == 2))
    # Rows at or before the replay start are the initial state: keep only each object's last.
    before = t_s <= 0
    if before.any():
        last_before = np.zeros(len(codes), bool)
        idx = np.flatnonzero(before)
        _, last = np.unique(codes[idx][::-1], return_index=True)
        last_before[idx[::-1][last]] = True
        gone_at_start = np.zeros(len(codes), bool)
        dead = idx[::-1][last][op[idx[::-1][last]] == 2]
        gone_at_start[dead] = True
        valid &= ~before | (last_before & ~gone_at_start)
        op[before & valid] = 0
        # An object deleted before the start and re-created later: its next row creates it.
        dead_codes = codes[dead]
        later_first = np.zeros(len(codes), bool)
        after = np.flatnonzero(~before & np.isin(codes, dead_codes))
        if len(after):
            _, f = np.unique(codes[after], return_index=True)
            later_first[after[f]] = True
            op[later_first & (op != 2)] = 0
    # Kind codes renumbered in order of first appearance (null: -1), as a factorisation of
    # the kind names gives them.
    known = kind >= 0
    uniq, first = np.unique(kind[known], return_index=True)
    seen = uniq[np.argsort(first)]
    renumber = np.full(len(kind_dict) + 1, -1, np.int64)
    renumber[seen] = np.arange(len(seen))
    kind_codes = renumber[kind]  # -1 reads the last entry: -1
    return TraceWrites(
        kinds=[str(kind_dict[k]) for k in seen.tolist()],
        kind=kind_codes[valid].astype(np.int16),
        t_s=np.maximum(t_s[valid], 0.0) / dilation,
        op=op[valid],
        key=codes[valid],
        size_bytes=sizes[valid],
        namespaced=namespaced[valid],
        skipped=skipped,
    )
