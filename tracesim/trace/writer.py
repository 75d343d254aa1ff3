"""Append-only, rotating, crash-safe writer of trace events.

Layout of a trace directory::

    manifest.json
    events/part-00000.parquet       complete, time-ordered parts
    events/part-00001.parquet
    events/part-00002.journal       the part being written (Arrow IPC stream), if journaling

With journaling on (the recorder's mode) every :meth:`TraceWriter.flush` appends the pending
rows to the journal of the current part and fsyncs it, so a crash loses only rows not yet
flushed. When a part is full (``rotate_bytes`` of Arrow data or ``rotate_s`` of trace time) the
journal is converted to Parquet in a temporary file, fsynced and renamed; only then is the
journal removed. At every instant each row is in a complete file: the journal, the Parquet
part, or (between rename and unlink) both, and readers skip a journal whose part exists.
Producers that can regenerate their data (synth, importers) turn journaling off and write
Parquet parts directly, still by temporary file and rename.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..errors import TraceError
from .manifest import MANIFEST_NAME, new_manifest, write_json_atomic
from .schema import COLUMN_NAMES, SCHEMA

EVENTS_DIR = "events"
PART_PATTERN = "part-{:05d}"
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "row_group_size": 128 * 1024}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def conform(data: pa.Table | pa.RecordBatch) -> pa.Table:
    """Cast ``data`` to the trace schema: known columns cast, missing ones null, order fixed.

    ``ts`` and ``lease_renew_time`` may be given as int64 microseconds since the epoch.
    Raises ``ValueError`` on a column the schema does not know.
    """
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    unknown = set(table.column_names) - set(COLUMN_NAMES)
    if unknown:
        raise ValueError(f"columns not in the trace schema: {', '.join(sorted(unknown))}")
    n = table.num_rows
    arrays = []
    for field in SCHEMA:
        if field.name not in table.column_names:
            arrays.append(pa.nulls(n, field.type))
            continue
        col = table.column(field.name)
        if pa.types.is_timestamp(field.type) and pa.types.is_integer(col.type):
            col = col.cast(pa.int64()).cast(field.type)
        arrays.append(col.cast(field.type) if col.type != field.type else col)
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


class TraceWriter:
    """Writes a new trace directory. Use as a context manager, or call :meth:`close`.

    Rows must arrive in time order across calls (within one call they are sorted by ``ts``,
    stably). The writer assigns ``seq``.

    Parameters
    ----------
    path: the trace directory to create; it must not exist or be empty (unless ``overwrite``).
    source_kind: ``recorded``, ``imported``, ``synthetic`` or ``derived``.
    source, cluster, options: free-form manifest sections (generator parameters, cluster
        facts, redaction options...).
    journal: append flushed rows to an fsynced journal (crash safety) instead of memory.
    rotate_bytes: start a new part after this many bytes of Arrow data.
    rotate_s: start a new part after this much trace time, seconds.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        source_kind: str,
        *,
        source: dict[str, Any] | None = None,
        cluster: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        journal: bool = True,
        rotate_bytes: int = 256 * 1024 * 1024,
        rotate_s: float = 3600.0,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise TraceError(f"{self.path}: exists and is not a directory; choose another --out")
        if self.path.is_dir() and any(self.path.iterdir()):
            if not overwrite:
                raise TraceError(
                    f"{self.path}: directory is not empty; choose another --out or overwrite it"
                )
            if not (self.path / MANIFEST_NAME).is_file():
                raise TraceError(f"{self.path}: not a trace; refusing to overwrite it")
            shutil.rmtree(self.path)
        self.events_dir = self.path / EVENTS_DIR
        self.events_dir.mkdir(parents=True, exist_ok=True)
        self.manifest = new_manifest(source_kind, source=source, cluster=cluster, options=options)
        write_json_atomic(self.path / MANIFEST_NAME, self.manifest)
        self.journal = journal
        self.rotate_bytes = rotate_bytes
        self.rotate_us = int(rotate_s * 1e6)
        self._pending: list[pa.Table] = []
        self._part_tables: list[pa.Table] = []  # current part, when not journaling
        self._part_index = 0
        self._part_bytes = 0
        self._part_start_us: int | None = None
        self._journal_sink: pa.ipc.RecordBatchStreamWriter | None = None
        self._journal_file: Any = None
        self._next_seq = 0
        self._last_ts_us: int | None = None
        self._first_ts_us: int | None = None
        self._files: list[dict[str, Any]] = []
        self._kinds: dict[str, dict[str, Any]] = {}
        self._closed = False

    # -- appending ---------------------------------------------------------------------------
    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        """Append rows made by :func:`tracesim.trace.objects.object_row` (or alike)."""
        if rows:
            self.write_table(pa.Table.from_pylist(rows, schema=SCHEMA))

    def write_table(self, data: pa.Table | pa.RecordBatch) -> None:
        """Append a table of events (a subset of the schema's columns)."""
        if self._closed:
            raise ValueError("writer is closed")
        table = conform(data)
        if table.num_rows == 0:
            return
        if table.column("ts").null_count:
            raise ValueError("every event needs a timestamp (ts is null)")
        ts = table.column("ts").cast(pa.int64()).to_numpy()
        if (np.diff(ts) < 0).any():
            order = np.argsort(ts, kind="stable")
            table, ts = table.take(order), ts[order]
        if self._last_ts_us is not None and ts[0] < self._last_ts_us:
            raise ValueError(
                "events must be appended in time order: got a row at "
                f"{ts[0]} us after one at {self._last_ts_us} us"
            )
        n = table.num_rows
        seq = pa.array(np.arange(self._next_seq, self._next_seq + n, dtype=np.int64))
        table = table.set_column(SCHEMA.get_field_index("seq"), SCHEMA.field("seq"), seq)
        self._next_seq += n
        self._first_ts_us = int(ts[0]) if self._first_ts_us is None else self._first_ts_us
        self._last_ts_us = int(ts[-1])
        self._account(table)
        # Split at every rotation boundary so parts cover fixed spans of trace time, however
        # long the span of this call (a part starts at its first row).
        while True:
            part_start = int(ts[0]) if self._part_start_us is None else self._part_start_us
            cut = int(np.searchsorted(ts, part_start + self.rotate_us, side="left"))
            if self._part_start_us is None:
                cut = max(cut, 1)  # a new part takes at least one row (rotate_s=0 terminates)
            if cut >= table.num_rows:
                break
            if cut > 0:
                self._append(table.slice(0, cut))
            self._roll()
            table, ts = table.slice(cut), ts[cut:]
        self._append(table)
        if self._part_bytes >= self.rotate_bytes:
            self._roll()

    def _append(self, table: pa.Table) -> None:
        if self._part_start_us is None:
            self._part_start_us = int(table.column("ts")[0].value)
        self._part_bytes += table.nbytes
        if self.journal:
            self._pending.append(table)
        else:
            self._part_tables.append(table)

    def _account(self, table: pa.Table) -> None:
        grouped = table.group_by(["kind", "event_type"]).aggregate(
            [("seq", "count"), ("size_bytes", "sum")]
        )
        for kind, etype, count, size in zip(
            grouped.column("kind").to_pylist(),
            grouped.column("event_type").to_pylist(),
            grouped.column("seq_count").to_pylist(),
            grouped.column("size_bytes_sum").to_pylist(),
            strict=True,
        ):
            entry = self._kinds.setdefault(str(kind), {"rows": 0, "bytes": 0, "event_types": {}})
            entry["rows"] += count
            entry["bytes"] += size or 0
            entry["event_types"][etype] = entry["event_types"].get(etype, 0) + count

    # -- durability --------------------------------------------------------------------------
    def _part_path(self, suffix: str) -> Path:
        return self.events_dir / (PART_PATTERN.format(self._part_index) + suffix)

    def flush(self) -> None:
        """Make every row appended so far durable (journal mode); no-op otherwise."""
        if not self.journal or not self._pending:
            return
        if self._journal_sink is None:
            self._journal_file = open(self._part_path(".journal"), "wb")  # noqa: SIM115
            self._journal_sink = pa.ipc.new_stream(self._journal_file, SCHEMA)
        for table in self._pending:
            self._journal_sink.write_table(table)
        self._pending.clear()
        self._journal_file.flush()
        os.fsync(self._journal_file.fileno())

    def _roll(self) -> None:
        """Turn the current part into a Parquet file."""
        if self.journal:
            self.flush()
            if self._journal_sink is None:
                return
            self._journal_sink.close()
            self._journal_file.close()
            self._journal_sink = self._journal_file = None
            journal_path = self._part_path(".journal")
            with pa.memory_map(str(journal_path)) as source:
                table = pa.ipc.open_stream(source).read_all()
        else:
            if not self._part_tables:
                return
            table = pa.concat_tables(self._part_tables)
            self._part_tables = []
        final = self._part_path(".parquet")
        tmp = self._part_path(".parquet.tmp")
        pq.write_table(table, tmp, **PARQUET_OPTIONS)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.events_dir)
        if self.journal:
            journal_path.unlink()
        ts = table.column("ts")
        self._files.append(
            {
                "path": f"{EVENTS_DIR}/{final.name}",
                "rows": table.num_rows,
                "start": pc.min(ts).as_py().isoformat(),
                "end": pc.max(ts).as_py().isoformat(),
            }
        )
        self._part_index += 1
        self._part_bytes = 0
        self._part_start_us = None

    # -- closing -----------------------------------------------------------------------------
    def close(self, *, cluster: dict[str, Any] | None = None, status: str = "complete") -> Path:
        """Write the last part and the final manifest. Returns the trace directory."""
        if self._closed:
            return self.path
        self._roll()
        self._closed = True
        m = self.manifest
        m["status"] = status
        if cluster:
            m["cluster"].update(cluster)
        if self._first_ts_us is not None:
            start = pa.scalar(self._first_ts_us, pa.timestamp("us", tz="UTC")).as_py()
            end = pa.scalar(self._last_ts_us, pa.timestamp("us", tz="UTC")).as_py()
            m["time_span"] = {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "duration_s": (self._last_ts_us - self._first_ts_us) / 1e6,
            }
        m["kinds"] = dict(sorted(self._kinds.items()))
        m["events"] = {"rows": self._next_seq, "files": self._files}
        write_json_atomic(self.path / MANIFEST_NAME, m)
        return self.path

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(status="complete" if exc_type is None else "aborted")
