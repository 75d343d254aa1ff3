"""Round trip: record from ``tracesim serve`` of a small trace; the recording is the trace.

The served trace has nodes, pods, leases and an event with changes over time. The recorder
lists and watches it while the test moves the server's clock through the whole trace; then
per kind the recorded LISTED rows are the served initial state, the recorded watch events are
the served events in the same order, and the typed columns are equal: no gap, no duplicate.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
serve = pytest.importorskip("tracesim.serve", reason="tracesim serve is not available")
from _serve_trace import T0_US, S, build_trace  # noqa: E402
from fault_server import kubeconfig  # noqa: E402

from tracesim.sources.record import Recorder, RecordOptions, load_auth  # noqa: E402
from tracesim.trace import open_trace  # noqa: E402

COLUMNS = [
    "kind",
    "event_type",
    "namespace",
    "name",
    "uid",
    "labels",
    "node_name",
    "phase",
    "req_cpu_milli",
    "req_memory_bytes",
    "alloc_cpu_milli",
    "ready",
    "lease_holder",
    "lease_renew_time",
]


class ManualClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def rows(trace, kind: str) -> list[tuple]:
    df = trace.events(kinds=[kind], columns=COLUMNS, categorical=False)
    out = []
    for rec in df.itertuples(index=False):
        out.append(
            tuple(tuple(v) if hasattr(v, "__len__") and not isinstance(v, str) else v for v in rec)
        )
    return out


def test_record_from_serve_equals_the_served_trace(tmp_path):
    source = open_trace(build_trace(tmp_path / "src", keep_raw=True))
    clock = ManualClock()
    player = serve.TracePlayer(source, time_fn=clock)
    srv = serve.ServerThread(player, bookmark_interval_s=0.1, max_tick_s=0.02).start()
    try:
        kc = tmp_path / "kc"
        kc.write_text(kubeconfig(srv.url, token=None))
        opts = RecordOptions(
            resources=("nodes", "pods", "leases", "events"), flush_interval_s=0.05, seed=0
        )
        rec = Recorder(load_auth(str(kc)), tmp_path / "rec", opts)
        expected = {k: len(source.events(kinds=[k])) for k in ("Node", "Pod", "Lease", "Event")}

        async def main():
            task = asyncio.create_task(rec.run())
            await rec.started.wait()
            t0 = time.monotonic()
            while not all(s.status == "watching" for s in rec.stats):
                assert time.monotonic() - t0 < 10
                await asyncio.sleep(0.01)
            clock.t = player.clock.wall_at(T0_US + 10 * S) + 1e-9  # play the whole trace
            while sum(s.events for s in rec.stats) < sum(expected.values()):
                assert time.monotonic() - t0 < 10, [s.events for s in rec.stats]
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # nothing more may arrive
            rec.stop.set()
            await task

        asyncio.run(main())
    finally:
        srv.stop()
    recorded = open_trace(tmp_path / "rec")
    for kind in expected:
        assert rows(recorded, kind) == rows(source, kind), kind
    assert recorded.events(event_types=["GAP"]).empty
    assert not recorded.events(categorical=False).relist.any()
    for stats in recorded.manifest["source"]["resources"].values():
        assert stats["errors"] == 0 and stats["duplicates_skipped"] == 0
