"""Kubernetes object -> one row of the trace schema.

The only place that knows the shape of Kubernetes objects. Replay reads the typed columns this
module fills and never parses JSON. Input is an object as the API server serves it (a dict
decoded from JSON or YAML); fields that are absent stay null rather than being guessed, except
where the API server itself would default them (a container's request defaults to its limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from .quantity import to_int, to_milli

#: Extended resources counted as whole GPU devices, on pods and nodes.
GPU_COUNT_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "alibabacloud.com/gpu-count")
#: Alibaba's GPU-sharing resource: on a node the total milli-GPU, on a pod the share per GPU
#: (as in the openb trace and the FGD paper's simulator).
GPU_MILLI_RESOURCE = "alibabacloud.com/gpu-milli"
#: Labels that name a node's GPU model, most specific first.
GPU_MODEL_LABELS = (
    "alibabacloud.com/gpu-card-model",
    "nvidia.com/gpu.product",
    "cloud.google.com/gke-accelerator",
    "k8s.amazonaws.com/accelerator",
)

Row = dict[str, Any]


def parse_time_us(value: str | datetime | int | float | None) -> int | None:
    """RFC 3339 time (``2024-05-01T10:00:00.123456Z``) or datetime -> microseconds since epoch."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _pairs(mapping: Mapping[str, Any] | None) -> list[str] | None:
    if not mapping:
        return None
    return sorted(f"{k}={v}" for k, v in mapping.items())


def _taint(t: Mapping[str, Any]) -> str:
    value = t.get("value")
    head = t.get("key", "") if value is None else f"{t.get('key', '')}={value}"
    return f"{head}:{t.get('effect', '')}"


def _toleration(t: Mapping[str, Any]) -> str:
    """``key=value:Effect`` (Equal), ``key:Effect`` (Exists), ``*`` for an empty-key Exists."""
    key = t.get("key") or "*"
    head = key if t.get("operator", "Equal") == "Exists" else f"{key}={t.get('value', '')}"
    effect = t.get("effect")
    return f"{head}:{effect}" if effect else head


def _affinity_terms(spec: Mapping[str, Any]) -> list[str] | None:
    """Required node-affinity terms: one string per term (terms are ORed); inside a term the
    requirements are ANDed and joined by ``,``: ``key In a|b``, ``key Exists``, ``key Gt 4``;
    ``matchFields`` requirements are prefixed ``field:``."""
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = []
    for term in required.get("nodeSelectorTerms") or []:
        parts = []
        for prefix, key in (("", "matchExpressions"), ("field:", "matchFields")):
            for req in term.get(key) or []:
                values = "|".join(str(v) for v in req.get("values") or [])
                text = f"{prefix}{req.get('key', '')} {req.get('operator', '')}"
                parts.append(f"{text} {values}" if values else text)
        terms.append(",".join(parts))
    return terms or None


def _requests(container: Mapping[str, Any]) -> dict[str, Any]:
    resources = container.get("resources") or {}
    # The API server defaults a missing request to the limit (pod validation/defaulting).
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    return merged


def _resource_vector(req: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(cpu milli, memory bytes, GPU count, GPU milli per GPU or -1) of one request map."""
    cpu = to_milli(req["cpu"]) if "cpu" in req else 0
    mem = to_int(req["memory"]) if "memory" in req else 0
    gpus = sum(to_int(req[name]) for name in GPU_COUNT_RESOURCES if name in req)
    milli = to_int(req[GPU_MILLI_RESOURCE]) if GPU_MILLI_RESOURCE in req else -1
    return cpu, mem, gpus, milli


def pod_requests(spec: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """Effective requests of a pod as the scheduler computes them.

    As ``k8s.io/component-helpers/resource.PodRequests`` and the Kubernetes page "Effective Pod
    requests and limits", per resource: regular containers add up; restartable init containers
    (sidecars, ``restartPolicy: Always``) add to them; ordinary init containers run one at a
    time next to the sidecars listed before them, so the pod needs the maximum of each init
    step and of the running total; pod-level ``spec.resources`` (cpu, memory) replace the
    container sum; ``spec.overhead`` is added. GPU devices follow the same rule as cpu and
    memory. Returns (cpu milli, memory bytes, GPU count, GPU milli in total).
    """
    total = [0, 0, 0]  # cpu milli, memory bytes, GPU count
    share = -1
    for c in spec.get("containers") or []:
        c_cpu, c_mem, c_gpu, c_share = _resource_vector(_requests(c))
        total = [total[0] + c_cpu, total[1] + c_mem, total[2] + c_gpu]
        share = max(share, c_share)
    sidecars = [0, 0, 0]
    init = [0, 0, 0]
    for c in spec.get("initContainers") or []:
        c_cpu, c_mem, c_gpu, _ = _resource_vector(_requests(c))
        vec = (c_cpu, c_mem, c_gpu)
        if c.get("restartPolicy") == "Always":
            sidecars = [s + v for s, v in zip(sidecars, vec, strict=True)]
            total = [t + v for t, v in zip(total, vec, strict=True)]
            step = sidecars
        else:
            step = [s + v for s, v in zip(sidecars, vec, strict=True)]
        init = [max(i, s) for i, s in zip(init, step, strict=True)]
    cpu, mem, gpus = (max(t, i) for t, i in zip(total, init, strict=True))
    pod_level = _requests(spec)  # spec.resources (PodLevelResources): cpu and memory only
    if "cpu" in pod_level:
        cpu = to_milli(pod_level["cpu"])
    if "memory" in pod_level:
        mem = to_int(pod_level["memory"])
    overhead = spec.get("overhead") or {}
    if overhead:
        o_cpu, o_mem, _, _ = _resource_vector(overhead)
        cpu, mem = cpu + o_cpu, mem + o_mem
    if share >= 0 and gpus == 0:
        gpus = 1  # a GPU share without a count is a share of one device
    gpu_milli = gpus * (share if share >= 0 else 1000)
    return cpu, mem, gpus, gpu_milli


def _owner(meta: Mapping[str, Any]) -> tuple[str | None, str | None]:
    owners = meta.get("ownerReferences") or []
    if not owners:
        return None, None
    owner = next((o for o in owners if o.get("controller")), owners[0])
    return owner.get("kind"), owner.get("name")


def _pod_columns(obj: Mapping[str, Any], row: Row) -> None:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    cpu, mem, gpus, gpu_milli = pod_requests(spec)
    if gpus == 0 and "alibabacloud.com/gpu-count" in annotations:
        # Pods of the openb simulator carry their GPU demand as annotations.
        gpus = to_int(annotations["alibabacloud.com/gpu-count"])
        share = to_int(annotations.get(GPU_MILLI_RESOURCE, 1000))
        gpu_milli = gpus * share
    row.update(
        node_name=spec.get("nodeName"),
        phase=status.get("phase"),
        scheduler_name=spec.get("schedulerName"),
        priority=spec.get("priority"),
        priority_class=spec.get("priorityClassName"),
        qos_class=status.get("qosClass"),
        req_cpu_milli=cpu,
        req_memory_bytes=mem,
        req_gpu_count=gpus,
        req_gpu_milli=gpu_milli,
        node_selector=_pairs(spec.get("nodeSelector")),
        node_affinity=_affinity_terms(spec),
        tolerations=[_toleration(t) for t in spec.get("tolerations") or []] or None,
        gpu_model=annotations.get("alibabacloud.com/gpu-card-model"),
    )


def _node_columns(obj: Mapping[str, Any], row: Row) -> None:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    gpus = sum(to_int(alloc[name]) for name in GPU_COUNT_RESOURCES if name in alloc)
    gpu_milli = to_int(alloc[GPU_MILLI_RESOURCE]) if GPU_MILLI_RESOURCE in alloc else gpus * 1000
    ready = None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            ready = cond.get("status") == "True"
    row.update(
        alloc_cpu_milli=to_milli(alloc["cpu"]) if "cpu" in alloc else None,
        alloc_memory_bytes=to_int(alloc["memory"]) if "memory" in alloc else None,
        alloc_pods=to_int(alloc["pods"]) if "pods" in alloc else None,
        alloc_gpu_count=gpus,
        alloc_gpu_milli=gpu_milli,
        gpu_model=next((labels[k] for k in GPU_MODEL_LABELS if k in labels), None),
        unschedulable=bool(spec.get("unschedulable", False)),
        ready=ready,
        taints=[_taint(t) for t in spec.get("taints") or []] or None,
    )


def _lease_columns(obj: Mapping[str, Any], row: Row) -> None:
    spec = obj.get("spec") or {}
    row.update(
        lease_holder=spec.get("holderIdentity"),
        lease_renew_time=parse_time_us(spec.get("renewTime")),
        lease_duration_s=spec.get("leaseDurationSeconds"),
    )


_KIND_COLUMNS = {"Pod": _pod_columns, "Node": _node_columns, "Lease": _lease_columns}


def object_row(
    obj: Mapping[str, Any],
    event_type: str,
    ts: int | str | datetime,
    *,
    size_bytes: int | None = None,
    keep_raw: bool = False,
    relist: bool = False,
) -> Row:
    """One trace row for one event on ``obj``.

    ``ts`` is when the event was observed (microseconds since epoch, RFC 3339 or datetime);
    ``size_bytes`` is the size of the object as served (computed from ``obj`` if not given).
    Raises ``ValueError`` (a :class:`~tracesim.trace.quantity.QuantityError`) on a malformed
    quantity.
    """
    meta = obj.get("metadata") or {}
    owner_kind, owner_name = _owner(meta)
    if size_bytes is None or keep_raw:
        encoded = orjson.dumps(obj)
        size_bytes = len(encoded) if size_bytes is None else size_bytes
    row: Row = {
        "ts": parse_time_us(ts),
        "kind": obj.get("kind"),
        "api_version": obj.get("apiVersion"),
        "event_type": event_type,
        "relist": relist,
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resource_version": meta.get("resourceVersion"),
        "size_bytes": size_bytes,
        "labels": _pairs(meta.get("labels")),
        "owner_kind": owner_kind,
        "owner_name": owner_name,
        "terminating": "deletionTimestamp" in meta if obj.get("kind") == "Pod" else None,
        "raw": encoded.decode() if keep_raw else None,
    }
    fill = _KIND_COLUMNS.get(obj.get("kind", ""))
    if fill is not None:
        fill(obj, row)
    return row
