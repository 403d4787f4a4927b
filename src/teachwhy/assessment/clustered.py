"""Clustered intervals: a percentile cluster bootstrap for means over audits grouped by seed.

Audits of one seed (several epochs, or several checkpoints' worth of repeats) are not independent: the seed
decides most of what happens. Resampling whole seeds with replacement gives an interval for the mean that
accounts for that. With fewer than two seeds there is nothing to resample and the interval is ``None``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

RESAMPLES = 2000


@dataclass(frozen=True)
class ClusteredMean:
    """A mean over all values with a cluster-bootstrap interval."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    n: int  # values
    clusters: int


def _pooled(groups: Sequence[Sequence[float]]) -> float:
    total = sum(len(g) for g in groups)
    return sum(sum(g) for g in groups) / total


def _percentiles(values: list[float], level: float) -> tuple[float, float]:
    values.sort()
    tail = (1 - level) / 2
    lo = values[int(tail * (len(values) - 1))]
    hi = values[round((1 - tail) * (len(values) - 1))]
    return lo, hi


def _resample(groups: list[list[float]], rng: random.Random) -> list[list[float]]:
    return [groups[rng.randrange(len(groups))] for _ in groups]


def cluster_bootstrap_mean(
    clusters: Mapping[str, Sequence[float]], *, resamples: int = RESAMPLES, level: float = 0.95, seed: int = 0
) -> ClusteredMean:
    """The pooled mean of every value and a percentile interval from resampling clusters.

    Args:
        clusters: values per cluster (e.g. per seed); empty clusters are ignored.
        resamples: bootstrap resamples.
        level: the interval's coverage.
        seed: the resampling seed (results are reproducible).
    """
    groups = [list(v) for _, v in sorted(clusters.items()) if v]
    n = sum(len(g) for g in groups)
    if not groups:
        return ClusteredMean(None, None, None, 0, 0)
    mean = _pooled(groups)
    if len(groups) < 2:
        return ClusteredMean(mean, None, None, n, len(groups))
    rng = random.Random(seed)
    stats = [_pooled(_resample(groups, rng)) for _ in range(resamples)]
    low, high = _percentiles(stats, level)
    return ClusteredMean(mean, min(low, mean), max(high, mean), n, len(groups))


@dataclass(frozen=True)
class ClusteredDifference:
    """``mean_a - mean_b`` with a bootstrap interval and a two-sided bootstrap p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float


def cluster_bootstrap_difference(
    a: Mapping[str, Sequence[float]],
    b: Mapping[str, Sequence[float]],
    *,
    resamples: int = RESAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> ClusteredDifference | None:
    """Compare two independent runs (each resampled by its own clusters); ``None`` when either is empty.

    The p-value is twice the share of resampled differences on the far side of zero (at least 1/resamples).
    """
    ga = [list(v) for _, v in sorted(a.items()) if v]
    gb = [list(v) for _, v in sorted(b.items()) if v]
    if not ga or not gb:
        return None
    diff = _pooled(ga) - _pooled(gb)
    rng = random.Random(seed)
    stats = [_pooled(_resample(ga, rng)) - _pooled(_resample(gb, rng)) for _ in range(resamples)]
    low, high = _percentiles(list(stats), level)
    below = sum(s <= 0 for s in stats) / resamples
    above = sum(s >= 0 for s in stats) / resamples
    p = min(1.0, max(2 * min(below, above), 1 / resamples))
    return ClusteredDifference(diff, min(low, diff), max(high, diff), p)
