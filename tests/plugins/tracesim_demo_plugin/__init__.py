"""An out-of-tree scheduler policy, as a third-party package would ship it.

Registered through the ``tracesim.schedulers`` entry-point group by the registry test (which
writes a dist-info for it); it deliberately does not inherit from tracesim's base classes and
implements only the required parts of the protocol.
"""

from __future__ import annotations

import numpy as np


class FirstFitPolicy:
    """First fit: the lowest-indexed node with room; the lowest GPUs with room."""

    name = "demo-firstfit"
    tie_break = "order"

    def filter(self, cluster, pod, nodes):
        ok = (cluster.alloc_cpu_milli[nodes] - cluster.used_cpu_milli[nodes] >= pod.cpu_milli) & (
            cluster.alloc_memory_bytes[nodes] - cluster.used_memory_bytes[nodes] >= pod.memory_bytes
        )
        if pod.gpu_count:
            fits = (cluster.gpu_free_milli[nodes] >= pod.gpu_milli).sum(axis=1)
            ok &= fits >= pod.gpu_count
        return ok

    def score(self, cluster, pod, nodes):
        return np.zeros(len(nodes), np.int64), None

    def choose_gpus(self, cluster, pod, node, hint, rng):
        row = cluster.gpu_free_milli[node]
        return np.flatnonzero(row >= pod.gpu_milli)[: pod.gpu_count]
