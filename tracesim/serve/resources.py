"""Which API resources a trace holds: kind -> group, version, plural name, scope.

The API server's discovery documents (``/api/v1``, ``/apis/GROUP/VERSION``) list these, and
the URL of every LIST/WATCH/GET names a resource by its plural. Well-known kinds come from a
table; others get the API server's own pluralisation and a scope inferred from the trace.
"""

from __future__ import annotations

from dataclasses import dataclass

# kind -> (plural, namespaced, short names)
KNOWN_KINDS: dict[str, tuple[str, bool, tuple[str, ...]]] = {
    "Pod": ("pods", True, ("po",)),
    "Node": ("nodes", False, ("no",)),
    "Lease": ("leases", True, ()),
    "Event": ("events", True, ("ev",)),
    "Namespace": ("namespaces", False, ("ns",)),
    "Service": ("services", True, ("svc",)),
    "Endpoints": ("endpoints", True, ("ep",)),
    "EndpointSlice": ("endpointslices", True, ()),
    "ConfigMap": ("configmaps", True, ("cm",)),
    "Secret": ("secrets", True, ()),
    "ServiceAccount": ("serviceaccounts", True, ("sa",)),
    "PersistentVolume": ("persistentvolumes", False, ("pv",)),
    "PersistentVolumeClaim": ("persistentvolumeclaims", True, ("pvc",)),
    "StorageClass": ("storageclasses", False, ("sc",)),
    "CSINode": ("csinodes", False, ()),
    "PriorityClass": ("priorityclasses", False, ("pc",)),
    "Deployment": ("deployments", True, ("deploy",)),
    "ReplicaSet": ("replicasets", True, ("rs",)),
    "StatefulSet": ("statefulsets", True, ("sts",)),
    "DaemonSet": ("daemonsets", True, ("ds",)),
    "Job": ("jobs", True, ()),
    "CronJob": ("cronjobs", True, ("cj",)),
    "PodDisruptionBudget": ("poddisruptionbudgets", True, ("pdb",)),
    "ResourceQuota": ("resourcequotas", True, ("quota",)),
    "LimitRange": ("limitranges", True, ("limits",)),
}


def pluralize(kind: str) -> str:
    """The API server's default plural of a kind (``NetworkPolicy`` -> ``networkpolicies``)."""
    lower = kind.lower()
    if lower.endswith(("s", "x", "z", "ch", "sh")):
        return lower + "es"
    if lower.endswith("y") and len(lower) > 1 and lower[-2] not in "aeiou":
        return lower[:-1] + "ies"
    return lower + "s"


@dataclass(frozen=True)
class ResourceInfo:
    """One served API resource."""

    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """``v1`` or ``group/version``, as in an object's ``apiVersion``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def base_path(self) -> str:
        """``/api/v1`` or ``/apis/GROUP/VERSION``."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def discovery_entry(self) -> dict[str, object]:
        """The APIResource entry of this resource in an APIResourceList."""
        entry: dict[str, object] = {
            "name": self.plural,
            "singularName": self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": ["get", "list", "watch"],
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.kind == "Pod":
            entry["categories"] = ["all"]
        return entry


def resource_info(kind: str, api_version: str, namespaced_in_trace: bool) -> ResourceInfo:
    """The resource serving objects of ``kind`` at ``api_version`` (``v1``, ``g/v``).

    ``namespaced_in_trace`` (some rows of this kind have a namespace) decides the scope of a
    kind the table does not know.
    """
    group, _, version = api_version.rpartition("/")
    plural, namespaced, short = KNOWN_KINDS.get(kind, (pluralize(kind), namespaced_in_trace, ()))
    return ResourceInfo(kind, group, version, plural, namespaced, short)
