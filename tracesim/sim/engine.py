"""The replay engine: a SimPy environment fed by a trace, a scheduling queue and a scheduler.

SimPy owns time: every delay is an ``env.timeout``. Processes:

- **feeder**: applies node and pod operations of the :class:`~tracesim.sim.workload.Workload`
  at their (simulated) times: nodes join, change and leave the :class:`ClusterState`; pods
  are created (queued, or placed on their recorded node when they were already bound when the
  trace starts), turn terminal (resources released) and are deleted.
- **scheduler**: takes pods from the :class:`~tracesim.sim.queue.SchedulingQueue` one at a
  time; a scheduling cycle runs the policy through the
  :class:`~tracesim.models.schedulers.base.Scheduler` framework (filter, score, pick, assume)
  and lasts :meth:`SchedulerTiming.cycle_time_s`; binding completes ``bind_latency_s`` later,
  asynchronously (a binder process), as kube-scheduler binds in a goroutine.
- **backoff timers** (:func:`~tracesim.models.timers.call_later`), the **leftover flush**
  every 30 s and the **sampler** of cluster allocation every ``sample_interval_s``.

Cluster changes that can make a pending pod fit (a pod deleted or terminal, a node added or
changed) are move requests to the queue; the pool scan is done once per scheduler wake-up.
"""

from __future__ import annotations

import gc
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import simpy

from ..errors import TracesimError
from ..models.schedulers.base import Scheduler, SchedulerPolicy
from ..models.timers import call_later
from .cluster import ClusterState, PodRequest, PodTable
from .queue import (
    INITIAL_BACKOFF_S,
    LEFTOVER_FLUSH_INTERVAL_S,
    MAX_BACKOFF_S,
    MAX_IN_UNSCHEDULABLE_S,
    SchedulingQueue,
)
from .workload import (
    NODE_ADD,
    NODE_REMOVE,
    NODE_UPDATE,
    POD_CREATE,
    POD_DELETE,
    POD_TERMINAL,
    Workload,
)

# Pod states inside the engine.
NEW, QUEUED, IN_CYCLE, BOUND, RELEASED, DELETED_PENDING = range(6)
#: The GPU slots of a pod that asks for none (shared, read-only).
_NO_GPUS = np.zeros(0, np.int64)
_NO_GPUS.flags.writeable = False


@dataclass(frozen=True)
class EngineConfig:
    """Engine parameters (times in simulated seconds); each can be set with ``--set``."""

    #: Duration of one scheduling cycle (0 = instantaneous; the timing model of a later
    #: issue replaces this through :class:`SchedulerTiming`).
    cycle_time_s: float = 0.0
    #: Extra cycle time per node examined by the filter walk.
    cycle_time_per_node_s: float = 0.0
    #: From the end of the scheduling cycle to the binding being stored.
    bind_latency_s: float = 0.0
    #: kube-scheduler defaults (scheduling_queue.go): backoff and the pool's maximum stay.
    initial_backoff_s: float = INITIAL_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    max_in_unschedulable_s: float = MAX_IN_UNSCHEDULABLE_S
    leftover_flush_interval_s: float = LEFTOVER_FLUSH_INTERVAL_S
    #: Cluster allocation is sampled this often; 0 = auto: 10 s, or 1/5,000 of the replay
    #: when longer (a 149-day openb trace would otherwise take 1.3 million samples).
    sample_interval_s: float = 0.0
    #: Reuse per-(pod shape, node) filter/score results (False: the naive baseline).
    cache: bool = True

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]


class SchedulerTiming:
    """How long a scheduling cycle takes: ``cycle_time_s + per_node_s * nodes_examined``.

    The hook for a calibrated timing model (a later issue): subclass and override
    :meth:`cycle_time_s`.
    """

    def __init__(self, cycle_time_s: float = 0.0, per_node_s: float = 0.0) -> None:
        self.base_s = float(cycle_time_s)
        self.per_node_s = float(per_node_s)

    def cycle_time_s(self, nodes_examined: int, nodes_total: int) -> float:
        """Seconds of one cycle that examined ``nodes_examined`` of ``nodes_total`` nodes."""
        return self.base_s + self.per_node_s * nodes_examined


@dataclass
class EngineOutput:
    """Raw per-pod records and samples; :mod:`tracesim.sim.results` turns them into tables."""

    workload: Workload
    cluster: ClusterState
    created_s: np.ndarray
    first_attempt_s: np.ndarray
    scheduled_s: np.ndarray
    bound_s: np.ndarray
    deleted_s: np.ndarray
    released_s: np.ndarray
    node: np.ndarray  # cluster node index, -1 = none
    initial: np.ndarray  # bool: kept its recorded node from the trace start
    attempts: np.ndarray
    state: np.ndarray
    reason: dict[int, str]
    gpus: dict[int, list[int]]
    samples: list[tuple[float, ...]]
    inconsistencies: dict[str, int]
    decisions: int
    wall_s: float
    schedule_wall_s: float
    config: dict[str, Any]
    end_s: float
    control: Any = None  # the ControlPlane of a replay with --profile, else None


SAMPLE_COLUMNS = (
    "t_s",
    "nodes",
    "cpu_alloc_milli",
    "cpu_used_milli",
    "memory_alloc_bytes",
    "memory_used_bytes",
    "gpu_alloc_milli",
    "gpu_used_milli",
    "pods_bound",
    "pods_pending",
    "pods_unschedulable",
    "overcommitted_nodes",
)


class Simulation:
    """One replay of ``workload`` with ``policy`` under ``seed``.

    ``progress`` (optional) is called with the fraction of simulated time done.
    """

    def __init__(
        self,
        workload: Workload,
        policy: SchedulerPolicy,
        *,
        seed: int = 0,
        config: EngineConfig | None = None,
        timing: SchedulerTiming | None = None,
        progress: Callable[[float], None] | None = None,
        profile: Any = None,
        writes: Any = None,
    ) -> None:
        self.w = workload
        self.cfg = config or EngineConfig()
        self.timing = timing or SchedulerTiming(
            self.cfg.cycle_time_s, self.cfg.cycle_time_per_node_s
        )
        #: The control-plane models (``profile``: a :class:`~tracesim.models.params.Profile`);
        #: None = placement only.
        self.cp: Any = None
        self._profile, self._writes = profile, writes
        self.progress = progress
        self.seed = seed
        self.env = simpy.Environment()
        w = workload
        n_nodes = len(w.node_names)
        self.cluster = ClusterState(
            max_gpus=w.max_gpus,
            capacity=max(n_nodes, 1),
            max_labels=w.max_labels,
            max_taints=w.max_taints,
        )
        c = self.cluster
        c.constraints = list(w.constraints)
        # GPU model codes: node models first (sorted), then models only pods name.
        node_models = {m for m in w.node_ops.gpu_model if m}
        pod_models = {m for s in w.gpu_models if s for m in str(s).split("|") if m}
        for m in sorted(node_models) + sorted(pod_models - node_models):
            c.models.code(m)
        masks: dict[Any, int] = {None: 0}
        model_mask = np.zeros(w.n_pods, np.int64)
        for i, s in enumerate(w.gpu_models):
            mask = masks.get(s)
            if mask is None:
                mask = 0
                for m in str(s).split("|"):
                    if m:
                        mask |= 1 << c.models.code(m)
                masks[s] = mask
            model_mask[i] = mask
        self.model_mask = model_mask
        # One PodRequest per distinct shape, shared by the pods of that shape.
        shapes: dict[tuple[int, ...], PodRequest] = {}
        reqs: list[PodRequest] = []
        for row in zip(
            w.cpu_milli.tolist(),
            w.memory_bytes.tolist(),
            w.gpu_count.tolist(),
            w.gpu_milli.tolist(),
            model_mask.tolist(),
            w.constraint.tolist(),
            strict=True,
        ):
            req = shapes.get(row)
            if req is None:
                req = shapes[row] = PodRequest(*row)
            reqs.append(req)
        self.reqs = reqs
        self.priority = w.priority.tolist()
        # Per-pod columns the feeder reads, as lists (indexing a list is cheaper).
        self._initial_node = w.initial_node.tolist()
        self._initial_terminal = w.initial_terminal.tolist()
        self.slot = [-1] * n_nodes  # workload node -> cluster node index
        rng = np.random.default_rng(seed)
        self.rng = rng
        policy.prepare(c, self.pod_table())
        self.policy = policy
        self.scheduler = Scheduler(c, policy, rng, cache=self.cfg.cache, tie_break="random")
        self.queue = SchedulingQueue(
            self.cfg.initial_backoff_s, self.cfg.max_backoff_s, self.cfg.max_in_unschedulable_s
        )
        self.queue.reserve(w.n_pods)
        n = w.n_pods
        nan = math.nan
        self.created_s = [nan] * n
        self.first_attempt_s = [nan] * n
        self.scheduled_s = [nan] * n
        self.bound_s = [nan] * n
        self.deleted_s = [nan] * n
        self.released_s = [nan] * n
        self.node = [-1] * n
        self.initial = [False] * n
        self.state = [NEW] * n
        self.reason: dict[int, str] = {}
        self.gpus: dict[int, list[int]] = {}
        self.samples: list[tuple[float, ...]] = []
        self.issues: dict[str, int] = dict(w.inconsistencies)
        self.decisions = 0
        self.schedule_wall_s = 0.0
        self._wake: simpy.Event | None = None
        self._move_pending = False
        self._timer_at = math.inf
        self._binds: deque[tuple[float, int]] = deque()
        self._binder_wake: simpy.Event | None = None
        self._pods_bound = 0
        self._in_cycle = 0
        if profile is not None:
            from .controlplane import ControlPlane

            self.cp = ControlPlane(self, profile, writes)
            if timing is None:
                self.timing = self.cp.timing

    def pod_table(self) -> PodTable:
        """All pods of the workload as a :class:`PodTable` (what ``policy.prepare`` sees)."""
        w = self.w
        return PodTable(
            names=w.name,
            cpu_milli=w.cpu_milli,
            memory_bytes=w.memory_bytes,
            gpu_count=w.gpu_count,
            gpu_milli=w.gpu_milli,
            model_mask=self.model_mask,
        )

    def _issue(self, name: str) -> None:
        self.issues[name] = self.issues.get(name, 0) + 1

    # -- cluster changes ---------------------------------------------------------------------
    def _move_request(self) -> None:
        self.queue.note_move_request()
        self._move_pending = True
        self._kick()

    def _kick(self) -> None:
        wake = self._wake
        if wake is not None and not wake.triggered:
            wake.succeed()

    def _node_op(self, op: int, row: int) -> None:
        ops, c = self.w.node_ops, self.cluster
        wn = int(ops.node[row])
        slot = self.slot[wn]
        if op == NODE_REMOVE:
            if slot < 0 or not c.active[slot]:
                self._issue("delete_unknown_node")
                return
            c.remove_node(slot)
            return
        labels, taints = ops.labels[row], ops.taints[row]
        if slot < 0:
            if op == NODE_UPDATE:
                self._issue("update_unknown_node")
            self.slot[wn] = c.add_node(
                self.w.node_names[wn],
                int(ops.cpu_milli[row]),
                int(ops.memory_bytes[row]),
                pods=int(ops.pods[row]),
                gpu_count=min(int(ops.gpu_count[row]), c.max_gpus),
                gpu_model=ops.gpu_model[row],
                labels=labels,
                taints=taints,
            )
        else:
            if op == NODE_ADD and c.active[slot]:
                self._issue("duplicate_node_add")
            c.update_node(
                slot,
                cpu_milli=int(ops.cpu_milli[row]),
                memory_bytes=int(ops.memory_bytes[row]),
                pods=int(ops.pods[row]),
                labels=labels,
                taints=taints,
                active=True,
            )
        self._move_request()

    def _pod_create(self, pod: int, now: float, created_s: float | None = None) -> None:
        self.created_s[pod] = now if created_s is None else created_s
        name = self._initial_node[pod]
        if name is not None:
            c = self.cluster
            slot = c._index.get(name, -1)
            if slot < 0 or not c.active[slot]:
                self._issue("pod_on_unknown_node")
            elif self._initial_terminal[pod]:
                self._bind_initial(pod, slot, now, hold=False)
                return
            else:
                req = self.reqs[pod]
                gpus = self._initial_gpus(req, slot)
                if gpus is not None:
                    try:
                        c.assign(slot, req, gpus)
                    except ValueError:
                        gpus = None
                if gpus is not None:
                    if req.gpu_count:  # a pod without GPUs reads as [] from the dict anyway
                        self.gpus[pod] = gpus.tolist()
                    self._bind_initial(pod, slot, now, hold=True)
                    return
                self._issue("initial_pod_does_not_fit")
        self.state[pod] = QUEUED
        self.queue.add(pod, self.priority[pod], now)
        self._kick()

    def _initial_gpus(self, req: PodRequest, slot: int) -> np.ndarray | None:
        if req.gpu_count == 0:
            return _NO_GPUS
        row = self.cluster.gpu_free_milli[slot]
        fit = np.flatnonzero(row >= req.gpu_milli)
        return fit[: req.gpu_count] if len(fit) >= req.gpu_count else None

    def _bind_initial(self, pod: int, slot: int, now: float, *, hold: bool) -> None:
        self.node[pod] = slot
        self.initial[pod] = True
        self.scheduled_s[pod] = self.bound_s[pod] = now
        if hold:
            self.state[pod] = BOUND
            self._pods_bound += 1
        else:
            self.state[pod] = RELEASED
            self.released_s[pod] = now

    def _release(self, pod: int, now: float) -> None:
        """Give back the resources of a pod that holds them."""
        self.cluster.release(self.node[pod], self.reqs[pod], self.gpus.get(pod, ()))
        self.state[pod] = RELEASED
        self.released_s[pod] = now
        self._pods_bound -= 1
        # _move_request() inline (this runs for every pod that ends).
        self.queue.note_move_request()
        self._move_pending = True
        wake = self._wake
        if wake is not None and not wake.triggered:
            wake.succeed()

    def binding_failed(self, pod: int, now: float, reason: str) -> None:
        """The binding write of ``pod`` was rejected: forget the assumed pod (its resources
        return) and retry it after the initial backoff, as kube-scheduler does."""
        if self.state[pod] != BOUND:
            return
        self._release(pod, now)
        self.node[pod] = -1
        self.gpus.pop(pod, None)
        self.scheduled_s[pod] = math.nan
        self.released_s[pod] = math.nan
        self.reason[pod] = reason
        self.state[pod] = QUEUED
        call_later(self.env, self.cfg.initial_backoff_s, self._requeue, pod)

    def _requeue(self, pod: int) -> None:
        if self.state[pod] != QUEUED:  # deleted while it waited
            return
        try:
            self.queue.add(pod, self.priority[pod], self.env.now)
        except ValueError:  # already back in the queue
            return
        self._kick()

    def _pod_terminal(self, pod: int, now: float) -> None:
        if self.state[pod] == BOUND:
            self._release(pod, now)
        # A pod still pending in the model keeps waiting: the trace's run happened elsewhere.

    def _pod_delete(self, pod: int, now: float) -> None:
        self.deleted_s[pod] = now
        st = self.state[pod]
        if st == BOUND:
            self._release(pod, now)
        elif st == QUEUED:
            self.queue.remove(pod)
            self.state[pod] = DELETED_PENDING
        elif st == NEW:
            self._issue("delete_before_create")
        # IN_CYCLE: the scheduler sees deleted_s after its cycle and undoes the placement.

    # -- processes -----------------------------------------------------------------------------
    def _feeder(self):
        env, w = self.env, self.w
        times = w.op_t_s.tolist()
        ops = w.op.tolist()
        index = w.op_index.tolist()
        n = len(times)
        step = max(n // 200, 1)
        progress = self.progress
        cp = self.cp
        # The handlers, looked up once (this loop runs once per trace operation).
        create = self._pod_create if cp is None else cp.on_pod_create
        delete = self._pod_delete if cp is None else cp.on_pod_delete
        terminal = self._pod_terminal
        on_terminal = None if cp is None else cp.on_pod_terminal
        node_op = self._node_op
        timeout = env.timeout
        now = env.now  # the clock moves only while this process waits
        for i, (t, op, k) in enumerate(zip(times, ops, index, strict=True)):
            if t > now:
                yield timeout(t - now)
                now = env.now
            if op == POD_CREATE:
                create(k, t)
            elif op == POD_DELETE:
                delete(k, t)
            elif op == POD_TERMINAL:
                terminal(k, t)
                if on_terminal is not None:
                    on_terminal(k)
            else:
                node_op(op, k)
            if progress is not None and i % step == 0:
                progress(min(env.now / max(w.duration_s, 1e-9), 1.0))

    def _schedule_backoff(self, expiries: list[float] | None) -> None:
        if not expiries:
            return
        at = min(expiries)
        if at < self._timer_at:
            self._timer_at = at
            call_later(self.env, max(at - self.env.now, 0.0), self._on_backoff_timer, at)

    def _on_backoff_timer(self, at: float) -> None:
        if at == self._timer_at:
            self._timer_at = math.inf
        if self.queue.flush_backoff(self.env.now):
            self._kick()
        nxt = self.queue.next_backoff_expiry()
        if nxt is not None:
            self._schedule_backoff([nxt])

    def _leftover_flusher(self):
        interval = self.cfg.leftover_flush_interval_s
        while True:
            yield self.env.timeout(interval)
            expiries = self.queue.flush_leftover(self.env.now)
            self._schedule_backoff(expiries)
            if self.queue.n_active:
                self._kick()

    def _scheduler(self):
        env, queue, sched, c = self.env, self.queue, self.scheduler, self.cluster
        timing = self.timing
        # The default timing without parameters makes every cycle instantaneous: no call.
        zero_timing = type(timing) is SchedulerTiming and not (timing.base_s or timing.per_node_s)
        reqs, state, node_of, gpus_of = self.reqs, self.state, self.node, self.gpus
        reason, first_attempt_s, deleted_s = self.reason, self.first_attempt_s, self.deleted_s
        schedule, pop, isnan = sched.schedule, queue.pop, math.isnan
        clock = time.perf_counter
        while True:
            if self._move_pending:
                self._move_pending = False
                self._schedule_backoff(queue.move_all(env.now))
            pod = pop()
            if pod is None:
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            if isnan(first_attempt_s[pod]):
                first_attempt_s[pod] = env.now
            req = reqs[pod]
            t0 = clock()
            placement = schedule(req)
            self.schedule_wall_s += clock() - t0
            self.decisions += 1
            state[pod] = IN_CYCLE
            if placement is None:
                reason[pod] = sched.explain(req)
            else:
                node_of[pod] = placement.node
                if req.gpu_count:
                    gpus_of[pod] = placement.gpus.tolist()
                if reason:
                    reason.pop(pod, None)
                self._pods_bound += 1
            if not zero_timing:
                dt = timing.cycle_time_s(sched.last_examined, c.n_nodes)
                if dt > 0:
                    yield env.timeout(dt)
            now = env.now
            deleted = not isnan(deleted_s[pod])
            if placement is None:
                if deleted:
                    queue.done(pod)
                    state[pod] = DELETED_PENDING
                else:
                    state[pod] = QUEUED
                    expiry = queue.failed(pod, now)
                    if expiry is not None:
                        self._schedule_backoff([expiry])
                continue
            queue.done(pod)
            self.scheduled_s[pod] = now
            state[pod] = BOUND
            if deleted:  # deleted during its cycle: the assumed pod is forgotten
                self._release(pod, now)
                continue
            if self.cp is not None:  # binding through the API client and the models
                self.cp.on_scheduled(pod, now)
                continue
            latency = self.cfg.bind_latency_s
            if latency > 0:
                self._binds.append((now + latency, pod))
                if self._binder_wake is not None and not self._binder_wake.triggered:
                    self._binder_wake.succeed()
            else:
                self.bound_s[pod] = now

    def _binder(self):
        env, binds = self.env, self._binds
        while True:
            if not binds:
                self._binder_wake = env.event()
                yield self._binder_wake
                self._binder_wake = None
                continue
            due, pod = binds[0]
            if due > env.now:
                yield env.timeout(due - env.now)
            binds.popleft()
            if self.state[pod] == BOUND:
                self.bound_s[pod] = env.now

    def sample(self) -> tuple[float, ...]:
        """One row of :data:`SAMPLE_COLUMNS` for the current state."""
        c = self.cluster
        n = c.n_nodes
        act = c.active[:n]
        over = (
            (c.used_cpu_milli[:n] > c.alloc_cpu_milli[:n])
            | (c.used_memory_bytes[:n] > c.alloc_memory_bytes[:n])
            | (c.used_pods[:n] > c.alloc_pods[:n])
            | (c.gpu_free_milli[:n] < -1).any(axis=1)
        )
        return (
            float(self.env.now),
            int(act.sum()),
            int(c.alloc_cpu_milli[:n][act].sum()),
            int(c.used_cpu_milli[:n][act].sum()),
            int(c.alloc_memory_bytes[:n][act].sum()),
            int(c.used_memory_bytes[:n][act].sum()),
            c.gpu_capacity_milli,
            c.gpu_used_milli,
            self._pods_bound,
            len(self.queue),
            self.queue.n_unschedulable,
            int((over & act).sum()),
        )

    def _sampler(self):
        interval = self.cfg.sample_interval_s or max(10.0, self.w.duration_s / 5000)
        while True:
            self.samples.append(self.sample())
            yield self.env.timeout(interval)

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> EngineOutput:
        """Replay the whole workload; returns the raw records."""
        if self.cfg.sample_interval_s < 0:
            raise TracesimError("sample_interval_s must be positive (or 0 for auto)")
        env = self.env
        wall0 = time.perf_counter()
        env.process(self._feeder())
        env.process(self._scheduler())
        env.process(self._binder())
        env.process(self._leftover_flusher())
        env.process(self._sampler())
        if self.cp is not None:
            self.cp.start()
        end = self.w.duration_s
        # Events at exactly ``end`` are replayed too (run(until) stops before them).
        with cyclic_gc_off():
            env.run(until=math.nextafter(end, math.inf))
        # The last row is the state at the end (a sample taken at that instant may predate
        # the last events).
        if self.samples and self.samples[-1][0] >= end:
            self.samples.pop()
        self.samples.append(self.sample())
        wall = time.perf_counter() - wall0
        if self.progress is not None:
            self.progress(1.0)
        f = np.asarray
        return EngineOutput(
            workload=self.w,
            cluster=self.cluster,
            created_s=f(self.created_s, float),
            first_attempt_s=f(self.first_attempt_s, float),
            scheduled_s=f(self.scheduled_s, float),
            bound_s=f(self.bound_s, float),
            deleted_s=f(self.deleted_s, float),
            released_s=f(self.released_s, float),
            node=f(self.node, np.int64),
            initial=f(self.initial, bool),
            attempts=f(self.queue.attempts + [0] * (self.w.n_pods - len(self.queue.attempts))),
            state=f(self.state, np.int8),
            reason=self.reason,
            gpus=self.gpus,
            samples=self.samples,
            inconsistencies=self.issues,
            decisions=self.decisions,
            wall_s=wall,
            schedule_wall_s=self.schedule_wall_s,
            config=asdict(self.cfg),
            end_s=end,
            control=self.cp,
        )


def parse_value(text: str) -> Any:
    """A ``--set`` value: int, float, true/false, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def split_settings(scheduler: str, settings: dict[str, str]) -> tuple[EngineConfig, dict[str, Any]]:
    """Split ``--set`` pairs into the engine config and the policy's options.

    Keys may be prefixed ``engine.`` or ``scheduler.``; unknown keys raise a
    :class:`TracesimError` listing the valid ones.
    """
    import inspect

    from ..models.registry import _load_target, available_schedulers, load_scheduler

    spec = available_schedulers().get(scheduler)
    if spec is None:
        load_scheduler(scheduler)  # raises the "unknown scheduler; valid names" error
    try:
        params = inspect.signature(_load_target(str(spec))).parameters
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        policy_keys = [
            k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError, ImportError, AttributeError):
        accepts_any, policy_keys = True, []
    engine_keys = EngineConfig.keys()
    engine: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    for raw_key, text in settings.items():
        key = raw_key.removeprefix("engine.").removeprefix("scheduler.")
        value = parse_value(text)
        if key in engine_keys and not raw_key.startswith("scheduler."):
            default = getattr(EngineConfig, key)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise TracesimError(f"--set {raw_key}: expected true or false")
            elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise TracesimError(f"--set {raw_key}: expected a number >= 0 (seconds)")
            engine[key] = value
        elif key in policy_keys or (accepts_any and raw_key.startswith("scheduler.")):
            policy[key] = value
        else:
            valid = sorted(engine_keys) + sorted(policy_keys)
            raise TracesimError(
                f"unknown --set key {raw_key!r} for scheduler {scheduler!r}; "
                f"valid keys: {', '.join(valid)}"
            )
    return EngineConfig(**engine), policy


def split_profile_settings(
    settings: dict[str, str], profile: str | None
) -> tuple[dict[str, str], list[str]]:
    """Separate control-plane overrides (``etcd.fsync_ms=2``, ``scheduler.client_qps=100``:
    ``SECTION.KEY`` of :mod:`tracesim.models.params`) from engine/policy ``--set`` pairs.

    ``scheduler.KEY`` is a profile parameter when KEY is one, else a policy option. Without a
    profile, a control-plane key is an error naming ``--profile``.
    """
    import dataclasses

    from ..models.params import SECTIONS

    rest: dict[str, str] = {}
    overrides: list[str] = []
    for key, value in settings.items():
        section = key.split(".", 1)[0]
        is_model = section in SECTIONS and "." in key
        if is_model and section == "scheduler":
            sub = key.split(".")[1]
            is_model = sub in {f.name for f in dataclasses.fields(SECTIONS["scheduler"])}
        if not is_model:
            rest[key] = value
        elif profile is None:
            raise TracesimError(
                f"--set {key}: control-plane parameters need a profile; add --profile current "
                "(or 2019-era, or a .toml file)"
            )
        else:
            overrides.append(f"{key}={value}")
    return rest, overrides


@contextmanager
def cyclic_gc_off() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block, the caller's setting restored.

    A replay allocates millions of short-lived containers (events, callbacks, request
    groups, Arrow-to-Python conversions) that reference counting frees; the collector's
    passes over the large live heap (stores, buffers) find nothing to free and cost about
    6 % of a 10,000-node replay (peak memory measured the same without them)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _release_load_memory() -> None:
    """Give the memory of the trace-loading temporaries back to the OS before the run.

    Loading a multi-million-row trace peaks far above what the run keeps (typed arrays);
    without this, Arrow's pool and glibc keep that peak resident and the run's own buffers
    (millions of request samples) add to it."""
    import contextlib
    import ctypes

    import pyarrow as pa

    gc.collect()
    with contextlib.suppress(AttributeError):  # an older pyarrow without the call
        pa.default_memory_pool().release_unused()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def replay(
    trace: str,
    scheduler: str = "kube-default",
    *,
    seed: int = 0,
    settings: dict[str, str] | None = None,
    window: tuple[float, float | None] = (0.0, None),
    dilation: float = 1.0,
    progress: Callable[[float], None] | None = None,
    profile: str | None = None,
) -> Any:
    """Replay ``trace`` with the policy ``scheduler``; returns a
    :class:`~tracesim.sim.results.ReplayResult` (tables + summary). ``settings`` are the
    ``--set`` pairs (engine parameters, policy options and, with ``profile``, control-plane
    parameters ``SECTION.KEY``). ``profile`` (a shipped profile name or a ``.toml`` path)
    turns on the control-plane models (:mod:`tracesim.sim.controlplane`); None = placement
    only. Bad names or values raise :class:`TracesimError` before anything runs."""
    from ..models.params import load_profile
    from ..models.registry import load_scheduler
    from .results import build_result
    from .workload import load_replay

    settings, overrides = split_profile_settings(dict(settings or {}), profile)
    prof = load_profile(profile, overrides) if profile is not None else None
    config, options = split_settings(scheduler, settings)
    try:
        policy = load_scheduler(scheduler, **options)
    except TypeError as exc:
        raise TracesimError(f"scheduler {scheduler!r}: bad option ({exc})") from None
    # Loading and building the results allocate as the run does (see cyclic_gc_off).
    with cyclic_gc_off():
        wall0 = time.perf_counter()
        # One pass over the trace for the workload and (with a profile) the other writes.
        workload, writes = load_replay(
            trace,
            window=window,
            dilation=dilation,
            heartbeats_modelled=None if prof is None else prof.workload.model_heartbeats,
        )
        load_s = time.perf_counter() - wall0
        _release_load_memory()
        sim = Simulation(
            workload,
            policy,
            seed=seed,
            config=config,
            progress=progress,
            profile=prof,
            writes=writes,
        )
        try:
            out = sim.run()
        except ValueError as exc:  # a policy that cannot run on this workload (e.g. fgd, no GPUs)
            raise TracesimError(f"scheduler {scheduler!r}: {exc}") from None
        return build_result(
            out,
            scheduler=scheduler,
            seed=seed,
            trace=str(trace),
            extra={
                "window_s": [window[0], window[1]],
                "dilation": dilation,
                "load_wall_s": round(load_s, 3),
                "policy_options": options,
            },
        )
