"""The per-point verdict: faster, slower, equivalent or inconclusive, said in words.

Rules (margin m, ratio = candidate / baseline, CI = its bootstrap CI):

* faster / slower: the p-value, corrected across the points decided together, is below alpha
  AND the whole CI lies beyond the margin on one side (CI above 1 + m, or below 1 - m).  Which
  side is "faster" follows the metric: for IOPS higher is better, for latency lower is better.
* equivalent: the whole CI lies inside [1 - m, 1 + m].  This is a TOST at the level of the CI:
  with a 95 % CI each one-sided test runs at 2.5 %, i.e. conservatively.
* inconclusive: anything else, including too few rounds and data without any variability.

"Not significant" never becomes "equivalent": only a CI narrow enough to fit inside the margin
does.  A difference that is significant but smaller than the margin is "equivalent" (the point
of a margin), and `significant` says so.  Equivalence claims are not corrected across points.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from ._json import JsonDataclass
from .compare import Comparison
from .correction import adjust_pvalues

FASTER = "faster"
SLOWER = "slower"
EQUIVALENT = "equivalent"
INCONCLUSIVE = "inconclusive"
VERDICTS = (FASTER, SLOWER, EQUIVALENT, INCONCLUSIVE)

_METHOD_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}


@dataclass(frozen=True)
class Verdict(JsonDataclass):
    key: Hashable  # the point, as the caller named it
    verdict: str  # one of VERDICTS
    p_value: float  # raw
    p_adjusted: float  # corrected across the points decided together
    significant: bool  # p_adjusted < alpha
    ratio: float  # candidate / baseline of the metric
    ci_low: float
    ci_high: float
    improvement: float  # in the metric's good direction; > 0 = candidate better
    higher_is_better: bool
    margin: float
    alpha: float
    correction: str
    sentence: str  # e.g. "rnull is 1.04 ± 0.01 × faster than null_blk (95 % CI 1.03-1.05)"
    reason: str  # why this verdict and not another


def _decimals(halfwidth: float) -> int:
    # enough decimals to show the uncertainty: 2 at ±0.01, 3 at ±0.004, at most 4
    if not (math.isfinite(halfwidth) and halfwidth > 0):
        return 3
    return int(min(4, max(2, math.ceil(-math.log10(halfwidth)))))


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def _factor_sentence(
    word: str, factor: float, low: float, high: float, confidence: float, candidate: str, baseline: str
) -> str:
    halfwidth = (high - low) / 2.0
    d = _decimals(halfwidth)
    return (
        f"{candidate} is {factor:.{d}f} ± {halfwidth:.{d}f} × {word} than {baseline} "
        f"({_percent(confidence)} CI {low:.{d}f}-{high:.{d}f})"
    )


def _ratio_text(c: Comparison, candidate: str, baseline: str) -> str:
    d = max(3, _decimals((c.ratio_ci_high - c.ratio_ci_low) / 2.0))
    text = f"{candidate}/{baseline} = {c.ratio:.{d}f}" if math.isfinite(c.ratio) else "no ratio"
    if math.isfinite(c.ratio_ci_low) and math.isfinite(c.ratio_ci_high):
        text += f" ({_percent(c.confidence)} CI {c.ratio_ci_low:.{d}f}-{c.ratio_ci_high:.{d}f})"
    return text


def _classify(c: Comparison, significant: bool, p_adj: float, margin: float, correction: str) -> tuple[str, str]:
    low, high = c.ratio_ci_low, c.ratio_ci_high
    band = f"±{_percent(margin)} margin"
    p_text = f"p = {p_adj:.3g} after {correction}" if math.isfinite(p_adj) else "no p-value"
    if c.ci_problem:
        return INCONCLUSIVE, f"no confidence interval: {c.ci_problem}"
    above, below = low > 1.0 + margin, high < 1.0 - margin
    if above or below:
        if not significant:
            return INCONCLUSIVE, f"the CI lies beyond the {band} but the difference is not significant ({p_text})"
        better = above == c.higher_is_better
        return (FASTER if better else SLOWER), f"significant ({p_text}) and the CI lies beyond the {band}"
    if low >= 1.0 - margin and high <= 1.0 + margin:
        if significant:
            return EQUIVALENT, f"the CI lies inside the {band}; the difference is significant ({p_text}) but smaller than the margin"
        return EQUIVALENT, f"the CI lies inside the {band}"
    if significant:
        return INCONCLUSIVE, f"significant ({p_text}) but the CI overlaps the {band}"
    return INCONCLUSIVE, f"not significant ({p_text}) and the CI is too wide to fit inside the {band}: not evidence of equality"


def _sentence(word: str, c: Comparison, margin: float, candidate: str, baseline: str) -> str:
    if word in (FASTER, SLOWER):
        # speed factor > 1 means "candidate better"; latency ratios are inverted
        if c.higher_is_better:
            speed, s_low, s_high = c.ratio, c.ratio_ci_low, c.ratio_ci_high
        else:
            speed, s_low, s_high = 1.0 / c.ratio, 1.0 / c.ratio_ci_high, 1.0 / c.ratio_ci_low
        if word == FASTER:
            return _factor_sentence(FASTER, speed, s_low, s_high, c.confidence, candidate, baseline)
        return _factor_sentence(SLOWER, 1.0 / speed, 1.0 / s_high, 1.0 / s_low, c.confidence, candidate, baseline)
    ratio = _ratio_text(c, candidate, baseline)
    if word == EQUIVALENT:
        return f"{candidate} and {baseline} are equivalent within ±{_percent(margin)}: {ratio}"
    return f"inconclusive: {ratio}"


def decide(
    comparisons: Mapping[Hashable, Comparison] | Sequence[Comparison],
    *,
    method: str = "holm",
    margin: float | None = None,
    alpha: float | None = None,
    baseline_name: str = "null_blk",
    candidate_name: str = "rnull",
) -> list[Verdict]:
    """One Verdict per comparison, p-values corrected across all of them together.

    A mapping's keys name the points; a sequence's points are named by their index.  `margin`
    and `alpha` default to the values each comparison was made with.
    """
    if isinstance(comparisons, Mapping):
        items = list(comparisons.items())
    else:
        items = list(enumerate(comparisons))
    adjusted = adjust_pvalues([c.p_value for _, c in items], method=method)
    correction = _METHOD_NAMES[method]
    verdicts = []
    for (key, c), p_adj in zip(items, adjusted):
        point_margin = c.margin if margin is None else float(margin)
        point_alpha = c.alpha if alpha is None else float(alpha)
        if not 0.0 < point_margin < 1.0 or not 0.0 < point_alpha < 1.0:
            raise ValueError("margin and alpha must be in (0, 1)")
        p_adj = float(p_adj)
        significant = math.isfinite(p_adj) and p_adj < point_alpha
        word, reason = _classify(c, significant, p_adj, point_margin, correction)
        verdicts.append(
            Verdict(
                key=key,
                verdict=word,
                p_value=c.p_value,
                p_adjusted=p_adj,
                significant=significant,
                ratio=c.ratio,
                ci_low=c.ratio_ci_low,
                ci_high=c.ratio_ci_high,
                improvement=c.improvement,
                higher_is_better=c.higher_is_better,
                margin=point_margin,
                alpha=point_alpha,
                correction=correction,
                sentence=_sentence(word, c, point_margin, candidate_name, baseline_name),
                reason=reason,
            )
        )
    return verdicts
