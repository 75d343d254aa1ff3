"""Plays a trace into a :class:`~tracesim.serve.store.Store` on the dilated clock.

The initial LIST of each kind (its LISTED rows before its first watch event) and every event
up to the start time form the initial state. After that, :meth:`TracePlayer.tick` applies the
events whose trace time has come. resourceVersions are the trace's own when they are
integers, strictly increasing over the played events and above every initial one (so a client
that recorded them can resume); otherwise, and always with ``loop``, the player numbers
applied events 1, 2, 3, ... With ``loop`` the end of the trace is followed by the changes that
bring the state back to the initial one, and playback starts again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import TracesimError
from ..trace.reader import Trace
from ..trace.rebuild import DEFAULT_API_VERSIONS, format_time, rebuild
from ..trace.schema import ADDED, DELETED, GAP, LISTED, MODIFIED
from .clock import PlaybackClock
from .resources import resource_info
from .store import Key, ResourceStore, Store, StoredObject

#: Rows applied per tick at most, so the server keeps answering while it catches up.
MAX_ROWS_PER_TICK = 20_000


def _to_us(value: Any) -> int:
    return int(pa.scalar(value, pa.timestamp("us", tz="UTC")).value)


def parse_start_at(text: str | None, trace_start_us: int) -> int | None:
    """``--start-at``: seconds after the trace start (``90``, ``1.5``) or an ISO 8601 time.
    Returns trace microseconds, or None. Raises :class:`TracesimError` on a bad value."""
    if text is None:
        return None
    try:
        return trace_start_us + int(float(text) * 1e6)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise TracesimError(
            f"--start-at {text!r}: give seconds after the trace start (e.g. 600) "
            "or an ISO 8601 time (e.g. 2024-05-01T10:00:00Z)"
        ) from None
    return _to_us(when)


class TracePlayer:
    """Owns the trace rows, the store and the clock; :meth:`tick` advances playback.

    Parameters
    ----------
    trace: the opened trace.
    speed: trace seconds per wall second.
    loop: start again from the beginning when the trace ends.
    start_at: where to start playing (events before it are the initial state): trace
        microseconds since the epoch, or text for :func:`parse_start_at`.
    history_s: trace seconds of watch history retained per resource (older -> 410 Gone).
    history_events: at most this many retained events per resource.
    """

    def __init__(
        self,
        trace: Trace,
        *,
        speed: float = 1.0,
        loop: bool = False,
        start_at: str | int | None = None,
        history_s: float = 300.0,
        history_events: int = 100_000,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        table = trace.to_arrow()
        seq = table["seq"].to_numpy()
        if len(seq) and (np.diff(seq) <= 0).any():  # parts out of order: restore trace order
            table = table.take(pa.array(np.argsort(seq, kind="stable")))
        table = table.filter(pc.invert(pc.equal(table["event_type"], GAP)))
        self.table = table
        self.loop = loop
        self.history_us = int(history_s * 1e6)
        self.history_events = history_events
        n = table.num_rows
        ts = table["ts"].cast(pa.int64()).to_numpy(zero_copy_only=False) if n else np.zeros(0)
        self.ts_us = np.maximum.accumulate(ts) if n else ts.astype(np.int64)
        self.trace_start_us = int(self.ts_us[0]) if n else 0
        self.trace_end_us = int(self.ts_us[-1]) if n else 0
        etypes = table["event_type"].to_numpy(zero_copy_only=False)
        kinds = table["kind"].to_numpy(zero_copy_only=False)

        # Resources: one per (kind, apiVersion) present; a missing apiVersion is the kind's
        # default. Rows map to resources through a dictionary encoding (no loop over rows).
        self.store = Store()
        pair_col = pc.binary_join_element_wise(
            table["kind"].cast(pa.string()), pc.fill_null(table["api_version"], ""), "|"
        )
        encoded = pair_col.combine_chunks().dictionary_encode() if n else None
        self._row_res_idx = (
            encoded.indices.to_numpy(zero_copy_only=False) if n else np.zeros(0, np.int64)
        )
        namespaced = table["namespace"].is_valid().to_numpy(zero_copy_only=False)
        has_ns = np.bincount(self._row_res_idx, weights=namespaced) if n else []
        res_of: dict[tuple[str, str], ResourceStore] = {}
        self._resources: list[ResourceStore] = []
        for i, pair in enumerate(encoded.dictionary.to_pylist() if n else []):
            kind, _, api = pair.partition("|")
            api = api or DEFAULT_API_VERSIONS.get(kind, "v1")
            if (kind, api) not in res_of:
                res_of[(kind, api)] = self.store.add_resource(
                    resource_info(kind, api, bool(has_ns[i] > 0))
                )
            self._resources.append(res_of[(kind, api)])

        # Initial rows: per kind, the LISTED rows before its first watch event.
        is_event = np.isin(etypes, [ADDED, MODIFIED, DELETED])
        initial = np.zeros(n, dtype=bool)
        for kind in set(kinds.tolist()):
            mine = kinds == kind
            first = np.flatnonzero(mine & is_event)
            cut = first[0] if len(first) else n
            initial[:cut] |= (mine & (etypes == LISTED))[:cut]
        start_at_us = (
            parse_start_at(start_at, self.trace_start_us) if isinstance(start_at, str) else start_at
        )
        self.start_us = (
            self.trace_start_us if start_at_us is None else max(start_at_us, self.trace_start_us)
        )
        at_start = initial | (self.ts_us <= self.start_us)
        self._initial_rows = np.flatnonzero(at_start)
        self._play_rows = np.flatnonzero(~at_start)
        self._play_ts = self.ts_us[self._play_rows]
        self._cursor = 0

        self.trace_rvs = (not loop) and self._trace_rvs_usable(initial)
        self.loops = 0
        self.dropped = 0  # DELETED rows for objects not present
        for res in self.store.resources.values():
            res.record_history = False
        self._apply(self._initial_rows)
        self._initial_state = {res: dict(res.objects) for res in self.store.resources.values()}
        self.store.start_history()
        self.clock = PlaybackClock(self.start_us, speed, time_fn=time_fn)

    # -- resourceVersions --------------------------------------------------------------------
    def _trace_rvs_usable(self, initial: np.ndarray) -> bool:
        col = self.table["resource_version"]
        if self.table.num_rows == 0 or col.null_count:
            return False
        try:
            rvs = pc.cast(col, pa.int64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
        if (rvs <= 0).any():
            return False
        played = rvs[~initial]
        if len(played) and (np.diff(played) <= 0).any():
            return False
        return not (initial.any() and len(played) and played[0] <= rvs[initial].max())

    def _next_rv(self, row: dict[str, Any]) -> int:
        if self.trace_rvs:
            rv = int(row["resource_version"])
            self.store.rv = max(self.store.rv, rv)
            return rv
        self.store.rv += 1
        return self.store.rv

    # -- applying rows -----------------------------------------------------------------------
    def _materialise(
        self, res: ResourceStore, row: dict[str, Any], rv: int, ts_us: int
    ) -> StoredObject:
        key: Key = (row["namespace"] or "", row["name"] or "")
        created = res.created_us.setdefault(key, ts_us)
        raw = row.get("raw")
        if raw:
            obj = orjson.loads(raw)
            meta = obj.setdefault("metadata", {})
            meta.setdefault("creationTimestamp", format_time(created))
        else:
            obj = rebuild(row, created_us=created)
            meta = obj["metadata"]
        meta["resourceVersion"] = str(rv)
        obj.setdefault("kind", res.info.kind)
        obj.setdefault("apiVersion", res.info.api_version)
        labels = {}
        for pair in row["labels"] or ():
            k, _, v = pair.partition("=")
            labels[k] = v
        fields = {"metadata.name": key[1], "metadata.namespace": key[0]}
        kind = res.info.kind
        if kind == "Pod":
            fields["spec.nodeName"] = row.get("node_name") or ""
            fields["spec.schedulerName"] = row.get("scheduler_name") or ""
            fields["status.phase"] = row.get("phase") or ""
        elif kind == "Node":
            fields["spec.unschedulable"] = "true" if row.get("unschedulable") else "false"
        return StoredObject(key, rv, orjson.dumps(obj), labels, fields)

    def _apply(self, rows: np.ndarray) -> set[ResourceStore]:
        """Apply the rows at table positions ``rows`` (in order); returns touched resources."""
        touched: set[ResourceStore] = set()
        if len(rows) == 0:
            return touched
        batch = self.table.take(pa.array(rows)).to_pylist()
        for pos, row in zip(rows.tolist(), batch, strict=True):
            res = self._resources[self._row_res_idx[pos]]
            ts_us = int(self.ts_us[pos])
            key = (row["namespace"] or "", row["name"] or "")
            if row["event_type"] == DELETED:
                if key not in res.objects:
                    self.dropped += 1
                    continue
                obj = self._materialise(res, row, self._next_rv(row), ts_us)
                res.delete(obj, ts_us)
            else:
                res.put(self._materialise(res, row, self._next_rv(row), ts_us), ts_us)
            touched.add(res)
        return touched

    def tick(self, wall_s: float | None = None) -> set[ResourceStore]:
        """Apply every event whose trace time has come at wall time ``wall_s`` (default
        now), at most :data:`MAX_ROWS_PER_TICK`; returns the resources that changed."""
        now_us = self.clock.trace_now_us(wall_s)
        upto = int(np.searchsorted(self._play_ts, now_us, side="right"))
        upto = min(upto, self._cursor + MAX_ROWS_PER_TICK)
        touched = self._apply(self._play_rows[self._cursor : upto])
        self._cursor = upto
        if self.loop and self._cursor == len(self._play_rows):
            end_us = max(self.trace_end_us, self.start_us + 1_000_000)
            if now_us > end_us:
                touched |= self._restart(self.clock.wall_at(end_us))
        for res in self.store.resources.values():
            res.compact(now_us - self.history_us, self.history_events)
        return touched

    def _restart(self, wall_s: float) -> set[ResourceStore]:
        """Bring the state back to the initial one (new events, new rvs) and replay."""
        touched: set[ResourceStore] = set()
        for res, initial in self._initial_state.items():
            for key in [k for k in res.objects if k not in initial]:
                self.store.rv += 1
                res.delete(res.objects[key].with_rv(self.store.rv), self.start_us)
                touched.add(res)
            for key, obj in initial.items():
                if res.objects.get(key) is obj:
                    continue
                self.store.rv += 1
                restamped = obj.with_rv(self.store.rv)
                res.put(restamped, self.start_us)
                initial[key] = restamped
                touched.add(res)
        self._cursor = 0
        self.loops += 1
        self.clock.rebase(self.start_us, wall_s)
        return touched

    # -- facts -------------------------------------------------------------------------------
    def played_through(self, trace_us: int) -> bool:
        """True if every event at or before trace time ``trace_us`` has been applied."""
        return int(np.searchsorted(self._play_ts, trace_us, side="right")) <= self._cursor

    @property
    def finished(self) -> bool:
        """True when every event has been played (never with ``loop``)."""
        return not self.loop and self._cursor == len(self._play_rows)

    def next_wall_s(self) -> float | None:
        """Wall time at which the next event is due, or None if none is left."""
        if self._cursor < len(self._play_rows):
            return self.clock.wall_at(int(self._play_ts[self._cursor]))
        if self.loop:
            return self.clock.wall_at(max(self.trace_end_us, self.start_us + 1_000_000))
        return None

    def now_us(self) -> int:
        """The playback time now (trace microseconds), clamped to the trace's end."""
        now = self.clock.trace_now_us()
        return now if self.loop else min(now, max(self.trace_end_us, self.start_us))
