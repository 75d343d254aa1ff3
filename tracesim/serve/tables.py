"""Server-side printing: ``meta.k8s.io/v1`` Table responses, as kubectl asks for them.

``kubectl get`` sends ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
columns the server chooses (kubectl has no client-side printers for built-in kinds any more).
The columns follow the API server's printers (``pkg/printers/internalversion``) for pods,
nodes, leases and events; other kinds get NAME and AGE. Ages are measured on the playback clock,
so a replayed day looks as it did then.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..trace.objects import parse_time_us

Cells = list[Any]


class Age:
    """A cell rendered as the time since ``us`` (microseconds since the epoch)."""

    __slots__ = ("us",)

    def __init__(self, us: int | None) -> None:
        self.us = us


def human_duration(seconds: float) -> str:
    """kubectl's ``duration.HumanDuration``: ``45s``, ``3m20s``, ``2h5m``, ``4d3h``, ``2y``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y{days}d" if days else f"{years}y"
    return f"{hours // 24 // 365}y"


def render(cells: Cells, now_us: int) -> list[Any]:
    """Resolve :class:`Age` cells against the playback time ``now_us``."""
    out = []
    for cell in cells:
        if isinstance(cell, Age):
            cell = "<unknown>" if cell.us is None else human_duration((now_us - cell.us) / 1e6)
        out.append(cell)
    return out


def _col(name: str, typ: str = "string", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": typ, "format": fmt, "description": name, "priority": priority}


def _created(obj: dict[str, Any]) -> int | None:
    try:
        return parse_time_us((obj.get("metadata") or {}).get("creationTimestamp"))
    except ValueError:
        return None


_NAME = _col("Name", fmt="name")
_AGE = _col("Age")


def _pod_cells(obj: dict[str, Any]) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    statuses = status.get("containerStatuses") or []
    total = len(spec.get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for c in statuses:
        state = c.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
    if meta.get("deletionTimestamp") and status.get("reason") != "NodeLost":
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        meta.get("name"),
        f"{ready}/{total}",
        reason,
        restarts,
        Age(_created(obj)),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"0/{len(gates)}" if gates else "<none>",
    ]


_POD_COLUMNS = [
    _NAME,
    _col("Ready"),
    _col("Status"),
    _col("Restarts", "integer"),
    _AGE,
    _col("IP", priority=1),
    _col("Node", priority=1),
    _col("Nominated Node", priority=1),
    _col("Readiness Gates", priority=1),
]


def _node_cells(obj: dict[str, Any]) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    meta = obj.get("metadata") or {}
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    ready = conds.get("Ready")
    state = ["Ready" if ready == "True" else ("NotReady" if ready == "False" else "Unknown")]
    if spec.get("unschedulable"):
        state.append("SchedulingDisabled")
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in (meta.get("labels") or {}) if k.startswith(prefix))
    info = status.get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [
        meta.get("name"),
        ",".join(state),
        ",".join(r for r in roles if r) or "<none>",
        Age(_created(obj)),
        info.get("kubeletVersion") or "",
        addrs.get("InternalIP") or "<none>",
        addrs.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


_NODE_COLUMNS = [
    _NAME,
    _col("Status"),
    _col("Roles"),
    _AGE,
    _col("Version"),
    _col("Internal-IP", priority=1),
    _col("External-IP", priority=1),
    _col("OS-Image", priority=1),
    _col("Kernel-Version", priority=1),
    _col("Container-Runtime", priority=1),
]


def _lease_cells(obj: dict[str, Any]) -> Cells:
    spec = obj.get("spec") or {}
    name = (obj.get("metadata") or {}).get("name")
    return [name, spec.get("holderIdentity") or "", Age(_created(obj))]


_LEASE_COLUMNS = [_NAME, _col("Holder"), _AGE]


def _event_cells(obj: dict[str, Any]) -> Cells:
    last = obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("deprecatedLastTimestamp")
    try:
        last_us = parse_time_us(last) if last else _created(obj)
    except ValueError:
        last_us = None
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    target = f"{(involved.get('kind') or '').lower()}/{involved.get('name') or ''}"
    return [
        Age(last_us),
        obj.get("type") or "",
        obj.get("reason") or "",
        target,
        obj.get("message") or obj.get("note") or "",
    ]


_EVENT_COLUMNS = [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")]


def _generic_cells(obj: dict[str, Any]) -> Cells:
    return [(obj.get("metadata") or {}).get("name"), Age(_created(obj))]


_GENERIC_COLUMNS = [_NAME, _AGE]

_PRINTERS: dict[str, tuple[list[dict[str, Any]], Callable[[dict[str, Any]], Cells]]] = {
    "Pod": (_POD_COLUMNS, _pod_cells),
    "Node": (_NODE_COLUMNS, _node_cells),
    "Lease": (_LEASE_COLUMNS, _lease_cells),
    "Event": (_EVENT_COLUMNS, _event_cells),
}


def columns(kind: str) -> list[dict[str, Any]]:
    """The Table column definitions for ``kind``."""
    return _PRINTERS.get(kind, (_GENERIC_COLUMNS, _generic_cells))[0]


def cells(kind: str, obj: dict[str, Any]) -> Cells:
    """The cells of one object (ages unresolved: pass them through :func:`render`)."""
    return _PRINTERS.get(kind, (_GENERIC_COLUMNS, _generic_cells))[1](obj)
