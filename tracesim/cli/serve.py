"""``tracesim serve TRACE``: serve a trace as a live, read-only Kubernetes API."""

from __future__ import annotations

import asyncio
import signal

import click

from ..errors import TracesimError
from ..trace import open_trace
from .options import parse_duration_s


@click.command("serve")
@click.argument("trace", type=click.Path(path_type=str))
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. The API has no authentication: keep it on loopback.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8001,
    show_default=True,
    help="Port to listen on; 0 picks a free one (printed).",
)
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Trace seconds played per wall second.",
)
@click.option("--loop", is_flag=True, help="Start again from the beginning when the trace ends.")
@click.option(
    "--start-at",
    default=None,
    help="Start playing here: seconds after the trace start, or an ISO 8601 time.",
)
@click.option(
    "--history",
    default="5m",
    show_default=True,
    help="Trace time of watch history kept; older resourceVersions get 410 Gone.",
)
@click.option(
    "--history-events",
    type=click.IntRange(1),
    default=100_000,
    show_default=True,
    help="At most this many retained watch events per resource.",
)
@click.option(
    "--bookmark-interval",
    default="5s",
    show_default=True,
    help="Wall time between BOOKMARK events on watches that allow them.",
)
@click.option("--access-log", is_flag=True, help="Log every request to stderr.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the URL.")
def command(
    trace: str,
    host: str,
    port: int,
    speed: float,
    loop: bool,
    start_at: str | None,
    history: str,
    history_events: int,
    bookmark_interval: str,
    access_log: bool,
    quiet: bool,
) -> None:
    """Serve TRACE as a Kubernetes API (discovery, GET, LIST, WATCH) played on a clock.

    Point kubectl, informers or a recorder at it:

      tracesim serve traces/day1 --speed 10 --port 8001

      kubectl --server http://127.0.0.1:8001 get pods -A -w
    """
    from ..serve import TracePlayer, serve_forever

    if not speed > 0:
        raise TracesimError(f"--speed {speed}: must be a positive number of trace s per wall s")
    history_s = parse_duration_s(history, "--history")
    bookmark_s = parse_duration_s(bookmark_interval, "--bookmark-interval")
    player = TracePlayer(
        open_trace(trace),
        speed=speed,
        loop=loop,
        start_at=start_at,
        history_s=history_s,
        history_events=history_events,
    )

    def ready(server: object) -> None:
        url = f"http://{server.host}:{server.port}"  # type: ignore[attr-defined]
        if quiet:
            click.echo(url)
            return
        kinds = ", ".join(
            f"{res.info.plural} ({len(res.objects):,})" for res in player.store.resources.values()
        )
        click.echo(f"serving {trace} on {url}  speed {speed:g}x{'  loop' if loop else ''}")
        click.echo(
            f"  resources: {kinds or 'none'}   resourceVersions: "
            f"{'from the trace' if player.trace_rvs else 'assigned'}"
        )
        click.echo(f"  try: kubectl --server {url} get pods -A -w      (Ctrl-C stops)")

    async def main() -> None:
        stop = asyncio.Event()
        loop_ = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop_.add_signal_handler(sig, stop.set)
        await serve_forever(
            player,
            host=host,
            port=port,
            bookmark_interval_s=bookmark_s,
            access_log=access_log,
            on_ready=ready,
            stop=stop,
        )

    asyncio.run(main())
