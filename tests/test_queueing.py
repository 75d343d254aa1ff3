"""The SimPy server primitive against queueing theory's closed forms (M/M/1, M/D/1, M/M/2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from tracesim.models.queueing import FcfsServer


def run_station(
    lam: float, service: np.ndarray, capacity: int = 1, seed: int = 7
) -> tuple[np.ndarray, FcfsServer, float]:
    """Poisson arrivals at rate ``lam`` to an FcfsServer; per-job waits, the server, end time."""
    rng = np.random.default_rng(seed)
    n = len(service)
    gaps = rng.exponential(1.0 / lam, n)
    env = simpy.Environment()
    server = FcfsServer(env, capacity)
    waits = np.full(n, np.nan)

    def arrivals():
        for i in range(n):
            yield env.timeout(gaps[i])
            server.submit(float(service[i]), lambda w, i=i: waits.__setitem__(i, w))

    env.process(arrivals())
    env.run()
    return waits, server, env.now


N = 120_000
WARMUP = 5_000


def test_mm1_mean_wait_matches_closed_form():
    lam, mu = 0.5, 1.0
    service = np.random.default_rng(1).exponential(1.0 / mu, N)
    waits, server, end = run_station(lam, service)
    rho = lam / mu
    expected = rho / (mu - lam)  # M/M/1 mean wait in queue
    measured = waits[WARMUP:].mean()
    assert measured == pytest.approx(expected, rel=0.05)
    # Utilisation from the busy-time integral is the offered load.
    assert server.busy_area_s() / end == pytest.approx(rho, rel=0.03)
    # Little's law on the queue: mean queue length = lambda * mean wait.
    assert server.queue_area_s() / end == pytest.approx(lam * waits.mean(), rel=0.03)


def test_md1_mean_wait_matches_closed_form_and_is_half_of_mm1():
    lam, d = 0.5, 1.0
    waits, _, _ = run_station(lam, np.full(N, d))
    rho = lam * d
    expected = rho * d / (2 * (1 - rho))  # Pollaczek-Khinchine with zero service variance
    assert waits[WARMUP:].mean() == pytest.approx(expected, rel=0.05)


def test_mm2_mean_wait_matches_erlang_c():
    lam, mu, c = 1.5, 1.0, 2
    service = np.random.default_rng(2).exponential(1.0 / mu, N)
    waits, server, _ = run_station(lam, service, capacity=c)
    a = lam / mu
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    expected = p_wait / (c * mu - lam)
    assert waits[WARMUP:].mean() == pytest.approx(expected, rel=0.06)
    assert server.completed == N


def test_every_job_completes_and_fcfs_order_holds():
    service = np.random.default_rng(3).exponential(1.0, 5_000)
    waits, server, _ = run_station(0.9, service)
    assert not np.isnan(waits).any()
    assert server.completed == 5_000 and server.queue_len == 0 and server.in_service == 0


def test_deterministic_under_seed():
    service = np.random.default_rng(4).exponential(1.0, 3_000)
    a, _, _ = run_station(0.8, service, seed=11)
    b, _, _ = run_station(0.8, service, seed=11)
    c, _, _ = run_station(0.8, service, seed=12)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_serve_event_for_processes():
    env = simpy.Environment()
    server = FcfsServer(env, 1)
    out = []

    def job(service):
        wait = yield server.serve(service)
        out.append((env.now, wait))

    env.process(job(2.0))
    env.process(job(1.0))
    env.run()
    assert out == [(2.0, 0.0), (3.0, 2.0)]
