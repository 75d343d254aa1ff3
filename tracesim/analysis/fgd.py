"""The FGD experiment: workloads x policies x seeds of the fill protocol on the openb cluster.

:func:`run_experiment` runs the grid (in parallel processes with ``jobs > 1``) and returns an
:class:`ExperimentResult` with three tables:

- ``curves``: one row per (workload, policy, seed, x): ``alloc_pct`` = GPU allocation ratio,
  percent of capacity, over the pods whose arrived-GPU bucket is x (0..130);
- ``runs``: one row per run: pods submitted/failed, ``unalloc_100_pct`` / ``unalloc_130_pct``
  (100 - allocation ratio at x = 100 / 130), ``wall_s``;
- ``summary``: per (workload, policy): mean and standard deviation over seeds of the two
  unallocated percentages.

:meth:`ExperimentResult.write` stores them as Parquet with one PNG plot per workload (one
curve per policy: mean over seeds, shaded +-1 standard deviation).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import TracesimError
from ..models.registry import load_scheduler, scheduler_names
from ..sim.fill import DEFAULT_INFLATE, DEFAULT_TIE_BREAK, MAX_BUCKET, run_fill
from ..sources import openb

#: The six policies of the paper, in its order.
PAPER_POLICIES = ("random", "dotprod", "gpuclustering", "gpupacking", "bestfit", "fgd")
DEFAULT_SEEDS = tuple(range(42, 52))


@dataclass(frozen=True)
class RunSpec:
    """One run of the grid."""

    workload: str
    policy: str
    seed: int
    data_dir: str
    inflate: float = DEFAULT_INFLATE
    tie_break: str = DEFAULT_TIE_BREAK


@lru_cache(maxsize=4)
def _nodes(data_dir: str) -> pd.DataFrame:
    return openb.read_nodes(Path(data_dir) / openb.NODE_FILE)


@lru_cache(maxsize=4)
def _pods(data_dir: str, workload: str) -> pd.DataFrame:
    return openb.read_pods(openb.pod_file(data_dir, workload))


def run_one(spec: RunSpec) -> dict[str, Any]:
    """Run one fill; returns the per-run row plus ``alloc`` (array over x = 0..130)."""
    nodes, pods = _nodes(spec.data_dir), _pods(spec.data_dir, spec.workload)
    policy = load_scheduler(spec.policy)
    t0 = time.perf_counter()
    result = run_fill(
        lambda order: openb.build_cluster(nodes, order),
        len(nodes),
        lambda cluster: openb.pod_table(pods, cluster),
        policy,
        spec.seed,
        inflate=spec.inflate,
        tie_break=spec.tie_break,
    )
    wall_s = time.perf_counter() - t0
    alloc = result.allocation_by_bucket(MAX_BUCKET)
    return {
        "workload": spec.workload,
        "policy": spec.policy,
        "seed": spec.seed,
        "pods_original": result.n_original,
        "pods_submitted": result.n_submitted,
        "pods_failed": result.n_failed,
        "unalloc_100_pct": 100.0 - alloc[100],
        "unalloc_130_pct": 100.0 - alloc[MAX_BUCKET],
        "wall_s": wall_s,
        "alloc": alloc,
    }


def parse_seeds(text: str) -> list[int]:
    """``"42-51"``, ``"42,43"`` or a mix (``"1,5-7"``) -> sorted unique seeds."""
    seeds: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else ("", part)
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds.update(range(a, b + 1))
            else:
                seeds.add(int(part))
    except ValueError:
        raise TracesimError(
            f"--seeds {text!r}: expected integers and ranges such as 42-51 or 42,43"
        ) from None
    if not seeds:
        raise TracesimError("--seeds: no seed given; e.g. --seeds 42-51")
    return sorted(seeds)


def parse_names(text: str | Sequence[str], valid: Sequence[str], what: str) -> list[str]:
    """Comma-separated names checked against ``valid`` (TracesimError listing them)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in items if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise TracesimError(
            f"unknown {what} {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
        )
    if not names:
        raise TracesimError(f"no {what} given; valid: {', '.join(valid)}")
    return list(dict.fromkeys(names))


@dataclass
class ExperimentResult:
    """The three tables of an experiment (see the module docstring)."""

    curves: pd.DataFrame
    runs: pd.DataFrame
    summary: pd.DataFrame

    def write(self, out: str | os.PathLike[str]) -> list[Path]:
        """Write ``curves.parquet``, ``runs.parquet``, ``summary.parquet`` and one
        ``allocation_<workload>.png`` per workload into ``out``; returns the paths."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in ("curves", "runs", "summary"):
            path = out / f"{name}.parquet"
            getattr(self, name).to_parquet(path, index=False)
            paths.append(path)
        for workload in self.curves["workload"].unique():
            paths.append(plot_allocation(self.curves, str(workload), out))
        return paths


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds per (workload, policy)."""
    g = runs.groupby(["workload", "policy"], sort=False)
    summary = g.agg(
        seeds=("seed", "count"),
        unalloc_100_mean=("unalloc_100_pct", "mean"),
        unalloc_100_std=("unalloc_100_pct", "std"),
        unalloc_130_mean=("unalloc_130_pct", "mean"),
        unalloc_130_std=("unalloc_130_pct", "std"),
        pods_failed_mean=("pods_failed", "mean"),
    ).reset_index()
    return summary.fillna({"unalloc_100_std": 0.0, "unalloc_130_std": 0.0})


def run_experiment(
    workloads: Sequence[str],
    policies: Sequence[str],
    seeds: Sequence[int],
    *,
    data_dir: str | os.PathLike[str],
    jobs: int = 1,
    inflate: float = DEFAULT_INFLATE,
    tie_break: str = DEFAULT_TIE_BREAK,
    progress: Callable[[RunSpec], None] | None = None,
) -> ExperimentResult:
    """Run every (workload, policy, seed); ``progress`` is called after each run."""
    data_dir = str(data_dir)
    node_file = Path(data_dir) / openb.NODE_FILE
    if not node_file.is_file():
        raise TracesimError(
            f"{node_file}: no such file; pass --data-dir with the openb CSVs "
            f"(from {openb.PUBLISHED_AT})"
        )
    for w in workloads:
        openb.pod_file(data_dir, w)
    valid = scheduler_names()
    parse_names(list(policies), valid, "policy")
    specs = [
        RunSpec(w, p, s, data_dir, inflate, tie_break)
        for w in workloads
        for p in policies
        for s in seeds
    ]
    rows: list[dict[str, Any]] = []
    if jobs <= 1 or len(specs) == 1:
        for spec in specs:
            rows.append(run_one(spec))
            if progress:
                progress(spec)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_one, spec): spec for spec in specs}
            for fut in as_completed(futures):
                rows.append(fut.result())
                if progress:
                    progress(futures[fut])
    # Completion order varies with --jobs; the tables must not.
    key = {(s.workload, s.policy, s.seed): i for i, s in enumerate(specs)}
    rows.sort(key=lambda r: key[(r["workload"], r["policy"], r["seed"])])
    x = np.arange(MAX_BUCKET + 1)
    curves = pd.concat(
        [
            pd.DataFrame(
                {
                    "workload": r["workload"],
                    "policy": r["policy"],
                    "seed": r["seed"],
                    "x": x,
                    "alloc_pct": r["alloc"],
                }
            )
            for r in rows
        ],
        ignore_index=True,
    )
    runs = pd.DataFrame([{k: v for k, v in r.items() if k != "alloc"} for r in rows])
    return ExperimentResult(curves=curves, runs=runs, summary=summarise(runs))


def plot_allocation(curves: pd.DataFrame, workload: str, out: Path) -> Path:
    """PNG of GPU allocation ratio vs arrived GPU for ``workload``, one curve per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves[curves["workload"] == workload]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for policy, grp in data.groupby("policy", sort=False):
        stats = grp.groupby("x")["alloc_pct"].agg(["mean", "std"]).fillna(0.0)
        ax.plot(stats.index, stats["mean"], label=str(policy), linewidth=1.4)
        ax.fill_between(
            stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2
        )
    ax.plot([0, 100], [0, 100], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("arrived GPU requests, % of capacity")
    ax.set_ylabel("GPU allocation ratio, %")
    ax.set_title(f"openb {workload}: fill experiment")
    ax.set_xlim(0, MAX_BUCKET)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    path = out / f"allocation_{workload}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
