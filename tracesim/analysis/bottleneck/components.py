"""Components over time: each control-plane component's utilisation and queue length from
``components.parquet``, and when it **saturates**: the start of the first ``sustain_s``
stretch whose mean utilisation is at least ``util_threshold`` (0.9), the time from which a
queue grows without bound (the queue's mean rises over each of the last ``trend_windows``
windows, ends above ``min_queue`` and at least doubles; the time is when it last left zero),
or the time it starts rejecting requests because it is full (etcd's quota, an API server
priority level or max-in-flight pool).

Components: etcd leader and read workers, etcd's database (quota), API server CPU and seats
per priority level or max-in-flight pool, watch fan-out per resource, scheduler loop,
scheduler client rate limiter.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from ..slo import MUTATING_VERBS, READ_VERBS
from .categories import CATEGORY_LEVEL, category_of
from .text import component_name

#: Utilisation at or above which a component counts as saturated (sustained).
UTIL_THRESHOLD = 0.9
#: How long (simulated seconds) the utilisation must stay at the threshold on average.
SUSTAIN_S = 60.0
#: Windows at the end of a run over which a growing queue must rise in each.
TREND_WINDOWS = 3
#: A queue below this many waiting items is not a bottleneck, however it trends.
MIN_QUEUE = 1.0


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
        cat = category_of(v, r)
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
