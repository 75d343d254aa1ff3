"""Bottleneck analysis: which control-plane component saturates first, when, why, and what
that does to the SLOs, for one replay (``tracesim replay --profile``) or across a sweep.

One run (:func:`analyze_run`) reads only result files: ``components.parquet`` (utilisation and
queue length per component every sample interval), ``requests.parquet`` (one row per API
request), ``pods.parquet`` and ``summary.json`` (profile parameters, etcd totals). It gives

- per component (etcd leader and read workers, API server CPU and seats per priority level or
  max-in-flight pool, watch fan-out per resource, scheduler loop, scheduler client rate
  limiter): mean / p95 / peak utilisation, queue length, and when it **saturates**: the start of
  the first ``sustain_s`` stretch whose mean utilisation is at least ``util_threshold`` (0.9),
  or the time from which a queue grows without bound (the queue's mean rises over each of the
  last ``trend_windows`` windows, ends above ``min_queue`` and at least doubles; the time is
  when it last left zero);
- the first component to saturate (ties: the higher utilisation), or the busiest one when none
  does;
- the SIG Scalability SLOs (:func:`tracesim.analysis.slo.evaluate_slos`, the same evaluation as
  ``summary.json``) and the first failing 5-minute window of each;
- the contributors to the responsible component's load, by request category (Lease renewals,
  NodeStatus, pod create / binding / status / delete / removal, scheduler Events, the trace's
  Events and other writes, reads, Event expiry): requests, bytes, and the component's share.

Bytes per category. ``requests.parquet`` carries no object sizes, so they are rebuilt from the
profile (``kubelet.lease_size_bytes``, ``kubelet.node_status_size_bytes``,
``workload.event_size_bytes``) and etcd's own total (``control_plane.etcd.bytes_written``,
stored bytes of successful writes): what the known sizes do not explain is spread over the
other writes by request count (pod objects and the trace's writes; deletes store nothing). A
``size_bytes`` column in ``requests.parquet``, when present, is used as it is.

Shares per component (the load measure, ``measure`` in the tables):

- etcd leader: estimated busy time: ``apply_us_per_request`` per write + ``ns_per_byte`` per
  stored byte + the rest of the measured busy time (batch fsync and replication, backend
  commits) spread by write count; the sentence also gives each category's share of etcd write
  bytes and of writes;
- API server CPU: ``request_cpu_us`` per request + ``serialize_ns_per_byte`` per byte (twice
  for a write) + the watch fan-out the write causes (serialisation once or per watcher, plus
  ``watch_send_us_per_watcher`` per recipient);
- API server seats of a level / pool: seat-seconds (request latency summed) of the categories
  served at that level (the table in docs/models.md);
- watch fan-out of a resource: estimated dispatch time of the writes to that resource;
- scheduler client rate limiter: tokens taken (bindings and scheduler Events);
- scheduler loop: scheduling attempts (one category);
- etcd read workers: read requests.

Across a sweep (:func:`analyze_sweep`): for each SLO and variant (profile and ``--set``
values) the knee of its worst p99 curve (:func:`tracesim.analysis.knee.find_knee`), the
component responsible at the first failing size and its contributors, and per run the first
component to saturate. An interrupted sweep is analysed as far as it got; what is missing is
listed. Results give plain sentences (``sentences``), pandas tables and ``to_json()``.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import TracesimError
from . import knee as kneelib
from .slo import MUTATING_VERBS, READ_VERBS, THRESHOLDS_S, evaluate_slos

#: Utilisation at or above which a component counts as saturated (sustained).
UTIL_THRESHOLD = 0.9
#: How long (simulated seconds) the utilisation must stay at the threshold on average.
SUSTAIN_S = 60.0
#: Windows at the end of a run over which a growing queue must rise in each.
TREND_WINDOWS = 3
#: A queue below this many waiting items is not a bottleneck, however it trends.
MIN_QUEUE = 1.0

#: Component id -> readable name (used in sentences).
COMPONENT_NAMES = {
    "etcd.leader": "etcd's leader",
    "etcd.reads": "etcd's read workers",
    "etcd.quota": "etcd's database (quota)",
    "apiserver.cpu": "the API server's CPU",
    "scheduler.loop": "the scheduler loop",
    "scheduler.client": "the scheduler's client rate limiter",
}
#: Request category -> (APF priority level, readable description for sentences).
CATEGORY_LEVEL = {
    "Lease renewals": "node-high",
    "NodeStatus": "node-high",
    "pod status": "system",
    "pod create": "workload-high",
    "pod binding": "workload-high",
    "scheduler Events": "workload-high",
    "pod delete": "workload-high",
    "pod removal": "system",
    "Events (trace)": "workload-low",
    "other trace writes": "workload-low",
}
CATEGORY_TEXT = {
    "Lease renewals": "Lease renewals",
    "NodeStatus": "NodeStatus heartbeats",
    "pod status": "pod status updates",
    "pod create": "pod creations",
    "pod binding": "pod bindings",
    "scheduler Events": "the scheduler's Events",
    "pod delete": "pod deletions",
    "pod removal": "pod removals",
    "Events (trace)": "the trace's Events",
    "other trace writes": "the trace's other writes",
    "reads": "reads",
    "Event expiry": "Event expiry (etcd deletes)",
    "scheduling attempts": "scheduling attempts",
}
#: Component family -> (load measure column, what a share of it is called).
MEASURES = {
    "etcd.leader": ("etcd_busy_s", "of etcd's busy time"),
    "etcd.reads": ("reads", "of reads"),
    "etcd.quota": ("etcd_bytes", "of etcd write bytes"),
    "apiserver.cpu": ("apiserver_cpu_s", "of API server CPU"),
    "apiserver.seats": ("seat_s", "of seat time"),
    "watch": ("watch_busy_s", "of dispatch time"),
    "scheduler.client": ("tokens", "of client tokens"),
    "scheduler.loop": ("attempts", "of scheduling attempts"),
}
SLO_TEXT = {
    "mutating": "mutating-call",
    "read-resource": "single-object read",
    "read-namespace": "namespace read",
    "read-cluster": "cluster read",
    "pod-startup": "pod-startup",
}
REQUEST_COLUMNS = ["t_s", "latency_s", "verb", "resource", "scope", "reason"]


# -- loading ---------------------------------------------------------------------------------------
@dataclass
class RunTables:
    """The result files of one replay, as read from its directory."""

    path: Path
    summary: dict[str, Any]
    components: pd.DataFrame
    requests: pd.DataFrame
    pods: pd.DataFrame | None = None


def load_run(run_dir: str | Path) -> RunTables:
    """Read the tables of a ``tracesim replay --profile`` output directory.

    Raises :class:`TracesimError` (one line, with the fix) when ``run_dir`` is not a replay
    output or was replayed without ``--profile`` (no control-plane tables).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TracesimError(f"{run_dir}: not a directory; give a replay --out or sweep directory")
    path = run_dir / "summary.json"
    if not path.is_file():
        raise TracesimError(
            f"{run_dir}: no summary.json; give a `tracesim replay --out` or `tracesim sweep` "
            "directory"
        )
    try:
        summary = json.loads(path.read_text())
    except ValueError as exc:
        raise TracesimError(f"{path}: not valid JSON ({exc}); replay again") from None
    comp = run_dir / "components.parquet"
    req = run_dir / "requests.parquet"
    if "control_plane" not in summary or not comp.is_file() or not req.is_file():
        raise TracesimError(
            f"{run_dir}: no control-plane results (components.parquet, requests.parquet); "
            "replay with --profile current or --profile 2019-era"
        )
    try:
        components = pd.read_parquet(comp, columns=["t_s", "metric", "value"])
        cols = REQUEST_COLUMNS + (["size_bytes"] if "size_bytes" in _parquet_columns(req) else [])
        requests = pd.read_parquet(req, columns=cols)
        pods_path = run_dir / "pods.parquet"
        pods = None
        if pods_path.is_file():
            want = ["created_s", "bound_s", "deleted_s", "attempts", "startup_s", "node"]
            have = _parquet_columns(pods_path)
            pods = pd.read_parquet(pods_path, columns=[c for c in want if c in have])
    except (OSError, ValueError, KeyError) as exc:
        raise TracesimError(f"{run_dir}: unreadable result table ({exc}); replay again") from None
    return RunTables(run_dir, summary, components, requests, pods)


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


# -- components over time --------------------------------------------------------------------------
def component_of(metric: str) -> tuple[str, str] | None:
    """``(component id, "util" | "queue")`` of a ``components.parquet`` metric, or None for
    series that are not a component's load (DB size, object counts, the pending-pod queue,
    which also holds unschedulable pods)."""
    m = metric
    fixed = {
        "etcd.leader_utilisation": ("etcd.leader", "util"),
        "etcd.write_queue": ("etcd.leader", "queue"),
        "etcd.read_utilisation": ("etcd.reads", "util"),
        "etcd.read_queue": ("etcd.reads", "queue"),
        "apiserver.cpu_utilisation": ("apiserver.cpu", "util"),
        "scheduler.loop_utilisation": ("scheduler.loop", "util"),
        "scheduler.active_queue": ("scheduler.loop", "queue"),
        "scheduler.client_limiter_utilisation": ("scheduler.client", "util"),
        "scheduler.client_limiter_waiting": ("scheduler.client", "queue"),
    }
    if m in fixed:
        return fixed[m]
    for prefix, comp, kind in (
        ("apiserver.seats_utilisation.", "apiserver.seats.", "util"),
        ("apiserver.apf_queued.", "apiserver.seats.", "queue"),
        ("watch.dispatch_utilisation.", "watch.", "util"),
        ("apiserver.watch_dispatch_queue.", "watch.", "queue"),
    ):
        if m.startswith(prefix):
            return comp + m[len(prefix) :], kind
    if m.endswith("utilisation"):  # a component added later: judged by its utilisation
        return m.removesuffix("_utilisation").removesuffix(".utilisation"), "util"
    return None


def component_name(component: str) -> str:
    """A readable name: ``apiserver.seats.node-high`` -> "the API server's node-high seats"."""
    if component in COMPONENT_NAMES:
        return COMPONENT_NAMES[component]
    if component.startswith("apiserver.seats."):
        level = component.removeprefix("apiserver.seats.")
        what = "pool" if level in ("mutating", "readonly") else "priority level"
        return f"the API server's {level} {what} (seats)"
    if component.startswith("watch."):
        return f"the watch fan-out of {component.removeprefix('watch.')}"
    return component


def family_of(component: str) -> str:
    """The load-measure family of a component id (a key of :data:`MEASURES`)."""
    for fam in ("apiserver.seats", "watch"):
        if component.startswith(fam + "."):
            return fam
    return component


def _stretch_samples(t: np.ndarray, sustain_s: float) -> int:
    """Samples in ``sustain_s`` seconds at the series' (median) sample interval; at least 1."""
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
    if dt <= 0:
        dt = float(t[0]) if len(t) and t[0] > 0 else 1.0
    return max(round(sustain_s / dt), 1)


def _sustained_start(t: np.ndarray, u: np.ndarray, threshold: float, sustain_s: float) -> int:
    """Index of the first sample starting a stretch of ``sustain_s`` seconds (at least one
    sample) whose mean utilisation is >= ``threshold``; -1 if none."""
    n = len(u)
    if n == 0:
        return -1
    k = min(_stretch_samples(t, sustain_s), n)  # a shorter run must be saturated throughout
    c = np.concatenate([[0.0], np.cumsum(u)])
    means = (c[k:] - c[:-k]) / k  # means[i] = mean of u[i : i + k]
    hit = np.flatnonzero(means >= threshold - 1e-12)
    if not len(hit):
        return -1
    i = int(hit[0])
    # Start at the first sample of the stretch that is itself at the threshold.
    above = np.flatnonzero(u[i : i + k] >= threshold)
    return i + (int(above[0]) if len(above) else 0)


def queue_growth(
    t: np.ndarray,
    q: np.ndarray,
    *,
    trend_windows: int = TREND_WINDOWS,
    min_queue: float = MIN_QUEUE,
) -> tuple[bool, float | None, float]:
    """Does queue length ``q`` (sampled at ``t``) grow without bound at the end of the run?

    The run is cut into ``2 * trend_windows`` equal windows; the queue grows if its mean rises
    in each of the last ``trend_windows`` windows, the last mean is above ``min_queue`` and
    at least twice the mean ``trend_windows`` windows earlier. Returns ``(growing, since_s,
    slope_per_s)``: ``since_s`` is the first sample after the queue was last at or below
    ``min_queue`` (when the backlog that never cleared began); ``slope_per_s`` the
    least-squares trend of the last ``trend_windows`` windows (items per second).
    """
    n = len(q)
    w = 2 * trend_windows
    if n < w:
        return False, None, 0.0
    edges = np.linspace(0, n, w + 1).astype(int)
    means = np.array([q[a:b].mean() for a, b in itertools.pairwise(edges)])
    tail = means[-(trend_windows + 1) :]
    tail_t = t[edges[-(trend_windows + 1)] :]
    tail_q = q[edges[-(trend_windows + 1)] :]
    slope = float(np.polyfit(tail_t, tail_q, 1)[0]) if len(tail_t) > 1 else 0.0
    growing = bool(
        np.all(np.diff(tail) > 0)
        and tail[-1] > min_queue
        and tail[-1] >= 2 * max(tail[0], 1e-12)
        and slope > 0
    )
    if not growing:
        return False, None, slope
    low = np.flatnonzero(q <= min_queue)
    i = int(low[-1]) + 1 if len(low) else 0
    return True, float(t[min(i, n - 1)]), slope


#: Rejection reasons that mean a component is full, and the component family they point at.
SATURATION_REASONS = {
    "etcd-nospace": "etcd.quota",
    "apf-queue-full": "apiserver.seats",
    "inflight-limit": "apiserver.seats",
}


def rejection_onsets(
    requests: pd.DataFrame,
    *,
    pools: bool = False,
    bin_s: float = SUSTAIN_S,
    min_fraction: float = 0.01,
) -> pd.DataFrame:
    """When each component starts rejecting requests because it is full: etcd's quota
    (``etcd-nospace``) or an API server priority level / max-in-flight pool (429s).

    Requests are binned by completion time into ``bin_s`` bins; the onset is the first
    rejection in the first bin where at least ``min_fraction`` of the component's requests
    are rejected. ``pools``: the API server runs max-in-flight (2019-era) rather than APF, so
    429s are charged to the ``mutating`` / ``readonly`` pool by verb instead of to the
    request's priority level. Returns ``component``, ``onset_s``, ``rejected`` (all rejections
    for that reason), ``reason``."""
    cols = ["component", "onset_s", "rejected", "reason"]
    if requests is None or not len(requests) or "reason" not in requests.columns:
        return pd.DataFrame(columns=cols)
    reason = requests["reason"].astype(str).to_numpy()
    bad = np.isin(reason, list(SATURATION_REASONS))
    if not bad.any():
        return pd.DataFrame(columns=cols)
    verb = requests["verb"].astype(str).to_numpy()
    res = requests["resource"].astype(str).to_numpy()
    codes, uniques = pd.factorize(pd.Series(verb + " " + res))
    seats = np.empty(len(uniques), dtype=object)
    for i, p in enumerate(uniques):
        v, r = str(p).split(" ", 1)
        cat = _category(v, r)
        if pools:
            level = "readonly" if v in READ_VERBS else "mutating"
        else:
            level = CATEGORY_LEVEL.get(cat or "", "global-default")
            if cat == "pod delete":  # graceful deletes at workload-high, removals at system
                level = "workload-high"
        seats[i] = f"apiserver.seats.{level}"
    t = requests["t_s"].to_numpy(float)
    b = np.floor(t / bin_s).astype(np.int64)
    out = []
    for why, fam in SATURATION_REASONS.items():
        is_r = reason == why
        if not is_r.any():
            continue
        if fam == "etcd.quota":
            comp = np.full(len(codes), "etcd.quota", dtype=object)
        else:
            comp = seats[codes]
        for c in sorted(set(comp[is_r].tolist())):
            mine = comp == c
            # etcd's quota sees only writes; a level sees every request at that level.
            if fam == "etcd.quota":
                mine &= np.isin(verb, MUTATING_VERBS)
            tot = np.bincount(b[mine], minlength=int(b.max()) + 1)
            rj = np.bincount(b[mine & is_r], minlength=int(b.max()) + 1)
            frac = np.divide(rj, tot, out=np.zeros(len(tot)), where=tot > 0)
            hit = np.flatnonzero((frac >= min_fraction) & (rj > 0))
            if not len(hit):
                continue
            first_bin = int(hit[0])
            onset = float(t[mine & is_r & (b == first_bin)].min())
            out.append((c, onset, int((mine & is_r).sum()), why))
    return pd.DataFrame(out, columns=cols)


def component_table(
    components: pd.DataFrame,
    *,
    util_threshold: float = UTIL_THRESHOLD,
    sustain_s: float = SUSTAIN_S,
    trend_windows: int = TREND_WINDOWS,
    min_queue: float = MIN_QUEUE,
    quota_bytes: float | None = None,
    rejections: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per component from the long ``components.parquet`` table (``t_s``, ``metric``,
    ``value``): utilisation mean / p95 / peak (0..1), queue mean / peak / trend (items,
    items per second), and ``saturated_s`` (simulated seconds, NaN = never) with ``how``
    (``utilisation``, ``queue`` or ``rejections``). Sorted by saturation time, then p95
    utilisation.

    ``quota_bytes``: etcd's quota; the database (``etcd.quota``) then counts as a component
    whose utilisation is ``etcd.db_size_bytes`` / quota. ``rejections``: the output of
    :func:`rejection_onsets` (a component that starts rejecting requests is saturated then)."""
    cols = [
        "component",
        "name",
        "util_mean",
        "util_p95",
        "util_peak",
        "queue_mean",
        "queue_peak",
        "queue_end",
        "queue_trend_per_s",
        "queue_growing",
        "saturated_s",
        "how",
        "util_at_saturation",
        "rejected",
        "rejected_reason",
        "util_metric",
        "queue_metric",
    ]
    if components is None:
        components = pd.DataFrame({"t_s": [], "metric": [], "value": []})
    df = components.assign(metric=components["metric"].astype(str))
    rows: dict[str, dict[str, Any]] = {}
    for metric, grp in df.groupby("metric", sort=True):
        what = component_of(str(metric))
        if metric == "etcd.db_size_bytes" and quota_bytes:
            what = ("etcd.quota", "util")
        if what is None:
            continue
        comp, kind = what
        g = grp.sort_values("t_s", kind="stable")
        t = g["t_s"].to_numpy(float)
        v = g["value"].to_numpy(float)
        if comp == "etcd.quota":
            v = v / float(quota_bytes)
        r = rows.setdefault(comp, {"component": comp, "name": component_name(comp)})
        if kind == "util":
            r["util_metric"] = metric
            r["util_mean"] = float(v.mean())
            r["util_p95"] = float(np.percentile(v, 95))
            r["util_peak"] = float(v.max())
            i = _sustained_start(t, v, util_threshold, sustain_s)
            if i >= 0:
                k = _stretch_samples(t, sustain_s)
                r["_util_sat"] = (float(t[i]), float(v[i : i + k].mean()))
        else:
            r["queue_metric"] = metric
            r["queue_mean"] = float(v.mean())
            r["queue_peak"] = float(v.max())
            r["queue_end"] = float(v[-1])
            growing, since, slope = queue_growth(
                t, v, trend_windows=trend_windows, min_queue=min_queue
            )
            r["queue_trend_per_s"] = slope
            r["queue_growing"] = growing
            if growing:
                r["_queue_sat"] = since
    rej: dict[str, tuple[float, int, str]] = {}
    if rejections is not None and len(rejections):
        for rr in rejections.itertuples(index=False):
            rej[str(rr.component)] = (float(rr.onset_s), int(rr.rejected), str(rr.reason))
            rows.setdefault(
                str(rr.component),
                {"component": str(rr.component), "name": component_name(str(rr.component))},
            )
    out = []
    for r in rows.values():
        cands = []
        us = r.pop("_util_sat", None)
        if us is not None:
            cands.append((us[0], 1, "utilisation", us[1]))
        qs = r.pop("_queue_sat", None)
        if qs is not None:
            cands.append((qs, 2, "queue", math.nan))
        rj = rej.get(r["component"])
        r["rejected"] = rj[1] if rj else 0
        r["rejected_reason"] = rj[2] if rj else None
        if rj is not None:
            cands.append((rj[0], 0, "rejections", math.nan))
        r["saturated_s"], r["how"], r["util_at_saturation"] = math.nan, None, math.nan
        if cands:
            first = min(cands)
            r["saturated_s"], r["how"], r["util_at_saturation"] = first[0], first[2], first[3]
        out.append(r)
    table = pd.DataFrame(out).reindex(columns=cols)
    table["queue_growing"] = table["queue_growing"].astype("boolean").fillna(False).astype(bool)
    table["_sat"] = table["saturated_s"].fillna(math.inf)
    table["_u"] = -table["util_p95"].fillna(-1.0)
    table = table.sort_values(["_sat", "_u", "component"], kind="stable").drop(
        columns=["_sat", "_u"]
    )
    return table.reset_index(drop=True)


# -- request categories and load -------------------------------------------------------------------
def _category(verb: str, resource: str) -> str | None:
    base = resource.split("/")[0]
    if verb == "watch":
        return None
    if verb in READ_VERBS:
        return "reads"
    if base == "leases":
        return "Lease renewals"
    if base == "nodes" and verb in ("update", "patch"):
        return "NodeStatus"
    if base == "pods":
        if resource == "pods/status":
            return "pod status"
        if resource == "pods/binding":
            return "pod binding"
        if verb == "create":
            return "pod create"
        if verb == "delete":
            return "pod delete"  # split into graceful delete and removal below
        return "pod status"
    if base == "events":
        return "Events (trace)"  # the scheduler's own Events are split off below
    return "other trace writes"


def _params(summary: dict[str, Any]) -> dict[str, Any]:
    return (summary.get("control_plane") or {}).get("parameters") or {}


def _p(params: dict[str, Any], section: str, key: str, default: float) -> float:
    v = (params.get(section) or {}).get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else default


def category_table(
    requests: pd.DataFrame,
    summary: dict[str, Any],
    pods: pd.DataFrame | None = None,
    components: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The load of each request category (see the module docstring for the estimates).

    One row per (category, resource) with columns ``category``, ``resource`` (base resource:
    ``pods`` for ``pods/status``), ``level`` (APF priority level), ``write`` (bool),
    ``requests`` (completed), ``rejected``, ``json_bytes`` and ``etcd_bytes`` (stored bytes,
    0 for deletes and reads), ``bytes_estimated`` (bool), ``etcd_busy_s``,
    ``apiserver_cpu_s``, ``seat_s``, ``watch_busy_s`` (seconds), ``reads``, ``tokens``,
    ``attempts`` (counts).
    """
    cp = summary.get("control_plane") or {}
    params = _params(summary)
    ratio = _p(params, "apiserver", "storage_size_ratio", 0.5)
    req = requests
    ok = (req["reason"].astype(str) == "ok").to_numpy() if "reason" in req else None
    keys = pd.DataFrame(
        {
            "verb": req["verb"].astype(str).to_numpy(),
            "resource": req["resource"].astype(str).to_numpy(),
            "ok": ok if ok is not None else np.ones(len(req), bool),
            "latency_s": req["latency_s"].to_numpy(float),
        }
    )
    has_size = "size_bytes" in req.columns
    if has_size:
        keys["size_bytes"] = req["size_bytes"].to_numpy(float)
    agg = {"n": ("latency_s", "size"), "latency_s": ("latency_s", "sum")}
    if has_size:
        agg["size_bytes"] = ("size_bytes", "sum")
    g = keys.groupby(["verb", "resource", "ok"], sort=True).agg(**agg).reset_index()
    g["category"] = [_category(v, r) for v, r in zip(g["verb"], g["resource"], strict=True)]
    g = g[g["category"].notna()].copy()
    g["base"] = g["resource"].str.split("/").str[0]
    rows: list[dict[str, Any]] = []
    for (cat, base, verb), grp in g.groupby(["category", "base", "verb"], sort=True):
        n_ok = int(grp.loc[grp["ok"], "n"].sum())
        rows.append(
            {
                "category": cat,
                "resource": base,
                "verb": verb,
                "requests": n_ok,
                "rejected": int(grp.loc[~grp["ok"], "n"].sum()),
                "seat_s": float(grp["latency_s"].sum()),
                "size_known": float(grp.loc[grp["ok"], "size_bytes"].sum()) if has_size else None,
            }
        )
    rows = _split_pod_deletes(rows, pods)
    rows = _split_scheduler_events(rows, int((cp.get("events") or {}).get("written") or 0))
    expired = int((cp.get("events") or {}).get("expired") or 0)
    if expired:
        rows.append(
            {"category": "Event expiry", "resource": "events", "verb": "delete",
             "requests": expired, "rejected": 0, "seat_s": 0.0, "size_known": 0.0,
             "no_api": True}
        )  # fmt: skip
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    t["write"] = t["verb"].isin(MUTATING_VERBS)
    t["level"] = t["category"].map(CATEGORY_LEVEL)
    t.loc[t["category"] == "reads", "level"] = "global-default"
    if "no_api" not in t.columns:
        t["no_api"] = False
    t["no_api"] = t["no_api"].astype("boolean").fillna(False).astype(bool)
    _estimate_bytes(t, cp, params, ratio, has_size)
    _estimate_etcd(t, params, components)
    _estimate_apiserver(t, summary, params)
    t["reads"] = np.where(t["category"] == "reads", t["requests"], 0)
    t["tokens"] = np.where(
        t["category"].isin(["pod binding", "scheduler Events"]), t["requests"], 0
    )
    t["attempts"] = 0
    if pods is not None and "attempts" in pods.columns:
        t = pd.concat(
            [
                t,
                pd.DataFrame(
                    [
                        {
                            "category": "scheduling attempts",
                            "resource": "pods",
                            "verb": "schedule",
                            "requests": int(pods["attempts"].sum()),
                            "rejected": 0,
                            "attempts": int(pods["attempts"].sum()),
                            "write": False,
                            "no_api": True,
                        }
                    ]
                ),
            ],
            ignore_index=True,
        )
    num = ["json_bytes", "etcd_bytes", "etcd_busy_s", "apiserver_cpu_s", "seat_s", "watch_busy_s"]
    t[num] = t[num].astype(float).fillna(0.0)
    for c in ("reads", "tokens", "attempts"):
        t[c] = t[c].fillna(0).astype(np.int64)
    t["bytes_estimated"] = t["bytes_estimated"].astype("boolean").fillna(False).astype(bool)
    cols = [
        "category", "resource", "verb", "level", "write", "requests", "rejected", "json_bytes",
        "etcd_bytes", "bytes_estimated", "etcd_busy_s", "apiserver_cpu_s", "seat_s",
        "watch_busy_s", "reads", "tokens", "attempts",
    ]  # fmt: skip
    return t[cols].reset_index(drop=True)


def _split_pod_deletes(rows: list[dict[str, Any]], pods: pd.DataFrame | None) -> list[dict]:
    """``delete pods`` is a graceful DELETE (an update: deletionTimestamp) for a pod on a node
    and a removal (an etcd delete) for each deleted pod: split by pods.parquet."""
    out = []
    for r in rows:
        if r["category"] != "pod delete":
            out.append(r)
            continue
        graceful = 0
        if pods is not None and {"deleted_s", "bound_s"} <= set(pods.columns):
            graceful = int((pods["deleted_s"].notna() & pods["bound_s"].notna()).sum())
        total = r["requests"] + r["rejected"]
        n_g = min(graceful, r["requests"])
        frac = n_g / total if total else 0.0
        out.append({**r, "requests": n_g, "rejected": 0, "seat_s": r["seat_s"] * frac})
        out.append(
            {
                **r,
                "category": "pod removal",
                "requests": r["requests"] - n_g,
                "seat_s": r["seat_s"] * (1 - frac),
            }
        )
    return out


def _split_scheduler_events(rows: list[dict[str, Any]], written: int) -> list[dict]:
    """``create events`` holds the scheduler's Events (``control_plane.events.written``) and
    the trace's own: split by that count."""
    out = []
    for r in rows:
        if r["category"] != "Events (trace)" or r["verb"] != "create" or not written:
            out.append(r)
            continue
        n_s = min(written, r["requests"])
        frac = n_s / r["requests"] if r["requests"] else 0.0
        out.append({**r, "category": "scheduler Events", "requests": n_s, "rejected": 0,
                    "seat_s": r["seat_s"] * frac})  # fmt: skip
        if r["requests"] - n_s or r["rejected"]:
            out.append({**r, "requests": r["requests"] - n_s, "seat_s": r["seat_s"] * (1 - frac)})
    return out


def _estimate_bytes(
    t: pd.DataFrame, cp: dict[str, Any], params: dict[str, Any], ratio: float, has_size: bool
) -> None:
    """Fill ``json_bytes``, ``etcd_bytes``, ``bytes_estimated`` (see the module docstring)."""
    stores = t["write"] & (t["verb"] != "delete") & ~t["no_api"]
    stores |= t["category"] == "pod delete"  # graceful delete: an update of the pod
    if has_size:
        t["json_bytes"] = t["size_known"].fillna(0.0).astype(float)
        t["etcd_bytes"] = np.where(stores, t["json_bytes"] * ratio, 0.0)
        t["bytes_estimated"] = False
        return
    known = {
        "Lease renewals": _p(params, "kubelet", "lease_size_bytes", 400.0),
        "NodeStatus": _p(params, "kubelet", "node_status_size_bytes", 15000.0),
        "scheduler Events": _p(params, "workload", "event_size_bytes", 700.0),
    }
    per = t["category"].map(known)
    is_known = per.notna().to_numpy() & stores.to_numpy()
    json_b = np.where(is_known, per.fillna(0.0).to_numpy() * t["requests"].to_numpy(), 0.0)
    total = (cp.get("etcd") or {}).get("bytes_written")
    unknown = stores.to_numpy() & ~is_known
    weights = np.where(unknown, t["requests"].to_numpy(float), 0.0)
    if isinstance(total, int | float) and weights.sum() > 0:
        rest = max(float(total) - float(json_b.sum()) * ratio, 0.0)
        json_b = json_b + rest / ratio * weights / weights.sum()
    t["json_bytes"] = json_b
    t["etcd_bytes"] = np.where(stores, json_b * ratio, 0.0)
    t["bytes_estimated"] = unknown & (weights > 0)


def _measured_busy_s(components: pd.DataFrame | None, metric: str) -> float | None:
    """Busy seconds integrated from a utilisation series (value x sample interval)."""
    if components is None or not len(components):
        return None
    sel = (components["metric"].astype(str) == metric).to_numpy()
    g = components[sel].sort_values("t_s")
    if not len(g):
        return None
    t = g["t_s"].to_numpy(float)
    dt = np.diff(np.concatenate([[0.0], t]))
    return float((g["value"].to_numpy(float) * dt).sum())


def _estimate_etcd(t: pd.DataFrame, params: dict[str, Any], components: Any) -> None:
    apply_s = _p(params, "etcd", "apply_us_per_request", 18.0) / 1e6
    byte_s = _p(params, "etcd", "ns_per_byte", 10.0) / 1e9
    writes = t["write"].to_numpy() & (t["requests"].to_numpy() > 0)
    n = np.where(writes, t["requests"].to_numpy(float), 0.0)
    variable = n * apply_s + t["etcd_bytes"].to_numpy(float) * byte_s
    busy = _measured_busy_s(components, "etcd.leader_utilisation")
    if busy is not None and n.sum() > 0:
        # Batch fsync / replication and backend commits: shared by the writes of each batch.
        rest = max(busy - float(variable.sum()), 0.0)
        variable = variable + rest * n / n.sum()
    t["etcd_busy_s"] = variable


def _watchers(resource: str, params: dict[str, Any], nodes: int) -> tuple[float, float]:
    """(recipients per event, serialisations per event) for writes to ``resource``."""
    wl = params.get("workload") or {}
    ctrl = float(wl.get("controller_watchers", 3))
    agents = float(wl.get("node_agents_per_node", 1)) * nodes
    recipients = {
        "pods": 1 + ctrl,  # the pod's kubelet (node-scoped) + cluster-wide controllers
        "nodes": ctrl,
        "leases": 1.0,
        "endpoints": agents,
        "endpointslices": agents,
        "services": agents,
    }.get(resource, 0.0)
    once = bool((params.get("apiserver") or {}).get("serialize_once_per_event", True))
    return recipients, (1.0 if once else recipients) if recipients else 0.0


def _estimate_apiserver(t: pd.DataFrame, summary: dict[str, Any], params: dict[str, Any]) -> None:
    req_s = _p(params, "apiserver", "request_cpu_us", 150.0) / 1e6
    ser_s = _p(params, "apiserver", "serialize_ns_per_byte", 5.0) / 1e9
    send_s = _p(params, "apiserver", "watch_send_us_per_watcher", 3.0) / 1e6
    nodes = int(summary.get("nodes_at_end") or 0)
    api = ~t["no_api"].to_numpy()
    n = np.where(api, t["requests"].to_numpy(float), 0.0)
    json_b = t["json_bytes"].to_numpy(float)
    w = t["write"].to_numpy()
    cpu = n * req_s + json_b * ser_s * np.where(w, 2.0, 1.0)
    watch = np.zeros(len(t))
    for i, (res, is_w, k) in enumerate(zip(t["resource"], w, n, strict=True)):
        if not is_w or not k:
            continue
        recipients, sers = _watchers(str(res), params, nodes)
        watch[i] = json_b[i] * sers * ser_s + k * recipients * send_s
    t["apiserver_cpu_s"] = cpu + watch
    t["watch_busy_s"] = watch


def contributors(categories: pd.DataFrame, component: str) -> pd.DataFrame:
    """The categories that load ``component``, largest first: ``category``, ``load`` (in the
    family's measure, see :data:`MEASURES`), ``share`` (0..1), plus ``requests``,
    ``etcd_bytes``, ``bytes_share`` and ``requests_share`` among the same categories."""
    fam = family_of(component)
    measure = MEASURES.get(fam, ("requests", "of requests"))[0]
    c = categories
    if c is None or c.empty:
        return pd.DataFrame(columns=["category", "load", "share"])
    if fam in ("etcd.leader", "etcd.quota"):
        sel = c["write"]
    elif fam == "apiserver.seats":
        level = component.removeprefix("apiserver.seats.")
        if level == "mutating":
            sel = c["write"] & ~c["no_api"] if "no_api" in c else c["write"]
        elif level == "readonly":
            sel = c["category"] == "reads"
        else:
            sel = c["level"] == level
        sel = sel & (c["category"] != "Event expiry")
    elif fam == "watch":
        sel = c["write"] & (c["resource"] == component.removeprefix("watch."))
        sel = sel & (c["category"] != "Event expiry")
    else:
        sel = c[measure] > 0 if measure in c else c["requests"] > 0
    sub = c[sel.to_numpy()] if hasattr(sel, "to_numpy") else c[sel]
    if sub.empty:
        return pd.DataFrame(columns=["category", "load", "share"])
    agg = (
        sub.groupby("category", sort=True)
        .agg(load=(measure, "sum"), requests=("requests", "sum"), etcd_bytes=("etcd_bytes", "sum"))
        .reset_index()
    )
    total = float(agg["load"].sum())
    agg["share"] = agg["load"] / total if total > 0 else 0.0
    rt, bt = float(agg["requests"].sum()), float(agg["etcd_bytes"].sum())
    agg["requests_share"] = agg["requests"] / rt if rt > 0 else 0.0
    agg["bytes_share"] = agg["etcd_bytes"] / bt if bt > 0 else 0.0
    agg["measure"] = measure
    agg = agg.sort_values(["share", "category"], ascending=[False, True], kind="stable")
    return agg.reset_index(drop=True)


# -- SLOs ------------------------------------------------------------------------------------------
def slo_table(requests: pd.DataFrame, pods: pd.DataFrame | None) -> tuple[pd.DataFrame, Any]:
    """Per SLO: threshold, verdict, worst p99, failed windows and the first failing 5-minute
    window (``first_fail_s`` its start in simulated seconds, ``first_fail_p99_s`` its value,
    ``first_fail_request``). Returns ``(table, SloReport)``; same evaluation as summary.json."""
    startup = None
    if pods is not None and {"startup_s", "created_s"} <= set(pods.columns):
        ok = pods["startup_s"].notna().to_numpy()
        startup = pd.DataFrame(
            {
                "t_s": pods["created_s"].to_numpy(float)[ok],
                "startup_s": pods["startup_s"].to_numpy(float)[ok],
            }
        )
    rep = evaluate_slos(requests, startup)
    rows = []
    w = rep.windows
    for slo, v in rep.overall.items():
        row = {
            "slo": slo,
            "threshold_s": v["threshold_s"],
            "pass": bool(v["pass"]),
            "worst_p99_s": float(v["worst_p99_s"]),
            "failed_windows": int(v["failed_windows"]),
            "windows": int(v["windows"]),
            "failing": ", ".join(v["failing"]),
            "first_fail_s": math.nan,
            "first_fail_p99_s": math.nan,
            "first_fail_request": None,
        }
        bad = w[(w["slo"] == slo) & ~w["pass"]]
        if len(bad):
            first_start = float(bad["window_start_s"].min())
            at = bad[bad["window_start_s"] == first_start].sort_values("p99_s", ascending=False)
            row["first_fail_s"] = first_start
            row["first_fail_p99_s"] = float(at["p99_s"].iloc[0])
            row["first_fail_request"] = (
                "pod startup"
                if slo == "pod-startup"
                else f"{at['verb'].iloc[0]} {at['resource'].iloc[0]}"
            )
        rows.append(row)
    return pd.DataFrame(rows), rep


# -- one run ---------------------------------------------------------------------------------------
@dataclass
class RunAnalysis:
    """The bottleneck analysis of one replay. ``components``, ``categories``, ``contributors``
    and ``slos`` are pandas tables; ``sentences`` the verdict in plain words."""

    path: str
    profile: str | None
    nodes: int | None
    components: pd.DataFrame
    categories: pd.DataFrame
    slos: pd.DataFrame
    responsible: str | None  # component id: the first to saturate, else the busiest
    saturated: bool
    saturated_s: float | None
    contributors: pd.DataFrame
    sentences: list[str] = field(default_factory=list)
    start: str | None = None  # wall-clock time of t = 0 (ISO 8601), for sentences

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tables as lists of records, NaN as null)."""
        return {
            "path": self.path,
            "profile": self.profile,
            "nodes": self.nodes,
            "responsible": self.responsible,
            "responsible_name": component_name(self.responsible) if self.responsible else None,
            "saturated": self.saturated,
            "saturated_s": self.saturated_s,
            "sentences": self.sentences,
            "components": _records(self.components),
            "contributors": _records(self.contributors),
            "categories": _records(self.categories),
            "slos": _records(self.slos),
        }


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    if df is None or df.empty:
        return []
    out = []
    for rec in df.to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                v = None
            if v is pd.NA:
                v = None
            clean[str(k)] = v
        out.append(clean)
    return out


def _clock(start: str | None, t_s: float) -> str:
    """``08:05:10 (t = 310 s)`` when the run's start time is known, else ``t = 310 s``."""
    rel = f"t = {t_s:,.0f} s"
    if start:
        try:
            t0 = datetime.fromisoformat(str(start))
            return f"{(t0 + timedelta(seconds=t_s)).strftime('%H:%M:%S')} ({rel})"
        except ValueError:
            pass
    return rel


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if x >= 0.01 or x == 0 else f"{100 * x:.1f}%"


def contributor_phrase(contrib: pd.DataFrame, component: str, top: int = 3) -> str:
    """ "driven by NodeStatus heartbeats (81% of etcd write bytes, ...)" for ``component``."""
    if contrib is None or contrib.empty or float(contrib["load"].sum()) <= 0:
        return ""
    fam = family_of(component)
    what = MEASURES.get(fam, ("requests", "of requests"))[1]
    first = contrib.iloc[0]
    name = CATEGORY_TEXT.get(str(first["category"]), str(first["category"]))
    detail = [f"{_pct(float(first['share']))} {what}"]
    if fam == "etcd.leader":
        detail.append(f"{_pct(float(first['bytes_share']))} of etcd write bytes")
        detail.append(f"{_pct(float(first['requests_share']))} of its writes")
    text = f"driven by {name} ({', '.join(detail)})"
    rest = [
        f"{CATEGORY_TEXT.get(str(r['category']), str(r['category']))} {_pct(float(r['share']))}"
        for _, r in contrib.iloc[1:top].iterrows()
        if float(r["share"]) >= 0.005
    ]
    if rest:
        text += "; then " + ", ".join(rest)
    return text


def analyze_tables(
    tables: RunTables,
    *,
    util_threshold: float = UTIL_THRESHOLD,
    sustain_s: float = SUSTAIN_S,
    trend_windows: int = TREND_WINDOWS,
    min_queue: float = MIN_QUEUE,
) -> RunAnalysis:
    """The analysis of already loaded tables (see :func:`analyze_run`)."""
    s = tables.summary
    cp = s.get("control_plane") or {}
    params = _params(s)
    pools = (params.get("apiserver") or {}).get("apf_enabled") is False
    quota = (cp.get("etcd") or {}).get("quota_bytes") or _p(params, "etcd", "quota_bytes", 0.0)
    comps = component_table(
        tables.components,
        util_threshold=util_threshold,
        sustain_s=sustain_s,
        trend_windows=trend_windows,
        min_queue=min_queue,
        quota_bytes=float(quota) or None,
        rejections=rejection_onsets(tables.requests, pools=pools, bin_s=sustain_s),
    )
    cats = category_table(tables.requests, s, tables.pods, tables.components)
    slos, _rep = slo_table(tables.requests, tables.pods)
    start = s.get("window_start")
    sat = comps[comps["saturated_s"].notna()]
    saturated = len(sat) > 0
    responsible = None
    sat_s = None
    if saturated:
        responsible = str(sat.iloc[0]["component"])
        sat_s = float(sat.iloc[0]["saturated_s"])
    elif len(comps) and comps["util_p95"].notna().any():
        responsible = str(comps.sort_values("util_p95", ascending=False).iloc[0]["component"])
    contrib = contributors(cats, responsible) if responsible else pd.DataFrame()
    an = RunAnalysis(
        path=str(tables.path),
        profile=cp.get("profile"),
        nodes=s.get("nodes_at_end"),
        components=comps,
        categories=cats,
        slos=slos,
        responsible=responsible,
        saturated=saturated,
        saturated_s=sat_s,
        contributors=contrib,
        start=start,
    )
    an.sentences = _run_sentences(an, util_threshold, sustain_s)
    return an


def analyze_run(run_dir: str | Path, **options: Any) -> RunAnalysis:
    """Bottleneck analysis of one replay output directory (``tracesim replay --profile``).

    ``options``: ``util_threshold`` (0..1, default 0.9), ``sustain_s`` (seconds, 60),
    ``trend_windows`` (3), ``min_queue`` (items, 1). Returns a :class:`RunAnalysis`; raises
    :class:`TracesimError` for a directory that is not a control-plane replay.
    """
    return analyze_tables(load_run(run_dir), **options)


def _run_sentences(an: RunAnalysis, util_threshold: float, sustain_s: float) -> list[str]:
    out: list[str] = []
    comps = an.components
    who = f"{an.profile} profile" if an.profile else "this run"
    size = f", {an.nodes:,} nodes" if an.nodes else ""
    if an.responsible is None:
        out.append(f"No component time series in {an.path}: nothing to judge.")
    else:
        row = comps[comps["component"] == an.responsible].iloc[0]
        name = component_name(an.responsible)
        phrase = contributor_phrase(an.contributors, an.responsible)
        if an.saturated:
            when = _clock(an.start, float(row["saturated_s"]))
            if row["how"] == "utilisation":
                u = float(row["util_at_saturation"])
                detail = f"utilisation {u:.2f} over {sustain_s:g} s"
                if u > 1:  # a rate limiter's demand, or the modelled CPU, beyond capacity
                    detail += ": demand above its capacity"
            elif row["how"] == "rejections":
                detail = (
                    f"it rejects requests with {row['rejected_reason']} from then on: "
                    f"{int(row['rejected']):,} in all"
                )
                if an.responsible == "etcd.quota" and pd.notna(row["util_peak"]):
                    detail += f"; database at {float(row['util_peak']):.0%} of its quota"
            else:
                detail = (
                    f"its queue grows without bound: {float(row['queue_end']):,.0f} waiting at "
                    f"the end, +{float(row['queue_trend_per_s']):.3g}/s"
                )
            text = f"With the {who}{size}, {name} saturates first, at {when} ({detail})"
        else:
            text = (
                f"With the {who}{size}, no component saturates (utilisation >= "
                f"{util_threshold:g} for {sustain_s:g} s, or a queue growing without bound); "
                f"the busiest is {name} (p95 utilisation {float(row['util_p95']):.2f}, peak "
                f"{float(row['util_peak']):.2f})"
            )
        out.append(text + (f", {phrase}." if phrase else "."))
        if row["how"] != "rejections" and int(row.get("rejected") or 0):
            out.append(
                f"It rejects requests with {row['rejected_reason']}: "
                f"{int(row['rejected']):,} in all."
            )
        others = comps[comps["saturated_s"].notna() & (comps["component"] != an.responsible)]
        if len(others):
            parts = [
                f"{component_name(str(r['component']))} at "
                f"{_clock(an.start, float(r['saturated_s']))}"
                for _, r in others.head(4).iterrows()
            ]
            out.append("Also saturating: " + "; ".join(parts) + ".")
    if an.slos is None or an.slos.empty:
        out.append("No SLO could be evaluated (no completed requests or pod startups).")
    else:
        failing = an.slos[~an.slos["pass"]]
        for _, r in failing.sort_values("first_fail_s").iterrows():
            name = SLO_TEXT.get(str(r["slo"]), str(r["slo"]))
            out.append(
                f"The {name} SLO fails from {_clock(an.start, float(r['first_fail_s']))} on "
                f"(p99 {float(r['first_fail_p99_s']):.3g} s > {float(r['threshold_s']):g} s, "
                f"{r['first_fail_request']}; worst p99 {float(r['worst_p99_s']):.3g} s, "
                f"{int(r['failed_windows'])} of {int(r['windows'])} windows fail)."
            )
        passing = an.slos[an.slos["pass"]]
        if len(passing):
            out.append(
                "Passing: "
                + ", ".join(
                    f"{SLO_TEXT.get(str(r['slo']), r['slo'])} (worst p99 "
                    f"{float(r['worst_p99_s']):.3g} s <= {float(r['threshold_s']):g} s)"
                    for _, r in passing.iterrows()
                )
                + "."
            )
    rejected = int(an.categories["rejected"].sum()) if len(an.categories) else 0
    if rejected:
        by = (
            an.categories[an.categories["rejected"] > 0]
            .groupby("category")["rejected"]
            .sum()
            .sort_values(ascending=False)
        )
        out.append(
            f"{rejected:,} requests were rejected ("
            + ", ".join(f"{CATEGORY_TEXT.get(str(k), k)} {int(v):,}" for k, v in by.head(4).items())
            + "); the SLOs judge only completed calls."
        )
    if len(an.categories) and an.categories["bytes_estimated"].any():
        out.append(
            "Bytes of pod and trace writes are estimated from etcd's total written bytes "
            "(requests.parquet has no sizes)."
        )
    return out


# -- sweeps ----------------------------------------------------------------------------------------
SLO_PREFIX = "control_plane.slo.slos."


@dataclass
class SweepAnalysis:
    """The bottleneck analysis of a sweep directory: per run, per SLO knee, and sentences."""

    path: str
    runs: pd.DataFrame  # one row per analysed run
    knees: pd.DataFrame  # one row per (variant, SLO)
    sentences: list[str]
    missing: list[str]
    table: pd.DataFrame = field(default_factory=pd.DataFrame)  # sweep.parquet (+ variant)
    analyses: dict[str, RunAnalysis] = field(default_factory=dict)  # run id -> analysis

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "path": self.path,
            "sentences": self.sentences,
            "missing": self.missing,
            "knees": _records(self.knees),
            "runs": _records(self.runs),
        }


def variant_labels(df: pd.DataFrame, setting_cols: list[str]) -> pd.Series:
    """``"2019-era"`` / ``"current, etcd.fsync_ms=2"``: the profile and varying settings."""
    parts = []
    if "profile" in df.columns and df["profile"].notna().any():
        parts.append(df["profile"].fillna("no profile").astype(str))
    for c in setting_cols:
        parts.append(c + "=" + df[c].astype(str))
    if not parts:
        return pd.Series(["all runs"] * len(df), index=df.index)
    out = parts[0]
    for p in parts[1:]:
        out = out + ", " + p
    return out


def analyze_sweep(sweep_dir: str | Path, **options: Any) -> SweepAnalysis:
    """Bottleneck analysis of a ``tracesim sweep`` directory (finished or interrupted).

    For each variant and SLO: the knee of the worst-p99 curve against cluster size (SLO
    crossing, else a bend), the component responsible at the first failing size and its
    contributors. Per run: the first component to saturate and when. Runs that are missing,
    failed or have no control-plane tables are listed in ``missing``; ``options`` as for
    :func:`analyze_run`. Raises :class:`TracesimError` when ``sweep_dir`` is not a sweep.
    """
    from .sweep import RUNS_DIR, load_state, load_table

    sweep_dir = Path(sweep_dir)
    state = load_state(sweep_dir)
    missing: list[str] = []
    if not state.complete:
        missing.append(state.describe())
        missing += [f"run {r.run_id} not finished" for r in state.missing]
        missing += [f"run {rid} failed: {msg}" for rid, msg in state.failed.items()]
    df = load_table(sweep_dir)
    empty = SweepAnalysis(str(sweep_dir), pd.DataFrame(), pd.DataFrame(), [], missing, df)
    if df.empty:
        empty.sentences.append("No finished run to analyse yet. " + state.describe())
        return empty
    setting_cols = [c for c in state.spec.settings if c in df.columns and df[c].nunique() > 1]
    df = df.assign(variant=variant_labels(df, setting_cols))
    analyses: dict[str, RunAnalysis] = {}
    rows = []
    for _, r in df.sort_values(["variant", "nodes", "seed", "run_id"]).iterrows():
        rid = str(r["run_id"])
        try:
            an = analyze_run(sweep_dir / RUNS_DIR / rid, **options)
        except TracesimError as exc:
            missing.append(f"run {rid}: {exc}")
            continue
        analyses[rid] = an
        comp = an.components
        row = comp[comp["component"] == an.responsible] if an.responsible else comp.iloc[:0]
        top = an.contributors.iloc[0] if len(an.contributors) else None
        rows.append(
            {
                "variant": r["variant"],
                "nodes": int(r["nodes"]),
                "seed": int(r["seed"]),
                "run_id": rid,
                "component": an.responsible,
                "saturated": an.saturated,
                "saturated_s": math.nan if an.saturated_s is None else an.saturated_s,
                "util_p95": float(row["util_p95"].iloc[0]) if len(row) else math.nan,
                "top_contributor": None if top is None else str(top["category"]),
                "top_share": math.nan if top is None else float(top["share"]),
                "slos_failing": ", ".join(an.slos.loc[~an.slos["pass"], "slo"])
                if len(an.slos)
                else "",
            }
        )
    runs = pd.DataFrame(rows)
    knees = _sweep_knees(df, runs, analyses)
    out = SweepAnalysis(str(sweep_dir), runs, knees, [], missing, df, analyses)
    out.sentences = _sweep_sentences(out)
    return out


def _sweep_knees(
    df: pd.DataFrame, runs: pd.DataFrame, analyses: dict[str, RunAnalysis]
) -> pd.DataFrame:
    slo_cols = sorted(
        c for c in df.columns if c.startswith(SLO_PREFIX) and c.endswith(".worst_p99_s")
    )
    rows = []
    for variant, grp in df.groupby("variant", sort=True):
        for col in slo_cols:
            slo = col[len(SLO_PREFIX) : -len(".worst_p99_s")]
            g = grp[["nodes", "run_id", col]].dropna()
            if g.empty:
                continue
            thr_col = f"{SLO_PREFIX}{slo}.threshold_s"
            thr = (
                float(grp[thr_col].dropna().iloc[0])
                if thr_col in grp and grp[thr_col].notna().any()
                else THRESHOLDS_S.get(slo)
            )
            k = kneelib.find_knee(g["nodes"].to_numpy(float), g[col].to_numpy(float), thr)
            row: dict[str, Any] = {
                "variant": variant,
                "slo": slo,
                "threshold_s": thr,
                "knee": k.kind or "none",
                "size_nodes": k.size,
                "first_failing_nodes": None,
                "component": None,
                "saturated": None,
                "top_contributor": None,
                "top_share": math.nan,
                "sentence": kneelib.describe(k, f"the {SLO_TEXT.get(slo, slo)} SLO's p99", "s"),
                "contributors": "",
            }
            # The run that explains it: the first failing size, else the largest size.
            sizes = np.sort(g["nodes"].unique())
            x, y = kneelib.aggregate(g["nodes"].to_numpy(float), g[col].to_numpy(float))
            failing = x[y > thr] if thr is not None else np.array([])
            at = float(failing[0]) if len(failing) else float(sizes[-1])
            if len(failing):
                row["first_failing_nodes"] = int(at)
            rid = str(g[g["nodes"] == at].sort_values("run_id")["run_id"].iloc[0])
            an = analyses.get(rid)
            if an is not None and an.responsible:
                row["component"] = an.responsible
                row["saturated"] = an.saturated
                row["at_nodes"] = int(at)
                row["run_id"] = rid
                if len(an.contributors):
                    row["top_contributor"] = str(an.contributors.iloc[0]["category"])
                    row["top_share"] = float(an.contributors.iloc[0]["share"])
                    row["contributors"] = contributor_phrase(an.contributors, an.responsible)
            rows.append(row)
    return pd.DataFrame(rows)


def _sweep_sentences(sa: SweepAnalysis) -> list[str]:
    out: list[str] = []
    runs, knees = sa.runs, sa.knees
    if runs.empty:
        return ["No run of the sweep has control-plane results to analyse."]
    for variant, vr in runs.groupby("variant", sort=True):
        sizes = sorted(vr["nodes"].unique())
        span = f"{sizes[0]:,}-{sizes[-1]:,} nodes" if len(sizes) > 1 else f"{sizes[0]:,} nodes"
        sat = vr[vr["saturated"]].sort_values(["nodes", "seed"])
        if len(sat):
            f = sat.iloc[0]
            an = sa.analyses[str(f["run_id"])]
            when = _clock(an.start, float(f["saturated_s"]))
            phrase = contributor_phrase(an.contributors, str(f["component"]))
            out.append(
                f"{variant} ({span}): from {int(f['nodes']):,} nodes on, "
                f"{component_name(str(f['component']))} saturates first (at {when} in that run)"
                + (f", {phrase}" if phrase else "")
                + "."
            )
        else:
            big = vr.sort_values(["nodes", "seed"]).iloc[-1]
            an = sa.analyses[str(big["run_id"])]
            phrase = contributor_phrase(an.contributors, str(big["component"]))
            out.append(
                f"{variant} ({span}): no component saturates; at {int(big['nodes']):,} nodes "
                f"the busiest is {component_name(str(big['component']))} (p95 utilisation "
                f"{float(big['util_p95']):.2f})" + (f", {phrase}" if phrase else "") + "."
            )
        kv = knees[knees["variant"] == variant] if len(knees) else knees
        for _, k in kv.iterrows():
            name = SLO_TEXT.get(str(k["slo"]), str(k["slo"]))
            if k["knee"] == "slo":
                where = (
                    f"already at {int(k['size_nodes']):,} nodes (the smallest size)"
                    if k["first_failing_nodes"] == sizes[0]
                    else f"at about {float(k['size_nodes']):,.0f} nodes"
                )
                resp = ""
                if k["component"]:
                    verb = "saturates" if k["saturated"] else "is the busiest component"
                    resp = (
                        f"; at {int(k['first_failing_nodes']):,} nodes "
                        f"{component_name(str(k['component']))} {verb}"
                        + (f", {k['contributors']}" if k["contributors"] else "")
                    )
                out.append(f"  The {name} SLO breaks {where}{resp}.")
            else:
                sent = str(k["sentence"])
                out.append("  " + sent[0].upper() + sent[1:])
    if sa.missing:
        out.append("Missing: " + sa.missing[0])
    return out


# -- entry point -----------------------------------------------------------------------------------
def analyze(results: str | Path, **options: Any) -> RunAnalysis | SweepAnalysis:
    """:func:`analyze_sweep` for a sweep directory (``sweep.json``), else :func:`analyze_run`."""
    results = Path(results)
    if not results.exists():
        raise TracesimError(f"{results}: no such directory; give a replay --out or sweep directory")
    if not results.is_dir():
        raise TracesimError(f"{results}: not a directory; give a replay --out or sweep directory")
    if (results / "sweep.json").is_file():
        return analyze_sweep(results, **options)
    return analyze_run(results, **options)


def plot_sweep(sa: SweepAnalysis, slo: str | None = None) -> Any:
    """A matplotlib figure: worst p99 per SLO against cluster size, one line per variant, the
    SLO threshold dashed and each knee marked with an X (one panel per SLO, or only ``slo``)."""
    import matplotlib.pyplot as plt

    df = sa.table
    cols = sorted(c for c in df.columns if c.startswith(SLO_PREFIX) and c.endswith(".worst_p99_s"))
    names = [c[len(SLO_PREFIX) : -len(".worst_p99_s")] for c in cols]
    if slo is not None:
        names = [n for n in names if n == slo]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(6 * max(len(names), 1), 4.2))
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names, strict=False):
        col = f"{SLO_PREFIX}{name}.worst_p99_s"
        thr = THRESHOLDS_S.get(name)
        for variant, grp in df.groupby("variant", sort=True):
            g = grp[["nodes", col]].dropna()
            if g.empty:
                continue
            x, y = kneelib.aggregate(g["nodes"].to_numpy(float), g[col].to_numpy(float))
            (line,) = ax.plot(x, y, marker="o", label=str(variant))
            k = kneelib.find_knee(x, y, thr)
            if k.found:
                yk = float(np.interp(k.size, x, y))
                ax.plot(
                    [k.size],
                    [yk],
                    marker="X",
                    markersize=12,
                    color=line.get_color(),
                    markeredgecolor="black",
                    linestyle="none",
                )
        if thr is not None:
            ax.axhline(thr, color="black", linestyle="--", linewidth=1, label=f"SLO {thr:g} s")
        ax.set(
            xlabel="cluster size (nodes)",
            ylabel="worst p99 (s)",
            title=f"{SLO_TEXT.get(name, name)} SLO",
            yscale="log",
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# -- display tables --------------------------------------------------------------------------------
def run_tables(an: RunAnalysis, top: int = 10) -> dict[str, pd.DataFrame]:
    """Readable tables of a run analysis (CLI, report, notebook): the components by
    saturation time and utilisation, the responsible component's contributors, the load per
    request category, and the SLOs with their first failing window."""
    out: dict[str, pd.DataFrame] = {}
    c = an.components
    if len(c):
        out["Components (first to saturate on top)"] = pd.DataFrame(
            {
                "component": c["name"],
                "util p95": c["util_p95"].round(3),
                "util peak": c["util_peak"].round(3),
                "queue peak": c["queue_peak"].round(1),
                "queue at end": c["queue_end"].round(1),
                "queue grows": c["queue_growing"],
                "saturated at (s)": c["saturated_s"].round(1),
                "by": c["how"],
            }
        ).head(top)
    if an.responsible and len(an.contributors):
        k = an.contributors
        label = MEASURES.get(family_of(an.responsible), ("requests", "of requests"))[1]
        out[f"Contributors to {component_name(an.responsible)}"] = pd.DataFrame(
            {
                "category": k["category"],
                f"share {label}": (100 * k["share"]).round(1).astype(str) + " %",
                "requests": k["requests"].astype(np.int64),
                "share of requests": (100 * k["requests_share"]).round(1).astype(str) + " %",
                "etcd bytes (MiB)": (k["etcd_bytes"] / 2**20).round(2),
                "share of etcd bytes": (100 * k["bytes_share"]).round(1).astype(str) + " %",
            }
        )
    cats = an.categories
    if len(cats):
        g = (
            cats.groupby("category", sort=True)
            .agg(
                requests=("requests", "sum"),
                rejected=("rejected", "sum"),
                etcd_bytes=("etcd_bytes", "sum"),
                etcd_busy_s=("etcd_busy_s", "sum"),
                apiserver_cpu_s=("apiserver_cpu_s", "sum"),
                seat_s=("seat_s", "sum"),
            )
            .reset_index()
        )
        tb = float(g["etcd_bytes"].sum()) or 1.0
        te = float(g["etcd_busy_s"].sum()) or 1.0
        out["Load by request category"] = pd.DataFrame(
            {
                "category": g["category"],
                "requests": g["requests"],
                "rejected": g["rejected"],
                "etcd MiB": (g["etcd_bytes"] / 2**20).round(2),
                "% etcd bytes": (100 * g["etcd_bytes"] / tb).round(1),
                "% etcd busy": (100 * g["etcd_busy_s"] / te).round(1),
                "apiserver CPU (s)": g["apiserver_cpu_s"].round(3),
                "seat time (s)": g["seat_s"].round(3),
            }
        ).sort_values("% etcd busy", ascending=False, kind="stable")
    if len(an.slos):
        s = an.slos
        out["SLOs (99th percentile per 5-minute window)"] = pd.DataFrame(
            {
                "SLO": s["slo"],
                "threshold (s)": s["threshold_s"],
                "worst p99 (s)": s["worst_p99_s"].round(4),
                "verdict": np.where(s["pass"], "pass", "FAIL"),
                "failed windows": s["failed_windows"].astype(str)
                + " of "
                + s["windows"].astype(str),
                "first failing window (s)": s["first_fail_s"].round(1),
                "its p99 (s)": s["first_fail_p99_s"].round(4),
                "request": s["first_fail_request"],
            }
        )
    return out


def sweep_tables(sa: SweepAnalysis) -> dict[str, pd.DataFrame]:
    """Readable tables of a sweep analysis: the knee per variant and SLO (with the component
    responsible and its top contributor) and the verdict per run."""
    out: dict[str, pd.DataFrame] = {}
    k = sa.knees
    if len(k):
        out["SLO knees per variant"] = pd.DataFrame(
            {
                "variant": k["variant"],
                "SLO": k["slo"],
                "threshold (s)": k["threshold_s"],
                "knee": k["knee"],
                "at (nodes)": pd.to_numeric(k["size_nodes"]).round(0).astype("Int64"),
                "first failing size": pd.to_numeric(k["first_failing_nodes"]).astype("Int64"),
                "component there": [component_name(c) if c else None for c in k["component"]],
                "top contributor": k["top_contributor"],
                "its share": (100 * k["top_share"]).round(1),
            }
        )
    r = sa.runs
    if len(r):
        out["Verdict per run"] = pd.DataFrame(
            {
                "variant": r["variant"],
                "nodes": r["nodes"],
                "seed": r["seed"],
                "first to saturate / busiest": [
                    component_name(c) if c else None for c in r["component"]
                ],
                "saturates": r["saturated"],
                "at (s)": r["saturated_s"].round(1),
                "util p95": r["util_p95"].round(3),
                "top contributor": r["top_contributor"],
                "its share (%)": (100 * r["top_share"]).round(1),
                "SLOs failing": r["slos_failing"],
            }
        )
    return out
