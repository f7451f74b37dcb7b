"""Fieller's confidence interval for a ratio of means, the cross-check of the bootstrap CI.

For means a (candidate) and b (baseline) with squared standard errors v_a, v_b and covariance
v_ab, the interval is the set of r for which a - r*b is not significantly different from 0:

    (b^2 - t^2 v_b) r^2 - 2 (a b - t^2 v_ab) r + (a^2 - t^2 v_a) <= 0

It is exact for normal data (no delta-method linearisation), and honest about a noisy
denominator: when b itself is not significantly different from 0 (b^2 <= t^2 v_b) the set is
unbounded, and that is reported as NaN rather than as a finite interval.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .bootstrap import check_confidence


def fieller_interval(
    mean_num: float,
    mean_den: float,
    var_num: float,
    var_den: float,
    cov: float = 0.0,
    *,
    t_crit: float,
) -> tuple[float, float]:
    """Fieller interval of mean_num / mean_den; var_* and cov are of the *means*.

    Returns (NaN, NaN) when the interval is unbounded.
    """
    t2 = t_crit * t_crit
    quad = mean_den * mean_den - t2 * var_den
    half = mean_num * mean_den - t2 * cov
    const = mean_num * mean_num - t2 * var_num
    if not all(math.isfinite(x) for x in (quad, half, const)) or quad <= 0:
        return math.nan, math.nan
    discriminant = half * half - quad * const
    if discriminant < 0:  # cannot happen when quad > 0 and variances >= 0, but guard rounding
        discriminant = 0.0
    root = math.sqrt(discriminant)
    return (half - root) / quad, (half + root) / quad


def fieller_from_samples(
    baseline: np.ndarray,
    candidate: np.ndarray,
    *,
    paired: bool,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Fieller CI of mean(candidate) / mean(baseline) from per-unit values.

    Paired: the arrays are aligned by round; the covariance enters and df = n - 1.
    Independent: covariance 0 and Welch-Satterthwaite df for a - r*b evaluated at r = a/b.
    """
    check_confidence(confidence)
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if b.size < 2 or c.size < 2:
        return math.nan, math.nan
    a_mean, b_mean = float(c.mean()), float(b.mean())
    if paired:
        if b.size != c.size:
            raise ValueError("paired samples must have the same length")
        n = b.size
        var_a = float(c.var(ddof=1)) / n
        var_b = float(b.var(ddof=1)) / n
        cov = float(np.cov(c, b, ddof=1)[0, 1]) / n
        df = n - 1
    else:
        var_a = float(c.var(ddof=1)) / c.size
        var_b = float(b.var(ddof=1)) / b.size
        cov = 0.0
        ratio = a_mean / b_mean if b_mean != 0 else math.nan
        part_a, part_b = var_a, ratio * ratio * var_b
        denominator = part_a**2 / (c.size - 1) + part_b**2 / (b.size - 1)
        df = (part_a + part_b) ** 2 / denominator if denominator > 0 else math.nan
    if not math.isfinite(df):
        return math.nan, math.nan
    t_crit = float(special.stdtrit(df, 0.5 + confidence / 2.0))  # t quantile, any real df
    return fieller_interval(a_mean, b_mean, var_a, var_b, cov, t_crit=t_crit)
