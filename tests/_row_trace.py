"""Small traces for the replay tests, from row dicts (trace columns, with ``t`` in seconds
from ``T0_US`` instead of ``ts``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from tracesim.trace.schema import SCHEMA
from tracesim.trace.writer import TraceWriter

T0_US = 1_767_600_000 * 1_000_000


def write_trace(
    path: Path, rows: list[dict], *, size_bytes: int | None = None, **writer: Any
) -> Path:
    """Write ``rows`` (in time order after sorting) as a trace at ``path``; ``size_bytes``:
    the size of rows without one (None: left null); ``writer``: TraceWriter options
    (default ``overwrite=True``, never journaled)."""
    rows = sorted(rows, key=lambda r: r["t"])
    cols: dict[str, list] = {"ts": [T0_US + round(r["t"] * 1e6) for r in rows]}
    for name in sorted({k for r in rows for k in r} - {"t"}):
        cols[name] = [r.get(name) for r in rows]
    if size_bytes is not None:
        cols.setdefault("size_bytes", [size_bytes] * len(rows))
    table = pa.table(
        {k: pa.array(v, pa.int64() if k == "ts" else SCHEMA.field(k).type) for k, v in cols.items()}
    )
    with TraceWriter(path, "synthetic", journal=False, **({"overwrite": True} | writer)) as w:
        w.write_table(table)
    return path
