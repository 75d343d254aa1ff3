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
"""

from __future__ import annotations

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


def _window_p99(df: pd.DataFrame, keys: list[str], value: str, start_s: float, window_s: float):
    win = np.floor((df["t_s"].to_numpy() - start_s) / window_s).astype(np.int64)
    g = df.assign(window=win).groupby([*keys, "window"], observed=True)[value]
    out = g.quantile(0.99).rename("p99_s").to_frame()
    out["count"] = g.size()
    out = out.reset_index()
    out["window_start_s"] = start_s + out["window"] * window_s
    return out


def _classify(requests: pd.DataFrame) -> pd.DataFrame:
    verb = requests["verb"].astype(str)
    scope = requests["scope"].astype(str)
    slo = np.full(len(requests), "", dtype=object)
    slo[verb.isin(MUTATING_VERBS).to_numpy()] = "mutating"
    is_read = verb.isin(READ_VERBS).to_numpy()
    for sc in ("resource", "namespace", "cluster"):
        slo[is_read & (scope == sc).to_numpy()] = f"read-{sc}"
    out = requests.assign(slo=slo, verb=verb, resource=requests["resource"].astype(str))
    return out[out["slo"] != ""]


def evaluate_slos(
    requests: pd.DataFrame | None = None,
    pod_startup: pd.DataFrame | None = None,
    *,
    window_s: float = WINDOW_S,
    start_s: float | None = None,
) -> SloReport:
    """SIG Scalability SLOs over request samples and pod startup latencies.

    ``requests``: columns ``t_s`` (completion time, s), ``latency_s``, ``verb``, ``resource``,
    ``scope`` (``resource``/``namespace``/``cluster``) and optionally ``reason`` (``ok`` or a
    rejection reason), as :meth:`tracesim.sim.metrics.Metrics.requests_frame` gives.
    ``pod_startup``: columns ``t_s`` (pod creation time, s) and ``startup_s``.
    Returns an :class:`SloReport` (per-window table and per-SLO verdicts).
    """
    frames = []
    rejected: dict[str, int] = {}
    starts = []
    if requests is not None and len(requests):
        starts.append(float(requests["t_s"].min()))
    if pod_startup is not None and len(pod_startup):
        starts.append(float(pod_startup["t_s"].min()))
    t0 = start_s if start_s is not None else (min(starts) if starts else 0.0)
    if requests is not None and len(requests):
        req = requests
        if "reason" in req.columns:
            reason = req["reason"].astype(str)
            bad = reason != "ok"
            if bad.any():
                rejected = {str(k): int(v) for k, v in reason[bad].value_counts().items()}
            req = req[~bad.to_numpy()]
        req = _classify(req)
        if len(req):
            frames.append(_window_p99(req, ["slo", "resource", "verb"], "latency_s", t0, window_s))
    if pod_startup is not None and len(pod_startup):
        ps = pod_startup.assign(slo="pod-startup", resource="pods", verb="startup")
        frames.append(_window_p99(ps, ["slo", "resource", "verb"], "startup_s", t0, window_s))
    if not frames:
        return SloReport(pd.DataFrame(), {}, rejected)
    windows = pd.concat(frames, ignore_index=True)
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
