"""Two-sided p-values of the classical tests reported for each point.

Written out rather than called through scipy.stats because a campaign (and the simulations
that check the verdict rules) run them thousands of times and scipy's per-call overhead
dominates; tests/test_stats_compare.py checks them against scipy on fixed data.

* Welch's t-test: unequal variances, Welch-Satterthwaite degrees of freedom.
* Paired t-test: on the per-round differences candidate - baseline.
* Mann-Whitney U: exact null distribution when there are no ties and one sample has at most
  8 values, otherwise the normal approximation with tie and continuity corrections (the same
  choice as scipy's method="auto").

Each returns NaN where the test is undefined (too few values, no variability).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .rank import u_null_cdf

_EXACT_MAX_SMALLER = 8


def _two_sided_t(t: float, df: float) -> float:
    if not (math.isfinite(t) and math.isfinite(df) and df > 0):
        return math.nan
    return float(min(1.0, 2.0 * special.stdtr(df, -abs(t))))


def welch_t_test(baseline: np.ndarray, candidate: np.ndarray) -> float:
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if b.size < 2 or c.size < 2:
        return math.nan
    se2_b = b.var(ddof=1) / b.size
    se2_c = c.var(ddof=1) / c.size
    se2 = se2_b + se2_c
    if not se2 > 0:
        return math.nan
    t = (c.mean() - b.mean()) / math.sqrt(se2)
    df = se2**2 / (se2_b**2 / (b.size - 1) + se2_c**2 / (c.size - 1))
    return _two_sided_t(t, df)


def paired_t_test(baseline: np.ndarray, candidate: np.ndarray) -> float:
    differences = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    n = differences.size
    if n < 2:
        return math.nan
    sd = differences.std(ddof=1)
    if not sd > 0:
        return math.nan
    return _two_sided_t(differences.mean() / (sd / math.sqrt(n)), n - 1)


def mann_whitney_u(baseline: np.ndarray, candidate: np.ndarray) -> float:
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    m, n = c.size, b.size
    if m == 0 or n == 0:
        return math.nan
    pooled = np.concatenate([c, b])
    _, inverse, tie_sizes = np.unique(pooled, return_inverse=True, return_counts=True)
    # average ranks: a group of t equal values spanning ranks s+1..s+t gets s + (t+1)/2
    starts = np.cumsum(tie_sizes) - tie_sizes
    ranks = (starts + (tie_sizes + 1) / 2.0)[inverse]
    u_candidate = float(ranks[:m].sum() - m * (m + 1) / 2.0)
    u = max(u_candidate, m * n - u_candidate)
    ties = bool(np.any(tie_sizes > 1))
    if min(m, n) <= _EXACT_MAX_SMALLER and not ties:
        cdf = u_null_cdf(m, n)
        upper_tail = 1.0 - cdf[int(round(u)) - 1] if u >= 1 else 1.0
        p = 2.0 * upper_tail
    else:
        total = m + n
        tie_term = float(np.sum(tie_sizes.astype(float) ** 3 - tie_sizes))
        variance = m * n / 12.0 * ((total + 1) - tie_term / (total * (total - 1)))
        if not variance > 0:
            return 1.0  # every value tied: no evidence of any shift
        z = (u - m * n / 2.0 - 0.5) / math.sqrt(variance)
        p = 2.0 * float(special.ndtr(-z))
    return float(min(1.0, max(0.0, p)))
