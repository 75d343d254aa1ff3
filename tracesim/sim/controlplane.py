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

**Waves.** With ``W = workload.request_bucket_ms > 0`` the replay submits its requests in waves,
one every ``W`` (ticks at ``k * W``): at each tick, per APF priority level, ONE request group
(:meth:`~tracesim.models.apiserver.ApiServerModel.submit_mixed`: one APF offer, one etcd
proposal group, one callback) carries every request of that level, whatever its verb and
resource. What a wave holds:

- requests caused by a model event (pod create at its trace time, binding and Event when the
  client's token is granted, retries): those that arose since the previous tick (at most ``W``
  late);
- requests due after a fixed delay (kubelet ContainerCreating / Running, final status and
  removal after a DELETE) and Event expiries: those due within ``W/2`` of the tick (nearest
  tick: at most ``W/2`` early or late, no bias on average);
- heartbeats and the trace's other writes due in ``[tick, tick + W)`` (at most ``W`` early).

A level's part of a wave larger than ``workload.wave_max_seat_fraction`` of the level's APF
seats is offered in equal chunks spread evenly over the window, as spread arrivals would be,
so batching does not queue or reject requests that the real arrival spread would not.
``W = 0`` is the per-request path: every request at its own time, in its own group.
Requests rejected with 429 are retried after ``workload.retry_after_s`` (client-go), others
end with their reason.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..models import apiserver as api_mod
from ..models import etcd as etcd_mod
from ..models.apiserver import SCOPE_CODE, VERB_CODE, ApiServerModel
from ..models.etcd import EtcdModel
from ..models.kubelet import Heartbeats
from ..models.params import Profile
from ..models.ratelimit import TokenBucket
from ..models.schedulers.base import num_feasible_nodes_to_find
from ..models.timers import call_later
from .engine import BOUND, NEW
from .metrics import Metrics
from .workload import TraceWrites, resource_of

if TYPE_CHECKING:
    from .engine import Simulation

RETRIED = {api_mod.APF_REJECTED, api_mod.INFLIGHT_REJECTED}
VERBS = {0: "create", 1: "update", 2: "delete"}
#: Resources watched by node-level agents (kube-proxy: Endpoints, EndpointSlices, Services).
NODE_AGENT_RESOURCES = ("endpoints", "endpointslices", "services")
#: Flow distinguishers per level in a wave: waves rotate over this many flows, so shuffle
#: sharding sees many clients (kubelets, controllers), not one.
WAVE_FLOWS = 64


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
        self._to_find = (-1, 0)  # (nodes_total, numFeasibleNodesToFind) of the last call

    def cycle_time_s(self, nodes_examined: int, nodes_total: int) -> float:
        """Seconds of one cycle that examined ``nodes_examined`` of ``nodes_total`` nodes."""
        total, to_find = self._to_find
        if total != nodes_total:
            to_find = num_feasible_nodes_to_find(0, nodes_total)
            self._to_find = (nodes_total, to_find)
        scored = min(nodes_examined, to_find)
        dt = self.base_s + nodes_examined * self.filter_s + scored * self.score_s
        self.busy_s += dt
        return dt


class _Step:
    """One kind of request the replay makes for pods (fixed verb/resource/level/storage)."""

    __slots__ = (
        "code",
        "done",
        "event",
        "level",
        "name",
        "resource",
        "scope",
        "storage",
        "tags",
        "verb",
        "watch",
    )

    def __init__(self, name, verb, resource, level, storage, done=None, watch=None):
        self.name = name
        self.verb = verb
        self.resource = resource
        self.scope = "namespace"
        self.level = level
        self.storage = storage or (verb, resource)
        self.done = done  # fn(tags ok, tags rejected, reason codes) after the response
        self.watch = watch  # fn(tags) after the watch event was dispatched
        self.tags: list[int] = []
        self.event = resource == "events"
        self.code = 0


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
        # etcd's service-time spreads (calibrated profiles) draw from the replay's seed.
        self.etcd = EtcdModel(env, prof.etcd, np.random.default_rng([sim.seed, 2]))
        self.etcd.register_metrics(m)
        self.api = api = ApiServerModel(env, self.etcd, prof.apiserver, m)
        self.ratio = prof.apiserver.storage_size_ratio
        wl = prof.workload
        self.bucket_s = self.wave_s = wl.request_bucket_ms / 1e3
        self.wave_fraction = wl.wave_max_seat_fraction
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
            self.heartbeats = Heartbeats(
                env,
                api,
                prof.kubelet,
                n_nodes,
                rng,
                until_s=w.duration_s,
                process=self.wave_s <= 0,  # waves pull heartbeats themselves
            )
        self.writes = writes
        # Request kinds for pods, in a fixed order (waves are built in this order).
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
        self._step_list = list(self.steps.values())
        for i, s in enumerate(self._step_list):
            s.code = i
        e = self.etcd
        # Per step: verb, resource, scope, etcd op and etcd kind codes (one row per step:
        # a wave's columns are one gather of its members' rows).
        self._st_table = np.array(
            [
                (
                    VERB_CODE[s.verb],
                    api.resource_code(s.resource),
                    SCOPE_CODE[s.scope],
                    etcd_mod.OPS[s.storage[0]],
                    e.kind_code(s.storage[1]),
                )
                for s in self._step_list
            ],
            np.int64,
        )
        self._pod_size_list = self.pod_sizes.tolist()
        self._levels: dict[str, list[_Step]] = {}
        for s in self._step_list:
            self._levels.setdefault(s.level, []).append(s)
        # Fixed-delay timers (due time, pod), appended in time order: one deque per delay.
        self._t_creating: deque[tuple[float, int]] = deque()
        self._t_running: deque[tuple[float, int]] = deque()
        self._t_stopped: deque[tuple[float, int]] = deque()
        # Client tokens granted in the future: (time, step code, tag), in grant order.
        self._granted: deque[tuple[float, int, int]] = deque()
        self._tick_no = 0
        self._offers: list[tuple[Any, Any, Any]] = []
        # Constant columns of heartbeat groups (read only, sliced per wave).
        self._hb_columns: dict[Any, tuple[np.ndarray, ...]] = {}
        self._hb_verbs = self._hb_scopes = self._hb_ops = np.zeros(0, np.uint8)
        self.waves = 0  # request groups submitted by waves

    # ------------------------------------------------------------------ request plumbing

    def _add(self, step: str, tag: int) -> None:
        self.steps[step].tags.append(tag)
        if self.wave_s <= 0:
            self._flush_lifecycle()

    def _after(self, timers: deque, fn: Callable[[int], Any], delay_s: float, tag: int) -> None:
        """``fn(tag)`` after a fixed delay: at the nearest tick (waves), else at its time."""
        if self.wave_s <= 0:
            call_later(self.env, max(delay_s, 0.0), fn, tag)
        else:
            timers.append((self.env.now + delay_s, tag))

    def _token(self, step: int, tag: int) -> None:
        """Reserve a client token for a binding or Event; submit when granted."""
        delay = self.bucket.reserve(self.env.now)
        s = self._step_list[step]
        if delay <= 0:
            self._add(s.name, tag)
            return
        self.limiter_waiting += 1
        if self.wave_s <= 0:
            call_later(self.env, delay, self._granted_one, s.name, tag)
        else:
            self._granted.append((self.env.now + delay, step, tag))

    def _granted_one(self, step: str, tag: int) -> None:
        self.limiter_waiting -= 1
        self._add(step, tag)

    def _flush_lifecycle(self) -> None:
        """Submit the buffered pod requests: one group per priority level."""
        ev_size = float(self.profile.workload.event_size_bytes)
        pod_sizes = self._pod_size_list
        for level, steps in self._levels.items():
            parts = [s for s in steps if s.tags]
            if not parts:
                continue
            code_list: list[int] = []
            tag_list: list[int] = []
            size_list: list[float] = []
            for s in parts:
                code_list += [s.code] * len(s.tags)
                if s.event:
                    size_list += [ev_size] * len(s.tags)
                else:
                    size_list += [pod_sizes[pod] for pod in s.tags]
                tag_list += s.tags
                s.tags = []
            codes = np.array(code_list, np.int64)
            tags = np.array(tag_list, np.int64)
            sizes = np.array(size_list)
            self.submitted += len(tags)
            flow = f"{level}-{self._tick_no % WAVE_FLOWS}"
            self._offer(
                level,
                flow,
                *self._st_table[codes].T,
                tags,
                sizes,
                lambda ct: self._lifecycle_handlers(*ct),
                (codes, tags),
            )

    def _offer(self, level, flow, verbs, res, scopes, sops, kinds, keys, sizes, handlers, ctx):
        """Offer a wave's group to the apiserver, in chunks spread over the window if it is
        larger than ``wave_max_seat_fraction`` of the level's seats."""
        n = len(sizes)
        api = self.api
        lvl = api.levels.get(level if api.p.apf_enabled else "mutating")
        limit = n
        if self.wave_s > 0 and lvl is not None:
            limit = max(1, int(lvl.seats * self.wave_fraction))
        if n <= limit:  # one chunk: no slicing
            on_done, on_watch = handlers(ctx)
            args = (level, flow, verbs, res, scopes, sops, kinds, keys, sizes)
            self.waves += 1
            if self.wave_s <= 0:
                api.submit_mixed(*args, on_done=on_done, on_watch=on_watch)
            else:
                self._offers.append((args, on_done, on_watch))
            return
        chunks = math.ceil(n / limit)
        size = math.ceil(n / chunks)
        for j in range(chunks):
            a, b = j * size, min(n, (j + 1) * size)
            sl = slice(a, b)
            sub = tuple(c[sl] for c in ctx)
            on_done, on_watch = handlers(sub)
            args = (level, flow, verbs[sl], res[sl], scopes[sl], sops[sl], kinds[sl])
            args += (keys[sl], sizes[sl])
            self.waves += 1
            if self.wave_s <= 0:
                api.submit_mixed(*args, on_done=on_done, on_watch=on_watch)
            else:
                self._offers.append((args, on_done, on_watch))

    def _spread_offers(self) -> None:
        """Offer the wave's groups one after another, evenly spread over the window (the
        first at once): groups of one tick do not meet in the APF seats or the etcd leader
        more than the spread arrivals they stand for would."""
        offers, self._offers = self._offers, []
        api, k = self.api, len(offers)
        for j, (args, on_done, on_watch) in enumerate(offers):
            if j == 0:
                api.submit_mixed(*args, on_done=on_done, on_watch=on_watch)
                continue
            call_later(self.env, self.wave_s * j / k, self._submit_offer, args, on_done, on_watch)

    def _submit_offer(self, args: tuple, on_done: Any, on_watch: Any) -> None:
        self.api.submit_mixed(*args, on_done=on_done, on_watch=on_watch)

    def _lifecycle_handlers(self, codes: np.ndarray, tags: np.ndarray):
        def done(_lat, reasons, members):
            if members is None:
                self._on_done(codes, tags, reasons)
            else:
                self._on_done(codes[members], tags[members], reasons)

        def watch(members):
            c, t = codes[members], tags[members]
            present = c.tolist()
            first = present[0]
            if present.count(first) == len(present):
                s = self._step_list[first]
                if s.watch is not None:
                    s.watch(t)
                return
            for code in sorted(set(present)):  # a few small codes
                s = self._step_list[code]
                if s.watch is not None:
                    s.watch(t[c == code])

        return done, watch

    def _on_done(self, codes: np.ndarray, tags: np.ndarray, reasons: np.ndarray) -> None:
        code_list = codes.tolist()
        first = code_list[0]
        single = code_list.count(first) == len(code_list)
        present = [first] if single else sorted(set(code_list))
        if not reasons.any():
            self.completed += len(code_list)
            for code in present:
                s = self._step_list[code]
                if s.done is not None:
                    s.done(tags if single else tags[codes == code], None, None)
            return
        ok = reasons == 0
        self.completed += int(np.count_nonzero(ok))
        retry_after = self.profile.workload.retry_after_s
        max_retries = self.profile.workload.max_retries
        final = np.zeros(len(tags), dtype=bool)
        for i in np.flatnonzero(~ok).tolist():
            s = self._step_list[int(codes[i])]
            pod, code = int(tags[i]), int(reasons[i])
            key = (s.name, pod)
            tries = self.retries.get(key, 0)
            if code in RETRIED and tries < max_retries:
                self.retries[key] = tries + 1
                call_later(self.env, retry_after, self._add, s.name, pod)
                self.submitted -= 1  # the retry is the same request (counted when resubmitted)
                continue
            self.retries.pop(key, None)
            reason = api_mod.REASONS[code]
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
            self.rejected_final += 1
            final[i] = True
        for code in present:
            s = self._step_list[code]
            if s.done is None:
                continue
            mine = codes == code
            s.done(tags[mine & ok], tags[mine & final], reasons[mine & final])

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
        self._token(self.steps["binding"].code, pod)

    def _binding_done(self, ok: np.ndarray, bad: np.ndarray | None, codes: Any) -> None:
        sim, now = self.sim, self.env.now
        bound = sim.state
        bound_s = sim.bound_s
        per_pod = self.profile.scheduler.event_writes_per_pod
        ev_code = self.steps["event"].code
        for pod in ok.tolist():
            if bound[pod] == BOUND:  # not deleted meanwhile
                bound_s[pod] = now
            for _ in range(per_pod):
                # Negative keys: never the trace's objects (whose keys are >= 0).
                self.event_key -= 1
                self._token(ev_code, self.event_key)
        if bad is not None and len(bad):
            for pod, code in zip(bad.tolist(), codes.tolist(), strict=True):
                sim.binding_failed(pod, now, f"binding rejected: {api_mod.REASONS[code]}")

    def _binding_seen(self, tags: np.ndarray) -> None:
        # The kubelet sees its pod bound: ContainerCreating after its sync delay, Running
        # once the containers started.
        for pod in tags.tolist():
            self._after(self._t_creating, self._creating, self.sync_s, pod)
            self._after(self._t_running, self._running, self.sync_s + self.start_s, pod)

    def _creating(self, pod: int) -> None:
        self._add("status_creating", pod)

    def _running(self, pod: int) -> None:
        if self.sim.state[pod] == BOUND:  # still on its node
            self._add("status_running", pod)

    def _running_seen(self, tags: np.ndarray) -> None:
        now = self.env.now
        for pod in tags.tolist():
            self.running_s[pod] = now

    def _event_done(self, ok: np.ndarray, bad: Any, codes: Any) -> None:
        self.events_written += len(ok)
        expire = self.env.now + self.profile.workload.event_ttl_s
        self._expiry.extend((expire, key) for key in ok.tolist())
        if self._expiry and self._expiry_wake is not None and not self._expiry_wake.triggered:
            self._expiry_wake.succeed()

    def _expire(self, horizon_s: float) -> None:
        """etcd deletes the Events whose lease expires before ``horizon_s`` (no API request)."""
        q = self._expiry
        keys = []
        while q and q[0][0] < horizon_s:
            keys.append(q.popleft()[1])
        if keys:
            self.events_expired += len(keys)
            self.etcd.submit_writes("delete", "events", keys, np.zeros(len(keys)))

    def _expirer(self):
        """Per-request path: expire Events at their own time."""
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
            self._expire(math.nextafter(env.now, math.inf))

    def on_pod_terminal(self, pod: int) -> None:
        """The pod finished in the trace: its kubelet writes the terminal status."""
        if self.sim.node[pod] >= 0 and not math.isnan(self.sim.bound_s[pod]):
            self._add("status_terminal", pod)

    def on_pod_delete(self, pod: int, t_s: float) -> None:
        """The trace deletes ``pod`` now (the engine releases its resources)."""
        sim = self.sim
        if sim.state[pod] == NEW and not sim.w.preexisting[pod]:  # create not seen yet
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
            self._after(self._t_stopped, self._stopped, self.stop_s, pod)

    def _stopped(self, pod: int) -> None:
        self._add("status_final", pod)
        self._add("pod_remove", pod)

    # ------------------------------------------------------------------ waves

    def _prepare_trace_writes(self) -> None:
        """Preload the writes at or before the start; time-ordered code arrays of the rest."""
        tw = self.writes
        self._tw_n = 0
        if tw is None or not len(tw):
            return
        resources = [resource_of(k) for k in tw.kinds]
        pre = (tw.t_s <= 0) & (tw.op == 0)
        for code, res in enumerate(resources):
            sel = pre & (tw.kind == code)
            if sel.any():
                self.etcd.preload(res, tw.key[sel].tolist(), tw.size_bytes[sel] * self.ratio)
        live = np.flatnonzero(~pre)
        live = live[np.argsort(tw.t_s[live], kind="stable")]
        api, e = self.api, self.etcd
        kind = tw.kind[live].astype(np.int64)
        op = tw.op[live].astype(np.int64)
        verb_of_op = np.array([VERB_CODE[VERBS[i]] for i in range(3)], np.uint8)
        self._tw_t = tw.t_s[live]
        self._tw_verb = verb_of_op[op]
        self._tw_res = np.array([api.resource_code(r) for r in resources], np.int64)[kind]
        self._tw_kind = np.array([e.kind_code(r) for r in resources], np.int64)[kind]
        self._tw_scope = np.where(
            tw.namespaced[live], SCOPE_CODE["namespace"], SCOPE_CODE["cluster"]
        ).astype(np.uint8)
        self._tw_sop = op.astype(np.int8)
        self._tw_key = tw.key[live]
        self._tw_size = tw.size_bytes[live].astype(float)
        self._tw_n = len(live)
        self._tw_i = 0

    def _trace_done(self, _lat: np.ndarray, reasons: np.ndarray, _members: Any) -> None:
        k = int(np.count_nonzero(reasons == 0))
        self.completed += k
        if k < len(reasons):
            for code in reasons[reasons != 0].tolist():
                r = api_mod.REASONS[code]
                self.rejected[r] = self.rejected.get(r, 0) + 1
                self.rejected_final += 1

    def _hb_done(self, _lat: np.ndarray, reasons: np.ndarray, _members: Any) -> None:
        k = int(np.count_nonzero(reasons == 0))
        assert self.heartbeats is not None
        self.heartbeats.answered(k, len(reasons) - k)

    def _tick(self, t: float) -> None:
        """One wave (see the module docstring)."""
        W = self.wave_s
        horizon = t + W / 2
        # The fixed-delay timers due by the horizon (_creating, _running, _stopped inlined:
        # hundreds of thousands of entries per simulated hour).
        steps = self.steps
        q = self._t_creating
        if q and q[0][0] < horizon:
            tags = steps["status_creating"].tags
            while q and q[0][0] < horizon:
                tags.append(q.popleft()[1])
        q = self._t_running
        if q and q[0][0] < horizon:
            tags, state = steps["status_running"].tags, self.sim.state
            while q and q[0][0] < horizon:
                pod = q.popleft()[1]
                if state[pod] == BOUND:  # still on its node (as _running)
                    tags.append(pod)
        q = self._t_stopped
        if q and q[0][0] < horizon:
            final, remove = steps["status_final"].tags, steps["pod_remove"].tags
            while q and q[0][0] < horizon:
                pod = q.popleft()[1]
                final.append(pod)
                remove.append(pod)
        g = self._granted
        while g and g[0][0] <= t:
            _, step, tag = g.popleft()
            self.limiter_waiting -= 1
            self._step_list[step].tags.append(tag)
        self._expire(horizon)
        self._flush_lifecycle()
        hb = self.heartbeats
        if hb is not None:
            parts = [(s, keys) for s, keys in hb.due(t, t + W) if len(keys)]
            if parts:
                self._submit_heartbeats(parts)
        if self._tw_n and self._tw_i < self._tw_n:
            i0 = self._tw_i
            i1 = int(np.searchsorted(self._tw_t, t + W, "left"))
            if i1 > i0:
                self._tw_i = i1
                sl = slice(i0, i1)
                self.submitted += i1 - i0
                self._offer(
                    "workload-low",
                    f"trace-{self._tick_no % WAVE_FLOWS}",
                    self._tw_verb[sl],
                    self._tw_res[sl],
                    self._tw_scope[sl],
                    self._tw_sop[sl],
                    self._tw_kind[sl],
                    self._tw_key[sl],
                    self._tw_size[sl],
                    lambda _ctx: (self._trace_done, None),
                    (),
                )
        self._spread_offers()
        self._tick_no += 1

    def _submit_heartbeats(self, parts: list) -> None:
        if len(parts) == 1:  # one stream (Leases, or NodeStatus): its constant columns
            stream, keys = parts[0]
            n = len(keys)
            sizes, res, kinds = self._heartbeat_columns(stream, n)
        else:  # Leases and NodeStatus reports: the streams' columns end to end
            keys = np.concatenate([k for _, k in parts])
            n = len(keys)
            cols = [self._heartbeat_columns(st, len(k)) for st, k in parts]
            sizes, res, kinds = (np.concatenate([c[i] for c in cols]) for i in range(3))
        if len(self._hb_verbs) < n:
            self._hb_verbs = np.full(2 * n, VERB_CODE["update"], np.uint8)
            self._hb_scopes = np.full(2 * n, SCOPE_CODE["resource"], np.uint8)
            self._hb_ops = np.full(2 * n, etcd_mod.UPDATE, np.int8)
            for c in (self._hb_verbs, self._hb_scopes, self._hb_ops):
                c.flags.writeable = False  # shared by every heartbeat wave
        self._offer(
            "node-high",
            f"kubelet-{self._tick_no % WAVE_FLOWS}",
            self._hb_verbs[:n],
            res,
            self._hb_scopes[:n],
            self._hb_ops[:n],
            kinds,
            keys,
            sizes,
            lambda _ctx: (self._hb_done, None),
            (),
        )

    def _heartbeat_columns(self, stream: Any, n: int) -> tuple[np.ndarray, ...]:
        """Sizes, resource codes and etcd kind codes of ``n`` heartbeat writes of ``stream``
        (constant per stream: read-only slices of a cached column, grown by doubling)."""
        cols = self._hb_columns.get(stream)
        if cols is None or len(cols[0]) < n:
            api, e = self.api, self.etcd
            m = 2 * n
            cols = (
                np.full(m, float(stream.size_bytes)),
                np.full(m, api.resource_code(stream.resource), np.int64),
                np.full(m, e.kind_code(stream.resource), np.int64),
            )
            for c in cols:
                c.flags.writeable = False
            self._hb_columns[stream] = cols
        return cols[0][:n], cols[1][:n], cols[2][:n]

    def _ticker(self):
        env, W = self.env, self.wave_s
        k = 0
        while True:
            t = k * W
            if t > env.now:
                yield env.timeout(t - env.now)
            self._tick(env.now)
            k += 1

    # ------------------------------------------------------------------ per-request path

    def _trace_writer(self):
        """Per-request path (``W = 0``): each trace write at its own time."""
        env, api = self.env, self.api
        if not self._tw_n:
            return
        t_all = self._tw_t
        for i in range(self._tw_n):
            at = float(t_all[i])
            if at > env.now:
                yield env.timeout(at - env.now)
            self.submitted += 1
            sl = slice(i, i + 1)
            api.submit_mixed(
                "workload-low",
                f"trace-{i % WAVE_FLOWS}",
                self._tw_verb[sl],
                self._tw_res[sl],
                self._tw_scope[sl],
                self._tw_sop[sl],
                self._tw_kind[sl],
                self._tw_key[sl].tolist(),
                self._tw_size[sl],
                on_done=self._trace_done,
            )

    # ------------------------------------------------------------------ run and results

    def start(self) -> None:
        """Start the model processes (call before ``env.run``)."""
        self._prepare_trace_writes()
        if self.wave_s > 0:
            self.env.process(self._ticker())
        else:
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
