"""Across points: the geometric mean of the ratios with a CI, and how many points went which way.

Ratios are averaged geometrically (Fleming & Wallace 1986): a point 2x faster and one 2x
slower average to 1, whatever the units.  The CI answers "what is the typical ratio over
workloads like these?", treating the points as a sample of workloads:

* "log-t" (default): mean of log ratios +- t_{k-1} x sd / sqrt(k), exponentiated.
* "bootstrap": expanded percentile bootstrap over points (seeded).

Either way the interval includes the genuine differences between points, so it is wider than
the per-point measurement error alone, and a geometric mean near 1 with points both faster and
slower is not "equivalent" at every point: read the counts next to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ._json import JsonDataclass
from .bootstrap import (
    DEFAULT_N_BOOT,
    STREAM_POINTS,
    check_confidence,
    expanded_tail,
    percentile_interval,
    resampled_means,
)
from .verdict import VERDICTS, Verdict

AGGREGATE_METHODS = ("log-t", "bootstrap")


@dataclass(frozen=True)
class AcrossPoints(JsonDataclass):
    k: int  # points with a usable ratio
    geomean_ratio: float  # candidate / baseline
    ci_low: float
    ci_high: float
    confidence: float
    method: str
    higher_is_better: bool | None  # None when there were no points
    counts: dict[str, int]  # verdict word -> number of points (all four words present)
    points_without_ratio: int


def summarize_points(
    verdicts: Sequence[Verdict],
    *,
    confidence: float = 0.95,
    method: str = "log-t",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> AcrossPoints:
    """Geometric mean of the per-point ratios with its CI, and the verdict counts.

    All verdicts must be about metrics going the same way (aggregate one metric at a time).
    """
    check_confidence(confidence)
    if method not in AGGREGATE_METHODS:
        raise ValueError(f"method must be one of {AGGREGATE_METHODS}, not {method!r}")
    directions = {v.higher_is_better for v in verdicts}
    if len(directions) > 1:
        raise ValueError("verdicts mix higher-is-better and lower-is-better metrics: aggregate one metric at a time")
    counts = {word: 0 for word in VERDICTS}
    for v in verdicts:
        counts[v.verdict] += 1
    ratios = np.array([v.ratio for v in verdicts], dtype=float)
    usable = ratios[np.isfinite(ratios) & (ratios > 0)]
    k = int(usable.size)
    logs = np.log(usable)
    geomean = float(np.exp(logs.mean())) if k else math.nan
    low = high = math.nan
    if k >= 2:
        if method == "log-t":
            t_crit = stats.t.ppf(0.5 + confidence / 2.0, k - 1)
            half = t_crit * np.std(logs, ddof=1) / math.sqrt(k)
            low, high = float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))
        else:
            means = resampled_means(logs, n_boot=n_boot, seed=seed, stream=STREAM_POINTS)
            log_low, log_high = percentile_interval(means, expanded_tail(k, confidence))
            low, high = math.exp(log_low), math.exp(log_high)
    return AcrossPoints(
        k=k,
        geomean_ratio=geomean,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        method=method,
        higher_is_better=next(iter(directions)) if directions else None,
        counts=counts,
        points_without_ratio=len(verdicts) - k,
    )
