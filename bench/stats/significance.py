"""Two-sided p-values of the classical tests reported for each point.

Written out rather than called through scipy.stats because a campaign (and the simulations
that check the verdict rules) run them thousands of times and scipy's per-call overhead
dominates; tests/test_stats_compare.py checks them against scipy on fixed data.

* Welch's t-test: unequal variances, Welch-Satterthwaite degrees of freedom.
* Paired t-test: on the per-round differences candidate - baseline.
* Ratio TOST (two one-sided tests of the ratio of means against 1 -+ margin): the t-tests of
  candidate - r x baseline for r at each end of the band, paired (df n - 1) or Welch.  This is
  the test that Fieller's interval inverts, so "both one-sided tests reject at alpha/2" and
  "Fieller's (1 - alpha) CI lies inside the band" are the same statement.
* Mann-Whitney U: exact null distribution when there are no ties and one sample has at most
  8 values, otherwise the normal approximation with tie and continuity corrections (the same
  choice as scipy's method="auto").

Each returns NaN where the test is undefined (too few values, no variability).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from ._json import JsonDataclass
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


@dataclass(frozen=True)
class RatioMoments(JsonDataclass):
    """What a t-test of mean(c) - r x mean(b) needs, for any r: the means, the variances of the
    means, their covariance (paired only) and the sample sizes."""

    mean_baseline: float
    mean_candidate: float
    var_mean_baseline: float  # sample variance / n
    var_mean_candidate: float
    cov_means: float  # 0 when not paired
    n_baseline: int
    n_candidate: int
    paired: bool

    def shifted_t(self, factor: float) -> tuple[float, float]:
        """t statistic and df of mean(candidate) - factor x mean(baseline); NaN when undefined."""
        if self.n_baseline < 2 or self.n_candidate < 2:
            return math.nan, math.nan
        part_c, part_b = self.var_mean_candidate, factor * factor * self.var_mean_baseline
        se2 = part_c + part_b - 2.0 * factor * self.cov_means
        if not se2 > 0:
            return math.nan, math.nan
        if self.paired:
            df = float(self.n_baseline - 1)
        else:  # Welch-Satterthwaite
            df = (part_c + part_b) ** 2 / (
                part_c**2 / (self.n_candidate - 1) + part_b**2 / (self.n_baseline - 1)
            )
        return float((self.mean_candidate - factor * self.mean_baseline) / math.sqrt(se2)), float(df)

    def difference_se(self) -> tuple[float, float]:
        """(SE, df) of the relative difference mean(c) / mean(b) - 1 as the t-test sees it:
        SE of mean(c) - mean(b), relative to mean(b).  NaN when undefined."""
        t, df = self.shifted_t(1.0)
        if not (math.isfinite(t) and self.mean_baseline > 0):
            return math.nan, math.nan
        se2 = self.var_mean_candidate + self.var_mean_baseline - 2.0 * self.cov_means
        return math.sqrt(se2) / self.mean_baseline, df

    def unit_sd(self) -> float:
        """SD of one round's relative difference (paired), or sqrt(CV_b^2 + CV_c^2) (unpaired):
        what `power.rounds_for_power` needs from a pilot."""
        se, _ = self.difference_se()
        if not math.isfinite(se):
            return math.nan
        if self.paired:
            return se * math.sqrt(self.n_baseline)
        scale = self.mean_baseline * self.mean_baseline
        return math.sqrt(
            self.var_mean_baseline * self.n_baseline / scale
            + self.var_mean_candidate * self.n_candidate / scale
        )


def ratio_moments(baseline: np.ndarray, candidate: np.ndarray, *, paired: bool) -> RatioMoments:
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if paired and b.size != c.size:
        raise ValueError("paired samples must have the same length")
    nan = math.nan
    with np.errstate(all="ignore"):
        var_b = float(b.var(ddof=1)) / b.size if b.size >= 2 else nan
        var_c = float(c.var(ddof=1)) / c.size if c.size >= 2 else nan
        cov = float(np.cov(c, b, ddof=1)[0, 1]) / b.size if paired and b.size >= 2 else 0.0
        return RatioMoments(
            float(b.mean()) if b.size else nan,
            float(c.mean()) if c.size else nan,
            var_b,
            var_c,
            cov,
            int(b.size),
            int(c.size),
            bool(paired),
        )


def ratio_tost_from_moments(moments: RatioMoments, margin: float) -> tuple[float, float, float]:
    """(p_equiv, p_below_upper, p_above_lower) of the ratio TOST against [1 - margin, 1 + margin].

    p_below_upper: one-sided p of H0 mean(c) >= (1 + margin) mean(b);
    p_above_lower: one-sided p of H0 mean(c) <= (1 - margin) mean(b).
    p_equiv = min(1, 2 x the larger of the two): the TOST at alpha/2 per side, so that
    p_equiv < alpha exactly when Fieller's two-sided (1 - alpha) CI lies inside the band -- the
    same level as the CI the verdict shows.  It is a valid p-value for "not equivalent" and can
    be corrected across points like any other.
    """
    if not 0.0 < margin < 1.0:
        raise ValueError(f"margin must be in (0, 1), not {margin!r}")
    t_upper, df_upper = moments.shifted_t(1.0 + margin)
    t_lower, df_lower = moments.shifted_t(1.0 - margin)
    if not (math.isfinite(t_upper) and math.isfinite(t_lower)):
        return math.nan, math.nan, math.nan
    p_upper = float(special.stdtr(df_upper, t_upper))
    p_lower = float(special.stdtr(df_lower, -t_lower))
    return min(1.0, 2.0 * max(p_upper, p_lower)), p_upper, p_lower


def ratio_tost(
    baseline: np.ndarray, candidate: np.ndarray, margin: float, *, paired: bool
) -> tuple[float, float, float]:
    """The ratio TOST on per-unit values (see ratio_tost_from_moments)."""
    return ratio_tost_from_moments(ratio_moments(baseline, candidate, paired=paired), margin)


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
