"""Reading traces: ``open_trace(path)`` -> :class:`Trace`, scans with filters, pandas out.

Reading never modifies a trace. A leftover journal (the part a crashed writer was writing) is
read as far as its last complete batch; ``tracesim repair`` (a later issue) turns it into
Parquet.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ..errors import TraceError
from .manifest import read_manifest
from .schema import CATEGORICAL_COLUMNS, REQUIRED_COLUMNS, SCHEMA
from .writer import EVENTS_DIR

# Integer and boolean columns hold nulls for other kinds: keep them exact (no float64 upcast).
_NULLABLE = {
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}
#: Low-cardinality string columns :meth:`Trace.to_arrow_by_kind` reads dictionary-encoded.
_DICT_READ = frozenset(
    (
        "kind",
        "event_type",
        "namespace",
        "node_name",
        "phase",
        "scheduler_name",
        "gpu_model",
        "detail",
    )
)
_PART_RE = re.compile(r"^part-(\d+)\.(parquet|journal)$")
TimeLike = str | datetime | pd.Timestamp | int | float | None


def _to_timestamp(value: TimeLike) -> pd.Timestamp | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Numbers are microseconds since the epoch, as in the writer (pandas would read ns).
        return pd.Timestamp(int(value), unit="us", tz="UTC")
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


class Trace:
    """An opened trace: its manifest and a filtered, time-ordered view of its events."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.manifest: dict[str, Any] = read_manifest(self.path)
        events = self.path / EVENTS_DIR
        found: dict[int, dict[str, Path]] = {}
        if events.is_dir():
            for entry in events.iterdir():
                match = _PART_RE.match(entry.name)
                if match:
                    found.setdefault(int(match[1]), {})[match[2]] = entry
        self.parts: list[Path] = []
        self.journals: list[Path] = []
        for index in sorted(found):
            files = found[index]
            if "parquet" in files:
                self.parts.append(files["parquet"])  # a journal beside it was already converted
            else:
                self.journals.append(files["journal"])
        for part in self.parts:
            try:
                schema = pq.read_schema(part)
            except (pa.ArrowException, OSError) as exc:
                raise TraceError(f"{part}: not a readable Parquet file ({_short(exc)})") from None
            missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
            if missing:
                raise TraceError(f"{part}: missing required columns {', '.join(missing)}")

    # -- facts ---------------------------------------------------------------------------------
    @property
    def source_kind(self) -> str:
        return str(self.manifest.get("source", {}).get("kind", "unknown"))

    @property
    def complete(self) -> bool:
        """False if the writer did not close cleanly (crash, or still recording)."""
        return self.manifest.get("status") == "complete" and not self.journals

    def __repr__(self) -> str:
        return f"<Trace {str(self.path)!r} {self.source_kind} parts={len(self.parts)}>"

    # -- scanning ------------------------------------------------------------------------------
    def _filter(
        self,
        kinds: Iterable[str] | None,
        event_types: Iterable[str] | None,
        start: TimeLike,
        end: TimeLike,
    ) -> pc.Expression | None:
        expr = None

        def _and(e: pc.Expression) -> None:
            nonlocal expr
            expr = e if expr is None else expr & e

        # Typed value sets: an empty list would otherwise be a null-typed array that Arrow
        # refuses to compare with strings; a lone string is one value, not its characters.
        for column, values in (("kind", kinds), ("event_type", event_types)):
            if values is not None:
                values = [values] if isinstance(values, str) else list(values)
                _and(pc.field(column).isin(pa.array(values, pa.string())))
        if (t0 := _to_timestamp(start)) is not None:
            _and(pc.field("ts") >= pa.scalar(t0.to_pydatetime(), SCHEMA.field("ts").type))
        if (t1 := _to_timestamp(end)) is not None:
            _and(pc.field("ts") < pa.scalar(t1.to_pydatetime(), SCHEMA.field("ts").type))
        return expr

    def scan(
        self,
        *,
        kinds: Iterable[str] | None = None,
        event_types: Iterable[str] | None = None,
        start: TimeLike = None,
        end: TimeLike = None,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pa.Table]:
        """Yield the matching events, one Arrow table per part, in trace order.

        ``kinds`` and ``event_types`` restrict rows; ``start`` (inclusive) and ``end``
        (exclusive) are UTC times (numbers: microseconds since the epoch); ``columns`` selects
        columns (default: all). Only the selected columns of the row groups that can match are
        read from disk.
        """
        cols = list(columns) if columns is not None else SCHEMA.names
        unknown = [c for c in cols if c not in SCHEMA.names]
        if unknown:
            raise TraceError(f"unknown column(s) {', '.join(unknown)}; see docs/trace-format.md")
        expr = self._filter(kinds, event_types, start, end)
        for part in self.parts:
            try:
                table = ds.dataset(part, format="parquet", schema=SCHEMA).to_table(
                    columns=cols, filter=expr
                )
            except (pa.ArrowException, OSError) as exc:
                raise TraceError(f"{part}: corrupt Parquet data ({_short(exc)})") from None
            if table.num_rows:
                yield table
        yield from self._journal_tables(expr, cols)

    def to_arrow(self, **filters: Any) -> pa.Table:
        """All matching events as one Arrow table (arguments as for :meth:`scan`)."""
        tables = list(self.scan(**filters))
        if not tables:
            cols = filters.get("columns") or SCHEMA.names
            return SCHEMA.empty_table().select(list(cols))
        return pa.concat_tables(tables)

    def to_arrow_by_kind(
        self,
        columns: Mapping[str | tuple[str, ...], Sequence[str]],
        *,
        start: TimeLike = None,
        end: TimeLike = None,
    ) -> dict[str | tuple[str, ...], pa.Table]:
        """Kind -> its matching events with its own columns, read in one pass over the trace.

        ``columns`` maps each kind to the columns to read for it; a key may also be a tuple
        of kinds, whose rows then come together in trace order (a kind may appear in several
        keys). Each table equals ``to_arrow(kinds=<the key's kinds>, columns=columns[key],
        start=start, end=end)``, but every column is decoded once (Parquet decodes a column
        for all rows of a row group, so one scan per kind would decode the shared columns
        once per kind)."""
        union = list(dict.fromkeys(c for cols in columns.values() for c in cols))
        if "kind" not in union:
            union.append("kind")
        groups = {key: [key] if isinstance(key, str) else list(key) for key in columns}
        kinds = list(dict.fromkeys(k for group in groups.values() for k in group))
        codes = {k: i for i, k in enumerate(kinds)}
        value_set = pa.array(kinds, pa.string())
        found: dict[str | tuple[str, ...], list[pa.Table]] = {key: [] for key in columns}
        # No kind filter in the scan: each key's rows are taken from the unfiltered rows
        # below, one filter per key (a filter in the scan would be a second one).
        for table in self._scan_dict(start, end, union):
            which = _kind_codes(table.column("kind"), value_set)
            for key, group in groups.items():
                if len(group) == 1:
                    mask = which == codes[group[0]]
                else:
                    mask = np.isin(which, [codes[k] for k in group])
                if len(group) == len(kinds) and mask.all():
                    rows = table.select(list(columns[key]))  # every row: nothing to filter
                else:
                    rows = table.select(list(columns[key])).filter(pa.array(mask))
                if rows.num_rows:
                    found[key].append(_undictionary(rows))
        return {
            key: pa.concat_tables(tables)
            if tables
            else SCHEMA.empty_table().select(list(columns[key]))
            for key, tables in found.items()
        }

    def _scan_dict(self, start: TimeLike, end: TimeLike, columns: list[str]) -> Iterator[pa.Table]:
        """:meth:`scan` of ``columns`` (all rows of [start, end)), the columns of
        :data:`_DICT_READ` dictionary-encoded in the Parquet parts (journals: plain strings).

        Parquet stores those low-cardinality strings as dictionary pages: read as a
        dictionary, a row costs an index, not a string copy (the trace's rows are mostly of
        kinds nobody asked for, so most decoded strings would be thrown away)."""
        dict_cols = [c for c in columns if c in _DICT_READ]
        if not dict_cols or not self.parts:
            yield from self.scan(start=start, end=end, columns=columns)
            return
        expr = self._filter(None, None, start, end)
        fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=dict_cols))
        schema = pa.schema(
            [
                pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in dict_cols else f
                for f in SCHEMA
            ]
        )
        for part in self.parts:
            # Batch by batch (about a row group each), not the whole part at once: the
            # caller keeps a few of its columns' rows, so the decoded batch is garbage at
            # once and its memory is reused for the next one instead of being paged in anew.
            try:
                dataset = ds.dataset(part, format=fmt, schema=schema)
                for batch in dataset.to_batches(columns=columns, filter=expr):
                    if batch.num_rows:
                        yield pa.Table.from_batches([batch])
            except (pa.ArrowException, OSError) as exc:
                raise TraceError(f"{part}: corrupt Parquet data ({_short(exc)})") from None
        yield from self._journal_tables(expr, columns)

    def _journal_tables(self, expr: Any, columns: list[str]) -> Iterator[pa.Table]:
        """The rows of the crash journals (not yet compacted into parts) matching ``expr``."""
        for journal in self.journals:
            table = _read_journal(journal)
            if expr is not None:
                table = table.filter(expr)
            if table.num_rows:
                yield table.select(columns)

    def events(self, *, categorical: bool = True, **filters: Any) -> pd.DataFrame:
        """Matching events as a pandas DataFrame (arguments as for :meth:`scan`).

        Low-cardinality string columns (kind, event_type, namespace, node_name, ...) come back
        as pandas categoricals unless ``categorical=False``; ``ts`` is tz-aware UTC.
        """
        table = self.to_arrow(**filters)
        if categorical:
            for name in CATEGORICAL_COLUMNS:
                if name in table.column_names:
                    i = table.column_names.index(name)
                    table = table.set_column(i, name, table.column(i).dictionary_encode())
        return table.to_pandas(types_mapper=_NULLABLE.get)

    def count(self, **filters: Any) -> int:
        """Number of matching events (reads only the ``seq`` column)."""
        filters.setdefault("columns", ["seq"])
        return sum(t.num_rows for t in self.scan(**filters))


def _kind_codes(kind: pa.ChunkedArray, value_set: pa.Array) -> np.ndarray:
    """Per row, the index of its kind in ``value_set`` (-1: another kind or null); a
    dictionary column is looked up once per dictionary entry, not per row."""
    parts = []
    for chunk in kind.chunks:
        if pa.types.is_dictionary(chunk.type):
            lut = pc.fill_null(pc.index_in(chunk.dictionary, value_set=value_set), -1)
            lut = np.append(lut.to_numpy(zero_copy_only=False), -1)  # [-1]: a null row
            idx = pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False)
            parts.append(lut[idx])
        else:
            which = pc.fill_null(pc.index_in(chunk, value_set=value_set), -1)
            parts.append(which.to_numpy(zero_copy_only=False))
    if not parts:
        return np.zeros(0, np.int32)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _undictionary(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary columns decoded to their value type (as :meth:`Trace.scan`
    gives them)."""
    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            col = table.column(i).cast(field.type.value_type)
            table = table.set_column(i, field.name, col)
    return table


def _read_journal(path: Path) -> pa.Table:
    """The complete record batches of a journal; a torn last batch is ignored."""
    batches = []
    try:
        with pa.OSFile(str(path), "rb") as source:
            reader = pa.ipc.open_stream(source)
            if not reader.schema.equals(SCHEMA):
                raise TraceError(f"{path}: not a journal of this trace format (other columns)")
            while True:
                try:
                    batches.append(reader.read_next_batch())
                except StopIteration:
                    break
    except (pa.ArrowException, OSError):
        pass  # the writer died mid-batch: everything before it is intact
    return pa.Table.from_batches(batches, schema=SCHEMA)


def _short(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def open_trace(path: str | os.PathLike[str]) -> Trace:
    """Open the trace directory ``path``; :class:`~tracesim.errors.TraceError` if it is not one."""
    return Trace(path)
