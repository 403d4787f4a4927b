"""Statistics for misalignment rates: Wilson intervals, differences between two rates, exact p-values.

Every rate teachwhy prints carries its n and a Wilson 95% interval; every comparison of two rates carries
Newcombe's hybrid-score interval for the difference and a two-sided Fisher exact p-value (exact, so it stays
honest at the small n of laptop runs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials.

    With ``n == 0`` nothing was observed and the interval is the whole of [0, 1].

    Raises:
        ValueError: ``k`` is negative or larger than ``n``.
    """
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k = 0 or k = n the bound is exactly 0 or 1; keep float rounding from leaving it a hair off
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return (low, high)


@dataclass(frozen=True)
class RateDifference:
    """``rate_a - rate_b`` with a 95% interval (Newcombe hybrid score) and a Fisher exact p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float


def rate_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z_95) -> RateDifference:
    """Compare ``k1/n1`` with ``k2/n2``.

    Raises:
        ValueError: either group is empty, or a count is out of range.
    """
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both groups need at least one scored sample")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return RateDifference(diff, max(-1.0, low), min(1.0, high), fisher_exact(k1, n1 - k1, k2, n2 - k2))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided Fisher exact p-value for the table [[a, b], [c, d]].

    Sums the probabilities of every table with the same margins that is no more likely than the observed one.
    """
    row1, col1, total = a + b, a + c, a + b + c + d
    lo, hi = max(0, col1 - (total - row1)), min(row1, col1)
    log_denominator = _log_comb(total, col1)

    def log_p(x: int) -> float:
        return _log_comb(row1, x) + _log_comb(total - row1, col1 - x) - log_denominator

    observed = log_p(a)
    # relative tolerance so tables tied with the observed one in exact arithmetic are counted
    cutoff = observed + 1e-7
    p = sum(math.exp(lp) for x in range(lo, hi + 1) if (lp := log_p(x)) <= cutoff)
    return min(1.0, p)
