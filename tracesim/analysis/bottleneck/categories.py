"""Request categories and the load each puts on every component, and the contributors to one
component's load.

Categories: Lease renewals, NodeStatus, pod create / binding / status / delete / removal,
scheduler Events, the trace's Events and other writes, reads, Event expiry and scheduling
attempts.

Bytes per category. ``requests.parquet`` carries no object sizes, so they are rebuilt from the
profile (``kubelet.lease_size_bytes``, ``kubelet.node_status_size_bytes``,
``workload.event_size_bytes``) and etcd's own total (``control_plane.etcd.bytes_written``,
stored bytes of successful writes): what the known sizes do not explain is spread over the
other writes by request count (pod objects and the trace's writes; deletes store nothing). A
``size_bytes`` column in ``requests.parquet``, when present, is used as it is.

Shares per component (the load measure, ``measure`` in the tables):

- etcd leader: estimated busy time: ``apply_us_per_request`` per write + ``ns_per_byte`` per
  stored byte + the rest of the measured busy time (batch fsync and replication, backend
  commits) spread by write count; the sentence also gives each category's share of etcd write
  bytes and of writes;
- API server CPU: ``request_cpu_us`` per request + ``serialize_ns_per_byte`` per byte (twice
  for a write) + the watch fan-out the write causes (serialisation once or per watcher, plus
  ``watch_send_us_per_watcher`` per recipient);
- API server seats of a level / pool: seat-seconds (request latency summed) of the categories
  served at that level (the table in docs/models.md);
- watch fan-out of a resource: estimated dispatch time of the writes to that resource;
- scheduler client rate limiter: tokens taken (bindings and scheduler Events);
- scheduler loop: scheduling attempts (one category);
- etcd read workers: read requests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..slo import MUTATING_VERBS, READ_VERBS
from .tables import profile_param, profile_params

#: Request category -> the APF priority level that serves it.
CATEGORY_LEVEL = {
    "Lease renewals": "node-high",
    "NodeStatus": "node-high",
    "pod status": "system",
    "pod create": "workload-high",
    "pod binding": "workload-high",
    "scheduler Events": "workload-high",
    "pod delete": "workload-high",
    "pod removal": "system",
    "Events (trace)": "workload-low",
    "other trace writes": "workload-low",
}
#: Component family -> (load measure column, what a share of it is called).
MEASURES = {
    "etcd.leader": ("etcd_busy_s", "of etcd's busy time"),
    "etcd.reads": ("reads", "of reads"),
    "etcd.quota": ("etcd_bytes", "of etcd write bytes"),
    "apiserver.cpu": ("apiserver_cpu_s", "of API server CPU"),
    "apiserver.seats": ("seat_s", "of seat time"),
    "watch": ("watch_busy_s", "of dispatch time"),
    "scheduler.client": ("tokens", "of client tokens"),
    "scheduler.loop": ("attempts", "of scheduling attempts"),
}
#: The measure of a component family not in :data:`MEASURES`.
DEFAULT_MEASURE = ("requests", "of requests")


def family_of(component: str) -> str:
    """The load-measure family of a component id (a key of :data:`MEASURES`)."""
    for fam in ("apiserver.seats", "watch"):
        if component.startswith(fam + "."):
            return fam
    return component


def measure_of(component: str) -> tuple[str, str]:
    """``(load measure column, what a share of it is called)`` for a component id."""
    return MEASURES.get(family_of(component), DEFAULT_MEASURE)


def category_of(verb: str, resource: str) -> str | None:
    """The request category of ``verb resource`` (None for watches). Deletes of pods are
    ``pod delete`` and creates of Events ``Events (trace)`` here: :func:`category_table`
    splits off the removals and the scheduler's Events."""
    base = resource.split("/")[0]
    if verb == "watch":
        return None
    if verb in READ_VERBS:
        return "reads"
    if base == "leases":
        return "Lease renewals"
    if base == "nodes" and verb in ("update", "patch"):
        return "NodeStatus"
    if base == "pods":
        if resource == "pods/status":
            return "pod status"
        if resource == "pods/binding":
            return "pod binding"
        if verb == "create":
            return "pod create"
        if verb == "delete":
            return "pod delete"  # split into graceful delete and removal below
        return "pod status"
    if base == "events":
        return "Events (trace)"  # the scheduler's own Events are split off below
    return "other trace writes"


def category_table(
    requests: pd.DataFrame,
    summary: dict[str, Any],
    pods: pd.DataFrame | None = None,
    components: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The load of each request category (see this module's docstring for the estimates).

    One row per (category, resource) with columns ``category``, ``resource`` (base resource:
    ``pods`` for ``pods/status``), ``level`` (APF priority level), ``write`` (bool),
    ``requests`` (completed), ``rejected``, ``json_bytes`` and ``etcd_bytes`` (stored bytes,
    0 for deletes and reads), ``bytes_estimated`` (bool), ``etcd_busy_s``,
    ``apiserver_cpu_s``, ``seat_s``, ``watch_busy_s`` (seconds), ``reads``, ``tokens``,
    ``attempts`` (counts).
    """
    cp = summary.get("control_plane") or {}
    params = profile_params(summary)
    ratio = profile_param(params, "apiserver", "storage_size_ratio", 0.5)
    req = requests
    ok = (req["reason"].astype(str) == "ok").to_numpy() if "reason" in req else None
    keys = pd.DataFrame(
        {
            "verb": req["verb"].astype(str).to_numpy(),
            "resource": req["resource"].astype(str).to_numpy(),
            "ok": ok if ok is not None else np.ones(len(req), bool),
            "latency_s": req["latency_s"].to_numpy(float),
        }
    )
    has_size = "size_bytes" in req.columns
    if has_size:
        keys["size_bytes"] = req["size_bytes"].to_numpy(float)
    agg = {"n": ("latency_s", "size"), "latency_s": ("latency_s", "sum")}
    if has_size:
        agg["size_bytes"] = ("size_bytes", "sum")
    g = keys.groupby(["verb", "resource", "ok"], sort=True).agg(**agg).reset_index()
    g["category"] = [category_of(v, r) for v, r in zip(g["verb"], g["resource"], strict=True)]
    g = g[g["category"].notna()].copy()
    g["base"] = g["resource"].str.split("/").str[0]
    rows: list[dict[str, Any]] = []
    for (cat, base, verb), grp in g.groupby(["category", "base", "verb"], sort=True):
        n_ok = int(grp.loc[grp["ok"], "n"].sum())
        rows.append(
            {
                "category": cat,
                "resource": base,
                "verb": verb,
                "requests": n_ok,
                "rejected": int(grp.loc[~grp["ok"], "n"].sum()),
                "seat_s": float(grp["latency_s"].sum()),
                "size_known": float(grp.loc[grp["ok"], "size_bytes"].sum()) if has_size else None,
            }
        )
    rows = _split_pod_deletes(rows, pods)
    rows = _split_scheduler_events(rows, int((cp.get("events") or {}).get("written") or 0))
    expired = int((cp.get("events") or {}).get("expired") or 0)
    if expired:
        rows.append(
            {"category": "Event expiry", "resource": "events", "verb": "delete",
             "requests": expired, "rejected": 0, "seat_s": 0.0, "size_known": 0.0,
             "no_api": True}
        )  # fmt: skip
    t = pd.DataFrame(rows)
    if t.empty:
        return t
    t["write"] = t["verb"].isin(MUTATING_VERBS)
    t["level"] = t["category"].map(CATEGORY_LEVEL)
    t.loc[t["category"] == "reads", "level"] = "global-default"
    if "no_api" not in t.columns:
        t["no_api"] = False
    t["no_api"] = t["no_api"].astype("boolean").fillna(False).astype(bool)
    _estimate_bytes(t, cp, params, ratio, has_size)
    _estimate_etcd(t, params, components)
    _estimate_apiserver(t, summary, params)
    t["reads"] = np.where(t["category"] == "reads", t["requests"], 0)
    t["tokens"] = np.where(
        t["category"].isin(["pod binding", "scheduler Events"]), t["requests"], 0
    )
    t["attempts"] = 0
    if pods is not None and "attempts" in pods.columns:
        t = pd.concat(
            [
                t,
                pd.DataFrame(
                    [
                        {
                            "category": "scheduling attempts",
                            "resource": "pods",
                            "verb": "schedule",
                            "requests": int(pods["attempts"].sum()),
                            "rejected": 0,
                            "attempts": int(pods["attempts"].sum()),
                            "write": False,
                            "no_api": True,
                        }
                    ]
                ),
            ],
            ignore_index=True,
        )
    num = ["json_bytes", "etcd_bytes", "etcd_busy_s", "apiserver_cpu_s", "seat_s", "watch_busy_s"]
    t[num] = t[num].astype(float).fillna(0.0)
    for c in ("reads", "tokens", "attempts"):
        t[c] = t[c].fillna(0).astype(np.int64)
    t["bytes_estimated"] = t["bytes_estimated"].astype("boolean").fillna(False).astype(bool)
    cols = [
        "category", "resource", "verb", "level", "write", "requests", "rejected", "json_bytes",
        "etcd_bytes", "bytes_estimated", "etcd_busy_s", "apiserver_cpu_s", "seat_s",
        "watch_busy_s", "reads", "tokens", "attempts",
    ]  # fmt: skip
    return t[cols].reset_index(drop=True)


def _split_pod_deletes(rows: list[dict[str, Any]], pods: pd.DataFrame | None) -> list[dict]:
    """``delete pods`` is a graceful DELETE (an update: deletionTimestamp) for a pod on a node
    and a removal (an etcd delete) for each deleted pod: split by pods.parquet."""
    out = []
    for r in rows:
        if r["category"] != "pod delete":
            out.append(r)
            continue
        graceful = 0
        if pods is not None and {"deleted_s", "bound_s"} <= set(pods.columns):
            graceful = int((pods["deleted_s"].notna() & pods["bound_s"].notna()).sum())
        total = r["requests"] + r["rejected"]
        n_g = min(graceful, r["requests"])
        frac = n_g / total if total else 0.0
        out.append({**r, "requests": n_g, "rejected": 0, "seat_s": r["seat_s"] * frac})
        out.append(
            {
                **r,
                "category": "pod removal",
                "requests": r["requests"] - n_g,
                "seat_s": r["seat_s"] * (1 - frac),
            }
        )
    return out


def _split_scheduler_events(rows: list[dict[str, Any]], written: int) -> list[dict]:
    """``create events`` holds the scheduler's Events (``control_plane.events.written``) and
    the trace's own: split by that count."""
    out = []
    for r in rows:
        if r["category"] != "Events (trace)" or r["verb"] != "create" or not written:
            out.append(r)
            continue
        n_s = min(written, r["requests"])
        frac = n_s / r["requests"] if r["requests"] else 0.0
        out.append({**r, "category": "scheduler Events", "requests": n_s, "rejected": 0,
                    "seat_s": r["seat_s"] * frac})  # fmt: skip
        if r["requests"] - n_s or r["rejected"]:
            out.append({**r, "requests": r["requests"] - n_s, "seat_s": r["seat_s"] * (1 - frac)})
    return out


def _estimate_bytes(
    t: pd.DataFrame, cp: dict[str, Any], params: dict[str, Any], ratio: float, has_size: bool
) -> None:
    """Fill ``json_bytes``, ``etcd_bytes``, ``bytes_estimated`` (see the module docstring)."""
    stores = t["write"] & (t["verb"] != "delete") & ~t["no_api"]
    stores |= t["category"] == "pod delete"  # graceful delete: an update of the pod
    if has_size:
        t["json_bytes"] = t["size_known"].fillna(0.0).astype(float)
        t["etcd_bytes"] = np.where(stores, t["json_bytes"] * ratio, 0.0)
        t["bytes_estimated"] = False
        return
    known = {
        "Lease renewals": profile_param(params, "kubelet", "lease_size_bytes", 400.0),
        "NodeStatus": profile_param(params, "kubelet", "node_status_size_bytes", 15000.0),
        "scheduler Events": profile_param(params, "workload", "event_size_bytes", 700.0),
    }
    per = t["category"].map(known)
    is_known = per.notna().to_numpy() & stores.to_numpy()
    json_b = np.where(is_known, per.fillna(0.0).to_numpy() * t["requests"].to_numpy(), 0.0)
    total = (cp.get("etcd") or {}).get("bytes_written")
    unknown = stores.to_numpy() & ~is_known
    weights = np.where(unknown, t["requests"].to_numpy(float), 0.0)
    if isinstance(total, int | float) and weights.sum() > 0:
        rest = max(float(total) - float(json_b.sum()) * ratio, 0.0)
        json_b = json_b + rest / ratio * weights / weights.sum()
    t["json_bytes"] = json_b
    t["etcd_bytes"] = np.where(stores, json_b * ratio, 0.0)
    t["bytes_estimated"] = unknown & (weights > 0)


def _measured_busy_s(components: pd.DataFrame | None, metric: str) -> float | None:
    """Busy seconds integrated from a utilisation series (value x sample interval)."""
    if components is None or not len(components):
        return None
    sel = (components["metric"].astype(str) == metric).to_numpy()
    g = components[sel].sort_values("t_s")
    if not len(g):
        return None
    t = g["t_s"].to_numpy(float)
    dt = np.diff(np.concatenate([[0.0], t]))
    return float((g["value"].to_numpy(float) * dt).sum())


def _estimate_etcd(t: pd.DataFrame, params: dict[str, Any], components: Any) -> None:
    """Fill ``etcd_busy_s``: the leader's estimated busy seconds per category."""
    apply_s = profile_param(params, "etcd", "apply_us_per_request", 18.0) / 1e6
    byte_s = profile_param(params, "etcd", "ns_per_byte", 10.0) / 1e9
    writes = t["write"].to_numpy() & (t["requests"].to_numpy() > 0)
    n = np.where(writes, t["requests"].to_numpy(float), 0.0)
    variable = n * apply_s + t["etcd_bytes"].to_numpy(float) * byte_s
    busy = _measured_busy_s(components, "etcd.leader_utilisation")
    if busy is not None and n.sum() > 0:
        # Batch fsync / replication and backend commits: shared by the writes of each batch.
        rest = max(busy - float(variable.sum()), 0.0)
        variable = variable + rest * n / n.sum()
    t["etcd_busy_s"] = variable


def _watch_fanout(resource: str, params: dict[str, Any], nodes: int) -> tuple[float, float]:
    """(recipients per event, serialisations per event) for writes to ``resource``."""
    wl = params.get("workload") or {}
    ctrl = float(wl.get("controller_watchers", 3))
    agents = float(wl.get("node_agents_per_node", 1)) * nodes
    recipients = {
        "pods": 1 + ctrl,  # the pod's kubelet (node-scoped) + cluster-wide controllers
        "nodes": ctrl,
        "leases": 1.0,
        "endpoints": agents,
        "endpointslices": agents,
        "services": agents,
    }.get(resource, 0.0)
    once = bool((params.get("apiserver") or {}).get("serialize_once_per_event", True))
    return recipients, (1.0 if once else recipients) if recipients else 0.0


def _estimate_apiserver(t: pd.DataFrame, summary: dict[str, Any], params: dict[str, Any]) -> None:
    """Fill ``apiserver_cpu_s`` (requests + serialisation + watch fan-out) and
    ``watch_busy_s`` (the fan-out alone), in seconds."""
    req_s = profile_param(params, "apiserver", "request_cpu_us", 150.0) / 1e6
    ser_s = profile_param(params, "apiserver", "serialize_ns_per_byte", 5.0) / 1e9
    send_s = profile_param(params, "apiserver", "watch_send_us_per_watcher", 3.0) / 1e6
    nodes = int(summary.get("nodes_at_end") or 0)
    api = ~t["no_api"].to_numpy()
    n = np.where(api, t["requests"].to_numpy(float), 0.0)
    json_b = t["json_bytes"].to_numpy(float)
    w = t["write"].to_numpy()
    cpu = n * req_s + json_b * ser_s * np.where(w, 2.0, 1.0)
    watch = np.zeros(len(t))
    for i, (res, is_w, k) in enumerate(zip(t["resource"], w, n, strict=True)):
        if not is_w or not k:
            continue
        recipients, sers = _watch_fanout(str(res), params, nodes)
        watch[i] = json_b[i] * sers * ser_s + k * recipients * send_s
    t["apiserver_cpu_s"] = cpu + watch
    t["watch_busy_s"] = watch


def contributors(categories: pd.DataFrame, component: str) -> pd.DataFrame:
    """The categories that load ``component``, largest first: ``category``, ``load`` (in the
    family's measure, see :data:`MEASURES`), ``share`` (0..1), plus ``requests``,
    ``etcd_bytes``, ``bytes_share`` and ``requests_share`` among the same categories."""
    fam = family_of(component)
    measure = measure_of(component)[0]
    c = categories
    if c is None or c.empty:
        return pd.DataFrame(columns=["category", "load", "share"])
    if fam in ("etcd.leader", "etcd.quota"):
        sel = c["write"]
    elif fam == "apiserver.seats":
        level = component.removeprefix("apiserver.seats.")
        if level == "mutating":
            sel = c["write"] & ~c["no_api"] if "no_api" in c else c["write"]
        elif level == "readonly":
            sel = c["category"] == "reads"
        else:
            sel = c["level"] == level
        sel = sel & (c["category"] != "Event expiry")
    elif fam == "watch":
        sel = c["write"] & (c["resource"] == component.removeprefix("watch."))
        sel = sel & (c["category"] != "Event expiry")
    else:
        sel = c[measure] > 0 if measure in c else c["requests"] > 0
    sub = c[sel.to_numpy()] if hasattr(sel, "to_numpy") else c[sel]
    if sub.empty:
        return pd.DataFrame(columns=["category", "load", "share"])
    agg = (
        sub.groupby("category", sort=True)
        .agg(load=(measure, "sum"), requests=("requests", "sum"), etcd_bytes=("etcd_bytes", "sum"))
        .reset_index()
    )
    total = float(agg["load"].sum())
    agg["share"] = agg["load"] / total if total > 0 else 0.0
    rt, bt = float(agg["requests"].sum()), float(agg["etcd_bytes"].sum())
    agg["requests_share"] = agg["requests"] / rt if rt > 0 else 0.0
    agg["bytes_share"] = agg["etcd_bytes"] / bt if bt > 0 else 0.0
    agg["measure"] = measure
    agg = agg.sort_values(["share", "category"], ascending=[False, True], kind="stable")
    return agg.reset_index(drop=True)
