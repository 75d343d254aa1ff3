"""A small trace for the serve tests: nodes, pods, leases and an event, with changes over time.

Built from Kubernetes objects through ``object_row`` and ``TraceWriter``, like a recorder
would. ``keep_raw`` chooses whether rows carry the raw object; ``integer_rvs`` whether the
objects' resourceVersions are integers increasing with time (else opaque strings).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tracesim.trace import TraceWriter
from tracesim.trace.objects import object_row
from tracesim.trace.rebuild import format_time

T0_US = 1_714_557_600_000_000  # 2024-05-01T10:00:00Z
S = 1_000_000


def node(name: str, *, ready: bool = True, gpu: bool = False) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, "node-role.kubernetes.io/worker": ""}
    alloc = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    if gpu:
        labels["nvidia.com/gpu.product"] = "A100"
        alloc["nvidia.com/gpu"] = "4"
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": labels,
            "creationTimestamp": format_time(T0_US - 3600 * S),
        },
        "spec": {},
        "status": {
            "allocatable": alloc,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "nodeInfo": {"kubeletVersion": "v1.29.4"},
        },
    }


def pod(
    name: str, ns: str, node_name: str | None, labels: dict[str, str], phase: str = "Running"
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "schedulerName": "default-scheduler",
        "containers": [
            {"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "250m"}}}
        ],
    }
    if node_name:
        spec["nodeName"] = node_name
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{ns}-{name}",
            "labels": labels,
            "creationTimestamp": format_time(T0_US - 600 * S),
        },
        "spec": spec,
        "status": {"phase": phase},
    }


def lease(name: str, renew_us: int) -> dict[str, Any]:
    return {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": name, "namespace": "kube-node-lease", "uid": f"uid-lease-{name}"},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": 40,
            "renewTime": format_time(renew_us, micro=True),
        },
    }


def event_obj() -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "v1",
        "metadata": {"name": "p4.17a", "namespace": "default", "uid": "uid-ev-1"},
        "involvedObject": {"kind": "Pod", "name": "p4", "namespace": "default"},
        "reason": "Scheduled",
        "type": "Normal",
        "message": "Successfully assigned default/p4 to n1",
    }


def timeline() -> list[tuple[int, str, dict[str, Any]]]:
    """(ts_us, event type, object) in time order; the first rows are the initial LIST."""
    n1, n2, n3 = node("n1"), node("n2"), node("n3", gpu=True)
    p1 = pod("p1", "default", "n1", {"app": "web"})
    p2 = pod("p2", "default", "n2", {"app": "db"})
    p3 = pod("p3", "kube-system", None, {"tier": "ctl"}, phase="Pending")
    leases = [lease(n, T0_US) for n in ("n1", "n2", "n3")]
    rows: list[tuple[int, str, dict[str, Any]]] = [
        (T0_US, "LISTED", o) for o in (n1, n2, n3, p1, p2, p3, *leases)
    ]
    p3b = copy.deepcopy(p3)
    p3b["spec"]["nodeName"] = "n2"
    p3b["status"]["phase"] = "Running"
    n2b = node("n2", ready=False)
    p1b = copy.deepcopy(p1)
    p1b["metadata"]["labels"] = {"app": "api"}
    rows += [
        (T0_US + 1 * S, "MODIFIED", lease("n1", T0_US + 1 * S)),
        (T0_US + 2 * S, "ADDED", pod("p4", "default", "n1", {"app": "web"})),
        (T0_US + 2 * S, "ADDED", event_obj()),
        (T0_US + 3 * S, "MODIFIED", p3b),
        (T0_US + 4 * S, "DELETED", p2),
        (T0_US + 5 * S, "MODIFIED", n2b),
        (T0_US + 6 * S, "MODIFIED", p1b),
        (T0_US + 8 * S, "MODIFIED", lease("n1", T0_US + 8 * S)),
    ]
    return rows


def build_trace(path: Path, *, keep_raw: bool = True, integer_rvs: bool = True) -> Path:
    """Write the timeline as a trace at ``path``; returns ``path``."""
    out = []
    for i, (ts, etype, obj) in enumerate(timeline()):
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(100 + i) if integer_rvs else f"rv-{i}"
        out.append(object_row(obj, etype, ts, keep_raw=keep_raw))
    with TraceWriter(path, "synthetic", journal=False) as writer:
        writer.write_rows(out)
    return path
