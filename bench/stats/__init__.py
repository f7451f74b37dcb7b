"""Statistics for blkcmp: pure functions from per-run numbers to verdicts.

Per target and point: `describe` (Summary), `quality_report` / `quality_flags`.
Latency histograms from fio json+: `merge_bins`, `percentiles_from_bins`, `cdf_from_bins`.
Candidate vs baseline per point: `compare` (Comparison).
Across points: `adjust_pvalues`, `decide` (Verdict per point), `summarize_points` (AcrossPoints, from the
verdicts and each point's runs, `PointRuns`).
Repetitions: `adaptive_decision` (Decision), `sequential_confidence` for adaptive campaigns.

No file or process I/O here; every result is a frozen dataclass with a JSON-safe `to_dict()`.
"""

import sys
import types
from importlib import import_module

# Loaded on first use (PEP 562): reading fio output needs only `histogram` (numpy), and every
# `blkcmp ingest`/`export` would otherwise pay ~1 s importing scipy for the rest.
_HOMES = {
    "adaptive": (
        "DEFAULT_MAX_ROUNDS",
        "DEFAULT_MIN_ROUNDS",
        "DEFAULT_TARGET_CI",
        "Decision",
        "adaptive_decision",
        "sequential_confidence",
    ),
    "aggregate": ("AcrossPoints", "PointRuns", "summarize_points"),
    "bootstrap": ("DEFAULT_N_BOOT",),
    "compare": ("Comparison", "compare"),
    "defaults": ("CORRECTIONS", "DEFAULT_ALPHA", "DEFAULT_CORRECTION", "DEFAULT_MARGIN"),
    "correction": ("adjust_pvalues",),
    "describe": ("Summary", "describe"),
    "gap": ("GapComparison", "compare_gap"),
    "fieller": ("fieller_from_samples", "fieller_interval"),
    "histogram": ("cdf_from_bins", "merge_bins", "percentiles_from_bins"),
    "power": ("minimum_detectable_effect", "power_difference", "power_equivalence", "rounds_for_power"),
    "quality": ("Quality", "quality_flags", "quality_report"),
    "rank": ("cliffs_delta", "hodges_lehmann"),
    "verdict": ("EQUIVALENT", "FASTER", "INCONCLUSIVE", "SLOWER", "VERDICTS", "Verdict", "decide"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str):
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME_OF))


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value) -> None:
        # Importing submodule `compare` (or `describe`) sets it as an attribute of this package,
        # which would hide the function of the same name; the functions are what callers want.
        if isinstance(value, types.ModuleType) and name in _HOME_OF:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "AcrossPoints",
    "CORRECTIONS",
    "Comparison",
    "DEFAULT_ALPHA",
    "DEFAULT_CORRECTION",
    "DEFAULT_MARGIN",
    "DEFAULT_MAX_ROUNDS",
    "DEFAULT_MIN_ROUNDS",
    "DEFAULT_N_BOOT",
    "DEFAULT_TARGET_CI",
    "Decision",
    "EQUIVALENT",
    "FASTER",
    "GapComparison",
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
    "compare_gap",
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
