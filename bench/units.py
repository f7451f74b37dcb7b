"""Numbers for people: one way to print IOPS, bandwidth and latencies everywhere
(tables, compare output, figures)."""

from __future__ import annotations

import math


def si(value: float | None, unit: str = "") -> str:
    """1234567 -> '1.23M'; 'ns' -> '12.3µs'; 'B/s' -> '1.18 GiB/s' (binary prefixes); '-' if absent."""
    if value is None or not math.isfinite(value):
        return "-"
    if unit == "ns":
        return _prefixed(value, (("s", 1e9), ("ms", 1e6), ("µs", 1e3)), "", "{:.0f}ns")
    if unit == "B/s":
        return _prefixed(value, (("GiB/s", 2**30), ("MiB/s", 2**20), ("KiB/s", 2**10)), " ", "{:.3g} B/s")
    return _prefixed(value, (("G", 1e9), ("M", 1e6), ("K", 1e3)), "", "{:.3g}")


def _prefixed(value: float, prefixes: tuple[tuple[str, float], ...], gap: str, bare: str) -> str:
    """Three significant digits under the largest prefix (largest first) the value reaches, one
    up when rounding to three digits makes it 1000 or more: 999,600 reads '1M', not '1e+03K'.
    Below the smallest prefix, `bare` formats the value."""
    levels = [*prefixes, ("", 1.0)]
    i = next((k for k, (_, scale) in enumerate(levels) if abs(value) >= scale), len(levels) - 1)
    if i > 0 and abs(float(f"{value / levels[i][1]:.3g}")) >= 1000:
        i -= 1
    if i == len(levels) - 1:
        return bare.format(value)
    prefix, scale = levels[i]
    return f"{value / scale:.3g}{gap}{prefix}"
