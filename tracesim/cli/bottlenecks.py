"""``tracesim bottlenecks RESULTS``: which component saturates first, when and why."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("bottlenecks")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option(
    "--util-threshold",
    type=click.FloatRange(0.0, None, min_open=True),
    default=0.9,
    show_default=True,
    help="Utilisation (0..1) that counts as saturated when sustained.",
)
@click.option(
    "--sustain",
    "sustain_s",
    type=click.FloatRange(0.0, None, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds the utilisation must stay at the threshold (on average).",
)
def command(results: Path, as_json: bool, util_threshold: float, sustain_s: float) -> None:
    """Bottleneck analysis of RESULTS: a `tracesim replay --profile` output directory (which
    component saturates first and when, the SLOs violated and when, and what loads that
    component, by request category) or a `tracesim sweep` directory (the size at which each
    SLO first breaks, the component responsible and its contributors, per profile / variant).
    An unfinished sweep is analysed as far as it got, and what is missing is listed."""
    import pandas as pd

    from ..analysis.bottleneck import RunAnalysis, analyze, run_tables, sweep_tables

    an = analyze(results, util_threshold=util_threshold, sustain_s=sustain_s)
    if as_json:
        click.echo(json.dumps(an.to_json(), indent=2, default=str))
        return
    tables = run_tables(an) if isinstance(an, RunAnalysis) else sweep_tables(an)
    for sentence in an.sentences:
        click.echo(sentence)
    if not isinstance(an, RunAnalysis):
        for m in an.missing[1:11]:
            click.echo(f"  missing: {m}")
        if len(an.missing) > 11:
            click.echo(f"  ... and {len(an.missing) - 11} more")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        for title, df in tables.items():
            click.echo(f"\n{title}:")
            click.echo(df.to_string(index=False, na_rep="-"))
