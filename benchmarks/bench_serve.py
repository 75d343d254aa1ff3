"""Benchmark: `tracesim serve` on a 10k-node, 100k-pod state.

Measures loading (rows/s into the store), and over HTTP the latency of a full LIST of pods, a
field-selected LIST (``spec.nodeName=X``, what every kubelet sends) and a label-selected one.
The baseline, measured in the same run, is the same field-selected query answered by scanning
every pod (no node index): the ratio is what the index buys.

Usage: python benchmarks/bench_serve.py [--nodes 10000] [--pods 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa

from tracesim.serve import ServerThread, TracePlayer
from tracesim.serve.selectors import parse_field_selector
from tracesim.serve.store import Query
from tracesim.trace import TraceWriter, open_trace

T0_US = 1_714_557_600_000_000


def build(path: Path, nodes: int, pods: int) -> None:
    """A trace whose initial LIST holds ``nodes`` nodes and ``pods`` pods (typed columns)."""
    node_names = np.char.add("node-", np.arange(nodes).astype(str))
    pod_node = node_names[np.arange(pods) % nodes]
    n = nodes + pods
    kind = np.array(["Node"] * nodes + ["Pod"] * pods)
    names = np.concatenate([node_names, np.char.add("pod-", np.arange(pods).astype(str))])
    ns = [None] * nodes + [f"team-{i % 50:02d}" for i in range(pods)]
    labels = [["kubernetes.io/os=linux"]] * nodes + [[f"app=app-{i % 500}"] for i in range(pods)]
    table = pa.table(
        {
            "ts": pa.array(np.full(n, T0_US), pa.int64()),
            "kind": kind,
            "api_version": ["v1"] * n,
            "event_type": ["LISTED"] * n,
            "namespace": ns,
            "name": names,
            "uid": names,
            "size_bytes": np.full(n, 1000),
            "labels": labels,
            "node_name": [None] * nodes + pod_node.tolist(),
            "phase": [None] * nodes + ["Running"] * pods,
            "req_cpu_milli": [None] * nodes + [250] * pods,
            "alloc_cpu_milli": [8000] * nodes + [None] * pods,
            "ready": [True] * nodes + [None] * pods,
        }
    )
    with TraceWriter(path, "synthetic", journal=False) as writer:
        writer.write_table(table)


def timed(fn, repeat: int = 5) -> float:
    """Best of ``repeat`` wall times of ``fn()``, seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--pods", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace"
        build(path, args.nodes, args.pods)
        t = time.perf_counter()
        player = TracePlayer(open_trace(path))
        load_s = time.perf_counter() - t
        rows = args.nodes + args.pods
        print(f"load: {rows:,} objects in {load_s:.2f} s ({rows / load_s:,.0f} objects/s)")
        pods = player.store.resources[("Pod", "v1")]
        with ServerThread(player) as srv:

            def get(path: str) -> int:
                with urllib.request.urlopen(srv.url + path, timeout=60) as resp:
                    return len(resp.read())

            full = timed(lambda: get("/api/v1/pods"), 3)
            size = get("/api/v1/pods")
            field = timed(lambda: get("/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-77"))
            label = timed(lambda: get("/api/v1/pods?labelSelector=app%3Dapp-7"), 3)
            page = timed(lambda: get("/api/v1/pods?limit=500"), 3)
            query = Query(fields=parse_field_selector("spec.nodeName=node-77"))
            scan = timed(lambda: srv.call(lambda: pods.select(query, pods.objects)))
            index = timed(lambda: srv.call(lambda: pods.select(query)))
        print(f"full LIST pods:           {full * 1e3:8.1f} ms  ({size / 1e6:.0f} MB)")
        print(f"LIST limit=500:           {page * 1e3:8.1f} ms")
        print(f"LIST spec.nodeName=X:     {field * 1e3:8.1f} ms  (full/field {full / field:,.0f}x)")
        print(f"LIST app=X (label scan):  {label * 1e3:8.1f} ms")
        print(
            f"select nodeName: index {index * 1e6:,.0f} us vs scan {scan * 1e3:.1f} ms "
            f"(baseline/index {scan / index:,.0f}x)"
        )


if __name__ == "__main__":
    main()
