"""Rank-based effect sizes: the Hodges-Lehmann shift with its exact CI, and Cliff's delta.

Both are robust cross-checks on the ratio of means: they do not care about one wild run and
make no normality assumption.  The Hodges-Lehmann CI is the distribution-free Moses interval:
order the m*n pairwise differences and cut k from each end, with k taken from the exact null
distribution of the Mann-Whitney U statistic (normal approximation beyond 50 per sample).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import special

from .bootstrap import check_confidence

_EXACT_LIMIT = 50  # per sample; the exact U table is O(m * n * m*n) to build


@lru_cache(maxsize=64)
def u_null_cdf(m: int, n: int) -> np.ndarray:
    """P(U <= u) for u = 0 .. m*n under H0, U the Mann-Whitney count for sizes m and n (no ties).

    Built from the recurrence N(i, j, u) = N(i-1, j, u-j) + N(i, j-1, u): the largest of the
    i + j values belongs either to the first sample (beating all j of the second) or not.
    """
    if m < 0 or n < 0:
        raise ValueError("sample sizes must be non-negative")
    size = m * n + 1
    # previous[j] holds the counts N(i-1, j, .); start with i = 0, where only U = 0 is possible.
    previous = np.zeros((n + 1, size))
    previous[:, 0] = 1.0
    for _ in range(1, m + 1):
        current = np.zeros((n + 1, size))
        current[0, 0] = 1.0
        for j in range(1, n + 1):
            current[j, j:] += previous[j, : size - j]
            current[j] += current[j - 1]
        previous = current
    counts = previous[n]
    cdf = np.cumsum(counts) / special.comb(m + n, m)
    cdf.flags.writeable = False
    return cdf


def _moses_k(m: int, n: int, confidence: float) -> int:
    """How many ordered differences to cut from each end; 0 when no interval is possible."""
    tail = (1.0 - confidence) / 2.0
    if m <= _EXACT_LIMIT and n <= _EXACT_LIMIT:
        cdf = u_null_cdf(m, n)
        # k - 1 is the largest u with P(U <= u) <= tail, so coverage is >= confidence.
        admissible = np.nonzero(cdf <= tail * (1 + 1e-12))[0]
        return int(admissible[-1]) + 1 if admissible.size else 0
    z = special.ndtri(1.0 - tail)  # standard normal quantile
    return max(0, math.floor(m * n / 2.0 - z * math.sqrt(m * n * (m + n + 1) / 12.0)))


def hodges_lehmann(
    baseline: np.ndarray, candidate: np.ndarray, *, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Two-sample Hodges-Lehmann shift candidate - baseline, with its Moses CI.

    Returns (shift, ci_low, ci_high); the CI is NaN when the samples are too small for any
    interval at this confidence (e.g. 3 and 3 at 95 %), the shift NaN for an empty sample.
    """
    check_confidence(confidence)
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    m, n = c.size, b.size
    if m == 0 or n == 0:
        return math.nan, math.nan, math.nan
    differences = np.sort(np.subtract.outer(c, b).ravel())
    shift = float(np.median(differences))
    k = _moses_k(m, n, confidence)
    if k == 0:
        return shift, math.nan, math.nan
    return shift, float(differences[k - 1]), float(differences[m * n - k])


def cliffs_delta(baseline: np.ndarray, candidate: np.ndarray) -> float:
    """P(candidate > baseline) - P(candidate < baseline) over all pairs, in [-1, 1]."""
    b = np.asarray(baseline, dtype=float)
    c = np.asarray(candidate, dtype=float)
    if b.size == 0 or c.size == 0:
        return math.nan
    signs = np.sign(np.subtract.outer(c, b))
    return float(signs.mean())
