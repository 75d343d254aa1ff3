"""``tracesim record`` against a fault-injecting test server: every event accounted for.

Each test starts :class:`FaultServer`, records while a script changes objects and injects a
fault, then compares what the server's log says it sent with what the trace holds: no loss,
no duplicates, order per resource, and the fault counted in the manifest.
"""

from __future__ import annotations

import asyncio
import json
import stat
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_server import Fault, FaultServer, kubeconfig, lease, node, pod

from tracesim.errors import TracesimError
from tracesim.sources.record import Recorder, RecordOptions, load_auth
from tracesim.sources.record.client import Backoff
from tracesim.trace import open_trace

Script = Callable[[Recorder, FaultServer], Awaitable[None]]


@pytest.fixture
def server():
    srv = FaultServer(tokens={"t1"}, bookmark_interval_s=0.2)
    srv.start()
    yield srv
    srv.stop()


async def wait_until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError("timed out waiting for the recorder")
        await asyncio.sleep(0.01)


def caught_up(rec: Recorder, rv: int) -> Callable[[], bool]:
    """True once every resource recorder has seen resourceVersion ``rv`` (events/bookmarks)."""
    return lambda: all(
        r.rv is not None and int(r.rv) >= rv for r in rec.recorders if r.stats.status != "failed"
    )


def record(
    server: FaultServer,
    tmp_path: Path,
    script: Script,
    *,
    resources: tuple[str, ...] = ("pods",),
    kubeconfig_text: str | None = None,
    **options: Any,
) -> tuple[Recorder, Any]:
    kc = tmp_path / "kubeconfig"
    kc.write_text(kubeconfig_text or kubeconfig(server.url))
    opts = {
        "resources": resources,
        "flush_interval_s": 0.05,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "watch_timeout_s": (30.0, 30.0),
        "seed": 1,
        **options,
    }
    rec = Recorder(load_auth(str(kc)), tmp_path / "trace", RecordOptions(**opts))

    async def main() -> None:
        task = asyncio.create_task(rec.run())
        await asyncio.wait(
            [task, asyncio.create_task(rec.started.wait())], return_when="FIRST_COMPLETED"
        )
        if task.done():
            task.result()
        await wait_until(lambda: all(s.status in ("watching", "failed") for s in rec.stats))
        await script(rec, server)
        rec.stop.set()
        await task

    asyncio.run(main())
    return rec, open_trace(tmp_path / "trace")


def watch_rows(trace: Any, kind: str) -> list[tuple[str, str, int]]:
    df = trace.events(kinds=[kind], categorical=False)
    df = df[~df["event_type"].isin(["LISTED", "GAP"]) & ~df["relist"].astype(bool)]
    return [
        (e, n, int(rv))
        for e, n, rv in zip(df.event_type, df.name, df.resource_version, strict=True)
    ]


def server_rows(server: FaultServer, plural: str, after_rv: int) -> list[tuple[str, str, int]]:
    out = []
    for e in server.log(plural):
        if e.rv > after_rv:
            obj = json.loads(e.line)["object"]
            out.append((e.type, obj["metadata"]["name"], e.rv))
    return out


def replayed_state(trace: Any, kind: str) -> dict[str, int]:
    """name -> resourceVersion after applying every row of ``kind`` in trace order."""
    state: dict[str, int] = {}
    df = trace.events(kinds=[kind], categorical=False)
    for etype, name, rv in zip(df.event_type, df.name, df.resource_version, strict=True):
        if etype == "GAP":
            continue
        if etype == "DELETED":
            state.pop(name, None)
        else:
            state[name] = int(rv)
    return state


def server_state(server: FaultServer, plural: str) -> dict[str, int]:
    return {k[1]: int(o["metadata"]["resourceVersion"]) for k, o in server.state(plural).items()}


def churn(server: FaultServer, n: int = 6) -> int:
    """Modify, delete and add pods; returns the last resourceVersion."""
    rv = 0
    for i in range(n):
        rv = server.apply("pods", "MODIFIED", pod(f"p{i % 4}", node="n2", cpu=f"{200 + i}m"))
    server.apply("pods", "DELETED", pod("p3", node="n2"))
    rv = server.apply("pods", "ADDED", pod("p-new", node="n1"))
    return rv


def seed_pods(server: FaultServer, n: int = 4) -> int:
    for i in range(n):
        rv = server.apply("pods", "ADDED", pod(f"p{i}", node="n1"))
    return rv


def assert_exact(trace: Any, server: FaultServer, rv0: int) -> None:
    """No loss, no duplicates, server order; and the replayed state is the server's."""
    assert watch_rows(trace, "Pod") == server_rows(server, "pods", rv0)
    assert replayed_state(trace, "Pod") == server_state(server, "pods")


# -- the happy path --------------------------------------------------------------------------
def test_paginated_list_then_watch_accounts_for_every_event(server, tmp_path):
    seed_pods(server, 10)
    rv0 = server.rv

    async def script(rec, srv):
        await wait_until(caught_up(rec, churn(srv)))

    _, trace = record(server, tmp_path, script, page_limit=3)
    listed = trace.events(kinds=["Pod"], event_types=["LISTED"], categorical=False)
    assert sorted(listed.name) == sorted(f"p{i}" for i in range(10))
    assert (listed.ts == listed.ts.iloc[0]).all()  # stamped when the LIST completed
    continues = [r for r in server.requests if "continue" in r["params"]]
    assert len(continues) == 3  # 10 objects, pages of 3
    assert_exact(trace, server, rv0)
    assert trace.complete
    stats = trace.manifest["source"]["resources"]["pods"]
    assert stats["events"] == len(trace.events(kinds=["Pod"]))
    assert stats["listed"] == 10 and stats["errors"] == 0 and stats["reconnects"] == 0
    assert stats["bytes"] == int(trace.events(kinds=["Pod"]).size_bytes.sum())
    # ts never goes backwards, and seq orders the rows
    ts = trace.events(columns=["ts"]).ts
    assert ts.is_monotonic_increasing


def test_watch_sizes_are_the_bytes_of_the_object_as_received(server, tmp_path):
    rv0 = server.rv

    async def script(rec, srv):
        await wait_until(caught_up(rec, churn(srv, 2)))

    _, trace = record(server, tmp_path, script)
    df = trace.events(kinds=["Pod"], categorical=False)
    wire = {
        e.rv: len(json.dumps(json.loads(e.line)["object"], separators=(",", ":")))
        for e in server.log("pods")
        if e.rv > rv0
    }
    for rv, size in zip(df.resource_version, df.size_bytes, strict=True):
        assert size == wire[int(rv)]


def test_several_resources_share_one_time_ordered_trace(server, tmp_path):
    server.apply("nodes", "ADDED", node("n1"))
    rv0 = server.rv

    async def script(rec, srv):
        for i in range(20):
            srv.apply("leases", "MODIFIED" if i else "ADDED", lease("n1", "n1"))
            srv.apply("pods", "ADDED", pod(f"q{i}"))
        await wait_until(caught_up(rec, srv.rv))

    _, trace = record(server, tmp_path, script, resources=("pods", "nodes", "leases"))
    assert watch_rows(trace, "Lease") == [
        (t, n, rv) for t, n, rv in server_rows(server, "leases", rv0)
    ]
    assert watch_rows(trace, "Pod") == server_rows(server, "pods", rv0)
    df = trace.events(columns=["ts", "seq"])
    assert df.ts.is_monotonic_increasing and df.seq.is_monotonic_increasing
    assert trace.manifest["cluster"]["server_version"] == "v1.30.0-fault"


# -- faults ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["cut", "malformed"])
def test_broken_stream_resumes_from_the_last_resource_version(server, tmp_path, fault):
    seed_pods(server)
    rv0 = server.rv

    async def script(rec, srv):
        srv.add_fault(Fault(fault, "pods", after=2))
        await wait_until(caught_up(rec, churn(srv)))

    _, trace = record(server, tmp_path, script)
    assert_exact(trace, server, rv0)
    stats = trace.manifest["source"]["resources"]["pods"]
    assert stats["reconnects"] == 1 and stats["gaps"] == 0
    category = "connection" if fault == "cut" else "stream"
    assert stats["error_counts"] == {category: 1}
    watches = [r for r in server.requests if r["params"].get("watch") == "true"]
    # the resumed watch asked for the resourceVersion of the second event
    second = server_rows(server, "pods", rv0)[1][2]
    assert int(watches[1]["params"]["resourceVersion"]) >= second
    assert trace.events(event_types=["GAP"]).empty


@pytest.mark.parametrize("how", ["http", "event"])
def test_gone_relists_marks_a_gap_and_emits_the_difference(tmp_path, how):
    srv = FaultServer(tokens={"t1"}, gone_as_event=(how == "event"))
    srv.start()
    try:
        seed_pods(srv)
        rv0 = srv.rv

        async def script(rec, s):
            # The stream drops at the first change; by the time the recorder resumes (this
            # script does not yield until then), the server has compacted that history away.
            s.add_fault(Fault("cut", "pods", after=0))
            last = churn(s)
            s.compact()
            await wait_until(lambda: rec.stats[0].relists == 1)
            await wait_until(caught_up(rec, last))

        _, trace = record(srv, tmp_path, script)
    finally:
        srv.stop()
    df = trace.events(kinds=["Pod"], categorical=False)
    gap = df[df.event_type == "GAP"]
    assert len(gap) == 1 and "410" in gap.detail.iloc[0]
    after = df[df.seq > gap.seq.iloc[0]]
    assert after.relist.all() and (after.ts == gap.ts.iloc[0]).all()
    changes = dict(zip(after.name, after.event_type, strict=True))
    assert changes == {"p0": "MODIFIED", "p1": "MODIFIED", "p2": "MODIFIED", "p3": "DELETED"} | {
        "p-new": "ADDED"
    }
    deleted = after[after.event_type == "DELETED"].iloc[0]
    assert deleted.node_name == "n1"  # the last state the recorder saw
    # watch rows before the gap are a prefix of the server log, no duplicates
    sent = server_rows(srv, "pods", rv0)
    got = watch_rows(trace, "Pod")
    assert got == sent[: len(got)]
    assert replayed_state(trace, "Pod") == server_state(srv, "pods")
    stats = trace.manifest["source"]["resources"]["pods"]
    assert stats["gaps"] == 1 and stats["relists"] == 1 and stats["error_counts"]["gone"] >= 1


def test_429_waits_for_retry_after(server, tmp_path):
    seed_pods(server)
    rv0 = server.rv

    async def script(rec, srv):
        srv.add_fault(Fault("http", "pods", on="watch", status=429, retry_after=1))
        srv.add_fault(Fault("cut", "pods", after=1))
        await wait_until(caught_up(rec, churn(srv)))

    _, trace = record(server, tmp_path, script)
    assert_exact(trace, server, rv0)
    watches = [r for r in server.requests if r["params"].get("watch") == "true"]
    i = next(i for i, r in enumerate(watches) if r["status"] == 429)
    assert watches[i + 1]["t"] - watches[i]["t"] >= 1.0
    stats = trace.manifest["source"]["resources"]["pods"]
    assert stats["error_counts"]["http_429"] == 1


def test_500s_back_off_and_recover_on_list_and_watch(server, tmp_path):
    seed_pods(server)
    server.add_fault(Fault("http", "pods", on="list", status=500, times=2))
    rv0 = server.rv

    async def script(rec, srv):
        srv.add_fault(Fault("http", "pods", on="watch", status=503, times=3))
        srv.add_fault(Fault("cut", "pods", after=1))
        await wait_until(caught_up(rec, churn(srv)))

    _, trace = record(server, tmp_path, script)
    assert_exact(trace, server, rv0)
    stats = trace.manifest["source"]["resources"]["pods"]
    assert stats["error_counts"]["http_500"] == 2
    assert stats["error_counts"]["http_503"] == 3
    assert stats["reconnects"] == 4  # the cut, then three 503s


def test_slow_server_trickling_bytes(server, tmp_path):
    seed_pods(server)
    rv0 = server.rv

    async def script(rec, srv):
        srv.add_fault(Fault("slow", "pods", delay_s=0.01))
        await wait_until(caught_up(rec, churn(srv, 3)))

    _, trace = record(server, tmp_path, script)
    assert_exact(trace, server, rv0)
    assert trace.manifest["source"]["resources"]["pods"]["errors"] == 0


def test_server_side_watch_timeout_just_rewatches(server, tmp_path):
    seed_pods(server)
    rv0 = server.rv

    async def script(rec, srv):
        await asyncio.sleep(1.2)  # the server ends the 1 s watch
        await wait_until(caught_up(rec, churn(srv)))

    _, trace = record(server, tmp_path, script, watch_timeout_s=(1.0, 1.0))
    assert_exact(trace, server, rv0)
    stats = trace.manifest["source"]["resources"]["pods"]
    assert stats["rewatches"] >= 1 and stats["errors"] == 0 and stats["reconnects"] == 0


def test_expired_token_is_renewed_through_the_exec_plugin(tmp_path):
    old, new = "tok-OLD-0123456789abcdef", "tok-NEW-fedcba9876543210"
    token_file = tmp_path / "token"
    token_file.write_text(old)
    plugin = tmp_path / "cred-plugin"
    plugin.write_text(
        f"#!{sys.executable}\nimport json, pathlib\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1',"
        " 'kind': 'ExecCredential',"
        f" 'status': {{'token': pathlib.Path({str(token_file)!r}).read_text()}}}}))\n"
    )
    plugin.chmod(plugin.stat().st_mode | stat.S_IEXEC)
    srv = FaultServer(tokens={old})
    srv.start()
    try:
        seed_pods(srv)
        rv0 = srv.rv

        async def script(rec, s):
            s.tokens = {new}  # the old token expires...
            token_file.write_text(new)  # ...and the plugin now hands out a new one
            s.add_fault(Fault("cut", "pods", after=1))
            await wait_until(caught_up(rec, churn(s)))

        _, trace = record(
            srv, tmp_path, script, kubeconfig_text=kubeconfig(srv.url, exec_command=[str(plugin)])
        )
    finally:
        srv.stop()
    assert_exact(trace, srv, rv0)
    assert [r["status"] for r in srv.requests].count(401) == 1
    stats = trace.manifest["source"]["resources"]["pods"]
    assert stats["status"] == "stopped" and stats["reconnects"] == 1
    # credentials reach neither the manifest nor the events
    blob = (tmp_path / "trace" / "manifest.json").read_text()
    blob += trace.events(categorical=False).to_json(date_format="iso")
    assert old not in blob and new not in blob


def test_rejected_credentials_stop_that_resource_with_a_clear_error(server, tmp_path):
    seed_pods(server)

    async def script(rec, srv):
        srv.tokens = {"other"}  # nothing the kubeconfig can produce
        srv.add_fault(Fault("cut", "pods", after=0))
        srv.apply("pods", "ADDED", pod("late"))
        await wait_until(lambda: rec.stats[0].status == "failed")

    server.apply("nodes", "ADDED", node("n1"))
    with pytest.raises(TracesimError, match="401 Unauthorized"):
        record(server, tmp_path, script)
    manifest = json.loads((tmp_path / "trace" / "manifest.json").read_text())
    assert manifest["status"] == "aborted"
    assert "401" in manifest["source"]["resources"]["pods"]["error"]


def test_forbidden_and_unknown_resources_do_not_stop_the_others(server, tmp_path):
    server.forbidden = {"secrets"}
    seed_pods(server)
    rv0 = server.rv
    reports: list[str] = []

    async def script(rec, srv):
        await wait_until(caught_up(rec, churn(srv)))

    kc = tmp_path / "kubeconfig"
    kc.write_text(kubeconfig(server.url))
    opts = RecordOptions(resources=("pods", "secrets", "widgets"), flush_interval_s=0.05, seed=0)
    rec = Recorder(load_auth(str(kc)), tmp_path / "trace", opts, report=reports.append)

    async def main():
        task = asyncio.create_task(rec.run())
        await rec.started.wait()
        await wait_until(lambda: rec.stats[0].status == "watching")
        await wait_until(lambda: rec.stats[1].status == "failed")
        await script(rec, server)
        rec.stop.set()
        await task

    asyncio.run(main())
    trace = open_trace(tmp_path / "trace")
    assert_exact(trace, server, rv0)
    res = trace.manifest["source"]["resources"]
    assert res["secrets"]["status"] == "failed" and "403 Forbidden" in res["secrets"]["error"]
    assert res["widgets"]["status"] == "failed" and "does not serve" in res["widgets"]["error"]
    assert trace.manifest["status"] == "complete"
    assert any(r.startswith("secrets: 403 Forbidden") for r in reports)
    assert any(r.startswith("widgets: the server does not serve") for r in reports)


def test_backoff_is_jittered_exponential_and_capped():
    import numpy as np

    b = Backoff(0.5, 4.0, np.random.default_rng(0))
    delays = [b.next_s() for _ in range(8)]
    for n, d in enumerate(delays):
        base = min(4.0, 0.5 * 2**n)
        assert 0.5 * base <= d < 1.5 * base
    assert len(set(delays)) == len(delays)  # jittered
    b.reset()
    assert b.next_s() < 0.75


def test_namespace_restricts_namespaced_resources_only(server, tmp_path):
    server.apply("nodes", "ADDED", node("n1"))
    server.apply("pods", "ADDED", pod("a0", ns="team-a"))
    server.apply("pods", "ADDED", pod("b0", ns="team-b"))

    async def script(rec, srv):
        srv.apply("pods", "ADDED", pod("a1", ns="team-a"))
        srv.apply("pods", "ADDED", pod("b1", ns="team-b"))
        await wait_until(caught_up(rec, srv.rv))

    _, trace = record(server, tmp_path, script, resources=("pods", "nodes"), namespace="team-a")
    pods = trace.events(kinds=["Pod"], categorical=False)
    assert list(zip(pods.event_type, pods.name, strict=True)) == [("LISTED", "a0"), ("ADDED", "a1")]
    assert trace.count(kinds=["Node"]) == 1
    paths = {r["path"] for r in server.requests}
    assert "/api/v1/namespaces/team-a/pods" in paths and "/api/v1/nodes" in paths
    assert trace.manifest["options"]["namespace"] == "team-a"
