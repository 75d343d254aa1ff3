"""``tracesim replay``: run a trace through the engine and a scheduler model."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import TracesimError
from .progress import progress_bar


def _settings(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise TracesimError(f"--set {pair!r}: write key=value, e.g. --set cycle_time_s=0.001")
        out[key.strip()] = value.strip()
    return out


@click.command("replay")
@click.argument("trace", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--scheduler",
    default="kube-default",
    show_default=True,
    help="Scheduler policy (kube-default, fgd, bestfit, ... or a plugin).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of all randomness.")
@click.option(
    "--profile",
    default=None,
    metavar="NAME|FILE.toml",
    help="Model the control plane (kube-apiserver, etcd, kubelets, scheduler timing and "
    "client) with this parameter profile: current, 2019-era or a .toml file. Without it "
    "the replay is placement only.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Engine parameter (cycle_time_s, bind_latency_s, sample_interval_s, ...), policy "
    "option (strategy=MostAllocated, percentage_of_nodes_to_score=10, ...) or, with "
    "--profile, a control-plane parameter (etcd.fsync_ms=2, scheduler.client_qps=100). "
    "Repeatable.",
)
@click.option("--window", default=None, help="START:END seconds into the trace, e.g. 600:1800.")
@click.option(
    "--dilation",
    type=float,
    default=1.0,
    show_default=True,
    help="Divide trace times by this factor (2 = events twice as fast).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--no-plot", is_flag=True, help="Skip the PNG.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(
    trace: Path,
    scheduler: str,
    seed: int,
    profile: str | None,
    settings: tuple[str, ...],
    window: str | None,
    dilation: float,
    out: Path,
    no_plot: bool,
    quiet: bool,
) -> None:
    """Replay TRACE through SCHEDULER; write pods.parquet, timeseries.parquet, summary.json
    (and, with --profile, requests.parquet, components.parquet, etcd.parquet)."""
    from rich.console import Console
    from rich.table import Table

    from ..sim.engine import replay
    from ..sim.results import plot
    from ..sim.workload import parse_window
    from ..trace.reader import open_trace

    if out.exists() and not out.is_dir():
        raise TracesimError(f"{out}: exists and is not a directory; choose another --out")
    open_trace(trace)  # a clear error for a path that is not a trace, before anything else
    pairs = _settings(settings)
    span = parse_window(window)
    if profile is not None:
        from ..models.params import load_profile
        from ..sim.engine import split_profile_settings

        # Unknown names and bad values fail here, before the trace is loaded.
        _, overrides = split_profile_settings(pairs, profile)
        load_profile(profile, overrides)
    with progress_bar(f"replay {trace.name} ({scheduler})", quiet=quiet) as update:
        result = replay(
            str(trace),
            scheduler,
            seed=seed,
            settings=pairs,
            window=span,
            dilation=dilation,
            progress=update,
            profile=profile,
        )
    result.write(out)
    png = None if no_plot else plot(result, out / "replay.png")

    s = result.summary
    console = Console()
    table = Table(title=f"replay {trace} with {scheduler} (seed {seed})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    p = s["pods"]
    table.add_row(
        "pods",
        f"{p['total']} total: {p['bound']} bound ({p['initial']} already at start), "
        f"{p['pending']} pending, {p['failed']} failed, {p['deleted_pending']} deleted pending",
    )
    lat = s["scheduling_latency_s"]

    def fmt(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    table.add_row(
        "latency creation->bound (s)",
        f"p50 {fmt(lat['p50'])}  p90 {fmt(lat['p90'])}  p99 {fmt(lat['p99'])}",
    )
    table.add_row("attempts", f"{s['attempts']['total']} ({s['attempts']['decisions']} decisions)")
    for res, a in s["allocation"].items():
        if a["peak"] is not None:
            table.add_row(f"{res} allocated", f"end {a['end']:.1%}  peak {a['peak']:.1%}")
    if s["top_failure_reasons"]:
        reason, count = next(iter(s["top_failure_reasons"].items()))
        table.add_row("top failure", f"{count} pods: {reason}")
    issues = s["inconsistencies"]
    table.add_row(
        "inconsistencies",
        ", ".join(f"{k} {v}" for k, v in issues.items()) if issues else "none",
    )
    cp = s.get("control_plane")
    if cp is not None:
        e, slo, bn = cp["etcd"], cp["slo"], cp["bottleneck"]
        r = cp["requests"]
        table.add_row(
            "control plane",
            f"profile {cp['profile']}: {r['submitted']} requests, {r['rejected']} rejected "
            f"({', '.join(f'{k} {v}' for k, v in r['rejected_by_reason'].items()) or 'none'})",
        )
        table.add_row(
            "etcd",
            f"db {e['db_size_bytes'] / 2**20:.1f} MiB, {e['bytes_written'] / 2**20:.1f} MiB "
            f"written, revision {e['revision']}"
            + (", NOSPACE alarm" if e["nospace_alarm"] else ""),
        )
        verdicts = ", ".join(
            f"{k} {'pass' if v['pass'] else 'FAIL'} (p99 {v['worst_p99_s']:.3f} s)"
            for k, v in slo["slos"].items()
        )
        table.add_row("SLOs", verdicts or "no samples")
        table.add_row(
            "bottleneck",
            f"{bn['component']} (p95 utilisation {bn['utilisation_p95']})"
            if bn["component"]
            else "-",
        )
    table.add_row(
        "speed",
        f"{s['simulated_s']:.0f} simulated s in {s['wall_time_s']:.2f} s wall "
        f"({s['sim_seconds_per_wall_second']} sim s per wall s)",
    )
    console.print(table)
    written = ["pods.parquet", "timeseries.parquet", *(f"{n}.parquet" for n in result.tables)]
    written.append("summary.json")
    if png is not None:
        written.append(png.name)
    console.print(f"wrote {out}/: {', '.join(written)}")
