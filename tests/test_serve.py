"""tracesim serve over plain HTTP: discovery, LIST, GET, WATCH, selectors, paging, 410, loop.

The server runs in-process on a free loopback port; the playback clock is a fake one the test
moves, so what has happened at each step is exact, not a matter of sleeping.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _serve_trace import T0_US, S, build_trace

from tracesim.serve import ServerThread, TracePlayer
from tracesim.serve.clock import PlaybackClock
from tracesim.serve.selectors import SelectorError, parse_field_selector, parse_label_selector
from tracesim.trace import open_trace


class FakeTime:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Served:
    """A running server plus helpers to talk to it and move its clock."""

    def __init__(self, srv: ServerThread, clock: FakeTime, player: TracePlayer) -> None:
        self.srv, self.clock, self.player = srv, clock, player

    def url(self, path: str, **params: Any) -> str:
        query = urllib.parse.urlencode(params)
        return f"{self.srv.url}{path}" + (f"?{query}" if query else "")

    def get(self, path: str, *, accept: str | None = None, **params: Any) -> Any:
        req = urllib.request.Request(self.url(path, **params))
        if accept:
            req.add_header("Accept", accept)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def error(self, path: str, method: str = "GET", **params: Any) -> tuple[int, Any]:
        req = urllib.request.Request(self.url(path, **params), method=method)
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        return info.value.code, json.loads(info.value.read())

    def advance_to(self, trace_s: float) -> None:
        """Move the clock so trace time ``T0 + trace_s`` has come, and wait until applied."""
        self.clock.t = self.player.clock.wall_at(T0_US + int(trace_s * S)) + 1e-9
        target = T0_US + int(trace_s * S)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.srv.call(lambda: self.player.played_through(target)):
                return
            time.sleep(0.01)
        raise AssertionError("server did not apply the events in time")

    def names(self, path: str, **params: Any) -> list[str]:
        return [i["metadata"]["name"] for i in self.get(path, **params)["items"]]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[ServerThread] = []

    def start(*, keep_raw: bool = True, integer_rvs: bool = True, **opts: Any) -> Served:
        path = build_trace(
            tmp_path / f"t{len(started)}", keep_raw=keep_raw, integer_rvs=integer_rvs
        )
        clock = FakeTime()
        bookmark_s = opts.pop("bookmark_interval_s", 5.0)
        player = TracePlayer(open_trace(path), time_fn=clock, **opts)
        srv = ServerThread(player, bookmark_interval_s=bookmark_s, max_tick_s=0.02).start()
        started.append(srv)
        return Served(srv, clock, player)

    yield start
    for srv in started:
        srv.stop()


def watch_lines(resp: Any, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        line = resp.readline()
        if not line:
            break
        out.append(json.loads(line))
    return out


# -- discovery ---------------------------------------------------------------------------------
def test_discovery_lists_the_resources_of_the_trace(serve):
    s = serve()
    assert s.get("/version")["major"] == "1"
    assert s.get("/api")["versions"] == ["v1"]
    core = {r["name"]: r for r in s.get("/api/v1")["resources"]}
    assert set(core) == {"pods", "nodes", "events"}
    assert core["pods"]["namespaced"] and not core["nodes"]["namespaced"]
    assert core["pods"]["kind"] == "Pod" and core["pods"]["verbs"] == ["get", "list", "watch"]
    groups = s.get("/apis")["groups"]
    assert [g["name"] for g in groups] == ["coordination.k8s.io"]
    leases = s.get("/apis/coordination.k8s.io/v1")["resources"]
    assert [(r["name"], r["kind"], r["namespaced"]) for r in leases] == [("leases", "Lease", True)]
    code, body = s.error("/apis/events.k8s.io/v1")
    assert code == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"


# -- LIST and GET ------------------------------------------------------------------------------
@pytest.mark.parametrize("keep_raw", [True, False])
def test_initial_state_is_the_listed_rows_and_events_play_on_the_clock(serve, keep_raw):
    s = serve(keep_raw=keep_raw)
    pods = s.get("/api/v1/pods")
    assert pods["kind"] == "PodList"
    assert [i["metadata"]["name"] for i in pods["items"]] == ["p1", "p2", "p3"]
    assert pods["metadata"]["resourceVersion"] == "108"  # the trace's, max of the LIST
    assert [i["metadata"]["resourceVersion"] for i in pods["items"]] == ["103", "104", "105"]
    s.advance_to(1.9)
    assert s.names("/api/v1/pods") == ["p1", "p2", "p3"]
    s.advance_to(2.0)
    assert s.names("/api/v1/pods") == ["p1", "p2", "p4", "p3"]  # sorted by namespace, name
    p4 = s.get("/api/v1/namespaces/default/pods/p4")
    assert p4["spec"]["nodeName"] == "n1" and p4["metadata"]["resourceVersion"] == "110"
    assert p4["kind"] == "Pod" and p4["apiVersion"] == "v1"
    s.advance_to(4.0)
    code, body = s.error("/api/v1/namespaces/default/pods/p2")
    assert code == 404 and body["reason"] == "NotFound" and body["details"]["name"] == "p2"
    s.advance_to(5.0)
    n2 = s.get("/api/v1/nodes/n2")
    ready = [c["status"] for c in n2["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == ["False"]
    lease = s.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1")
    assert lease["spec"]["renewTime"].startswith("2024-05-01T10:00:01")


def test_namespaced_lists_and_scope_errors(serve):
    s = serve()
    assert s.names("/api/v1/namespaces/kube-system/pods") == ["p3"]
    assert s.names("/api/v1/namespaces/nothere/pods") == []
    assert s.error("/api/v1/namespaces/default/nodes")[0] == 404
    assert s.error("/api/v1/pods/p1")[0] == 404  # a namespaced object needs its namespace
    assert s.error("/api/v1/widgets")[0] == 404


def test_write_verbs_are_refused_with_405_status(serve):
    s = serve()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        code, body = s.error("/api/v1/namespaces/default/pods", method=method)
        assert code == 405 and body["reason"] == "MethodNotAllowed" and body["code"] == 405


# -- selectors ---------------------------------------------------------------------------------
def test_label_and_field_selectors(serve):
    s = serve()
    s.advance_to(3.0)  # p4 added on n1, p3 bound to n2
    assert s.names("/api/v1/pods", labelSelector="app=web") == ["p1", "p4"]
    assert s.names("/api/v1/pods", labelSelector="app==db") == ["p2"]
    assert s.names("/api/v1/pods", labelSelector="app!=web") == ["p2", "p3"]
    assert s.names("/api/v1/pods", labelSelector="app in (db, web)") == ["p1", "p2", "p4"]
    assert s.names("/api/v1/pods", labelSelector="app notin (web)") == ["p2", "p3"]
    assert s.names("/api/v1/pods", labelSelector="tier") == ["p3"]
    assert s.names("/api/v1/pods", labelSelector="!app") == ["p3"]
    assert s.names("/api/v1/pods", fieldSelector="spec.nodeName=n1") == ["p1", "p4"]
    assert s.names("/api/v1/pods", fieldSelector="spec.nodeName=n2") == ["p2", "p3"]
    assert s.names("/api/v1/pods", fieldSelector="spec.nodeName!=n1") == ["p2", "p3"]
    assert s.names("/api/v1/pods", fieldSelector="metadata.namespace=kube-system") == ["p3"]
    assert s.names("/api/v1/pods", fieldSelector="metadata.name=p4,spec.nodeName=n1") == ["p4"]
    assert s.names("/api/v1/pods", fieldSelector="metadata.name=p4,spec.nodeName=n2") == []
    assert s.names("/api/v1/pods", fieldSelector="spec.nodeName=n1", labelSelector="app=web") == [
        "p1",
        "p4",
    ]
    assert s.names("/api/v1/nodes", fieldSelector="metadata.name=n3") == ["n3"]
    code, body = s.error("/api/v1/pods", fieldSelector="spec.hostname=x")
    assert code == 400 and "spec.hostname" in body["message"]
    assert s.error("/api/v1/pods", labelSelector="app in (web")[0] == 400


def test_selector_parsing_units():
    reqs = parse_label_selector("a=1,b in (x, y),!c,d,e!=2,f notin (z),g>3")
    assert [r.op for r in reqs] == ["=", "in", "!exists", "exists", "!=", "notin", "gt"]
    labels = {"a": "1", "b": "y", "d": "", "g": "4"}
    assert all(r.matches(labels) for r in reqs)
    assert not parse_label_selector("g<3")[0].matches(labels)
    fields = parse_field_selector(r"metadata.name=a\,b,spec.nodeName!=")
    assert fields[0].value == "a,b" and fields[1].negate and fields[1].value == ""
    with pytest.raises(SelectorError):
        parse_field_selector("status.podIP=1", frozenset({"metadata.name"}))
    with pytest.raises(SelectorError):
        parse_label_selector("a=b c")


# -- paging ------------------------------------------------------------------------------------
def test_limit_continue_pages_a_consistent_snapshot(serve):
    s = serve()
    first = s.get("/api/v1/pods", limit=2)
    assert [i["metadata"]["name"] for i in first["items"]] == ["p1", "p2"]
    assert first["metadata"]["remainingItemCount"] == 1
    snap_rv = first["metadata"]["resourceVersion"]
    s.advance_to(4.0)  # p4 added and p2 deleted after the snapshot
    second = s.get("/api/v1/pods", limit=2, **{"continue": first["metadata"]["continue"]})
    assert [i["metadata"]["name"] for i in second["items"]] == ["p3"]
    assert second["metadata"]["resourceVersion"] == snap_rv
    assert "continue" not in second["metadata"]
    # Without the server's snapshot cache the same page is rebuilt from history.
    s.srv.call(lambda: s.srv.server._snapshots.clear())
    again = s.get("/api/v1/pods", limit=2, **{"continue": first["metadata"]["continue"]})
    assert again["items"] == second["items"]
    p3_then = again["items"][0]
    assert p3_then["status"]["phase"] == "Pending"  # as at the snapshot, not as now
    code, _ = s.error("/api/v1/pods", limit=2, labelSelector="app", **{"continue": "x"})
    assert code == 400


def test_exact_list_at_a_past_resource_version(serve):
    s = serve()
    s.advance_to(6.0)
    past = s.get("/api/v1/pods", resourceVersion="110", resourceVersionMatch="Exact")
    assert [i["metadata"]["name"] for i in past["items"]] == ["p1", "p2", "p4", "p3"]
    now = s.names("/api/v1/pods")
    assert now == ["p1", "p4", "p3"]
    code, body = s.error("/api/v1/pods", resourceVersion="5", resourceVersionMatch="Exact")
    assert code == 410 and body["reason"] == "Expired"


# -- WATCH -------------------------------------------------------------------------------------
def test_watch_from_a_list_resource_version_streams_events_in_order(serve):
    s = serve(bookmark_interval_s=60)
    rv = s.get("/api/v1/pods")["metadata"]["resourceVersion"]
    with urllib.request.urlopen(
        s.url("/api/v1/pods", watch=1, resourceVersion=rv), timeout=10
    ) as r:
        assert r.headers["Transfer-Encoding"] == "chunked"
        s.advance_to(8.0)
        events = watch_lines(r, 4)
    got = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert got == [("ADDED", "p4"), ("MODIFIED", "p3"), ("DELETED", "p2"), ("MODIFIED", "p1")]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_with_selectors_sees_objects_enter_and_leave(serve):
    s = serve()
    url = s.url(
        "/api/v1/pods", watch="true", resourceVersion="108", fieldSelector="spec.nodeName=n2"
    )
    by_label = s.url("/api/v1/pods", watch="true", resourceVersion="108", labelSelector="app=web")
    with urllib.request.urlopen(url, timeout=10) as r, urllib.request.urlopen(by_label) as w:
        s.advance_to(8.0)
        node_events = watch_lines(r, 2)
        label_events = watch_lines(w, 2)
    # p3 is bound to n2 (enters: ADDED), then p2 is deleted.
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in node_events] == [
        ("ADDED", "p3"),
        ("DELETED", "p2"),
    ]
    # p4 (app=web) added; p1 relabelled app=api leaves: DELETED with its last matching state.
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in label_events] == [
        ("ADDED", "p4"),
        ("DELETED", "p1"),
    ]
    gone = label_events[1]["object"]
    assert gone["metadata"]["labels"] == {"app": "web"}
    assert gone["metadata"]["resourceVersion"] == "115"  # stamped with the change's rv


def test_watch_without_resource_version_starts_with_the_current_objects(serve):
    s = serve()
    with urllib.request.urlopen(s.url("/api/v1/nodes", watch=1), timeout=10) as r:
        initial = watch_lines(r, 3)
        s.advance_to(5.0)
        (change,) = watch_lines(r, 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in initial] == [
        ("ADDED", "n1"),
        ("ADDED", "n2"),
        ("ADDED", "n3"),
    ]
    assert (change["type"], change["object"]["metadata"]["name"]) == ("MODIFIED", "n2")


def test_bookmarks_and_timeout(serve):
    s = serve(bookmark_interval_s=0.2)
    url = s.url(
        "/apis/coordination.k8s.io/v1/leases",
        watch=1,
        resourceVersion="108",
        allowWatchBookmarks="true",
        timeoutSeconds=1,
    )
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as r:
        s.advance_to(1.0)
        events = [json.loads(line) for line in r]  # ends by itself after timeoutSeconds
    assert 0.9 < time.monotonic() - started < 5
    kinds = [e["type"] for e in events]
    assert "MODIFIED" in kinds and kinds.count("BOOKMARK") >= 2
    marks = [e for e in events if e["type"] == "BOOKMARK"]
    assert marks[-1]["object"]["kind"] == "Lease"
    modified_rv = int(
        next(e for e in events if e["type"] == "MODIFIED")["object"]["metadata"]["resourceVersion"]
    )
    assert int(marks[-1]["object"]["metadata"]["resourceVersion"]) >= modified_rv


def test_watch_older_than_retained_history_gets_410_expired(serve):
    s = serve(history_events=1)
    s.advance_to(8.0)  # several pod events; only the newest is retained
    with urllib.request.urlopen(s.url("/api/v1/pods", watch=1, resourceVersion="108")) as r:
        (event,) = watch_lines(r, 2)
    assert event["type"] == "ERROR"
    status = event["object"]
    assert status["kind"] == "Status" and status["code"] == 410 and status["reason"] == "Expired"
    # Resuming from the newest retained event's predecessor still works.
    newest = s.get("/api/v1/namespaces/default/pods/p1")["metadata"]["resourceVersion"]
    with urllib.request.urlopen(
        s.url("/api/v1/pods", watch=1, resourceVersion=int(newest) - 1, timeoutSeconds=1)
    ) as r:
        events = watch_lines(r, 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("MODIFIED", "p1")]


def test_opaque_trace_resource_versions_are_replaced_by_increasing_integers(serve):
    s = serve(integer_rvs=False)
    assert not s.player.trace_rvs
    listed = s.get("/api/v1/pods")
    rv = int(listed["metadata"]["resourceVersion"])
    with urllib.request.urlopen(s.url("/api/v1/pods", watch=1, resourceVersion=rv)) as r:
        s.advance_to(8.0)
        events = watch_lines(r, 4)
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert len(rvs) == 4 and rvs == sorted(set(rvs)) and rvs[0] > rv


def test_loop_restores_the_initial_state_with_new_resource_versions(serve):
    s = serve(loop=True)
    s.advance_to(8.0)
    assert s.names("/api/v1/pods") == ["p1", "p4", "p3"]
    rv_before = int(s.get("/api/v1/pods")["metadata"]["resourceVersion"])
    s.clock.t = s.player.clock.wall_at(T0_US + 8 * S) + 0.5  # past the end: start again
    deadline = time.monotonic() + 5
    while s.player.loops == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    listed = s.get("/api/v1/pods")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["p1", "p2", "p3"]
    assert int(listed["metadata"]["resourceVersion"]) > rv_before
    p3 = next(i for i in listed["items"] if i["metadata"]["name"] == "p3")
    assert p3["status"]["phase"] == "Pending"


# -- Tables ------------------------------------------------------------------------------------
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_table_responses_for_kubectl(serve):
    s = serve()
    table = s.get("/api/v1/pods", accept=TABLE)
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:5] == ["Name", "Ready", "Status", "Restarts", "Age"] and "Node" in names
    node_col = names.index("Node")
    cells = {r["cells"][0]: r["cells"] for r in table["rows"]}
    assert cells["p1"][node_col] == "n1" and cells["p3"][node_col] == "<none>"
    assert cells["p3"][names.index("Status")] == "Pending"
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    nodes = s.get("/api/v1/nodes", accept=TABLE)
    assert [c["name"] for c in nodes["columnDefinitions"]][:2] == ["Name", "Status"]
    req = urllib.request.Request(s.url("/api/v1/pods", watch=1, resourceVersion=108))
    req.add_header("Accept", TABLE)
    with urllib.request.urlopen(req, timeout=10) as r:
        s.advance_to(3.0)
        first, second = watch_lines(r, 2)
    assert first["object"]["kind"] == "Table" and first["object"]["columnDefinitions"]
    assert second["object"]["columnDefinitions"] == []  # headers once per watch
    assert second["object"]["rows"][0]["cells"][0] == "p3"


# -- clock and CLI -----------------------------------------------------------------------------
def test_clock_dilates_wall_time():
    wall = FakeTime()
    clock = PlaybackClock(T0_US, 10.0, time_fn=wall)
    wall.t += 1.5
    assert clock.trace_now_us() == T0_US + 15 * S
    assert clock.wall_at(T0_US + 30 * S) == pytest.approx(wall.t + 1.5)
    with pytest.raises(ValueError):
        PlaybackClock(T0_US, 0.0)


def _cli(*args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tracesim", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


@pytest.mark.slow
def test_cli_serves_until_sigterm(tmp_path: Path):
    path = build_trace(tmp_path / "t")
    proc = _cli(str(path), "--port", "0", "--quiet", "--speed", "100")
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/api/v1/nodes", timeout=10) as r:
            assert [i["metadata"]["name"] for i in json.loads(r.read())["items"]] == [
                "n1",
                "n2",
                "n3",
            ]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


@pytest.mark.slow
def test_cli_bad_inputs_give_one_line_and_exit_2(tmp_path: Path):
    proc = _cli(str(tmp_path / "missing"))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1 and "error:" in err
    path = build_trace(tmp_path / "t")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _cli(str(path), "--port", str(port), env={**os.environ})
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert len(err.strip().splitlines()) == 1 and str(port) in err and "--port" in err
    proc = _cli(str(path), "--start-at", "yesterday")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "--start-at" in err
