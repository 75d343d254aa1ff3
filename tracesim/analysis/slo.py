"""Kubernetes SIG Scalability SLOs, evaluated as they are defined.

Source: kubernetes/community ``sig-scalability/slos/slos.md`` (summarised in
``../shared/design/control-plane-facts.md``). Each SLI is a 99th percentile over 5-minute
windows; the SLO is judged per cluster-day as the 99th percentile of those window values:

- mutating API calls on one object, per (resource, verb): <= 1 s;
- read-only API calls, per (resource, verb, scope): <= 1 s for one object (scope
  ``resource``), <= 5 s namespace-scoped, <= 30 s cluster-scoped;
- stateless pod startup (creation to running, observed): <= 5 s.

Only completed calls count (a request rejected with 429 has no latency to judge; the report
lists rejections separately). Watches are long-running and excluded, as in the SLO. Windows
are aligned to ``start_s`` (default: the first sample). The per-day percentile across windows
uses the "higher" rule, so with fewer than 100 windows a run passes only if every window does.

The evaluation runs on integer codes (:class:`CodedRequests`): verb/resource/scope/reason
combinations are classified once per vocabulary entry, rows are grouped by integer keys and
each window's 99th percentile is computed with numpy, exactly as ``pandas`` ``groupby(...)
.quantile(0.99)`` does (linear interpolation between the two order statistics around
``0.99 * (n - 1)``). A plain DataFrame with string or categorical columns is turned into codes
first (:meth:`CodedRequests.from_frame`); the metrics buffers of a replay already are codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

WINDOW_S = 300.0
MUTATING_VERBS = ("create", "update", "patch", "delete")
READ_VERBS = ("get", "list")
#: SLO name -> threshold in seconds.
THRESHOLDS_S = {
    "mutating": 1.0,
    "read-resource": 1.0,
    "read-namespace": 5.0,
    "read-cluster": 30.0,
    "pod-startup": 5.0,
}


@dataclass
class SloReport:
    """Per-window SLI values and the overall verdict per SLO."""

    windows: pd.DataFrame  # slo, resource, verb, window, window_start_s, count, p99_s, ...
    overall: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True if every evaluated SLO passed."""
        return all(v["pass"] for v in self.overall.values())

    def to_summary(self) -> dict[str, Any]:
        """A JSON-serialisable dict for ``summary.json``."""
        return {
            "pass": self.passed,
            "window_s": WINDOW_S,
            "slos": self.overall,
            "rejected_requests": self.rejected,
        }


#: The request SLOs, by code.
_REQUEST_SLOS = ("mutating", "read-resource", "read-namespace", "read-cluster")
_READ_SLO = {"resource": 1, "namespace": 2, "cluster": 3}
#: The percentile of each window (pandas' ``quantile(0.99)``, linear interpolation).
_Q = 0.99


@dataclass
class CodedRequests:
    """Request samples as integer codes into small vocabularies: no string per row.

    ``verb``, ``resource``, ``scope`` and ``reason`` are integer arrays of codes into
    ``verbs``, ``resources``, ``scopes`` and ``reasons`` (distinct names; code -1 = missing,
    any integer width, e.g. the metrics buffers' ``uint8`` codes); ``reason`` None
    means every request succeeded. ``t_s`` is the completion time (s), ``latency_s`` the
    latency (s). ``rows`` (optional boolean mask) selects the rows to evaluate, as if the
    others were not there."""

    t_s: np.ndarray
    latency_s: np.ndarray
    verb: np.ndarray
    verbs: Sequence[str]
    resource: np.ndarray
    resources: Sequence[str]
    scope: np.ndarray
    scopes: Sequence[str]
    reason: np.ndarray | None = None
    reasons: Sequence[str] = ()
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t_s) if self.rows is None else int(np.count_nonzero(self.rows))

    @classmethod
    def from_frame(cls, requests: pd.DataFrame) -> CodedRequests:
        """The columns of a request frame (as :func:`evaluate_slos` takes it) as codes:
        categorical columns give their codes, others are factorised; values are compared as
        their ``str`` (as ``astype(str)`` gives them), missing values get code -1."""
        verb, verbs = _codes(requests["verb"])
        resource, resources = _codes(requests["resource"])
        scope, scopes = _codes(requests["scope"])
        reason, reasons = _codes(requests["reason"]) if "reason" in requests.columns else (None, [])
        return cls(
            t_s=requests["t_s"].to_numpy(dtype=np.float64, na_value=np.nan),
            latency_s=requests["latency_s"].to_numpy(dtype=np.float64, na_value=np.nan),
            verb=verb,
            verbs=verbs,
            resource=resource,
            resources=resources,
            scope=scope,
            scopes=scopes,
            reason=reason,
            reasons=reasons,
        )


def _codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 = missing) and the distinct ``str`` values of one column."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        values = col.cat.categories
    else:
        codes, values = pd.factorize(col, sort=False)
    names = [str(v) for v in values]
    if len(set(names)) < len(names):
        # Values that differ but read the same as strings (1 and "1") are one value.
        first: dict[str, int] = {}
        remap = np.array([first.setdefault(n, len(first)) for n in names], np.int64)
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
        names = list(first)
    return np.asarray(codes), names


def _rank(names: Sequence[str]) -> np.ndarray:
    """Per code, its position in sorted order (the order of pandas' sorted group keys)."""
    order = sorted(range(len(names)), key=lambda i: names[i])
    rank = np.empty(len(names), np.int64)
    rank[order] = np.arange(len(names))
    return rank


def _window_quantiles(
    key: np.ndarray, values: np.ndarray, n_keys: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty group ``key`` (0 <= key < n_keys), in key order: the keys, the row
    counts and the 99th percentile of ``values`` (NaNs skipped; NaN if none), as pandas'
    groupby ``quantile(0.99)`` computes it: ``v[i] + (v[i+1] - v[i]) * frac`` with ``v``
    sorted, ``i = int(0.99 * (n - 1))`` and ``frac = (0.99 * (n - 1)) % 1``."""
    if n_keys > 4 * len(key) + (1 << 16):
        # A sparse key range: number the keys present instead (a sort, rare).
        keys, inv = np.unique(key, return_inverse=True)
        found, count, p99 = _window_quantiles(inv.reshape(-1), values, len(keys))
        return keys[found], count, p99
    counts = np.bincount(key, minlength=n_keys)
    nan = np.isnan(values)
    n_nan = np.bincount(key[nan], minlength=n_keys) if nan.any() else np.zeros(n_keys, np.int64)
    del nan
    # Group the rows (a stable radix sort when the keys fit in 16 bits); each group's order
    # statistics then come from a partition of its slice, not a sort of everything.
    order = np.argsort(key.astype(np.uint16) if n_keys <= 1 << 16 else key, kind="stable")
    grouped = values[order]
    del order
    ends = np.cumsum(counts)
    found = np.flatnonzero(counts)
    p99 = np.empty(len(found))
    for j, g in enumerate(found.tolist()):
        a, b = int(ends[g] - counts[g]), int(ends[g])
        nn = (b - a) - int(n_nan[g])
        if nn == 0:
            p99[j] = np.nan
            continue
        q_idx = _Q * float(nn - 1)
        i = int(q_idx)
        frac = q_idx % 1.0
        seg = grouped[a:b]
        if frac == 0.0:
            p99[j] = float(np.partition(seg, i)[i])
        else:
            part = np.partition(seg, (i, i + 1))
            lo, hi = float(part[i]), float(part[i + 1])
            p99[j] = lo + (hi - lo) * frac
    return found, counts[found], p99


def _windows(t_s: np.ndarray, start_s: float, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes 0..W-1 of the windows of ``t_s`` (window ``floor((t - start) / window)``),
    and the window number of each code."""
    x = t_s - start_s
    x /= window_s
    np.floor(x, out=x)
    win = x.astype(np.int64)
    del x
    if not len(win):
        return win, win
    lo, hi = int(win.min()), int(win.max())
    if hi - lo <= 4 * len(win) + 1024:
        win -= lo
        return win, np.arange(lo, hi + 1, dtype=np.int64)
    uniq, inv = np.unique(win, return_inverse=True)
    return inv.reshape(-1).astype(np.int64), uniq


def _request_windows(req: CodedRequests, t0: float, window_s: float) -> pd.DataFrame | None:
    """Per (slo, resource, verb, window) of the successful requests the SLOs judge: the
    99th-percentile latency and the count, sorted as pandas sorts its group keys."""
    verbs, resources, scopes = list(req.verbs), list(req.resources), list(req.scopes)
    n_res, n_verb = max(len(resources), 1), max(len(verbs), 1)
    slo_rank, res_rank, verb_rank = _rank(_REQUEST_SLOS), _rank(resources), _rank(verbs)
    # The group of a row is (slo, resource, verb), numbered in sorted order:
    # (slo_rank * n_res + res_rank) * n_verb + verb_rank = by_vs[verb, scope] + by_res[res],
    # two lookups in tables made once per vocabulary entry (index 0: the missing value).
    ns = len(scopes) + 1
    by_vs = np.full((len(verbs) + 1) * ns, -1, np.int64)
    for v, verb in enumerate(verbs):
        for s, scope in enumerate([None, *scopes]):
            if verb in MUTATING_VERBS:
                slo = 0
            elif verb in READ_VERBS and scope in _READ_SLO:
                slo = _READ_SLO[scope]
            else:
                continue
            by_vs[(v + 1) * ns + s] = slo_rank[slo] * n_res * n_verb + verb_rank[v]
    by_res = np.r_[-1, res_rank * n_verb]
    vs = req.verb.astype(np.int32)
    vs += 1
    vs *= ns
    vs += req.scope
    vs += 1
    group = by_vs[vs]
    del vs
    r = req.resource.astype(np.int32)
    r += 1
    res_part = by_res[r]
    del r
    keep = group >= 0
    keep &= res_part >= 0
    group += res_part
    del res_part
    if req.reason is not None:
        reasons = list(req.reasons)
        if "ok" in reasons:
            keep &= req.reason == reasons.index("ok")
        else:
            keep[:] = False
    if req.rows is not None:
        keep &= req.rows
    if not keep.any():
        return None
    group = group[keep]
    wcode, wnum = _windows(req.t_s[keep], t0, window_s)
    n_win = len(wnum)
    key = group * n_win
    key += wcode
    del group, wcode
    found, count, p99 = _window_quantiles(
        key, req.latency_s[keep], len(_REQUEST_SLOS) * n_res * n_verb * n_win
    )
    del key, keep
    # Decode the group keys into names.
    pv = found // n_win
    slo_by_rank = np.array(sorted(_REQUEST_SLOS), dtype=object)
    res_by_rank = np.array(sorted(resources), dtype=object)
    verb_by_rank = np.array(sorted(verbs), dtype=object)
    return _frame(
        slo_by_rank[pv // n_verb // n_res],
        res_by_rank[(pv // n_verb) % n_res],
        verb_by_rank[pv % n_verb],
        wnum[found % n_win],
        p99,
        count,
        t0,
        window_s,
    )


def _frame(
    slo: Any,
    resource: Any,
    verb: Any,
    window: np.ndarray,
    p99: np.ndarray,
    count: np.ndarray,
    t0: float,
    window_s: float,
) -> pd.DataFrame:
    """The per-window table (columns as the SLO report gives them)."""
    return pd.DataFrame(
        {
            "slo": pd.Series(np.asarray(slo, dtype=object), dtype=object).astype(str),
            "resource": pd.Series(np.asarray(resource, dtype=object), dtype=object).astype(str),
            "verb": pd.Series(np.asarray(verb, dtype=object), dtype=object).astype(str),
            "window": window.astype(np.int64),
            "p99_s": p99,
            "count": count.astype(np.int64),
            "window_start_s": t0 + window.astype(np.int64) * window_s,
        }
    )


def _startup_windows(pod_startup: pd.DataFrame, t0: float, window_s: float) -> pd.DataFrame:
    t = pod_startup["t_s"].to_numpy(dtype=np.float64, na_value=np.nan)
    wcode, wnum = _windows(t, t0, window_s)
    v = pod_startup["startup_s"].to_numpy(dtype=np.float64, na_value=np.nan)
    found, count, p99 = _window_quantiles(wcode, v, len(wnum))
    n = len(found)
    return _frame(
        ["pod-startup"] * n, ["pods"] * n, ["startup"] * n, wnum[found], p99, count, t0, window_s
    )


def _rejected(req: CodedRequests) -> dict[str, int]:
    """Rejected requests per reason, ordered as pandas' ``value_counts`` orders them (count
    descending; its sort applied to the counts in order of first appearance)."""
    if req.reason is None:
        return {}
    reasons = list(req.reasons)
    codes = req.reason if req.rows is None else req.reason[req.rows]
    ok = reasons.index("ok") if "ok" in reasons else -2
    bad = codes[(codes != ok) & (codes >= 0)] if codes.dtype.kind == "i" else codes[codes != ok]
    if not len(bad):
        return {}
    counts = np.bincount(bad, minlength=len(reasons))
    present = np.flatnonzero(counts)
    first = [int(np.argmax(bad == c)) for c in present.tolist()]
    seen = present[np.argsort(first)]
    ordered = pd.Series(counts[seen], index=[reasons[c] for c in seen.tolist()])
    ordered = ordered.sort_values(ascending=False)
    return {str(k): int(v) for k, v in ordered.items()}


def _min_time(t: np.ndarray) -> float:
    """The earliest time, NaNs skipped (as pandas' ``min``); NaN if none."""
    return float(np.fmin.reduce(t))


def evaluate_slos(
    requests: pd.DataFrame | CodedRequests | None = None,
    pod_startup: pd.DataFrame | None = None,
    *,
    window_s: float = WINDOW_S,
    start_s: float | None = None,
) -> SloReport:
    """SIG Scalability SLOs over request samples and pod startup latencies.

    ``requests``: columns ``t_s`` (completion time, s), ``latency_s``, ``verb``, ``resource``,
    ``scope`` (``resource``/``namespace``/``cluster``) and optionally ``reason`` (``ok`` or a
    rejection reason), as :meth:`tracesim.sim.metrics.Metrics.requests_frame` gives; or the
    same as :class:`CodedRequests` (the metrics buffers' codes, no frame).
    ``pod_startup``: columns ``t_s`` (pod creation time, s) and ``startup_s``.
    Windows start at ``start_s`` (default: the earliest request or pod creation).
    Returns an :class:`SloReport` (per-window table and per-SLO verdicts).
    """
    if isinstance(requests, pd.DataFrame):
        requests = CodedRequests.from_frame(requests) if len(requests) else None
    has_req = requests is not None and len(requests) > 0
    has_pods = pod_startup is not None and len(pod_startup) > 0
    frames = []
    rejected: dict[str, int] = {}
    starts = []
    if has_req:
        t_req = requests.t_s if requests.rows is None else requests.t_s[requests.rows]
        starts.append(_min_time(t_req))
        del t_req
    if has_pods:
        starts.append(float(pod_startup["t_s"].min()))
    t0 = start_s if start_s is not None else (min(starts) if starts else 0.0)
    if has_req:
        rejected = _rejected(requests)
        req_windows = _request_windows(requests, t0, window_s)
        if req_windows is not None:
            frames.append(req_windows)
    if has_pods:
        frames.append(_startup_windows(pod_startup, t0, window_s))
    if not frames:
        return SloReport(pd.DataFrame(), {}, rejected)
    windows = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    windows["threshold_s"] = windows["slo"].map(THRESHOLDS_S)
    windows["pass"] = windows["p99_s"] <= windows["threshold_s"]
    overall: dict[str, dict[str, Any]] = {}
    for slo, grp in windows.groupby("slo", sort=True):
        # Judged per (resource, verb) pair: the pair's per-day 99th percentile of windows.
        worst = 0.0
        failing = []
        for (res, verb), pair in grp.groupby(["resource", "verb"], sort=True):
            day = float(np.quantile(pair["p99_s"].to_numpy(), 0.99, method="higher"))
            worst = max(worst, day)
            if day > THRESHOLDS_S[str(slo)]:
                failing.append(f"{verb} {res}")
        overall[str(slo)] = {
            "pass": not failing,
            "threshold_s": THRESHOLDS_S[str(slo)],
            "worst_p99_s": worst,
            "windows": len(grp),
            "failed_windows": int((~grp["pass"]).sum()),
            "failing": failing,
        }
    return SloReport(windows, overall, rejected)
