"""adaptive_decision(): the stopping rule's logic, and its error rates by simulation."""

import json
import math

import numpy as np
import pytest

from bench.stats import (
    FASTER,
    SLOWER,
    adaptive_decision,
    compare,
    decide,
    sequential_confidence,
)

MIN, MAX, TARGET = 5, 40, 0.01


def rule(widths, rounds_done):
    return adaptive_decision(
        widths, target_ci=TARGET, rounds_done=rounds_done, min_rounds=MIN, max_rounds=MAX
    )


# --- the rule -------------------------------------------------------------------------------


def test_keeps_going_below_the_minimum_even_when_precise():
    d = rule([0.001, 0.002], 4)
    assert not d.stop and "4 of at least 5" in d.reason


def test_stops_when_every_point_is_precise_enough():
    d = rule({"a": 0.004, "b": 0.01}, 7)
    assert d.stop and d.points_above_target == () and d.points_at_cap == ()
    assert d.max_halfwidth == 0.01


def test_continues_while_any_point_is_too_wide_or_has_no_ci():
    d = rule({"a": 0.004, "b": 0.02, "c": math.nan}, 7)
    assert not d.stop
    assert d.points_above_target == ("b", "c") and d.points_at_cap == ()
    assert "2 of 3 points" in d.reason


def test_stops_at_the_cap_and_names_the_points_still_too_wide():
    d = rule({("rnull", "randread-4k"): 0.004, ("rnull", "randwrite-4k"): 0.03}, 40)
    assert d.stop and d.points_at_cap == (("rnull", "randwrite-4k"),)
    assert "maximum of 40 rounds" in d.reason
    json.dumps(d.to_dict(), allow_nan=False)


def test_accepts_comparisons_and_uses_their_relative_half_width():
    rng = np.random.default_rng(0)
    base, cand = 100 + rng.normal(size=12), 200 + 2 * rng.normal(size=12)
    c = compare(
        base, cand, baseline_rounds=list(range(12)), candidate_rounds=list(range(12)), higher_is_better=True
    )
    assert c.ratio_ci_halfwidth == pytest.approx((c.ratio_ci_high - c.ratio_ci_low) / (2 * c.ratio))
    assert rule([c], 12).max_halfwidth == c.ratio_ci_halfwidth
    assert rule([compare([1.0], [1.0], higher_is_better=True)], 12).points_above_target == (0,)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        adaptive_decision([0.01], target_ci=0, rounds_done=5, min_rounds=5, max_rounds=40)
    with pytest.raises(ValueError):
        adaptive_decision([0.01], target_ci=0.01, rounds_done=5, min_rounds=10, max_rounds=5)
    assert sequential_confidence(0.95) == pytest.approx(0.975)
    assert sequential_confidence(0.9) == pytest.approx(0.95)


# --- error rates when the rule drives real campaigns ----------------------------------------


def run_campaigns(ratio, campaigns, *, cv, confidence, seed):
    """Per campaign: add a round at a time, stop when the rule says so; return the last comparison."""
    rng = np.random.default_rng(seed)
    base = 100 * (1 + cv * rng.normal(size=(campaigns, MAX)))
    cand = 100 * ratio * (1 + cv * rng.normal(size=(campaigns, MAX)))
    results = []
    for b, c in zip(base, cand):
        for n in range(MIN, MAX + 1):
            rounds = list(range(n))
            # n_boot 1000, as the campaign runner uses between rounds
            comparison = compare(
                b[:n],
                c[:n],
                baseline_rounds=rounds,
                candidate_rounds=rounds,
                higher_is_better=True,
                confidence=confidence,
                n_boot=1000,
            )
            if rule([comparison], n).stop:
                break
        results.append((comparison, n))
    return results


def bound(rate, trials):
    return rate + 3 * math.sqrt(rate * (1 - rate) / trials)


@pytest.fixture(scope="module")
def a_a_sequential():
    return run_campaigns(1.0, 400, cv=0.01, confidence=sequential_confidence(0.95), seed=11)


def _rarely_faster_or_slower(results):
    verdicts = [decide([c])[0].verdict for c, _ in results]
    assert sum(v in (FASTER, SLOWER) for v in verdicts) / len(results) <= bound(0.05, len(results))
    rounds = np.array([n for _, n in results])
    assert rounds.min() >= MIN and np.mean(rounds < MAX) > 0.95  # the rule does stop early


@pytest.mark.slow
def test_a_a_campaigns_stopped_by_the_rule_are_rarely_faster_or_slower():
    _rarely_faster_or_slower(run_campaigns(1.0, 300, cv=0.01, confidence=0.95, seed=10))


@pytest.mark.slow
def test_same_with_sequential_confidence(a_a_sequential):
    _rarely_faster_or_slower(a_a_sequential)


@pytest.mark.slow
def test_with_sequential_confidence_stopped_campaigns_keep_their_coverage(a_a_sequential):
    # Stopping on a narrow CI picks rounds whose noise looked small; at 95 % the CIs of stopped
    # campaigns miss 1 about 7-9 % of the time at CV 1-1.5 % (see bench/stats/adaptive.py).
    # Computed at sequential_confidence(0.95) they keep the 95 % claim.
    missed = sum(not (c.ratio_ci_low <= 1.0 <= c.ratio_ci_high) for c, _ in a_a_sequential)
    assert missed / len(a_a_sequential) <= bound(0.05, len(a_a_sequential))


@pytest.mark.slow
def test_with_sequential_confidence_a_difference_on_the_margin_is_rarely_misjudged(a_a_sequential):
    # Multiplying the candidate by 1.02 multiplies every CI by exactly 1.02 (bootstrap ratio
    # replicates and Fieller's roots both scale) and leaves the relative half-widths, hence the
    # stopping round, unchanged.  So a campaign whose true ratio is on the margin (1.02) ends
    # "equivalent" only if its A/A twin's CI lies below 1, and "faster" only if it lies above
    # 1 (and the p-value is significant): each is one side of the 95 % claim, 2.5 %.
    trials = len(a_a_sequential)
    above = sum(c.ratio_ci_low > 1.0 for c, _ in a_a_sequential)
    below = sum(c.ratio_ci_high < 1.0 for c, _ in a_a_sequential)
    assert above / trials <= bound(0.025, trials)
    assert below / trials <= bound(0.025, trials)
    rng = np.random.default_rng(0)
    base, cand = 100 * (1 + 0.01 * rng.normal(size=(2, 12)))
    rounds = list(range(12))
    one = compare(base, cand, baseline_rounds=rounds, candidate_rounds=rounds, higher_is_better=True)
    scaled = compare(
        base, 1.02 * cand, baseline_rounds=rounds, candidate_rounds=rounds, higher_is_better=True
    )
    assert (scaled.ratio_ci_low, scaled.ratio_ci_high) == pytest.approx(
        (1.02 * one.ratio_ci_low, 1.02 * one.ratio_ci_high), rel=1e-12
    )
    assert scaled.ratio_ci_halfwidth == pytest.approx(one.ratio_ci_halfwidth, rel=1e-12)
