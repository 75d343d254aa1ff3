"""``tracesim info TRACE``: what a trace holds."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

from ..trace import open_trace
from ..trace.info import trace_info


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


@click.command("info")
@click.argument("trace", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--top", default=10, show_default=True, help="How many of the largest objects.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write a PNG of event rates over time and object sizes, by kind.",
)
def command(trace: str, as_json: bool, top: int, plot: str | None) -> None:
    """Span, event counts and rates by kind and type, objects, bytes, largest objects."""
    opened = open_trace(trace)
    info = trace_info(opened, top=top)
    if plot:
        from ..analysis.trace_plots import plot_trace

        plot_trace(opened, plot)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    console = Console()
    src = info["source"]
    console.print(
        f"[bold]{info['path']}[/]  format v{info['format_version']}  "
        f"source: {src.get('kind')}  status: {info['status']}"
    )
    if info["span"] is None:
        console.print("no events")
        return
    span = info["span"]
    console.print(f"span: {span['start']} .. {span['end']}  ({span['duration_s']:.1f} s)")
    console.print(
        f"events: {info['events']['rows']:,}   object bytes: "
        f"{_size(info['events']['bytes'])}   nodes: {info['nodes']:,}   "
        f"pods: {info['pods']:,}"
    )
    kinds = Table("kind", "events", "events/s", "objects", "bytes", "by type", box=None)
    for kind, k in info["kinds"].items():
        rate = "-" if k["events_per_s"] is None else f"{k['events_per_s']:,.1f}"
        types = "  ".join(f"{t} {c:,}" for t, c in sorted(k["event_types"].items()))
        kinds.add_row(kind, f"{k['rows']:,}", rate, f"{k['objects']:,}", _size(k["bytes"]), types)
    console.print(kinds)
    largest = Table("largest objects", "size", box=None)
    for row in info["largest"]:
        ns = f"{row['namespace']}/" if row["namespace"] else ""
        largest.add_row(f"{row['kind']} {ns}{row['name']}", _size(row["size_bytes"]))
    console.print(largest)
