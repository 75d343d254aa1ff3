"""The bottleneck analysis of one replay (:func:`analyze_run`): the components and when each
saturates, the first to saturate (ties: the higher utilisation) or the busiest one when none
does, the SIG Scalability SLOs (:func:`tracesim.analysis.slo.evaluate_slos`, the same
evaluation as ``summary.json``) and the first failing 5-minute window of each, the
contributors to the responsible component's load by request category, and the verdict in
plain sentences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..slo import evaluate_slos
from .categories import category_table, contributors
from .components import (
    MIN_QUEUE,
    SUSTAIN_S,
    TREND_WINDOWS,
    UTIL_THRESHOLD,
    component_table,
    rejection_onsets,
)
from .tables import RunTables, load_run, profile_param, profile_params
from .text import category_text, clock_text, component_name, contributor_phrase, slo_text


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
            "components": json_records(self.components),
            "contributors": json_records(self.contributors),
            "categories": json_records(self.categories),
            "slos": json_records(self.slos),
        }


def json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON-ready records: numpy scalars as Python ones, NaN, inf and NA as None."""
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
    params = profile_params(s)
    pools = (params.get("apiserver") or {}).get("apf_enabled") is False
    quota = (cp.get("etcd") or {}).get("quota_bytes") or profile_param(
        params, "etcd", "quota_bytes", 0.0
    )
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
    """The verdict of one run in plain sentences: what saturates first (or is busiest) and
    why, the SLOs failing and passing, rejections, and whether bytes are estimated."""
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
            when = clock_text(an.start, float(row["saturated_s"]))
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
                f"{clock_text(an.start, float(r['saturated_s']))}"
                for _, r in others.head(4).iterrows()
            ]
            out.append("Also saturating: " + "; ".join(parts) + ".")
    if an.slos is None or an.slos.empty:
        out.append("No SLO could be evaluated (no completed requests or pod startups).")
    else:
        failing = an.slos[~an.slos["pass"]]
        for _, r in failing.sort_values("first_fail_s").iterrows():
            name = slo_text(r["slo"])
            out.append(
                f"The {name} SLO fails from {clock_text(an.start, float(r['first_fail_s']))} on "
                f"(p99 {float(r['first_fail_p99_s']):.3g} s > {float(r['threshold_s']):g} s, "
                f"{r['first_fail_request']}; worst p99 {float(r['worst_p99_s']):.3g} s, "
                f"{int(r['failed_windows'])} of {int(r['windows'])} windows fail)."
            )
        passing = an.slos[an.slos["pass"]]
        if len(passing):
            out.append(
                "Passing: "
                + ", ".join(
                    f"{slo_text(r['slo'])} (worst p99 "
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
            + ", ".join(f"{category_text(k)} {int(v):,}" for k, v in by.head(4).items())
            + "); the SLOs judge only completed calls."
        )
    if len(an.categories) and an.categories["bytes_estimated"].any():
        out.append(
            "Bytes of pod and trace writes are estimated from etcd's total written bytes "
            "(requests.parquet has no sizes)."
        )
    return out
