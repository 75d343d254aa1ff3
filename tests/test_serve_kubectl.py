"""Real kubectl against tracesim serve: get, get -o wide, field selectors, get -w.

CI installs kubectl with ``apt-get install -y kubernetes-client`` (Debian's kubectl). On a
developer machine without kubectl these tests skip; ``TRACESIM_KUBECTL=/path/to/kubectl``
picks a specific binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _serve_trace import T0_US, S, build_trace

from tracesim.serve import ServerThread, TracePlayer
from tracesim.trace import open_trace

KUBECTL = os.environ.get("TRACESIM_KUBECTL") or shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl not found: install it (Debian: apt-get install -y kubernetes-client) "
    "or set TRACESIM_KUBECTL=/path/to/kubectl",
)


class FakeTime:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Cluster:
    """A served trace, a kubeconfig for it, and a way to run kubectl and move time."""

    def __init__(self, tmp: Path) -> None:
        self.clock = FakeTime()
        self.player = TracePlayer(open_trace(build_trace(tmp / "trace")), time_fn=self.clock)
        self.srv = ServerThread(self.player, max_tick_s=0.02).start()
        self.home = tmp / "home"
        self.home.mkdir()
        self.kubeconfig = tmp / "kubeconfig"
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: trace\n  cluster:\n    server: {self.srv.url}\n"
            "users:\n- name: nobody\n  user: {}\n"
            "contexts:\n- name: trace\n  context:\n    cluster: trace\n    user: nobody\n"
            "    namespace: default\n"
            "current-context: trace\n"
        )
        # No discovery cache from another run, no user kubeconfig, no cloud plugins.
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.home),
            "KUBECONFIG": str(self.kubeconfig),
        }

    def argv(self, *args: str) -> list[str]:
        return [str(KUBECTL), "--request-timeout=10s", *args]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(*args), env=self.env, capture_output=True, text=True, timeout=60
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr}")
        return proc

    def table(self, *args: str) -> list[dict[str, str]]:
        """Rows of kubectl's table output as {HEADER: cell}."""
        lines = [ln for ln in self.run(*args).stdout.splitlines() if ln.strip()]
        return _parse_table(lines)

    def advance_to(self, trace_s: float) -> None:
        target = T0_US + int(trace_s * S)
        self.clock.t = self.player.clock.wall_at(target) + 1e-9
        deadline = time.monotonic() + 5
        while not self.srv.call(lambda: self.player.played_through(target)):
            assert time.monotonic() < deadline, "server did not catch up"
            time.sleep(0.01)


def _parse_table(lines: list[str]) -> list[dict[str, str]]:
    """Split kubectl's aligned columns using the header's column starts."""
    if not lines:
        return []
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    # Headers with a space inside ("NOMINATED NODE") are one column: keep starts after 2 spaces.
    starts = [s for s in starts if s == 0 or header[s - 2 : s] == "  "]
    bounds = [*starts[1:], None]
    names = [header[a:b].strip() for a, b in zip(starts, bounds, strict=True)]
    return [
        {n: line[a:b].strip() for n, a, b in zip(names, starts, bounds, strict=True)}
        for line in lines[1:]
    ]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    yield c
    c.srv.stop()


def test_kubectl_get_pods_wide_and_nodes(cluster: Cluster):
    rows = cluster.table("get", "pods", "-o", "wide")
    assert [(r["NAME"], r["STATUS"], r["NODE"]) for r in rows] == [
        ("p1", "Running", "n1"),
        ("p2", "Running", "n2"),
    ]
    everywhere = cluster.table("get", "pods", "--all-namespaces")
    assert {(r["NAMESPACE"], r["NAME"]) for r in everywhere} == {
        ("default", "p1"),
        ("default", "p2"),
        ("kube-system", "p3"),
    }
    cluster.advance_to(5.0)  # n2 goes NotReady
    nodes = cluster.table("get", "nodes")
    assert [(r["NAME"], r["STATUS"], r["ROLES"]) for r in nodes] == [
        ("n1", "Ready", "worker"),
        ("n2", "NotReady", "worker"),
        ("n3", "Ready", "worker"),
    ]


def test_kubectl_field_and_label_selected_lists(cluster: Cluster):
    cluster.advance_to(3.0)  # p4 added on n1, p3 bound to n2
    on_n2 = cluster.table("get", "pods", "-A", "--field-selector", "spec.nodeName=n2")
    assert sorted(r["NAME"] for r in on_n2) == ["p2", "p3"]
    on_n1 = cluster.table("get", "pods", "--field-selector=spec.nodeName=n1", "-l", "app=web")
    assert [r["NAME"] for r in on_n1] == ["p1", "p4"]
    leases = cluster.table("get", "leases", "-n", "kube-node-lease")
    assert [(r["NAME"], r["HOLDER"]) for r in leases] == [("n1", "n1"), ("n2", "n2"), ("n3", "n3")]


def test_kubectl_get_single_objects_json_and_not_found(cluster: Cluster):
    import json

    pod = json.loads(cluster.run("get", "pod", "p1", "-o", "json").stdout)
    assert pod["spec"]["nodeName"] == "n1" and pod["metadata"]["resourceVersion"] == "103"
    listed = json.loads(cluster.run("get", "nodes", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["n1", "n2", "n3"]
    missing = cluster.run("get", "pod", "nothere", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_kubectl_get_pods_watch_sees_changes_as_they_are_played(cluster: Cluster):
    proc = subprocess.Popen(
        cluster.argv("get", "pods", "-w"),
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        _wait_for(lambda: len(lines) >= 3, "kubectl's initial list")
        assert [ln.split()[0] for ln in lines[:3]] == ["NAME", "p1", "p2"]
        _wait_for(lambda: cluster.srv.server.watchers >= 1, "kubectl's watch")
        cluster.advance_to(6.0)  # p4 added, p2 deleted, p1 relabelled
        _wait_for(lambda: len(lines) >= 6, "watch events")
    finally:
        proc.terminate()
        proc.wait(10)
    watched = [ln.split() for ln in lines[3:6]]
    assert [w[0] for w in watched] == ["p4", "p2", "p1"]
    assert all(w[2] == "Running" for w in watched)


def _wait_for(cond: Any, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
