"""Synthetic cluster traces: the events a recorder would see, generated at any scale.

The generator builds a cluster (heterogeneous node shapes, a few GPU nodes, DaemonSets on every
node), a workload (Deployments whose pods are replaced over time, batch Jobs arriving in bursts,
a daily pattern, a rollout storm, an optional burst of pods) and the writes the control plane
makes for it (scheduler bindings, kubelet status updates, node heartbeats, Events). It emits the
watch events of the requested resources (``pods``, ``nodes``, ``leases``, ``events``) as trace
format v1, time-ordered, seeded.

Everything is vectorised over objects; the only Python loop runs once per pod (placement), never
over nodes. Events are written in windows of trace time so memory stays bounded for long traces.

Sources of the defaults (see ``../docs/synth.md`` for the prose):

- Lease renewals every 10 s, NodeStatus every 5 min with Leases, every 10 s without; Node objects
  "easily exceed 15 kB", a Lease is a few hundred bytes: KEP-589 (efficient node heartbeats).
- Pod churn of 20/s at 10,000 nodes (0.002 per node per second): the SIG Scalability churn limit
  under which the SLOs hold (sig-scalability/slos/slos.md).
- Events expire after 1 h (kube-apiserver ``--event-ttl`` default), which watchers see as DELETED.
- Job pods removed 10 min after they finish (``ttlSecondsAfterFinished: 600``, our choice).
- Pod object sizes 3-8 kB with managedFields, Events about 700 bytes: our measurements of
  objects served by a v1.30 API server (reading, not a published figure).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import TracesimError
from ..trace.writer import TraceWriter

US = 1_000_000
RESOURCES = ("pods", "nodes", "leases", "events")
HEARTBEAT_MODES = ("lease", "nodestatus")

# Node shapes: (instance type, cpu cores, memory GiB, GPUs, GPU model, weight).
NODE_SHAPES = [
    ("m5.2xlarge", 8, 32, 0, None, 0.25),
    ("m5.4xlarge", 16, 64, 0, None, 0.30),
    ("c5.9xlarge", 36, 72, 0, None, 0.15),
    ("r5.4xlarge", 16, 128, 0, None, 0.12),
    ("m5.16xlarge", 64, 256, 0, None, 0.13),
    ("p4d.24xlarge", 96, 1152, 8, "A100", 0.05),
]
# Pod templates: (cpu milli, memory MiB, weight). Small requests dominate real clusters; memory
# about 2 GiB per requested core (our choice, between the node shapes' 2 and 8 GiB per core).
POD_SHAPES = [
    (100, 256, 0.20),
    (250, 512, 0.25),
    (500, 1024, 0.20),
    (1000, 2048, 0.15),
    (1000, 4096, 0.08),
    (2000, 4096, 0.08),
    (4000, 8192, 0.04),
]
DAEMONSETS = [("kube-proxy", 100, 128), ("node-exporter", 100, 64), ("fluent-bit", 100, 200)]
ZONES = ("zone-a", "zone-b", "zone-c")


@dataclass(frozen=True)
class SynthConfig:
    """Parameters of a synthetic trace. Times are seconds; rates are per second."""

    nodes: int = 100
    duration_s: float = 3600.0
    seed: int = 0
    start: str = "2026-01-05T08:00:00+00:00"
    resources: tuple[str, ...] = RESOURCES
    #: ``lease``: Lease renewals + NodeStatus every ``node_status_report_s``; ``nodestatus``:
    #: the pre-1.14 mode, the whole Node object every ``heartbeat_interval_s`` (KEP-589).
    heartbeat: str = "lease"
    heartbeat_interval_s: float = 10.0
    node_status_report_s: float = 300.0
    #: Node object size in NodeStatus updates, bytes ("easily exceed 15 kB", KEP-589).
    node_size_bytes: int = 16_000
    lease_size_bytes: int = 450
    #: Pods per node at the start (Deployments + DaemonSets), before Jobs: 20, as in Alibaba's
    #: 10,000-node clusters of "about 200,000 pods" (Alibaba Cloud blog, 2019).
    pods_per_node: float = 20.0
    #: Deployment pod replacements per node per second (20/s at 10k nodes: the SLO churn).
    churn_per_node_s: float = 0.002
    #: Job arrivals per hour per 1,000 nodes; pods per Job (geometric mean).
    jobs_per_hour_per_1k_nodes: float = 30.0
    job_pods_mean: float = 20.0
    job_runtime_median_s: float = 300.0
    job_ttl_after_finished_s: float = 600.0
    #: Amplitude of the daily pattern of arrivals (0 = flat), peak at 14:00 UTC.
    daily_amplitude: float = 0.3
    #: A rollout storm: this fraction of Deployments rolls out at ``rollout_at_s`` (default:
    #: mid-trace) within ``rollout_window_s``. ``rollout_fraction = 0`` turns it off.
    rollout_fraction: float = 0.25
    rollout_at_s: float | None = None
    rollout_window_s: float = 120.0
    #: An extra burst of pods (one Job per 1,000 pods) at ``burst_at_s``; 0 = none.
    burst_pods: int = 0
    burst_at_s: float | None = None
    #: Events are generated and written in windows of this much trace time (memory bound).
    window_s: float = 300.0

    def validate(self) -> None:
        """Raise :class:`TracesimError` naming the first bad parameter."""
        if self.nodes < 1:
            raise TracesimError("--nodes must be at least 1")
        if not self.duration_s > 0:
            raise TracesimError("--duration must be positive, e.g. 30m or 1h")
        bad = [r for r in self.resources if r not in RESOURCES]
        if bad:
            raise TracesimError(
                f"unknown resource(s) {', '.join(bad)}; choose from {', '.join(RESOURCES)}"
            )
        if self.heartbeat not in HEARTBEAT_MODES:
            raise TracesimError(f"--heartbeat must be one of {', '.join(HEARTBEAT_MODES)}")
        if self.heartbeat_interval_s <= 0 or self.node_status_report_s <= 0:
            raise TracesimError("heartbeat intervals must be positive")
        if not 0 <= self.daily_amplitude < 1:
            raise TracesimError("daily amplitude must be in [0, 1)")
        if not 0 <= self.rollout_fraction <= 1:
            raise TracesimError("rollout fraction must be in [0, 1]")
        if self.burst_pods < 0 or self.pods_per_node < 0 or self.churn_per_node_s < 0:
            raise TracesimError("pod counts and rates must not be negative")
        try:
            _parse_start(self.start)
        except ValueError:
            raise TracesimError(f"--start {self.start!r} is not an ISO 8601 time") from None


def _parse_start(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * US)


# -- small vectorised helpers -------------------------------------------------------------------
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_DIGITS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def _uids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random version-4 UUID strings (from the seeded generator, not the OS)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nibbles = np.stack([raw >> 4, raw & 0x0F], axis=2).reshape(n, 32)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGITS] = _HEX[nibbles]
    return text.view("S36").ravel().astype("U36").astype(object)


_ALNUM = np.array(list("bcdfghjklmnpqrstvwxz2456789"))  # the alphabet of k8s name suffixes


def _suffixes(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    letters = _ALNUM[rng.integers(0, len(_ALNUM), size=(n, length))]
    return np.array(["".join(row) for row in letters], dtype=object)


def _daily_factor(t_s: np.ndarray, start_s: float, amplitude: float) -> np.ndarray:
    """Arrival-rate multiplier in [1 - a, 1 + a], peaking at 14:00 UTC."""
    hour = ((start_s + t_s) % 86_400.0) / 3600.0
    return 1.0 + amplitude * np.cos((hour - 14.0) / 24.0 * 2.0 * math.pi)


def _nhpp(
    rng: np.random.Generator, rate_s: float, duration_s: float, start_s: float, amplitude: float
) -> np.ndarray:
    """Arrival times (s, sorted) of a Poisson process with the daily pattern (by thinning)."""
    peak = rate_s * (1.0 + amplitude)
    n = rng.poisson(peak * duration_s)
    t = np.sort(rng.uniform(0.0, duration_s, size=n))
    keep = rng.uniform(0.0, 1.0 + amplitude, size=n) < _daily_factor(t, start_s, amplitude)
    return t[keep]


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))


# -- the cluster --------------------------------------------------------------------------------
@dataclass
class _Nodes:
    names: np.ndarray
    uids: np.ndarray
    lease_uids: np.ndarray
    shape: np.ndarray
    cpu_milli: np.ndarray
    memory_bytes: np.ndarray
    pods: np.ndarray
    gpus: np.ndarray
    gpu_model: np.ndarray
    zone: np.ndarray
    size_bytes: np.ndarray
    phase_s: np.ndarray  # heartbeat phase inside the interval


def _make_nodes(cfg: SynthConfig, rng: np.random.Generator) -> _Nodes:
    n = cfg.nodes
    weights = np.array([s[5] for s in NODE_SHAPES])
    shape = rng.choice(len(NODE_SHAPES), size=n, p=weights / weights.sum())
    cores = np.array([s[1] for s in NODE_SHAPES])[shape]
    mem_gib = np.array([s[2] for s in NODE_SHAPES])[shape]
    # Allocatable = capacity - kube-reserved - system-reserved (GKE's reservation table, roughly).
    cpu_milli = cores * 1000 - (60 + 10 * cores)
    memory_bytes = mem_gib * 2**30 - np.minimum(mem_gib * 2**30 // 10, 4 * 2**30) - 100 * 2**20
    gpus = np.array([s[3] for s in NODE_SHAPES])[shape]
    models = np.array([s[4] or "" for s in NODE_SHAPES], dtype=object)[shape]
    # Node objects grow with their image list; GPU nodes carry more images and labels.
    size = cfg.node_size_bytes * (0.8 + 0.4 * rng.random(n)) * np.where(gpus > 0, 1.3, 1.0)
    return _Nodes(
        names=np.array([f"node-{i:05d}" for i in range(n)], dtype=object),
        uids=_uids(rng, n),
        lease_uids=_uids(rng, n),
        shape=shape,
        cpu_milli=cpu_milli.astype(np.int64),
        memory_bytes=memory_bytes.astype(np.int64),
        pods=np.full(n, 110, dtype=np.int64),
        gpus=gpus.astype(np.int64),
        gpu_model=models,
        zone=np.array(ZONES, dtype=object)[np.arange(n) % len(ZONES)],
        size_bytes=size.astype(np.int64),
        phase_s=rng.uniform(0.0, cfg.heartbeat_interval_s, size=n),
    )


# -- the workload -------------------------------------------------------------------------------
@dataclass
class _Pods:
    """One entry per pod instance, in creation order of generation (not sorted)."""

    namespace: list[str] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    owner_kind: list[str] = field(default_factory=list)
    owner_name: list[str] = field(default_factory=list)
    cpu_milli: list[np.ndarray] = field(default_factory=list)
    memory_bytes: list[np.ndarray] = field(default_factory=list)
    gpus: list[np.ndarray] = field(default_factory=list)
    created_s: list[np.ndarray] = field(default_factory=list)  # < 0: before the trace
    deleted_s: list[np.ndarray] = field(default_factory=list)  # inf: after the trace
    finished_s: list[np.ndarray] = field(default_factory=list)  # inf: runs until deleted
    fixed_node: list[np.ndarray] = field(default_factory=list)  # -1: scheduled
    priority: list[np.ndarray] = field(default_factory=list)

    def add(self, **cols: Any) -> None:
        for key, value in cols.items():
            target = getattr(self, key)
            if isinstance(value, list | np.ndarray) and key in (
                "namespace",
                "name",
                "owner_kind",
                "owner_name",
            ):
                target.extend(list(value))
            else:
                target.append(np.asarray(value))

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for key in self.__dataclass_fields__:
            value = getattr(self, key)
            if key in ("namespace", "name", "owner_kind", "owner_name"):
                out[key] = np.array(value, dtype=object)
            else:
                out[key] = np.concatenate(value) if value else np.zeros(0)
        return out


def _make_pods(cfg: SynthConfig, rng: np.random.Generator, nodes: _Nodes, start_s: float) -> dict:
    pods = _Pods()
    n_nodes = cfg.nodes
    dur = cfg.duration_s
    inf = np.inf
    # DaemonSets: one pod per node each, in kube-system, never churned.
    n_ds = min(len(DAEMONSETS), max(0, int(cfg.pods_per_node)))
    for ds_name, cpu, mem in DAEMONSETS[:n_ds]:
        sfx = _suffixes(rng, n_nodes, 5)
        pods.add(
            namespace=["kube-system"] * n_nodes,
            name=[f"{ds_name}-{s}" for s in sfx],
            owner_kind=["DaemonSet"] * n_nodes,
            owner_name=[ds_name] * n_nodes,
            cpu_milli=np.full(n_nodes, cpu),
            memory_bytes=np.full(n_nodes, mem * 2**20),
            gpus=np.zeros(n_nodes, dtype=np.int64),
            created_s=-rng.uniform(86_400, 30 * 86_400, n_nodes),
            deleted_s=np.full(n_nodes, inf),
            finished_s=np.full(n_nodes, inf),
            fixed_node=np.arange(n_nodes),
            priority=np.full(n_nodes, 2_000_001_000),
        )
    # Deployments: replicas drawn until the slots fill pods_per_node.
    n_slots = max(0, round(n_nodes * (cfg.pods_per_node - n_ds)))
    n_ns = max(3, n_nodes // 50)
    namespaces = np.array([f"team-{i:03d}" for i in range(n_ns)], dtype=object)
    replicas = []
    while sum(replicas) < n_slots:
        replicas.append(int(min(1 + rng.geometric(1 / 6.0), 200)))
    if replicas:
        replicas[-1] -= sum(replicas) - n_slots
        replicas = [r for r in replicas if r > 0]
    n_dep = len(replicas)
    dep_ns = namespaces[rng.integers(0, n_ns, size=n_dep)]
    dep_names = np.array([f"app-{i:05d}" for i in range(n_dep)], dtype=object)
    w = np.array([s[2] for s in POD_SHAPES])
    dep_shape = rng.choice(len(POD_SHAPES), size=n_dep, p=w / w.sum())
    dep_cpu = np.array([s[0] for s in POD_SHAPES])[dep_shape]
    dep_mem = np.array([s[1] for s in POD_SHAPES])[dep_shape] * 2**20
    dep_prio = np.where(rng.random(n_dep) < 0.1, 1_000_000, 0)
    dep_hash = [_suffixes(rng, n_dep, 10), _suffixes(rng, n_dep, 10)]  # before/after rollout
    slot_dep = np.repeat(np.arange(n_dep), replicas)
    # Replacement events: a Poisson process over all slots with the daily pattern.
    t_repl = _nhpp(rng, cfg.churn_per_node_s * n_nodes, dur, start_s, cfg.daily_amplitude)
    if n_slots == 0:
        t_repl = t_repl[:0]
    s_repl = rng.integers(0, max(n_slots, 1), size=len(t_repl))
    rollout_at = dur / 2 if cfg.rollout_at_s is None else cfg.rollout_at_s
    rolled = rng.random(n_dep) < cfg.rollout_fraction if n_dep else np.zeros(0, dtype=bool)
    roll_slots = np.flatnonzero(rolled[slot_dep]) if n_slots else np.zeros(0, dtype=np.int64)
    t_roll = rollout_at + rng.uniform(0, cfg.rollout_window_s, size=len(roll_slots))
    keep = t_roll < dur
    ev_slot = np.concatenate([s_repl, roll_slots[keep]]).astype(np.int64)
    ev_t = np.concatenate([t_repl, t_roll[keep]])
    # One pod instance per (slot, interval between its events).
    order = np.lexsort((ev_t, ev_slot))
    ev_slot, ev_t = ev_slot[order], ev_t[order]
    # A replacement needs its predecessor to exist first: merge events of one slot that come
    # within 0.1 s of the previous one (the controller's reaction time is below that).
    close = np.zeros(len(ev_t), dtype=bool)
    close[1:] = (ev_slot[1:] == ev_slot[:-1]) & (ev_t[1:] - ev_t[:-1] < 0.1)
    ev_slot, ev_t = ev_slot[~close], ev_t[~close]
    inst_slot = np.concatenate([np.arange(n_slots), ev_slot])
    inst_created = np.concatenate([-rng.uniform(3600, 14 * 86_400, n_slots), ev_t])
    order = np.lexsort((inst_created, inst_slot))
    inst_slot, inst_created = inst_slot[order], inst_created[order]
    # A slot's pod lives until the slot's next event (its replacement) or past the end.
    inst_deleted = np.full(len(inst_slot), inf)
    same_next = inst_slot[1:] == inst_slot[:-1]
    inst_deleted[:-1][same_next] = inst_created[1:][same_next]
    # The ReplicaSet controller reacts to a deletion within tens of milliseconds.
    later = inst_created >= 0
    inst_created = np.where(later, inst_created + rng.uniform(0.01, 0.06, len(later)), inst_created)
    dep = slot_dep[inst_slot]
    gen = (rolled[dep] & (inst_created >= rollout_at)).astype(np.int64)
    hashes = np.where(gen == 1, dep_hash[1][dep], dep_hash[0][dep])
    n_inst = len(inst_slot)
    sfx = _suffixes(rng, n_inst, 5)
    pods.add(
        namespace=dep_ns[dep],
        name=[f"{d}-{h}-{s}" for d, h, s in zip(dep_names[dep], hashes, sfx, strict=True)],
        owner_kind=["ReplicaSet"] * n_inst,
        owner_name=[f"{d}-{h}" for d, h in zip(dep_names[dep], hashes, strict=True)],
        cpu_milli=dep_cpu[dep],
        memory_bytes=dep_mem[dep],
        gpus=np.zeros(n_inst, dtype=np.int64),
        created_s=inst_created,
        deleted_s=inst_deleted,
        finished_s=np.full(n_inst, inf),
        fixed_node=np.full(n_inst, -1),
        priority=dep_prio[dep],
    )
    # Batch Jobs in bursts, plus the optional big burst.
    job_t = _nhpp(
        rng,
        cfg.jobs_per_hour_per_1k_nodes * n_nodes / 1000 / 3600,
        dur,
        start_s,
        cfg.daily_amplitude,
    )
    job_size = np.minimum(rng.geometric(1 / max(cfg.job_pods_mean, 1), size=len(job_t)), 2000)
    if cfg.burst_pods:
        burst_at = dur / 3 if cfg.burst_at_s is None else cfg.burst_at_s
        chunks = [1000] * (cfg.burst_pods // 1000) + [cfg.burst_pods % 1000]
        chunks = [c for c in chunks if c]
        job_t = np.concatenate([job_t, np.full(len(chunks), burst_at)])
        job_size = np.concatenate([job_size, chunks])
    n_jobs = len(job_t)
    if n_jobs:
        job_ns = namespaces[rng.integers(0, n_ns, size=n_jobs)]
        job_shape = rng.choice(len(POD_SHAPES), size=n_jobs, p=w / w.sum())
        gpu_job = rng.random(n_jobs) < 0.05
        job = np.repeat(np.arange(n_jobs), job_size)
        m = len(job)
        # The Job controller creates pods in batches: about 50 per second per Job.
        first = np.repeat(np.cumsum(job_size) - job_size, job_size)
        offset = (np.arange(m) - first) / 50.0
        created = job_t[job] + offset + rng.uniform(0.005, 0.02, m)
        runtime = _lognormal(rng, cfg.job_runtime_median_s, 0.8, m)
        finished = created + 3.0 + runtime
        jsfx = _suffixes(rng, n_jobs, 5)
        job_names = np.array([f"batch-{i:05d}-{s}" for i, s in enumerate(jsfx)], dtype=object)
        psfx = _suffixes(rng, m, 5)
        pods.add(
            namespace=job_ns[job],
            name=[f"{j}-{s}" for j, s in zip(job_names[job], psfx, strict=True)],
            owner_kind=["Job"] * m,
            owner_name=job_names[job],
            cpu_milli=np.array([s[0] for s in POD_SHAPES])[job_shape][job],
            memory_bytes=np.array([s[1] for s in POD_SHAPES])[job_shape][job] * 2**20,
            gpus=np.where(gpu_job[job], 1, 0),
            created_s=created,
            deleted_s=finished + cfg.job_ttl_after_finished_s,
            finished_s=finished,
            fixed_node=np.full(m, -1),
            priority=np.zeros(m, dtype=np.int64),
        )
    out = pods.arrays()
    keep = out["created_s"] < dur
    return {k: v[keep] for k, v in out.items()}


# -- placement ----------------------------------------------------------------------------------
def _place(
    pods: dict[str, np.ndarray],
    nodes: _Nodes,
    rng: np.random.Generator,
    bind_s: np.ndarray,
    release_s: np.ndarray,
) -> np.ndarray:
    """A node per pod (-1: unschedulable), never over-committing cpu, memory, pods or GPUs.

    Pods are placed in binding order, releasing first what pods that finished or disappeared by
    then held (``release_s``); a pod deleted before its binding is never placed. Choice: the
    best of a few random candidates by free CPU (power-of-k-choices), then a full scan if none
    of them fits. One Python step per pod; the scan is a numpy expression, rarely needed.
    """
    n = len(pods["created_s"])
    free_cpu = nodes.cpu_milli.copy()
    free_mem = nodes.memory_bytes.copy()
    free_pods = nodes.pods.copy()
    free_gpu = nodes.gpus.copy()
    node_of = np.full(n, -1, dtype=np.int64)
    order = np.argsort(bind_s, kind="stable")
    cand = rng.integers(0, len(free_cpu), size=(n, 4))
    cpu, mem, gpu = pods["cpu_milli"], pods["memory_bytes"], pods["gpus"]
    fixed = pods["fixed_node"]
    releases: list[tuple[float, int]] = []
    fc, fm, fp, fg = free_cpu, free_mem, free_pods, free_gpu
    for i in order.tolist():
        t = bind_s[i]
        while releases and releases[0][0] <= t:
            _, j = heapq.heappop(releases)
            k = node_of[j]
            fc[k] += cpu[j]
            fm[k] += mem[j]
            fp[k] += 1
            fg[k] += gpu[j]
        if release_s[i] <= t:
            continue
        c, m_, g = cpu[i], mem[i], gpu[i]
        k = int(fixed[i])
        if k >= 0:  # a DaemonSet pod: its node or nowhere
            if not (fc[k] >= c and fm[k] >= m_ and fp[k] >= 1 and fg[k] >= g):
                continue
        else:
            best, best_free = -1, -1
            for k2 in cand[i].tolist():
                fits = fc[k2] >= c and fm[k2] >= m_ and fp[k2] >= 1 and fg[k2] >= g
                if fits and fc[k2] > best_free:
                    best, best_free = k2, fc[k2]
            if best < 0:
                fits = (fc >= c) & (fm >= m_) & (fp >= 1) & (fg >= g)
                if not fits.any():
                    continue
                best = int(np.argmax(np.where(fits, fc, -1)))
            k = best
        node_of[i] = k
        fc[k] -= c
        fm[k] -= m_
        fp[k] -= 1
        fg[k] -= g
        if np.isfinite(release_s[i]):
            heapq.heappush(releases, (float(release_s[i]), i))
    return node_of


# -- events -------------------------------------------------------------------------------------
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
    from ..trace.writer import conform

    if not parts:
        return conform(pa.table({"ts": pa.array([], pa.int64())}))
    table = pa.concat_tables([conform(p) for p in parts])
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    return table.take(np.argsort(ts, kind="stable"))


def synthesize(
    cfg: SynthConfig,
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[float], None] | None = None,
) -> Path:
    """Generate the trace described by ``cfg`` into the directory ``out``.

    ``progress`` is called with the fraction of trace time written so far. Returns the trace
    directory. Same config (seed included) -> byte-identical event files.
    """
    gen = _Generator(cfg)
    resource_versions = _ResourceVersions()
    options = asdict(cfg)
    options["resources"] = list(cfg.resources)
    with TraceWriter(
        out,
        "synthetic",
        source={"generator": "tracesim synth", "config": options},
        cluster={"nodes": cfg.nodes, "heartbeat": cfg.heartbeat},
        options={"raw_objects": False, "redaction": "n/a (synthetic)"},
        journal=False,
        overwrite=overwrite,
    ) as writer:
        n_windows = max(1, math.ceil(cfg.duration_s / cfg.window_s))
        for i, table in enumerate(gen.windows()):
            writer.write_table(resource_versions.stamp(table))
            if progress is not None:
                progress((i + 1) / n_windows)
    return Path(out)


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
