"""Alibaba ``cluster-trace-gpu-v2023`` ("openb"): read the published CSVs, build arrays, import.

Files, exactly as published (``alibaba/clusterdata``, folder ``cluster-trace-gpu-v2023``):

- ``openb_node_list_gpu_node.csv``: ``sn, cpu_milli, memory_mib, gpu, model``;
- ``openb_pod_list_<workload>.csv``: ``name, cpu_milli, memory_mib, num_gpu, gpu_milli,
  gpu_spec, qos, pod_phase, creation_time, deletion_time, scheduled_time`` (times in seconds
  from the trace start; ``gpu_spec`` lists allowed GPU models separated by ``|``, empty = any;
  the ``multigpu`` lists carry only the first five columns).

:func:`read_nodes` / :func:`read_pods` return validated DataFrames; :func:`build_cluster` and
:func:`pod_table` turn them into the numpy structures of the placement experiment;
:func:`import_trace` writes them as a tracesim trace.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import TracesimError
from ..sim.cluster import GPU_MILLI, ClusterState, PodTable

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
POD_OPTIONAL_COLUMNS = (
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
_NODE_INT = ("cpu_milli", "memory_mib", "gpu")
_POD_INT = ("cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
_POD_TIMES = ("creation_time", "deletion_time", "scheduled_time")

#: The 17 workloads of the FGD paper's evaluation.
WORKLOADS = (
    "default",
    "cpu050",
    "cpu100",
    "cpu200",
    "cpu250",
    "gpushare40",
    "gpushare60",
    "gpushare80",
    "gpushare100",
    "gpuspec10",
    "gpuspec20",
    "gpuspec25",
    "gpuspec33",
    "multigpu20",
    "multigpu30",
    "multigpu40",
    "multigpu50",
)
NODE_FILE = "openb_node_list_gpu_node.csv"
#: Pod slots per node, as in the published node YAML (``pods: '1001'``); never binding here.
NODE_ALLOC_PODS = 1001
MIB = 2**20
#: Bit of a pod's model mask set when its gpu_spec names only models absent from the cluster,
#: so the mask is non-zero (constrained) yet matches no node.
UNKNOWN_MODEL_BIT = 62
#: Where the published files are looked for unless told otherwise.
DATA_DIR_ENV = "TRACESIM_OPENB_DIR"
PUBLISHED_AT = "https://github.com/alibaba/clusterdata/tree/master/cluster-trace-gpu-v2023"


def default_data_dir() -> Path:
    """``$TRACESIM_OPENB_DIR``, else ``../shared/data/alibaba-gpu-v2023`` from the cwd."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else Path("..") / "shared" / "data" / "alibaba-gpu-v2023"


def pod_file(data_dir: str | os.PathLike[str], workload: str) -> Path:
    """Path of the pod list of ``workload``; TracesimError naming the file if absent."""
    path = Path(data_dir) / f"openb_pod_list_{workload}.csv"
    if not path.is_file():
        raise TracesimError(
            f"{path}: no such file; pass --data-dir with the openb CSVs (from {PUBLISHED_AT})"
        )
    return path


def _read_csv(path: Path, required: tuple[str, ...], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise TracesimError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TracesimError(f"{path}: not a readable CSV ({msg})") from None
    df.columns = [c.strip() for c in df.columns]
    for col in required:
        if col not in df.columns:
            raise TracesimError(
                f"{path}: column {col!r} missing; an openb {what} needs {', '.join(required)}"
            )
    return df


def _to_int(path: Path, df: pd.DataFrame, col: str, *, allow_blank: bool = False) -> np.ndarray:
    """Column ``col`` as int64 (float64 with NaN for blanks if ``allow_blank``)."""
    text = df[col].astype(str).str.strip()
    values = pd.to_numeric(text.where(text != "", None), errors="coerce")
    bad = values.isna() & ((text != "") | (not allow_blank))
    if not bad.any():
        finite = values.dropna()
        bad = pd.Series(False, index=values.index)
        bad[finite.index] = (finite < 0) | (finite != np.floor(finite))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise TracesimError(
            f"{path}: column {col!r}, line {row + 2}: {text.iloc[row]!r} is not a "
            "non-negative integer; fix or remove that row"
        )
    return values.to_numpy(np.float64) if allow_blank else values.to_numpy(np.int64)


def read_nodes(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The node list: ``sn`` (str), ``cpu_milli``, ``memory_mib``, ``gpu`` (int64), ``model``
    (str, "" for CPU-only nodes). One-line TracesimError on a bad file."""
    path = Path(path)
    df = _read_csv(path, NODE_COLUMNS, "node list")
    out = pd.DataFrame({"sn": df["sn"].astype(str), "model": df["model"].astype(str).str.strip()})
    for col in _NODE_INT:
        out[col] = _to_int(path, df, col)
    if out["sn"].duplicated().any():
        dup = out["sn"][out["sn"].duplicated()].iloc[0]
        raise TracesimError(f"{path}: column 'sn': node {dup!r} appears twice")
    return out[list(NODE_COLUMNS)]


def read_pods(path: str | os.PathLike[str]) -> pd.DataFrame:
    """A pod list: the five resource columns as int64, ``gpu_spec`` ("" = any model) and, when
    the file has them, ``qos``, ``pod_phase`` and the times (float64 seconds, NaN if blank)."""
    path = Path(path)
    df = _read_csv(path, POD_COLUMNS, "pod list")
    out = pd.DataFrame({"name": df["name"].astype(str)})
    for col in _POD_INT:
        out[col] = _to_int(path, df, col)
    out["gpu_spec"] = df["gpu_spec"].astype(str).str.strip() if "gpu_spec" in df else ""
    for col in ("qos", "pod_phase"):
        if col in df:
            out[col] = df[col].astype(str)
    for col in _POD_TIMES:
        if col in df:
            out[col] = _to_int(path, df, col, allow_blank=True)
    gm, ng = out["gpu_milli"].to_numpy(), out["num_gpu"].to_numpy()
    bad = ((ng > 0) & ((gm == 0) | (gm > GPU_MILLI))) | ((ng > 1) & (gm != GPU_MILLI))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise TracesimError(
            f"{path}: column 'gpu_milli', line {row + 2}: {gm[row]} with num_gpu {ng[row]}; "
            "a GPU pod needs 1..1000 milli-GPU per GPU, and exactly 1000 when num_gpu > 1"
        )
    if out["name"].duplicated().any():
        dup = out["name"][out["name"].duplicated()].iloc[0]
        raise TracesimError(f"{path}: column 'name': pod {dup!r} appears twice")
    return out


def build_cluster(nodes: pd.DataFrame, order: np.ndarray | None = None) -> ClusterState:
    """A :class:`ClusterState` of the nodes (in ``order`` if given). GPU model codes are the
    sorted distinct models, so they do not depend on the order."""
    if order is not None:
        nodes = nodes.iloc[order]
    models = sorted({m for m in nodes["model"] if m})
    return ClusterState.from_arrays(
        nodes["sn"].tolist(),
        nodes["cpu_milli"].to_numpy(np.int64),
        nodes["memory_mib"].to_numpy(np.int64) * MIB,
        nodes["gpu"].to_numpy(np.int64),
        [m or None for m in nodes["model"]],
        pods=NODE_ALLOC_PODS,
        models=models,
    )


def model_masks(gpu_spec: pd.Series | np.ndarray, cluster: ClusterState) -> np.ndarray:
    """Bit masks over the cluster's GPU model codes for '|'-separated model lists (0 = any)."""
    cache: dict[str, int] = {}
    out = np.zeros(len(gpu_spec), np.int64)
    for i, spec in enumerate(gpu_spec):
        if not spec:
            continue
        mask = cache.get(spec)
        if mask is None:
            mask = 0
            for model in spec.split("|"):
                code = cluster.models.get(model.strip())
                mask |= 1 << (UNKNOWN_MODEL_BIT if code is None else code)
            cache[spec] = mask
        out[i] = mask
    return out


def pod_table(pods: pd.DataFrame, cluster: ClusterState) -> PodTable:
    """The pods as a :class:`PodTable` in file order (memory in bytes)."""
    return PodTable(
        names=pods["name"].to_numpy(object),
        cpu_milli=pods["cpu_milli"].to_numpy(np.int64),
        memory_bytes=pods["memory_mib"].to_numpy(np.int64) * MIB,
        gpu_count=pods["num_gpu"].to_numpy(np.int64),
        gpu_milli=pods["gpu_milli"].to_numpy(np.int64),
        model_mask=model_masks(pods["gpu_spec"].to_numpy(object), cluster),
    )


# -- import as a trace ------------------------------------------------------------------------
#: Trace time of second 0 of the openb trace (the published times are relative seconds).
EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
EPOCH_US = int(EPOCH.timestamp()) * 1_000_000
NAMESPACE = "openb"
#: Trace time per Parquet part of an import: the openb trace spans ~5 months, so 30-day parts
#: (the writer's hourly default would make ~800 tiny files).
IMPORT_PART_S = 30 * 86_400.0


def import_trace(
    nodes_csv: str | os.PathLike[str],
    pods_csv: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the node and pod lists as a trace at ``out``; returns counts for the user.

    Nodes are LISTED rows at the trace start; each pod is ADDED at ``creation_time``, MODIFIED
    (bound, phase Running) at ``scheduled_time`` when present, and DELETED at
    ``deletion_time``. Times are seconds after :data:`EPOCH`. Pods without times (the multigpu
    lists) are all ADDED at the start and never deleted.
    """
    from ..trace.writer import TraceWriter

    nodes_csv, pods_csv = Path(nodes_csv), Path(pods_csv)
    nodes = read_nodes(nodes_csv)
    pods = read_pods(pods_csv)
    n = len(nodes)
    node_rows = pa.table(
        {
            "ts": pa.array(np.full(n, EPOCH_US, np.int64)),
            "kind": ["Node"] * n,
            "api_version": ["v1"] * n,
            "event_type": ["LISTED"] * n,
            "name": nodes["sn"].tolist(),
            "uid": nodes["sn"].tolist(),
            "size_bytes": pa.nulls(n, pa.int64()),  # no objects were served: unknown
            "alloc_cpu_milli": nodes["cpu_milli"].to_numpy(np.int64),
            "alloc_memory_bytes": nodes["memory_mib"].to_numpy(np.int64) * MIB,
            "alloc_pods": pa.array(np.full(n, NODE_ALLOC_PODS, np.int32)),
            "alloc_gpu_count": nodes["gpu"].to_numpy(np.int32),
            "alloc_gpu_milli": nodes["gpu"].to_numpy(np.int64) * GPU_MILLI,
            "gpu_model": [m or None for m in nodes["model"]],
            "unschedulable": [False] * n,
            "ready": [True] * n,
        }
    )
    pod_events = _pod_events(pods)
    manifest_source = {
        "format": "alibaba-openb",
        "published_at": PUBLISHED_AT,
        "nodes_file": nodes_csv.name,
        "pods_file": pods_csv.name,
        "time_origin": EPOCH.isoformat(),
        "time_origin_note": "openb times are seconds after the trace start; mapped to this epoch",
    }
    gpus = int(nodes["gpu"].sum())
    cluster = {"nodes": n, "gpus": gpus, "gpu_models": sorted({m for m in nodes["model"] if m})}
    with TraceWriter(
        out,
        "imported",
        source=manifest_source,
        cluster=cluster,
        journal=False,
        overwrite=overwrite,
        rotate_s=IMPORT_PART_S,
    ) as writer:
        writer.write_table(node_rows)
        writer.write_table(pod_events)
    counts = pod_events.group_by("event_type").aggregate([("name", "count")]).to_pylist()
    return {
        "nodes": n,
        "gpus": gpus,
        "pods": len(pods),
        "events": {c["event_type"]: c["name_count"] for c in counts},
        "path": str(out),
    }


def _pod_events(pods: pd.DataFrame) -> pa.Table:
    """ADDED / MODIFIED / DELETED rows of the pods, time-ordered (stable in file order)."""
    p = len(pods)
    zeros = np.zeros(p)
    created = pods["creation_time"].to_numpy(np.float64) if "creation_time" in pods else zeros
    created = np.nan_to_num(created, nan=0.0)
    deleted = pods["deletion_time"].to_numpy(np.float64) if "deletion_time" in pods else None
    sched = pods["scheduled_time"].to_numpy(np.float64) if "scheduled_time" in pods else None
    spec = pods["gpu_spec"].to_numpy(object)
    base = {
        "name": pods["name"].to_numpy(object),
        "req_cpu_milli": pods["cpu_milli"].to_numpy(np.int64),
        "req_memory_bytes": pods["memory_mib"].to_numpy(np.int64) * MIB,
        "req_gpu_count": pods["num_gpu"].to_numpy(np.int64),
        "req_gpu_milli": (pods["num_gpu"] * pods["gpu_milli"]).to_numpy(np.int64),
        "gpu_model": np.where(spec == "", None, spec),
        "qos_class": pods["qos"].to_numpy(object) if "qos" in pods else np.full(p, None),
    }
    parts = []

    def add(select: np.ndarray, t_s: np.ndarray, etype: str, phase: Any, order: int) -> None:
        idx = np.flatnonzero(select)
        part = {k: v[idx] for k, v in base.items()}
        part["ts_us"] = EPOCH_US + np.round(t_s[idx] * 1e6).astype(np.int64)
        part["event_type"] = np.full(len(idx), etype, object)
        part["phase"] = np.full(len(idx), phase, object)
        part["order"] = np.full(len(idx), order, np.int64)
        part["row"] = idx
        parts.append(pd.DataFrame(part))

    add(np.ones(p, bool), created, "ADDED", "Pending", 0)
    if sched is not None:
        add(~np.isnan(sched), sched, "MODIFIED", "Running", 1)
    if deleted is not None:
        add(~np.isnan(deleted), deleted, "DELETED", None, 2)
    df = pd.concat(parts, ignore_index=True)
    # At equal times: creations before bindings before deletions, then file order.
    df = df.sort_values(["ts_us", "order", "row"], kind="stable")
    n = len(df)
    return pa.table(
        {
            "ts": pa.array(df["ts_us"].to_numpy(np.int64)),
            "kind": ["Pod"] * n,
            "api_version": ["v1"] * n,
            "event_type": df["event_type"].tolist(),
            "namespace": [NAMESPACE] * n,
            "name": df["name"].tolist(),
            "uid": df["name"].tolist(),
            "size_bytes": pa.nulls(n, pa.int64()),  # no objects were served: unknown
            "phase": df["phase"].tolist(),
            "qos_class": df["qos_class"].tolist(),
            "req_cpu_milli": df["req_cpu_milli"].to_numpy(np.int64),
            "req_memory_bytes": df["req_memory_bytes"].to_numpy(np.int64),
            "req_gpu_count": df["req_gpu_count"].to_numpy(np.int32),
            "req_gpu_milli": df["req_gpu_milli"].to_numpy(np.int64),
            "gpu_model": df["gpu_model"].tolist(),
        }
    )
