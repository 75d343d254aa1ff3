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
from .cpu import cpu_notes
from .fit import FitResult, assign_roles, fit, profile_text, write_profile
from .validate import TOLERANCE, compare, plot_comparison
from .workload import Measurements, Plan, Progress, measure

__all__ = ["CalibrationResult", "Plan", "calibrate_etcd", "report_dir_for"]


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
    max_evals: int = 120,
) -> CalibrationResult:
    """Measure the etcd at ``endpoint``, fit, validate; write the profile TOML to ``out``.

    The report directory (:func:`report_dir_for`) gets ``points.parquet`` (one row per measured
    point, with its ``role``: fit / validate, and its rounds), ``samples.parquet`` (one latency
    per request, ms, with its round and whether the round was kept),
    ``validation.parquet`` (measured vs predicted), ``calibration.json`` (maintenance phase,
    fitted values, run info) and ``validation.png``. Raises
    :class:`~tracesim.errors.TracesimError` for bad input; then no profile is written.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if out.suffix != ".toml":
        raise TracesimError(f"--out {out}: a profile is a .toml file; e.g. --out etcd.toml")
    if out.exists() and out.is_dir():
        raise TracesimError(f"--out {out} is a directory; give a .toml file path")
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
    points = assign_roles(measurements.points)
    measurements.points = points
    say("fitting the etcd model to the fit points ...")
    result = fit(points, measurements.maintenance, max_evals=max_evals)
    say("replaying the calibration workload through the fitted model ...")
    table = compare(result.params, points)
    cpu = cpu_notes(points, endpoint)
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
