"""A trace at a glance: span, event counts and rates, objects, bytes, the largest objects."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .reader import Trace

_COLUMNS = ["ts", "kind", "event_type", "namespace", "name", "uid", "size_bytes"]


def trace_info(trace: Trace, *, top: int = 10) -> dict[str, Any]:
    """Summarise ``trace`` from its events (not from the manifest's claims).

    Returns a JSON-ready dict: ``span`` (start, end, duration_s), ``events`` (rows, bytes),
    ``kinds`` (per kind: rows, bytes, events_per_s, objects, by event type), ``nodes`` and
    ``pods`` (distinct objects seen), ``largest`` (the ``top`` largest objects by size_bytes).
    """
    table = trace.to_arrow(columns=_COLUMNS)
    n = table.num_rows
    info: dict[str, Any] = {
        "path": str(trace.path),
        "format_version": trace.manifest["format_version"],
        "source": trace.manifest.get("source", {}),
        "status": trace.manifest.get("status"),
        "complete": trace.complete,
        "cluster": trace.manifest.get("cluster", {}),
    }
    if n == 0:
        info.update(span=None, events={"rows": 0, "bytes": 0}, kinds={}, nodes=0, pods=0)
        info["largest"] = []
        return info
    ts = table.column("ts")
    start, end = pc.min(ts).as_py(), pc.max(ts).as_py()
    duration_s = (end - start).total_seconds()
    info["span"] = {"start": start.isoformat(), "end": end.isoformat(), "duration_s": duration_s}
    info["events"] = {"rows": n, "bytes": int(pc.sum(table.column("size_bytes")).as_py() or 0)}
    # An object is (kind, namespace, name); uid may be absent in imported traces.
    key = pc.binary_join_element_wise(
        table.column("kind"),
        pc.fill_null(table.column("namespace"), ""),
        pc.fill_null(table.column("name"), ""),
        "/",
    )
    table = table.append_column("key", key)
    kinds: dict[str, Any] = {}
    grouped = table.group_by("kind").aggregate(
        [("ts", "count"), ("size_bytes", "sum"), ("key", "count_distinct")]
    )
    for row in grouped.to_pylist():
        kind = row["kind"]
        count = row["ts_count"]
        kinds[kind] = {
            "rows": count,
            "bytes": int(row["size_bytes_sum"] or 0),
            "events_per_s": count / duration_s if duration_s > 0 else None,
            "objects": row["key_count_distinct"],
            "event_types": {},
        }
    by_type = table.group_by(["kind", "event_type"]).aggregate([("ts", "count")])
    for row in by_type.to_pylist():
        kinds[row["kind"]]["event_types"][row["event_type"]] = row["ts_count"]
    info["kinds"] = dict(sorted(kinds.items(), key=lambda kv: -kv[1]["rows"]))
    info["nodes"] = kinds.get("Node", {}).get("objects", 0)
    info["pods"] = kinds.get("Pod", {}).get("objects", 0)
    # The largest version of each object, then the top of those.
    per_object = table.group_by(["kind", "namespace", "name"], use_threads=False).aggregate(
        [("size_bytes", "max")]
    )
    biggest = pa.table(
        {
            "kind": per_object.column("kind"),
            "namespace": per_object.column("namespace"),
            "name": per_object.column("name"),
            "size_bytes": per_object.column("size_bytes_max"),
        }
    )
    biggest = biggest.sort_by(
        [("size_bytes", "descending"), ("kind", "ascending"), ("name", "ascending")]
    ).slice(0, top)
    info["largest"] = biggest.to_pylist()
    return info
