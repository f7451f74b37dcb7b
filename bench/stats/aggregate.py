"""Across points: the geometric mean of the ratios with a CI from the runs, and the verdict counts.

Ratios are averaged geometrically (Fleming & Wallace 1986): a point 2x faster and one 2x
slower average to 1, whatever the units.

The CI is a bootstrap over *rounds*, the same draw applied to every point at once: a replicate
picks rounds with replacement, recomputes every point's ratio of means from the rounds picked,
and takes their geometric mean (expanded percentile interval, n = the number of rounds).  So
the interval measures how much the geometric mean would move if the campaign were run again,
with whatever the points share within a round (drift, a disturbed stretch, an offset common to
all points) kept together.  It never uses the spread *between* points: different points are
different workloads, not repetitions of one, and treating them as replicates turned an A/A
comparison with one run per point (98 points, another tool) into "0.977, 95 % CI 0.971-0.982".
Points with one run each therefore get no CI at all.

When both targets ran in the same rounds the draw is paired (one draw for both); when they come
from different campaigns (e.g. --by kernel) each side's rounds are drawn on their own, each
still jointly across that side's points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._json import JsonDataclass
from .bootstrap import DEFAULT_N_BOOT, STREAM_POINTS, check_confidence, expanded_tail, percentile_interval
from .verdict import VERDICTS, Verdict

METHOD = "bootstrap over rounds, joint across points (expanded percentile)"
_STREAM_CANDIDATE_ROUNDS = STREAM_POINTS + 100


@dataclass(frozen=True)
class PointRuns:
    """One point's per-run values with the round each ran in (the verdict's point, same order)."""

    baseline: Sequence[float]
    candidate: Sequence[float]
    baseline_rounds: Sequence[int]
    candidate_rounds: Sequence[int]
    paired: bool  # both targets ran in the same rounds of one campaign


@dataclass(frozen=True)
class AcrossPoints(JsonDataclass):
    k: int  # points with a usable ratio
    geomean_ratio: float  # candidate / baseline
    ci_low: float  # NaN when there is no CI (see ci_problem)
    ci_high: float
    confidence: float
    method: str
    ci_problem: str  # why there is no CI ("" when there is one)
    rounds: int  # rounds resampled (the smaller side's when unpaired)
    higher_is_better: bool | None  # None when there were no points
    counts: dict[str, int]  # verdict word -> number of points (all four words present)
    points_without_ratio: int


def _round_matrix(
    per_point: list[tuple[np.ndarray, np.ndarray]], rounds: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(sums, counts), points x rounds, of each point's values per round (0 where it did not run)."""
    index = {r: i for i, r in enumerate(rounds)}
    sums = np.zeros((len(per_point), len(rounds)))
    counts = np.zeros_like(sums)
    for p, (values, point_rounds) in enumerate(per_point):
        cols = np.array([index[int(r)] for r in point_rounds], dtype=int)
        np.add.at(sums[p], cols, values)
        np.add.at(counts[p], cols, 1.0)
    return sums, counts


def _round_means(sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-round means (0 where absent) and presence (1/0): the analysis units of compare()."""
    present = (counts > 0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), 0.0)
    return means, present


def _draw(n_rounds: int, n_boot: int, seed: int, stream: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), stream, n_rounds]))
    return rng.multinomial(n_rounds, np.full(n_rounds, 1.0 / n_rounds), size=n_boot).astype(float)


def _geomean_replicates(runs: Sequence[PointRuns], n_boot: int, seed: int) -> tuple[np.ndarray, int]:
    paired = all(r.paired for r in runs)
    b = [(np.asarray(r.baseline, float), np.asarray(r.baseline_rounds)) for r in runs]
    c = [(np.asarray(r.candidate, float), np.asarray(r.candidate_rounds)) for r in runs]
    if paired:
        rounds = sorted({int(x) for _, rr in b + c for x in rr})
        b_means, b_present = _round_means(*_round_matrix(b, rounds))
        c_means, c_present = _round_means(*_round_matrix(c, rounds))
        both = b_present * c_present  # compare() pairs the rounds both targets ran in
        weights = _draw(len(rounds), n_boot, seed, STREAM_POINTS)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = (weights @ (c_means * both).T) / (weights @ (b_means * both).T)
        n = len(rounds)
    else:
        b_rounds = sorted({int(x) for _, rr in b for x in rr})
        c_rounds = sorted({int(x) for _, rr in c for x in rr})
        b_means, b_present = _round_means(*_round_matrix(b, b_rounds))
        c_means, c_present = _round_means(*_round_matrix(c, c_rounds))
        wb = _draw(len(b_rounds), n_boot, seed, STREAM_POINTS)
        wc = _draw(len(c_rounds), n_boot, seed, _STREAM_CANDIDATE_ROUNDS)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = (wb @ b_means.T) / (wb @ b_present.T)
            mean_c = (wc @ c_means.T) / (wc @ c_present.T)
            ratio = mean_c / mean_b
        n = min(len(b_rounds), len(c_rounds))
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log(np.where(ratio > 0, ratio, np.nan))
    # a replicate where some point drew none of its rounds has no geometric mean: left out
    return np.exp(logs.mean(axis=1)), n


def summarize_points(
    verdicts: Sequence[Verdict],
    runs: Sequence[PointRuns] | None = None,
    *,
    confidence: float = 0.95,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> AcrossPoints:
    """Geometric mean of the per-point ratios, its CI from a joint bootstrap over rounds, the counts.

    `runs[i]` holds the runs behind `verdicts[i]`; without them there is no CI.  All verdicts must
    be about metrics going the same way (aggregate one metric at a time).
    """
    check_confidence(confidence)
    directions = {v.higher_is_better for v in verdicts}
    if len(directions) > 1:
        raise ValueError(
            "verdicts mix higher-is-better and lower-is-better metrics: aggregate one metric at a time"
        )
    if runs is not None and len(runs) != len(verdicts):
        raise ValueError(f"{len(runs)} points of runs for {len(verdicts)} verdicts")
    counts = {word: 0 for word in VERDICTS}
    for v in verdicts:
        counts[v.verdict] += 1
    ratios = np.array([v.ratio for v in verdicts], dtype=float)
    usable = np.isfinite(ratios) & (ratios > 0)
    k = int(usable.sum())
    geomean = float(np.exp(np.log(ratios[usable]).mean())) if k else math.nan

    low = high = math.nan
    problem = ""
    n_rounds = 0
    kept = [r for r, ok in zip(runs or [], usable) if ok]
    if runs is None:
        problem = "no runs given"
    elif k == 0:
        problem = "no point has a ratio"
    elif max(min(len(set(r.baseline_rounds)), len(set(r.candidate_rounds))) for r in kept) < 2:
        problem = "one run (or round) per point: the points are different workloads, not repetitions"
    else:
        replicates, n_rounds = _geomean_replicates(kept, n_boot, seed)
        finite = replicates[np.isfinite(replicates)]
        if finite.size < n_boot / 2:
            problem = "too few rounds per point to resample"
        else:
            low, high = percentile_interval(finite, expanded_tail(n_rounds, confidence))
            if not high > low:
                low = high = math.nan
                problem = "no variability observed"
    return AcrossPoints(
        k=k,
        geomean_ratio=geomean,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        method=METHOD if not problem else "none",
        ci_problem=problem,
        rounds=n_rounds,
        higher_is_better=next(iter(directions)) if directions else None,
        counts=counts,
        points_without_ratio=len(verdicts) - k,
    )
