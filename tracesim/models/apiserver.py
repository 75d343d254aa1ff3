"""kube-apiserver as a SimPy component: admission (APF), CPU costs, watch cache, watch fan-out.

Mechanisms (sources in :class:`~tracesim.models.params.ApiServerParams` and docs/models.md):

- **API Priority and Fairness.** ``max_requests_inflight + max_mutating_requests_inflight``
  seats (600) are split among priority levels by shares (``ceil(total * share / sum)``). A
  request holds one seat from admission until its response. When a level's seats are all busy,
  the request joins one of the level's queues (shuffle sharding: the shortest of a ``hand`` of
  queues picked by hashing its flow); a queue holds at most ``apf_queue_length_limit`` requests
  and a request that finds its queue full is rejected with 429 at once. Queues are served round
  robin (an approximation of APF's fair queuing for equal-cost requests). Levels are
  independent: a full level rejects while the others carry on. With ``apf_enabled = false``
  the older max-in-flight filter applies: two pools (read-only / mutating) and 429 as soon as
  the pool is full, no queueing. Level ``"exempt"`` bypasses admission.
- **CPU.** Each request costs ``request_cpu_us`` plus ``serialize_ns_per_byte`` per byte
  decoded or encoded; the request holds its seat for that time. CPU is accounted (utilisation
  = CPU seconds / ``cpu_cores``) but not queued for: seats are the contended resource.
- **Storage paths.** Mutating requests are written to etcd and wait for it. GET reads one
  object from etcd (linearizable). LIST is served from the watch cache when
  ``watch_cache_enabled and list_from_cache`` (one cheap linearizable etcd read for the current
  revision, then an in-memory scan: only the matching objects when ``indexed``), otherwise from
  etcd, which reads and the apiserver decodes every object in scope even when a selector
  matches few.
- **Watch fan-out.** Each committed write of a watched resource becomes an event dispatched by
  that resource's single dispatcher (an :class:`~tracesim.models.queueing.FcfsServer`): it is
  serialised once (``serialize_once_per_event``; else once per watcher) and sent to every
  matching watcher (``watch_send_us_per_watcher`` each). Cluster-wide watchers see every
  event; node-scoped watchers (kubelets watching their own pods) see one event per object.

Callback API for the hot path (:meth:`ApiServerModel.submit`, groups of requests with numpy
arrays); :meth:`ApiServerModel.request` returns a SimPy event for processes.
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any, NamedTuple

import numpy as np
import simpy

from . import etcd as etcd_mod
from .etcd import EtcdModel
from .params import ApiServerParams
from .queueing import LindleyServer
from .timers import call_later

MUTATING = frozenset({"create", "update", "patch", "delete"})
READ_ONLY = frozenset({"get", "list"})

#: Reason codes of an API request: etcd's, then the apiserver's own.
REASONS = (*etcd_mod.REASONS, "apf-queue-full", "inflight-limit")
APF_REJECTED = len(etcd_mod.REASONS)
INFLIGHT_REJECTED = APF_REJECTED + 1
#: HTTP-like status per reason code (200/201 for ok is decided by the verb).
STATUS = np.array([200, 413, 500, 409, 404, 429, 429], dtype=np.uint16)
#: Verb and scope codes of mixed groups (:meth:`ApiServerModel.submit_mixed`); the same
#: order as :class:`~tracesim.sim.metrics.Metrics`' vocabularies start with.
VERBS = ("create", "update", "patch", "delete", "get", "list", "watch")
VERB_CODE = {v: i for i, v in enumerate(VERBS)}
SCOPES = ("resource", "namespace", "cluster")
SCOPE_CODE = {v: i for i, v in enumerate(SCOPES)}
#: Status of a successful request by verb code (201 Created for create).
_OK_STATUS = np.array([201 if v == "create" else 200 for v in VERBS], dtype=np.uint16)

#: ``on_done(latency_s, reasons, members)`` for a submitted group; ``members`` indexes the
#: group (None = all members). Called once per sub-group as members finish.
ApiDone = Callable[[np.ndarray, np.ndarray, np.ndarray | None], Any]


class ApiResult(NamedTuple):
    """Outcome of one request: latency (s), HTTP-like status and ``"ok"`` or the reason."""

    latency_s: float
    status: int
    reason: str

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


class _Req:
    """A group of identical-path requests (one member = one API request)."""

    __slots__ = (
        "flow",
        "in_scope",
        "indexed",
        "keys",
        "level",
        "matching",
        "members",
        "mixed",
        "on_done",
        "on_watch",
        "resource",
        "scope",
        "sizes",
        "store_kind",
        "store_op",
        "t0",
        "total",
        "verb",
    )

    # ``mixed``: None, or per-member code arrays (verbs, resources, scopes, store ops, store
    # kinds) of a group that mixes request kinds (:meth:`ApiServerModel.submit_mixed`).

    def __len__(self) -> int:
        return len(self.sizes)

    def split(self, k: int) -> tuple[_Req, _Req]:
        """The first ``k`` members and the rest, as two groups."""
        a, b = _Req(), _Req()
        for s in _Req.__slots__:
            v = getattr(self, s)
            setattr(a, s, v)
            setattr(b, s, v)
        members = self.members if self.members is not None else np.arange(len(self.sizes))
        a.members, b.members = members[:k], members[k:]
        a.sizes, b.sizes = self.sizes[:k], self.sizes[k:]
        if self.keys is not None:
            a.keys, b.keys = self.keys[:k], self.keys[k:]
        if self.mixed is not None:
            a.mixed = tuple(c[:k] for c in self.mixed)
            b.mixed = tuple(c[k:] for c in self.mixed)
        return a, b


class _Level:
    """One priority level (or max-in-flight pool): seats and shuffle-sharded FIFO queues."""

    def __init__(self, name, seats, n_queues, queue_limit, hand_size, reject_reason):
        self.name = name
        self.seats = max(1, seats)
        self.in_use = 0
        self.queues: list[deque[_Req]] = [deque() for _ in range(n_queues)]
        self.qlen = [0] * n_queues
        self.queued = 0
        self.queue_limit = queue_limit
        self.hand_size = min(hand_size, max(1, n_queues))
        self.reject_reason = reject_reason
        self._hands: dict[str, list[int]] = {}
        self._rr = 0
        self.rejected = 0
        self.admitted = 0
        self.seat_area = 0.0
        self._t = 0.0

    def advance(self, now: float) -> None:
        self.seat_area += self.in_use * (now - self._t)
        self._t = now

    def hand(self, flow: str) -> list[int]:
        h = self._hands.get(flow)
        if h is None:
            rng = np.random.default_rng(zlib.crc32(f"{self.name}/{flow}".encode()))
            h = rng.choice(len(self.queues), self.hand_size, replace=False).tolist()
            self._hands[flow] = h
        return h


class ApiServerModel:
    """One kube-apiserver in front of an :class:`EtcdModel`. See the module docstring."""

    def __init__(
        self,
        env: simpy.Environment,
        etcd: EtcdModel,
        params: ApiServerParams | None = None,
        metrics: Any = None,
        compactor: bool = True,
    ) -> None:
        self.env = env
        self.etcd = etcd
        self.p = p = params or ApiServerParams()
        self.metrics = metrics
        self.cpu_s = 0.0
        self.levels: dict[str, _Level] = {}
        total = p.max_requests_inflight + p.max_mutating_requests_inflight
        if p.apf_enabled:
            shares = sum(p.apf_shares.values())
            for name, share in p.apf_shares.items():
                seats = math.ceil(total * share / shares)
                self.levels[name] = _Level(
                    name,
                    seats,
                    p.apf_queues.get(name, 0),
                    p.apf_queue_length_limit,
                    p.apf_hand_size,
                    APF_REJECTED,
                )
        else:
            self.levels["readonly"] = _Level(
                "readonly", p.max_requests_inflight, 0, 0, 1, INFLIGHT_REJECTED
            )
            self.levels["mutating"] = _Level(
                "mutating", p.max_mutating_requests_inflight, 0, 0, 1, INFLIGHT_REJECTED
            )
        # Watchers: resource -> (cluster-wide watcher count, node-scoped watcher count).
        self._watchers: dict[str, list[int]] = {}
        self._dispatchers: dict[str, LindleyServer] = {}
        # Resource codes of mixed groups, and their codes in ``metrics``.
        self._resource_codes: dict[str, int] = {}
        self.watch_events = 0
        self.watch_sends = 0
        self.watch_bytes_sent = 0.0
        self._ser_s = p.serialize_ns_per_byte / 1e9
        self._req_s = p.request_cpu_us / 1e6
        self._watch_codes: dict[str, int] = {}
        if metrics is not None:
            self._reason_codes = np.array([metrics.reasons.code(r) for r in REASONS], np.uint8)
            self._watch_verb = metrics.verbs.code("watch")
            self._cluster_scope = metrics.scopes.code("cluster")
            self._ok_reason = metrics.reasons.code("ok")
            self._register_metrics(metrics)
        if compactor:
            etcd.start_compactor(p.compaction_interval_s)

    # ------------------------------------------------------------------ metrics

    def _register_metrics(self, m: Any) -> None:
        m.add_utilisation("apiserver.cpu_utilisation", lambda: self.cpu_s, self.p.cpu_cores)
        for name, lvl in self.levels.items():
            m.add_utilisation(
                f"apiserver.seats_utilisation.{name}",
                lambda lvl=lvl: (lvl.advance(self.env.now), lvl.seat_area)[1],
                lvl.seats,
            )
        m.add_gauge(
            "apiserver.apf_queued", lambda: {n: lvl.queued for n, lvl in self.levels.items()}
        )
        m.add_gauge(
            "apiserver.watch_dispatch_queue",
            lambda: {r: d.queue_len for r, d in self._dispatchers.items()},
        )

    # ------------------------------------------------------------------ public API

    def resource_code(self, resource: str) -> int:
        """The code of ``resource`` (``pods``, ``pods/binding``, ...) for :meth:`submit_mixed`."""
        c = self._resource_codes.get(resource)
        if c is None:
            # With metrics, the code of their vocabulary: request rows need no mapping.
            m = self.metrics
            c = m.resources.code(resource) if m is not None else len(self._resource_codes)
            self._resource_codes[resource] = c
        return c

    def seats(self) -> dict[str, int]:
        """Seats per priority level (or max-in-flight pool)."""
        return {n: lvl.seats for n, lvl in self.levels.items()}

    def request(
        self,
        verb: str,
        resource: str,
        scope: str = "namespace",
        size_bytes: float = 0.0,
        key: Hashable = None,
        *,
        level: str = "global-default",
        flow: str = "",
        objects_matching: float | None = None,
        objects_in_scope: float | None = None,
        indexed: bool = False,
    ) -> simpy.Event:
        """One request; the event's value is an :class:`ApiResult`. See :meth:`submit`."""
        ev = self.env.event()

        def done(lat, reasons, _members):
            r = int(reasons[0])
            ok_status = 201 if verb == "create" else 200
            ev.succeed(
                ApiResult(float(lat[0]), ok_status if r == 0 else int(STATUS[r]), REASONS[r])
            )

        self.submit(
            verb,
            resource,
            scope,
            np.array([float(size_bytes)]),
            None if key is None else [key],
            level=level,
            flow=flow,
            objects_matching=objects_matching,
            objects_in_scope=objects_in_scope,
            indexed=indexed,
            on_done=done,
        )
        return ev

    def submit(
        self,
        verb: str,
        resource: str,
        scope: str,
        sizes_bytes: np.ndarray,
        keys: Sequence[Hashable] | None = None,
        *,
        level: str = "global-default",
        flow: str = "",
        objects_matching: float | None = None,
        objects_in_scope: float | None = None,
        indexed: bool = False,
        on_done: ApiDone | None = None,
        on_watch: Callable[[np.ndarray], Any] | None = None,
        storage: tuple[str, str] | None = None,
    ) -> None:
        """A group of requests with the same verb/resource/scope/level arriving now.

        ``verb``: create/update/patch/delete (need ``keys``, one per member; ``sizes_bytes`` =
        object sizes), get (``sizes_bytes`` = object size) or list. For list, the objects in
        scope default to every live object of ``resource`` in etcd (cluster scope: pass
        ``objects_in_scope`` for a namespace), ``objects_matching`` (default: all in scope) is
        what the selector keeps, and ``indexed`` says the cache can find them without a scan.
        ``level`` is the APF priority level (``"exempt"`` bypasses admission); ``flow`` the
        flow distinguisher (e.g. the user) used for shuffle sharding. Latencies, rejections and
        completions are recorded in ``metrics`` if given, and reported to ``on_done``.

        Replay hooks: ``storage = (etcd_op, etcd_kind)`` stores a mutating request as another
        operation/kind than its verb/resource (``create pods/binding`` is an ``update`` of the
        pod in etcd; its watch event is a ``pods`` event); ``on_watch(members)`` is called when
        the watch events of the successful members (indices into the group) have been
        dispatched to their watchers. etcd receives ``storage_size_ratio`` x the (JSON) sizes.
        """
        if verb not in MUTATING and verb not in READ_ONLY:
            raise ValueError(f"unsupported verb {verb!r}")
        r = _Req()
        r.verb, r.resource, r.scope, r.flow = verb, resource, scope, flow
        r.sizes = np.asarray(sizes_bytes, dtype=float)
        r.keys = list(keys) if keys is not None else None
        r.members = None
        r.on_done = on_done
        r.on_watch = on_watch
        r.store_op, r.store_kind = storage if storage is not None else (verb, resource)
        r.t0 = self.env.now
        r.matching, r.in_scope, r.indexed = objects_matching, objects_in_scope, indexed
        r.total = 0.0  # value bytes, set when the group starts
        if not self.p.apf_enabled:
            level = "mutating" if verb in MUTATING else "readonly"
        elif level != "exempt" and level not in self.levels:
            raise ValueError(f"unknown priority level {level!r}; valid: {', '.join(self.levels)}")
        r.mixed = None
        r.level = level
        if level == "exempt":
            self._start(r)
        else:
            self._offer(self.levels[level], r)

    def submit_mixed(
        self,
        level: str,
        flow: str,
        verbs: np.ndarray,
        resources: np.ndarray,
        scopes: np.ndarray,
        store_ops: np.ndarray,
        store_kinds: np.ndarray,
        keys: Sequence[Hashable],
        sizes_bytes: np.ndarray,
        *,
        on_done: ApiDone | None = None,
        on_watch: Callable[[np.ndarray], Any] | None = None,
    ) -> None:
        """A group of *mutating* requests of several kinds arriving now at one priority level.

        The hot path of a replay: one APF offer, one etcd proposal group and one callback for
        requests that differ in verb and resource. Per member: ``verbs`` (codes of
        :data:`VERBS`), ``resources`` (:meth:`resource_code`), ``scopes`` (codes of
        :data:`SCOPES`), ``store_ops`` (etcd op codes) and ``store_kinds``
        (:meth:`EtcdModel.kind_code`), ``keys`` (a list or an array is kept: do not change it
        afterwards) and JSON ``sizes_bytes``. The group is charged as :meth:`submit` charges
        one verb/resource (the seat is held for the request CPU time of the group's mean
        size), metrics get one row per member with its own verb/resource,
        and the watch fan-out is one dispatch per stored kind. ``on_watch(members)`` is called
        per stored kind once its events have been dispatched.
        """
        r = _Req()
        r.verb, r.resource, r.scope, r.flow = None, None, None, flow
        r.sizes = np.asarray(sizes_bytes, dtype=float)
        # A list or an array is kept, not copied (integer arrays are cheapest downstream).
        r.keys = keys if isinstance(keys, (list, np.ndarray)) else list(keys)
        r.members = None
        r.on_done = on_done
        r.on_watch = on_watch
        r.store_op = r.store_kind = None
        r.t0 = self.env.now
        r.matching = r.in_scope = None
        r.indexed = False
        r.total = 0.0  # value bytes, set when the group starts
        r.mixed = (verbs, resources, scopes, store_ops, store_kinds)
        if not self.p.apf_enabled:
            level = "mutating"
        elif level != "exempt" and level not in self.levels:
            raise ValueError(f"unknown priority level {level!r}; valid: {', '.join(self.levels)}")
        r.level = level
        if level == "exempt":
            self._start(r)
        else:
            self._offer(self.levels[level], r)

    # ------------------------------------------------------------------ watches

    def register_watchers(self, resource: str, count: int, node_scoped: bool = False) -> None:
        """Add ``count`` watchers of ``resource``: cluster-wide, or each scoped to one node."""
        w = self._watchers.setdefault(resource, [0, 0])
        w[1 if node_scoped else 0] += count
        if resource not in self._dispatchers:
            # One dispatch loop per resource (FCFS, one server; see LindleyServer).
            self._dispatchers[resource] = LindleyServer(self.env, name=f"watch-{resource}")

    def watchers(self, resource: str) -> tuple[int, int]:
        """(cluster-wide, node-scoped) watcher counts of ``resource``."""
        w = self._watchers.get(resource, [0, 0])
        return w[0], w[1]

    def fanout_cost_s(self, resource: str, n_events: int, total_bytes: float) -> float:
        """CPU seconds to dispatch ``n_events`` events of ``total_bytes`` to their watchers."""
        cluster, node = self.watchers(resource)
        per_event = cluster + (1 if node else 0)
        sends = n_events * per_event
        ser_events = n_events if self.p.serialize_once_per_event else sends
        mean_bytes = total_bytes / n_events if n_events else 0.0
        return (
            ser_events * mean_bytes * self._ser_s + sends * self.p.watch_send_us_per_watcher / 1e6
        )

    def _fanout(
        self,
        resource: str,
        n_events: int,
        total_bytes: float,
        on_delivered: Callable[[], Any] | None = None,
    ) -> None:
        d = self._dispatchers.get(resource)
        if d is None or n_events == 0:
            if on_delivered is not None:
                on_delivered()
            return
        cluster, node = self._watchers[resource]
        per_event = cluster + (1 if node else 0)
        sends = n_events * per_event
        # fanout_cost_s, inlined (one call per dispatch on the hot path).
        ser_events = n_events if self.p.serialize_once_per_event else sends
        cost = (
            ser_events * (total_bytes / n_events) * self._ser_s
            + sends * self.p.watch_send_us_per_watcher / 1e6
        )
        self.watch_events += n_events
        self.watch_sends += sends
        self.watch_bytes_sent += sends * total_bytes / n_events
        self.cpu_s += cost
        end = d.submit(cost, None if on_delivered is None else (lambda _w: on_delivered()))
        m = self.metrics
        if m is not None:
            # The dispatcher's end time is known now (FCFS, known service): the samples are
            # recorded at once, each event with its own completion (one after another).
            res_code = self._watch_codes.get(resource)
            if res_code is None:
                res_code = self._watch_codes[resource] = m.resources.code(resource)
            m.record_watch(end, end - self.env.now, res_code, n_events, cost)

    # ------------------------------------------------------------------ admission

    def _offer(self, lvl: _Level, r: _Req) -> None:
        free = lvl.seats - lvl.in_use
        n = len(r)
        if free > 0 and lvl.queued == 0:
            if n <= free:
                self._admit(lvl, r)
                return
            head, r = r.split(free)
            self._admit(lvl, head)
            n = len(r)
        if not lvl.queues:
            self._reject(lvl, r)
            return
        hand = lvl.hand(r.flow)
        # Members arrive one after another: each joins the shortest queue of the flow's hand.
        while True:
            q = min(hand, key=lvl.qlen.__getitem__)
            space = lvl.queue_limit - lvl.qlen[q]
            if space <= 0:
                self._reject(lvl, r)
                return
            # Fill the shortest queue up to the length of the next-shortest (or its limit).
            others = [lvl.qlen[h] for h in hand if h != q]
            level_to = min(others) if others else lvl.queue_limit
            take = min(len(r), space, max(1, level_to - lvl.qlen[q]))
            if take < len(r):
                part, r = r.split(take)
            else:
                part, r = r, None
            lvl.queues[q].append(part)
            lvl.qlen[q] += len(part)
            lvl.queued += len(part)
            if r is None:
                return

    def _reject(self, lvl: _Level, r: _Req) -> None:
        lvl.rejected += len(r)
        self._finish(r, np.full(len(r), lvl.reject_reason, dtype=np.uint8), None)

    def _admit(self, lvl: _Level, r: _Req) -> None:
        lvl.advance(self.env.now)
        lvl.in_use += len(r)
        lvl.admitted += len(r)
        self._start(r)

    def _release(self, level: str, k: int) -> None:
        lvl = self.levels.get(level)
        if lvl is None:
            return
        lvl.advance(self.env.now)
        lvl.in_use -= k
        # Dispatch queued requests round robin over non-empty queues while seats are free.
        nq = len(lvl.queues)
        while lvl.queued and lvl.in_use < lvl.seats:
            for _ in range(nq):
                lvl._rr = (lvl._rr + 1) % nq
                if lvl.qlen[lvl._rr]:
                    break
            q = lvl._rr
            head = lvl.queues[q][0]
            free = lvl.seats - lvl.in_use
            if len(head) > free:
                head, rest = head.split(free)
                lvl.queues[q][0] = rest
            else:
                lvl.queues[q].popleft()
            lvl.qlen[q] -= len(head)
            lvl.queued -= len(head)
            self._admit(lvl, head)

    # ------------------------------------------------------------------ execution

    def _start(self, r: _Req) -> None:
        n = len(r)
        if r.mixed is not None or r.verb in MUTATING:
            # Decode the body, encode for storage: the seat is held meanwhile.
            # np.add.reduce: ndarray.sum without its Python wrapper (one call per group).
            r.total = total = float(np.add.reduce(r.sizes))
            mean = total / n if n else 0.0
            self.cpu_s += n * self._req_s + 2 * total * self._ser_s
            call_later(self.env, self._req_s + 2 * mean * self._ser_s, self._to_etcd, r)
        elif r.verb == "get":
            mean = float(r.sizes.mean()) if n else 0.0
            self.cpu_s += n * self._req_s + float(r.sizes.sum()) * self._ser_s
            cpu = self._req_s + mean * self._ser_s
            for i in range(n):
                self.etcd.submit_range(
                    1,
                    float(r.sizes[i]),
                    True,
                    lambda _lat, i=i: call_later(self.env, cpu, self._done_one, r, i),
                )
        else:
            self._list(r)

    def _to_etcd(self, r: _Req) -> None:
        if r.mixed is not None:
            self._to_etcd_mixed(r)
            return
        if r.keys is None:
            raise ValueError(f"{r.verb} {r.resource}: keys are required for mutating requests")

        kind = r.store_kind
        t_etcd = self.env.now

        def done(lat, reasons, members):
            sub = r if members is None else _sub(r, members)
            self._finish(sub, reasons, r.level, None, lat + (t_etcd - r.t0))
            ok = reasons == 0
            k = int(np.count_nonzero(ok))
            on_watch = r.on_watch
            if k and (kind in self._dispatchers or on_watch is not None):
                notify = None
                if on_watch is not None:
                    idx = sub.members if sub.members is not None else np.arange(len(sub.sizes))
                    ok_members = idx[ok]
                    notify = lambda: on_watch(ok_members)  # noqa: E731
                self._fanout(kind, k, float(sub.sizes[ok].sum()), notify)

        ratio = self.p.storage_size_ratio
        sizes = r.sizes if ratio == 1.0 else r.sizes * ratio
        self.etcd.submit_writes(r.store_op, kind, r.keys, sizes, done)

    def _to_etcd_mixed(self, r: _Req) -> None:
        names = self.etcd.kind_names
        t_etcd = self.env.now

        def done(lat, reasons, members):
            sub = r if members is None else _sub(r, members)
            # count_nonzero: far cheaper than ndarray.any on a group's few members.
            bad = np.count_nonzero(reasons) > 0
            self._finish(sub, reasons, r.level, bad, lat + (t_etcd - r.t0))
            kinds, idx, sizes = sub.mixed[4], sub.members, sub.sizes
            if bad:
                ok = reasons == 0
                if not ok.any():
                    return
                idx = np.flatnonzero(ok) if idx is None else idx[ok]
                kinds, sizes = kinds[ok], sizes[ok]
            on_watch = r.on_watch
            codes = kinds.tolist()
            if codes.count(codes[0]) == len(codes):
                groups = [(codes[0], None)]
            else:  # a few kinds, in code order
                groups = [(c, kinds == c) for c in sorted(set(codes))]
            for c, sel in groups:
                kind = names[c]
                if kind not in self._dispatchers and on_watch is None:
                    continue
                if sel is None:
                    g_n = len(codes)
                    g_bytes = r.total if sub is r and not bad else float(sizes.sum())
                else:
                    g_bytes = float(sizes[sel].sum())
                    g_n = int(np.count_nonzero(sel))
                notify = None
                if on_watch is not None:
                    if idx is None:
                        idx = np.arange(len(codes))
                    g_idx = idx if sel is None else idx[sel]
                    notify = lambda g_idx=g_idx: on_watch(g_idx)  # noqa: E731
                self._fanout(kind, g_n, g_bytes, notify)

        ratio = self.p.storage_size_ratio
        sizes = r.sizes if ratio == 1.0 else r.sizes * ratio
        self.etcd.submit_writes(r.mixed[3], r.mixed[4], r.keys, sizes, done)

    def _list(self, r: _Req) -> None:
        p = self.p
        total_n = self.etcd.count(r.resource)
        total_b = self.etcd.bytes_of(r.resource)
        mean_obj = total_b / total_n if total_n else 0.0
        in_scope = total_n if r.in_scope is None else min(r.in_scope, total_n)
        matching = in_scope if r.matching is None else min(r.matching, in_scope)
        in_b, match_b = in_scope * mean_obj, matching * mean_obj
        if p.watch_cache_enabled and p.list_from_cache:
            scanned = matching if r.indexed else in_scope
            cpu = (
                self._req_s + scanned * p.cache_us_per_object_scanned / 1e6 + match_b * self._ser_s
            )
            # Consistent read from cache: one linearizable read of the current revision.
            etcd_objects, etcd_bytes = 0, 0.0
        else:
            # etcd returns every object in scope; all are decoded, then filtered, then the
            # matching ones encoded.
            cpu = (
                self._req_s
                + in_b * self._ser_s
                + in_scope * p.cache_us_per_object_scanned / 1e6
                + match_b * self._ser_s
            )
            etcd_objects, etcd_bytes = in_scope, in_b
        n = len(r)
        self.cpu_s += n * cpu
        for i in range(n):
            self.etcd.submit_range(
                etcd_objects,
                etcd_bytes,
                True,
                lambda _lat, i=i: call_later(self.env, cpu, self._done_one, r, i),
            )

    def _done_one(self, r: _Req, i: int) -> None:
        self._finish(_sub(r, np.array([i])), np.zeros(1, dtype=np.uint8), r.level)

    def _finish(
        self,
        r: _Req,
        reasons: np.ndarray,
        level: str | None,
        bad: bool | None = None,
        lat: np.ndarray | None = None,
    ) -> None:
        """Members of ``r`` are done: release their seats, record, report. ``bad``: whether
        any member failed (``reasons.any()``, computed when None); ``lat``: each member's
        latency (s) when it is not the time since the group arrived (etcd answers the
        members of a batch one by one)."""
        n = len(r)
        if bad is None:
            bad = np.count_nonzero(reasons) > 0
        if level is not None:
            self._release(level, n)
        now = self.env.now
        if lat is None:
            lat = np.full(n, now - r.t0)
        if self.metrics is not None and r.mixed is not None:
            verbs = r.mixed[0]
            status = _OK_STATUS[verbs]
            if bad:
                status = np.where(reasons == 0, status, STATUS[reasons])
                reason_codes = self._reason_codes[reasons]
            else:
                reason_codes = self._ok_reason
            self.metrics.record_coded(now, lat, verbs, r.mixed[1], r.mixed[2], status, reason_codes)
        elif self.metrics is not None and not bad:
            self.metrics.record_requests(
                now, lat, r.verb, r.resource, r.scope, 201 if r.verb == "create" else 200, 0
            )
        elif self.metrics is not None:
            status = STATUS[reasons]
            if r.verb == "create":
                status = np.where(reasons == 0, 201, status)
            self.metrics.record_requests(
                now, lat, r.verb, r.resource, r.scope, status, self._reason_codes[reasons]
            )
        if r.on_done is not None:
            r.on_done(lat, reasons, r.members)


def _sub(r: _Req, members: np.ndarray) -> _Req:
    """The members ``members`` (indices into ``r``) of a group, keeping original indices."""
    s = _Req()
    for name in _Req.__slots__:
        setattr(s, name, getattr(r, name))
    s.sizes = r.sizes[members]
    if r.keys is None or isinstance(r.keys, np.ndarray):
        s.keys = None if r.keys is None else r.keys[members]
    else:
        s.keys = [r.keys[i] for i in members.tolist()]
    if r.mixed is not None:
        s.mixed = tuple(c[members] for c in r.mixed)
    s.members = members if r.members is None else r.members[members]
    return s
