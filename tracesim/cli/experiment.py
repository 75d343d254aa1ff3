"""``tracesim experiment fgd``: the FGD paper's fill experiment on the openb trace."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import TracesimError


def _workload_names(data_dir: Path) -> list[str]:
    from ..sources.openb import WORKLOADS

    found = {p.stem.removeprefix("openb_pod_list_") for p in data_dir.glob("openb_pod_list_*.csv")}
    return list(WORKLOADS) + sorted(found - set(WORKLOADS))


@click.group("experiment")
def command() -> None:
    """Run published placement experiments."""


@command.command("fgd")
@click.option(
    "--workload",
    "workloads",
    default="default",
    show_default=True,
    help="Comma-separated openb workloads (default, cpu050, gpushare40, ...) or 'all' (the 17).",
)
@click.option(
    "--policy",
    "policies",
    default="random,dotprod,gpuclustering,gpupacking,bestfit,fgd",
    show_default=True,
    help="Comma-separated scheduler policies (built-in or from plugins).",
)
@click.option("--seeds", default="42-51", show_default=True, help="e.g. 42-51 or 42,43.")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder with the openb CSVs [default: $TRACESIM_OPENB_DIR or "
    "../shared/data/alibaba-gpu-v2023].",
)
@click.option("--inflate", default=1.3, show_default=True, type=click.FloatRange(min=0.0))
@click.option(
    "--tie-break",
    type=click.Choice(["order", "random"]),
    default="order",
    show_default=True,
    help="order: first best node in the seeded node order (published simulator); "
    "random: a fresh draw per pod (kube-scheduler).",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def fgd(
    workloads: str,
    policies: str,
    seeds: str,
    jobs: int,
    data_dir: Path | None,
    inflate: float,
    tie_break: str,
    out: Path,
) -> None:
    """Fill the openb GPU cluster to 130% with each policy; allocation vs arrived GPU."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from ..analysis.fgd import parse_names, parse_seeds, run_experiment
    from ..models.registry import scheduler_names
    from ..sources.openb import WORKLOADS, default_data_dir

    data_dir = data_dir or default_data_dir()
    if not data_dir.is_dir():
        raise TracesimError(
            f"{data_dir}: no such folder; pass --data-dir with the openb CSVs "
            "(alibaba/clusterdata, cluster-trace-gpu-v2023)"
        )
    if workloads.strip() == "all":
        wl = list(WORKLOADS)
    else:
        wl = parse_names(workloads, _workload_names(data_dir), "workload")
    pol = parse_names(policies, scheduler_names(), "policy")
    seed_list = parse_seeds(seeds)
    total = len(wl) * len(pol) * len(seed_list)
    console = Console(stderr=True)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("fill runs", total=total)
        result = run_experiment(
            wl,
            pol,
            seed_list,
            data_dir=data_dir,
            jobs=jobs,
            inflate=inflate,
            tie_break=tie_break,
            progress=lambda spec: bar.advance(task),
        )
    paths = result.write(out)
    table = Table(title=f"unallocated GPU % (mean ± sd over {len(seed_list)} seeds)")
    for col in ("workload", "policy", "x=100", "x=130", "failed pods"):
        table.add_column(col, justify="left" if col in ("workload", "policy") else "right")
    for row in result.summary.itertuples():
        table.add_row(
            row.workload,
            row.policy,
            f"{row.unalloc_100_mean:.2f} ± {row.unalloc_100_std:.2f}",
            f"{row.unalloc_130_mean:.2f} ± {row.unalloc_130_std:.2f}",
            f"{row.pods_failed_mean:.0f}",
        )
    Console().print(table)
    click.echo(f"wrote {len(paths)} files to {out}")
