"""etcd as a SimPy component: a batching Raft leader, an MVCC store and a bbolt backend.

Mechanisms (sources in :class:`~tracesim.models.params.EtcdParams` and docs/models.md):

- **Leader batching.** Writes that arrive while a batch is in flight form the next batch. A batch
  costs one replication round + WAL fdatasync (``peer_rtt_ms + fsync_ms``) plus, per request,
  ``apply_us_per_request`` and ``ns_per_byte`` per byte. Throughput therefore rises with
  concurrency until the per-request work saturates the leader (the published 583 writes/s at
  1 client vs 44,341/s at 1,000 clients).
- **Pipelined apply.** With ``apply_pipelined`` the leader is two serial stages, as in etcd's
  raftNode.start() (committed entries go to the apply goroutine before the next entries are
  saved to the WAL): a WAL stage (``peer_rtt_ms + fsync_ms``; it takes every pending write as
  its batch whenever it is free) and an apply stage (the batch's apply work, backend commits
  and maintenance). A batch is applied once its fsync is done and the previous batch's apply
  is done; the next batch's fsync starts as soon as the previous fsync ends. Responses still
  leave after the batch's apply (+ ``client_rtt_ms``). Saturated throughput is then
  ``batch / max(fsync, apply)`` instead of ``batch / (fsync + apply)``, and a write arriving
  while another applies does not wait for that apply. Off (the default): one serial loop.
  ``wal_ns_per_byte`` (default 0) puts per-byte work on the WAL stage (encoding and writing
  the entries before the fdatasync; in the serial loop it just adds to the batch), and
  ``write_overhead_us`` (default 0) delays every write's response without occupying the
  leader (gateway and server handling off the leader's loop).
- **Service-time spread.** With ``fsync_cv_ratio`` / ``batch_apply_cv_ratio`` above 0, each
  batch's fsync (and each backend commit's ``backend_commit_ms``) and each batch's apply work
  are multiplied by lognormal draws with mean 1 and those coefficients of variation, from the
  ``rng`` given to the model (a disk's fsync jitter; GC pauses and CPU preemption that stall
  the whole leader loop). Means and throughputs keep their values; tails grow. Both 0 (the
  default): nothing is drawn, the model is deterministic as before. ``byte_cv_ratio`` >= 0
  gives the per-byte part of the apply work its own spread, independent per request (a
  batch of k like requests: CV / sqrt(k), one draw per batch); negative (the default), it
  takes the batch's apply multiplier. Apply stalls (``stall_per_s`` > 0): a batch whose
  apply work takes T also meets a Poisson number (mean ``stall_per_s`` x T) of exponential
  stalls (mean ``stall_ms``) from a stream of their own; their time does not scale with the
  batch's work, so they average out over large batches and give small ones a long tail.
- **Backend commit.** Applied writes sit in bbolt's batch transaction, committed every
  ``backend_commit_interval_ms`` or ``backend_commit_max_ops`` writes. A commit holds the
  backend lock (the leader cannot apply meanwhile) for ``backend_commit_ms`` (plus
  ``backend_commit_ns_per_byte`` per byte written since the previous commit) plus the freelist's
  page-allocation cost: ``array`` scans the free-page-id array for each multi-page allocation
  and on each release/write of the freelist (cost grows with the number of free pages);
  ``hashmap`` is O(1) per allocation.
- **Limits.** Requests larger than ``max_request_bytes`` are rejected before proposal
  (``etcd-request-too-large``). A put that would take the DB file past ``quota_bytes`` raises the
  NOSPACE alarm; while it is raised every put is rejected (``etcd-nospace``); deletes and reads
  still work. :meth:`EtcdModel.disarm` clears it once the file is below quota again.
- **MVCC.** Every successful write takes a new global revision. An update or delete leaves the
  previous revision as history (plus a tombstone for a delete) until a compaction; compaction
  frees those bytes inside the file but does not shrink the file; only :meth:`EtcdModel.defrag`
  does, and defrag blocks the member (writes and reads wait).
- **Reads.** Served by ``read_concurrency`` workers (``read_sharing``: a FIFO queue,
  :class:`~tracesim.models.queueing.FcfsServer`, or processor sharing, :class:`PsServer`)
  at ``range_base_us + range_us_per_object * scanned + range_ns_per_byte * returned``, its
  fixed part ``range_base_us`` (and ``read_index_us``) times a lognormal multiplier (mean 1,
  CV ``read_cv_ratio``; 0 = none drawn) from a stream spawned from ``rng`` (so reads do not
  shift the write path's draws); a linearizable read first waits one read-index round
  (``peer_rtt_ms``) and costs ``read_index_us`` more on the read workers, a serializable one
  not. A read that finds at least ``read_delay_min_reads`` reads on the workers (itself
  included) is, with probability ``read_delay_ratio``, answered ``read_delay_ms`` late
  (its thread waits for a core when more threads are runnable than there are cores; the
  wait does not hold a worker), from a stream of its own.
  With ``read_front_us`` or ``read_wakeup_us`` above 0 every read first passes a serial
  stage (:class:`WakeupServer`: one worker that takes up all waiting reads per wakeup,
  ``read_wakeup_us`` per wakeup plus ``read_front_us`` per read), a client event loop /
  gateway whose cost per read falls as reads arrive together; 0 (the default): no such
  stage.
- **A shared CPU pool** (``cpu_cores`` > 0; what ``tracesim calibrate etcd`` fits when etcd
  runs on the calibration's machine): the write path's CPU work runs
  as jobs on a processor-sharing pool of ``cpu_cores`` cores (:class:`PsServer`) instead of
  as plain delays: each write's front work (``front_cpu_us`` + ``front_cpu_ns_per_byte``,
  before it joins the next batch; writes in parallel), the WAL stage's raft CPU after its
  fdatasync (``wal_cpu_us_per_batch`` + ``wal_cpu_us_per_entry`` per entry; the stage waits
  for it) and the apply work (the apply stage, or the serial leader, waits for it). The
  fdatasync, the peer round and the maintenance stay delays. Jobs in flight share the
  cores, so every stage slows as the pool fills; each job's work is multiplied by a
  lognormal draw (mean 1, CV ``cpu_cv_ratio``) from a stream of its own, and the whole pool
  can pause (``cpu_pause_per_s``, ``cpu_pause_ms``; :meth:`PsServer.set_pauses`). After
  its fdatasync raft's goroutine can wait for a core behind the front work still on the
  pool (``fsync_wakeup_front_ratio`` x that work, at most ``fsync_wakeup_max_ms``, added to
  the WAL stage's job: Go queues a goroutine leaving a system call behind the runnable
  ones when no processor is idle). A calibration's replay also runs its client on the
  pool (:mod:`tracesim.calibrate.validate`). 0 (the default): no pool, the model as above.

The hot path is callback-driven (no SimPy process per request): :meth:`EtcdModel.submit_writes`
takes a whole group of writes with numpy arrays and reports through one callback. For SimPy
processes there are :meth:`EtcdModel.write` and :meth:`EtcdModel.range`, which return events.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from itertools import accumulate
from typing import Any, NamedTuple

import numpy as np
import simpy

from .params import EtcdParams
from .queueing import FcfsServer
from .timers import call_later

CREATE, UPDATE, DELETE = 0, 1, 2
OPS = {"create": CREATE, "update": UPDATE, "patch": UPDATE, "delete": DELETE}

#: Reason codes reported per write (index into REASONS).
OK, TOO_LARGE, NOSPACE, EXISTS, NOT_FOUND = 0, 1, 2, 3, 4
REASONS = ("ok", "etcd-request-too-large", "etcd-nospace", "already-exists", "not-found")

#: ``on_done(latency_s, reasons, members)``: latencies (s) and reason codes of the members
#: ``members`` (an index array into the submitted group, or None for all of them).
WritesDone = Callable[[np.ndarray, np.ndarray, np.ndarray | None], Any]


class EtcdResult(NamedTuple):
    """Outcome of one request: latency in seconds and ``"ok"`` or the rejection reason."""

    latency_s: float
    reason: str

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def _remap(on_done: WritesDone, members: np.ndarray) -> WritesDone:
    """``on_done`` for a sub-group: translate its member indices back to the original group."""

    def remapped(lat: np.ndarray, reasons: np.ndarray, m: np.ndarray | None) -> None:
        on_done(lat, reasons, members if m is None else members[m])

    return remapped


class UniformRows:
    """Rows of ``width`` uniforms on [0, 1) from ``rng``, drawn 1,024 rows per Generator call:
    a fixed number of draws per use (common random numbers) at the cost of one numpy call
    per block, not per row."""

    __slots__ = ("_i", "_rng", "_rows", "_width")

    def __init__(self, rng: np.random.Generator, width: int) -> None:
        self._rng = rng
        self._width = width
        self._rows = np.zeros((0, width))
        self._i = 0

    def next(self) -> np.ndarray:
        """The next row (a view: read it before the next call)."""
        if self._i >= len(self._rows):
            self._rows = self._rng.random((1024, self._width))
            self._i = 0
        self._i += 1
        return self._rows[self._i - 1]


class _Writes:
    """A group of writes to one kind travelling together (one member = one etcd request)."""

    __slots__ = ("keys", "kind", "on_done", "ops", "sizes", "t0", "total_bytes")

    def __init__(self, kind, ops, keys, sizes, t0, on_done):
        self.kind = kind
        self.ops = ops  # int (all members) or np.ndarray of op codes
        self.keys = keys
        self.sizes = sizes  # np.ndarray float64, bytes
        self.t0 = t0  # submit time (s), scalar
        self.on_done = on_done
        self.total_bytes = float(sizes.sum())


class PsServer:
    """Processor sharing over ``capacity`` cores: ``n`` jobs in progress each progress at rate
    ``min(1, capacity / n)`` (no queue; a job's latency is its work stretched by the sharing).

    Callback-driven like :class:`~tracesim.models.queueing.FcfsServer` (same ``submit``,
    ``busy_area_s``, ``queue_len``, ``capacity``): a virtual clock ``V`` advances at the
    per-job rate; a job that arrives at ``V = v`` with work ``w`` finishes when ``V`` reaches
    ``v + w``, so one heap of finish tags and one pending timeout serve all jobs.
    """

    def __init__(self, env: simpy.Environment, capacity: int = 1, name: str = "") -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.env = env
        self.capacity = capacity
        self.name = name
        self.completed = 0
        self._heap: list[tuple[float, int, Callable[[float], Any] | None]] = []
        self._seq = 0
        self._v = 0.0  # work (s) done per job since the start
        self._t = env.now  # time _v and _busy_area were last advanced to
        self._busy_area = 0.0
        self._gen = 0  # invalidates timeouts scheduled before the last arrival/departure
        self._paused = False
        self._pauses: tuple[float, float, UniformRows] | None = None
        self._pause_pending = False

    def set_pauses(self, rate_per_s: float, mean_s: float, rng: np.random.Generator) -> None:
        """Pause the whole server at Poisson times (``rate_per_s`` while it has work; idle
        time draws none, which for a memoryless process changes no job's latency) for
        exponential durations (mean ``mean_s``): no job progresses during a pause. Two
        uniforms from ``rng`` per pause (:class:`UniformRows`: common random numbers)."""
        self._pauses = (rate_per_s, mean_s, UniformRows(rng, 2))
        if self._heap:
            self._arm_pause()

    def _arm_pause(self) -> None:
        if self._pause_pending or self._pauses is None:
            return
        self._pause_pending = True
        u = self._pauses[2].next()
        call_later(self.env, -math.log1p(-float(u[0])) / self._pauses[0], self._pause, u[1])

    def _pause(self, u: float) -> None:
        self._pause_pending = False
        if not self._heap:  # idle: the next job arms the next pause
            return
        assert self._pauses is not None
        self._advance()
        self._paused = True
        self._schedule()
        call_later(self.env, -math.log1p(-float(u)) * self._pauses[1], self._resume)

    def _resume(self) -> None:
        self._advance()
        self._paused = False
        self._schedule()
        self._arm_pause()

    @property
    def in_service(self) -> int:
        return len(self._heap)

    @property
    def queue_len(self) -> int:
        """Jobs beyond the cores (sharing them), the analogue of a FIFO queue's waiting jobs."""
        return max(0, len(self._heap) - self.capacity)

    def _rate(self) -> float:
        n = len(self._heap)
        return min(1.0, self.capacity / n) if n and not self._paused else 0.0

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._t
        if dt > 0:
            self._v += dt * self._rate()
            if not self._paused:
                self._busy_area += dt * min(len(self._heap), self.capacity)
            self._t = now

    def busy_area_s(self) -> float:
        """Core-seconds of work done since the start (divide by capacity x span: utilisation)."""
        self._advance()
        return self._busy_area

    def submit(self, service_s: float, on_done: Callable[[float], Any] | None = None) -> float:
        """A job needing ``service_s`` s of one core; ``on_done(0.0)`` when it is done (a
        processor-sharing job never waits, it only runs slower). Returns its finish tag: the
        job is done when :meth:`work_done_s` reaches it."""
        self._advance()
        self._seq += 1
        tag = self._v + service_s
        heapq.heappush(self._heap, (tag, self._seq, on_done))
        self._schedule()
        if self._pauses is not None:
            self._arm_pause()
        return tag

    def work_done_s(self) -> float:
        """Work (s of one core) each job present since the start has received: a job is done
        when this reaches its tag (:meth:`submit`)."""
        self._advance()
        return self._v

    def _schedule(self) -> None:
        self._gen += 1
        if not self._heap or self._paused:
            return
        gen = self._gen
        dt = max(0.0, (self._heap[0][0] - self._v) / self._rate())
        call_later(self.env, dt, self._finish, gen)

    def _finish(self, gen: int) -> None:
        if gen != self._gen:
            return
        self._advance()
        done = []
        # Jobs whose tag is reached (within rounding) finish together.
        while self._heap and self._heap[0][0] <= self._v + 1e-12:
            done.append(heapq.heappop(self._heap)[2])
        self.completed += len(done)
        self._schedule()
        for fn in done:
            if fn is not None:
                fn(0.0)


class WakeupServer:
    """A serial stage (one worker) that takes up every job waiting for it at once.

    When idle and jobs are waiting, the worker wakes up (``per_wakeup_s``, shared by the jobs
    taken), then serves the jobs in arrival order, each for its own ``service_s``; jobs that arrive
    meanwhile wait for the next wakeup. An event loop or a netpoller that handles every ready
    request per wakeup behaves like this: its cost per request falls as more arrive together.
    With ``per_wakeup_s`` 0 it is a FIFO single server. Same interface as
    :class:`~tracesim.models.queueing.FcfsServer` (``submit(service_s, on_done)``, where
    ``service_s`` is the job's own work, ``busy_area_s``, ``queue_len``, ``capacity``).
    """

    def __init__(self, env: simpy.Environment, per_wakeup_s: float, name: str = "") -> None:
        self.env = env
        self.per_wakeup_s = per_wakeup_s
        self.name = name
        self.capacity = 1
        self.completed = 0
        self.wakeups = 0
        self._waiting: list[tuple[float, float, Callable[[float], Any] | None]] = []
        self._busy = False
        self._busy_area = 0.0
        self._busy_since = 0.0

    @property
    def queue_len(self) -> int:
        """Jobs waiting for the next wakeup."""
        return len(self._waiting)

    def busy_area_s(self) -> float:
        """Seconds the worker has been busy since the start."""
        if self._busy:
            return self._busy_area + self.env.now - self._busy_since
        return self._busy_area

    def submit(self, service_s: float, on_done: Callable[[float], Any] | None = None) -> None:
        """A job needing ``service_s`` s of the worker; ``on_done(wait_s)`` when it is served
        (``wait_s``: arrival to the start of its own service)."""
        self._waiting.append((self.env.now, service_s, on_done))
        if not self._busy:
            self._wake()

    def _wake(self) -> None:
        jobs, self._waiting = self._waiting, []
        now = self.env.now
        self._busy = True
        self._busy_since = now
        self.wakeups += 1
        t = self.per_wakeup_s
        for t_arrival, service_s, on_done in jobs:
            start = t
            t += service_s
            if on_done is not None:
                call_later(self.env, t, on_done, now + start - t_arrival)
        call_later(self.env, t, self._end, len(jobs))

    def _end(self, n: int) -> None:
        self.completed += n
        self._busy_area += self.env.now - self._busy_since
        self._busy = False
        if self._waiting:
            self._wake()


class EtcdModel:
    """One etcd cluster seen through its leader. See the module docstring for the mechanisms.

    What a replay reads: :meth:`busy_area_s` integrates the time the leader is busy (serial:
    its one loop; pipelined: the time either stage, WAL or apply, is busy, so utilisation 1
    means the leader never idles, not that both stages are saturated); :attr:`queue_len`
    counts the writes waiting for the leader (pipelined: those waiting for a WAL write plus
    the fsynced ones waiting for the apply stage); ``batches`` counts batches (one WAL write
    and one apply each) in both modes.
    """

    def __init__(
        self,
        env: simpy.Environment,
        params: EtcdParams | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.env = env
        self.p = p = params or EtcdParams()
        # Service-time spread (``fsync_cv_ratio``, ``batch_apply_cv_ratio``): lognormal
        # multipliers with mean 1, one pair per batch (plus one per backend commit), from
        # ``rng`` (seed 0 if not given, so a model is deterministic either way). With both
        # CVs 0 nothing is drawn.
        self._sigma_fsync = math.sqrt(math.log1p(p.fsync_cv_ratio**2))
        self._sigma_apply = math.sqrt(math.log1p(p.batch_apply_cv_ratio**2))
        # ``byte_cv_ratio`` >= 0: the per-byte part of the apply work gets its own multiplier
        # (a third draw per batch); negative: it shares the apply multiplier.
        byte_cv = p.byte_cv_ratio
        self._sigma_bytes = math.sqrt(math.log1p(byte_cv**2)) if byte_cv >= 0 else None
        self._spread = p.fsync_cv_ratio > 0 or p.batch_apply_cv_ratio > 0 or byte_cv > 0
        self._rng = rng if rng is not None else np.random.default_rng(0)
        self._z = np.zeros(0)
        self._zi = 0
        # Apply stalls (``stall_per_s``, ``stall_ms``): their own stream, spawned after the
        # reads' (below), so the other draws do not move when stalls are on.
        self._stall_s = p.stall_ms / 1e3 if p.stall_per_s > 0 else 0.0
        self.revision = 0
        self.compacted_revision = 0
        self.alarm_nospace = False
        # MVCC state: per kind key -> current value size; per kind live bytes.
        self._store: dict[str, dict[Hashable, float]] = {}
        self._live_bytes: dict[str, float] = {}
        # Cumulative superseded bytes (history) at each revision since the last compaction:
        # _hist_cum[i] = history bytes created by revisions <= _hist_base + i.
        self._hist_cum = np.zeros(1024)
        self._hist_n = 1  # entry 0 = value at _hist_base (= compacted_revision)
        self._hist_base = 0
        self._file_bytes = 0.0
        self._page_f = float(p.page_size_bytes)
        self._overhead = float(p.key_overhead_bytes)
        # Leader.
        self._pending: list[_Writes] = []
        self._maint: deque[tuple[float, Callable[[], Any]]] = deque()
        self._busy = False
        self._defragging = False
        self._deferred_reads: list[Callable[[], Any]] = []
        self._uncommitted_ops = 0
        self._uncommitted_bytes = 0.0
        self._uncommitted_multipage = 0
        self._last_commit_s = env.now
        self._commit_timer = False
        self._busy_area = 0.0
        self._busy_since = 0.0
        # Pipelined leader (``apply_pipelined``): a WAL stage and an apply stage, each serial;
        # ``_busy`` is then "either stage busy", and fsynced batches wait in ``_applyq`` with
        # their apply time (s) for the apply stage.
        self._pipelined = bool(p.apply_pipelined)
        self._wal_busy = False
        self._apply_busy = False
        self._applyq: deque[tuple[list[_Writes], float]] = deque()
        # Counters.
        self.writes_ok = 0
        self.writes_rejected = 0
        self.bytes_written = 0.0  # value bytes of successful writes (deletes: 0)
        self.batches = 0
        self.commits = 0
        self.commit_time_s = 0.0
        self.reads: FcfsServer | PsServer = (
            PsServer(env, p.read_concurrency, name="etcd-read")
            if p.read_sharing == "ps"
            else FcfsServer(env, p.read_concurrency, name="etcd-read")
        )
        self._sigma_read = math.sqrt(math.log1p(p.read_cv_ratio**2))
        #: The serial stage every read passes first (``read_front_us`` > 0), or None.
        front_us = p.read_front_us
        wakeup_us = p.read_wakeup_us
        self.read_front: WakeupServer | None = (
            WakeupServer(env, wakeup_us / 1e6, name="etcd-read-front")
            if front_us > 0 or wakeup_us > 0
            else None
        )
        self._front_s = front_us / 1e6
        self._read_index_s = p.read_index_us / 1e6
        # Reads draw from their own stream (spawned from ``rng``) so that adding reads does not
        # shift the write path's draws (common random numbers across fits and scenarios).
        self._read_rng = self._rng.spawn(1)[0] if p.read_cv_ratio > 0 else None
        self._stall_u = (
            UniformRows(self._rng.spawn(1)[0], 1 + self._MAX_STALLS) if self._stall_s > 0 else None
        )
        #: The CPU pool the write path's CPU work runs on (``cpu_cores`` > 0), or None.
        self.cpu: PsServer | None = (
            PsServer(env, p.cpu_cores, name="etcd-cpu") if p.cpu_cores else None
        )
        #: The latest finish tag of the puts' front work on the pool (fsync_wakeup_*).
        self._front_tag = 0.0
        self._sigma_cpu = math.sqrt(math.log1p(p.cpu_cv_ratio**2))
        # Spawned after the others, and only when used, so that no other stream moves.
        self._cpu_rng = self._rng.spawn(1)[0] if self.cpu is not None and p.cpu_cv_ratio else None
        if self.cpu is not None and p.cpu_pause_per_s > 0 and p.cpu_pause_ms > 0:
            self.cpu.set_pauses(p.cpu_pause_per_s, p.cpu_pause_ms / 1e3, self._rng.spawn(1)[0])
        self._delay_s = p.read_delay_ms / 1e3
        # Its own stream, spawned last and only when used, so that no other stream moves.
        self._delay_u = (
            UniformRows(self._rng.spawn(1)[0], 1)
            if p.read_delay_ratio > 0 and self._delay_s > 0
            else None
        )
        self._reads_at_workers = 0  # counted only while delays are on
        self._front_cpu_s = p.front_cpu_us / 1e6
        self._front_cpu_s_per_byte = p.front_cpu_ns_per_byte / 1e9
        self._rz = np.zeros(0)
        self._rzi = 0
        self._batch_fixed_s = (p.peer_rtt_ms + p.fsync_ms) / 1e3
        self._rtt_s = p.client_rtt_ms / 1e3
        # A write's response leaves after its batch's apply, the client RTT and the write
        # path's work off the leader (``write_overhead_us``).
        self._reply_s = self._rtt_s + p.write_overhead_us / 1e6
        self._wal_s_per_byte = p.wal_ns_per_byte / 1e9
        self._commit_s_per_byte = p.backend_commit_ns_per_byte / 1e9
        #: Kind names by code, for groups that mix kinds (``submit_writes`` with code arrays).
        self.kind_names: list[str] = []
        self._kind_codes: dict[str, int] = {}

    def kind_code(self, kind: str) -> int:
        """The code of ``kind`` for mixed-kind groups (new kinds get the next code)."""
        c = self._kind_codes.get(kind)
        if c is None:
            c = self._kind_codes[kind] = len(self.kind_names)
            self.kind_names.append(kind)
        return c

    # ------------------------------------------------------------------ state queries

    def count(self, kind: str) -> int:
        """Live objects of ``kind``."""
        return len(self._store.get(kind, ()))

    def bytes_of(self, kind: str) -> float:
        """Live value bytes of ``kind``."""
        return self._live_bytes.get(kind, 0.0)

    def object_counts(self) -> dict[str, int]:
        """Live objects per kind."""
        return {k: len(v) for k, v in self._store.items()}

    @property
    def history_bytes(self) -> float:
        """Bytes of superseded revisions and tombstones not yet compacted."""
        return float(self._hist_cum[self._hist_n - 1] - self._hist_cum[0])

    @property
    def data_bytes(self) -> float:
        """Bytes of the bbolt file in use: live + history, with key and B+tree overhead."""
        n = sum(len(v) for v in self._store.values())
        live = sum(self._live_bytes.values()) + n * self._overhead
        return (live + self.history_bytes) * self.p.btree_overhead_ratio

    @property
    def db_size_bytes(self) -> float:
        """Size of the bbolt file: grows when data outgrows it, shrinks only by defrag."""
        return self._file_bytes

    @property
    def free_pages(self) -> int:
        """Pages free inside the file (what the bbolt freelist tracks)."""
        return int(max(0.0, self._file_bytes - self.data_bytes) // self._page_f)

    def busy_area_s(self) -> float:
        """Seconds the leader/backend has been busy since the start (utilisation integral)."""
        if self._busy:
            return self._busy_area + self.env.now - self._busy_since
        return self._busy_area

    @property
    def queue_len(self) -> int:
        """Write requests waiting for the leader (pipelined: waiting for either stage, i.e.
        not yet in a WAL write, or fsynced and waiting for the apply stage)."""
        n = sum(len(w.sizes) for w in self._pending)
        for batch, _apply_s in self._applyq:
            n += sum(len(w.sizes) for w in batch)
        return n

    def register_metrics(self, metrics: Any, prefix: str = "etcd") -> None:
        """Add this member's gauges and utilisations to a :class:`~tracesim.sim.metrics.Metrics`."""
        metrics.add_utilisation(f"{prefix}.leader_utilisation", self.busy_area_s, 1)
        metrics.add_utilisation(
            f"{prefix}.read_utilisation", self.reads.busy_area_s, self.reads.capacity
        )
        if self.read_front is not None:
            front = self.read_front
            metrics.add_utilisation(f"{prefix}.read_front_utilisation", front.busy_area_s, 1)
        if self.cpu is not None:
            cpu = self.cpu
            metrics.add_utilisation(f"{prefix}.cpu_utilisation", cpu.busy_area_s, cpu.capacity)
        metrics.add_gauge(f"{prefix}.write_queue", lambda: self.queue_len)
        metrics.add_gauge(f"{prefix}.read_queue", lambda: self.reads.queue_len)
        metrics.add_gauge(f"{prefix}.db_size_bytes", lambda: self._file_bytes)
        metrics.add_gauge(f"{prefix}.db_in_use_bytes", lambda: self.data_bytes)
        metrics.add_gauge(f"{prefix}.revision", lambda: self.revision)
        metrics.add_gauge(f"{prefix}.objects", self.object_counts)

    # ------------------------------------------------------------------ setup

    def preload(self, kind: str, keys: Sequence[Hashable], sizes_bytes: Any) -> None:
        """Objects that exist before the simulation starts (one revision each, no time cost)."""
        sizes = np.broadcast_to(np.asarray(sizes_bytes, dtype=float), (len(keys),))
        store = self._store.setdefault(kind, {})
        before = len(store)
        store.update(zip(keys, sizes.tolist(), strict=True))
        if len(store) != before + len(keys):
            raise ValueError(f"preload of {kind}: keys already exist")
        self._live_bytes[kind] = self._live_bytes.get(kind, 0.0) + float(sizes.sum())
        self._append_history(np.zeros(len(keys)))
        self.revision += len(keys)
        self._grow_file()

    # ------------------------------------------------------------------ writes

    def write(self, op: str, kind: str, key: Hashable, size_bytes: float) -> simpy.Event:
        """One write; the event's value is an :class:`EtcdResult` (after the client RTT)."""
        ev = self.env.event()

        def done(lat, reasons, _members):
            ev.succeed(EtcdResult(float(lat[0]), REASONS[int(reasons[0])]))

        self.submit_writes(op, kind, [key], np.array([float(size_bytes)]), done)
        return ev

    def submit_writes(
        self,
        op: str | np.ndarray,
        kind: str | np.ndarray,
        keys: Sequence[Hashable],
        sizes_bytes: np.ndarray,
        on_done: WritesDone | None = None,
    ) -> None:
        """A group of writes to ``kind`` arriving now; ``on_done`` reports each member.

        ``op`` is ``"create"``, ``"update"``/``"patch"`` or ``"delete"`` for all members, or an
        array of op codes (:data:`CREATE`, :data:`UPDATE`, :data:`DELETE`); ``kind`` a kind name
        for all members, or an array of codes from :meth:`kind_code` (a group mixing kinds is
        applied kind by kind, in member order within each kind). ``on_done`` may be called
        more than once (rejected members first, with their ``members`` index).
        """
        p = self.p
        ops = OPS[op] if isinstance(op, str) else np.asarray(op, dtype=np.int8)
        sizes = np.asarray(sizes_bytes, dtype=float)
        n = len(sizes)
        # Checked before proposal: request size, then quota (puts only).
        if n:
            smax = float(sizes.max())
            if smax <= p.max_request_bytes and (
                (not self.alarm_nospace and self._file_bytes + smax < p.quota_bytes)
                or (isinstance(ops, int) and ops == DELETE)
            ):
                self._propose(_Writes(kind, ops, keys, sizes, self.env.now, on_done))
                return
        reasons = np.zeros(n, dtype=np.uint8)
        reasons[sizes > p.max_request_bytes] = TOO_LARGE
        is_put = (ops != DELETE) if not isinstance(ops, int) else np.full(n, ops != DELETE)
        if is_put.any():
            if not self.alarm_nospace:
                over = is_put & (reasons == OK) & (self._file_bytes + sizes >= p.quota_bytes)
                if over.any():
                    self.alarm_nospace = True
            if self.alarm_nospace:
                reasons[is_put & (reasons == OK)] = NOSPACE
        if reasons.any():
            bad = np.flatnonzero(reasons)
            self.writes_rejected += len(bad)
            if on_done is not None:
                lat = np.full(len(bad), self._rtt_s)
                call_later(self.env, self._rtt_s, on_done, lat, reasons[bad], bad)
            good = np.flatnonzero(reasons == OK)
            if len(good) == 0:
                return
            keys = keys[good] if isinstance(keys, np.ndarray) else [keys[i] for i in good]
            sizes = sizes[good]
            if not isinstance(ops, int):
                ops = ops[good]
            if not isinstance(kind, str):
                kind = kind[good]
            if on_done is not None:
                on_done = _remap(on_done, good)
        self._propose(_Writes(kind, ops, keys, sizes, self.env.now, on_done))

    def _propose(self, w: _Writes) -> None:
        """Accepted writes join the leader's next batch; with a CPU pool, after their front
        work on it (their latency still counts from their arrival, ``w.t0``)."""
        if self.cpu is not None:
            work_s = len(w.sizes) * self._front_cpu_s + w.total_bytes * self._front_cpu_s_per_byte
            if work_s > 0:
                tag = self.run_on_cpu(work_s, lambda _wait: self._join(w))
                self._front_tag = max(self._front_tag, tag)
                return
        self._join(w)

    def _join(self, w: _Writes) -> None:
        self._pending.append(w)
        self._kick()

    def run_on_cpu(self, work_s: float, on_done: Callable[[float], Any]) -> float:
        """A job of ``work_s`` s of one core on the CPU pool (``cpu_cores`` > 0), times its
        lognormal spread; ``on_done(0.0)`` when done. Returns its finish tag on the pool."""
        assert self.cpu is not None
        if self._cpu_rng is not None:
            work_s *= self._cpu_spread()
        return self.cpu.submit(work_s, on_done)

    def _cpu_spread(self) -> float:
        """A CPU job's lognormal multiplier (mean 1, log-sd from ``cpu_cv_ratio``)."""
        assert self._cpu_rng is not None
        sigma = self._sigma_cpu
        return math.exp(sigma * float(self._cpu_rng.standard_normal()) - 0.5 * sigma * sigma)

    # ------------------------------------------------------------------ the leader loop

    def _set_busy(self, busy: bool) -> None:
        """The serial leader (or, pipelined, the apply stage) starts or stops work."""
        if self._pipelined:
            self._apply_busy = busy
            self._set_union_busy()
        else:
            self._account_busy(busy)

    def _set_union_busy(self) -> None:
        """Pipelined: the leader counts as busy while either stage is (utilisation)."""
        self._account_busy(self._wal_busy or self._apply_busy)

    def _account_busy(self, busy: bool) -> None:
        """The leader's busy state is now ``busy``: integrate the busy time (utilisation)."""
        now = self.env.now
        if busy and not self._busy:
            self._busy_since = now
        elif not busy and self._busy:
            self._busy_area += now - self._busy_since
        self._busy = busy

    def _kick(self) -> None:
        """Start the leader's next piece of work if it is idle."""
        if self._pipelined:
            self._kick_pipelined()
            return
        if self._busy or self._defragging:
            return
        self._next_apply_work(self._start_batch if self._pending else None)

    def _kick_pipelined(self) -> None:
        """Start each idle stage's next piece of work. The apply stage takes, in this order, a
        due backend commit, maintenance, the oldest fsynced batch; the WAL stage takes every
        pending write as its next batch (it does not wait for the applies)."""
        if self._defragging:
            return
        if not self._apply_busy:
            self._next_apply_work(self._start_apply if self._applyq else None)
        if not self._wal_busy and self._pending:
            self._start_wal()

    def _next_apply_work(self, start_batch: Callable[[], None] | None) -> None:
        """The (serial or apply-stage) leader's next work, in this order: a due backend
        commit, maintenance, ``start_batch`` (a batch is ready), else the commit timer."""
        now = self.env.now
        if self._uncommitted_ops and (
            now >= self._last_commit_s + self.p.backend_commit_interval_ms / 1e3
            or self._uncommitted_ops >= self.p.backend_commit_max_ops
        ):
            self._start_commit()
        elif self._maint:
            cost_s, fn = self._maint.popleft()
            self._set_busy(True)
            call_later(self.env, cost_s, self._end_maint, fn)
        elif start_batch is not None:
            start_batch()
        elif self._uncommitted_ops and not self._commit_timer:
            self._commit_timer = True
            due = self._last_commit_s + self.p.backend_commit_interval_ms / 1e3
            call_later(self.env, max(0.0, due - now), self._commit_timer_fired)

    def _start_apply(self) -> None:
        """Pipelined: the oldest fsynced batch enters the apply stage."""
        batch, apply_s = self._applyq.popleft()
        self._set_busy(True)
        if self.cpu is not None:
            self._apply_on_cpu(batch, apply_s)
        else:
            self._apply_in_order(batch, apply_s, 0.0)

    def _apply_on_cpu(self, batch: list[_Writes], apply_s: float) -> None:
        """With a CPU pool: a batch's apply work on the pool (one spread draw for the batch),
        its groups one after another."""
        if self._cpu_rng is not None:
            apply_s *= self._cpu_spread()
        self._next_group_on_cpu(batch, 0, apply_s, self._group_shares(batch))

    def _next_group_on_cpu(
        self, batch: list[_Writes], g: int, apply_s: float, shares: list[float]
    ) -> None:
        """Group ``g``'s part of the batch's apply work on the pool, then its answer (one job
        at a time progresses on the pool as the batch's single job would)."""
        t_start = self.env.now

        def applied(_wait: float) -> None:
            self._group_applied(batch, g, t_start)
            if g + 1 < len(batch):
                self._next_group_on_cpu(batch, g + 1, apply_s, shares)

        assert self.cpu is not None
        self.cpu.submit(apply_s * shares[g], applied)

    def _group_shares(self, batch: list[_Writes]) -> list[float]:
        """Each group's share of its batch's apply work (per request + per byte; by
        members if both are 0)."""
        if len(batch) == 1:
            return [1.0]
        per_req, per_byte = self._apply_work_us()
        work = [len(w.sizes) * per_req + w.total_bytes * per_byte for w in batch]
        total = sum(work)
        if total <= 0:
            work = [float(len(w.sizes)) for w in batch]
            total = sum(work)
        return [x / total for x in work]

    def _apply_work_us(self) -> tuple[float, float]:
        """A write's apply work in us: (per request, per byte); the weights by which a
        batch's apply time is shared among its groups and a group's among its members."""
        return self.p.apply_us_per_request, self.p.ns_per_byte / 1e3

    def _apply_in_order(self, batch: list[_Writes], apply_s: float, after_s: float) -> None:
        """Without a CPU pool: the batch's apply of ``apply_s``, starting ``after_s`` from
        now, its groups one after another, each answered when its last member is applied."""
        env = self.env
        t = after_s
        for g, share in enumerate(self._group_shares(batch)):
            start = t
            # the last group ends the apply exactly (no rounding from the shares' sum)
            t = after_s + apply_s if g == len(batch) - 1 else t + apply_s * share
            call_later(env, t, self._group_applied, batch, g, env.now + start)

    def _start_wal(self) -> None:
        """Pipelined: the pending writes become a batch; its peer round + fsync run on the WAL
        stage, and its apply time is drawn now (same draws, same order as the serial batch)."""
        batch, self._pending = self._pending, []
        wal_s, apply_s = self._batch_times(batch)
        self.batches += 1
        self._wal_busy = True
        self._set_union_busy()
        if self.cpu is not None:
            call_later(self.env, wal_s, self._wal_cpu, batch, self._end_wal, batch, apply_s)
        else:
            call_later(self.env, wal_s, self._end_wal, batch, apply_s)

    def _wal_cpu(self, batch: list[_Writes], then: Callable[..., Any], *args: Any) -> None:
        """With a CPU pool: after a batch's fdatasync, raft's CPU for it on the pool, then
        ``then(*args)``."""
        p = self.p
        n = sum(len(w.sizes) for w in batch)
        work_s = (p.wal_cpu_us_per_batch + n * p.wal_cpu_us_per_entry) / 1e6
        if p.fsync_wakeup_front_ratio > 0:
            work_s += self._fsync_wakeup_s()
        if work_s > 0:
            self.run_on_cpu(work_s, lambda _wait: then(*args))
        else:
            then(*args)

    def _fsync_wakeup_s(self) -> float:
        """Work (s of one core) standing for raft's goroutine waiting for a core after its
        fdatasync: ``fsync_wakeup_front_ratio`` x the puts' front work still outstanding on
        the pool, at most ``fsync_wakeup_max_ms`` (its lognormal spread then applies with
        the rest of the job)."""
        assert self.cpu is not None
        behind_s = self._front_tag - self.cpu.work_done_s()
        if behind_s <= 1e-12:  # the pool's tolerance for a finished job (PsServer._finish)
            return 0.0
        p = self.p
        return min(p.fsync_wakeup_front_ratio * behind_s, p.fsync_wakeup_max_ms / 1e3)

    def _end_wal(self, batch: list[_Writes], apply_s: float) -> None:
        self._wal_busy = False
        self._set_union_busy()
        self._applyq.append((batch, apply_s))
        self._kick()

    def _commit_timer_fired(self) -> None:
        self._commit_timer = False
        self._kick()

    def _end_maint(self, fn: Callable[[], Any]) -> None:
        self._set_busy(False)
        fn()
        self._kick()

    def _start_batch(self) -> None:
        batch, self._pending = self._pending, []
        wal_s, apply_s = self._batch_times(batch)
        self.batches += 1
        self._set_busy(True)
        if self.cpu is not None:  # the disk, raft's CPU, then the apply work, one after another
            call_later(self.env, wal_s, self._wal_cpu, batch, self._apply_on_cpu, batch, apply_s)
        else:
            self._apply_in_order(batch, apply_s, wal_s)

    def _batch_times(self, batch: list[_Writes]) -> tuple[float, float]:
        """A new batch's WAL time (peer round + fdatasync, and ``wal_ns_per_byte``) and apply
        time (per request + per byte), in seconds, with their spread: one disk (WAL
        fdatasync) and one CPU (apply; GC pauses and preemption on a shared machine stall the
        whole leader loop) multiplier per batch, drawn in this order."""
        p = self.p
        n = sum(len(w.sizes) for w in batch)
        nbytes = sum(w.total_bytes for w in batch)
        apply_s = n * p.apply_us_per_request / 1e6 + nbytes * p.ns_per_byte / 1e9
        if self._spread:
            disk = self._lognormal(self._sigma_fsync)
            wal_s = p.peer_rtt_ms / 1e3 + p.fsync_ms / 1e3 * disk
            if self._wal_s_per_byte:
                wal_s += nbytes * self._wal_s_per_byte * disk
            if self._sigma_bytes is None:
                apply_s *= self._lognormal(self._sigma_apply)
            else:
                apply_s = self._apply_own_byte_spread(batch, apply_s, nbytes)
        else:
            wal_s = self._batch_fixed_s
            if self._wal_s_per_byte:
                wal_s += nbytes * self._wal_s_per_byte
        if self._stall_s:
            apply_s += self._stalls(apply_s)
        return wal_s, apply_s

    #: Most stalls one batch can meet (a cap that keeps the draws per batch fixed).
    _MAX_STALLS = 16

    def _stalls(self, apply_s: float) -> float:
        """The stall time (s) met by a batch whose apply work takes ``apply_s``: a Poisson
        number (mean ``stall_per_s`` x ``apply_s``, by its inverse CDF from one uniform) of
        exponential stalls (mean ``stall_ms``). A fixed number of uniforms per batch, whatever
        the parameters: common random numbers for the fit."""
        assert self._stall_u is not None
        row = self._stall_u.next()
        mean = self.p.stall_per_s * apply_s
        u = float(row[0])
        prob = math.exp(-mean)
        cum = prob
        k = 0
        while u > cum and k < self._MAX_STALLS:
            k += 1
            prob *= mean / k
            cum += prob
        if not k:
            return 0.0
        return -self._stall_s * float(np.log1p(-row[1 : 1 + k]).sum())

    def _apply_own_byte_spread(self, batch: list[_Writes], apply_s: float, nbytes: float) -> float:
        """A batch's apply time (s) when the per-byte work has its own spread
        (``byte_cv_ratio`` >= 0): the per-request part takes the batch's apply multiplier,
        the per-byte part (marshal, WAL write, bbolt put) one lognormal whose CV is
        ``byte_cv_ratio`` / sqrt(members weighted by bytes): each member's per-byte work
        varies independently, and a sum of k like lognormals has about that CV
        (Fenton-Wilkinson: one draw per batch stands for the sum)."""
        byte_s = nbytes * self.p.ns_per_byte / 1e9
        cost_s = (apply_s - byte_s) * self._lognormal(self._sigma_apply)
        sigma = self._sigma_bytes
        if nbytes > 0 and sigma:
            sq = sum(float(np.dot(w.sizes, w.sizes)) for w in batch)
            members = nbytes * nbytes / sq  # 1 for one member, k for k equal ones
            if members > 1.0:
                sigma = math.sqrt(math.log1p(math.expm1(sigma * sigma) / members))
        return cost_s + byte_s * self._lognormal(sigma or 0.0)

    def _lognormal(self, sigma: float) -> float:
        """A lognormal multiplier with mean 1 and log-sd ``sigma`` (one standard normal drawn
        per call, also for ``sigma`` 0, so the stream does not depend on the CVs)."""
        if self._zi >= len(self._z):  # draw in blocks: one Generator call per 4,096 draws
            self._z = self._rng.standard_normal(4096)
            self._zi = 0
        z = float(self._z[self._zi])
        self._zi += 1
        return math.exp(sigma * z - 0.5 * sigma * sigma)

    def _group_applied(self, batch: list[_Writes], g: int, t_start: float) -> None:
        """Group ``g`` of ``batch``, whose apply began at ``t_start``, is applied now; the
        last group ends the batch.

        etcd applies a batch's entries one after another and answers each request as its
        entry is applied (the apply loop triggers the request's waiter entry by entry): a
        group is answered when its last member is applied, and each member's latency ends
        at its own apply (the group's apply time shared by its members' work, in member
        order; :meth:`_apply` updates the store kind by kind, which the times ignore)."""
        w = batch[g]
        reasons = self._apply(w)
        if w.on_done is not None:
            early = None
            n = len(reasons)
            if n > 1:
                elapsed = self.env.now - t_start
                per_req, per_byte = self._apply_work_us()
                cum = np.cumsum(per_req + per_byte * w.sizes)
                total = float(cum[-1])
                if elapsed > 0 and total > 0:
                    early = (elapsed / total) * (total - cum)
            call_later(self.env, self._reply_s, self._deliver, w, reasons, early)
        if g == len(batch) - 1:
            self._set_busy(False)
            self._grow_file()
            self._kick()

    def _deliver(self, w: _Writes, reasons: np.ndarray, early: np.ndarray | None) -> None:
        """Answer group ``w``; ``early``: per member, how long before the group's last
        member it was applied."""
        lat = self.env.now - w.t0
        w.on_done(np.full(len(reasons), lat) if early is None else lat - early, reasons, None)

    def _start_commit(self) -> None:
        p = self.p
        allocs = self._uncommitted_ops + math.ceil(self._uncommitted_bytes / self._page_f)
        cost_ns = allocs * p.freelist_ns_per_alloc
        if p.freelist == "array":
            # Each multi-page allocation scans the sorted free-page-id array for a run, and
            # each commit merges released pages into it and writes it out: O(free pages).
            scans = self._uncommitted_multipage + 2
            cost_ns += scans * self.free_pages * p.freelist_array_ns_per_free_page
        commit_s = p.backend_commit_ms / 1e3 + self._uncommitted_bytes * self._commit_s_per_byte
        if self._spread:  # the bbolt commit ends in an fdatasync too: the disk's spread
            commit_s *= self._lognormal(self._sigma_fsync)
        cost_s = commit_s + cost_ns / 1e9
        self._uncommitted_ops = 0
        self._uncommitted_bytes = 0.0
        self._uncommitted_multipage = 0
        self.commits += 1
        self.commit_time_s += cost_s
        self._set_busy(True)
        call_later(self.env, cost_s, self._end_maint, self._commit_done)

    def _commit_done(self) -> None:
        """etcd's backend loop resets its commit timer after each commit (``backend.run``:
        ``Commit``, then ``t.Reset(batchInterval)``): the next is due an interval after this
        one ends. (Timed from its start, the commits would keep an exact period, and one equal
        to a replay's wave window locks onto the waves' arrivals.)"""
        self._last_commit_s = self.env.now

    # ------------------------------------------------------------------ MVCC apply

    def _append_history(self, superseded: np.ndarray | list[float]) -> None:
        """One history entry per new revision: bytes that revision superseded."""
        k = len(superseded)
        need = self._hist_n + k
        if need > len(self._hist_cum):
            grown = np.zeros(max(need, 2 * len(self._hist_cum)))
            grown[: self._hist_n] = self._hist_cum[: self._hist_n]
            self._hist_cum = grown
        last = float(self._hist_cum[self._hist_n - 1])
        # A running sum in Python (groups are small); the sizes are whole or half bytes, so
        # the sums are exact in any order.
        self._hist_cum[self._hist_n : need] = list(accumulate(superseded, initial=last))[1:]
        self._hist_n = need

    def _apply(self, w: _Writes) -> np.ndarray:
        """Apply a group at commit of its batch; reason code per member.

        Members are applied kind by kind (kinds in code order), in member order within a
        kind. Python lists and scalars throughout: groups are small (tens of members), where
        each numpy call would cost more than the work it does."""
        sizes = w.sizes.tolist()
        n = len(sizes)
        keys = w.keys
        if type(keys) is not list:
            keys = keys.tolist() if isinstance(keys, np.ndarray) else list(keys)
        ops = w.ops
        if not isinstance(ops, int):
            ops = ops.tolist()
            if ops.count(ops[0]) == n:
                ops = ops[0]
        kinds = None if isinstance(w.kind, str) else w.kind.tolist()
        if kinds is None or kinds.count(kinds[0]) == n:
            kind = w.kind if kinds is None else self.kind_names[kinds[0]]
            superseded, ok_sizes, bad = self._apply_kind(kind, ops, keys, sizes)
            reasons = np.zeros(n, dtype=np.uint8)
            for i, code in bad:
                reasons[i] = code
        else:  # kind by kind in code order; each part keeps member order
            superseded, ok_sizes = [], []
            reasons = np.zeros(n, dtype=np.uint8)
            for c in sorted(set(kinds)):
                idx = [i for i in range(n) if kinds[i] == c]
                part_ops = ops if isinstance(ops, int) else [ops[i] for i in idx]
                hist, stored, bad = self._apply_kind(
                    self.kind_names[c], part_ops, [keys[i] for i in idx], [sizes[i] for i in idx]
                )
                superseded += hist
                ok_sizes += stored
                for i, code in bad:
                    reasons[idx[i]] = code
        k = len(superseded)
        if k:
            self._append_history(superseded)
            self.revision += k
            self._account_uncommitted(ok_sizes)
        self.writes_ok += k
        self.writes_rejected += n - k
        return reasons

    def _apply_kind(
        self, kind: str, ops: int | list[int], keys: list, sizes: list[float]
    ) -> tuple[list[float], list[float], list[tuple[int, int]]]:
        """Apply writes to one kind in member order. Returns, per successful member, the
        history bytes its revision leaves and the value bytes it stored (0 for a delete),
        and (member, reason code) of each failed one."""
        store = self._store.get(kind)
        if store is None:
            store = self._store[kind] = {}
            self._live_bytes.setdefault(kind, 0.0)
        n = len(sizes)
        ovh = self._overhead
        if ops == UPDATE:
            try:  # every key exists (heartbeats, status updates)
                olds = [store[k] for k in keys]
            except KeyError:
                olds = None
            if olds is not None:
                store.update(zip(keys, sizes, strict=True))
                self._live_bytes[kind] += sum(sizes) - sum(olds)
                return [old + ovh for old in olds], sizes, []
        elif ops == CREATE and store.keys().isdisjoint(keys) and len(set(keys)) == n:
            store.update(zip(keys, sizes, strict=True))  # new objects (creates, Events)
            self._live_bytes[kind] += sum(sizes)
            return [0.0] * n, sizes, []
        if isinstance(ops, int):
            ops = [ops] * n
        superseded: list[float] = []
        ok_sizes: list[float] = []
        bad: list[tuple[int, int]] = []
        live = 0.0
        for i in range(n):
            key, op, size = keys[i], ops[i], sizes[i]
            old = store.get(key)
            if op == CREATE:
                if old is not None:
                    bad.append((i, EXISTS))
                    continue
                store[key] = size
                live += size
                superseded.append(0.0)
            elif old is None:
                bad.append((i, NOT_FOUND))
                continue
            elif op == UPDATE:
                store[key] = size
                live += size - old
                superseded.append(old + ovh)
            else:
                del store[key]
                live -= old
                superseded.append(old + 2 * ovh)  # the old revision and the tombstone
                size = 0.0
            ok_sizes.append(size)
        self._live_bytes[kind] += live
        return superseded, ok_sizes, bad

    def _account_uncommitted(self, sizes: list[float]) -> None:
        """Successful writes of ``sizes`` value bytes wait for the next backend commit."""
        total = sum(sizes)
        self.bytes_written += total
        self._uncommitted_ops += len(sizes)
        self._uncommitted_bytes += total + len(sizes) * self._overhead
        page = self._page_f
        if max(sizes) > page:
            self._uncommitted_multipage += sum(1 for size in sizes if size > page)

    def _grow_file(self) -> None:
        # Free pages inside the file are reused first; the file grows only past them.
        data = self.data_bytes
        if data > self._file_bytes:
            self._file_bytes = math.ceil(data / self._page_f) * self._page_f

    # ------------------------------------------------------------------ maintenance

    def compact(self, revision: int | None = None) -> simpy.Process:
        """Compact history up to ``revision`` (default: current); a process, value = bytes freed.

        Work is done in chunks of ``compaction_batch_revisions`` revisions, each holding the
        backend like a batch, with ``compaction_sleep_ms`` between chunks. The freed bytes
        become free pages; the file does not shrink.
        """
        target = self.revision if revision is None else min(int(revision), self.revision)
        return self.env.process(self._compact(target))

    def _compact(self, target: int):
        p = self.p
        todo = target - self.compacted_revision
        if todo <= 0:
            return 0.0
        chunks = math.ceil(todo / p.compaction_batch_revisions)
        for c in range(chunks):
            n = min(p.compaction_batch_revisions, todo - c * p.compaction_batch_revisions)
            yield self._maintenance(n * p.compaction_us_per_revision / 1e6)
            if c + 1 < chunks:
                yield self.env.timeout(p.compaction_sleep_ms / 1e3)
        # Drop history entries up to the target revision.
        i = target - self._hist_base
        freed = float(self._hist_cum[i] - self._hist_cum[0])
        keep = self._hist_cum[i : self._hist_n] - self._hist_cum[i]
        self._hist_cum[: len(keep)] = keep
        self._hist_n = len(keep)
        self._hist_base = target
        self.compacted_revision = target
        return freed * self.p.btree_overhead_ratio

    def _maintenance(self, cost_s: float, fn: Callable[[], Any] | None = None) -> simpy.Event:
        """Hold the leader/backend for ``cost_s`` between batches; event fires at the end."""
        ev = self.env.event()

        def end():
            if fn is not None:
                fn()
            ev.succeed()

        self._maint.append((cost_s, end))
        self._kick()
        return ev

    def start_compactor(self, interval_s: float) -> simpy.Process:
        """kube-apiserver's compactor: every ``interval_s``, compact to the revision seen at
        the previous tick (so history between one and two intervals old is kept)."""

        def run():
            seen = self.revision
            while True:
                yield self.env.timeout(interval_s)
                target, seen = seen, self.revision
                if target > self.compacted_revision:
                    yield self.compact(target)

        return self.env.process(run())

    def defrag(self) -> simpy.Event:
        """Rewrite the file to its in-use size; blocks writes and reads while it runs.

        Takes ``defrag_s_per_gib`` per GiB of the current file. Event value: bytes reclaimed.
        """
        gib = self._file_bytes / 2**30
        result = {}

        def start_blocking():
            self._defragging = True

        def shrink():
            before = self._file_bytes
            self._file_bytes = math.ceil(self.data_bytes / self._page_f) * self._page_f
            result["freed"] = before - self._file_bytes

        ev = self.env.event()

        def run():
            # Wait for the leader, then block everything for the rewrite.
            yield self._maintenance(0.0, start_blocking)
            self._set_busy(True)
            yield self.env.timeout(gib * self.p.defrag_s_per_gib)
            self._set_busy(False)
            shrink()
            self._defragging = False
            deferred, self._deferred_reads = self._deferred_reads, []
            for fn in deferred:
                fn()
            self._kick()
            ev.succeed(result["freed"])

        self.env.process(run())
        return ev

    def disarm(self) -> bool:
        """Clear the NOSPACE alarm if the file is below quota now; True if cleared."""
        if self._file_bytes < self.p.quota_bytes:
            self.alarm_nospace = False
        return not self.alarm_nospace

    # ------------------------------------------------------------------ reads

    def range_cost_s(self, objects_scanned: float, bytes_returned: float) -> float:
        """Service time (s) of a range read on one read worker."""
        p = self.p
        return (
            p.range_base_us / 1e6
            + objects_scanned * p.range_us_per_object / 1e6
            + bytes_returned * p.range_ns_per_byte / 1e9
        )

    def submit_range(
        self,
        objects_scanned: float,
        bytes_returned: float,
        linearizable: bool = True,
        on_done: Callable[[float], Any] | None = None,
    ) -> None:
        """A range read arriving now; ``on_done(latency_s)`` when the response is back."""
        t0 = self.env.now
        # The spread multiplies the fixed part (the request's handling, the read-index
        # round); the per-object scan, a sum of many like steps, varies little: a 1,000-key
        # range's p99 is 1.2-1.4x its mean in the calibration runs, where the spread the
        # gets need (CV 0.9-1.6) on its whole cost made it 2.5-5x.
        service = self.p.range_base_us / 1e6
        if linearizable and self._read_index_s:  # the read-index round's own CPU
            service += self._read_index_s
        if self._read_rng is not None:
            service *= self._read_multiplier()
        service += self.range_cost_s(objects_scanned, bytes_returned) - self.p.range_base_us / 1e6
        pre_s = self._rtt_s + (self.p.peer_rtt_ms / 1e3 if linearizable else 0.0)

        def run_read():
            if self._defragging:
                self._deferred_reads.append(run_read)
                return
            if self._delay_u is not None:
                self._reads_at_workers += 1
                delayed = (
                    self._reads_at_workers >= self.p.read_delay_min_reads
                    and float(self._delay_u.next()[0]) < self.p.read_delay_ratio
                )
                self.reads.submit(service, lambda _w: self._read_served(t0, delayed, on_done))
                return
            self.reads.submit(
                service, None if on_done is None else (lambda _w: on_done(self.env.now - t0))
            )

        front = self.read_front
        if front is None:
            call_later(self.env, pre_s, run_read)
        else:  # the serial stage first (FIFO, one worker), then the read workers
            call_later(self.env, pre_s, front.submit, self._front_s, lambda _w: run_read())

    def _read_served(
        self, t0: float, delayed: bool, on_done: Callable[[float], Any] | None
    ) -> None:
        """A read left the workers (with read delays on): answer it, ``read_delay_ms`` late
        if it drew a delay."""
        self._reads_at_workers -= 1
        if on_done is None:
            return
        if delayed:
            call_later(self.env, self._delay_s, lambda: on_done(self.env.now - t0))
        else:
            on_done(self.env.now - t0)

    def _read_multiplier(self) -> float:
        """A lognormal multiplier of one read's service time, mean 1, CV ``read_cv_ratio``."""
        if self._rzi >= len(self._rz):
            assert self._read_rng is not None
            self._rz = self._read_rng.standard_normal(4096)
            self._rzi = 0
        z = float(self._rz[self._rzi])
        self._rzi += 1
        s = self._sigma_read
        return math.exp(s * z - 0.5 * s * s)

    def range(
        self, objects_scanned: float, bytes_returned: float, linearizable: bool = True
    ) -> simpy.Event:
        """Like :meth:`submit_range`, for a SimPy process; value = :class:`EtcdResult`."""
        ev = self.env.event()
        self.submit_range(
            objects_scanned,
            bytes_returned,
            linearizable,
            lambda lat: ev.succeed(EtcdResult(lat, "ok")),
        )
        return ev
