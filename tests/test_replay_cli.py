"""``tracesim replay``: outputs, summary, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tracesim import open_trace

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "traces" / "sample"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracesim", "replay", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("replay") / "out"
    res = run(str(SAMPLE), "--scheduler", "kube-default", "--seed", "1", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "latency" in res.stdout and "wrote" in res.stdout
    return out


def test_outputs_and_summary(replayed: Path) -> None:
    for name in ("pods.parquet", "timeseries.parquet", "summary.json", "replay.png"):
        assert (replayed / name).is_file(), name
    pods = pd.read_parquet(replayed / "pods.parquet")
    summary = json.loads((replayed / "summary.json").read_text())
    assert summary["scheduler"] == "kube-default" and summary["seed"] == 1
    counts = summary["pods"]
    assert counts["total"] == len(pods)
    assert counts["bound"] == int((pods["state"] == "bound").sum())
    assert set(summary["scheduling_latency_s"]) >= {"p50", "p90", "p99"}
    assert summary["allocation"]["cpu"]["peak"] >= summary["allocation"]["cpu"]["end"] > 0
    assert summary["wall_time_s"] > 0 and summary["sim_seconds_per_wall_second"] > 0
    assert summary["inconsistencies"] == {}
    # The pods the sample lists as bound at the start (DaemonSets and Deployments).
    listed = open_trace(SAMPLE).events(kinds=["Pod"], event_types=["LISTED"])
    assert counts["initial"] == int(pods["initial"].sum()) == listed["node_name"].notna().sum()
    ts = pd.read_parquet(replayed / "timeseries.parquet")
    assert ts["t_s"].is_monotonic_increasing and (ts["overcommitted_nodes"] == 0).all()


def test_options_window_dilation_set(tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = run(
        str(SAMPLE),
        "--scheduler",
        "kube-default",
        "--set",
        "strategy=MostAllocated",
        "--set",
        "bind_latency_s=0.5",
        "--window",
        "300:900",
        "--dilation",
        "2",
        "--no-plot",
        "--quiet",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["simulated_s"] == 300
    assert summary["policy_options"] == {"strategy": "MostAllocated"}
    assert summary["config"]["bind_latency_s"] == 0.5
    assert summary["scheduling_latency_s"]["p50"] >= 0.5
    assert not (out / "replay.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "nope"], "unknown scheduler 'nope'; valid names: bestfit"),
        (["--set", "colour=red"], "unknown --set key 'colour'"),
        (["--set", "cycle_time_s"], "write key=value"),
        (["--set", "cycle_time_s=fast"], "expected a number"),
        (["--set", "strategy=Spread"], "strategy 'Spread' unknown"),
        (["--window", "9:3"], "need 0 <= START < END"),
        (["--window", "a:b"], "write START:END"),
        (["--dilation", "0"], "--dilation must be positive"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    res = run(str(SAMPLE), *args, "--quiet", "--no-plot", "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_not_a_trace(tmp_path: Path) -> None:
    res = run(str(tmp_path), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
