"""Sweeps: grid, local processes vs a local Dask cluster, resume, failures, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tracesim.analysis import sweep as sw
from tracesim.analysis.sweep import (
    DONE,
    SweepSpec,
    load_state,
    load_table,
    parse_grid_settings,
    parse_int_list,
    replay_supports_profiles,
    run_sweep,
)
from tracesim.errors import TracesimError
from tracesim.sources.synth import SynthConfig, synthesize

SIZES = [20, 40, 80]


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic trace: 20 nodes, 5 minutes."""
    out = tmp_path_factory.mktemp("sweep") / "base"
    synthesize(SynthConfig(nodes=20, duration_s=300, seed=3, jobs_per_hour_per_1k_nodes=0), out)
    return out


def _spec(base: Path, **kw) -> SweepSpec:
    args = {
        "trace": str(base),
        "nodes": SIZES,
        "settings": {"cycle_time_s": ["0", "0.02"]},
        "seeds": [0, 1],
    }
    args.update(kw)
    return SweepSpec(**args)


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracesim", *args], capture_output=True, text=True, timeout=timeout
    )


def test_parsing() -> None:
    assert parse_int_list("1000, 2k,20000", "--nodes") == [1000, 2000, 20000]
    for bad in ("1000,x", "0", "1.5", "10,10"):
        with pytest.raises(TracesimError, match="--nodes"):
            parse_int_list(bad, "--nodes")
    assert parse_grid_settings(["etcd.fsync_ms=1,10", "cycle_time_s=0"]) == {
        "etcd.fsync_ms": ["1", "10"],
        "cycle_time_s": ["0"],
    }
    for bad in (["novalue"], ["k=1,,2"], ["k=1", "k=2"]):
        with pytest.raises(TracesimError, match="--set"):
            parse_grid_settings(bad)


def test_grid_and_run_ids(base: Path) -> None:
    runs = _spec(base).runs()
    assert len(runs) == 3 * 2 * 2
    ids = [r.run_id for r in runs]
    assert len(set(ids)) == len(ids)
    assert all(r.run_id == type(r).from_json(r.to_json()).run_id for r in runs)
    assert ids[0].startswith("n20-s0-cycle_time_s=0-")


@pytest.mark.slow
def test_local_processes_equal_local_dask_cluster(base: Path, tmp_path: Path) -> None:
    """The acceptance test: the same sweep on 2 local processes and on a local Dask cluster
    gives identical combined tables (and identical bytes of sweep.parquet)."""
    pytest.importorskip("distributed")
    spec = _spec(base)
    local = run_sweep(spec, tmp_path / "local", jobs=2)
    dask = run_sweep(spec, tmp_path / "dask", jobs=2, dask="local")
    assert "Dask" in dask.backend and "process" in local.backend
    assert not local.failed and not dask.failed
    pd.testing.assert_frame_equal(local.table, dask.table)
    a = (tmp_path / "local" / "sweep.parquet").read_bytes()
    assert a == (tmp_path / "dask" / "sweep.parquet").read_bytes()
    df = local.table
    assert len(df) == 12 and list(df["run_id"]) == [r.run_id for r in spec.runs()]
    # Each run replayed the trace scaled to its size, and the swept setting took effect.
    assert (df["nodes_at_end"] == df["nodes"]).all()
    assert (df["pods.total"].groupby(df["nodes"]).median().diff().dropna() > 0).all()
    p99 = df.groupby("cycle_time_s")["scheduling_latency_s.p99"].median()
    assert p99[0.02] > p99[0.0]
    # Scaled traces are cached per (size, seed); the base trace serves its own size.
    cached = sorted(p.name for p in (tmp_path / "local" / "traces").iterdir())
    assert cached == ["n40-s0", "n40-s1", "n80-s0", "n80-s1"]


def test_resume_after_interruption(base: Path, tmp_path: Path) -> None:
    spec = _spec(base, nodes=[20, 40], settings={})
    out = tmp_path / "s"
    calls = []

    def interrupt(done: int, total: int, run_id: str) -> None:
        calls.append(run_id)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, out, jobs=1, progress=interrupt)
    state = load_state(out)
    assert len(state.done) == 2 and len(state.missing) == 2 and not state.failed
    assert "2 of 4 runs done" in state.describe() and "missing" in state.describe()
    assert not (out / "sweep.parquet").exists()
    # The partial table is there for reports; a half-written leftover is ignored and removed.
    assert len(load_table(out)) == 2
    stale = out / "runs" / f".{state.missing[0].run_id}.tmp-deadbeef"
    stale.mkdir()
    (stale / "summary.json").write_text("{")
    ran = []
    res = run_sweep(spec, out, jobs=1, progress=lambda d, t, r: ran.append(r))
    assert res.skipped == 2 and res.ran == 2 and not res.failed
    assert [r for r in ran if r] == [r.run_id for r in state.missing]
    assert not stale.exists()
    fresh = run_sweep(spec, tmp_path / "fresh", jobs=1)
    pd.testing.assert_frame_equal(res.table, fresh.table)
    # A run whose DONE marker is gone counts as missing and is redone.
    (out / "runs" / state.done[0].run_id / DONE).unlink()
    assert [r.run_id for r in load_state(out).missing] == [state.done[0].run_id]
    assert run_sweep(spec, out, jobs=1).ran == 1


def test_failed_runs_are_recorded_and_retried(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(base, nodes=[20, 40], settings={}, seeds=[0])
    real = sw._call_replay

    def flaky(trace: str, run: sw.RunSpec):
        if run.nodes == 40:
            raise TracesimError("simulated failure at 40 nodes")
        return real(trace, run)

    monkeypatch.setattr(sw, "_call_replay", flaky)
    res = run_sweep(spec, tmp_path / "s", jobs=1)
    assert len(res.failed) == 1 and "simulated failure" in next(iter(res.failed.values()))
    assert len(res.table) == 1 and not (tmp_path / "s" / "sweep.parquet").exists()
    rid = next(iter(res.failed))
    assert (tmp_path / "s" / "runs" / rid / "error.txt").read_text().startswith("simulated")
    state = load_state(tmp_path / "s")
    assert list(state.failed) == [rid] and "1 failed" in state.describe()
    monkeypatch.setattr(sw, "_call_replay", real)
    again = run_sweep(spec, tmp_path / "s", jobs=1)
    assert again.ran == 1 and not again.failed and len(again.table) == 2
    assert (tmp_path / "s" / "sweep.parquet").is_file()


def test_bad_input_fails_before_running(base: Path, tmp_path: Path) -> None:
    with pytest.raises(TracesimError, match="unknown --set key"):
        run_sweep(_spec(base, settings={"no_such_key": ["1"]}), tmp_path / "a")
    with pytest.raises(TracesimError):
        run_sweep(_spec(base, trace=str(tmp_path)), tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "other.txt").write_text("x")
    with pytest.raises(TracesimError, match="not a sweep directory"):
        run_sweep(_spec(base), tmp_path / "c")
    with pytest.raises(TracesimError, match="not a sweep directory"):
        load_state(tmp_path / "c")
    with pytest.raises(TracesimError, match="--jobs"):
        run_sweep(_spec(base), tmp_path / "d", jobs=0)
    assert not (tmp_path / "a" / "runs").exists()


@pytest.mark.slow
def test_cli_sweep_and_bad_input(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    res = run("sweep", str(base), "--nodes", "20,40", "--jobs", "1", "--quiet", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout and (out / "sweep.parquet").is_file()
    assert len(pd.read_parquet(out / "sweep.parquet")) == 2
    again = run("sweep", str(base), "--nodes", "20,40", "--quiet", "--out", str(out))
    assert again.returncode == 0 and "0 ran, 2 were already done" in again.stdout
    for args, needle in (
        (["--nodes", "20,abc"], "--nodes"),
        (["--nodes", "20", "--set", "bogus=1"], "unknown --set key"),
        (["--nodes", "20", "--duration-limit", "soon"], "--duration-limit"),
        (["--nodes", "20", "--dask", "not-an-address"], "--dask"),
    ):
        bad = run("sweep", str(base), *args, "--out", str(tmp_path / "bad"))
        assert bad.returncode == 2, bad.stderr
        assert needle in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_unreachable_dask_scheduler_fails_fast(base: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    t0 = time.monotonic()
    res = run(
        "sweep", str(base), "--nodes", "20", "--dask", "tcp://127.0.0.1:9", "--out",
        str(tmp_path / "x"),
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    assert res.returncode == 2
    assert res.stderr.startswith("error: --dask tcp://127.0.0.1:9: no Dask scheduler")
    assert len(res.stderr.strip().splitlines()) == 1
    assert elapsed < 15, f"took {elapsed:.1f} s"
    assert not (tmp_path / "x" / "runs").exists() or not any((tmp_path / "x" / "runs").iterdir())


@pytest.mark.slow
def test_profiles_sweep_records_control_plane_columns(base: Path, tmp_path: Path) -> None:
    if not replay_supports_profiles():
        pytest.skip("replay has no --profile in this tracesim")
    spec = _spec(
        base,
        nodes=[20, 40],
        profiles=["current", "2019-era"],
        settings={"etcd.fsync_ms": ["1", "20"]},
        seeds=[0],
    )
    res = run_sweep(spec, tmp_path / "p", jobs=2)
    assert not res.failed and len(res.table) == 8
    df = res.table
    assert set(df["profile"]) == {"current", "2019-era"}
    col = "control_plane.slo.slos.mutating.worst_p99_s"
    assert col in df.columns
    worse = df.groupby("etcd.fsync_ms")[col].median()
    assert worse[20] > worse[1]
    saved = json.loads((tmp_path / "p" / "sweep.json").read_text())
    assert saved["profiles"] == ["current", "2019-era"]
    shutil.rmtree(tmp_path / "p" / "traces")
