"""Kubernetes object -> trace row, on object shapes as the API server serves them.

The fixtures in ``tests/fixtures/k8s`` are written after the Kubernetes API reference (Pod,
Node, Lease, Event as served by a 1.29 cluster); the openb Nodes are the published YAML.
"""

from __future__ import annotations

import copy
import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesim.trace.objects import object_row, parse_time_us, pod_requests
from tracesim.trace.quantity import QuantityError
from tracesim.trace.schema import COLUMN_NAMES

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "k8s"
OPENB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alibaba-gpu-v2023"
Mi = 2**20
Ki = 2**10
TS = "2024-05-14T09:21:07.000001Z"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(dt: datetime) -> int:
    """Microseconds since the epoch, exactly (no float)."""
    return (dt - EPOCH) // timedelta(microseconds=1)


TS_US = us(datetime(2024, 5, 14, 9, 21, 7, 1, tzinfo=UTC))


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


# -- Pod -----------------------------------------------------------------------------------------
def test_running_pod_row() -> None:
    pod = load("pod_running.json")
    row = object_row(pod, "MODIFIED", TS)
    assert set(row) <= set(COLUMN_NAMES)
    assert row["ts"] == TS_US
    assert row["kind"] == "Pod" and row["api_version"] == "v1"
    assert (row["namespace"], row["name"]) == ("ml-team", "trainer-7d9f8b6c5d-x2kqp")
    assert row["uid"] == "3f6c2a1e-8b47-4d0e-9a51-2c7e4f1b9d03"
    assert row["resource_version"] == "184467392"
    assert row["size_bytes"] == len(orjson.dumps(pod))
    assert row["labels"] == [
        "app.kubernetes.io/name=trainer",
        "app.kubernetes.io/part-of=recsys",
        "pod-template-hash=7d9f8b6c5d",
        "security.istio.io/tlsMode=istio",
    ]
    assert (row["owner_kind"], row["owner_name"]) == ("ReplicaSet", "trainer-7d9f8b6c5d")
    assert row["node_name"] == "ip-10-0-17-23.ec2.internal"
    assert row["phase"] == "Running"
    assert row["terminating"] is False
    assert row["scheduler_name"] == "default-scheduler"
    assert row["priority"] == 100000
    assert row["priority_class"] == "ml-training"
    assert row["qos_class"] == "Burstable"
    # Effective request, by hand (Kubernetes "Effective Pod requests and limits"):
    #   containers: trainer 500m/1Gi + log-agent (limits only -> requests) 100m/128Mi
    #               + metrics 50m/64Mi = 650m / 1216Mi; the istio-proxy sidecar adds
    #               100m/128Mi -> 750m / 1344Mi.
    #   init steps: init-schema 2000m/512Mi; istio-proxy 100m/128Mi; warmup-cache runs next to
    #               the sidecar: 1600m/1152Mi -> max 2000m / 1152Mi.
    #   max(750m, 2000m) = 2000m; max(1344Mi, 1152Mi) = 1344Mi; overhead 250m / 120Mi.
    assert row["req_cpu_milli"] == 2250
    assert row["req_memory_bytes"] == 1464 * Mi
    assert row["req_gpu_count"] == 1
    assert row["req_gpu_milli"] == 1000
    assert row["node_selector"] == [
        "kubernetes.io/os=linux",
        "node.kubernetes.io/instance-type=p3.8xlarge",
    ]
    # Terms are ORed (one string each); preferred terms do not constrain scheduling.
    assert row["node_affinity"] == [
        "topology.kubernetes.io/zone In us-east-1a|us-east-1b,nvidia.com/gpu.present Exists",
        "nvidia.com/gpu.count Gt 3,field:metadata.name In ip-10-0-17-23.ec2.internal",
    ]
    assert row["tolerations"] == [
        "nvidia.com/gpu:NoSchedule",
        "dedicated=ml:NoSchedule",
        "node.kubernetes.io/not-ready:NoExecute",
        "node.kubernetes.io/unreachable:NoExecute",
    ]
    # Node and Lease columns are not set on a Pod.
    for col in ("alloc_cpu_milli", "taints", "ready", "lease_holder", "raw"):
        assert row.get(col) is None


def test_terminating_best_effort_pod() -> None:
    pod = load("pod_terminating.json")
    row = object_row(pod, "MODIFIED", TS)
    assert row["terminating"] is True
    assert (row["owner_kind"], row["owner_name"]) == ("Job", "etl-nightly-28597260")
    assert row["qos_class"] == "BestEffort"
    assert (row["req_cpu_milli"], row["req_memory_bytes"]) == (0, 0)
    assert (row["req_gpu_count"], row["req_gpu_milli"]) == (0, 0)
    assert row["priority"] == 0 and row["priority_class"] is None
    assert row["node_selector"] is None and row["node_affinity"] is None
    # An empty-key Exists toleration tolerates every taint: "*".
    assert row["tolerations"][-1] == "*"
    assert row["tolerations"][0] == "node.kubernetes.io/not-ready:NoExecute"


def test_pending_pod_has_no_node_and_controller_owner_wins() -> None:
    pod = load("pod_running.json")
    del pod["spec"]["nodeName"]
    pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}
    pod["metadata"]["ownerReferences"].insert(
        0, {"apiVersion": "v1", "kind": "ConfigMap", "name": "not-the-controller", "uid": "x"}
    )
    row = object_row(pod, "ADDED", TS)
    assert row["node_name"] is None and row["phase"] == "Pending"
    assert (row["owner_kind"], row["owner_name"]) == ("ReplicaSet", "trainer-7d9f8b6c5d")


def test_keep_raw_and_given_size() -> None:
    pod = load("pod_running.json")
    row = object_row(pod, "ADDED", TS, keep_raw=True, size_bytes=12345)
    assert row["size_bytes"] == 12345
    assert json.loads(row["raw"]) == pod
    assert object_row(pod, "ADDED", TS)["raw"] is None


def test_malformed_quantity_raises_value_error() -> None:
    pod = load("pod_running.json")
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = "1.5.2"
    with pytest.raises(QuantityError, match=r"1\.5\.2"):
        object_row(pod, "ADDED", TS)
    pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] = {"nested": 1}
    with pytest.raises(ValueError):
        object_row(pod, "ADDED", TS)


# -- effective pod request formula ----------------------------------------------------------------
def _c(cpu: str | None = None, mem: str | None = None, gpu: str | None = None, **extra: Any):
    req = {k: v for k, v in (("cpu", cpu), ("memory", mem), ("nvidia.com/gpu", gpu)) if v}
    return {"name": "c", "resources": {"requests": req}, **extra}


SIDECAR = {"restartPolicy": "Always"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # containers add up
        ({"containers": [_c("1", "1Gi"), _c("500m", "512Mi")]}, (1500, 1536 * Mi, 0, 0)),
        # an init container larger than the containers sets the request
        (
            {"containers": [_c("1", "1Gi")], "initContainers": [_c("3", "256Mi")]},
            (3000, 1024 * Mi, 0, 0),
        ),
        # init containers run one at a time: max, not sum
        ({"containers": [_c("100m")], "initContainers": [_c("2"), _c("2")]}, (2000, 0, 0, 0)),
        # a sidecar adds to the containers
        (
            {"containers": [_c("1", "1Gi")], "initContainers": [_c("1", "1Gi", **SIDECAR)]},
            (2000, 2048 * Mi, 0, 0),
        ),
        # an init container after a sidecar runs next to it ...
        (
            {"containers": [_c("100m")], "initContainers": [_c("1", **SIDECAR), _c("3")]},
            (4000, 0, 0, 0),
        ),
        # ... one before it does not
        (
            {"containers": [_c("100m")], "initContainers": [_c("3"), _c("1", **SIDECAR)]},
            (3000, 0, 0, 0),
        ),
        # overhead is added on top of everything
        (
            {
                "containers": [_c("1", "1Gi")],
                "initContainers": [_c("2")],
                "overhead": {"cpu": "250m", "memory": "120Mi"},
            },
            (2250, 1144 * Mi, 0, 0),
        ),
        # a request defaults to the limit, per resource
        (
            {
                "containers": [
                    {
                        "resources": {
                            "limits": {"cpu": "2", "memory": "1Gi"},
                            "requests": {"cpu": "1"},
                        }
                    }
                ]
            },
            (1000, 1024 * Mi, 0, 0),
        ),
        # GPUs: containers add, a sidecar's GPU adds, init GPUs are a max
        ({"containers": [_c(gpu="2"), _c(gpu="1")]}, (0, 0, 3, 3000)),
        (
            {"containers": [_c(gpu="1")], "initContainers": [_c(gpu="1", **SIDECAR)]},
            (0, 0, 2, 2000),
        ),
        ({"containers": [_c(gpu="1")], "initContainers": [_c(gpu="4")]}, (0, 0, 4, 4000)),
        # pod-level resources (PodLevelResources) replace the container sum for cpu/memory
        (
            {
                "containers": [_c("1", "1Gi"), _c("1", "1Gi")],
                "resources": {"requests": {"cpu": "3", "memory": "3Gi"}},
                "overhead": {"cpu": "100m"},
            },
            (3100, 3072 * Mi, 0, 0),
        ),
        # Alibaba GPU sharing: a share per GPU, a count of one if none is given
        (
            {"containers": [{"resources": {"requests": {"alibabacloud.com/gpu-milli": "250"}}}]},
            (0, 0, 1, 250),
        ),
        (
            {
                "containers": [
                    {
                        "resources": {
                            "requests": {
                                "alibabacloud.com/gpu-count": "2",
                                "alibabacloud.com/gpu-milli": "500",
                            }
                        }
                    }
                ]
            },
            (0, 0, 2, 1000),
        ),
        ({}, (0, 0, 0, 0)),
    ],
)
def test_pod_requests_cases(spec: dict[str, Any], expected: tuple[int, int, int, int]) -> None:
    assert pod_requests(spec) == expected


def _timeline_peak(spec: dict[str, Any], values: dict[int, tuple[int, int, int]]) -> list[int]:
    """Reference: walk the pod's life and take the peak of what runs at once.

    Each init step runs next to the sidecars started before it; a sidecar keeps running; then
    the containers run next to all sidecars. ``values[id(container)]`` = (cpu, mem, gpu).
    """
    running_sidecars = [0, 0, 0]
    peaks = []
    for c in spec.get("initContainers", []):
        v = values[id(c)]
        if c.get("restartPolicy") == "Always":
            running_sidecars = [a + b for a, b in zip(running_sidecars, v, strict=True)]
            peaks.append(running_sidecars)
        else:
            peaks.append([a + b for a, b in zip(running_sidecars, v, strict=True)])
    steady = list(running_sidecars)
    for c in spec.get("containers", []):
        steady = [a + b for a, b in zip(steady, values[id(c)], strict=True)]
    peaks.append(steady)
    return [max(p[i] for p in peaks) for i in range(3)]


cpu_text = st.integers(0, 64_000).flatmap(
    lambda m: st.sampled_from([f"{m}m", f"{m / 1000:g}" if m % 1000 == 0 else f"{m}m"]).map(
        lambda t, m=m: (m, t)
    )
)
mem_text = st.integers(0, 2**20).flatmap(
    lambda k: (
        st.sampled_from([(k * Ki, f"{k}Ki"), (k * Ki, str(k * Ki))])
        | (st.just((k // 1024 * Mi, f"{k // 1024}Mi")))
    )
)
container = st.tuples(
    cpu_text, mem_text, st.integers(0, 4), st.booleans(), st.sampled_from(["req", "lim", "both"])
)


@settings(max_examples=100, deadline=None)
@given(
    containers=st.lists(container, min_size=1, max_size=4),
    inits=st.lists(st.tuples(container, st.booleans()), max_size=4),
    overhead=st.none() | st.tuples(cpu_text, mem_text),
)
def test_pod_requests_match_timeline_reference(containers, inits, overhead) -> None:
    values: dict[int, tuple[int, int, int]] = {}

    def make(c, sidecar: bool) -> dict[str, Any]:
        (cpu, cpu_s), (mem, mem_s), gpu, has_gpu, where = c
        res = {"cpu": cpu_s, "memory": mem_s}
        if has_gpu:
            res["nvidia.com/gpu"] = str(gpu)
        resources: dict[str, Any] = {}
        if where in ("req", "both"):
            resources["requests"] = dict(res)
        if where in ("lim", "both"):
            resources["limits"] = dict(res)
        obj: dict[str, Any] = {"name": "x", "resources": resources}
        if sidecar:
            obj["restartPolicy"] = "Always"
        values[id(obj)] = (cpu, mem, gpu if has_gpu else 0)
        return obj

    spec: dict[str, Any] = {
        "containers": [make(c, False) for c in containers],
        "initContainers": [make(c, side) for c, side in inits],
    }
    cpu, mem, gpus = _timeline_peak(spec, values)
    if overhead is not None:
        (o_cpu, o_cpu_s), (o_mem, o_mem_s) = overhead
        spec["overhead"] = {"cpu": o_cpu_s, "memory": o_mem_s}
        cpu, mem = cpu + o_cpu, mem + o_mem
    assert pod_requests(spec) == (cpu, mem, gpus, gpus * 1000)


# -- Node ------------------------------------------------------------------------------------------
def test_gpu_node_row() -> None:
    node = load("node_gpu.json")
    size = len(orjson.dumps(node))
    assert 10_000 <= size <= 20_000  # a realistic kubelet-reported Node
    row = object_row(node, "MODIFIED", TS)
    assert row["size_bytes"] == size
    assert row["namespace"] is None
    assert row["name"] == "ip-10-0-17-23.ec2.internal"
    assert row["owner_kind"] is None and row["terminating"] is None
    assert len(row["labels"]) == len(node["metadata"]["labels"])
    assert "nvidia.com/gpu.count=4" in row["labels"]
    assert row["labels"] == sorted(row["labels"])
    # allocatable, not capacity
    assert row["alloc_cpu_milli"] == 31_850
    assert row["alloc_memory_bytes"] == 245_604_592 * Ki
    assert row["alloc_pods"] == 234
    assert row["alloc_gpu_count"] == 4
    assert row["alloc_gpu_milli"] == 4000
    assert row["gpu_model"] == "Tesla-V100-SXM2-16GB"
    assert row["unschedulable"] is False
    assert row["ready"] is True
    assert row["taints"] == [
        "nvidia.com/gpu=true:NoSchedule",
        "dedicated=ml:NoSchedule",
        "node.kubernetes.io/disk-pressure:NoSchedule",
    ]
    for col in ("req_cpu_milli", "phase", "lease_holder"):
        assert row.get(col) is None


def test_cordoned_not_ready_node() -> None:
    node = copy.deepcopy(load("node_gpu.json"))
    node["spec"]["unschedulable"] = True
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    ready["status"] = "Unknown"
    row = object_row(node, "MODIFIED", TS)
    assert row["unschedulable"] is True and row["ready"] is False
    del node["status"]["conditions"]
    assert object_row(node, "MODIFIED", TS)["ready"] is None  # not reported: unknown, not False


# -- Lease and Event ---------------------------------------------------------------------
def test_node_lease_row() -> None:
    lease = load("lease_node.json")
    row = object_row(lease, "MODIFIED", TS)
    assert row["kind"] == "Lease" and row["api_version"] == "coordination.k8s.io/v1"
    assert (row["namespace"], row["name"]) == ("kube-node-lease", "ip-10-0-17-23.ec2.internal")
    assert (row["owner_kind"], row["owner_name"]) == ("Node", "ip-10-0-17-23.ec2.internal")
    assert row["lease_holder"] == "ip-10-0-17-23.ec2.internal"
    assert row["lease_duration_s"] == 40
    renew = datetime(2024, 5, 14, 9, 21, 7, 512345, tzinfo=UTC)
    assert row["lease_renew_time"] == us(renew)
    assert row["terminating"] is None and row.get("req_cpu_milli") is None


def test_event_row_has_only_common_columns() -> None:
    event = load("event_scheduled.json")
    row = object_row(event, "ADDED", TS)
    assert row["kind"] == "Event"
    assert row["namespace"] == "ml-team"
    assert row["name"] == "trainer-7d9f8b6c5d-x2kqp.17cf3b2a9d4e1f08"
    assert row["resource_version"] == "184467399"
    assert row["labels"] is None and row["owner_kind"] is None
    assert row["size_bytes"] == len(orjson.dumps(event))
    for col in ("node_name", "req_cpu_milli", "alloc_cpu_milli", "lease_holder", "terminating"):
        assert row.get(col) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-14T09:21:07Z", datetime(2024, 5, 14, 9, 21, 7, tzinfo=UTC)),
        ("2024-05-14T09:21:07.512345Z", datetime(2024, 5, 14, 9, 21, 7, 512345, tzinfo=UTC)),
        ("2024-05-14T11:21:07+02:00", datetime(2024, 5, 14, 9, 21, 7, tzinfo=UTC)),
        (datetime(2024, 5, 14, 9, 21, 7), datetime(2024, 5, 14, 9, 21, 7, tzinfo=UTC)),
        ("1969-12-31T23:59:59.5Z", datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)),
    ],
)
def test_parse_time_us(value: Any, expected: datetime) -> None:
    assert parse_time_us(value) == us(expected)


# -- the openb node list -----------------------------------------------------------------
def test_all_openb_nodes_match_the_csv() -> None:
    yaml_path = OPENB / "openb_node_list_gpu_node.yaml"
    csv_path = OPENB / "openb_node_list_gpu_node.csv"
    for p in (yaml_path, csv_path):
        if not p.is_file():
            pytest.skip(f"{p} absent (alibaba/clusterdata, cluster-trace-gpu-v2023)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(yaml_path) as fh:
        nodes = [doc for doc in yaml.load_all(fh, Loader=loader) if doc]
    with open(csv_path, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(nodes) == len(table) == 1213
    gpus_total = 0
    for node, expected in zip(nodes, table, strict=True):
        row = object_row(node, "LISTED", 0)
        assert row["name"] == expected["sn"]
        assert row["kind"] == "Node" and row["namespace"] is None
        assert row["alloc_cpu_milli"] == int(expected["cpu_milli"]), expected["sn"]
        assert row["alloc_memory_bytes"] == int(expected["memory_mib"]) * Mi, expected["sn"]
        assert row["alloc_gpu_count"] == int(expected["gpu"]), expected["sn"]
        assert row["alloc_gpu_milli"] == 1000 * int(expected["gpu"]), expected["sn"]
        assert row["gpu_model"] == expected["model"], expected["sn"]
        assert row["alloc_pods"] == 1001
        assert row["ready"] is None and row["taints"] is None
        gpus_total += row["alloc_gpu_count"]
    assert gpus_total == 6212  # as the data README states
