"""Readable tables of a bottleneck analysis, for the CLI, the report and notebooks: titled
pandas tables with rounded values and readable names."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .categories import measure_of
from .run import RunAnalysis
from .sweep import SweepAnalysis
from .text import component_name


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
        label = measure_of(an.responsible)[1]
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
