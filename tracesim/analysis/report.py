"""Reports: a self-contained HTML page (plots embedded as base64 PNG) and a Markdown summary,
for one replay's output directory or for a sweep directory.

One replay (``summary.json`` + tables): latency CDFs per verb (``requests.parquet``) and for
pod scheduling (``pods.parquet``), utilisation and queue length over time per component
(``components.parquet``, long format ``t_s, metric, value``), etcd database size and object
counts (``etcd.parquet``, or the ``etcd.*`` series of ``components.parquet``), the SLO verdicts
and the bottleneck hint of ``summary.json``. A sweep (``sweep.json``): one curve per metric vs
cluster size (median over seeds, one line per profile / ``--set`` combination) with its SLO
line and knee (:mod:`tracesim.analysis.knee`), the verdict per variant in sentences, and the
one-run sections for the largest finished run.

Whatever input is missing (a replay without ``--profile`` has no request samples, an
interrupted sweep lacks runs) is named in the report instead of failing it. Reports read only
result files, never engine internals.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import TracesimError
from . import knee as kneelib
from .bottleneck.sweep import SLO_PREFIX, variant_labels

#: Sweep curves: (column, label, unit, threshold column or fixed threshold, threshold label).
SWEEP_METRICS: tuple[tuple[str, str, str, str | float | None, str], ...] = (
    ("scheduling_latency_s.p99", "p99 pod scheduling latency", "s", None, ""),
    ("control_plane.pod_startup_s.p99", "p99 pod startup latency", "s", 5.0, "pod-startup SLO"),
    (
        "control_plane.bottleneck.utilisation_p95",
        "p95 utilisation of the busiest component",
        "",
        1.0,
        "saturation",
    ),
    (
        "control_plane.etcd.db_size_bytes",
        "etcd database size",
        "bytes",
        "control_plane.etcd.quota_bytes",
        "etcd quota",
    ),
    ("control_plane.apiserver.cpu_seconds", "kube-apiserver CPU time", "s", None, ""),
)
MAX_LINES = 8
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass
class Figure:
    """One plot: a file name, a title, the PNG bytes and a caption."""

    name: str
    title: str
    png: bytes
    caption: str = ""


@dataclass
class Section:
    """A part of the report: sentences, tables (DataFrames), figures and missing inputs."""

    title: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


@dataclass
class Report:
    """All sections of a report, and the title."""

    title: str
    kind: str  # "run" or "sweep"
    sections: list[Section] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]

    @property
    def missing(self) -> list[str]:
        return [m for s in self.sections for m in s.missing]


# -- plotting helpers ----------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    _plt().close(fig)
    return buf.getvalue()


def _cdf(ax: Any, values: np.ndarray, label: str, color: str) -> None:
    v = np.sort(np.asarray(values, float))
    v = v[np.isfinite(v)]
    if not len(v):
        return
    ax.step(
        np.maximum(v, 1e-6),
        np.arange(1, len(v) + 1) / len(v),
        where="post",
        label=label,
        color=color,
        linewidth=1.6,
    )


def _fmt(v: Any, unit: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if unit == "bytes":
        v = float(v)
        for u in ("B", "KiB", "MiB", "GiB", "TiB"):
            if abs(v) < 1024 or u == "TiB":
                return f"{v:.3g} {u}"
            v /= 1024
    if isinstance(v, float):
        return f"{v:.3g}{(' ' + unit) if unit else ''}"
    return f"{v}{(' ' + unit) if unit else ''}"


def _get(d: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


# -- one replay --------------------------------------------------------------------------------
def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def _component_series(run_dir: Path) -> pd.DataFrame | None:
    """Wide time series (index ``t_s``, one column per metric) from ``components.parquet``."""
    long = _read(run_dir / "components.parquet")
    if long is None or not {"t_s", "metric", "value"} <= set(long.columns):
        return None
    long = long.assign(metric=long["metric"].astype(str))
    return long.pivot_table(index="t_s", columns="metric", values="value", aggfunc="last")


def run_sections(run_dir: str | Path, *, label: str = "") -> list[Section]:
    """The report sections of one replay output directory."""
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not path.is_file():
        raise TracesimError(f"{run_dir}: no summary.json; give a replay --out or sweep directory")
    summary = json.loads(path.read_text())
    plt = _plt()
    suffix = f" ({label})" if label else ""
    sections = [_verdict_section(summary, suffix), _bottleneck_section(run_dir, suffix)]

    # Latency distributions.
    lat = Section(f"Latency distributions{suffix}")
    pods = _read(run_dir / "pods.parquet")
    requests = _read(run_dir / "requests.parquet")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    if requests is not None and len(requests):
        ok = requests
        if "reason" in ok.columns:
            ok = ok[ok["reason"].astype(str) == "ok"]
        verbs = sorted(ok["verb"].astype(str).unique())
        for i, verb in enumerate(verbs):
            sel = ok["verb"].astype(str) == verb
            _cdf(axes[0], ok.loc[sel, "latency_s"], f"{verb} ({int(sel.sum())})", PALETTE[i % 8])
        rows = []
        for (verb, res), grp in ok.groupby([ok["verb"].astype(str), ok["resource"].astype(str)]):
            v = grp["latency_s"].to_numpy(float)
            rows.append(
                {
                    "verb": verb,
                    "resource": res,
                    "requests": len(v),
                    "p50 (s)": round(float(np.percentile(v, 50)), 6),
                    "p99 (s)": round(float(np.percentile(v, 99)), 6),
                    "max (s)": round(float(v.max()), 6),
                }
            )
        lat.tables.append(("Request latency by verb and resource", pd.DataFrame(rows)))
        rejected = len(requests) - len(ok)
        if rejected:
            lat.text.append(f"{rejected:,} requests were rejected (no latency to plot).")
    else:
        axes[0].text(0.5, 0.5, "no request samples", ha="center", va="center")
        lat.missing.append(
            "requests.parquet (per-request latencies): replay with --profile to record them"
        )
    axes[0].set(
        xscale="log",
        xlabel="latency (s)",
        ylabel="fraction of requests",
        title="API request latency CDF by verb",
    )
    if axes[0].lines:
        axes[0].legend(fontsize=8)
    if pods is not None and len(pods):
        sel = (pods["state"] == "bound") & ~pods["initial"] & pods["bound_s"].notna()
        sched = (pods.loc[sel, "bound_s"] - pods.loc[sel, "created_s"]).to_numpy(float)
        _cdf(axes[1], sched, f"creation -> bound ({len(sched)})", PALETTE[1])
        if len(sched):
            lat.text.append(
                f"Pod scheduling latency over {len(sched):,} pods: p50 "
                f"{np.percentile(sched, 50):.3g} s, p99 {np.percentile(sched, 99):.3g} s, "
                f"max {sched.max():.3g} s."
            )
    else:
        lat.missing.append("pods.parquet (per-pod scheduling latency)")
    axes[1].set(
        xscale="log",
        xlabel="creation to binding (s)",
        ylabel="fraction of pods",
        title="Pod scheduling latency CDF",
    )
    if axes[1].lines:
        axes[1].legend(fontsize=8)
    lat.figures.append(Figure(f"latency{_slug(label)}", f"Latency CDFs{suffix}", _png(fig)))
    sections.append(lat)

    # Components over time.
    comp = Section(f"Components over time{suffix}")
    wide = _component_series(run_dir)
    if wide is not None and len(wide):
        util = [c for c in wide.columns if "utilisation" in c]
        queues = [c for c in wide.columns if "queue" in c or "queued" in c or "waiting" in c]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        t_min = wide.index.to_numpy(float) / 60
        for ax, cols, scale, what in (
            (axes[0], util, 100.0, "utilisation"),
            (axes[1], queues, 1.0, "queue"),
        ):
            peak = {c: float(np.nanmax(wide[c].to_numpy(float))) for c in cols}
            busy = sorted((c for c in cols if peak[c] > 0), key=lambda c: -peak[c])
            for i, c in enumerate(busy[:MAX_LINES]):
                ax.plot(t_min, scale * wide[c], label=c, color=PALETTE[i % 8])
            if busy:
                ax.legend(fontsize=7)
            if len(busy) > MAX_LINES:
                comp.text.append(
                    f"The {what} plot shows the {MAX_LINES} highest of {len(busy)} non-zero "
                    "series; the table lists all."
                )
            if cols and not busy:
                ax.text(
                    0.5,
                    0.5,
                    f"every {what} stayed at 0",
                    ha="center",
                    va="center",
                    transform=ax.transAxes,
                )
                comp.text.append(f"Every {what} series stayed at 0 throughout the run.")
        axes[0].set(
            xlabel="simulated time (min)",
            ylabel="utilisation (%)",
            title="Utilisation per component",
        )
        axes[1].set(
            xlabel="simulated time (min)",
            ylabel="requests / items waiting",
            title="Queue length per component",
        )
        comp.figures.append(
            Figure(f"components{_slug(label)}", f"Utilisation and queues{suffix}", _png(fig))
        )
        peaks = pd.DataFrame(
            {
                "metric": util + queues,
                "mean": [float(wide[c].mean()) for c in util + queues],
                "peak": [float(wide[c].max()) for c in util + queues],
            }
        ).sort_values("peak", ascending=False)
        comp.tables.append(("Utilisation (0-1) and queue length: mean and peak", peaks.round(6)))
    else:
        comp.missing.append(
            "components.parquet (utilisation and queue length per component): replay with "
            "--profile to record it"
        )
    sections.append(comp)

    # etcd.
    etcd = Section(f"etcd database{suffix}")
    e = _read(run_dir / "etcd.parquet")
    if e is None and wide is not None:
        cols = {c: c.removeprefix("etcd.") for c in wide.columns if c.startswith("etcd.")}
        e = wide[list(cols)].rename(columns=cols).reset_index() if cols else None
    if e is not None and len(e) and "db_size_bytes" in e.columns:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        t_min = e["t_s"].to_numpy(float) / 60
        mib = 1024 * 1024
        axes[0].plot(t_min, e["db_size_bytes"] / mib, label="file size", color=PALETTE[0])
        if "db_in_use_bytes" in e.columns:
            axes[0].plot(t_min, e["db_in_use_bytes"] / mib, label="in use", color=PALETTE[1])
        axes[0].set(xlabel="simulated time (min)", ylabel="MiB", title="etcd database size")
        axes[0].legend(fontsize=8)
        objs = [c for c in e.columns if c.startswith("objects.")]
        for i, c in enumerate(objs):
            axes[1].plot(t_min, e[c], label=c.removeprefix("objects."), color=PALETTE[i % 8])
        axes[1].set(xlabel="simulated time (min)", ylabel="objects", title="etcd objects by kind")
        if objs:
            axes[1].legend(fontsize=8)
        etcd.figures.append(
            Figure(f"etcd{_slug(label)}", f"etcd size and objects{suffix}", _png(fig))
        )
        last = e.iloc[-1]
        etcd.text.append(
            f"At the end the etcd file is {_fmt(last['db_size_bytes'], 'bytes')}"
            + (
                f", of which {_fmt(last['db_in_use_bytes'], 'bytes')} in use"
                if "db_in_use_bytes" in e.columns
                else ""
            )
            + (
                f"; objects: {', '.join(f'{c[8:]} {int(last[c]):,}' for c in objs if last[c] == last[c])}"  # noqa: E501
                if objs
                else ""
            )
            + "."
        )
    else:
        etcd.missing.append(
            "etcd.parquet (etcd database size and object counts): replay with --profile"
        )
    sections.append(etcd)
    return sections


def _slug(text: str) -> str:
    s = "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")
    return f"-{s}" if s else ""


def _bottleneck_section(run_dir: Path, suffix: str) -> Section:
    """The bottleneck analysis (:mod:`tracesim.analysis.bottleneck`): what saturates first,
    when, the SLOs violated and when, and what loads the responsible component."""
    from .bottleneck import analyze_run, run_tables

    sec = Section(f"Bottleneck analysis{suffix}")
    try:
        an = analyze_run(run_dir)
    except TracesimError as exc:
        sec.missing.append(f"bottleneck analysis: {exc}")
        return sec
    sec.text += an.sentences
    sec.tables += list(run_tables(an).items())
    return sec


def _verdict_section(summary: dict[str, Any], suffix: str) -> Section:
    """The plain-sentence verdict of one run: pods, SLOs, the bottleneck."""
    sec = Section(f"Verdict{suffix}")
    p = summary.get("pods") or {}
    lat = summary.get("scheduling_latency_s") or {}
    sec.text.append(
        f"Replay of {summary.get('trace', '?')} with {summary.get('scheduler', '?')} "
        f"(seed {summary.get('seed', '?')}), {_fmt(summary.get('simulated_s'))} simulated "
        f"seconds, {summary.get('nodes_at_end', '?')} nodes at the end: {p.get('total', '?')} "
        f"pods, {p.get('bound', '?')} bound, {p.get('pending', '?')} pending, "
        f"{p.get('failed', '?')} failed. Pod scheduling latency p50 {_fmt(lat.get('p50'), 's')}, "
        f"p99 {_fmt(lat.get('p99'), 's')}."
    )
    cp = summary.get("control_plane")
    if not isinstance(cp, dict):
        sec.missing.append(
            "control-plane results in summary.json (SLOs, bottleneck): the replay ran without "
            "--profile, so only placement was simulated"
        )
        return sec
    sec.text.append(f"Control-plane profile: {cp.get('profile', '?')}.")
    slo = cp.get("slo")
    if isinstance(slo, dict) and isinstance(slo.get("slos"), dict):
        rows = []
        for name, v in slo["slos"].items():
            rows.append(
                {
                    "SLO": name,
                    "threshold (s)": v.get("threshold_s"),
                    "worst p99 (s)": round(float(v.get("worst_p99_s") or 0.0), 6),
                    "failed windows": f"{v.get('failed_windows', 0)} of {v.get('windows', 0)}",
                    "verdict": "pass" if v.get("pass") else "FAIL",
                    "failing": ", ".join(v.get("failing") or []),
                }
            )
            if not v.get("pass"):
                sec.text.append(
                    f"The {name} SLO fails: its worst 99th percentile is "
                    f"{float(v.get('worst_p99_s') or 0):.3g} s against {v.get('threshold_s')} s"
                    + (f" ({', '.join(v.get('failing') or [])})" if v.get("failing") else "")
                    + "."
                )
        sec.tables.append(
            ("SIG Scalability SLOs (99th percentile per 5-minute window)", pd.DataFrame(rows))
        )
        if slo.get("pass"):
            sec.text.append(f"All {len(rows)} evaluated SLOs pass.")
        rej = slo.get("rejected_requests") or {}
        if rej:
            sec.text.append(
                "Rejected requests: " + ", ".join(f"{k} {v:,}" for k, v in rej.items()) + "."
            )
    else:
        sec.missing.append("SLO verdicts (control_plane.slo in summary.json)")
    b = cp.get("bottleneck")
    if isinstance(b, dict) and b.get("component"):
        u = b.get("utilisation_p95")
        text = f"The busiest component is {b['component']}"
        text += f", at {100 * float(u):.1f} % utilisation (95th percentile over time)" if u else ""
        queues = b.get("growing_queues") or []
        text += (
            f"; queues that grow: {', '.join(map(str, queues))}"
            if queues
            else "; no queue grows without bound"
        )
        sec.text.append(text + ".")
        ranking = b.get("ranking")
        if isinstance(ranking, list) and ranking:
            sec.tables.append(("Components by utilisation (p95)", pd.DataFrame(ranking)))
    elif isinstance(b, str):
        sec.text.append(b)
    else:
        sec.missing.append("bottleneck hint (control_plane.bottleneck in summary.json)")
    return sec


# -- sweeps ------------------------------------------------------------------------------------
def _sweep_metrics(df: pd.DataFrame) -> list[tuple[str, str, str, Any, str]]:
    metrics = []
    slo_cols = sorted(
        c for c in df.columns if c.startswith(SLO_PREFIX) and c.endswith(".worst_p99_s")
    )
    for c in slo_cols:
        name = c[len(SLO_PREFIX) : -len(".worst_p99_s")]
        metrics.append(
            (
                c,
                f"{name} SLO: worst p99 latency",
                "s",
                f"{SLO_PREFIX}{name}.threshold_s",
                f"{name} SLO",
            )
        )
    for m in SWEEP_METRICS:
        if m[0] in df.columns and df[m[0]].notna().any():
            if m[0] == "control_plane.pod_startup_s.p99" and any(
                "pod-startup" in c for c in slo_cols
            ):
                continue  # the SLO curve above shows it
            metrics.append(m)
    return metrics


def sweep_sections(sweep_dir: str | Path) -> list[Section]:
    """The report sections of a sweep directory (complete or not)."""
    from .sweep import RUNS_DIR, load_state, load_table

    sweep_dir = Path(sweep_dir)
    state = load_state(sweep_dir)
    status = Section("Sweep")
    spec = state.spec
    status.text.append(
        f"Sweep of {spec.trace} with {spec.scheduler}: sizes "
        f"{', '.join(f'{n:,}' for n in spec.nodes)}; profiles "
        f"{', '.join(str(p) for p in spec.profiles)}; seeds {', '.join(map(str, spec.seeds))}"
        + (
            "; settings " + "; ".join(f"{k} in {', '.join(v)}" for k, v in spec.settings.items())
            if spec.settings
            else ""
        )
        + "."
    )
    status.text.append(state.describe())
    if state.missing:
        status.missing.append(
            "runs not finished: "
            + ", ".join(r.run_id for r in state.missing[:10])
            + (f" and {len(state.missing) - 10} more" if len(state.missing) > 10 else "")
        )
    for run_id, msg in list(state.failed.items())[:10]:
        status.missing.append(f"run {run_id} failed: {msg}")
    sections = [status]
    df = load_table(sweep_dir)
    if df.empty:
        status.missing.append("no finished run: nothing to plot yet")
        return sections
    setting_cols = [c for c in spec.settings if c in df.columns and df[c].nunique() > 1]
    df = df.assign(variant=variant_labels(df, setting_cols))
    curves = Section("Sweep curves and knees")
    verdict = Section("Verdict per variant")
    plt = _plt()
    knees = []
    for col, label, unit, thr_spec, thr_label in _sweep_metrics(df):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        drawn: set[float] = set()
        for i, (variant, grp) in enumerate(df.groupby("variant", sort=True)):
            g = grp[["nodes", col]].dropna()
            if g.empty:
                continue
            x, y = kneelib.aggregate(g["nodes"].to_numpy(float), g[col].to_numpy(float))
            color = PALETTE[i % 8]
            ax.plot(x, y, marker="o", color=color, label=variant, linewidth=1.8)
            if len(g) > len(x):  # several seeds: show each run faintly
                ax.scatter(g["nodes"], g[col], color=color, alpha=0.3, s=12)
            threshold = (
                float(grp[thr_spec].dropna().iloc[0])
                if isinstance(thr_spec, str) and grp[thr_spec].notna().any()
                else (float(thr_spec) if isinstance(thr_spec, int | float) else None)
            )
            k = kneelib.find_knee(g["nodes"], g[col], threshold)
            if threshold is not None and threshold not in drawn:
                drawn.add(threshold)
                ax.axhline(
                    threshold,
                    color="black",
                    linestyle="--",
                    linewidth=1,
                    label=f"{thr_label} ({_fmt(threshold, unit)})",
                )
            if k.found:
                yk = float(np.interp(k.size, x, y))
                ax.axvline(k.size, color=color, linestyle=":", linewidth=1.2)
                ax.plot(
                    [k.size],
                    [yk],
                    marker="X",
                    markersize=13,
                    color=color,
                    markeredgecolor="black",
                    linestyle="none",
                )
            sentence = kneelib.describe(k, f"{label} ({variant})", "" if unit == "bytes" else unit)
            knees.append(
                {
                    "metric": label,
                    "variant": variant,
                    "knee": k.kind or "none",
                    "size (nodes)": None if k.size is None else round(k.size),
                    "threshold": None if threshold is None else _fmt(threshold, unit),
                    "sentence": sentence,
                }
            )
        ax.set(
            xlabel="cluster size (nodes)",
            ylabel=f"{label}{f' ({unit})' if unit else ''}",
            title=f"{label} vs cluster size",
        )
        if ax.lines:
            ax.legend(fontsize=7)
        curves.figures.append(
            Figure(
                f"sweep-{_slug(col)[1:]}",
                f"{label} vs cluster size",
                _png(fig),
                "dashed: SLO or limit; X and dotted line: the knee",
            )
        )
    if knees:
        kt = pd.DataFrame(knees)
        kt["size (nodes)"] = kt["size (nodes)"].astype("Int64")
        curves.tables.append(("Knees", kt.drop(columns=["sentence"])))
        for variant, grp in kt.groupby("variant", sort=True):
            found = grp[grp["knee"] != "none"].sort_values("size (nodes)")
            slo = found[found["knee"] == "slo"]
            if len(slo):
                first = slo.iloc[0]
                verdict.text.append(
                    f"{variant}: the first SLO to break is {first['metric']}, at about "
                    f"{int(first['size (nodes)']):,} nodes."
                )
            elif len(found):
                top = found.iloc[0]
                verdict.text.append(
                    f"{variant}: no SLO breaks over the sizes swept; the first curve to bend "
                    f"is {top['metric']}, at about {int(top['size (nodes)']):,} nodes."
                )
            else:
                verdict.text.append(f"{variant}: no SLO breaks and no curve bends.")
            verdict.text += [s for s in grp["sentence"] if "no knee" not in s]
    else:
        curves.missing.append("no metric with values in the sweep table")
    bcol = "control_plane.bottleneck.component"
    if bcol in df.columns and df[bcol].notna().any():
        for variant, grp in df.groupby("variant", sort=True):
            g = grp.dropna(subset=[bcol]).sort_values("nodes")
            if g.empty:
                continue
            top = g.iloc[-1]
            u = top.get("control_plane.bottleneck.utilisation_p95")
            verdict.text.append(
                f"{variant}: at {int(top['nodes']):,} nodes the busiest component is "
                f"{top[bcol]}"
                + (f" ({100 * float(u):.1f} % p95 utilisation)" if u == u and u is not None else "")
                + "."
            )
    else:
        verdict.missing.append(
            "bottleneck hints (control_plane.bottleneck): the sweep ran without --profile"
        )
    from .bottleneck import analyze_sweep, sweep_tables

    try:
        sa = analyze_sweep(sweep_dir)
        verdict.text = sa.sentences + verdict.text
        verdict.tables += list(sweep_tables(sa).items())
    except TracesimError as exc:
        verdict.missing.append(f"bottleneck analysis: {exc}")
    sections += [curves, verdict]
    # The largest finished run, in detail.
    biggest = df.sort_values(["nodes", "run_id"]).iloc[-1]
    run_dir = sweep_dir / RUNS_DIR / str(biggest["run_id"])
    sections += run_sections(run_dir, label=f"largest run: {biggest['run_id']}")
    return sections


# -- output ------------------------------------------------------------------------------------
def build_report(results: str | Path) -> Report:
    """The report of ``results``: a sweep directory or one replay's output directory."""
    results = Path(results)
    if not results.is_dir():
        raise TracesimError(f"{results}: not a directory; give a replay --out or sweep directory")
    if (results / "sweep.json").is_file():
        return Report(f"tracesim sweep report: {results.name}", "sweep", sweep_sections(results))
    if (results / "summary.json").is_file():
        return Report(f"tracesim replay report: {results.name}", "run", run_sections(results))
    raise TracesimError(
        f"{results}: neither a sweep (sweep.json) nor a replay output (summary.json)"
    )


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .85em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; }
th { background: #f3f3f3; } figure { margin: 1em 0; } img { max-width: 100%; }
figcaption { font-size: .85em; color: #555; } .missing { color: #8a4b00; }
"""


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page (PNGs inline as base64 data URIs)."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(report.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(report.title)}</h1>",
    ]
    for sec in report.sections:
        out.append(f"<h2>{esc(sec.title)}</h2>")
        out += [f"<p>{esc(t)}</p>" for t in sec.text]
        for caption, df in sec.tables:
            out.append(f"<h3>{esc(caption)}</h3>")
            out.append(df.to_html(index=False, border=0, na_rep="-", escape=True))
        for fig in sec.figures:
            data = base64.b64encode(fig.png).decode("ascii")
            out.append(
                f'<figure><img alt="{esc(fig.title)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(fig.title)}{'. ' + esc(fig.caption) if fig.caption else ''}"
                "</figcaption></figure>"
            )
        if sec.missing:
            out.append('<p class="missing"><b>Not shown (input missing):</b></p><ul>')
            out += [f'<li class="missing">{esc(m)}</li>' for m in sec.missing]
            out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        cells = ["-" if (v is None or (isinstance(v, float) and v != v)) else str(v) for v in row]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def to_markdown(report: Report, plots_dir: str = "plots") -> str:
    """The report as Markdown; figures are referenced as ``plots_dir/<name>.png``."""
    out = [f"# {report.title}", ""]
    for sec in report.sections:
        out += [f"## {sec.title}", ""]
        for t in sec.text:
            out += [t, ""]
        for caption, df in sec.tables:
            out += [f"**{caption}**", "", _md_table(df), ""]
        for fig in sec.figures:
            out += [f"![{fig.title}]({plots_dir}/{fig.name}.png)", ""]
        if sec.missing:
            out += ["Not shown (input missing):", ""]
            out += [f"- {m}" for m in sec.missing]
            out.append("")
    return "\n".join(out)


def write_report(results: str | Path, out: str | Path) -> dict[str, Path]:
    """Build the report of ``results`` and write ``report.html``, ``report.md`` and
    ``plots/*.png`` into ``out``; returns their paths (``html``, ``markdown``, ``plots``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TracesimError(f"{out}: exists and is not a directory; choose another --out")
    report = build_report(results)
    out.mkdir(parents=True, exist_ok=True)
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    for fig in report.figures:
        (plots / f"{fig.name}.png").write_bytes(fig.png)
    (out / "report.html").write_text(to_html(report), encoding="utf-8")
    (out / "report.md").write_text(to_markdown(report), encoding="utf-8")
    return {"html": out / "report.html", "markdown": out / "report.md", "plots": plots}
