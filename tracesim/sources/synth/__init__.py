"""Synthetic cluster traces: the events a recorder would see, generated at any scale.

The generator builds a cluster (heterogeneous node shapes, a few GPU nodes, DaemonSets on every
node), a workload (Deployments whose pods are replaced over time, batch Jobs arriving in bursts,
a daily pattern, a rollout storm, an optional burst of pods) and the writes the control plane
makes for it (scheduler bindings, kubelet status updates, node heartbeats, Events). It emits the
watch events of the requested resources (``pods``, ``nodes``, ``leases``, ``events``) as trace
format v1, time-ordered, seeded.

Everything is vectorised over objects; the only Python loop runs once per pod (placement), never
over nodes. Events are written in windows of trace time so memory stays bounded for long traces.

Sources of the defaults (the README's "Synthetic traces" has the prose):

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

import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from ...trace.writer import TraceWriter
from .config import HEARTBEAT_MODES, RESOURCES, SynthConfig
from .events import _Generator, _ResourceVersions

__all__ = ["HEARTBEAT_MODES", "RESOURCES", "SynthConfig", "synthesize"]


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
