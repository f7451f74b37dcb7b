"""Data-quality flags for one target at one point: is this sample fit to be summarised by a mean?

* "multimodal": bimodality coefficient BC = (g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3))), with g
  and k the bias-corrected skewness and excess kurtosis; BC > 5/9 (its value for a uniform
  distribution) suggests two modes (SAS Institute; Pfister et al. 2013).  Only from n >= 10:
  below that it is noise.  It is a screening statistic with modest power (a 50/50 mixture of
  modes 4 sd apart is flagged ~40 % of the time at n = 40) and it also reacts to strong skew,
  so a single stray run is set aside before computing it (a mode needs two runs).  Boot-level
  bimodality (one mode per boot) is invisible within one boot whatever the test.
* "outliers": modified z-score |M| > 3.5 with M = 0.6745 (x - median) / MAD (Iglewicz &
  Hoaglin 1993).  When the MAD is 0 (over half the values equal) the mean absolute deviation
  is used instead, M = (x - median) / (1.253314 MeanAD).
* "drift": Spearman rank correlation of value against run order, p < drift_alpha (0.01: with
  hundreds of point x target cells a 5 % flag rate would drown real drift in false alarms).
  Needs n >= 5.
* "underpowered": the verdict's own tests lack 80 % power at this point's spread and n: the
  minimum detectable effect (noncentral t, see power.py) exceeds the margin -- a real
  difference as large as the margin would probably not be called faster/slower -- or (when
  given) the power to show equivalence of identical drivers is below 80 %, or either could
  not be computed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from ._json import JsonDataclass
from .describe import as_values

BIMODALITY_THRESHOLD = 5.0 / 9.0
MIN_N_MODALITY = 10
MODIFIED_Z_THRESHOLD = 3.5
MIN_N_DRIFT = 5
DEFAULT_DRIFT_ALPHA = 0.01
REQUIRED_POWER = 0.8  # the power the MDE is computed for

MULTIMODAL = "multimodal"
OUTLIERS = "outliers"
DRIFT = "drift"
UNDERPOWERED = "underpowered"


@dataclass(frozen=True)
class Quality(JsonDataclass):
    n: int
    bimodality_coefficient: float  # NaN when n < MIN_N_MODALITY or no spread
    outlier_indices: tuple[int, ...]  # positions in the input values
    max_abs_modified_z: float
    drift_rho: float  # Spearman correlation of value with run order
    drift_p: float
    mde: float
    margin: float
    equivalence_power: float  # NaN when not given
    flags: tuple[str, ...]


def modified_z_scores(values: np.ndarray) -> np.ndarray:
    """Iglewicz-Hoaglin modified z-scores; zeros when the values do not spread at all."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return x.copy()
    median = np.median(x)
    deviation = x - median
    mad = np.median(np.abs(deviation))
    if mad > 0:
        return 0.6745 * deviation / mad
    mean_ad = np.mean(np.abs(deviation))
    if mean_ad > 0:
        return deviation / (1.253314 * mean_ad)
    return np.zeros_like(x)


def bimodality_coefficient(values: np.ndarray) -> float:
    """Sample bimodality coefficient; NaN for n < 4 or values without spread."""
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 4 or np.ptp(x) == 0:
        return math.nan
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        skew, kurtosis = _skew_kurtosis(x)
    value = (skew**2 + 1.0) / (kurtosis + 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    return value if math.isfinite(value) else math.nan


def _skew_kurtosis(x: np.ndarray) -> tuple[float, float]:
    """Bias-corrected sample skewness G1 and excess kurtosis G2 (scipy.stats.skew/kurtosis with
    bias=False), in numpy: importing scipy.stats costs every `compare` about half a second."""
    n = x.size
    deviation = x - x.mean()
    squared = deviation * deviation
    m2, m3, m4 = squared.mean(), (squared * deviation).mean(), (squared * squared).mean()
    skew = math.sqrt((n - 1.0) * n) / (n - 2.0) * m3 / m2**1.5
    kurtosis = 1.0 / (n - 2) / (n - 3) * ((n**2 - 1.0) * m4 / m2**2.0 - 3 * (n - 1) ** 2.0)
    return float(skew), float(kurtosis)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (scipy.stats.rankdata's default)."""
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group = np.cumsum(starts) - 1
    first = np.nonzero(starts)[0]
    last = np.concatenate((first[1:], [x.size])) - 1
    ranks = np.empty(x.size)
    ranks[order] = (first[group] + last[group]) / 2.0 + 1.0
    return ranks


def spearman(order: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value from the t distribution with n - 2 df
    (scipy.stats.spearmanr's), in numpy and scipy.special."""
    a, b = _average_ranks(order), _average_ranks(x)
    a, b = a - a.mean(), b - b.mean()
    with np.errstate(all="ignore"):
        rho = np.clip((a @ b) / np.sqrt((a @ a) * (b @ b)), -1.0, 1.0)
        df = x.size - 2
        t = rho * np.sqrt(df / ((rho + 1.0) * (1.0 - rho)))  # infinite at rho = +-1: p = 0
        p = 2.0 * special.stdtr(df, -np.abs(t))
    return float(rho), float(p)


def quality_report(
    values: Sequence[float],
    positions: Sequence[float] | None = None,
    *,
    mde: float,
    margin: float,
    equivalence_power: float | None = None,
    drift_alpha: float = DEFAULT_DRIFT_ALPHA,
) -> Quality:
    """All checks with their numbers; `positions` is each value's place in the campaign's run order."""
    x = as_values(values)
    n = int(x.size)
    flags: list[str] = []

    z = modified_z_scores(x)
    outliers = tuple(int(i) for i in np.nonzero(np.abs(z) > MODIFIED_Z_THRESHOLD)[0])
    if outliers:
        flags.append(OUTLIERS)

    bc = math.nan
    if n >= MIN_N_MODALITY:
        kept = np.delete(x, outliers) if len(outliers) == 1 else x
        bc = bimodality_coefficient(kept)
        if math.isfinite(bc) and bc > BIMODALITY_THRESHOLD:
            flags.insert(0, MULTIMODAL)

    rho = p = math.nan
    if positions is not None:
        order = as_values(positions, "positions")
        if order.size != n:
            raise ValueError(f"{order.size} positions for {n} values")
        if n >= MIN_N_DRIFT and np.ptp(x) > 0 and np.ptp(order) > 0:
            rho, p = spearman(order, x)
            if math.isfinite(p) and p < drift_alpha:
                flags.append(DRIFT)

    weak_equivalence = equivalence_power is not None and not equivalence_power >= REQUIRED_POWER
    if not (math.isfinite(mde) and mde <= margin) or weak_equivalence:
        flags.append(UNDERPOWERED)

    return Quality(
        n=n,
        bimodality_coefficient=bc,
        outlier_indices=outliers,
        max_abs_modified_z=float(np.max(np.abs(z))) if n else math.nan,
        drift_rho=rho,
        drift_p=p,
        mde=float(mde),
        margin=float(margin),
        equivalence_power=math.nan if equivalence_power is None else float(equivalence_power),
        flags=tuple(flags),
    )


def quality_flags(
    values: Sequence[float],
    positions: Sequence[float] | None,
    *,
    mde: float,
    margin: float,
    equivalence_power: float | None = None,
) -> list[str]:
    """Names of the checks that failed, among multimodal, outliers, drift, underpowered."""
    return list(
        quality_report(values, positions, mde=mde, margin=margin, equivalence_power=equivalence_power).flags
    )
