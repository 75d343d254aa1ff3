"""Kubelet heartbeats as batched write streams (KEP-589).

10,000 kubelets are not 10,000 SimPy processes: a :class:`WriteStream` is ONE process that
replays a fixed per-object schedule (object ``i`` writes at ``phase[i] + k * interval_s``).
Phases are drawn once from the seeded generator; writes whose phases fall in the same
``stream_bucket_ms`` bucket are submitted together as one request group (one APF offer, one
etcd proposal group, one callback), so the cost per simulated write is a few array operations.
The bucket is the model's time resolution for these writes (default 10 ms, documented as a
simplification): within a bucket, writes arrive together at the bucket's start.

:class:`Heartbeats` sets up what a heartbeat mode writes:

- ``lease``: every node renews its Lease (``lease_size_bytes``) every ``heartbeat_interval_s``
  and writes its NodeStatus (``node_status_size_bytes``) every
  ``node_status_report_interval_s``;
- ``nodestatus`` (before KEP-589): every node writes its whole NodeStatus every
  ``heartbeat_interval_s``.

With ``process=False`` no process is started: a caller that batches requests itself (the
replay's control plane, :mod:`tracesim.sim.controlplane`) pulls the writes due in a time window
with :meth:`Heartbeats.due` (exact per-object times, one vectorised search per stream) and
submits them together with its other requests, so Lease and NodeStatus writes share one
request group per window.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Any

import numpy as np
import simpy

from .apiserver import ApiServerModel
from .params import KubeletParams


class WriteStream:
    """Periodic updates of ``len(keys)`` objects of ``resource``, batched by phase bucket."""

    def __init__(
        self,
        env: simpy.Environment,
        apiserver: ApiServerModel,
        resource: str,
        n_objects: int,
        size_bytes: float,
        interval_s: float,
        rng: np.random.Generator,
        bucket_s: float = 0.01,
        *,
        level: str = "node-high",
        flows: int = 64,
        start_s: float = 0.0,
        until_s: float | None = None,
        process: bool = True,
    ) -> None:
        self.env = env
        self.api = apiserver
        self.resource = resource
        self.interval_s = float(interval_s)
        self.level = level
        self.until_s = until_s
        self.sent = 0
        self.ok = 0
        self.rejected = 0
        phases = rng.uniform(0.0, self.interval_s, n_objects)
        self.start_s = float(start_s)
        self.size_bytes = float(size_bytes)
        by_phase = np.argsort(phases, kind="stable")
        # Sorted phases (s), a list for bisect (cheaper than searchsorted), and the object
        # of each.
        self._phase_list = phases[by_phase].tolist()
        self._objects = by_phase.astype(np.int64)
        bucket = np.floor(phases / bucket_s).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        b_sorted = bucket[order]
        starts = np.flatnonzero(np.r_[True, b_sorted[1:] != b_sorted[:-1]])
        self.offsets_s = b_sorted[starts] * bucket_s  # submit time of each group in a cycle
        groups = np.split(order, starts[1:])
        self.keys = [g.tolist() for g in groups]
        self.sizes = [np.full(len(g), float(size_bytes)) for g in groups]
        # Spread the groups over flows so shuffle sharding sees many kubelets, not one user.
        self.flows = [f"{resource}-{i % flows}" for i in range(len(groups))]
        self.process = env.process(self._run(float(start_s))) if process else None

    def due(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Objects (keys, in time order) whose writes fall in ``[t0_s, t1_s)``; counts them as
        sent. For callers that submit the writes themselves (``process=False``)."""
        if self.until_s is not None:
            t1_s = min(t1_s, self.until_s)
        a, b = max(t0_s - self.start_s, 0.0), t1_s - self.start_s
        if b <= a:
            return self._objects[:0]
        period = self.interval_s
        ph = self._phase_list
        parts = []
        c = math.floor(a / period)
        while c * period < b:
            lo, hi = a - c * period, b - c * period
            i0 = bisect_left(ph, lo) if lo > 0 else 0
            i1 = bisect_left(ph, hi) if hi < period else len(ph)
            if i1 > i0:
                parts.append(self._objects[i0:i1])
            c += 1
        if not parts:
            return self._objects[:0]
        keys = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self.sent += len(keys)
        return keys

    def _on_done(self, lat: np.ndarray, reasons: np.ndarray, _members: Any) -> None:
        k = int(np.count_nonzero(reasons == 0))
        self.ok += k
        self.rejected += len(reasons) - k

    def _run(self, start_s: float):
        env = self.env
        cycle = start_s
        n_groups = len(self.keys)
        while True:
            for g in range(n_groups):
                t = cycle + self.offsets_s[g]
                if self.until_s is not None and t >= self.until_s:
                    return
                if t > env.now:
                    yield env.timeout(t - env.now)
                self.api.submit(
                    "update",
                    self.resource,
                    "resource",
                    self.sizes[g],
                    self.keys[g],
                    level=self.level,
                    flow=self.flows[g],
                    on_done=self._on_done,
                )
                self.sent += len(self.keys[g])
            cycle += self.interval_s


class Heartbeats:
    """The heartbeat writes of ``n_nodes`` kubelets under ``params`` (see module docstring).

    Creates the Node (and, in lease mode, Lease) objects in etcd first, keyed by node index.
    """

    def __init__(
        self,
        env: simpy.Environment,
        apiserver: ApiServerModel,
        params: KubeletParams,
        n_nodes: int,
        rng: np.random.Generator,
        *,
        until_s: float | None = None,
        process: bool = True,
    ) -> None:
        etcd = apiserver.etcd
        self._ok_pulled = 0  # answers to writes pulled with due() (process=False)
        self._rejected_pulled = 0
        keys = list(range(n_nodes))
        bucket_s = params.stream_bucket_ms / 1e3
        # etcd stores what the apiserver encodes (protobuf), a fraction of the JSON size.
        ratio = getattr(apiserver.p, "storage_size_ratio", 1.0)
        etcd.preload("nodes", keys, params.node_status_size_bytes * ratio)
        self.streams: list[WriteStream] = []
        if params.heartbeat == "lease":
            etcd.preload("leases", keys, params.lease_size_bytes * ratio)
            self.streams.append(
                WriteStream(
                    env,
                    apiserver,
                    "leases",
                    n_nodes,
                    params.lease_size_bytes,
                    params.heartbeat_interval_s,
                    rng,
                    bucket_s,
                    until_s=until_s,
                    process=process,
                )
            )
            self.streams.append(
                WriteStream(
                    env,
                    apiserver,
                    "nodes",
                    n_nodes,
                    params.node_status_size_bytes,
                    params.node_status_report_interval_s,
                    rng,
                    bucket_s,
                    until_s=until_s,
                    process=process,
                )
            )
        else:
            self.streams.append(
                WriteStream(
                    env,
                    apiserver,
                    "nodes",
                    n_nodes,
                    params.node_status_size_bytes,
                    params.heartbeat_interval_s,
                    rng,
                    bucket_s,
                    until_s=until_s,
                    process=process,
                )
            )

    @property
    def sent(self) -> int:
        """Heartbeat writes submitted so far."""
        return sum(s.sent for s in self.streams)

    @property
    def ok(self) -> int:
        """Heartbeat writes acknowledged so far."""
        return sum(s.ok for s in self.streams) + self._ok_pulled

    @property
    def rejected(self) -> int:
        """Heartbeat writes rejected so far (429, etcd limits)."""
        return sum(s.rejected for s in self.streams) + self._rejected_pulled

    def due(self, t0_s: float, t1_s: float) -> list[tuple[WriteStream, np.ndarray]]:
        """Per stream, the nodes whose heartbeat writes fall in ``[t0_s, t1_s)`` (see
        :meth:`WriteStream.due`); the caller submits them and reports with :meth:`answered`."""
        return [(s, s.due(t0_s, t1_s)) for s in self.streams]

    def answered(self, ok: int, rejected: int) -> None:
        """Count answers to pulled writes (``process=False``)."""
        self._ok_pulled += ok
        self._rejected_pulled += rejected

    def writes_per_s(self, params: KubeletParams, n_nodes: int) -> float:
        """Expected heartbeat writes per second in steady state."""
        if params.heartbeat == "lease":
            return (
                n_nodes / params.heartbeat_interval_s
                + n_nodes / params.node_status_report_interval_s
            )
        return n_nodes / params.heartbeat_interval_s
