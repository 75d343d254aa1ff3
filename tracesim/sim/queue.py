"""kube-scheduler's scheduling queue: activeQ, backoffQ and the unschedulable pool.

Source: kubernetes/kubernetes ``pkg/scheduler/internal/queue/scheduling_queue.go``.

- **activeQ**: pods ready to be tried, highest priority first, then the earliest time they
  were (re-)queued (the PrioritySort plugin).
- **backoffQ**: pods that failed and wait out their backoff, ``initial * 2**(attempts-1)``
  capped at ``max`` (1 s, 2 s, 4 s, 8 s, 10 s, 10 s, ... by default); a pod leaves it when the
  backoff expires (:meth:`SchedulingQueue.flush_backoff`).
- **unschedulable pool**: pods that failed with no cluster change since their attempt began.
  A cluster change (a pod deleted, a node added or changed: :meth:`move_all`) moves them to
  backoffQ, or straight to activeQ when their backoff is over; pods left there longer than
  ``max_in_unschedulable_s`` (podMaxInUnschedulablePodsDuration, 5 min) are moved too
  (:meth:`flush_leftover`, which the engine calls every 30 s as kube-scheduler does).
- A failed pod whose attempt overlapped a move request goes to backoffQ, not the pool
  (``moveRequestCycle``), so a change it could not see is not missed.

The queue holds pod indices (ints) and knows nothing about time except what callers pass
(``now``, seconds), so it is tested without an engine. Removal is lazy: heap entries carry a
token and stale ones are skipped.
"""

from __future__ import annotations

import heapq
import math

#: kube-scheduler defaults: podInitialBackoffSeconds, podMaxBackoffSeconds,
#: podMaxInUnschedulablePodsDuration, and the period of flushUnschedulablePodsLeftover.
INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 10.0
MAX_IN_UNSCHEDULABLE_S = 300.0
LEFTOVER_FLUSH_INTERVAL_S = 30.0

# Where a pod is.
GONE, ACTIVE, BACKOFF, UNSCHEDULABLE, IN_FLIGHT = range(5)


class SchedulingQueue:
    """Priority queue with backoff and an unschedulable pool (see the module docstring).

    Parameters are seconds. Pod state is kept in lists indexed by pod (grown on demand).
    """

    def __init__(
        self,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        max_in_unschedulable_s: float = MAX_IN_UNSCHEDULABLE_S,
    ) -> None:
        if initial_backoff_s < 0 or max_backoff_s < initial_backoff_s:
            raise ValueError("need 0 <= initial_backoff_s <= max_backoff_s")
        self.initial_backoff_s = float(initial_backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_in_unschedulable_s = float(max_in_unschedulable_s)
        self._active: list[tuple[int, float, int, int, int]] = []  # (-prio, ts, seq, pod, token)
        self._backoff: list[tuple[float, int, int, int]] = []  # (expiry, seq, pod, token)
        self._unschedulable: dict[int, float] = {}  # pod -> time it entered the pool
        self._where: list[int] = []
        self._token: list[int] = []
        self._priority: list[int] = []
        self._last_failure_s: list[float] = []
        self._pop_cycle: list[int] = []
        self.attempts: list[int] = []
        self._seq = 0
        self.scheduling_cycle = 0
        self._move_request_cycle = -1
        self.n_active = 0
        self.n_backoff = 0

    # -- bookkeeping -------------------------------------------------------------------------
    def reserve(self, n_pods: int) -> None:
        """Make room for pods ``0 .. n_pods - 1`` at once (otherwise the per-pod lists grow
        one pod at a time as pods are added)."""
        self._ensure(n_pods - 1)

    def _ensure(self, pod: int) -> None:
        grow = pod + 1 - len(self._where)
        if grow > 0:
            self._where.extend([GONE] * grow)
            self._token.extend([0] * grow)
            self._priority.extend([0] * grow)
            self._last_failure_s.extend([-math.inf] * grow)
            self._pop_cycle.extend([0] * grow)
            self.attempts.extend([0] * grow)

    def _to_active(self, pod: int, ts: float) -> None:
        self._token[pod] += 1
        self._where[pod] = ACTIVE
        self._seq += 1
        heapq.heappush(self._active, (-self._priority[pod], ts, self._seq, pod, self._token[pod]))
        self.n_active += 1

    def _to_backoff(self, pod: int) -> float:
        self._token[pod] += 1
        self._where[pod] = BACKOFF
        self._seq += 1
        expiry = self.backoff_expiry(pod)
        heapq.heappush(self._backoff, (expiry, self._seq, pod, self._token[pod]))
        self.n_backoff += 1
        return expiry

    def backoff_duration_s(self, attempts: int) -> float:
        """Backoff after ``attempts`` attempts: initial * 2**(attempts-1), capped at max."""
        if attempts <= 0:
            return 0.0
        return min(self.initial_backoff_s * 2.0 ** min(attempts - 1, 62), self.max_backoff_s)

    def backoff_expiry(self, pod: int) -> float:
        """When ``pod``'s backoff ends: last failure + backoff of its attempt count."""
        return self._last_failure_s[pod] + self.backoff_duration_s(self.attempts[pod])

    def where(self, pod: int) -> int:
        """GONE, ACTIVE, BACKOFF, UNSCHEDULABLE or IN_FLIGHT."""
        return self._where[pod] if pod < len(self._where) else GONE

    def __len__(self) -> int:
        """Pods waiting (active + backoff + unschedulable; not the one in flight)."""
        return self.n_active + self.n_backoff + len(self._unschedulable)

    @property
    def n_unschedulable(self) -> int:
        return len(self._unschedulable)

    # -- operations ----------------------------------------------------------------------------
    def add(self, pod: int, priority: int, now: float) -> None:
        """A new pod: straight into activeQ."""
        self._ensure(pod)
        if self._where[pod] != GONE:
            raise ValueError(f"pod {pod} is already queued")
        self._priority[pod] = int(priority)
        self._to_active(pod, now)

    def pop(self) -> int | None:
        """The next pod to try (it is then in flight), or None when activeQ is empty."""
        active = self._active
        while active:
            _, _, _, pod, token = heapq.heappop(active)
            if token == self._token[pod] and self._where[pod] == ACTIVE:
                self.n_active -= 1
                self._where[pod] = IN_FLIGHT
                self.scheduling_cycle += 1
                self._pop_cycle[pod] = self.scheduling_cycle
                self.attempts[pod] += 1
                return pod
        return None

    def done(self, pod: int) -> None:
        """The in-flight pod was scheduled (or deleted): it leaves the queue."""
        self._where[pod] = GONE
        self._token[pod] += 1

    def failed(self, pod: int, now: float) -> float | None:
        """The in-flight pod did not fit at ``now``. Returns its backoff expiry if it went to
        backoffQ (a move request came during its attempt), None if it went to the pool."""
        self._last_failure_s[pod] = now
        if self._move_request_cycle >= self._pop_cycle[pod]:
            return self._to_backoff(pod)
        self._token[pod] += 1
        self._where[pod] = UNSCHEDULABLE
        self._unschedulable[pod] = now
        return None

    def remove(self, pod: int) -> bool:
        """Forget ``pod`` (deleted); returns whether it was waiting in the queue."""
        where = self.where(pod)
        if where == GONE:
            return False
        if where == ACTIVE:
            self.n_active -= 1
        elif where == BACKOFF:
            self.n_backoff -= 1
        elif where == UNSCHEDULABLE:
            del self._unschedulable[pod]
        self._where[pod] = GONE
        self._token[pod] += 1
        return where != IN_FLIGHT

    def note_move_request(self) -> None:
        """Record that the cluster changed now (cheap); :meth:`move_all` does the moving."""
        self._move_request_cycle = self.scheduling_cycle

    def _move(self, pods: list[int], now: float) -> list[float]:
        expiries = []
        for pod in pods:
            del self._unschedulable[pod]
            if self.backoff_expiry(pod) > now:
                expiries.append(self._to_backoff(pod))
            else:
                self._to_active(pod, now)
        return expiries

    def move_all(self, now: float) -> list[float]:
        """A cluster change: every pool pod to backoffQ (returns their expiries) or activeQ."""
        self._move_request_cycle = self.scheduling_cycle
        if not self._unschedulable:
            return []
        return self._move(list(self._unschedulable), now)

    def flush_leftover(self, now: float) -> list[float]:
        """Move pool pods that stayed longer than ``max_in_unschedulable_s``."""
        limit = now - self.max_in_unschedulable_s
        old = [pod for pod, since in self._unschedulable.items() if since <= limit]
        return self._move(old, now) if old else []

    def flush_backoff(self, now: float) -> int:
        """Move pods whose backoff has expired to activeQ; returns how many moved."""
        backoff = self._backoff
        moved = 0
        while backoff and backoff[0][0] <= now:
            _, _, pod, token = heapq.heappop(backoff)
            if token == self._token[pod] and self._where[pod] == BACKOFF:
                self.n_backoff -= 1
                self._to_active(pod, now)
                moved += 1
        return moved

    def next_backoff_expiry(self) -> float | None:
        """The earliest backoff expiry still pending, or None."""
        backoff = self._backoff
        while backoff:
            _, _, pod, token = backoff[0]
            if token == self._token[pod] and self._where[pod] == BACKOFF:
                return backoff[0][0]
            heapq.heappop(backoff)
        return None
