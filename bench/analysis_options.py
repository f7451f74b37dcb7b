"""The options of an analysis — metric, margin, alpha, correction, sides, baseline, seed — as one
checked value.

`compare`, `plot`, `report` and `plan --pilot` turn their arguments into an `AnalysisOptions`
with `AnalysisOptions.parse` right after the command line is read: a bad value is one line naming
the option and what it takes (exit 2), before any campaign is opened. Everything below
(bench.analysis, the figures, the report, the sizing) takes the checked value and never checks
again. The defaults are bench.stats.defaults'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from bench.errors import UsageError, shorten
from bench.stats.defaults import (
    CORRECTIONS,
    DEFAULT_ALPHA,
    DEFAULT_CORRECTION,
    DEFAULT_MARGIN,
)
from bench.units import margin_text


@dataclass(frozen=True)
class Metric:
    name: str
    column: str
    higher_is_better: bool
    label: str
    unit: str


METRICS = {
    m.name: m
    for m in (
        Metric("iops", "iops", True, "IOPS", "IOPS"),
        Metric("bw", "bw_bytes", True, "bandwidth", "B/s"),
        Metric("read_iops", "read_iops", True, "read IOPS", "IOPS"),
        Metric("write_iops", "write_iops", True, "write IOPS", "IOPS"),
        Metric("clat_mean", "clat_mean_ns", False, "mean completion latency", "ns"),
        Metric("clat_p50", "clat_p50_ns", False, "p50 completion latency", "ns"),
        Metric("clat_p99", "clat_p99_ns", False, "p99 completion latency", "ns"),
        Metric("clat_p999", "clat_p999_ns", False, "p99.9 completion latency", "ns"),
    )
}
DEFAULT_METRIC = "iops"
# What runs are grouped into sides by, besides any matrix key ("gap": the candidate/baseline
# ratio compared across kernels, bench.kernel_gap).
SIDES = ("target", "kernel", "host", "gap")


@dataclass(frozen=True)
class AnalysisOptions:
    metric: Metric = METRICS[DEFAULT_METRIC]
    margin: float = DEFAULT_MARGIN
    alpha: float = DEFAULT_ALPHA
    correction: str = DEFAULT_CORRECTION
    by: str = "target"
    baseline: str | None = None  # the baseline side's name; None: the workload's baseline (or the first)
    seed: int = 0  # of the bootstraps

    @property
    def correction_name(self) -> str:
        return CORRECTIONS[self.correction]

    @property
    def margin_text(self) -> str:
        return margin_text(self.margin)

    def with_baseline(self, baseline: str | None) -> AnalysisOptions:
        return replace(self, baseline=baseline)

    @classmethod
    def parse(
        cls,
        *,
        metric: str = DEFAULT_METRIC,
        margin: float = DEFAULT_MARGIN,
        alpha: float = DEFAULT_ALPHA,
        correction: str = DEFAULT_CORRECTION,
        by: str = "target",
        baseline: str | None = None,
        seed: int = 0,
    ) -> AnalysisOptions:
        """The options as given on the command line, checked; UsageError naming the option otherwise."""
        if metric not in METRICS:
            raise UsageError(f"--metric {shorten(metric)}: expected one of {', '.join(METRICS)}")
        if not (math.isfinite(margin) and 0 < margin < 1):
            raise UsageError(
                f"--margin {margin:g}: expected a fraction between 0 and 1 "
                f"({DEFAULT_MARGIN:g} = {margin_text(DEFAULT_MARGIN)})"
            )
        if not (math.isfinite(alpha) and 0 < alpha < 1):
            raise UsageError(f"--alpha {alpha:g}: expected a probability between 0 and 1")
        if correction not in CORRECTIONS:
            raise UsageError(f"--correction {shorten(correction)}: expected one of {', '.join(CORRECTIONS)}")
        if not by:
            raise UsageError(f"--by: expected {', '.join(SIDES)} or a matrix key")
        return cls(
            METRICS[metric],
            float(margin),
            float(alpha),
            correction,
            by,
            _baseline_side(baseline, by),
            int(seed),
        )


DEFAULTS = AnalysisOptions()


def _baseline_side(spec: str | None, by: str) -> str | None:
    """`--baseline target=NAME` (or NAME alone) as the baseline side's name."""
    if spec is None:
        return None
    key, sep, value = spec.partition("=")
    if not sep:
        return spec
    if key != by and not (by == "gap" and key == "kernel"):  # --by gap: the reference kernel
        raise UsageError(f"--baseline {shorten(spec)}: names {key!r} but the comparison is --by {by}")
    if not value:
        raise UsageError(f"--baseline {shorten(spec)}: give a name after '=' ({by}=NAME)")
    return value
