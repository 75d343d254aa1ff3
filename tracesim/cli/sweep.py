"""``tracesim sweep``: replay a trace scaled to several sizes, profiles, settings and seeds."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from ..errors import TracesimError
from .options import parse_duration_s


@click.command("sweep")
@click.argument("trace", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--nodes",
    required=True,
    help="Cluster sizes, comma-separated: 1000,2000,5000,10000,20000 (5k = 5000).",
)
@click.option(
    "--profile",
    "profiles",
    multiple=True,
    help="Control-plane profile (2019-era, current, or a .toml). Repeatable: one run each.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=V1,V2",
    help="A replay --set key and its values, e.g. etcd.fsync_ms=1,10 (one value = fixed). "
    "Repeatable; the grid is every combination.",
)
@click.option("--seeds", default="0", show_default=True, help="Seeds, comma-separated: 0,1,2.")
@click.option("--scheduler", default="kube-default", show_default=True, help="Scheduler policy.")
@click.option(
    "--duration-limit",
    default=None,
    help="Replay only the first part of the trace: 30m, 1h (default: all of it).",
)
@click.option(
    "--jobs",
    type=int,
    default=None,
    help="Parallel runs (local processes, or Dask workers of --dask local). "
    "[default: number of CPUs]",
)
@click.option(
    "--dask",
    default=None,
    metavar="ADDRESS",
    help="Run on the Dask cluster at tcp://host:8786, or on a new local one: --dask local.",
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Sweep directory.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(
    trace: Path,
    nodes: str,
    profiles: tuple[str, ...],
    settings: tuple[str, ...],
    seeds: str,
    scheduler: str,
    duration_limit: str | None,
    jobs: int | None,
    dask: str | None,
    out: Path,
    quiet: bool,
) -> None:
    """Replay TRACE scaled to each of --nodes, for every profile, --set value and seed.

    Each run is stored in OUT/runs/<run-id>/ as it finishes; an interrupted sweep resumes when
    the same command runs again. The combined table is OUT/sweep.parquet; `tracesim report
    OUT --out DIR` turns it into plots.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from ..analysis.sweep import (
        SweepSpec,
        load_state,
        make_backend,
        parse_grid_settings,
        parse_int_list,
        run_sweep,
        validate,
    )

    spec = SweepSpec(
        trace=str(trace),
        nodes=parse_int_list(nodes, "--nodes"),
        profiles=list(profiles) or [None],
        settings=parse_grid_settings(settings),
        seeds=parse_int_list(seeds, "--seeds"),
        scheduler=scheduler,
        duration_limit_s=(
            parse_duration_s(duration_limit, "--duration-limit") if duration_limit else None
        ),
    )
    n_jobs = jobs if jobs is not None else (os.cpu_count() or 1)
    err = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
        transient=True,
    )
    task = progress.add_task(f"sweep {trace.name}", total=None)

    def update(done: int, total: int, run_id: str) -> None:
        progress.update(task, completed=done, total=total)

    # Bad input and an unreachable Dask scheduler fail here, before any progress display.
    validate(spec)
    backend = make_backend(n_jobs, dask)
    try:
        with progress:
            result = run_sweep(spec, out, backend=backend, progress=update)
    except KeyboardInterrupt:
        backend.close(cancel=True)
        with contextlib.suppress(TracesimError):
            err.print(f"interrupted: {load_state(out).describe()}")
        raise
    backend.close()

    console = Console()
    table = Table(title=f"sweep of {trace} ({result.backend})", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "runs", f"{result.total} in the grid: {result.ran} ran, {result.skipped} were already done"
    )
    table.add_row("wall time", f"{result.wall_s:.1f} s")
    df = result.table
    metric = "scheduling_latency_s.p99"
    if len(df) and metric in df.columns:
        by = df.groupby("nodes")[metric].median()
        table.add_row(
            "p99 scheduling latency (s)",
            "  ".join(f"{n:,}: {v:.3g}" for n, v in by.items() if v == v),
        )
    console.print(table)
    if result.failed:
        first_id, first_msg = next(iter(result.failed.items()))
        raise TracesimError(
            f"{len(result.failed)} of {result.total} runs failed (e.g. {first_id}: {first_msg}); "
            f"details in {out}/runs/<run-id>/error.txt; rerun the same command to retry them"
        )
    console.print(f"wrote {out}/sweep.parquet ({len(df)} runs) and {out}/runs/")
