"""Reports of one replay and of sweeps (complete, interrupted, with a knee)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tracesim.analysis.report import build_report, to_html, write_report
from tracesim.analysis.sweep import DONE, PARAMS_FILE, RUNS_DIR, SWEEP_FILE, SweepSpec
from tracesim.errors import TracesimError
from tracesim.sim.engine import replay
from tracesim.sources.synth import SynthConfig, synthesize

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rep") / "t"
    synthesize(SynthConfig(nodes=20, duration_s=300, seed=5), out)
    return out


@pytest.fixture(scope="module")
def placement_run(trace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rep") / "placement"
    replay(str(trace), seed=0).write(out)
    return out


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_placement_only_run_renders_and_names_what_is_missing(
    placement_run: Path, tmp_path: Path
) -> None:
    report = build_report(placement_run)
    assert report.kind == "run"
    missing = " ".join(report.missing)
    for name in ("requests.parquet", "components.parquet", "etcd.parquet", "--profile"):
        assert name in missing
    paths = write_report(placement_run, tmp_path / "r")
    html = paths["html"].read_text()
    imgs = _images(html)
    assert imgs and all(i.startswith(PNG) for i in imgs)
    assert "Pod scheduling latency over" in html and "Not shown" in html
    md = paths["markdown"].read_text()
    for ref in re.findall(r"\]\((plots/[^)]+\.png)\)", md):
        assert (tmp_path / "r" / ref).is_file()


@pytest.mark.slow
def test_control_plane_run_has_every_section(trace: Path, tmp_path: Path) -> None:
    pytest.importorskip("tracesim.sim.controlplane")
    run_dir = tmp_path / "cp"
    replay(str(trace), seed=0, profile="2019-era").write(run_dir)
    report = build_report(run_dir)
    assert report.missing == []
    names = {f.name for f in report.figures}
    assert {"latency", "components", "etcd"} <= names
    html = to_html(report)
    assert "SIG Scalability SLOs" in html and "busiest component" in html
    assert len(_images(html)) == len(report.figures)


def _fake_sweep(root: Path, p99: dict[int, float], *, drop_done: int | None = None) -> Path:
    """A sweep directory written by hand: the report reads result files only. The mutating
    SLO's worst p99 follows ``p99`` (size -> seconds), with the 1 s threshold."""
    spec = SweepSpec(trace=str(root / "trace"), nodes=sorted(p99), profiles=["current"])
    root.mkdir(parents=True)
    (root / SWEEP_FILE).write_text(json.dumps(spec.to_json()))
    for run in spec.runs():
        d = root / RUNS_DIR / run.run_id
        d.mkdir(parents=True)
        v = p99[run.nodes]
        summary = {
            "trace": "x",
            "scheduler": "kube-default",
            "seed": 0,
            "pods": {"total": run.nodes * 10, "bound": run.nodes * 10},
            "nodes_at_end": run.nodes,
            "scheduling_latency_s": {"p50": v / 10, "p99": v / 2},
            "control_plane": {
                "profile": "current",
                "slo": {
                    "pass": v <= 1.0,
                    "slos": {
                        "mutating": {
                            "pass": v <= 1.0,
                            "threshold_s": 1.0,
                            "worst_p99_s": v,
                            "windows": 3,
                            "failed_windows": int(v > 1.0),
                            "failing": [] if v <= 1.0 else ["update leases"],
                        }
                    },
                },
                "bottleneck": {"component": "etcd.leader_utilisation", "utilisation_p95": 0.97},
            },
        }
        (d / "summary.json").write_text(json.dumps(summary))
        (d / PARAMS_FILE).write_text(json.dumps(run.to_json()))
        if run.nodes != drop_done:
            (d / DONE).write_text("")
    return root


SIZES = [1000, 2000, 5000, 10000, 20000]


def test_sweep_report_marks_the_slo_knee(tmp_path: Path) -> None:
    # Flat, then saturating: crosses 1 s between 5,000 (0.3 s) and 10,000 nodes (2.3 s).
    p99 = dict(zip(SIZES, [0.1, 0.1, 0.3, 2.3, 6.3], strict=True))
    root = _fake_sweep(tmp_path / "s", p99)
    report = build_report(root)
    assert report.kind == "sweep"
    text = " ".join(t for s in report.sections for t in s.text)
    expected = 5000 + (1.0 - 0.3) / (2.3 - 0.3) * 5000  # 6,750 nodes
    assert f"mutating SLO: worst p99 latency, at about {expected:,.0f} nodes" in text
    assert "busiest component is etcd.leader_utilisation (97.0 % p95 utilisation)" in text
    knees = next(t for s in report.sections for c, t in s.tables if c == "Knees")
    row = knees[knees["metric"].str.startswith("mutating")].iloc[0]
    assert row["knee"] == "slo" and row["size (nodes)"] == round(expected)
    # The largest run has no tables: its sections say so instead of failing.
    assert any("requests.parquet" in m for m in report.missing)
    paths = write_report(root, tmp_path / "out")
    imgs = _images(paths["html"].read_text())
    assert len(imgs) == len(report.figures) >= 3 and all(i.startswith(PNG) for i in imgs)
    assert "6,750 nodes" in paths["markdown"].read_text()


def test_sweep_report_without_knee(tmp_path: Path) -> None:
    p99 = dict(zip(SIZES, np.linspace(0.01, 0.05, 5).tolist(), strict=True))
    report = build_report(_fake_sweep(tmp_path / "s", p99))
    text = " ".join(t for s in report.sections for t in s.text)
    assert "no SLO breaks and no curve bends" in text


def test_interrupted_sweep_reports_what_is_missing(tmp_path: Path) -> None:
    p99 = dict(zip(SIZES, [0.1, 0.1, 0.3, 2.3, 6.3], strict=True))
    root = _fake_sweep(tmp_path / "s", p99, drop_done=20000)
    report = build_report(root)
    text = " ".join(t for s in report.sections for t in s.text)
    assert "4 of 5 runs done; 1 missing (sizes 20,000)" in text
    assert any("runs not finished: n20000" in m for m in report.missing)
    # The knee is still found from the finished sizes.
    assert "at about 6,750 nodes" in text


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(TracesimError, match="not a directory"):
        build_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TracesimError, match="neither a sweep"):
        build_report(tmp_path / "empty")
    res = subprocess.run(
        [sys.executable, "-m", "tracesim", "report", str(tmp_path / "empty"), "--out",
         str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert res.returncode == 2 and res.stderr.startswith("error: ")
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_report(placement_run: Path, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "tracesim", "report", str(placement_run), "--out",
         str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o" / "report.html").is_file() and (tmp_path / "o" / "report.md").is_file()
