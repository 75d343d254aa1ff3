"""etcd model: batching throughput shape, limits, MVCC accounting, compaction, defrag, freelist."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from tracesim.models.etcd import REASONS, EtcdModel, PsServer
from tracesim.models.params import EtcdParams
from tracesim.models.timers import call_later


def closed_loop(n_clients: int, span_s: float = 0.3, warm_s: float = 0.1, **params):
    """``n_clients`` clients each writing 264-byte values back to back (the etcd benchmark);
    (throughput 1/s, mean latency s)."""
    p = dataclasses.replace(EtcdParams(), **params)
    thr, mean, _etcd = _run_clients(n_clients, p, span_s, warm_s)
    return thr, mean


def _run_clients(
    n_clients: int,
    p: EtcdParams,
    span_s: float,
    warm_s: float,
    size_bytes: float = 264.0,
    rng: np.random.Generator | None = None,
):
    """Closed-loop clients updating their own key: (throughput 1/s, mean latency s, model)
    over ``span_s`` after ``warm_s``."""
    env = simpy.Environment()
    etcd = EtcdModel(env, p, rng)
    etcd.preload("kv", list(range(n_clients)), 256)
    lats: list[float] = []

    def client(i):
        while True:
            res = yield etcd.write("update", "kv", i, size_bytes)
            assert res.ok
            if env.now > warm_s:
                lats.append(res.latency_s)

    for i in range(n_clients):
        env.process(client(i))
    env.run(until=warm_s + span_s)
    return len(lats) / span_s, float(np.mean(lats)), etcd


def test_throughput_rises_with_concurrency_as_in_the_published_benchmark():
    results = {n: closed_loop(n) for n in (1, 10, 100, 1000)}
    thr = [results[n][0] for n in (1, 10, 100, 1000)]
    assert all(b > 1.5 * a for a, b in itertools.pairwise(thr))
    # Published: 583 writes/s at 1.6 ms (1 client), 44,341/s at 22 ms (1,000 clients).
    assert results[1][0] == pytest.approx(583, rel=0.15)
    assert results[1][1] == pytest.approx(1.6e-3, rel=0.2)
    assert results[1000][0] == pytest.approx(44_341, rel=0.15)
    assert results[1000][1] == pytest.approx(22e-3, rel=0.2)


def test_slower_disk_lowers_single_client_throughput():
    fast, _ = closed_loop(1, span_s=0.5)
    slow, lat = closed_loop(1, span_s=0.5, fsync_ms=10.0)  # spinning disk
    assert slow < fast / 4 and lat > 10e-3


def run_writes(etcd: EtcdModel, env: simpy.Environment, ops):
    """Submit (op, kind, key, size) one at a time; returns the results in order."""
    out = []

    def proc():
        for op, kind, key, size in ops:
            out.append((yield etcd.write(op, kind, key, size)))

    env.process(proc())
    env.run()
    return out


def test_request_size_limit_rejects_with_reason_and_no_revision():
    env = simpy.Environment()
    etcd = EtcdModel(env)
    res = run_writes(etcd, env, [("create", "cm", "a", 2 * 2**20), ("create", "cm", "b", 1000)])
    assert res[0].reason == "etcd-request-too-large"
    assert res[1].ok
    assert etcd.revision == 1 and etcd.count("cm") == 1


def test_mvcc_conservation_random_sequence():
    rng = np.random.default_rng(5)
    env = simpy.Environment()
    etcd = EtcdModel(env)
    ops = []
    for _ in range(3_000):
        op = rng.choice(["create", "update", "delete"])
        ops.append((str(op), "pods", int(rng.integers(0, 300)), float(rng.integers(100, 5000))))
    res = run_writes(etcd, env, ops)
    assert len(res) == len(ops)
    # Replay the same sequence on a dict: who should succeed, and the final state.
    ref: dict[int, float] = {}
    n_ok = 0
    for (op, _, key, size), r in zip(ops, res, strict=True):
        expect = (
            "already-exists"
            if op == "create" and key in ref
            else "not-found"
            if op != "create" and key not in ref
            else "ok"
        )
        assert r.reason == expect
        if expect == "ok":
            n_ok += 1
            if op == "delete":
                del ref[key]
            else:
                ref[key] = size
    assert etcd.revision == n_ok == etcd.writes_ok
    assert etcd.writes_rejected == len(ops) - n_ok
    assert etcd.count("pods") == len(ref)
    assert etcd.bytes_of("pods") == pytest.approx(sum(ref.values()))


def test_group_writes_report_every_member_once():
    env = simpy.Environment()
    etcd = EtcdModel(env, dataclasses.replace(EtcdParams(), max_request_bytes=10_000))
    etcd.preload("leases", [0, 1, 2], 400)
    seen = np.zeros(6, dtype=int)
    reasons = np.full(6, -1)

    def done(lat, r, members):
        idx = np.arange(6) if members is None else members
        seen[idx] += 1
        reasons[idx] = r
        assert np.all(lat > 0)

    keys = [0, 1, 2, 7, 8, 0]
    sizes = np.array([400, 20_000, 400, 400, 400, 400.0])
    # update, update (too large), delete, update (missing key), create, update again
    ops = np.array([1, 1, 2, 1, 0, 1])
    etcd.submit_writes(ops, "leases", keys, sizes, done)
    env.run()
    assert seen.tolist() == [1] * 6
    assert [REASONS[r] for r in reasons] == [
        "ok",
        "etcd-request-too-large",
        "ok",
        "not-found",
        "ok",
        "ok",
    ]
    assert etcd.revision == 3 + 4
    assert etcd.count("leases") == 3  # 0, 1 and 8; 2 was deleted


def test_nospace_alarm_rejects_writes_but_not_deletes_or_reads_until_defrag_and_disarm():
    env = simpy.Environment()
    etcd = EtcdModel(env, dataclasses.replace(EtcdParams(), quota_bytes=2_000_000))
    ops = [("create", "cm", i, 10_000.0) for i in range(200)]
    res = run_writes(etcd, env, ops)
    reasons = [r.reason for r in res]
    assert "etcd-nospace" in reasons
    first = reasons.index("etcd-nospace")
    assert all(r == "ok" for r in reasons[:first])
    assert all(r == "etcd-nospace" for r in reasons[first:])  # the alarm stays raised
    assert etcd.alarm_nospace
    # Reads and deletes still work.
    read = []
    env.process((lambda: (yield from _read(etcd, read)))())
    res = run_writes(etcd, env, [("delete", "cm", i, 0.0) for i in range(first)])
    assert all(r.ok for r in res) and read and read[0].ok
    assert run_writes(etcd, env, [("create", "cm", "x", 10.0)])[0].reason == "etcd-nospace"
    # Disarm alone does not help while the file is still at the quota.
    assert not etcd.disarm()
    env.process(_compact(etcd))
    env.run()
    assert not etcd.disarm()  # compaction does not shrink the file
    etcd.defrag()
    env.run()
    assert etcd.disarm() and not etcd.alarm_nospace
    assert run_writes(etcd, env, [("create", "cm", "x", 10.0)])[0].ok


def _read(etcd, out):
    out.append((yield etcd.range(10, 1000, linearizable=False)))


def _compact(etcd):
    yield etcd.compact()


def test_compaction_frees_pages_without_shrinking_then_defrag_shrinks():
    env = simpy.Environment()
    etcd = EtcdModel(env)
    etcd.preload("nodes", list(range(1000)), 15_000)
    run_writes(etcd, env, [("update", "nodes", i % 1000, 15_000.0) for i in range(5_000)])
    size_before = etcd.db_size_bytes
    assert etcd.history_bytes > 5_000 * 15_000
    assert etcd.free_pages == 0
    env.process(_compact(etcd))
    env.run()
    assert etcd.history_bytes == 0
    assert etcd.db_size_bytes == size_before  # compaction does not shrink the file
    assert etcd.free_pages > 0.5 * 5_000 * 15_000 / 4096
    # New writes reuse the free pages: the file does not grow.
    run_writes(etcd, env, [("update", "nodes", i, 15_000.0) for i in range(1000)])
    assert etcd.db_size_bytes == size_before
    ev = etcd.defrag()
    env.run()
    assert ev.value > 0
    assert etcd.db_size_bytes < 0.5 * size_before
    assert etcd.db_size_bytes >= etcd.data_bytes


def test_defrag_blocks_writes_and_reads_while_it_runs():
    env = simpy.Environment()
    p = dataclasses.replace(EtcdParams(), defrag_s_per_gib=1000.0)
    etcd = EtcdModel(env, p)
    etcd.preload("cm", list(range(100)), 100_000)  # ~15 MB file: defrag ~ 15 s
    gib = etcd.db_size_bytes / 2**30
    etcd.defrag()
    got = []

    def client():
        yield env.timeout(0.001)
        got.append((yield etcd.write("update", "cm", 1, 10.0)).latency_s)
        got.append((yield etcd.range(1, 10)).latency_s)

    env.process(client())
    env.run()
    assert got[0] > 0.9 * gib * 1000.0
    assert got[1] < 0.01


def test_apiserver_style_compactor_keeps_one_interval_of_history():
    env = simpy.Environment()
    etcd = EtcdModel(env)
    etcd.preload("leases", list(range(100)), 400)
    etcd.start_compactor(300.0)

    def writer():
        while True:
            yield etcd.write("update", "leases", 1, 400.0)
            yield env.timeout(1.0)

    env.process(writer())
    env.run(until=301)
    assert etcd.compacted_revision == 100  # the revision seen at t=0
    env.run(until=601)
    assert 100 + 290 <= etcd.compacted_revision <= 100 + 301  # the revision seen at t=300
    assert etcd.revision - etcd.compacted_revision == pytest.approx(300, abs=5)


def freelist_latency(freelist: str, fragmented: bool) -> tuple[float, float]:
    """Mean latency of 15 kB (multi-page) writes at 500/s after building a DB with or
    without ~300k free pages (delete 40k objects of 20 kB, compact)."""
    env = simpy.Environment()
    etcd = EtcdModel(env, dataclasses.replace(EtcdParams(), freelist=freelist, quota_bytes=2**40))
    etcd.preload("nodes", list(range(1000)), 15_000)
    if fragmented:
        keys = list(range(40_000))
        etcd.preload("blobs", keys, 20_000)
        etcd.submit_writes("delete", "blobs", keys, np.zeros(len(keys)))
        env.run()
        env.process(_compact(etcd))
        env.run()
    free = etcd.free_pages
    t0 = env.now
    rng = np.random.default_rng(1)
    lats = []

    def load():
        for i in range(2_500):
            yield env.timeout(rng.exponential(1 / 500))
            ev = etcd.write("update", "nodes", i % 1000, 15_000.0)
            ev.callbacks.append(lambda e: lats.append(e.value.latency_s))

    env.process(load())
    env.run()
    assert env.now - t0 > 4.0
    return float(np.mean(lats)), free


def test_array_freelist_write_latency_grows_with_free_pages_and_hashmap_does_not():
    arr_small, free_small = freelist_latency("array", False)
    arr_big, free_big = freelist_latency("array", True)
    map_small, _ = freelist_latency("hashmap", False)
    map_big, _ = freelist_latency("hashmap", True)
    assert free_small < 1000 < 200_000 < free_big
    assert arr_big > 1.5 * arr_small
    assert map_big == pytest.approx(map_small, rel=0.05)
    assert map_big < arr_big


def test_range_cost_grows_with_objects_and_bytes_and_linearizable_costs_a_round():
    env = simpy.Environment()
    etcd = EtcdModel(env)
    out = {}

    def reads():
        out["small"] = (yield etcd.range(10, 10_000, linearizable=False)).latency_s
        out["many"] = (yield etcd.range(100_000, 10_000, linearizable=False)).latency_s
        out["big"] = (yield etcd.range(10, 500_000_000, linearizable=False)).latency_s
        out["lin"] = (yield etcd.range(10, 10_000, linearizable=True)).latency_s

    env.process(reads())
    env.run()
    assert out["small"] == pytest.approx(0.3e-3, rel=0.3)  # published: 0.3 ms serializable
    assert out["many"] > 10 * out["small"]
    assert out["big"] > 10 * out["small"]
    assert out["lin"] > out["small"]


def test_determinism_of_group_path():
    def once():
        env = simpy.Environment()
        etcd = EtcdModel(env)
        etcd.preload("l", list(range(500)), 400)
        rng = np.random.default_rng(3)
        lat = []

        def gen():
            for _ in range(300):
                yield env.timeout(rng.exponential(0.002))
                keys = rng.choice(500, 5, replace=False).tolist()
                etcd.submit_writes(
                    "update", "l", keys, np.full(5, 400.0), lambda x, r, m: lat.extend(x.tolist())
                )

        env.process(gen())
        env.run()
        return lat, etcd.revision, etcd.db_size_bytes

    assert once() == once()


# --------------------------------------------------------------------------- service-time spread


def _one_client_latencies(n: int, rng=None, **params) -> np.ndarray:
    """Latencies (s) of ``n`` back-to-back puts by one client (one put per batch)."""
    env = simpy.Environment()
    etcd = EtcdModel(env, dataclasses.replace(EtcdParams(), **params), rng)
    etcd.preload("kv", [0], 256)
    lats: list[float] = []

    def client():
        for _ in range(n):
            res = yield etcd.write("update", "kv", 0, 264)
            lats.append(res.latency_s)

    env.process(client())
    env.run()
    return np.asarray(lats)


def test_zero_spread_draws_nothing_and_changes_nothing():
    rng = np.random.default_rng(7)
    state = rng.bit_generator.state
    with_rng = _one_client_latencies(300, rng)
    assert rng.bit_generator.state == state  # no draw when both CVs are 0
    np.testing.assert_array_equal(with_rng, _one_client_latencies(300))


def test_fsync_spread_is_a_mean_one_lognormal_with_the_given_cv():
    # Only the fsync varies (no commit cost, no apply cost): latency - fixed part = fsync x X.
    kw = dict(
        fsync_ms=2.0,
        fsync_cv_ratio=0.8,
        apply_us_per_request=0.0,
        ns_per_byte=0.0,
        backend_commit_ms=0.0,
        freelist_ns_per_alloc=0.0,
    )
    lat = _one_client_latencies(20_000, np.random.default_rng(1), **kw)
    p = EtcdParams()
    x = (lat - (p.client_rtt_ms + p.peer_rtt_ms) / 1e3) / 2e-3
    assert x.min() > 0
    assert x.mean() == pytest.approx(1.0, abs=0.03)
    assert x.std() / x.mean() == pytest.approx(0.8, rel=0.1)
    # lognormal: the log is symmetric (its mean is the log of the median)
    assert np.log(x).mean() == pytest.approx(np.log(np.median(x)), abs=0.03)


def test_spread_is_deterministic_under_a_seed_and_keeps_the_mean():
    kw = dict(fsync_cv_ratio=1.0, batch_apply_cv_ratio=0.5)
    a = _one_client_latencies(2000, np.random.default_rng(3), **kw)
    b = _one_client_latencies(2000, np.random.default_rng(3), **kw)
    c = _one_client_latencies(2000, np.random.default_rng(4), **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    flat = _one_client_latencies(2000)
    assert a.mean() == pytest.approx(flat.mean(), rel=0.05)
    p99_p50 = np.percentile(a, 99) / np.median(a)
    assert p99_p50 > 1.5 * np.percentile(flat, 99) / np.median(flat)


def test_apply_spread_widens_saturated_latencies_but_not_throughput():
    # 200 clients saturate the leader (apply-bound); a per-batch apply stall delays every
    # member of the batch, so the p99 rises while throughput stays ~1 / apply cost.
    def run(cv):
        env = simpy.Environment()
        p = dataclasses.replace(EtcdParams(), batch_apply_cv_ratio=cv)
        etcd = EtcdModel(env, p, np.random.default_rng(0))
        etcd.preload("kv", list(range(200)), 256)
        lats = []

        def client(i):
            while True:
                res = yield etcd.write("update", "kv", i, 264)
                if env.now > 0.1:
                    lats.append(res.latency_s)

        for i in range(200):
            env.process(client(i))
        env.run(until=1.1)
        return len(lats), np.percentile(lats, 99) / np.median(lats)

    n0, r0 = run(0.0)
    n1, r1 = run(0.6)
    assert n1 == pytest.approx(n0, rel=0.1)
    assert r1 > r0 + 0.3


def _reads_at_once(params: EtcdParams, service_s: list[float], seed: int = 0) -> list[float]:
    """Latencies (s) of serializable gets all arriving at t=0, zero RTT, given service times
    (via ``range_base_us``: each read gets its own model so the costs can differ)."""
    env = simpy.Environment()
    p = dataclasses.replace(params, client_rtt_ms=0.0, range_us_per_object=0.0)
    p = dataclasses.replace(p, range_ns_per_byte=0.0, range_base_us=0.0)
    etcd = EtcdModel(env, p, np.random.default_rng(seed))
    out: list[float] = []
    for s in service_s:
        etcd.reads.submit(s, lambda _w, out=out, env=env: out.append(env.now))
    env.run()
    return out


def test_processor_sharing_reads_share_the_cores_and_finish_by_remaining_work():
    ps = dataclasses.replace(EtcdParams(), read_sharing="ps", read_concurrency=1)
    # Works 1, 2, 3 ms sharing one core: the first ends at 3 x 1 ms, the second after another
    # 2 x 1 ms, the last after 1 ms more alone (6 ms of work, all done at 6 ms).
    done = _reads_at_once(ps, [1e-3, 2e-3, 3e-3])
    assert done == pytest.approx([3e-3, 5e-3, 6e-3])
    # Two cores, three equal jobs: each runs at 2/3 speed, all end at 1.5 ms of work each.
    two = dataclasses.replace(ps, read_concurrency=2)
    assert _reads_at_once(two, [1e-3] * 3) == pytest.approx([1.5e-3] * 3)
    # FIFO on one worker: the same jobs end at their cumulative sums.
    fcfs = dataclasses.replace(ps, read_sharing="fcfs")
    assert _reads_at_once(fcfs, [1e-3, 2e-3, 3e-3]) == pytest.approx([1e-3, 3e-3, 6e-3])


def test_ps_utilisation_counts_busy_cores():
    env = simpy.Environment()
    p = dataclasses.replace(EtcdParams(), read_sharing="ps", read_concurrency=2)
    etcd = EtcdModel(env, p)
    etcd.reads.submit(1.0)
    env.run(until=4.0)
    assert etcd.reads.busy_area_s() == pytest.approx(1.0)  # one core busy for 1 s
    assert etcd.reads.queue_len == 0


def _closed_loop_gets(p: EtcdParams, clients: int, n: int, seed: int) -> np.ndarray:
    env = simpy.Environment()
    etcd = EtcdModel(env, p, np.random.default_rng(seed))
    lat: list[float] = []

    def client():
        for _ in range(n):
            lat.append((yield etcd.range(1, 1000, linearizable=False)).latency_s)

    for _ in range(clients):
        env.process(client())
    env.run()
    return np.asarray(lat)


def test_read_spread_is_deterministic_keeps_the_mean_and_widens_the_tail():
    base = dataclasses.replace(EtcdParams(), read_concurrency=1, range_base_us=300.0)
    flat = _closed_loop_gets(base, 1, 3000, 0)
    spread = dataclasses.replace(base, read_cv_ratio=0.8)
    a, b = _closed_loop_gets(spread, 1, 3000, 5), _closed_loop_gets(spread, 1, 3000, 5)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _closed_loop_gets(spread, 1, 3000, 6))
    assert a.mean() == pytest.approx(flat.mean(), rel=0.05)
    assert np.percentile(flat, 99) == pytest.approx(flat.mean())  # no spread: fixed latency
    assert np.percentile(a, 99) > 1.5 * np.percentile(flat, 99)


def _one_ps_read_worker(**kw) -> EtcdParams:
    """Reads on one processor-sharing worker, 100 us each plus ``range_us_per_object``,
    no round trip."""
    base = dict(
        client_rtt_ms=0.0,
        read_concurrency=1,
        read_sharing="ps",
        range_base_us=100.0,
        range_us_per_object=0.0,
        range_ns_per_byte=0.0,
    )
    return dataclasses.replace(EtcdParams(), **{**base, **kw})


def test_read_spread_multiplies_the_fixed_part_not_the_scan():
    # A read's spread multiplies its fixed handling; a long range's per-object scan (a sum
    # of many like steps) stays: no 1,000-key range is faster than its scan alone.
    p = _one_ps_read_worker(range_us_per_object=10.0, read_cv_ratio=1.0)
    env = simpy.Environment()
    etcd = EtcdModel(env, p, np.random.default_rng(1))
    lat: list[float] = []

    def client():
        for _ in range(2000):
            lat.append((yield etcd.range(1000, 0, linearizable=False)).latency_s)

    env.process(client())
    env.run()
    scan_s = 1000 * 10e-6
    assert min(lat) >= scan_s
    assert np.mean(lat) == pytest.approx(scan_s + 100e-6, rel=0.02)  # mean-one multiplier
    assert max(lat) > scan_s + 300e-6  # the fixed part does spread


def _delayed_gets(clients: int, **kw) -> np.ndarray:
    return _closed_loop_gets(_one_ps_read_worker(**kw), clients, 4000 // clients, 2)


@pytest.mark.parametrize("sharing", ["ps", "fcfs"])
def test_read_delays_need_enough_reads_at_the_workers(sharing):
    # 10% of the reads that find 3 or more reads on the one 100 us worker (themselves
    # included) are answered 2 ms late: 1 or 2 clients never reach 3 reads there.
    delays = dict(
        read_sharing=sharing, read_delay_ratio=0.1, read_delay_ms=2.0, read_delay_min_reads=3
    )
    for clients in (1, 2):
        plain = _delayed_gets(clients, read_sharing=sharing)
        assert np.array_equal(plain, _delayed_gets(clients, **delays))
    # 4 clients with no round trip: a read finds 3 or more there unless it is among the
    # first two of reads that finished together, or another client is being delayed.
    lat = _delayed_gets(4, **delays)
    late = lat >= 2e-3
    assert 0.04 < late.mean() < 0.1
    # A delayed read waits off the workers: the others never wait longer than behind the
    # other three reads, and a delayed one is its service (at most 4 x 100 us) + 2 ms.
    assert lat[~late].max() <= 4 * 100e-6 + 1e-9
    assert lat[late].max() <= 2e-3 + 4 * 100e-6 + 1e-9
    # With the default (1 read is enough) a lone client's reads are delayed too.
    lone = _delayed_gets(1, read_delay_ratio=0.1, read_delay_ms=2.0)
    assert 0.08 < (lone >= 2e-3).mean() < 0.12


def test_read_spread_does_not_shift_the_write_draws():
    # Reads draw from their own stream: the same writes get the same spread with or without
    # reads in between (common random numbers across scenarios).
    p = dataclasses.replace(EtcdParams(), fsync_cv_ratio=1.0, read_cv_ratio=1.0)
    # No backend commit during the run (its timing would move with the reads in between).
    p = dataclasses.replace(p, backend_commit_interval_ms=1e9, backend_commit_max_ops=10**9)

    def writes(with_reads: bool) -> list[float]:
        env = simpy.Environment()
        etcd = EtcdModel(env, p, np.random.default_rng(3))
        etcd.preload("kv", [0], 100)
        out = []

        def run():
            for _ in range(50):
                if with_reads:
                    yield etcd.range(1, 100)
                out.append((yield etcd.write("update", "kv", 0, 100.0)).latency_s)

        env.process(run())
        env.run()
        return out

    assert writes(True) == pytest.approx(writes(False), rel=1e-9)


def test_ps_tail_persists_under_load_where_a_fifo_queue_averages_it_out():
    # The reason ``read_sharing = "ps"`` exists: with 32 reads in flight, a FIFO queue's
    # latency is a sum of ~32 services (p99/p50 near 1), a shared core's stretches each
    # read's own service (p99/p50 near that of one service).
    base = dataclasses.replace(
        EtcdParams(), read_concurrency=1, range_base_us=300.0, read_cv_ratio=0.8
    )
    ratios = {}
    for sharing in ("fcfs", "ps"):
        lat = _closed_loop_gets(dataclasses.replace(base, read_sharing=sharing), 32, 100, 1)
        ratios[sharing] = np.percentile(lat, 99) / np.percentile(lat, 50)
    assert ratios["fcfs"] < 1.4 < 2.0 < ratios["ps"]


def _puts_of(size_bytes: float, n: int, seed: int = 0, **params) -> np.ndarray:
    """Latencies (s) of ``n`` back-to-back puts of ``size_bytes`` by one client."""
    env = simpy.Environment()
    p = dataclasses.replace(EtcdParams(), quota_bytes=2**50, **params)  # history of GBs
    etcd = EtcdModel(env, p, np.random.default_rng(seed))
    etcd.preload("kv", [0], size_bytes)
    lats: list[float] = []

    def client():
        for _ in range(n):
            res = yield etcd.write("update", "kv", 0, size_bytes)
            assert res.ok
            lats.append(res.latency_s)

    env.process(client())
    env.run()
    return np.asarray(lats)


def test_byte_spread_default_shares_the_apply_multiplier():
    # byte_cv_ratio < 0 (the default): the per-byte work takes the apply multiplier, exactly
    # as before the parameter existed: setting batch_apply_cv_ratio alone widens 1 MB puts.
    kw = dict(fsync_cv_ratio=0.5, batch_apply_cv_ratio=0.8, ns_per_byte=20.0)
    shared = _puts_of(1e6, 400, **kw)
    assert EtcdParams().byte_cv_ratio < 0
    np.testing.assert_array_equal(shared, _puts_of(1e6, 400, byte_cv_ratio=-1.0, **kw))
    assert np.percentile(shared, 99) / np.median(shared) > 2.0


def test_byte_spread_narrows_large_puts_and_leaves_small_ones_alike():
    kw = dict(fsync_cv_ratio=0.5, batch_apply_cv_ratio=0.8, ns_per_byte=20.0)

    def ratio(lat: np.ndarray) -> float:
        return float(np.percentile(lat, 99) / np.median(lat))

    # 1 MB puts: 20 ms of per-byte work per batch, the rest under 2 ms. Its own, smaller
    # spread narrows their tail; the mean stays (mean-1 multipliers).
    shared, own = _puts_of(1e6, 2000, **kw), _puts_of(1e6, 2000, byte_cv_ratio=0.1, **kw)
    assert ratio(own) < 1.4 < 2.0 < ratio(shared)
    assert own.mean() == pytest.approx(shared.mean(), rel=0.05)
    # 400 B puts: 8 us of per-byte work; the byte spread hardly matters.
    small = _puts_of(400, 2000, **kw)
    small_own = _puts_of(400, 2000, byte_cv_ratio=0.1, **kw)
    assert ratio(small_own) == pytest.approx(ratio(small), rel=0.15)
    # Zero CVs everywhere but a byte spread: only the large puts vary.
    only = _puts_of(1e6, 500, byte_cv_ratio=0.5, ns_per_byte=20.0)
    assert ratio(only) > 1.5
    flat = _puts_of(400, 50, byte_cv_ratio=0.5, ns_per_byte=0.0)
    assert flat.std() < 1e-12


def _large_puts(clients: int, n: int, **params) -> np.ndarray:
    """Latencies (s) of ``clients`` closed-loop 1 MB puts, ``n`` each (own keys)."""
    return _closed_loop(clients, n, 1e6, seed=2, quota_bytes=2**50, **params)  # GBs of history


def test_own_byte_spread_is_per_request_so_batches_of_large_puts_narrow():
    # Each member's per-byte work varies on its own: a batch of 8 x 1 MB has CV 0.6 / sqrt(8),
    # so the p99/p50 of 8 puts in flight is well below that of one; with the per-byte work on
    # the batch's apply multiplier (the default), batching does not narrow it.
    kw = dict(fsync_ms=0.1, ns_per_byte=20.0, apply_us_per_request=1.0)

    def ratio(lat: np.ndarray) -> float:
        return float(np.percentile(lat, 99) / np.median(lat))

    own = dict(kw, byte_cv_ratio=0.6)
    one, eight = ratio(_large_puts(1, 1500, **own)), ratio(_large_puts(8, 300, **own))
    assert eight < 2.0 < 3.0 < one
    shared = dict(kw, batch_apply_cv_ratio=0.6)
    assert ratio(_large_puts(8, 300, **shared)) > 3.0


def _gets_closed_loop(p: EtcdParams, clients: int, n: int) -> tuple[float, float]:
    """(throughput /s, mean latency s) of ``clients`` closed-loop serializable gets, ``n``
    each, after one untimed get per client."""
    env = simpy.Environment()
    etcd = EtcdModel(env, p, np.random.default_rng(0))
    lat: list[float] = []
    t0 = {}

    def client():
        yield etcd.range(1, 0, linearizable=False)
        t0.setdefault("t", env.now)
        for _ in range(n):
            lat.append((yield etcd.range(1, 0, linearizable=False)).latency_s)

    for _ in range(clients):
        env.process(client())
    env.run()
    return len(lat) / (env.now - t0["t"]), float(np.mean(lat))


def test_read_front_stage_amortises_its_wakeup_over_the_reads_taken_together():
    # Reads: 50 us RTT, a front stage of 100 us per wakeup + 200 us per read, then a 50 us
    # read service on 8 workers (never the bottleneck).
    p = dataclasses.replace(
        EtcdParams(),
        client_rtt_ms=0.05,
        range_base_us=50.0,
        range_us_per_object=0.0,
        range_ns_per_byte=0.0,
        read_front_us=200.0,
        read_wakeup_us=100.0,
    )
    x1, lat1 = _gets_closed_loop(p, 1, 300)
    assert lat1 == pytest.approx((50 + 100 + 200 + 50) / 1e6)  # every stage once
    # 16 in flight: the wakeup is shared by the reads waiting together, so the throughput
    # approaches 1 / (per-read cost) = 5,000/s, above the 1 / (wakeup + per-read) = 3,333/s
    # a wakeup per read would allow.
    x16, _ = _gets_closed_loop(p, 16, 100)
    assert 1e6 / 300 * 1.25 < x16 < 1e6 / 200
    # The gradual rise the stage exists for: throughput still grows from 4 to 16 in flight.
    x4, _ = _gets_closed_loop(p, 4, 100)
    assert x1 < x4 < x16 and x16 > 1.05 * x4
    # Without the stage (both 0, the default) reads are as before: RTT + service.
    plain = dataclasses.replace(p, read_front_us=0.0, read_wakeup_us=0.0)
    assert EtcdModel(simpy.Environment(), plain).read_front is None
    assert _gets_closed_loop(plain, 1, 10)[1] == pytest.approx(100e-6)


def test_linearizable_reads_cost_read_index_cpu_on_the_workers():
    p = dataclasses.replace(
        EtcdParams(),
        client_rtt_ms=0.1,
        peer_rtt_ms=0.05,
        range_base_us=200.0,
        range_us_per_object=0.0,
        range_ns_per_byte=0.0,
        read_concurrency=1,
        read_sharing="ps",
        read_index_us=100.0,
    )

    def gets(p: EtcdParams, clients: int, lin: bool) -> tuple[float, float]:
        env = simpy.Environment()
        etcd = EtcdModel(env, p)
        lat: list[float] = []

        def client():
            for _ in range(200):
                lat.append((yield etcd.range(1, 0, linearizable=lin)).latency_s)

        for _ in range(clients):
            env.process(client())
        env.run()
        return len(lat) / env.now, float(np.mean(lat))

    # One client: RTT + read-index round + service + its CPU; serializable reads unchanged.
    assert gets(p, 1, True)[1] == pytest.approx((100 + 50 + 200 + 100) / 1e6)
    assert gets(p, 1, False)[1] == pytest.approx((100 + 200) / 1e6)
    # Saturated: linearizable reads share the worker at 300 us each, serializable at 200 us.
    assert gets(p, 32, True)[0] == pytest.approx(1e6 / 300, rel=0.02)
    assert gets(p, 32, False)[0] == pytest.approx(1e6 / 200, rel=0.02)
    # 0 (the default): the read-index round is only a delay.
    plain = dataclasses.replace(p, read_index_us=0.0)
    assert gets(plain, 32, True)[0] == pytest.approx(1e6 / 200, rel=0.04)


def test_wakeup_server_without_wakeup_cost_is_a_fifo_single_server():
    from tracesim.models.etcd import WakeupServer
    from tracesim.models.queueing import FcfsServer

    rng = np.random.default_rng(4)
    arrivals = np.cumsum(rng.exponential(1e-3, 200))
    services = rng.exponential(0.9e-3, 200)

    def run(make):
        env = simpy.Environment()
        server = make(env)
        done = np.zeros(len(arrivals))

        def arrive(i):
            server.submit(services[i], lambda _w, i=i: done.__setitem__(i, env.now))

        for i, t in enumerate(arrivals):
            env.timeout(t).callbacks.append(lambda _e, i=i: arrive(i))
        env.run()
        return done, server

    fifo, _ = run(lambda env: FcfsServer(env, 1))
    wake, server = run(lambda env: WakeupServer(env, 0.0))
    np.testing.assert_allclose(wake, fifo, rtol=0, atol=1e-12)
    assert server.completed == 200 and server.wakeups < 200  # some jobs were taken together
    assert server.busy_area_s() == pytest.approx(services.sum())


_WRITE = st.tuples(
    st.sampled_from(["create", "update", "delete"]),
    st.sampled_from(["pods", "events", "leases"]),
    st.integers(-4, 4),
    st.integers(1, 4000).map(lambda b: b / 2),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_WRITE, min_size=1, max_size=10), min_size=1, max_size=6))
def test_mixed_groups_apply_as_sequential_writes(groups):
    """Groups mixing kinds and ops, with a key written twice: each kind's members in order,
    the same reasons, revisions, object counts and bytes as a dict applied write by write."""
    from tracesim.models.etcd import OPS

    env = simpy.Environment()
    etcd = EtcdModel(env, EtcdParams(key_overhead_bytes=64))
    state: dict[tuple[str, int], float] = {}
    revision = history = 0.0
    for group in groups:
        kinds = np.array([etcd.kind_code(g[1]) for g in group], np.int64)
        ops = np.array([OPS[g[0]] for g in group], np.int8)
        keys = np.array([g[2] for g in group], np.int64)
        sizes = np.array([g[3] for g in group])
        got = np.full(len(group), 255, np.uint8)

        def done(_lat, reasons, members, got=got):
            got[slice(None) if members is None else members] = reasons

        etcd.submit_writes(ops, kinds, keys, sizes, done)
        env.run()
        want = []
        for code in sorted(set(kinds.tolist())):  # kind by kind, member order within
            for i in np.flatnonzero(kinds == code).tolist():
                op, kind, key, size = group[i]
                old = state.get((kind, key))
                if (op == "create") == (old is not None):
                    want.append((i, "already-exists" if old is not None else "not-found"))
                    continue
                revision += 1
                history += 0 if op == "create" else old + (64 if op == "update" else 128)
                if op == "delete":
                    del state[(kind, key)]
                else:
                    state[(kind, key)] = size
        reasons = [REASONS[c] for c in got.tolist()]
        assert [(i, r) for i, r in enumerate(reasons) if r != "ok"] == sorted(want)
        assert etcd.revision == revision
        assert etcd.history_bytes == history
        for kind in ("pods", "events", "leases"):
            mine = [v for (k, _), v in state.items() if k == kind]
            assert etcd.count(kind) == len(mine)
            assert etcd.bytes_of(kind) == sum(mine)


# --------------------------------------------------------------------------- pipelined leader


#: No round trips, per-byte or backend costs: a leader of fsync and apply stages only.
_STAGES_ONLY = dict(
    client_rtt_ms=0.0,
    peer_rtt_ms=0.0,
    ns_per_byte=0.0,
    backend_commit_ms=0.0,
    freelist_ns_per_alloc=0.0,
)


def _stage_loop(
    n_clients: int,
    span_s: float = 1.0,
    seed: int | None = None,
    size_bytes: float = 264.0,
    **params,
):
    """``n_clients`` closed-loop clients on a leader with simple stage costs (no peer round,
    no backend commit cost); (throughput 1/s, mean latency s, members per batch, model)."""
    p = dataclasses.replace(EtcdParams(), **{**_STAGES_ONLY, **params})
    rng = None if seed is None else np.random.default_rng(seed)
    thr, mean, etcd = _run_clients(n_clients, p, span_s, 0.1, size_bytes, rng)
    return thr, mean, etcd.writes_ok / etcd.batches, etcd


def test_pipelined_leader_is_off_by_default():
    assert EtcdParams().apply_pipelined is False
    assert EtcdParams().wal_ns_per_byte == 0.0 and EtcdParams().write_overhead_us == 0.0


def test_single_client_latency_is_the_same_serial_or_pipelined():
    # One put at a time: nothing to overlap, so the stages add up either way.
    kw = dict(fsync_ms=1.0, apply_us_per_request=400.0)
    _, serial, _, _ = _stage_loop(1, **kw)
    _, piped, _, _ = _stage_loop(1, apply_pipelined=True, **kw)
    assert serial == pytest.approx(1.4e-3, rel=1e-9)
    assert piped == pytest.approx(serial, rel=1e-9)


def test_pipelined_two_clients_do_not_wait_for_each_others_apply():
    # apply ~ fsync: the serial leader alternates the two clients' batches (each waits for
    # the other's fsync AND apply); pipelined, one's fsync overlaps the other's apply.
    kw = dict(fsync_ms=1.0, apply_us_per_request=1000.0)
    thr_s, lat_s, _, _ = _stage_loop(2, **kw)
    thr_p, lat_p, _, _ = _stage_loop(2, apply_pipelined=True, **kw)
    assert lat_s == pytest.approx(4e-3, rel=0.02)
    assert lat_p == pytest.approx(2e-3, rel=0.02)
    assert thr_p == pytest.approx(2 * thr_s, rel=0.03)


def test_saturated_throughput_is_batch_over_max_of_stages_not_their_sum():
    f_s, a_s = 1e-3, 100e-6  # fsync per batch, apply per request
    kw = dict(fsync_ms=f_s * 1e3, apply_us_per_request=a_s * 1e6)
    thr_s, _, batch_s, _ = _stage_loop(40, **kw)
    thr_p, _, batch_p, _ = _stage_loop(40, apply_pipelined=True, **kw)
    assert thr_s == pytest.approx(batch_s / (f_s + a_s * batch_s), rel=0.02)
    assert thr_p == pytest.approx(batch_p / max(f_s, a_s * batch_p), rel=0.02)
    assert thr_p > 1.2 * thr_s
    # Pipelined, the WAL stage takes the puts answered one by one during an apply as they
    # come back: its batches stay near fsync / apply (10), the serial leader's hold all 40.
    assert batch_p < 12 < 35 < batch_s


def test_pipelined_utilisation_counts_either_stage_and_queue_counts_both_waits():
    # One client: busy = fsync + apply of each put (the two stages never overlap), as serial.
    kw = dict(fsync_ms=1.0, apply_us_per_request=500.0, client_rtt_ms=0.5)
    _, _, _, serial = _stage_loop(1, **kw)
    _, _, _, piped = _stage_loop(1, apply_pipelined=True, **kw)
    util_s = serial.busy_area_s() / serial.env.now
    assert util_s == pytest.approx(1.5 / 2.0, abs=0.01)
    assert piped.busy_area_s() / piped.env.now == pytest.approx(util_s, abs=1e-6)
    # A burst: the first put is fsynced then waits for the apply stage behind a slow apply.
    env = simpy.Environment()
    p = dataclasses.replace(
        EtcdParams(), apply_pipelined=True, fsync_ms=1.0, peer_rtt_ms=0.0, ns_per_byte=0.0
    )
    p = dataclasses.replace(p, apply_us_per_request=5000.0)
    etcd = EtcdModel(env, p)
    etcd.preload("kv", list(range(3)), 100)
    for i in range(3):
        etcd.write("update", "kv", i, 100)
    env.run(until=0.5e-3)  # batch 1 (1 put) in its fsync, 2 puts pending
    assert etcd.queue_len == 2
    env.run(until=2.5e-3)  # batch 1 applying, batch 2 fsynced and waiting for the apply
    assert etcd.queue_len == 2 and etcd.batches == 2
    assert etcd.busy_area_s() == pytest.approx(2.5e-3)


def test_pipelined_spread_is_deterministic_and_keeps_single_client_draws():
    kw = dict(fsync_ms=1.0, apply_us_per_request=300.0, fsync_cv_ratio=0.8)
    kw.update(batch_apply_cv_ratio=0.5, backend_commit_ms=0.0)
    a = _stage_loop(4, seed=3, apply_pipelined=True, **kw)
    b = _stage_loop(4, seed=3, apply_pipelined=True, **kw)
    c = _stage_loop(4, seed=4, apply_pipelined=True, **kw)
    assert a[:3] == b[:3] and a[:3] != c[:3]
    # One client, no backend commit (a commit blocks only the apply stage when pipelined):
    # the same draws per batch in the same order, so the same latencies.
    kw["backend_commit_interval_ms"] = 1e6
    one_s = _one_client_latencies(500, np.random.default_rng(5), **kw)
    one_p = _one_client_latencies(500, np.random.default_rng(5), apply_pipelined=True, **kw)
    np.testing.assert_allclose(one_p, one_s, rtol=1e-12)


def test_wal_bytes_overlap_the_apply_bytes_when_pipelined():
    # ~1 MB puts, per-byte work split between the stages: 2 in flight are answered in about
    # the single-client latency at twice the throughput, where the serial leader queues them.
    kw = dict(fsync_ms=0.1, apply_us_per_request=10.0, ns_per_byte=10.0, wal_ns_per_byte=10.0)
    kw["size_bytes"] = 1e6
    kw["span_s"] = 2.0
    thr1, lat1, _, _ = _stage_loop(1, apply_pipelined=True, **kw)
    thr2, lat2, _, _ = _stage_loop(2, apply_pipelined=True, **kw)
    thr_s1, lat_s1, _, _ = _stage_loop(1, **kw)
    thr_s2, _, _, _ = _stage_loop(2, **kw)
    assert lat1 == pytest.approx(20.2e-3, rel=0.01) and lat_s1 == pytest.approx(lat1, rel=1e-9)
    assert lat2 == pytest.approx(lat1, rel=0.05) and thr2 == pytest.approx(2 * thr1, rel=0.05)
    assert thr_s2 < 1.1 * thr_s1


def test_write_overhead_delays_a_write_without_occupying_the_leader():
    kw = dict(fsync_ms=1.0, apply_us_per_request=200.0)
    _, lat0, _, e0 = _stage_loop(1, **kw)
    _, lat1, _, e1 = _stage_loop(1, write_overhead_us=800.0, **kw)
    assert lat1 == pytest.approx(lat0 + 0.8e-3, rel=1e-9)
    # The leader is busy 1.2 ms per 2.0 ms cycle instead of all the time.
    assert e0.busy_area_s() / e0.env.now == pytest.approx(1.0, abs=0.01)
    assert e1.busy_area_s() / e1.env.now == pytest.approx(1.2 / 2.0, abs=0.01)


def _closed_loop(clients: int, n: int, size_bytes: float, seed: int, **params) -> np.ndarray:
    """Latencies (s) of ``clients`` closed-loop puts of ``size_bytes``, ``n`` each (own keys),
    on a model with ``params`` drawing from ``seed``."""
    env = simpy.Environment()
    etcd = EtcdModel(env, dataclasses.replace(EtcdParams(), **params), np.random.default_rng(seed))
    etcd.preload("kv", list(range(clients)), size_bytes)
    lats: list[float] = []

    def client(i):
        for _ in range(n):
            res = yield etcd.write("update", "kv", i, size_bytes)
            assert res.ok
            lats.append(res.latency_s)

    for i in range(clients):
        env.process(client(i))
    env.run()
    return np.asarray(lats)


def _closed_loop_latencies(clients: int, n: int, size_bytes: float, **params) -> np.ndarray:
    """:func:`_closed_loop` on a model without backend commit cost (so only what ``params``
    add varies)."""
    quiet = dict(backend_commit_ms=0.0, freelist_ns_per_alloc=0.0, quota_bytes=2**50)
    return _closed_loop(clients, n, size_bytes, seed=3, **{**quiet, **params})


def test_apply_stalls_meet_a_batch_at_their_rate_and_add_their_mean():
    # One client, 2 ms of apply per put: a batch meets a stall with probability
    # 1 - exp(-50/s x 2 ms) = 9.5%, and the stalls add 50/s x 2 ms x 4 ms = 0.4 ms per put.
    kw = dict(apply_us_per_request=2000.0, ns_per_byte=0.0, fsync_ms=0.5)
    flat = _closed_loop_latencies(1, 6000, 400, **kw)
    assert flat.std() < 1e-12  # nothing else varies
    stalled = _closed_loop_latencies(1, 6000, 400, stall_per_s=50.0, stall_ms=4.0, **kw)
    extra_s = stalled - flat[0]
    assert (extra_s > 1e-9).mean() == pytest.approx(1 - np.exp(-0.1), abs=0.015)
    assert extra_s.mean() == pytest.approx(0.4e-3, rel=0.25)
    assert extra_s.min() > -1e-12  # a stall only delays


def test_apply_stalls_average_out_over_large_batches_where_a_batch_multiplier_does_not():
    # The same stalls give one client a long tail (a 4 ms stall on a ~1 ms put) and 128
    # clients a narrower one (batches of ~128 x 0.2 ms meet a few stalls each, whose sum
    # varies less relative to the batch); a per-batch apply multiplier stretches a large
    # batch as much as a small one, and its waiters with it: its tail widens under load.
    kw = dict(apply_us_per_request=200.0, ns_per_byte=0.0, fsync_ms=0.5)

    def ratio(clients: int, n: int, **params) -> float:
        lat = _closed_loop_latencies(clients, n, 400, **kw, **params)
        return float(np.percentile(lat, 99) / np.median(lat))

    stalls = dict(stall_per_s=100.0, stall_ms=4.0)
    one, saturated = ratio(1, 3000, **stalls), ratio(128, 100, **stalls)
    assert saturated < 0.75 * one and one > 2.5
    mult = dict(batch_apply_cv_ratio=0.8)
    assert ratio(128, 100, **mult) > 2.0 * ratio(1, 3000, **mult)
    assert ratio(128, 100, **mult) > 2.0 * saturated


def test_apply_stalls_are_off_by_default_and_do_not_move_the_other_draws():
    assert EtcdParams().stall_per_s == 0.0 and EtcdParams().stall_ms == 0.0
    kw = dict(fsync_cv_ratio=0.5, batch_apply_cv_ratio=0.3, ns_per_byte=20.0)
    base = _closed_loop_latencies(4, 300, 16_000, **kw)
    # A duration without a rate draws nothing.
    np.testing.assert_array_equal(base, _closed_loop_latencies(4, 300, 16_000, stall_ms=5.0, **kw))
    # Stalls draw from their own stream: a rate too low to ever stall leaves every other
    # draw (disk, apply) where it was.
    rare = _closed_loop_latencies(4, 300, 16_000, stall_per_s=1e-6, stall_ms=5.0, **kw)
    np.testing.assert_allclose(rare, base, rtol=0, atol=1e-12)


def test_backend_commit_cost_grows_with_the_bytes_it_writes():
    # 50 creates of 16 kB, then the commit 100 ms later: with 10 ns per byte it takes
    # 10 ns x (50 x (16,000 + key overhead)) longer than without.
    def commit_s(ns: float) -> tuple[float, int]:
        env = simpy.Environment()
        p = dataclasses.replace(EtcdParams(), backend_commit_ns_per_byte=ns)
        etcd = EtcdModel(env, p)
        etcd.submit_writes("create", "kv", list(range(50)), np.full(50, 16_000.0))
        env.run(until=0.5)
        return etcd.commit_time_s, etcd.commits

    (plain, n0), (costly, n1) = commit_s(0.0), commit_s(10.0)
    assert n0 == n1 == 1
    written = 50 * (16_000 + EtcdParams().key_overhead_bytes)
    assert costly - plain == pytest.approx(written * 10e-9, rel=1e-9)
    assert EtcdParams().backend_commit_ns_per_byte == 0.0


# ------------------------------------------------------------------ the shared CPU pool

_POOL = dict(
    fsync_ms=0.2,
    front_cpu_us=100.0,
    wal_cpu_us_per_batch=300.0,
    wal_cpu_us_per_entry=100.0,
    apply_us_per_request=50.0,
)


def test_cpu_pool_is_off_by_default_and_then_changes_nothing():
    assert EtcdParams().cpu_cores == 0
    # The pool's parameters without cores are not used: the model of before, bit for bit.
    plain = _stage_loop(8, apply_pipelined=True, fsync_ms=0.2, apply_us_per_request=50.0)
    unused = _stage_loop(8, apply_pipelined=True, **_POOL, cpu_cv_ratio=0.5)
    assert plain[:3] == unused[:3]
    assert plain[3].cpu is None


@pytest.mark.parametrize("pipelined", [False, True])
def test_lone_write_on_the_cpu_pool_takes_the_sum_of_its_stages(pipelined):
    # Nothing shares the cores: front + fsync + raft's CPU + apply, one after another.
    _, lat, batch, etcd = _stage_loop(1, cpu_cores=2, apply_pipelined=pipelined, **_POOL)
    assert lat == pytest.approx((100 + 200 + 300 + 100 + 50) * 1e-6, rel=1e-9)
    assert batch == pytest.approx(1.0, rel=0.01)  # (the last batch, still in flight, counts)
    # The pool was busy for all but the fdatasync: 550 of every 750 us, on one of 2 cores.
    assert etcd.cpu.busy_area_s() / 2 / etcd.env.now == pytest.approx(550 / 750 / 2, rel=0.02)


def test_cpu_pool_slows_every_stage_as_it_fills():
    # With one core, the writes in flight share it: the saturated throughput is the core's
    # (one core-second of work per second) and batches grow to amortise raft's per-batch CPU.
    kw = dict(apply_pipelined=True, **_POOL)
    thr, _, batch, _ = _stage_loop(32, cpu_cores=1, **kw)
    per_write_s = (100 + 100 + 50) * 1e-6 + 300e-6 / batch
    assert thr == pytest.approx(1 / per_write_s, rel=0.03)
    assert batch > 2
    # Twice the cores: more throughput, and the CPU is then not the only limit.
    thr2, _, _, _ = _stage_loop(32, cpu_cores=2, **kw)
    assert thr < thr2 < 2.05 * thr
    # Without the pool, the same work as plain delays does not contend at all.
    thr_free, _, _, _ = _stage_loop(32, cpu_cores=0, **kw)
    assert thr_free > thr2


def _two_puts_on_the_pool(**params) -> dict[str, float]:
    """Put ``a`` (an empty value: 100 us of front work) at t = 0 and put ``b`` (16 kB: 1 ms
    of front work) at 150 us on a 2-core pool; each put's latency (s)."""
    p = dataclasses.replace(
        EtcdParams(),
        apply_pipelined=True,
        cpu_cores=2,
        client_rtt_ms=0.0,
        peer_rtt_ms=0.0,
        fsync_ms=0.2,
        front_cpu_us=100.0,
        front_cpu_ns_per_byte=900e3 / 16_000,  # b's front work: 100 + 900 us
        apply_us_per_request=50.0,
        ns_per_byte=0.0,
        backend_commit_ms=0.0,
        **params,
    )
    env = simpy.Environment()
    etcd = EtcdModel(env, p)
    lat: dict[str, float] = {}

    def put(name: str, size: float) -> None:
        etcd.submit_writes(
            "create", "kv", [name], np.array([size]), lambda la, _r, _m: lat.update({name: la[0]})
        )

    put("a", 0.0)
    call_later(env, 150e-6, put, "b", 16_000.0)
    env.run(until=0.1)
    return lat


def test_fsync_wakeup_waits_behind_the_outstanding_front_work():
    # a: front 0-100 us, fdatasync 100-300 us, then raft's CPU and its apply (50 us). At
    # 300 us b's front work (1 ms from 150 us, on its own core) has 850 us to go.
    assert EtcdParams().fsync_wakeup_front_ratio == 0.0
    plain = _two_puts_on_the_pool()
    assert plain["a"] == pytest.approx(350e-6, rel=1e-9)
    # Waiting behind it: ratio x 850 us of work, at most fsync_wakeup_max_ms, before a's
    # apply (both jobs have a core each, so the wait runs at full speed).
    half = _two_puts_on_the_pool(fsync_wakeup_front_ratio=0.5, fsync_wakeup_max_ms=10.0)
    assert half["a"] == pytest.approx((300 + 425 + 50) * 1e-6, rel=1e-9)
    capped = _two_puts_on_the_pool(fsync_wakeup_front_ratio=3.0, fsync_wakeup_max_ms=0.6)
    assert capped["a"] == pytest.approx((300 + 600 + 50) * 1e-6, rel=1e-9)
    # b's own fdatasync finds no front work outstanding: it waits for nothing.
    assert half["b"] - plain["b"] < half["a"] - plain["a"]
    assert _two_puts_on_the_pool(fsync_wakeup_front_ratio=3.0, fsync_wakeup_max_ms=0.0) == plain


def test_fsync_wakeup_slows_large_puts_in_flight_and_leaves_a_lone_one():
    kw = dict(apply_pipelined=True, cpu_cores=2, **_POOL, front_cpu_ns_per_byte=20.0)
    wait = dict(fsync_wakeup_front_ratio=3.0, fsync_wakeup_max_ms=1.5)
    # One put in flight: its front work is done before its fdatasync, nothing to wait for.
    assert _stage_loop(1, **kw, **wait)[:3] == _stage_loop(1, **kw)[:3]
    # Eight 16 kB puts (320 us of front work each): the WAL stage waits behind them, so
    # each batch takes longer, carries more puts, and the puts take longer.
    thr0, lat0, batch0, _ = _stage_loop(8, size_bytes=16_000.0, **kw)
    thr1, lat1, batch1, _ = _stage_loop(8, size_bytes=16_000.0, **kw, **wait)
    assert lat1 > 1.1 * lat0 and thr1 < thr0 and batch1 > batch0


def test_cpu_spread_is_deterministic_keeps_the_mean_and_leaves_the_other_draws():
    kw = dict(apply_pipelined=True, cpu_cores=2, fsync_cv_ratio=0.3, **_POOL)
    a = _stage_loop(1, seed=3, span_s=2.0, cpu_cv_ratio=0.8, **kw)
    b = _stage_loop(1, seed=3, span_s=2.0, cpu_cv_ratio=0.8, **kw)
    assert a[:3] == b[:3]
    flat = _stage_loop(1, seed=3, span_s=2.0, **kw)
    assert a[1] == pytest.approx(flat[1], rel=0.08)  # mean-one multipliers
    assert a[1] != flat[1]


def test_pool_pauses_add_their_expected_time_to_a_lone_job():
    # 1 ms jobs one after another with pauses at 100 per busy second of 2 ms mean: each job
    # meets 0.1 pauses on average, so it takes 1 + 0.1 x 2 = 1.2 ms (Poisson arrivals,
    # exponential durations). Idle time draws no pause, and the run ends when the work does.
    def mean_latency_s(seed: int) -> tuple[float, float]:
        env = simpy.Environment()
        ps = PsServer(env, 2)
        ps.set_pauses(100.0, 2e-3, np.random.default_rng(seed))
        lat: list[float] = []

        def go() -> None:
            t0 = env.now

            def done(_wait_s: float) -> None:
                lat.append(env.now - t0)
                if len(lat) < 20_000:
                    go()

            ps.submit(1e-3, done)

        go()
        env.run()
        return float(np.mean(lat)), ps.busy_area_s()

    mean_s, busy_s = mean_latency_s(1)
    assert mean_s == pytest.approx(1.2e-3, rel=0.03)
    assert busy_s == pytest.approx(20_000 * 1e-3, rel=1e-9)  # a pause is not work
    assert mean_latency_s(1) == (mean_s, busy_s)  # deterministic under its stream


def test_pool_pauses_are_off_without_both_parameters_and_leave_the_other_draws():
    kw = dict(apply_pipelined=True, cpu_cores=2, fsync_cv_ratio=0.3, cpu_cv_ratio=0.5, **_POOL)
    base = _stage_loop(4, seed=3, span_s=1.0, **kw)
    assert base[:3] == _stage_loop(4, seed=3, span_s=1.0, cpu_pause_ms=5.0, **kw)[:3]
    rare = _stage_loop(4, seed=3, span_s=1.0, cpu_pause_per_s=1e-6, cpu_pause_ms=5.0, **kw)
    assert rare[:3] == base[:3]  # their own stream: nothing else moves
    paused = _stage_loop(4, seed=3, span_s=1.0, cpu_pause_per_s=200.0, cpu_pause_ms=2.0, **kw)
    assert paused[1] > base[1] * 1.2  # pauses lengthen the latency


@pytest.mark.parametrize("cpu_cores", [0, 1])
def test_a_batch_answers_each_request_as_its_entry_is_applied(cpu_cores):
    # etcd's apply loop triggers each request's waiter as its entry is applied: a batch of a
    # 3-member group and a lone write, behind a first batch, answers them one by one.
    f_s, a_s = 1e-3, 100e-6
    kw = dict(_STAGES_ONLY, fsync_ms=f_s * 1e3, apply_us_per_request=a_s * 1e6, cpu_cores=cpu_cores)
    env = simpy.Environment()
    etcd = EtcdModel(env, dataclasses.replace(EtcdParams(), **kw))
    etcd.preload("kv", list(range(5)), 100)
    answers = []

    def done(name):
        return lambda lat, reasons, _m: answers.append((name, env.now, lat.tolist()))

    sizes = np.array([100.0])
    etcd.submit_writes("update", "kv", [0], sizes, done("first"))
    etcd.submit_writes("update", "kv", [1, 2, 3], np.full(3, 100.0), done("group"))
    etcd.submit_writes("update", "kv", [4], sizes, done("lone"))
    env.run()
    start = f_s + a_s  # the first batch's end: the second batch's WAL starts
    expect = [
        ("first", start, [start]),
        ("group", start + f_s + 3 * a_s, [start + f_s + a_s * k for k in (1, 2, 3)]),
        ("lone", start + f_s + 4 * a_s, [start + f_s + 4 * a_s]),
    ]
    assert [a[0] for a in answers] == [e[0] for e in expect]
    for (_, t, lat), (_, t_e, lat_e) in zip(answers, expect, strict=True):
        assert t == pytest.approx(t_e, rel=1e-9)
        assert lat == pytest.approx(lat_e, rel=1e-9)
    assert etcd.batches == 2 and etcd.revision == 5 + 5


def test_backend_commit_timer_restarts_when_a_commit_ends():
    # etcd's backend resets its commit timer after each commit: commits of 5 ms every 100 ms
    # run at 0.1-0.105 s and 0.205-0.21 s, so a write at 0.2025 s meets none (timed from
    # the commits' starts, the second would run from 0.2 s and hold that write 2.5 ms).
    kw = dict(
        _STAGES_ONLY,
        backend_commit_ms=5.0,
        backend_commit_interval_ms=100.0,
        fsync_ms=1.0,
        apply_us_per_request=10.0,
    )
    env = simpy.Environment()
    etcd = EtcdModel(env, dataclasses.replace(EtcdParams(), **kw))
    etcd.preload("kv", [0, 1, 2], 100)
    lats: dict[float, float] = {}

    def write_at(t: float, key: int):
        yield env.timeout(t)
        res = yield etcd.write("update", "kv", key, 100)
        lats[t] = res.latency_s

    for key, t in enumerate((0.0, 0.15, 0.2025)):
        env.process(write_at(t, key))
    env.run()
    lone = 1e-3 + 10e-6
    assert list(lats.values()) == pytest.approx([lone] * 3, rel=1e-9)
    assert etcd.commits == 2
    assert etcd.commit_time_s == pytest.approx(10e-3, rel=1e-9)
