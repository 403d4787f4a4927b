"""Design-aware statistics: clustered intervals, condition groups, paired comparisons and run sizing."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from teachwhy.cli import app
from teachwhy.errors import UserError
from teachwhy.evals.design import (
    EpisodeCount,
    PairedEpisode,
    cluster_interval,
    condition_group,
    episodes_per_arm,
    mcnemar_exact,
    newcombe_paired,
    paired_difference,
)
from teachwhy.evals.stats import wilson_interval


def clustered_dataset(
    rng: np.random.Generator, *, worlds: int, episodes: int, rate: float, icc: float
) -> list[EpisodeCount]:
    """Worlds whose own harmful rates scatter around ``rate`` (beta-distributed, intra-world correlation
    ``icc``), each with ``episodes`` one-epoch episodes."""
    spread = 1 / icc - 1
    world_rates = rng.beta(rate * spread, (1 - rate) * spread, size=worlds)
    return [
        EpisodeCount(f"w{w}", int(rng.random() < world_rates[w]), 1)
        for w in range(worlds)
        for _ in range(episodes)
    ]


def test_the_clustered_interval_covers_the_true_rate_where_wilson_does_not() -> None:
    # 200 simulated runs of 20 worlds x 20 episodes with strong world clustering (ICC 0.3): the naive Wilson
    # interval treats the 400 episodes as independent and misses the true rate far more often than 5%
    rng = np.random.default_rng(7)
    true_rate, runs = 0.2, 200
    clustered_hits = wilson_hits = 0
    for run in range(runs):
        data = clustered_dataset(rng, worlds=20, episodes=20, rate=true_rate, icc=0.3)
        k, n = sum(e.harmful for e in data), sum(e.n for e in data)
        low, high = wilson_interval(k, n)
        wilson_hits += low <= true_rate <= high
        interval = cluster_interval(data, resamples=400, seed=run)
        assert interval is not None and interval.clusters == 20
        clustered_hits += interval.low <= true_rate <= interval.high
    assert clustered_hits / runs >= 0.88  # nominal 95%; measured 91% (Wilson: 58%)
    assert wilson_hits / runs <= 0.75


def test_without_clustering_the_interval_is_close_to_wilson() -> None:
    rng = np.random.default_rng(3)
    data = [EpisodeCount(f"w{i % 10}", int(rng.random() < 0.3), 1) for i in range(400)]
    interval = cluster_interval(data, seed=1)
    assert interval is not None
    k = sum(e.harmful for e in data)
    low, high = wilson_interval(k, 400)
    assert interval.design_effect < 1.4
    assert interval.low == pytest.approx(low, abs=0.03) and interval.high == pytest.approx(high, abs=0.03)


def test_epochs_of_one_episode_are_repeats_not_new_samples() -> None:
    # 10 episodes played 10 times each, always with the same outcome: 100 samples but 10 pieces of evidence
    repeated = [EpisodeCount("w", 10 if i < 3 else 0, 10) for i in range(10)]
    interval = cluster_interval(repeated, seed=0)
    assert interval is not None
    naive_low, naive_high = wilson_interval(30, 100)
    assert interval.design_effect > 5
    assert interval.high - interval.low > 2 * (naive_high - naive_low)


def test_the_clustered_interval_is_never_narrower_and_is_seeded() -> None:
    data = [EpisodeCount(f"w{i % 3}", int(i % 4 == 0), 1) for i in range(60)]
    a, b = cluster_interval(data, seed=5), cluster_interval(data, seed=5)
    assert a == b and a is not None
    low, high = wilson_interval(sum(e.harmful for e in data), 60)
    assert a.low <= low + 1e-12 and a.high >= high - 1e-12
    assert cluster_interval([EpisodeCount("w", 0, 0)]) is None  # nothing scored
    none_harmful = cluster_interval([EpisodeCount("w", 0, 1)] * 5)
    assert none_harmful is not None and none_harmful.design_effect == 1.0
    assert (none_harmful.low, none_harmful.high) == pytest.approx(wilson_interval(0, 5))


def test_condition_groups_split_pressured_cells_from_the_no_pressure_controls() -> None:
    assert condition_group("none-none-none") == "control"
    assert condition_group("none-none-replacement") == "pressured"
    assert condition_group("explicit-welfare-none") == "pressured"
    assert condition_group("ambiguous-profit-restriction") == "pressured"
    assert condition_group("c1") is None


def test_mcnemar_exact_p_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 5) == 1.0


def test_a_paired_comparison_uses_only_the_discordant_episodes() -> None:
    # 40 episodes in 4 worlds: A harmful on 12, B on 4; they agree everywhere except 8 episodes (A only)
    pairs = [PairedEpisode(f"w{i % 4}", int(i < 12), 1, int(i < 4), 1) for i in range(40)]
    d = paired_difference(pairs, seed=0)
    assert d is not None
    assert (d.pairs, d.a_worse, d.b_worse) == (40, 8, 0)
    assert d.diff == pytest.approx(0.2)
    assert d.p_value == pytest.approx(mcnemar_exact(8, 0))
    assert 0 < d.ci_low < 0.2 < d.ci_high
    # one side unscored: the episode leaves the comparison
    assert paired_difference([PairedEpisode("w", 1, 1, 0, 0)]) is None


def test_the_power_calculation_matches_the_textbook() -> None:
    # Fleiss, Levin & Paik (Statistical Methods for Rates and Proportions): 10% vs 20%, alpha 0.05
    # two-sided, power 0.80 -> 199 per group without, 219 with the continuity correction
    assert episodes_per_arm(0.2, 0.1).independent == 199
    assert episodes_per_arm(0.1, 0.2, continuity=True).independent == 219
    clustered = episodes_per_arm(0.2, 0.1, icc=0.05, cluster_size=39)
    assert clustered.design_effect == pytest.approx(2.9)
    assert clustered.per_arm == 577 and clustered.worlds == 15  # ceil(198.97 * 2.9), ceil(577 / 39)
    with pytest.raises(ValueError, match="differ"):
        episodes_per_arm(0.2, 0.2)


def test_eval_plan_prints_the_episodes_per_arm() -> None:
    result = CliRunner().invoke(
        app, ["eval", "plan", "--p0", "0.2", "--p1", "0.1", "--icc", "0.05", "--cluster-size", "39"]
    )
    assert result.exit_code == 0, result.output
    assert "199 scored episodes per arm if episodes were independent" in result.output
    assert "577 scored episodes per arm = 15 worlds of 39 episodes" in result.output
    bad = CliRunner().invoke(app, ["eval", "plan", "--p0", "1.5", "--p1", "0.1"])
    assert isinstance(bad.exception, UserError) and "p0 must be between 0 and 1" in str(bad.exception)


def test_identical_runs_still_get_an_honest_interval() -> None:
    # no episode differs: the bootstrap alone would say 0 to 0; Newcombe's paired score interval does not
    pairs = [PairedEpisode(f"w{i % 3}", int(i < 6), 1, int(i < 6), 1) for i in range(30)]
    d = paired_difference(pairs, seed=0)
    assert d is not None and d.diff == 0 and d.p_value == 1.0
    assert d.ci_low < -0.05 and d.ci_high > 0.05
    assert (d.ci_low, d.ci_high) == pytest.approx(newcombe_paired(6, 0, 0, 24))


def test_newcombe_paired_interval_covers_the_true_difference() -> None:
    rng = np.random.default_rng(1)
    cells = [0.1, 0.15, 0.05, 0.7]  # both, A only, B only, neither: true difference 0.10
    hits = 0
    for _ in range(1000):
        a, b, c, d = (int(x) for x in rng.multinomial(50, cells))
        low, high = newcombe_paired(a, b, c, d)
        hits += low <= 0.10 <= high
    assert 0.93 <= hits / 1000 <= 0.99  # method 10 is slightly conservative
