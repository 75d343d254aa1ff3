"""SIG Scalability SLOs: 99th percentile per 5-minute window, thresholds by verb and scope."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesim.analysis.slo import THRESHOLDS_S, CodedRequests, evaluate_slos
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


# -- the coded evaluation against the pandas definition --------------------------------------


def _reference(requests, pod_startup=None, start_s=None, window_s=300.0):
    """The SLO evaluation written with pandas, row by row as strings (how tracesim computed it
    before it worked on codes): the oracle of the tests below."""

    def window_p99(df, value, t0):
        win = np.floor((df["t_s"].to_numpy() - t0) / window_s).astype(np.int64)
        g = df.assign(window=win).groupby(["slo", "resource", "verb", "window"], observed=True)
        g = g[value]
        out = g.quantile(0.99).rename("p99_s").to_frame()
        out["count"] = g.size()
        out = out.reset_index()
        out["window_start_s"] = t0 + out["window"] * window_s
        return out

    frames, rejected, starts = [], {}, []
    if requests is not None and len(requests):
        starts.append(float(requests["t_s"].min()))
    if pod_startup is not None and len(pod_startup):
        starts.append(float(pod_startup["t_s"].min()))
    t0 = start_s if start_s is not None else (min(starts) if starts else 0.0)
    if requests is not None and len(requests):
        req = requests
        if "reason" in req.columns:
            reason = req["reason"].astype(str)
            bad = reason != "ok"
            if bad.any():
                rejected = {str(k): int(v) for k, v in reason[bad].value_counts().items()}
            req = req[~bad.to_numpy()]
        verb, scope = req["verb"].astype(str), req["scope"].astype(str)
        slo = np.full(len(req), "", dtype=object)
        slo[verb.isin(["create", "update", "patch", "delete"]).to_numpy()] = "mutating"
        is_read = verb.isin(["get", "list"]).to_numpy()
        for sc in ("resource", "namespace", "cluster"):
            slo[is_read & (scope == sc).to_numpy()] = f"read-{sc}"
        req = req.assign(slo=slo, verb=verb, resource=req["resource"].astype(str))
        req = req[req["slo"] != ""]
        if len(req):
            frames.append(window_p99(req, "latency_s", t0))
            if not len(frames[-1]):  # every row without a resource: the old code crashed here
                frames.pop()
    if pod_startup is not None and len(pod_startup):
        ps = pod_startup.assign(slo="pod-startup", resource="pods", verb="startup")
        frames.append(window_p99(ps, "startup_s", t0))
    if not frames:
        return pd.DataFrame(), rejected
    windows = pd.concat(frames, ignore_index=True)
    windows["threshold_s"] = windows["slo"].map(THRESHOLDS_S)
    windows["pass"] = windows["p99_s"] <= windows["threshold_s"]
    return windows, rejected


_VERBS = ["create", "update", "patch", "delete", "get", "list", "watch", "Get", None]
_RESOURCES = ["pods", "nodes", "leases", "events", "Pods", "é", None]
_SCOPES = ["resource", "namespace", "cluster", "other", None]
_REASONS = ["ok", "ok", "ok", "apf-queue-full", "nospace", "timeout", None]


def _random_frame(seed: int, n: int, kind: str, missing: bool, span_s: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)

    def col(values):
        pool = values if missing else [v for v in values if v is not None]
        v = np.array(pool, dtype=object)[rng.integers(0, len(pool), n)]
        if kind == "categorical":
            return pd.Categorical(v)
        return pd.array(v, dtype="str") if kind == "str" else v

    lat = rng.lognormal(-2.0, 1.5, n)
    lat[rng.random(n) < 0.2] = 0.5  # ties
    if missing:
        lat[rng.random(n) < 0.05] = np.nan
    t = rng.random(n) * span_s + rng.random() * 100
    return pd.DataFrame(
        {
            "t_s": np.round(t, 1) if seed % 2 else t,
            "latency_s": lat,
            "verb": col(_VERBS),
            "resource": col(_RESOURCES),
            "scope": col(_SCOPES),
            "reason": col(_REASONS),
        }
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 3000),
    kind=st.sampled_from(["object", "str", "categorical"]),
    missing=st.booleans(),
    span_s=st.sampled_from([10.0, 299.0, 1500.0, 20_000.0]),
    pods=st.integers(0, 40),
    start=st.sampled_from([None, -250.0, 50.0]),
)
def test_coded_evaluation_equals_the_pandas_definition(seed, n, kind, missing, span_s, pods, start):
    """The per-window table (order, dtypes, exact 99th percentiles with pandas' interpolation,
    NaN latencies skipped, missing labels dropped), the verdicts and the rejection counts (in
    value_counts order) are those of the pandas row-by-row definition."""
    df = _random_frame(seed, n, kind, missing, span_s)
    rng = np.random.default_rng(seed + 1)
    startup = pd.DataFrame({"t_s": rng.random(pods) * span_s, "startup_s": rng.random(pods) * 8})
    startup = startup if pods else None
    want, rejected = _reference(df, startup, start_s=start)
    rep = evaluate_slos(df, startup, start_s=start)
    if want.empty:
        assert rep.windows.empty
    else:
        pd.testing.assert_frame_equal(rep.windows, want, check_exact=True)
    assert list(rep.rejected.items()) == list(rejected.items())
    # The same rows given as codes (as the metrics buffers hold them) give the same report.
    coded = CodedRequests.from_frame(df)
    as_codes = CodedRequests(
        t_s=coded.t_s,
        latency_s=coded.latency_s,
        verb=coded.verb.astype(np.int16),
        verbs=coded.verbs,
        resource=coded.resource.astype(np.int32),
        resources=coded.resources,
        scope=coded.scope.astype(np.int8),
        scopes=coded.scopes,
        reason=coded.reason.astype(np.int64),
        reasons=coded.reasons,
    )
    rep2 = evaluate_slos(as_codes, startup, start_s=start)
    assert rep2.to_summary() == rep.to_summary()
    assert list(rep2.rejected) == list(rep.rejected)
    if not want.empty:
        pd.testing.assert_frame_equal(rep2.windows, rep.windows, check_exact=True)


def test_row_mask_evaluates_as_if_the_other_rows_were_absent():
    df = _random_frame(7, 4000, "categorical", False, 1500.0)
    keep = (df["verb"] != "list").to_numpy() & (df["t_s"] > 200).to_numpy()
    coded = CodedRequests.from_frame(df)
    coded.rows = keep
    rep = evaluate_slos(coded)
    want = evaluate_slos(df[keep].reset_index(drop=True))
    pd.testing.assert_frame_equal(rep.windows, want.windows, check_exact=True)
    assert rep.to_summary() == want.to_summary()
    assert "read-cluster" in rep.overall and not (rep.windows["verb"] == "list").any()


def test_unsigned_buffer_codes_and_values_that_read_the_same():
    """Codes of any integer width; categories 1 and "1" are one resource, as strings."""
    t = np.linspace(0, 599, 200)
    df = pd.DataFrame(
        {
            "t_s": t,
            "latency_s": np.where(t < 300, 0.1, 2.0),
            "verb": ["create"] * 200,
            "resource": pd.array([1, "1"] * 100, dtype=object),
            "scope": ["namespace"] * 200,
        }
    )
    rep = evaluate_slos(df)
    assert rep.windows["resource"].tolist() == ["1", "1"]
    assert rep.windows["count"].tolist() == [100, 100]
    assert rep.overall["mutating"]["failing"] == ["create 1"]
    coded = CodedRequests(
        t_s=t,
        latency_s=df["latency_s"].to_numpy(),
        verb=np.zeros(200, np.uint8),
        verbs=["create"],
        resource=np.zeros(200, np.uint16),
        resources=["1"],
        scope=np.zeros(200, np.uint8),
        scopes=["namespace"],
        reason=np.zeros(200, np.uint8),
        reasons=["ok"],
    )
    assert evaluate_slos(coded).to_summary() == rep.to_summary()
