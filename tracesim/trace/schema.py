"""The Arrow schema of trace format v1: one row per watch event.

Every producer (recorder, importers, synth) writes rows of this schema and every consumer
reads them; ``docs/trace-format.md`` is the prose version of this file. Columns that belong
to one kind are null for the others (Parquet stores such nulls almost for free).
"""

from __future__ import annotations

import pyarrow as pa

FORMAT_NAME = "tracesim-trace"
FORMAT_VERSION = 1

# Event types. ADDED / MODIFIED / DELETED are watch events as the API server sends them.
ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
#: An object as returned by the initial LIST of a resource: the state at the start of a trace.
LISTED = "LISTED"
#: A marker row (no object): the stream of ``kind`` lost continuity here (410 Gone, a crash,
#: a skipped window). Rows after it with ``relist = true`` are the differences a re-LIST found.
GAP = "GAP"
EVENT_TYPES = (ADDED, MODIFIED, DELETED, LISTED, GAP)

# Source kinds recorded in the manifest.
SOURCE_KINDS = ("recorded", "imported", "synthetic", "derived")

_str = pa.string()
_strs = pa.list_(pa.string())
_ts = pa.timestamp("us", tz="UTC")

# (name, type, description). The order here is the column order on disk.
COLUMNS: list[tuple[str, pa.DataType, str]] = [
    # -- every row ------------------------------------------------------------------------
    ("ts", _ts, "when the event was observed (UTC, microseconds)"),
    ("seq", pa.int64(), "position in the trace, strictly increasing; orders equal timestamps"),
    ("kind", _str, "object kind: Pod, Node, Lease, Event, ..."),
    ("api_version", _str, "apiVersion of the object, e.g. v1, coordination.k8s.io/v1"),
    ("event_type", _str, "ADDED, MODIFIED, DELETED, LISTED or GAP"),
    ("relist", pa.bool_(), "true if the row was derived from a re-LIST after a gap"),
    ("namespace", _str, "metadata.namespace; null for cluster-scoped objects"),
    ("name", _str, "metadata.name"),
    ("uid", _str, "metadata.uid"),
    ("resource_version", _str, "metadata.resourceVersion (opaque string, as served)"),
    ("size_bytes", pa.int64(), "size of the object as served, JSON bytes, before redaction"),
    ("labels", _strs, "metadata.labels as sorted key=value strings"),
    ("owner_kind", _str, "kind of the controller owner reference (else the first owner)"),
    ("owner_name", _str, "name of that owner"),
    ("detail", _str, "free text for marker rows (GAP reason); null otherwise"),
    # -- Pod ------------------------------------------------------------------------------
    ("node_name", _str, "spec.nodeName: the node the pod is bound to, null while pending"),
    ("phase", _str, "status.phase: Pending, Running, Succeeded, Failed, Unknown"),
    ("terminating", pa.bool_(), "metadata.deletionTimestamp is set"),
    ("scheduler_name", _str, "spec.schedulerName"),
    ("priority", pa.int32(), "spec.priority"),
    ("priority_class", _str, "spec.priorityClassName"),
    ("qos_class", _str, "status.qosClass"),
    ("req_cpu_milli", pa.int64(), "effective CPU request of the pod, milli-CPU"),
    ("req_memory_bytes", pa.int64(), "effective memory request of the pod, bytes"),
    ("req_gpu_count", pa.int32(), "GPUs requested (whole or shared devices)"),
    ("req_gpu_milli", pa.int64(), "GPU requested in total, milli-GPU (count x per-GPU share)"),
    ("node_selector", _strs, "spec.nodeSelector as sorted key=value strings"),
    ("node_affinity", _strs, "required node-affinity terms (ORed); see docs/trace-format.md"),
    ("tolerations", _strs, "spec.tolerations as key=value:Effect / key:Effect strings"),
    # -- Node -----------------------------------------------------------------------------
    ("alloc_cpu_milli", pa.int64(), "status.allocatable cpu, milli-CPU"),
    ("alloc_memory_bytes", pa.int64(), "status.allocatable memory, bytes"),
    ("alloc_pods", pa.int32(), "status.allocatable pods"),
    ("alloc_gpu_count", pa.int32(), "GPU devices allocatable"),
    ("alloc_gpu_milli", pa.int64(), "GPU allocatable in total, milli-GPU"),
    ("gpu_model", _str, "GPU model label of the node (pods: the model they require, if one)"),
    ("unschedulable", pa.bool_(), "spec.unschedulable"),
    ("ready", pa.bool_(), "status condition Ready is True"),
    ("taints", _strs, "spec.taints as key=value:Effect strings"),
    # -- Lease ----------------------------------------------------------------------------
    ("lease_holder", _str, "spec.holderIdentity"),
    ("lease_renew_time", _ts, "spec.renewTime"),
    ("lease_duration_s", pa.int32(), "spec.leaseDurationSeconds"),
    # -- optional -------------------------------------------------------------------------
    ("raw", _str, "the (redacted) object as JSON, when the trace keeps raw objects"),
]

SCHEMA = pa.schema(
    [pa.field(name, typ, metadata={"description": desc}) for name, typ, desc in COLUMNS],
    metadata={"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)},
)
COLUMN_NAMES = [name for name, _, _ in COLUMNS]
#: Columns every events file must have for a reader to accept it.
REQUIRED_COLUMNS = ("ts", "seq", "kind", "event_type", "namespace", "name", "size_bytes")
#: Columns the reader returns as pandas categoricals: few distinct values, many rows.
CATEGORICAL_COLUMNS = (
    "kind",
    "api_version",
    "event_type",
    "namespace",
    "owner_kind",
    "node_name",
    "phase",
    "scheduler_name",
    "priority_class",
    "qos_class",
    "gpu_model",
    "lease_holder",
)
