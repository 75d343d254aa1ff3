"""Recorder throughput: watch events per second into a journaled trace, and memory over time.

A local server (another process, so the recorder has its core to itself) streams synthetic
watch events as fast as the socket takes them: lease renewals, pod updates and node status
updates of a fixed population of objects (as a cluster in steady state), with the sizes of
real objects. The recorder (``tracesim.sources.record``) records pods, nodes and leases until
it has every event; we report events/s by wall clock and by CPU time, and the resident memory
at each eighth of the run (it must stay flat). The baseline, measured in the same run against
the same server, is the naive client: the ``kubernetes`` package's synchronous
``watch.Watch().stream`` on one resource, doing nothing with the events.

    .venv/bin/python benchmarks/bench_record.py [--events 1600000] [--baseline-events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

PLURALS = {"pods": ("", "Pod"), "nodes": ("", "Node"), "leases": ("coordination.k8s.io", "Lease")}
SHARE = {"leases": 0.70, "pods": 0.25, "nodes": 0.05}
POPULATION = {"leases": 5000, "pods": 20000, "nodes": 5000}


def _pod(i: int, rv: int) -> dict:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": f"web-{i:06d}-abcde",
            "namespace": f"ns-{i % 50}",
            "uid": f"00000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(rv),
            "labels": {"app": f"web-{i % 300}", "pod-template-hash": "7d9f8c6b5"},
            "ownerReferences": [
                {
                    "kind": "ReplicaSet",
                    "name": f"web-{i % 300}-7d9f8c6b5",
                    "controller": True,
                    "uid": "x",
                    "apiVersion": "apps/v1",
                }
            ],
            "creationTimestamp": "2024-05-01T10:00:00Z",
        },
        "spec": {
            "nodeName": f"node-{i % 5000:05d}",
            "schedulerName": "default-scheduler",
            "priority": 0,
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example.com/team/web:1.2.3",
                    "resources": {
                        "requests": {"cpu": "250m", "memory": "256Mi"},
                        "limits": {"cpu": "1", "memory": "512Mi"},
                    },
                    "env": [{"name": f"VAR_{k}", "value": "x" * 20} for k in range(8)],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                }
            ],
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        },
        "status": {
            "phase": "Running",
            "qosClass": "Burstable",
            "podIP": "10.0.0.1",
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": "2024-05-01T10:00:05Z"}
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
        },
    }


def _node(i: int, rv: int) -> dict:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": f"node-{i:05d}",
            "uid": f"10000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(rv),
            "labels": {
                "kubernetes.io/hostname": f"node-{i:05d}",
                "topology.kubernetes.io/zone": f"zone-{i % 3}",
                "node.kubernetes.io/instance-type": "m5.2xlarge",
            },
        },
        "spec": {"podCIDR": "10.1.0.0/24", "providerID": f"aws:///zone/i-{i:012d}"},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "7910m", "memory": "31Gi", "pods": "110"},
            "conditions": [
                {
                    "type": t,
                    "status": "False" if t != "Ready" else "True",
                    "lastHeartbeatTime": "2024-05-01T10:00:00Z",
                    "reason": "Fine",
                    "message": "kubelet is posting ready status",
                }
                for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
            ],
            "images": [
                {"names": [f"registry.example.com/team/img-{k}:1.0"], "sizeBytes": 123456789}
                for k in range(20)
            ],
            "nodeInfo": {"kubeletVersion": "v1.30.0", "osImage": "Ubuntu 22.04"},
        },
    }


def _lease(i: int, rv: int) -> dict:
    return {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            "name": f"node-{i:05d}",
            "namespace": "kube-node-lease",
            "uid": f"20000000-0000-0000-0000-{i:012d}",
            "resourceVersion": str(rv),
            "ownerReferences": [
                {"kind": "Node", "name": f"node-{i:05d}", "uid": "y", "apiVersion": "v1"}
            ],
        },
        "spec": {
            "holderIdentity": f"node-{i:05d}",
            "leaseDurationSeconds": 40,
            "renewTime": f"2024-05-01T10:{(rv // 60) % 60:02d}:{rv % 60:02d}.123456Z",
        },
    }


MAKERS = {"pods": _pod, "nodes": _node, "leases": _lease}


def build_lines(plural: str, n: int) -> list[bytes]:
    """``n`` MODIFIED events over the resource's population, JSON lines as an API server
    writes them. Objects are pre-encoded per population member and re-stamped with the rv."""
    pop = POPULATION[plural]
    lines = []
    for k in range(n):
        obj = MAKERS[plural](k % pop, k + 2)
        lines.append(orjson.dumps({"type": "MODIFIED", "object": obj}) + b"\n")
    return lines


def serve(port_q: mp.Queue, counts: dict[str, int]) -> None:
    """The event server (runs in its own process)."""
    from aiohttp import web

    streams = {p: build_lines(p, n) for p, n in counts.items()}

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.path
        plural = path.rstrip("/").split("/")[-1]
        if path == "/version":
            return web.json_response({"gitVersion": "v1.30.0-bench"})
        if path in ("/api/v1", "/apis/coordination.k8s.io/v1"):
            group = "" if path == "/api/v1" else "coordination.k8s.io"
            res = [
                {"name": p, "kind": k, "namespaced": p != "nodes", "verbs": ["list", "watch"]}
                for p, (g, k) in PLURALS.items()
                if g == group
            ]
            return web.json_response({"resources": res})
        if path == "/apis":
            return web.json_response(
                {"groups": [{"name": "coordination.k8s.io", "preferredVersion": {"version": "v1"}}]}
            )
        if plural not in streams:
            return web.json_response({"code": 404}, status=404)
        if request.query.get("watch") not in ("1", "true"):
            return web.json_response(
                {
                    "kind": PLURALS[plural][1] + "List",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": "1"},
                    "items": [],
                }
            )
        since = int(request.query.get("resourceVersion") or 1)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        lines = streams[plural][max(0, since - 1) :]
        try:
            for i in range(0, len(lines), 256):  # 256 events per write: the socket is the limit
                await resp.write(b"".join(lines[i : i + 256]))
            await resp.write_eof()
        except (ConnectionError, RuntimeError, OSError):
            pass  # the baseline client stops reading after its events
        return resp

    async def main() -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_q.put(site._server.sockets[0].getsockname()[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_recorder(url: str, total: int, out: Path) -> dict:
    from tracesim.sources.record import Recorder, RecordOptions, load_auth

    kc = out.parent / "kubeconfig"
    kc.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
        f"clusters: [{{name: b, cluster: {{server: '{url}'}}}}]\n"
        "users: [{name: u, user: {}}]\ncontexts: [{name: b, context: {cluster: b, user: u}}]\n"
    )
    opts = RecordOptions(resources=tuple(PLURALS), watch_timeout_s=(600, 600), seed=0)
    rec = Recorder(load_auth(str(kc)), out, opts)
    samples: list[tuple[int, float]] = []

    async def main() -> tuple[float, float]:
        task = asyncio.create_task(rec.run())
        await rec.started.wait()
        t0, c0 = time.perf_counter(), time.process_time()
        next_mark = total // 8
        while True:
            got = sum(s.events for s in rec.stats)
            if got >= next_mark:
                samples.append((got, rss_mib()))
                next_mark += total // 8
            if got >= total:
                break
            await asyncio.sleep(0.05)
        rec.stop.set()
        await task  # includes the final flush and the Parquet conversion
        return time.perf_counter() - t0, time.process_time() - c0

    wall, cpu = asyncio.run(main())
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "samples": samples,
        "reconnects": sum(s.reconnects for s in rec.stats),
    }


def bench_baseline(url: str, n: int) -> float:
    """The kubernetes package's synchronous watch of pods: events/s."""
    from kubernetes import client, watch

    cfg = client.Configuration()
    cfg.host = url
    api = client.CoreV1Api(client.ApiClient(cfg))
    t0 = time.perf_counter()
    got = 0
    for _ in watch.Watch().stream(
        api.list_pod_for_all_namespaces, resource_version="1", timeout_seconds=600
    ):
        got += 1
        if got >= n:
            break
    return got / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_600_000)
    ap.add_argument("--baseline-events", type=int, default=20_000)
    args = ap.parse_args()
    counts = {p: max(1, int(args.events * SHARE[p])) for p in PLURALS}
    counts["pods"] = max(counts["pods"], args.baseline_events)
    total = sum(counts.values())
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    server = ctx.Process(target=serve, args=(q, counts), daemon=True)
    server.start()
    try:
        port = q.get(timeout=600)
        url = f"http://127.0.0.1:{port}"
        base = bench_baseline(url, args.baseline_events)
        with tempfile.TemporaryDirectory() as tmp:
            res = bench_recorder(url, total, Path(tmp) / "trace")
            from tracesim.trace import open_trace

            trace = open_trace(Path(tmp) / "trace")
            rows = trace.count()
            parquet_mib = sum(p.stat().st_size for p in trace.parts) / 2**20
    finally:
        server.kill()
    rate = total / res["wall_s"]
    cpu_rate = total / res["cpu_s"]
    print(f"recorder: {total:,} watch events (pods/nodes/leases), {rows:,} rows in the trace")
    print(
        f"  wall {res['wall_s']:.2f} s -> {rate:,.0f} events/s; "
        f"CPU {res['cpu_s']:.2f} s -> {cpu_rate:,.0f} events per CPU-second"
    )
    print(f"  parquet {parquet_mib:.1f} MiB; reconnects {res['reconnects']}")
    print("  RSS at each eighth: " + ", ".join(f"{n:,} ev: {m:.0f} MiB" for n, m in res["samples"]))
    print(f"baseline (kubernetes sync watch, pods only, no storage): {base:,.0f} events/s")
    print(f"ratio recorder / baseline: {rate / base:.1f}x")
    print(
        f"cpu: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
        f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
