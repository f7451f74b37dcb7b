"""Resolution of a comparison: the minimum detectable effect (MDE).

MDE = (z_{1-alpha/2} + z_{power}) x relative standard error of the ratio.  For two independent
samples of n with coefficient of variation CV this is the textbook (z + z) CV sqrt(2/n): with
CV 1 %, n = 40, alpha 0.05 and power 0.8 it is ~0.63 %.  It uses z, as the formula people quote
does, so for very small n it is optimistic (a t-based value would be larger); the verdict never
rests on it, it only tells the reader what size of difference the data could have seen.
"""

from __future__ import annotations

import math

from scipy import special


def minimum_detectable_effect(
    relative_se: float, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest relative difference detected with probability `power` by a two-sided test."""
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise ValueError("alpha and power must be in (0, 1)")
    if not math.isfinite(relative_se) or relative_se < 0:
        return math.nan
    return float((special.ndtri(1.0 - alpha / 2.0) + special.ndtri(power)) * relative_se)
