"""``tracesim repair``: turn a crashed recording's journal into Parquet, finish the manifest."""

from __future__ import annotations

import click


@click.command("repair")
@click.argument("trace", type=click.Path())
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
def command(trace: str, quiet: bool) -> None:
    """Repair TRACE after a crash: convert leftover journals, rewrite the manifest."""
    from ..trace.repair import repair_trace

    report = repair_trace(trace)
    if quiet:
        return
    if not report["changed"]:
        click.echo(f"{trace}: complete, nothing to repair")
        return
    journals = ", ".join(report["journals"]) or "none"
    click.echo(
        f"{trace}: repaired (was {report['previous_status']}); journals converted: {journals}; "
        f"{report['rows_recovered']:,} rows recovered"
    )
