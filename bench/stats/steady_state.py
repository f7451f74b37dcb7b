"""Steady state of a preconditioned device (SNIA Solid State Storage PTS 2.0, section 2.1): may
the rounds from here on count as measurements?

The tracked metric is one number per round (e.g. the round's mean IOPS). A window of `window`
consecutive rounds (5) is steady when, relative to the window's average ȳ,
* the data excursion max(y) − min(y) is at most `max_excursion` · ȳ (20 %),
* the least-squares line through the window changes by at most `max_slope_change` · ȳ from the
  window's first round to its last (|slope| · (window − 1); 10 %), and
* every round lies within `band` · ȳ of that line (5 %).
The first steady window is where measurement may start; a series with none is not steady (the
answer names the last window's numbers and which criterion failed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class WindowCheck:
    start: int  # index of the window's first round
    mean: float
    slope: float  # per round, of the least-squares line
    intercept: float  # the line's value at the window's first round
    excursion: float  # (max - min) / mean
    slope_change: float  # |slope| * (window - 1) / mean
    max_deviation: float  # max |y - line| / mean
    failed: tuple[str, ...]  # criteria not met: "excursion", "slope", "band", "mean" (<= 0)

    @property
    def steady(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class SteadyState:
    steady: bool
    window: int
    thresholds: dict[str, float]
    rounds: tuple[float, ...]
    check: WindowCheck | None  # the first steady window, else the last window (None: too few rounds)
    reason: str

    def record(self) -> dict:
        return asdict(self) | {"check": asdict(self.check) if self.check else None}


def check_window(
    values: Sequence[float], start: int, max_excursion: float, max_slope_change: float, band: float
):
    """The three criteria on one window (values are that window's rounds)."""
    n = len(values)
    mean = sum(values) / n
    xbar = (n - 1) / 2
    sxx = sum((x - xbar) ** 2 for x in range(n))
    slope = sum((x - xbar) * (y - mean) for x, y in enumerate(values)) / sxx
    intercept = mean - slope * xbar
    if mean <= 0:
        return WindowCheck(start, mean, slope, intercept, float("inf"), float("inf"), float("inf"), ("mean",))
    excursion = (max(values) - min(values)) / mean
    slope_change = abs(slope) * (n - 1) / mean
    deviation = max(abs(y - (intercept + slope * x)) for x, y in enumerate(values)) / mean
    failed = tuple(
        name
        for name, bad in (
            ("excursion", excursion > max_excursion),
            ("slope", slope_change > max_slope_change),
            ("band", deviation > band),
        )
        if bad
    )
    return WindowCheck(start, mean, slope, intercept, excursion, slope_change, deviation, failed)


def steady_state(
    rounds: Sequence[float],
    window: int = 5,
    max_excursion: float = 0.20,
    max_slope_change: float = 0.10,
    band: float = 0.05,
) -> SteadyState:
    """The first steady window of `rounds` (see the module docstring), or why there is none."""
    if window < 3:
        raise ValueError("a steady-state window needs at least 3 rounds (a line through 2 fits exactly)")
    thresholds = {"max_excursion": max_excursion, "max_slope_change": max_slope_change, "band": band}
    values = tuple(float(v) for v in rounds)
    if len(values) < window:
        return SteadyState(
            False, window, thresholds, values, None, f"{len(values)} round(s), a window needs {window}"
        )
    last = None
    for start in range(len(values) - window + 1):
        last = check_window(values[start : start + window], start, max_excursion, max_slope_change, band)
        if last.steady:
            return SteadyState(
                True,
                window,
                thresholds,
                values,
                last,
                f"steady from round {start + 1} (rounds {start + 1}-{start + window})",
            )
    assert last is not None
    return SteadyState(
        False,
        window,
        thresholds,
        values,
        last,
        f"not steady: the last window (rounds {last.start + 1}-{last.start + window}) fails "
        + ", ".join(last.failed),
    )
