"""Knee detection on constructed curves: known breaks, SLO crossings, and curves with none."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tracesim.analysis.knee import (
    aggregate,
    describe,
    find_knee,
    replicate_noise,
    shape_knee,
    slo_crossing,
)

SWEEP_SIZES = np.array([1000, 2000, 5000, 10000, 20000], float)


def _sizes(n: int, uneven: float, seed: int) -> np.ndarray:
    """``n`` sorted distinct sizes over [1, 100]: even, or jittered by up to ``uneven``
    of the spacing."""
    x = np.linspace(1.0, 100.0, n)
    gap = x[1] - x[0]
    rng = np.random.default_rng(seed)
    x[1:-1] += rng.uniform(-uneven, uneven, n - 2) * gap / 2
    return x


def _hinge(x: np.ndarray, base: float, before: float, after: float, k: float) -> np.ndarray:
    return base + before * x + (after - before) * np.maximum(0.0, x - k)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(6, 20),
    uneven=st.floats(0.0, 0.8),
    seed=st.integers(0, 2**16),
    where=st.floats(0.0, 1.0),
    base=st.floats(0.1, 10.0),
    before=st.floats(0.0, 0.05),
    ratio=st.floats(20.0, 200.0),
)
def test_piecewise_linear_break_is_found_exactly(n, uneven, seed, where, base, before, ratio):
    x = _sizes(n, uneven, seed)
    k = x[1] + where * (x[-2] - x[1])
    after = max(before, 0.01) * ratio
    # The detector's contract: a bend counts when the curve rises past it by at least
    # min_rise (0.25) x its value at the bend.
    assume((after - before) * (x[-1] - k) >= 0.3 * (base + before * k))
    knee = shape_knee(x, _hinge(x, base, before, after, k))
    assert knee.kind == "shape"
    assert knee.size == pytest.approx(k, abs=0.01 * (x[-1] - x[0]))
    assert knee.slope_after > knee.slope_before


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(8, 20),
    seed=st.integers(0, 2**16),
    where=st.floats(0.0, 1.0),
    base=st.floats(0.5, 10.0),
    after=st.floats(0.5, 5.0),
    noise=st.floats(0.0, 0.03),
)
def test_break_is_found_within_tolerance_with_noise(n, seed, where, base, after, noise):
    """Bounded noise of up to 3 % of the bend's height, at least three sizes on each side of
    the break: the break moves by at most two size steps."""
    x = _sizes(n, 0.0, seed)
    k = x[3] + where * (x[-4] - x[3])
    clean = _hinge(x, base, 0.01, after, k)
    height = after * (x[-1] - k)
    rng = np.random.default_rng(seed)
    y = clean + rng.uniform(-1, 1, n) * noise * height
    knee = shape_knee(x, y)
    assert knee.kind == "shape", knee.note
    assert abs(knee.size - k) <= 2 * (x[1] - x[0])


@settings(max_examples=100, deadline=None)
@given(
    y0=st.floats(0.0, 1.0),
    slope=st.floats(0.01, 10.0),
    threshold_at=st.floats(0.02, 0.98),
    n=st.integers(2, 12),
)
def test_slo_crossing_is_interpolated(y0, slope, threshold_at, n):
    """On a line, the interpolated crossing is exact wherever the threshold falls."""
    x = np.linspace(1000.0, 20000.0, n)
    y = y0 + slope * (x - x[0]) / 1000
    threshold = y[0] + threshold_at * (y[-1] - y[0])
    knee = slo_crossing(x, y, threshold)
    expected = x[0] + (threshold - y0) / slope * 1000
    assert knee.kind == "slo"
    assert knee.size == pytest.approx(expected, rel=1e-9)
    assert x[knee.index - 1] <= knee.size <= x[knee.index]
    assert y[knee.index] > threshold >= y[knee.index - 1]


def test_slo_crossing_edges() -> None:
    y = np.array([0.2, 0.4, 0.8, 1.6, 3.2])
    # Already above at the smallest size.
    knee = slo_crossing(SWEEP_SIZES, y, 0.1)
    assert knee.kind == "slo" and knee.at_smallest and knee.size == 1000
    # Never above: no SLO knee; exactly at the threshold is a pass.
    assert not slo_crossing(SWEEP_SIZES, y, 3.2).found
    # The first crossing counts, even if a later size dips below again.
    knee = slo_crossing(SWEEP_SIZES, np.array([0.2, 1.5, 0.5, 2.0, 3.0]), 1.0)
    assert knee.index == 1 and 1000 < knee.size < 2000


def test_seeds_are_aggregated_by_median() -> None:
    sizes = np.repeat(SWEEP_SIZES, 3)
    values = np.array([1, 1, 100, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5], float)
    x, y = aggregate(sizes, values)
    assert list(x) == list(SWEEP_SIZES) and list(y) == [1, 2, 3, 4, 5]
    # The outlier seed does not make a knee at the smallest size.
    assert slo_crossing(sizes, values, 1.5).index == 1
    assert replicate_noise(SWEEP_SIZES, y) is None
    assert replicate_noise(sizes, values) == 0.0


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(5, 20),
    uneven=st.floats(0.0, 0.8),
    seed=st.integers(0, 2**16),
    intercept=st.floats(-100.0, 100.0),
    slope=st.floats(-50.0, 50.0),
)
def test_straight_lines_have_no_knee(n, uneven, seed, intercept, slope):
    x = _sizes(n, uneven, seed) * 200
    y = intercept + slope * x
    for direction in ("up", "down", "any"):
        assert not shape_knee(x, y, direction=direction).found
    assert not find_knee(x, y).found


@settings(max_examples=50, deadline=None)
@given(n=st.integers(5, 20), value=st.floats(-1e6, 1e6))
def test_constant_curves_have_no_knee(n, value):
    x = np.linspace(1000, 20000, n)
    knee = find_knee(x, np.full(n, value), threshold=abs(value) + 1)
    assert not knee.found
    assert "no knee" in describe(knee, "p99 latency", "s")


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(5, 20),
    seed=st.integers(0, 2**16),
    level=st.floats(0.01, 1000.0),
    noise=st.floats(0.0, 0.05),
    reps=st.integers(1, 3),
)
def test_noisy_flat_curves_have_no_false_knee(n, seed, level, noise, reps):
    """Bounded noise of up to 5 % around a constant, one or several seeds per size."""
    rng = np.random.default_rng(seed)
    x = np.repeat(np.linspace(1000, 20000, n), reps)
    y = level * (1 + rng.uniform(-noise, noise, len(x)))
    knee = find_knee(x, y)
    assert not knee.found, knee


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(5, 20),
    seed=st.integers(0, 2**16),
    intercept=st.floats(1.0, 100.0),
    slope=st.floats(0.0, 5.0),
    noise=st.floats(0.0, 0.02),
)
def test_noisy_lines_have_no_false_knee(n, seed, intercept, slope, noise):
    """Bounded noise of up to 2 % of the curve's value around a rising line."""
    rng = np.random.default_rng(seed)
    x = np.linspace(1.0, 100.0, n)
    clean = intercept + slope * x
    y = clean * (1 + rng.uniform(-noise, noise, n))
    assert not shape_knee(x, y).found


def test_typical_sweep_hockey_stick_and_sentences() -> None:
    """Five sizes as a user sweeps them: flat latency, then saturation past ~7,000 nodes."""
    y = _hinge(SWEEP_SIZES, 0.05, 1e-6, 4e-4, 7000)
    knee = find_knee(SWEEP_SIZES, y, threshold=1.0)
    assert knee.kind == "slo"
    y5k, y10k = y[2], y[3]
    assert knee.size == pytest.approx(5000 + (1.0 - y5k) / (y10k - y5k) * 5000)
    text = describe(knee, "p99 pod scheduling latency", "s")
    assert f"breaks the 1 s SLO at about {knee.size:,.0f} nodes" in text
    # A threshold it never reaches: the shape knee instead, near the real break.
    knee = find_knee(SWEEP_SIZES, y, threshold=100.0)
    assert knee.kind == "shape" and 5000 <= knee.size <= 10000
    assert "bends upward" in describe(knee, "p99 latency", "s")
    # Levelling off is a knee only when asked for.
    sat = _hinge(SWEEP_SIZES, 0.0, 1e-3, 1e-6, 6000)
    assert not shape_knee(SWEEP_SIZES, sat).found
    assert shape_knee(SWEEP_SIZES, sat, direction="down").kind == "shape"
    with pytest.raises(ValueError):
        shape_knee(SWEEP_SIZES, sat, direction="sideways")


def test_too_few_sizes_and_nans() -> None:
    x = np.array([1000, 2000, 5000, 10000.0])
    knee = shape_knee(x, np.array([1, 1, 1, 100.0]))
    assert not knee.found and "too few" in knee.note
    # NaNs (runs whose metric is missing) are dropped, not propagated.
    y = np.array([1, np.nan, 1, 1, 1, 50, 100, 150.0])
    xs = np.linspace(1000, 8000, 8)
    assert shape_knee(xs, y).kind == "shape"
