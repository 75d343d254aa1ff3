"""``tracesim repair``: finish a trace whose writer died (kill -9, power loss, OOM).

Reading never modifies a trace (a reader reads a leftover journal up to its last complete
batch); repair does: each journal without its Parquet part becomes that part (temporary file,
fsync, rename, then the journal goes), a journal whose part exists is removed, stray
temporary files are removed, and the manifest is rebuilt from the parts on disk (rows, files,
time span, per-kind counts) with ``status: "complete"`` and a ``repair`` record of what was
done. A trace still held by a running recorder is refused.
"""

from __future__ import annotations

import fcntl
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import TraceError
from .manifest import MANIFEST_NAME, read_manifest, write_json_atomic
from .reader import _read_journal
from .writer import EVENTS_DIR, PARQUET_OPTIONS, _fsync_dir

RECORDER_LOCK = ".recorder.lock"
_PART_RE = re.compile(r"^part-(\d+)\.(parquet|journal)$")


def _check_not_recording(path: Path) -> None:
    lock = path / RECORDER_LOCK
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise TraceError(
            f"{path}: a recorder is still writing this trace; stop it (Ctrl-C) instead"
        ) from None
    finally:
        os.close(fd)
    lock.unlink()  # left by a recorder that died: nobody holds it


def _write_part(table: pa.Table, final: Path) -> None:
    tmp = final.with_name(final.name + ".tmp")
    pq.write_table(table, tmp, **PARQUET_OPTIONS)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _summarise(parts: list[Path]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """(kinds, files, time_span) of the manifest, computed from the parts."""
    kinds: dict[str, dict[str, Any]] = {}
    files = []
    first = last = None
    for part in parts:
        table = pq.read_table(part, columns=["ts", "kind", "event_type", "size_bytes"])
        if table.num_rows == 0:
            continue
        ts = table.column("ts")
        lo, hi = pc.min(ts).as_py(), pc.max(ts).as_py()
        first = lo if first is None else min(first, lo)
        last = hi if last is None else max(last, hi)
        files.append(
            {
                "path": f"{EVENTS_DIR}/{part.name}",
                "rows": table.num_rows,
                "start": lo.isoformat(),
                "end": hi.isoformat(),
            }
        )
        grouped = table.group_by(["kind", "event_type"]).aggregate(
            [("ts", "count"), ("size_bytes", "sum")]
        )
        for kind, etype, count, size in zip(
            grouped.column("kind").to_pylist(),
            grouped.column("event_type").to_pylist(),
            grouped.column("ts_count").to_pylist(),
            grouped.column("size_bytes_sum").to_pylist(),
            strict=True,
        ):
            entry = kinds.setdefault(str(kind), {"rows": 0, "bytes": 0, "event_types": {}})
            entry["rows"] += count
            entry["bytes"] += size or 0
            entry["event_types"][etype] = entry["event_types"].get(etype, 0) + count
    span: dict[str, Any] = {}
    if first is not None and last is not None:
        span = {
            "start": first.isoformat(),
            "end": last.isoformat(),
            "duration_s": (last - first).total_seconds(),
        }
    return dict(sorted(kinds.items())), files, span


def repair_trace(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Repair the trace at ``path`` in place. Returns what was done: ``journals`` converted,
    ``rows_recovered`` from them, ``removed`` stray files, ``previous_status``, and
    ``changed`` (False when the trace was already complete and needed nothing)."""
    trace_dir = Path(path)
    manifest = read_manifest(trace_dir)
    _check_not_recording(trace_dir)
    events = trace_dir / EVENTS_DIR
    found: dict[int, dict[str, Path]] = {}
    removed: list[str] = []
    if events.is_dir():
        for entry in sorted(events.iterdir()):
            match = _PART_RE.match(entry.name)
            if match:
                found.setdefault(int(match[1]), {})[match[2]] = entry
            elif entry.name.endswith(".tmp"):
                entry.unlink()  # an unfinished part conversion: its journal is still there
                removed.append(entry.name)
    converted: list[str] = []
    recovered = 0
    for index in sorted(found):
        files = found[index]
        journal = files.get("journal")
        if journal is None:
            continue
        if "parquet" in files:
            journal.unlink()  # the writer died between rename and unlink
            removed.append(journal.name)
            continue
        table = _read_journal(journal)
        if table.num_rows:
            _write_part(table, journal.with_suffix(".parquet"))
            recovered += table.num_rows
        converted.append(journal.name)
        journal.unlink()
    previous = manifest.get("status")
    report: dict[str, Any] = {
        "journals": converted,
        "rows_recovered": recovered,
        "removed": removed,
        "previous_status": previous,
        "changed": bool(converted or removed or previous != "complete"),
    }
    if not report["changed"]:
        return report
    parts = sorted(
        (p for p in events.glob("part-*.parquet") if _PART_RE.match(p.name)),
        key=lambda p: int(_PART_RE.match(p.name)[1]),  # type: ignore[index]
    )
    kinds, file_list, span = _summarise(parts)
    manifest["status"] = "complete"
    manifest["kinds"] = kinds
    manifest["events"] = {"rows": sum(f["rows"] for f in file_list), "files": file_list}
    manifest["time_span"] = span or None
    manifest["repair"] = {
        "at": datetime.now(UTC).isoformat(),
        "previous_status": previous,
        "journals_converted": converted,
        "rows_recovered": recovered,
    }
    write_json_atomic(trace_dir / MANIFEST_NAME, manifest)
    return report
