"""Rank correlations with bootstrap intervals and paired tests, for the evidence study.

Thin wrappers over scipy.stats that drop non-finite pairs (a NaN score must not
decide a rank statistic), take an explicit seed, and return plain dicts.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

RANK_STATISTICS = ("kendall", "spearman")


def _finite_pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"need two 1-d sequences of equal length, got shapes {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def rank_correlation(x, y, statistic: str = "kendall") -> float:
    """Kendall's tau-b or Spearman's rho over the finite pairs; NaN when fewer than 3 pairs or a constant side."""
    if statistic not in RANK_STATISTICS:
        raise ValueError(f"statistic must be one of {RANK_STATISTICS}, got {statistic!r}")
    x, y = _finite_pairs(x, y)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    if statistic == "kendall":
        return float(stats.kendalltau(x, y).statistic)
    return float(stats.spearmanr(x, y).statistic)


def _kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of every row pair of [R, n] arrays: (P - Q) / sqrt((P + Q + T)(P + Q + U))."""
    dx = np.sign(x[:, :, None] - x[:, None, :])
    dy = np.sign(y[:, :, None] - y[:, None, :])
    upper = np.triu(np.ones(x.shape[1], dtype=bool), 1)
    concord = (dx * dy)[:, upper].sum(1)
    untied_x = np.abs(dx)[:, upper].sum(1)
    untied_y = np.abs(dy)[:, upper].sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return concord / np.sqrt(untied_x * untied_y)


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of every row pair: Pearson's r of the average ranks."""
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(1) / np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))


def bootstrap_interval(x, y, statistic: str = "kendall", resamples: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of a rank correlation, resampling (x, y) pairs: architectures are the units.

    Resamples where one side is constant give NaN and are left out of the percentiles.
    """
    if statistic not in RANK_STATISTICS:
        raise ValueError(f"statistic must be one of {RANK_STATISTICS}, got {statistic!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    x, y = _finite_pairs(x, y)
    if len(x) < 3:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    n = len(x)
    rows = _kendall_rows if statistic == "kendall" else _spearman_rows
    values = []
    for first in range(0, resamples, 256):  # [256, n, n] sign tables at a time
        idx = rng.integers(0, n, (min(256, resamples - first), n))
        values.append(rows(x[idx], y[idx]))
    values = np.concatenate(values)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def correlation_summary(x, y, resamples: int = 2000, seed: int = 0) -> dict:
    """Kendall's tau and Spearman's rho with their 95% bootstrap intervals and the number of pairs used."""
    fx, _ = _finite_pairs(x, y)
    out: dict = {"n": int(len(fx))}
    for name, key in (("kendall", "tau"), ("spearman", "rho")):
        out[key] = rank_correlation(x, y, name)
        out[f"{key}_low"], out[f"{key}_high"] = bootstrap_interval(x, y, name, resamples, seed=seed)
    return out


def paired_comparison(a, b) -> dict:
    """``a`` against ``b`` matched by seed: mean difference, paired t-test and Wilcoxon signed-rank p-values.

    With 5 pairs the smallest two-sided Wilcoxon p is 0.0625, so the t-test is the one that can reach 0.05.
    """
    a, b = _finite_pairs(a, b)
    diff = a - b
    out = {"n": int(len(diff)), "mean_diff": float(diff.mean()) if len(diff) else math.nan,
           "std_diff": float(diff.std(ddof=1)) if len(diff) > 1 else math.nan,
           "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()),
           "t_p": math.nan, "wilcoxon_p": math.nan}
    out["diff_low"] = out["diff_high"] = math.nan  # the 95 % t-interval of the mean difference
    if len(diff) >= 2:
        half = float(stats.t.ppf(0.975, len(diff) - 1) * out["std_diff"] / math.sqrt(len(diff)))
        out["diff_low"], out["diff_high"] = out["mean_diff"] - half, out["mean_diff"] + half
    if len(diff) >= 2 and np.ptp(diff) > 0:
        out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
    if len(diff) >= 1 and np.any(diff != 0):
        out["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
    return out
