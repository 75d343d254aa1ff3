"""SIG Scalability SLOs: 99th percentile per 5-minute window, thresholds by verb and scope."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import simpy

from tracesim.analysis.slo import THRESHOLDS_S, evaluate_slos
from tracesim.models.apiserver import ApiServerModel
from tracesim.models.etcd import EtcdModel
from tracesim.sim.metrics import Metrics


def frame(t, lat, verb="update", resource="pods", scope="namespace", reason="ok"):
    n = len(t)
    return pd.DataFrame(
        {
            "t_s": np.asarray(t, float),
            "latency_s": np.asarray(lat, float),
            "verb": [verb] * n,
            "resource": [resource] * n,
            "scope": [scope] * n,
            "reason": [reason] * n if isinstance(reason, str) else reason,
        }
    )


def test_thresholds_are_the_published_ones():
    assert THRESHOLDS_S == {
        "mutating": 1.0,
        "read-resource": 1.0,
        "read-namespace": 5.0,
        "read-cluster": 30.0,
        "pod-startup": 5.0,
    }


def test_p99_per_five_minute_window_and_overall_verdict():
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 600, 20_000))
    lat = rng.uniform(0.01, 0.2, len(t))
    late = (t >= 300) & (rng.random(len(t)) < 0.02)  # 2 % of the 2nd window take 2 s
    lat[late] = 2.0
    rep = evaluate_slos(frame(t, lat))
    w = rep.windows.sort_values("window")
    assert w["window"].tolist() == [0, 1]
    assert w["window_start_s"].tolist() == pytest.approx([t[0], t[0] + 300])
    first = (t - t[0]) < 300
    assert w["p99_s"].iloc[0] == pytest.approx(np.quantile(lat[first], 0.99))
    assert w["pass"].tolist() == [True, False]
    assert rep.overall["mutating"]["pass"] is False
    assert rep.overall["mutating"]["failed_windows"] == 1
    assert rep.overall["mutating"]["failing"] == ["update pods"]
    assert not rep.passed
    # 0.5 % slow calls do not break a 99th percentile.
    lat2 = rng.uniform(0.01, 0.2, len(t))
    lat2[rng.random(len(t)) < 0.005] = 2.0
    assert evaluate_slos(frame(t, lat2)).passed


def test_read_thresholds_depend_on_scope():
    t = np.linspace(0, 299, 1000)
    ten = np.full(1000, 10.0)
    df = pd.concat(
        [
            frame(t, ten, "list", "pods", "cluster"),  # 10 s <= 30 s
            frame(t, ten, "list", "configmaps", "namespace"),  # 10 s > 5 s
            frame(t, np.full(1000, 1.5), "get", "nodes", "resource"),  # 1.5 s > 1 s
        ]
    )
    rep = evaluate_slos(df)
    assert rep.overall["read-cluster"]["pass"] is True
    assert rep.overall["read-namespace"]["pass"] is False
    assert rep.overall["read-resource"]["pass"] is False


def test_each_resource_verb_pair_is_judged_separately():
    t = np.linspace(0, 299, 1000)
    df = pd.concat([frame(t, np.full(1000, 0.1), "create"), frame(t, np.full(1000, 3.0), "delete")])
    rep = evaluate_slos(df)
    assert rep.overall["mutating"]["failing"] == ["delete pods"]
    assert rep.overall["mutating"]["worst_p99_s"] == pytest.approx(3.0)


def test_rejected_and_watch_requests_are_excluded_and_rejections_counted():
    t = np.linspace(0, 299, 100)
    reasons = ["apf-queue-full"] * 50 + ["ok"] * 50
    lat = np.r_[np.full(50, 0.0), np.full(50, 0.2)]
    df = pd.concat([frame(t, lat, reason=reasons), frame(t, np.full(100, 60.0), "watch")])
    rep = evaluate_slos(df)
    assert rep.rejected == {"apf-queue-full": 50}
    assert set(rep.windows["slo"]) == {"mutating"}
    assert rep.windows["count"].sum() == 50


def test_pod_startup_slo():
    t = np.linspace(0, 599, 1000)
    startup = np.where(t < 300, 2.0, 7.0)
    rep = evaluate_slos(pod_startup=pd.DataFrame({"t_s": t, "startup_s": startup}))
    w = rep.windows.sort_values("window")
    assert w["pass"].tolist() == [True, False]
    assert rep.overall["pod-startup"]["pass"] is False


def test_end_to_end_from_simulated_requests_to_summary_json(tmp_path):
    env = simpy.Environment()
    m = Metrics()
    etcd = EtcdModel(env)
    api = ApiServerModel(env, etcd, metrics=m, compactor=False)
    etcd.register_metrics(m)
    rng = np.random.default_rng(2)

    def load():
        for i in range(2_000):
            yield env.timeout(rng.exponential(0.2))
            api.request("create", "configmaps", "namespace", 1000, i)
            api.request("list", "configmaps", "namespace", objects_in_scope=50)

    env.process(load())
    env.run()
    rep = evaluate_slos(m.requests_frame())
    assert rep.passed
    assert set(rep.overall) == {"mutating", "read-namespace"}
    assert rep.windows["count"].sum() == 4_000
    json.dumps(rep.to_summary())
    # The same samples round-trip through Parquet with readable categories.
    m.sample(env.now, env.now)
    paths = m.write_parquet(tmp_path)
    back = pd.read_parquet(paths["requests"])
    assert len(back) == 4_000 and set(back["verb"].astype(str)) == {"create", "list"}
    series = pd.read_parquet(paths["series"])
    util = series.loc[series["metric"] == "apiserver.cpu_utilisation", "value"]
    assert len(util) == 1 and 0 < util.iloc[0] < 1


def test_empty_input_gives_an_empty_passing_report():
    rep = evaluate_slos(frame([], []))
    assert rep.passed and rep.windows.empty
