"""Request-sample buffers: deferred watch rows and the cluster change log used by caches."""

from __future__ import annotations

import numpy as np

from tracesim.models.schedulers.base import Scheduler
from tracesim.models.schedulers.kube_default import KubeDefaultPolicy
from tracesim.sim import cluster as cluster_mod
from tracesim.sim.cluster import ClusterState, PodRequest
from tracesim.sim.metrics import Metrics


def _script(seed: int) -> list[tuple]:
    """A random interleaving of request groups and watch dispatches."""
    rng = np.random.default_rng(seed)
    ops: list[tuple] = []
    t = 0.0
    for _ in range(300):
        t += float(rng.exponential(0.01))
        if rng.random() < 0.5:
            n = int(rng.integers(1, 6))
            ops.append(("req", t, rng.random(n), int(rng.integers(0, 4)), int(rng.integers(0, 3))))
        else:
            ops.append(("watch", t + 0.001, float(rng.random()), int(rng.integers(0, 3)),
                        int(rng.integers(0, 5))))  # fmt: skip
    return ops


def _metrics() -> Metrics:
    m = Metrics()
    for r in ("pods", "leases", "events"):
        m.resources.code(r)
    return m


def test_deferred_watch_rows_match_eager_rows() -> None:
    """record_watch (one tuple per dispatch, rows made when read) gives the same table, row
    for row and in the same order, as recording every event's row at once."""
    for seed in range(3):
        lazy, eager = _metrics(), _metrics()
        watch = eager.verbs.code("watch")
        cluster = eager.scopes.code("cluster")
        for op in _script(seed):
            if op[0] == "req":
                _, t, lat, verb, res = op
                for m in (lazy, eager):
                    m.record_coded(t, lat, verb, res, 1, 200, 0)
            else:
                _, t, lat, res, n = op
                lazy.record_watch(t, lat, res, n)
                if n:
                    eager.record_coded(t, np.full(n, lat), watch, res, cluster, 200, 0)
        a, b = lazy.requests_frame(), eager.requests_frame()
        assert len(a) == len(b) and len(a) > 0
        assert a.equals(b)
        # Recording continues after a read; later rows still land in order.
        lazy.record_watch(9.0, 0.5, 1, 2)
        lazy.record_coded(9.5, np.ones(1), 0, 0, 1, 201, 0)
        eager.record_coded(9.0, np.full(2, 0.5), watch, 1, cluster, 200, 0)
        eager.record_coded(9.5, np.ones(1), 0, 0, 1, 201, 0)
        assert lazy.requests_frame().equals(eager.requests_frame())


def _churn(c: ClusterState, sched: Scheduler, rng: np.random.Generator, pods: list) -> list:
    placed = []
    for _ in range(400):
        if placed and rng.random() < 0.4:
            node, req = placed.pop(int(rng.integers(len(placed))))
            c.release(node, req)
            continue
        req = pods[int(rng.integers(len(pods)))]
        p = sched.schedule(req)
        if p is not None:
            placed.append((p.node, req))
        else:
            sched.explain(req)
    return placed


def test_change_log_caches_match_full_version_compare(monkeypatch) -> None:
    """The framework's per-shape cache finds changed nodes through the cluster's change log;
    with a tiny log (dropped every few changes, so caches often compare all versions) and the
    naive baseline, the same seed gives the same placements."""
    pods = [PodRequest(500, 2 << 30), PodRequest(3000, 8 << 30), PodRequest(0, 0)]
    results = []
    for cache, log_max in ((True, 1 << 16), (True, 7), (False, 1 << 16)):
        monkeypatch.setattr(cluster_mod, "CHANGE_LOG_MAX", log_max)
        n = 300
        c = ClusterState.from_arrays(
            [f"n{i}" for i in range(n)],
            np.full(n, 8000),
            np.full(n, 32 << 30),
            np.zeros(n, np.int64),
            [None] * n,
            pods=np.full(n, 110),
        )
        sched = Scheduler(c, KubeDefaultPolicy(), np.random.default_rng(1), cache=cache)
        results.append(_churn(c, sched, np.random.default_rng(2), pods))
        assert len(c.changes) < log_max
    assert results[0] == results[1] == results[2]
    assert len(results[0]) > 50


def test_changed_since_reports_distinct_changed_nodes() -> None:
    c = ClusterState(max_gpus=1)
    for i in range(5):
        c.add_node(f"n{i}", 1000, 1 << 30)
    pos = c.change_position
    req = PodRequest(100, 1 << 20)
    c.assign(3, req)
    c.assign(1, req)
    c.assign(3, req)
    assert c.changed_since(pos, 10).tolist() == [1, 3]
    assert c.changed_since(pos, 2) is None  # more changes than the caller wants to walk
    assert c.changed_since(c.change_position, 10).tolist() == []
    assert c.n_active == 5
    c.remove_node(2)
    assert c.n_active == 4


def test_summary_slo_equals_slo_of_the_whole_request_table(tmp_path) -> None:
    """The summary's SLOs are computed before the watch rows are expanded, on the API
    requests alone; they equal the SLOs of the full request table (watch rows included)."""
    import pandas as pd

    from tracesim.analysis.slo import evaluate_slos
    from tracesim.sim.engine import replay
    from tracesim.sources.synth import SynthConfig, synthesize

    trace = synthesize(SynthConfig(nodes=40, duration_s=900.0, seed=3), tmp_path / "t")
    r = replay(str(trace), profile="current", seed=2)
    req = r.tables["requests"]
    assert (req["verb"] == "watch").sum() > 0 and (req["verb"] != "watch").sum() > 0
    started = r.pods["startup_s"].notna()
    startup = pd.DataFrame(
        {"t_s": r.pods.loc[started, "created_s"], "startup_s": r.pods.loc[started, "startup_s"]}
    )
    whole = evaluate_slos(req, startup).to_summary()
    assert r.summary["control_plane"]["slo"] == whole
    assert len(whole["slos"]) >= 2


def test_slo_in_chunks_equals_one_evaluation() -> None:
    """Whole 5-minute windows evaluated a chunk at a time, then judged together, give the
    report of one evaluate_slos call: verdicts, worst values, failing pairs, rejections."""
    import pandas as pd

    from tracesim.analysis.slo import evaluate_slos
    from tracesim.sim.control_results import slo_in_chunks

    rng = np.random.default_rng(5)
    n = 20_000
    verbs = ["create", "update", "delete", "get", "list", "watch"]
    frame = pd.DataFrame(
        {
            "t_s": np.sort(rng.random(n) * 7200.0) + 3.0,
            # Heavy tails, so that some windows fail their thresholds.
            "latency_s": rng.lognormal(-3.0, 1.6, n),
            "verb": pd.Categorical(rng.choice(verbs, n), categories=verbs),
            "resource": pd.Categorical(rng.choice(["pods", "leases", "events"], n)),
            "scope": pd.Categorical(rng.choice(["resource", "namespace", "cluster"], n)),
            "status": np.full(n, 200, np.uint16),
            "reason": pd.Categorical(
                rng.choice(["ok", "ok", "ok", "ok", "apf-queue-full", "nospace"], n)
            ),
        }
    )
    startup = pd.DataFrame({"t_s": rng.random(500) * 7000.0, "startup_s": rng.random(500) * 7})
    whole = evaluate_slos(frame, startup).to_summary()
    chunked = slo_in_chunks(frame, startup, chunk_rows=1_500).to_summary()
    assert chunked == whole
    assert not whole["pass"] and whole["rejected_requests"]
    assert {"mutating", "read-resource", "read-cluster", "pod-startup"} <= set(whole["slos"])
    # Above chunk_rows the rejections are listed by count, then reason (as the chunked
    # evaluation summed and listed them); below, as one evaluation lists them.
    rej = chunked["rejected_requests"]
    assert list(rej) == sorted(rej, key=lambda k: (-rej[k], k))
    small = slo_in_chunks(frame, startup, chunk_rows=len(frame)).to_summary()
    assert list(small["rejected_requests"]) == list(whole["rejected_requests"])


def _recorded_metrics(seed: int) -> Metrics:
    """Metrics with request groups (some rejected), single requests and watch dispatches."""
    m = _metrics()
    m.reasons.code("apf-queue-full")
    rng = np.random.default_rng(seed)
    for op in _script(seed):
        if op[0] == "req":
            _, t, lat, verb, res = op
            reason = (rng.random(len(lat)) < 0.2).astype(np.uint8)
            m.record_coded(t, lat, verb, res, 1, np.where(reason == 0, 200, 429), reason)
        else:
            _, t, lat, res, n = op
            m.record_watch(t, lat, res, n)
    m.record_request(5.0, 0.25, "list", "nodes", "cluster")
    m.record_requests(5.5, np.full(3, 0.5), "get", "pods", "resource")
    return m


def test_requests_frame_is_the_buffer_with_categorical_labels() -> None:
    """The request table is the buffer's rows, its codes as categoricals of the vocabularies."""
    import pandas as pd

    m = _recorded_metrics(4)
    df = m.requests_frame()
    buf = m.requests
    assert len(df) == len(buf) > 100
    assert list(df.columns) == buf.names
    for name in ("t_s", "latency_s", "status"):
        assert df[name].to_numpy().tolist() == buf.column(name).tolist()
        assert df[name].dtype == buf.column(name).dtype
    for name, vocab in (("verb", m.verbs), ("resource", m.resources), ("scope", m.scopes)):
        want = pd.Categorical.from_codes(buf.column(name).astype(int), categories=vocab.names)
        assert df[name].array.equals(want)
    assert set(df["reason"]) == {"ok", "apf-queue-full"}
    # The frame is a copy: changing it leaves the buffers (and the next frame) as they were.
    df.loc[0, "latency_s"] = -1.0
    assert m.requests_frame()["latency_s"].iloc[0] != -1.0


def test_record_coded_with_scalars_and_growth() -> None:
    m = _metrics()
    for i in range(3000):  # beyond the initial capacity
        m.record_coded(float(i), np.full(2, 0.5), 0, 1, 1, 201, 0)
    m.record_coded(np.arange(3.0), 0.75, 4, 2, 0, 200, 0)  # scalar latency, array times
    b = m.requests
    assert len(b) == 6003
    assert b.column("t_s")[-4:].tolist() == [2999.0, 0.0, 1.0, 2.0]
    assert b.column("latency_s")[-3:].tolist() == [0.75] * 3
    assert b.column("status")[:2].tolist() == [201, 201]


def test_latency_by_request_equals_a_groupby_of_the_request_table() -> None:
    """Per verb/resource latency percentiles of the successful requests and the rejected
    counts, computed on the buffer codes, equal a plain pandas group-by of the table."""
    from tracesim.sim.control_results import _pct, latency_by_request

    m = _recorded_metrics(6)
    df = m.requests_frame()
    got = latency_by_request(m)
    want = {}
    for (verb, res), grp in df.groupby(["verb", "resource"], observed=True):
        ok = (grp["reason"] == "ok").to_numpy()
        entry = _pct(grp["latency_s"].to_numpy()[ok])
        entry["rejected"] = int((~ok).sum())
        want[f"{verb} {res}"] = entry
    assert got == {k: want[k] for k in sorted(want)}
    assert list(got) == sorted(got)
    assert any(v["rejected"] for v in got.values()) and "watch pods" in got


def test_pct_equals_one_percentile_call_per_value() -> None:
    """summary.json's p50/p99 come from one np.percentile call for both: the same numbers as
    one call each (ties, repeats and single values included)."""
    from tracesim.sim.control_results import _pct

    rng = np.random.default_rng(8)
    for n in (1, 2, 3, 7, 100, 1001, 4096):
        for values in (rng.lognormal(-3, 2, n), np.round(rng.random(n), 2)):
            got = _pct(values)
            assert got["p50"] == round(float(np.percentile(values, 50)), 6)
            assert got["p99"] == round(float(np.percentile(values, 99)), 6)
            assert got["count"] == n and got["max"] == round(float(values.max()), 6)
