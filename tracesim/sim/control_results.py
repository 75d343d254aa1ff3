"""The control-plane results of a replay: its tables (requests, components, etcd), its
SIG Scalability SLOs, the bottleneck hint and the ``control_plane`` section of
``summary.json``, from a finished :class:`~tracesim.sim.controlplane.ControlPlane`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .controlplane import ControlPlane


def control_tables(cp: ControlPlane) -> dict[str, Any]:
    """The control-plane tables of a replay (pandas), written as ``NAME.parquet``:

    - ``requests``: one row per API request (or watch dispatch, verb ``watch``): completion
      ``t_s``, ``latency_s``, ``verb``, ``resource``, ``scope``, ``status``, ``reason``;
    - ``components``: long time series ``t_s``, ``metric``, ``value`` every
      ``workload.sample_interval_s``: utilisations (etcd leader and reads, apiserver CPU and
      seats per APF level, watch dispatchers, scheduler loop and client rate limiter) and
      queue lengths (etcd write/read queues, APF queued per level, watch dispatch queues,
      scheduler queue, requests waiting for client tokens);
    - ``etcd``: one row per sample, one column per etcd gauge (``db_size_bytes``,
      ``db_in_use_bytes``, ``revision``, ``objects.<resource>``, utilisations, queues).
    """
    import pandas as pd

    m = cp.metrics
    req = m.requests_frame()
    comp = m.series_frame()
    sel = comp["metric"].astype(str).str.startswith("etcd.")
    etcd = comp[sel.to_numpy()].copy()
    etcd["metric"] = etcd["metric"].astype(str).str.removeprefix("etcd.")
    wide = etcd.pivot_table(index="t_s", columns="metric", values="value", observed=True)
    wide = wide.reset_index()
    wide.columns.name = None
    return {"requests": req, "components": comp, "etcd": pd.DataFrame(wide)}


def _pct(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return {"count": 0, "p50": None, "p99": None, "max": None}
    return {
        "count": len(values),
        "p50": round(float(np.percentile(values, 50)), 6),
        "p99": round(float(np.percentile(values, 99)), 6),
        "max": round(float(values.max()), 6),
    }


def bottleneck(components: Any) -> dict[str, Any]:
    """The component most likely to saturate first: the highest 95th-percentile utilisation,
    and the queues that grow (mean of the last quarter > 2x the first quarter and > 1).
    Returns ``{"component", "utilisation_p95", "growing_queues", "ranking"}``."""
    if components is None or not len(components):
        return {"component": None, "utilisation_p95": None, "growing_queues": [], "ranking": []}
    metric = components["metric"].astype(str)
    util = components[metric.str.contains("utilisation").to_numpy()]
    ranking = []
    for name, grp in util.groupby(util["metric"].astype(str), sort=True):
        ranking.append((round(float(np.percentile(grp["value"].to_numpy(), 95)), 6), name))
    ranking.sort(key=lambda x: (-x[0], x[1]))
    growing = []
    queues = components[metric.str.contains("queue|waiting|queued").to_numpy()]
    for name, grp in queues.groupby(queues["metric"].astype(str), sort=True):
        v = grp["value"].to_numpy()
        q = max(len(v) // 4, 1)
        first, last = float(v[:q].mean()), float(v[-q:].mean())
        if last > 1 and last > 2 * first:
            growing.append({"queue": name, "first_quarter_mean": first, "last_quarter_mean": last})
    growing.sort(key=lambda g: -g["last_quarter_mean"])
    top = ranking[0] if ranking else (None, None)
    return {
        "component": top[1],
        "utilisation_p95": top[0],
        "growing_queues": growing,
        "ranking": [{"metric": n, "utilisation_p95": u} for u, n in ranking[:8]],
    }


def control_slo(cp: ControlPlane, pods: Any) -> Any:
    """The SIG Scalability SLOs of a replay (an :class:`~tracesim.analysis.slo.SloReport`)
    from its request rows without the watch dispatches, which no SLO judges.

    Call it before the request table is built (:func:`control_tables`): the watch rows are
    then not yet expanded (:meth:`Metrics.record_watch`), so the SLO's string conversions and
    group-bys run over half the rows, and the memory they take does not add to the table's.
    The earliest request completion is the full table's too (a watch row ends after the write
    it reports), so the 5-minute windows align as they would on the whole table."""
    import pandas as pd

    m = cp.metrics
    if m.has_pending_watches:
        req = m.requests_frame(expand_watches=False)
    else:
        req = m.requests_frame()
        req = req[(req["verb"].cat.codes != m.verbs.code("watch")).to_numpy()]
    created = pods["created_s"].to_numpy()
    startup_s = pods["startup_s"].to_numpy()
    started = ~np.isnan(startup_s)
    startup = pd.DataFrame({"t_s": created[started], "startup_s": startup_s[started]})
    return slo_in_chunks(req, startup)


#: Request rows per call of ``evaluate_slos`` in :func:`slo_in_chunks`.
SLO_CHUNK_ROWS = 500_000


def slo_in_chunks(requests: Any, pod_startup: Any, chunk_rows: int = SLO_CHUNK_ROWS) -> Any:
    """:func:`~tracesim.analysis.slo.evaluate_slos` of ``requests`` and ``pod_startup``
    with bounded memory: the same report (verdicts, worst values, rejections) as one call.

    ``evaluate_slos`` converts every row's verb/resource/scope/reason to strings (hundreds of
    MB per column at millions of rows). Each SLI is a percentile over one 5-minute window, so
    whole windows are evaluated a chunk of about ``chunk_rows`` rows at a time, all aligned
    to the same first sample; one last call judges the per-window values (one row per
    window and pair, at the window's middle, whose 99th percentile is that value) together
    with the pod startups, as one call would. The last call's window table counts one
    sample per window; the verdicts and the summary are exact (a test compares them)."""
    import pandas as pd

    from ..analysis.slo import WINDOW_S, evaluate_slos

    n = 0 if requests is None else len(requests)
    if n <= chunk_rows:
        return evaluate_slos(requests, pod_startup)
    t_req = requests["t_s"].to_numpy()
    starts = [float(t_req.min())]
    if pod_startup is not None and len(pod_startup):
        starts.append(float(pod_startup["t_s"].min()))
    t0 = min(starts)
    # The window of each row, as evaluate_slos computes it.
    win = np.floor((t_req - t0) / WINDOW_S).astype(np.int64)
    last = int(win.max())
    n_chunks = max(1, math.ceil(n / chunk_rows))
    edges = np.linspace(0, last + 1, n_chunks + 1).round().astype(np.int64)
    windows = []
    rejected: dict[str, int] = {}
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        if b <= a:
            continue
        part = requests[((win >= a) & (win < b))]
        if not len(part):
            continue
        rep = evaluate_slos(part, None, start_s=t0)
        for k, v in rep.rejected.items():
            rejected[k] = rejected.get(k, 0) + v
        if len(rep.windows):
            windows.append(rep.windows)
    if windows:
        w = pd.concat(windows, ignore_index=True)
        w = w[w["slo"] != "pod-startup"]
        scope = {"mutating": "namespace", "read-resource": "resource"}
        scope |= {"read-namespace": "namespace", "read-cluster": "cluster"}
        summary_rows = pd.DataFrame(
            {
                "t_s": t0 + (w["window"].to_numpy() + 0.5) * WINDOW_S,
                "latency_s": w["p99_s"].to_numpy(),
                "verb": w["verb"].astype(str).to_numpy(),
                "resource": w["resource"].astype(str).to_numpy(),
                "scope": w["slo"].astype(str).map(scope).to_numpy(),
            }
        )
    else:
        summary_rows = None
    report = evaluate_slos(summary_rows, pod_startup, start_s=t0)
    report.rejected = dict(sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0])))
    return report


def control_summary(
    cp: ControlPlane, pods: Any, tables: dict[str, Any], slo: Any = None
) -> dict[str, Any]:
    """The ``control_plane`` section of ``summary.json``: profile, request accounting,
    latency per verb/resource, etcd state, pod startup, SLOs (``slo``: from
    :func:`control_slo`, computed here when None) and the bottleneck hint."""
    per: dict[str, Any] = {}
    m = cp.metrics
    buf = m.requests
    if len(buf):
        # Grouped on the codes of the metrics buffers (millions of rows: no strings per row,
        # no sort): one mask per verb/resource pair present (a few dozen).
        key = buf.column("verb").astype(np.int32) << 16 | buf.column("resource")
        lat_all = buf.column("latency_s")
        ok_all = buf.column("reason") == m.reasons.code("ok")
        found = {}
        for k in np.flatnonzero(np.bincount(key)).tolist():
            name = f"{m.verbs.names[k >> 16]} {m.resources.names[k & 0xFFFF]}"
            mine = key == k
            n_all = int(np.count_nonzero(mine))
            mine &= ok_all
            entry = _pct(lat_all[mine])
            entry["rejected"] = n_all - int(np.count_nonzero(mine))
            found[name] = entry
        per = {name: found[name] for name in sorted(found)}
    if slo is None:
        slo = control_slo(cp, pods)
    startup_all = pods["startup_s"].to_numpy()
    startup_s = startup_all[~np.isnan(startup_all)]
    e = cp.etcd
    db = tables["etcd"]
    etcd = {
        "revision": e.revision,
        "writes_ok": e.writes_ok,
        "writes_rejected": e.writes_rejected,
        "bytes_written": round(e.bytes_written),
        "db_size_bytes": round(e.db_size_bytes),
        "db_size_peak_bytes": (
            round(float(db["db_size_bytes"].max())) if "db_size_bytes" in db else None
        ),
        "db_in_use_bytes": round(e.data_bytes),
        "history_bytes": round(e.history_bytes),
        "compacted_revision": e.compacted_revision,
        "nospace_alarm": e.alarm_nospace,
        "objects": dict(sorted(e.object_counts().items())),
        "quota_bytes": cp.profile.etcd.quota_bytes,
    }
    api = cp.api
    return {
        "profile": cp.profile.name,
        "parameters": cp.profile.to_dict(),
        "requests": {
            **cp.requests_accounting(),
            "rejected_by_reason": dict(sorted(cp.rejected.items())),
        },
        "latency_by_request_s": per,
        "etcd": etcd,
        "apiserver": {
            "cpu_seconds": round(api.cpu_s, 6),
            "rejected_by_level": {n: lvl.rejected for n, lvl in api.levels.items()},
            "watch_events": api.watch_events,
            "watch_sends": api.watch_sends,
            "watch_bytes_sent": round(api.watch_bytes_sent),
        },
        "scheduler_client": {
            "qps": cp.bucket.qps,
            "burst": cp.bucket.burst,
            "requests": cp.bucket.admitted,
            "waited_s_total": round(cp.bucket.waited_s, 6),
        },
        "events": {"written": cp.events_written, "expired": cp.events_expired},
        "trace_writes_skipped": dict(cp.writes.skipped) if cp.writes is not None else {},
        "pod_startup_s": _pct(startup_s),
        "slo": slo.to_summary(),
        "bottleneck": bottleneck(tables["components"]),
    }
