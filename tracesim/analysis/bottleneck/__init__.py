"""Bottleneck analysis: which control-plane component saturates first, when, why, and what
that does to the SLOs, for one replay (``tracesim replay --profile``) or across a sweep.

One run (:func:`analyze_run`) reads only result files: ``components.parquet`` (utilisation and
queue length per component every sample interval), ``requests.parquet`` (one row per API
request), ``pods.parquet`` and ``summary.json`` (profile parameters, etcd totals). It gives

- per component (etcd leader and read workers, API server CPU and seats per priority level or
  max-in-flight pool, watch fan-out per resource, scheduler loop, scheduler client rate
  limiter): mean / p95 / peak utilisation, queue length, and when it **saturates**: the start of
  the first ``sustain_s`` stretch whose mean utilisation is at least ``util_threshold`` (0.9),
  or the time from which a queue grows without bound (the queue's mean rises over each of the
  last ``trend_windows`` windows, ends above ``min_queue`` and at least doubles; the time is
  when it last left zero);
- the first component to saturate (ties: the higher utilisation), or the busiest one when none
  does;
- the SIG Scalability SLOs (:func:`tracesim.analysis.slo.evaluate_slos`, the same evaluation as
  ``summary.json``) and the first failing 5-minute window of each;
- the contributors to the responsible component's load, by request category (Lease renewals,
  NodeStatus, pod create / binding / status / delete / removal, scheduler Events, the trace's
  Events and other writes, reads, Event expiry): requests, bytes, and the component's share
  (how bytes and shares are estimated: :mod:`.categories`).

Across a sweep (:func:`analyze_sweep`): for each SLO and variant (profile and ``--set``
values) the knee of its worst p99 curve (:func:`tracesim.analysis.knee.find_knee`), the
component responsible at the first failing size and its contributors, and per run the first
component to saturate. An interrupted sweep is analysed as far as it got; what is missing is
listed. Results give plain sentences (``sentences``), pandas tables and ``to_json()``.

Modules, one job each:

- :mod:`.tables`: read a replay's result files (:class:`RunTables`) and its profile parameters;
- :mod:`.components`: utilisation and queues per component over time, and when each saturates;
- :mod:`.categories`: request categories, the load each puts on every component, contributors;
- :mod:`.text`: readable names and the phrases sentences are built from;
- :mod:`.run`: the analysis of one run (:class:`RunAnalysis`), its SLO table and sentences;
- :mod:`.sweep`: the analysis of a sweep (:class:`SweepAnalysis`), knees, sentences, plot;
- :mod:`.display`: readable tables for the CLI, the report and notebooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import TracesimError
from .categories import contributors
from .components import UTIL_THRESHOLD, component_table, queue_growth, rejection_onsets
from .display import run_tables, sweep_tables
from .run import RunAnalysis, analyze_run
from .sweep import SweepAnalysis, analyze_sweep, plot_sweep

__all__ = [
    "UTIL_THRESHOLD",
    "RunAnalysis",
    "analyze",
    "analyze_run",
    "analyze_sweep",
    "component_table",
    "contributors",
    "plot_sweep",
    "queue_growth",
    "rejection_onsets",
    "run_tables",
    "sweep_tables",
]


def analyze(results: str | Path, **options: Any) -> RunAnalysis | SweepAnalysis:
    """:func:`analyze_sweep` for a sweep directory (``sweep.json``), else :func:`analyze_run`."""
    results = Path(results)
    if not results.exists():
        raise TracesimError(f"{results}: no such directory; give a replay --out or sweep directory")
    if not results.is_dir():
        raise TracesimError(f"{results}: not a directory; give a replay --out or sweep directory")
    if (results / "sweep.json").is_file():
        return analyze_sweep(results, **options)
    return analyze_run(results, **options)
