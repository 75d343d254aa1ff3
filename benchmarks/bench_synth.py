"""Benchmark: `tracesim synth` throughput and peak memory, against the per-object path.

The baseline, measured in the same run, is what a generator would cost if it built each event
as a Kubernetes object and extracted its row (`object_row`, as the recorder does) before
writing: the events per second of that path on a sample of Lease renewals and Pod updates.
Each synth size runs in a fresh subprocess so its peak RSS is its own.

Usage: python benchmarks/bench_synth.py [--sizes 1000,10000] [--duration 1h]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tracesim.trace import TraceWriter, open_trace
from tracesim.trace.objects import object_row


def baseline_events_per_s(n: int = 20_000) -> float:
    """Events/s of object -> row -> TraceWriter, one Python object per event."""
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "node-00001",
            "namespace": "kube-node-lease",
            "uid": "u1",
            "resourceVersion": "1",
        },
        "spec": {
            "holderIdentity": "node-00001",
            "leaseDurationSeconds": 40,
            "renewTime": "2026-01-05T08:00:00.000000Z",
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "app-1-abc",
            "namespace": "team-001",
            "uid": "u2",
            "labels": {"app": "app-1"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "app-1-x", "controller": True}],
        },
        "spec": {
            "nodeName": "node-00001",
            "schedulerName": "default-scheduler",
            "containers": [
                {"name": "c", "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}
            ],
        },
        "status": {"phase": "Running", "qosClass": "Burstable"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with TraceWriter(Path(tmp) / "t", "synthetic", journal=False) as w:
            batch = []
            for i in range(n):
                batch.append(
                    object_row(
                        lease if i % 5 else pod, "MODIFIED", 1_767_600_000_000_000 + i * 1000
                    )
                )
                if len(batch) == 5000:
                    w.write_rows(batch)
                    batch = []
            w.write_rows(batch)
        return n / (time.perf_counter() - start)


def run_synth(nodes: int, duration: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "t"
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tracesim",
                "synth",
                "--nodes",
                str(nodes),
                "--duration",
                duration,
                "--seed",
                "1",
                "--out",
                str(out),
                "-q",
            ],
            check=True,
        )
        wall = time.perf_counter() - start
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        rows = open_trace(out).count()
        size = sum(f.stat().st_size for f in (out / "events").iterdir())
        return {
            "nodes": nodes,
            "duration": duration,
            "events": rows,
            "wall_s": round(wall, 2),
            "events_per_s": round(rows / wall),
            "peak_rss_mib": round(max(peak_kib, before) / 1024),
            "size_mib": round(size / 2**20, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--duration", default="1h")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = baseline_events_per_s()
    results = [run_synth(int(n), args.duration) for n in args.sizes.split(",")]
    if args.json:
        print(json.dumps({"baseline_events_per_s": base, "runs": results}, indent=2))
        return
    print(f"baseline (object -> row -> writer, per event): {base:,.0f} events/s")
    print(
        f"{'nodes':>7} {'span':>5} {'events':>11} {'wall s':>7} {'events/s':>10} "
        f"{'vs base':>8} {'peak RSS':>9} {'on disk':>8}"
    )
    for r in results:
        print(
            f"{r['nodes']:>7,} {r['duration']:>5} {r['events']:>11,} {r['wall_s']:>7.1f} "
            f"{r['events_per_s']:>10,} {r['events_per_s'] / base:>7.0f}x "
            f"{r['peak_rss_mib']:>6} MiB {r['size_mib']:>5} MiB"
        )


if __name__ == "__main__":
    main()
