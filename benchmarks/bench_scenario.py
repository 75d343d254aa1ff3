"""Benchmark: the standard control-plane scenario replayed through all models.

Usage: ``.venv/bin/python benchmarks/bench_scenario.py [--nodes 10000] [--duration 1h]
[--seed 1] [--scaling 1000,5000,10000,20000] [--scaling-duration 10m] [--bucket-ms 100]
[--baseline-src DIR] [--skip-short] [--append-docs]``

1. **Standard scenario** (issue 4): ``tracesim synth --nodes 10000 --duration 1h --burst-pods
   10000`` (Lease heartbeats, steady churn ~20 pods/s, a burst of 10,000 pods) replayed with
   ``--profile current`` (every model: APF, etcd, watch fan-out, kubelet heartbeats, scheduler
   timing and client). Figures: wall time (trace loading included), peak RSS of the process,
   simulated seconds per wall second. Target: <= 30 s, < 2 GB.
2. **Baseline, same run**: the same trace replayed placement only (no ``--profile``), so the
   ratio shows what the control-plane models cost on top of the engine.
3. **Batching vs the per-request path, same run**: the first ``--short-s`` seconds of the same
   trace replayed with waves of ``--bucket-ms`` and with ``workload.request_bucket_ms=0`` (every
   request at its own time, in its own group), so the ratio is the batching's speed-up.
4. **Scaling**: simulated seconds per wall second at 1k, 5k, 10k and 20k nodes (shorter
   traces, same generator settings).

5. **Earlier code, same run** (``--baseline-src DIR``): the standard scenario replayed by the
   ``tracesim`` package found in ``DIR`` (e.g. the last commit:
   ``mkdir /tmp/base && git archive HEAD tracesim | tar -x -C /tmp/base``), so the speed-up of
   a change is measured against its baseline on the same machine, under the same load.

``--bucket-ms`` sets ``workload.request_bucket_ms`` (the wave window W; see docs/models.md for
the accuracy cost). ``--append-docs`` appends the figures to docs/performance.md (append only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACESIM = [sys.executable, "-m", "tracesim"]


def synth(out: Path, nodes: int, duration: str, burst: int, seed: int = 1) -> None:
    cmd = [*TRACESIM, "synth", "--nodes", str(nodes), "--duration", duration, "-q"]
    cmd += ["--seed", str(seed)]
    cmd += ["--burst-pods", str(burst), "--out", str(out), "--force"]
    subprocess.run(cmd, check=True)


CHILD = """
import json, resource, sys, time
from tracesim.sim.engine import replay
trace, profile, bucket, end = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
t = time.perf_counter()
settings = {}
if profile != "none":
    settings = {"workload.request_bucket_ms": bucket}
window = (0.0, end if end > 0 else None)
r = replay(trace, profile=None if profile == "none" else profile, settings=settings, window=window)
wall = time.perf_counter() - t
s = r.summary
cp = s.get("control_plane") or {}
print(json.dumps({
    "wall_s": wall,
    "load_s": s["load_wall_s"],
    "sim_s": s["simulated_s"],
    "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "requests": (cp.get("requests") or {}).get("submitted"),
    "bottleneck": (cp.get("bottleneck") or {}).get("component"),
    "sched_p99_s": s["scheduling_latency_s"]["p99"],
    "startup_p99_s": (cp.get("pod_startup_s") or {}).get("p99"),
    "db_mib": (cp.get("etcd") or {}).get("db_size_bytes", 0) / 2**20,
}))
"""


def run(
    trace: Path, profile: str, bucket_ms: float, end_s: float = 0.0, src: str | None = None
) -> dict:
    """One replay (of the first ``end_s`` seconds if > 0) in a fresh process (its peak RSS is
    the replay's); ``src``: a directory whose ``tracesim`` package replaces the installed one."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(trace), profile, str(bucket_ms), str(end_s)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        # ``python -c`` puts the working directory first on sys.path: run from ``src`` so
        # that its package, not a checkout in the caller's directory, is imported.
        cwd=src or None,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--burst", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1, help="synth seed (the issue's scenario: 1)")
    ap.add_argument("--scaling", default="1000,5000,10000,20000")
    ap.add_argument("--scaling-duration", default="10m")
    ap.add_argument("--bucket-ms", type=float, default=100.0)
    ap.add_argument("--short-s", type=float, default=60.0)
    ap.add_argument("--append-docs", action="store_true")
    ap.add_argument("--baseline-src", default=None, help="directory with an earlier tracesim")
    ap.add_argument("--skip-short", action="store_true", help="no waves vs per-request runs")
    args = ap.parse_args()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "standard"
        t0 = time.perf_counter()
        synth(trace, args.nodes, args.duration, args.burst, args.seed)
        synth_s = time.perf_counter() - t0
        full = run(trace, "current", args.bucket_ms)
        base = run(trace, "none", args.bucket_ms)
        ratio = full["wall_s"] / base["wall_s"]
        print(f"standard scenario ({args.nodes} nodes, {args.duration}; synth {synth_s:.1f} s)")
        print(f"  all models : {json.dumps(full)}")
        print(f"  placement  : {json.dumps(base)}")
        print(f"  ratio models / placement-only wall time: x{ratio:.2f}")
        old = old_base = None
        if args.baseline_src:
            old = run(trace, "current", args.bucket_ms, src=args.baseline_src)
            old_base = run(trace, "none", args.bucket_ms, src=args.baseline_src)
            print(f"  earlier code, all models: {json.dumps(old)}")
            print(f"  earlier code, placement : {json.dumps(old_base)}")
            print(
                f"  speed-up vs earlier code: all models x{old['wall_s'] / full['wall_s']:.2f} "
                f"(peak RSS {old['rss_mib']:.0f} -> {full['rss_mib']:.0f} MiB), placement only "
                f"x{old_base['wall_s'] / base['wall_s']:.2f}"
            )
        short_w = short_0 = None
        speedup = math.nan
        if not args.skip_short:
            short_w = run(trace, "current", args.bucket_ms, args.short_s)
            short_0 = run(trace, "current", 0.0, args.short_s)
            speedup = short_0["wall_s"] / short_w["wall_s"]
            print(
                f"  first {args.short_s:g} s, waves of {args.bucket_ms:g} ms: {json.dumps(short_w)}"
            )
            print(f"  first {args.short_s:g} s, per-request path: {json.dumps(short_0)}")
            print(f"  speed-up of waves over the per-request path: x{speedup:.1f}")
        lines += [
            f"Run of {date.today().isoformat()} ({platform.machine()}, Python "
            f"{platform.python_version()}), `python benchmarks/bench_scenario.py "
            f"--bucket-ms {args.bucket_ms:g}`:",
            "",
            "| run | wall (load incl.) | sim s / wall s | peak RSS | requests | notes |",
            "| --- | ---: | ---: | ---: | ---: | --- |",
            f"| {args.nodes:,} nodes, {args.duration}, burst {args.burst:,}, profile current "
            f"| {full['wall_s']:.1f} s | {full['sim_s'] / full['wall_s']:.0f} "
            f"| {full['rss_mib']:.0f} MiB | {full['requests']:,} "
            f"| bottleneck {full['bottleneck']}; scheduling p99 {full['sched_p99_s']:.2f} s; "
            f"startup p99 {full['startup_p99_s']} s; etcd {full['db_mib']:.0f} MiB |",
            f"| same trace, placement only (baseline) | {base['wall_s']:.1f} s "
            f"| {base['sim_s'] / base['wall_s']:.0f} | {base['rss_mib']:.0f} MiB | - "
            f"| ratio all models / baseline: x{ratio:.2f} |",
        ]
        for name, r, ref in (("all models", old, full), ("placement only", old_base, base)):
            if r is not None:
                lines.append(
                    f"| earlier code ({args.baseline_src}), {name} | {r['wall_s']:.1f} s "
                    f"| {r['sim_s'] / r['wall_s']:.0f} | {r['rss_mib']:.0f} MiB "
                    f"| {r['requests'] or '-'} "
                    f"| this code x{r['wall_s'] / ref['wall_s']:.2f} faster |"
                )
        if short_w is not None and short_0 is not None:
            lines += [
                f"| first {args.short_s:g} s, waves of {args.bucket_ms:g} ms | "
                f"{short_w['wall_s']:.1f} s | {short_w['sim_s'] / short_w['wall_s']:.0f} "
                f"| {short_w['rss_mib']:.0f} MiB | {short_w['requests']:,} | |",
                f"| first {args.short_s:g} s, per-request path (W = 0) | {short_0['wall_s']:.1f} s "
                f"| {short_0['sim_s'] / short_0['wall_s']:.0f} | {short_0['rss_mib']:.0f} MiB "
                f"| {short_0['requests']:,} | waves x{speedup:.1f} faster |",
            ]
        lines += [
            "",
            "| nodes | span | wall | sim s / wall s | peak RSS |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for n in [int(x) for x in args.scaling.split(",") if x]:
            tr = Path(tmp) / f"s{n}"
            synth(tr, n, args.scaling_duration, 0, args.seed)
            r = run(tr, "current", args.bucket_ms)
            rate = r["sim_s"] / r["wall_s"]
            print(f"  {n:>6} nodes: {rate:.0f} sim s / wall s ({json.dumps(r)})")
            lines.append(
                f"| {n:,} | {args.scaling_duration} | {r['wall_s']:.1f} s | {rate:.0f} "
                f"| {r['rss_mib']:.0f} MiB |"
            )
    if args.append_docs:
        doc = ROOT / "docs" / "performance.md"
        with doc.open("a") as f:
            f.write("\n" + "\n".join(lines) + "\n")
        print(f"appended to {doc}")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
