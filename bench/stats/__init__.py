"""Statistics for blkcmp: pure functions from per-run numbers to verdicts.

Per target and point: `describe` (Summary), `quality_report` / `quality_flags`.
Latency histograms from fio json+: `merge_bins`, `percentiles_from_bins`, `cdf_from_bins`.
Candidate vs baseline per point: `compare` (Comparison).
Across points: `adjust_pvalues`, `decide` (Verdict per point), `summarize_points` (AcrossPoints, from the
verdicts and each point's runs, `PointRuns`).
Repetitions: `adaptive_decision` (Decision), `sequential_confidence` for adaptive campaigns.

No file or process I/O here; every result is a frozen dataclass with a JSON-safe `to_dict()`.
"""

from .adaptive import (
    DEFAULT_MAX_ROUNDS,
    DEFAULT_MIN_ROUNDS,
    DEFAULT_TARGET_CI,
    Decision,
    adaptive_decision,
    sequential_confidence,
)
from .aggregate import AcrossPoints, PointRuns, summarize_points
from .bootstrap import DEFAULT_N_BOOT
from .compare import DEFAULT_ALPHA, DEFAULT_MARGIN, Comparison, compare
from .correction import adjust_pvalues
from .describe import Summary, describe
from .fieller import fieller_from_samples, fieller_interval
from .histogram import cdf_from_bins, merge_bins, percentiles_from_bins
from .power import minimum_detectable_effect, power_difference, power_equivalence, rounds_for_power
from .quality import Quality, quality_flags, quality_report
from .rank import cliffs_delta, hodges_lehmann
from .verdict import EQUIVALENT, FASTER, INCONCLUSIVE, SLOWER, VERDICTS, Verdict, decide

__all__ = [
    "AcrossPoints",
    "Comparison",
    "DEFAULT_ALPHA",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_ROUNDS",
    "DEFAULT_MIN_ROUNDS",
    "DEFAULT_N_BOOT",
    "DEFAULT_TARGET_CI",
    "Decision",
    "EQUIVALENT",
    "FASTER",
    "INCONCLUSIVE",
    "PointRuns",
    "Quality",
    "SLOWER",
    "Summary",
    "VERDICTS",
    "Verdict",
    "adaptive_decision",
    "adjust_pvalues",
    "cdf_from_bins",
    "cliffs_delta",
    "compare",
    "decide",
    "describe",
    "fieller_from_samples",
    "fieller_interval",
    "hodges_lehmann",
    "merge_bins",
    "minimum_detectable_effect",
    "percentiles_from_bins",
    "power_difference",
    "power_equivalence",
    "quality_flags",
    "quality_report",
    "rounds_for_power",
    "sequential_confidence",
    "summarize_points",
]
