"""The control plane of a replay: the engine's pods, the scheduler and the trace's other writes
charged to the kube-apiserver, etcd and kubelet models (``tracesim replay --profile``).

What a replay charges (docs/models.md, "How a replay charges each request"):

- **pod create** (POST pods) at the pod's trace creation time; the scheduler sees the pod when
  the create has completed and its watch event has been dispatched;
- **binding** (POST pods/binding, an update of the pod in etcd) after the scheduling cycle,
  asynchronously, gated by the scheduler client's token bucket; the pod is bound when the
  write is acknowledged; then an **Event** (POST events, same token bucket), expired by etcd
  after ``workload.event_ttl_s``; a rejected binding un-assumes the pod and requeues it;
- **kubelet status updates** from the model's binding: ContainerCreating when the kubelet sees
  the binding on its watch (+ ``kubelet.sync_delay_ms``), Running ``kubelet.pod_start_latency_s``
  later; the pod's startup ends when the Running update has been dispatched to watchers;
  a terminal status (Succeeded/Failed) at the trace's time;
- **pod deletion** at the trace's deletion time: DELETE (an update setting
  deletionTimestamp) for a pod on a node, the kubelet's final status and the removal
  ``kubelet.pod_stop_s`` later; a pod never bound is removed at once;
- **node heartbeats** from :class:`~tracesim.models.kubelet.Heartbeats` (the trace's own Lease
  and Node rows are then not replayed);
- **every other write of the trace** at its recorded time and size (:class:`TraceWrites`).

Requests of one kind that fall into the same ``workload.request_bucket_ms`` bucket are
submitted together (one APF offer, one etcd proposal group): a request is at most one bucket
late. Requests rejected with 429 are retried after ``workload.retry_after_s`` (client-go),
others end with their reason.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..models import apiserver as api_mod
from ..models.apiserver import ApiServerModel
from ..models.etcd import EtcdModel
from ..models.kubelet import Heartbeats
from ..models.params import Profile
from ..models.ratelimit import TokenBucket
from ..models.schedulers.base import num_feasible_nodes_to_find
from .metrics import Metrics
from .workload import TraceWrites, resource_of

if TYPE_CHECKING:
    from .engine import Simulation

RETRIED = {api_mod.APF_REJECTED, api_mod.INFLIGHT_REJECTED}
VERBS = {0: "create", 1: "update", 2: "delete"}
#: Resources watched by node-level agents (kube-proxy: Endpoints, EndpointSlices, Services).
NODE_AGENT_RESOURCES = ("endpoints", "endpointslices", "services")


class CalibratedTiming:
    """kube-scheduler cycle time from nodes examined and plugins (``scheduler.*`` params).

    ``cycle_base_us + examined * filter_plugins * filter_us_per_node_plugin / parallelism +
    scored * score_plugins * score_us_per_node_plugin / parallelism``, where ``scored`` is
    the number of feasible nodes the walk looks for (``numFeasibleNodesToFind``).
    """

    def __init__(self, params: Any) -> None:
        p = params
        self.base_s = p.cycle_base_us / 1e6
        self.filter_s = p.filter_plugins * p.filter_us_per_node_plugin / 1e6 / p.parallelism
        self.score_s = p.score_plugins * p.score_us_per_node_plugin / 1e6 / p.parallelism
        self.busy_s = 0.0

    def cycle_time_s(self, nodes_examined: int, nodes_total: int) -> float:
        """Seconds of one cycle that examined ``nodes_examined`` of ``nodes_total`` nodes."""
        scored = min(nodes_examined, num_feasible_nodes_to_find(0, nodes_total))
        dt = self.base_s + nodes_examined * self.filter_s + scored * self.score_s
        self.busy_s += dt
        return dt


class _Step:
    """One kind of request the replay makes for pods (fixed verb/resource/level/storage)."""

    __slots__ = ("done", "level", "name", "resource", "scope", "storage", "tags", "verb", "watch")

    def __init__(self, name, verb, resource, level, storage, done=None, watch=None):
        self.name = name
        self.verb = verb
        self.resource = resource
        self.scope = "namespace"
        self.level = level
        self.storage = storage
        self.done = done  # fn(tags ok, tags rejected, reason codes) after the response
        self.watch = watch  # fn(tags) after the watch event was dispatched
        self.tags: list[int] = []


class ControlPlane:
    """Builds the models for ``sim`` under ``profile`` and charges the replay's requests."""

    def __init__(
        self,
        sim: Simulation,
        profile: Profile,
        writes: TraceWrites | None = None,
    ) -> None:
        self.sim = sim
        self.profile = prof = profile
        env = self.env = sim.env
        w = sim.w
        self.metrics = m = Metrics()
        self.etcd = EtcdModel(env, prof.etcd)
        self.etcd.register_metrics(m)
        self.api = api = ApiServerModel(env, self.etcd, prof.apiserver, m)
        self.ratio = prof.apiserver.storage_size_ratio
        wl = prof.workload
        self.bucket_s = wl.request_bucket_ms / 1e3
        n_nodes = len(w.node_names)
        self.n_nodes = n_nodes
        # Watchers (facts, watch fan-out).
        api.register_watchers("pods", n_nodes, node_scoped=True)  # kubelets, own pods
        api.register_watchers("pods", wl.controller_watchers)
        api.register_watchers("nodes", wl.controller_watchers)
        api.register_watchers("leases", 1)  # node lifecycle controller
        for res in NODE_AGENT_RESOURCES:
            api.register_watchers(res, n_nodes * wl.node_agents_per_node)
        for res, d in api._dispatchers.items():
            m.add_utilisation(f"watch.dispatch_utilisation.{res}", d.busy_area_s, 1)
        # Scheduler: cycle timing and its client's token bucket.
        self.timing = CalibratedTiming(prof.scheduler)
        self.bucket = TokenBucket(prof.scheduler.client_qps, prof.scheduler.client_burst)
        self.limiter_waiting = 0
        m.add_utilisation("scheduler.loop_utilisation", lambda: self.timing.busy_s, 1)
        m.add_gauge("scheduler.queue_pending", lambda: len(sim.queue))
        m.add_gauge("scheduler.active_queue", lambda: sim.queue.n_active)
        m.add_utilisation(
            "scheduler.client_limiter_utilisation",
            lambda: self.bucket.admitted / self.bucket.qps,
            1,
        )
        m.add_gauge("scheduler.client_limiter_waiting", lambda: self.limiter_waiting)
        # Per pod.
        n = w.n_pods
        nan = math.nan
        self.seen_s = [nan] * n  # scheduler saw the pod (create done + watch dispatched)
        self.running_s = [nan] * n  # Running observed via watch
        self.pending_delete = [False] * n
        self.retries: dict[tuple[str, int], int] = {}
        self.rejected: dict[str, int] = {}
        self.submitted = 0
        self.completed = 0
        self.rejected_final = 0
        self.event_key = 0
        self.events_written = 0
        self.events_expired = 0
        self._expiry: deque[tuple[float, int]] = deque()
        self._expiry_wake: Any = None
        self.pod_sizes = w.size_bytes.astype(float)
        sizes = self.pod_sizes
        pre = np.flatnonzero(w.preexisting)
        if len(pre):
            self.etcd.preload("pods", pre.tolist(), sizes[pre] * self.ratio)
        self.heartbeats: Heartbeats | None = None
        if wl.model_heartbeats and n_nodes:
            rng = np.random.default_rng([sim.seed, 1])
            self.heartbeats = Heartbeats(env, api, prof.kubelet, n_nodes, rng, until_s=w.duration_s)
        self.writes = writes
        # Request kinds for pods, in a fixed order (flushes are deterministic).
        k = prof.kubelet
        self.sync_s = k.sync_delay_ms / 1e3
        self.start_s = k.pod_start_latency_s
        self.stop_s = k.pod_stop_s
        upd = ("update", "pods")
        self.steps = {
            s.name: s
            for s in (
                _Step("pod_create", "create", "pods", "workload-high", None,
                      self._create_done, self._create_seen),
                _Step("binding", "create", "pods/binding", "workload-high", upd,
                      self._binding_done, self._binding_seen),
                _Step("event", "create", "events", "workload-high", None, self._event_done),
                _Step("status_creating", "update", "pods/status", "system", upd),
                _Step("status_running", "update", "pods/status", "system", upd,
                      None, self._running_seen),
                _Step("status_terminal", "update", "pods/status", "system", upd),
                _Step("pod_delete", "delete", "pods", "workload-high", upd, self._delete_done),
                _Step("status_final", "update", "pods/status", "system", upd),
                _Step("pod_remove", "delete", "pods", "system", ("delete", "pods")),
            )
        }  # fmt: skip
        self._flush_pending = False
        self._step_list = list(self.steps.values())

    # ------------------------------------------------------------------ request plumbing

    def _add(self, step: str, pod: int) -> None:
        s = self.steps[step]
        s.tags.append(pod)
        if self.bucket_s <= 0:
            self._flush()
        elif not self._flush_pending:
            self._flush_pending = True
            b = self.bucket_s
            at = (math.floor(self.env.now / b + 1e-9) + 1) * b
            ev = self.env.timeout(max(at - self.env.now, 0.0))
            ev.callbacks.append(lambda _e: self._flush())

    def _flush(self) -> None:
        self._flush_pending = False
        for s in self._step_list:
            if s.tags:
                tags = np.asarray(s.tags, dtype=np.int64)
                s.tags = []
                self._submit(s, tags)

    def _submit(self, s: _Step, tags: np.ndarray) -> None:
        self.submitted += len(tags)
        keys = tags.tolist()  # pod index, or the Event's own key
        if s.resource == "events":
            sizes = np.full(len(tags), float(self.profile.workload.event_size_bytes))
        else:
            sizes = self.pod_sizes[tags]

        def done(_lat, reasons, members):
            sub = tags if members is None else tags[members]
            self._on_done(s, sub, reasons)

        watch = None
        if s.watch is not None:
            watch = lambda members: s.watch(tags[members])  # noqa: E731
        self.api.submit(
            s.verb,
            s.resource,
            s.scope,
            sizes,
            keys,
            level=s.level,
            flow=s.name,
            on_done=done,
            on_watch=watch,
            storage=s.storage,
        )

    def _on_done(self, s: _Step, tags: np.ndarray, reasons: np.ndarray) -> None:
        ok = reasons == 0
        n_ok = int(ok.sum())
        self.completed += n_ok
        if n_ok == len(tags):
            if s.done is not None:
                s.done(tags, None, None)
            return
        bad, codes = tags[~ok], reasons[~ok]
        retry_after = self.profile.workload.retry_after_s
        max_retries = self.profile.workload.max_retries
        final_tags, final_codes = [], []
        for pod, code in zip(bad.tolist(), codes.tolist(), strict=True):
            key = (s.name, pod)
            tries = self.retries.get(key, 0)
            if code in RETRIED and tries < max_retries:
                self.retries[key] = tries + 1
                ev = self.env.timeout(retry_after)
                ev.callbacks.append(lambda _e, st=s.name, p=pod: self._add(st, p))
                self.submitted -= 1  # the retry is the same request (counted when resubmitted)
                continue
            self.retries.pop(key, None)
            reason = api_mod.REASONS[code]
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            self.rejected_final += 1
            final_tags.append(pod)
            final_codes.append(code)
        if s.done is not None:
            s.done(
                tags[ok],
                np.asarray(final_tags, np.int64),
                np.asarray(final_codes, np.uint8),
            )

    def _later(self, delay_s: float, fn: Callable[..., Any], *args: Any) -> None:
        ev = self.env.timeout(max(delay_s, 0.0))
        ev.callbacks.append(lambda _e: fn(*args))

    # ------------------------------------------------------------------ engine hooks

    def on_pod_create(self, pod: int, t_s: float) -> None:
        """The trace creates ``pod`` now: POST pods (or, if it existed at the start, as is)."""
        sim = self.sim
        if sim.w.preexisting[pod]:
            sim._pod_create(pod, t_s)
            return
        sim.created_s[pod] = t_s
        self._add("pod_create", pod)

    def _create_done(self, ok: np.ndarray, bad: np.ndarray | None, codes: Any) -> None:
        if bad is None or not len(bad):
            return
        sim = self.sim
        for pod, code in zip(bad.tolist(), codes.tolist(), strict=True):
            sim.reason[pod] = f"pod create rejected: {api_mod.REASONS[code]}"

    def _create_seen(self, tags: np.ndarray) -> None:
        sim, now = self.sim, self.env.now
        for pod in tags.tolist():
            self.seen_s[pod] = now
            if self.pending_delete[pod]:  # deleted in the trace while its create was in flight
                self._add("pod_remove", pod)
                continue
            sim._pod_create(pod, now, created_s=sim.created_s[pod])

    def on_scheduled(self, pod: int, now: float) -> None:
        """The scheduling cycle assumed ``pod`` on a node: bind it asynchronously."""
        delay = self.bucket.reserve(now)
        if delay > 0:
            self.limiter_waiting += 1
            self._later(delay, self._bind_granted, pod)
        else:
            self._add("binding", pod)

    def _bind_granted(self, pod: int) -> None:
        self.limiter_waiting -= 1
        self._add("binding", pod)

    def _binding_done(self, ok: np.ndarray, bad: np.ndarray | None, codes: Any) -> None:
        sim, now = self.sim, self.env.now
        bound = sim.state
        for pod in ok.tolist():
            if bound[pod] == 3:  # BOUND: not deleted meanwhile
                sim.bound_s[pod] = now
            for _ in range(self.profile.scheduler.event_writes_per_pod):
                self._new_event(pod)
        if bad is not None and len(bad):
            for pod, code in zip(bad.tolist(), codes.tolist(), strict=True):
                sim.binding_failed(pod, now, f"binding rejected: {api_mod.REASONS[code]}")

    def _binding_seen(self, tags: np.ndarray) -> None:
        # The kubelet sees its pod bound: ContainerCreating after its sync delay, Running
        # once the containers started.
        for pod in tags.tolist():
            self._later(self.sync_s, self._add, "status_creating", pod)
            self._later(self.sync_s + self.start_s, self._running, pod)

    def _running(self, pod: int) -> None:
        if self.sim.state[pod] == 3:  # still on its node
            self._add("status_running", pod)

    def _running_seen(self, tags: np.ndarray) -> None:
        now = self.env.now
        for pod in tags.tolist():
            self.running_s[pod] = now

    def _new_event(self, pod: int) -> None:
        delay = self.bucket.reserve(self.env.now)
        # Negative keys: never the trace's objects (whose keys are >= 0).
        self.event_key -= 1
        key = self.event_key
        if delay > 0:
            self.limiter_waiting += 1

            def go(key=key):
                self.limiter_waiting -= 1
                self._add("event", key)

            self._later(delay, go)
        else:
            self._add("event", key)

    def _event_done(self, ok: np.ndarray, bad: Any, codes: Any) -> None:
        self.events_written += len(ok)
        expire = self.env.now + self.profile.workload.event_ttl_s
        for key in ok.tolist():
            self._expiry.append((expire, key))
        if self._expiry and self._expiry_wake is not None and not self._expiry_wake.triggered:
            self._expiry_wake.succeed()

    def _expirer(self):
        """etcd deletes expired Events (their lease ran out): no API request, a delete write."""
        env = self.env
        q = self._expiry
        while True:
            if not q:
                self._expiry_wake = env.event()
                yield self._expiry_wake
                self._expiry_wake = None
                continue
            due = q[0][0]
            if due > env.now:
                yield env.timeout(due - env.now)
            keys = []
            horizon = env.now + max(self.bucket_s, 0.0)
            while q and q[0][0] <= horizon:
                keys.append(q.popleft()[1])
            self.events_expired += len(keys)
            self.etcd.submit_writes("delete", "events", keys, np.zeros(len(keys)))

    def on_pod_terminal(self, pod: int) -> None:
        """The pod finished in the trace: its kubelet writes the terminal status."""
        if self.sim.node[pod] >= 0 and not math.isnan(self.sim.bound_s[pod]):
            self._add("status_terminal", pod)

    def on_pod_delete(self, pod: int, t_s: float) -> None:
        """The trace deletes ``pod`` now (the engine releases its resources)."""
        sim = self.sim
        if sim.state[pod] == 0 and not sim.w.preexisting[pod]:  # NEW: create not seen yet
            sim.deleted_s[pod] = t_s
            if math.isnan(self.seen_s[pod]) and pod not in sim.reason:
                self.pending_delete[pod] = True  # create in flight: remove when done
            return
        sim._pod_delete(pod, t_s)
        if sim.node[pod] >= 0:
            self._add("pod_delete", pod)  # graceful: deletionTimestamp, kubelet stops it
        else:
            self._add("pod_remove", pod)

    def _delete_done(self, ok: np.ndarray, bad: Any, codes: Any) -> None:
        for pod in ok.tolist():
            self._later(self.stop_s, self._stopped, pod)

    def _stopped(self, pod: int) -> None:
        self._add("status_final", pod)
        self._add("pod_remove", pod)

    # ------------------------------------------------------------------ the trace's writes

    def _trace_writer(self):
        """Replays the trace's other writes, one request group per bucket, kind and verb."""
        tw, env, api = self.writes, self.env, self.api
        if tw is None or not len(tw):
            return
        resources = [resource_of(k) for k in tw.kinds]
        pre = tw.t_s <= 0
        pre &= tw.op == 0
        for code, res in enumerate(resources):
            sel = pre & (tw.kind == code)
            if sel.any():
                self.etcd.preload(res, tw.key[sel].tolist(), tw.size_bytes[sel] * self.ratio)
        live = np.flatnonzero(~pre)
        if not len(live):
            return
        t = tw.t_s[live]
        b = self.bucket_s
        bucket = np.floor(t / b).astype(np.int64) if b > 0 else np.arange(len(t))
        kind, op, nsd = tw.kind[live], tw.op[live], tw.namespaced[live]
        order = np.lexsort((nsd, op, kind, bucket))
        live, t, bucket, kind, op, nsd = (a[order] for a in (live, t, bucket, kind, op, nsd))
        change = np.r_[
            True,
            (bucket[1:] != bucket[:-1])
            | (kind[1:] != kind[:-1])
            | (op[1:] != op[:-1])
            | (nsd[1:] != nsd[:-1]),
        ]
        starts = np.flatnonzero(change)
        ends = np.r_[starts[1:], len(live)]
        # Submit each group at its earliest member's time (members up to a bucket early).
        group_t = np.minimum.reduceat(t, starts) if len(starts) else t
        g_order = np.argsort(group_t, kind="stable")
        keys_all, sizes_all = tw.key, tw.size_bytes

        def done(_lat, reasons, _members):
            k = int(np.count_nonzero(reasons == 0))
            self.completed += k
            if k < len(reasons):
                for code in reasons[reasons != 0].tolist():
                    r = api_mod.REASONS[code]
                    self.rejected[r] = self.rejected.get(r, 0) + 1
                    self.rejected_final += 1

        for g in g_order.tolist():
            at = float(group_t[g])
            if at > env.now:
                yield env.timeout(at - env.now)
            rows = live[starts[g] : ends[g]]
            c = int(kind[starts[g]])
            self.submitted += len(rows)
            api.submit(
                VERBS[int(op[starts[g]])],
                resources[c],
                "namespace" if nsd[starts[g]] else "cluster",
                sizes_all[rows],
                keys_all[rows].tolist(),
                level="workload-low",
                flow=resources[c],
                on_done=done,
            )

    # ------------------------------------------------------------------ run and results

    def start(self) -> None:
        """Start the model processes (call before ``env.run``)."""
        self.env.process(self._trace_writer())
        self.env.process(self._expirer())
        self.metrics.start_sampler(self.env, self.profile.workload.sample_interval_s)

    def requests_accounting(self) -> dict[str, Any]:
        """Conservation: submitted = completed + rejected + in flight (heartbeats included)."""
        hb_sent = self.heartbeats.sent if self.heartbeats else 0
        hb_ok = self.heartbeats.ok if self.heartbeats else 0
        hb_rej = self.heartbeats.rejected if self.heartbeats else 0
        submitted = self.submitted + hb_sent
        completed = self.completed + hb_ok
        rejected = self.rejected_final + hb_rej
        waiting = sum(len(s.tags) for s in self._step_list)
        return {
            "submitted": submitted,
            "completed": completed,
            "rejected": rejected,
            "in_flight_at_end": submitted - completed - rejected,
            "waiting_for_bucket_at_end": waiting,
            "retrying_at_end": len(self.retries),
            "heartbeats": {"sent": hb_sent, "completed": hb_ok, "rejected": hb_rej},
        }


# --------------------------------------------------------------------------- results


def control_tables(cp: ControlPlane) -> dict[str, Any]:
    """The control-plane tables of a replay (pandas), written as ``NAME.parquet``:

    - ``requests``: one row per API request (or watch dispatch, verb ``watch``): completion
      ``t_s``, ``latency_s``, ``verb``, ``resource``, ``scope``, ``status``, ``reason``;
    - ``components``: long time series ``t_s``, ``metric``, ``value`` every
      ``workload.sample_interval_s``: utilisations (etcd leader and reads, apiserver CPU and
      seats per APF level, watch dispatchers, scheduler loop and client rate limiter) and
      queue lengths (etcd write/read queues, APF queued per level, watch dispatch queues,
      scheduler queue, requests waiting for client tokens);
    - ``etcd``: one row per sample, one column per etcd gauge (``db_size_bytes``,
      ``db_in_use_bytes``, ``revision``, ``objects.<resource>``, utilisations, queues).
    """
    import pandas as pd

    m = cp.metrics
    req = m.requests_frame()
    comp = m.series_frame()
    sel = comp["metric"].astype(str).str.startswith("etcd.")
    etcd = comp[sel.to_numpy()].copy()
    etcd["metric"] = etcd["metric"].astype(str).str.removeprefix("etcd.")
    wide = etcd.pivot_table(index="t_s", columns="metric", values="value", observed=True)
    wide = wide.reset_index()
    wide.columns.name = None
    return {"requests": req, "components": comp, "etcd": pd.DataFrame(wide)}


def _pct(values: np.ndarray) -> dict[str, float | None]:
    if not len(values):
        return {"count": 0, "p50": None, "p99": None, "max": None}
    return {
        "count": len(values),
        "p50": round(float(np.percentile(values, 50)), 6),
        "p99": round(float(np.percentile(values, 99)), 6),
        "max": round(float(values.max()), 6),
    }


def bottleneck(components: Any) -> dict[str, Any]:
    """The component most likely to saturate first: the highest 95th-percentile utilisation,
    and the queues that grow (mean of the last quarter > 2x the first quarter and > 1).
    Returns ``{"component", "utilisation_p95", "growing_queues", "ranking"}``."""
    if components is None or not len(components):
        return {"component": None, "utilisation_p95": None, "growing_queues": [], "ranking": []}
    metric = components["metric"].astype(str)
    util = components[metric.str.contains("utilisation").to_numpy()]
    ranking = []
    for name, grp in util.groupby(util["metric"].astype(str), sort=True):
        ranking.append((round(float(np.percentile(grp["value"].to_numpy(), 95)), 6), name))
    ranking.sort(key=lambda x: (-x[0], x[1]))
    growing = []
    queues = components[metric.str.contains("queue|waiting|queued").to_numpy()]
    for name, grp in queues.groupby(queues["metric"].astype(str), sort=True):
        v = grp["value"].to_numpy()
        q = max(len(v) // 4, 1)
        first, last = float(v[:q].mean()), float(v[-q:].mean())
        if last > 1 and last > 2 * first:
            growing.append({"queue": name, "first_quarter_mean": first, "last_quarter_mean": last})
    growing.sort(key=lambda g: -g["last_quarter_mean"])
    top = ranking[0] if ranking else (None, None)
    return {
        "component": top[1],
        "utilisation_p95": top[0],
        "growing_queues": growing,
        "ranking": [{"metric": n, "utilisation_p95": u} for u, n in ranking[:8]],
    }


def control_summary(cp: ControlPlane, pods: Any, tables: dict[str, Any]) -> dict[str, Any]:
    """The ``control_plane`` section of ``summary.json``: profile, request accounting,
    latency per verb/resource, etcd state, pod startup, SLOs and the bottleneck hint."""
    import pandas as pd

    from ..analysis.slo import evaluate_slos

    req = tables["requests"]
    per: dict[str, Any] = {}
    if len(req):
        verb = req["verb"].astype(str).to_numpy()
        res = req["resource"].astype(str).to_numpy()
        ok = (req["reason"].astype(str) == "ok").to_numpy()
        lat = req["latency_s"].to_numpy()
        pair = pd.Series(verb + " " + res)
        for name in sorted(pair.unique()):
            sel = (pair == name).to_numpy()
            entry = _pct(lat[sel & ok])
            entry["rejected"] = int((sel & ~ok).sum())
            per[name] = entry
    started = pods["startup_s"].notna().to_numpy()
    startup = pd.DataFrame(
        {
            "t_s": pods["created_s"].to_numpy()[started],
            "startup_s": pods["startup_s"].to_numpy()[started],
        }
    )
    slo = evaluate_slos(req, startup)
    e = cp.etcd
    db = tables["etcd"]
    etcd = {
        "revision": e.revision,
        "writes_ok": e.writes_ok,
        "writes_rejected": e.writes_rejected,
        "bytes_written": round(e.bytes_written),
        "db_size_bytes": round(e.db_size_bytes),
        "db_size_peak_bytes": (
            round(float(db["db_size_bytes"].max())) if "db_size_bytes" in db else None
        ),
        "db_in_use_bytes": round(e.data_bytes),
        "history_bytes": round(e.history_bytes),
        "compacted_revision": e.compacted_revision,
        "nospace_alarm": e.alarm_nospace,
        "objects": dict(sorted(e.object_counts().items())),
        "quota_bytes": cp.profile.etcd.quota_bytes,
    }
    api = cp.api
    return {
        "profile": cp.profile.name,
        "parameters": cp.profile.to_dict(),
        "requests": {
            **cp.requests_accounting(),
            "rejected_by_reason": dict(sorted(cp.rejected.items())),
        },
        "latency_by_request_s": per,
        "etcd": etcd,
        "apiserver": {
            "cpu_seconds": round(api.cpu_s, 6),
            "rejected_by_level": {n: lvl.rejected for n, lvl in api.levels.items()},
            "watch_events": api.watch_events,
            "watch_sends": api.watch_sends,
            "watch_bytes_sent": round(api.watch_bytes_sent),
        },
        "scheduler_client": {
            "qps": cp.bucket.qps,
            "burst": cp.bucket.burst,
            "requests": cp.bucket.admitted,
            "waited_s_total": round(cp.bucket.waited_s, 6),
        },
        "events": {"written": cp.events_written, "expired": cp.events_expired},
        "trace_writes_skipped": dict(cp.writes.skipped) if cp.writes is not None else {},
        "pod_startup_s": _pct(startup["startup_s"].to_numpy()),
        "slo": slo.to_summary(),
        "bottleneck": bottleneck(tables["components"]),
    }
