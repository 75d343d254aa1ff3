"""How well etcd repeats itself between calibration runs, and how well one run's profile
predicts the others (docs/validation.md, "Thirteenth session").

Usage, from the repository root, with the reports of several ``tracesim calibrate etcd`` runs
of the same plan against the same etcd (each ``X.toml`` next to its ``X-calibration/``):

    python docs/experiments/repeatability.py run1-calibration/ run2-calibration/ ...

1. **Repeatability**: each run's held-out values (mean and p99 latency, throughput at the
   concurrency levels not used for fitting) "predicted" by the median of the same value in
   the other runs. Its count within 25% is what a model that knew this etcd's typical
   behaviour exactly would score on that run: the ceiling that run-to-run noise sets.
2. **Cross-run**: each run's fitted profile replayed against every other run's measurements
   (:func:`tracesim.calibrate.validate.compare`), the held-out values within 25%: whether a
   profile fitted today predicts tomorrow's etcd.
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tracesim.calibrate.validate import METRICS, TOLERANCE, compare
from tracesim.models.params import load_profile

KEY = ["phase", "op", "consistency", "size_class", "keys_per_request", "concurrency"]


def held_out(points: pd.DataFrame) -> pd.DataFrame:
    """The held-out write and read points, indexed by what they measure."""
    rows = points[points["phase"].isin(["write", "read"]) & (points["role"] != "fit")]
    return rows.set_index(KEY)


def label(key: tuple) -> str:
    _phase, op, consistency, size_class, _keys, concurrency = key
    what = size_class if op == "put" else consistency[:3]
    return f"{op} {what} at {concurrency}"


def short(report: Path) -> str:
    """A report's name in the tables: its folder and the folder above (runs' reports are
    often all called ``<profile>-calibration``)."""
    return f"{report.resolve().parent.name}/{report.resolve().name}"


def main(reports: list[Path]) -> None:
    runs = {short(r): pd.read_parquet(r / "points.parquet") for r in reports}
    profiles = {
        short(r): r.with_name(r.name.removesuffix("-calibration") + ".toml") for r in reports
    }
    held = {name: held_out(p) for name, p in runs.items()}
    keys = next(iter(held.values())).index
    if any(not h.index.equals(keys) for h in held.values()):
        sys.exit("the reports measured different points: compare runs of the same plan")
    n_values = len(keys) * len(METRICS)

    print(f"1. each run's {n_values} held-out values vs the median of the other runs")
    total = 0
    for name, h in held.items():
        misses = []
        for metric in METRICS:
            others = np.median([o[metric].to_numpy() for n, o in held.items() if n != name], 0)
            err = others / h[metric].to_numpy() - 1
            misses += [
                f"{metric.split('_')[0]} {label(k)} {e:+.0%}"
                for k, e in zip(keys, err, strict=True)
                if abs(e) > TOLERANCE
            ]
        total += n_values - len(misses)
        print(f"   {name}: {n_values - len(misses)} of {n_values}  {'; '.join(misses)}")
    print(f"   all runs: {total} of {n_values * len(held)}")

    print("2. each run's profile (rows) against every run's measurements (columns)")
    for i, name in enumerate(runs):
        print(f"   [{i}] {name}")
    print("   " + "".join(f"{f'[{i}]':>15s}" for i in range(len(runs))))
    total = pairs = 0
    for name in runs:
        params = load_profile(profiles[name]).etcd
        cells = []
        for other, points in runs.items():
            table = compare(params, points)
            table = table[table["role"] != "fit"]
            within = int((table[[f"{m}_error" for m in METRICS]].abs() <= TOLERANCE).sum().sum())
            cells.append(f"{within:>11d}/{n_values}" + ("*" if other == name else " "))
            if other != name:
                total += within
                pairs += 1
        print(f"   [{list(runs).index(name)}]" + "".join(cells))
    print(f"   (* its own run) other runs: {total} of {n_values * pairs}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main([Path(a) for a in sys.argv[1:]])
