"""``tracesim replay --profile``: the replay charged to the control-plane models (issue 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _row_trace import write_trace

from tracesim.models.params import load_profile
from tracesim.models.registry import load_scheduler
from tracesim.models.schedulers.base import num_feasible_nodes_to_find
from tracesim.sim.controlplane import CalibratedTiming
from tracesim.sim.engine import Simulation, replay
from tracesim.sim.workload import load_trace_writes, load_workload
from tracesim.sources.synth import SynthConfig, synthesize

GiB = 2**30


def node(t: float, name: str, cpu: int = 64_000) -> dict:
    return {
        "t": t,
        "kind": "Node",
        "event_type": "LISTED",
        "name": name,
        "uid": f"uid-{name}",
        "size_bytes": 15_000,
        "alloc_cpu_milli": cpu,
        "alloc_memory_bytes": 256 * GiB,
        "alloc_pods": 500,
        "alloc_gpu_count": 0,
        "ready": True,
    }


def pod(t: float, name: str, etype: str = "ADDED", node_name: str | None = None) -> dict:
    return {
        "t": t,
        "kind": "Pod",
        "event_type": etype,
        "namespace": "default",
        "name": name,
        "uid": f"uid-{name}",
        "size_bytes": 4_000,
        "node_name": node_name,
        "phase": "Running" if node_name else "Pending",
        "scheduler_name": "default-scheduler",
        "req_cpu_milli": 100,
        "req_memory_bytes": GiB // 4,
    }


def obj(t: float, kind: str, name: str, etype: str, size: int = 2_000) -> dict:
    return {
        "t": t,
        "kind": kind,
        "event_type": etype,
        "namespace": "default",
        "name": name,
        "uid": f"uid-{kind}-{name}",
        "size_bytes": size,
    }


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 nodes, 2 pods bound at the start, 20 created at 1..20 s, 10 of them deleted at
    30..39 s, a ConfigMap created/updated/deleted, 3 Events; the trace ends at 100 s."""
    rows = [node(0, f"n{i}") for i in range(4)]
    rows += [pod(0, f"old-{i}", "LISTED", node_name="n0") for i in range(2)]
    rows += [pod(1 + i, f"p{i}") for i in range(20)]
    rows += [{**pod(30 + i, f"p{i}", "DELETED"), "node_name": "n1"} for i in range(10)]
    rows += [
        obj(5, "ConfigMap", "cm", "ADDED"),
        obj(6, "ConfigMap", "cm", "MODIFIED", 3_000),
        obj(7, "ConfigMap", "cm", "DELETED"),
    ]
    rows += [obj(10 + i, "Event", f"ev{i}", "ADDED", 700) for i in range(3)]
    rows.append({**node(100, "n0"), "event_type": "MODIFIED"})  # the end of the trace
    return write_trace(tmp_path_factory.mktemp("cp") / "small", rows)


def simulate(trace: Path, profile: str = "current", overrides: tuple[str, ...] = (), seed=0):
    prof = load_profile(profile, list(overrides))
    w = load_workload(str(trace))
    writes = load_trace_writes(str(trace), start=w.start, duration_s=w.duration_s)
    sim = Simulation(w, load_scheduler("kube-default"), seed=seed, profile=prof, writes=writes)
    return sim, sim.run()


def test_conservation_of_requests_revisions_and_objects(small_trace: Path) -> None:
    sim, out = simulate(small_trace)
    cp = sim.cp
    acct = cp.requests_accounting()
    assert acct["in_flight_at_end"] == 0 and acct["waiting_for_bucket_at_end"] == 0
    assert acct["submitted"] == acct["completed"] + acct["rejected"] > 0
    assert acct["rejected"] == 0
    etcd = cp.etcd
    # Objects: preloaded pods + created - removed; the ConfigMap came and went; Events:
    # 3 from the trace + one per pod the model scheduled (none expired in 100 s).
    assert etcd.count("pods") == 2 + 20 - 10
    assert etcd.count("configmaps") == 0
    assert etcd.count("events") == 3 + 20 == cp.events_written + 3
    # Revisions: one per preloaded object (4 nodes, 4 leases, 2 pods) + one per good write.
    assert etcd.revision == 10 + etcd.writes_ok
    req = cp.metrics.requests_frame()
    req = req[req["verb"].astype(str) != "watch"]
    assert (req["reason"].astype(str) == "ok").sum() == etcd.writes_ok
    pairs = req.groupby(["verb", "resource"], observed=True).size()
    assert pairs[("create", "pods")] == 20
    assert pairs[("create", "pods/binding")] == 20
    assert pairs[("delete", "pods")] == 20  # 10 DELETE requests + 10 kubelet removals
    # Pod timeline: created (trace) < seen by the scheduler < binding acknowledged <
    # Running observed, with at least the kubelet's start latency in between.
    new = np.flatnonzero(~sim.w.preexisting)
    seen = np.asarray(cp.seen_s)[new]
    created, bound = out.created_s[new], out.bound_s[new]
    running = np.asarray(cp.running_s)[new]
    start = cp.profile.kubelet.pod_start_latency_s
    assert (created < seen).all() and (seen < bound).all()
    assert (running[:10] - bound[:10] >= start).all()
    assert np.isfinite(running[10:]).all()  # the pods that were not deleted started


def test_same_trace_profile_seed_give_identical_tables(tmp_path: Path, small_trace: Path) -> None:
    outs = []
    for k in range(2):
        res = replay(str(small_trace), profile="2019-era", seed=3)
        outs.append(res.write(tmp_path / f"o{k}"))
    for name in ("pods.parquet", "requests.parquet", "components.parquet", "etcd.parquet"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    a, b = (json.loads((o / "summary.json").read_text())["control_plane"] for o in outs)
    assert a == b


@pytest.fixture(scope="module")
def synth_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = SynthConfig(nodes=60, duration_s=600.0, seed=1, burst_pods=0)
    return synthesize(cfg, tmp_path_factory.mktemp("synth") / "t")


@pytest.mark.slow
def test_profiles_differ_in_the_expected_direction(synth_trace: Path) -> None:
    old = replay(str(synth_trace), profile="2019-era").summary["control_plane"]
    new = replay(str(synth_trace), profile="current").summary["control_plane"]
    # NodeStatus heartbeats (15 kB every 10 s) vs Leases: far more bytes and DB growth.
    assert old["etcd"]["bytes_written"] > 3 * new["etcd"]["bytes_written"]
    assert old["etcd"]["db_size_bytes"] > 1.5 * new["etcd"]["db_size_bytes"]
    old_lat = old["latency_by_request_s"]["update nodes"]["p50"]
    new_lat = new["latency_by_request_s"]["update leases"]["p50"]
    assert old_lat > new_lat  # larger writes cost more per batch
    assert (
        old["slo"]["slos"]["mutating"]["worst_p99_s"]
        > new["slo"]["slos"]["mutating"]["worst_p99_s"]
    )
    assert old["profile"] == "2019-era" and new["profile"] == "current"


@pytest.fixture(scope="module")
def burst_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = [node(0, f"n{i}") for i in range(10)]
    rows += [pod(1 + i * 1e-3, f"b{i}") for i in range(300)]
    rows.append({**node(60, "n0"), "event_type": "MODIFIED"})
    return write_trace(tmp_path_factory.mktemp("burst") / "t", rows)


def test_higher_client_qps_lowers_scheduling_latency_under_a_burst(burst_trace: Path) -> None:
    p99 = {}
    for qps in (50, 500):
        res = replay(
            str(burst_trace), profile="current", settings={"scheduler.client_qps": str(qps)}
        )
        s = res.summary
        assert s["pods"]["bound"] == 300
        p99[qps] = s["scheduling_latency_s"]["p99"]
        assert s["control_plane"]["scheduler_client"]["qps"] == qps
    # 300 pods x (binding + Event) = 600 tokens: 100 burst, then 50/s -> ~10 s at 50 QPS.
    assert p99[50] > 3.5  # at least (300 - 100) bindings / 50 QPS = 4 s
    assert p99[500] < p99[50] / 4


def test_tiny_etcd_quota_gives_nospace_rejections_in_the_summary(small_trace: Path) -> None:
    res = replay(str(small_trace), profile="current", settings={"etcd.quota_bytes": "300000"})
    cp = res.summary["control_plane"]
    assert cp["etcd"]["nospace_alarm"] is True
    assert cp["requests"]["rejected_by_reason"].get("etcd-nospace", 0) > 0
    assert cp["slo"]["rejected_requests"].get("etcd-nospace", 0) > 0
    acct = cp["requests"]
    assert acct["submitted"] == acct["completed"] + acct["rejected"] + acct["in_flight_at_end"]
    failed = res.pods[res.pods["reason"].fillna("").str.contains("etcd-nospace")]
    assert len(failed) > 0 and (failed["state"] == "failed").all()


def test_etcd_cpu_pool_replays_with_every_request_accounted_and_its_utilisation(
    small_trace: Path,
) -> None:
    pool = {
        "etcd.apply_pipelined": "true",
        "etcd.cpu_cores": "1",
        "etcd.front_cpu_us": "200",
        "etcd.wal_cpu_us_per_batch": "300",
        "etcd.wal_cpu_us_per_entry": "100",
        "etcd.cpu_cv_ratio": "0.5",
    }
    base = replay(str(small_trace), profile="current", settings={"etcd.apply_pipelined": "true"})
    res = replay(str(small_trace), profile="current", settings=pool)
    cp, cp0 = res.summary["control_plane"], base.summary["control_plane"]
    acct = cp["requests"]
    assert acct["submitted"] == acct["completed"] + acct["rejected"] + acct["in_flight_at_end"]
    assert acct["submitted"] == cp0["requests"]["submitted"]
    ranked = {r["metric"]: r["utilisation_p95"] for r in cp["bottleneck"]["ranking"]}
    assert ranked["etcd.cpu_utilisation"] > 0
    assert "etcd.cpu_utilisation" not in {r["metric"] for r in cp0["bottleneck"]["ranking"]}

    # The CPU work adds to the writes' latency.
    def write_latency_s(r):
        req = r.tables["requests"]
        return req[req["verb"].astype(str) != "watch"]["latency_s"].mean()

    assert write_latency_s(res) > write_latency_s(base)


def test_calibrated_cycle_time_matches_scheduler_perf() -> None:
    timing = CalibratedTiming(load_profile("current").scheduler)
    examined = num_feasible_nodes_to_find(0, 5_000)
    dt = timing.cycle_time_s(examined, 5_000)
    assert 1.2e-3 <= dt <= 1.5e-3 and 680 <= 1 / dt <= 810
    # More nodes examined cost more (20k nodes: 1,000 examined).
    assert timing.cycle_time_s(num_feasible_nodes_to_find(0, 20_000), 20_000) > dt


def test_outputs_and_summary_of_a_profile_replay(tmp_path: Path, small_trace: Path) -> None:
    out = replay(str(small_trace), profile="current").write(tmp_path / "o")
    import pandas as pd

    s = json.loads((out / "summary.json").read_text())["control_plane"]
    assert {"slo", "bottleneck", "etcd", "requests", "pod_startup_s"} <= set(s)
    assert s["slo"]["slos"]["pod-startup"]["pass"] is True
    assert s["bottleneck"]["component"] and s["bottleneck"]["ranking"]
    req = pd.read_parquet(out / "requests.parquet")
    assert {"t_s", "latency_s", "verb", "resource", "scope", "status", "reason"} <= set(req)
    etcd = pd.read_parquet(out / "etcd.parquet")
    assert {"db_size_bytes", "revision", "objects.pods"} <= set(etcd.columns)
    assert etcd["revision"].is_monotonic_increasing
    pods = pd.read_parquet(out / "pods.parquet")
    assert {"seen_s", "running_s", "startup_s"} <= set(pods.columns)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracesim", "replay", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nope"], "unknown profile 'nope'; valid: 2019-era, current"),
        (["--profile", "current", "--set", "etcd.fsync=2"], "valid: apply_pipelined, apply_us"),
        (["--profile", "current", "--set", "etcd.fsync_ms=2s"], "in ms, not 's'"),
        (["--set", "etcd.fsync_ms=2"], "need a profile; add --profile current"),
    ],
)
def test_bad_profile_input_is_one_line_exit_2(
    tmp_path: Path, small_trace: Path, args: list[str], message: str
) -> None:
    res = cli(str(small_trace), *args, "--quiet", "--no-plot", "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()  # rejected before the run
