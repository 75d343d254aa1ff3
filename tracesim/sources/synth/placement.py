"""Where the synthetic pods run: capacity-respecting placement, one step per pod."""

from __future__ import annotations

import heapq

import numpy as np

from .cluster import _Nodes


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
