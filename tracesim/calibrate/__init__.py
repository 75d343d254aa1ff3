"""Calibrate the etcd model against a real etcd (``tracesim calibrate etcd``).

:func:`calibrate_etcd` runs the measured workload (:mod:`.workload`) through etcd's v3 gRPC
gateway (:mod:`.client`), fits the model's parameters (:mod:`.fit`), replays the workload
through the model to compare (:mod:`.validate`), writes a report directory and, last, the
profile TOML. Nothing is written as a profile unless everything before it succeeded.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import TracesimError
from .cpu import cpu_notes, is_loopback, shared_cpu_cores
from .fit import FitResult, assign_roles, fit, profile_text, write_profile
from .validate import TOLERANCE, compare, plot_comparison
from .workload import Measurements, Plan, Progress, measure

__all__ = [
    "CalibrationResult",
    "Plan",
    "calibrate_etcd",
    "load_measurements",
    "refit_etcd",
    "report_dir_for",
]


@dataclass
class CalibrationResult:
    """Everything a calibration produced; ``validation`` is the measured-vs-predicted table."""

    measurements: Measurements
    fit: FitResult
    validation: pd.DataFrame
    profile_path: Path
    report_dir: Path
    wall_s: float

    def held_out_ok(self) -> bool:
        """True if every held-out write and read point is within the tolerance."""
        held = self.validation[self.validation["role"] == "validate"]
        return bool(len(held)) and bool(held["ok"].all())

    def held_out_summary(self) -> list[str]:
        """Per metric (mean, p99, throughput): how many held-out points the fitted model
        predicts within the tolerance, the median and largest error (as in
        ``calibration.json``'s ``validation``)."""
        return _summary_lines(self.validation)


_CLIENT_CPU = "client_cpu_us_per_request"
#: The fit's budget of Nelder-Mead evaluations (:func:`~.fit.fit`); ``--quick`` takes a
#: third (on a 2-core machine its fit then takes under a minute: the held-out points of one
#: quick run were within 25% on 12, 12 and 13 of 13 at 40 against 13, 11 and 13 at 120).
MAX_EVALS = 120
QUICK_MAX_EVALS = 40


def _check_out(out: str | Path, cpu_cores: int | None) -> Path:
    """``out`` as a Path if it can be a profile, and ``cpu_cores`` if valid; else raise."""
    out = Path(out)
    if out.suffix != ".toml":
        raise TracesimError(f"--out {out}: a profile is a .toml file; e.g. --out etcd.toml")
    if out.exists() and out.is_dir():
        raise TracesimError(f"--out {out} is a directory; give a .toml file path")
    if cpu_cores is not None and cpu_cores < 0:
        raise TracesimError(f"--cpu-cores {cpu_cores}: give 0 (no CPU pool) or a number of cores")
    return out


def report_dir_for(profile: Path) -> Path:
    """Where the measurements and plots go: ``<profile stem>-calibration/`` beside it."""
    return profile.with_name(profile.stem + "-calibration")


def _summary_lines(table: pd.DataFrame) -> list[str]:
    held = table[table["role"] == "validate"]
    if held.empty:
        return ["no held-out points (plan too small to validate)"]
    out = []
    for metric in ("mean_ms", "p99_ms", "throughput_per_s"):
        err = held[f"{metric}_error"].abs()
        within = int((err <= TOLERANCE).sum())
        line = (
            f"held-out {metric}: {within}/{len(held)} within {TOLERANCE:.0%}, "
            f"median |error| {err.median():.0%}, max {err.max():.0%}"
        )
        misses = held[err > TOLERANCE]
        if len(misses) and f"{metric}_in_rounds" in misses:
            inside = int(misses[f"{metric}_in_rounds"].eq(True).sum())
            line += f" ({inside} of the {len(misses)} misses within the measured rounds' range)"
        out.append(line)
    return out


def calibrate_etcd(
    endpoint: str,
    out: str | Path,
    *,
    quick: bool = False,
    plan: Plan | None = None,
    allow_foreign_keys: bool = False,
    progress: Progress | None = None,
    timeout_s: float = 30.0,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
    max_evals: int | None = None,
    cpu_cores: int | None = None,
) -> CalibrationResult:
    """Measure the etcd at ``endpoint``, fit, validate; write the profile TOML to ``out``.

    The report directory (:func:`report_dir_for`) gets ``points.parquet`` (one row per measured
    point, with its ``role``: fit / validate, and its rounds), ``samples.parquet`` (one latency
    per request, ms, with its round and whether the round was kept),
    ``validation.parquet`` (measured vs predicted), ``calibration.json`` (maintenance phase,
    fitted values, run info) and ``validation.png``. ``max_evals``: the fit's budget
    (:func:`~.fit.fit`; default :data:`MAX_EVALS`, with ``quick`` :data:`QUICK_MAX_EVALS`).
    ``cpu_cores``: the cores of the etcd
    model's CPU pool (0: no pool); None: this machine's if etcd runs on it
    (:func:`~.cpu.shared_cpu_cores`). The calibration's replay runs the client's measured
    CPU on the pool only for a loopback endpoint (elsewhere the client has its own). Raises
    :class:`~tracesim.errors.TracesimError` for bad input; then no profile is written.
    """
    t0 = time.perf_counter()
    out = _check_out(out, cpu_cores)
    plan = plan or (Plan.quick() if quick else Plan())
    say = progress or (lambda _m: None)
    measurements = asyncio.run(
        measure(
            endpoint,
            plan,
            allow_foreign_keys=allow_foreign_keys,
            progress=progress,
            timeout_s=timeout_s,
            cacert=cacert,
            cert=cert,
            key=key,
        )
    )
    measurements.points = assign_roles(measurements.points)
    if max_evals is None:
        max_evals = QUICK_MAX_EVALS if quick else MAX_EVALS
    return _fit_and_report(measurements, out, t0, say, max_evals=max_evals, cpu_cores=cpu_cores)


def _fit_and_report(
    measurements: Measurements,
    out: Path,
    t0: float,
    say: Progress,
    *,
    max_evals: int,
    cpu_cores: int | None,
) -> CalibrationResult:
    """Fit ``measurements`` (points with roles), replay, write the report directory and,
    last, the profile (see :func:`calibrate_etcd`)."""
    points = measurements.points
    endpoint = str(measurements.info.get("endpoint", ""))
    machine_cores = measurements.info.get("client_cpus")
    if cpu_cores is None:
        cpu_cores = shared_cpu_cores(points, endpoint, machine_cores)
    # The model replays the client's CPU on etcd's pool only if they shared the machine.
    modelled = (
        points if is_loopback(endpoint) else points.drop(columns=[_CLIENT_CPU], errors="ignore")
    )
    say(
        "fitting the etcd model to the fit points"
        + (f" (its CPU work on a pool of {cpu_cores} cores) ..." if cpu_cores else " ...")
    )
    result = fit(modelled, measurements.maintenance, max_evals=max_evals, cpu_cores=cpu_cores)
    say("replaying the calibration workload through the fitted model ...")
    table = compare(result.params, modelled)
    cpu = cpu_notes(points, endpoint, machine_cores, pooled=cpu_cores > 0)
    result.notes += cpu
    summary = _summary_lines(table) + cpu
    report = report_dir_for(out)
    report.mkdir(parents=True, exist_ok=True)
    points.to_parquet(report / "points.parquet", index=False)
    measurements.samples.to_parquet(report / "samples.parquet", index=False)
    table.to_parquet(report / "validation.parquet", index=False)
    meta: dict[str, Any] = {
        "info": measurements.info,
        "maintenance": measurements.maintenance,
        "fitted": result.values,
        "fit_loss": result.loss,
        "fit_evaluations": result.evaluations,
        "notes": result.notes,
        "validation": summary,
        "tolerance": TOLERANCE,
    }
    (report / "calibration.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    plot_comparison(
        table,
        report / "validation.png",
        title=f"etcd {measurements.info.get('etcd_version')} at {endpoint}: model vs measured",
    )
    path = write_profile(out, profile_text(result, measurements.info, summary))
    return CalibrationResult(measurements, result, table, path, report, time.perf_counter() - t0)


def load_measurements(report: str | Path) -> Measurements:
    """The measurements of an earlier calibration from its report directory
    (``points.parquet``, ``samples.parquet``, ``calibration.json``). Raises
    :class:`~tracesim.errors.TracesimError` naming what is missing."""
    report = Path(report)
    names = ("points.parquet", "samples.parquet", "calibration.json")
    missing = [n for n in names if not (report / n).is_file()]
    if missing:
        raise TracesimError(
            f"{report}: not a calibration report directory (missing {', '.join(missing)}); "
            "give the <profile>-calibration/ directory `tracesim calibrate etcd` wrote"
        )
    try:
        meta = json.loads((report / "calibration.json").read_text())
        points = pd.read_parquet(report / "points.parquet")
        samples = pd.read_parquet(report / "samples.parquet")
    except (ValueError, OSError) as exc:
        raise TracesimError(f"{report}: cannot read the calibration's files ({exc})") from exc
    if not {"phase", "concurrency", "mean_ms", "throughput_per_s"} <= set(points.columns):
        raise TracesimError(f"{report}/points.parquet: not a calibration's points table")
    return Measurements(points, samples, meta.get("maintenance", {}), meta.get("info", {}))


def refit_etcd(
    report: str | Path,
    out: str | Path,
    *,
    progress: Progress | None = None,
    max_evals: int = MAX_EVALS,
    cpu_cores: int | None = None,
) -> CalibrationResult:
    """Fit the etcd model again to an earlier calibration's measurements (its ``report``
    directory), without measuring: e.g. after an upgrade of the model, or with another
    ``cpu_cores`` (None: the measured machine's cores if etcd ran on it). Writes the profile
    to ``out`` and its own report directory beside it, as :func:`calibrate_etcd` does;
    ``out``'s report directory must not be ``report`` (the measurements stay as they are)."""
    t0 = time.perf_counter()
    out = _check_out(out, cpu_cores)
    measurements = load_measurements(report)
    if report_dir_for(out).resolve() == Path(report).resolve():
        raise TracesimError(
            f"--out {out} would overwrite the report it re-fits ({report}); "
            "give another profile name"
        )
    measurements.points = assign_roles(measurements.points.drop(columns="role", errors="ignore"))
    say = progress or (lambda _m: None)
    return _fit_and_report(measurements, out, t0, say, max_evals=max_evals, cpu_cores=cpu_cores)
