"""kube-apiserver model: APF, max-in-flight, storage paths, LIST from cache vs etcd, fan-out,
heartbeat streams, and conservation of requests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import simpy

from tracesim.models.apiserver import ApiServerModel
from tracesim.models.etcd import EtcdModel
from tracesim.models.kubelet import Heartbeats
from tracesim.models.params import ApiServerParams, EtcdParams, load_profile
from tracesim.sim.metrics import Metrics


def make(api_kw=None, etcd_kw=None, metrics=True):
    env = simpy.Environment()
    etcd = EtcdModel(env, dataclasses.replace(EtcdParams(), **(etcd_kw or {})))
    m = Metrics() if metrics else None
    api = ApiServerModel(
        env, etcd, dataclasses.replace(ApiServerParams(), **(api_kw or {})), m, compactor=False
    )
    return env, etcd, api, m


def collect(results):
    def done(lat, reasons, members):
        idx = range(len(lat)) if members is None else members.tolist()
        for j, i in enumerate(idx):
            results[i] = (float(lat[j]), int(reasons[j]))

    return done


def test_apf_seats_come_from_shares_of_600():
    _, _, api, _ = make()
    seats = api.seats()
    assert seats["workload-low"] == 245 and seats["node-high"] == 98 and seats["catch-all"] == 13
    assert 600 <= sum(seats.values()) < 600 + len(seats)


def test_apf_rejects_with_429_when_a_levels_queues_are_full_and_other_levels_are_unaffected():
    # A slow disk makes each request hold its seat ~50 ms.
    etcd_kw = {"fsync_ms": 50.0}
    env, _etcd, api, m = make(etcd_kw=etcd_kw)
    flood: dict[int, tuple[float, int]] = {}
    other: dict[int, tuple[float, int]] = {}
    n = 1000
    api.submit(
        "create",
        "configmaps",
        "namespace",
        np.full(n, 500.0),
        [f"f{i}" for i in range(n)],
        level="global-default",
        flow="noisy-user",
        on_done=collect(flood),
    )
    api.submit(
        "create",
        "pods",
        "namespace",
        np.full(50, 500.0),
        [f"p{i}" for i in range(50)],
        level="workload-high",
        flow="controller",
        on_done=collect(other),
    )
    env.run()
    assert len(flood) == n and len(other) == 50
    seats = api.seats()["global-default"]  # 49 admitted at once
    queued = 6 * 50  # one flow: its hand of 6 queues x 50
    rejected = [i for i, (_, r) in flood.items() if r == 5]  # apf-queue-full
    assert len(rejected) == n - seats - queued
    assert all(flood[i][0] == 0.0 for i in rejected)  # rejected at once
    assert all(r == 0 for _, r in other.values())
    # The other level saw no queueing: its latency is that of an idle server.
    env2, _, api2, _ = make(etcd_kw=etcd_kw)
    alone: dict[int, tuple[float, int]] = {}
    api2.submit(
        "create",
        "pods",
        "namespace",
        np.full(50, 500.0),
        [f"p{i}" for i in range(50)],
        level="workload-high",
        on_done=collect(alone),
    )
    env2.run()
    # The other level was admitted at once (no APF queueing); it shares only etcd with the
    # flood, so its latency is at most one extra etcd batch, while queued flood requests wait
    # for several rounds of seats.
    assert api.levels["workload-high"].rejected == 0
    worst_other = max(v[0] for v in other.values())
    assert worst_other < 2.5 * max(v[0] for v in alone.values())
    assert max(v[0] for i, v in flood.items() if v[1] == 0) > 3 * worst_other
    # Status codes in the metrics: 429 for the rejected, 201 for created.
    df = m.requests_frame()
    assert (df["status"] == 429).sum() == len(rejected)
    assert set(df.loc[df["status"] == 429, "reason"].astype(str)) == {"apf-queue-full"}
    assert (df["status"] == 201).sum() == n - len(rejected) + 50


def test_many_flows_spread_over_queues_and_are_not_rejected():
    env, _, api, _ = make(etcd_kw={"fsync_ms": 50.0})
    res: dict[int, tuple[float, int]] = {}
    for f in range(20):  # 20 users x 30 requests: each flow fits in its hand's queues
        idx = np.arange(30) + 30 * f

        def done(lat, reasons, members, idx=idx):
            sub = idx if members is None else idx[members]
            for j, i in enumerate(sub.tolist()):
                res[i] = (float(lat[j]), int(reasons[j]))

        api.submit(
            "create",
            "configmaps",
            "namespace",
            np.full(30, 100.0),
            [f"u{f}-{i}" for i in range(30)],
            level="global-default",
            flow=f"user-{f}",
            on_done=done,
        )
    env.run()
    assert len(res) == 600 and all(r == 0 for _, r in res.values())


def test_max_inflight_mode_rejects_at_once_beyond_the_mutating_pool_reads_unaffected():
    env, etcd, api, _ = make(api_kw={"apf_enabled": False}, etcd_kw={"fsync_ms": 50.0})
    etcd.preload("pods", list(range(10)), 1000)
    writes: dict[int, tuple[float, int]] = {}
    reads: dict[int, tuple[float, int]] = {}
    api.submit(
        "create",
        "cm",
        "namespace",
        np.full(300, 100.0),
        list(range(300)),
        on_done=collect(writes),
    )
    api.submit("get", "pods", "resource", np.full(100, 1000.0), on_done=collect(reads))
    env.run()
    assert sum(r == 6 for _, r in writes.values()) == 100  # inflight-limit
    assert sum(r == 0 for _, r in writes.values()) == 200
    assert all(r == 0 for _, r in reads.values())


def list_latency(list_from_cache: bool, matching: int, n_pods: int = 50_000) -> float:
    env, etcd, api, _ = make(api_kw={"list_from_cache": list_from_cache})
    etcd.preload("pods", list(range(n_pods)), 3000)
    ev = api.request("list", "pods", "cluster", objects_matching=matching, indexed=True)
    env.run()
    assert ev.value.ok
    return ev.value.latency_s


def test_selective_list_from_cache_is_much_cheaper_than_from_etcd():
    cache = list_latency(True, 100)
    etcd = list_latency(False, 100)
    assert etcd > 50 * cache
    # From etcd, the cost is driven by all objects of the resource, not the matching ones.
    assert list_latency(False, 10) == pytest.approx(etcd, rel=0.05)
    assert list_latency(False, 100, n_pods=5_000) < 0.2 * etcd
    # From the cache with an index, the cost follows the matching objects.
    assert list_latency(True, 100, n_pods=5_000) == pytest.approx(cache, rel=0.3)


def test_mutating_requests_wait_for_etcd_and_cost_grows_with_object_size():
    env, _, api, _ = make(etcd_kw={"fsync_ms": 10.0})
    small = api.request("create", "cm", "namespace", 1_000, "a")
    env.run()
    big = api.request("create", "cm", "namespace", 1_000_000, "b")
    env.run()
    assert small.value.status == 201 and small.value.latency_s > 10e-3
    assert big.value.latency_s - small.value.latency_s > 2 * 1e6 * 5e-9  # decode+encode 1 MB
    too_big = api.request("update", "cm", "namespace", 2 * 2**20, "b")
    env.run()
    assert too_big.value.status == 413 and too_big.value.reason == "etcd-request-too-large"


def test_watch_fanout_cluster_wide_vs_node_scoped():
    env, etcd, api, _ = make()
    etcd.preload("pods", list(range(100)), 3000)
    etcd.preload("endpoints", [0], 3000)
    api.register_watchers("pods", 10_000, node_scoped=True)  # kubelets, one pod each
    api.register_watchers("endpoints", 10_000)  # kube-proxy on every node
    api.request("update", "pods", "namespace", 3000, 1)
    env.run()
    assert api.watch_sends == 1
    cpu_before = api.cpu_s
    api.request("update", "endpoints", "namespace", 3000, 0)
    env.run()
    assert api.watch_sends == 1 + 10_000
    assert api.cpu_s - cpu_before > 10_000 * 3e-6
    # Without KEP 1152 each watcher serialises the event itself: far more CPU.
    old = ApiServerModel(
        env,
        etcd,
        dataclasses.replace(ApiServerParams(), serialize_once_per_event=False),
        compactor=False,
    )
    old.register_watchers("endpoints", 10_000)
    assert old.fanout_cost_s("endpoints", 1, 3000) > 2 * api.fanout_cost_s("endpoints", 1, 3000)


def test_fanout_dispatcher_queues_events_when_overloaded():
    env, etcd, api, m = make()
    etcd.preload("endpoints", list(range(50)), 50_000)
    api.register_watchers("endpoints", 5_000)
    api.submit("update", "endpoints", "namespace", np.full(50, 50_000.0), list(range(50)))
    env.run()
    df = m.requests_frame()
    watch = df[df["verb"] == "watch"]
    # One dispatcher: the 50 events are delivered one after another, each its share of the
    # job later than the one before, the last at the job's end.
    one = api.fanout_cost_s("endpoints", 50, 50 * 50_000.0)
    assert watch["latency_s"].max() == pytest.approx(one, rel=0.05)
    for col in ("t_s", "latency_s"):  # (one event came in a later job)
        steps = np.diff(np.sort(watch[col].to_numpy()))
        assert np.isclose(steps, one / 50, rtol=1e-6).sum() >= 45, col


def run_heartbeats(profile: str, n_nodes: int = 2_000, until_s: float = 60.0, seed: int = 1):
    p = load_profile(profile)
    env = simpy.Environment()
    m = Metrics()
    etcd = EtcdModel(env, p.etcd)
    etcd.register_metrics(m)
    api = ApiServerModel(env, etcd, p.apiserver, m)
    hb = Heartbeats(env, api, p.kubelet, n_nodes, np.random.default_rng(seed))
    m.start_sampler(env, 10.0)
    env.run(until=until_s)
    return hb, etcd, m


def test_heartbeat_streams_write_at_the_configured_rate_and_conserve_requests():
    hb, etcd, m = run_heartbeats("current")
    # Leases every 10 s + NodeStatus every 300 s, for 60 s.
    assert hb.sent == pytest.approx(2_000 * 6 + 2_000 * 60 / 300, rel=0.02)
    df = m.requests_frame()
    assert hb.ok + hb.rejected == len(df) == hb.sent - etcd.queue_len  # all answered so far
    assert hb.rejected == 0
    assert etcd.revision == 4_000 + hb.ok  # preloaded nodes + leases, then one per write
    assert df["latency_s"].quantile(0.99) < 0.05


def test_nodestatus_heartbeats_grow_etcd_much_faster_than_leases():
    _, lease_etcd, lease_m = run_heartbeats("current")
    _, ns_etcd, ns_m = run_heartbeats("2019-era")
    assert ns_etcd.history_bytes > 10 * lease_etcd.history_bytes
    util = lambda m: m.series_wide()["etcd.leader_utilisation"].mean()  # noqa: E731
    assert util(ns_m) > util(lease_m)


def test_deterministic_under_seed():
    a = run_heartbeats("current", 500, 30.0, seed=3)[2].requests_frame()
    b = run_heartbeats("current", 500, 30.0, seed=3)[2].requests_frame()
    c = run_heartbeats("current", 500, 30.0, seed=4)[2].requests_frame()
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(a, b)
    assert not a["latency_s"].equals(c["latency_s"])


def test_unknown_level_and_verb_are_errors():
    _env, _, api, _ = make()
    with pytest.raises(ValueError, match="valid: system"):
        api.request("get", "pods", "resource", 10, level="vip")
    with pytest.raises(ValueError, match="unsupported verb"):
        api.request("watch", "pods", "cluster")
