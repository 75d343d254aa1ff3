"""Benchmark: the replay engine with kube-default, cached vs naive, and simulated time speed.

Usage: ``.venv/bin/python benchmarks/bench_replay.py [--nodes 10000] [--pods 20000]
[--no-naive] [--no-hour] [--append-docs]``

1. **Placement throughput** at ``--nodes`` nodes: a trace built with TraceWriter (nodes LISTED
   at 0, a burst of ``--pods`` CPU pods created over one simulated second, nothing deleted),
   replayed through the engine with kube-default. Figure: scheduling decisions per second of
   engine wall time (feeder, queue, scheduler, bookkeeping; trace loading excluded). Measured
   twice in the same process: with the framework's per-(pod shape, node version) cache, and
   the naive baseline (every node filtered and scored for every pod, no caches); both give
   identical placements (checked).
2. **Simulated seconds per wall second** on the bundled sample trace (200 nodes, 30 min) and
   on a synthetic 10,000-node hour (``tracesim synth --nodes 10000 --duration 1h
   --resources pods,nodes``; the replay reads only pods and nodes anyway).

``--append-docs`` appends the figures to docs/performance.md under "## Replay" (it only
appends; the file is never rewritten).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa

from tracesim.models.registry import load_scheduler
from tracesim.sim.engine import EngineConfig, Simulation, replay
from tracesim.sim.workload import load_workload
from tracesim.sources.synth import SynthConfig, synthesize
from tracesim.trace.writer import TraceWriter

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "traces" / "sample"
START_US = 1_767_600_000 * 1_000_000
POD_SHAPES = [(100, 128), (250, 256), (500, 512), (1000, 1024), (2000, 4096)]


def burst_trace(path: Path, nodes: int, pods: int, seed: int = 0) -> Path:
    """``nodes`` nodes (3 shapes, 3 zones) LISTED at 0, ``pods`` pods ADDED within 1 s."""
    rng = np.random.default_rng(seed)
    cpu = rng.choice([8_000, 16_000, 32_000], nodes)
    mem = cpu // 1000 * 4 * 2**30
    node_rows = {
        "ts": pa.array(np.full(nodes, START_US), pa.int64()),
        "kind": pa.array(["Node"] * nodes),
        "event_type": pa.array(["LISTED"] * nodes),
        "name": pa.array([f"node-{i:05d}" for i in range(nodes)]),
        "uid": pa.array([f"n-{i}" for i in range(nodes)]),
        "size_bytes": pa.array(np.full(nodes, 16_000), pa.int64()),
        "labels": pa.array(
            [[f"kubernetes.io/hostname=node-{i:05d}", f"zone=z{i % 3}"] for i in range(nodes)]
        ),
        "alloc_cpu_milli": pa.array(cpu, pa.int64()),
        "alloc_memory_bytes": pa.array(mem, pa.int64()),
        "alloc_pods": pa.array(np.full(nodes, 110), pa.int32()),
        "alloc_gpu_count": pa.array(np.zeros(nodes), pa.int32()),
        "ready": pa.array(np.ones(nodes, bool)),
    }
    shape = rng.integers(len(POD_SHAPES), size=pods)
    t_us = START_US + 1_000_000 + np.sort(rng.integers(0, 1_000_000, pods))
    pod_rows = {
        "ts": pa.array(t_us, pa.int64()),
        "kind": pa.array(["Pod"] * pods),
        "event_type": pa.array(["ADDED"] * pods),
        "namespace": pa.array(["bench"] * pods),
        "name": pa.array([f"burst-{i:06d}" for i in range(pods)]),
        "uid": pa.array([f"p-{i}" for i in range(pods)]),
        "size_bytes": pa.array(np.full(pods, 4_000), pa.int64()),
        "phase": pa.array(["Pending"] * pods),
        "scheduler_name": pa.array(["default-scheduler"] * pods),
        "priority": pa.array(np.zeros(pods), pa.int32()),
        "req_cpu_milli": pa.array([POD_SHAPES[s][0] for s in shape], pa.int64()),
        "req_memory_bytes": pa.array([POD_SHAPES[s][1] * 2**20 for s in shape], pa.int64()),
        "req_gpu_count": pa.array(np.zeros(pods), pa.int32()),
        "req_gpu_milli": pa.array(np.zeros(pods), pa.int64()),
    }
    with TraceWriter(path, "synthetic", journal=False, overwrite=True) as w:
        w.write_table(pa.table(node_rows))
        w.write_table(pa.table(pod_rows))
    return path


def engine_run(trace: Path, *, cache: bool, seed: int = 1) -> tuple[float, int, np.ndarray]:
    """(engine wall s, decisions, node per pod) of one kube-default replay of ``trace``."""
    workload = load_workload(str(trace))
    sim = Simulation(
        workload, load_scheduler("kube-default"), seed=seed, config=EngineConfig(cache=cache)
    )
    t0 = time.perf_counter()
    out = sim.run()
    return time.perf_counter() - t0, out.decisions, out.node


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--pods", type=int, default=20_000)
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--no-hour", action="store_true", help="skip the 10k-node hour")
    ap.add_argument("--append-docs", action="store_true")
    args = ap.parse_args()
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        trace = burst_trace(Path(tmp) / "burst", args.nodes, args.pods)
        wall, decisions, nodes_cached = engine_run(trace, cache=True)
        rate = decisions / wall
        say(
            f"| kube-default burst, {args.nodes:,} nodes, {args.pods:,} pods, cached | "
            f"{wall:.2f} s | {rate:,.0f} decisions/s |"
        )
        if not args.no_naive:
            wall_n, decisions_n, nodes_naive = engine_run(trace, cache=False)
            same = np.array_equal(nodes_cached, nodes_naive)
            say(
                f"| same burst, naive baseline (every node filtered and scored per pod) | "
                f"{wall_n:.2f} s | {decisions_n / wall_n:,.0f} decisions/s |"
            )
            say(
                f"| ratio cached / naive | x{wall_n / wall:.1f} | identical placements: "
                f"{'yes' if same else 'NO'} |"
            )
        r = replay(str(SAMPLE), "kube-default", seed=1)
        s = r.summary
        say(
            f"| sample trace (200 nodes, 30 min), whole replay | {s['wall_time_s']:.2f} s | "
            f"{s['sim_seconds_per_wall_second']:,.0f} sim s per wall s |"
        )
        if not args.no_hour:
            big = Path(tmp) / "s10k"
            t0 = time.perf_counter()
            cfg = SynthConfig(nodes=10_000, duration_s=3600.0, seed=0, resources=("pods", "nodes"))
            synthesize(cfg, big)
            synth_s = time.perf_counter() - t0
            r = replay(str(big), "kube-default", seed=1)
            s = r.summary
            say(
                f"| synth 10,000 nodes, 1 h ({s['pods']['total']:,} pods, "
                f"{s['attempts']['decisions']:,} decisions; synth {synth_s:.0f} s) | "
                f"{s['wall_time_s']:.1f} s (+{s['load_wall_s']:.1f} s load) | "
                f"{s['sim_seconds_per_wall_second']:,.0f} sim s per wall s |"
            )
    if args.append_docs:
        append_docs(lines)
    return 0


def append_docs(lines: list[str]) -> None:
    """Append a dated table to docs/performance.md under "## Replay" (append only)."""
    doc = ROOT / "docs" / "performance.md"
    text = doc.read_text() if doc.exists() else ""
    parts = []
    if "## Replay" not in text:
        parts.append(
            "\n## Replay\n\n"
            "`benchmarks/bench_replay.py`: the replay engine (SimPy feeder, scheduling queue,\n"
            "scheduler process) with `kube-default`. Target (issue 3): at least 10,000\n"
            "scheduling decisions per second of wall time at 10,000 nodes. The naive baseline\n"
            "filters and scores every node for every pod (no per-shape cache); both runs place\n"
            "every pod on the same node.\n"
        )
    parts.append(
        f"\nRun of {date.today().isoformat()} ({platform.machine()}, "
        f"Python {platform.python_version()}):\n\n| run | wall time | figure |\n|---|---|---|\n"
        + "\n".join(lines)
        + "\n"
    )
    with doc.open("a") as f:
        f.write("".join(parts))


if __name__ == "__main__":
    raise SystemExit(main())
