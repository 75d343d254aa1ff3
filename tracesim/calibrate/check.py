"""Check a profile against saved calibration runs, and how well those runs agree.

A profile is fitted to one run of the calibration workload; the same etcd measured another
day differs by its own noise. :func:`check_profile` replays the workload of each saved run
through the model with a given profile (:func:`~.validate.compare`) and counts the values
within the tolerance: does last week's profile still predict today's etcd?
:func:`repeatability` "predicts" each run's values by the median of the same value in the
other runs: what a model that knew this etcd's typical behaviour exactly would score, the
ceiling that run-to-run noise sets for any profile (docs/validation.md, "Thirteenth
session").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import TracesimError
from ..models.params import EtcdParams
from . import load_measurements
from .validate import METRICS, TOLERANCE, compare

#: What identifies a measured point across runs of the same plan.
POINT_KEY = ("phase", "op", "consistency", "size_class", "keys_per_request", "concurrency")


def point_label(row: Any) -> str:
    """``put 400 B at 128``, ``get linearizable at 8``, ``range serializable 100 keys at 1``."""
    if row["phase"] == "write":
        size = float(row["value_bytes"])
        if size >= 1e6:
            what = f"{size / 1e6:g} MB"
        elif size >= 1e3:
            what = f"{size / 1e3:g} kB"
        else:
            what = f"{size:g} B"
        return f"put {what} at {int(row['concurrency'])}"
    keys = int(row["keys_per_request"])
    span = "" if keys == 1 else f" {keys} keys"
    return f"{row['op']} {row['consistency']}{span} at {int(row['concurrency'])}"


def _misses(rows: pd.DataFrame, errors: dict[str, np.ndarray]) -> list[str]:
    """``"p99 put 400 B at 128 -29%"`` for every value outside the tolerance."""
    out = []
    for metric, err in errors.items():
        short = metric.split("_")[0]
        for (_, row), e in zip(rows.iterrows(), err, strict=True):
            if abs(e) > TOLERANCE:
                out.append(f"{short} {point_label(row)} {e:+.0%}")
    return out


def load_runs(reports: Sequence[str | Path]) -> dict[str, pd.DataFrame]:
    """Each report directory's measured points (:func:`~tracesim.calibrate.load_measurements`,
    which names what is missing), by the report's path as given."""
    runs = {str(report): load_measurements(report).points for report in reports}
    if len(runs) < len(reports):
        twice = next(str(r) for i, r in enumerate(reports) if str(r) in map(str, reports[:i]))
        raise TracesimError(f"{twice} is given twice: name each calibration report once")
    return runs


def check_profile(
    params: EtcdParams,
    runs: Mapping[str, pd.DataFrame],
    progress: Callable[[float], Any] | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Replay each run's calibration workload (its points, as :func:`load_runs` gives them)
    through the model with ``params``.

    Returns a summary, one row per report: ``held_out`` (values of the points its own fit
    did not use: mean, p99 and throughput each count), ``held_out_within`` (within
    :data:`~.validate.TOLERANCE`), ``all`` and ``all_within`` (every write and read point),
    ``misses`` (the held-out values outside, as text); and each report's full
    measured-vs-predicted table (:func:`~.validate.compare`) by report path.
    ``progress(fraction)`` after each report."""
    rows, tables = [], {}
    for i, (report, points) in enumerate(runs.items()):
        table = compare(params, points)
        tables[report] = table
        errs = table[[f"{m}_error" for m in METRICS]].abs()
        held = table["role"] != "fit" if "role" in table else pd.Series(True, index=table.index)
        rows.append(
            {
                "report": report,
                "held_out": int(held.sum()) * len(METRICS),
                "held_out_within": int((errs[held] <= TOLERANCE).to_numpy().sum()),
                "all": errs.size,
                "all_within": int((errs <= TOLERANCE).to_numpy().sum()),
                "misses": "; ".join(
                    _misses(table[held], {m: table.loc[held, f"{m}_error"] for m in METRICS})
                ),
            }
        )
        if progress is not None:
            progress((i + 1) / len(runs))
    return pd.DataFrame(rows), tables


def repeatability(runs: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Each run's held-out values "predicted" by the median of the same value in the other
    runs (their points as :func:`load_runs` gives them; at least two, all of one plan).

    Returns one row per report: ``held_out``, ``held_out_within`` and ``misses`` as in
    :func:`check_profile` (the error is the others' median over this run's value, minus 1).
    Raises :class:`~tracesim.errors.TracesimError` for fewer than two reports or reports that
    measured different points."""
    if len(runs) < 2:
        raise TracesimError("repeatability needs at least two calibration reports of one plan")
    reports = list(runs)
    held, index = [], None
    for report, points in runs.items():
        points = points[points["phase"].isin(["write", "read"])]
        points = points.set_index(list(POINT_KEY)).sort_index()
        if index is None:
            index = points.index
        elif not points.index.equals(index):
            raise TracesimError(
                f"{report} measured other points than {reports[0]}: repeatability compares "
                "runs of the same plan (both --quick or neither)"
            )
        # the same plan gives the same roles: the points each run's own fit held out
        held.append(points[points["role"] != "fit"] if "role" in points else points)
    values = {m: np.array([h[m].to_numpy(dtype=float) for h in held]) for m in METRICS}
    rows = []
    for i, report in enumerate(reports):
        errors = {}
        for metric, runs in values.items():
            others = np.median(np.delete(runs, i, axis=0), axis=0)
            errors[metric] = others / runs[i] - 1
        table = held[i].reset_index()
        within = sum(int((np.abs(e) <= TOLERANCE).sum()) for e in errors.values())
        rows.append(
            {
                "report": report,
                "held_out": len(table) * len(METRICS),
                "held_out_within": within,
                "misses": "; ".join(_misses(table, errors)),
            }
        )
    return pd.DataFrame(rows)
