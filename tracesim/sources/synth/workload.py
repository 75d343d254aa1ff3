"""The synthetic workload: DaemonSets, Deployments replaced over time, Jobs in bursts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cluster import _Nodes
from .config import (
    DAEMONSETS,
    POD_SHAPES,
    SynthConfig,
)
from .draws import _lognormal, _nhpp, _suffixes


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
