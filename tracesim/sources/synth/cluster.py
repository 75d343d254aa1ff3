"""The synthetic cluster: node shapes, allocatable resources, object sizes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import (
    NODE_SHAPES,
    ZONES,
    SynthConfig,
)
from .draws import _uids


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
