"""Seeded, vectorised random draws: uids, name suffixes, arrival processes, lognormals."""

from __future__ import annotations

import math

import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_DIGITS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def _uids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random version-4 UUID strings (from the seeded generator, not the OS)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nibbles = np.stack([raw >> 4, raw & 0x0F], axis=2).reshape(n, 32)
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGITS] = _HEX[nibbles]
    return text.view("S36").ravel().astype("U36").astype(object)


_ALNUM = np.array(list("bcdfghjklmnpqrstvwxz2456789"))  # the alphabet of k8s name suffixes


def _suffixes(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    letters = _ALNUM[rng.integers(0, len(_ALNUM), size=(n, length))]
    return np.array(["".join(row) for row in letters], dtype=object)


def _daily_factor(t_s: np.ndarray, start_s: float, amplitude: float) -> np.ndarray:
    """Arrival-rate multiplier in [1 - a, 1 + a], peaking at 14:00 UTC."""
    hour = ((start_s + t_s) % 86_400.0) / 3600.0
    return 1.0 + amplitude * np.cos((hour - 14.0) / 24.0 * 2.0 * math.pi)


def _nhpp(
    rng: np.random.Generator, rate_s: float, duration_s: float, start_s: float, amplitude: float
) -> np.ndarray:
    """Arrival times (s, sorted) of a Poisson process with the daily pattern (by thinning)."""
    peak = rate_s * (1.0 + amplitude)
    n = rng.poisson(peak * duration_s)
    t = np.sort(rng.uniform(0.0, duration_s, size=n))
    keep = rng.uniform(0.0, 1.0 + amplitude, size=n) < _daily_factor(t, start_s, amplitude)
    return t[keep]


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    return median * np.exp(sigma * rng.standard_normal(n))
