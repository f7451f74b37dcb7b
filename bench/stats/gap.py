"""Did the candidate/baseline gap change between two kernels?  The ratio of two ratios.

On each kernel the gap at a point is compare()'s ratio R_k = mean(candidate) / mean(baseline)
(paired over the rounds of that kernel's campaign).  Between a reference kernel A and a later
kernel B the change of the gap is G = R_B / R_A: G < 1 with IOPS means the candidate lost ground
on B relative to the baseline, whatever happened to both drivers' absolute numbers (a shift
common to both targets -- a slower kernel, a slower boot -- cancels inside each R_k).

The two kernels' campaigns are independent (different boots, unpaired), so
log G = log R_B - log R_A has Var = Var(log R_A) + Var(log R_B):

* round level: each Var(log R_k) is compare()'s delta-method relative SE squared (the SE of
  mean(c) - R mean(b), relative), with df n_pairs - 1 (Welch's df when unpaired); the two are
  combined with Welch-Satterthwaite's df;
* session level: a kernel whose paired rounds span two or more sessions (boots, resumed runs)
  uses its session-level SE and df (sessions.py: rounds within sessions, one-way random
  effects) instead, so a session-to-session difference of the ratio is not read as a kernel
  difference.

The tests are t-tests of log G on that SE: is there a change (H0: G = 1) and the TOST against
[1 - margin, 1 + margin] at alpha/2 per side, each at the round level and, when some kernel has
sessions, also at the session level, keeping the larger p-value -- as compare() does.  The CI is
the hull of (i) a bootstrap of G: within each kernel its rounds resampled (both targets of a
round together), independently between kernels, expanded percentile at the smaller kernel's
number of rounds; (ii) Fieller's interval for the ratio of the two independent estimates R_B and
R_A; (iii) the session-level log-t interval when there is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from ._json import JsonDataclass
from .aggregate import PointRuns
from .bootstrap import (
    DEFAULT_N_BOOT,
    check_confidence,
    expanded_tail,
    percentile_interval,
    resampled_means,
)
from .compare import Comparison, _hull, _round_means
from .fieller import fieller_interval

# Bootstrap streams of the two kernels: independent of each other and of compare()'s own draws.
STREAM_GAP = 20


@dataclass(frozen=True)
class LogSpread(JsonDataclass):
    """The SE of a log ratio and its degrees of freedom."""

    se: float
    df: float


@dataclass(frozen=True)
class GapComparison(JsonDataclass):
    """The change of the gap between two kernels at one point; bench.stats.decide takes it as it
    takes a Comparison (p_value, p_equiv, ratio and its CI, tost at another margin)."""

    reference_ratio: float  # R_A, compare()'s ratio on the reference kernel
    later_ratio: float  # R_B
    ratio: float  # G = R_B / R_A
    ratio_ci_low: float  # the hull below; NaN when there is no CI (ci_problem)
    ratio_ci_high: float
    ratio_ci_method: str
    bootstrap_ci_low: float
    bootstrap_ci_high: float
    fieller_ci_low: float
    fieller_ci_high: float
    session_ci_low: float  # NaN without a session level
    session_ci_high: float
    log_se: float  # SE of log G at the round level
    df: float
    session_log_se: float  # at the session level (NaN without one)
    session_df: float
    p_value: float  # H0: G = 1, the larger of the round- and session-level t-tests
    p_value_test: str
    p_equiv: float  # TOST of G against 1 -+ margin, alpha/2 per side
    higher_is_better: bool
    margin: float
    alpha: float
    confidence: float
    improvement: float  # in the metric's good direction: > 0 means the candidate gained on the later kernel
    ci_problem: str
    notes: tuple[str, ...]
    n_boot: int
    seed: int

    @property
    def has_ci(self) -> bool:
        return not self.ci_problem

    def tost(self, margin: float) -> float:
        """The TOST p-value of G against [1 - margin, 1 + margin] (the larger of both levels)."""
        p = _tost(math.log(self.ratio), self.log_se, self.df, margin) if self.ratio > 0 else math.nan
        if math.isfinite(self.session_log_se):
            p = max(p, _tost(math.log(self.ratio), self.session_log_se, self.session_df, margin))
        return p


def _t_p(t: float, df: float) -> float:
    if not (math.isfinite(t) and math.isfinite(df) and df > 0):
        return math.nan
    return float(min(1.0, 2.0 * special.stdtr(df, -abs(t))))


def _tost(log_g: float, se: float, df: float, margin: float) -> float:
    if not (math.isfinite(se) and se > 0 and math.isfinite(df) and df > 0):
        return math.nan
    p_upper = float(special.stdtr(df, (log_g - math.log1p(margin)) / se))
    p_lower = float(special.stdtr(df, -(log_g - math.log1p(-margin)) / se))
    return min(1.0, 2.0 * max(p_upper, p_lower))


def _combined(a: LogSpread, b: LogSpread) -> LogSpread:
    """SE of a difference of two independent estimates, Welch-Satterthwaite's df."""
    var = a.se**2 + b.se**2
    if not (math.isfinite(var) and var > 0):
        return LogSpread(math.nan, math.nan)
    df = var**2 / (a.se**4 / a.df + b.se**4 / b.df)
    return LogSpread(math.sqrt(var), df)


def round_spread(c: Comparison) -> LogSpread:
    """SE of log R at the round level (delta method) and its df."""
    if not math.isfinite(c.relative_se):
        return LogSpread(math.nan, math.nan)
    df = float(c.n_pairs - 1) if c.paired else c.moments.shifted_t(c.ratio)[1]
    return LogSpread(c.relative_se, df)


def session_spread(c: Comparison) -> LogSpread | None:
    """SE of the mean log ratio at the session level, when the kernel's rounds span sessions."""
    s = c.sessions
    if s is None or not (math.isfinite(s.se) and s.se > 0):
        return None
    return LogSpread(s.se, s.df)


def analysis_units(runs: PointRuns) -> tuple[np.ndarray, np.ndarray, bool]:
    """(baseline, candidate, paired): the per-round means compare() analyses, aligned by round
    when paired (two or more rounds in common), else each target's own."""
    b = _round_means(np.asarray(runs.baseline, float), [int(r) for r in runs.baseline_rounds])
    c = _round_means(np.asarray(runs.candidate, float), [int(r) for r in runs.candidate_rounds])
    common = sorted(set(b) & set(c))
    if runs.paired and len(common) >= 2:
        return np.array([b[r] for r in common]), np.array([c[r] for r in common]), True
    return np.array(list(b.values())), np.array(list(c.values())), False


def _ratio_replicates(runs: PointRuns, n_boot: int, seed: int, stream: int) -> tuple[np.ndarray, int]:
    b, c, paired = analysis_units(runs)
    with np.errstate(all="ignore"):
        if paired:
            means = resampled_means(np.column_stack([b, c]), n_boot=n_boot, seed=seed, stream=stream)
            return means[:, 1] / means[:, 0], b.size
        b_means = resampled_means(b, n_boot=n_boot, seed=seed, stream=stream + 1)
        c_means = resampled_means(c, n_boot=n_boot, seed=seed, stream=stream + 2)
        return c_means / b_means, min(b.size, c.size)


def compare_gap(
    reference: Comparison,
    reference_runs: PointRuns,
    later: Comparison,
    later_runs: PointRuns,
    *,
    margin: float,
    alpha: float,
    confidence: float = 0.95,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> GapComparison:
    """The later kernel's gap over the reference kernel's at one point (see the module's text).

    `reference`/`later` are compare()'s results on each kernel; `*_runs` the runs behind them
    (values with their rounds), resampled for the bootstrap."""
    check_confidence(confidence)
    if reference.higher_is_better != later.higher_is_better:
        raise ValueError("the two kernels' comparisons are of metrics going different ways")
    r_a, r_b = reference.ratio, later.ratio
    nan = math.nan
    notes: list[str] = []
    problem = ""
    ratio = r_b / r_a if (math.isfinite(r_a) and r_a > 0 and math.isfinite(r_b) and r_b > 0) else nan
    log_g = math.log(ratio) if math.isfinite(ratio) else nan
    rounds = _combined(round_spread(reference), round_spread(later))
    level_a, level_b = session_spread(reference), session_spread(later)
    sessions = None
    if level_a is not None or level_b is not None:
        sessions = _combined(level_a or round_spread(reference), level_b or round_spread(later))
    boot = fieller = session_ci = (nan, nan)
    if not math.isfinite(ratio):
        problem = "no ratio on one of the kernels"
    elif reference.ci_problem or later.ci_problem:
        problem = "no CI on one kernel: " + (reference.ci_problem or later.ci_problem)
    elif not math.isfinite(rounds.se):
        problem = "no spread observed, so the uncertainty cannot be estimated"
    else:
        reps_a, n_a = _ratio_replicates(reference_runs, n_boot, seed, STREAM_GAP)
        reps_b, n_b = _ratio_replicates(later_runs, n_boot, seed, STREAM_GAP + 10)
        with np.errstate(all="ignore"):
            boot = percentile_interval(reps_b / reps_a, expanded_tail(min(n_a, n_b), confidence))
        t_crit = float(special.stdtrit(rounds.df, 0.5 + confidence / 2.0))
        fieller = fieller_interval(
            r_b, r_a, (r_b * later.relative_se) ** 2, (r_a * reference.relative_se) ** 2, 0.0, t_crit=t_crit
        )
        if not math.isfinite(fieller[0]):
            problem = (
                "Fieller's interval is unbounded: the reference kernel's gap is too noisy to bound the ratio"
            )
        if sessions is not None and math.isfinite(sessions.se):
            t_s = float(special.stdtrit(sessions.df, 0.5 + confidence / 2.0))
            session_ci = (math.exp(log_g - t_s * sessions.se), math.exp(log_g + t_s * sessions.se))
    low = high = nan
    method = (
        "hull of a bootstrap over each kernel's rounds (independent between kernels, expanded percentile) "
        "and Fieller's interval for the ratio of the two kernels' ratios"
    )
    if not problem:
        low, high = _hull(boot, fieller)
        if math.isfinite(session_ci[0]):
            low, high = min(low, session_ci[0]), max(high, session_ci[1])
            method += "; widened to the session-level log-t interval"
    else:
        notes.append(f"no CI: {problem}")
    p_value = _t_p(log_g / rounds.se, rounds.df) if math.isfinite(rounds.se) else nan
    p_equiv = _tost(log_g, rounds.se, rounds.df, margin)
    test = "t-test of the log ratio of ratios (Welch-Satterthwaite df)"
    if sessions is not None and math.isfinite(sessions.se):
        p_value = max(p_value, _t_p(log_g / sessions.se, sessions.df))
        p_equiv = max(p_equiv, _tost(log_g, sessions.se, sessions.df, margin))
        test += "; the larger of it and the session-level t"
        notes.append(
            "sessions as a level of the design: "
            + ", ".join(
                f"{name} {c.sessions.n_sessions} sessions"
                for name, c in (("reference", reference), ("later", later))
                if c.sessions is not None
            )
        )
    hib = reference.higher_is_better
    improvement = (ratio - 1.0) if hib else (1.0 - ratio)
    return GapComparison(
        reference_ratio=r_a,
        later_ratio=r_b,
        ratio=ratio,
        ratio_ci_low=low,
        ratio_ci_high=high,
        ratio_ci_method=method,
        bootstrap_ci_low=boot[0],
        bootstrap_ci_high=boot[1],
        fieller_ci_low=fieller[0],
        fieller_ci_high=fieller[1],
        session_ci_low=session_ci[0],
        session_ci_high=session_ci[1],
        log_se=rounds.se,
        df=rounds.df,
        session_log_se=sessions.se if sessions else nan,
        session_df=sessions.df if sessions else nan,
        p_value=p_value,
        p_value_test=test,
        p_equiv=p_equiv,
        higher_is_better=hib,
        margin=float(margin),
        alpha=float(alpha),
        confidence=float(confidence),
        improvement=improvement,
        ci_problem=problem,
        notes=tuple(notes),
        n_boot=int(n_boot),
        seed=int(seed),
    )
