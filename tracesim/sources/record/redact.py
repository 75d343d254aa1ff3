"""Redaction of secrets from objects before they are stored as raw JSON.

By default a recorded trace holds no Secret ``data``/``stringData`` values, no ConfigMap
``data``/``binaryData`` values, no container environment values (names and ``valueFrom``
references are kept: they are not secret), and no ``kubectl.kubernetes.io/last-applied-
configuration`` annotation (``kubectl apply`` copies the whole object into it, Secret data
included). Keys are kept and values replaced by :data:`REDACTED`, so the shape of an object
stays visible. ``size_bytes`` is measured before redaction, so replay costs stay right.
Secrets are always redacted: there is deliberately no option to keep them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REDACTED = "<redacted>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: Annotation added to an object whose content was redacted: what was removed.
REDACTED_ANNOTATION = "tracesim.io/redacted"
_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class Redaction:
    """What to remove. Secrets are always redacted; env and ConfigMap values by default."""

    keep_env: bool = False
    keep_configmaps: bool = False

    def options(self) -> dict[str, bool]:
        """The manifest's record of these settings (``options.redaction``)."""
        return {
            "secret_data": True,
            "configmap_data": not self.keep_configmaps,
            "env_values": not self.keep_env,
            "last_applied_configuration": True,
        }


def _blank_values(mapping: Any) -> bool:
    if not isinstance(mapping, dict) or not mapping:
        return False
    for key in mapping:
        mapping[key] = REDACTED
    return True


def _pod_specs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Pod specs inside an object: a Pod's, a workload's template, a CronJob's job template."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    found = []
    if any(k in spec for k in _CONTAINER_LISTS):
        found.append(spec)
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        found.append(template["spec"])
    job = spec.get("jobTemplate")
    if isinstance(job, dict):
        inner = ((job.get("spec") or {}).get("template") or {}).get("spec")
        if isinstance(inner, dict):
            found.append(inner)
    return found


def _redact_env(pod_spec: dict[str, Any]) -> bool:
    changed = False
    for key in _CONTAINER_LISTS:
        for container in pod_spec.get(key) or []:
            for var in (container.get("env") or []) if isinstance(container, dict) else []:
                if isinstance(var, dict) and "value" in var:
                    var["value"] = REDACTED
                    changed = True
    return changed


def redact(obj: dict[str, Any], policy: Redaction) -> dict[str, Any]:
    """Redact ``obj`` in place (it is a freshly decoded object) and return it.

    The object gains the annotation :data:`REDACTED_ANNOTATION` listing what was removed
    (``data``, ``env``, ``last-applied``), so a reader knows the values are not real.
    """
    removed = []
    kind = obj.get("kind")
    if kind == "Secret":
        a = _blank_values(obj.get("data"))
        b = _blank_values(obj.get("stringData"))
        if a or b:
            removed.append("data")
    elif kind == "ConfigMap" and not policy.keep_configmaps:
        a = _blank_values(obj.get("data"))
        b = _blank_values(obj.get("binaryData"))
        if a or b:
            removed.append("data")
    if not policy.keep_env and any([_redact_env(s) for s in _pod_specs(obj)]):  # all specs
        removed.append("env")
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        annotations = meta.get("annotations")
        if isinstance(annotations, dict) and annotations.pop(LAST_APPLIED, None) is not None:
            removed.append("last-applied")
        if removed:
            if not isinstance(annotations, dict):
                annotations = meta["annotations"] = {}
            annotations[REDACTED_ANNOTATION] = ",".join(removed)
    return obj
