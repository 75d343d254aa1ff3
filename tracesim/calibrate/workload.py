"""The measured calibration workload against a real etcd.

Phases, all under one fresh key prefix ``/tracesim-calibrate/<run id>/``:

1. **writes**: closed-loop puts (each of ``concurrency`` clients sends its next put as soon as
   the previous one is acknowledged, overwriting its own key so every put is a new revision of
   an existing key, like a heartbeat), for value sizes of a Lease (~400 B), a Node (~16 kB)
   and ~1 MB, at increasing concurrency;
2. **reads**: single-key gets (serializable and linearizable) at a few concurrencies, and range
   reads over 10, 100 and 1,000 keys of 1 kB;
3. **watches**: many watchers on one prefix, then puts under it; delivery latency from the
   put's start to each watcher's receipt;
4. **maintenance**: revision growth, DB size, a compaction and a defragmentation with the DB
   size before and after each.

**Rounds** (phases 1 and 2): each point is measured in ``Plan.rounds`` short rounds (its
``point_s`` split between them), interleaved across the points of a group (round 1 of every
concurrency level, then round 2 in the reverse order, ...), so a disturbance that lasts a few
seconds (another process taking the shared CPU, a background flush) hits one round of several
points rather than the whole of one point, and slow drift (the DB growing) is spread over all
levels. A point is summarised from the pooled requests of its rounds, after dropping the
rounds whose throughput is more than ``Plan.disturbed_ratio`` below the median round's (on a
closed loop a disturbance only slows a round down; pooling the rest keeps every request of
the undisturbed rounds for the p99).

Everything written is deleted at the end, also on an error or Ctrl-C. If etcd raises its NOSPACE
alarm during the run, the run deletes its keys, compacts, defragments, disarms the alarm and
raises :class:`~tracesim.calibrate.client.EtcdNoSpace`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ..errors import TracesimError
from .client import EtcdClient, EtcdError, EtcdNoSpace, prefix_end, unb64
from .validate import METRICS

#: Every run's keys live under this root (one sub-prefix per run).
ROOT = b"/tracesim-calibrate/"

#: Cleanup deletes the run's keys, waits this long (s) and looks again, at most this many
#: times: puts in flight when a run is cancelled land after a first delete.
CLEANUP_SETTLE_S = 0.1
CLEANUP_ROUNDS = 5

#: Object sizes the writes use (bytes): a Lease, a Node (KEP-589: Nodes "easily exceed 15 kB")
#: and a value close to etcd's 1.5 MiB request limit.
SIZES_BYTES = {"lease": 400, "node": 16_000, "large": 1_000_000}

Progress = Callable[[str], Any]


@dataclass(frozen=True)
class Plan:
    """What to measure. Durations in seconds; concurrencies are requests in flight."""

    write_concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    write_sizes: tuple[str, ...] = ("lease", "node")
    large_concurrency: tuple[int, ...] = (1, 2, 4, 8)
    point_s: float = 2.0
    max_requests_per_point: int = 20_000
    #: Bounds the bytes a ~1 MB point writes, so the run fits a small quota.
    large_max_requests: int = 60
    read_concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    range_sizes: tuple[int, ...] = (10, 100, 1000)
    range_value_bytes: int = 1000
    read_point_s: float = 1.5
    watchers: int = 200
    watch_events: int = 200
    #: Rounds per write/read point (``point_s`` / ``read_point_s`` and the request caps are
    #: split between them) and how much slower than the median round a round may be before
    #: it counts as disturbed and is dropped (see the module docstring).
    rounds: int = 3
    disturbed_ratio: float = 0.1

    @classmethod
    def quick(cls) -> Plan:
        """A plan that runs in about a minute (CI)."""
        return cls(
            point_s=0.75,
            large_concurrency=(1, 2, 4),
            large_max_requests=30,
            read_point_s=0.45,
            range_sizes=(10, 100, 1000),
            watchers=64,
            watch_events=60,
        )

    @classmethod
    def tiny(cls) -> Plan:
        """A few requests per phase (tests of the plumbing, not of performance)."""
        return cls(
            write_concurrency=(1, 4),
            write_sizes=("lease",),
            large_concurrency=(1,),
            point_s=0.15,
            large_max_requests=4,
            read_concurrency=(1,),
            range_sizes=(10,),
            read_point_s=0.1,
            watchers=4,
            watch_events=5,
            rounds=2,
        )


@dataclass
class Measurements:
    """What a run measured.

    ``points``: one row per measured point (columns ``phase``, ``op``, ``consistency``,
    ``size_class``, ``value_bytes``, ``keys_per_request``, ``concurrency``, ``requests``,
    ``errors``, ``duration_s``, ``mean_ms``, ``p50_ms``, ``p90_ms``, ``p99_ms``, ``max_ms``,
    ``throughput_per_s``, and for points measured in rounds ``rounds``, ``rounds_kept`` and
    ``round_spread``: the slowest round's throughput below the fastest's, relative, and
    ``<metric>_round_min``/``_round_max``: the range of each of :data:`~.validate.METRICS` over
    the kept rounds; the summary columns are over the kept rounds). ``samples``: one row per
    request (``point``, ``round``, ``kept``: whether its round was kept, ``latency_ms``).
    ``maintenance``: revision growth, DB sizes (bytes) and durations (s) of the compaction and
    defragmentation. ``info``: endpoint, etcd version, prefix, start time, machine.
    """

    points: pd.DataFrame
    samples: pd.DataFrame
    maintenance: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _summary(lat_s: np.ndarray, elapsed_s: float) -> dict[str, float]:
    if len(lat_s) == 0:
        nan = float("nan")
        return dict(
            mean_ms=nan, p50_ms=nan, p90_ms=nan, p99_ms=nan, max_ms=nan, throughput_per_s=0.0
        )
    ms = lat_s * 1e3
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return dict(
        mean_ms=float(ms.mean()),
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        max_ms=float(ms.max()),
        throughput_per_s=len(lat_s) / elapsed_s if elapsed_s > 0 else 0.0,
    )


async def closed_loop(
    concurrency: int,
    duration_s: float,
    max_requests: int,
    request: Callable[[int, int], Awaitable[Any]],
) -> tuple[np.ndarray, float, int]:
    """``concurrency`` clients each calling ``request(client, i)`` back to back.

    Each client first makes one untimed request (opens its connection), then all start
    together and run until ``duration_s`` has passed or ``max_requests`` were issued.
    Returns (latencies in seconds, elapsed seconds, requests that raised an EtcdError other
    than NOSPACE). NOSPACE propagates.
    """
    await gather_or_cancel([request(c, -1) for c in range(concurrency)])
    lat: list[float] = []
    errors = 0
    issued = 0
    t_start = time.perf_counter()
    deadline = t_start + duration_s

    async def client(c: int) -> None:
        nonlocal issued, errors
        clock = time.perf_counter
        while issued < max_requests and clock() < deadline:
            i = issued
            issued += 1
            t0 = clock()
            try:
                await request(c, i)
            except EtcdNoSpace:
                raise
            except EtcdError:
                errors += 1
                continue
            lat.append(clock() - t0)

    await gather_or_cancel([client(c) for c in range(concurrency)])
    return np.asarray(lat), time.perf_counter() - t_start, errors


async def gather_or_cancel(coros: list[Awaitable[Any]]) -> None:
    """Run ``coros`` concurrently; on the first exception cancel the others and raise it (so a
    NOSPACE in one client stops them all before cleanup starts)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            if t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass
class _Point:
    """One point to measure in rounds: its row (without the summary), its closed loop and
    the rounds measured so far (latencies s, elapsed s, errors)."""

    row: dict[str, Any]
    concurrency: int
    request: Callable[[int, int], Awaitable[Any]]
    duration_s: float
    max_requests: int
    rounds: list[tuple[np.ndarray, float, int]] = field(default_factory=list)
    #: Per round, the growth of etcd's counters over it and the CPU time this process (the
    #: client) used in it, ``client_cpu_s`` (None: unknown).
    counters: list[dict[str, float] | None] = field(default_factory=list)


class Calibration:
    """One calibration run against ``client``'s endpoint (see the module docstring)."""

    def __init__(
        self,
        client: EtcdClient,
        plan: Plan,
        *,
        allow_foreign_keys: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.plan = plan
        self.allow_foreign_keys = allow_foreign_keys
        self.progress = progress or (lambda _msg: None)
        #: Whether the endpoint serves its counters at /metrics (None: not asked yet).
        self._counters_ok: bool | None = None
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        self.prefix = ROOT + self.run_id.encode() + b"/"
        self._rows: list[dict[str, Any]] = []
        #: Per recorded point, its rounds' latencies (s) and whether each round was kept.
        self._samples: list[list[tuple[np.ndarray, bool]]] = []
        self._wrote = False
        self._etcd_was_empty = False

    # ------------------------------------------------------------------ entry point

    async def run(self) -> Measurements:
        """Preflight, all phases, cleanup; the measurements. Raises EtcdError/TracesimError."""
        info = await self._preflight()
        maintenance: dict[str, Any] = {}
        try:
            self._wrote = True  # from here on, anything may have been written
            rev0 = (await self.client.status()).revision
            puts = await self._writes()
            rev1 = (await self.client.status()).revision
            maintenance["revision_before"] = rev0
            maintenance["revision_after_writes"] = rev1
            maintenance["puts_acknowledged"] = puts
            maintenance["revisions_per_put"] = (rev1 - rev0) / puts if puts else float("nan")
            await self._reads()
            await self._watches()
            maintenance.update(await self._maintenance())
        except EtcdNoSpace as exc:
            self.progress("NOSPACE alarm: cleaning up (delete, compact, defragment, disarm)")
            note = await self._recover_nospace()
            raise EtcdNoSpace(f"{exc}; {note}") from None
        finally:
            with contextlib.suppress(EtcdNoSpace):
                await asyncio.shield(self.cleanup())
        points = pd.DataFrame(self._rows)
        points.insert(0, "point", np.arange(len(points)))
        parts = [
            pd.DataFrame(
                {
                    "point": np.int32(i),
                    "round": np.int16(r),
                    "kept": kept,
                    "latency_ms": lat * 1e3,
                }
            )
            for i, rounds in enumerate(self._samples)
            for r, (lat, kept) in enumerate(rounds)
        ]
        samples = (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame({"point": [], "round": [], "kept": [], "latency_ms": []})
        )
        return Measurements(points, samples, maintenance, info)

    # ------------------------------------------------------------------ preflight / cleanup

    async def _preflight(self) -> dict[str, Any]:
        st = await self.client.status()
        alarms = await self.client.alarms()
        if alarms:
            names = ", ".join(sorted({a for _m, a in alarms}))
            raise EtcdError(
                f"etcd at {self.client.endpoint} has an active alarm ({names}); fix and disarm "
                "it before calibrating (etcdctl alarm list / alarm disarm)"
            )
        foreign = await self.client.count(b"\0", ROOT) + await self.client.count(
            prefix_end(ROOT), b"\0"
        )
        leftovers = await self.client.count(ROOT, prefix_end(ROOT))
        self._etcd_was_empty = foreign == 0 and leftovers == 0
        if foreign and not self.allow_foreign_keys:
            raise EtcdError(
                f"etcd at {self.client.endpoint} holds {foreign} keys that tracesim did not "
                "create; calibrate a dedicated etcd, or pass --i-know-this-is-not-production "
                "(the run compacts and defragments it)"
            )
        if leftovers:
            self.progress(
                f"note: {leftovers} keys under {ROOT.decode()} from an earlier interrupted run "
                "are left alone"
            )
        return {
            "endpoint": self.client.endpoint,
            "etcd_version": st.version,
            "member_id": st.member_id,
            "prefix": self.prefix.decode(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "foreign_keys": foreign,
            "client_cpus": os.cpu_count(),
            "plan": asdict(self.plan),
        }

    async def cleanup(self) -> int:
        """Delete every key of this run (idempotent); returns how many were deleted."""
        if not self._wrote:
            return 0
        # A put sent before a cancellation (Ctrl-C) can still be applied after the first
        # delete: etcd applies a request it has received even if its client has gone. So
        # delete until the prefix stays empty for a moment.
        deleted = 0
        end = prefix_end(self.prefix)
        for _ in range(CLEANUP_ROUNDS):
            deleted += await self.client.delete_prefix(self.prefix)
            await asyncio.sleep(CLEANUP_SETTLE_S)
            if await self.client.count(self.prefix, end) == 0:
                break
        self._wrote = False
        if self._etcd_was_empty:
            # Nobody else's history to keep: drop ours so the etcd is as it was.
            with contextlib.suppress(EtcdError):
                await self.client.compact((await self.client.status()).revision)
        return deleted

    async def _recover_nospace(self) -> str:
        """After NOSPACE: delete ours, compact, defragment, disarm; a note saying what was done."""
        deleted = await self.client.delete_prefix(self.prefix)
        self._wrote = False
        rev = (await self.client.status()).revision
        with contextlib.suppress(EtcdError):  # already compacted to rev is fine
            await self.client.compact(rev)
        await self.client.defragment()
        for member, alarm in await self.client.alarms():
            if alarm == "NOSPACE":
                await self.client.disarm(member, alarm)
        left = await self.client.alarms()
        state = "alarm disarmed" if not left else f"alarms still active: {left}"
        return (
            f"deleted the run's {deleted} keys, compacted to revision {rev}, defragmented, "
            f"{state}; no profile written"
        )

    # ------------------------------------------------------------------ phases

    def _record(self, row: dict[str, Any], lat_s: np.ndarray, elapsed_s: float) -> None:
        row.update(_summary(lat_s, elapsed_s))
        row["duration_s"] = elapsed_s
        row["requests"] = len(lat_s)
        self._rows.append(row)
        self._samples.append([(lat_s, True)])

    async def _measure(self, points: list[_Point]) -> None:
        """Measure ``points`` in ``Plan.rounds`` interleaved rounds (alternating order) and
        record each from its kept rounds (:func:`keep_rounds`)."""
        n = max(1, self.plan.rounds)
        for r in range(n):
            for pt in points if r % 2 == 0 else points[::-1]:
                before = await self._counters()
                cpu_s = time.process_time()  # this process is the calibration's client
                pt.rounds.append(
                    await closed_loop(
                        pt.concurrency,
                        pt.duration_s / n,
                        max(1, math.ceil(pt.max_requests / n)),
                        pt.request,
                    )
                )
                cpu_s = time.process_time() - cpu_s
                after = await self._counters() if before is not None else None
                grown = None
                if before is not None and after is not None:
                    grown = {**diff_counters(before, after), "client_cpu_s": cpu_s}
                pt.counters.append(grown)
        for pt in points:
            kept = keep_rounds(pt.rounds, self.plan.disturbed_ratio)
            use = [rd for rd, k in zip(pt.rounds, kept, strict=True) if k]
            lat = np.concatenate([rd[0] for rd in use])
            elapsed = sum(rd[1] for rd in use)
            row = dict(pt.row)
            row.update(_summary(lat, elapsed))
            thr = [len(rd[0]) / rd[1] for rd in pt.rounds if rd[1] > 0]
            row.update(
                errors=sum(rd[2] for rd in pt.rounds),
                duration_s=elapsed,
                requests=len(lat),
                rounds=len(pt.rounds),
                rounds_kept=int(sum(kept)),
                round_spread=1 - min(thr) / max(thr) if thr and max(thr) > 0 else 0.0,
            )
            row.update(round_range(use))
            counted = [c for c, k in zip(pt.counters, kept, strict=True) if k]
            row.update(counter_summary(use, counted, pt.concurrency, pt.row["phase"]))
            self._rows.append(row)
            self._samples.append([(rd[0], k) for rd, k in zip(pt.rounds, kept, strict=True)])

    async def _counters(self) -> dict[str, float] | None:
        """etcd's counters now, or None (also from then on) if etcd does not serve them."""
        if self._counters_ok is False:
            return None
        found = await self.client.counters()
        if found is None and self._counters_ok is None:
            self.progress(
                "note: the endpoint serves no counters at /metrics; batch sizes (puts per "
                "fsync) and CPU per request are not measured"
            )
        self._counters_ok = found is not None
        return found

    async def _writes(self) -> int:
        p = self.plan
        total = 0
        rng = np.random.default_rng(0)
        for size_class in (*p.write_sizes, "large"):
            size = SIZES_BYTES[size_class]
            value = rng.bytes(size)
            levels = p.large_concurrency if size_class == "large" else p.write_concurrency
            cap = p.large_max_requests if size_class == "large" else p.max_requests_per_point
            base = self.prefix + f"w/{size_class}/".encode()

            async def put(c: int, _i: int, base: bytes = base, value: bytes = value) -> None:
                await self.client.put(base + str(c).encode(), value)

            points = [
                _Point(
                    dict(
                        phase="write",
                        op="put",
                        consistency="",
                        size_class=size_class,
                        value_bytes=size,
                        keys_per_request=1,
                        concurrency=conc,
                    ),
                    conc,
                    put,
                    p.point_s,
                    cap,
                )
                for conc in levels
            ]
            first = len(self._rows)
            try:
                await self._measure(points)
            finally:  # also on NOSPACE: count what was written
                for pt in points:
                    total += requests_made(pt.rounds, pt.concurrency)
            for r in self._rows[first:]:
                batch = r.get("puts_per_fsync", float("nan"))
                self.progress(
                    f"put {size_class:5s} {size:>9,d} B x{r['concurrency']:<3d}: "
                    f"{r['throughput_per_s']:8.0f}/s  p50 {r['p50_ms']:7.2f} ms  "
                    f"p99 {r['p99_ms']:7.2f} ms  ({r['rounds_kept']}/{r['rounds']} rounds kept)"
                    + ("" if math.isnan(batch) else f"  {batch:.2f} puts/fsync")
                )
        return total

    async def _reads(self) -> None:
        p = self.plan
        value = np.random.default_rng(1).bytes(p.range_value_bytes)
        sem = asyncio.Semaphore(32)

        async def load(key: bytes) -> None:
            async with sem:
                await self.client.put(key, value)

        keys = [self.prefix + f"r/{n}/{i:05d}".encode() for n in p.range_sizes for i in range(n)]
        await gather_or_cancel([load(k) for k in keys])
        one = self.prefix + b"r/%d/00000" % p.range_sizes[0]
        for consistency in ("serializable", "linearizable"):
            ser = consistency == "serializable"

            async def get(_c: int, _i: int, ser: bool = ser) -> None:
                await self.client.range(one, serializable=ser)

            row = dict(
                phase="read",
                consistency=consistency,
                size_class="read",
                value_bytes=p.range_value_bytes,
            )
            points = [
                _Point(
                    dict(row, op="get", keys_per_request=1, concurrency=conc),
                    conc,
                    get,
                    p.read_point_s,
                    p.max_requests_per_point,
                )
                for conc in p.read_concurrency
            ]
            for n in p.range_sizes:
                start = self.prefix + f"r/{n}/".encode()

                async def rng_read(_c: int, _i: int, start: bytes = start, ser: bool = ser) -> None:
                    await self.client.range(start, prefix_end(start), serializable=ser)

                points.append(
                    _Point(
                        dict(row, op="range", keys_per_request=n, concurrency=1),
                        1,
                        rng_read,
                        p.read_point_s,
                        p.max_requests_per_point,
                    )
                )
            await self._measure(points)
            g = [r for r in self._rows if r["phase"] == "read" and r["consistency"] == consistency]
            self.progress(
                f"{consistency} reads: get p50 {g[0]['p50_ms']:.2f} ms, "
                f"range {p.range_sizes[-1]} keys p50 {g[-1]['p50_ms']:.2f} ms"
            )

    async def _watches(self) -> None:
        p = self.plan
        wprefix = self.prefix + b"watch/"
        n_events = p.watch_events
        recv = np.full((p.watchers, n_events), np.nan)
        readies = [asyncio.Event() for _ in range(p.watchers)]
        done = asyncio.Event()
        got = [0] * p.watchers

        async def watcher(w: int) -> None:
            async for t, events in self.client.watch(wprefix, ready=readies[w]):
                for ev in events:
                    if ev.get("type", "PUT") != "PUT":
                        continue
                    i = _event_index(ev)
                    if 0 <= i < n_events and np.isnan(recv[w, i]):
                        recv[w, i] = t
                        got[w] += 1
                if got[w] >= n_events:
                    if all(g >= n_events for g in got):
                        done.set()
                    return

        tasks = [asyncio.create_task(watcher(w)) for w in range(p.watchers)]
        try:
            give_up = time.perf_counter() + 30
            while not all(r.is_set() for r in readies):
                for t in tasks:  # a watcher that failed to connect: raise its error
                    if t.done():
                        t.result()
                        raise EtcdError(f"etcd at {self.client.endpoint} closed a watch early")
                if time.perf_counter() > give_up:
                    raise EtcdError(
                        f"etcd at {self.client.endpoint} did not create {p.watchers} watches "
                        "within 30 s"
                    )
                await asyncio.sleep(0.01)
            value = np.random.default_rng(2).bytes(SIZES_BYTES["lease"])
            sent = np.zeros(n_events)
            put_lat = np.zeros(n_events)
            t_first = time.perf_counter()
            for i in range(n_events):
                t0 = time.perf_counter()
                sent[i] = t0
                await self.client.put(wprefix + f"{i:06d}".encode(), value)
                put_lat[i] = time.perf_counter() - t0
            elapsed = time.perf_counter() - t_first
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=10)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        delivery = (recv - sent[None, :]).ravel()
        delivered = delivery[~np.isnan(delivery)]
        missing = int(np.isnan(delivery).sum())
        self._record(
            dict(
                phase="watch",
                op="put",
                consistency="",
                size_class="lease",
                value_bytes=SIZES_BYTES["lease"],
                keys_per_request=1,
                concurrency=1,
                errors=0,
                watchers=p.watchers,
            ),
            put_lat,
            elapsed,
        )
        row = dict(
            phase="watch",
            op="deliver",
            consistency="",
            size_class="lease",
            value_bytes=SIZES_BYTES["lease"],
            keys_per_request=1,
            concurrency=1,
            errors=missing,
            watchers=p.watchers,
        )
        self._record(row, delivered, elapsed)
        r = self._rows[-1]
        self.progress(
            f"watch: {p.watchers} watchers x {n_events} events, delivered {len(delivered)} "
            f"(missing {missing}), p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms"
        )

    async def _maintenance(self) -> dict[str, Any]:
        c = self.client
        out: dict[str, Any] = {}
        # DB sizes in the status are refreshed at each backend commit (every 100 ms by
        # default): wait past one before every reading.
        settle_s = 0.25
        await asyncio.sleep(settle_s)
        st = await c.status()
        out["db_size_before_bytes"] = st.db_size_bytes
        out["db_in_use_before_bytes"] = st.db_size_in_use_bytes
        out["revision_compacted"] = st.revision
        t0 = time.perf_counter()
        await c.compact(st.revision, physical=True)
        out["compaction_s"] = time.perf_counter() - t0
        out["revisions_compacted"] = st.revision - 1
        await asyncio.sleep(settle_s)
        st = await c.status()
        out["db_size_after_compaction_bytes"] = st.db_size_bytes
        out["db_in_use_after_compaction_bytes"] = st.db_size_in_use_bytes
        t0 = time.perf_counter()
        await c.defragment()
        out["defrag_s"] = time.perf_counter() - t0
        await asyncio.sleep(settle_s)
        st = await c.status()
        out["db_size_after_defrag_bytes"] = st.db_size_bytes
        out["db_in_use_after_defrag_bytes"] = st.db_size_in_use_bytes
        self.progress(
            "db size: {:.1f} MB -> compaction ({:.2f} s) -> {:.1f} MB (in use {:.1f} MB) -> "
            "defrag ({:.2f} s) -> {:.1f} MB".format(
                out["db_size_before_bytes"] / 1e6,
                out["compaction_s"],
                out["db_size_after_compaction_bytes"] / 1e6,
                out["db_in_use_after_compaction_bytes"] / 1e6,
                out["defrag_s"],
                out["db_size_after_defrag_bytes"] / 1e6,
            )
        )
        return out


def keep_rounds(rounds: list[tuple[np.ndarray, float, int]], disturbed_ratio: float) -> list[bool]:
    """Which rounds (latencies, elapsed s, errors) of one point to keep: those whose
    throughput is at least ``1 - disturbed_ratio`` of the median round's. A closed loop on a
    shared machine is only ever slowed down by a disturbance, so a round well below the
    median is the disturbed one; the median round itself is always kept."""
    thr = np.array([len(lat) / el if el > 0 else 0.0 for lat, el, _e in rounds])
    if len(thr) < 3:  # with one or two rounds there is no majority to judge by
        return [True] * len(thr)
    floor = (1 - disturbed_ratio) * float(np.median(thr))
    return [bool(t >= floor) for t in thr]


def diff_counters(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """How much each counter grew from ``before`` to ``after``."""
    return {k: after[k] - before[k] for k in before}


def requests_made(rounds: list[tuple[np.ndarray, float, int]], concurrency: int) -> int:
    """Requests a closed loop of ``concurrency`` clients made over ``rounds``: the answered
    ones and, per round, the untimed first one of each client."""
    return sum(len(lat) + concurrency for lat, _el, _e in rounds)


def counter_summary(
    rounds: list[tuple[np.ndarray, float, int]],
    counters: list[dict[str, float] | None],
    concurrency: int,
    phase: str,
) -> dict[str, float]:
    """What the counters say about a point, from their growth over each of its ``rounds``
    (``counters``, one per round; None where unknown); every request of the rounds counts,
    the untimed first one of each client included. ``etcd_cpu_us_per_request`` and
    ``client_cpu_us_per_request``: CPU time of the etcd process and of the calibration's
    client per request; for puts also ``wal_fsyncs``, ``puts_per_fsync`` (the mean batch),
    ``fsync_mean_ms`` (one WAL fdatasync) and ``backend_commit_mean_ms``. NaN where a round's
    counters are unknown. The calibration is the endpoint's only client (it refuses foreign
    keys), so etcd's counters count its requests."""
    nan = float("nan")
    out = dict(etcd_cpu_us_per_request=nan, client_cpu_us_per_request=nan)
    if phase == "write":
        out.update(wal_fsyncs=nan, puts_per_fsync=nan, fsync_mean_ms=nan)
        out.update(backend_commit_mean_ms=nan)
    known = [c for c in counters if c is not None]
    if not known or len(known) < len(counters):
        return out
    total = {k: sum(c[k] for c in known) for k in known[0]}
    requests = requests_made(rounds, concurrency)
    if requests:
        out["etcd_cpu_us_per_request"] = total["etcd_cpu_s"] / requests * 1e6
        out["client_cpu_us_per_request"] = total["client_cpu_s"] / requests * 1e6
    if phase != "write":
        return out
    if total["wal_fsyncs"] > 0:
        out["wal_fsyncs"] = total["wal_fsyncs"]
        out["puts_per_fsync"] = requests / total["wal_fsyncs"]
        out["fsync_mean_ms"] = total["wal_fsync_s"] / total["wal_fsyncs"] * 1e3
    if total["backend_commits"] > 0:
        out["backend_commit_mean_ms"] = total["backend_commit_s"] / total["backend_commits"] * 1e3
    return out


def round_range(rounds: list[tuple[np.ndarray, float, int]]) -> dict[str, float]:
    """The smallest and largest value over ``rounds`` (latencies s, elapsed s, errors) of
    each of :data:`~.validate.METRICS`, as ``<metric>_round_min`` / ``<metric>_round_max``: how
    much the measurement itself moved between rounds of one point (sampling noise and the
    machine's drift), against which a model's error can be judged. The pooled value lies
    within the range for means and throughputs; a pooled p99 usually does. NaN for a point
    with fewer than two rounds (no spread to see)."""
    out: dict[str, float] = {}
    per_round = [_summary(lat, elapsed) for lat, elapsed, _e in rounds if len(lat)]
    for metric in METRICS:
        vals = [r[metric] for r in per_round]
        two = len(vals) >= 2
        out[f"{metric}_round_min"] = float(min(vals)) if two else float("nan")
        out[f"{metric}_round_max"] = float(max(vals)) if two else float("nan")
    return out


def _event_index(ev: dict[str, Any]) -> int:
    """The put's index from a watch event's key (``.../watch/000123``)."""
    key = unb64(ev["kv"]["key"])
    return int(key.rsplit(b"/", 1)[1])


async def measure(
    endpoint: str,
    plan: Plan,
    *,
    allow_foreign_keys: bool = False,
    progress: Progress | None = None,
    timeout_s: float = 30.0,
    cacert: str | None = None,
    cert: str | None = None,
    key: str | None = None,
) -> Measurements:
    """Run the calibration workload against ``endpoint``; the measurements.

    Raises :class:`~tracesim.calibrate.client.EtcdError` (a TracesimError) for an unreachable
    endpoint, a TLS problem, foreign keys without ``allow_foreign_keys``, or NOSPACE (after
    cleaning up).
    """
    if plan.watchers + max(plan.write_concurrency) > 4000:
        raise TracesimError("too many connections in the plan (watchers + concurrency > 4000)")
    async with EtcdClient(
        endpoint,
        timeout_s=timeout_s,
        max_connections=plan.watchers + max(plan.write_concurrency, default=1) + 16,
        cacert=cacert,
        cert=cert,
        key=key,
    ) as client:
        return await Calibration(
            client, plan, allow_foreign_keys=allow_foreign_keys, progress=progress
        ).run()
