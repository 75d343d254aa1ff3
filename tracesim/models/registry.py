"""The model registry: built-in and third-party scheduler policies by name.

Third-party packages register a policy under the Python entry-point group
``tracesim.schedulers``, e.g. in their ``pyproject.toml``::

    [project.entry-points."tracesim.schedulers"]
    mypolicy = "mypackage.policies:MyPolicy"

The target is a class (or any callable) that returns an object implementing
:class:`tracesim.models.schedulers.base.SchedulerPolicy` when called with keyword options.
Built-ins are listed here AND declared in tracesim's own ``pyproject.toml`` under the same
group, so they resolve even from a source checkout whose metadata predates them; a third-party
entry point cannot shadow a built-in name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from ..errors import TracesimError
from .schedulers.base import SchedulerPolicy

ENTRY_POINT_GROUP = "tracesim.schedulers"

#: Built-in policies: name -> "module:attribute".
BUILTIN_SCHEDULERS: dict[str, str] = {
    "random": "tracesim.models.schedulers.gpushare:RandomPolicy",
    "bestfit": "tracesim.models.schedulers.gpushare:BestFitPolicy",
    "dotprod": "tracesim.models.schedulers.gpushare:DotProdPolicy",
    "gpupacking": "tracesim.models.schedulers.gpushare:GpuPackingPolicy",
    "gpuclustering": "tracesim.models.schedulers.gpushare:GpuClusteringPolicy",
    "fgd": "tracesim.models.schedulers.gpushare:FGDPolicy",
    "kube-default": "tracesim.models.schedulers.kube_default:KubeDefaultPolicy",
}


def _load_target(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else []:
        obj = getattr(obj, part)
    return obj


def available_schedulers() -> dict[str, str]:
    """All policy names -> their "module:attribute" target, built-ins first, then plugins."""
    found = dict(BUILTIN_SCHEDULERS)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        found.setdefault(ep.name, ep.value)
    return found


def scheduler_names() -> list[str]:
    """Sorted names of every policy the registry can load."""
    return sorted(available_schedulers())


def load_scheduler(name: str, **options: Any) -> SchedulerPolicy:
    """A new policy instance called ``name``; TracesimError listing valid names if unknown."""
    targets = available_schedulers()
    spec = targets.get(name)
    if spec is None:
        raise TracesimError(
            f"unknown scheduler {name!r}; valid names: {', '.join(sorted(targets))}"
        )
    try:
        factory = _load_target(spec)
    except (ImportError, AttributeError) as exc:
        raise TracesimError(
            f"scheduler {name!r}: cannot load {spec} ({exc}); reinstall the package providing it"
        ) from None
    policy = factory(**options)
    missing = [
        m for m in ("filter", "score", "choose_gpus") if not callable(getattr(policy, m, None))
    ]
    if missing:
        raise TracesimError(
            f"scheduler {name!r} ({spec}) is not a scheduler policy: no {', '.join(missing)}"
        )
    return policy
