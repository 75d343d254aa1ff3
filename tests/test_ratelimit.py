"""Client-side token bucket (client-go flowcontrol semantics): burst first, then QPS."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from tracesim.models.params import load_profile
from tracesim.models.ratelimit import TokenBucket


def test_burst_is_immediate_then_requests_are_spaced_at_qps():
    bucket = TokenBucket(qps=50, burst=100)
    times = bucket.admit_times(np.zeros(300))
    assert np.all(times[:100] == 0.0)
    gaps = np.diff(times[100:])
    assert gaps == pytest.approx(np.full(199, 1 / 50))
    assert times[100] == pytest.approx(1 / 50)
    # 300 requests at once: 100 free, the other 200 take 200 / 50 = 4 s.
    assert times[-1] == pytest.approx(4.0)


def test_bucket_refills_while_idle_up_to_burst_only():
    bucket = TokenBucket(qps=10, burst=5)
    assert bucket.admit_times(np.zeros(5)).max() == 0.0
    # After 0.3 s idle, 3 tokens are back: 3 immediate, the 4th waits 0.1 s.
    t = bucket.admit_times(np.full(4, 0.3))
    assert t[:3] == pytest.approx([0.3] * 3)
    assert t[3] == pytest.approx(0.4)
    # A long idle refills to burst, never beyond.
    t = bucket.admit_times(np.full(7, 100.0))
    assert np.count_nonzero(t == 100.0) == 5


def test_sustained_rate_never_exceeds_qps_plus_burst():
    rng = np.random.default_rng(0)
    arrivals = np.sort(rng.uniform(0, 10, 2_000))  # 200/s offered against 50 QPS
    bucket = TokenBucket(qps=50, burst=100)
    admitted = bucket.admit_times(arrivals)
    assert np.all(admitted >= arrivals)
    assert np.all(np.diff(admitted) >= -1e-12)  # FIFO
    for t in (1.0, 5.0, 20.0):
        assert np.count_nonzero(admitted <= t) <= 100 + 50 * t + 1e-9


def test_wait_in_a_simpy_process_uses_the_scheduler_profile():
    prof = load_profile("2019-era")
    bucket = TokenBucket(prof.scheduler.client_qps, prof.scheduler.client_burst)
    env = simpy.Environment()
    done = []

    def binder(i):
        yield bucket.wait(env)
        done.append(env.now)

    for i in range(150):
        env.process(binder(i))
    env.run()
    assert sorted(done)[99] == 0.0
    assert max(done) == pytest.approx(50 / prof.scheduler.client_qps)


def test_rejects_nonsense_configuration():
    with pytest.raises(ValueError):
        TokenBucket(qps=0, burst=1)
    with pytest.raises(ValueError):
        TokenBucket(qps=1, burst=0)
