"""A small Kubernetes-like API server for recorder tests, with scripted faults.

It keeps objects and an event log per resource with integer resourceVersions, and serves
discovery, paginated LIST and WATCH (resume from a resourceVersion, bookmarks, server-side
``timeoutSeconds``, 410 once history is compacted) as the real API server does, plus faults
injected on demand: HTTP errors (429 with Retry-After, 500, 401, 403, 410), a stream cut in
the middle of a line, a malformed JSON line, an ``ERROR`` 410 event, a slow (trickling)
stream. Bearer tokens are checked, so expired credentials can be simulated.

It runs an aiohttp application on its own event loop in a background thread
(:meth:`FaultServer.start`); tests change its state from their own thread with
:meth:`FaultServer.apply`. Everything it logs (``requests``, ``log``) is what the recorder's
trace is compared against.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import copy
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

# plural -> (group, version, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, str, bool]] = {
    "pods": ("", "v1", "Pod", True),
    "nodes": ("", "v1", "Node", False),
    "configmaps": ("", "v1", "ConfigMap", True),
    "secrets": ("", "v1", "Secret", True),
    "leases": ("coordination.k8s.io", "v1", "Lease", True),
}


@dataclass
class Fault:
    """One scripted fault.

    kind: ``http`` (answer ``status`` instead, ``times`` times, with ``retry_after`` if set),
    ``cut`` (close the connection in the middle of the event after ``after`` events),
    ``malformed`` (write a broken JSON line after ``after`` events, then go on),
    ``gone_event`` (send an ERROR event with code 410 after ``after`` events, then end),
    ``slow`` (trickle every line in three pieces, ``delay_s`` apart).
    on: ``watch``, ``list`` or ``any``; plural: the resource (None: any).
    """

    kind: str
    plural: str | None = None
    on: str = "watch"
    after: int = 0
    status: int = 500
    retry_after: int | None = None
    times: int = 1
    delay_s: float = 0.05


@dataclass
class Entry:
    rv: int
    type: str
    namespace: str | None
    line: bytes  # the JSON line as served
    t: float  # time.time() when applied


@dataclass
class _Res:
    plural: str
    group: str
    version: str
    kind: str
    namespaced: bool
    state: dict[tuple[str | None, str], dict[str, Any]] = field(default_factory=dict)
    log: list[Entry] = field(default_factory=list)
    rvs: list[int] = field(default_factory=list)
    compacted_rv: int = 0

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _status(code: int, message: str, reason: str = "") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FaultServer:
    """See the module docstring. ``tokens``: accepted bearer tokens (None: no auth check)."""

    def __init__(
        self,
        *,
        tokens: set[str] | None = None,
        bookmark_interval_s: float | None = None,
        gone_as_event: bool = False,
        resources: dict[str, tuple[str, str, str, bool]] | None = None,
    ) -> None:
        self.tokens = tokens
        self.bookmark_interval_s = bookmark_interval_s
        self.gone_as_event = gone_as_event
        self.res = {p: _Res(p, *spec) for p, spec in (resources or RESOURCES).items()}
        self.rv = 100
        self.faults: list[Fault] = []
        self.forbidden: set[str] = set()
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._snapshots: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self.port = 0
        self.scheme = "http"

    # -- state changes (any thread) -------------------------------------------------------
    def apply(self, plural: str, etype: str, obj: dict[str, Any]) -> int:
        """Apply an ADDED/MODIFIED/DELETED event; returns its resourceVersion."""
        res = self.res[plural]
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        obj.setdefault("kind", res.kind)
        obj.setdefault("apiVersion", res.api_version)
        key = (meta.get("namespace"), meta["name"])
        with self._lock:
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            if etype == "ADDED":
                meta.setdefault("uid", str(uuid.uuid4()))
            else:
                meta.setdefault("uid", res.state.get(key, {}).get("metadata", {}).get("uid"))
            if etype == "DELETED":
                res.state.pop(key, None)
            else:
                res.state[key] = obj
            line = orjson.dumps({"type": etype, "object": obj}) + b"\n"
            res.log.append(Entry(self.rv, etype, meta.get("namespace"), line, time.time()))
            res.rvs.append(self.rv)
            rv = self.rv
        self._notify()
        return rv

    def compact(self, plural: str | None = None) -> None:
        """Forget history: resuming from an older resourceVersion now gets 410 Gone."""
        with self._lock:
            for res in self.res.values():
                if plural is None or res.plural == plural:
                    res.compacted_rv = self.rv

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def state(self, plural: str) -> dict[tuple[str | None, str], dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.res[plural].state)

    def log(self, plural: str) -> list[Entry]:
        with self._lock:
            return list(self.res[plural].log)

    def _notify(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    def _take_fault(self, plural: str, on: str, kinds: tuple[str, ...]) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.kind in kinds and f.plural in (None, plural) and f.on in ("any", on):
                    f.times -= 1
                    if f.times <= 0:
                        self.faults.remove(f)
                    return f
        return None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, ssl_context: Any = None) -> str:
        """Start serving on 127.0.0.1 (a free port) in a thread, over TLS if ``ssl_context``.
        Returns the base URL."""
        self.scheme = "https" if ssl_context is not None else "http"
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._changed = asyncio.Event()
            app = web.Application()
            app.router.add_route("GET", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            for task in asyncio.all_tasks(loop):  # open watches: end them quietly
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name="fault-server")
        self._thread.start()
        ready.wait(10)
        return self.url

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FaultServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- HTTP -----------------------------------------------------------------------------
    def _json(self, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        return web.Response(
            body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
        )

    def _route(self, path: str) -> tuple[str | None, str | None, str | None]:
        """(plural, namespace, group) of a collection path, or Nones."""
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            rest, group = parts[2:], ""
        elif len(parts) >= 3 and parts[0] == "apis":
            rest, group = parts[3:], parts[1]
        else:
            return None, None, None
        ns = None
        if len(rest) == 3 and rest[0] == "namespaces":
            ns, rest = rest[1], rest[2:]
        if len(rest) != 1:
            return None, None, None
        return rest[0], ns, group

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        params = dict(request.query)
        entry = {"t": time.time(), "path": path, "params": params, "status": 200}
        self.requests.append(entry)
        if self.tokens is not None:
            auth = request.headers.get("Authorization", "")
            if not (auth.startswith("Bearer ") and auth[7:] in self.tokens):
                entry["status"] = 401
                return self._json(_status(401, "Unauthorized", "Unauthorized"), 401)
        if path == "/version":
            return self._json({"major": "1", "minor": "30", "gitVersion": "v1.30.0-fault"})
        if path == "/api":
            return self._json({"kind": "APIVersions", "versions": ["v1"]})
        if path == "/apis":
            groups = sorted({r.group for r in self.res.values() if r.group})
            return self._json(
                {
                    "kind": "APIGroupList",
                    "groups": [
                        {
                            "name": g,
                            "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                            "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                        }
                        for g in groups
                    ],
                }
            )
        if path == "/api/v1" or (path.startswith("/apis/") and path.count("/") == 3):
            group = "" if path == "/api/v1" else path.split("/")[2]
            return self._json(
                {
                    "kind": "APIResourceList",
                    "groupVersion": path.removeprefix("/api/").removeprefix("/apis/"),
                    "resources": [
                        {
                            "name": r.plural,
                            "kind": r.kind,
                            "namespaced": r.namespaced,
                            "verbs": ["get", "list", "watch"],
                        }
                        for r in self.res.values()
                        if r.group == group
                    ],
                }
            )
        plural, ns, group = self._route(path)
        res = self.res.get(plural or "")
        if res is None or res.group != group:
            entry["status"] = 404
            return self._json(_status(404, "the server could not find the requested resource"), 404)
        if plural in self.forbidden:
            entry["status"] = 403
            msg = f'{plural} is forbidden: User "test" cannot list resource "{plural}"'
            return self._json(_status(403, msg, "Forbidden"), 403)
        watching = params.get("watch") in ("1", "true")
        fault = self._take_fault(res.plural, "watch" if watching else "list", ("http",))
        if fault is not None:
            entry["status"] = fault.status
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else None
            body = _status(fault.status, f"injected {fault.status}")
            return self._json(body, fault.status, headers)
        if watching:
            return await self._watch(request, res, ns, params, entry)
        return self._list(res, ns, params)

    def _list(self, res: _Res, ns: str | None, params: dict[str, str]) -> web.Response:
        limit = int(params.get("limit", "0") or 0)
        token = params.get("continue")
        if token:
            snap_id, _, offset_text = token.partition(":")
            rv, items = self._snapshots[snap_id]
            offset = int(offset_text)
        else:
            with self._lock:
                items = [
                    copy.deepcopy(o)
                    for k, o in sorted(res.state.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
                    if ns is None or k[0] == ns
                ]
                rv = self.rv
            for o in items:  # items of a real LIST carry no kind/apiVersion
                o.pop("kind", None)
                o.pop("apiVersion", None)
            snap_id, offset = uuid.uuid4().hex, 0
            self._snapshots[snap_id] = (rv, items)
        end = offset + limit if limit else len(items)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if end < len(items):
            meta["continue"] = f"{snap_id}:{end}"
        return self._json(
            {
                "kind": f"{res.kind}List",
                "apiVersion": res.api_version,
                "metadata": meta,
                "items": items[offset:end],
            }
        )

    async def _watch(
        self,
        request: web.Request,
        res: _Res,
        ns: str | None,
        params: dict[str, str],
        entry: dict[str, Any],
    ) -> web.StreamResponse:
        since_text = params.get("resourceVersion")
        timeout_s = float(params.get("timeoutSeconds", "1800"))
        bookmarks = params.get("allowWatchBookmarks") == "true"
        initial: list[bytes] = []
        with self._lock:
            if not since_text or since_text == "0":
                since = self.rv
                initial = [
                    orjson.dumps({"type": "ADDED", "object": o}) + b"\n"
                    for k, o in sorted(res.state.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
                    if ns is None or k[0] == ns
                ]
            else:
                since = int(since_text)
            gone = since < res.compacted_rv
        if gone and not self.gone_as_event:
            entry["status"] = 410
            msg = f"too old resource version: {since} ({res.compacted_rv})"
            return self._json(_status(410, msg, "Expired"), 410)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        if gone:
            err = _status(410, f"too old resource version: {since}", "Expired")
            await resp.write(orjson.dumps({"type": "ERROR", "object": err}) + b"\n")
            await resp.write_eof()
            return resp
        try:
            return await self._stream(request, resp, res, ns, since, initial, timeout_s, bookmarks)
        except (ConnectionError, RuntimeError):
            return resp  # the client went away

    async def _stream(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        res: _Res,
        ns: str | None,
        since: int,
        initial: list[bytes],
        timeout_s: float,
        bookmarks: bool,
    ) -> web.StreamResponse:
        kinds = ("cut", "malformed", "gone_event", "slow")
        cut: Fault | None = None
        sent = taken_at = 0
        deadline = time.monotonic() + timeout_s
        last_bookmark = time.monotonic()
        with self._lock:
            pos = bisect.bisect_right(res.rvs, since)
        pending = initial
        while True:
            assert self._changed is not None
            changed = self._changed
            with self._lock:
                new = res.log[pos:]
                pos += len(new)
                cur_rv = self.rv
            pending = pending + [e.line for e in new if ns is None or e.namespace == ns]
            if pending and cut is None:
                # Faults apply to the watch that is streaming when they are added; ``after``
                # counts events from then on.
                cut = self._take_fault(res.plural, "watch", kinds)
                taken_at = sent
            if pending:
                buf: list[bytes] = []
                for line in pending:
                    if cut is not None and sent - taken_at == cut.after and cut.kind != "slow":
                        if buf:
                            await resp.write(b"".join(buf))
                            buf = []
                        if cut.kind == "cut":
                            await resp.write(line[: len(line) // 2])
                            assert request.transport is not None
                            request.transport.close()  # mid-line: an incomplete chunked body
                            return resp
                        if cut.kind == "malformed":
                            buf.append(b'{"type":"MODIFIED","object":{"metadata":\n')
                            cut = None
                        elif cut.kind == "gone_event":
                            err = _status(410, "too old resource version", "Expired")
                            await resp.write(orjson.dumps({"type": "ERROR", "object": err}) + b"\n")
                            await resp.write_eof()
                            return resp
                    if cut is not None and cut.kind == "slow":
                        third = max(1, len(line) // 3)
                        for piece in (line[:third], line[third : 2 * third], line[2 * third :]):
                            await resp.write(piece)
                            await asyncio.sleep(cut.delay_s)
                    else:
                        buf.append(line)
                    sent += 1
                    if len(buf) >= 512:
                        await resp.write(b"".join(buf))
                        buf = []
                if buf:
                    await resp.write(b"".join(buf))
                pending = []
            now = time.monotonic()
            if now >= deadline:
                break
            if bookmarks and self.bookmark_interval_s is not None:
                if now - last_bookmark >= self.bookmark_interval_s:
                    bm = {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": res.kind,
                            "apiVersion": res.api_version,
                            "metadata": {"resourceVersion": str(cur_rv)},
                        },
                    }
                    await resp.write(orjson.dumps(bm) + b"\n")
                    last_bookmark = now
                wait_s = min(deadline - now, self.bookmark_interval_s)
            else:
                wait_s = deadline - now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=max(0.001, wait_s))
        await resp.write_eof()
        return resp


# -- objects ---------------------------------------------------------------------------------
def pod(name: str, ns: str = "default", node: str | None = None, cpu: str = "100m") -> dict:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "nginx",
                "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                "env": [{"name": "PASSWORD", "value": "hunter2"}],
            }
        ],
        "schedulerName": "default-scheduler",
    }
    if node:
        spec["nodeName"] = node
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "web"}},
        "spec": spec,
        "status": {"phase": "Running" if node else "Pending"},
    }


def node(name: str, cpu: str = "8") -> dict:
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def lease(name: str, holder: str, renew: str = "2024-05-01T10:00:00.000000Z") -> dict:
    return {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 40, "renewTime": renew},
    }


def kubeconfig(
    url: str,
    token: str | None = "t1",
    exec_command: list[str] | None = None,
    *,
    ca_file: str | None = None,
    insecure: bool = False,
) -> str:
    """A kubeconfig (YAML text) for ``url`` with a token or an exec credential plugin, and
    optionally a CA file or ``insecure-skip-tls-verify``."""
    import yaml

    user: dict[str, Any] = {}
    if exec_command is not None:
        user["exec"] = {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": exec_command[0],
            "args": exec_command[1:],
            "interactiveMode": "Never",
        }
    elif token is not None:
        user["token"] = token
    cluster: dict[str, Any] = {"server": url}
    if ca_file:
        cluster["certificate-authority"] = ca_file
    if insecure:
        cluster["insecure-skip-tls-verify"] = True
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fault", "cluster": cluster}],
        "users": [{"name": "tester", "user": user}],
        "contexts": [{"name": "fault", "context": {"cluster": "fault", "user": "tester"}}],
        "current-context": "fault",
    }
    return yaml.safe_dump(doc)
