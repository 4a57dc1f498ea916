"""Rank statistics and paired tests on hand-made data with known answers."""
import math

import numpy as np
import pytest

from lightsnn.core.stats import (
    _kendall_rows,
    _spearman_rows,
    bootstrap_interval,
    correlation_summary,
    paired_comparison,
    rank_correlation,
)


def test_perfect_and_reversed_rankings():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert rank_correlation(x, [10, 20, 30, 40, 50], "kendall") == pytest.approx(1.0)
    assert rank_correlation(x, [5, 4, 3, 2, 1], "kendall") == pytest.approx(-1.0)
    assert rank_correlation(x, [2, 4, 8, 16, 32], "spearman") == pytest.approx(1.0)
    assert rank_correlation(x, [9, 7, 5, 3, 1], "spearman") == pytest.approx(-1.0)


def test_known_values_by_hand():
    # one swapped neighbour pair: 5 concordant, 1 discordant of 6 pairs -> tau = 4/6;
    # rank differences (0, 1, -1, 0): rho = 1 - 6 * 2 / (4 * 15) = 0.8
    x, y = [1, 2, 3, 4], [1, 3, 2, 4]
    assert rank_correlation(x, y, "kendall") == pytest.approx(4 / 6)
    assert rank_correlation(x, y, "spearman") == pytest.approx(0.8)
    # ties: tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)); x has one tied pair, C = 5, D = 0
    assert rank_correlation([1, 1, 2, 3], [1, 2, 3, 4], "kendall") == pytest.approx(5 / math.sqrt(5 * 6))


def test_non_finite_pairs_are_dropped_and_degenerate_cases_are_nan():
    x = [1, 2, float("nan"), 3, 4, float("-inf")]
    y = [1, 2, 100, 3, 4, 0]
    assert rank_correlation(x, y) == pytest.approx(1.0)
    assert math.isnan(rank_correlation([1, 1, 1, 1], [1, 2, 3, 4]))
    assert math.isnan(rank_correlation([1, 2], [1, 2]))
    with pytest.raises(ValueError, match="statistic must be one of"):
        rank_correlation([1, 2, 3], [1, 2, 3], "pearson")
    with pytest.raises(ValueError, match="equal length"):
        rank_correlation([1, 2, 3], [1, 2])


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    y = x + rng.normal(scale=1.0, size=60)
    tau = rank_correlation(x, y)
    low, high = bootstrap_interval(x, y, "kendall", resamples=500, seed=3)
    assert -1 <= low < tau < high <= 1
    assert (low, high) == bootstrap_interval(x, y, "kendall", resamples=500, seed=3)
    # a perfect ranking stays perfect under resampling
    assert bootstrap_interval([1, 2, 3, 4, 5, 6], [2, 3, 5, 7, 11, 13], resamples=200) == (1.0, 1.0)
    # unrelated data: the interval must cover 0
    z = rng.normal(size=60)
    low, high = bootstrap_interval(x, z, "spearman", resamples=500)
    assert low < 0 < high


def test_correlation_summary_fields():
    out = correlation_summary([1, 2, 3, 4], [1, 3, 2, 4], resamples=100)
    assert out["n"] == 4 and out["tau"] == pytest.approx(4 / 6) and out["rho"] == pytest.approx(0.8)
    assert out["tau_low"] <= out["tau"] <= out["tau_high"]


def test_paired_comparison_by_hand():
    a = [0.80, 0.85, 0.90, 0.70, 0.75]
    b = [0.78, 0.80, 0.91, 0.65, 0.70]
    out = paired_comparison(a, b)
    diff = np.array(a) - np.array(b)  # 0.02, 0.05, -0.01, 0.05, 0.05
    assert out["n"] == 5 and out["wins"] == 4 and out["losses"] == 1
    assert out["mean_diff"] == pytest.approx(diff.mean())
    t = diff.mean() / (diff.std(ddof=1) / math.sqrt(5))
    from scipy import stats
    assert out["t_p"] == pytest.approx(2 * stats.t.sf(abs(t), df=4))
    assert 0 < out["wilcoxon_p"] <= 1
    half = stats.t.ppf(0.975, 4) * diff.std(ddof=1) / math.sqrt(5)  # t(0.975, 4) = 2.776
    assert out["diff_low"] == pytest.approx(diff.mean() - half) and out["diff_high"] == pytest.approx(diff.mean() + half)
    assert out["diff_low"] < 0 < out["diff_high"] and out["t_p"] > 0.05  # the interval holds 0 where p > 0.05
    same = paired_comparison(a, a)
    assert same["mean_diff"] == 0 and math.isnan(same["t_p"]) and math.isnan(same["wilcoxon_p"])


def test_vectorised_bootstrap_statistics_equal_scipys_including_ties():
    from scipy import stats
    rng = np.random.default_rng(1)
    x = rng.integers(0, 6, (50, 12)).astype(float)  # many ties, as bootstrap resamples have
    y = x + rng.integers(-3, 4, (50, 12))
    for row in range(50):
        assert _kendall_rows(x[row:row + 1], y[row:row + 1])[0] == pytest.approx(stats.kendalltau(x[row], y[row]).statistic)
        assert _spearman_rows(x[row:row + 1], y[row:row + 1])[0] == pytest.approx(stats.spearmanr(x[row], y[row]).statistic)
