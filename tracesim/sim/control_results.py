"""The control-plane results of a replay: its tables (requests, components, etcd), its
SIG Scalability SLOs, the bottleneck hint and the ``control_plane`` section of
``summary.json``, from a finished :class:`~tracesim.sim.controlplane.ControlPlane`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .controlplane import ControlPlane
    from .metrics import Metrics


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
    # One call for both: the same values as two calls (each percentile is computed alone
    # from the sorted order statistics), one partition of the array instead of two.
    p50, p99 = np.percentile(values, [50, 99]).tolist()
    return {
        "count": len(values),
        "p50": round(p50, 6),
        "p99": round(p99, 6),
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

    Evaluated on the codes of the metrics buffers (:class:`~tracesim.analysis.slo.
    CodedRequests`: no table, no string per row). Call it before the request table is built
    (:func:`control_tables`): the watch rows are then not yet expanded
    (:meth:`Metrics.record_watch`) and are not even looked at. The earliest request
    completion is the full table's too (a watch row ends after the write it reports), so the
    5-minute windows align as they would on the whole table."""
    import pandas as pd

    from ..analysis.slo import CodedRequests

    m = cp.metrics
    pending = m.has_pending_watches
    buf = m.request_buffer(expand_watches=not pending)
    col = buf.column
    req = CodedRequests(
        t_s=col("t_s"),
        latency_s=col("latency_s"),
        verb=col("verb"),
        verbs=m.verbs.names,
        resource=col("resource"),
        resources=m.resources.names,
        scope=col("scope"),
        scopes=m.scopes.names,
        reason=col("reason"),
        reasons=m.reasons.names,
        rows=None if pending else col("verb") != m.verbs.code("watch"),
    )
    created = pods["created_s"].to_numpy()
    startup_s = pods["startup_s"].to_numpy()
    started = ~np.isnan(startup_s)
    startup = pd.DataFrame({"t_s": created[started], "startup_s": startup_s[started]})
    return slo_in_chunks(req, startup)


#: Above this many request rows, :func:`slo_in_chunks` lists rejections by count, then name.
SLO_CHUNK_ROWS = 500_000


def slo_in_chunks(requests: Any, pod_startup: Any, chunk_rows: int = SLO_CHUNK_ROWS) -> Any:
    """:func:`~tracesim.analysis.slo.evaluate_slos` of ``requests`` (a DataFrame or
    :class:`~tracesim.analysis.slo.CodedRequests`) and ``pod_startup``, with bounded memory.

    ``evaluate_slos`` works on integer codes (no string per row), so its memory is a few
    arrays of the request rows and one call does it all: the same report (per-window table,
    verdicts, worst values, rejections) as one call. Earlier versions evaluated more than
    ``chunk_rows`` rows a chunk of whole windows at a time and summed the rejections of the
    chunks, listed by count (descending) then reason: that order is kept above
    ``chunk_rows`` rows, so ``summary.json`` stays byte for byte the same."""
    from ..analysis.slo import evaluate_slos

    n = 0 if requests is None else len(requests)
    report = evaluate_slos(requests, pod_startup)
    if n > chunk_rows:
        report.rejected = dict(sorted(report.rejected.items(), key=lambda kv: (-kv[1], kv[0])))
    return report


def latency_by_request(m: Metrics) -> dict[str, Any]:
    """Per ``"verb resource"`` (sorted): the latency percentiles (s) of the successful
    requests (:func:`_pct`) and the number of rejected ones, watch rows included.

    Grouped on the codes of the metrics buffers (millions of rows: no strings per row, no
    sort): one mask per verb/resource pair present (a handful)."""
    buf = m.requests
    if not len(buf):
        return {}
    n_res = max(len(m.resources.names), 1)
    key = buf.column("verb").astype(np.uint16 if len(m.verbs.names) * n_res <= 1 << 16 else int)
    key *= n_res
    key += buf.column("resource")
    n_all = np.bincount(key)
    lat_all = buf.column("latency_s")
    ok_all = buf.column("reason") == m.reasons.code("ok")
    found = {}
    for k in np.flatnonzero(n_all).tolist():
        name = f"{m.verbs.names[k // n_res]} {m.resources.names[k % n_res]}"
        mine = key == k
        mine &= ok_all
        entry = _pct(lat_all[mine])
        entry["rejected"] = int(n_all[k]) - int(entry["count"])
        found[name] = entry
    return {name: found[name] for name in sorted(found)}


def control_summary(
    cp: ControlPlane,
    pods: Any,
    tables: dict[str, Any],
    slo: Any = None,
    per_request: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``control_plane`` section of ``summary.json``: profile, request accounting,
    latency per verb/resource (``per_request``: from :func:`latency_by_request`, computed
    here when None), etcd state, pod startup, SLOs (``slo``: from :func:`control_slo`,
    computed here when None) and the bottleneck hint."""
    per = latency_by_request(cp.metrics) if per_request is None else per_request
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
