"""Benchmark: `tracesim scale` wall time and peak memory, against plain I/O of the same rows.

A synthetic trace of ``--nodes`` nodes over ``--duration`` is scaled to each of ``--targets``.
Baselines, measured in the same run on the same machine:

- **copy**: read the scaled trace and write its rows again through the same TraceWriter (the
  I/O floor: what any transform producing that many rows pays);
- **synth**: generate a trace of the target size directly with ``tracesim synth``.

Every measured step runs in a fresh subprocess so its peak RSS is its own. With
``--append-doc`` the figures are appended under "## Scaling traces" in docs/performance.md (the
file is never rewritten).

Usage: python benchmarks/bench_scale.py [--nodes 1000] [--duration 1h]
                                        [--targets 10000,2500,300] [--append-doc]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "performance.md"
HEADING = "## Scaling traces (`benchmarks/bench_scale.py`)"

_MEASURE = """
import json, resource, sys, time
start = time.perf_counter()
{body}
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"wall_s": wall, "peak_rss_mib": peak / 1024, **result}}))
"""

SCALE = """
from tracesim.trace.transform import scale
facts = scale(sys.argv[1], int(sys.argv[2]), sys.argv[3], seed=1)
result = {"rows": facts["rows"], "clones": facts["clones"]}
"""

COPY = """
from tracesim.trace import TraceWriter, open_trace
t = open_trace(sys.argv[1])
rows = 0
with TraceWriter(sys.argv[2], "derived", journal=False, rotate_bytes=64 * 2**20) as w:
    for table in t.scan():
        for i0 in range(0, table.num_rows, 250_000):
            w.write_table(table.slice(i0, 250_000))
        rows += table.num_rows
result = {"rows": rows}
"""

SYNTH = """
from tracesim.sources.synth import SynthConfig, synthesize
from tracesim.trace import open_trace
cfg = SynthConfig(nodes=int(sys.argv[1]), duration_s=float(sys.argv[2]), seed=1)
synthesize(cfg, sys.argv[3])
result = {"rows": open_trace(sys.argv[3]).count()}
"""


def measure(body: str, *args: str) -> dict:
    code = _MEASURE.format(body=body)
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_duration_s(text: str) -> float:
    from tracesim.cli.options import parse_duration_s as parse

    return parse(text)


def run(nodes: int, duration: str, targets: list[int]) -> list[dict]:
    duration_s = parse_duration_s(duration)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp) / "parent"
        made = measure(SYNTH, str(nodes), str(duration_s), str(parent))
        print(f"parent: synth {nodes} nodes {duration}: {made['rows']:,} rows")
        for target in targets:
            out = Path(tmp) / f"scaled-{target}"
            s = measure(SCALE, str(parent), str(target), str(out))
            c = measure(COPY, str(out), str(Path(tmp) / f"copy-{target}"))
            row = {
                "target": target,
                "rows": s["rows"],
                "scale_s": s["wall_s"],
                "scale_rss_mib": s["peak_rss_mib"],
                "copy_s": c["wall_s"],
                "copy_rss_mib": c["peak_rss_mib"],
            }
            if target > nodes:
                direct = Path(tmp) / f"synth-{target}"
                d = measure(SYNTH, str(target), str(duration_s), str(direct))
                row["synth_s"] = d["wall_s"]
                row["synth_rows"] = d["rows"]
            results.append(row)
            print(json.dumps(row))
    return results


def table(nodes: int, duration: str, results: list[dict]) -> str:
    lines = [
        f"Run of {date.today().isoformat()} ({platform.machine()}, Python "
        f"{platform.python_version()}): parent `tracesim synth --nodes {nodes} --duration "
        f"{duration}`, seed 1.",
        "",
        "| target nodes | rows out | scale | rows/s | peak RSS | copy (I/O floor) | scale / copy "
        "| synth at target | scale / synth |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        synth = f"{r['synth_s']:.1f} s" if "synth_s" in r else "-"
        ratio = f"x{r['scale_s'] / r['synth_s']:.2f}" if "synth_s" in r else "-"
        lines.append(
            f"| {r['target']:,} | {r['rows']:,} | {r['scale_s']:.1f} s | "
            f"{r['rows'] / r['scale_s']:,.0f} | {r['scale_rss_mib']:,.0f} MiB | "
            f"{r['copy_s']:.1f} s ({r['copy_rss_mib']:,.0f} MiB) | "
            f"x{r['scale_s'] / r['copy_s']:.2f} | {synth} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def append_doc(text: str) -> None:
    """Append to docs/performance.md, adding the section heading the first time."""
    current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    with open(DOC, "a", encoding="utf-8") as fh:
        if HEADING not in current:
            fh.write(
                f"\n{HEADING}\n\n"
                "`tracesim scale` clones (or samples) nodes and workloads of a trace, vectorised "
                "over columns, one chunk of rows at a time. Target (issue 4): a 1-hour "
                "1,000-node trace scaled to 10,000 nodes well under a minute, bounded memory. "
                "Baselines of the same run: *copy* reads the scaled trace and writes the same "
                "rows again with the same writer (the I/O floor); *synth* generates the target "
                "size directly.\n"
            )
        fh.write("\n" + text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--duration", default="1h")
    parser.add_argument("--targets", default="10000,2500,300")
    parser.add_argument("--append-doc", action="store_true", help="Append to performance.md.")
    args = parser.parse_args()
    targets = [int(t) for t in args.targets.split(",") if t.strip()]
    started = time.perf_counter()
    results = run(args.nodes, args.duration, targets)
    text = table(args.nodes, args.duration, results)
    print(text)
    print(f"benchmark wall time {time.perf_counter() - started:.0f} s")
    if args.append_doc:
        append_doc(text)
        print(f"appended to {DOC}")


if __name__ == "__main__":
    main()
