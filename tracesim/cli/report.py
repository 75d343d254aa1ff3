"""``tracesim report``: HTML report (plots embedded) and Markdown summary of results."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("report")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Report directory.")
def command(results: Path, out: Path) -> None:
    """Write OUT/report.html (self-contained) and OUT/report.md for RESULTS: a `tracesim replay`
    output directory or a `tracesim sweep` directory (finished or not)."""
    from ..analysis.report import write_report

    paths = write_report(results, out)
    n = len(list(paths["plots"].glob("*.png")))
    click.echo(f"wrote {paths['html']} and {paths['markdown']} ({n} plots in {paths['plots']})")
