"""Results of a replay: the per-pod table, the time series and ``summary.json``.

Tables are written with pyarrow without any wall-clock metadata, so the same trace, config and
seed give byte-identical ``pods.parquet``. Wall-clock figures live only in ``summary.json``.

``pods.parquet`` columns: ``uid``, ``name``, ``namespace``, ``priority``, ``created_s``,
``first_attempt_s``, ``scheduled_s``, ``bound_s``, ``deleted_s``, ``released_s`` (simulated
seconds, NaN = never), ``node`` (null = none), ``gpus`` (GPU slots), ``attempts``,
``initial`` (kept its recorded node from the trace start), ``state`` (bound / pending /
failed / deleted_pending) and ``reason`` (kube-scheduler's message for the last failure).

``timeseries.parquet``: one row per sample, see
:data:`~tracesim.sim.engine.SAMPLE_COLUMNS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .engine import (
    BOUND,
    DELETED_PENDING,
    IN_CYCLE,
    NEW,
    QUEUED,
    RELEASED,
    SAMPLE_COLUMNS,
    EngineOutput,
)

STATES = ("bound", "pending", "failed", "deleted_pending")
PERCENTILES = (50, 90, 99)


@dataclass
class ReplayResult:
    """The tables and summary of one replay."""

    pods: pd.DataFrame
    timeseries: pd.DataFrame
    summary: dict[str, Any]
    #: Control-plane tables (``--profile``): name -> table, written as ``name.parquet``.
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def write(self, out: str | Path) -> Path:
        """Write ``pods.parquet``, ``timeseries.parquet``, the control-plane tables and
        ``summary.json`` into ``out``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _write_parquet(self.pods, out / "pods.parquet")
        _write_parquet(self.timeseries, out / "timeseries.parquet")
        for name, df in self.tables.items():
            _write_parquet(df, out / f"{name}.parquet")
        (out / "summary.json").write_text(json.dumps(self.summary, indent=2) + "\n")
        return out


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(None)  # no pandas metadata: plain, stable bytes
    # Float columns (times, latencies) hardly repeat: a dictionary would be built for each
    # and dropped after its first page (a third of the write time of millions of request
    # rows, and larger files). Min/max statistics of a dictionary (categorical) column
    # cost as much again; the other columns keep theirs. The values read back the same.
    schema = table.schema
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=[f.name for f in schema if not pa.types.is_floating(f.type)],
        write_statistics=[f.name for f in schema if not pa.types.is_dictionary(f.type)],
    )


def build_result(
    out: EngineOutput, *, scheduler: str, seed: int, trace: str, extra: dict[str, Any] | None = None
) -> ReplayResult:
    """Tables and summary from the engine's raw records."""
    w = out.workload
    created = ~np.isnan(out.created_s)
    idx = np.flatnonzero(created)
    st = out.state[idx]
    # Per-pod dict entries placed by position (most pods have none): no Python loop per pod.
    reason_at, reason_val = _positions(idx, out.reason)
    has_reason = np.zeros(len(idx), bool)
    has_reason[reason_at] = True
    reasons = np.full(len(idx), None, dtype=object)
    reasons[reason_at] = reason_val
    state = np.full(len(idx), "pending", dtype=object)
    state[(st == BOUND) | (st == RELEASED)] = "bound"
    state[st == DELETED_PENDING] = "deleted_pending"
    waiting = (st == QUEUED) | (st == IN_CYCLE) | (st == NEW)
    state[waiting & has_reason] = "failed"
    names = np.asarray([*out.cluster.names, None], dtype=object)
    node = out.node[idx]
    gpus = [out.gpus.get(i, []) for i in idx.tolist()]
    pods = pd.DataFrame(
        {
            "uid": _strings(w.uid[idx]),
            "name": _strings(w.name[idx]),
            "namespace": _strings(w.namespace[idx]),
            "priority": w.priority[idx],
            "created_s": out.created_s[idx],
            "first_attempt_s": out.first_attempt_s[idx],
            "scheduled_s": out.scheduled_s[idx],
            "bound_s": out.bound_s[idx],
            "deleted_s": out.deleted_s[idx],
            "released_s": out.released_s[idx],
            "node": _strings(names[np.where(node >= 0, node, len(names) - 1)]),
            "gpus": gpus,
            "attempts": out.attempts[idx].astype(np.int64),
            "initial": out.initial[idx],
            "state": _strings(state),
            "reason": _strings(reasons),
        }
    )
    ts = pd.DataFrame(out.samples, columns=list(SAMPLE_COLUMNS))
    tables: dict[str, pd.DataFrame] = {}
    if out.control is not None:
        from .control_results import control_slo, control_tables, latency_by_request

        cp = out.control
        pods["seen_s"] = np.asarray(cp.seen_s, float)[idx]
        pods["running_s"] = np.asarray(cp.running_s, float)[idx]
        pods["startup_s"] = pods["running_s"] - pods["created_s"]
        # The SLOs and the per-request latencies first, from the metrics buffers, before the
        # request table copies them: the peak memory of each step does not add to the
        # table's (the SLOs even run before the watch rows are expanded).
        slo = control_slo(cp, pods)
        per_request = latency_by_request(cp.metrics)
        tables = control_tables(cp)
    summary = summarize(pods, ts, out, scheduler=scheduler, seed=seed, trace=trace)
    if out.control is not None:
        from .control_results import control_summary

        summary["control_plane"] = control_summary(
            out.control, pods, tables, slo=slo, per_request=per_request
        )
    if extra:
        summary.update(extra)
    return ReplayResult(pods, ts, summary, tables)


def _positions(idx: np.ndarray, values: dict[int, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Where the keys of ``values`` (pod indices) are in the sorted ``idx``, and their values
    (object array), for the keys found."""
    if not values:
        return np.zeros(0, np.int64), np.zeros(0, object)
    keys = np.fromiter(values.keys(), dtype=np.int64, count=len(values))
    # fromiter keeps each value (a list too) as one object.
    vals = np.fromiter(values.values(), dtype=object, count=len(values))
    pos = np.searchsorted(idx, keys)
    found = pos < len(idx)
    found[found] = idx[pos[found]] == keys[found]
    return pos[found], vals[found]


def _strings(values: np.ndarray) -> Any:
    """``pd.array(values, dtype="string")`` of an object array of str/None, built by Arrow
    (pandas would check and convert every element in Python); other values take pandas'
    own path."""
    try:
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.array(values, dtype="string")
    return pd.array(arr, dtype="string")


def _ratio(used: float, alloc: float) -> float | None:
    return round(used / alloc, 6) if alloc else None


def summarize(
    pods: pd.DataFrame,
    ts: pd.DataFrame,
    out: EngineOutput,
    *,
    scheduler: str,
    seed: int,
    trace: str,
) -> dict[str, Any]:
    """The numbers of ``summary.json`` (see the module docstring of the CLI for the keys)."""
    counts = {s: int((pods["state"] == s).sum()) for s in STATES}
    # Columns, not row subsets of the whole frame (each would copy every column).
    model_bound = (pods["state"] == "bound").to_numpy(bool) & ~pods["initial"].to_numpy(bool)
    bound_s = pods["bound_s"].to_numpy(float)
    model_bound &= ~np.isnan(bound_s)
    latency = bound_s[model_bound] - pods["created_s"].to_numpy(float)[model_bound]
    lat = {
        f"p{p}": (round(float(np.percentile(latency, p)), 6) if len(latency) else None)
        for p in PERCENTILES
    }
    lat["mean"] = round(float(latency.mean()), 6) if len(latency) else None
    lat["max"] = round(float(latency.max()), 6) if len(latency) else None
    attempts = pods["attempts"]
    tried = attempts[attempts > 0]
    alloc: dict[str, Any] = {}
    for res, used, cap in (
        ("cpu", "cpu_used_milli", "cpu_alloc_milli"),
        ("memory", "memory_used_bytes", "memory_alloc_bytes"),
        ("gpu", "gpu_used_milli", "gpu_alloc_milli"),
    ):
        ratio = ts[used] / ts[cap].where(ts[cap] > 0)
        last = ts.iloc[-1] if len(ts) else None
        alloc[res] = {
            "end": _ratio(float(last[used]), float(last[cap])) if last is not None else None,
            "peak": round(float(ratio.max()), 6) if ratio.notna().any() else None,
        }
    reasons = pods.loc[pods["state"] == "failed", "reason"].value_counts().head(5)
    sim_s = out.end_s
    return {
        "trace": trace,
        "scheduler": scheduler,
        "seed": seed,
        "simulated_s": round(sim_s, 6),
        "window_start": out.workload.start,
        "pods": {"total": len(pods), **counts, "initial": int(pods["initial"].sum())},
        "nodes_at_end": int(ts["nodes"].iloc[-1]) if len(ts) else 0,
        "scheduling_latency_s": lat,
        "attempts": {
            "total": int(pods["attempts"].sum()),
            "mean_per_tried_pod": round(float(tried.mean()), 6) if len(tried) else None,
            "max": int(pods["attempts"].max()) if len(pods) else 0,
            "decisions": out.decisions,
        },
        "allocation": alloc,
        "peak_pending_pods": int(ts["pods_pending"].max()) if len(ts) else 0,
        "overcommitted_node_samples": int(ts["overcommitted_nodes"].sum()) if len(ts) else 0,
        "top_failure_reasons": {str(k): int(v) for k, v in reasons.items()},
        "inconsistencies": dict(sorted(out.inconsistencies.items())),
        "config": out.config,
        "wall_time_s": round(out.wall_s, 3),
        "sim_seconds_per_wall_second": round(sim_s / out.wall_s, 1) if out.wall_s > 0 else None,
        "decisions_per_wall_second_in_scheduler": (
            round(out.decisions / out.schedule_wall_s, 1) if out.schedule_wall_s > 0 else None
        ),
    }


def plot(result: ReplayResult, path: str | Path) -> Path:
    """PNG: allocation over time, pending pods over time, and the scheduling-latency CDF."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts, pods = result.timeseries, result.pods
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    t_min = ts["t_s"] / 60.0
    ax = axes[0]
    for res, used, cap in (
        ("cpu", "cpu_used_milli", "cpu_alloc_milli"),
        ("memory", "memory_used_bytes", "memory_alloc_bytes"),
        ("gpu", "gpu_used_milli", "gpu_alloc_milli"),
    ):
        if (ts[cap] > 0).any():
            ax.plot(t_min, 100.0 * ts[used] / ts[cap].where(ts[cap] > 0), label=res)
    ax.set(xlabel="simulated time (min)", ylabel="allocated (% of allocatable)", title="Allocation")
    ax.legend()
    ax = axes[1]
    ax.plot(t_min, ts["pods_pending"], label="pending")
    ax.plot(t_min, ts["pods_unschedulable"], label="unschedulable pool")
    ax.set(xlabel="simulated time (min)", ylabel="pods", title="Pending pods")
    ax.legend()
    ax = axes[2]
    sel = (pods["state"] == "bound") & ~pods["initial"] & pods["bound_s"].notna()
    lat = np.sort((pods.loc[sel, "bound_s"] - pods.loc[sel, "created_s"]).to_numpy(float))
    if len(lat):
        ax.plot(np.maximum(lat, 1e-6), np.arange(1, len(lat) + 1) / len(lat))
        ax.set_xscale("log")
    ax.set(xlabel="creation to binding (s)", ylabel="fraction of pods", title="Latency CDF")
    s = result.summary
    fig.suptitle(f"tracesim replay: {s['scheduler']} (seed {s['seed']}) on {s['trace']}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
