"""How the bottleneck analysis speaks: readable names of components, request categories and
SLOs, and the phrases its sentences are built from."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from .categories import family_of, measure_of

#: Component id -> readable name (used in sentences).
COMPONENT_NAMES = {
    "etcd.leader": "etcd's leader",
    "etcd.reads": "etcd's read workers",
    "etcd.quota": "etcd's database (quota)",
    "apiserver.cpu": "the API server's CPU",
    "scheduler.loop": "the scheduler loop",
    "scheduler.client": "the scheduler's client rate limiter",
}
#: Request category -> readable description (used in sentences).
CATEGORY_TEXT = {
    "Lease renewals": "Lease renewals",
    "NodeStatus": "NodeStatus heartbeats",
    "pod status": "pod status updates",
    "pod create": "pod creations",
    "pod binding": "pod bindings",
    "scheduler Events": "the scheduler's Events",
    "pod delete": "pod deletions",
    "pod removal": "pod removals",
    "Events (trace)": "the trace's Events",
    "other trace writes": "the trace's other writes",
    "reads": "reads",
    "Event expiry": "Event expiry (etcd deletes)",
    "scheduling attempts": "scheduling attempts",
}
#: SLO name (:data:`tracesim.analysis.slo.THRESHOLDS_S`) -> readable name.
SLO_TEXT = {
    "mutating": "mutating-call",
    "read-resource": "single-object read",
    "read-namespace": "namespace read",
    "read-cluster": "cluster read",
    "pod-startup": "pod-startup",
}


def component_name(component: str) -> str:
    """A readable name: ``apiserver.seats.node-high`` -> "the API server's node-high seats"."""
    if component in COMPONENT_NAMES:
        return COMPONENT_NAMES[component]
    if component.startswith("apiserver.seats."):
        level = component.removeprefix("apiserver.seats.")
        what = "pool" if level in ("mutating", "readonly") else "priority level"
        return f"the API server's {level} {what} (seats)"
    if component.startswith("watch."):
        return f"the watch fan-out of {component.removeprefix('watch.')}"
    return component


def category_text(category: Any) -> str:
    """A request category in words ("NodeStatus heartbeats"); unknown ones as they are."""
    return CATEGORY_TEXT.get(str(category), str(category))


def slo_text(slo: Any) -> str:
    """An SLO's readable name ("mutating-call"); unknown ones as they are."""
    return SLO_TEXT.get(str(slo), str(slo))


def clock_text(start: str | None, t_s: float) -> str:
    """``08:05:10 (t = 310 s)`` when the run's start time (ISO 8601) is known, else
    ``t = 310 s``; ``t_s`` is simulated seconds since the start."""
    rel = f"t = {t_s:,.0f} s"
    if start:
        try:
            t0 = datetime.fromisoformat(str(start))
            return f"{(t0 + timedelta(seconds=t_s)).strftime('%H:%M:%S')} ({rel})"
        except ValueError:
            pass
    return rel


def percent_text(x: float) -> str:
    """A fraction (0..1) as a percentage: whole percent, one decimal below 1 %."""
    return f"{100 * x:.0f}%" if x >= 0.01 or x == 0 else f"{100 * x:.1f}%"


def contributor_phrase(contrib: pd.DataFrame, component: str, top: int = 3) -> str:
    """ "driven by NodeStatus heartbeats (81% of etcd write bytes, ...)" for ``component``,
    from its :func:`~tracesim.analysis.bottleneck.categories.contributors` table (empty
    string when nothing loads it)."""
    if contrib is None or contrib.empty or float(contrib["load"].sum()) <= 0:
        return ""
    what = measure_of(component)[1]
    first = contrib.iloc[0]
    detail = [f"{percent_text(float(first['share']))} {what}"]
    if family_of(component) == "etcd.leader":
        detail.append(f"{percent_text(float(first['bytes_share']))} of etcd write bytes")
        detail.append(f"{percent_text(float(first['requests_share']))} of its writes")
    text = f"driven by {category_text(first['category'])} ({', '.join(detail)})"
    rest = [
        f"{category_text(r['category'])} {percent_text(float(r['share']))}"
        for _, r in contrib.iloc[1:top].iterrows()
        if float(r["share"]) >= 0.005
    ]
    if rest:
        text += "; then " + ", ".join(rest)
    return text
