"""``tracesim synth``: generate a synthetic cluster trace."""

from __future__ import annotations

import click

from ..sources.synth import HEARTBEAT_MODES, RESOURCES, SynthConfig, synthesize
from ..trace import open_trace
from ..trace.info import trace_info
from .options import parse_duration_s
from .progress import progress_bar


@click.command("synth")
@click.option("--nodes", type=int, default=100, show_default=True, help="Cluster size.")
@click.option("--duration", default="1h", show_default=True, help="Trace length: 30m, 1h, 2d.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Trace directory to create.")
@click.option("--force", is_flag=True, help="Replace an existing trace at --out.")
@click.option(
    "--resources",
    default=",".join(RESOURCES),
    show_default=True,
    help="Comma-separated resources to emit, as a recorder watching them would see.",
)
@click.option(
    "--heartbeat",
    type=click.Choice(HEARTBEAT_MODES),
    default="lease",
    show_default=True,
    help="Lease renewals, or full NodeStatus updates (pre-1.14).",
)
@click.option("--pods-per-node", type=float, default=SynthConfig.pods_per_node, show_default=True)
@click.option(
    "--churn",
    "churn_per_node_s",
    type=float,
    default=SynthConfig.churn_per_node_s,
    show_default=True,
    help="Deployment pod replacements per node per second.",
)
@click.option(
    "--burst-pods",
    type=int,
    default=0,
    show_default=True,
    help="Add a burst of this many Job pods.",
)
@click.option("--burst-at", default=None, help="When the burst starts (default: a third in).")
@click.option(
    "--rollout-fraction",
    type=float,
    default=SynthConfig.rollout_fraction,
    show_default=True,
    help="Fraction of Deployments in the mid-trace rollout storm.",
)
@click.option(
    "--start",
    default=SynthConfig.start,
    show_default=True,
    help="Trace start time (ISO 8601, UTC).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, no summary.")
def command(
    nodes: int,
    duration: str,
    seed: int,
    out: str,
    force: bool,
    resources: str,
    heartbeat: str,
    pods_per_node: float,
    churn_per_node_s: float,
    burst_pods: int,
    burst_at: str | None,
    rollout_fraction: float,
    start: str,
    quiet: bool,
) -> None:
    """Generate a seeded synthetic trace of a cluster of any size.

    Example: tracesim synth --nodes 10000 --duration 1h --out traces/synth-10k
    """
    cfg = SynthConfig(
        nodes=nodes,
        duration_s=parse_duration_s(duration),
        seed=seed,
        start=start,
        resources=tuple(r.strip() for r in resources.split(",") if r.strip()),
        heartbeat=heartbeat,
        pods_per_node=pods_per_node,
        churn_per_node_s=churn_per_node_s,
        burst_pods=burst_pods,
        burst_at_s=parse_duration_s(burst_at, "--burst-at") if burst_at else None,
        rollout_fraction=rollout_fraction,
    )
    cfg.validate()
    with progress_bar("synth", quiet=quiet) as update:
        path = synthesize(cfg, out, overwrite=force, progress=update)
    if not quiet:
        info = trace_info(open_trace(path), top=0)
        kinds = ", ".join(f"{k} {v['rows']:,}" for k, v in info["kinds"].items())
        click.echo(
            f"wrote {path}: {info['events']['rows']:,} events ({kinds}), "
            f"{info['nodes']:,} nodes, {info['pods']:,} pods"
        )
