"""Trace.to_arrow_by_kind: several kinds, each with its own columns, in one pass."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tracesim.trace.reader import open_trace
from tracesim.trace.schema import SCHEMA
from tracesim.trace.writer import TraceWriter

T0_US = 1_767_600_000 * 1_000_000
KINDS = ["Pod", "Node", "Event", "Lease", None]


def _table(start_s: float, n: int) -> pa.Table:
    rows = range(n)
    return pa.table(
        {
            "ts": pa.array([T0_US + round((start_s + i * 0.5) * 1e6) for i in rows], pa.int64()),
            "kind": pa.array([KINDS[i % len(KINDS)] for i in rows], pa.string()),
            "event_type": pa.array(["ADDED", "MODIFIED", "GAP"][i % 3] for i in rows),
            "name": pa.array([f"o{i % 7}" for i in rows]),
            "uid": pa.array([None if i % 4 == 0 else f"u{i}" for i in rows], pa.string()),
            "size_bytes": pa.array([100 + i for i in rows], pa.int64()),
            "alloc_pods": pa.array([i for i in rows], SCHEMA.field("alloc_pods").type),
            "labels": pa.array([[f"k={i}"] for i in rows], SCHEMA.field("labels").type),
        }
    )


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three Parquet parts (a 10 s rotation) and a journal left by a writer still running."""
    path = tmp_path_factory.mktemp("reader") / "t"
    with TraceWriter(path, "synthetic", journal=False, rotate_s=10.0) as w:
        w.write_table(_table(0.0, 60))
    tail = TraceWriter(path / "tail", "synthetic", journal=True)
    tail.write_table(_table(30.0, 11))
    tail.flush()  # left unclosed: a journal
    journal = next((path / "tail" / "events").glob("*.journal"))
    journal.rename(path / "events" / "part-00099.journal")
    return path


@pytest.mark.parametrize(
    "window", [(None, None), (T0_US + 5_000_000, None), (T0_US + 3_000_000, T0_US + 33_000_000)]
)
def test_each_kind_equals_its_own_scan(trace: Path, window) -> None:
    tr = open_trace(trace)
    assert len(tr.parts) == 3 and len(tr.journals) == 1
    start, end = window
    columns = {
        # event_type and namespace (absent from the files: nulls) are read dictionary-encoded
        "Pod": ["ts", "seq", "name", "uid", "labels", "event_type", "namespace"],
        "Node": ["ts", "name", "alloc_pods", "labels", "kind"],
        "Event": ["seq", "size_bytes"],
        "Secret": ["ts", "name"],  # no such rows
    }
    got = tr.to_arrow_by_kind(columns, start=start, end=end)
    assert list(got) == list(columns)
    for kind, cols in columns.items():
        want = tr.to_arrow(kinds=[kind], columns=cols, start=start, end=end)
        assert got[kind].schema == want.schema
        assert got[kind].equals(want)
        assert got[kind].column_names == cols
    assert got["Pod"].num_rows > 5 and got["Node"].num_rows > 5 and got["Secret"].num_rows == 0


def test_a_tuple_of_kinds_comes_together_in_trace_order(trace: Path) -> None:
    """A key of several kinds gets their rows interleaved as the trace has them; a kind may
    also be read on its own under another key (with other columns)."""
    tr = open_trace(trace)
    columns = {"Pod": ["ts", "name"], ("Event", "Pod"): ["seq", "kind", "uid"]}
    got = tr.to_arrow_by_kind(columns, start=T0_US + 2_000_000)
    assert list(got) == list(columns)
    want = tr.to_arrow(kinds=["Event", "Pod"], columns=["seq", "kind", "uid"], start=T0_US + 2e6)
    assert got[("Event", "Pod")].equals(want)
    assert set(want.column("kind").to_pylist()) == {"Event", "Pod"}
    assert got["Pod"].equals(tr.to_arrow(kinds=["Pod"], columns=["ts", "name"], start=T0_US + 2e6))
