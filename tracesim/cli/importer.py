"""``tracesim import``: turn public traces into tracesim traces."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("import")
def command() -> None:
    """Import a public trace as a tracesim trace."""


@command.command("alibaba-openb")
@click.option(
    "--nodes",
    "nodes_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="openb node list, e.g. openb_node_list_gpu_node.csv.",
)
@click.option(
    "--pods",
    "pods_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="openb pod list, e.g. openb_pod_list_default.csv.",
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing trace at --out.")
def alibaba_openb(nodes_csv: Path, pods_csv: Path, out: Path, overwrite: bool) -> None:
    """Alibaba cluster-trace-gpu-v2023 (openb): nodes LISTED, pods ADDED/MODIFIED/DELETED."""
    from ..sources.openb import import_trace

    info = import_trace(nodes_csv, pods_csv, out, overwrite=overwrite)
    events = ", ".join(f"{k} {v}" for k, v in sorted(info["events"].items()))
    click.echo(
        f"wrote {out}: {info['nodes']} nodes ({info['gpus']} GPUs), {info['pods']} pods; "
        f"pod events: {events}"
    )
