"""Collectors for a replay: request latency samples and component time series.

Everything is appended to numpy-backed growable buffers (amortised O(1), no Python object per
sample) and turned into pandas DataFrames, or Parquet files, once at the end.

- :attr:`Metrics.requests`: one row per API request (or per member of a batched request group):
  completion time ``t_s``, ``latency_s`` (arrival to response, queueing included), and coded
  ``verb``, ``resource``, ``scope``, ``status`` (HTTP-like) and ``reason`` (``ok`` or why it was
  rejected).
- :attr:`Metrics.series`: long-format time series ``(t_s, metric, value)`` sampled every
  ``interval_s`` by :meth:`Metrics.start_sampler` from registered gauges: instantaneous values
  (queue lengths, etcd DB size, object counts) and utilisations computed from busy-time
  integrals over each interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import simpy


class AppendBuffer:
    """Typed columns that grow by doubling. ``append`` one row or ``extend`` with arrays."""

    def __init__(self, dtypes: Mapping[str, Any], capacity: int = 4096) -> None:
        self.names = list(dtypes)
        self._cols = {n: np.empty(capacity, dtype=dt) for n, dt in dtypes.items()}
        self._arrays = [self._cols[n] for n in self.names]
        self._cap = capacity
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _grow(self, need: int) -> None:
        cap = len(self._arrays[0])
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        for n in self.names:
            old = self._cols[n]
            arr = np.empty(new_cap, dtype=old.dtype)
            arr[: self._n] = old[: self._n]
            self._cols[n] = arr
        self._arrays = [self._cols[n] for n in self.names]
        self._cap = new_cap

    def append(self, *values: Any) -> None:
        """One row, values in column order."""
        i = self._n
        if i >= self._cap:
            self._grow(i + 1)
        for arr, v in zip(self._arrays, values, strict=True):
            arr[i] = v
        self._n = i + 1

    def extend(self, *columns: Any) -> None:
        """Many rows: one array (or scalar, broadcast) per column, in column order."""
        k = 1
        for c in columns:
            if isinstance(c, np.ndarray) and c.ndim:
                k = len(c)
                break
        i = self._n
        j = i + k
        if j > self._cap:
            self._grow(j)
        for arr, c in zip(self._arrays, columns, strict=True):
            arr[i:j] = c
        self._n = j

    def column(self, name: str) -> np.ndarray:
        """A view of the filled part of one column."""
        return self._cols[name][: self._n]

    def to_frame(self) -> pd.DataFrame:
        """The filled rows as a DataFrame (copies)."""
        return pd.DataFrame({n: self._cols[n][: self._n] for n in self.names}, copy=True)


class Vocab:
    """Strings <-> small integer codes, codes assigned in first-seen order."""

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self.names: list[str] = []
        self.codes: dict[str, int] = {}
        for s in initial:
            self.code(s)

    def code(self, s: str) -> int:
        """The code of ``s`` (new strings get the next code)."""
        c = self.codes.get(s)
        if c is None:
            c = self.codes[s] = len(self.names)
            self.names.append(s)
        return c

    def categorical(self, codes: np.ndarray) -> pd.Categorical:
        """Codes as a pandas Categorical over this vocabulary (``codes`` must be codes of it:
        they are not checked again)."""
        dtype = pd.CategoricalDtype(categories=list(self.names))
        return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


Gauge = Callable[[], float | Mapping[str, float]]
#: A pending watch dispatch of :meth:`Metrics.record_watch`.
_WATCH_DTYPE = np.dtype(
    [
        ("pos", np.int64),
        ("t_s", np.float64),
        ("latency_s", np.float64),
        ("resource", np.int64),
        ("events", np.int64),
        ("service_s", np.float64),
    ]
)


class Metrics:
    """Request samples and sampled time series of one simulation."""

    def __init__(self) -> None:
        self.verbs = Vocab(["create", "update", "patch", "delete", "get", "list", "watch"])
        self.resources = Vocab()
        self.scopes = Vocab(["resource", "namespace", "cluster"])
        self.reasons = Vocab(["ok"])
        self.metric_names = Vocab()
        self._requests = AppendBuffer(
            {
                "t_s": np.float64,
                "latency_s": np.float64,
                "verb": np.uint8,
                "resource": np.uint16,
                "scope": np.uint8,
                "status": np.uint16,
                "reason": np.uint8,
            }
        )
        self.series = AppendBuffer({"t_s": np.float64, "metric": np.uint16, "value": np.float64})
        # Watch dispatches recorded with :meth:`record_watch`: (request rows before it,
        # t_s, latency_s, resource code, events, service_s); expanded into rows by
        # :attr:`requests`.
        self._watch: list[tuple[int, float, float, int, int, float]] = []
        self._watch_verb = self.verbs.code("watch")
        self._cluster_scope = self.scopes.code("cluster")
        self._gauges: list[tuple[str, Gauge]] = []
        self._utils: list[tuple[str, Callable[[], float], float, list[float]]] = []

    # -- requests ---------------------------------------------------------------------------

    @property
    def requests(self) -> AppendBuffer:
        """All request rows, watch dispatches (:meth:`record_watch`) expanded in place: one
        row per event, where they were recorded."""
        if self._watch:
            self._expand_watches()
        return self._requests

    def request_buffer(self, *, expand_watches: bool = True) -> AppendBuffer:
        """The request rows as codes (:attr:`requests`); ``expand_watches=False``: without
        the rows of watch dispatches not yet expanded (:meth:`record_watch`)."""
        return self.requests if expand_watches else self._requests

    def _expand_watches(self) -> None:
        """Merge the pending watch dispatches into the request rows, vectorised: dispatch
        ``j`` was recorded after ``pos[j]`` request rows, so its ``count[j]`` rows go there,
        in recording order (ties: the dispatch first, as it was recorded first)."""
        pend, self._watch = self._watch, []
        d = np.fromiter(pend, dtype=_WATCH_DTYPE, count=len(pend))
        del pend
        d = d[d["events"] > 0]
        count = d["events"]
        old = self._requests
        n_req = len(old)
        total = n_req + int(count.sum())
        new = AppendBuffer({n: old._cols[n].dtype for n in old.names}, capacity=max(total, 1))
        new._n = total
        # The rows of dispatch j land at [start[j], start[j] + count[j]): after pos[j] request
        # rows and the watch rows of the dispatches before it. Mark them with +1/-1 at the
        # ends of each run (starts, and ends, are increasing: no index repeats in one write).
        ends = np.cumsum(count)
        start = d["pos"] + ends - count
        edge = np.zeros(total + 1, np.int8)
        edge[start] += 1
        edge[start + count] -= 1
        is_watch = np.cumsum(edge[:-1], dtype=np.int8).astype(bool)
        del edge, start, ends
        is_req = ~is_watch
        t_s, latency_s = np.repeat(d["t_s"], count), np.repeat(d["latency_s"], count)
        service = d["service_s"]
        if service.any():
            # The dispatcher sends a job's events one after another: event i of n is done
            # (n - 1 - i) / n of the job's service before its end.
            first = np.repeat(np.cumsum(count) - count, count)
            left = np.repeat(count, count) - 1 - (np.arange(len(t_s)) - first)
            early = np.repeat(service / count, count) * left
            del first, left
            t_s -= early
            latency_s -= early
            del early
        watch_cols = {
            "t_s": t_s,
            "latency_s": latency_s,
            "verb": self._watch_verb,
            "resource": np.repeat(d["resource"], count),
            "scope": self._cluster_scope,
            "status": 200,
            "reason": self.reasons.code("ok"),
        }
        for name in old.names:
            col = new._cols[name]
            col[is_req] = old.column(name)
            col[is_watch] = watch_cols.pop(name)
        self._requests = new

    def record_watch(
        self, t_s: float, latency_s: float, resource: int, events: int, service_s: float = 0.0
    ) -> None:
        """``events`` watch events of ``resource`` (a code of :attr:`resources`) dispatched
        by one job that ends at ``t_s`` after ``latency_s``, of which ``service_s`` its own
        service, one event after another (each its share of it; 0: all done at the end): one
        row per event, ``watch``, ``cluster`` scope, status 200, ``ok``, each at its own
        completion. Costs one tuple now; the rows are made once, vectorised, when
        :attr:`requests` is read."""
        self._watch.append((self._requests._n, t_s, latency_s, resource, events, service_s))

    def record_request(
        self,
        t_s: float,
        latency_s: float,
        verb: str,
        resource: str,
        scope: str,
        status: int = 200,
        reason: str = "ok",
    ) -> None:
        """One finished (or rejected) request: completion time and latency in seconds."""
        self._requests.append(
            t_s,
            latency_s,
            self.verbs.code(verb),
            self.resources.code(resource),
            self.scopes.code(scope),
            status,
            self.reasons.code(reason),
        )

    def record_requests(
        self,
        t_s: np.ndarray | float,
        latency_s: np.ndarray,
        verb: str,
        resource: str,
        scope: str,
        status: np.ndarray | int = 200,
        reason: np.ndarray | str = "ok",
    ) -> None:
        """Many requests of one verb/resource/scope; ``reason`` a string or an array of codes."""
        reason_c = self.reasons.code(reason) if isinstance(reason, str) else reason
        self._requests.extend(
            t_s,
            latency_s,
            self.verbs.code(verb),
            self.resources.code(resource),
            self.scopes.code(scope),
            status,
            reason_c,
        )

    def record_coded(
        self,
        t_s: np.ndarray | float,
        latency_s: np.ndarray,
        verb: np.ndarray | int,
        resource: np.ndarray | int,
        scope: np.ndarray | int,
        status: np.ndarray | int,
        reason: np.ndarray | int,
    ) -> None:
        """Many requests given as codes of this object's vocabularies (the hot path of a
        mixed request group: one array per column, no string lookups); scalars broadcast."""
        if not (isinstance(latency_s, np.ndarray) and latency_s.ndim == 1):
            self._requests.extend(t_s, latency_s, verb, resource, scope, status, reason)
            return
        # AppendBuffer.extend unrolled: this runs once per finished request group.
        b = self._requests
        i = b._n
        j = i + len(latency_s)
        if j > b._cap:
            b._grow(j)
        a = b._arrays
        a[0][i:j] = t_s
        a[1][i:j] = latency_s
        a[2][i:j] = verb
        a[3][i:j] = resource
        a[4][i:j] = scope
        a[5][i:j] = status
        a[6][i:j] = reason
        b._n = j

    @property
    def has_pending_watches(self) -> bool:
        """Whether watch dispatches wait to be expanded into rows (:meth:`record_watch`)."""
        return bool(self._watch)

    def requests_frame(self, *, expand_watches: bool = True) -> pd.DataFrame:
        """Request samples with categorical verb/resource/scope/reason columns.

        ``expand_watches=False``: without the rows of watch dispatches not yet expanded
        (:meth:`record_watch`): only the API requests, when no watch row was read before."""
        col = self.request_buffer(expand_watches=expand_watches).column
        # One copy of each column (the frame's own blocks; categorical codes are converted).
        return pd.DataFrame(
            {
                "t_s": col("t_s"),
                "latency_s": col("latency_s"),
                "verb": self.verbs.categorical(col("verb")),
                "resource": self.resources.categorical(col("resource")),
                "scope": self.scopes.categorical(col("scope")),
                "status": col("status"),
                "reason": self.reasons.categorical(col("reason")),
            },
            copy=True,
        )

    # -- time series ------------------------------------------------------------------------

    def add_gauge(self, name: str, fn: Gauge) -> None:
        """Sample ``fn()`` each interval; a mapping result gives one metric per key (name.key)."""
        self._gauges.append((name, fn))

    def add_utilisation(self, name: str, busy_area_s: Callable[[], float], capacity: float) -> None:
        """Sample busy-time integral deltas / (capacity x interval) as ``name`` (0..1)."""
        self._utils.append((name, busy_area_s, float(capacity), [busy_area_s()]))

    def sample(self, t_s: float, interval_s: float) -> None:
        """Record every gauge now; utilisations over the last ``interval_s`` seconds."""
        code = self.metric_names.code
        for name, fn in self._gauges:
            v = fn()
            if isinstance(v, Mapping):
                for k, x in v.items():
                    self.series.append(t_s, code(f"{name}.{k}"), float(x))
            else:
                self.series.append(t_s, code(name), float(v))
        for name, area_fn, cap, last in self._utils:
            area = area_fn()
            util = (area - last[0]) / (cap * interval_s) if interval_s > 0 else 0.0
            last[0] = area
            self.series.append(t_s, code(name), util)

    def start_sampler(self, env: simpy.Environment, interval_s: float = 10.0) -> simpy.Process:
        """A SimPy process sampling all gauges every ``interval_s`` simulated seconds."""

        def run():
            while True:
                yield env.timeout(interval_s)
                self.sample(env.now, interval_s)

        return env.process(run())

    def series_frame(self) -> pd.DataFrame:
        """Long-format time series: ``t_s``, ``metric`` (categorical), ``value``."""
        df = self.series.to_frame()
        df["metric"] = self.metric_names.categorical(df["metric"].to_numpy())
        return df

    def series_wide(self) -> pd.DataFrame:
        """Time series with one column per metric, indexed by ``t_s``."""
        df = self.series_frame()
        return df.pivot_table(index="t_s", columns="metric", values="value", observed=True)

    def write_parquet(self, directory: str | Path) -> dict[str, Path]:
        """Write ``requests.parquet`` and ``series.parquet`` into ``directory``; their paths."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"requests": out / "requests.parquet", "series": out / "series.parquet"}
        self.requests_frame().to_parquet(paths["requests"], index=False)
        self.series_frame().to_parquet(paths["series"], index=False)
        return paths
