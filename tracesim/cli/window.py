"""``tracesim window``: cut a time window (and/or some kinds) out of a trace."""

from __future__ import annotations

import click
import pandas as pd

from ..errors import TracesimError
from ..trace import Trace, open_trace
from ..trace.transform import window
from .options import parse_duration_s


def parse_time_us(text: str | None, trace: Trace, option: str) -> int | None:
    """An ISO 8601 time, or an offset from the trace start (``10m``, ``+1h30m``) -> us."""
    if text is None:
        return None
    offset = text.strip().removeprefix("+")
    try:
        seconds = parse_duration_s(offset, option)
    except TracesimError:
        seconds = None
    if seconds is not None:
        span = trace.manifest.get("time_span") or {}
        if not span.get("start"):
            raise TracesimError(f"{option} {text!r}: the trace has no start time; give an ISO time")
        return int(pd.Timestamp(span["start"]).value // 1000) + round(seconds * 1e6)
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise TracesimError(
            f"{option} {text!r}: not a time; use ISO 8601 (2026-01-05T08:10:00Z) "
            "or an offset from the trace start (10m, 1h30m)"
        ) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1000)


@click.command("window")
@click.argument("trace", type=click.Path(path_type=str))
@click.option("--out", required=True, type=click.Path(), help="Trace directory to create.")
@click.option("--start", default=None, help="ISO 8601 time or offset from the trace start (10m).")
@click.option("--end", default=None, help="ISO 8601 time or offset from the trace start (40m).")
@click.option("--kinds", default=None, help="Comma-separated kinds to keep, e.g. Pod,Node.")
@click.option("--force", is_flag=True, help="Replace an existing trace at --out.")
@click.option("--quiet", "-q", is_flag=True, help="No summary.")
def command(
    trace: str,
    out: str,
    start: str | None,
    end: str | None,
    kinds: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Cut [--start, --end) out of a trace; the state at --start becomes LISTED rows.

    Example: tracesim window traces/sample --start 10m --end 20m --out /tmp/sample-10-20
    """
    opened = open_trace(trace)
    kind_list = [k.strip() for k in kinds.split(",") if k.strip()] if kinds else None
    if kinds is not None and not kind_list:
        raise TracesimError("--kinds is empty; give kinds such as Pod,Node")
    t0 = parse_time_us(start, opened, "--start")
    t1 = parse_time_us(end, opened, "--end")
    facts = window(opened, t0, t1, out, kinds=kind_list, overwrite=force)
    if not quiet:
        click.echo(
            f"wrote {facts['path']}: {facts['listed']:,} objects LISTED at the start, "
            f"{facts['events']:,} events"
        )
