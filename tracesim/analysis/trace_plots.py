"""Pictures of a trace: event rates over time per kind, and object sizes per kind."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..trace.reader import Trace


def plot_trace(trace: Trace, out: str | Path, *, bin_s: float | None = None) -> Path:
    """Write a PNG with two panels: watch events/s per kind over time (the initial LIST left
    out), and object size per kind.

    ``bin_s`` is the width of a rate bin in seconds (default: about 200 bins over the span).
    Returns the path written.
    """
    table = trace.to_arrow(columns=["ts", "kind", "event_type", "size_bytes"])
    out = Path(out)
    fig, (ax_rate, ax_size) = plt.subplots(1, 2, figsize=(13, 4.5), width_ratios=[2, 1])
    if table.num_rows:
        ts_us = table.column("ts").cast("int64").to_numpy()
        t_s = (ts_us - ts_us[0]) / 1e6
        span_s = max(float(t_s[-1]), 1.0)
        width = bin_s or max(1.0, span_s / 200)
        edges = np.arange(0.0, span_s + width, width)
        kinds = table.column("kind").to_numpy(zero_copy_only=False)
        sizes = table.column("size_bytes").to_numpy(zero_copy_only=False)
        names, counts = np.unique(kinds.astype(str), return_counts=True)
        names = names[np.argsort(-counts)]
        # The initial LIST is the state at the start, not a rate: leave it out of the rates.
        watched = table.column("event_type").to_numpy(zero_copy_only=False) != "LISTED"
        for name in names:
            mask = (kinds == name) & watched
            hist, _ = np.histogram(t_s[mask], bins=edges)
            ax_rate.plot(edges[:-1] / 60, hist / width, label=name, drawstyle="steps-post")
        ax_size.boxplot(
            [sizes[kinds == n] for n in names], tick_labels=list(names), showfliers=False
        )
        ax_rate.legend()
    ax_rate.set_xlabel("trace time (min)")
    ax_rate.set_ylabel("events per second")
    ax_rate.set_title("watch events by kind")
    ax_size.set_yscale("log")
    ax_size.set_ylabel("object size (bytes)")
    ax_size.set_title("object sizes")
    fig.suptitle(f"{trace.path.name} ({trace.source_kind})")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
