"""``tracesim calibrate etcd``: measure a real etcd and fit the etcd model's profile to it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import TracesimError

if TYPE_CHECKING:
    import pandas as pd

    from ..calibrate import CalibrationResult


@click.group("calibrate")
def command() -> None:
    """Fit model parameters to measurements of a real component."""


@command.command("etcd")
@click.option(
    "--endpoints",
    metavar="URL",
    help="Client URL of the etcd member to measure, e.g. http://127.0.0.1:2379.",
)
@click.option(
    "--from-report",
    "from_report",
    type=click.Path(file_okay=False, path_type=Path),
    help="Fit again to an earlier run's measurements (its <stem>-calibration/ directory) "
    "instead of measuring.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Profile TOML to write (measurements go to <stem>-calibration/ beside it).",
)
@click.option("--quick", is_flag=True, help="About a minute of measuring instead of several.")
@click.option(
    "--i-know-this-is-not-production",
    "allow_foreign",
    is_flag=True,
    help="Run even if the etcd holds keys tracesim did not create (it compacts and defrags).",
)
@click.option("--cacert", type=click.Path(exists=True, dir_okay=False), help="TLS CA bundle.")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="TLS client cert.")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="TLS client key.")
@click.option(
    "--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Per request, s."
)
@click.option(
    "--cpu-cores",
    type=click.IntRange(min=0),
    default=None,
    help="Cores of the etcd model's CPU pool (0: none). Default: this machine's when etcd "
    "runs on it (a loopback endpoint), as it then shares them with this calibration.",
)
@click.option("--quiet", is_flag=True, help="Only the final summary.")
def etcd(
    endpoints: str | None,
    from_report: Path | None,
    out: Path,
    quick: bool,
    allow_foreign: bool,
    cacert: str | None,
    cert: str | None,
    key: str | None,
    timeout_s: float,
    cpu_cores: int | None,
    quiet: bool,
) -> None:
    """Measure the etcd at --endpoints, fit the etcd model, write the profile to --out.

    All keys go under a fresh /tracesim-calibrate/<run>/ prefix and are deleted at the end
    (also on errors and Ctrl-C). Use a dedicated etcd: the run compacts and defragments it.
    With --from-report, no etcd is measured: the model is fitted to a saved run.
    """
    from rich.console import Console

    from ..calibrate import calibrate_etcd, refit_etcd

    if (endpoints is None) == (from_report is None):
        raise TracesimError(
            "give --endpoints URL (measure an etcd) or --from-report DIR (fit a saved run), "
            "not both or neither"
        )
    console = Console(stderr=True)

    def progress(msg: str) -> None:
        if not quiet:
            console.print(msg, highlight=False)

    if from_report is not None:
        res = refit_etcd(from_report, out, progress=progress, cpu_cores=cpu_cores)
        _show(res)
        return
    assert endpoints is not None
    urls = [u.strip() for u in endpoints.split(",") if u.strip()]
    if len(urls) != 1:
        raise TracesimError(
            f"--endpoints {endpoints!r}: give exactly one client URL (calibrate one member; "
            "point it at the leader)"
        )
    if timeout_s <= 0:
        raise TracesimError(f"--timeout {timeout_s:g}: must be a positive number of seconds")
    res = calibrate_etcd(
        urls[0],
        out,
        quick=quick,
        allow_foreign_keys=allow_foreign,
        progress=progress,
        timeout_s=timeout_s,
        cacert=cacert,
        cert=cert,
        key=key,
        cpu_cores=cpu_cores,
    )
    _show(res)


@command.command("check")
@click.argument(
    "reports", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option(
    "--profile",
    metavar="NAME|FILE.toml",
    help="Profile to replay each run's workload with (e.g. one `calibrate etcd` wrote).",
)
@click.option(
    "--plot-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a measured-vs-predicted plot per run here (with --profile).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def check(
    reports: tuple[Path, ...], profile: str | None, plot_dir: Path | None, quiet: bool
) -> None:
    """Check a profile against saved calibration runs, and how well the runs agree.

    REPORTS are <profile>-calibration/ directories that `calibrate etcd` wrote. With
    --profile, each run's workload is replayed through the model with that profile and its
    held-out values (mean, p99, throughput) within 25% are counted: does last week's profile
    predict today's etcd? With two or more runs of the same plan, each run's values are also
    "predicted" by the median of the other runs: the ceiling that etcd's own run-to-run noise
    sets for any profile.
    """
    from rich.console import Console

    from ..calibrate.check import check_profile, load_runs, repeatability
    from ..calibrate.validate import plot_comparison
    from ..models.params import load_profile
    from .progress import progress_bar

    if profile is None and len(reports) < 2:
        raise TracesimError(
            "give --profile FILE.toml to check a profile, or two or more reports to see how "
            "well the runs agree"
        )
    if plot_dir is not None and profile is None:
        raise TracesimError("--plot-dir draws a profile's predictions: give --profile too")
    params = load_profile(profile).etcd if profile is not None else None
    runs = load_runs(reports)
    agree = None
    if len(runs) >= 2:
        try:
            agree = repeatability(runs)
        except TracesimError:
            if params is None:
                raise
    checked = None
    if params is not None:
        with progress_bar(f"replaying {len(reports)} runs", quiet=quiet) as update:
            checked, tables = check_profile(params, runs, progress=update)
        if plot_dir is not None:
            plot_dir.mkdir(parents=True, exist_ok=True)
            for i, (report, table) in enumerate(tables.items(), 1):
                name = f"{i}-{Path(report).name}.png"
                plot_comparison(table, plot_dir / name, title=f"{profile} vs {report}")

    _show_check(reports, profile, checked, agree)
    if plot_dir is not None:
        Console().print(f"wrote {len(reports)} plots to {plot_dir}/", highlight=False)


def _show_check(
    reports: tuple[Path, ...],
    profile: str | None,
    checked: pd.DataFrame | None,
    agree: pd.DataFrame | None,
) -> None:
    """``calibrate check``'s table (held-out values within the tolerance per run, for the
    profile and for the median of the other runs) and its misses, on stdout."""
    from rich.console import Console
    from rich.table import Table

    from ..calibrate.validate import TOLERANCE

    show = Console()
    if not show.is_terminal:
        show = Console(width=max(show.width, 120))
    t = Table(title=f"held-out values within {TOLERANCE:.0%}")
    t.add_column("run", no_wrap=True)
    if checked is not None:
        t.add_column(f"{profile}", justify="right")
        t.add_column("(all points)", justify="right")
    if agree is not None:
        t.add_column("median of the other runs", justify="right")
    for i, report in enumerate(reports):
        cells = [str(report)]
        if checked is not None:
            r = checked.iloc[i]
            cells += [
                f"{r['held_out_within']}/{r['held_out']}",
                f"{r['all_within']}/{r['all']}",
            ]
        if agree is not None:
            a = agree.iloc[i]
            cells.append(f"{a['held_out_within']}/{a['held_out']}")
        t.add_row(*cells)
    show.print(t)
    for name, frame in (("profile", checked), ("median of the other runs", agree)):
        if frame is None:
            continue
        for _, r in frame.iterrows():
            if r["misses"]:
                show.print(f"{name} misses on {r['report']}: {r['misses']}", highlight=False)
        share = frame["held_out_within"].sum() / max(1, frame["held_out"].sum())
        show.print(
            f"{name}: {frame['held_out_within'].sum()} of {frame['held_out'].sum()} held-out "
            f"values within {TOLERANCE:.0%} ({share:.0%}) over {len(frame)} runs",
            highlight=False,
        )
    if checked is not None and agree is None and len(reports) >= 2:
        show.print("the runs measured different points: no comparison between them")


def _show(res: CalibrationResult) -> None:
    """The measured-vs-predicted table, the notes and the fitted values, on stdout."""
    from rich.console import Console
    from rich.table import Table

    show = Console()
    if not show.is_terminal:  # a log file: rich's 80 columns would cut the numbers short
        show = Console(width=max(show.width, 120))
    t = Table(title="measured vs predicted (model with the fitted profile)")
    for col in ("point", "c", "role", "mean ms", "pred", "p99 ms", "pred", "ops/s", "pred"):
        t.add_column(col, justify="right", no_wrap=True)
    for _, r in res.validation.iterrows():
        name = (
            f"put {int(r['value_bytes']):,}B"
            if r["phase"] == "write"
            else f"{r['op']} {r['consistency'][:3]} {int(r['keys_per_request'])}k"
        )
        style = "" if r["ok"] else "yellow"
        t.add_row(
            name,
            str(int(r["concurrency"])),
            str(r["role"]),
            f"{r['mean_ms_measured']:.2f}",
            f"{r['mean_ms_predicted']:.2f}",
            f"{r['p99_ms_measured']:.2f}",
            f"{r['p99_ms_predicted']:.2f}",
            f"{r['throughput_per_s_measured']:.0f}",
            f"{r['throughput_per_s_predicted']:.0f}",
            style=style,
        )
    show.print(t)
    for line in res.held_out_summary():
        show.print(f"validation: {line}", highlight=False)
    for line in res.fit.notes:
        show.print(f"note: {line}")
    fitted = ", ".join(
        f"{k}={v}" if isinstance(v, str) else f"{k}={v:.4g}" for k, v in res.fit.values.items()
    )
    show.print(f"fitted: {fitted}", highlight=False)
    show.print(
        f"wrote {res.profile_path} and {res.report_dir}/ in {res.wall_s:.0f} s", highlight=False
    )
