"""Replay the calibration workload through the etcd model, and compare with the measurements.

The same closed loops the harness ran against the real etcd (``concurrency`` clients, each
sending its next request when the previous one is answered, the same number of requests per
point, one untimed request per client first) run on SimPy's virtual clock against
:class:`~tracesim.models.etcd.EtcdModel`. :func:`compare` puts measured and predicted mean, p99
and throughput side by side with their relative errors.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import simpy

from ..models.etcd import EtcdModel
from ..models.params import EtcdParams

#: A prediction counts as good within this relative error (the issue's 25%).
TOLERANCE = 0.25
#: What the validation judges a prediction by.
METRICS = ("mean_ms", "p99_ms", "throughput_per_s")


@dataclasses.dataclass(frozen=True)
class SimResult:
    """One simulated point: latencies (s) of the timed requests, the elapsed virtual time and,
    for puts, the mean batch: puts (untimed first ones included) per WAL write, and the mean
    duration (ms) of a backend commit (etcd's ``backend_commit_mean_ms``)."""

    latency_s: np.ndarray
    elapsed_s: float
    puts_per_fsync: float = float("nan")
    commit_mean_ms: float = float("nan")

    @property
    def mean_ms(self) -> float:
        return float(self.latency_s.mean() * 1e3)

    @property
    def p50_ms(self) -> float:
        return float(np.percentile(self.latency_s, 50) * 1e3)

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latency_s, 99) * 1e3)

    @property
    def throughput_per_s(self) -> float:
        return len(self.latency_s) / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _ClientThread:
    """The calibration's client on the model's CPU pool: one thread, so one job at a time, each
    of ``per_request_s`` s of one core, run on the pool it shares with etcd; ``then()`` once
    the request's job is done.

    It works in rounds, as an event loop does: when its round is done it takes every request
    waiting for it as the next round and serves them in an order drawn from ``rng``, unrelated
    to how long each has waited. Why not first come, first served: at saturation the
    requests in flight wait here (the client is the serial part), and served in arrival order
    they would all wait about as long, the spread of their latencies shrinking as the
    concurrency grows. The real harness's spread does not shrink (16-256 puts in flight: p99
    about 2x the mean) and it is not etcd's: etcd's own gRPC handling of the puts stays below
    5 ms for 94% of them at 128 in flight while the client measures a 12 ms median
    (docs/validation.md, "Thirteenth session"). The responses the client's event loop finds in
    one poll, and the goroutines of etcd's HTTP gateway that produce them, come in an order
    its requests' ages do not set.
    """

    def __init__(self, model: EtcdModel, per_request_s: float, rng: np.random.Generator) -> None:
        self.model = model
        self.per_request_s = per_request_s
        self._rng = rng
        self._waiting: list[Callable[[], Any]] = []
        self._round: deque[Callable[[], Any]] = deque()
        self._busy = False

    def submit(self, then: Callable[[], Any]) -> None:
        self._waiting.append(then)
        if not self._busy:
            self._next()

    def _next(self) -> None:
        if not self._round and self._waiting:
            waiting = self._waiting
            if len(waiting) > 1:
                waiting = [waiting[i] for i in self._rng.permutation(len(waiting))]
            self._round.extend(waiting)
            self._waiting = []
        self._busy = bool(self._round)
        if self._busy:
            then = self._round.popleft()
            self.model.run_on_cpu(self.per_request_s, lambda _wait: self._done(then))

    def _done(self, then: Callable[[], Any]) -> None:
        then()
        self._next()


def simulate_writes(
    params: EtcdParams,
    concurrency: int,
    value_bytes: float,
    requests: int,
    seed: int = 0,
    client_cpu_s: float = 0.0,
) -> SimResult:
    """Closed-loop puts (updates of one key per client) through the model.

    Each client makes one untimed put; then all start together and ``requests`` timed puts are
    issued in total. Returns their latencies and the virtual time from the start to the last
    answer (what the harness measures). ``seed`` seeds the model's service-time spread (the
    same seed gives the same draws whatever the CVs: common random numbers for the fit).
    ``client_cpu_s``: with a CPU pool in ``params`` (``cpu_cores``), the calibration client's
    CPU per put (its measured ``client_cpu_us_per_request``), run on the pool by one client
    thread before the put reaches etcd, inside the put's latency (the thread serves what waits
    for it in shuffled rounds, drawn from ``seed`` too: :class:`_ClientThread`); ignored
    without a pool.
    The round trip ``client_rtt_ms`` then loses the client's CPU it already holds
    (``client_rtt_cpu_us``), which would otherwise count twice.
    """
    on_pool = params.cpu_cores > 0 and client_cpu_s > 0
    if on_pool and params.client_rtt_cpu_us > 0:
        rtt_ms = max(0.0, params.client_rtt_ms - params.client_rtt_cpu_us / 1e3)
        params = dataclasses.replace(params, client_rtt_ms=rtt_ms)
    env = simpy.Environment()
    model = EtcdModel(env, params, np.random.default_rng(seed))
    keys = list(range(concurrency))
    model.preload("calibrate", keys, float(value_bytes))
    size = np.array([float(value_bytes)])
    lat: list[float] = []
    state = {"issued": 0, "warm": 0, "t0": 0.0, "last": 0.0}
    # the client's order has a stream of its own, so it does not shift the model's draws
    client_rng = np.random.default_rng((seed, 1))
    client = _ClientThread(model, client_cpu_s, client_rng) if on_pool else None

    def issue(c: int) -> None:
        state["issued"] += 1
        if client is None:
            model.submit_writes("update", "calibrate", [c], size, lambda la, _r, _m: done(c, la))
            return
        t0 = env.now

        def answered(_la: np.ndarray, _r: np.ndarray, _m: Any) -> None:
            done(c, np.array([env.now - t0]))

        client.submit(lambda: model.submit_writes("update", "calibrate", [c], size, answered))

    def done(c: int, la: np.ndarray) -> None:
        lat.append(float(la[0]))
        state["last"] = env.now
        if state["issued"] < requests:
            issue(c)

    def warm_done(_la: np.ndarray) -> None:
        state["warm"] += 1
        if state["warm"] == concurrency:  # everyone connected: start together
            state["t0"] = env.now
            for c in range(min(concurrency, requests)):
                issue(c)

    for c in keys:
        model.submit_writes("update", "calibrate", [c], size, lambda la, _r, _m: warm_done(la))
    env.run()
    batch = (state["issued"] + concurrency) / model.batches if model.batches else float("nan")
    commit_ms = model.commit_time_s / model.commits * 1e3 if model.commits else float("nan")
    return SimResult(np.asarray(lat), state["last"] - state["t0"], batch, commit_ms)


def simulate_reads(
    params: EtcdParams,
    concurrency: int,
    keys_per_request: int,
    value_bytes: float,
    requests: int,
    linearizable: bool,
    seed: int = 0,
) -> SimResult:
    """Closed-loop range reads of ``keys_per_request`` keys of ``value_bytes`` through the model."""
    env = simpy.Environment()
    model = EtcdModel(env, params, np.random.default_rng(seed))
    nbytes = float(keys_per_request) * float(value_bytes)
    lat: list[float] = []
    state = {"issued": 0, "warm": 0, "t0": 0.0, "last": 0.0}

    def issue() -> None:
        state["issued"] += 1
        model.submit_range(keys_per_request, nbytes, linearizable, done)

    def done(la: float) -> None:
        lat.append(la)
        state["last"] = env.now
        if state["issued"] < requests:
            issue()

    def warm_done(_la: float) -> None:
        state["warm"] += 1
        if state["warm"] == concurrency:
            state["t0"] = env.now
            for _ in range(min(concurrency, requests)):
                issue()

    for _ in range(concurrency):
        model.submit_range(keys_per_request, nbytes, linearizable, warm_done)
    env.run()
    return SimResult(np.asarray(lat), state["last"] - state["t0"])


def simulate_point(
    params: EtcdParams, row: Any, max_requests: int | None = None, seed: int = 0
) -> SimResult:
    """The model's replay of one measured point (a row of ``Measurements.points``), its
    spread drawn from ``seed``; a put point's measured ``client_cpu_us_per_request``, where
    known, is its client's CPU on a model with a CPU pool (:func:`simulate_writes`)."""
    n = int(row["requests"])
    if max_requests is not None:
        n = min(n, max(max_requests, 8 * int(row["concurrency"])))
    if row["phase"] == "write":
        client_us = float(row.get("client_cpu_us_per_request", float("nan")))
        return simulate_writes(
            params,
            int(row["concurrency"]),
            float(row["value_bytes"]),
            n,
            seed,
            client_cpu_s=client_us / 1e6 if client_us > 0 else 0.0,
        )
    if row["phase"] == "read":
        return simulate_reads(
            params,
            int(row["concurrency"]),
            int(row["keys_per_request"]),
            float(row["value_bytes"]),
            n,
            row["consistency"] == "linearizable",
            seed,
        )
    raise ValueError(f"no model replay for phase {row['phase']!r}")


def compare(params: EtcdParams, points: pd.DataFrame) -> pd.DataFrame:
    """Measured vs predicted mean/p99 latency (ms) and throughput (1/s) for write and read
    points; columns ``*_measured``, ``*_predicted``, ``*_error`` (relative, signed) and
    ``ok`` (every error within :data:`TOLERANCE`). Keeps the ``role`` column if present.
    Where the points carry the range of a metric over their rounds (``*_round_min``/``_max``,
    see :func:`~.workload.round_range`) the table carries it too, with ``*_in_rounds``: the
    prediction lies within what the measurement itself spanned between rounds. Where a put
    point carries etcd's measured batch (``puts_per_fsync``) and bbolt commit duration
    (``backend_commit_mean_ms``), the table has their measured, predicted and error columns
    too (not part of ``ok``: the bar is on what a client sees)."""
    rows = []
    for _, row in points[points["phase"].isin(["write", "read"])].iterrows():
        if int(row["requests"]) == 0:
            continue
        sim = simulate_point(params, row)
        out = {
            k: row[k]
            for k in ("point", "phase", "op", "consistency", "size_class", "value_bytes")
            if k in row
        }
        out["keys_per_request"] = int(row["keys_per_request"])
        out["concurrency"] = int(row["concurrency"])
        if "role" in row:
            out["role"] = row["role"]
        for metric in METRICS:
            predicted = getattr(sim, metric)
            measured = float(row[metric])
            out[f"{metric}_measured"] = measured
            out[f"{metric}_predicted"] = predicted
            out[f"{metric}_error"] = predicted / measured - 1 if measured > 0 else float("nan")
            lo, hi = (float(row.get(f"{metric}_round_{e}", np.nan)) for e in ("min", "max"))
            if not (math.isnan(lo) or math.isnan(hi)):
                out[f"{metric}_round_min"], out[f"{metric}_round_max"] = lo, hi
                out[f"{metric}_in_rounds"] = bool(lo <= predicted <= hi)
        # etcd's own counters: its WAL writes and its bbolt commits' durations
        for counter, predicted in (
            ("puts_per_fsync", sim.puts_per_fsync),
            ("backend_commit_mean_ms", sim.commit_mean_ms),
        ):
            measured = float(row.get(counter, np.nan))
            if not math.isnan(measured) and measured > 0:
                out[f"{counter}_measured"] = measured
                out[f"{counter}_predicted"] = predicted
                out[f"{counter}_error"] = predicted / measured - 1
        rows.append(out)
    table = pd.DataFrame(rows)
    if len(table):
        errs = table[[f"{m}_error" for m in METRICS]].abs()
        table["ok"] = (errs <= TOLERANCE).all(axis=1)
    return table


def plot_comparison(table: pd.DataFrame, out: str | Path, title: str = "") -> Path:
    """PNG: measured (markers) vs predicted (lines) mean and p99 latency and throughput against
    concurrency; top row puts, one colour per write size class; bottom row single-key gets,
    one colour per consistency (when the table has them). Held-out points drawn filled; a
    vertical bar through a measured point spans its rounds' range (when the table has it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    writes = table[table["phase"] == "write"]
    gets = table[(table["phase"] == "read") & (table["keys_per_request"] == 1)]
    rows = [(writes, "size_class", "puts")] + ([(gets, "consistency", "gets")] * (len(gets) > 0))
    fig, axes = plt.subplots(len(rows), 3, figsize=(15, 4.5 * len(rows)), squeeze=False)
    colours = {
        "lease": "tab:blue",
        "node": "tab:orange",
        "large": "tab:red",
        "serializable": "tab:green",
        "linearizable": "tab:purple",
    }
    panels = (
        ("mean_ms", "mean latency (ms)"),
        ("p99_ms", "p99 latency (ms)"),
        ("throughput_per_s", "throughput ({}/s)"),
    )
    for ax_row, (data, by, what) in zip(axes, rows, strict=True):
        for ax, (metric, label) in zip(ax_row, panels, strict=True):
            for group, grp in data.groupby(by, sort=False):
                grp = grp.sort_values("concurrency")
                colour = colours.get(str(group))
                name = (
                    f"{group} ({int(grp['value_bytes'].iloc[0]):,} B)"
                    if what == "puts"
                    else f"{group} get"
                )
                ax.plot(
                    grp["concurrency"],
                    grp[f"{metric}_predicted"],
                    "-",
                    color=colour,
                    label=f"{name} model",
                )
                held = grp["role"] == "validate" if "role" in grp else np.zeros(len(grp), bool)
                if f"{metric}_round_min" in grp:  # what the measurement spanned between rounds
                    ax.vlines(
                        grp["concurrency"],
                        grp[f"{metric}_round_min"],
                        grp[f"{metric}_round_max"],
                        color=colour,
                        alpha=0.6,
                    )
                ax.plot(
                    grp["concurrency"][~held],
                    grp[f"{metric}_measured"][~held],
                    "o",
                    mfc="none",
                    color=colour,
                    label=f"{group} measured (fit)",
                )
                ax.plot(
                    grp["concurrency"][held],
                    grp[f"{metric}_measured"][held],
                    "o",
                    color=colour,
                    label=f"{group} measured (held out)",
                )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel(f"{what} in flight (closed loop)")
            ax.set_ylabel(label.format(what))
            ax.grid(True, which="both", alpha=0.3)
        ax_row[0].legend(fontsize=7)
    fig.suptitle(title or "etcd model vs measured etcd")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
