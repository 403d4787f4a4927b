"""Statistics that respect the honeypot design: clustered intervals, paired comparisons and run sizing.

The episodes of a honeypot run are not independent draws. Each episode is one world under one condition of
the factorial, so episodes of one world share its cast, layout and wording (they are *clustered* in worlds),
and the epochs of one episode are repeats of the same episode, never new samples. This module gives:

- :func:`cluster_interval`: a 95% interval for a rate that accounts for that clustering. A seeded two-stage
  cluster bootstrap (worlds resampled with replacement, then each chosen world's episodes resampled with
  replacement, every episode carrying all of its epochs) measures the rate's real variance; its ratio to the
  binomial variance is the *design effect*, and the interval is Wilson's at the effective sample size
  ``n / design_effect``. The design effect is at least 1, so the clustered interval is never narrower than
  the naive Wilson interval; with no harmful (or no unharmful) episode the bootstrap has nothing to measure,
  the design effect is 1 and the two intervals coincide.
- :func:`condition_group`: ``control`` for the no-pressure cells (goal type ``none`` and urgency ``none``),
  ``pressured`` for every other cell of the factorial (a threat to the agent or a goal conflict).
- :func:`paired_difference`: two runs of the same episodes compared episode by episode: an exact McNemar test
  on the discordant episodes (a sign test over episodes when they have several epochs) and a paired cluster
  bootstrap interval for the difference, never narrower than Newcombe's paired score interval when every
  episode has one epoch (:func:`newcombe_paired`).
- :func:`episodes_per_arm`: the two-proportion sample size (normal approximation, optionally with Fleiss's
  continuity correction) times the design effect ``1 + (m - 1) * ICC`` of clusters of ``m`` episodes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from teachwhy.evals.stats import Z_95

RESAMPLES = 2000
SEED = 0
PRESSURED = "pressured"
CONTROL = "control"


def condition_group(condition: str) -> str | None:
    """``control``, ``pressured`` or ``None`` for a condition id ``<goal type>-<goal value>-<urgency>``.

    A condition id that is not of the factorial (three parts) belongs to neither group.
    """
    parts = condition.split("-")
    if len(parts) != 3 or not all(parts):
        return None
    goal_type, _, urgency = parts
    return CONTROL if goal_type == "none" and urgency == "none" else PRESSURED


@dataclass(frozen=True)
class EpisodeCount:
    """One episode's scored epochs: its world (the cluster), harmful epochs and scored epochs."""

    cluster: str
    harmful: int
    n: int


@dataclass(frozen=True)
class ClusterInterval:
    """A rate's clustered 95% interval, the worlds it came from and the estimated design effect."""

    low: float
    high: float
    clusters: int
    design_effect: float


def _wilson(k: float, n: float, z: float = Z_95) -> tuple[float, float]:
    """Wilson's interval for a possibly fractional count (an effective sample)."""
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z * z / (4 * n * n))) / denom
    low = 0.0 if k <= 0 else max(0.0, centre - half)
    high = 1.0 if k >= n else min(1.0, centre + half)
    return low, high


def _padded(units: Sequence[tuple[str, Sequence[float]]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The cluster names, an array (clusters x max episodes x values) padded with zeros, and the sizes."""
    by_cluster: dict[str, list[Sequence[float]]] = defaultdict(list)
    for cluster, values in units:
        by_cluster[cluster].append(values)
    names = sorted(by_cluster)
    width = len(units[0][1])
    size = max(len(v) for v in by_cluster.values())
    table = np.zeros((len(names), size, width))
    for i, name in enumerate(names):
        table[i, : len(by_cluster[name])] = np.asarray(by_cluster[name], dtype=float)
    return names, table, np.array([len(by_cluster[n]) for n in names])


def _resample_sums(table: np.ndarray, sizes: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Two-stage cluster bootstrap: column sums of the values in each of ``resamples`` resampled designs."""
    rng = np.random.default_rng(seed)
    clusters, size, _ = table.shape
    blocks = []
    for start in range(0, resamples, 250):  # in blocks, to bound memory on large runs
        count = min(250, resamples - start)
        chosen = rng.integers(0, clusters, size=(count, clusters))
        chosen_sizes = sizes[chosen]
        # an index below each chosen world's own episode count for every slot; slots past it are masked
        picks = (rng.random((count, clusters, size)) * chosen_sizes[:, :, None]).astype(np.int64)
        mask = np.arange(size)[None, None, :] < chosen_sizes[:, :, None]
        blocks.append((table[chosen[:, :, None], picks] * mask[:, :, :, None]).sum(axis=(1, 2)))
    result: np.ndarray = np.concatenate(blocks)
    return result


def cluster_interval(
    episodes: Sequence[EpisodeCount], *, resamples: int = RESAMPLES, seed: int = SEED, z: float = Z_95
) -> ClusterInterval | None:
    """The clustered 95% interval of ``sum(harmful) / sum(n)`` over episodes (``None`` with nothing scored).

    Episodes with no scored epoch are left out; the epochs of one episode always move together.
    """
    scored = [e for e in episodes if e.n > 0]
    if not scored:
        return None
    k = sum(e.harmful for e in scored)
    n = sum(e.n for e in scored)
    clusters = len({e.cluster for e in scored})
    p = k / n
    binomial = p * (1 - p) / n
    design_effect = 1.0
    if binomial > 0:
        _, table, sizes = _padded([(e.cluster, (e.harmful, e.n)) for e in scored])
        sums = _resample_sums(table, sizes, resamples, seed)
        rates = sums[:, 0] / sums[:, 1]
        design_effect = max(1.0, float(rates.var()) / binomial)
    low, high = _wilson(k / design_effect, n / design_effect, z)
    return ClusterInterval(low, high, clusters, design_effect)


# --- paired comparisons ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedEpisode:
    """One episode both runs played: its world and each run's harmful and scored epochs."""

    cluster: str
    harmful_a: int
    n_a: int
    harmful_b: int
    n_b: int


@dataclass(frozen=True)
class PairedDifference:
    """``rate_a - rate_b`` over the episodes both runs scored, with a paired interval and an exact p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    pairs: int
    a_worse: int  # episodes more often harmful in A than in B (with one epoch: harmful in A only)
    b_worse: int


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs (a binomial test at 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return float(min(1.0, 2 * tail))


def paired_difference(
    pairs: Sequence[PairedEpisode], *, resamples: int = RESAMPLES, seed: int = SEED
) -> PairedDifference | None:
    """Compare two runs episode by episode (``None`` when no episode was scored in both).

    The p-value is McNemar's exact test on the episodes where the runs differ. The interval is the 2.5th and
    97.5th percentiles of the difference over a cluster bootstrap that resamples the same worlds and episodes
    for both runs; where every episode has one scored epoch in each run it is widened, where narrower, to
    Newcombe's paired score interval (:func:`newcombe_paired`), which stays honest when few or no episodes
    differ (the bootstrap alone would then give 0 to 0).
    """
    both = [p for p in pairs if p.n_a > 0 and p.n_b > 0]
    if not both:
        return None
    ka, na = sum(p.harmful_a for p in both), sum(p.n_a for p in both)
    kb, nb = sum(p.harmful_b for p in both), sum(p.n_b for p in both)
    a_worse = sum(p.harmful_a * p.n_b > p.harmful_b * p.n_a for p in both)
    b_worse = sum(p.harmful_a * p.n_b < p.harmful_b * p.n_a for p in both)
    _, table, sizes = _padded([(p.cluster, (p.harmful_a, p.n_a, p.harmful_b, p.n_b)) for p in both])
    sums = _resample_sums(table, sizes, resamples, seed)
    diffs = sums[:, 0] / sums[:, 1] - sums[:, 2] / sums[:, 3]
    low, high = (float(x) for x in np.quantile(diffs, [0.025, 0.975]))
    if all(p.n_a == 1 and p.n_b == 1 for p in both):
        both_harmful = sum(p.harmful_a and p.harmful_b for p in both)
        score_low, score_high = newcombe_paired(
            both_harmful, a_worse, b_worse, len(both) - both_harmful - a_worse - b_worse
        )
        low, high = min(low, score_low), max(high, score_high)
    return PairedDifference(
        ka / na - kb / nb, low, high, mcnemar_exact(a_worse, b_worse), len(both), a_worse, b_worse
    )


def newcombe_paired(a: int, b: int, c: int, d: int, z: float = Z_95) -> tuple[float, float]:
    """Newcombe's (1998, method 10) 95% interval for ``p_A - p_B`` from a paired 2x2 table.

    ``a``: harmful in both runs, ``b``: in A only, ``c``: in B only, ``d``: in neither. Each run's Wilson
    interval is combined with the correlation of the pairs (``phi``, with its numerator reduced by ``n/2``
    towards 0 when positive).
    """
    n = a + b + c + d
    if n == 0:
        raise ValueError("a paired table needs at least one pair")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, z)
    l2, u2 = _wilson(a + c, n, z)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    numerator = max(cross - n / 2, 0.0) if cross > 0 else float(cross)
    phi = numerator / math.sqrt(margins) if margins else 0.0
    diff = p1 - p2
    below = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    above = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return max(-1.0, diff - below), min(1.0, diff + above)


# --- sizing a run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleSize:
    """Scored episodes per arm to tell ``p0`` from ``p1`` apart, before and after clustering."""

    independent: int  # with every episode independent
    design_effect: float  # 1 + (cluster_size - 1) * icc
    per_arm: int  # independent * design_effect, rounded up
    worlds: int  # clusters of ``cluster_size`` episodes needed per arm


def episodes_per_arm(
    p0: float,
    p1: float,
    *,
    power: float = 0.8,
    alpha: float = 0.05,
    icc: float = 0.0,
    cluster_size: int = 1,
    continuity: bool = False,
) -> SampleSize:
    """Episodes per arm for a two-sided test of ``p0`` against ``p1`` at level ``alpha`` with ``power``.

    ``n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_{power} sqrt(p0 q0 + p1 q1))^2 / (p0 - p1)^2`` with
    ``pbar`` the mean of the two rates; ``continuity`` applies Fleiss's correction
    ``n/4 (1 + sqrt(1 + 4 / (n |p0 - p1|)))^2``. Clustering multiplies ``n`` by ``1 + (m - 1) * icc``.

    Raises:
        ValueError: a rate outside (0, 1), equal rates, or power/alpha/icc/cluster size out of range.
    """
    for name, value in (("p0", p0), ("p1", p1), ("power", power), ("alpha", alpha)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value}")
    if p0 == p1:
        raise ValueError("p0 and p1 must differ")
    if not 0 <= icc <= 1:
        raise ValueError(f"icc must be between 0 and 1, got {icc}")
    if cluster_size < 1:
        raise ValueError(f"cluster size must be at least 1, got {cluster_size}")
    normal = NormalDist()
    z_alpha, z_beta = normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)
    mean = (p0 + p1) / 2
    delta = abs(p0 - p1)
    n = (
        z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))
    ) ** 2 / delta**2
    if continuity:
        n = n / 4 * (1 + math.sqrt(1 + 4 / (n * delta))) ** 2
    independent = math.ceil(n - 1e-9)
    design_effect = 1 + (cluster_size - 1) * icc
    per_arm = math.ceil(n * design_effect - 1e-9)
    return SampleSize(independent, design_effect, per_arm, math.ceil(per_arm / cluster_size))
