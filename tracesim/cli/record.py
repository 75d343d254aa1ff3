"""``tracesim record``: record a live cluster's watch streams into a trace."""

from __future__ import annotations

import asyncio

import click

from ..errors import TracesimError
from .options import parse_duration_s


@click.command("record")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig file(s).")
@click.option("--context", help="Kubeconfig context (default: the current one).")
@click.option(
    "--resources",
    default="pods,nodes,leases",
    show_default=True,
    help="Comma-separated resources to record (names as kubectl get takes them).",
)
@click.option("--namespace", "-n", help="Only this namespace (namespaced resources).")
@click.option("--duration", help="Stop after this long (90s, 30m, 1h); default: until Ctrl-C.")
@click.option("--raw-objects", is_flag=True, help="Also store each (redacted) object as JSON.")
@click.option("--keep-env", is_flag=True, help="Keep container env values in raw objects.")
@click.option("--keep-configmaps", is_flag=True, help="Keep ConfigMap values in raw objects.")
@click.option("--force", is_flag=True, help="Replace an existing trace at --out.")
@click.option("--quiet", "-q", is_flag=True, help="No live display, no summary.")
@click.option("--out", required=True, type=click.Path(), help="Trace directory to create.")
def command(
    kubeconfig: str | None,
    context: str | None,
    resources: str,
    namespace: str | None,
    duration: str | None,
    raw_objects: bool,
    keep_env: bool,
    keep_configmaps: bool,
    force: bool,
    quiet: bool,
    out: str,
) -> None:
    """Record LIST + WATCH of a cluster's resources into the trace directory --out.

    Credentials, TLS and proxies come from the kubeconfig exactly as for kubectl (or the
    in-cluster service account). Secret data, ConfigMap values, container env values and the
    last-applied-configuration annotation are never stored. SIGINT/SIGTERM stop cleanly;
    after a crash, `tracesim repair DIR` finishes the trace.
    """
    from rich.console import Console

    from ..sources.record import Recorder, RecordOptions, Redaction, load_auth
    from ..sources.record.display import human_bytes, live_display

    names = tuple(r.strip() for r in resources.split(",") if r.strip())
    if not names:
        raise TracesimError("--resources is empty; name at least one, e.g. pods,nodes")
    opts = RecordOptions(
        resources=names,
        namespace=namespace,
        duration_s=parse_duration_s(duration) if duration else None,
        raw_objects=raw_objects,
        redaction=Redaction(keep_env=keep_env, keep_configmaps=keep_configmaps),
    )
    auth = load_auth(kubeconfig, context)
    console = Console(stderr=True)

    def report(message: str) -> None:
        console.print(f"warning: {message}", markup=False, highlight=False)

    recorder = Recorder(auth, out, opts, overwrite=force, report=report)

    async def main() -> None:
        display = None
        if not quiet:

            async def show() -> None:
                await recorder.started.wait()
                await live_display(lambda: recorder.stats, recorder.stop, console=console)

            display = asyncio.create_task(show())
        try:
            await recorder.run(handle_signals=True)
        finally:
            if display is not None:
                if not recorder.started.is_set():
                    display.cancel()  # it never started: a startup error, no table
                recorder.stop.set()
                await asyncio.gather(display, return_exceptions=True)

    asyncio.run(main())
    if not quiet:
        total = sum(s.events for s in recorder.stats)
        size = sum(s.bytes for s in recorder.stats)
        click.echo(f"recorded {total:,} events ({human_bytes(size)}) to {out}", err=True)
