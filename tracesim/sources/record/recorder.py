"""The recorder: LIST then WATCH every resource, and journal what the server says.

Per resource (:class:`ResourceRecorder`), as a client-go reflector does it:

1. a paginated LIST (``limit``/``continue``) whose objects become ``LISTED`` rows;
2. a WATCH from the list's resourceVersion with ``allowWatchBookmarks`` and a server-side
   ``timeoutSeconds`` (a clean end just re-watches); every event and bookmark advances the
   resourceVersion, so a dropped stream (connection reset, a line cut in half, a malformed
   line, a stall) resumes exactly where it stopped, after a jittered exponential backoff;
3. on ``410 Gone`` (as an HTTP status or an ``ERROR`` event) the history is lost: a re-LIST,
   a ``GAP`` row saying why, then the difference against what the recorder knew (vanished
   objects ``DELETED``, changed ones ``MODIFIED``, new ones ``ADDED``, all ``relist=true``);
4. ``429`` waits for ``Retry-After``; 5xx and connection errors back off; 401 re-runs the
   credential loader once; 401 again, 403 and 404 stop that resource only (it is reported and
   the others keep recording).

Servers that give no real resourceVersions (test emulators) are still recorded: objects are
fingerprinted by content, the state they replay when a watch starts is recognised and not
recorded twice, and a reconnect is treated as a gap (re-LIST and difference), because such a
server cannot resume.

All rows go through one :class:`RowSink`: one receive clock (UTC microseconds, never going
backwards, so rows of all resources are in time order as the writer requires) and one
buffer that a flusher task hands to the :class:`~tracesim.trace.writer.TraceWriter` in a
worker thread every ``flush_interval_s`` (journal fsync: a kill -9 loses at most that long).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import fcntl
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ...errors import TracesimError
from ...trace.manifest import MANIFEST_NAME, write_json_atomic
from ...trace.objects import object_row
from ...trace.writer import TraceWriter
from .client import ApiError, Backoff, ConnectError, KubeClient, sleep_or_stop
from .discovery import DEFAULT_RESOURCES, ResourceSpec, resolve_resources
from .kubeconfig import ClusterAuth
from .redact import Redaction, redact

LOCK_NAME = ".recorder.lock"
_WATCH_TYPES = frozenset(("ADDED", "MODIFIED", "DELETED"))
_OBJECT_KEY = b'"object":'


class StreamBroken(Exception):
    """The watch stream cannot be trusted past this point (malformed or cut line)."""


class Gone(Exception):
    """410: the resourceVersion is older than the server's history."""


class Fatal(Exception):
    """This resource cannot be recorded (forbidden, not found, credentials rejected)."""


@dataclass
class RecordOptions:
    """How to record. Times in seconds.

    ``watch_timeout_s`` is the range the server-side ``timeoutSeconds`` of each watch is drawn
    from (client-go uses 5-10 minutes so that watches do not expire together);
    ``flush_interval_s`` bounds what a kill -9 loses; ``seed`` seeds the backoff jitter.
    """

    resources: Sequence[str] = DEFAULT_RESOURCES
    namespace: str | None = None
    duration_s: float | None = None
    raw_objects: bool = False
    redaction: Redaction = field(default_factory=Redaction)
    flush_interval_s: float = 0.5
    page_limit: int = 500
    watch_timeout_s: tuple[float, float] = (300.0, 600.0)
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    manifest_interval_s: float = 5.0
    seed: int | None = None
    rotate_bytes: int = 256 * 1024 * 1024
    rotate_s: float = 3600.0

    def manifest_options(self) -> dict[str, Any]:
        """The trace manifest's ``options``."""
        return {
            "raw_objects": self.raw_objects,
            "keep_env": self.redaction.keep_env,
            "keep_configmaps": self.redaction.keep_configmaps,
            "redaction": self.redaction.options(),
            "namespace": self.namespace,
            "resources": list(self.resources),
        }


@dataclass
class ResourceStats:
    """What happened to one resource. ``events`` counts rows (LISTED, watch and re-LIST
    rows, not GAP markers); ``bytes`` sums their ``size_bytes``."""

    resource: str
    kind: str | None = None
    status: str = "starting"  # listing, watching, relisting, backoff, failed, stopped
    events: int = 0
    bytes: int = 0
    listed: int = 0
    reconnects: int = 0
    rewatches: int = 0
    relists: int = 0
    gaps: int = 0
    errors: int = 0
    duplicates_skipped: int = 0
    error_counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def count_error(self, category: str, message: str) -> None:
        self.errors += 1
        self.error_counts[category] = self.error_counts.get(category, 0) + 1
        self.error = message

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RowSink:
    """The shared receive clock and row buffer, drained to the writer in a worker thread.

    Flushes run one at a time, in order, in a single worker thread, so rows reach the journal
    in the order they were buffered whoever (the periodic flusher, a watch applying
    backpressure, the final close) takes them from the buffer."""

    #: Rows buffered before a watch stops reading and writes them itself.
    max_pending_rows = 20_000

    def __init__(self, writer: TraceWriter) -> None:
        self.writer = writer
        self.rows: list[dict[str, Any]] = []
        self._last_us = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trace-writer")
        self.flushed_rows = 0

    def now_us(self) -> int:
        """Receive time, UTC microseconds; never less than the previous call's."""
        t = time.time_ns() // 1000
        if t < self._last_us:
            t = self._last_us
        self._last_us = t
        return t

    def _write(self, rows: list[dict[str, Any]], manifest: dict[str, Any] | None) -> None:
        self.writer.write_rows(rows)
        self.writer.flush()  # journal + fsync
        if manifest is not None:
            write_json_atomic(self.writer.path / MANIFEST_NAME, manifest)

    async def flush(self, manifest: dict[str, Any] | None = None) -> None:
        """Hand the buffered rows to the writer and fsync them; also rewrite ``manifest``."""
        rows, self.rows = self.rows, []
        self.flushed_rows += len(rows)
        job = asyncio.get_running_loop().run_in_executor(self._pool, self._write, rows, manifest)
        # Shielded: cancelling the flusher (at stop) must not drop rows already taken from the
        # buffer; the job still runs, and the final flush queues behind it in the same thread.
        await asyncio.shield(job)

    async def close(self, **kwargs: Any) -> None:
        """Flush and close the writer (``kwargs`` go to ``TraceWriter.close``)."""
        await self.flush()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, lambda: self.writer.close(**kwargs))
        self._pool.shutdown(wait=True)


def _key(meta: dict[str, Any]) -> Any:
    uid = meta.get("uid")
    return uid if uid else (meta.get("namespace"), meta.get("name"))


def _content_fp(obj: dict[str, Any]) -> str:
    return "#" + str(hash(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)))


def _event_object_size(line: bytes, obj: dict[str, Any]) -> int:
    """Bytes of the event's object as received: the slice after ``"object":`` of the line as
    the API server writes it (``{"type":"...","object":{...}}``); otherwise re-encoded."""
    if line.startswith(b'{"type":"'):
        end = len(line.rstrip())
        i = line.find(_OBJECT_KEY, 9)
        if i > 0 and line[end - 1 : end] == b"}":
            return end - 1 - (i + len(_OBJECT_KEY))
    return len(orjson.dumps(obj))


class ResourceRecorder:
    """LIST + WATCH one resource into the sink, until ``stop`` is set or it fails."""

    def __init__(
        self,
        spec: ResourceSpec,
        client: KubeClient,
        sink: RowSink,
        opts: RecordOptions,
        stop: asyncio.Event,
        rng: np.random.Generator,
        report: Callable[[str], None] = lambda msg: None,
    ) -> None:
        self.spec, self.client, self.sink, self.opts, self.stop = spec, client, sink, opts, stop
        self.rng = rng
        self.report = report
        self.path = spec.path(opts.namespace)
        self.stats = ResourceStats(resource=spec.name, kind=spec.kind)
        self.backoff = Backoff(opts.backoff_initial_s, opts.backoff_max_s, rng)
        self.known: dict[Any, tuple[str, dict[str, Any]]] = {}  # key -> (fingerprint, last row)
        self.rv: str | None = None
        self.rv_trusted = True  # False once an object arrives without a resourceVersion
        self._gone_streak = 0  # 410s in a row without a successful LIST
        self.raw = opts.raw_objects
        self.policy = opts.redaction

    # -- rows -------------------------------------------------------------------------------
    def _row(
        self, obj: dict[str, Any], etype: str, ts: int, size: int, relist: bool = False
    ) -> dict[str, Any]:
        if self.raw:
            redact(obj, self.policy)
        try:
            return object_row(obj, etype, ts, size_bytes=size, keep_raw=self.raw, relist=relist)
        except (ValueError, TypeError, AttributeError) as exc:
            # A field we cannot parse (a malformed quantity): keep the event, not the columns.
            self.stats.count_error("bad_object", f"unparsable object: {exc}")
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            bare = {"kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"), "metadata": meta}
            return object_row(bare, etype, ts, size_bytes=size, relist=relist)

    def _emit(self, row: dict[str, Any]) -> None:
        self.sink.rows.append(row)
        self.stats.events += 1
        self.stats.bytes += row["size_bytes"] or 0

    def _retained(self, row: dict[str, Any]) -> dict[str, Any]:
        # The last row of each object is kept for re-LIST deletions; without its raw JSON, so
        # memory follows the number of objects, not their size.
        return {**row, "raw": None} if self.raw else row

    def _fingerprint(self, obj: dict[str, Any], meta: dict[str, Any]) -> tuple[str, str | None]:
        rv = meta.get("resourceVersion")
        if rv:
            return str(rv), str(rv)
        self.rv_trusted = False
        return _content_fp(obj), None

    # -- LIST -------------------------------------------------------------------------------
    async def _list_all(self) -> tuple[list[tuple[dict[str, Any], int]], str | None]:
        """Every object (with its size in bytes) and the list's resourceVersion."""
        items: list[tuple[dict[str, Any], int]] = []
        params: dict[str, str] = {"limit": str(self.opts.page_limit)}
        rv: str | None = None
        while True:
            doc = await self.client.get_json(self.path, params)
            if not isinstance(doc, dict):
                raise StreamBroken("LIST answer is not an object")
            meta = doc.get("metadata") or {}
            list_kind = str(doc.get("kind") or "")
            kind = list_kind[:-4] if list_kind.endswith("List") else self.spec.kind
            api_version = doc.get("apiVersion") or self.spec.api_version
            for item in doc.get("items") or []:
                if not isinstance(item, dict):
                    continue
                size = len(orjson.dumps(item))  # before we add kind/apiVersion (items omit them)
                item.setdefault("kind", kind or self.spec.kind)
                item.setdefault("apiVersion", api_version)
                items.append((item, size))
            rv = meta.get("resourceVersion") or rv
            token = meta.get("continue")
            if not token:
                return items, rv
            params = {"limit": str(self.opts.page_limit), "continue": str(token)}

    async def _initial_list(self) -> None:
        self.stats.status = "listing"
        items, rv = await self._list_all()
        ts = self.sink.now_us()
        for obj, size in items:
            meta = obj.get("metadata") or {}
            fp, _ = self._fingerprint(obj, meta)
            row = self._row(obj, "LISTED", ts, size)
            self.known[_key(meta)] = (fp, self._retained(row))
            self._emit(row)
        self.stats.listed += len(items)
        self.rv = rv or None

    async def _relist(self, reason: str) -> None:
        """Re-LIST after a gap: a GAP row, then the difference with what we knew."""
        self.stats.status = "relisting"
        items, rv = await self._list_all()
        ts = self.sink.now_us()
        self.sink.rows.append(
            {
                "ts": ts,
                "kind": self.spec.kind,
                "api_version": self.spec.api_version,
                "event_type": "GAP",
                "relist": False,
                "namespace": self.opts.namespace if self.spec.namespaced else None,
                "detail": reason,
            }
        )
        old, new = self.known, {}
        for obj, size in items:
            meta = obj.get("metadata") or {}
            key = _key(meta)
            fp, _ = self._fingerprint(obj, meta)
            prev = old.pop(key, None)
            if prev is not None and prev[0] == fp:
                new[key] = prev
                continue
            etype = "ADDED" if prev is None else "MODIFIED"
            row = self._row(obj, etype, ts, size, relist=True)
            new[key] = (fp, self._retained(row))
            self._emit(row)
        for _, last in old.values():  # vanished during the gap: deleted, last state known
            self._emit({**last, "ts": ts, "event_type": "DELETED", "relist": True})
        self.known = new
        self.rv = rv or None
        self.stats.relists += 1
        self.stats.gaps += 1

    # -- WATCH ------------------------------------------------------------------------------
    def _on_line(self, line: bytes, ts: int) -> None:
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise StreamBroken("malformed JSON line in the watch stream") from None
        obj = ev.get("object") if type(ev) is dict else None
        if type(obj) is not dict:
            raise StreamBroken("watch event without an object")
        etype = ev.get("type")
        if etype in _WATCH_TYPES:
            meta = obj.get("metadata") or {}
            fp, rv = self._fingerprint(obj, meta)
            key = _key(meta)
            prev = self.known.get(key)
            # The same version again: a server replaying its state on a new watch.
            if (
                prev is not None
                and prev[0] == fp
                and (etype == "ADDED" or (etype == "MODIFIED" and rv is not None))
            ):
                self.stats.duplicates_skipped += 1
                return
            row = self._row(obj, etype, ts, _event_object_size(line, obj))
            if etype == "DELETED":
                self.known.pop(key, None)
            else:
                self.known[key] = (fp, self._retained(row))
            if rv is not None:
                self.rv = rv
            self._emit(row)
        elif etype == "BOOKMARK":
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.rv = str(rv)
        elif etype == "ERROR":
            code = obj.get("code")
            message = str(obj.get("message") or obj.get("reason") or "watch error")
            if code == 410:
                raise Gone(message)
            raise ApiError(int(code) if isinstance(code, int) else 500, message)
        else:
            raise StreamBroken(f"unknown watch event type {etype!r}")

    async def _watch_once(self) -> None:
        """One watch request until the server ends it (returns) or it breaks (raises)."""
        lo, hi = self.opts.watch_timeout_s
        timeout_s = float(self.rng.uniform(lo, hi)) if hi > lo else lo
        params = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, int(timeout_s))),
        }
        if self.rv:
            params["resourceVersion"] = self.rv
        # No byte for this long means a dead connection (the server ends the watch itself
        # after timeoutSeconds, and real servers send bookmarks about every minute).
        read_timeout_s = timeout_s + max(30.0, timeout_s)
        async with self.client.stream(self.path, params, read_timeout_s=read_timeout_s) as resp:
            self.stats.status = "watching"
            parts: list[bytes] = []
            on_line, sink = self._on_line, self.sink
            async for chunk in resp.content.iter_any():
                nl = chunk.rfind(b"\n")
                if nl < 0:
                    parts.append(chunk)
                    continue
                if parts:
                    parts.append(chunk[:nl])
                    data = b"".join(parts)
                    parts = []
                else:
                    data = chunk[:nl]
                if nl + 1 < len(chunk):
                    parts.append(chunk[nl + 1 :])
                ts = sink.now_us()
                for line in data.split(b"\n"):
                    if line.strip():
                        on_line(line, ts)
                self.backoff.reset()
                self._gone_streak = 0
                if len(sink.rows) >= sink.max_pending_rows:
                    # Backpressure: write before reading more, so memory stays bounded even
                    # when the server sends faster than rows can be stored (TCP pushes back).
                    await sink.flush()
            if b"".join(parts).strip():
                raise StreamBroken("watch stream ended in the middle of a line")

    # -- the loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Record until stopped (returns) or unable to (stats.status == "failed")."""
        try:
            await self._loop()
            self.stats.status = "stopped"
        except Fatal as exc:
            self.stats.status = "failed"
            self.stats.error = str(exc)
            self.report(f"{self.spec.name}: {exc}")
        except asyncio.CancelledError:
            self.stats.status = "stopped"
            raise

    async def _gone_pause(self, reason: str) -> bool:
        """Relist at once after a first 410; back off if 410s repeat. True if stopping."""
        self._gone_streak += 1
        if self._gone_streak == 1:
            return False
        self.stats.status = "backoff"
        return await sleep_or_stop(self.backoff.next_s(), self.stop)

    def _fatal_status(self, exc: ApiError) -> bool:
        return exc.status in (400, 401, 403, 404, 405, 406, 415, 422)

    async def _loop(self) -> None:
        relist_reason: str | None = None
        listed = False
        while not self.stop.is_set():
            try:
                if not listed:
                    await self._initial_list()
                    listed = True
                elif relist_reason is not None:
                    await self._relist(relist_reason)
                    relist_reason = None
                started = time.monotonic()
                await self._watch_once()
                self.stats.rewatches += 1  # the server ended the watch (timeoutSeconds)
                if not self.rv_trusted:
                    relist_reason = "watch ended and the server gives no resourceVersions"
                if time.monotonic() - started < 1.0:
                    # Ended at once (a proxy closing watches early): do not spin.
                    self.stats.status = "backoff"
                    if await sleep_or_stop(self.backoff.next_s(), self.stop):
                        return
                continue
            except Gone as exc:
                self.stats.count_error("gone", f"410 Gone: {exc}")
                relist_reason = f"410 Gone: {exc}"
                if await self._gone_pause(relist_reason):
                    return
                continue
            except ApiError as exc:
                if exc.status == 410:
                    self.stats.count_error("gone", str(exc))
                    if listed:
                        relist_reason = str(exc)
                    # during a LIST: an expired continue token, list again
                    if await self._gone_pause(str(exc)):
                        return
                    continue
                if self._fatal_status(exc):
                    hint = {
                        401: "; the credentials were rejected (refresh them, check --context)",
                        403: "; the credentials may not list/watch it (kubectl auth can-i)",
                        404: "; the server does not serve it",
                    }.get(exc.status, "")
                    self.stats.count_error(f"http_{exc.status}", str(exc))
                    raise Fatal(f"{exc}{hint}") from None
                self.stats.count_error(f"http_{exc.status}", str(exc))
                if exc.status == 429 and exc.retry_after_s is not None:
                    delay = exc.retry_after_s
                else:
                    delay = self.backoff.next_s()
            except ConnectError as exc:
                self.stats.count_error("connection", str(exc))
                delay = self.backoff.next_s()
            except StreamBroken as exc:
                self.stats.count_error("stream", str(exc))
                delay = self.backoff.next_s()
            # A retry after an error: a reconnect, resuming from the last resourceVersion.
            if listed:
                self.stats.reconnects += 1
                if not self.rv_trusted and relist_reason is None:
                    relist_reason = "reconnected and the server gives no resourceVersions"
            self.stats.status = "backoff"
            if await sleep_or_stop(delay, self.stop):
                return


@dataclass
class RecordResult:
    """What a recording produced: the trace directory and per-resource stats."""

    path: Path
    resources: list[ResourceStats]
    failures: dict[str, str]
    status: str


class Recorder:
    """Records the resources of one cluster into a new trace directory.

    ``report(message)`` is called with one line whenever a resource fails; ``stats`` is the
    live list of :class:`ResourceStats` (for a display).
    """

    def __init__(
        self,
        auth: ClusterAuth,
        out: str | os.PathLike[str],
        opts: RecordOptions,
        *,
        overwrite: bool = False,
        report: Callable[[str], None] = lambda msg: None,
    ) -> None:
        self.auth, self.out, self.opts = auth, Path(out), opts
        self.overwrite = overwrite
        self.report = report
        self.stop = asyncio.Event()
        self.stats: list[ResourceStats] = []
        self.recorders: list[ResourceRecorder] = []
        self.failures: dict[str, str] = {}
        self.server_version: str | None = None
        self.started = asyncio.Event()

    async def _check_server(self, client: KubeClient) -> None:
        try:
            doc = await client.get_json("/version")
        except ConnectError as exc:
            raise TracesimError(
                f"cannot reach the API server {exc}; check the server of "
                f"{self.auth.origin} and your network"
            ) from None
        except ApiError as exc:
            if exc.status == 401:
                raise TracesimError(
                    f"{client.server}: 401 Unauthorized: the credentials of "
                    f"{self.auth.origin} were rejected; refresh them"
                ) from None
            if exc.status in (403, 404):
                return  # /version may be closed to us; discovery and LIST will tell
            raise TracesimError(f"{client.server}: {exc}") from None
        if isinstance(doc, dict):
            self.server_version = doc.get("gitVersion")

    def _manifest(self, writer: TraceWriter) -> dict[str, Any]:
        m = writer.manifest
        m["source"]["resources"] = {s.resource: s.as_dict() for s in self.stats}
        m["source"]["failed_resources"] = dict(self.failures)
        return m

    async def run(self, *, handle_signals: bool = False) -> RecordResult:
        """Record until ``duration_s``, :attr:`stop`, a signal, or every resource failing.

        Raises :class:`TracesimError` (one line each) when nothing can be recorded.
        """
        seed = self.opts.seed
        rng = np.random.default_rng(seed)
        async with KubeClient(self.auth) as client:
            await self._check_server(client)
            try:
                specs, self.failures = await resolve_resources(client, self.opts.resources)
            except ConnectError as exc:
                raise TracesimError(f"cannot reach the API server {exc}") from None
            except ApiError as exc:
                raise TracesimError(f"{client.server}: {exc}") from None
            if not specs:
                raise TracesimError("; ".join(self.failures.values()) or "no resources to record")
            for reason in self.failures.values():
                self.report(reason)  # the others are recorded regardless
            writer = TraceWriter(
                self.out,
                "recorded",
                source={
                    "server": client.server,
                    "context": self.auth.context,
                    "credentials": self.auth.origin,
                    "started": datetime.now(UTC).isoformat(),
                },
                cluster={"server_version": self.server_version} if self.server_version else {},
                options=self.opts.manifest_options(),
                journal=True,
                rotate_bytes=self.opts.rotate_bytes,
                rotate_s=self.opts.rotate_s,
                overwrite=self.overwrite,
            )
            lock = _lock(self.out)
            sink = RowSink(writer)
            recorders = [
                ResourceRecorder(spec, client, sink, self.opts, self.stop, rng, self.report)
                for spec in specs
            ]
            self.recorders = recorders
            self.stats = [r.stats for r in recorders]
            for name, reason in self.failures.items():
                st = ResourceStats(resource=name, status="failed", error=reason)
                st.count_error("not_served", reason)
                self.stats.append(st)
            loop = asyncio.get_running_loop()
            if handle_signals:
                import signal

                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, self.stop.set)
            timer = (
                loop.call_later(self.opts.duration_s, self.stop.set)
                if self.opts.duration_s is not None
                else None
            )
            tasks = [asyncio.create_task(r.run(), name=f"record-{r.spec.name}") for r in recorders]
            flusher = asyncio.create_task(self._flush_loop(sink, writer))
            self.started.set()
            status = "complete"
            try:
                stop_wait = asyncio.create_task(self.stop.wait())
                pending = set(tasks)
                while pending and not self.stop.is_set():
                    done, pending = await asyncio.wait(
                        pending | {stop_wait}, return_when=asyncio.FIRST_COMPLETED
                    )
                    pending.discard(stop_wait)
                    for t in done:
                        if t is not stop_wait and t.exception() is not None:
                            raise t.exception()  # type: ignore[misc]  # a bug: keep it
                stop_wait.cancel()
            finally:
                self.stop.set()
                if timer is not None:
                    timer.cancel()
                for t in (*tasks, flusher):
                    t.cancel()
                await asyncio.gather(*tasks, flusher, return_exceptions=True)
                if all(s.status == "failed" for s in self.stats):
                    status = "aborted"
                self._manifest(writer)
                await sink.close(status=status)
                if handle_signals:
                    import signal

                    for sig in (signal.SIGINT, signal.SIGTERM):
                        loop.remove_signal_handler(sig)
                _unlock(self.out, lock)
        if status == "aborted":
            lines = [f"{s.resource}: {s.error}" for s in self.stats if s.error]
            raise TracesimError("; ".join(lines) or "every resource failed")
        return RecordResult(self.out, self.stats, self.failures, status)

    async def _flush_loop(self, sink: RowSink, writer: TraceWriter) -> None:
        next_manifest = time.monotonic() + self.opts.manifest_interval_s
        while True:
            await asyncio.sleep(self.opts.flush_interval_s)
            manifest = None
            if time.monotonic() >= next_manifest:
                # A copy: the worker thread serialises it while this loop keeps counting.
                manifest = copy.deepcopy(self._manifest(writer))
                next_manifest = time.monotonic() + self.opts.manifest_interval_s
            await sink.flush(manifest)


def _lock(out: Path) -> int:
    """Hold an exclusive lock on the trace while recording (``tracesim repair`` checks it)."""
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise TracesimError(f"{out}: another recorder is writing this trace") from None
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _unlock(out: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        (out / LOCK_NAME).unlink()
    os.close(fd)
