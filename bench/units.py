"""Numbers for people: one way to print IOPS, bandwidth and latencies everywhere
(tables, compare output, figures)."""

from __future__ import annotations

import math


def si(value: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M'; 'ns' -> '12.3µs'; 'B/s' -> '1.18 GiB/s' (binary prefixes); '-' if absent."""
    if value is None or not math.isfinite(value):
        return "-"
    if unit == "ns":
        for prefix, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
            if abs(value) >= scale:
                return f"{value / scale:.3g}{prefix}"
        return f"{value:.0f}ns"
    if unit == "B/s":
        for prefix, scale in (("GiB/s", 2**30), ("MiB/s", 2**20), ("KiB/s", 2**10)):
            if abs(value) >= scale:
                return f"{value / scale:.3g} {prefix}"
        return f"{value:.3g} B/s"
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{prefix}"
    return f"{value:.3g}"
