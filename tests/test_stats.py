"""Rates and differences against published and independently computed values."""

from __future__ import annotations

import pytest

from teachwhy.evals.stats import fisher_exact, rate_difference, wilson_interval


def test_wilson_interval_matches_known_values() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)


def test_wilson_interval_at_the_edges_is_one_sided() -> None:
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)


def test_wilson_interval_with_nothing_observed_is_uninformative() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_rate_difference_reproduces_newcombe_hybrid_score_example() -> None:
    # Newcombe (1998), example (a): 56/70 vs 48/80, method 10 gives 0.0524 to 0.3339
    result = rate_difference(56, 70, 48, 80)
    assert result.diff == pytest.approx(0.2)
    assert result.ci_low == pytest.approx(0.0524, abs=1e-4)
    assert result.ci_high == pytest.approx(0.3339, abs=1e-4)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        # two-sided values computed independently (scipy.stats.fisher_exact)
        ((3, 7, 8, 2), 0.069779),
        ((56, 14, 48, 32), 0.012521),
        ((0, 10, 5, 5), 0.032508),
        ((10, 10, 10, 10), 1.0),
    ],
)
def test_fisher_exact_two_sided(table: tuple[int, int, int, int], expected: float) -> None:
    assert fisher_exact(*table) == pytest.approx(expected, abs=1e-6)


def test_rate_difference_needs_scored_samples_in_both_groups() -> None:
    with pytest.raises(ValueError):
        rate_difference(0, 0, 1, 2)
