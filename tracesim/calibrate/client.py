"""A small asyncio client for etcd's v3 API through its gRPC gateway (JSON over HTTP).

Why the gateway and not a Python etcd client: every etcd v3 server since 3.3 serves the same
JSON mapping of its gRPC API at ``/v3/...`` on the client port, so this needs nothing but
aiohttp (already a tracesim dependency) — no grpcio/protobuf stack to build and pin. The
maintained-looking PyPI clients either wrap grpcio (``aetcd``) or are unmaintained and pinned
to old protobuf releases (``etcd3``, ``aioetcd3``). Latencies measured here include the
gateway's JSON<->protobuf translation (a few tens of microseconds on loopback), which the fitted
``client_rtt_ms`` absorbs, just as a kube-apiserver's client-side cost would be.

Keys and values are bytes; the gateway wants them base64-encoded, and 64-bit integers come back
as JSON strings. Every failure becomes an :class:`EtcdError` (a one-line
:class:`~tracesim.errors.TracesimError`); the NOSPACE alarm is :class:`EtcdNoSpace`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..errors import TracesimError


class EtcdError(TracesimError):
    """etcd could not be reached or refused a request; the message says what to do."""


class EtcdNoSpace(EtcdError):
    """etcd raised its NOSPACE alarm (database size over ``--quota-backend-bytes``)."""


def b64(data: bytes) -> str:
    """``data`` base64-encoded as the gateway's JSON wants it."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Inverse of :func:`b64`."""
    return base64.b64decode(text)


def prefix_end(prefix: bytes) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix`` (etcd's convention)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # all keys


@dataclass(frozen=True)
class Status:
    """``/v3/maintenance/status`` of the member answering: sizes in bytes."""

    version: str
    member_id: str
    revision: int
    db_size_bytes: int
    db_size_in_use_bytes: int
    raft_index: int
    alarms: tuple[str, ...]


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` normalised (no trailing slash) or :class:`EtcdError` if it is not a URL."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise EtcdError(
            f"endpoint {endpoint!r} is not a URL with a port; write e.g. http://127.0.0.1:2379"
        )
    return endpoint.rstrip("/")


#: etcd's own counters (Prometheus text at ``/metrics`` on the client port): WAL fdatasyncs
#: (one per raft Ready that carries entries: a batch of proposals) and backend commits, with
#: the seconds they took, and the CPU seconds the etcd process used; our name -> the metric's.
ETCD_COUNTERS = {
    "wal_fsyncs": "etcd_disk_wal_fsync_duration_seconds_count",
    "wal_fsync_s": "etcd_disk_wal_fsync_duration_seconds_sum",
    "backend_commits": "etcd_disk_backend_commit_duration_seconds_count",
    "backend_commit_s": "etcd_disk_backend_commit_duration_seconds_sum",
    "etcd_cpu_s": "process_cpu_seconds_total",
}


def parse_counters(text: str) -> dict[str, float] | None:
    """The :data:`ETCD_COUNTERS` from a ``/metrics`` page (Prometheus text format, unlabelled
    samples), or None if any is missing."""
    found: dict[str, float] = {}
    wanted = {metric: ours for ours, metric in ETCD_COUNTERS.items()}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            try:
                found[wanted[name]] = float(value.split()[0])
            except (ValueError, IndexError):
                return None
    return found if len(found) == len(ETCD_COUNTERS) else None


class EtcdClient:
    """One etcd endpoint; use as ``async with EtcdClient(url) as c: ...``.

    ``max_connections`` bounds the HTTP/1.1 connections (one per request in flight and one per
    open watch). ``timeout_s`` bounds every non-watch request. For TLS endpoints pass
    ``cacert`` (and ``cert``/``key`` for client authentication).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 30.0,
        max_connections: int = 1024,
        cacert: str | None = None,
        cert: str | None = None,
        key: str | None = None,
    ) -> None:
        self.endpoint = check_endpoint(endpoint)
        self.timeout_s = timeout_s
        self._max_connections = max_connections
        self._ssl: ssl.SSLContext | bool = True
        if self.endpoint.startswith("https:"):
            ctx = ssl.create_default_context(cafile=cacert)
            if cert:
                ctx.load_cert_chain(cert, key)
            self._ssl = ctx
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> EtcdClient:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            json_serialize=json.dumps,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ transport

    def _fail(self, exc: BaseException) -> EtcdError:
        """A transport failure as a one-line message naming the likely cause and the fix."""
        text = str(exc) or type(exc).__name__
        if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
            return EtcdError(
                f"{self.endpoint}: TLS certificate not trusted ({text.splitlines()[0]}); "
                "pass --cacert (and --cert/--key if the server wants client certificates)"
            )
        if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
            return EtcdError(
                f"{self.endpoint}: TLS handshake failed ({text.splitlines()[0]}); check "
                "--cacert/--cert/--key"
            )
        if isinstance(exc, aiohttp.ClientConnectorError | ConnectionError | OSError):
            return EtcdError(
                f"cannot connect to etcd at {self.endpoint} ({text.splitlines()[0]}); is it "
                "running and is --endpoints right?"
            )
        if isinstance(exc, TimeoutError):
            return EtcdError(
                f"etcd at {self.endpoint} did not answer within {self.timeout_s:g} s; is it "
                "overloaded or is the URL pointing at something else?"
            )
        return EtcdError(f"etcd at {self.endpoint}: {type(exc).__name__}: {text.splitlines()[0]}")

    def _not_json(self, status: int, body: bytes) -> EtcdError:
        if b"HTTP request to an HTTPS server" in body:
            return EtcdError(
                f"{self.endpoint} speaks TLS; use an https:// endpoint and pass --cacert "
                "(and --cert/--key if it wants client certificates)"
            )
        return EtcdError(
            f"{self.endpoint} did not answer like etcd's v3 gateway (HTTP {status}: "
            f"{body[:80]!r}); is this an etcd >= 3.3 client URL?"
        )

    async def _speaks_tls(self) -> bool:
        """True if the endpoint completes a TLS handshake (certificate not checked): used to
        explain a plain-HTTP request that the server dropped."""
        parts = urlsplit(self.endpoint)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            _r, w = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port, ssl=ctx), timeout=5
            )
        except (OSError, TimeoutError):
            return False
        w.close()
        return True

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<path>``; the decoded JSON reply, or :class:`EtcdError`."""
        assert self._session is not None, "use EtcdClient in 'async with'"
        try:
            async with self._session.post(f"{self.endpoint}/v3/{path}", json=body) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ServerDisconnectedError as exc:
            if self.endpoint.startswith("http:") and await self._speaks_tls():
                raise self._not_json(0, b"HTTP request to an HTTPS server") from None
            raise self._fail(exc) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._fail(exc) from None
        try:
            data = json.loads(raw)
        except ValueError:
            raise self._not_json(status, raw) from None
        if status != 200 or "error" in data:
            msg = str(data.get("message") or data.get("error") or raw[:200])
            if "database space exceeded" in msg or "NOSPACE" in msg:
                raise EtcdNoSpace(
                    f"etcd at {self.endpoint} ran out of space (NOSPACE alarm: {msg}); raise "
                    "etcd's --quota-backend-bytes, or calibrate with --quick"
                )
            raise EtcdError(f"etcd at {self.endpoint} refused {path}: {msg}")
        return data

    # ------------------------------------------------------------------ KV

    async def put(self, key: bytes, value: bytes) -> int:
        """Put one key; returns the new revision."""
        data = await self.call("kv/put", {"key": b64(key), "value": b64(value)})
        return int(data["header"]["revision"])

    async def range(
        self,
        key: bytes,
        range_end: bytes | None = None,
        *,
        serializable: bool = False,
        count_only: bool = False,
        keys_only: bool = False,
        limit: int = 0,
    ) -> dict[str, Any]:
        """Range read ``[key, range_end)`` (``key`` alone if no ``range_end``); raw reply.

        ``serializable`` reads the member's local state (no read-index round); otherwise the
        read is linearizable.
        """
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        if serializable:
            body["serializable"] = True
        if count_only:
            body["count_only"] = True
        if keys_only:
            body["keys_only"] = True
        if limit:
            body["limit"] = limit
        return await self.call("kv/range", body)

    async def count(self, key: bytes, range_end: bytes) -> int:
        """Number of keys in ``[key, range_end)``."""
        data = await self.range(key, range_end, count_only=True)
        return int(data.get("count", 0))

    async def delete_prefix(self, prefix: bytes) -> int:
        """Delete every key starting with ``prefix``; returns how many were deleted."""
        data = await self.call(
            "kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        )
        return int(data.get("deleted", 0))

    # ------------------------------------------------------------------ maintenance

    async def status(self) -> Status:
        """The answering member's status (version, revision, DB sizes, alarms)."""
        d = await self.call("maintenance/status", {})
        return Status(
            version=str(d.get("version", "")),
            member_id=str(d["header"]["member_id"]),
            revision=int(d["header"].get("revision", 0)),
            db_size_bytes=int(d.get("dbSize", 0)),
            db_size_in_use_bytes=int(d.get("dbSizeInUse", d.get("dbSize", 0))),
            raft_index=int(d.get("raftIndex", 0)),
            alarms=tuple(d.get("errors", ())),
        )

    async def counters(self) -> dict[str, float] | None:
        """etcd's own counters (:data:`ETCD_COUNTERS`), or None where ``/metrics`` does not
        serve them (metrics moved to another URL, a proxy in front): the caller measures
        without them."""
        assert self._session is not None, "use EtcdClient in 'async with'"
        try:
            async with self._session.get(f"{self.endpoint}/metrics") as resp:
                if resp.status != 200:
                    return None
                return parse_counters(await resp.text())
        except (TimeoutError, aiohttp.ClientError, UnicodeDecodeError):
            return None

    async def compact(self, revision: int, physical: bool = True) -> None:
        """Compact history up to ``revision`` (``physical``: wait until it is on disk)."""
        await self.call("kv/compaction", {"revision": str(revision), "physical": physical})

    async def defragment(self) -> None:
        """Defragment the answering member (blocks it while the file is rewritten)."""
        await self.call("maintenance/defragment", {})

    async def alarms(self) -> list[tuple[str, str]]:
        """Active alarms as ``(member_id, alarm)`` pairs, e.g. ``("123", "NOSPACE")``."""
        d = await self.call("maintenance/alarm", {"action": "GET"})
        return [(str(a.get("memberID", "0")), str(a.get("alarm"))) for a in d.get("alarms", [])]

    async def disarm(self, member_id: str, alarm: str) -> None:
        """Deactivate one alarm."""
        await self.call(
            "maintenance/alarm", {"action": "DEACTIVATE", "memberID": member_id, "alarm": alarm}
        )

    # ------------------------------------------------------------------ watch

    async def watch(
        self, prefix: bytes, start_revision: int = 0, ready: asyncio.Event | None = None
    ) -> AsyncIterator[tuple[float, list[dict[str, Any]]]]:
        """Watch every key under ``prefix``; yields ``(perf_counter_s, events)`` per message.

        One HTTP connection per watch (the gateway streams newline-delimited JSON). ``ready``
        is set once etcd confirmed the watch was created. Ends when the caller stops
        iterating or the connection closes.
        """
        assert self._session is not None, "use EtcdClient in 'async with'"
        req: dict[str, Any] = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
        if start_revision:
            req["start_revision"] = str(start_revision)
        try:
            async with self._session.post(
                f"{self.endpoint}/v3/watch",
                json={"create_request": req},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s),
            ) as resp:
                if resp.status != 200:
                    raise self._not_json(resp.status, await resp.read())
                async for line in resp.content:
                    t = time.perf_counter()
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result", {})
                    if result.get("created") and ready is not None:
                        ready.set()
                    events = result.get("events")
                    if events:
                        yield t, events
        except (aiohttp.ClientError, OSError) as exc:
            raise self._fail(exc) from None
