"""Benchmark: requests per wall second through the etcd and kube-apiserver models.

Scenario: ``--nodes`` kubelets (default 10,000) renewing their Leases every 10 s (profile
``current``: Leases + NodeStatus every 5 min) for ``--minutes`` simulated minutes, through APF,
the apiserver and etcd (leader batching, MVCC, backend commits, the 5-minute compactor),
with the metrics collectors on. The batched path is what the models are built for: one
SimPy process per write stream, heartbeats in phase buckets submitted as request groups.

Baseline, measured in the same run: the naive path, one SimPy process per request
(``yield api.request(...)``) for the same schedule, over ``--baseline-minutes`` simulated
minutes (it is slow). Both report requests per wall second; the ratio is printed.

Usage: python benchmarks/bench_models.py [--nodes 10000] [--minutes 10] [--append-docs]
``--append-docs`` appends a dated section to docs/performance.md (never rewrites it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
from pathlib import Path

import numpy as np
import simpy

from tracesim.models.apiserver import ApiServerModel
from tracesim.models.etcd import EtcdModel
from tracesim.models.kubelet import Heartbeats
from tracesim.models.params import load_profile
from tracesim.models.timers import call_later
from tracesim.sim.metrics import Metrics


def batched(nodes: int, minutes: float, bucket_ms: float) -> dict:
    """Heartbeats as write streams; wall time and requests handled."""
    prof = load_profile("current", [f"kubelet.stream_bucket_ms={bucket_ms}"])
    env = simpy.Environment()
    m = Metrics()
    etcd = EtcdModel(env, prof.etcd)
    etcd.register_metrics(m)
    api = ApiServerModel(env, etcd, prof.apiserver, m)
    hb = Heartbeats(env, api, prof.kubelet, nodes, np.random.default_rng(0))
    m.start_sampler(env, 10.0)
    t = time.perf_counter()
    env.run(until=minutes * 60)
    wall = time.perf_counter() - t
    lat = m.requests.column("latency_s")
    return {
        "path": f"batched, {bucket_ms:g} ms buckets",
        "requests": len(m.requests),
        "wall_s": wall,
        "req_per_wall_s": len(m.requests) / wall,
        "sim_s_per_wall_s": minutes * 60 / wall,
        "p99_ms": float(np.quantile(lat, 0.99)) * 1e3,
        "ok": hb.ok,
    }


def naive(nodes: int, minutes: float) -> dict:
    """One SimPy process per heartbeat request, same schedule (Leases every 10 s only)."""
    prof = load_profile("current")
    env = simpy.Environment()
    m = Metrics()
    etcd = EtcdModel(env, prof.etcd)
    etcd.register_metrics(m)
    api = ApiServerModel(env, etcd, prof.apiserver, m)
    etcd.preload("leases", list(range(nodes)), prof.kubelet.lease_size_bytes)
    phases = np.random.default_rng(0).uniform(0, prof.kubelet.heartbeat_interval_s, nodes)
    until = minutes * 60

    def one(node: int, at: float):
        yield env.timeout(at - env.now)
        yield api.request(
            "update",
            "leases",
            "resource",
            prof.kubelet.lease_size_bytes,
            node,
            level="node-high",
            flow=f"node-{node}",
        )

    def spawner():
        # Spawn each request's process at its time (one process per request).
        times = (phases[None, :] + np.arange(int(until / 10) + 1)[:, None] * 10.0).ravel()
        nodes_of = np.tile(np.arange(nodes), int(until / 10) + 1)
        order = np.argsort(times, kind="stable")
        for i in order.tolist():
            at = float(times[i])
            if at >= until:
                break
            if at > env.now:
                yield env.timeout(at - env.now)
            env.process(one(int(nodes_of[i]), at))

    env.process(spawner())
    t = time.perf_counter()
    env.run(until=until)
    wall = time.perf_counter() - t
    lat = m.requests.column("latency_s")
    return {
        "path": "naive, one process per request",
        "requests": len(m.requests),
        "wall_s": wall,
        "req_per_wall_s": len(m.requests) / wall,
        "sim_s_per_wall_s": until / wall,
        "p99_ms": float(np.quantile(lat, 0.99)) * 1e3,
        "ok": len(m.requests),
    }


def etcd_only(n_writes: int = 200_000) -> tuple[float, float]:
    """Writes per wall second into the etcd model: groups of 10 vs one process per write."""
    env = simpy.Environment()
    etcd = EtcdModel(env)
    etcd.preload("l", list(range(10_000)), 400)

    def groups():
        for i in range(n_writes // 10):
            yield env.timeout(0.001)
            keys = [(i * 10 + j) % 10_000 for j in range(10)]
            etcd.submit_writes("update", "l", keys, np.full(10, 400.0))

    env.process(groups())
    t = time.perf_counter()
    env.run()
    g = n_writes / (time.perf_counter() - t)
    env = simpy.Environment()
    etcd = EtcdModel(env)
    etcd.preload("l", list(range(10_000)), 400)
    n = n_writes // 4

    def w(k):
        yield etcd.write("update", "l", k, 400.0)

    def procs():
        for i in range(n):
            if i % 10 == 0:
                yield env.timeout(0.001)
            env.process(w(i % 10_000))

    env.process(procs())
    t = time.perf_counter()
    env.run()
    return g, n / (time.perf_counter() - t)


def timers(n: int = 400_000) -> tuple[float, float]:
    """Timer callbacks per wall second (scheduled and fired): ``call_later`` vs SimPy's
    ``env.timeout`` with a callback (the baseline), for the same ``n`` delays."""

    def fn(_a: int, _b: int) -> None:
        pass

    rates = []
    for slotted in (True, False):
        env = simpy.Environment()
        t = time.perf_counter()
        for i in range(n):
            delay = 0.001 * (i % 7)
            if slotted:
                call_later(env, delay, fn, i, 1)
            else:
                ev = env.timeout(delay)
                ev.callbacks.append(lambda _e, a=i: fn(a, 1))
        env.run()
        rates.append(n / (time.perf_counter() - t))
    return rates[0], rates[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--baseline-minutes", type=float, default=2.0)
    ap.add_argument("--append-docs", action="store_true")
    args = ap.parse_args()
    rows = [
        batched(args.nodes, args.minutes, 10.0),
        batched(args.nodes, args.minutes, 50.0),
        naive(args.nodes, args.baseline_minutes),
    ]
    base = rows[-1]["req_per_wall_s"]
    g, p = etcd_only()
    tl, tt = timers()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"{args.nodes:,} nodes, Lease heartbeats (profile `current`), apiserver + etcd models, "
        f"metrics on; batched paths over {args.minutes:g} simulated minutes, naive baseline "
        f"over {args.baseline_minutes:g} (same run, same machine).",
        "",
        "| path | requests | wall | requests / wall s | sim s / wall s | p99 latency | vs naive |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['path']} | {r['requests']:,} | {r['wall_s']:.1f} s | "
            f"{r['req_per_wall_s']:,.0f} | {r['sim_s_per_wall_s']:.0f} | {r['p99_ms']:.1f} ms | "
            f"{r['req_per_wall_s'] / base:.1f}x |"
        )
    lines += [
        "",
        f"etcd model alone: {g:,.0f} writes / wall s as groups of 10 (`submit_writes`) vs "
        f"{p:,.0f} with one SimPy process per write (`write`): {g / p:.1f}x. "
        f"Peak RSS of the benchmark process: {peak_mib:,.0f} MiB.",
        "",
        f"Timers: {tl:,.0f} callbacks / wall s with `call_later` vs {tt:,.0f} with "
        f"`env.timeout` + callback: {tl / tt:.2f}x.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append_docs:
        doc = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
        existing = doc.read_text() if doc.exists() else ""
        header = "" if "## Control-plane models" in existing else "\n## Control-plane models\n"
        with doc.open("a") as fh:
            fh.write(
                f"{header}\n`python benchmarks/bench_models.py --nodes {args.nodes} "
                f"--minutes {args.minutes:g}` ({dt.date.today().isoformat()}):\n\n{text}\n"
            )
        print(f"appended to {doc}")


if __name__ == "__main__":
    main()
