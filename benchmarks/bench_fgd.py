"""Benchmark: one FGD fill run of the openb default workload, cached vs naive.

Usage: ``.venv/bin/python benchmarks/bench_fgd.py [--seed 42] [--repeat 3] [--no-naive]``

Measures in the same process (a) the incremental run: per-(pod shape, node) scores cached by
node version, per-node fragmentation statistics cached by node version; and (b) the naive
baseline: every node re-filtered and re-scored for every pod, statistics recomputed. Both give
identical placements (checked). Also times the other five policies, and compares with the
published Go simulator's FGD run on a comparable 2-core machine (24 min 26 s,
../shared/design/gpu-sharing-experiment.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from tracesim.models.registry import load_scheduler
from tracesim.models.schedulers.gpushare import FGDPolicy
from tracesim.sim.fill import run_fill
from tracesim.sources import openb

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alibaba-gpu-v2023"
GO_SIMULATOR_S = 24 * 60 + 26


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-naive", action="store_true", help="skip the slow naive baseline")
    args = ap.parse_args()
    node_csv, pod_csv = DATA / openb.NODE_FILE, DATA / "openb_pod_list_default.csv"
    for f in (node_csv, pod_csv):
        if not f.is_file():
            print(f"{f} absent (alibaba/clusterdata, cluster-trace-gpu-v2023)", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    nodes, pods = openb.read_nodes(node_csv), openb.read_pods(pod_csv)
    read_s = time.perf_counter() - t0

    def run(policy, cache=True):
        t = time.perf_counter()
        result = run_fill(
            lambda order: openb.build_cluster(nodes, order),
            len(nodes),
            lambda cluster: openb.pod_table(pods, cluster),
            policy,
            args.seed,
            cache=cache,
        )
        return time.perf_counter() - t, result

    times = []
    for _ in range(args.repeat):
        wall, fast = run(FGDPolicy())
        times.append(wall)
    fast_s = min(times)
    print(f"read CSVs: {read_s:.3f} s (once)")
    print(
        f"FGD default, seed {args.seed}: {fast.n_submitted} pods submitted "
        f"({fast.n_original} original, {fast.n_failed} failed), {len(nodes)} nodes"
    )
    print(
        f"  incremental: best {fast_s:.3f} s of {args.repeat} (all: "
        f"{', '.join(f'{t:.3f}' for t in times)}); {1e6 * fast_s / fast.n_submitted:.0f} us/pod"
    )
    if not args.no_naive:
        naive_s, naive = run(FGDPolicy(incremental=False), cache=False)
        same = np.array_equal(naive.node, fast.node)
        print(
            f"  naive (no caches): {naive_s:.3f} s -> speed-up x{naive_s / fast_s:.1f}; "
            f"identical placements: {same}"
        )
    print(f"  vs published Go simulator ({GO_SIMULATOR_S} s): x{GO_SIMULATOR_S / fast_s:.0f}")
    for name in ("random", "bestfit", "dotprod", "gpupacking", "gpuclustering"):
        wall, _ = run(load_scheduler(name))
        print(f"  {name:<14} {wall:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
