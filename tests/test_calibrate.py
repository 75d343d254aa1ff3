"""`tracesim calibrate etcd` against a real etcd (Debian's etcd-server), and the fitting.

The etcd tests skip (with a message) only when the etcd binary is missing; CI installs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from etcd_server import EtcdServer, etcd_binary
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesim.calibrate import (
    Plan,
    _summary_lines,
    calibrate_etcd,
    refit_etcd,
    report_dir_for,
)
from tracesim.calibrate.check import check_profile, load_runs, repeatability
from tracesim.calibrate.client import (
    EtcdClient,
    EtcdError,
    EtcdNoSpace,
    parse_counters,
    prefix_end,
)
from tracesim.calibrate.cpu import cpu_notes, is_loopback, shared_cpu_cores
from tracesim.calibrate.fit import (
    POOL_FSYNC_WAKEUP,
    POOL_KEYS,
    POOL_STEP,
    FitResult,
    _fit_means,
    _range_error,
    _restart_means,
    _start_pool,
    _wakeup_note,
    _write_keys,
    assign_roles,
    fit,
    fit_leader,
    fit_reads,
    fit_spread,
    profile_text,
    write_profile,
)
from tracesim.calibrate.validate import METRICS, compare, simulate_reads, simulate_writes
from tracesim.calibrate.workload import (
    CLEANUP_SETTLE_S,
    ROOT,
    Calibration,
    _summary,
    counter_summary,
    keep_rounds,
    round_range,
)
from tracesim.errors import TracesimError
from tracesim.models.params import EtcdParams, Profile, load_profile

needs_etcd = pytest.mark.skipif(
    etcd_binary() is None, reason="etcd binary not found: apt-get install etcd-server"
)


def _run(coro):
    return asyncio.run(coro)


async def _all_keys(url: str) -> int:
    async with EtcdClient(url) as c:
        return await c.count(b"\0", b"\0")


async def _alarms(url: str) -> list:
    async with EtcdClient(url) as c:
        return await c.alarms()


async def _put(url: str, key: bytes, value: bytes) -> None:
    async with EtcdClient(url) as c:
        await c.put(key, value)


async def _delete_all(url: str) -> None:
    async with EtcdClient(url) as c:
        await c.call("kv/deleterange", {"key": "AA==", "range_end": "AA=="})  # every key


@pytest.fixture(scope="module")
def etcd():
    if etcd_binary() is None:
        pytest.skip("etcd binary not found: apt-get install etcd-server")
    with EtcdServer() as server:
        yield server


# --------------------------------------------------------------------------- pure functions


def test_prefix_end_selects_exactly_the_prefix():
    assert prefix_end(b"/a/") == b"/a0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"
    keys = [b"/a/", b"/a/x", b"/a0", b"/a", b"/b"]
    inside = [k for k in keys if b"/a/" <= k < prefix_end(b"/a/")]
    assert inside == [b"/a/", b"/a/x"]


def test_endpoint_must_be_a_url_with_port():
    with pytest.raises(EtcdError, match="not a URL with a port"):
        EtcdClient("127.0.0.1:2379")
    with pytest.raises(EtcdError, match="not a URL with a port"):
        EtcdClient("http://localhost")


def test_model_replay_closed_loop_obeys_littles_law():
    # In a closed loop with zero think time, concurrency = throughput x mean latency.
    p = EtcdParams(fsync_ms=0.5, apply_us_per_request=100.0, client_rtt_ms=0.2)
    for conc in (1, 8, 64):
        sim = simulate_writes(p, conc, 400, 2000)
        assert sim.throughput_per_s * sim.mean_ms / 1e3 == pytest.approx(conc, rel=0.05)
    # Saturation: throughput approaches 1 / per-request cost, latency grows with concurrency.
    s1, s256 = simulate_writes(p, 1, 400, 500), simulate_writes(p, 256, 400, 5000)
    assert s256.throughput_per_s > 5 * s1.throughput_per_s
    assert s256.throughput_per_s < 1e6 / (p.apply_us_per_request + 400 * p.ns_per_byte / 1e3)
    r1 = simulate_reads(p, 1, 100, 1000, 200, linearizable=False)
    r1_lin = simulate_reads(p, 1, 100, 1000, 200, linearizable=True)
    assert r1_lin.mean_ms - r1.mean_ms == pytest.approx(p.peer_rtt_ms, rel=1e-6)


def test_model_replay_reports_how_long_its_commits_take():
    # A fixed commit cost, then one per byte written since the previous commit: larger
    # puts make longer commits, as etcd's backend_commit_duration_seconds shows.
    p = EtcdParams(fsync_ms=1.0, apply_us_per_request=20.0, client_rtt_ms=0.2)
    fixed = dataclasses.replace(p, backend_commit_ms=2.0, backend_commit_ns_per_byte=0.0)
    # (plus the freelist's page allocations: a few tens of us)
    assert simulate_writes(fixed, 4, 400, 2000).commit_mean_ms == pytest.approx(2.0, rel=0.05)
    per_byte = dataclasses.replace(fixed, backend_commit_ns_per_byte=10.0)
    small = simulate_writes(per_byte, 4, 400, 2000)
    large = simulate_writes(per_byte, 4, 16_000, 2000)
    assert 2.0 < small.commit_mean_ms < large.commit_mean_ms
    # ~0.1 s of puts per commit (the default interval): 10 ns per byte of them.
    written_mb = large.throughput_per_s * 16_000 * 0.1 / 1e6
    assert large.commit_mean_ms == pytest.approx(2.0 + 10.0 * written_mb, rel=0.2)
    assert np.isnan(simulate_reads(p, 4, 1, 1000, 100, False).commit_mean_ms)


def test_model_replay_counts_puts_per_wal_write():
    # One put in flight: every WAL write carries one. Many in flight behind a slow fsync:
    # batches grow, never beyond the puts in flight; a longer fsync batches more.
    p = EtcdParams(fsync_ms=1.0, apply_us_per_request=20.0, client_rtt_ms=0.2)
    assert simulate_writes(p, 1, 400, 300).puts_per_fsync == pytest.approx(1.0)
    b64 = simulate_writes(p, 64, 400, 3000).puts_per_fsync
    assert 4 < b64 <= 64
    slower = dataclasses.replace(p, fsync_ms=3.0)
    assert simulate_writes(slower, 8, 400, 2000).puts_per_fsync > (
        simulate_writes(p, 8, 400, 2000).puts_per_fsync
    )
    assert np.isnan(simulate_reads(p, 4, 1, 1000, 100, False).puts_per_fsync)


#: A model etcd on a 2-core pool: a lone put costs 0.1 ms front CPU + 0.2 ms fdatasync +
#: 0.05 ms apply CPU, and nothing else.
_POOL_ETCD = EtcdParams(
    cpu_cores=2,
    apply_pipelined=True,
    client_rtt_ms=0.0,
    peer_rtt_ms=0.0,
    fsync_ms=0.2,
    front_cpu_us=100.0,
    apply_us_per_request=50.0,
    ns_per_byte=0.0,
    backend_commit_ms=0.0,
)


def test_model_replay_runs_the_client_on_the_cpu_pool():
    pool = _POOL_ETCD
    # A lone put: the client's CPU comes first, inside its latency.
    lone = simulate_writes(pool, 1, 400, 200, client_cpu_s=300e-6)
    assert lone.mean_ms == pytest.approx(0.3 + 0.1 + 0.2 + 0.05, rel=1e-6)
    assert simulate_writes(pool, 1, 400, 200).mean_ms == pytest.approx(0.35, rel=1e-6)
    # One client thread: however many puts in flight, at most one request per its CPU.
    busy = simulate_writes(pool, 64, 400, 5000, client_cpu_s=300e-6)
    assert busy.throughput_per_s <= 1 / 300e-6 * 1.01
    assert busy.throughput_per_s > 0.9 / 300e-6
    # Without a pool the client's CPU is not modelled (the fitted client RTT stands for it).
    plain = dataclasses.replace(pool, cpu_cores=0)
    assert simulate_writes(plain, 1, 400, 200, client_cpu_s=300e-6).mean_ms == pytest.approx(
        simulate_writes(plain, 1, 400, 200).mean_ms
    )


def test_the_client_serves_what_waits_for_it_in_shuffled_rounds():
    # The client (0.3 ms per put) is the serial part: at 64 and 256 in flight nearly every
    # put waits for it. Served first come, first served, they would all wait about as long;
    # in shuffled rounds the spread keeps its shape however many wait (a round of R waits
    # R/2 for its start and R/2 for its turn on average: p99 ~1.86x the mean).
    for n in (64, 256):
        runs = [
            simulate_writes(_POOL_ETCD, n, 400, 20 * n, seed=s, client_cpu_s=300e-6) for s in (0, 1)
        ]
        for r in runs:
            lat = r.latency_s
            assert len(lat) == 20 * n  # every put answered
            assert 1.6 < np.percentile(lat, 99) / lat.mean() < 2.0
            assert np.percentile(lat, 1) / lat.mean() < 0.3
        # The order moves latencies between puts, not the client's throughput or the mean.
        assert runs[0].mean_ms == pytest.approx(runs[1].mean_ms, rel=0.01)
        assert not np.array_equal(runs[0].latency_s, runs[1].latency_s)
        again = simulate_writes(_POOL_ETCD, n, 400, 20 * n, seed=0, client_cpu_s=300e-6)
        assert np.array_equal(again.latency_s, runs[0].latency_s)
    # One put in flight: nothing to reorder.
    lone = simulate_writes(_POOL_ETCD, 1, 400, 200, client_cpu_s=300e-6).latency_s
    assert lone.max() == pytest.approx(lone.min())


def test_the_clients_cpu_inside_the_round_trip_counts_once_on_the_pool():
    # The round trip fitted from the gets (0.4 ms) holds the client's CPU per get (0.25 ms):
    # a put whose client CPU (0.3 ms) runs on the pool keeps only the rest of it (0.15 ms).
    pool = dataclasses.replace(_POOL_ETCD, client_rtt_ms=0.4, client_rtt_cpu_us=250.0)
    lone = simulate_writes(pool, 1, 400, 200, client_cpu_s=300e-6)
    assert lone.mean_ms == pytest.approx(0.15 + 0.3 + 0.1 + 0.2 + 0.05, rel=1e-6)
    # Without the client on the pool the round trip is the whole fitted one, as in a replay.
    alone = simulate_writes(pool, 1, 400, 200)
    assert alone.mean_ms == pytest.approx(0.4 + 0.1 + 0.2 + 0.05, rel=1e-6)
    # Never below zero: a client CPU above the round trip takes all of it and no more.
    most = simulate_writes(
        dataclasses.replace(pool, client_rtt_cpu_us=900.0), 1, 400, 200, client_cpu_s=300e-6
    )
    assert most.mean_ms == pytest.approx(0.3 + 0.1 + 0.2 + 0.05, rel=1e-6)


def test_counters_are_read_from_etcds_prometheus_text():
    text = "\n".join(
        [
            "# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync",
            "# TYPE etcd_disk_wal_fsync_duration_seconds histogram",
            'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 9',
            "etcd_disk_wal_fsync_duration_seconds_sum 0.0045",
            "etcd_disk_wal_fsync_duration_seconds_count 10",
            "etcd_disk_backend_commit_duration_seconds_sum 2.5e-02",
            "etcd_disk_backend_commit_duration_seconds_count 5",
            "etcd_server_proposals_committed_total 12",
            "process_cpu_seconds_total 3.14",
        ]
    )
    assert parse_counters(text) == {
        "wal_fsyncs": 10.0,
        "wal_fsync_s": 0.0045,
        "backend_commits": 5.0,
        "backend_commit_s": 0.025,
        "etcd_cpu_s": 3.14,
    }
    # Any missing (metrics served elsewhere, an old etcd): None, not a partial answer.
    assert parse_counters(text.replace("backend_commit", "other")) is None
    assert parse_counters("<html>not metrics</html>") is None


def test_counter_summary_is_per_request_over_the_kept_rounds():
    rnd = (np.full(98, 1e-3), 1.0, 0)
    grown = {
        "wal_fsyncs": 50.0,
        "wal_fsync_s": 0.02,
        "backend_commits": 10.0,
        "backend_commit_s": 0.01,
        "etcd_cpu_s": 0.03,
        "client_cpu_s": 0.02,
    }
    # Two rounds of 98 timed puts + 2 untimed first puts (2 clients), 50 fsyncs each.
    out = counter_summary([rnd, rnd], [grown, grown], 2, "write")
    assert out["puts_per_fsync"] == pytest.approx(200 / 100)
    assert out["fsync_mean_ms"] == pytest.approx(0.4)
    assert out["backend_commit_mean_ms"] == pytest.approx(1.0)
    assert out["wal_fsyncs"] == 100
    assert out["etcd_cpu_us_per_request"] == pytest.approx(0.06 / 200 * 1e6)
    assert out["client_cpu_us_per_request"] == pytest.approx(0.04 / 200 * 1e6)
    # Reads: CPU per request only.
    reads = counter_summary([rnd, rnd], [grown, grown], 2, "read")
    assert set(reads) == {"etcd_cpu_us_per_request", "client_cpu_us_per_request"}
    # A round whose counters are unknown makes the point's unknown, not a partial count.
    unknown = counter_summary([rnd, rnd], [grown, None], 2, "write")
    assert all(np.isnan(v) for v in unknown.values())


def _synthetic_points(truth: EtcdParams, get_requests: int = 600) -> pd.DataFrame:
    """What the harness would measure if etcd were exactly the model with ``truth``
    (``get_requests`` gets per read level)."""
    rows = []
    for size_class, size, levels in (
        ("lease", 400, (1, 2, 4, 16, 64)),
        ("node", 16_000, (1, 4, 16, 64)),
        ("large", 1_000_000, (1, 2, 4)),
    ):
        for c in levels:
            n = 24 if size_class == "large" else 600
            # A different seed from the fit's replays: the fit must not recover its own draws.
            sim = simulate_writes(truth, c, size, n, seed=99)
            rows.append(("write", "put", "", size_class, size, 1, c, sim))
    for cons in ("serializable", "linearizable"):
        for c in (1, 2, 4, 8, 16, 32):
            lin = cons == "linearizable"
            sim = simulate_reads(truth, c, 1, 1000, get_requests, lin, seed=99)
            rows.append(("read", "get", cons, "read", 1000, 1, c, sim))
        for k in (10, 100, 1000):
            sim = simulate_reads(truth, 1, k, 1000, 100, cons == "linearizable", seed=99)
            rows.append(("read", "range", cons, "read", 1000, k, 1, sim))
    out = []
    for i, (phase, op, cons, sc, size, keys, c, sim) in enumerate(rows):
        out.append(
            _point_row(
                i,
                sim,
                phase=phase,
                op=op,
                consistency=cons,
                size_class=sc,
                value_bytes=size,
                keys_per_request=keys,
                concurrency=c,
            )
        )
    return pd.DataFrame(out)


def _point_row(i: int, sim, **fields) -> dict:
    """A measured point's row as the harness writes it, from the model's replay ``sim``."""
    return dict(
        point=i,
        errors=0,
        requests=len(sim.latency_s),
        duration_s=sim.elapsed_s,
        mean_ms=sim.mean_ms,
        p50_ms=sim.p50_ms,
        p99_ms=sim.p99_ms,
        throughput_per_s=sim.throughput_per_s,
        puts_per_fsync=sim.puts_per_fsync,
        **fields,
    )


def _model_etcd(**overrides) -> EtcdParams:
    """The parameters of the model etcd the fit tests generate measurements from."""
    base = {
        "client_rtt_ms": 0.25,
        "peer_rtt_ms": 0.1,
        "fsync_ms": 0.8,
        "apply_us_per_request": 150.0,
        "ns_per_byte": 20.0,
    }
    return dataclasses.replace(EtcdParams(), **{**base, **overrides})


def _cpu_points(etcd_cpu_us, client_cpu_us, throughput_per_s):
    """Put points at 1, 8, 64 in flight with these CPU times per request and throughputs."""
    rows = []
    for i, (e, c, x) in enumerate(zip(etcd_cpu_us, client_cpu_us, throughput_per_s, strict=True)):
        rows.append(
            dict(
                point=i,
                phase="write",
                op="put",
                consistency="",
                size_class="lease",
                value_bytes=400,
                keys_per_request=1,
                concurrency=8**i,
                throughput_per_s=x,
                etcd_cpu_us_per_request=e,
                client_cpu_us_per_request=c,
            )
        )
    return pd.DataFrame(rows)


def test_cpu_notes_name_a_busy_client_and_a_shared_machine():
    # 400 B puts: at 64 in flight the client keeps 0.9 of a core busy (150 us x 6,000/s)
    # and, with etcd's 0.6, 75% of 2 cores.
    points = _cpu_points([600.0, 200.0, 100.0], [400.0, 150.0, 150.0], [900.0, 3000.0, 6000.0])
    notes = cpu_notes(points, "http://127.0.0.1:2379", cores=2)
    assert len(notes) == 2, notes
    assert "client kept 0.90 of a core busy at 400 B puts at 64 in flight" in notes[0]
    assert "1 of 3 points" in notes[0]
    assert "75% of this machine's 2 cores" in notes[1] and "another machine" in notes[1]
    # A remote etcd does not share this machine's cores; more cores, less shared.
    assert cpu_notes(points, "https://etcd-0.example:2379", cores=2) == notes[:1]
    assert len(cpu_notes(points, "http://localhost:2379", cores=4)) == 1
    # Below both thresholds, or not measured: nothing to say.
    quiet = _cpu_points([600.0, 200.0, 100.0], [400.0, 100.0, 100.0], [900.0, 3000.0, 6000.0])
    assert cpu_notes(quiet, "http://127.0.0.1:2379", cores=2) == []
    unknown = points.assign(client_cpu_us_per_request=float("nan"))
    assert cpu_notes(unknown, "http://127.0.0.1:2379", cores=2) == []
    assert cpu_notes(points.drop(columns=["etcd_cpu_us_per_request"]), "http://[::1]:2379") == []


def test_the_cpu_pool_is_this_machines_cores_when_etcd_and_the_client_share_them():
    points = _cpu_points([600.0, 200.0, 100.0], [400.0, 150.0, 150.0], [900.0, 3000.0, 6000.0])
    assert shared_cpu_cores(points, "http://127.0.0.1:2379", cores=4) == 4
    # etcd elsewhere, or the client's CPU not measured (an older run): no pool.
    assert shared_cpu_cores(points, "https://etcd-0.example:2379", cores=4) == 0
    unknown = points.assign(client_cpu_us_per_request=float("nan"))
    assert shared_cpu_cores(unknown, "http://127.0.0.1:2379", cores=4) == 0
    old = points.drop(columns=["client_cpu_us_per_request"])
    assert shared_cpu_cores(old, "http://127.0.0.1:2379", cores=4) == 0
    # With the pool the shared-machine note says the model took the client's CPU apart.
    pooled = cpu_notes(points, "http://127.0.0.1:2379", cores=2, pooled=True)
    assert "the profile's etcd has the cores to itself" in pooled[1]
    assert "another machine" not in pooled[1]


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("http://127.0.0.1:2379", True),
        ("http://127.0.0.2:2379", True),
        ("http://localhost:2379", True),
        ("http://[::1]:2379", True),
        ("https://10.0.0.5:2379", False),
        ("https://etcd.example:2379", False),
    ],
)
def test_loopback_endpoints_are_this_machine(endpoint, local):
    assert is_loopback(endpoint) is local


def test_fit_recovers_the_parameters_of_a_model_etcd():
    # Measurements generated by the model itself: the fit must find the generating values.
    truth = _model_etcd(
        read_concurrency=1,
        range_base_us=200.0,
        range_us_per_object=15.0,
        read_sharing="ps",
        read_cv_ratio=0.5,
    )
    points = assign_roles(_synthetic_points(truth))
    maintenance = {"revisions_compacted": 10_000, "compaction_s": 0.12}
    maintenance.update(db_size_after_compaction_bytes=2**28, defrag_s=0.5)
    result = fit(points, maintenance, max_evals=80)
    v = result.values
    # A serial etcd: the fit tried the pipelined leader too, and kept the serial one.
    assert v["apply_pipelined"] is False
    assert any(n.startswith("leader: serial") for n in result.notes), result.notes
    assert v["client_rtt_ms"] == pytest.approx(0.25, rel=0.05)
    assert v["peer_rtt_ms"] == pytest.approx(0.1, rel=0.05)
    assert v["read_concurrency"] == 1
    assert v["read_sharing"] == "ps"
    assert v["read_cv_ratio"] == pytest.approx(0.5, rel=0.25)
    assert v["range_us_per_object"] == pytest.approx(15.0, rel=0.1)
    assert v["apply_us_per_request"] == pytest.approx(150.0, rel=0.15)
    assert v["ns_per_byte"] == pytest.approx(20.0, rel=0.15)
    assert v["fsync_ms"] == pytest.approx(0.8, rel=0.3)
    # compaction: 10 chunks of 1,000 revisions with 10 ms sleeps between them.
    assert v["compaction_us_per_revision"] == pytest.approx((0.12 - 0.09) / 10_000 * 1e6)
    assert v["defrag_s_per_gib"] == pytest.approx(2.0)
    table = compare(result.params, points)
    held = table[table["role"] == "validate"]
    assert len(held) >= 5
    assert (held["mean_ms_error"].abs() < 0.1).all()
    assert (held["throughput_per_s_error"].abs() < 0.1).all()


def test_profile_is_loadable_and_written_atomically(tmp_path):
    values = {"fsync_ms": 0.7, "apply_us_per_request": 123.0, "read_concurrency": 3}
    params = dataclasses.replace(EtcdParams(), **values)
    res = FitResult(values, params, 0.0, 0)
    path = write_profile(tmp_path / "p.toml", profile_text(res, {"endpoint": "http://x:1"}))
    loaded = load_profile(str(path)).etcd
    assert (loaded.fsync_ms, loaded.apply_us_per_request, loaded.read_concurrency) == (
        0.7,
        123.0,
        3,
    )
    # A profile the params module rejects is never left behind, under any name.
    bad = profile_text(res, {}).replace("read_concurrency = 3", "read_concurrency = 0")
    with pytest.raises(TracesimError, match="read_concurrency"):
        write_profile(tmp_path / "bad.toml", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.toml"]


def _assert_spread_predicts_held_out_p99s(flat: EtcdParams, values: dict, points) -> None:
    """The fitted spread ``values`` predict the held-out write p99s of the model etcd (3 in 4
    within 25%), where the model without spread (``flat``) misses them more."""
    table = compare(dataclasses.replace(flat, **values), points)
    held = table[(table["role"] == "validate") & (table["phase"] == "write")]
    assert (held["p99_ms_error"].abs() <= 0.25).mean() >= 0.75, held
    no_spread = compare(flat, points)
    miss = no_spread[(no_spread["role"] == "validate") & (no_spread["phase"] == "write")]
    assert miss["p99_ms_error"].abs().median() > held["p99_ms_error"].abs().median()


@pytest.mark.slow
def test_spread_fit_recovers_the_cvs_of_a_model_etcd():
    # A model etcd with spread; given its other parameters, the p99/p50 fit finds the CVs:
    # the disk's from the single-client puts, the apply's from the saturated ones.
    # The ~1 MB puts' per-byte work has its own, narrower spread.
    truth = _model_etcd(
        fsync_cv_ratio=1.2,
        batch_apply_cv_ratio=0.5,
        byte_cv_ratio=0.15,
    )
    points = assign_roles(_synthetic_points(truth))
    flat = dataclasses.replace(
        truth, fsync_cv_ratio=0.0, batch_apply_cv_ratio=0.0, byte_cv_ratio=-1.0
    )
    # The CVs alone (the backend commit, fitted with them by default, is the next test's).
    values, loss, evals = fit_spread(points, flat, max_evals=60, fit_commit=False)
    assert loss < 0.05 and 0 < evals <= 130  # fitted with and without the byte spread
    assert values["fsync_cv_ratio"] == pytest.approx(1.2, rel=0.3)
    assert values["batch_apply_cv_ratio"] == pytest.approx(0.5, rel=0.4)
    assert values["byte_cv_ratio"] < 0.5 * values["batch_apply_cv_ratio"]
    _assert_spread_predicts_held_out_p99s(flat, values, points)


@pytest.mark.slow
def test_spread_fit_with_stalls_recovers_a_stalling_model_etcd():
    # A model etcd whose apply stalls (and whose disk varies): the calibration's spread fit
    # (stalls=True) finds about the share of apply time they take, holds the per-batch
    # apply multiplier at 0, and predicts the held-out p99s; a fit without spread misses them.
    truth = _model_etcd(fsync_cv_ratio=0.4, stall_per_s=40.0, stall_ms=3.0)
    points = assign_roles(_synthetic_points(truth))
    flat = dataclasses.replace(truth, fsync_cv_ratio=0.0, stall_per_s=0.0, stall_ms=0.0)
    values, _loss, evals = fit_spread(
        points, flat, max_evals=60, max_requests=None, stalls=True, fit_commit=False
    )
    assert set(values) == {
        "fsync_cv_ratio",
        "stall_per_s",
        "stall_ms",
        "backend_commit_ns_per_byte",
        "batch_apply_cv_ratio",
    }
    # The budget ends the search at the step that reaches it (a shrink step takes one
    # evaluation per parameter).
    assert values["batch_apply_cv_ratio"] == 0.0 and 0 < evals <= 60 + len(values)
    assert values["fsync_cv_ratio"] == pytest.approx(0.4, rel=0.5)
    # Stall time per second of apply work: 40/s x 3 ms = 0.12.
    assert values["stall_per_s"] * values["stall_ms"] / 1e3 == pytest.approx(0.12, rel=0.5)
    _assert_spread_predicts_held_out_p99s(flat, values, points)


def test_spread_fit_brings_a_drifted_backend_commit_back_from_the_tails():
    # The means hardly see the bbolt commit (a stall every 100 ms): a write fit can leave it
    # far off (10 ms once, on a real run). The spread fit sees it in the p99/p50 ratios of
    # the few-in-flight puts and brings it back near the model etcd's 1 ms.
    truth = _model_etcd(fsync_cv_ratio=0.4, batch_apply_cv_ratio=0.3, backend_commit_ms=1.0)
    points = assign_roles(_synthetic_points(truth))
    drifted = dataclasses.replace(
        truth, fsync_cv_ratio=0.0, batch_apply_cv_ratio=0.0, backend_commit_ms=10.0
    )
    values, loss, _evals = fit_spread(points, drifted, max_evals=40, own_bytes=False)
    assert values["backend_commit_ms"] == pytest.approx(1.0, rel=0.6), values
    # Held at 10 ms, the CVs cannot make up for it: the single-client p99s stay far off.
    _vals, held_loss, _ = fit_spread(
        points, drifted, max_evals=40, own_bytes=False, fit_commit=False
    )
    assert loss < 0.5 * held_loss
    table = compare(dataclasses.replace(drifted, **values), points)
    ones = table[(table["phase"] == "write") & (table["concurrency"] <= 2)]
    assert (ones["p99_ms_error"].abs() <= 0.25).all(), ones


@pytest.mark.slow
def test_read_fit_finds_a_front_stage_where_the_gets_need_one():
    # A model etcd whose gets pass a serial stage amortising its wakeups (their throughput
    # rises gradually with reads in flight): the fit keeps a front stage, and it predicts the
    # held-out levels (2 and 8 in flight) far better than the plain read path can.
    truth = _model_etcd(
        client_rtt_ms=0.1,
        read_concurrency=1,
        range_base_us=150.0,
        range_us_per_object=15.0,
        read_sharing="ps",
        read_cv_ratio=0.4,
        read_front_us=250.0,
        read_wakeup_us=200.0,
    )
    points = assign_roles(_synthetic_points(truth))
    values, notes = fit_reads(points, EtcdParams())
    assert values["read_front_us"] + values["read_wakeup_us"] > 200.0, notes
    assert any("front stage" in n for n in notes)
    gets = points[(points["phase"] == "read") & (points["op"] == "get")]
    fitted = compare(dataclasses.replace(EtcdParams(), **values), gets)
    no_front = {k: v for k, v in values.items() if k not in ("read_front_us", "read_wakeup_us")}
    plain_values, _ = fit_reads(points, EtcdParams(), front=False)
    assert plain_values.keys() == no_front.keys()
    plain = compare(dataclasses.replace(EtcdParams(), **plain_values), gets)
    for tab in (fitted, plain):
        tab["worst"] = tab[[c for c in tab.columns if c.endswith("_error")]].abs().max(axis=1)
    held = fitted["role"] == "validate"
    assert fitted[held]["worst"].max() < 0.15, fitted
    assert fitted[held]["worst"].mean() < 0.6 * plain[held]["worst"].mean()


@pytest.mark.slow
def test_read_fit_finds_the_cpu_of_linearizable_reads():
    truth = _model_etcd(
        read_concurrency=1,
        range_base_us=200.0,
        range_us_per_object=15.0,
        read_sharing="ps",
        read_cv_ratio=0.5,
        read_index_us=80.0,
    )
    points = assign_roles(_synthetic_points(truth))
    values, notes = fit_reads(points, EtcdParams(), front=False)
    # The grid's step near the truth is 10% of the ~215 us get service time.
    assert values["read_index_us"] == pytest.approx(80.0, abs=25.0), notes
    assert values["peer_rtt_ms"] == pytest.approx(0.1, abs=0.03)
    lin = points[(points["consistency"] == "linearizable") & (points["op"] == "get")]
    table = compare(dataclasses.replace(EtcdParams(), **values), lin)
    held = table[table["role"] == "validate"]
    assert (held["throughput_per_s_error"].abs() < 0.1).all(), held


@pytest.mark.slow
def test_read_fit_keeps_no_front_stage_for_a_plain_model_etcd():
    truth = _model_etcd(
        read_concurrency=1, range_base_us=200.0, read_sharing="ps", read_cv_ratio=0.5
    )
    points = assign_roles(_synthetic_points(truth))
    values, _notes = fit_reads(points, EtcdParams(), shared_cores=2)
    for key in ("read_front_us", "read_wakeup_us", "read_index_us", "read_delay_ratio"):
        assert values.get(key, 0.0) == 0.0, key


@pytest.mark.slow
def test_read_fit_records_the_clients_cpu_inside_the_round_trip():
    truth = _model_etcd(read_concurrency=1, range_base_us=200.0, read_sharing="ps")
    points = assign_roles(_synthetic_points(truth))
    gets = points["op"] == "get"
    values, _ = fit_reads(
        points.assign(client_cpu_us_per_request=np.where(gets, 120.0, 0)), EtcdParams()
    )
    assert values["client_rtt_cpu_us"] == pytest.approx(120.0)
    # At most the whole round trip (0.25 ms in the model etcd).
    values, _ = fit_reads(points.assign(client_cpu_us_per_request=900.0), EtcdParams())
    assert values["client_rtt_cpu_us"] == pytest.approx(values["client_rtt_ms"] * 1e3)
    assert values["client_rtt_ms"] == pytest.approx(0.25, rel=0.1)
    # Not measured: not set (a replay never needs it).
    assert "client_rtt_cpu_us" not in fit_reads(points, EtcdParams())[0]


@pytest.mark.slow
def test_read_fit_finds_delays_where_the_gets_tail_only_with_reads_in_parallel():
    # A model etcd that answers 4% of the reads finding 3 or more on its workers 3 ms late:
    # lone gets and ranges, and gets at 2 in flight, have small tails, gets at 4+ a bump.
    # The fit keeps delays; over all reads it predicts the p99s far better than one spread
    # per read can, and the held-out gets' (2 and 8 in flight) within 25%.
    truth = _model_etcd(
        read_concurrency=1,
        range_base_us=200.0,
        range_us_per_object=15.0,
        read_sharing="ps",
        read_cv_ratio=0.3,
        read_delay_ratio=0.04,
        read_delay_ms=3.0,
        read_delay_min_reads=3,
    )
    # Delays hit 1-4% of the gets: a p99 needs thousands of them to be more than noise.
    points = assign_roles(_synthetic_points(truth, get_requests=4000))
    values, notes = fit_reads(points, EtcdParams(), front=False, shared_cores=2)
    assert values.get("read_delay_ratio", 0.0) > 0, notes
    assert values["read_delay_min_reads"] == 3, notes
    assert any("late" in n for n in notes)
    spread_only, _ = fit_reads(points, EtcdParams(), front=False)  # no shared cores
    assert not any(k.startswith("read_delay") for k in spread_only), spread_only
    reads = points[points["phase"] == "read"]
    fitted = compare(dataclasses.replace(EtcdParams(), **values), reads)
    alone = compare(dataclasses.replace(EtcdParams(), **spread_only), reads)
    assert fitted["p99_ms_error"].abs().mean() < 0.5 * alone["p99_ms_error"].abs().mean()
    held = fitted[fitted["role"] == "validate"]
    assert (held["p99_ms_error"].abs() < 0.25).all(), held
    assert (held["mean_ms_error"].abs() < 0.15).all(), held


def test_disturbed_rounds_are_dropped_and_the_rest_pooled():
    def rnd(n: int, elapsed: float) -> tuple[np.ndarray, float, int]:
        return np.full(n, 1e-3), elapsed, 0

    # Three rounds of 1 s: 1,000, 980 and 600 requests: the slow one is dropped.
    assert keep_rounds([rnd(1000, 1), rnd(980, 1), rnd(600, 1)], 0.1) == [True, True, False]
    # Within the tolerance all are kept; with fewer than three there is no majority.
    assert keep_rounds([rnd(1000, 1), rnd(950, 1), rnd(920, 1)], 0.1) == [True] * 3
    assert keep_rounds([rnd(1000, 1), rnd(100, 1)], 0.1) == [True, True]
    # The median round always stays, however the others fare.
    assert keep_rounds([rnd(100, 1), rnd(1000, 1), rnd(5000, 1)], 0.1) == [False, True, True]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.floats(1e-5, 1.0), min_size=1, max_size=60),
            st.floats(0.01, 5.0),
        ),
        min_size=2,
        max_size=5,
    )
)
def test_round_range_brackets_the_pooled_mean_and_throughput(rounds):
    rds = [(np.array(lat), elapsed, 0) for lat, elapsed in rounds]
    rng = round_range(rds)
    pooled = _summary(np.concatenate([r[0] for r in rds]), sum(r[1] for r in rds))
    for metric in METRICS:
        assert rng[f"{metric}_round_min"] <= rng[f"{metric}_round_max"]
    # Pooling averages the rounds (weighted by requests or by time): never outside them.
    for metric in ("mean_ms", "throughput_per_s"):
        lo, hi = rng[f"{metric}_round_min"], rng[f"{metric}_round_max"]
        assert lo * (1 - 1e-9) <= pooled[metric] <= hi * (1 + 1e-9)
    # The p99 of a round is the p99 of its own latencies.
    p99s = [float(np.percentile(r[0] * 1e3, 99)) for r in rds]
    assert rng["p99_ms_round_max"] == pytest.approx(max(p99s))
    # One round has no spread to show.
    assert all(np.isnan(v) for v in round_range(rds[:1]).values())


def test_compare_says_which_predictions_lie_within_the_measured_rounds():
    truth = _model_etcd()
    pts = assign_roles(_synthetic_points(truth))
    pts = pts[pts["phase"] == "write"].reset_index(drop=True)
    predicted = compare(truth, pts).set_index("point")
    # Two held-out points: around the first's prediction the rounds spanned +-10%; the
    # second's rounds all lay 40-60% above its prediction (and its pooled value too).
    a, b = pts.index[pts["role"] == "validate"][:2]
    for metric in METRICS:
        pts[f"{metric}_round_min"] = np.nan
        pts[f"{metric}_round_max"] = np.nan
        for i, (lo, hi) in ((a, (0.9, 1.1)), (b, (1.4, 1.6))):
            pred = predicted.loc[pts.loc[i, "point"], f"{metric}_predicted"]
            pts.loc[i, [f"{metric}_round_min", f"{metric}_round_max"]] = pred * lo, pred * hi
        pts.loc[b, metric] = predicted.loc[pts.loc[b, "point"], f"{metric}_predicted"] * 1.5
    table = compare(truth, pts).set_index("point")
    pa, pb = pts.loc[a, "point"], pts.loc[b, "point"]
    for metric in METRICS:
        assert table.loc[pa, f"{metric}_in_rounds"]
        assert not table.loc[pb, f"{metric}_in_rounds"]
        assert table.loc[pb, f"{metric}_round_min"] == pytest.approx(
            pts.loc[b, f"{metric}_round_min"]
        )
    # Points without a range carry none (NaN in the table), and count as not within.
    others = table.drop(index=[pa, pb])
    assert others["mean_ms_in_rounds"].isna().all()
    lines = _summary_lines(table.reset_index())
    assert "(0 of the 1 misses within the measured rounds' range)" in lines[0], lines


def test_spread_fit_without_p50_keeps_the_defaults():
    pts = assign_roles(_synthetic_points(EtcdParams())).drop(columns=["p50_ms"])
    assert fit_spread(pts, EtcdParams()) == ({}, pytest.approx(float("nan"), nan_ok=True), 0)


def _fitted(values: dict) -> FitResult:
    return FitResult(values, dataclasses.replace(EtcdParams(), **values), 0.0, 0)


def test_profile_is_current_with_the_fitted_etcd_values(tmp_path):
    values = {"fsync_ms": 0.7, "fsync_cv_ratio": 1.3, "batch_apply_cv_ratio": 0.4}
    path = write_profile(tmp_path / "p.toml", profile_text(_fitted(values), {}))
    got, current = load_profile(str(path)), load_profile("current")
    for sec in ("apiserver", "kubelet", "scheduler", "workload"):
        assert getattr(got, sec) == getattr(current, sec), sec
    assert got.etcd == dataclasses.replace(current.etcd, **values)
    assert got.etcd != current.etcd
    # The etcd flags the API does not report come from `current`, not from the bare defaults.
    assert got.etcd.quota_bytes == current.etcd.quota_bytes != EtcdParams().quota_bytes
    assert got.apiserver != Profile().apiserver


def test_replay_accepts_a_calibrated_profile(tmp_path, capsys):
    # What a user does next: replay a trace through the control plane with the profile.
    sample = Path(__file__).resolve().parents[1] / "traces" / "sample"
    values = {
        "client_rtt_ms": 0.4,
        "fsync_ms": 0.7,
        "apply_us_per_request": 200.0,
        "fsync_cv_ratio": 1.2,
        "batch_apply_cv_ratio": 0.6,
        "read_concurrency": 1,
        "read_sharing": "ps",
        "read_cv_ratio": 0.5,
        "read_front_us": 250.0,
        "read_wakeup_us": 60.0,
        "byte_cv_ratio": 0.3,
        "apply_pipelined": True,
        "wal_ns_per_byte": 8.0,
        "write_overhead_us": 120.0,
    }
    prof = write_profile(tmp_path / "etcd-here.toml", profile_text(_fitted(values), {}))
    out = tmp_path / "replay"
    args = ["replay", str(sample), "--scheduler", "kube-default", "--profile", str(prof)]
    assert _cli([*args, "--out", str(out), "--quiet", "--no-plot"]) == 0, capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())["control_plane"]
    assert summary["profile"] == "etcd-here"
    assert summary["parameters"]["etcd"]["fsync_cv_ratio"] == 1.2
    assert summary["parameters"]["etcd"]["read_sharing"] == "ps"
    assert summary["parameters"]["etcd"]["read_front_us"] == 250.0
    assert summary["parameters"]["etcd"]["apply_pipelined"] is True
    assert summary["parameters"]["etcd"]["write_overhead_us"] == 120.0
    assert summary["parameters"]["apiserver"]["storage_size_ratio"] == 0.5  # from `current`
    etcd = pd.read_parquet(out / "etcd.parquet")
    assert etcd["revision"].iloc[-1] > etcd["revision"].iloc[0]  # writes went through etcd


def test_leader_fit_keeps_the_pipelined_leader_of_a_pipelined_etcd_and_records_it(tmp_path):
    # A model etcd whose WAL and apply stages overlap (fsync ~ apply of a few puts): the
    # write fit tries both leaders on the fit points and keeps the pipelined one, says so,
    # and the profile carries the choice. Lease and ~1 MB puts only, few evaluations: fast.
    truth = _model_etcd(
        apply_pipelined=True, fsync_ms=1.5, apply_us_per_request=300.0, wal_ns_per_byte=15.0
    )
    pts = assign_roles(_synthetic_points(truth))
    pts = pts[(pts["phase"] == "write") & (pts["size_class"] != "node")]
    serial_truth = dataclasses.replace(truth, apply_pipelined=False, wal_ns_per_byte=0.0)
    chosen, notes, evals = fit_leader(pts, serial_truth, max_evals=8)
    assert chosen.base.apply_pipelined is True and evals > 0
    assert any(n.startswith("leader: pipelined") for n in notes), notes
    assert {"write_overhead_us", "wal_ns_per_byte"} <= set(chosen.write_vals)
    values = {"apply_pipelined": True, **chosen.write_vals, **chosen.spread_vals}
    res = FitResult(values, chosen.base, chosen.loss, evals, notes=notes)
    text = profile_text(res, {})
    assert "apply_pipelined = true  # measured: write fit" in text
    assert load_profile(str(write_profile(tmp_path / "p.toml", text))).etcd.apply_pipelined


def _counted_puts(fsync_ms, wal_batch_us, wal_entry_us, etcd_cpu_us):
    """Fit put points of 400 B and 16 kB whose etcd counters say: a WAL cycle of
    ``fsync_ms`` + ``wal_batch_us`` + ``wal_entry_us`` per put it carries (the WAL stage the
    bottleneck), and ``etcd_cpu_us`` {size: CPU per put} at the highest concurrency."""
    rows = []
    for size, batches in ((400, (1.0, 1.5, 4.0, 12.0)), (16_000, (1.0, 1.4, 3.0, 6.0))):
        for i, batch in enumerate(batches):
            cycle_ms = fsync_ms + (wal_batch_us + wal_entry_us * batch) / 1e3
            rows.append(
                dict(
                    phase="write",
                    role="fit",
                    requests=1000,
                    value_bytes=size,
                    concurrency=4**i,
                    mean_ms=cycle_ms * 4**i / batch + 0.3,
                    throughput_per_s=batch / cycle_ms * 1e3,
                    puts_per_fsync=batch,
                    fsync_mean_ms=fsync_ms * (1 + 0.1 * i),  # the disk slows as batches grow
                    etcd_cpu_us_per_request=etcd_cpu_us[size] * (4 - i),
                )
            )
    return pd.DataFrame(rows).assign(point=range(len(rows)))


def test_shared_cpu_fit_starts_from_etcds_counters():
    points = _counted_puts(0.25, 300.0, 60.0, {400: 200.0, 16_000: 500.0})
    start = _start_pool(points, rtt_ms=0.1, peer_ms=0.0)
    assert set(POOL_KEYS) <= set(start)
    # The disk: the lone puts' fdatasync, not the larger batches'.
    assert start["fsync_ms"] == pytest.approx(0.25)
    # Raft's CPU: the line through the WAL cycles of the batched points.
    assert start["wal_cpu_us_per_batch"] == pytest.approx(300.0, rel=1e-6)
    assert start["wal_cpu_us_per_entry"] == pytest.approx(60.0, rel=1e-6)
    # The rest of etcd's CPU per put at the top, split between the front and the apply:
    # 200 us at 400 B and 500 us at 16 kB is 192.3 us + 19.2 ns/B.
    per_byte_ns = 300.0 / 15_600 * 1e3
    rest_us = 200.0 - 400 * per_byte_ns / 1e3 - 60.0 - 300.0 / 12.0
    assert start["front_cpu_us"] == pytest.approx(rest_us / 2, rel=1e-6)
    assert start["apply_us_per_request"] == pytest.approx(rest_us / 2, rel=1e-6)
    assert start["front_cpu_ns_per_byte"] + start["ns_per_byte"] == pytest.approx(per_byte_ns)
    # Without the counters (an older run) the start falls back to typical values.
    bare = points.drop(columns=["puts_per_fsync", "fsync_mean_ms", "etcd_cpu_us_per_request"])
    fallback = _start_pool(bare, rtt_ms=0.1, peer_ms=0.0)
    assert set(POOL_KEYS) <= set(fallback) and all(v > 0 for v in fallback.values())


def _pool_etcd() -> EtcdParams:
    """A model etcd on 2 cores (the shared-CPU fit's tests)."""
    return _model_etcd(
        apply_pipelined=True,
        cpu_cores=2,
        fsync_ms=0.3,
        front_cpu_us=40.0,
        front_cpu_ns_per_byte=10.0,
        apply_us_per_request=80.0,
        ns_per_byte=10.0,
        wal_cpu_us_per_batch=200.0,
        wal_cpu_us_per_entry=60.0,
        backend_commit_ms=0.5,
    )


def _pool_points(truth: EtcdParams, client_us: float) -> pd.DataFrame:
    """Put points (400 B at 1-64 in flight, 16 kB at 1-16) measured on ``truth`` with a
    client of ``client_us`` per put on its cores, with their fit/validate roles."""
    rows = []
    for i, (size, c) in enumerate(
        [(400, c) for c in (1, 2, 4, 8, 16, 32, 64)] + [(16_000, c) for c in (1, 2, 4, 8, 16)]
    ):
        sim = simulate_writes(truth, c, size, 600, seed=99, client_cpu_s=client_us / 1e6)
        rows.append(
            _point_row(
                i,
                sim,
                phase="write",
                op="put",
                consistency="",
                size_class="lease" if size == 400 else "node",
                value_bytes=size,
                keys_per_request=1,
                concurrency=c,
                client_cpu_us_per_request=client_us,
            )
        )
    return assign_roles(pd.DataFrame(rows))


@pytest.mark.slow
def test_shared_cpu_fit_predicts_a_model_etcd_whose_client_shares_its_cores(tmp_path):
    # A model etcd on 2 cores shared with a client of 150 us per put: the shared-CPU fit
    # (from the fallback start, few evaluations) predicts its held-out puts, says what it
    # fitted, and writes a profile whose etcd has the pool.
    truth = _pool_etcd()
    pts = _pool_points(truth, 150.0)
    base = dataclasses.replace(truth, cpu_cores=0, apply_pipelined=False)
    chosen, notes, evals = fit_leader(pts, base, max_evals=30, cpu_cores=2)
    assert chosen.base.cpu_cores == 2 and chosen.base.apply_pipelined and evals > 0
    assert set(POOL_KEYS) - {"backend_commit_ms"} <= set(chosen.write_vals)
    assert "cpu_cv_ratio" in chosen.spread_vals
    assert any("pool of 2 cores" in n for n in notes), notes
    table = compare(chosen.base, pts)
    held = table[table["role"] == "validate"]
    assert (held["mean_ms_error"].abs() < 0.25).all(), held["mean_ms_error"].tolist()
    assert (held["throughput_per_s_error"].abs() < 0.25).all()
    values = {"apply_pipelined": True, "cpu_cores": 2, **chosen.write_vals}
    text = profile_text(FitResult(values, chosen.base, chosen.loss, evals, notes=notes), {})
    assert "cpu_cores = 2  # measured: this machine's cores" in text
    assert load_profile(str(write_profile(tmp_path / "p.toml", text))).etcd.cpu_cores == 2


@pytest.mark.slow
def test_shared_cpu_fit_restart_leaves_an_unfinished_optimum_and_never_ends_worse():
    # A first pass stopped after 12 evaluations, far from converged: the restart (a fresh
    # simplex from its best point) lowers the loss, counts its evaluations, and a restart
    # that finds nothing better keeps the values it started from.
    truth = _pool_etcd()
    pts = _pool_points(truth, 150.0)
    base = dataclasses.replace(truth, backend_commit_ms=1.0)
    keys = _write_keys(pts, True, pool=True)
    first = _fit_means(pts, base, 12, keys, step=POOL_STEP)
    again = _restart_means(first, pts, 24, keys)
    assert again.loss < first.loss
    assert again.evals >= first.evals + 24
    assert again.base.front_cpu_us == again.write_vals["front_cpu_us"]
    stuck = _restart_means(again, pts, len(keys) + 1, keys)  # only the first simplex
    assert stuck.loss <= again.loss
    if stuck.loss == again.loss:
        assert stuck.write_vals == again.write_vals


@pytest.mark.slow
def test_shared_cpu_fit_keeps_the_fsync_wakeup_when_etcd_waits_for_a_core():
    # A model etcd whose raft waits behind the front work after each fdatasync: the plain
    # first pass cannot reproduce its 16 kB puts in flight; the restart with the wait (from
    # the plain optimum) fits them better, so the fit keeps it, and says so.
    truth = dataclasses.replace(_pool_etcd(), **POOL_FSYNC_WAKEUP)
    pts = _pool_points(truth, 150.0)
    base = dataclasses.replace(truth, backend_commit_ms=1.0, fsync_wakeup_front_ratio=0.0)
    keys = _write_keys(pts, True, pool=True)
    plain = _fit_means(pts, base, 40, keys, step=POOL_STEP)
    waits = _restart_means(plain, pts, 30, keys, model=POOL_FSYNC_WAKEUP)
    assert waits.loss < plain.loss
    assert waits.base.fsync_wakeup_front_ratio == POOL_FSYNC_WAKEUP["fsync_wakeup_front_ratio"]
    assert _wakeup_note(waits.base, plain.loss, waits.loss).startswith("fsync wakeup: raft")
    # Not kept (the plain path, ratio 0, goes on): the note says so.
    assert "not kept" in _wakeup_note(plain.base, plain.loss, plain.loss)
    # The profile says the values were held, not measured.
    values = {"cpu_cores": 2, **POOL_FSYNC_WAKEUP, **waits.write_vals}
    text = profile_text(FitResult(values, waits.base, waits.loss, waits.evals), {})
    assert "fsync_wakeup_front_ratio = 3  # held: 3 or 0, whichever fits" in text
    assert "fsync_wakeup_max_ms = 1.5  # held: not fitted" in text


def test_fit_errors_count_only_what_lies_outside_the_rounds_range():
    # A prediction within the range the point's rounds spanned is as good as the data
    # allows; outside it, the distance to the nearer end counts (log ratio).
    row = pd.Series({"p99_ms": 4.0, "p99_ms_round_min": 3.0, "p99_ms_round_max": 5.5})
    assert _range_error(4.9, row, "p99_ms") == 0.0
    assert _range_error(6.0, row, "p99_ms") == pytest.approx(np.log(6.0 / 5.5))
    assert _range_error(2.0, row, "p99_ms") == pytest.approx(np.log(2.0 / 3.0))
    # One round (no range) or an older run (no columns): against the pooled value.
    one = row.copy()
    one[["p99_ms_round_min", "p99_ms_round_max"]] = np.nan
    assert _range_error(5.0, one, "p99_ms") == pytest.approx(np.log(5.0 / 4.0))
    assert _range_error(5.0, pd.Series({"p99_ms": 4.0}), "p99_ms") == pytest.approx(
        np.log(5.0 / 4.0)
    )


def test_roles_hold_out_every_other_concurrency_but_keep_the_highest():
    pts = pd.DataFrame(
        dict(
            point=range(5),
            phase="write",
            op="put",
            consistency="",
            size_class="lease",
            keys_per_request=1,
            concurrency=[1, 2, 4, 8, 16],
        )
    )
    roles = assign_roles(pts).set_index("concurrency")["role"].to_dict()
    assert roles == {1: "fit", 2: "validate", 4: "fit", 8: "validate", 16: "fit"}


# --------------------------------------------------------------------------- real etcd


@pytest.mark.slow
@needs_etcd
def test_tiny_calibration_writes_profile_and_report_and_cleans_up(etcd, tmp_path):
    out = tmp_path / "cal" / "etcd.toml"
    res = calibrate_etcd(etcd.url, out, plan=Plan.tiny(), max_evals=8)
    assert out.is_file()
    prof = load_profile(str(out)).etcd
    assert prof.fsync_ms == pytest.approx(res.fit.values["fsync_ms"], rel=1e-4)
    assert prof.client_rtt_ms > 0
    report = report_dir_for(out)
    for name in ("points.parquet", "samples.parquet", "validation.parquet", "validation.png"):
        assert (report / name).is_file(), name
    pts = pd.read_parquet(report / "points.parquet")
    assert {"write", "read", "watch"} <= set(pts["phase"])
    assert (pts["requests"] > 0).all()
    assert (pts["p99_ms"] >= pts["p50_ms"]).all()
    watch = pts[(pts["phase"] == "watch") & (pts["op"] == "deliver")].iloc[0]
    assert watch["errors"] == 0  # every watcher got every event
    assert watch["requests"] == Plan.tiny().watchers * Plan.tiny().watch_events
    m = res.measurements.maintenance
    assert m["revisions_per_put"] == pytest.approx(1.0)
    assert m["db_size_after_compaction_bytes"] >= m["db_in_use_after_compaction_bytes"]
    assert m["db_size_after_defrag_bytes"] < m["db_size_before_bytes"]
    samples = pd.read_parquet(report / "samples.parquet")
    assert samples["kept"].sum() == pts["requests"].sum()
    # Write and read points were measured in rounds (the tiny plan: 2, both kept).
    measured = pts[pts["phase"].isin(["write", "read"])]
    assert (measured["rounds"] == Plan.tiny().rounds).all()
    assert (measured["rounds_kept"] == measured["rounds"]).all()
    assert set(samples["round"]) == set(range(Plan.tiny().rounds))
    # Each point records what its rounds spanned; pooled means and throughputs lie within.
    for metric in ("mean_ms", "throughput_per_s"):
        lo, hi = measured[f"{metric}_round_min"], measured[f"{metric}_round_max"]
        assert ((lo <= measured[metric] * (1 + 1e-9)) & (measured[metric] <= hi * (1 + 1e-9))).all()
    table = pd.read_parquet(report / "validation.parquet")
    assert table["p99_ms_in_rounds"].notna().all()
    # etcd's own counters: every put point's batch, which cannot exceed the puts in flight.
    puts = measured[measured["phase"] == "write"]
    assert (puts["puts_per_fsync"] >= 0.9).all() and (puts["fsync_mean_ms"] > 0).all()
    assert (puts["puts_per_fsync"] <= puts["concurrency"] * 1.05).all()
    assert table[table["phase"] == "write"]["puts_per_fsync_predicted"].notna().all()
    assert any("puts per WAL fdatasync" in note for note in res.fit.notes), res.fit.notes
    # CPU per request of etcd and of the calibration's own client, for puts and gets alike.
    for col in ("etcd_cpu_us_per_request", "client_cpu_us_per_request"):
        assert (measured[col] >= 0).all() and (measured[col] > 0).any(), col
    # What they say about the run reaches the notes, calibration.json and the profile header.
    cpu = cpu_notes(pts, etcd.url, pooled=True)
    assert all(note in res.fit.notes for note in cpu)
    # etcd on this machine: the model's CPU pool has its cores, shared with the client.
    cores = os.cpu_count()
    assert res.fit.params.cpu_cores == cores and res.fit.params.apply_pipelined
    assert load_profile(str(out)).etcd.cpu_cores == cores
    assert any(f"pool of {cores} cores" in note for note in res.fit.notes), res.fit.notes
    # The same measurements fitted again without the pool, into a new profile and report;
    # the original report is left as it was.
    before = (report / "calibration.json").read_text()
    again = refit_etcd(report, tmp_path / "again.toml", max_evals=8, cpu_cores=0)
    assert again.fit.params.cpu_cores == 0 and "cpu_cores" not in again.fit.values
    assert load_profile(str(tmp_path / "again.toml")).etcd.cpu_cores == 0
    assert again.report_dir == tmp_path / "again-calibration"
    assert len(pd.read_parquet(again.report_dir / "points.parquet")) == len(pts)
    assert (report / "calibration.json").read_text() == before
    meta = json.loads((report / "calibration.json").read_text())
    assert meta["notes"] == res.fit.notes and all(note in meta["validation"] for note in cpu)
    assert all(f"# {note}" in out.read_text() for note in cpu)
    # `calibrate check` reads real reports: the profile against both (its own measurements
    # twice) predicts what the calibration's validation did (the TOML's rounding aside),
    # and the two reports pass the same-plan check (the tiny plan holds nothing out, so
    # there is no value for them to disagree on).
    real = load_runs([report, again.report_dir])
    checked, tables = check_profile(prof, real)
    assert (checked["all"] == 3 * len(table)).all()
    assert (checked["held_out"] == 3 * int((table["role"] == "validate").sum())).all()
    for name in (str(report), str(again.report_dir)):
        predicted = tables[name]["mean_ms_predicted"].to_numpy()
        assert predicted == pytest.approx(table["mean_ms_predicted"].to_numpy(), rel=0.01)
    agree = repeatability(real)
    assert (agree["held_out_within"] == agree["held_out"]).all()
    assert _run(_all_keys(etcd.url)) == 0


@pytest.mark.slow
@needs_etcd
def test_refuses_an_etcd_with_foreign_keys_unless_told(etcd, tmp_path):
    _run(_put(etcd.url, b"/registry/pods/default/x", b"{}"))
    try:
        with pytest.raises(EtcdError, match="1 keys that tracesim did not create"):
            calibrate_etcd(etcd.url, tmp_path / "p.toml", plan=Plan.tiny(), max_evals=4)
        assert not (tmp_path / "p.toml").exists()
        assert _run(_all_keys(etcd.url)) == 1
        calibrate_etcd(
            etcd.url, tmp_path / "p.toml", plan=Plan.tiny(), allow_foreign_keys=True, max_evals=4
        )
        assert (tmp_path / "p.toml").is_file()
        assert _run(_all_keys(etcd.url)) == 1  # the foreign key is untouched, ours are gone
    finally:
        _run(_delete_all(etcd.url))


@needs_etcd
def test_cancelled_run_deletes_what_it_wrote(etcd):
    async def go():
        async with EtcdClient(etcd.url) as c:
            cal = Calibration(c, Plan(point_s=0.5, large_concurrency=(1,)))
            task = asyncio.create_task(cal.run())
            while await c.count(ROOT, prefix_end(ROOT)) == 0:  # until it has written
                if task.done():
                    task.result()  # a failure before writing: show it
                    raise AssertionError("the run finished before it was cancelled")
                await asyncio.sleep(0.02)
            task.cancel()  # what Ctrl-C does to asyncio.run's main task
            with pytest.raises(asyncio.CancelledError):
                await task
            return await c.count(b"\0", b"\0")

    assert _run(go()) == 0


def test_cleanup_deletes_a_put_that_lands_after_its_first_delete(etcd):
    # What a cancelled run meets: a put sent before Ctrl-C reaches etcd after cleanup's first
    # delete. Here the late put is written while cleanup waits to look again.
    async def go():
        async with EtcdClient(etcd.url) as c:
            cal = Calibration(c, Plan(point_s=0.5))
            await cal._preflight()
            cal._wrote = True
            await c.put(cal.prefix + b"early", b"x")

            async def late():
                await asyncio.sleep(CLEANUP_SETTLE_S / 2)
                await c.put(cal.prefix + b"late", b"x")

            writer = asyncio.create_task(late())
            deleted = await cal.cleanup()
            await writer
            return deleted, await c.count(ROOT, prefix_end(ROOT))

    assert _run(go()) == (2, 0)


def _cli(args: list[str]) -> int:
    from tracesim.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code


def test_unreachable_endpoint_is_one_line_exit_2(tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "p.toml"
    code = _cli(["calibrate", "etcd", "--endpoints", f"http://127.0.0.1:{port}", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: cannot connect to etcd at")
    assert not out.exists() and not report_dir_for(out).exists()


def test_bad_out_and_endpoints_are_rejected(tmp_path, capsys):
    code = _cli(["calibrate", "etcd", "--endpoints", "http://a:1,http://b:2", "--out", "p.toml"])
    assert code == 2 and "exactly one client URL" in capsys.readouterr().err
    code = _cli(["calibrate", "etcd", "--endpoints", "http://a:1", "--out", str(tmp_path / "p")])
    assert code == 2 and "a .toml file" in capsys.readouterr().err
    args = ["calibrate", "etcd", "--endpoints", "http://a:1", "--out", str(tmp_path / "p.toml")]
    assert _cli([*args, "--cpu-cores", "-1"]) == 2
    assert "--cpu-cores" in capsys.readouterr().err
    with pytest.raises(TracesimError, match="--cpu-cores -1"):
        calibrate_etcd("http://a:1", tmp_path / "p.toml", cpu_cores=-1)
    assert not (tmp_path / "p.toml").exists()


def test_refit_needs_a_report_directory_and_one_source(tmp_path, capsys):
    out = str(tmp_path / "p.toml")
    code = _cli(["calibrate", "etcd", "--from-report", str(tmp_path / "nope"), "--out", out])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not a calibration report directory" in err[0]
    assert _cli(["calibrate", "etcd", "--out", out]) == 2
    assert "--endpoints URL (measure an etcd) or --from-report DIR" in capsys.readouterr().err
    both = ["--endpoints", "http://127.0.0.1:1", "--from-report", str(tmp_path)]
    assert _cli(["calibrate", "etcd", *both, "--out", out]) == 2
    assert "not both" in capsys.readouterr().err
    # A report may not be overwritten by its own re-fit.
    report = tmp_path / "p-calibration"
    report.mkdir()
    _synthetic_points(_model_etcd()).head(2).to_parquet(report / "points.parquet")
    pd.DataFrame({"point": [0], "latency_ms": [1.0]}).to_parquet(report / "samples.parquet")
    (report / "calibration.json").write_text(json.dumps({"info": {}, "maintenance": {}}))
    with pytest.raises(TracesimError, match="would overwrite the report it re-fits"):
        refit_etcd(report, tmp_path / "p.toml")
    assert not Path(out).exists()


@needs_etcd
def test_tls_endpoint_without_certificates(tmp_path, capsys):
    with EtcdServer(auto_tls=True) as tls:
        https = tls.url
        http = https.replace("https://", "http://")
        out = tmp_path / "p.toml"
        assert _cli(["calibrate", "etcd", "--endpoints", http, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "speaks TLS" in err[0] and "--cacert" in err[0]
        assert _cli(["calibrate", "etcd", "--endpoints", https, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "TLS certificate not trusted" in err[0]
        assert not out.exists()


@needs_etcd
def test_nospace_alarm_cleans_up_disarms_and_writes_no_profile(tmp_path, capsys):
    with EtcdServer(quota_bytes=1_500_000) as small:
        out = tmp_path / "p.toml"
        with pytest.raises(EtcdNoSpace, match="NOSPACE") as exc:
            calibrate_etcd(small.url, out, plan=Plan.tiny(), max_evals=4)
        msg = str(exc.value)
        assert "alarm disarmed" in msg and "no profile written" in msg
        assert "\n" not in msg
        assert not out.exists()
        assert _run(_all_keys(small.url)) == 0
        assert _run(_alarms(small.url)) == []
        # The etcd is usable again: a put succeeds.
        _run(_put(small.url, b"/after", b"ok"))


@pytest.mark.slow
@needs_etcd
def test_quick_calibration_cli(tmp_path, capsys):
    # The CI run of `--quick`: under a couple of minutes, exit 0, a loadable profile.
    with EtcdServer() as server:
        out = tmp_path / "etcd.toml"
        args = ["calibrate", "etcd", "--endpoints", server.url, "--quick", "--quiet"]
        code = _cli([*args, "--out", str(out)])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        # The verdict on the held-out points, and the table whole in a log (not a terminal).
        assert "validation: held-out mean_ms: " in captured.out
        assert "validate" in captured.out and "…" not in captured.out, captured.out
        prof = load_profile(str(out)).etcd
        assert prof.apply_us_per_request > 0 and prof.ns_per_byte > 0
        table = pd.read_parquet(report_dir_for(out) / "validation.parquet")
        held = table[(table["role"] == "validate") & (table["phase"] == "write")]
        assert len(held) >= 4
        # Means and throughputs of held-out writes: most predicted within 25% on any machine.
        ok = (held[["mean_ms_error", "throughput_per_s_error"]].abs() <= 0.25).all(axis=1)
        assert ok.mean() >= 0.5, held
        assert np.isfinite(held["p99_ms_predicted"]).all()
        assert _run(_all_keys(server.url)) == 0
