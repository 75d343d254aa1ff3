"""tracesim synth: determinism, lifecycles as a recorder would see them, no over-commitment."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracesim import open_trace
from tracesim.errors import TracesimError
from tracesim.sources.synth import SynthConfig, synthesize

ORDER = {"LISTED": 0, "ADDED": 0, "MODIFIED": 1, "DELETED": 2}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted((path / "events").iterdir()):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _make(cfg: SynthConfig, root: Path, name: str = "t") -> Path:
    return synthesize(cfg, root / name)


def test_same_seed_identical_files_other_seed_differs(tmp_path: Path) -> None:
    cfg = SynthConfig(nodes=40, duration_s=900, seed=5)
    a = _digest(_make(cfg, tmp_path, "a"))
    b = _digest(_make(cfg, tmp_path, "b"))
    c = _digest(_make(SynthConfig(nodes=40, duration_s=900, seed=6), tmp_path, "c"))
    assert a == b
    assert a != c


def check_pod_lifecycles(pods: pd.DataFrame) -> None:
    """Each pod: starts LISTED/ADDED, at most one DELETED and it is last, node never changes."""
    pods = pods.sort_values("seq")
    first = pods.groupby("uid", observed=True).head(1)
    assert set(first["event_type"].astype(str)) <= {"LISTED", "ADDED"}
    assert pods.duplicated(["uid", "event_type"]).loc[pods["event_type"] == "ADDED"].sum() == 0
    deleted = pods[pods["event_type"] == "DELETED"]
    assert not deleted["uid"].duplicated().any()
    last = pods.groupby("uid", observed=True).tail(1)
    assert set(deleted["uid"]) <= set(last.loc[last["event_type"] == "DELETED", "uid"])
    bound = pods.dropna(subset=["node_name"])
    assert (bound.groupby("uid", observed=True)["node_name"].nunique() == 1).all()
    # once terminating, a pod never goes back
    term = pods["terminating"].astype(bool).to_numpy()
    uid = pods["uid"].to_numpy()
    seen: set[str] = set()
    for u, t in zip(uid, term, strict=True):
        if u in seen:
            assert t, f"pod {u} stopped terminating"
        elif t:
            seen.add(u)


def check_no_overcommit(trace_path: Path) -> None:
    """Replaying bindings and releases, no node ever holds more than its allocatable."""
    t = open_trace(trace_path)
    nodes = t.events(kinds=["Node"], event_types=["LISTED"], categorical=False)
    alloc = nodes.set_index("name")[
        ["alloc_cpu_milli", "alloc_memory_bytes", "alloc_pods", "alloc_gpu_count"]
    ].astype("int64")
    pods = t.events(kinds=["Pod"], categorical=False).sort_values("seq")
    bound = pods.dropna(subset=["node_name"])
    start = bound.groupby("uid").head(1)
    # A pod holds its node until it has finished (Succeeded) or is gone (DELETED).
    ended = pods[(pods["event_type"] == "DELETED") | (pods["phase"].isin(["Succeeded", "Failed"]))]
    end = ended.groupby("uid").head(1)
    plus = start[
        ["seq", "uid", "node_name", "req_cpu_milli", "req_memory_bytes", "req_gpu_count"]
    ].assign(pods=1)
    minus = plus.drop(columns="seq").merge(end[["uid", "seq"]], on="uid")
    for col in ("req_cpu_milli", "req_memory_bytes", "req_gpu_count", "pods"):
        minus[col] = -minus[col].astype("int64")
    deltas = pd.concat([plus, minus]).sort_values("seq")
    cols = ["req_cpu_milli", "req_memory_bytes", "pods", "req_gpu_count"]
    used = deltas.groupby("node_name")[cols].cumsum().astype("int64")
    used["node_name"] = deltas["node_name"].to_numpy()
    peak = used.groupby("node_name").max()
    cap = alloc.loc[peak.index]
    assert (peak["req_cpu_milli"].to_numpy() <= cap["alloc_cpu_milli"].to_numpy()).all()
    assert (peak["req_memory_bytes"].to_numpy() <= cap["alloc_memory_bytes"].to_numpy()).all()
    assert (peak["pods"].to_numpy() <= cap["alloc_pods"].to_numpy()).all()
    assert (peak["req_gpu_count"].to_numpy() <= cap["alloc_gpu_count"].to_numpy()).all()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nodes=st.integers(1, 25),
    duration_s=st.floats(30, 1500),
    seed=st.integers(0, 2**31),
    pods_per_node=st.floats(0, 40),
    churn=st.floats(0, 0.05),
    burst=st.integers(0, 400),
    heartbeat=st.sampled_from(["lease", "nodestatus"]),
)
def test_invariants(nodes, duration_s, seed, pods_per_node, churn, burst, heartbeat) -> None:
    cfg = SynthConfig(
        nodes=nodes,
        duration_s=duration_s,
        seed=seed,
        pods_per_node=pods_per_node,
        churn_per_node_s=churn,
        burst_pods=burst,
        heartbeat=heartbeat,
        window_s=200.0,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = _make(cfg, Path(tmp))
        t = open_trace(path)
        assert t.complete
        ev = t.events(categorical=False)
        # time-ordered, seq dense, resourceVersions strictly increasing
        assert ev["ts"].is_monotonic_increasing
        assert (ev["seq"].to_numpy() == np.arange(len(ev))).all()
        rv = ev["resource_version"].astype("int64").to_numpy()
        assert (np.diff(rv) > 0).all()
        start = pd.Timestamp(cfg.start)
        assert ev["ts"].min() >= start
        assert ev["ts"].max() < start + pd.Timedelta(seconds=duration_s)
        assert (ev.loc[ev["event_type"] == "LISTED", "ts"] == start).all()
        kinds = set(ev["kind"])
        assert ("Lease" in kinds) == (heartbeat == "lease")
        pods = ev[ev["kind"] == "Pod"]
        if len(pods):
            check_pod_lifecycles(pods)
            check_no_overcommit(path)
        # every Event is about a pod of the trace
        events = ev[ev["kind"] == "Event"]
        pod_names = set(pods["name"])
        assert {n.rsplit(".", 1)[0] for n in events["name"]} <= pod_names


def test_heartbeats_every_interval(tmp_path: Path) -> None:
    path = _make(SynthConfig(nodes=30, duration_s=600, seed=1), tmp_path)
    leases = open_trace(path).events(kinds=["Lease"], event_types=["MODIFIED"])
    gaps = leases.groupby("name", observed=True)["ts"].diff().dt.total_seconds().dropna()
    assert gaps.between(9.9, 10.1).all()
    assert leases["name"].nunique() == 30
    assert leases["size_bytes"].between(200, 1000).all()
    nodes = open_trace(path).events(kinds=["Node"], event_types=["MODIFIED"])
    # With Leases, NodeStatus only every 5 minutes: about two per node in 10 minutes.
    assert nodes.groupby("name", observed=True).size().between(1, 2).all()


def test_nodestatus_mode_writes_big_nodes_every_10s(tmp_path: Path) -> None:
    cfg = SynthConfig(nodes=20, duration_s=300, seed=2, heartbeat="nodestatus")
    t = open_trace(_make(cfg, tmp_path))
    assert t.count(kinds=["Lease"]) == 0
    nodes = t.events(kinds=["Node"], event_types=["MODIFIED"])
    rate = len(nodes) / 300
    assert rate == pytest.approx(20 / 10, rel=0.05)
    assert nodes["size_bytes"].min() > 12_000  # "easily exceed 15 kB" (KEP-589)


def test_workload_shapes(tmp_path: Path) -> None:
    cfg = SynthConfig(nodes=100, duration_s=1800, seed=3, burst_pods=1500, burst_at_s=600)
    t = open_trace(_make(cfg, tmp_path))
    pods = t.events(kinds=["Pod"], categorical=False)
    listed = pods[pods["event_type"] == "LISTED"]
    assert len(listed) == pytest.approx(100 * cfg.pods_per_node, rel=0.01)
    owners = set(pods["owner_kind"].dropna())
    assert owners == {"DaemonSet", "ReplicaSet", "Job"}
    # the burst: 1,500 Job pods created within a minute of 10 minutes in
    added = pods[pods["event_type"] == "ADDED"]
    t_s = (added["ts"] - pd.Timestamp(cfg.start)).dt.total_seconds()
    assert ((t_s >= 600) & (t_s < 660) & (added["owner_kind"] == "Job")).sum() >= 1500
    # the rollout storm: a new ReplicaSet appears for some deployments mid-trace
    rs = pods[pods["owner_kind"] == "ReplicaSet"]
    per_app = rs.groupby(rs["name"].str.split("-").str[:2].str.join("-"))["owner_name"].nunique()
    assert (per_app == 2).sum() > 0
    # heterogeneous nodes
    nodes = t.events(kinds=["Node"], event_types=["LISTED"])
    assert nodes["alloc_cpu_milli"].nunique() >= 4
    assert (nodes["alloc_gpu_count"] > 0).any()


def test_resources_filter(tmp_path: Path) -> None:
    cfg = SynthConfig(nodes=10, duration_s=120, seed=4, resources=("pods",))
    t = open_trace(_make(cfg, tmp_path))
    assert set(t.events(columns=["kind"])["kind"]) == {"Pod"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"nodes": 0},
        {"duration_s": 0},
        {"resources": ("pods", "secrets")},
        {"heartbeat": "udp"},
        {"start": "yesterday"},
    ],
)
def test_bad_config(kwargs: dict, tmp_path: Path) -> None:
    with pytest.raises(TracesimError):
        synthesize(SynthConfig(**kwargs), tmp_path / "t")
