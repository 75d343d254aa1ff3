"""Which API path serves a resource the user named (``pods``, ``leases``, ``deploy``...).

Names are resolved like ``kubectl get`` resolves them, through API discovery: plural,
singular, short name or lower-case kind, optionally qualified by group
(``leases.coordination.k8s.io``). Servers without discovery (small emulators) fall back to a
table of well-known built-in resources.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .client import ApiError, ConnectError, KubeClient

DEFAULT_RESOURCES = ("pods", "nodes", "leases")

#: plural -> (group, version, kind, namespaced), used when the server has no discovery.
WELL_KNOWN: dict[str, tuple[str, str, str, bool]] = {
    "pods": ("", "v1", "Pod", True),
    "nodes": ("", "v1", "Node", False),
    "namespaces": ("", "v1", "Namespace", False),
    "events": ("", "v1", "Event", True),
    "services": ("", "v1", "Service", True),
    "endpoints": ("", "v1", "Endpoints", True),
    "configmaps": ("", "v1", "ConfigMap", True),
    "secrets": ("", "v1", "Secret", True),
    "persistentvolumes": ("", "v1", "PersistentVolume", False),
    "persistentvolumeclaims": ("", "v1", "PersistentVolumeClaim", True),
    "leases": ("coordination.k8s.io", "v1", "Lease", True),
    "deployments": ("apps", "v1", "Deployment", True),
    "replicasets": ("apps", "v1", "ReplicaSet", True),
    "statefulsets": ("apps", "v1", "StatefulSet", True),
    "daemonsets": ("apps", "v1", "DaemonSet", True),
    "jobs": ("batch", "v1", "Job", True),
    "cronjobs": ("batch", "v1", "CronJob", True),
    "priorityclasses": ("scheduling.k8s.io", "v1", "PriorityClass", False),
    "endpointslices": ("discovery.k8s.io", "v1", "EndpointSlice", True),
}


@dataclass(frozen=True)
class ResourceSpec:
    """One watchable resource: where it lives in the API and what kind its objects are."""

    name: str  # as the user wrote it
    plural: str
    group: str  # "" for the core group
    version: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None) -> str:
        """The collection's URL path, restricted to ``namespace`` when the resource has one."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            prefix += f"/namespaces/{namespace}"
        return f"{prefix}/{self.plural}"


def _matches(entry: dict[str, Any], name: str) -> bool:
    return (
        entry.get("name") == name
        or entry.get("singularName") == name
        or name in (entry.get("shortNames") or [])
        or str(entry.get("kind", "")).lower() == name
    )


class _Discovery:
    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.lists: dict[str, list[dict[str, Any]] | None] = {}  # groupVersion -> resources
        self.groups: list[tuple[str, str]] | None = None  # (group, preferred version)
        self.available = True

    async def resources(self, group_version: str) -> list[dict[str, Any]] | None:
        if group_version not in self.lists:
            path = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
            try:
                doc = await self.client.get_json(path)
                found = doc.get("resources") if isinstance(doc, dict) else None
                self.lists[group_version] = found if isinstance(found, list) else None
            except ApiError as exc:
                if exc.status in (401,):
                    raise
                self.lists[group_version] = None
        return self.lists[group_version]

    async def all_groups(self) -> list[tuple[str, str]]:
        if self.groups is None:
            self.groups = []
            try:
                doc = await self.client.get_json("/apis")
            except ApiError as exc:
                if exc.status == 401:
                    raise
                return self.groups
            for g in (doc or {}).get("groups") or []:
                pref = (g.get("preferredVersion") or {}).get("version")
                versions = [v.get("version") for v in g.get("versions") or []]
                version = pref or (versions[0] if versions else None)
                if g.get("name") and version:
                    self.groups.append((g["name"], version))
        return self.groups

    async def resolve(self, name: str) -> ResourceSpec | str:
        """A spec, or a one-line reason why ``name`` cannot be recorded."""
        plural, _, group = name.lower().partition(".")
        candidates: list[tuple[str, str]] = []
        hint = WELL_KNOWN.get(plural)
        if hint and (not group or group == hint[0]):
            candidates.append((hint[0], hint[1]))
        if not group and ("", "v1") not in candidates:
            candidates.append(("", "v1"))
        for g, v in await self.all_groups():
            if (not group or g == group) and (g, v) not in candidates:
                candidates.append((g, v))
        discovered_any = False
        for g, v in candidates:
            listing = await self.resources(f"{g}/{v}" if g else v)
            if listing is None:
                continue
            discovered_any = True
            for entry in listing:
                if "/" in str(entry.get("name", "")) or not _matches(entry, plural):
                    continue
                verbs = entry.get("verbs")
                if isinstance(verbs, list) and verbs and not {"list", "watch"} <= set(verbs):
                    return f"{name}: the server cannot list and watch this resource"
                builtin = hint if hint and hint[0] == g and entry.get("name") == plural else None
                namespaced = entry.get("namespaced")
                if not isinstance(namespaced, bool):  # emulators may leave it out
                    namespaced = builtin[3] if builtin else True
                return ResourceSpec(
                    name=name,
                    plural=str(entry["name"]),
                    group=g,
                    version=v,
                    # built-in kinds are fixed; trust them over a sloppy discovery document
                    kind=builtin[2] if builtin else str(entry.get("kind") or plural),
                    namespaced=namespaced,
                )
        if not discovered_any and hint:
            # No discovery at all (a minimal emulator): trust the built-in table.
            return ResourceSpec(name, plural, hint[0], hint[1], hint[2], hint[3])
        return f"{name}: the server does not serve this resource (see kubectl api-resources)"


async def resolve_resources(
    client: KubeClient, names: Sequence[str]
) -> tuple[list[ResourceSpec], dict[str, str]]:
    """Resolve resource names. Returns (specs, {name: reason} for the ones that cannot be).

    Raises :class:`ConnectError` when the server cannot be reached and ``ApiError`` 401.
    """
    disco = _Discovery(client)
    specs: list[ResourceSpec] = []
    failures: dict[str, str] = {}
    for name in names:
        try:
            result = await disco.resolve(name)
        except ConnectError:
            raise
        if isinstance(result, str):
            failures[name] = result
        elif any(s.plural == result.plural and s.group == result.group for s in specs):
            continue  # "po,pods": one recorder
        else:
            specs.append(result)
    return specs, failures
