"""Latency percentiles from fio's json+ histograms, pooled across repetitions.

fio's json+ output gives, per run, `clat_ns.bins` = {"<bucket value in ns>": count} for the
non-empty buckets of its log-linear histogram.  Repetitions are pooled by adding the counts
bucket by bucket; percentiles are then read off the merged histogram.  Averaging per-run
percentiles instead would be wrong: the mean of p99s is not the p99 of anything.

The percentile definition is fio's own (stat.c, calc_clat_percentiles): the value of the first
bucket, in increasing order, whose cumulative count reaches p/100 x total.  fio evaluates the
threshold in long double; here it is evaluated exactly (the requested p is converted to the
same binary double fio parses and compared as a rational), which agrees with fio except where
long double rounding itself would flip a comparison, ~1e-19 relative, i.e. never in practice.
So for a single run the p99 here equals the p99 fio printed for that run.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from fractions import Fraction
from itertools import accumulate

import numpy as np

DEFAULT_PERCENTILES = (50.0, 99.0, 99.9)


def _bucket_value(key: str | int) -> int:
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        return int(key)
    text = str(key).strip()
    try:
        return int(text)
    except ValueError:
        value = float(text)  # some producers write "1234.0"
        if not value.is_integer():
            raise ValueError(f"histogram bucket {key!r} is not an integer latency") from None
        return int(value)


def _count(value: object, key: object) -> int:
    count = float(value)  # type: ignore[arg-type]
    if not count.is_integer() or count < 0:
        raise ValueError(f"histogram bucket {key!r} has an invalid count {value!r}")
    return int(count)


def merge_bins(bin_dicts: Iterable[Mapping[str | int, int]]) -> dict[int, int]:
    """Add up fio histograms bucket by bucket; returns {bucket value: count} sorted by value."""
    merged: dict[int, int] = {}
    get = merged.get
    for bins in bin_dicts:
        for key, value in bins.items():
            # fast path for what bench.fio gives (int: int); anything else is read and checked
            if type(key) is not int or type(value) is not int or value < 0:
                key, value = _bucket_value(key), _count(value, key)
            merged[key] = get(key, 0) + value
    return {bucket: merged[bucket] for bucket in sorted(merged) if merged[bucket] > 0}


def _sorted_buckets(bins: Mapping[str | int, int]) -> tuple[list[int], list[int]]:
    merged = merge_bins([bins])
    return list(merged), list(merged.values())


def percentiles_from_bins(
    bins: Mapping[str | int, int], percentiles: Iterable[float] = DEFAULT_PERCENTILES
) -> dict[float, float]:
    """fio-style percentiles {p: bucket value} of one (possibly merged) histogram.

    Each p must be in (0, 100].  An empty histogram gives NaN for every p.
    """
    wanted = [float(p) for p in percentiles]
    for p in wanted:
        if not 0.0 < p <= 100.0:
            raise ValueError(f"percentile {p!r} is outside (0, 100]")
    values, counts = _sorted_buckets(bins)
    total = sum(counts)
    if total == 0:
        return {p: math.nan for p in wanted}
    cumulative = list(accumulate(counts))  # Python ints: exact against the Fraction below
    result: dict[float, float] = {}
    for p in wanted:
        # first bucket with cumulative >= p/100 * total; cumulative counts are integers, so that
        # is the first one >= the exact threshold rounded up (a binary search, not a scan)
        threshold = math.ceil(Fraction(p) * total / 100)
        result[p] = values[bisect_left(cumulative, threshold)]
    return result


def cdf_from_bins(bins: Mapping[str | int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(bucket values in ns, fraction of I/Os at or below each) for plotting a latency CDF."""
    values, counts = _sorted_buckets(bins)
    total = sum(counts)
    if total == 0:
        return np.array([], dtype=float), np.array([], dtype=float)
    return np.asarray(values, dtype=float), np.cumsum(counts, dtype=float) / total
