"""``tracesim calibrate check``: a profile against saved calibration runs, and how well the
runs agree (:mod:`tracesim.calibrate.check`)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from test_calibrate import _cli, _model_etcd, _synthetic_points

from tracesim.calibrate.check import check_profile, load_runs, point_label, repeatability
from tracesim.calibrate.fit import assign_roles
from tracesim.errors import TracesimError

#: The model etcd of the fit tests, as a profile file would give it.
TRUTH_TOML = """[etcd]
client_rtt_ms = 0.25
peer_rtt_ms = 0.1
fsync_ms = 0.8
apply_us_per_request = 150.0
ns_per_byte = 20.0
"""


def _report(root: Path, name: str, points: pd.DataFrame) -> Path:
    """A calibration report directory holding ``points`` (roles assigned as a fit does)."""
    report = root / name
    report.mkdir()
    assign_roles(points.drop(columns="role", errors="ignore")).to_parquet(report / "points.parquet")
    samples = pd.DataFrame({"point": [0], "round": [0], "kept": [True], "latency_ms": [1.0]})
    samples.to_parquet(report / "samples.parquet")
    (report / "calibration.json").write_text(json.dumps({"info": {}, "maintenance": {}}))
    return report


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Three runs of an etcd that is exactly the model etcd, and one of an etcd whose disk
    is four times slower."""
    root = tmp_path_factory.mktemp("runs")
    same = _synthetic_points(_model_etcd(), get_requests=200)
    slow = _synthetic_points(_model_etcd(fsync_ms=3.2), get_requests=200)
    out = {f"same{i}": _report(root, f"same{i}-calibration", same) for i in range(3)}
    out["slow"] = _report(root, "slow-calibration", slow)
    (root / "truth.toml").write_text(TRUTH_TOML)
    out["profile"] = root / "truth.toml"
    return out


def test_a_profile_predicts_the_etcd_it_describes_and_not_another(runs):
    summary, tables = check_profile(_model_etcd(), load_runs([runs["same0"], runs["slow"]]))
    same, slow = summary.iloc[0], summary.iloc[1]
    assert same["held_out"] > 0 and same["held_out_within"] == same["held_out"]
    assert same["all_within"] == same["all"] and same["misses"] == ""
    # A four times slower fdatasync: the puts at few in flight are slower than predicted.
    assert slow["held_out_within"] < slow["held_out"]
    assert "put 400 B at 2" in slow["misses"] and "get" not in slow["misses"]
    assert set(tables) == {str(runs["same0"]), str(runs["slow"])}
    assert len(tables[str(runs["slow"])]) == slow["all"] // 3


def test_repeatability_names_the_run_that_differs(runs):
    reports = [runs["same0"], runs["same1"], runs["same2"], runs["slow"]]
    agree = repeatability(load_runs(reports))
    for i in range(3):  # the others' median is the same etcd (two of three runs)
        assert agree.iloc[i]["held_out_within"] == agree.iloc[i]["held_out"]
    odd = agree.iloc[3]
    assert odd["held_out_within"] < odd["held_out"] and "put 400 B at 2" in odd["misses"]
    with pytest.raises(TracesimError, match="at least two"):
        repeatability(load_runs(reports[:1]))


def test_repeatability_refuses_runs_of_different_plans(runs, tmp_path):
    fewer = pd.read_parquet(runs["same0"] / "points.parquet").iloc[:-1]
    other = _report(tmp_path, "fewer-calibration", fewer)
    with pytest.raises(TracesimError, match="measured other points"):
        repeatability(load_runs([runs["same0"], other]))


def test_point_labels_name_size_and_concurrency():
    put = {"phase": "write", "value_bytes": 16_000, "concurrency": 128}
    assert point_label(put) == "put 16 kB at 128"
    assert point_label({**put, "value_bytes": 1_000_000}) == "put 1 MB at 128"
    get = {"phase": "read", "op": "range", "consistency": "serializable", "keys_per_request": 100}
    assert point_label({**get, "concurrency": 1}) == "range serializable 100 keys at 1"


def test_cli_checks_a_profile_plots_and_compares_the_runs(runs, tmp_path, capsys):
    plots = tmp_path / "plots"
    args = ["calibrate", "check", "--profile", str(runs["profile"]), "--plot-dir", str(plots)]
    reports = [str(runs["same0"]), str(runs["same1"]), str(runs["slow"])]
    assert _cli([*args, "--quiet", *reports]) == 0
    out = capsys.readouterr().out
    assert "median of the other runs" in out
    assert f"profile misses on {runs['slow']}: " in out
    assert f"profile misses on {runs['same0']}" not in out
    assert sorted(p.name for p in plots.iterdir()) == [
        "1-same0-calibration.png",
        "2-same1-calibration.png",
        "3-slow-calibration.png",
    ]


def test_cli_bad_input_is_one_line(runs, tmp_path, capsys):
    def one_line_error(args: list[str], text: str) -> None:
        assert _cli(["calibrate", "check", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0], err

    one_line_error([str(runs["same0"])], "give --profile FILE.toml")
    two = [str(runs["same0"]), str(runs["same1"])]
    one_line_error([*two, "--plot-dir", str(tmp_path)], "give --profile too")
    one_line_error(
        ["--profile", str(runs["profile"]), str(tmp_path)], "not a calibration report directory"
    )
    one_line_error(["--profile", str(tmp_path / "none.toml"), str(runs["same0"])], "does not exist")
    one_line_error([*two, str(runs["same0"])], "is given twice")
