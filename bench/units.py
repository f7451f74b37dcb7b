"""Numbers for people: one way to print IOPS, bandwidth and latencies everywhere
(tables, compare output, figures)."""

from __future__ import annotations

import math

_STEPS = {  # unit -> (prefixes from the largest, separator)
    "ns": ((("s", 1e9), ("ms", 1e6), ("\u00b5s", 1e3), ("ns", 1.0)), ""),
    "B/s": ((("GiB/s", 2**30), ("MiB/s", 2**20), ("KiB/s", 2**10), ("B/s", 1.0)), " "),
    "": ((("G", 1e9), ("M", 1e6), ("K", 1e3), ("", 1.0)), ""),
}


def si(value: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M'; 'ns' -> '12.3µs'; 'B/s' -> '1.18 GiB/s' (binary prefixes); '-' if absent."""
    if value is None or not math.isfinite(value):
        return "-"
    steps, sep = _STEPS.get(unit, _STEPS[""])
    digits = ".0f" if unit == "ns" else ".3g"
    for i, (prefix, scale) in enumerate(steps):
        if abs(value) >= scale or scale == 1.0:
            text = f"{value / scale:{digits if scale == 1.0 else '.3g'}}"
            # the prefix follows the number as shown: 999,700 IOPS is "1M", never "1e+03K"
            if abs(float(text)) >= 1000 and i > 0:
                prefix, scale = steps[i - 1]
                text = f"{value / scale:.3g}"
            return f"{text}{sep}{prefix}"
    return f"{value:.3g}"


def percent(fraction: float) -> str:
    """0.02 -> '2 %', 0.005 -> '0.5 %', 0.975 -> '97.5 %': as many digits as the value has."""
    return f"{fraction * 100:g} %"


def margin_text(margin: float) -> str:
    """The equivalence margin as every output says it: '±2 %', '±0.5 %'."""
    return "\u00b1" + percent(margin)


def ratio_text(value: float | None, like: float | None = None) -> str:
    """A ratio: three decimals near 1 (1.048, not 1.05); far from 1, three digits; '-' if absent.

    `like` picks the format from another number (a CI bound formatted like its ratio).
    """
    if value is None or not math.isfinite(value):
        return "-"
    ref = value if like is None or not math.isfinite(like) else like
    return f"{value:.3f}" if 0.1 <= ref < 10 else f"{value:.3g}"


def ratio_ci_text(low: float | None, high: float | None, like: float | None = None) -> str:
    """A ratio's confidence interval, '1.036-1.064' (bounds formatted like the ratio), or 'no CI'."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "no CI"
    return f"{ratio_text(low, like)}-{ratio_text(high, like)}"
