"""Paths that are not readable traces: the library raises one-line TraceErrors, the CLI exits 2
with ONE line on stderr naming the file and the problem, no traceback, and reading never
changes a byte of what it reads."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tracesim.errors import TraceError
from tracesim.trace import TraceWriter, open_trace

ROOT = Path(__file__).resolve().parents[1]
_SCRIPT = ROOT / ".venv" / "bin" / "tracesim"
# The console script of the project's venv; ``python -m tracesim`` where there is none.
TRACESIM = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tracesim"]
T0_US = 1_715_677_200_000_000


def _good_trace(path: Path) -> Path:
    """A small complete trace of three Parquet parts."""
    with TraceWriter(path, "synthetic", rotate_bytes=1, journal=False) as w:
        for part in range(3):
            w.write_rows(
                [
                    {"ts": T0_US + (part * 10 + i) * 1000, "kind": "Pod", "event_type": "ADDED",
                     "namespace": "ns", "name": f"p{part}-{i}", "size_bytes": 500,
                     "req_cpu_milli": 100 * i}
                    for i in range(10)
                ]
            )  # fmt: skip
    return path


def _set_manifest(key: str, value: object) -> Callable[[Path], Path]:
    def apply(trace: Path) -> Path:
        m = json.loads((trace / "manifest.json").read_text())
        if value is _DELETE:
            del m[key]
        else:
            m[key] = value
        (trace / "manifest.json").write_text(json.dumps(m))
        return trace / "manifest.json"

    return apply


_DELETE = object()


def _not_a_directory(trace: Path) -> Path:
    shutil.rmtree(trace)
    trace.write_text("just a file\n")
    return trace


def _no_manifest(trace: Path) -> Path:
    (trace / "manifest.json").unlink()
    return trace / "manifest.json"


def _malformed_manifest(trace: Path) -> Path:
    text = (trace / "manifest.json").read_text()
    (trace / "manifest.json").write_text(text[: len(text) // 2])
    return trace / "manifest.json"


def _binary_manifest(trace: Path) -> Path:
    (trace / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    return trace / "manifest.json"


def _truncated_part(trace: Path) -> Path:
    part = trace / "events" / "part-00001.parquet"
    os.truncate(part, part.stat().st_size // 2)
    return part


def _garbage_part(trace: Path) -> Path:
    part = trace / "events" / "part-00002.parquet"
    part.write_bytes(random.Random(0).randbytes(3000))
    return part


def _empty_part(trace: Path) -> Path:
    part = trace / "events" / "part-00000.parquet"
    part.write_bytes(b"")
    return part


def _part_missing_columns(trace: Path) -> Path:
    part = trace / "events" / "part-00001.parquet"
    table = pq.read_table(part).drop_columns(["kind", "size_bytes"])
    pq.write_table(table, part)
    return part


def _part_with_wrong_types(trace: Path) -> Path:
    part = trace / "events" / "part-00001.parquet"
    table = pq.read_table(part)
    i = table.column_names.index("size_bytes")  # a column ``tracesim info`` reads
    table = table.set_column(i, "size_bytes", pa.array([f"{j}B" for j in range(table.num_rows)]))
    pq.write_table(table, part)
    return part


def _foreign_journal(trace: Path) -> Path:
    # A readable Arrow stream, but of other columns: not something a writer of ours left.
    journal = trace / "events" / "part-00003.journal"
    table = pa.table({"x": [1, 2]})
    with pa.OSFile(str(journal), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return journal


def _missing_path(trace: Path) -> Path:
    shutil.rmtree(trace)
    return trace


# name -> (corruption, words the message must contain besides the file name)
CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "not_a_directory": (_not_a_directory, ("not a trace",)),
    "missing_path": (_missing_path, ("no such trace directory",)),
    "no_manifest": (_no_manifest, ("missing",)),
    "malformed_json": (_malformed_manifest, ("malformed JSON",)),
    "binary_manifest": (_binary_manifest, ("malformed JSON",)),
    "manifest_not_object": (lambda t: _write(t / "manifest.json", "[1, 2]"), ("not a tracesim",)),
    "version_99": (_set_manifest("format_version", 99), ("version 99", "upgrade")),
    "version_string": (_set_manifest("format_version", "1"), ("format_version", "integer")),
    "version_missing": (_set_manifest("format_version", _DELETE), ("format_version", "integer")),
    "version_zero": (_set_manifest("format_version", 0), ("version 0",)),
    "wrong_format": (_set_manifest("format", "something-else"), ("not a tracesim",)),
    "truncated_part": (_truncated_part, ("Parquet",)),
    "garbage_part": (_garbage_part, ("Parquet",)),
    "empty_part": (_empty_part, ("Parquet",)),
    "part_missing_columns": (_part_missing_columns, ("missing required columns", "kind")),
    "part_wrong_types": (_part_with_wrong_types, ("Parquet",)),
    "foreign_journal": (_foreign_journal, ("not a journal",)),
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# The bad inputs the issue names run through a real ``tracesim`` process; the others only
# through ``main()`` in this process (a process start costs ~0.5 s, mostly importing pandas).
SUBPROCESS_CASES = [
    "not_a_directory",
    "no_manifest",
    "malformed_json",
    "version_99",
    "version_string",
    "version_missing",
    "truncated_part",
    "garbage_part",
    "part_missing_columns",
]


def _snapshot(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or the file itself) -> sha256 of its bytes."""
    if not path.exists():
        return {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Build every broken trace, then run the CLI on all of them at once (2 cores: the
    process start-up is most of the cost)."""
    base = tmp_path_factory.mktemp("bad")
    good = _good_trace(base / "good")
    built: dict[str, dict[str, object]] = {}
    for name, (corrupt, words) in CASES.items():
        trace = base / name
        shutil.copytree(good, trace)
        named = corrupt(trace)
        built[name] = {"trace": trace, "named": named, "words": words}
    before = {name: _snapshot(c["trace"]) for name, c in built.items()}  # type: ignore[arg-type]
    procs = {}
    for i, name in enumerate(SUBPROCESS_CASES):
        c = built[name]
        # Alternate the console script and ``python -m tracesim``: both are entry points.
        cmd = TRACESIM if i % 2 == 0 else [sys.executable, "-m", "tracesim"]
        procs[name] = subprocess.Popen(
            [*cmd, "info", str(c["trace"])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
    procs["__good__"] = subprocess.Popen(
        [*TRACESIM, "info", "--json", str(good)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    built["__good__"] = {"trace": good}
    before["__good__"] = _snapshot(good)
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        built[name].update(rc=proc.returncode, stdout=out, stderr=err)
    for name, c in built.items():
        c["before"] = before[name]
    return built


@pytest.mark.parametrize("name", list(CASES))
def test_library_raises_one_line_trace_error(cases: dict, name: str) -> None:
    c = cases[name]
    before = _snapshot(c["trace"])
    with pytest.raises(TraceError) as info:
        trace = open_trace(c["trace"])
        trace.to_arrow()  # a part may only fail when its data is read
    message = str(info.value)
    assert "\n" not in message
    assert str(c["named"]) in message
    for word in c["words"]:
        assert word in message
    assert _snapshot(c["trace"]) == before


def _check_cli_result(c: dict, rc: int, stdout: str, stderr: str) -> None:
    assert rc == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, c["stderr"]
    assert lines[0].startswith("error: ")
    assert str(c["named"]) in lines[0]
    for word in c["words"]:
        assert word in lines[0]
    assert stdout == ""
    assert _snapshot(c["trace"]) == c["before"]  # the CLI changed nothing either


@pytest.mark.parametrize("name", SUBPROCESS_CASES)
def test_cli_process_exits_2_with_one_line(cases: dict, name: str) -> None:
    c = cases[name]
    _check_cli_result(c, c["rc"], c["stdout"], c["stderr"])


@pytest.mark.parametrize("name", list(CASES))
def test_cli_main_exits_2_with_one_line(
    cases: dict, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from tracesim.cli import main

    c = cases[name]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(c["trace"])])
    out, err = capsys.readouterr()
    _check_cli_result(c, exit_info.value.code, out, err)


def test_good_trace_reads_and_cli_succeeds(cases: dict) -> None:
    c = cases["__good__"]
    assert c["rc"] == 0, c["stderr"]
    info = json.loads(c["stdout"])
    assert info["events"]["rows"] == 30 and info["complete"] is True
    assert open_trace(c["trace"]).count() == 30
    assert _snapshot(c["trace"]) == c["before"]


def test_garbage_journal_reads_as_no_rows(tmp_path: Path) -> None:
    # A journal is the part a crashed writer was writing: unreadable bytes mean the crash
    # came before its first batch, not an error.
    good = _good_trace(tmp_path / "good")
    (good / "events" / "part-00003.journal").write_bytes(random.Random(1).randbytes(500))
    before = _snapshot(good)
    trace = open_trace(good)
    assert trace.count() == 30 and not trace.complete
    assert _snapshot(good) == before
