"""The HTTP layer: a read-only Kubernetes API (discovery, GET, LIST, WATCH) over a played trace.

One aiohttp application, one catch-all route: the path is parsed the way the API server routes
it (``/api/v1[/namespaces/NS]/PLURAL[/NAME]``, ``/apis/GROUP/VERSION/...``, the deprecated
``/watch/`` prefix). Responses are JSON; ``kubectl get`` gets ``meta.k8s.io`` Tables when it
asks for them. A background task advances the playback clock and wakes the watchers of the
resources that changed. Write verbs get 405: the trace is history.

Watches follow the watch cache of the real API server: no resourceVersion (or ``0``) gives the
current objects as ADDED events first; a resourceVersion older than the retained history gives
a single ERROR event whose object is a Status with code 410 and reason Expired (what
``client-go`` reflectors expect); bookmarks carry the global resourceVersion.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import hashlib
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ..errors import TracesimError
from . import tables
from .player import TracePlayer
from .resources import ResourceInfo
from .selectors import (
    FieldRequirement,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from .store import DELETED, Expired, Query, ResourceStore, StoredObject, WatchEvent

SERVER_VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-tracesim",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
JSON = "application/json"
_TABLE_GROUP = "meta.k8s.io"
#: How long a LIST for a resourceVersion newer than the store waits for playback (as the
#: API server waits for its watch cache), seconds.
FUTURE_RV_WAIT_S = 3.0
_TOO_OLD_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. "
    "You can start a new list without the continue parameter."
)


def status_body(code: int, reason: str, message: str, **details: Any) -> dict[str, Any]:
    """A ``metav1.Status`` failure object."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _status(code: int, reason: str, message: str, **details: Any) -> web.Response:
    return web.Response(
        body=orjson.dumps(status_body(code, reason, message, **details)),
        status=code,
        content_type=JSON,
    )


def _json(data: Any, content_type: str = JSON) -> web.Response:
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    return web.Response(body=body, headers={"Content-Type": content_type})


def table_version(accept: str) -> str | None:
    """``v1`` / ``v1beta1`` if the first JSON media type the client accepts is a
    ``meta.k8s.io`` Table, else None (plain objects)."""
    for part in accept.split(","):
        mime, *params = (p.strip() for p in part.split(";"))
        if mime not in (JSON, "application/*", "*/*"):
            continue  # protobuf and others: not served, look further
        opts = dict(p.partition("=")[::2] for p in params)
        if opts.get("as") == "Table" and opts.get("g") == _TABLE_GROUP:
            if opts.get("v") in ("v1", "v1beta1"):
                return opts["v"]
            continue
        if "as" not in opts:
            return None
    return None


@dataclass
class _Format:
    """How a request wants objects: plain, or Table rows (version, includeObject)."""

    table: str | None = None  # Table version
    include: str = "Metadata"  # None | Metadata | Object

    @property
    def content_type(self) -> str:
        if self.table is None:
            return JSON
        return f"{JSON};as=Table;v={self.table};g={_TABLE_GROUP}"


def _is_true(value: str | None) -> bool:
    return value in ("1", "true", "True")


class TraceServer:
    """Serves a :class:`TracePlayer` over HTTP. ``await start()``, then ``await stop()``."""

    def __init__(
        self,
        player: TracePlayer,
        *,
        bookmark_interval_s: float = 5.0,
        min_tick_s: float = 0.01,
        max_tick_s: float = 0.25,
        access_log: bool = False,
    ) -> None:
        self.player = player
        self.max_tick_s = max_tick_s
        self.store = player.store
        self.bookmark_interval_s = bookmark_interval_s
        self.min_tick_s = min_tick_s
        self.access_log = access_log
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner: web.AppRunner | None = None
        self._play_task: asyncio.Task[None] | None = None
        self._changed: dict[ResourceStore, asyncio.Event] = {}
        self._snapshots: OrderedDict[tuple[Any, ...], list[StoredObject]] = OrderedDict()
        self.host = "127.0.0.1"
        self.port = 0
        self.watchers = 0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Bind ``host:port`` (0 = a free port), start playback; returns the port.
        Raises :class:`TracesimError` if the port is taken."""
        self._changed = {res: asyncio.Event() for res in self.store.resources.values()}
        self._runner = web.AppRunner(
            self.app,
            handler_cancellation=True,
            access_log=self.app.logger if self.access_log else None,
            shutdown_timeout=0.5,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise TracesimError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another --port, or --port 0 for a free one"
            ) from None
        self.host, self.port = host, int(self._runner.addresses[0][1])
        # Loading the trace took time: the replay starts now, not when the player was made.
        self.player.clock.rebase(self.player.start_us, self.player.clock.time_fn())
        self._play_task = asyncio.create_task(self._play())
        return self.port

    async def stop(self) -> None:
        """Stop playback, close every connection."""
        if self._play_task is not None:
            self._play_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._play_task
        if self._runner is not None:
            await self._runner.cleanup()

    async def _play(self) -> None:
        player = self.player
        while True:
            for res in player.tick():
                self._notify(res)
            due = player.next_wall_s()
            now = player.clock.time_fn()
            if due is not None and due <= now:
                await asyncio.sleep(0)  # behind (a burst): keep applying, but let I/O run
                continue
            # Wake at the next due event, but at least every max_tick_s (the clock may be
            # rebased, and history must be compacted as trace time passes).
            wait = self.max_tick_s if due is None else min(due - now, self.max_tick_s)
            await asyncio.sleep(max(wait, self.min_tick_s))

    def _notify(self, res: ResourceStore) -> None:
        event = self._changed.get(res)
        if event is not None:
            event.set()
            self._changed[res] = asyncio.Event()

    # -- routing -----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return _status(
                405,
                "MethodNotAllowed",
                f"the server does not allow this method on the requested resource: "
                f"{request.method} (tracesim serve is read-only)",
            )
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(SERVER_VERSION)
        if path == "/api":
            return _json(self._api_versions())
        if path == "/apis":
            return _json(self._group_list())
        segs = path.strip("/").split("/")
        if segs[0] == "api" and len(segs) >= 2:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis" and len(segs) >= 2:
            group = segs[1]
            if len(segs) == 2:
                entry = self._group_entry(group)
                if entry is None:
                    return self._not_found()
                return _json({"kind": "APIGroup", "apiVersion": "v1", **entry})
            version, rest = segs[2], segs[3:]
        else:
            return self._not_found()
        if not rest:
            return self._resource_list(group, version)
        watch = False
        if rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and self.store.lookup(group, version, rest[2]) is not None
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return self._not_found()
        res = self.store.lookup(group, version, rest[0])
        if res is None or len(rest) > 2:
            return self._not_found()
        name = rest[1] if len(rest) == 2 else None
        if namespace is not None and not res.info.namespaced:
            return self._not_found()
        if name is not None and res.info.namespaced and namespace is None:
            return self._not_found()
        params = request.query
        fmt = _Format(table_version(request.headers.get("Accept", "")))
        fmt.include = params.get("includeObject", "Metadata")
        try:
            query = Query(
                namespace,
                parse_label_selector(params.get("labelSelector")),
                parse_field_selector(params.get("fieldSelector"), res.supported_fields),
            )
        except SelectorError as exc:
            return _status(400, "BadRequest", str(exc))
        watch = watch or _is_true(params.get("watch"))
        if name is not None and not watch:
            return self._get(res, namespace, name, fmt)
        if name is not None:
            query.fields = (*query.fields, FieldRequirement("metadata.name", name))
        try:
            if watch:
                return await self._watch(request, res, query, fmt)
            return await self._list(res, query, fmt, params)
        except _BadRequest as exc:
            return _status(400, "BadRequest", str(exc))

    # -- discovery ---------------------------------------------------------------------------
    @staticmethod
    def _not_found() -> web.Response:
        return _status(404, "NotFound", "the server could not find the requested resource")

    def _api_versions(self) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}
            ],
        }

    def _group_entry(self, group: str) -> dict[str, Any] | None:
        versions = self.store.groups().get(group)
        if not group or not versions:
            return None
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    def _group_list(self) -> dict[str, Any]:
        groups = [self._group_entry(g) for g in sorted(self.store.groups()) if g]
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _resource_list(self, group: str, version: str) -> web.Response:
        infos: list[ResourceInfo] = [
            res.info
            for (g, v, _), res in sorted(self.store.by_path.items())
            if g == group and v == version
        ]
        if not infos and not (group == "" and version == "v1"):
            return self._not_found()
        return _json(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": [info.discovery_entry() for info in infos],
            }
        )

    # -- objects and tables ------------------------------------------------------------------
    def _table_row(self, res: ResourceStore, obj: StoredObject, fmt: _Format, now: int) -> bytes:
        kind = res.info.kind
        cells = orjson.dumps(tables.render(obj.cells(kind), now))
        if fmt.include == "None":
            return b'{"cells":%s}' % cells
        if fmt.include == "Object":
            return b'{"cells":%s,"object":%s}' % (cells, obj.data)
        meta = obj.metadata_json(kind)
        return (
            b'{"cells":%s,"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/%s",'
            b'"metadata":%s}}' % (cells, fmt.table.encode(), meta)  # type: ignore[union-attr]
        )

    def _table(
        self,
        res: ResourceStore,
        objs: list[StoredObject],
        fmt: _Format,
        metadata: dict[str, Any],
        headers: bool = True,
    ) -> bytes:
        now = self.player.now_us()
        rows = b",".join(self._table_row(res, o, fmt, now) for o in objs)
        cols = orjson.dumps(tables.columns(res.info.kind)) if headers else b"[]"
        return (
            b'{"kind":"Table","apiVersion":"meta.k8s.io/%s","metadata":%s,'
            b'"columnDefinitions":%s,"rows":[%s]}'
            % (fmt.table.encode(), orjson.dumps(metadata), cols, rows)  # type: ignore[union-attr]
        )

    def _get(
        self, res: ResourceStore, namespace: str | None, name: str, fmt: _Format
    ) -> web.Response:
        obj = res.objects.get((namespace or "", name))
        if obj is None:
            return _status(
                404,
                "NotFound",
                f'{res.info.plural} "{name}" not found',
                name=name,
                kind=res.info.plural,
                **({"group": res.info.group} if res.info.group else {}),
            )
        if fmt.table is not None:
            return _json(
                self._table(res, [obj], fmt, {"resourceVersion": str(obj.rv)}), fmt.content_type
            )
        return _json(obj.data)

    # -- LIST --------------------------------------------------------------------------------
    @staticmethod
    def _query_hash(res: ResourceStore, query: Query) -> str:
        text = repr((res.info.api_version, res.info.plural, query.cache_key()))
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    async def _list(
        self, res: ResourceStore, query: Query, fmt: _Format, params: Any
    ) -> web.Response:
        limit = _int_param(params, "limit", 0)
        token = params.get("continue")
        rv_text = params.get("resourceVersion", "")
        match = params.get("resourceVersionMatch", "")
        qhash = self._query_hash(res, query)
        start = 0
        if token:
            snap_rv, after = _decode_continue(token, qhash)
            cache_key = (qhash, snap_rv)
            items = self._snapshots.get(cache_key)
            if items is None:
                try:
                    items = res.select(query, res.state_at(snap_rv))
                except Expired:
                    return _status(410, "Expired", _TOO_OLD_CONTINUE)
                self._remember(cache_key, items)
            start = bisect.bisect_right([o.key for o in items], after)
        else:
            if rv_text not in ("", "0"):
                rv = _parse_rv(rv_text)
                if rv > self.store.rv:
                    deadline = time.monotonic() + FUTURE_RV_WAIT_S
                    while rv > self.store.rv and time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    if rv > self.store.rv:
                        return _status(
                            504,
                            "Timeout",
                            f"Too large resource version: {rv}, current: {self.store.rv}",
                        )
            if match == "Exact":
                if rv_text in ("", "0"):
                    raise _BadRequest("resourceVersionMatch=Exact needs a resourceVersion")
                snap_rv = _parse_rv(rv_text)
                try:
                    items = res.select(query, res.state_at(snap_rv))
                except Expired as exc:
                    return _status(410, "Expired", str(exc))
            else:
                snap_rv = self.store.rv
                items = res.select(query)
            cache_key = (qhash, snap_rv)
        page = items[start : start + limit] if limit > 0 else items[start:]
        metadata: dict[str, Any] = {"resourceVersion": str(snap_rv)}
        remaining = len(items) - start - len(page)
        if remaining > 0 and page:
            metadata["continue"] = _encode_continue(snap_rv, page[-1].key, qhash)
            metadata["remainingItemCount"] = remaining
            self._remember(cache_key, items)
        if fmt.table is not None:
            return _json(self._table(res, page, fmt, metadata), fmt.content_type)
        body = b'{"kind":"%sList","apiVersion":"%s","metadata":%s,"items":[%s]}' % (
            res.info.kind.encode(),
            res.info.api_version.encode(),
            orjson.dumps(metadata),
            b",".join(o.data for o in page),
        )
        return _json(body)

    def _remember(self, key: tuple[Any, ...], items: list[StoredObject]) -> None:
        """Keep a paginated LIST's snapshot so that its next pages cost a bisect."""
        self._snapshots[key] = items
        self._snapshots.move_to_end(key)
        while len(self._snapshots) > 16:
            self._snapshots.popitem(last=False)

    # -- WATCH -------------------------------------------------------------------------------
    def _encode(
        self, res: ResourceStore, ev: WatchEvent, query: Query, fmt: _Format, first: bool
    ) -> bytes | None:
        """One watch line for ``ev`` as this watcher sees it, or None if not selected.

        A change that moves an object into the selection is ADDED, out of it DELETED (with the
        previous version), as the API server's watch cache does."""
        if query.everything:
            etype, obj = ev.type, ev.obj
        else:
            now_in = query.matches(ev.obj)
            if ev.type == DELETED or ev.prev is None:
                if not now_in:
                    return None
                etype, obj = ev.type, ev.obj
            else:
                was_in = query.matches(ev.prev)
                if now_in:
                    etype, obj = ("MODIFIED" if was_in else "ADDED"), ev.obj
                elif was_in:
                    etype, obj = DELETED, ev.prev_at_rv()
                else:
                    return None
        if fmt.table is None:
            if etype == ev.type and obj is ev.obj:
                return ev.line()
            return b'{"type":"%s","object":%s}\n' % (etype.encode(), obj.data)
        key = (id(obj), fmt.table, fmt.include)
        row = ev.cache.get(key)
        if row is None:
            row = self._table_row(res, obj, fmt, self.player.now_us())
            ev.cache[key] = row
        cols = orjson.dumps(tables.columns(res.info.kind)) if first else b"[]"
        return (
            b'{"type":"%s","object":{"kind":"Table","apiVersion":"meta.k8s.io/%s",'
            b'"metadata":{"resourceVersion":"%d"},"columnDefinitions":%s,"rows":[%s]}}\n'
            % (etype.encode(), fmt.table.encode(), ev.rv, cols, row)  # type: ignore[union-attr]
        )

    def _bookmark(self, res: ResourceStore, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": res.info.kind, "apiVersion": res.info.api_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    async def _watch(
        self, request: web.Request, res: ResourceStore, query: Query, fmt: _Format
    ) -> web.StreamResponse:
        params = request.query
        rv_text = params.get("resourceVersion", "")
        bookmarks = _is_true(params.get("allowWatchBookmarks"))
        send_initial = params.get("sendInitialEvents")
        timeout_s = float(_int_param(params, "timeoutSeconds", 0)) or None
        cursor = 0 if rv_text in ("", "0") else _parse_rv(rv_text)
        initial = (send_initial is None and rv_text in ("", "0")) or _is_true(send_initial)
        resp = web.StreamResponse(
            headers={"Content-Type": fmt.content_type, "Cache-Control": "no-cache, private"}
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self.watchers += 1
        loop_time = asyncio.get_running_loop().time
        deadline = None if timeout_s is None else loop_time() + timeout_s
        next_bookmark = loop_time() + self.bookmark_interval_s
        first = True
        try:
            chunks: list[bytes] = []
            if initial:
                # The current objects as ADDED, then live events after the current rv.
                snap_rv = self.store.rv
                for obj in res.select(query):
                    ev = WatchEvent("ADDED", obj, None, 0)
                    line = self._encode(res, ev, Query(), fmt, first)
                    first = False
                    chunks.append(line)  # type: ignore[arg-type]
                if _is_true(send_initial) and bookmarks:
                    chunks.append(self._bookmark(res, snap_rv, initial_end=True))
                cursor = max(cursor, snap_rv)
            while True:
                changed = self._changed[res]
                try:
                    events = res.since(cursor)
                except Expired as exc:
                    status = status_body(410, "Expired", str(exc))
                    chunks.append(orjson.dumps({"type": "ERROR", "object": status}) + b"\n")
                    await resp.write(b"".join(chunks))
                    break
                bookmark_rv = self.store.rv
                for ev in events:
                    line = self._encode(res, ev, query, fmt, first)
                    if line is not None:
                        chunks.append(line)
                        first = False
                if events:
                    cursor = events[-1].rv
                now = loop_time()
                if bookmarks and now >= next_bookmark:
                    chunks.append(self._bookmark(res, max(bookmark_rv, cursor)))
                    next_bookmark = now + self.bookmark_interval_s
                if chunks:
                    await resp.write(b"".join(chunks))
                    chunks = []
                now = loop_time()
                if deadline is not None and now >= deadline:
                    break
                wait = next_bookmark - now if bookmarks else 3600.0
                if deadline is not None:
                    wait = min(wait, deadline - now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), max(wait, 0.0))
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.watchers -= 1
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp


class _BadRequest(Exception):
    """A malformed query parameter (HTTP 400)."""


def _int_param(params: Any, name: str, default: int) -> int:
    text = params.get(name)
    if text in (None, ""):
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(f"{name}: must be an integer, got {text!r}") from None
    if value < 0:
        raise _BadRequest(f"{name}: must not be negative, got {value}")
    return value


def _parse_rv(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _BadRequest(f"resourceVersion: Invalid value: {text!r}: must be an integer") from None


def _encode_continue(rv: int, after: tuple[str, str], qhash: str) -> str:
    raw = orjson.dumps({"v": "tracesim/1", "rv": rv, "start": list(after), "q": qhash})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str, qhash: str) -> tuple[int, tuple[str, str]]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        rv, after = int(data["rv"]), (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError):
        raise _BadRequest("continue: invalid continue token") from None
    if data.get("q") != qhash:
        raise _BadRequest("continue: the token belongs to a list with other selectors")
    return rv, after


# -- running -------------------------------------------------------------------------------------
async def serve_forever(
    player: TracePlayer,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[TraceServer], None] | None = None,
    stop: asyncio.Event | None = None,
    **server_opts: Any,
) -> None:
    """Serve until ``stop`` is set (or the task is cancelled); ``on_ready`` gets the started
    server (its ``port`` is bound). ``server_opts`` go to :class:`TraceServer`."""
    server = TraceServer(player, **server_opts)
    await server.start(host, port)
    try:
        if on_ready is not None:
            on_ready(server)
        await (stop or asyncio.Event()).wait()
    finally:
        await server.stop()


class ServerThread:
    """A server on its own event loop in a background thread (tests, notebooks, benchmarks).

    ``with ServerThread(player) as srv: urlopen(srv.url + "/api/v1/pods")``.
    """

    def __init__(
        self,
        player: TracePlayer,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        **server_opts: Any,
    ) -> None:
        self.player = player
        self.host = host
        self._port = port
        self.server_opts = server_opts
        self.server: TraceServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tracesim-serve", daemon=True)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()

            def ready(server: TraceServer) -> None:
                self.server = server
                self._ready.set()

            await serve_forever(
                self.player,
                host=self.host,
                port=self._port,
                on_ready=ready,
                stop=self._stop,
                **self.server_opts,
            )

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()

    def start(self) -> ServerThread:
        """Start and wait until the port is bound; re-raises a startup error."""
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop the server and join the thread."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop thread and return its result (to inspect state)."""
        assert self._loop is not None
        future: Any = asyncio.run_coroutine_threadsafe(_call(fn), self._loop)
        return future.result(10)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
