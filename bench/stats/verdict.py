"""The per-point verdict: faster, slower, equivalent or inconclusive, said in words.

The standard equivalence-testing scheme (Lakens 2017): two questions are asked of every point,
each with its own test, and each corrected across the points decided together (Holm, or
Benjamini-Hochberg):

* is there a difference?  `p_value` (paired t on round means, or Welch), corrected: `significant`.
* is the ratio inside [1 - m, 1 + m]?  `p_equiv`, the ratio TOST at alpha/2 per side (the level
  of the 95 % CI the verdict shows), corrected: `equivalence_shown`, which also requires the shown
  CI (the hull of bootstrap and Fieller) to lie inside the band, so the picture never contradicts
  the word.

| significant | equivalence shown | verdict |
|---|---|---|
| any | yes | equivalent ("significant but negligible" in the reason when also significant) |
| yes | no  | faster / slower, by the side of 1 the ratio lies on and the metric's direction |
| no  | no  | inconclusive: "not significant" is never "equal" |

`beyond_margin` is the stricter statement kept beside the word: a faster/slower point whose whole
CI lies outside the band, i.e. the difference is larger than the margin, not just non-zero.  The
CI is per point (not widened for the number of points).  The old rule required this for
faster/slower, which called a true +2.5 % difference with p = 1e-8 "inconclusive".
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from bench.units import margin_text, percent

from ._json import JsonDataclass
from .compare import Comparison
from .correction import adjust_pvalues
from .defaults import CORRECTIONS, DEFAULT_CORRECTION

FASTER = "faster"
SLOWER = "slower"
EQUIVALENT = "equivalent"
INCONCLUSIVE = "inconclusive"
VERDICTS = (FASTER, SLOWER, EQUIVALENT, INCONCLUSIVE)


@dataclass(frozen=True)
class Verdict(JsonDataclass):
    key: Hashable  # the point, as the caller named it
    verdict: str  # one of VERDICTS
    p_value: float  # raw
    p_adjusted: float  # corrected across the points decided together
    significant: bool  # p_adjusted < alpha
    p_equiv: float  # ratio TOST p-value, raw
    p_equiv_adjusted: float  # corrected across the points, like p_adjusted
    equivalence_shown: bool  # p_equiv_adjusted < alpha and the CI lies inside the band
    beyond_margin: bool  # faster/slower and the whole CI lies outside the band
    ratio: float  # candidate / baseline of the metric
    ci_low: float
    ci_high: float
    improvement: float  # in the metric's good direction; > 0 = candidate better
    higher_is_better: bool
    margin: float
    alpha: float
    correction: str
    sentence: str  # "rnull is 1.05 ± 0.01 × faster than null_blk (95 % CI 1.04-1.06), beyond the ±2 % margin"
    reason: str  # why this verdict and not another


def _decimals(halfwidth: float) -> int:
    # enough decimals to show the uncertainty: 2 at ±0.01, 3 at ±0.004, at most 4
    if not (math.isfinite(halfwidth) and halfwidth > 0):
        return 3
    return int(min(4, max(2, math.ceil(-math.log10(halfwidth)))))


def _inverse(x: float) -> float:
    """1/x for a ratio's CI bound; a bound at or below zero (a very noisy ratio's interval can
    reach past it) has no inverse: the inverted interval is unbounded there."""
    return 1.0 / x if x > 0 else math.inf


def _factor_sentence(
    word: str, factor: float, low: float, high: float, confidence: float, candidate: str, baseline: str
) -> str:
    if not math.isfinite(high):  # "at least this much" is all the data say
        d = _decimals(abs(factor - low))
        return (
            f"{candidate} is {factor:.{d}f} × {word} than {baseline} "
            f"({percent(confidence)} CI {low:.{d}f} to unbounded)"
        )
    halfwidth = (high - low) / 2.0
    d = _decimals(halfwidth)
    return (
        f"{candidate} is {factor:.{d}f} ± {halfwidth:.{d}f} × {word} than {baseline} "
        f"({percent(confidence)} CI {low:.{d}f}-{high:.{d}f})"
    )


def _ratio_text(c: Comparison, candidate: str, baseline: str) -> str:
    d = max(3, _decimals((c.ratio_ci_high - c.ratio_ci_low) / 2.0))
    text = f"{candidate}/{baseline} = {c.ratio:.{d}f}" if math.isfinite(c.ratio) else "no ratio"
    if math.isfinite(c.ratio_ci_low) and math.isfinite(c.ratio_ci_high):
        text += f" ({percent(c.confidence)} CI {c.ratio_ci_low:.{d}f}-{c.ratio_ci_high:.{d}f})"
    return text


def _p_text(p: float, correction: str, name: str = "p") -> str:
    return f"{name} = {p:.3g} after {correction}" if math.isfinite(p) else f"no {name}"


def _classify(
    c: Comparison,
    significant: bool,
    equivalence_shown: bool,
    p_adj: float,
    p_equiv_adj: float,
    margin: float,
    correction: str,
) -> tuple[str, str]:
    low, high = c.ratio_ci_low, c.ratio_ci_high
    band = f"{margin_text(margin)} margin"
    p_text = _p_text(p_adj, correction)
    q_text = _p_text(p_equiv_adj, correction, "TOST p")
    if c.ci_problem:
        return INCONCLUSIVE, f"no confidence interval: {c.ci_problem}"
    inside = low >= 1.0 - margin and high <= 1.0 + margin
    beyond = low > 1.0 + margin or high < 1.0 - margin
    if equivalence_shown:
        if significant:
            return EQUIVALENT, (
                f"significant but negligible: the difference is significant ({p_text}) "
                f"but the CI lies inside the {band} ({q_text})"
            )
        return EQUIVALENT, f"the CI lies inside the {band} ({q_text})"
    if significant:
        better = (c.ratio > 1.0) == c.higher_is_better
        word = FASTER if better else SLOWER
        if beyond:
            return word, f"significant ({p_text}) and the whole CI lies beyond the {band}"
        if inside:
            return word, (
                f"significant ({p_text}); the CI lies inside the {band} but equivalence is "
                f"not shown after correction ({q_text})"
            )
        return (
            word,
            f"significant ({p_text}); the CI reaches into the {band}, so the difference may be smaller than it",
        )
    if inside:
        return INCONCLUSIVE, (
            f"not significant ({p_text}); the CI lies inside the {band} but equivalence "
            f"is not shown after correction ({q_text})"
        )
    return (
        INCONCLUSIVE,
        f"not significant ({p_text}) and the CI is too wide to fit inside the {band}: not evidence of equality",
    )


def _sentence(
    word: str, c: Comparison, margin: float, beyond: bool, significant: bool, candidate: str, baseline: str
) -> str:
    band = f"{margin_text(margin)} margin"
    if word in (FASTER, SLOWER):
        # speed factor > 1 means "candidate better"; latency ratios are inverted
        if c.higher_is_better:
            speed, s_low, s_high = c.ratio, max(c.ratio_ci_low, 0.0), c.ratio_ci_high
        else:
            speed, s_low, s_high = 1.0 / c.ratio, 1.0 / c.ratio_ci_high, _inverse(c.ratio_ci_low)
        if word == FASTER:
            text = _factor_sentence(FASTER, speed, s_low, s_high, c.confidence, candidate, baseline)
        else:
            text = _factor_sentence(
                SLOWER, 1.0 / speed, 1.0 / s_high, _inverse(s_low), c.confidence, candidate, baseline
            )
        return text + (f", beyond the {band}" if beyond else f", possibly by less than the {band}")
    ratio = _ratio_text(c, candidate, baseline)
    if word == EQUIVALENT:
        tail = " (a significant but negligible difference)" if significant else ""
        return f"{candidate} and {baseline} are equivalent within {margin_text(margin)}: {ratio}{tail}"
    return f"inconclusive: {ratio}"


def _tost_at(c: Comparison, margin: float) -> float:
    """The comparison's TOST p-value at another margin (a Comparison, or anything decided like
    one, e.g. stats.gap's GapComparison, says it with `tost`)."""
    return c.tost(margin)


def decide(
    comparisons: Mapping[Hashable, Comparison] | Sequence[Comparison],
    *,
    method: str = DEFAULT_CORRECTION,
    margin: float | None = None,
    alpha: float | None = None,
    baseline_name: str = "null_blk",
    candidate_name: str = "rnull",
) -> list[Verdict]:
    """One Verdict per comparison; difference and TOST p-values each corrected across all of them.

    A mapping's keys name the points; a sequence's points are named by their index.  `margin`
    and `alpha` default to the values each comparison was made with.
    """
    if isinstance(comparisons, Mapping):
        items = list(comparisons.items())
    else:
        items = list(enumerate(comparisons))
    adjusted = adjust_pvalues([c.p_value for _, c in items], method=method)
    # Equivalence claims are a family of their own, corrected the same way.
    margins = [c.margin if margin is None else float(margin) for _, c in items]
    if not all(0.0 < m < 1.0 for m in margins):
        raise ValueError("margin must be in (0, 1)")
    p_equiv = [c.p_equiv if m == c.margin else _tost_at(c, m) for (_, c), m in zip(items, margins)]
    adjusted_equiv = adjust_pvalues(p_equiv, method=method)
    correction = CORRECTIONS[method]
    verdicts = []
    for (key, c), point_margin, p_eq, p_adj, p_eq_adj in zip(
        items, margins, p_equiv, adjusted, adjusted_equiv
    ):
        point_alpha = c.alpha if alpha is None else float(alpha)
        if not 0.0 < point_margin < 1.0 or not 0.0 < point_alpha < 1.0:
            raise ValueError("margin and alpha must be in (0, 1)")
        p_adj = float(p_adj)
        p_eq_adj = float(p_eq_adj)
        significant = math.isfinite(p_adj) and p_adj < point_alpha
        low, high = c.ratio_ci_low, c.ratio_ci_high
        inside = bool(low >= 1.0 - point_margin and high <= 1.0 + point_margin)
        equivalence_shown = math.isfinite(p_eq_adj) and p_eq_adj < point_alpha and inside and not c.ci_problem
        word, reason = _classify(c, significant, equivalence_shown, p_adj, p_eq_adj, point_margin, correction)
        beyond = word in (FASTER, SLOWER) and bool(low > 1.0 + point_margin or high < 1.0 - point_margin)
        verdicts.append(
            Verdict(
                key=key,
                verdict=word,
                p_value=c.p_value,
                p_adjusted=p_adj,
                significant=significant,
                p_equiv=p_eq,
                p_equiv_adjusted=p_eq_adj,
                equivalence_shown=equivalence_shown,
                beyond_margin=beyond,
                ratio=c.ratio,
                ci_low=c.ratio_ci_low,
                ci_high=c.ratio_ci_high,
                improvement=c.improvement,
                higher_is_better=c.higher_is_better,
                margin=point_margin,
                alpha=point_alpha,
                correction=correction,
                sentence=_sentence(word, c, point_margin, beyond, significant, candidate_name, baseline_name),
                reason=reason,
            )
        )
    return verdicts
