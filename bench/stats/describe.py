"""Summary of one target's values at one point: location, spread and a CI of the mean.

The values are one number per fio run (IOPS, bandwidth, mean latency, ...).  The CI is a
seeded expanded-percentile bootstrap of the mean (see `bootstrap`), so the same values and seed
always give the same interval.  Like any bootstrap it cannot reach beyond the range of the
data, so below ~6 values it covers less than it claims (the ratio CI in `compare`, which the
verdicts use, is protected against this; this one is descriptive).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ._json import JsonDataclass
from .bootstrap import (
    DEFAULT_N_BOOT,
    STREAM_DESCRIBE,
    check_confidence,
    expanded_tail,
    percentile_interval,
    resampled_means,
)

CI_METHOD = "expanded percentile bootstrap of the mean"


@dataclass(frozen=True)
class Summary(JsonDataclass):
    n: int
    mean: float
    median: float
    stdev: float  # sample standard deviation (n - 1 in the denominator)
    cv: float  # stdev / mean
    min: float
    max: float
    ci_low: float  # CI of the mean; NaN when n < 2
    ci_high: float
    confidence: float
    ci_method: str
    n_boot: int
    seed: int


def as_values(values: Iterable[float], what: str = "values") -> np.ndarray:
    """Values as a 1-D float array; rejects NaN and infinity (a failed run is not a number)."""
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} contain NaN or infinity")
    return array


def describe(
    values: Iterable[float],
    *,
    confidence: float = 0.95,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> Summary:
    """Describe one sample.  n = 0 gives NaNs everywhere, n = 1 a NaN CI and spread."""
    check_confidence(confidence)
    data = as_values(values)
    n = int(data.size)
    nan = math.nan
    if n == 0:
        return Summary(0, nan, nan, nan, nan, nan, nan, nan, nan, confidence, CI_METHOD, n_boot, seed)
    mean = float(np.mean(data))
    stdev = float(np.std(data, ddof=1)) if n > 1 else nan
    cv = stdev / mean if mean != 0 else nan
    ci_low = ci_high = nan
    if n > 1:
        means = resampled_means(data, n_boot=n_boot, seed=seed, stream=STREAM_DESCRIBE)
        ci_low, ci_high = percentile_interval(means, expanded_tail(n, confidence))
    return Summary(
        n=n,
        mean=mean,
        median=float(np.median(data)),
        stdev=stdev,
        cv=cv,
        min=float(data.min()),
        max=float(data.max()),
        ci_low=ci_low,
        ci_high=ci_high,
        confidence=confidence,
        ci_method=CI_METHOD,
        n_boot=n_boot,
        seed=seed,
    )
