"""Async HTTP to the Kubernetes API: JSON GETs, streamed watches, errors, backoff.

One :class:`KubeClient` (one aiohttp session, one connection pool) serves every resource of a
recording. Errors become :class:`ApiError` (an HTTP status with the server's ``Status``
message) or :class:`ConnectError` (no HTTP answer); neither carries request headers, so a
credential cannot reach a message. A 401 re-runs the credential loader once (an expired exec
plugin or service-account token) before it is reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import numpy as np
import orjson

from .kubeconfig import ClusterAuth, safe_url


class ConnectError(Exception):
    """No HTTP answer: refused, reset, DNS, TLS handshake, timeout."""


class ApiError(Exception):
    """An HTTP error answer. ``status`` is the code, ``retry_after_s`` the Retry-After header."""

    def __init__(self, status: int, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


_REASONS = {
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    410: "410 Gone",
    429: "429 Too Many Requests",
}


def _status_message(status: int, body: bytes) -> str:
    """The message of a Kubernetes ``Status`` body (first line, bounded), else the reason."""
    reason = _REASONS.get(status, f"HTTP {status}")
    try:
        doc = orjson.loads(body)
        msg = doc.get("message") if isinstance(doc, dict) else None
    except orjson.JSONDecodeError:
        msg = None
    if msg:
        return f"{reason}: {str(msg).splitlines()[0][:300]}"
    return reason


def _retry_after_s(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from API servers; fall back to our backoff


class Backoff:
    """Jittered exponential backoff: ``initial_s * 2**n`` capped at ``max_s``, times a
    uniform factor in [0.5, 1.5) so that many clients do not retry in lockstep."""

    def __init__(self, initial_s: float, max_s: float, rng: np.random.Generator) -> None:
        self.initial_s, self.max_s, self.rng = initial_s, max_s, rng
        self.attempt = 0

    def next_s(self) -> float:
        """The delay before the next retry, seconds; grows with every call until reset."""
        base = min(self.max_s, self.initial_s * 2.0**self.attempt)
        self.attempt += 1
        return float(base * self.rng.uniform(0.5, 1.5))

    def reset(self) -> None:
        self.attempt = 0


class KubeClient:
    """An aiohttp session bound to one cluster. Use ``async with``.

    ``connect_timeout_s`` bounds connecting; ``request_timeout_s`` bounds a whole JSON GET.
    Watches set their own read timeout (see :meth:`stream`).
    """

    def __init__(
        self,
        auth: ClusterAuth,
        *,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 60.0,
        reload_auth: Callable[[ClusterAuth], ClusterAuth] | None = None,
    ) -> None:
        self.auth = auth
        self.base = auth.server.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self._reload = reload_auth or (lambda a: a.reload())
        self._session: aiohttp.ClientSession | None = None
        self.auth_reloads = 0

    async def __aenter__(self) -> KubeClient:
        connector = aiohttp.TCPConnector(ssl=self.auth.ssl, limit=0)
        # trust_env: HTTPS_PROXY / NO_PROXY from the environment, as kubectl honours them.
        self._session = aiohttp.ClientSession(
            connector=connector, trust_env=True, auto_decompress=True
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def server(self) -> str:
        """The server URL, safe to print."""
        return safe_url(self.base)

    def _kwargs(self, timeout: aiohttp.ClientTimeout) -> dict[str, Any]:
        kw: dict[str, Any] = {"headers": self.auth.headers(), "timeout": timeout}
        kw["headers"]["Accept"] = "application/json"
        if self.auth.proxy:
            kw["proxy"] = self.auth.proxy
        if self.auth.server_hostname:
            kw["server_hostname"] = self.auth.server_hostname
        return kw

    @asynccontextmanager
    async def _request(
        self, path: str, params: dict[str, str] | None, timeout: aiohttp.ClientTimeout
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``path``; yields a 2xx response, raises ApiError / ConnectError otherwise."""
        assert self._session is not None, "use 'async with KubeClient(...)'"
        url = self.base + path
        for attempt in (0, 1):
            try:
                async with self._session.get(url, params=params, **self._kwargs(timeout)) as resp:
                    if resp.status == 401 and attempt == 0:
                        # Expired token: re-run the loader (exec plugin, token file) once.
                        self.auth = self._reload(self.auth)
                        self.auth_reloads += 1
                        continue
                    if resp.status >= 300:
                        body = await resp.content.read(64 * 1024)
                        raise ApiError(
                            resp.status,
                            _status_message(resp.status, body),
                            _retry_after_s(resp.headers.get("Retry-After")),
                        )
                    yield resp
                    return
            except aiohttp.ClientResponseError as exc:
                raise ApiError(exc.status, _REASONS.get(exc.status, f"HTTP {exc.status}")) from None
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                raise ConnectError(_connect_message(self.server, exc)) from None
            except TimeoutError:
                raise ConnectError(f"{self.server}: timed out") from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET a JSON document. Returns the decoded value."""
        timeout = aiohttp.ClientTimeout(
            total=self.request_timeout_s, sock_connect=self.connect_timeout_s
        )
        async with self._request(path, params, timeout) as resp:
            try:
                body = await resp.read()
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                raise ConnectError(_connect_message(self.server, exc)) from None
            except TimeoutError:
                raise ConnectError(f"{self.server}: timed out reading {path}") from None
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ConnectError(f"{self.server}{path}: answer is not JSON") from None

    @asynccontextmanager
    async def stream(
        self, path: str, params: dict[str, str], *, read_timeout_s: float
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a watch stream; ``read_timeout_s`` without a byte ends it with TimeoutError."""
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.connect_timeout_s, sock_read=read_timeout_s
        )
        async with self._request(path, params, timeout) as resp:
            yield resp


def _connect_message(server: str, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{server}: {text}"


async def sleep_or_stop(delay_s: float, stop: asyncio.Event) -> bool:
    """Sleep ``delay_s`` unless ``stop`` is set first. Returns True if stopping."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, delay_s))
        return True
    except TimeoutError:
        return False
