"""The bottleneck analysis of a sweep (:func:`analyze_sweep`): for each SLO and variant
(profile and ``--set`` values) the knee of its worst p99 curve
(:func:`tracesim.analysis.knee.find_knee`), the component responsible at the first failing
size and its contributors, and per run the first component to saturate. An interrupted sweep
is analysed as far as it got; what is missing is listed. :func:`plot_sweep` draws the curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import TracesimError
from .. import knee as kneelib
from ..slo import THRESHOLDS_S
from .run import RunAnalysis, analyze_run, json_records
from .text import clock_text, component_name, contributor_phrase, slo_text

#: Sweep-table columns of the SLO verdicts: ``summary.json``'s ``control_plane.slo.slos``,
#: flattened (``<prefix><slo>.worst_p99_s``, ``<prefix><slo>.threshold_s``, ...).
SLO_PREFIX = "control_plane.slo.slos."
WORST_P99_SUFFIX = ".worst_p99_s"


def slo_p99_columns(df: pd.DataFrame) -> dict[str, str]:
    """SLO name -> its worst-p99 column (seconds) in the sweep table ``df``, sorted by column."""
    cols = sorted(
        c for c in df.columns if c.startswith(SLO_PREFIX) and c.endswith(WORST_P99_SUFFIX)
    )
    return {c[len(SLO_PREFIX) : -len(WORST_P99_SUFFIX)]: c for c in cols}


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
            "knees": json_records(self.knees),
            "runs": json_records(self.runs),
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
    from ..sweep import RUNS_DIR, load_state, load_table

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
    knees = _knee_table(df, analyses)
    out = SweepAnalysis(str(sweep_dir), runs, knees, [], missing, df, analyses)
    out.sentences = _sweep_sentences(out)
    return out


def _knee_table(df: pd.DataFrame, analyses: dict[str, RunAnalysis]) -> pd.DataFrame:
    """One row per (variant, SLO) of the sweep table ``df``: the knee of the worst-p99 curve
    and the component responsible at the first failing size (else the largest size)."""
    slo_cols = slo_p99_columns(df)
    rows = []
    for variant, grp in df.groupby("variant", sort=True):
        for slo, col in slo_cols.items():
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
                "sentence": kneelib.describe(k, f"the {slo_text(slo)} SLO's p99", "s"),
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
    """The verdict of a sweep in plain sentences: per variant the first component to
    saturate (or the busiest) and what loads it, then where each SLO breaks and why."""
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
            when = clock_text(an.start, float(f["saturated_s"]))
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
            name = slo_text(k["slo"])
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


def plot_sweep(sa: SweepAnalysis, slo: str | None = None) -> Any:
    """A matplotlib figure: worst p99 per SLO against cluster size, one line per variant, the
    SLO threshold dashed and each knee marked with an X (one panel per SLO, or only ``slo``)."""
    import matplotlib.pyplot as plt

    df = sa.table
    columns = slo_p99_columns(df)
    names = list(columns)
    if slo is not None:
        names = [n for n in names if n == slo]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(6 * max(len(names), 1), 4.2))
    axes = np.atleast_1d(axes)
    for ax, name in zip(axes, names, strict=False):
        col = columns[name]
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
            title=f"{slo_text(name)} SLO",
            yscale="log",
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
