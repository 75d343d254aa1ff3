"""The command line: synth -> info round trip, JSON output, plots, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tracesim import __version__, open_trace
from tracesim.cli.options import parse_duration_s
from tracesim.trace.schema import COLUMN_NAMES

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracesim", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "t"
    res = run("synth", "--nodes", "30", "--duration", "10m", "--seed", "2", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout and "30 nodes" in res.stdout
    return out


def test_version() -> None:
    res = run("--version")
    assert res.returncode == 0
    assert __version__ in res.stdout


def test_info_json_matches_trace(small_trace: Path) -> None:
    res = run("info", str(small_trace), "--json", "--top", "3")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    trace = open_trace(small_trace)
    assert info["nodes"] == 30
    assert info["events"]["rows"] == trace.count()
    assert info["source"]["kind"] == "synthetic"
    for kind, k in info["kinds"].items():
        assert k["rows"] == trace.count(kinds=[kind])
        assert k["rows"] == sum(k["event_types"].values())
        assert k["rows"] == trace.manifest["kinds"][kind]["rows"]
    assert info["kinds"]["Lease"]["events_per_s"] == pytest.approx(30 / 10, rel=0.05)
    sizes = [row["size_bytes"] for row in info["largest"]]
    assert len(sizes) == 3 and sizes == sorted(sizes, reverse=True)
    assert len({(r["kind"], r["namespace"], r["name"]) for r in info["largest"]}) == 3
    assert info["span"]["duration_s"] == pytest.approx(600, abs=1)


def test_info_text_and_plot(small_trace: Path, tmp_path: Path) -> None:
    png = tmp_path / "rates.png"
    res = run("info", str(small_trace), "--plot", str(png))
    assert res.returncode == 0, res.stderr
    assert "Lease" in res.stdout and "largest objects" in res.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000


def test_synth_refuses_to_overwrite_without_force(small_trace: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    assert run("synth", "--nodes", "3", "--duration", "1m", "--out", str(target)).returncode == 0
    res = run("synth", "--nodes", "3", "--duration", "1m", "--out", str(target))
    assert res.returncode == 2
    assert "not empty" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    res = run("synth", "--nodes", "4", "--duration", "1m", "--out", str(target), "--force")
    assert res.returncode == 0, res.stderr
    assert open_trace(target).manifest["cluster"]["nodes"] == 4


def test_synth_will_not_overwrite_a_non_trace(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    res = run("synth", "--nodes", "3", "--duration", "1m", "--out", str(tmp_path), "--force")
    assert res.returncode == 2
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "ten minutes"], "not a duration"),
        (["--nodes", "0"], "--nodes"),
        (["--resources", "pods,secrets"], "secrets"),
        (["--start", "yesterday"], "--start"),
        (["--heartbeat", "udp"], "udp"),
    ],
)
def test_synth_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    res = run("synth", "--out", str(tmp_path / "t"), *args)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_parse_duration() -> None:
    assert parse_duration_s("90") == 90
    assert parse_duration_s("30m") == 1800
    assert parse_duration_s("1h30m") == 5400
    assert parse_duration_s("2d") == 172_800
    assert parse_duration_s("1.5h") == 5400


def test_every_column_is_documented() -> None:
    doc = (ROOT / "docs" / "trace-format.md").read_text()
    missing = [c for c in COLUMN_NAMES if f"`{c}`" not in doc]
    assert not missing, f"document these columns in docs/trace-format.md: {missing}"


def test_bundled_sample_is_a_complete_trace() -> None:
    trace = open_trace(ROOT / "traces" / "sample")
    assert trace.complete
    assert trace.manifest["source"]["config"]["nodes"] == 200
    assert sum(f.stat().st_size for f in (ROOT / "traces" / "sample").rglob("*")) < 5 * 2**20


def test_bundled_sample_is_what_make_sample_makes(tmp_path: Path) -> None:
    """The committed sample is reproducible from its manifest (else: run `make sample`)."""
    sample = ROOT / "traces" / "sample"
    cfg = open_trace(sample).manifest["source"]["config"]
    out = tmp_path / "again"
    res = run(
        "synth",
        "--nodes",
        str(cfg["nodes"]),
        "--duration",
        f"{cfg['duration_s']:g}",
        "--seed",
        str(cfg["seed"]),
        "--out",
        str(out),
        "-q",
    )
    assert res.returncode == 0, res.stderr
    for part in sorted((sample / "events").iterdir()):
        again = out / "events" / part.name
        assert again.read_bytes() == part.read_bytes(), "stale sample: run `make sample`"
