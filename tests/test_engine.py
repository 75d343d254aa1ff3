"""The replay engine on small traces built with TraceWriter (and synth): lifecycle, backoff,
failure reasons, inconsistencies, and the correctness properties of issue 3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _row_trace import write_trace as _write_trace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracesim.models.registry import load_scheduler
from tracesim.sim.engine import BOUND, EngineConfig, Simulation, replay
from tracesim.sim.workload import load_workload
from tracesim.sources.synth import SynthConfig, synthesize

GiB = 2**30


def write_trace(path: Path, rows: list[dict]) -> Path:
    """Rows without a size get 1,000 bytes."""
    return _write_trace(path, rows, size_bytes=1000)


def node(t, name, cpu=4_000, mem=8, etype="LISTED", gpus=0, **kw) -> dict:
    return {
        "t": t,
        "kind": "Node",
        "event_type": etype,
        "name": name,
        "uid": f"uid-{name}",
        "alloc_cpu_milli": cpu,
        "alloc_memory_bytes": mem * GiB,
        "alloc_pods": kw.pop("pods", 110),
        "alloc_gpu_count": gpus,
        "gpu_model": "A100" if gpus else None,
        "ready": True,
        **kw,
    }


def pod(t, name, cpu=1_000, mem=1, etype="ADDED", node_name=None, phase="Pending", **kw):
    return {
        "t": t,
        "kind": "Pod",
        "event_type": etype,
        "namespace": "default",
        "name": name,
        "uid": kw.pop("uid", f"uid-{name}"),
        "node_name": node_name,
        "phase": phase,
        "scheduler_name": "default-scheduler",
        "priority": kw.pop("priority", 0),
        "req_cpu_milli": cpu,
        "req_memory_bytes": mem * GiB,
        "req_gpu_count": kw.pop("gpus", 0),
        "req_gpu_milli": kw.pop("gpu_milli", 0),
        **kw,
    }


def run(path: Path, scheduler: str = "kube-default", seed: int = 0, **cfg):
    sim = Simulation(
        load_workload(str(path)), load_scheduler(scheduler), seed=seed, config=EngineConfig(**cfg)
    )
    return sim, sim.run()


def test_lifecycle_initial_binding_scheduling_and_release(tmp_path):
    rows = [
        node(0, "n0"),
        node(0, "n1"),
        pod(0, "old", cpu=3_000, etype="LISTED", node_name="n1", phase="Running"),
        pod(5, "new", cpu=2_000),
        pod(8, "new", cpu=2_000, etype="MODIFIED", node_name="n1", phase="Succeeded"),
        pod(9, "new", cpu=2_000, etype="DELETED", node_name="n1", phase="Succeeded"),
        pod(10, "last"),
    ]
    r = replay(str(write_trace(tmp_path / "t", rows)), seed=1)
    pods = r.pods.set_index("name")
    assert pods.loc["old", "initial"] and pods.loc["old", "node"] == "n1"
    # "new" ignores its recorded node: n0 is the only node with 2 free cores.
    assert pods.loc["new", "node"] == "n0" and not pods.loc["new", "initial"]
    assert pods.loc["new", "created_s"] == 5 and pods.loc["new", "bound_s"] == 5
    assert pods.loc["new", "released_s"] == 8 and pods.loc["new", "deleted_s"] == 9
    assert (pods["state"] == "bound").all()
    assert r.summary["pods"] == {
        "total": 3,
        "bound": 3,
        "pending": 0,
        "failed": 0,
        "deleted_pending": 0,
        "initial": 1,
    }
    ts = r.timeseries
    assert (ts["overcommitted_nodes"] == 0).all()
    assert ts["cpu_used_milli"].iloc[-1] == 3_000 + 1_000


def test_unfit_pod_fails_with_a_reason_and_does_not_crash(tmp_path):
    rows = [
        node(0, "n0"),
        node(0, "g0", gpus=2, taints=["nvidia.com/gpu=present:NoSchedule"]),
        pod(1, "huge", cpu=64_000),
    ]
    r = replay(str(write_trace(tmp_path / "t", rows)))
    p = r.pods.iloc[0]
    assert p["state"] == "failed" and p["attempts"] >= 1
    assert p["reason"] == (
        "0/2 nodes are available: 1 Insufficient cpu, "
        "1 node(s) had untolerated taint {nvidia.com/gpu: present}."
    )
    assert r.summary["top_failure_reasons"] == {p["reason"]: 1}


def test_backoff_timing_1_2_4_8_10_10(tmp_path):
    rows = [node(0, "n0", cpu=1_000), pod(1, "p", cpu=2_000)]
    # The node changes every 0.25 s, so the pod leaves the pool at once after each failure
    # and its attempts are spaced by its backoff alone.
    rows += [
        node(0.25 * i, "n0", cpu=1_000, etype="MODIFIED", labels=[f"tick={i % 2}"])
        for i in range(1, 160)
    ]
    sim = Simulation(
        load_workload(str(write_trace(tmp_path / "t", rows))), load_scheduler("kube-default")
    )
    attempts: list[float] = []
    schedule = sim.scheduler.schedule

    def logged(req):
        attempts.append(sim.env.now)
        return schedule(req)

    sim.scheduler.schedule = logged
    out = sim.run()
    assert attempts[:7] == [1, 2, 4, 8, 16, 26, 36]
    assert np.diff(attempts[:7]).tolist() == [1, 2, 4, 8, 10, 10]
    assert out.attempts[0] == len(attempts)


def test_pending_pod_waits_in_the_pool_until_a_node_joins(tmp_path):
    rows = [
        node(0, "n0", cpu=1_000),
        pod(1, "low", cpu=2_000, priority=0),
        pod(2, "high", cpu=2_000, priority=1000),
        node(100, "n1", cpu=2_500, etype="ADDED"),
    ]
    r = replay(str(write_trace(tmp_path / "t", rows)))
    pods = r.pods.set_index("name")
    # Without cluster changes both stay in the pool (no retry before 100 s); when n1 joins,
    # the higher priority pod gets it and the other fails again.
    assert pods.loc["high", "bound_s"] == 100 and pods.loc["high", "node"] == "n1"
    assert pods.loc["high", "attempts"] == 2
    assert pods.loc["low", "state"] == "failed"
    assert r.summary["scheduling_latency_s"]["p50"] == 98


def test_cycle_time_and_bind_latency(tmp_path):
    rows = [node(0, "n0"), pod(1, "a"), pod(1, "b"), pod(10, "c")]
    _, out = run(write_trace(tmp_path / "t", rows), cycle_time_s=0.5, bind_latency_s=2.0)
    # One cycle at a time: a 1.0-1.5, b 1.5-2.0; binding 2 s after each cycle ends.
    assert out.scheduled_s.tolist()[:2] == [1.5, 2.0]
    assert out.bound_s.tolist()[:2] == [3.5, 4.0]
    assert np.isnan(out.scheduled_s[2])  # its cycle would end after the trace


def test_inconsistent_trace_is_counted_not_fatal(tmp_path):
    rows = [
        node(0, "n0"),
        pod(0, "ghost", etype="LISTED", node_name="nowhere", phase="Running"),
        pod(1, "gone", etype="DELETED"),
        pod(2, "twice"),
        pod(3, "twice"),
        node(4, "never", etype="DELETED"),
    ]
    r = replay(str(write_trace(tmp_path / "t", rows)))
    issues = r.summary["inconsistencies"]
    assert issues == {
        "delete_before_create": 1,
        "delete_unknown_node": 1,
        "duplicate_uid": 1,
        "pod_on_unknown_node": 1,
    }
    pods = r.pods.set_index("name")
    assert pods.loc["ghost", "state"] == "bound" and pods.loc["ghost", "node"] == "n0"
    assert "gone" not in pods.index


def test_window_and_dilation(tmp_path):
    rows = [node(0, "n0")]
    rows += [pod(10 * i, f"p{i}", cpu=100) for i in range(10)]
    rows += [pod(10 * i + 5, f"p{i}", cpu=100, etype="DELETED", node_name="n0") for i in range(3)]
    trace = str(write_trace(tmp_path / "t", rows))
    r = replay(trace, window=(30.0, 60.0))
    pods = r.pods.set_index("name")
    # p0..p2 were deleted before 30 s; p3..p5 exist in [30, 60); p3 created at 30 -> 0.
    assert sorted(pods.index) == ["p3", "p4", "p5"]
    assert pods["created_s"].tolist() == [0, 10, 20]
    assert r.summary["simulated_s"] == 30
    r2 = replay(trace, dilation=2.0)
    assert r2.summary["simulated_s"] == 45  # the trace spans 90 s
    assert r2.pods.set_index("name").loc["p9", "created_s"] == 45


def test_gpu_policies_run_in_replay(tmp_path):
    rows = [node(0, f"g{i}", cpu=32_000, mem=64, gpus=2) for i in range(3)]
    rows += [pod(1 + i, f"p{i}", gpus=1, gpu_milli=500 if i % 2 else 1000) for i in range(10)]
    trace = write_trace(tmp_path / "t", rows)
    for name in ("fgd", "bestfit", "kube-default"):
        sim, out = run(trace, name)
        free = sim.cluster.gpu_free_milli[: sim.cluster.n_nodes]
        assert (free >= 0).all() | (free == -1).all()
        assert ((free >= -1) & (free <= 1000)).all()
        placed = out.state == BOUND
        assert placed.sum() >= 4
        gpu_used = sum(1000 - x for x in free.ravel().tolist() if x >= 0)
        per_gpu = load_workload(str(trace)).gpu_milli
        assert gpu_used == sum(int(per_gpu[i]) for i in np.flatnonzero(placed))


def _random_trace(path: Path, data) -> Path:
    n_nodes = data.draw(st.integers(1, 4))
    rows = [
        node(0, f"n{i}", cpu=data.draw(st.integers(500, 4_000)), gpus=i % 2) for i in range(n_nodes)
    ]
    for i in range(data.draw(st.integers(1, 25))):
        t = data.draw(st.floats(0, 50))
        cpu = data.draw(st.integers(0, 2_500))
        gpus = data.draw(st.integers(0, 1))
        rows.append(pod(t, f"p{i}", cpu=cpu, mem=1, gpus=gpus, gpu_milli=1000 * gpus))
        life = data.draw(st.one_of(st.none(), st.floats(0.1, 40)))
        if life is not None:
            rows.append(pod(t + life, f"p{i}", cpu=cpu, mem=1, etype="DELETED", gpus=gpus))
    if data.draw(st.booleans()):
        rows.append(node(data.draw(st.floats(0, 60)), "n0", etype="DELETED"))
    return write_trace(path, rows)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_properties_no_overcommit_exact_release_final_states(tmp_path, data):
    trace = _random_trace(tmp_path / "t", data)
    sim = Simulation(load_workload(str(trace)), load_scheduler("kube-default"), seed=3)
    c = sim.cluster
    # Instrument assign: after every placement no node or GPU is over-committed.
    assign = c.assign

    def checked(node_i, req, gpus=()):
        assign(node_i, req, gpus)
        n = c.n_nodes
        assert (c.used_cpu_milli[:n] <= c.alloc_cpu_milli[:n]).all()
        assert (c.used_memory_bytes[:n] <= c.alloc_memory_bytes[:n]).all()
        assert (c.used_pods[:n] <= c.alloc_pods[:n]).all()
        assert (c.gpu_free_milli[:n] >= -1).all()

    c.assign = checked
    out = sim.run()
    # Resources held at the end are exactly those of the pods still holding them.
    holding = np.flatnonzero(out.state == BOUND)
    w = sim.w
    for res, col in (("used_cpu_milli", w.cpu_milli), ("used_memory_bytes", w.memory_bytes)):
        expect = np.zeros(c.n_nodes, np.int64)
        np.add.at(expect, out.node[holding], col[holding])
        assert getattr(c, res)[: c.n_nodes].tolist() == expect.tolist()
    assert c.used_pods[: c.n_nodes].sum() == len(holding)
    from tracesim.sim.results import build_result

    res = build_result(out, scheduler="kube-default", seed=3, trace=str(trace))
    pods = res.pods
    assert set(pods["state"]) <= {"bound", "pending", "failed", "deleted_pending"}
    failed = pods[pods["state"] == "failed"]
    assert failed["reason"].notna().all()
    assert failed["reason"].str.startswith("0/").all()
    assert pods.loc[pods["state"] == "deleted_pending", "deleted_s"].notna().all()
    assert (res.timeseries["overcommitted_nodes"] == 0).all()


def test_replay_leaves_the_garbage_collector_as_it_found_it(tmp_path):
    # The run switches the cyclic collector off (speed); the caller's setting comes back,
    # also when the caller had it off.
    import gc

    trace = synthesize(SynthConfig(nodes=10, duration_s=120, seed=1), tmp_path / "synth")
    assert gc.isenabled()
    during: list[bool] = []
    replay(str(trace), seed=1, progress=lambda _f: during.append(gc.isenabled()))
    assert during and not any(during)
    assert gc.isenabled()
    gc.disable()
    try:
        replay(str(trace), seed=1)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_same_trace_config_seed_give_identical_pods_parquet(tmp_path):
    trace = synthesize(
        SynthConfig(nodes=40, duration_s=900, seed=5, resources=("pods", "nodes"), burst_pods=300),
        tmp_path / "synth",
    )
    outs = []
    for i in range(2):
        r = replay(str(trace), seed=7, settings={"percentage_of_nodes_to_score": "30"})
        outs.append(r.write(tmp_path / f"out{i}"))
    a, b = ((o / "pods.parquet").read_bytes() for o in outs)
    assert a == b
    other = replay(str(trace), seed=8).write(tmp_path / "other")
    assert (other / "pods.parquet").read_bytes() != a
    assert (outs[0] / "summary.json").is_file()


def test_written_tables_read_back_as_the_result_frames(tmp_path):
    """Parquet encodings chosen for speed (no dictionary for float columns, no statistics
    for categorical ones) keep every value: each table reads back equal to its frame."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    trace = synthesize(
        SynthConfig(nodes=30, duration_s=600, seed=3, burst_pods=200), tmp_path / "synth"
    )
    res = replay(str(trace), seed=2, profile="current")
    out = res.write(tmp_path / "out")
    frames = {"pods": res.pods, "timeseries": res.timeseries, **res.tables}
    assert len(frames["requests"]) > 1000 and res.pods["reason"].isna().any()
    for name, df in frames.items():
        want = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
        back = pq.read_table(out / f"{name}.parquet")
        # Categorical columns read back with wider dictionary indices: same values.
        assert back.schema.names == want.schema.names, name
        assert back.cast(want.schema).equals(want), name
    meta = pq.ParquetFile(out / "requests.parquet").metadata.row_group(0)
    stats = {meta.column(i).path_in_schema: meta.column(i).statistics for i in range(7)}
    assert stats["latency_s"] is not None and stats["verb"] is None


@pytest.mark.parametrize("name", ["kube-default", "random"])
def test_sample_trace_replays_end_to_end(name):
    sample = Path(__file__).resolve().parents[1] / "traces" / "sample"
    r = replay(str(sample), name, seed=1, window=(0.0, 600.0))
    s = r.summary
    assert s["pods"]["total"] > 2000 and s["inconsistencies"] == {}
    assert (
        s["pods"]["bound"]
        + s["pods"]["pending"]
        + s["pods"]["failed"]
        + s["pods"]["deleted_pending"]
        == s["pods"]["total"]
    )
    assert s["overcommitted_node_samples"] == 0
    assert len(r.timeseries) == 61  # every 10 s over 600 s, and the end
