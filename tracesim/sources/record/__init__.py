"""``tracesim record``: live Kubernetes watch streams into a trace.

Modules: :mod:`.kubeconfig` (credentials and TLS, as kubectl), :mod:`.client` (async HTTP,
errors, backoff), :mod:`.discovery` (resource names -> API paths), :mod:`.recorder` (LIST +
WATCH per resource, gaps, journaling), :mod:`.redact` (secrets out of raw objects),
:mod:`.display` (the live table).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from .discovery import DEFAULT_RESOURCES, ResourceSpec
from .kubeconfig import ClusterAuth, load_auth
from .recorder import Recorder, RecordOptions, RecordResult, ResourceStats
from .redact import Redaction, redact

__all__ = [
    "DEFAULT_RESOURCES",
    "ClusterAuth",
    "RecordOptions",
    "RecordResult",
    "Recorder",
    "Redaction",
    "ResourceSpec",
    "ResourceStats",
    "load_auth",
    "record",
    "redact",
]


def record(
    out: str | os.PathLike[str],
    opts: RecordOptions,
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    overwrite: bool = False,
    report: Callable[[str], None] = lambda msg: None,
) -> RecordResult:
    """Record a cluster into the trace directory ``out`` until ``opts.duration_s`` elapses
    (or SIGINT/SIGTERM). Returns the per-resource stats; raises TracesimError on bad input."""
    auth = load_auth(kubeconfig, context)
    recorder = Recorder(auth, out, opts, overwrite=overwrite, report=report)
    return asyncio.run(recorder.run(handle_signals=True))
