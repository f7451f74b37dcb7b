"""Candidate versus baseline at one point: the ratio of means with its uncertainty, and tests.

The unit of analysis is the interleaving round.  When a target ran several times in a round,
its values in that round are averaged first: runs within a round share the round's conditions
and are not independent replications.  When both targets ran in the same rounds, the rounds
are pairs; resampling whole rounds (both targets' values together) lets slow drift and
per-round disturbances cancel in the ratio (methodology, practices 2-4).

The ratio's CI (`ratio_ci_*`, the one verdicts use) is the hull of two intervals, both also
reported: the bootstrap over rounds (expanded percentile) and Fieller's interval.  Either alone
can be too narrow: a bootstrap cannot reach beyond the range of the data, so with 3-6 rounds it
covers less than it claims (simulated, normal noise, nominal 95 %: 74 % at n = 3, 88 % at n = 4,
93 % at n = 5); Fieller's is exact for normal data at any n but blind to skew, which the
bootstrap sees once there are enough rounds.  The hull keeps the coverage of the better of the
two, at the cost of being slightly wide when they agree.

The verdict rests on that CI, on `p_value` (is there a difference?) and on `p_equiv` (the
ratio TOST: is it inside the margin?); Welch, Mann-Whitney, Hodges-Lehmann and Cliff's
delta are reported beside it as cross-checks.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ._json import JsonDataclass
from .bootstrap import (
    DEFAULT_N_BOOT,
    STREAM_BASELINE,
    STREAM_CANDIDATE,
    STREAM_PAIRED,
    check_confidence,
    expanded_tail,
    percentile_interval,
    resampled_means,
)
from .defaults import DEFAULT_ALPHA, DEFAULT_MARGIN
from .describe import Summary, as_values, describe
from .fieller import fieller_from_samples
from .power import minimum_detectable_effect, power_difference, power_equivalence
from .rank import cliffs_delta, hodges_lehmann
from .sessions import SessionLevel, session_level
from .significance import (
    RatioMoments,
    mann_whitney_u,
    paired_t_test,
    ratio_moments,
    ratio_tost_from_moments,
    welch_t_test,
)

DEFAULT_POWER = 0.8

# A bootstrap interval narrower than this (relative to the ratio) means no variability was seen.
_DEGENERATE_WIDTH = 1e-9


@dataclass(frozen=True)
class Comparison(JsonDataclass):
    baseline: Summary  # of the raw per-run values
    candidate: Summary
    higher_is_better: bool
    margin: float
    alpha: float
    confidence: float
    paired: bool
    n_baseline_units: int  # rounds (or runs, without round numbers) in the analysis
    n_candidate_units: int
    n_pairs: int  # 0 when not paired
    unpaired_rounds: int  # rounds with only one target, left out of the paired ratio
    ratio: float  # mean(candidate) / mean(baseline), over the analysis units
    ratio_ci_low: float  # hull of the bootstrap and Fieller intervals; NaN if either is missing
    ratio_ci_high: float
    ratio_ci_method: str
    bootstrap_ci_low: float
    bootstrap_ci_high: float
    fieller_ci_low: float  # NaN when Fieller's set is unbounded
    fieller_ci_high: float
    p_value: float  # the test the verdict uses: paired t when paired, else Welch
    p_value_test: str
    p_equiv: float  # TOST of the ratio against 1 -+ margin, alpha/2 per side (NaN if untestable)
    moments: RatioMoments  # of the analysis units: the TOST at another margin, power
    sessions: SessionLevel | None  # the session-level analysis, when paired rounds span >= 2 sessions
    welch_p: float
    mannwhitney_p: float
    paired_t_p: float  # NaN when not paired
    hl_log_shift: float  # Hodges-Lehmann shift of log(candidate) - log(baseline)
    hl_log_ci_low: float
    hl_log_ci_high: float
    hl_ratio: float  # exp of the above: a median-based ratio
    hl_ratio_ci_low: float
    hl_ratio_ci_high: float
    cliffs_delta: float  # > 0: candidate values tend to be larger
    relative_se: float  # standard error of the ratio, relative to it
    mde: float  # smallest relative shift called faster/slower with probability `power` (noncentral t)
    power: float  # the power the MDE is for (0.8)
    power_at_margin: float  # probability of "faster"/"slower" if the true shift were one margin
    power_equivalence: float  # probability of "equivalent" (TOST) if the true ratio were 1
    improvement: float  # in the metric's good direction: > 0 means the candidate is better
    improvement_ci_low: float
    improvement_ci_high: float
    ci_problem: str  # why there is no ratio CI ("" when there is one)
    notes: tuple[str, ...]
    n_boot: int
    seed: int

    @property
    def has_ci(self) -> bool:
        return not self.ci_problem

    def tost(self, margin: float) -> float:
        """The ratio TOST p-value at another margin (the session level's too, when it has one)."""
        p = ratio_tost_from_moments(self.moments, margin)[0]
        if self.sessions is not None and math.isfinite(self.sessions.tost(margin)):
            p = max(p, self.sessions.tost(margin))
        return p

    @property
    def ratio_ci_halfwidth(self) -> float:
        """Half the CI width relative to the ratio (what the adaptive rule drives down)."""
        if not (math.isfinite(self.ratio_ci_low) and math.isfinite(self.ratio_ci_high)):
            return math.nan
        if not self.ratio > 0:
            return math.nan
        return (self.ratio_ci_high - self.ratio_ci_low) / (2.0 * self.ratio)


def _check_rounds(rounds: Iterable[int], length: int, what: str) -> list[int]:
    checked = list(rounds)
    if len(checked) != length:
        raise ValueError(f"{what} has {len(checked)} entries for {length} values")
    for r in checked:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
            raise ValueError(f"{what} must be ints, got {r!r}")
    return [int(r) for r in checked]


def _round_means(values: np.ndarray, rounds: list[int]) -> dict[int, float]:
    grouped: dict[int, list[float]] = {}
    for value, r in zip(values, rounds):
        grouped.setdefault(r, []).append(float(value))
    return {r: sum(grouped[r]) / len(grouped[r]) for r in sorted(grouped)}


def _ratio_replicates(b: np.ndarray, c: np.ndarray, paired: bool, n_boot: int, seed: int) -> np.ndarray:
    with np.errstate(all="ignore"):
        if paired:
            means = resampled_means(np.column_stack([b, c]), n_boot=n_boot, seed=seed, stream=STREAM_PAIRED)
            return means[:, 1] / means[:, 0]
        b_means = resampled_means(b, n_boot=n_boot, seed=seed, stream=STREAM_BASELINE)
        c_means = resampled_means(c, n_boot=n_boot, seed=seed, stream=STREAM_CANDIDATE)
        return c_means / b_means


def _hull(first: tuple[float, float], second: tuple[float, float]) -> tuple[float, float]:
    """Smallest interval containing both; NaN if either is missing (no bound is no bound)."""
    if not all(math.isfinite(x) for x in (*first, *second)):
        return math.nan, math.nan
    return min(first[0], second[0]), max(first[1], second[1])


def _relative_se(b: np.ndarray, c: np.ndarray, paired: bool, ratio: float) -> float:
    if b.size < 2 or c.size < 2 or not (math.isfinite(ratio) and ratio > 0):
        return math.nan
    if paired:
        # delta method for a ratio of paired means: Var(r) ~ Var(c - r b) / (n mean(b)^2)
        residual = c - ratio * b
        return float(np.std(residual, ddof=1) / (math.sqrt(b.size) * c.mean()))
    cv_b = np.std(b, ddof=1) / b.mean()
    cv_c = np.std(c, ddof=1) / c.mean()
    return float(math.sqrt(cv_b**2 / b.size + cv_c**2 / c.size))


def compare(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    baseline_rounds: Sequence[int] | None = None,
    candidate_rounds: Sequence[int] | None = None,
    higher_is_better: bool,
    margin: float = DEFAULT_MARGIN,
    alpha: float = DEFAULT_ALPHA,
    confidence: float = 0.95,
    power: float = DEFAULT_POWER,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    round_sessions: Mapping[int, Hashable] | None = None,
) -> Comparison:
    """Compare candidate with baseline at one point (one metric of one fio job).

    `baseline`/`candidate` are per-run values; `*_rounds` the interleaving round of each run.
    With rounds for both and at least 2 rounds in common the analysis is paired over the common
    rounds; otherwise the two samples are resampled independently.  `round_sessions` maps each
    round to the session (boot, run invocation) it ran in: when the paired rounds span two or
    more sessions, the p-values and the CI are also computed at the session level (sessions.py)
    and the more cautious of the two is kept, so a session effect cannot pass as a driver effect.
    """
    check_confidence(confidence)
    if not 0.0 < margin < 1.0:
        raise ValueError(f"margin must be in (0, 1), not {margin!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), not {alpha!r}")
    b_values = as_values(baseline, "baseline values")
    c_values = as_values(candidate, "candidate values")
    notes: list[str] = []

    b_by_round = c_by_round = None
    if baseline_rounds is not None:
        b_by_round = _round_means(b_values, _check_rounds(baseline_rounds, b_values.size, "baseline_rounds"))
    if candidate_rounds is not None:
        c_by_round = _round_means(
            c_values, _check_rounds(candidate_rounds, c_values.size, "candidate_rounds")
        )
    for what, by_round, values in (("baseline", b_by_round, b_values), ("candidate", c_by_round, c_values)):
        if by_round is not None and len(by_round) < values.size:
            notes.append(f"{what}: {values.size} runs in {len(by_round)} rounds, averaged per round")

    b_units = np.array(list(b_by_round.values())) if b_by_round is not None else b_values
    c_units = np.array(list(c_by_round.values())) if c_by_round is not None else c_values

    paired = False
    unpaired_rounds = 0
    b_analysis, c_analysis = b_units, c_units
    if b_by_round is not None and c_by_round is not None:
        common = sorted(set(b_by_round) & set(c_by_round))
        if len(common) >= 2:
            paired = True
            unpaired_rounds = len(set(b_by_round) ^ set(c_by_round))
            b_analysis = np.array([b_by_round[r] for r in common])
            c_analysis = np.array([c_by_round[r] for r in common])
            if unpaired_rounds:
                notes.append(f"{unpaired_rounds} rounds had only one target and are left out of the ratio")
        else:
            notes.append("fewer than 2 rounds in common: analysed as independent samples")
    elif (b_by_round is None) != (c_by_round is None):
        notes.append("rounds given for only one target: analysed as independent samples")

    with np.errstate(all="ignore"):
        b_mean = float(b_analysis.mean()) if b_analysis.size else math.nan
        c_mean = float(c_analysis.mean()) if c_analysis.size else math.nan
        ratio = c_mean / b_mean if b_mean > 0 else math.nan

    boot_low = boot_high = math.nan
    fieller_low = fieller_high = math.nan
    ci_problem = ""
    n_units = min(b_analysis.size, c_analysis.size)
    if not math.isfinite(ratio):
        ci_problem = "no ratio (no data, or a baseline mean that is not positive)"
    elif n_units < 2:
        ci_problem = "fewer than 2 rounds (or runs) per target"
    else:
        replicates = _ratio_replicates(b_analysis, c_analysis, paired, n_boot, seed)
        boot_low, boot_high = percentile_interval(replicates, expanded_tail(n_units, confidence))
        fieller_low, fieller_high = fieller_from_samples(
            b_analysis, c_analysis, paired=paired, confidence=confidence
        )
        if boot_high - boot_low <= _DEGENERATE_WIDTH * abs(ratio):
            # A zero-width interval would claim perfect precision; report none instead.
            ci_problem = "no variability observed, so the uncertainty cannot be estimated"
        elif not math.isfinite(fieller_low):
            ci_problem = "Fieller's interval is unbounded: the baseline is too noisy to bound the ratio"
    ci_low, ci_high = math.nan, math.nan
    if not ci_problem:
        ci_low, ci_high = _hull((boot_low, boot_high), (fieller_low, fieller_high))
    else:
        notes.append(f"no ratio CI: {ci_problem}")
    method = "bootstrap over paired rounds" if paired else "independent bootstrap of each target"
    ci_method = f"hull of Fieller's interval and the {method} (expanded percentile), ratio of means"

    welch_p = welch_t_test(b_units, c_units)
    mannwhitney_p = mann_whitney_u(b_units, c_units)
    paired_t_p = paired_t_test(b_analysis, c_analysis) if paired else math.nan
    p_value = paired_t_p if paired else welch_p
    p_value_test = "paired t-test on round means" if paired else "Welch t-test"
    moments = ratio_moments(b_analysis, c_analysis, paired=paired)
    p_equiv = ratio_tost_from_moments(moments, margin)[0]

    level = None
    if paired and round_sessions is not None and np.all(b_analysis > 0) and np.all(c_analysis > 0):
        common_sessions = [round_sessions[r] for r in common]
        level = session_level(
            np.log(c_analysis / b_analysis), common_sessions, margin=margin, confidence=confidence
        )
    if level is not None and math.isfinite(level.p_value):
        p_value = max(p_value, level.p_value)
        p_equiv = max(p_equiv, level.p_equiv)
        if not ci_problem:
            ci_low, ci_high = min(ci_low, level.ci_low), max(ci_high, level.ci_high)
        p_value_test += f"; the larger of it and the session-level t ({level.n_sessions} sessions)"
        ci_method += f"; widened to the session-level interval ({level.n_sessions} sessions)"
        notes.append(
            f"{level.n_sessions} sessions: {level.between_share:.0%} of the ratio's variance is between "
            f"sessions (p = {level.p_between:.2g})"
        )

    hl_shift = hl_low = hl_high = math.nan
    if b_units.size and c_units.size:
        if np.all(b_units > 0) and np.all(c_units > 0):
            hl_shift, hl_low, hl_high = hodges_lehmann(
                np.log(b_units), np.log(c_units), confidence=confidence
            )
        else:
            notes.append("values not all positive: no log-scale Hodges-Lehmann shift")

    relative_se = _relative_se(b_analysis, c_analysis, paired, ratio)
    # Power of the verdict's own tests at the observed spread and the real n (see power.py).
    difference_se, df = moments.difference_se()
    mde = minimum_detectable_effect(difference_se, df=df, alpha=alpha, power=power)
    power_at_margin = power_difference(margin, difference_se, df, alpha=alpha)
    power_equiv = power_equivalence(margin, difference_se, df, alpha=alpha)

    if higher_is_better:
        improvement, imp_low, imp_high = ratio - 1.0, ci_low - 1.0, ci_high - 1.0
    else:
        improvement, imp_low, imp_high = 1.0 - ratio, 1.0 - ci_high, 1.0 - ci_low

    return Comparison(
        baseline=describe(b_values, confidence=confidence, n_boot=n_boot, seed=seed),
        candidate=describe(c_values, confidence=confidence, n_boot=n_boot, seed=seed),
        higher_is_better=bool(higher_is_better),
        margin=float(margin),
        alpha=float(alpha),
        confidence=float(confidence),
        paired=paired,
        n_baseline_units=int(b_analysis.size if paired else b_units.size),
        n_candidate_units=int(c_analysis.size if paired else c_units.size),
        n_pairs=int(b_analysis.size) if paired else 0,
        unpaired_rounds=unpaired_rounds,
        ratio=ratio,
        ratio_ci_low=ci_low,
        ratio_ci_high=ci_high,
        ratio_ci_method=ci_method,
        bootstrap_ci_low=boot_low,
        bootstrap_ci_high=boot_high,
        fieller_ci_low=fieller_low,
        fieller_ci_high=fieller_high,
        p_value=p_value,
        p_value_test=p_value_test,
        p_equiv=p_equiv,
        moments=moments,
        sessions=level,
        welch_p=welch_p,
        mannwhitney_p=mannwhitney_p,
        paired_t_p=paired_t_p,
        hl_log_shift=hl_shift,
        hl_log_ci_low=hl_low,
        hl_log_ci_high=hl_high,
        hl_ratio=math.exp(hl_shift) if math.isfinite(hl_shift) else math.nan,
        hl_ratio_ci_low=math.exp(hl_low) if math.isfinite(hl_low) else math.nan,
        hl_ratio_ci_high=math.exp(hl_high) if math.isfinite(hl_high) else math.nan,
        cliffs_delta=cliffs_delta(b_units, c_units),
        relative_se=relative_se,
        mde=mde,
        power=float(power),
        power_at_margin=power_at_margin,
        power_equivalence=power_equiv,
        improvement=improvement,
        improvement_ci_low=imp_low,
        improvement_ci_high=imp_high,
        ci_problem=ci_problem,
        notes=tuple(notes),
        n_boot=int(n_boot),
        seed=int(seed),
    )
