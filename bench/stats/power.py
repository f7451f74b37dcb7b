"""Power of the verdict's own tests, and the minimum detectable effect (MDE) derived from it.

Everything is on the scale of the relative difference d = ratio - 1, with `se` the standard
error of the relative difference of the means and `df` the t-test's degrees of freedom: n - 1
for n paired rounds, Welch-Satterthwaite when unpaired.  The tests are the ones `decide` uses:

* "faster"/"slower" needs the two-sided t-test at alpha to reject.  Its power at a true shift d
  is exact for normal data from the noncentral t: P(|T| > t_{1-alpha/2, df}) with T ~
  t'(df, d / se).  (The old z formula, (z + z) x se, ignored the t and claimed 87 % power at
  n = 5 where 66 % was measured.)  At a true shift of a whole margin equivalence is shown
  with probability at most alpha/2, so this is the power of the word "faster" there.
* "equivalent" needs the ratio TOST at alpha/2 per side (see significance.ratio_tost).  Its
  power at a true shift d is P(-m + t_c S < D < m - t_c S), D ~ N(d, se^2) the estimated
  difference and S = se sqrt(X / df), X ~ chi^2_df its estimated SE -- integrated over X by
  quadrature (exact for paired normal data; Welch's df makes it an approximation when unpaired).

The MDE is the smallest shift detected as faster/slower with probability `power`.
`rounds_for_power` turns a pilot's per-round spread into the rounds a point needs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from .defaults import DEFAULT_ALPHA

DEFAULT_POWER = 0.8


def _check(alpha: float, power: float | None = None) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    if power is not None and not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), not {power!r}")


def _usable(se: float, df: float) -> bool:
    return math.isfinite(se) and se > 0 and (math.isfinite(df) or df == math.inf) and df > 0


def power_difference(shift: float, se: float, df: float, *, alpha: float = DEFAULT_ALPHA) -> float:
    """Probability that the two-sided t-test at `alpha` rejects when the true relative difference is `shift`."""
    _check(alpha)
    if not _usable(se, df):
        return math.nan
    nc = abs(shift) / se  # the power is symmetric in the shift
    if df == math.inf:
        z = special.ndtri(1.0 - alpha / 2.0)
        return float(special.ndtr(nc - z) + special.ndtr(-nc - z))
    t_crit = special.stdtrit(df, 1.0 - alpha / 2.0)
    wrong_side = special.nctdtr(df, nc, -t_crit)
    if not math.isfinite(wrong_side):
        # underflow far out in the tail (scipy returns NaN); it is below P(Z < -nc) anyway
        wrong_side = special.ndtr(-nc)
    return float(1.0 - special.nctdtr(df, nc, t_crit) + wrong_side)


_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(128)


def power_equivalence(
    margin: float, se: float, df: float, *, shift: float = 0.0, alpha: float = DEFAULT_ALPHA
) -> float:
    """Probability that the ratio TOST (alpha/2 per side) shows equivalence within ±margin at a true `shift`."""
    _check(alpha)
    if not 0.0 < margin < 1.0:
        raise ValueError(f"margin must be in (0, 1), not {margin!r}")
    if not _usable(se, df):
        return math.nan
    t_crit = special.ndtri(1.0 - alpha / 2.0) if df == math.inf else special.stdtrit(df, 1.0 - alpha / 2.0)

    def given(ratio: np.ndarray) -> np.ndarray:
        # the estimated SE is se x ratio; the band left for the estimate is +-(margin - t S)
        reach = np.maximum(margin - t_crit * se * ratio, 0.0)
        return np.where(
            reach > 0, special.ndtr((reach - shift) / se) - special.ndtr((-reach - shift) / se), 0.0
        )

    if df == math.inf:
        return float(given(np.array([1.0]))[0])
    # R = S / se = sqrt(X / df), X ~ chi^2_df: density 2 df r f_X(df r^2).  Fixed Gauss-Legendre
    # over the part of its range that matters (+-10 sd around 1) and leaves room in the band.
    width = 10.0 / math.sqrt(2.0 * df)
    low, high = max(0.0, 1.0 - width), min(1.0 + width, margin / (t_crit * se))
    if high <= low:
        return 0.0
    r = 0.5 * (high - low) * _NODES + 0.5 * (high + low)
    x = df * r * r
    log_density = (
        math.log(2.0 * df)
        + np.log(r)
        + (df / 2.0 - 1.0) * np.log(x)
        - x / 2.0
        - (df / 2.0) * math.log(2.0)
        - special.gammaln(df / 2.0)
    )
    value = 0.5 * (high - low) * float(np.sum(_WEIGHTS * np.exp(log_density) * given(r)))
    return float(min(1.0, max(0.0, value)))


def minimum_detectable_effect(
    relative_se: float, *, df: float = math.inf, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER
) -> float:
    """Smallest relative difference the verdict calls faster/slower with probability `power`.

    With `df` = inf this is the normal-theory value, ~ (z_{1-alpha/2} + z_power) x se.
    """
    _check(alpha, power)
    if not _usable(relative_se, df):
        return math.nan
    high = relative_se
    while power_difference(high, relative_se, df, alpha=alpha) < power:
        high *= 2.0
    return _root(lambda d: power_difference(d, relative_se, df, alpha=alpha) - power, 0.0, high)


def _root(f, low: float, high: float, tol: float = 1e-12) -> float:
    """The root of an increasing f bracketed by [low, high] (f(low) < 0 <= f(high)), by the
    Illinois variant of regula falsi: as sure as bisection, nearly as fast as Brent's method, and
    without importing scipy.optimize (scipy.sparse and scipy.linalg with it) on every compare."""
    f_low, f_high = f(low), f(high)
    side = 0
    for _ in range(200):
        x = high - f_high * (high - low) / (f_high - f_low) if f_high != f_low else 0.5 * (low + high)
        if not low < x < high:
            x = 0.5 * (low + high)
        f_x = f(x)
        if f_x == 0.0 or high - low <= tol * max(1.0, abs(x)):
            return float(x)
        if f_x < 0.0:
            low, f_low = x, f_x
            if side == -1:
                f_high *= 0.5
            side = -1
        else:
            high, f_high = x, f_x
            if side == 1:
                f_low *= 0.5
            side = 1
    return float(0.5 * (low + high))


def rounds_for_power(
    unit_sd: float,
    margin: float,
    *,
    paired: bool = True,
    alpha: float = DEFAULT_ALPHA,
    power: float = DEFAULT_POWER,
    max_rounds: int = 10_000,
) -> tuple[int, int]:
    """Rounds a point needs for `power` at the margin: (to call a ±margin shift faster/slower,
    to show equivalence when the ratio is 1).

    `unit_sd` is the standard deviation of one round's relative difference (paired: of
    (c_i - b_i) / mean(b); unpaired: sqrt(CV_b^2 + CV_c^2) with n rounds of each target).
    Returns max_rounds + 1 for a goal not reached by max_rounds.
    """
    _check(alpha, power)
    if not (math.isfinite(unit_sd) and unit_sd > 0):
        raise ValueError(f"unit_sd must be positive, not {unit_sd!r}")

    def df_of(n: int) -> float:
        return float(n - 1) if paired else float(2 * n - 2)

    def smallest(achieved) -> int:
        n = 2
        while n <= max_rounds and not achieved(n):
            n = n * 2 if n < 64 else n + 64  # coarse search upward ...
        if n > max_rounds and not achieved(max_rounds):
            return max_rounds + 1
        low = 2
        high = min(n, max_rounds)
        while low < high:  # ... then bisect: power grows with n
            mid = (low + high) // 2
            if achieved(mid):
                high = mid
            else:
                low = mid + 1
        return low

    def detect(n: int) -> bool:
        return power_difference(margin, unit_sd / math.sqrt(n), df_of(n), alpha=alpha) >= power

    def show_equivalence(n: int) -> bool:
        return power_equivalence(margin, unit_sd / math.sqrt(n), df_of(n), alpha=alpha) >= power

    return smallest(detect), smallest(show_equivalence)
