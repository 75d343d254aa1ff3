"""Fit the etcd model's parameters to a calibration run, and write them as a profile.

What is fitted, from which measurements (all in :class:`~tracesim.models.params.EtcdParams`
units):

- **reads** (closed form, plus a simulated choice): the get service time is ``workers /
  saturated get throughput``, which leaves ``client_rtt_ms`` = single-client get latency -
  service time. ``peer_rtt_ms`` (the read-index round) = linearizable - serializable
  single-client get latency. The extra single-client latency of ranges over the get, per extra
  key (least squares on relative errors), gives ``range_us_per_object`` (less the default
  per-byte copy cost of the values, ``range_ns_per_byte`` being kept); ``range_base_us`` is
  what is left of the get service time. Then ``read_sharing`` (``fcfs`` queue or ``ps``
  processor sharing), ``read_concurrency`` (1 to :data:`READ_MAX_WORKERS`, at most what the
  single-client latency allows) and ``read_cv_ratio`` (a grid, then a golden-section
  refinement) minimise the squared log errors of mean, p99 and throughput of the model's
  replay of the fitted serializable get levels (every replay seeded 0), each error
  measured to the range the point's rounds spanned (:func:`_range_error`: a prediction
  within it counts as exact; a p99 from a third of a point's requests moves by tens of
  percent between rounds, and fitting the pooled value of such a point made one fit take a
  read CV of 4, which over-predicted the held-out gets' p99s by 70-110%). The knee between the
  single-client and saturated gets and the tails tell the candidates apart: under FIFO
  workers a read's p99/p50 shrinks as reads queue (a queue sums many services), under
  processor sharing it stays that of one service, as measured. Last, the **front stage**
  (``read_front_us`` per read, ``read_wakeup_us`` per wakeup of a serial stage in front of
  the workers, :class:`~tracesim.models.etcd.WakeupServer`): Nelder-Mead in log space over
  the wakeup, per-read front and worker service times and ``read_cv_ratio`` (the client RTT
  takes what is left of the single-client latency) from two starts, kept only if it brings
  the loss below :data:`FRONT_MIN_GAIN` of the plain path's. A measured get throughput that
  rises ~25% per doubling from 1 to 16 in flight is what two stages in tandem, one amortising
  its wakeups over the reads taken together, produce; one station behind a fixed delay
  saturates by 2-4 in flight. Then, when etcd shared the machine's cores with the client,
  **delayed reads** (:func:`_fit_read_delays`: ``read_delay_ratio`` of the reads that
  find more reads on the workers than those cores answered ``read_delay_ms`` late, with
  ``read_cv_ratio`` refitted) against the fit gets and single-client ranges, kept if they
  bring the loss below :data:`READ_DELAY_MIN_GAIN` of the path without. Then
  ``read_index_us`` (a linearizable read's extra CPU on the workers; a grid over fractions
  of the get's service time, ``peer_rtt_ms`` taking the rest of the single-client
  difference) from the fit linearizable gets, kept if it brings their loss below
  :data:`READ_INDEX_MIN_GAIN` of the loss without it.
- **writes** (simulation): ``fsync_ms``, ``apply_us_per_request``, ``ns_per_byte`` and
  ``backend_commit_ms`` minimise the squared log errors of mean latency and throughput of the
  model's replay of the write points used for fitting, by Nelder-Mead in log space from a
  closed-form start (saturated throughput per value size gives the per-request and per-byte
  costs; the single-client latency the rest).
- **leader** (simulation, :func:`fit_leader`): the write fit above is run twice, with the
  serial leader and with the pipelined one (``apply_pipelined``: WAL and apply stages
  overlapping, as etcd's raftNode.start() does), the latter also adjusting
  ``write_overhead_us`` (latency off the leader) and, with ~1 MB puts among the fit points,
  ``wal_ns_per_byte`` (the WAL stage's per-byte work; ~1 MB puts at 2 in flight are answered
  in about the single-client latency at twice its throughput, which needs the per-byte work
  split over two overlapping stages). The pipelined leader is kept only if its loss on the
  fit points is lower; the spread and the refit below are done for the kept one.
- **spread** (simulation, the calibration's model): ``fsync_cv_ratio`` (a lognormal
  per-batch multiplier of the fsync and of each backend commit), apply stalls
  (``stall_per_s``, ``stall_ms``: a batch whose apply takes T meets a Poisson number, mean
  ``stall_per_s`` x T, of exponential stalls) and ``backend_commit_ns_per_byte`` (a bbolt
  commit's cost per byte written since the previous one) minimise the squared log errors of
  the p99/p50 ratio of the fit write points (Nelder-Mead in log space, common random numbers:
  every replay uses seed 0, each as long as its measurement, as :mod:`.validate` replays
  it). The per-batch apply multiplier (``batch_apply_cv_ratio``) is held at 0: it stretches
  a batch of 128 puts as much as a batch of one, which over-predicted the saturated small
  puts' p99 (+47% at 128 in flight) while the 16 kB puts at 4-16 in flight were
  under-predicted; stalls whose time does not scale with the batch's work average out over a
  large batch and give a small one a long tail. ``backend_commit_ms`` is fitted here too,
  from the write fit's value: a bbolt commit every ``backend_commit_interval_ms`` stalls the
  requests that meet it, a tail the means hardly see (on one run the means alone drove it to
  10 ms, which put the single-client p99 at 7.7 ms against 1.8 ms measured). The mean fit is
  then repeated with the spread in place, from its previous optimum, ``backend_commit_ms``
  held. (:func:`fit_spread` without ``stalls`` fits the per-batch multipliers instead:
  ``batch_apply_cv_ratio``, and with ~1 MB puts ``byte_cv_ratio``, the lower loss winning.)
- **shared CPU** (simulation, :func:`fit_leader` with ``cpu_cores``, which the calibration
  chooses whenever etcd runs on its machine: :func:`~.cpu.shared_cpu_cores`): instead of
  the serial/pipelined comparison, the pipelined leader with every piece of a put's CPU work
  on a processor-sharing pool of the machine's cores, the calibration's client (its measured
  CPU per put) on the same pool. ``fsync_ms`` is etcd's own fdatasync of a lone put (its
  counters), not fitted; :data:`POOL_KEYS` (front, raft and apply CPU per put, per byte and
  per batch) are fitted as the writes above, from a start the counters give
  (:func:`_start_pool`), restarted once from their optimum with raft's wait for a core
  after each fdatasync (:func:`_restart_means`, :data:`POOL_FSYNC_WAKEUP`; kept if it fits
  better), then the spread with a CV per CPU job (``cpu_cv_ratio``) in the apply stalls' place. On a
  machine whose cores etcd shares, the CPU is what saturates, and a model whose stages are
  plain delays fits it only with a WAL stage standing for all of raft's work
  (docs/validation.md, "A shared CPU pool").
- **maintenance** (closed form): ``compaction_us_per_revision`` from the compaction's duration,
  ``defrag_s_per_gib`` from the defragmentation's duration and the file size it rewrote.

Which concurrency levels are used for fitting: every other level of each value size (the 1st,
3rd, ...) plus the highest; the rest are held out for :mod:`.validate`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import TracesimError
from ..models.params import EtcdParams, load_profile, profile_dir
from .validate import simulate_point

#: Parameters the simulation fit adjusts (Nelder-Mead, in log space).
WRITE_KEYS = ("fsync_ms", "apply_us_per_request", "ns_per_byte", "backend_commit_ms")
#: Weights of the squared log errors per metric in the write fit. p99 is left to the spread
#: fit (:func:`fit_spread`): without spread the model cannot reach it, and chasing it would
#: bias the means.
WEIGHTS = {"mean_ms": 1.0, "throughput_per_s": 1.0}
#: With the pipelined leader the write fit also adjusts the write path's delay off the
#: leader and, when ~1 MB puts are among the fit points, the WAL stage's per-byte work.
PIPELINED_KEYS = ("write_overhead_us",)
PIPELINED_BYTE_KEYS = ("wal_ns_per_byte",)
#: Service-time spreads fitted to the p99/p50 ratios, and their bounds (CV, ratio).
SPREAD_KEYS = ("fsync_cv_ratio", "batch_apply_cv_ratio")
SPREAD_BOUNDS = (0.01, 4.0)
#: The calibration's spread model (:func:`fit_spread` with ``stalls``): the disk's CV, apply
#: stalls (rate and mean duration) in place of the per-batch apply multiplier, and a backend
#: commit cost per byte written, with their bounds and starts.
STALL_KEYS = ("fsync_cv_ratio", "stall_per_s", "stall_ms", "backend_commit_ns_per_byte")
STALL_BOUNDS = {
    "stall_per_s": (0.1, 5000.0),
    "stall_ms": (0.01, 200.0),
    "cpu_pause_per_s": (0.1, 5000.0),
    "cpu_pause_ms": (0.01, 200.0),
    "backend_commit_ns_per_byte": (0.001, 100.0),
}
STALL_START_PER_S = 20.0
COMMIT_NS_PER_BYTE_START = 1.0
#: Fitted with the spreads (a tail parameter), then held while the means are refitted.
COMMIT_KEYS = ("backend_commit_ms",)
COMMIT_BOUNDS_MS = (0.01, 100.0)
#: The per-byte work's own spread (``byte_cv_ratio``) is fitted too when the fit points
#: include puts at least this large (where the per-byte work is most of a batch).
BYTE_SPREAD_MIN_BYTES = 100_000
#: Read fit: candidate spreads (CV) of a read's service time (0 first: no spread), the most
#: workers tried, and the requests per replay of a fit get (enough for a p99).
READ_CV_GRID = (0.0, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0, 1.4, 2.0)
READ_MAX_WORKERS = 8
READ_REPLAY_REQUESTS = 400
#: Read fit with a serial front stage: Nelder-Mead evaluations, and the fraction of the plain
#: read path's loss it must reach to be kept (two more parameters must earn their place).
READ_FRONT_EVALS = 300
FRONT_MIN_GAIN = 0.7
#: Linearizable reads' extra CPU: candidates as multiples of the get's service time, and the
#: fraction of the loss without it that the best must reach to be kept.
READ_INDEX_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)
READ_INDEX_MIN_GAIN = 0.8
#: A fitted front stage costing less than this share of the saturated per-read time is not
#: kept: it changes nothing a replay would notice.
FRONT_MIN_SHARE = 0.05
#: Delayed reads (``read_delay_ratio``, ``read_delay_ms``), fitted with
#: ``read_cv_ratio`` by Nelder-Mead in log space from :data:`READ_DELAY_STARTS` (CV as a
#: fraction of the plain fit's, fraction delayed, delay in ms: the starts bracket the 1-4%
#: of 3-5 ms measured), each fit read replayed with :data:`READ_DELAY_REQUESTS` requests (a
#: tail of 1-4% of the reads is noise in 400); kept if the fit reads' loss falls below
#: :data:`READ_DELAY_MIN_GAIN` of the plain path's at the same request count. At most
#: :data:`READ_DELAY_MAX_RATIO` of the reads may be delayed.
READ_DELAY_STARTS = ((0.3, 0.01, 4.0), (0.5, 0.03, 2.0))
READ_DELAY_REQUESTS = 2000
READ_DELAY_EVALS = 50
READ_DELAY_MIN_GAIN = 0.7
READ_DELAY_MAX_RATIO = 0.2
#: The shared-CPU write path (:func:`fit_leader` with ``cpu_cores``): the pipelined leader
#: with every piece of a put's CPU work on a pool of cores (``EtcdParams.cpu_cores``) and the
#: fdatasync as the disk's delay. Its write fit adjusts these (with ~1 MB puts among the fit
#: points also :data:`PIPELINED_BYTE_KEYS`); its spread fit the disk's CV, a CV per CPU job
#: and the commit's cost per byte (no apply stalls: waiting for the CPU is the tail).
POOL_KEYS = (
    "fsync_ms",
    "front_cpu_us",
    "front_cpu_ns_per_byte",
    "apply_us_per_request",
    "ns_per_byte",
    "wal_cpu_us_per_batch",
    "wal_cpu_us_per_entry",
    "write_overhead_us",
)
#: (Pauses of the whole pool, ``cpu_pause_per_s``/``cpu_pause_ms``, fitted with these on
#: four runs, moved two held-out p99s in and one mean out, and did not lower the spread
#: loss on two of the four: not fitted; docs/validation.md.)
POOL_SPREAD_KEYS = ("fsync_cv_ratio", "cpu_cv_ratio", "backend_commit_ns_per_byte")
POOL_CPU_CV_START = 0.5
#: The shared-CPU write fit's first pass has twice the other fits' evaluations (eight
#: parameters or nine, against four to six) and larger first steps from its start, which
#: the counters give only roughly.
POOL_EVALS_FACTOR = 2
POOL_STEP = 0.3
#: Hold ``fsync_ms`` at etcd's own lone fdatasync (:func:`_lone_fsync_ms`) where counted,
#: rather than fitting it: in the shared-CPU model the fdatasync is the disk alone.
POOL_PIN_FSYNC = True
#: The shared-CPU model's wait for a core after each fdatasync
#: (``EtcdParams.fsync_wakeup_front_ratio``, ``fsync_wakeup_max_ms``): the first pass fits
#: the means without it, the restart (:func:`_restart_means`) with it at these values from
#: that optimum, and the lower loss decides. Held, not fitted: fitted, the ratio went to
#: 5-10 (the cap then decides) and held out no better on two runs (docs/validation.md,
#: "Tenth session"); a first pass with the wait from the counters' start stopped in a poor
#: optimum on one run of five, which starting from the plain optimum avoids.
POOL_FSYNC_WAKEUP = {"fsync_wakeup_front_ratio": 3.0, "fsync_wakeup_max_ms": 1.5}
#: The backend commit's start in the shared-CPU fit (ms; fitted with the spread).
POOL_COMMIT_START_MS = 1.0
#: Starting values where etcd's counters do not give them (typical of the runs in
#: docs/validation.md, "A shared CPU pool"), in the parameters' units.
POOL_FALLBACK_START = {
    "wal_cpu_us_per_batch": 250.0,
    "wal_cpu_us_per_entry": 100.0,
    "cpu_us_per_request": 150.0,  # etcd's CPU per put at saturation, all stages
    "cpu_ns_per_byte": 25.0,
}
#: Lower bounds (units of the parameter) so a parameter the data cannot see stays sane.
FLOORS = {
    "fsync_ms": 0.01,
    "apply_us_per_request": 0.5,
    "ns_per_byte": 0.01,
    "backend_commit_ms": 0.01,
    "write_overhead_us": 1.0,
    "wal_ns_per_byte": 0.01,
    "front_cpu_us": 0.5,
    "front_cpu_ns_per_byte": 0.01,
    "wal_cpu_us_per_batch": 0.5,
    "wal_cpu_us_per_entry": 0.5,
}


@dataclass
class FitResult:
    """Fitted values (``EtcdParams`` field -> value), the resulting parameters and fit stats."""

    values: dict[str, float]
    params: EtcdParams
    loss: float
    evaluations: int
    fit_points: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def assign_roles(points: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``points`` with a ``role`` column: ``fit`` / ``validate`` for write and
    read-get points by concurrency level (every other level plus the highest is ``fit``),
    ``fit`` for single-client ranges, ``""`` for the watch rows."""
    out = points.copy()
    out["role"] = ""
    groups = out[out["phase"].isin(["write", "read"])].groupby(
        ["phase", "op", "consistency", "size_class", "keys_per_request"], sort=False
    )
    for _key, grp in groups:
        levels = sorted(grp["concurrency"].unique())
        fit_levels = set(levels[::2]) | {levels[-1]}
        for idx, row in grp.iterrows():
            out.loc[idx, "role"] = "fit" if row["concurrency"] in fit_levels else "validate"
    return out


def _nelder_mead(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    step: float = 0.3,
    max_evals: int = 120,
    tol: float = 1e-4,
) -> tuple[np.ndarray, float, int]:
    """Minimise ``f`` from ``x0`` (standard Nelder-Mead); (best x, best f, evaluations).

    ``max_evals`` ends the search at the step that reaches it: a step takes one to two
    evaluations, a shrink one per parameter, so up to ``len(x0)`` more can be used."""
    n = len(x0)
    simplex = [x0.astype(float)]
    for i in range(n):
        x = x0.astype(float).copy()
        x[i] += step
        simplex.append(x)
    values = [f(x) for x in simplex]
    evals = n + 1
    while evals < max_evals:
        order = np.argsort(values)
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        if abs(values[-1] - values[0]) <= tol * (abs(values[0]) + 1e-12):
            break
        centroid = np.mean(simplex[:-1], axis=0)
        xr = centroid + (centroid - simplex[-1])
        fr = f(xr)
        evals += 1
        if fr < values[0]:
            xe = centroid + 2 * (centroid - simplex[-1])
            fe = f(xe)
            evals += 1
            simplex[-1], values[-1] = (xe, fe) if fe < fr else (xr, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = xr, fr
        else:
            xc = centroid + 0.5 * (simplex[-1] - centroid)
            fc = f(xc)
            evals += 1
            if fc < values[-1]:
                simplex[-1], values[-1] = xc, fc
            else:  # shrink towards the best
                for i in range(1, n + 1):
                    simplex[i] = simplex[0] + 0.5 * (simplex[i] - simplex[0])
                    values[i] = f(simplex[i])
                    evals += 1
    best = int(np.argmin(values))
    return simplex[best], float(values[best]), evals


def _first(points: pd.DataFrame, **eq: Any) -> pd.Series | None:
    mask = np.ones(len(points), bool)
    for k, v in eq.items():
        mask &= (points[k] == v).to_numpy()
    sel = points[mask]
    return None if sel.empty else sel.sort_values("concurrency").iloc[0]


def _range_error(predicted: float, row: pd.Series, metric: str) -> float:
    """The log error of ``predicted`` (> 0) against the point's measured ``metric``: 0 within
    the range its rounds spanned (``<metric>_round_min``/``_max``, the measurement's own
    uncertainty), else the log distance to the nearer end; against the pooled value where
    the range is not known (one round, an older run)."""
    lo = float(row.get(f"{metric}_round_min", float("nan")))
    hi = float(row.get(f"{metric}_round_max", float("nan")))
    if lo > 0 and hi >= lo:
        return math.log(predicted / min(max(predicted, lo), hi))
    return math.log(predicted / float(row[metric]))


def _reads_loss(
    trial: EtcdParams, rows: list[pd.Series], requests: int, *, p99: bool = True
) -> float:
    """Mean over ``rows`` (read points) of the squared log errors (:func:`_range_error`) of
    the model's mean latency, throughput and, with ``p99``, p99 latency, each point replayed
    with at most ``requests`` requests."""
    err = 0.0
    for row in rows:
        sim = simulate_point(trial, row, requests)
        err += _range_error(sim.mean_ms, row, "mean_ms") ** 2
        err += _range_error(sim.throughput_per_s, row, "throughput_per_s") ** 2
        if p99:
            err += _range_error(sim.p99_ms, row, "p99_ms") ** 2
    return err / len(rows)


def fit_reads(
    points: pd.DataFrame, base: EtcdParams, *, front: bool = True, shared_cores: int = 0
) -> tuple[dict[str, Any], list[str]]:
    """Read parameters (see the module docstring); (values, notes). ``front``: also try the
    read path with a serial front stage (``read_front_us``, ``read_wakeup_us``);
    ``shared_cores`` > 0: etcd shared that many cores with the calibration's client, and
    delays of the reads that find more reads than that on the workers are tried too
    (:func:`_fit_read_delays`)."""
    notes: list[str] = []
    # Delays are this fit's own choice.
    base = dataclasses.replace(base, read_delay_ratio=0.0, read_delay_ms=0.0)
    fit = points[(points["phase"] == "read") & (points["role"] == "fit")]
    gets = fit[(fit["op"] == "get") & (fit["consistency"] == "serializable")]
    if gets.empty:
        raise TracesimError("no serializable get measured; cannot fit the read parameters")
    one = gets.sort_values("concurrency").iloc[0]
    lat1_s = float(one["mean_ms"]) / 1e3
    x_sat = float(gets["throughput_per_s"].max())
    lin = _first(fit, op="get", consistency="linearizable", concurrency=1)
    peer_ms = max(0.0, float(lin["mean_ms"]) - float(one["mean_ms"])) if lin is not None else 0.0
    if lin is None:
        notes.append("no linearizable get measured: peer_rtt_ms = 0")
    # Single-client ranges: service(n keys) = get service + (n - 1) * per-key cost, the slope
    # fitted by least squares on relative errors through the get (so gets and ranges agree).
    ranges = fit[
        (fit["op"] == "range")
        & (fit["consistency"] == "serializable")
        & (fit["concurrency"] == 1)
        & (fit["keys_per_request"] > 1)
    ]
    vbytes = float(one["value_bytes"])
    if not ranges.empty:
        x = ranges["keys_per_request"].to_numpy(float) - 1
        m = ranges["mean_ms"].to_numpy(float) / 1e3
        y = m - lat1_s
        slope_s = max(0.0, float(np.sum(x * y / m**2) / np.sum(x**2 / m**2)))
    else:
        slope_s = 0.0
        notes.append("no range read measured: range_us_per_object = 0")
    per_key_us = slope_s * 1e6
    per_object_us = max(0.0, per_key_us - vbytes * base.range_ns_per_byte / 1e3)

    def fixed_us(_values: dict[str, Any] | None = None) -> float:
        # The per-key part of a one-key get's service time (the rest is range_base_us).
        return per_object_us + vbytes * base.range_ns_per_byte / 1e3

    def values_for(workers: int) -> dict[str, float]:
        # Workers w and service s satisfy s = w / X_sat; the rest of the get latency is RTT.
        service_s = workers / x_sat
        return {
            "client_rtt_ms": max(0.01, (lat1_s - service_s) * 1e3),
            "peer_rtt_ms": peer_ms,
            "read_concurrency": workers,
            "range_base_us": max(0.0, service_s * 1e6 - fixed_us()),
            "range_us_per_object": float(per_object_us),
        }

    # Any w up to single-client latency x X_sat fits the single-client and the saturated gets;
    # the knee in between, and the tails, tell the candidates apart: for each sharing
    # discipline and worker count, the read spread that best matches the fit gets' mean, p99
    # and throughput (squared log errors), then the best candidate overall (FIFO and fewer
    # workers on a tie).
    has_p50 = "p50_ms" in gets and bool((gets["p50_ms"] > 0).all())
    rows = [row for _, row in gets.iterrows()]

    def loss_of(trial: EtcdParams) -> float:
        return _reads_loss(trial, rows, READ_REPLAY_REQUESTS, p99=has_p50)

    best: tuple[float, str, int, float] | None = None
    max_workers = min(READ_MAX_WORKERS, max(1, math.floor(lat1_s * x_sat)))
    for sharing in ("fcfs", "ps"):
        for workers in range(1, max_workers + 1):
            trial0 = dataclasses.replace(base, **values_for(workers), read_sharing=sharing)
            cvs = READ_CV_GRID if has_p50 else (0.0,)
            for cv in cvs:
                err = loss_of(dataclasses.replace(trial0, read_cv_ratio=cv))
                if best is None or err < best[0] - 1e-9:
                    best = (err, sharing, workers, cv)
    assert best is not None
    err, sharing, workers, cv = best
    if has_p50 and cv > 0:
        # Refine the spread between its grid neighbours (golden section in log CV).
        i = READ_CV_GRID.index(cv)
        lo = math.log(READ_CV_GRID[max(1, i - 1)])
        hi = math.log(READ_CV_GRID[min(len(READ_CV_GRID) - 1, i + 1)])
        trial0 = dataclasses.replace(base, **values_for(workers), read_sharing=sharing)

        def f(log_cv: float) -> float:
            return loss_of(dataclasses.replace(trial0, read_cv_ratio=math.exp(log_cv)))

        g = (math.sqrt(5) - 1) / 2
        a, b = lo, hi
        c, d = b - g * (b - a), a + g * (b - a)
        fc, fd = f(c), f(d)
        for _ in range(8):
            if fc < fd:
                b, d, fd = d, c, fc
                c = b - g * (b - a)
                fc = f(c)
            else:
                a, c, fc = c, d, fd
                d = a + g * (b - a)
                fd = f(d)
        x, fx = (c, fc) if fc < fd else (d, fd)
        if fx < err:
            err, cv = fx, math.exp(x)
    notes.append(
        f"reads: {sharing} over {workers} worker(s), read_cv_ratio {cv:.3g} "
        f"(loss {err:.3g} over {len(rows)} fit gets)"
    )
    values: dict[str, Any] = values_for(workers)
    values["read_sharing"] = sharing
    values["read_cv_ratio"] = float(cv)
    if front and has_p50 and len(rows) >= 3:
        staged = _fit_read_front(rows, base, values, err, lat1_s, x_sat, fixed_us(values), loss_of)
        if staged is not None:
            values, front_err = staged
            notes.append(
                f"reads: serial front stage {values['read_front_us']:.0f} us/read + "
                f"{values['read_wakeup_us']:.0f} us/wakeup before {values['read_sharing']} "
                f"over {values['read_concurrency']} worker(s) (loss {front_err:.3g} vs {err:.3g} "
                "without)"
            )
    if shared_cores > 0 and has_p50 and len(rows) >= 3:
        # The single-client ranges too: their tails say how rarely a lone read is delayed.
        reads = rows + [row for _, row in ranges.iterrows()]
        delayed = _fit_read_delays(base, values, reads, shared_cores + 1)
        if delayed is not None:
            values, note = delayed
            notes.append(note)
    lin_rows = [
        row
        for _, row in fit[(fit["op"] == "get") & (fit["consistency"] == "linearizable")]
        .sort_values("concurrency")
        .iterrows()
    ]
    if has_p50 and len(lin_rows) >= 2 and int(lin_rows[0]["concurrency"]) == 1:
        extra = _fit_read_index(lin_rows, base, values, lat1_s)
        if extra is not None:
            values, note = extra
            notes.append(note)
    client_us = float(one.get("client_cpu_us_per_request", float("nan")))
    if client_us > 0:  # the client's CPU inside the round trip, at most all of it
        values["client_rtt_cpu_us"] = min(client_us, float(values["client_rtt_ms"]) * 1e3)
    return values, notes


def _fit_read_index(
    rows: list[pd.Series], base: EtcdParams, values: dict[str, Any], lat1_s: float
) -> tuple[dict[str, Any], str] | None:
    """``read_index_us`` (CPU of a linearizable read's read-index round on the read workers)
    from the fit linearizable gets: a grid over multiples of the get's service time, each
    with ``peer_rtt_ms`` = single-client linearizable - serializable latency - that CPU,
    minimising the squared log errors of their mean, p99 and throughput; kept if it beats
    ``read_index_us`` 0 by :data:`READ_INDEX_MIN_GAIN`. Returns (values, note) or None."""
    diff_s = max(0.0, float(rows[0]["mean_ms"]) / 1e3 - lat1_s)
    service_us = float(values["range_base_us"]) + float(values["range_us_per_object"])

    def trial(extra_us: float) -> EtcdParams:
        peer_ms = max(0.0, diff_s * 1e3 - extra_us / 1e3)
        return dataclasses.replace(
            base, **{**values, "read_index_us": extra_us, "peer_rtt_ms": peer_ms}
        )

    def loss(extra_us: float) -> float:
        p = trial(extra_us)
        err = 0.0
        for row in rows:
            sim = simulate_point(p, row, READ_REPLAY_REQUESTS)
            for metric in ("mean_ms", "p99_ms", "throughput_per_s"):
                err += math.log(getattr(sim, metric) / float(row[metric])) ** 2
        return err / len(rows)

    grid = [f * service_us for f in READ_INDEX_GRID]
    losses = [loss(x) for x in grid]
    best = int(np.argmin(losses))
    if best == 0 or losses[best] > READ_INDEX_MIN_GAIN * losses[0]:
        return None
    p = trial(grid[best])
    note = (
        f"reads: linearizable reads cost {grid[best]:.0f} us more on the read workers, "
        f"peer_rtt_ms {p.peer_rtt_ms:.3g} (loss {losses[best]:.3g} vs {losses[0]:.3g} without, "
        f"over {len(rows)} fit linearizable gets)"
    )
    return {**values, "read_index_us": grid[best], "peer_rtt_ms": p.peer_rtt_ms}, note


def _fit_read_delays(
    base: EtcdParams, plain: dict[str, Any], rows: list[pd.Series], min_reads: int
) -> tuple[dict[str, Any], str] | None:
    """Delayed reads (``read_delay_ratio`` of the reads that find at least ``min_reads``
    reads on the workers, itself included, answered ``read_delay_ms`` late) with
    ``read_cv_ratio`` refitted: Nelder-Mead in log space from :data:`READ_DELAY_STARTS`.
    Why: on 2 cores shared with the client, gets have almost no tail at 1 and 2 in flight
    and 1-4% of them take 3-5 ms from 4 in flight (a bump, not a wider body: one thread
    waits out another's CFS slice once the client's thread and etcd's serving threads
    outnumber the cores). One lognormal spread per read fits neither; pauses of the whole
    read stage (the eleventh session's model) stall every read in progress and under-predict
    the bump at 4-8 in flight (docs/validation.md, "Twelfth session"). ``min_reads``: the
    cores etcd shares with the client + 1 (with as many as the cores, the gets at 2 in
    flight, which have no bump, would be delayed as often as those at 4). ``rows``: the fit
    serializable reads (the gets and the single-client ranges, whose small tails say how
    rarely a lone read is delayed), each replayed with :data:`READ_DELAY_REQUESTS`
    requests; the loss is their mean squared log error of mean, p99 and throughput
    (:func:`_range_error`). Returns (values, note) if it falls below
    :data:`READ_DELAY_MIN_GAIN` of the plain path's, else None."""
    cv0 = max(0.05, float(plain["read_cv_ratio"]))

    def values_of(x: np.ndarray) -> dict[str, Any] | None:
        cv, fraction, delay_ms = (float(v) for v in np.exp(x))
        if fraction > READ_DELAY_MAX_RATIO:
            return None
        return {
            **plain,
            "read_cv_ratio": float(np.clip(cv, 0.0, 4.0)),
            "read_delay_ratio": fraction,
            "read_delay_ms": delay_ms,
            "read_delay_min_reads": min_reads,
        }

    def loss_of(trial: EtcdParams) -> float:
        return _reads_loss(trial, rows, READ_DELAY_REQUESTS)

    plain_err = loss_of(dataclasses.replace(base, **plain))

    def loss(x: np.ndarray) -> float:
        vals = values_of(x)
        if vals is None:
            return 100.0 + float(np.sum(x))
        return loss_of(dataclasses.replace(base, **vals))

    best: tuple[float, np.ndarray] | None = None
    for cv_frac, fraction, delay_ms in READ_DELAY_STARTS:
        x0 = np.log([cv0 * cv_frac, fraction, delay_ms])
        xs, e, _evals = _nelder_mead(loss, x0, step=0.5, max_evals=READ_DELAY_EVALS)
        if best is None or e < best[0]:
            best = (e, xs)
    assert best is not None
    err, x = best
    vals = values_of(x)
    if vals is None or err > READ_DELAY_MIN_GAIN * plain_err:
        return None
    note = (
        f"reads: {vals['read_delay_ratio']:.2%} of the reads that find "
        f"{min_reads} or more on the workers are answered {vals['read_delay_ms']:.3g} ms "
        f"late, read_cv_ratio {vals['read_cv_ratio']:.3g} (loss {err:.3g} vs "
        f"{plain_err:.3g} without over {len(rows)} fit reads)"
    )
    return vals, note


def _fit_read_front(
    rows: list[pd.Series],
    base: EtcdParams,
    plain: dict[str, Any],
    plain_err: float,
    lat1_s: float,
    x_sat: float,
    fixed_us: float,
    loss_of: Callable[[EtcdParams], float],
) -> tuple[dict[str, Any], float] | None:
    """The read path with a serial front stage (``read_front_us`` per read,
    ``read_wakeup_us`` per wakeup; :class:`~tracesim.models.etcd.WakeupServer`) before the
    read workers: Nelder-Mead in log space over the wakeup, per-read front and worker service
    times and ``read_cv_ratio``, the client RTT taking what is left of the single-client get
    latency, for the sharing and worker count of the plain fit. Returns (values, loss) if it
    beats the plain read path's loss ``plain_err`` by :data:`FRONT_MIN_GAIN`, else None (a
    parameter the data does not need stays 0)."""
    workers = int(plain["read_concurrency"])
    bottleneck_s = 1.0 / x_sat
    peer = float(plain["peer_rtt_ms"])

    def values_of(x: np.ndarray) -> tuple[dict[str, Any], float]:
        wake_s, front_s, service_s = np.exp(x[:3]) / 1e6
        rtt_s = lat1_s - wake_s - front_s - service_s
        vals = dict(plain)
        vals.update(
            client_rtt_ms=max(0.01, rtt_s * 1e3),
            peer_rtt_ms=peer,
            read_wakeup_us=float(wake_s * 1e6),
            read_front_us=float(front_s * 1e6),
            range_base_us=max(0.0, float(service_s * 1e6) - fixed_us),
            read_cv_ratio=float(np.clip(np.exp(x[3]), 0.01, 4.0)),
        )
        return vals, rtt_s

    def loss(x: np.ndarray) -> float:
        vals, rtt_s = values_of(x)
        if rtt_s < 1e-5:  # the stages cannot take more than the single-client latency
            return 100.0 + (1e-5 - rtt_s) * 1e5
        return loss_of(dataclasses.replace(base, **vals))

    cv0 = max(0.1, float(plain["read_cv_ratio"]))
    service_us = float(plain["range_base_us"]) + fixed_us
    # Two starts: a front stage as costly as the bottleneck, and the plain read path with a
    # token front stage (so the search can only improve on the plain fit); the better wins.
    b_us = bottleneck_s * 1e6
    starts = ([0.3 * b_us, 0.9 * b_us, 0.5 * workers * b_us], [2.0, 2.0, service_us])
    x, err = np.log([*starts[0], cv0]), math.inf
    for start in starts:
        xs, e, _evals = _nelder_mead(
            loss, np.log([*start, cv0]), step=0.4, max_evals=READ_FRONT_EVALS // 2
        )
        if e < err:
            x, err = xs, e
    if err > FRONT_MIN_GAIN * plain_err:
        return None
    vals = values_of(x)[0]
    if vals["read_front_us"] + vals["read_wakeup_us"] < FRONT_MIN_SHARE * b_us:
        # A token stage: what improved the loss is the workers' service time and spread
        # moving off the saturated throughput, not a stage; keep the plain fit.
        return None
    return vals, err


#: Starting values of the optional write parameters (the closed form does not give them).
_EXTRA_START = {"write_overhead_us": 100.0, "wal_ns_per_byte": 5.0}


def _start_writes(points: pd.DataFrame, rtt_ms: float, peer_ms: float) -> dict[str, float]:
    """Closed-form start: 1/saturated throughput = apply + bytes * ns (a line over sizes)."""
    fit = points[(points["phase"] == "write") & (points["role"] == "fit")]
    sat = fit.groupby("value_bytes")["throughput_per_s"].max()
    sizes = sat.index.to_numpy(float)
    per_req_s = 1.0 / sat.to_numpy(float)
    if len(sizes) >= 2:
        slope, intercept = np.polyfit(sizes, per_req_s, 1)
    else:
        slope, intercept = 0.0, float(per_req_s[0])
    apply_us = max(FLOORS["apply_us_per_request"], intercept * 1e6)
    ns = max(FLOORS["ns_per_byte"], slope * 1e9)
    smallest = fit[fit["value_bytes"] == sizes.min()].sort_values("concurrency").iloc[0]
    fixed_ms = (
        float(smallest["mean_ms"])
        - rtt_ms
        - peer_ms
        - (apply_us / 1e3 + sizes.min() * ns / 1e6) * float(smallest["concurrency"])
    )
    return {
        "fsync_ms": max(FLOORS["fsync_ms"], fixed_ms),
        "apply_us_per_request": apply_us,
        "ns_per_byte": ns,
        "backend_commit_ms": 2.0,
    }


def _lone_fsync_ms(points: pd.DataFrame) -> float:
    """etcd's own mean WAL fdatasync (ms) at the smallest fit puts' lowest concurrency: the
    disk with one small put per write; 0 if not counted."""
    fit = points[(points["phase"] == "write") & (points["role"] == "fit")]
    if "fsync_mean_ms" not in fit or fit.empty:
        return 0.0
    lone = fit.sort_values(["value_bytes", "concurrency"]).iloc[0]
    value = float(lone["fsync_mean_ms"])
    return value if value > 0 else 0.0  # NaN: not counted


def _start_pool(points: pd.DataFrame, rtt_ms: float, peer_ms: float) -> dict[str, float]:
    """Start of the shared-CPU write fit, from etcd's own counters on the fit puts
    (:data:`POOL_FALLBACK_START` where they are missing):

    - ``fsync_ms``: etcd's mean WAL fdatasync at the smallest puts' lowest concurrency (the
      disk with nothing else in the WAL write);
    - raft's CPU: the WAL cycle per fdatasync of the smallest puts (puts per fdatasync /
      throughput, ms) is about linear in the puts it carries; its intercept less the
      fdatasync is ``wal_cpu_us_per_batch``, its slope (at most a third of etcd's CPU per
      put, the slope also holding the wait for the CPU) ``wal_cpu_us_per_entry``;
    - the rest of etcd's CPU per put at each size's highest concurrency (a line over value
      sizes: per put and per byte), split evenly between the front and the apply.

    Every value is then fitted (:func:`fit_writes`)."""
    start = {**_start_writes(points, rtt_ms, peer_ms), **_EXTRA_START}
    fit = points[(points["phase"] == "write") & (points["role"] == "fit")]
    fit = fit[fit["requests"] > 0].sort_values(["value_bytes", "concurrency"])
    smallest = fit[fit["value_bytes"] == fit["value_bytes"].min()]
    wal_batch_us = POOL_FALLBACK_START["wal_cpu_us_per_batch"]
    wal_entry_us = POOL_FALLBACK_START["wal_cpu_us_per_entry"]
    per_put_us = POOL_FALLBACK_START["cpu_us_per_request"]
    per_byte_ns = POOL_FALLBACK_START["cpu_ns_per_byte"]
    fsync_ms = _lone_fsync_ms(points)
    if fsync_ms > 0:
        start["fsync_ms"] = fsync_ms
    # The lower limits below keep a start away from zero, where a fit in log space is stuck
    # (a noisy line can have a negative intercept); the fit then moves each value freely.
    if "puts_per_fsync" in smallest:
        counted = smallest.dropna(subset=["puts_per_fsync"])
        counted = counted[counted["puts_per_fsync"] > 1.2]  # where puts share a WAL write
        if len(counted) >= 2:
            batch = counted["puts_per_fsync"].to_numpy(float)
            cycle_ms = batch / counted["throughput_per_s"].to_numpy(float) * 1e3
            slope, intercept = np.polyfit(batch, cycle_ms, 1)
            wal_entry_us = max(FLOORS["wal_cpu_us_per_entry"], slope * 1e3)
            wal_batch_us = max(50.0, (intercept - start["fsync_ms"]) * 1e3)
    if "etcd_cpu_us_per_request" in fit:
        top = fit.dropna(subset=["etcd_cpu_us_per_request"]).groupby("value_bytes").last()
        if len(top) >= 2:
            sizes = top.index.to_numpy(float)
            slope, intercept = np.polyfit(sizes, top["etcd_cpu_us_per_request"].to_numpy(), 1)
            per_put_us, per_byte_ns = max(30.0, intercept), max(0.02, slope * 1e3)
        elif len(top) == 1:
            per_put_us = float(top["etcd_cpu_us_per_request"].iloc[0])
    wal_entry_us = min(wal_entry_us, per_put_us / 3)
    batch_top = float(smallest["puts_per_fsync"].iloc[-1]) if "puts_per_fsync" in smallest else 1
    batch_top = batch_top if batch_top >= 1 else 1.0  # NaN: not counted
    rest_us = per_put_us - wal_entry_us - wal_batch_us / batch_top
    half_us = max(FLOORS["front_cpu_us"], rest_us / 2)
    start.update(
        front_cpu_us=half_us,
        apply_us_per_request=half_us,
        front_cpu_ns_per_byte=per_byte_ns / 2,
        ns_per_byte=per_byte_ns / 2,
        wal_cpu_us_per_batch=wal_batch_us,
        wal_cpu_us_per_entry=wal_entry_us,
    )
    return start


def fit_writes(
    points: pd.DataFrame,
    base: EtcdParams,
    *,
    max_evals: int = 120,
    max_requests: int = 800,
    start: dict[str, float] | None = None,
    keys: Sequence[str] = WRITE_KEYS,
    step: float | None = None,
) -> tuple[dict[str, float], float, int, list[int]]:
    """Simulation fit of ``keys`` (default :data:`WRITE_KEYS`) to the ``fit`` write points.

    ``base`` carries the read-fitted ``client_rtt_ms``/``peer_rtt_ms`` (and any spread). Each
    point's replay is capped at ``max_requests`` requests (at least 8 per client, so a
    saturated point still spans several batches) to keep a fit under a minute. ``start``: the
    values to start from (a refit, with smaller steps); default the closed-form start, or
    with a CPU pool in ``base`` (``cpu_cores``) the counters' (:func:`_start_pool`).
    ``step``: Nelder-Mead's first step in log space (default 0.3 from the default start, 0.1
    for a refit). Returns (values, loss, evaluations, point ids used).
    """
    fit = points[(points["phase"] == "write") & (points["role"] == "fit")]
    fit = fit[fit["requests"] > 0]
    if fit.empty:
        raise TracesimError("no write points measured; cannot fit the write parameters")
    refit = start is not None
    if start is None:
        first = _start_pool if base.cpu_cores > 0 else _start_writes
        start = first(points, base.client_rtt_ms, base.peer_rtt_ms)
    start = {**_EXTRA_START, **start}
    rows = [row for _, row in fit.iterrows()]
    measured = {m: np.array([float(r[m]) for r in rows]) for m in WEIGHTS}

    def params_of(x: np.ndarray) -> EtcdParams:
        vals = {k: max(FLOORS[k], float(np.exp(v))) for k, v in zip(keys, x, strict=True)}
        return dataclasses.replace(base, **vals)

    def loss(x: np.ndarray) -> float:
        p = params_of(x)
        total = 0.0
        for i, row in enumerate(rows):
            sim = simulate_point(p, row, max_requests)
            for metric, w in WEIGHTS.items():
                pred = getattr(sim, metric)
                if pred <= 0 or measured[metric][i] <= 0:
                    total += w * 25.0
                else:
                    total += w * math.log(pred / measured[metric][i]) ** 2
        return total / len(rows)

    x0 = np.log([start[k] for k in keys])
    # A refit from a previous optimum explores less far.
    if step is None:
        step = 0.1 if refit else 0.3
    x, best, evals = _nelder_mead(loss, x0, step=step, max_evals=max_evals)
    p = params_of(x)
    values = {k: float(getattr(p, k)) for k in keys}
    return values, best, evals, [int(r["point"]) for r in rows]


def _spread_start(fit_rows: list[pd.Series]) -> float:
    """A starting CV: the lognormal whose p99/p50 is the single-client puts' (median over
    sizes), which is mostly the disk's spread."""
    ones = [r for r in fit_rows if int(r["concurrency"]) == 1]
    ratios = [float(r["p99_ms"]) / float(r["p50_ms"]) for r in (ones or fit_rows)]
    sigma = math.log(max(1.01, float(np.median(ratios)))) / 2.326  # z of the 99th percentile
    return float(np.clip(math.sqrt(math.expm1(sigma**2)), 0.05, 3.0))


def _bounds(key: str) -> tuple[float, float]:
    """Bounds of a spread-fit parameter (its unit)."""
    if key in COMMIT_KEYS:
        return COMMIT_BOUNDS_MS
    return STALL_BOUNDS.get(key, SPREAD_BOUNDS)


def _stall_start_ms(fit_rows: list[pd.Series]) -> float:
    """A starting stall duration (ms): twice the single-client puts' p99 - p50 (median over
    value sizes), the excursion a stall must produce."""
    ones = [r for r in fit_rows if int(r["concurrency"]) == 1] or fit_rows
    gaps = [float(r["p99_ms"]) - float(r["p50_ms"]) for r in ones]
    return float(np.clip(2.0 * float(np.median(gaps)), 0.1, 50.0))


def fit_spread(
    points: pd.DataFrame,
    base: EtcdParams,
    *,
    max_evals: int = 40,
    max_requests: int | None = 800,
    own_bytes: bool | None = None,
    fit_commit: bool = True,
    stalls: bool = False,
) -> tuple[dict[str, float], float, int]:
    """Simulation fit of :data:`SPREAD_KEYS` (and, with ``fit_commit``, of
    :data:`COMMIT_KEYS`, from ``base``'s value) to the measured p99/p50 ratios of the ``fit``
    write points (squared log errors, Nelder-Mead in log space). ``base`` carries the fitted
    means. The ratio, not p99 itself, so that a point whose mean the model misses (a noisy
    point on a shared machine) still informs the spread. ``own_bytes``: fit
    ``byte_cv_ratio`` too (the per-byte work's own, per-request spread) or not (it takes the
    batch's apply multiplier); None: both when the fit points include ~1 MB puts, keeping
    the one with the lower loss (same points, same weights). ``stalls``: fit
    :data:`STALL_KEYS` instead (the disk's CV, apply stalls and the commit's cost per byte;
    ``batch_apply_cv_ratio`` 0 and the per-byte work without its own spread; ``own_bytes``
    ignored), or with a CPU pool in ``base`` :data:`POOL_SPREAD_KEYS` (a CV per CPU job in
    the stalls' place). ``max_requests``: cap of each replay (None: the measured count, as
    :func:`~.validate.compare` replays it). Returns (values, loss, evaluations); empty values
    if the points have no ``p50_ms``.
    """
    fit = points[(points["phase"] == "write") & (points["role"] == "fit")]
    if "p50_ms" not in fit:
        return {}, float("nan"), 0
    fit = fit[(fit["requests"] > 0) & (fit["p50_ms"] > 0)]
    if fit.empty:
        return {}, float("nan"), 0
    rows = [row for _, row in fit.iterrows()]
    has_large = bool(
        (fit["value_bytes"] >= BYTE_SPREAD_MIN_BYTES).any() and fit["value_bytes"].nunique() > 1
    )
    if stalls:
        own_bytes = False
        base = dataclasses.replace(base, batch_apply_cv_ratio=0.0, byte_cv_ratio=-1.0)
    if own_bytes is None:
        kw = {"max_evals": max_evals, "max_requests": max_requests, "fit_commit": fit_commit}
        shared = fit_spread(points, base, own_bytes=False, **kw)
        if not has_large:
            return shared
        own = fit_spread(points, base, own_bytes=True, **kw)
        best = own if own[1] < shared[1] else shared
        return best[0], best[1], shared[2] + own[2]
    cvs = (*SPREAD_KEYS, "byte_cv_ratio") if own_bytes and has_large else SPREAD_KEYS
    if stalls:
        cvs = POOL_SPREAD_KEYS if base.cpu_cores > 0 else STALL_KEYS
    # The backend commit is a tail parameter too: it stalls the requests that meet it, every
    # backend_commit_interval_ms, which the means hardly see (the write fit's value drifts
    # where they are flat: 10 ms once, against single-client p99s of 1.8 ms).
    keys = (*cvs, *COMMIT_KEYS) if fit_commit else cvs
    measured = np.array([math.log(float(r["p99_ms"]) / float(r["p50_ms"])) for r in rows])
    # A point's p99 is only as good as its sample: weight by how many requests lie above it.
    weights = np.array([min(1.0, float(r["requests"]) / 1000) for r in rows])
    if has_large:
        # The large puts are the only points that see the per-byte spread: keep them in the
        # fit despite their small samples (a few dozen puts each).
        large = np.array([float(r["value_bytes"]) >= BYTE_SPREAD_MIN_BYTES for r in rows])
        weights[large] = np.maximum(weights[large], 0.5)

    def params_of(x: np.ndarray) -> EtcdParams:
        vals = {k: float(np.clip(np.exp(v), *_bounds(k))) for k, v in zip(keys, x, strict=True)}
        return dataclasses.replace(base, **vals)

    def loss(x: np.ndarray) -> float:
        p = params_of(x)
        total = 0.0
        for i, row in enumerate(rows):
            sim = simulate_point(p, row, max_requests)
            pred = math.log(max(sim.p99_ms, 1e-9) / max(sim.p50_ms, 1e-9))
            total += weights[i] * (pred - measured[i]) ** 2
        return total / float(weights.sum())

    start = _spread_start(rows)
    if stalls:
        starts = {
            "fsync_cv_ratio": start,
            "stall_per_s": STALL_START_PER_S,
            "stall_ms": _stall_start_ms(rows),
            "backend_commit_ns_per_byte": COMMIT_NS_PER_BYTE_START,
            "cpu_cv_ratio": POOL_CPU_CV_START,
            # with pauses of the pool, the apply stalls' starts
            "cpu_pause_per_s": STALL_START_PER_S,
            "cpu_pause_ms": _stall_start_ms(rows),
        }
        first = [starts[k] for k in cvs]
    else:
        first = [start, start / 2, start / 2][: len(cvs)]
    x0 = np.log([*first, *([base.backend_commit_ms] * fit_commit)])
    x, best, evals = _nelder_mead(loss, x0, step=0.5, max_evals=max_evals)
    p = params_of(x)
    values = {k: float(getattr(p, k)) for k in keys}
    if stalls:  # the stalls take the per-batch apply multiplier's place
        values["batch_apply_cv_ratio"] = 0.0
    return values, best, evals


def fit_maintenance(maintenance: dict[str, Any], base: EtcdParams) -> dict[str, float]:
    """Compaction cost per revision and defrag cost per GiB from the maintenance phase."""
    out: dict[str, float] = {}
    revs = int(maintenance.get("revisions_compacted", 0))
    if revs > 0 and "compaction_s" in maintenance:
        chunks = math.ceil(revs / base.compaction_batch_revisions)
        work_s = float(maintenance["compaction_s"]) - (chunks - 1) * base.compaction_sleep_ms / 1e3
        out["compaction_us_per_revision"] = max(0.01, work_s / revs * 1e6)
    size = float(maintenance.get("db_size_after_compaction_bytes", 0))
    if size > 0 and "defrag_s" in maintenance:
        out["defrag_s_per_gib"] = max(0.001, float(maintenance["defrag_s"]) / (size / 2**30))
    return out


@dataclass
class WritePath:
    """One write-path fit (serial or pipelined leader): fitted values, losses, and ``base``
    with them applied."""

    write_vals: dict[str, float]
    spread_vals: dict[str, float]
    loss: float  # means and throughputs (squared log errors, per fit point)
    spread_loss: float  # p99/p50 ratios; nan if none measured
    evals: int
    used: list[int]
    base: EtcdParams


def _fit_means(
    points: pd.DataFrame,
    base: EtcdParams,
    max_evals: int,
    keys: Sequence[str] = WRITE_KEYS,
    step: float | None = None,
) -> WritePath:
    """The first pass of a write-path fit: the means and throughputs without spread, from
    the default start (:func:`fit_writes`); the leader (serial, pipelined, with a CPU pool or
    not) is ``base``'s."""
    write_vals, loss, evals, used = fit_writes(
        points, base, max_evals=max_evals, keys=keys, step=step
    )
    base = dataclasses.replace(base, **write_vals)
    return WritePath(write_vals, {}, loss, float("nan"), evals, used, base)


def _restart_means(
    path: WritePath,
    points: pd.DataFrame,
    max_evals: int,
    keys: Sequence[str],
    model: dict[str, float] | None = None,
) -> WritePath:
    """Nelder-Mead again from ``path``'s optimum, with a fresh simplex of :data:`POOL_STEP`
    first steps and ``max_evals`` evaluations: a simplex that has collapsed along some
    parameters stops in a poor optimum, and a new one can leave it (on one live run the
    shared-CPU write fit stopped at a loss of 0.088; restarted, 0.053). ``model``: fixed
    parameters the restart's model adds to ``path``'s (its start is still ``path``'s
    optimum). Returns the better of the two (the restart's evaluations counted either
    way)."""
    restart_base = dataclasses.replace(path.base, **(model or {}))
    write_vals, loss, evals, used = fit_writes(
        points, restart_base, max_evals=max_evals, start=path.write_vals, keys=keys, step=POOL_STEP
    )
    if loss >= path.loss:
        return dataclasses.replace(path, evals=path.evals + evals)
    base = dataclasses.replace(restart_base, **write_vals)
    return WritePath(write_vals, {}, loss, float("nan"), path.evals + evals, used, base)


def _fit_spread_and_means(
    path: WritePath,
    points: pd.DataFrame,
    max_evals: int,
    keys: Sequence[str] = WRITE_KEYS,
    step: float | None = None,
) -> WritePath:
    """The rest of a write-path fit: the spread around the fitted means, then the means again
    with the spread in place (a spread changes batch sizes, so the means move a little;
    ``step``: that refit's first Nelder-Mead step, default :func:`fit_writes`'s)."""
    base = path.base
    # The stall model, with replays as long as the measurements (a saturated point's p99
    # depends on its few slowest batches: 800 puts at 64 in flight are a dozen batches, and
    # their p99/p50 was 1.4-2.5 where the measured length's was 2.8-4.2 on one fit), and the
    # evaluations its five parameters need.
    spread_vals, spread_loss, spread_evals = fit_spread(
        points, base, max_evals=max(8, max_evals), max_requests=None, stalls=True
    )
    if not spread_vals:
        return path
    base = dataclasses.replace(base, **spread_vals)
    means_keys = tuple(k for k in keys if k not in COMMIT_KEYS)  # the tails decided those
    write_vals, loss, more, used = fit_writes(
        points,
        base,
        max_evals=max(8, max_evals // 3),
        start=path.write_vals,
        keys=means_keys,
        step=step,
    )
    base = dataclasses.replace(base, **write_vals)
    evals = path.evals + spread_evals + more
    return WritePath(write_vals, spread_vals, loss, spread_loss, evals, used, base)


def _write_keys(points: pd.DataFrame, pipelined: bool, pool: bool = False) -> tuple[str, ...]:
    """What the write fit adjusts: :data:`WRITE_KEYS`, plus with the pipelined leader
    :data:`PIPELINED_KEYS` (with a CPU pool: :data:`POOL_KEYS` instead) and, if ~1 MB puts
    are among the fit points (the only ones where the WAL stage's per-byte work shows
    against the apply's), :data:`PIPELINED_BYTE_KEYS`."""
    if not pipelined:
        return WRITE_KEYS
    fit = points[(points["phase"] == "write") & (points["role"] == "fit")]
    large = bool((fit["value_bytes"] >= BYTE_SPREAD_MIN_BYTES).any())
    keys = POOL_KEYS if pool else (*WRITE_KEYS, *PIPELINED_KEYS)
    return (*keys, *(PIPELINED_BYTE_KEYS if large else ()))


def _wakeup_note(base: EtcdParams, plain_loss: float, loss: float) -> str:
    """Whether the shared-CPU fit kept the wait for a core after each fdatasync."""
    if base.fsync_wakeup_front_ratio > 0:
        return (
            f"fsync wakeup: raft waits for a core behind the front work (x"
            f"{base.fsync_wakeup_front_ratio:g}, at most {base.fsync_wakeup_max_ms:g} ms): "
            f"loss {loss:.3g} against {plain_loss:.3g} without"
        )
    return (
        f"fsync wakeup: not kept (the restart with it did not lower the loss, "
        f"{plain_loss:.3g} without)"
    )


def _fit_pool(
    points: pd.DataFrame, base: EtcdParams, max_evals: int, cores: int
) -> tuple[WritePath, list[str], int]:
    """The shared-CPU write path (:func:`fit_leader` with ``cpu_cores``): the pipelined
    leader, its CPU work on a pool of ``cores``, fitted from the counters' start
    (:func:`_start_pool`) with :data:`POOL_EVALS_FACTOR` x ``max_evals`` evaluations and
    restarted once from its optimum with the fsync wakeup (:func:`_restart_means` with
    :data:`POOL_FSYNC_WAKEUP`, ``max_evals`` more; the lower loss decides whether it stays),
    then its spread (:data:`POOL_SPREAD_KEYS`) and the means again."""
    base = dataclasses.replace(
        base,
        apply_pipelined=True,
        cpu_cores=cores,
        # fitted with the spread (COMMIT_KEYS); this is its start
        backend_commit_ms=POOL_COMMIT_START_MS,
        fsync_wakeup_front_ratio=0.0,
    )
    keys = _write_keys(points, True, pool=True)
    disk_ms = _lone_fsync_ms(points)
    if POOL_PIN_FSYNC and disk_ms > 0:
        base = dataclasses.replace(base, fsync_ms=disk_ms)
        keys = tuple(k for k in keys if k != "fsync_ms")
    first = _fit_means(points, base, max_evals * POOL_EVALS_FACTOR, keys, step=POOL_STEP)
    plain_loss = first.loss
    first = _restart_means(first, points, max_evals, keys, model=POOL_FSYNC_WAKEUP)
    chosen = _fit_spread_and_means(first, points, max_evals, keys, step=POOL_STEP)
    notes = [
        f"leader: pipelined, its CPU work on a pool of {cores} cores shared with the "
        f"calibration's client (write mean/throughput loss {first.loss:.3g} before the "
        "spread fit); a replay with this profile gives etcd the cores alone",
        _wakeup_note(chosen.base, plain_loss, first.loss),
    ]
    if "fsync_ms" not in keys:
        chosen.write_vals = {"fsync_ms": disk_ms, **chosen.write_vals}
        notes.append(f"fsync_ms held at etcd's own fdatasync of a lone put, {disk_ms:.3f} ms")
    if chosen.spread_vals:
        notes.append(f"spread fit: p99/p50 loss {chosen.spread_loss:.3g} (CPU pool)")
    else:
        notes.append("no p50 measured: the spreads (*_cv_ratio) keep their defaults")
    return chosen, notes, chosen.evals


def fit_leader(
    points: pd.DataFrame,
    base: EtcdParams,
    *,
    max_evals: int = 120,
    pipelined: bool | None = None,
    cpu_cores: int = 0,
) -> tuple[WritePath, list[str], int]:
    """The write path for the serial or the pipelined leader (``apply_pipelined``), or with
    ``cpu_cores`` > 0 the pipelined leader on a shared CPU pool (:func:`_fit_pool`;
    ``pipelined`` ignored).

    ``pipelined`` None: fit the means and throughputs of the fit points with each leader
    (:func:`fit_writes`; the pipelined one also adjusts :data:`PIPELINED_KEYS`, and with ~1 MB
    puts :data:`PIPELINED_BYTE_KEYS`), keep the pipelined one only if its loss is lower, then
    fit the spread and refit the means for the kept one only (fitting both all the way would
    double the fit's time for the same choice). Else only that leader. ``base`` carries the
    read-fitted values. Returns (the kept fit, notes naming the choice, evaluations)."""
    if cpu_cores > 0:
        return _fit_pool(points, base, max_evals, cpu_cores)
    modes = (False, True) if pipelined is None else (bool(pipelined),)
    firsts = {
        m: _fit_means(
            points, dataclasses.replace(base, apply_pipelined=m), max_evals, _write_keys(points, m)
        )
        for m in modes
    }
    mode = modes[-1]
    if len(modes) == 2:
        # Both from the same closed-form start with the same budget: a fair comparison.
        # (Starting the pipelined fit from the serial optimum with half the evaluations saves
        # a third of the time but lands in a different optimum, p99s fitting worse.)
        serial, piped = firsts[False], firsts[True]
        mode = piped.loss < serial.loss
        notes = [
            f"leader: {'pipelined' if mode else 'serial'} WAL/apply stages kept "
            f"(write mean/throughput loss {piped.loss:.3g} pipelined vs {serial.loss:.3g} "
            "serial, before the spread fit)"
        ]
    else:
        notes = [f"leader: {'pipelined' if mode else 'serial'} (not compared)"]
    chosen = _fit_spread_and_means(firsts[mode], points, max_evals, _write_keys(points, mode))
    if chosen.spread_vals:
        notes.append(
            f"spread fit: p99/p50 loss {chosen.spread_loss:.3g}"
            f" ({'pipelined' if mode else 'serial'} leader)"
        )
    else:
        notes.append("no p50 measured: the spreads (*_cv_ratio) keep their defaults")
    evals = chosen.evals + sum(f.evals for m, f in firsts.items() if m != mode)
    return chosen, notes, evals


def _batch_notes(points: pd.DataFrame) -> list[str]:
    """What etcd's own counters said about the fit's put points (batches, one fdatasync).
    Not fitted to (see docs/validation.md): the model's batches are beside them in the
    validation table."""
    puts = points[(points["phase"] == "write") & (points["role"] == "fit")]
    if "puts_per_fsync" not in puts or not puts["puts_per_fsync"].notna().any():
        return ["etcd's disk counters were not available: batch sizes not measured"]
    notes = []
    for size, grp in puts.dropna(subset=["puts_per_fsync"]).groupby("value_bytes"):
        grp = grp.sort_values("concurrency")
        lo, hi = grp.iloc[0], grp.iloc[-1]
        fsync_ms = float(lo.get("fsync_mean_ms", np.nan))
        notes.append(
            f"etcd's counters, {int(size):,} B puts: {lo['puts_per_fsync']:.2f} puts per WAL "
            f"fdatasync at {int(lo['concurrency'])} in flight, {hi['puts_per_fsync']:.2f} at "
            f"{int(hi['concurrency'])}"
            + ("" if math.isnan(fsync_ms) else f"; one fdatasync {fsync_ms:.3f} ms at the first")
        )
    return notes


def fit(
    points: pd.DataFrame,
    maintenance: dict[str, Any],
    *,
    base: EtcdParams | None = None,
    max_evals: int = 120,
    pipelined: bool | None = None,
    cpu_cores: int = 0,
) -> FitResult:
    """Fit all etcd parameters the calibration sees; ``points`` must carry ``role``.

    ``pipelined``: the leader model of the write fit (``apply_pipelined``); None (default):
    fit both the serial and the pipelined leader and keep the pipelined one only if it fits
    the fit points' means and throughputs better (:func:`fit_leader`). ``cpu_cores`` > 0:
    the pipelined leader with its CPU work on a pool of that many cores, shared in the
    calibration's replay with the client's measured CPU (``pipelined`` ignored). The choice
    is in the notes and in the values (so the profile records it)."""
    base = base or EtcdParams()
    read_vals, notes = fit_reads(points, base, shared_cores=cpu_cores)
    base = dataclasses.replace(base, **read_vals)
    chosen, leader_notes, evals = fit_leader(
        points, base, max_evals=max_evals, pipelined=pipelined, cpu_cores=cpu_cores
    )
    notes += leader_notes + _batch_notes(points)
    base = chosen.base
    maint_vals = fit_maintenance(maintenance, base)
    values = {
        **read_vals,
        "apply_pipelined": base.apply_pipelined,
        **({"cpu_cores": base.cpu_cores} if base.cpu_cores > 0 else {}),
        **({k: getattr(base, k) for k in POOL_FSYNC_WAKEUP} if base.cpu_cores > 0 else {}),
        **chosen.write_vals,
        **chosen.spread_vals,
        **maint_vals,
    }
    params = dataclasses.replace(base, **values)
    read_ids = points[(points["phase"] == "read") & (points["role"] == "fit")]["point"]
    used = chosen.used + [int(i) for i in read_ids]
    return FitResult(values, params, chosen.loss, evals, used, notes)


# --------------------------------------------------------------------------- profile


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.6g}" if "e" not in f"{v:.6g}" else repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


#: The shipped profile a calibrated profile is based on (its other sections are copied).
BASE_PROFILE = "current"

_KEY = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")
_HEADER = re.compile(r"^\s*\[([^\]]+)\]")


def _split_etcd(text: str) -> tuple[list[str], list[str]]:
    """A profile TOML's lines outside its ``[etcd]`` table (comments before the first table
    dropped) and the ``key = value`` lines of that table, comments kept."""
    rest: list[str] = []
    etcd: list[str] = []
    section: str | None = None
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            section = m.group(1).strip()
        if section is None:
            continue  # the base profile's own header comment
        if section == "etcd":
            if not m and _KEY.match(line):
                etcd.append(line)
        else:
            rest.append(line)
    return rest, etcd


def profile_text(
    result: FitResult,
    info: dict[str, Any],
    summary: Sequence[str] = (),
    base: str = BASE_PROFILE,
) -> str:
    """A complete profile TOML: the shipped ``base`` profile with its ``[etcd]`` table
    overridden by the fitted values (each with its source); the etcd values the calibration
    cannot see (quota, request limit, backend batching, freelist) and every other section are
    the base's, so ``tracesim replay --profile`` runs with it as it would with ``base``."""
    what = {
        "client_rtt_ms": "single-client serializable get latency - get service time",
        "peer_rtt_ms": "linearizable - serializable single-client get latency",
        "read_concurrency": "read fit (model replay of the closed-loop gets)",
        "read_sharing": "read fit: fcfs queue or ps processor sharing, whichever fits better",
        "read_cv_ratio": "read fit (p99 of the closed-loop gets)",
        "range_base_us": "get service time - one key's cost",
        "client_rtt_cpu_us": "the client's CPU per single-client get, at most the round trip "
        "(a calibration replay's puts run it on the CPU pool instead)",
        "range_us_per_object": "single-client range latency over the get, per extra key",
        "fsync_ms": "write fit (model replay of the closed-loop puts)",
        "apply_us_per_request": "write fit (saturated throughput per value size)",
        "ns_per_byte": "write fit (Lease vs Node vs ~1 MB puts)",
        "backend_commit_ms": "spread fit (p99/p50 of the closed-loop puts: a commit stalls "
        "the requests that meet it)",
        "apply_pipelined": "write fit: serial or pipelined WAL/apply leader, whichever fits "
        "the puts better",
        "write_overhead_us": "write fit (pipelined leader): single-client vs 2-4 in flight",
        "wal_ns_per_byte": "write fit (pipelined leader): ~1 MB puts at 1 vs 2-8 in flight",
        "fsync_cv_ratio": "spread fit (p99/p50 of the closed-loop puts, mostly single-client)",
        "batch_apply_cv_ratio": "spread fit (0: the apply stalls take its place)",
        "byte_cv_ratio": "spread fit (p99/p50 of the ~1 MB puts)",
        "stall_per_s": "spread fit (p99/p50 of the closed-loop puts: apply stalls per second "
        "of apply work)",
        "stall_ms": "spread fit (p99/p50 of the closed-loop puts: mean stall)",
        "backend_commit_ns_per_byte": "spread fit (p99/p50 of the closed-loop puts: a commit "
        "after many large puts stalls longer)",
        "read_front_us": "read fit: serial front stage per read (client event loop, gateway)",
        "read_wakeup_us": "read fit: front stage per wakeup (shared by the reads it takes)",
        "read_index_us": "read fit: linearizable vs serializable gets under load",
        "read_delay_ratio": "read fit: the gets' tails at 4+ in flight (share of the "
        "reads finding read_delay_min_reads or more on the workers that are answered late)",
        "read_delay_ms": "read fit: the gets' tails at 4+ in flight (the delay)",
        "read_delay_min_reads": "the cores etcd shared with the calibration's client + 1",
        "cpu_cores": "this machine's cores, shared by etcd and the calibration's client "
        "(a replay gives etcd them alone)",
        "fsync_wakeup_front_ratio": "held: 3 or 0, whichever fits the puts better (CPU pool): "
        "raft's wait for a core after its fdatasync, behind the puts' front work "
        "(docs/validation.md, 'Tenth session')",
        "fsync_wakeup_max_ms": "held: not fitted (CPU pool): the longest such wait",
        "front_cpu_us": "write fit (CPU pool): each put's CPU before raft",
        "front_cpu_ns_per_byte": "write fit (CPU pool): Lease vs Node vs ~1 MB puts",
        "wal_cpu_us_per_batch": "write fit (CPU pool), started from etcd's WAL cycle per fdatasync",
        "wal_cpu_us_per_entry": "write fit (CPU pool), started from the WAL cycle's growth "
        "per put it carries",
        "cpu_cv_ratio": "spread fit (CPU pool: p99/p50 of the closed-loop puts)",
        "cpu_pause_per_s": "spread fit (CPU pool: pauses of the whole pool per busy second)",
        "cpu_pause_ms": "spread fit (CPU pool: mean pause of the whole pool)",
        "compaction_us_per_revision": "measured compaction duration / revisions compacted",
        "defrag_s_per_gib": "measured defragmentation duration / file size",
    }
    base_text = profile_dir().joinpath(f"{base}.toml").read_text()
    rest, base_etcd = _split_etcd(base_text)
    lines = [
        "# etcd profile fitted by `tracesim calibrate etcd`.",
        f"# endpoint {info.get('endpoint')} (etcd {info.get('etcd_version')}), "
        f"measured {info.get('started')}.",
        f"# Based on the shipped {base!r} profile: its other sections are copied below, and so",
        "# are the etcd flags the API does not report (quota_bytes, max_request_bytes,",
        "# backend_commit_*): set them with --set etcd.quota_bytes=... if yours differ.",
        *[f"# {s}" for s in summary],
        "",
        "[etcd]",
    ]
    for key, val in result.values.items():
        if isinstance(getattr(result.params, key), int) and not isinstance(val, bool):
            val = round(val)
        why = what.get(key, "fit")
        why = why if why.startswith("held: ") else f"measured: {why}"
        lines.append(f"{key} = {_toml_value(val)}  # {why}")
    for line in base_etcd:
        m = _KEY.match(line)
        if m and m.group(1) not in result.values:
            lines.append(line.rstrip() + f"  [from {base}]" if "#" in line else line.rstrip())
    lines.append("")
    lines.extend(rest)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_profile(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (temp file + rename) after checking ``load_profile`` accepts
    it; the path written. A failed check raises and leaves no file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".profile-", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        load_profile(tmp)  # the format `tracesim replay --profile` reads
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
