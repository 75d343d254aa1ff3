"""Knees of sweep curves: where a metric, as a function of cluster size, breaks.

Two kinds of knee, tried in this order by :func:`find_knee`:

1. **SLO knee**: the first size at which the curve crosses an SLO threshold (from at or below
   to above), interpolated linearly between the last passing and the first failing size. A
   curve already above the threshold at its smallest size breaks "at or below" that size.
2. **Shape knee**, for curves that never cross: the break point of the best continuous
   two-segment (hinge) fit ``y = a + b x + c max(0, x - k)``, searched over ``k`` between the
   second and the second-to-last size. The hinge must (a) bend the way asked (upward by
   default: the slope grows, as latency and queues do when a component saturates), (b) bend
   by at least ``min_rise`` of the curve's level (the bend's height at the largest size,
   ``|c| (x_max - k)``, over the median ``|y|``), and (c) stand out of the noise: the bend's
   height must exceed ``noise_sigmas`` times a robust noise estimate (the median absolute
   deviation of each point from the line through its two neighbours, which a single bend
   barely touches). A straight line, a constant and a noisy flat curve have no knee.

With several values per size (seeds), the median per size is used. Fitting is in linear size
and value: a straight line of any slope is "no knee", and a hockey stick breaks where it
bends. Five or more distinct sizes are needed for a shape knee (the hinge has four
parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_POINTS_SHAPE = 5
#: Candidate break points per unit of the normalised size range (then refined locally).
GRID_POINTS = 400


@dataclass(frozen=True)
class Knee:
    """A curve's knee. ``kind``: ``"slo"`` (threshold crossed), ``"shape"`` (a bend) or
    ``None`` (no knee). ``size`` is in the curve's size unit (nodes), interpolated; ``index``
    is the first measured size at or after the knee."""

    kind: str | None
    size: float | None
    index: int | None = None
    threshold: float | None = None
    #: for ``slo``: the curve is above the threshold already at its smallest size
    at_smallest: bool = False
    #: for ``shape``: slope before and after the break (value units per size unit)
    slope_before: float | None = None
    slope_after: float | None = None
    note: str = ""

    @property
    def found(self) -> bool:
        """True when the curve has a knee."""
        return self.kind is not None


def aggregate(sizes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sizes (sorted) and the median value at each; NaN values are dropped."""
    x = np.asarray(sizes, float)
    y = np.asarray(values, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    ux, inv = np.unique(x, return_inverse=True)
    if len(ux) == len(x):
        return ux, y[np.argsort(x, kind="stable")]
    med = np.array([np.median(y[inv == i]) for i in range(len(ux))])
    return ux, med


def replicate_noise(sizes: np.ndarray, values: np.ndarray) -> float | None:
    """Noise of the per-size medians from the spread between values at the same size (seeds):
    pooled MAD x 1.4826 / sqrt(values per size). None without repeated sizes."""
    x = np.asarray(sizes, float)
    y = np.asarray(values, float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    ux, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    if len(ux) == len(x):
        return None
    med = np.array([np.median(y[inv == i]) for i in range(len(ux))])
    dev = np.abs(y - med[inv])[counts[inv] > 1]
    per = float(np.median(counts[counts > 1]))
    return float(1.4826 * np.median(dev) / np.sqrt(per))


def slo_crossing(sizes: np.ndarray, values: np.ndarray, threshold: float) -> Knee:
    """The first size where ``values`` exceeds ``threshold``, linearly interpolated between
    the last size at or below it and the first above. ``Knee(kind=None)`` if never."""
    x, y = aggregate(sizes, values)
    above = np.flatnonzero(y > threshold)
    if len(x) == 0 or len(above) == 0:
        return Knee(None, None, threshold=threshold, note="never exceeds the threshold")
    i = int(above[0])
    if i == 0:
        return Knee(
            "slo",
            float(x[0]),
            0,
            threshold,
            at_smallest=True,
            note="already above the threshold at the smallest size",
        )
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    size = float(x0 + (threshold - y0) / (y1 - y0) * (x1 - x0))
    return Knee("slo", size, i, threshold, note=f"crosses between {x0:g} and {x1:g}")


def _hinge_sse(xn: np.ndarray, y: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares hinge fits for every break ``ks`` at once: SSE per k, coefficients
    (a, b, c) per k. Solved as batched 3x3 normal equations (no Python loop over k)."""
    h = np.maximum(0.0, xn[None, :] - ks[:, None])  # (K, n)
    ones = np.ones_like(xn)
    cols = [np.broadcast_to(ones, h.shape), np.broadcast_to(xn, h.shape), h]
    a = np.stack(cols, axis=-1)  # (K, n, 3)
    ata = np.einsum("kni,knj->kij", a, a)
    aty = np.einsum("kni,n->ki", a, y)
    # A tiny ridge keeps the system solvable when the hinge column is all zero.
    ata = ata + 1e-12 * np.eye(3)[None]
    coef = np.linalg.solve(ata, aty[..., None])[..., 0]
    resid = y[None, :] - np.einsum("kni,ki->kn", a, coef)
    return (resid**2).sum(axis=1), coef


def _noise_sigma(x: np.ndarray, y: np.ndarray) -> float:
    """Robust noise level: each interior point's deviation from the chord of its neighbours,
    scaled to the noise of one point, median absolute value x 1.4826 (MAD -> sigma)."""
    if len(x) < 3:
        return 0.0
    w = (x[1:-1] - x[:-2]) / (x[2:] - x[:-2])
    chord = y[:-2] + w * (y[2:] - y[:-2])
    r = (y[1:-1] - chord) / np.sqrt(1.0 + w**2 + (1.0 - w) ** 2)
    return float(1.4826 * np.median(np.abs(r)))


def shape_knee(
    sizes: np.ndarray,
    values: np.ndarray,
    *,
    direction: str = "up",
    min_rise: float = 0.25,
    noise_sigmas: float = 4.0,
) -> Knee:
    """The bend of a curve (see the module docstring); ``Knee(kind=None)`` if there is none.

    ``direction``: ``"up"`` (the slope grows), ``"down"`` (it falls: a curve levelling off)
    or ``"any"``. ``min_rise``: smallest bend height relative to the curve's median ``|y|``.
    ``noise_sigmas``: smallest bend height in units of the estimated noise.
    """
    if direction not in ("up", "down", "any"):
        raise ValueError(f"direction must be up, down or any, not {direction!r}")
    x, y = aggregate(sizes, values)
    noise = replicate_noise(sizes, values)
    n = len(x)
    if n < MIN_POINTS_SHAPE:
        return Knee(None, None, note=f"too few sizes for a shape knee ({n} < {MIN_POINTS_SHAPE})")
    lo, span = x[0], x[-1] - x[0]
    xn = (x - lo) / span
    ks = np.linspace(xn[1], xn[-2], GRID_POINTS)
    sse, _ = _hinge_sse(xn, y, ks)
    best = int(np.argmin(sse))
    # Refine around the best grid point (the SSE is smooth between data points).
    step = ks[1] - ks[0] if len(ks) > 1 else 0.0
    fine = np.linspace(max(ks[best] - step, xn[1]), min(ks[best] + step, xn[-2]), 101)
    sse_f, coef_f = _hinge_sse(xn, y, fine)
    j = int(np.argmin(sse_f))
    k, (_a, b, c) = float(fine[j]), coef_f[j]
    # The bend's size: how far the hinge fit departs from the best straight line. Unlike the
    # extension of the first segment, this does not blow up when the first segment has two
    # noisy points.
    a1 = np.vstack([np.ones_like(xn), xn]).T
    line = a1 @ np.linalg.lstsq(a1, y, rcond=None)[0]
    hinge = _a + b * xn + c * np.maximum(0.0, xn - k)
    bend = float(np.sqrt(np.sum((hinge - line) ** 2)))  # sqrt of the drop in SSE
    level = abs(float(_a + b * k))  # the curve's value where it bends
    # Noise: the chord estimate is robust to the bend but inflated by it when the bend spans
    # most of few points; the hinge residual is unbiased by the bend but overfits. The smaller
    # of the two with fewer than 8 sizes; the spread between seeds when there are several.
    sigma_fit = float(np.sqrt(sse_f[j] / max(n - 4, 1)))
    sigma = _noise_sigma(x, y)
    if noise is not None:
        sigma = noise
    elif n < 8:  # few interior points: the bend can dominate the chord median
        sigma = min(sigma, sigma_fit)
    size = float(lo + k * span)
    index = int(np.searchsorted(x, size, side="left"))
    slope_before, slope_after = float(b / span), float((b + c) / span)
    if direction == "up" and not (c > 0 and b + c > 0):
        return Knee(None, None, note="the curve does not bend upward")
    if direction == "down" and not (c < 0 and b > 0):
        return Knee(None, None, note="the curve does not level off")
    # Beyond the bend the curve departs from its first segment by ``extra`` at the largest
    # size; going up, it must also really rise (``post``), not just stop falling.
    extra = abs(c) * (1.0 - k)
    post = (b + c) * (1.0 - k) if direction == "up" else extra
    if min(extra, post) < min_rise * level or bend <= 0:
        return Knee(
            None,
            None,
            note=f"bend of {min(extra, post):.3g} is under {min_rise:g} x the value "
            f"{level:.3g} at the bend",
        )
    if bend <= noise_sigmas * sigma:
        return Knee(None, None, note=f"bend of {bend:.3g} is within the noise ({sigma:.3g})")
    return Knee(
        "shape",
        size,
        index,
        slope_before=slope_before,
        slope_after=slope_after,
        note=f"slope {slope_before:.3g} -> {slope_after:.3g} per unit of size",
    )


def find_knee(
    sizes: np.ndarray,
    values: np.ndarray,
    threshold: float | None = None,
    *,
    direction: str = "up",
    min_rise: float = 0.25,
    noise_sigmas: float = 4.0,
) -> Knee:
    """The SLO knee when ``threshold`` is given and crossed, else the shape knee, else none."""
    if threshold is not None:
        knee = slo_crossing(sizes, values, threshold)
        if knee.found:
            return knee
    knee = shape_knee(
        sizes, values, direction=direction, min_rise=min_rise, noise_sigmas=noise_sigmas
    )
    if threshold is not None:
        return Knee(
            knee.kind,
            knee.size,
            knee.index,
            threshold,
            slope_before=knee.slope_before,
            slope_after=knee.slope_after,
            note=knee.note,
        )
    return knee


def describe(knee: Knee, metric: str, unit: str = "", size_unit: str = "nodes") -> str:
    """One plain sentence about ``knee`` of the curve ``metric``."""
    u = f" {unit}" if unit else ""
    if knee.kind == "slo":
        if knee.at_smallest:
            return (
                f"{metric} is above the {knee.threshold:g}{u} SLO already at the smallest "
                f"size swept ({knee.size:,.0f} {size_unit})."
            )
        return (
            f"{metric} breaks the {knee.threshold:g}{u} SLO at about {knee.size:,.0f} "
            f"{size_unit} ({knee.note}, interpolated)."
        )
    if knee.kind == "shape":
        extra = (
            f" (it stays within the {knee.threshold:g}{u} SLO)"
            if knee.threshold is not None
            else ""
        )
        return (
            f"{metric} bends upward at about {knee.size:,.0f} {size_unit}: it grows "
            f"{_ratio(knee.slope_before, knee.slope_after)} faster beyond it{extra}."
        )
    within = f" and stays within the {knee.threshold:g}{u} SLO" if knee.threshold else ""
    return f"{metric} has no knee over the sizes swept{within}."


def _ratio(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "much"
    if before <= 0 or after / before > 1000:
        return "much"
    return f"{after / before:.1f}x"
