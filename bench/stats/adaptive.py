"""When to stop adding interleaved rounds: a stopping rule on precision, with a budget.

Keep running rounds (every target x point, fresh random order) until every point's ratio CI
half-width, relative to the ratio, is at most `target_ci`, or `max_rounds` is reached.  The rule
looks only at the width of the intervals, never at where they lie or at p-values, so it cannot
steer an estimate towards a difference (stopping when p < alpha would).

It is not entirely free, though: it tends to stop on a round where the noise *looked* small,
so the variance at the stopping round is underestimated and nominal 95 % intervals cover
less.  Simulated (one point, paired rounds, normal noise, min 5 / max 40 / target 1 %, 600
campaigns each), their non-coverage is 5.3, 7.2, 7.5 and 8.3 % at CV 0.75, 1, 1.25 and 1.5 %
instead of 5 % -- worst when the noise puts the stopping round just past `min_rounds`.  The
remedy is to compute the intervals of an adaptive campaign at
`sequential_confidence(confidence)` = 1 - (1 - confidence) / 2, i.e. 97.5 % for a 95 % claim
(both for this rule and for the verdicts): simulated non-coverage is then 3.0, 4.3, 4.5 and
3.7 %, at the cost of 25-30 % more rounds.  With many points the effect is smaller (only the
widest point decides when to stop), but one-point campaigns exist.  The simulations in
tests/test_stats_adaptive.py check both levels.

Points still too wide at the cap are named in `points_at_cap`: their verdicts stand, but they
are the ones whose resolution the budget did not buy.

Stopping on a decision (`margin` given, what campaigns do): a point also stops as soon as its
verdict is settled at the campaign's (sequential) confidence -- its CI lies inside +-margin
(equivalent: the CI contains Fieller's, so the TOST rejects too), or its difference is
significant at 1 - confidence and the whole CI lies beyond the margin (faster/slower, beyond
margin, which no further round would turn into "equivalent").  Only the points still undecided
get more rounds.  This does look at where the intervals lie, so its error rates were measured,
not assumed: with CIs and tests at 97.5 % (the wider-confidence approach above) every cell of
CV 0.5-5 % x true ratio 1.00-1.05 kept its wrong verdicts under 5 %, using on average 5-10
rounds at CV 1 % where the width rule used 30 % of 40 (README, tests/test_stats_sequential.py).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from bench.stopping import DEFAULT_MAX_ROUNDS, DEFAULT_MIN_ROUNDS, DEFAULT_TARGET_CI

from ._json import JsonDataclass
from .compare import Comparison

__all__ = [
    "DEFAULT_MAX_ROUNDS",
    "DEFAULT_MIN_ROUNDS",
    "DEFAULT_TARGET_CI",
    "Decision",
    "adaptive_decision",
    "sequential_confidence",
    "settled",
]


@dataclass(frozen=True)
class Decision(JsonDataclass):
    stop: bool
    reason: str
    rounds_done: int
    points_above_target: tuple[
        Hashable, ...
    ]  # still undecided: half-width > target (or no CI) and not settled
    points_at_cap: tuple[Hashable, ...]  # the above, when stopping because of max_rounds
    max_halfwidth: float  # widest finite half-width (NaN if none)
    points_settled: tuple[Hashable, ...] = ()  # stopped because their verdict is settled


def settled(comparison: Comparison, margin: float) -> str:
    """Why this point's verdict can no longer change with more rounds ("" if it can).

    At the comparison's own confidence: the CI inside +-margin (equivalent), or a difference
    significant at 1 - confidence whose whole CI lies beyond the margin (faster/slower).
    """
    c = comparison
    if not c.has_ci:
        return ""
    low, high = c.ratio_ci_low, c.ratio_ci_high
    if low >= 1.0 - margin and high <= 1.0 + margin:
        return "equivalent"
    if (
        (low > 1.0 + margin or high < 1.0 - margin)
        and math.isfinite(c.p_value)
        and c.p_value < 1.0 - c.confidence
    ):
        return "beyond margin"
    return ""


def sequential_confidence(confidence: float = 0.95) -> float:
    """Confidence level for the CIs of a campaign that stops with `adaptive_decision`.

    Halving the error rate compensates for stopping on a round whose noise looked small (see
    the module docstring); the result is still reported as a `confidence` claim.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence!r}")
    return 1.0 - (1.0 - confidence) / 2.0


def _halfwidth(item: Comparison | float) -> float:
    if isinstance(item, Comparison):
        return item.ratio_ci_halfwidth
    return float(item)


def adaptive_decision(
    comparisons_or_halfwidths: Mapping[Hashable, Comparison | float] | Sequence[Comparison | float],
    *,
    target_ci: float = DEFAULT_TARGET_CI,
    rounds_done: int,
    min_rounds: int = DEFAULT_MIN_ROUNDS,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    margin: float | None = None,
) -> Decision:
    """Whether to stop after `rounds_done` complete rounds, and which points go on.

    Items are Comparisons (their `ratio_ci_halfwidth` is used) or relative half-widths; a
    mapping's keys name the points, a sequence's points are named by index.  A NaN half-width
    (fewer than 2 rounds, or a degenerate point) counts as not yet precise enough.  With
    `margin` (Comparisons only), points whose verdict is `settled` stop too.
    """
    if not target_ci > 0:
        raise ValueError(f"target_ci must be positive, not {target_ci!r}")
    if min_rounds < 2 or max_rounds < min_rounds:
        raise ValueError(f"need 2 <= min_rounds <= max_rounds, got {min_rounds} and {max_rounds}")
    if rounds_done < 0:
        raise ValueError("rounds_done must be non-negative")
    if isinstance(comparisons_or_halfwidths, Mapping):
        items = list(comparisons_or_halfwidths.items())
    else:
        items = list(enumerate(comparisons_or_halfwidths))
    widths = [(key, _halfwidth(item)) for key, item in items]
    decided: tuple[Hashable, ...] = ()
    if margin is not None and rounds_done >= min_rounds:
        decided = tuple(key for key, item in items if isinstance(item, Comparison) and settled(item, margin))
    above = tuple(
        key for key, h in widths if not (math.isfinite(h) and h <= target_ci) and key not in decided
    )
    finite = [h for _, h in widths if math.isfinite(h)]
    widest = max(finite) if finite else math.nan
    target_text = f"±{target_ci * 100:g} %"

    if rounds_done < min_rounds:
        return Decision(
            False, f"{rounds_done} of at least {min_rounds} rounds done", rounds_done, above, (), widest
        )
    if not above:
        why = (
            f"every point's verdict is settled or its ratio CI is within {target_text}"
            if decided
            else f"every point's ratio CI is within {target_text}"
        )
        return Decision(True, why, rounds_done, (), (), widest, decided)
    if rounds_done >= max_rounds:
        return Decision(
            True,
            f"reached the maximum of {max_rounds} rounds with {len(above)} of {len(widths)} points wider than {target_text}",
            rounds_done,
            above,
            above,
            widest,
            decided,
        )
    return Decision(
        False,
        f"{len(above)} of {len(widths)} points undecided and wider than {target_text} after {rounds_done} rounds"
        if margin is not None
        else f"{len(above)} of {len(widths)} points wider than {target_text} after {rounds_done} rounds",
        rounds_done,
        above,
        (),
        widest,
        decided,
    )
