"""The watch events of the synthetic cluster, generated per window of trace time."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ...trace.writer import conform
from .cluster import _make_nodes
from .config import (
    NODE_SHAPES,
    US,
    SynthConfig,
    _parse_start,
)
from .draws import _lognormal, _uids
from .placement import _place
from .workload import _make_pods

Columns = dict[str, Any]


def _take(values: np.ndarray, idx: np.ndarray) -> pa.Array:
    """Strings ``values[idx]`` as an Arrow array, via a dictionary (fast for repeated values)."""
    dictionary = pa.array(values, type=pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), dictionary).cast(pa.string())


def _const(value: Any, n: int, typ: pa.DataType | None = None) -> pa.Array:
    return pa.repeat(pa.scalar(value, typ or pa.string()), n)


@dataclass
class _Rows:
    """Events of one group: column arrays plus the time of each row (µs)."""

    ts_us: np.ndarray
    cols: Columns

    def table(self) -> pa.Table:
        cols = {"ts": pa.array(self.ts_us, pa.int64())}
        for key, value in self.cols.items():
            cols[key] = value if isinstance(value, pa.Array | pa.ChunkedArray) else pa.array(value)
        return pa.table(cols)


class _Generator:
    """Holds the generated cluster and workload and yields event tables per time window."""

    def __init__(self, cfg: SynthConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.start_us = _parse_start(cfg.start)
        self.start_s = self.start_us / US
        self.nodes = _make_nodes(cfg, self.rng)
        self.pods = _make_pods(cfg, self.rng, self.nodes, self.start_s)
        p = self.pods
        n = len(p["created_s"])
        rng = self.rng
        # Scheduling latency (ms-scale at low load), kubelet startup, graceful termination.
        created, deleted = p["created_s"], p["deleted_s"]
        self.bind_s = np.where(created < 0, created, created + _lognormal(rng, 0.02, 0.5, n))
        self.running_s = self.bind_s + 0.5 + _lognormal(rng, 1.5, 0.5, n)
        # A Job pod runs at least a second once started.
        p["finished_s"] = np.maximum(p["finished_s"], self.running_s + 1.0)
        finished = p["finished_s"]
        # Lifecycle steps happen only before the deletion begins.
        self.done_before = np.isfinite(finished) & (finished < deleted)
        self.runs = self.running_s < deleted
        grace = np.minimum(_lognormal(rng, 2.0, 1.0, n), 30.0)
        # A pod that has containers running is killed with a grace period, others go at once.
        killed = np.isfinite(deleted) & ~self.done_before & (self.bind_s < deleted)
        self.killed = killed
        self.gone_s = np.where(killed, deleted + grace, deleted) + 0.01
        # kube-scheduler stops counting a pod when it finishes or disappears.
        release_s = np.where(self.done_before, finished, self.gone_s)
        self.node_of = _place(p, self.nodes, rng, self.bind_s, release_s)
        self.pod_uid = _uids(rng, n)
        self.pod_size = (3200 + rng.integers(0, 1500, n)).astype(np.int64)
        self._pod_rows = self._pod_events()

    # -- pod lifecycle events, all at once (pods are few compared with heartbeats) -----------
    def _pod_events(self) -> _Rows:
        cfg, p = self.cfg, self.pods
        dur = cfg.duration_s
        n = len(p["created_s"])
        idx = np.arange(n)
        created, bind, running = p["created_s"], self.bind_s, self.running_s
        deleted, finished = p["deleted_s"], p["finished_s"]
        placed = self.node_of >= 0
        initial = created < 0
        parts: list[tuple[np.ndarray, np.ndarray, str, str, np.ndarray, np.ndarray, int]] = []
        # (pod index, time s, event type, phase, node set?, terminating?, size delta)

        def add(
            sel: np.ndarray,
            t: np.ndarray,
            etype: str,
            phase: str | np.ndarray,
            bound: np.ndarray | bool,
            terminating: bool,
            dsize: int,
        ) -> None:
            m = sel & (t < dur)
            if not m.any():
                return
            ph = phase if isinstance(phase, np.ndarray) else np.full(n, phase, dtype=object)
            bd = bound if isinstance(bound, np.ndarray) else np.full(n, bound)
            parts.append((idx[m], t[m], etype, ph[m], bd[m], np.full(m.sum(), terminating), dsize))

        # At trace start: the initial LIST (state at 0).
        bound_at_start = placed & (bind < 0)
        init_phase = np.where(
            ~bound_at_start,
            "Pending",
            np.where(finished < 0, "Succeeded", np.where(running < 0, "Running", "Pending")),
        )
        add(initial, np.zeros(n), "LISTED", init_phase.astype(object), bound_at_start, False, 1500)
        later = ~initial
        before_del = later & placed
        add(later, created, "ADDED", "Pending", False, False, 0)
        add(before_del & (bind < deleted), bind, "MODIFIED", "Pending", True, False, 300)
        # Unschedulable: the scheduler writes the PodScheduled=False condition.
        unsched_t = created + 0.02
        add(
            later & ~placed & (unsched_t < deleted),
            unsched_t,
            "MODIFIED",
            "Pending",
            False,
            False,
            400,
        )
        creating_t = bind + 0.3
        add(
            before_del & (creating_t < deleted), creating_t, "MODIFIED", "Pending", True, False, 900
        )
        add(before_del & self.runs, running, "MODIFIED", "Running", True, False, 1500)
        add(
            placed & self.done_before & (finished >= 0),
            finished,
            "MODIFIED",
            "Succeeded",
            True,
            False,
            1600,
        )
        gone = np.isfinite(deleted) & (deleted >= 0)
        bound_then = placed & (bind < deleted)
        phase_then = np.where(
            ~bound_then,
            "Pending",
            np.where(self.done_before, "Succeeded", np.where(self.runs, "Running", "Pending")),
        ).astype(object)
        add(gone, np.maximum(deleted, 0), "MODIFIED", phase_then, bound_then, True, 1550)
        # The kubelet stops the containers, reports the final status, then the pod goes.
        killed = self.killed & bound_then
        final = np.where(self.runs, "Succeeded", "Failed").astype(object)
        add(gone & killed, self.gone_s - 0.01, "MODIFIED", final, True, True, 1600)
        add(
            gone,
            self.gone_s,
            "DELETED",
            np.where(killed, final, phase_then).astype(object),
            bound_then,
            True,
            1600,
        )
        if not parts:  # no pods at all
            empty = np.zeros(0, dtype=bool)
            parts.append((idx[:0], np.zeros(0), "ADDED", empty.astype(object), empty, empty, 0))
        pod = np.concatenate([x[0] for x in parts])
        t_s = np.concatenate([x[1] for x in parts])
        etype = np.concatenate([np.full(len(x[0]), x[2], dtype=object) for x in parts])
        phase = np.concatenate([x[3] for x in parts])
        bound = np.concatenate([x[4] for x in parts])
        term = np.concatenate([x[5] for x in parts])
        dsize = np.concatenate([np.full(len(x[0]), x[6]) for x in parts])
        order = np.argsort(t_s, kind="stable")
        pod, t_s, etype, phase, bound, term, dsize = (
            a[order] for a in (pod, t_s, etype, phase, bound, term, dsize)
        )
        node_idx = np.where(bound, self.node_of[pod], -1)
        names = np.concatenate([self.nodes.names, np.array([None], dtype=object)])
        n_nodes = len(self.nodes.names)
        node_names = _take(names, np.where(node_idx < 0, n_nodes, node_idx))
        m = len(pod)
        ts_us = self.start_us + np.round(t_s * US).astype(np.int64)
        cols: Columns = {
            "kind": _const("Pod", m),
            "api_version": _const("v1", m),
            "event_type": pa.array(etype, pa.string()),
            "namespace": pa.array(p["namespace"][pod], pa.string()),
            "name": pa.array(p["name"][pod], pa.string()),
            "uid": pa.array(self.pod_uid[pod], pa.string()),
            "size_bytes": pa.array(self.pod_size[pod] + dsize, pa.int64()),
            "owner_kind": pa.array(p["owner_kind"][pod], pa.string()),
            "owner_name": pa.array(p["owner_name"][pod], pa.string()),
            "node_name": node_names,
            "phase": pa.array(phase, pa.string()),
            "terminating": pa.array(term, pa.bool_()),
            "scheduler_name": _const("default-scheduler", m),
            "priority": pa.array(p["priority"][pod], pa.int32()),
            "qos_class": _const("Burstable", m),
            "req_cpu_milli": pa.array(p["cpu_milli"][pod], pa.int64()),
            "req_memory_bytes": pa.array(p["memory_bytes"][pod], pa.int64()),
            "req_gpu_count": pa.array(p["gpus"][pod], pa.int32()),
            "req_gpu_milli": pa.array(p["gpus"][pod] * 1000, pa.int64()),
        }
        self._pod_index = pod  # for Events derived from pod events
        return _Rows(ts_us, cols)

    # -- windows ---------------------------------------------------------------------------------
    def windows(self) -> Iterator[pa.Table]:
        """Time-ordered event tables, one per window of ``cfg.window_s`` of trace time."""
        cfg = self.cfg
        wanted = set(cfg.resources)
        pod_ts = self._pod_rows.ts_us
        pod_table = self._pod_rows.table() if "pods" in wanted else None
        event_table = self._k8s_events() if "events" in wanted else None
        n_windows = max(1, math.ceil(cfg.duration_s / cfg.window_s))
        for w in range(n_windows):
            t0 = w * cfg.window_s
            t1 = min((w + 1) * cfg.window_s, cfg.duration_s)
            lo_us, hi_us = self.start_us + int(t0 * US), self.start_us + round(t1 * US)
            last = w == n_windows - 1
            parts: list[pa.Table] = []
            if w == 0:
                parts.extend(self._initial_nodes(wanted))
            for table, ts in ((pod_table, pod_ts), (event_table, None)):
                if table is None:
                    continue
                tsv = ts if ts is not None else table.column("ts").to_numpy()
                a = int(np.searchsorted(tsv, lo_us, side="left"))
                b = len(tsv) if last else int(np.searchsorted(tsv, hi_us, side="left"))
                if b > a:
                    parts.append(table.slice(a, b - a))
            parts.extend(self._heartbeats(t0, t1, wanted))
            yield _merge(parts)

    def _initial_nodes(self, wanted: set[str]) -> list[pa.Table]:
        out = []
        n = len(self.nodes.names)
        if "nodes" in wanted:
            out.append(self._node_rows(np.arange(n), np.zeros(n), "LISTED"))
        if "leases" in wanted and self.cfg.heartbeat == "lease":
            out.append(self._lease_rows(np.arange(n), np.zeros(n), "LISTED"))
        return out

    def _heartbeats(self, t0: float, t1: float, wanted: set[str]) -> list[pa.Table]:
        cfg, nodes = self.cfg, self.nodes
        out = []
        # Kubelet k's writes happen at phase_k + j * interval (j >= 1), with a little jitter.

        def beats(interval: float, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            j0 = max(1, math.floor(t0 / interval) - 1)
            j1 = math.ceil(t1 / interval) + 1
            j = np.arange(j0, j1 + 1)
            t = self._jitter_s(phase[None, :] + j[:, None] * interval)
            node = np.broadcast_to(np.arange(len(phase))[None, :], t.shape)
            mask = (t >= t0) & (t < t1)
            return node[mask], t[mask]

        if cfg.heartbeat == "lease":
            if "leases" in wanted:
                node, t = beats(cfg.heartbeat_interval_s, nodes.phase_s)
                out.append(self._lease_rows(node, t, "MODIFIED"))
            if "nodes" in wanted:
                phase = nodes.phase_s * (cfg.node_status_report_s / cfg.heartbeat_interval_s)
                node, t = beats(cfg.node_status_report_s, phase)
                out.append(self._node_rows(node, t, "MODIFIED"))
        elif "nodes" in wanted:
            node, t = beats(cfg.heartbeat_interval_s, nodes.phase_s)
            out.append(self._node_rows(node, t, "MODIFIED"))
        return out

    def _jitter_s(self, t_s: np.ndarray) -> np.ndarray:
        """Times plus up to 50 ms of processing jitter, deterministic in (time, seed)."""
        # A hash of the time keeps windows independent of each other yet seeded.
        frac = np.modf(t_s * 7919.0 + self.cfg.seed * 0.618)[0]
        return t_s + 0.05 * np.abs(frac)

    def _node_rows(self, node: np.ndarray, t_s: np.ndarray, etype: str) -> pa.Table:
        nodes = self.nodes
        m = len(node)
        labels_dict = [
            sorted(
                [
                    "beta.kubernetes.io/arch=amd64",
                    "beta.kubernetes.io/os=linux",
                    f"kubernetes.io/hostname={name}",
                    "kubernetes.io/os=linux",
                    f"node.kubernetes.io/instance-type={NODE_SHAPES[s][0]}",
                    f"topology.kubernetes.io/zone={z}",
                ]
                + ([f"nvidia.com/gpu.product={g}"] if g else [])
            )
            for name, s, z, g in zip(
                nodes.names, nodes.shape, nodes.zone, nodes.gpu_model, strict=True
            )
        ]
        gpu_taint = ["nvidia.com/gpu=present:NoSchedule"]
        taints = [gpu_taint if g else None for g in nodes.gpus]
        ts = self.start_us + np.round(t_s * US).astype(np.int64)
        # Node updates differ slightly in size (conditions' timestamps, image list changes).
        size = nodes.size_bytes[node] + (np.round(t_s).astype(np.int64) % 97)
        models = np.concatenate([nodes.gpu_model, [None]])
        cols = {
            "ts": pa.array(ts, pa.int64()),
            "kind": _const("Node", m),
            "api_version": _const("v1", m),
            "event_type": _const(etype, m),
            "name": _take(nodes.names, node),
            "uid": _take(nodes.uids, node),
            "size_bytes": pa.array(size, pa.int64()),
            "labels": pa.array(labels_dict, pa.list_(pa.string())).take(pa.array(node)),
            "alloc_cpu_milli": pa.array(nodes.cpu_milli[node], pa.int64()),
            "alloc_memory_bytes": pa.array(nodes.memory_bytes[node], pa.int64()),
            "alloc_pods": pa.array(nodes.pods[node], pa.int32()),
            "alloc_gpu_count": pa.array(nodes.gpus[node], pa.int32()),
            "alloc_gpu_milli": pa.array(nodes.gpus[node] * 1000, pa.int64()),
            "gpu_model": _take(np.where(models == "", None, models), node),
            "unschedulable": _const(False, m, pa.bool_()),
            "ready": _const(True, m, pa.bool_()),
            "taints": pa.array(taints, pa.list_(pa.string())).take(pa.array(node)),
        }
        return pa.table(cols)

    def _lease_rows(self, node: np.ndarray, t_s: np.ndarray, etype: str) -> pa.Table:
        nodes = self.nodes
        m = len(node)
        ts = self.start_us + np.round(t_s * US).astype(np.int64)
        cols = {
            "ts": pa.array(ts, pa.int64()),
            "kind": _const("Lease", m),
            "api_version": _const("coordination.k8s.io/v1", m),
            "event_type": _const(etype, m),
            "namespace": _const("kube-node-lease", m),
            "name": _take(nodes.names, node),
            "uid": _take(nodes.lease_uids, node),
            "size_bytes": pa.array(np.full(m, self.cfg.lease_size_bytes), pa.int64()),
            "owner_kind": _const("Node", m),
            "owner_name": _take(nodes.names, node),
            "lease_holder": _take(nodes.names, node),
            "lease_renew_time": pa.array(ts, pa.int64()),
            "lease_duration_s": _const(40, m, pa.int32()),
        }
        return pa.table(cols)

    def _k8s_events(self) -> pa.Table:
        """core/v1 Events the scheduler and kubelets write for the pod events, and their expiry.

        Scheduled at binding, Pulled/Created/Started when the pod starts running, Killing on
        deletion, FailedScheduling for unschedulable pods. Each expires after 1 h (DELETED).
        """
        rows = self._pod_rows
        etype = rows.cols["event_type"].to_numpy(zero_copy_only=False)
        phase = rows.cols["phase"].to_numpy(zero_copy_only=False)
        bound = rows.cols["node_name"].is_valid().to_numpy(zero_copy_only=False)
        term = rows.cols["terminating"].to_numpy(zero_copy_only=False)
        pod = self._pod_index
        is_mod = etype == "MODIFIED"
        reasons: list[tuple[np.ndarray, str, str, int]] = []
        sched = np.flatnonzero(is_mod & bound & (phase == "Pending") & ~term)
        # Two bound-Pending updates per pod (binding, then ContainerCreating): keep the first.
        _, first = np.unique(pod[sched], return_index=True)
        reasons.append((sched[first], "Scheduled", "default-scheduler", 0))
        run = np.flatnonzero(is_mod & (phase == "Running") & ~term)
        for r, off in (("Pulled", -0.4), ("Created", -0.2), ("Started", 0.0)):
            reasons.append((run, r, "kubelet", int(off * US)))
        kill = np.flatnonzero(is_mod & term & bound & (phase == "Running"))
        reasons.append((kill, "Killing", "kubelet", 0))
        unsched = np.flatnonzero(is_mod & ~bound & ~term & (etype != "LISTED"))
        reasons.append((unsched, "FailedScheduling", "default-scheduler", 0))
        src = np.concatenate([r[0] for r in reasons])
        reason = np.concatenate([np.full(len(r[0]), r[1], dtype=object) for r in reasons])
        offset = np.concatenate([np.full(len(r[0]), r[3]) for r in reasons])
        created_us = np.maximum(rows.ts_us[src] + offset, rows.ts_us[src])
        m = len(src)
        expire_us = created_us + 3600 * US
        end_us = self.start_us + round(self.cfg.duration_s * US)
        expired = expire_us < end_us
        all_src = np.concatenate([src, src[expired]])
        all_reason = np.concatenate([reason, reason[expired]])
        all_ts = np.concatenate([created_us, expire_us[expired]])
        all_type = np.concatenate(
            [
                np.full(m, "ADDED", dtype=object),
                np.full(int(expired.sum()), "DELETED", dtype=object),
            ]
        )
        uid = _uids(self.rng, m)
        ev_names = np.array(
            [
                f"{p}.{u[:8]}{u[9:13]}{u[14:18]}"
                for p, u in zip(self.pods["name"][pod[src]], uid, strict=True)
            ],
            dtype=object,
        )
        ev_of = np.concatenate([np.arange(m), np.flatnonzero(expired)])
        order = np.argsort(all_ts, kind="stable")
        all_src, all_reason, all_ts, all_type, ev_of = (
            a[order] for a in (all_src, all_reason, all_ts, all_type, ev_of)
        )
        k = len(all_ts)
        size = 640 + np.array([len(r) for r in all_reason]) * 4
        return pa.table(
            {
                "ts": pa.array(all_ts, pa.int64()),
                "kind": _const("Event", k),
                "api_version": _const("v1", k),
                "event_type": pa.array(all_type, pa.string()),
                "namespace": pa.array(self.pods["namespace"][pod[all_src]], pa.string()),
                "name": pa.array(ev_names[ev_of], pa.string()),
                "uid": pa.array(uid[ev_of], pa.string()),
                "size_bytes": pa.array(size, pa.int64()),
                "detail": pa.array(all_reason, pa.string()),
            }
        )


def _merge(parts: list[pa.Table]) -> pa.Table:
    """Concatenate event tables of different kinds and order them by time (stable)."""
    if not parts:
        return conform(pa.table({"ts": pa.array([], pa.int64())}))
    table = pa.concat_tables([conform(p) for p in parts])
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    return table.take(np.argsort(ts, kind="stable"))


class _ResourceVersions:
    """etcd-like revisions: one global counter, increasing with every write in time order.

    Objects of the initial LIST carry the revisions of their last change (below the list's).
    """

    def __init__(self) -> None:
        self.next = 1

    def stamp(self, table: pa.Table) -> pa.Table:
        n = table.num_rows
        rv = pa.array(np.arange(self.next, self.next + n, dtype=np.int64)).cast(pa.string())
        self.next += n
        i = table.column_names.index("resource_version")
        return table.set_column(i, "resource_version", rv)
