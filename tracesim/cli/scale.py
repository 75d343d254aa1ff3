"""``tracesim scale``: scale a trace to another number of nodes."""

from __future__ import annotations

import click

from ..errors import TracesimError
from ..trace.transform import scale
from .options import parse_duration_s
from .progress import progress_bar


def parse_jitter_s(text: str) -> float:
    """``0.5``, ``500ms``, ``2s``, ``1m`` -> seconds; TracesimError naming --jitter otherwise."""
    text = text.strip()
    if text.endswith("ms"):
        try:
            return float(text[:-2]) / 1000.0
        except ValueError:
            raise TracesimError(f"--jitter {text!r}: not a duration (e.g. 500ms, 1s)") from None
    return parse_duration_s(text, "--jitter")


@click.command("scale")
@click.argument("trace", type=click.Path(path_type=str))
@click.option("--nodes", type=int, required=True, help="Number of nodes of the scaled trace.")
@click.option("--out", required=True, type=click.Path(), help="Trace directory to create.")
@click.option("--seed", type=int, default=0, show_default=True, help="Sampling and jitter seed.")
@click.option(
    "--jitter",
    default="1s",
    show_default=True,
    help="Largest time shift of a cloned object (500ms, 1s...).",
)
@click.option("--force", is_flag=True, help="Replace an existing trace at --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary.")
def command(
    trace: str, nodes: int, out: str, seed: int, jitter: str, force: bool, quiet: bool
) -> None:
    """Scale a recorded, imported or synthetic trace up (or down) to --nodes nodes.

    Nodes and workloads are cloned (or sampled) with fresh names and uids and jittered times,
    keeping per-node and per-workload statistics.

    Example: tracesim scale traces/sample --nodes 10000 --out traces/sample-10k
    """
    jitter_s = parse_jitter_s(jitter)
    with progress_bar("scale", quiet=quiet) as update:
        facts = scale(
            trace, nodes, out, seed=seed, jitter_s=jitter_s, overwrite=force, progress=update
        )
    if not quiet:
        n = facts["nodes"]
        click.echo(
            f"wrote {facts['path']}: {facts['rows']:,} events, {n['out']:,} nodes "
            f"(x{facts['factor']:.3g} of {n['parent']:,}; {facts['clones']} clone(s))"
        )
