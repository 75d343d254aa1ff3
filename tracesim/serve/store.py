"""The served object store: current state, indexes and watch history per resource.

Every object version is serialised to JSON once, when it is applied (:class:`StoredObject`
holds the bytes); LIST responses join those bytes and every watcher of a resource shares the
encoded line of an event (:meth:`WatchEvent.line`). Indexes by namespace and (for pods) by
node name make the selective LISTs that kubelets, schedulers and ``kubectl get pods
--field-selector spec.nodeName=X`` send cost the size of the answer, not of the cluster.

resourceVersions are integers, global across resources as in etcd. History is kept per
resource for a window of trace time and a maximum count; a watch or a paginated LIST from a
resourceVersion older than the oldest retained event gets 410 Gone (:class:`Expired`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

import orjson

from . import tables
from .resources import ResourceInfo
from .selectors import FieldRequirement, LabelRequirement, fields_match, labels_match

Key = tuple[str, str]  # (namespace or "", name)

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


class Expired(Exception):
    """A resourceVersion older than the retained history (HTTP 410, reason Expired)."""


class StoredObject:
    """One immutable version of an object: its JSON bytes and what selectors look at."""

    __slots__ = ("_cells", "_meta", "data", "fields", "key", "labels", "rv")

    def __init__(
        self, key: Key, rv: int, data: bytes, labels: dict[str, str], fields: dict[str, str]
    ) -> None:
        self.key = key
        self.rv = rv
        self.data = data
        self.labels = labels
        self.fields = fields
        self._cells: tables.Cells | None = None
        self._meta: bytes | None = None

    @property
    def namespace(self) -> str:
        return self.key[0]

    @property
    def name(self) -> str:
        return self.key[1]

    def with_rv(self, rv: int) -> StoredObject:
        """The same object stamped with another resourceVersion (re-serialised)."""
        obj = orjson.loads(self.data)
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        return StoredObject(self.key, rv, orjson.dumps(obj), self.labels, self.fields)

    def _parse(self, kind: str) -> None:
        obj = orjson.loads(self.data)
        self._cells = tables.cells(kind, obj)
        self._meta = orjson.dumps(obj.get("metadata") or {})

    def cells(self, kind: str) -> tables.Cells:
        """Table cells of this version (computed once; ages resolved at render time)."""
        if self._cells is None:
            self._parse(kind)
        return self._cells  # type: ignore[return-value]

    def metadata_json(self, kind: str) -> bytes:
        """``metadata`` of this version as JSON (for PartialObjectMetadata table rows)."""
        if self._meta is None:
            self._parse(kind)
        return self._meta  # type: ignore[return-value]


class WatchEvent:
    """One change of one object, as every watcher of its resource will see it."""

    __slots__ = ("_line", "_restamped", "cache", "obj", "prev", "rv", "ts_us", "type")

    def __init__(
        self, etype: str, obj: StoredObject, prev: StoredObject | None, ts_us: int
    ) -> None:
        self.type = etype
        self.obj = obj  # the new version; for DELETED the last one, stamped with the delete rv
        self.prev = prev  # the version before the event (None for ADDED)
        self.rv = obj.rv
        self.ts_us = ts_us
        self._line: bytes | None = None
        self._restamped: StoredObject | None = None
        self.cache: dict[Any, bytes] = {}  # other encodings (tables), made once each

    def line(self) -> bytes:
        """``{"type": ..., "object": ...}\\n``: the watch line, encoded once for all watchers."""
        if self._line is None:
            self._line = b'{"type":"%s","object":%s}\n' % (self.type.encode(), self.obj.data)
        return self._line

    def prev_at_rv(self) -> StoredObject:
        """The previous version stamped with this event's rv: the object of the DELETED a
        watcher gets when a change takes the object out of its selection."""
        if self._restamped is None:
            assert self.prev is not None
            self._restamped = self.prev.with_rv(self.rv)
        return self._restamped


class Query:
    """What a LIST or WATCH selects: a namespace and label and field selectors."""

    __slots__ = ("fields", "labels", "namespace")

    def __init__(
        self,
        namespace: str | None = None,
        labels: tuple[LabelRequirement, ...] = (),
        fields: tuple[FieldRequirement, ...] = (),
    ) -> None:
        self.namespace = namespace
        self.labels = labels
        self.fields = fields

    @property
    def everything(self) -> bool:
        return self.namespace is None and not self.labels and not self.fields

    def matches(self, obj: StoredObject) -> bool:
        """True if ``obj`` is selected."""
        if self.namespace is not None and obj.key[0] != self.namespace:
            return False
        return labels_match(self.labels, obj.labels) and fields_match(self.fields, obj.fields)

    def equality(self, field: str) -> str | None:
        """The value of a ``field=value`` term, if the selector has one."""
        for req in self.fields:
            if req.field == field and not req.negate:
                return req.value
        return None

    def cache_key(self) -> tuple[Any, ...]:
        return (self.namespace, self.labels, self.fields)


#: Field selectors each kind supports: the ones the trace's typed columns can answer.
SUPPORTED_FIELDS = {
    "Pod": frozenset(
        {
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.schedulerName",
            "status.phase",
        }
    ),
    "Node": frozenset({"metadata.name", "spec.unschedulable"}),
}
DEFAULT_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


class ResourceStore:
    """State, indexes and history of one resource (pods, nodes, ...)."""

    def __init__(self, info: ResourceInfo, *, start_rv: int = 0) -> None:
        self.info = info
        self.supported_fields = SUPPORTED_FIELDS.get(info.kind, DEFAULT_FIELDS)
        self.objects: dict[Key, StoredObject] = {}
        self.keys: list[Key] = []  # sorted, as etcd returns a range
        self.by_ns: dict[str, dict[Key, StoredObject]] = {}
        self.by_node: dict[str, dict[Key, StoredObject]] | None = {} if info.kind == "Pod" else None
        self.created_us: dict[Key, int] = {}  # first seen, for objects without a timestamp
        self._hist: list[WatchEvent] = []
        self._hist_rvs: list[int] = []
        self._hist_start = 0
        self.compacted_rv = start_rv  # events with rv <= this are no longer retained
        self.record_history = True
        self.changed = False  # set when an event is applied; the server clears it

    # -- state -------------------------------------------------------------------------------
    def _index(self, obj: StoredObject) -> None:
        self.by_ns.setdefault(obj.key[0], {})[obj.key] = obj
        if self.by_node is not None:
            self.by_node.setdefault(obj.fields.get("spec.nodeName", ""), {})[obj.key] = obj

    def _unindex(self, obj: StoredObject) -> None:
        ns = self.by_ns[obj.key[0]]
        del ns[obj.key]
        if not ns:
            del self.by_ns[obj.key[0]]
        if self.by_node is not None:
            node = obj.fields.get("spec.nodeName", "")
            group = self.by_node[node]
            del group[obj.key]
            if not group:
                del self.by_node[node]

    def put(self, obj: StoredObject, ts_us: int) -> WatchEvent:
        """Add or replace ``obj``; returns the ADDED or MODIFIED event."""
        prev = self.objects.get(obj.key)
        if prev is None:
            bisect.insort(self.keys, obj.key)
        else:
            self._unindex(prev)
        self.objects[obj.key] = obj
        self._index(obj)
        return self._record(WatchEvent(ADDED if prev is None else MODIFIED, obj, prev, ts_us))

    def delete(self, final: StoredObject, ts_us: int) -> WatchEvent | None:
        """Remove the object ``final.key``; ``final`` is its last state at the delete rv.
        Returns the DELETED event, or None if the object was not there."""
        prev = self.objects.pop(final.key, None)
        if prev is None:
            return None
        self._unindex(prev)
        del self.keys[bisect.bisect_left(self.keys, final.key)]
        self.created_us.pop(final.key, None)
        return self._record(WatchEvent(DELETED, final, prev, ts_us))

    def _record(self, event: WatchEvent) -> WatchEvent:
        self.changed = True
        if self.record_history:
            self._hist.append(event)
            self._hist_rvs.append(event.rv)
        else:
            self.compacted_rv = event.rv
        return event

    # -- history -----------------------------------------------------------------------------
    def compact(self, min_ts_us: int, max_events: int) -> None:
        """Forget events older than ``min_ts_us`` (trace time) and beyond the newest
        ``max_events``."""
        i, n = self._hist_start, len(self._hist)
        while i < n and (self._hist[i].ts_us < min_ts_us or n - i > max_events):
            self.compacted_rv = self._hist[i].rv
            i += 1
        self._hist_start = i
        if i > 1024 and i > n // 2:  # drop the dead prefix now and then, not per event
            del self._hist[:i]
            del self._hist_rvs[:i]
            self._hist_start = 0

    @property
    def retained_events(self) -> int:
        return len(self._hist) - self._hist_start

    def since(self, rv: int) -> list[WatchEvent]:
        """Events with resourceVersion > ``rv``, oldest first; :class:`Expired` if some of
        them are no longer retained."""
        if rv < self.compacted_rv:
            raise Expired(f"too old resource version: {rv} (oldest retained: {self.compacted_rv})")
        i = bisect.bisect_right(self._hist_rvs, rv, lo=self._hist_start)
        return self._hist[i:]

    def state_at(self, rv: int) -> dict[Key, StoredObject]:
        """The objects as they were at resourceVersion ``rv`` (undoing later events);
        :class:`Expired` if that is before the retained history."""
        state = dict(self.objects)
        undone: set[Key] = set()
        for event in self.since(rv):
            key = event.obj.key
            if key in undone:
                continue
            undone.add(key)  # the first event after rv knows the version at rv: its prev
            if event.prev is None:
                state.pop(key, None)
            else:
                state[key] = event.prev
        return state

    # -- selection ---------------------------------------------------------------------------
    def select(
        self, query: Query, state: dict[Key, StoredObject] | None = None
    ) -> list[StoredObject]:
        """Selected objects sorted by (namespace, name); from ``state`` if given (a past
        state from :meth:`state_at`), else from the current state through the indexes."""
        if state is not None:
            found = [o for o in state.values() if query.matches(o)]
            found.sort(key=lambda o: o.key)
            return found
        name = query.equality("metadata.name")
        ns = query.namespace or query.equality("metadata.namespace")
        node = query.equality("spec.nodeName") if self.by_node is not None else None
        candidates: Iterable[StoredObject]
        ordered = False
        if name is not None and (ns is not None or not self.info.namespaced):
            obj = self.objects.get((ns or "", name))
            candidates = [obj] if obj is not None else []
        elif node is not None:
            candidates = (self.by_node or {}).get(node, {}).values()
        elif ns is not None:
            candidates = self.by_ns.get(ns, {}).values()
        else:
            objects = self.objects
            candidates = [objects[k] for k in self.keys]
            ordered = True
        if query.everything:
            found = list(candidates)
        else:
            found = [o for o in candidates if query.matches(o)]
        if not ordered:
            found.sort(key=lambda o: o.key)
        return found


class Store:
    """All served resources and the global resourceVersion."""

    def __init__(self) -> None:
        self.resources: dict[tuple[str, str], ResourceStore] = {}  # (kind, apiVersion)
        self.by_path: dict[tuple[str, str, str], ResourceStore] = {}  # (group, version, plural)
        self.rv = 0

    def add_resource(self, info: ResourceInfo) -> ResourceStore:
        res = ResourceStore(info, start_rv=self.rv)
        self.resources[(info.kind, info.api_version)] = res
        self.by_path[(info.group, info.version, info.plural)] = res
        return res

    def lookup(self, group: str, version: str, plural: str) -> ResourceStore | None:
        return self.by_path.get((group, version, plural))

    def groups(self) -> dict[str, list[str]]:
        """Served API groups (``""`` = core) -> their versions."""
        out: dict[str, list[str]] = {}
        for group, version, _ in self.by_path:
            versions = out.setdefault(group, [])
            if version not in versions:
                versions.append(version)
        return out

    def start_history(self) -> None:
        """From now on, record watch history; everything before is the initial state."""
        for res in self.resources.values():
            res.compacted_rv = self.rv
            res.record_history = True
