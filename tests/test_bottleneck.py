"""Bottleneck analysis (tracesim.analysis.bottleneck and `tracesim bottlenecks`).

Constructed tables with a known saturating component and a known request mix check the
verdict, the times and the percentages; small real replays check that the 2019-era and current
profiles give different contributor mixes; a hand-built and a real small sweep check knees,
the responsible component and interrupted sweeps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tracesim.analysis import bottleneck as bn
from tracesim.analysis.sweep import DONE, PARAMS_FILE, RunSpec, SweepSpec
from tracesim.errors import TracesimError

ROOT = Path(__file__).resolve().parents[1]
DT = 10.0
END = 900.0
LEASE_B, NODE_B, EVENT_B, RATIO = 400, 15_000, 700, 0.5
POD_JSON_B = 4_000.0  # the pod size the remainder of etcd's bytes must come back as


# -- constructed results ---------------------------------------------------------------------------
def _series(metric: str, values: np.ndarray, t: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"t_s": t, "metric": metric, "value": values})


def _components(sat_at: float | None, leader_level: float = 0.97) -> pd.DataFrame:
    t = np.arange(DT, END + DT, DT)
    leader = np.full(len(t), 0.3)
    if sat_at is not None:
        leader[t >= sat_at] = leader_level
    spike = np.full(len(t), 0.2)
    spike[10] = 0.99  # one sample above 0.9: not sustained, not saturated
    return pd.concat(
        [
            _series("etcd.leader_utilisation", leader, t),
            _series("etcd.write_queue", np.zeros(len(t)), t),
            _series("apiserver.cpu_utilisation", spike, t),
            _series("scheduler.loop_utilisation", np.full(len(t), 0.05), t),
            _series("scheduler.client_limiter_utilisation", np.full(len(t), 0.4), t),
            _series("scheduler.client_limiter_waiting", np.zeros(len(t)), t),
            _series("watch.dispatch_utilisation.nodes", np.full(len(t), 0.1), t),
            _series("etcd.db_size_bytes", np.full(len(t), 1e8), t),
            _series("scheduler.queue_pending", np.linspace(0, 500, len(t)), t),  # not a component
        ],
        ignore_index=True,
    )


def _requests(mix: dict[tuple[str, str], int], slow_from: float | None) -> pd.DataFrame:
    """Requests spread evenly over the run; NodeStatus updates take 3 s from ``slow_from``."""
    rows = []
    for (verb, res), n in mix.items():
        t = np.linspace(1.0, END - 1.0, n)
        lat = np.full(n, 0.002)
        if slow_from is not None and res == "nodes":
            lat[t >= slow_from] = 3.0
        scope = "resource" if res in ("nodes", "leases") else "namespace"
        rows.append(
            pd.DataFrame(
                {"t_s": t, "latency_s": lat, "verb": verb, "resource": res, "scope": scope}
            )
        )
    df = pd.concat(rows, ignore_index=True).sort_values("t_s", kind="stable")
    df["reason"] = "ok"
    df["status"] = 200
    for c in ("verb", "resource", "scope", "reason"):
        df[c] = df[c].astype("category")
    return df.reset_index(drop=True)


MIX = {
    ("update", "nodes"): 9000,
    ("update", "leases"): 0,
    ("create", "pods"): 300,
    ("create", "pods/binding"): 300,
    ("update", "pods/status"): 600,
    ("create", "events"): 300,
    ("delete", "pods"): 0,
    ("watch", "nodes"): 9000,
}


def _etcd_bytes(mix: dict[tuple[str, str], int], events_written: int) -> float:
    """etcd's stored bytes for ``mix``: known sizes, plus POD_JSON_B for each pod write."""
    pod_writes = mix[("create", "pods")] + mix[("create", "pods/binding")]
    pod_writes += mix[("update", "pods/status")]
    json_b = (
        mix[("update", "nodes")] * NODE_B
        + mix[("update", "leases")] * LEASE_B
        + events_written * EVENT_B
        + pod_writes * POD_JSON_B
    )
    return json_b * RATIO


def _write_run(
    d: Path,
    mix: dict[tuple[str, str], int],
    *,
    sat_at: float | None,
    slow_from: float | None,
    profile: str = "2019-era",
    nodes: int = 1000,
) -> Path:
    d.mkdir(parents=True)
    _components(sat_at).to_parquet(d / "components.parquet", index=False)
    req = _requests({k: v for k, v in mix.items() if v}, slow_from)
    req.to_parquet(d / "requests.parquet", index=False)
    n_pods = mix[("create", "pods")]
    pods = pd.DataFrame(
        {
            "created_s": np.linspace(1, 800, n_pods),
            "bound_s": np.linspace(2, 801, n_pods),
            "deleted_s": np.full(n_pods, np.nan),
            "attempts": np.ones(n_pods, np.int64),
            "startup_s": np.full(n_pods, 1.6),
        }
    )
    pods.to_parquet(d / "pods.parquet", index=False)
    written = mix[("create", "events")]  # every Event is the scheduler's
    summary = {
        "nodes_at_end": nodes,
        "window_start": "2026-01-05T12:00:00+00:00",
        "control_plane": {
            "profile": profile,
            "parameters": {
                "etcd": {"apply_us_per_request": 18.0, "ns_per_byte": 10.0, "quota_bytes": 2**31},
                "apiserver": {"apf_enabled": False, "storage_size_ratio": RATIO},
                "kubelet": {"lease_size_bytes": LEASE_B, "node_status_size_bytes": NODE_B},
                "workload": {"event_size_bytes": EVENT_B, "controller_watchers": 3},
            },
            "events": {"written": written, "expired": 0},
            "etcd": {"bytes_written": _etcd_bytes(mix, written), "quota_bytes": 2**31},
        },
    }
    (d / "summary.json").write_text(json.dumps(summary))
    return d


@pytest.fixture
def saturated_run(tmp_path: Path) -> Path:
    return _write_run(tmp_path / "run", MIX, sat_at=300.0, slow_from=300.0)


def test_constructed_run_names_component_time_and_contributors(saturated_run: Path) -> None:
    an = bn.analyze_run(saturated_run)
    assert an.responsible == "etcd.leader" and an.saturated
    assert an.saturated_s == pytest.approx(300.0)
    row = an.components.iloc[0]
    assert row["component"] == "etcd.leader" and row["how"] == "utilisation"
    assert row["util_at_saturation"] == pytest.approx(0.97)
    # A single sample at 0.99 is not sustained saturation; the pending queue is no component.
    cpu = an.components.set_index("component").loc["apiserver.cpu"]
    assert np.isnan(cpu["saturated_s"]) and cpu["util_peak"] == pytest.approx(0.99)
    assert "scheduler.queue_pending" not in set(an.components["component"])
    # Contributors: the shares of etcd write bytes follow from the sizes.
    k = an.contributors.set_index("category")
    pod_writes = 300 + 300 + 600
    total = 9000 * NODE_B + 300 * EVENT_B + pod_writes * POD_JSON_B
    assert k.loc["NodeStatus", "bytes_share"] == pytest.approx(9000 * NODE_B / total)
    assert k.loc["pod status", "bytes_share"] == pytest.approx(600 * POD_JSON_B / total)
    assert k.loc["scheduler Events", "bytes_share"] == pytest.approx(300 * EVENT_B / total)
    assert k.loc["NodeStatus", "requests_share"] == pytest.approx(9000 / 10_500)
    assert k["share"].sum() == pytest.approx(1.0)
    assert an.contributors.iloc[0]["category"] == "NodeStatus"
    # The estimated pod size comes back from etcd's total.
    cats = an.categories.set_index("category")
    assert cats.loc["pod create", "json_bytes"] / 300 == pytest.approx(POD_JSON_B)
    assert bool(cats.loc["pod create", "bytes_estimated"])
    assert not bool(cats.loc["NodeStatus", "bytes_estimated"])
    # The mutating SLO fails from the 12:05 window on, with the slow NodeStatus updates.
    slo = an.slos.set_index("slo").loc["mutating"]
    assert not slo["pass"] and slo["first_fail_s"] == pytest.approx(301.0)
    assert slo["first_fail_p99_s"] == pytest.approx(3.0)
    assert slo["first_fail_request"] == "update nodes"
    text = " ".join(an.sentences)
    share = round(100 * 9000 * NODE_B / total)
    assert "etcd's leader saturates first, at 12:05:00 (t = 300 s)" in text
    assert "driven by NodeStatus heartbeats (" in text
    assert f"{share}% of etcd write bytes" in text
    assert "The mutating-call SLO fails from 12:05:01" in text and "p99 3 s > 1 s" in text


def test_no_saturation_reports_the_busiest(tmp_path: Path) -> None:
    an = bn.analyze_run(_write_run(tmp_path / "r", MIX, sat_at=None, slow_from=None))
    assert not an.saturated and an.saturated_s is None
    assert an.responsible == "scheduler.client"  # p95 0.4, above the leader's 0.3
    assert set(an.contributors["category"]) == {"pod binding", "scheduler Events"}
    assert an.contributors["share"].tolist() == pytest.approx([0.5, 0.5])
    assert "no component saturates" in an.sentences[0]
    assert bool(an.slos["pass"].all())


def test_queue_growth_and_its_onset() -> None:
    t = np.arange(10.0, 610.0, 10.0)
    growing = np.where(t < 200, 0.0, (t - 200) * 2.0)
    ok, since, slope = bn.queue_growth(t, growing)
    assert ok and since == pytest.approx(210.0) and slope == pytest.approx(2.0, rel=0.05)
    bounded = 20 * (1 + np.sin(t / 30.0))  # busy but it drains again
    assert not bn.queue_growth(t, bounded)[0]
    drained = np.where((t > 100) & (t < 400), 500.0, 0.0)
    assert not bn.queue_growth(t, drained)[0]
    tiny = np.linspace(0, 0.9, len(t))  # rises, but never a real backlog
    assert not bn.queue_growth(t, tiny)[0]


def test_growing_queue_saturates_a_component() -> None:
    t = np.arange(10.0, 610.0, 10.0)
    comps = pd.concat(
        [
            _series("etcd.leader_utilisation", np.full(len(t), 0.5), t),
            _series("etcd.write_queue", np.where(t < 300, 0.0, t - 300), t),
        ]
    )
    table = bn.component_table(comps)
    row = table.iloc[0]
    assert row["component"] == "etcd.leader" and row["how"] == "queue"
    assert row["saturated_s"] == pytest.approx(310.0)  # last at <= 1 waiting at t = 300


def test_rejections_saturate_the_pool_they_come_from() -> None:
    n = 2000
    t = np.linspace(0, 600, n)
    req = pd.DataFrame(
        {
            "t_s": t,
            "latency_s": 0.01,
            "verb": np.where(np.arange(n) % 2, "update", "get"),
            "resource": "nodes",
            "reason": np.where((np.arange(n) % 2 == 1) & (t >= 400), "inflight-limit", "ok"),
        }
    )
    on = bn.rejection_onsets(req, pools=True).set_index("component")
    assert list(on.index) == ["apiserver.seats.mutating"]
    assert on.loc["apiserver.seats.mutating", "onset_s"] == pytest.approx(t[t >= 400][1], abs=1)
    apf = bn.rejection_onsets(req, pools=False)
    assert list(apf["component"]) == ["apiserver.seats.node-high"]  # NodeStatus's level
    table = bn.component_table(None, rejections=on.reset_index())
    assert table.iloc[0]["how"] == "rejections"


def test_json_and_tables_are_plain(saturated_run: Path) -> None:
    an = bn.analyze_run(saturated_run)
    data = json.loads(json.dumps(an.to_json()))
    assert data["responsible"] == "etcd.leader" and data["sentences"] == an.sentences
    assert data["contributors"][0]["category"] == "NodeStatus"
    tables = bn.run_tables(an)
    assert "Contributors to etcd's leader" in tables
    assert {"SLOs (99th percentile per 5-minute window)", "Load by request category"} <= set(tables)


# -- constructed sweep -----------------------------------------------------------------------------
def _constructed_sweep(root: Path, sizes: list[int], drop: int | None = None) -> Path:
    """A sweep dir whose mutating p99 passes at the first two sizes and fails after."""
    spec = SweepSpec(trace=str(root / "trace"), nodes=sizes, profiles=["2019-era"])
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.json").write_text(json.dumps(spec.to_json()))
    for i, run in enumerate(spec.runs()):
        if run.nodes == drop:
            continue
        d = root / "runs" / run.run_id
        slow = 300.0 if i >= 2 else None
        _write_run(d, MIX, sat_at=300.0 if i >= 2 else None, slow_from=slow, nodes=run.nodes)
        summary = json.loads((d / "summary.json").read_text())
        an = bn.analyze_run(d)
        summary["control_plane"]["slo"] = {
            "slos": {
                r["slo"]: {"threshold_s": r["threshold_s"], "worst_p99_s": r["worst_p99_s"]}
                for _, r in an.slos.iterrows()
            }
        }
        (d / "summary.json").write_text(json.dumps(summary))
        (d / PARAMS_FILE).write_text(json.dumps(run.to_json()))
        (d / DONE).write_text("")
    return root


def test_constructed_sweep_knee_and_responsible_component(tmp_path: Path) -> None:
    sw = _constructed_sweep(tmp_path / "sw", [100, 200, 400, 800])
    sa = bn.analyze_sweep(sw)
    assert not sa.missing
    k = sa.knees.set_index("slo").loc["mutating"]
    assert k["knee"] == "slo" and k["first_failing_nodes"] == 400
    # Linear interpolation between 200 (0.002 s) and 400 (3 s) at the 1 s threshold.
    assert k["size_nodes"] == pytest.approx(200 + (1 - 0.002) / (3 - 0.002) * 200)
    assert k["component"] == "etcd.leader" and k["top_contributor"] == "NodeStatus"
    runs = sa.runs.set_index("nodes")
    assert not runs.loc[200, "saturated"] and runs.loc[400, "saturated"]
    text = " ".join(sa.sentences)
    assert "from 400 nodes on, etcd's leader saturates first" in text
    assert "The mutating-call SLO breaks at about 267 nodes" in text


def test_interrupted_sweep_reports_what_is_missing(tmp_path: Path) -> None:
    sw = _constructed_sweep(tmp_path / "sw", [100, 200, 400, 800], drop=800)
    sa = bn.analyze_sweep(sw)
    assert sa.missing and "3 of 4 runs done" in sa.missing[0]
    assert any("n800" in m for m in sa.missing)
    assert len(sa.runs) == 3 and sa.knees.set_index("slo").loc["mutating", "knee"] == "slo"
    assert any(s.startswith("Missing: 3 of 4 runs done") for s in sa.sentences)


# -- CLI -------------------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tracesim", "bottlenecks", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    noprofile = tmp_path / "placement"
    noprofile.mkdir()
    (noprofile / "summary.json").write_text("{}")
    for path, words in (
        (tmp_path / "nope", "no such directory"),
        (tmp_path / "empty", "no summary.json"),
        (noprofile, "replay with --profile"),
    ):
        r = _cli(str(path))
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0]
        assert "Traceback" not in r.stderr
    with pytest.raises(TracesimError, match="not a sweep directory"):
        bn.analyze_sweep(tmp_path / "empty")


def test_cli_run_and_sweep(saturated_run: Path, tmp_path: Path) -> None:
    r = _cli(str(saturated_run))
    assert r.returncode == 0, r.stderr
    assert "etcd's leader saturates first" in r.stdout and "Contributors to" in r.stdout
    j = _cli(str(saturated_run), "--json")
    assert json.loads(j.stdout)["responsible"] == "etcd.leader"
    sw = _constructed_sweep(tmp_path / "sw", [100, 200, 400, 800], drop=800)
    r = _cli(str(sw))
    assert r.returncode == 0, r.stderr
    assert "SLO knees per variant" in r.stdout and "missing" in r.stdout.lower()


# -- real replays and sweeps -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tracesim.sources.synth import SynthConfig, synthesize

    out = tmp_path_factory.mktemp("bn") / "trace"
    synthesize(SynthConfig(nodes=60, duration_s=600.0, seed=3), out)
    return out


@pytest.fixture(scope="module")
def real_runs(small_trace: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tracesim.sim.engine import replay

    base = tmp_path_factory.mktemp("bn-runs")
    out = {}
    for profile in ("2019-era", "current"):
        res = replay(str(small_trace), "kube-default", seed=0, profile=profile)
        out[profile] = res.write(base / profile)
    return out


@pytest.mark.slow
def test_real_replays_profiles_differ(real_runs: dict[str, Path]) -> None:
    old = bn.analyze_run(real_runs["2019-era"])
    new = bn.analyze_run(real_runs["current"])
    etcd_old = bn.contributors(old.categories, "etcd.leader").set_index("category")
    etcd_new = bn.contributors(new.categories, "etcd.leader").set_index("category")
    # NodeStatus heartbeats dominate etcd's write bytes in 2019-era, not with Leases.
    assert etcd_old["bytes_share"].idxmax() == "NodeStatus"
    assert etcd_old.loc["NodeStatus", "bytes_share"] > 0.5
    assert "Lease renewals" not in etcd_old.index
    assert etcd_new.loc["NodeStatus", "bytes_share"] < 0.5
    assert (
        etcd_new.loc["Lease renewals", "requests_share"]
        > etcd_new.loc["NodeStatus", "requests_share"]
    )
    for an in (old, new):
        # The estimated bytes add up to what etcd reports it wrote.
        summary = json.loads((Path(an.path) / "summary.json").read_text())
        written = summary["control_plane"]["etcd"]["bytes_written"]
        assert an.categories["etcd_bytes"].sum() == pytest.approx(written, rel=1e-6)
        assert set(an.slos["slo"]) >= {"mutating", "pod-startup"}
        assert an.sentences and an.responsible is not None
        comps = set(an.components["component"])
        assert {"etcd.leader", "scheduler.loop", "scheduler.client", "apiserver.cpu"} <= comps
    assert any(c.startswith("apiserver.seats.") for c in old.components["component"])
    assert "apiserver.seats.mutating" in set(old.components["component"])
    assert "apiserver.seats.node-high" in set(new.components["component"])


@pytest.mark.slow
def test_real_small_sweep(small_trace: Path, tmp_path: Path) -> None:
    from tracesim.analysis.sweep import run_sweep

    spec = SweepSpec(trace=str(small_trace), nodes=[30, 60], profiles=["2019-era", "current"])
    run_sweep(spec, tmp_path / "sw", jobs=1)
    sa = bn.analyze_sweep(tmp_path / "sw")
    assert not sa.missing and len(sa.runs) == 4
    assert set(sa.knees["variant"]) == {"2019-era", "current"}
    assert set(sa.knees["slo"]) >= {"mutating", "pod-startup"}
    assert sa.knees["component"].notna().all()
    assert sum(s.startswith(("2019-era", "current")) for s in sa.sentences) == 2
    fig = bn.plot_sweep(sa)
    assert len(fig.axes) == sa.knees["slo"].nunique()
    # An interrupted sweep: one run lost its DONE marker.
    victim = next((tmp_path / "sw" / "runs").iterdir())
    (victim / DONE).unlink()
    (tmp_path / "sw" / "sweep.parquet").unlink()
    sa2 = bn.analyze_sweep(tmp_path / "sw")
    assert len(sa2.runs) == 3 and any(victim.name in m for m in sa2.missing)
    assert RunSpec  # the run ids come from the same spec
