"""Trace transforms: scale a trace to another cluster size, cut a time window, keep some kinds.

Every transform reads a trace and writes a new one with :class:`TraceWriter` (source kind
``derived``, the manifest naming the parent), time-ordered; the parent is never modified.

Scaling (:func:`scale`)
-----------------------
The factor is ``f = nodes / nodes in the trace``. The output is made of *clones* of the trace:
clone 0 is the trace itself (original names, uids and times), clones ``1 .. floor(f) - 1`` are
complete copies, and when ``f`` is not an integer one more *partial* clone covers the
fractional part (for ``f < 1``, clone 0 itself is partial: down-scaling). Every object belongs
to one *unit* that decides in which clones it exists:

- **node units**: a node with its Lease (``kube-node-lease``), the pods of its DaemonSets and
  its mirror pods, and the Events about those. A partial clone takes an exact number of nodes,
  sampled per node shape (allocatable cpu, memory, GPUs, GPU model) so the shape mix is kept.
- **workload units**: everything of one workload in one namespace: a Deployment, its
  ReplicaSets (``<deployment>-<hash>``), their pods, the Events about them, and any other
  namespaced object named after it; a Job and its pods; a pod without owner on its own. A
  partial clone takes ``round(frac x units)`` of them. A ReplicaSet with 5 replicas becomes
  ``f`` ReplicaSets of 5, not one of ``5 f``.
- **singletons** (clone 0 only): cluster-scoped objects other than nodes (Namespaces,
  PriorityClasses...), DaemonSet objects (one covers every node, clones included), Leases
  outside ``kube-node-lease`` (leader election: one scheduler per cluster) and GAP markers.

In clone ``j >= 1`` a name gets the tag ``-c<j>`` after its workload's base name
(``app-7-5d9f-x2b4`` -> ``app-7-c2-5d9f-x2b4``, node ``n-3`` -> ``n-3-c2``, an Event
``<pod>.<hex>`` follows its pod), so names keep the Kubernetes structure; if a tag would collide
with a name in the trace (a trace scaled before) the letter moves on (``-d<j>``...). Uids are
UUIDs hashed from ``(uid, tag)``: unique and stable. Node references are rewritten with the
node's clone: pods' ``node_name``, Leases' name, holder and owner, mirror pods' owner, the
nodes' ``kubernetes.io/hostname`` label. A workload pod of a partial clone bound to a node that
the partial clone does not have goes to a sampled node of the same shape (round robin), which
keeps the pods per node in expectation. Owner names get the workload's tag; DaemonSet owners
stay (one DaemonSet, more nodes).

Times: each cloned object (with the Events about it, and a node with its Lease) is shifted by
one offset in ``[1 us, jitter_s]`` hashed from (object, clone, seed), so clones do not arrive at
the same microsecond and each object's own events keep their order; LISTED rows stay where they
are (the state at the trace start). Resource versions are renumbered in the new time order;
``raw`` JSON is kept for clone 0 only (it names the originals). Work is vectorised over
columns, one chunk of rows at a time (the parts are time-ordered and clones only move
forward), so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import TracesimError
from .manifest import MANIFEST_NAME
from .reader import Trace, open_trace
from .schema import DELETED, GAP, LISTED, SCHEMA
from .writer import TraceWriter

US = 1_000_000
NODE_LEASE_NAMESPACE = "kube-node-lease"
HOSTNAME_LABEL = "kubernetes.io/hostname="
#: Owner kinds whose pods live and die with a node rather than with a workload.
NODE_BOUND_OWNERS = ("DaemonSet", "Node")
#: Output rows per processing step of :func:`scale` (input rows per step: this / clones).
CHUNK_ROWS_OUT = 250_000
#: Arrow bytes per output part: the writer holds a part in memory until it is full.
ROTATE_BYTES = 64 * 1024 * 1024
ATTACH_NODE, ATTACH_UNIT, ATTACH_SINGLE = 0, 1, 2
_SEP = "\x1f"
_ID_COLUMNS = [
    "kind",
    "namespace",
    "name",
    "uid",
    "owner_kind",
    "owner_name",
    "node_name",
    "alloc_cpu_milli",
    "alloc_memory_bytes",
    "alloc_gpu_count",
    "gpu_model",
]
_TS_TYPE = SCHEMA.field("ts").type
TraceLike = Trace | str | os.PathLike[str]
TimeLike = str | datetime | pd.Timestamp | int | None


# -- small vectorised helpers -------------------------------------------------------------------
def _open(trace: TraceLike) -> Trace:
    return trace if isinstance(trace, Trace) else open_trace(trace)


def _check_out(trace: Trace, out: str | os.PathLike[str], overwrite: bool) -> Path:
    """The output directory, refusing the parent itself and (unless ``overwrite``) any
    existing non-empty path."""
    path = Path(out)
    if path.exists() and path.resolve() == trace.path.resolve():
        raise TracesimError(f"{path}: is the input trace; choose another --out")
    if path.exists() and not overwrite and (not path.is_dir() or any(path.iterdir())):
        raise TracesimError(f"{path}: already exists; choose another --out or pass --force")
    replacing = path.exists() and overwrite and path.is_dir() and any(path.iterdir())
    if replacing and not (path / MANIFEST_NAME).is_file():
        raise TracesimError(f"{path}: exists and is not a trace; refusing to replace it")
    return path


def _object_keys(table: pa.Table) -> pa.ChunkedArray:
    """One string per row naming its object: kind, namespace, name, uid (nulls as "")."""
    cols = [table.column(c) for c in ("kind", "namespace", "name", "uid")]
    return pc.binary_join_element_wise(*cols, _SEP, null_handling="replace")


def _np(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return col.to_numpy(zero_copy_only=False)


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the 64 output bits."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _salt(*parts: object) -> np.uint64:
    text = _SEP.join(str(p) for p in parts).encode()
    return np.uint64(int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little"))


def _hash64(strings: pa.Array | pa.ChunkedArray, salt: np.uint64) -> np.ndarray:
    """A 64-bit hash per string (FNV-1a, then mixed), vectorised over the strings: the loop
    runs over character positions, not over strings. Nulls hash like ""."""
    arr = pc.fill_null(strings, "")
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    arr = arr.cast(pa.large_string())
    n = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    h = np.full(n, np.uint64(0xCBF29CE484222325) ^ salt, dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for k in range(int(lengths.max()) if n else 0):
            active = np.flatnonzero(lengths > k)
            h[active] = (h[active] ^ data[starts[active] + k].astype(np.uint64)) * prime
    return _mix64(h)


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_DIGITS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def _uuids(hi: np.ndarray, lo: np.ndarray) -> pa.Array:
    """Version-4-shaped UUID strings from two 64-bit hashes per row."""
    n = len(hi)
    raw = np.stack([hi, lo], axis=1).astype(">u8").view(np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nibbles = np.stack([raw >> 4, raw & 0x0F], axis=2).reshape(n, 32)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGITS] = _HEX[nibbles]
    return pa.array(text.view("S36").ravel().astype("U36"), pa.string())


def _strip_hash(names: np.ndarray) -> np.ndarray:
    """``<deployment>-<hash>`` -> ``<deployment>`` (a ReplicaSet's workload); others kept."""
    s = pd.Series(names, dtype=object)
    stripped = s.str.rsplit("-", n=1).str[0]
    return np.where(s.str.contains("-", regex=False).fillna(False), stripped, s).astype(object)


def _isna(values: np.ndarray) -> np.ndarray:
    return pd.isna(values).astype(bool) if len(values) else np.zeros(0, dtype=bool)


# -- the plan: which object exists in which clone, under which name ------------------------------
@dataclass
class _Objects:
    """One entry per object of the parent trace (sorted by key) plus a sentinel for GAP rows."""

    keys: pa.Array
    kind: np.ndarray
    namespace: np.ndarray
    name: np.ndarray
    uid: pa.Array
    owner_kind: np.ndarray
    owner_name: np.ndarray
    node_name: np.ndarray
    alloc: pd.DataFrame  # first allocatable columns seen per object (nodes)


def _scan_objects(trace: Trace) -> _Objects:
    """The objects of ``trace``: first non-null identity and owner values per object key."""
    value_cols = [c for c in _ID_COLUMNS]
    partial: list[pa.Table] = []

    def first_per_key(table: pa.Table) -> pa.Table:
        grouped = table.group_by("okey", use_threads=False).aggregate(
            [(c, "first") for c in value_cols]
        )
        return grouped.select([f"{c}_first" for c in value_cols] + ["okey"]).rename_columns(
            [*value_cols, "okey"]
        )

    for table in trace.scan(columns=[*_ID_COLUMNS, "event_type"]):
        table = table.filter(pc.fill_null(pc.not_equal(table.column("event_type"), GAP), True))
        table = table.drop_columns(["event_type"]).append_column("okey", _object_keys(table))
        partial.append(first_per_key(table))
    if partial:
        objects = first_per_key(pa.concat_tables(partial))
        objects = objects.take(pc.sort_indices(objects, [("okey", "ascending")]))
    else:
        objects = (
            SCHEMA.empty_table().select(value_cols).append_column("okey", pa.array([], pa.string()))
        )
    alloc = objects.select(
        ["alloc_cpu_milli", "alloc_memory_bytes", "alloc_gpu_count", "gpu_model"]
    ).to_pandas()
    return _Objects(
        keys=objects.column("okey").combine_chunks(),
        kind=_np(objects.column("kind")).astype(object),
        namespace=_np(objects.column("namespace")).astype(object),
        name=_np(objects.column("name")).astype(object),
        uid=objects.column("uid").combine_chunks(),
        owner_kind=_np(objects.column("owner_kind")).astype(object),
        owner_name=_np(objects.column("owner_name")).astype(object),
        node_name=_np(objects.column("node_name")).astype(object),
        alloc=alloc,
    )


@dataclass
class _Clone:
    """Object-level arrays of one clone (index = object, last entry = the GAP sentinel)."""

    index: int
    tag: str
    exists: np.ndarray  # bool
    name: pa.Array | None = None
    uid: pa.Array | None = None
    owner_name: pa.Array | None = None
    delta_us: np.ndarray | None = None  # time shift of each object's non-LISTED rows
    target: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # node -> node
    node_names: pa.Array | None = None  # new name of every node in this clone


class _ScalePlan:
    """Decides, from the parent's objects, the clones and every object's fate in each."""

    def __init__(self, objs: _Objects, nodes: int, seed: int, jitter_s: float) -> None:
        self.objs = objs
        self.seed = seed
        self.jitter_us = max(0, round(jitter_s * US))
        kind, ns, name = objs.kind, objs.namespace, objs.name
        n_obj = len(kind)
        is_node = kind == "Node"
        is_pod = kind == "Pod"
        is_lease = kind == "Lease"
        is_node_lease = is_lease & (ns == NODE_LEASE_NAMESPACE)
        has_node = is_pod & ~_isna(objs.node_name)
        node_set = np.unique(
            np.concatenate([name[is_node], name[is_node_lease], objs.node_name[has_node]]).astype(
                str
            )
        )
        self.node_names = node_set
        self.n_nodes = n = len(node_set)
        if n == 0:
            raise TracesimError(
                "the trace has no nodes (no Node objects, node Leases or bound pods); "
                "scale needs a trace of a cluster"
            )
        node_index = pd.Index(node_set)
        name_node = node_index.get_indexer(name)
        pod_node = node_index.get_indexer(objs.node_name)
        owner_node = node_index.get_indexer(objs.owner_name)

        # Node shapes, from each node's first Node object (nodes known only from pods: "?").
        shape_text = np.full(n_obj, "", dtype=object)
        for col in objs.alloc.columns:  # a handful of columns, vectorised over objects
            values = objs.alloc[col].astype(object).where(objs.alloc[col].notna(), "?")
            shape_text = shape_text + "|" + values.astype(str).to_numpy(object)
        first_node_obj = pd.Series(np.flatnonzero(is_node)).groupby(name_node[is_node]).first()
        node_shape = np.full(n, "?", dtype=object)
        node_shape[first_node_obj.index.to_numpy()] = shape_text[first_node_obj.to_numpy()]
        self.shape_code = pd.factorize(node_shape, sort=True)[0]
        first_gpus = objs.alloc["alloc_gpu_count"].fillna(0).to_numpy(np.float64)
        self.node_gpus = np.zeros(n, np.int64)
        self.node_gpus[first_node_obj.index.to_numpy()] = first_gpus[first_node_obj.to_numpy()]

        # Where each object belongs.
        attach = np.full(n_obj, ATTACH_UNIT, dtype=np.int64)
        node_of = np.full(n_obj, -1, dtype=np.int64)
        by_name = (is_node | is_node_lease) & (name_node >= 0)
        attach[by_name], node_of[by_name] = ATTACH_NODE, name_node[by_name]
        node_pod = is_pod & np.isin(objs.owner_kind, NODE_BOUND_OWNERS) & (pod_node >= 0)
        attach[node_pod], node_of[node_pod] = ATTACH_NODE, pod_node[node_pod]
        single = ((_isna(ns) & ~is_node) | (kind == "DaemonSet") | (is_lease & ~is_node_lease)) & (
            attach != ATTACH_NODE
        )
        attach[single] = ATTACH_SINGLE

        # The workload's base name: owner (ReplicaSets without their hash), else own name.
        owner = objs.owner_name
        has_owner = ~_isna(owner) & ~np.isin(objs.owner_kind, NODE_BOUND_OWNERS)
        base = name.copy()
        base[has_owner] = owner[has_owner]
        rs_owner = has_owner & (objs.owner_kind == "ReplicaSet")
        base[rs_owner] = _strip_hash(owner[rs_owner])
        rs = kind == "ReplicaSet"
        base[rs] = _strip_hash(name[rs])
        head = np.where(attach == ATTACH_UNIT, base, name).astype(object)
        jkey = np.array(objs.keys.to_pylist(), dtype=object)
        node_jkey = np.array([f"node{_SEP}{x}" for x in node_set], dtype=object)
        attached = attach == ATTACH_NODE
        jkey[attached] = node_jkey[node_of[attached]]

        # Events follow the object they are about, named <object>.<suffix> by convention.
        ev = np.flatnonzero((kind == "Event") & ~_isna(name))
        if len(ev):
            names = pd.Series(name[ev], dtype=object)
            prefix = names.str.rsplit(".", n=1).str[0].to_numpy(object)
            pods = np.flatnonzero(is_pod)
            pod_keys = pd.Series(ns[pods].astype(str) + _SEP + name[pods].astype(str))
            first_pod = pd.Series(pods).groupby(pod_keys.to_numpy()).first()
            ev_key = ns[ev].astype(str) + _SEP + prefix.astype(str)
            about_pod = first_pod.reindex(ev_key).to_numpy()
            hit = ~np.isnan(about_pod)
            pod_of = np.where(hit, about_pod, 0).astype(np.int64)
            about_node = node_index.get_indexer(prefix)
            # about a pod: everything as the pod
            e, p = ev[hit], pod_of[hit]
            attach[e], node_of[e], head[e], jkey[e] = attach[p], node_of[p], head[p], jkey[p]
            base[e] = base[p]
            # about a node: the node's unit
            e_node = ~hit & (about_node >= 0)
            e = ev[e_node]
            attach[e], node_of[e] = ATTACH_NODE, about_node[e_node]
            head[e], jkey[e] = prefix[e_node], node_jkey[about_node[e_node]]
            # about something else: that thing's workload unit, named after it
            e_other = ~hit & (about_node < 0)
            e = ev[e_other]
            keep_single = attach[e] == ATTACH_SINGLE
            base[e] = np.where(keep_single, base[e], prefix[e_other])
            head[e] = np.where(keep_single, name[e], prefix[e_other])

        # head must be a prefix of the name; the rest of the name is the tail.
        ok = np.array(
            [
                isinstance(h, str) and isinstance(x, str) and x.startswith(h)
                for h, x in zip(head, name, strict=True)
            ],
            dtype=bool,
        )
        head = np.where(ok, head, name)
        tail = np.array(
            [x[len(h) :] if isinstance(x, str) else None for h, x in zip(head, name, strict=True)],
            dtype=object,
        )
        # Owner names: node owners follow the node, DaemonSets stay, workloads are tagged.
        owner_mode = np.zeros(n_obj, dtype=np.int64)  # 0 unchanged, 1 tagged, 2 node
        owner_mode[has_owner & (attach == ATTACH_UNIT)] = 1
        owner_mode[(objs.owner_kind == "Node") & (owner_node >= 0)] = 2
        oh_ok = np.array(
            [
                isinstance(o, str) and isinstance(b, str) and o.startswith(b)
                for o, b in zip(owner, base, strict=True)
            ],
            dtype=bool,
        )
        owner_head = np.where(oh_ok, base, owner)
        owner_tail = np.array(
            [
                o[len(h) :] if isinstance(o, str) else None
                for o, h in zip(owner, owner_head, strict=True)
            ],
            dtype=object,
        )

        # Units: (namespace, base) of the workload objects, in sorted order (seeded sampling).
        unit_of = np.full(n_obj, -1, dtype=np.int64)
        in_unit = attach == ATTACH_UNIT
        unit_key = pd.Series(ns[in_unit]).fillna("").astype(str) + _SEP + base[in_unit].astype(str)
        codes, uniques = pd.factorize(unit_key.to_numpy(object), sort=True)
        unit_of[in_unit] = codes
        self.n_units = len(uniques)

        # Append the GAP sentinel (a singleton without a name).
        def ext(a: np.ndarray, value: Any) -> np.ndarray:
            return np.concatenate([a, np.array([value], dtype=a.dtype)])

        self.attach = ext(attach, ATTACH_SINGLE)
        self.node_of = ext(node_of, -1)
        self.unit_of = ext(unit_of, -1)
        self.owner_mode = ext(owner_mode, 0)
        self.owner_node = ext(np.where(owner_mode == 2, owner_node, 0), 0)
        self.head = pa.array(ext(head, None), pa.string())
        self.tail = pa.array(ext(tail, None), pa.string())
        self.owner_head = pa.array(ext(owner_head, None), pa.string())
        self.owner_tail = pa.array(ext(owner_tail, None), pa.string())
        self.owner = pa.array(ext(owner, None), pa.string())
        self.jkey = pa.array(ext(jkey, ""), pa.string())
        self.uid = pa.concat_arrays([objs.uid.cast(pa.string()), pa.nulls(1, pa.string())])
        self.okeys = objs.keys
        self.sentinel = n_obj
        self.orig_names = pa.array(ext(name, None), pa.string())
        self.kind_ns = pa.array(
            ext(
                pd.Series(kind).fillna("").astype(str).to_numpy(object)
                + _SEP
                + pd.Series(ns).fillna("").astype(str).to_numpy(object),
                "",
            ),
            pa.string(),
        )

        # Clones: full ones, then a partial one for the fractional part.
        self.factor = nodes / n
        full = nodes // n
        partial_nodes = nodes - full * n
        self.n_clones = full + (1 if partial_nodes else 0)
        self.full = full
        rng = np.random.default_rng(seed)
        self.partial_index: int | None = full if partial_nodes else None
        self.node_selected = np.ones(n, dtype=bool)
        self.unit_selected = np.ones(self.n_units, dtype=bool)
        self.partial_target = np.arange(n)
        if partial_nodes:
            frac = partial_nodes / n
            self.node_selected, self.partial_target = _sample_nodes(
                rng, self.shape_code, partial_nodes
            )
            n_units = round(frac * self.n_units)
            self.unit_selected = np.zeros(self.n_units, dtype=bool)
            self.unit_selected[rng.permutation(self.n_units)[:n_units]] = True
        self.tag_letter = self._choose_tag_letter()
        self._clones: dict[int, _Clone] = {}

    # -- names ------------------------------------------------------------------------------------
    def tag(self, j: int, letter: str | None = None) -> str:
        return "" if j == 0 else f"-{letter or self.tag_letter}{j}"

    def _choose_tag_letter(self) -> str:
        """The first tag letter under which every clone's names are new: (kind, namespace,
        name, clone) -> new name must be one-to-one, clone 0 keeping the original names."""
        named = pc.invert(pc.is_null(self.orig_names))
        kind_ns = self.kind_ns.filter(named)
        head, tail = self.head.filter(named), self.tail.filter(named)
        originals = pc.binary_join_element_wise(kind_ns, self.orig_names.filter(named), _SEP)
        n_distinct = pc.count_distinct(originals).as_py()
        for letter in "cdefghkmnpqrstvwxz":
            keys = [originals]
            for j in range(1, self.n_clones):
                new = pc.binary_join_element_wise(head, self.tag(j, letter), tail, "")
                keys.append(pc.binary_join_element_wise(kind_ns, new, _SEP))
            if pc.count_distinct(pa.chunked_array(keys)).as_py() == n_distinct * self.n_clones:
                return letter
        raise TracesimError(
            "cannot find clone names that do not collide with the trace's own; "
            "rename or window the trace first"
        )

    def clone(self, j: int) -> _Clone:
        """Object-level arrays of clone ``j`` (computed once)."""
        if j in self._clones:
            return self._clones[j]
        n = self.n_nodes
        is_partial = j == self.partial_index
        single = self.attach == ATTACH_SINGLE
        if is_partial:
            on_node = (self.attach == ATTACH_NODE) & self.node_selected[np.maximum(self.node_of, 0)]
            in_unit = (self.attach == ATTACH_UNIT) & self.unit_selected[np.maximum(self.unit_of, 0)]
            exists = on_node | in_unit | (single & (j == 0))
            target = self.partial_target
        else:
            exists = ~single | (j == 0)
            target = np.arange(n)
        tag = self.tag(j)
        node_names = pa.array(self.node_names, pa.string())
        c = _Clone(index=j, tag=tag, exists=exists, target=target)
        c.node_names = pc.binary_join_element_wise(node_names, tag, "") if j else node_names
        if j > 0:
            c.name = pc.binary_join_element_wise(self.head, tag, self.tail, "")
            salt = _salt("uid", tag)
            hi = _hash64(self.uid, salt)
            lo = _hash64(self.uid, _mix64(np.array([salt ^ np.uint64(1)]))[0])
            c.uid = pc.if_else(
                pc.is_null(self.uid), pa.nulls(len(self.uid), pa.string()), _uuids(hi, lo)
            )
            tagged = pc.binary_join_element_wise(self.owner_head, tag, self.owner_tail, "")
            node_owner = c.node_names.take(pa.array(target[self.owner_node]))
            owner = pc.if_else(pa.array(self.owner_mode == 1), tagged, self.owner)
            c.owner_name = pc.if_else(pa.array(self.owner_mode == 2), node_owner, owner)
            u = _hash64(self.jkey, _salt("jitter", tag, self.seed)) >> np.uint64(11)
            frac = u.astype(np.float64) / float(1 << 53)
            c.delta_us = (1 + np.floor(frac * max(self.jitter_us - 1, 0))).astype(np.int64)
            if self.jitter_us == 0:
                c.delta_us[:] = 0
        self._clones[j] = c
        return c

    def manifest(self) -> dict[str, Any]:
        part = None
        if self.partial_index is not None:
            part = {
                "index": self.partial_index,
                "nodes": int(self.node_selected.sum()),
                "units": int(self.unit_selected.sum()),
                "units_of": int(self.n_units),
            }
        return {
            "factor": self.factor,
            "seed": self.seed,
            "jitter_s": self.jitter_us / US,
            "nodes": {"parent": self.n_nodes, "out": self.nodes_out},
            "workload_units": self.n_units,
            "clones": self.n_clones,
            "partial_clone": part,
            "name_tag": f"-{self.tag_letter}<clone>",
        }

    @property
    def nodes_out(self) -> int:
        return self.full * self.n_nodes + (
            int(self.node_selected.sum()) if self.partial_index is not None else 0
        )

    @property
    def gpus_out(self) -> int:
        total = int(self.node_gpus.sum()) * self.full
        if self.partial_index is not None:
            total += int(self.node_gpus[self.node_selected].sum())
        return total


def _sample_nodes(
    rng: np.random.Generator, shape: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pick exactly ``m`` nodes, stratified by shape (largest remainders), and map every node to
    a picked one: itself if picked, else a picked node of its shape (round robin), else any
    picked node. Returns (picked mask, target index per node)."""
    n = len(shape)
    sizes = np.bincount(shape)
    quota = sizes * (m / n)
    take = np.floor(quota).astype(np.int64)
    short = m - int(take.sum())
    if short:
        remainder = quota - take
        order = np.lexsort((rng.random(len(sizes)), -remainder))
        take[order[:short]] += 1
    perm = rng.permutation(n)
    o = perm[np.argsort(shape[perm], kind="stable")]  # nodes grouped by shape, random within
    group_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    g = shape[o]
    rank = np.arange(n) - group_start[g]
    picked_o = rank < take[g]
    picked = np.zeros(n, dtype=bool)
    picked[o[picked_o]] = True
    target = np.arange(n)
    same = ~picked_o & (take[g] > 0)
    k = rank[same] - take[g[same]]
    target[o[same]] = o[group_start[g[same]] + k % take[g[same]]]
    other = ~picked_o & (take[g] == 0)
    all_picked = np.flatnonzero(picked)
    target[o[other]] = all_picked[np.arange(int(other.sum())) % len(all_picked)]
    return picked, target


# -- applying the plan to rows ------------------------------------------------------------------
def _set(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, SCHEMA.field(name), values.cast(SCHEMA.field(name).type))


def _masked_take(values: pa.Array, idx: np.ndarray) -> pa.Array:
    """``values[idx]`` with null where ``idx < 0``."""
    return values.take(pa.array(np.maximum(idx, 0), mask=idx < 0))


def _node_index(values: pa.ChunkedArray | pa.Array, nodes: pa.Array) -> np.ndarray:
    return _np(pc.fill_null(pc.index_in(values, value_set=nodes), -1)).astype(np.int64)


def _rewrite_hostname(labels: pa.ChunkedArray, old: pa.Array, new: pa.Array) -> pa.Array:
    """Replace ``kubernetes.io/hostname=<old[row]>`` by ``...=<new[row]>`` in each row's list."""
    arr = labels.combine_chunks() if isinstance(labels, pa.ChunkedArray) else labels
    if arr.null_count == len(arr):
        return arr
    offsets = arr.offsets
    values = arr.flatten()
    parent = pc.list_parent_indices(arr)
    old_label = pc.binary_join_element_wise(HOSTNAME_LABEL, old.take(parent), "")
    new_label = pc.binary_join_element_wise(HOSTNAME_LABEL, new.take(parent), "")
    hit = pc.fill_null(pc.equal(values, old_label), False)
    values = pc.if_else(hit, new_label, values)
    start = offsets[0].as_py()
    rebased = pc.subtract(offsets, start).cast(pa.int32())
    return pa.ListArray.from_arrays(rebased, values, mask=arr.is_null())


class _Scaler:
    """Clones chunks of rows and emits them in time order through the writer."""

    def __init__(self, plan: _ScalePlan, writer: TraceWriter) -> None:
        self.plan = plan
        self.writer = writer
        self.node_names = pa.array(plan.node_names, pa.string())
        self.carry: list[tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray]] = []
        self.next_rv = 1
        self.rows_out = 0

    def add(self, table: pa.Table, pos0: int, last: bool) -> None:
        plan = self.plan
        oi = pc.index_in(_object_keys(table), value_set=plan.okeys)
        oi = _np(pc.fill_null(oi, plan.sentinel)).astype(np.int64)
        ts = _np(table.column("ts").cast(pa.int64())).astype(np.int64)
        listed = _np(pc.fill_null(pc.equal(table.column("event_type"), LISTED), False))
        node_row = _node_index(table.column("node_name"), self.node_names)
        holder_row = _node_index(table.column("lease_holder"), self.node_names)
        for j in range(plan.n_clones):
            c = plan.clone(j)
            rows = np.flatnonzero(c.exists[oi])
            if not len(rows):
                continue
            sub = table if len(rows) == table.num_rows else table.take(pa.array(rows))
            o = oi[rows]
            new_ts = ts[rows]
            if j == plan.partial_index or j > 0:
                nidx = node_row[rows]
                sub = _set(
                    sub,
                    "node_name",
                    _masked_take(
                        c.node_names, np.where(nidx >= 0, c.target[np.maximum(nidx, 0)], -1)
                    ),
                )
            if j > 0:
                take_o = pa.array(o)
                old_names = sub.column("name")
                sub = _set(sub, "name", c.name.take(take_o))
                sub = _set(sub, "uid", c.uid.take(take_o))
                owner = sub.column("owner_name")
                sub = _set(
                    sub,
                    "owner_name",
                    pc.if_else(pc.is_null(owner), owner, c.owner_name.take(take_o)),
                )
                hidx = holder_row[rows]
                holders = _masked_take(
                    c.node_names, np.where(hidx >= 0, c.target[np.maximum(hidx, 0)], -1)
                )
                holder = sub.column("lease_holder")
                sub = _set(sub, "lease_holder", pc.if_else(pa.array(hidx >= 0), holders, holder))
                sub = _set(
                    sub,
                    "labels",
                    _rewrite_hostname(
                        sub.column("labels"),
                        old_names.combine_chunks(),
                        sub.column("name").combine_chunks(),
                    ),
                )
                sub = _set(sub, "raw", pa.nulls(len(rows), pa.string()))
                new_ts = new_ts + np.where(listed[rows], 0, c.delta_us[o])
                sub = _set(sub, "ts", pa.array(new_ts, pa.int64()).cast(_TS_TYPE))
            self.carry.append((sub, new_ts, pos0 + rows, np.full(len(rows), j, np.int64)))
        cutoff = None if last else int(ts[-1])
        self._emit(cutoff)

    def _emit(self, cutoff: int | None) -> None:
        """Write every carried row strictly before ``cutoff`` (all if None), in time order."""
        if not self.carry:
            return
        table = pa.concat_tables([c[0] for c in self.carry]).combine_chunks()
        ts = np.concatenate([c[1] for c in self.carry])
        pos = np.concatenate([c[2] for c in self.carry])
        clone = np.concatenate([c[3] for c in self.carry])
        order = np.lexsort((clone, pos, ts))
        n_out = len(order) if cutoff is None else int(np.searchsorted(ts[order], cutoff, "left"))
        head, rest = order[:n_out], order[n_out:]
        self.carry = []
        if len(rest):
            self.carry.append((table.take(pa.array(rest)), ts[rest], pos[rest], clone[rest]))
        if not n_out:
            return
        out = table.take(pa.array(head))
        gap = _np(pc.fill_null(pc.equal(out.column("event_type"), GAP), False))
        rv = self.next_rv + np.cumsum(~gap) - 1
        self.next_rv += int((~gap).sum())
        out = _set(out, "resource_version", pa.array(rv, mask=gap).cast(pa.string()))
        self.writer.write_table(out)
        self.rows_out += n_out


def _chunks(trace: Trace, rows: int) -> Iterator[pa.Table]:
    for table in trace.scan():
        for start in range(0, table.num_rows, rows):
            yield table.slice(start, rows)


def _parent_info(trace: Trace) -> dict[str, Any]:
    m = trace.manifest
    return {
        "path": str(trace.path.resolve()),
        "source_kind": trace.source_kind,
        "source": m.get("source", {}),
        "time_span": m.get("time_span"),
        "events": (m.get("events") or {}).get("rows"),
    }


def _rotate_s(trace: Trace) -> float:
    """Trace time per output part: the parent's longest part, at least the writer's hour (an
    imported trace spanning months would otherwise become hundreds of tiny files)."""
    longest = 3600.0
    for f in (trace.manifest.get("events") or {}).get("files") or []:
        try:
            span = pd.Timestamp(f["end"]) - pd.Timestamp(f["start"])
        except (KeyError, ValueError, TypeError):
            continue
        longest = max(longest, span.total_seconds() + 1.0)
    return longest


def scale(
    trace: TraceLike,
    nodes: int,
    out: str | os.PathLike[str],
    *,
    seed: int = 0,
    jitter_s: float = 1.0,
    overwrite: bool = False,
    chunk_rows: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Scale ``trace`` to ``nodes`` nodes and write the result to ``out`` (see the module doc).

    ``seed`` drives the sampling of partial clones and the jitter; ``jitter_s`` is the largest
    time shift of a cloned object, seconds. ``progress`` is called with the fraction of input
    rows done. Returns the plan's facts (factor, clones, nodes in and out...) plus ``rows`` (rows
    written) and ``path``. Same trace, nodes and seed -> byte-identical event files.
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise TracesimError(f"--nodes must be a whole number of at least 1, got {nodes!r}")
    if not jitter_s >= 0:
        raise TracesimError(f"--jitter must not be negative, got {jitter_s!r} s")
    parent = _open(trace)
    path = _check_out(parent, out, overwrite)
    plan = _ScalePlan(_scan_objects(parent), nodes, seed, jitter_s)
    facts = plan.manifest()
    cluster = dict(parent.manifest.get("cluster") or {})
    cluster["nodes"] = plan.nodes_out
    if "gpus" in cluster:
        cluster["gpus"] = plan.gpus_out
    options = dict(parent.manifest.get("options") or {})
    if plan.n_clones > 1 or plan.partial_index == 0:
        options["raw_objects_note"] = "raw JSON kept for clone 0 only (it names the originals)"
    total = max(1, parent.count())
    done = 0
    with TraceWriter(
        path,
        "derived",
        source={"transform": "scale", "parent": _parent_info(parent), **facts},
        cluster=cluster,
        options=options,
        journal=False,
        overwrite=overwrite,
        rotate_bytes=ROTATE_BYTES,
        rotate_s=_rotate_s(parent),
    ) as writer:
        scaler = _Scaler(plan, writer)
        step = chunk_rows or max(10_000, CHUNK_ROWS_OUT // plan.n_clones)
        chunks = _chunks(parent, step)
        current = next(chunks, None)
        while current is not None:
            upcoming = next(chunks, None)
            scaler.add(current, done, last=upcoming is None)
            done += current.num_rows
            if progress is not None:
                progress(done / total)
            current = upcoming
        scaler._emit(None)
    return {**facts, "rows": scaler.rows_out, "path": str(path)}


# -- window and filter --------------------------------------------------------------------------
def _time_us(value: TimeLike, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise TracesimError(
            f"{what} {value!r}: not a time; use ISO 8601 (2026-01-05T08:10:00Z)"
        ) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1000)


def _kinds_list(kinds: Iterable[str] | None) -> list[str] | None:
    if kinds is None:
        return None
    return [kinds] if isinstance(kinds, str) else list(kinds)


def state_at(trace: TraceLike, at: TimeLike, *, kinds: Iterable[str] | None = None) -> pa.Table:
    """The objects that exist just before ``at`` (rows strictly before it replayed): the last
    row of every object whose last event is not DELETED, in trace order. GAP rows are skipped."""
    parent = _open(trace)
    at_us = _time_us(at, "time")
    state: pa.Table | None = None
    for table in parent.scan(end=at_us, kinds=_kinds_list(kinds)):
        table = table.filter(pc.fill_null(pc.not_equal(table.column("event_type"), GAP), True))
        if state is not None:
            table = pa.concat_tables([state, table])
        key = _object_keys(table)
        last = (
            pa.table({"k": key, "i": pa.array(np.arange(table.num_rows))})
            .group_by("k", use_threads=False)
            .aggregate([("i", "max")])
            .column("i_max")
        )
        state = table.take(pa.array(np.sort(_np(last))))  # last row per object, in order
    if state is None:
        return SCHEMA.empty_table()
    alive = pc.fill_null(pc.not_equal(state.column("event_type"), DELETED), True)
    return state.filter(alive)


def window(
    trace: TraceLike,
    start: TimeLike,
    end: TimeLike,
    out: str | os.PathLike[str],
    *,
    kinds: Iterable[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the events of ``[start, end)`` of ``trace`` to ``out``, the state at ``start``
    (replayed from the rows before it) as LISTED rows stamped ``start``. ``start``/``end``:
    ISO 8601, datetime or int microseconds since the epoch; None = the trace's start / end.
    ``kinds`` keeps only those kinds. Returns counts (``listed``, ``events``) and ``path``."""
    parent = _open(trace)
    kinds = _kinds_list(kinds)
    t0, t1 = _time_us(start, "--start"), _time_us(end, "--end")
    if t0 is not None and t1 is not None and t1 <= t0:
        raise TracesimError("--end must be after --start")
    path = _check_out(parent, out, overwrite)
    source = {
        "transform": "window" if t0 is not None or t1 is not None else "filter_kinds",
        "parent": _parent_info(parent),
        "start_us": t0,
        "end_us": t1,
        "kinds": kinds,
    }
    listed = 0
    events = 0
    with TraceWriter(
        path,
        "derived",
        source=source,
        cluster=dict(parent.manifest.get("cluster") or {}),
        options=dict(parent.manifest.get("options") or {}),
        journal=False,
        overwrite=overwrite,
        rotate_s=_rotate_s(parent),
    ) as writer:
        if t0 is not None:
            state = state_at(parent, t0, kinds=kinds)
            if state.num_rows:
                n = state.num_rows
                state = _set(state, "ts", pa.array(np.full(n, t0, np.int64)).cast(_TS_TYPE))
                state = _set(state, "event_type", pa.array([LISTED] * n, pa.string()))
                state = _set(state, "relist", pa.array(np.zeros(n, bool)))
                writer.write_table(state)
                listed = n
        for table in parent.scan(start=t0, end=t1, kinds=kinds):
            writer.write_table(table)
            events += table.num_rows
    return {"listed": listed, "events": events, "path": str(path)}


def filter_kinds(
    trace: TraceLike,
    kinds: Iterable[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write only the rows of ``kinds`` (GAP markers of those kinds included) to ``out``."""
    kinds = _kinds_list(kinds) or []
    if not kinds:
        raise TracesimError("give at least one kind to keep, e.g. --kinds Pod,Node")
    return window(trace, None, None, out, kinds=kinds, overwrite=overwrite)
