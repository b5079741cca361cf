"""Summaries over seeds and the rule that decides which loss won.

Rule (stated in every report): losses are compared with the baseline **paired by seed** (or fold): every seed gives
both losses the same data split, initialisation seed and batch order. With d_s the per-seed difference (loss minus
baseline, sign flipped for lower-is-better metrics so that d > 0 always means "better"), n seeds, mean d and
standard deviation s_d, the loss is

- **better** when the 95 % confidence interval mean(d) +- t_{0.975, n-1} s_d / sqrt(n) lies above 0,
- **worse** when it lies below 0,
- **within noise** otherwise (a two-sided paired t-test at the 5 % level, no correction for the many comparisons).

We also print the pooled seed standard deviation, sqrt((s_a^2 + s_b^2) / 2), so that a reader can judge the size of a
difference against the seed-to-seed spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Comparison", "mean_std", "paired_comparison", "RULE"]

RULE = ("A loss is called better (worse) than the baseline on a metric when the 95 % confidence interval of its mean "
        "paired difference over seeds, mean(d) +- t(0.975, n-1) sd(d) / sqrt(n), lies entirely above (below) zero; "
        "otherwise the difference is 'within noise' (two-sided paired t-test, 5 % level, not corrected for multiple "
        "comparisons). The pooled seed standard deviation is shown for scale.")


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


@dataclass(frozen=True)
class Comparison:
    mean_diff: float        # mean of (candidate - baseline), in the metric's own direction (not sign-flipped)
    ci_half_width: float    # t_{0.975,n-1} * sd(d) / sqrt(n)
    pooled_std: float
    verdict: str            # "better", "worse" or "within noise"

    @property
    def symbol(self) -> str:
        return {"better": "+", "worse": "-", "within noise": "="}[self.verdict]


def paired_comparison(candidate, baseline, higher_is_better: bool = True) -> Comparison:
    """Compare per-seed values of a candidate with the baseline (same seeds, same order).

    Example:
      >>> paired_comparison([0.8, 0.82, 0.81], [0.7, 0.71, 0.72]).verdict
      'better'
    """
    from scipy import stats

    a = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        import focalkit

        raise focalkit.InvalidArgumentError(
            f"candidate, baseline: expected two 1-d sequences of equal length >= 2, got shapes {a.shape}, {b.shape}")
    d = a - b
    n = len(d)
    half = float(stats.t.ppf(0.975, n - 1) * d.std(ddof=1) / np.sqrt(n))
    pooled = float(np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2))
    mean = float(d.mean())
    signed = mean if higher_is_better else -mean
    if signed - half > 0:
        verdict = "better"
    elif signed + half < 0:
        verdict = "worse"
    else:
        verdict = "within noise"
    return Comparison(mean, half, pooled, verdict)
