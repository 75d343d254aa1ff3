"""Typed trace columns -> a Kubernetes object: the inverse of :mod:`tracesim.trace.objects`.

Traces without the ``raw`` column (imported, synthetic, or recorded without
``--raw-objects``) still have to be served as objects (``tracesim serve``). :func:`rebuild`
makes the smallest valid object that carries every typed column, so that
``object_row(rebuild(row), ...)`` gives back the same typed columns. What the columns do not
hold (container names and images, statuses other than phase and Ready) is not invented:
one container named ``main`` carries the pod's effective requests, and the object is marked
with the annotation :data:`REBUILT_ANNOTATION`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .objects import GPU_MILLI_RESOURCE, GPU_MODEL_LABELS, parse_time_us

#: Annotation on every rebuilt object: its fields come from typed columns, not a raw object.
REBUILT_ANNOTATION = "tracesim.io/rebuilt"
#: apiVersion used when a row has none.
DEFAULT_API_VERSIONS = {
    "Pod": "v1",
    "Node": "v1",
    "Namespace": "v1",
    "Event": "v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "PersistentVolume": "v1",
    "PersistentVolumeClaim": "v1",
    "Lease": "coordination.k8s.io/v1",
    "Deployment": "apps/v1",
    "ReplicaSet": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "PriorityClass": "scheduling.k8s.io/v1",
}
_GPU_COUNT = "nvidia.com/gpu"
_ALIBABA_GPU_COUNT = "alibabacloud.com/gpu-count"
_POD_GPU_MODEL_ANNOTATION = "alibabacloud.com/gpu-card-model"


def format_time(us: int, *, micro: bool = False) -> str:
    """Microseconds since the epoch -> RFC 3339 UTC (``metav1.Time``, or ``MicroTime``)."""
    dt = datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)
    if micro:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _split_pairs(pairs: Sequence[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{k: v}``; keys never hold ``=``, values may."""
    out = {}
    for pair in pairs or ():
        key, _, value = pair.partition("=")
        out[key] = value
    return out


def _parse_taint(text: str) -> dict[str, Any]:
    head, _, effect = text.rpartition(":")
    key, eq, value = head.partition("=")
    taint: dict[str, Any] = {"key": key, "effect": effect}
    if eq:
        taint["value"] = value
    return taint


def _parse_toleration(text: str) -> dict[str, Any]:
    """Inverse of ``objects._toleration`` (``key=value:Effect``, ``key:Effect``, ``*``)."""
    head, colon, effect = text.rpartition(":")
    if not colon:
        head, effect = text, ""
    tol: dict[str, Any] = {}
    if "=" in head:
        key, _, value = head.partition("=")
        tol.update(key=key, operator="Equal", value=value)
    else:
        tol["operator"] = "Exists"
        if head != "*":
            tol["key"] = head
    if effect:
        tol["effect"] = effect
    return tol


def _parse_affinity(terms: Sequence[str]) -> dict[str, Any]:
    """Inverse of ``objects._affinity_terms``: one nodeSelectorTerm per string."""
    selector_terms = []
    for term in terms:
        out: dict[str, list[dict[str, Any]]] = {}
        for part in term.split(",") if term else []:
            target = "matchExpressions"
            if part.startswith("field:"):
                target, part = "matchFields", part[len("field:") :]
            key, _, rest = part.partition(" ")
            op, _, values = rest.partition(" ")
            req: dict[str, Any] = {"key": key, "operator": op}
            if values:
                req["values"] = values.split("|")
            out.setdefault(target, []).append(req)
        selector_terms.append(out)
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": selector_terms}
        }
    }


def _gpu_resources(count: int | None, milli: int | None) -> dict[str, Any]:
    """Extended resources that give back ``count`` GPUs and ``milli`` milli-GPU in total."""
    count = count or 0
    if milli is None or milli == count * 1000:
        return {_GPU_COUNT: str(count)} if count else {}
    if count == 0:
        # A share without a count means one shared device (objects.pod_requests).
        return {GPU_MILLI_RESOURCE: str(milli)}
    return {_ALIBABA_GPU_COUNT: str(count), GPU_MILLI_RESOURCE: str(milli // count)}


def _pod(row: Mapping[str, Any], obj: dict[str, Any], ts_us: int | None) -> None:
    meta = obj["metadata"]
    requests: dict[str, Any] = {}
    if row.get("req_cpu_milli"):
        requests["cpu"] = f"{row['req_cpu_milli']}m"
    if row.get("req_memory_bytes"):
        requests["memory"] = str(row["req_memory_bytes"])
    requests.update(_gpu_resources(row.get("req_gpu_count"), row.get("req_gpu_milli")))
    container: dict[str, Any] = {"name": "main", "image": "tracesim/rebuilt"}
    if requests:
        container["resources"] = {"requests": requests}
    spec: dict[str, Any] = {"containers": [container]}
    for column, field in (
        ("node_name", "nodeName"),
        ("scheduler_name", "schedulerName"),
        ("priority", "priority"),
        ("priority_class", "priorityClassName"),
    ):
        if row.get(column) is not None:
            spec[field] = row[column]
    if row.get("node_selector"):
        spec["nodeSelector"] = _split_pairs(row["node_selector"])
    if row.get("node_affinity"):
        spec["affinity"] = _parse_affinity(row["node_affinity"])
    if row.get("tolerations"):
        spec["tolerations"] = [_parse_toleration(t) for t in row["tolerations"]]
    if row.get("gpu_model") is not None:
        meta.setdefault("annotations", {})[_POD_GPU_MODEL_ANNOTATION] = row["gpu_model"]
    if row.get("terminating"):
        meta["deletionTimestamp"] = format_time(ts_us or 0)
    obj["spec"] = spec
    status = {}
    if row.get("phase") is not None:
        status["phase"] = row["phase"]
    if row.get("qos_class") is not None:
        status["qosClass"] = row["qos_class"]
    obj["status"] = status


def _node(row: Mapping[str, Any], obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    alloc: dict[str, Any] = {}
    if row.get("alloc_cpu_milli") is not None:
        alloc["cpu"] = f"{row['alloc_cpu_milli']}m"
    if row.get("alloc_memory_bytes") is not None:
        alloc["memory"] = str(row["alloc_memory_bytes"])
    if row.get("alloc_pods") is not None:
        alloc["pods"] = str(row["alloc_pods"])
    count = row.get("alloc_gpu_count") or 0
    milli = row.get("alloc_gpu_milli")
    if count:
        alloc[_GPU_COUNT] = str(count)
    if milli is not None and milli != count * 1000:
        alloc[GPU_MILLI_RESOURCE] = str(milli)
    labels = meta.get("labels") or {}
    if row.get("gpu_model") is not None and not any(k in labels for k in GPU_MODEL_LABELS):
        # Nodes carry their GPU model as a label; an importer may set the column alone.
        meta.setdefault("labels", {})[GPU_MODEL_LABELS[0]] = row["gpu_model"]
    spec: dict[str, Any] = {}
    if row.get("unschedulable"):
        spec["unschedulable"] = True
    if row.get("taints"):
        spec["taints"] = [_parse_taint(t) for t in row["taints"]]
    obj["spec"] = spec
    status: dict[str, Any] = {"capacity": dict(alloc), "allocatable": alloc}
    if row.get("ready") is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if row["ready"] else "False"}]
    obj["status"] = status


def _lease(row: Mapping[str, Any], obj: dict[str, Any]) -> None:
    spec: dict[str, Any] = {}
    if row.get("lease_holder") is not None:
        spec["holderIdentity"] = row["lease_holder"]
    if row.get("lease_duration_s") is not None:
        spec["leaseDurationSeconds"] = row["lease_duration_s"]
    renew = parse_time_us(row.get("lease_renew_time"))
    if renew is not None:
        spec["renewTime"] = format_time(renew, micro=True)
    obj["spec"] = spec


def rebuild(row: Mapping[str, Any], *, created_us: int | None = None) -> dict[str, Any]:
    """A Kubernetes object (dict) holding the typed columns of one trace ``row``.

    ``row`` maps column names to values as ``pyarrow``'s ``to_pylist`` gives them (timestamps
    as datetimes or int microseconds, lists as lists). ``created_us`` (microseconds since the
    epoch) becomes ``metadata.creationTimestamp`` when given. The result satisfies
    ``object_row(rebuild(row), row["event_type"], row["ts"], size_bytes=row["size_bytes"])``
    == the typed columns of ``row``. Kinds other than Pod, Node and Lease get metadata only.
    """
    kind = row.get("kind")
    meta: dict[str, Any] = {"name": row.get("name")}
    if row.get("namespace") is not None:
        meta["namespace"] = row["namespace"]
    if row.get("uid") is not None:
        meta["uid"] = row["uid"]
    if row.get("resource_version") is not None:
        meta["resourceVersion"] = row["resource_version"]
    if created_us is not None:
        meta["creationTimestamp"] = format_time(created_us)
    if row.get("labels"):
        meta["labels"] = _split_pairs(row["labels"])
    if row.get("owner_kind") is not None or row.get("owner_name") is not None:
        owner: dict[str, Any] = {"kind": row.get("owner_kind"), "name": row.get("owner_name")}
        owner["controller"] = True
        meta["ownerReferences"] = [owner]
    meta["annotations"] = {REBUILT_ANNOTATION: "true"}
    api_version = row.get("api_version") or DEFAULT_API_VERSIONS.get(kind or "", "v1")
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version, "metadata": meta}
    if kind == "Pod":
        _pod(row, obj, parse_time_us(row.get("ts")))
    elif kind == "Node":
        _node(row, obj)
    elif kind == "Lease":
        _lease(row, obj)
    return obj
