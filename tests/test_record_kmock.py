"""The recorder against a third-party emulator: ``kmock``'s KubernetesEmulator.

kmock serves no real resourceVersions (lists say ``"..."``, objects have none) and replays
every object as ADDED when a watch starts. The recorder must still record each change once:
it fingerprints objects by content, drops the replayed state, and treats a reconnect as a gap.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

kmock = pytest.importorskip("kmock", reason="kmock (PyPI) is not installed")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_server import kubeconfig, pod  # noqa: E402

from tracesim.sources.record import Recorder, RecordOptions, load_auth  # noqa: E402
from tracesim.trace import open_trace  # noqa: E402


async def _until(cond, timeout_s: float = 10.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout_s, "timed out waiting for the recorder"
        await asyncio.sleep(0.02)


def test_records_kmock_emulator_without_resource_versions(tmp_path):
    async def main():
        async with kmock.KubernetesEmulator() as k8s, kmock.Server(k8s) as srv:
            client = srv.client
            for i in range(3):
                await client.post("/api/v1/namespaces/default/pods", json=pod(f"p{i}"))
            kc = tmp_path / "kc"
            kc.write_text(kubeconfig(str(srv.url).rstrip("/"), token=None))
            opts = RecordOptions(resources=("pods",), flush_interval_s=0.05, seed=0)
            rec = Recorder(load_auth(str(kc)), tmp_path / "t", opts)
            task = asyncio.create_task(rec.run())
            await rec.started.wait()
            await _until(lambda: rec.stats[0].status == "watching")
            await _until(lambda: rec.stats[0].duplicates_skipped == 3)  # the replayed state
            await client.post("/api/v1/namespaces/default/pods", json=pod("p3"))
            await client.patch(
                "/api/v1/namespaces/default/pods/p0", json={"spec": {"nodeName": "n1"}}
            )
            await client.delete("/api/v1/namespaces/default/pods/p1")
            await _until(lambda: rec.stats[0].events >= 6)
            rec.stop.set()
            await task
            return rec

    asyncio.run(main())
    trace = open_trace(tmp_path / "t")
    df = trace.events(kinds=["Pod"], categorical=False)
    assert list(zip(df.event_type, df.name, strict=True)) == [
        ("LISTED", "p0"),
        ("LISTED", "p1"),
        ("LISTED", "p2"),
        ("ADDED", "p3"),
        ("MODIFIED", "p0"),
        ("DELETED", "p1"),
    ]
    assert df.resource_version.isna().all()  # kmock gives none, and none is invented
    assert df[df.event_type == "MODIFIED"].node_name.tolist() == ["n1"]
    stats = trace.manifest["source"]["resources"]["pods"]
    assert stats["errors"] == 0 and stats["duplicates_skipped"] == 3
    assert trace.complete
