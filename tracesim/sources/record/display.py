"""The live table shown while recording (rich, on stderr): per resource events/s, totals,
bytes, reconnects, relists, gaps, errors and state. ``--quiet`` turns it off."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from .recorder import ResourceStats


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


class RateMeter:
    """Events per second of each resource over the last refresh interval."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int]] = {}

    def rate(self, stats: ResourceStats, now: float) -> float:
        prev = self._last.get(stats.resource)
        self._last[stats.resource] = (now, stats.events)
        if prev is None or now <= prev[0]:
            return 0.0
        return (stats.events - prev[1]) / (now - prev[0])


def render(stats: Sequence[ResourceStats], rates: dict[str, float], elapsed_s: float) -> Table:
    """The table for one refresh."""
    table = Table(title=f"tracesim record — {elapsed_s:,.0f} s", title_justify="left")
    for name, justify in (
        ("resource", "left"),
        ("state", "left"),
        ("events/s", "right"),
        ("events", "right"),
        ("bytes", "right"),
        ("reconnects", "right"),
        ("relists", "right"),
        ("errors", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for s in stats:
        error = (s.error or "").removeprefix(f"{s.resource}: ")
        state = s.status if s.status != "failed" else f"[red]failed[/red]: {escape(error)}"
        table.add_row(
            s.resource,
            state,
            f"{rates.get(s.resource, 0.0):,.0f}",
            f"{s.events:,}",
            human_bytes(s.bytes),
            f"{s.reconnects:,}",
            f"{s.relists:,}",
            f"{s.errors:,}",
        )
    return table


async def live_display(
    get_stats: Callable[[], Sequence[ResourceStats]],
    stop: asyncio.Event,
    *,
    console: Console | None = None,
    refresh_s: float = 1.0,
) -> None:
    """Redraw the table every ``refresh_s`` until ``stop`` is set (then draw it once more)."""
    console = console or Console(stderr=True)
    meter = RateMeter()
    t0 = time.monotonic()

    def table() -> Table:
        now = time.monotonic()
        stats = get_stats()
        return render(stats, {s.resource: meter.rate(s, now) for s in stats}, now - t0)

    with Live(table(), console=console, auto_refresh=False, transient=False) as live:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=refresh_s)
            live.update(table(), refresh=True)
