"""Error rates of the whole per-point pipeline, compare() then decide(), by seeded simulation.

Setup throughout: n = 10 paired rounds, CV 1 % per run, margin 2 %, alpha 0.05, 95 % CIs (not the
shipped defaults: tests/test_stats_defaults.py simulates those).
Each point is decided on its own (a family of one), the least forgiving case for false alarms.
A rate estimated from N trials has a standard error sqrt(p (1 - p) / N); bounds allow 3 of them.
"""

import math

import numpy as np
import pytest

from bench.stats import EQUIVALENT, FASTER, SLOWER, compare, decide

pytestmark = pytest.mark.slow

ALPHA = 0.05
N_ROUNDS = 10
CV = 0.01
ROUNDS = list(range(N_ROUNDS))


def bound(rate, trials):
    return rate + 3 * math.sqrt(rate * (1 - rate) / trials)


def simulate(ratio, trials, *, seed, higher_is_better=True, paired=True):
    rng = np.random.default_rng(seed)
    base = 100 * (1 + CV * rng.normal(size=(trials, N_ROUNDS)))
    cand = 100 * ratio * (1 + CV * rng.normal(size=(trials, N_ROUNDS)))
    rounds = {"baseline_rounds": ROUNDS, "candidate_rounds": ROUNDS} if paired else {}
    comparisons = [compare(b, c, higher_is_better=higher_is_better, **rounds) for b, c in zip(base, cand)]
    verdicts = [decide([c])[0].verdict for c in comparisons]
    return comparisons, verdicts


@pytest.fixture(scope="module")
def a_a():
    return simulate(1.0, 2000, seed=2000)


def test_a_a_pairs_are_rarely_called_faster_or_slower(a_a):
    _, verdicts = a_a
    wrong = sum(v in (FASTER, SLOWER) for v in verdicts)
    assert wrong / 2000 <= bound(ALPHA, 2000)


def test_a_a_ratio_ci_covers_one_at_the_nominal_rate(a_a):
    comparisons, _ = a_a
    missed = sum(not (c.ratio_ci_low <= 1.0 <= c.ratio_ci_high) for c in comparisons)
    assert missed / 2000 <= bound(ALPHA, 2000)
    assert missed / 2000 >= 0.02  # and is not uselessly conservative
    significant = sum(c.p_value < ALPHA for c in comparisons)
    assert significant / 2000 <= bound(ALPHA, 2000)


def test_a_a_pairs_are_mostly_shown_equivalent(a_a):
    # with CV 1 % and 10 rounds the CI half-width is ~1 %, so most A/A CIs fit in +-2 %
    _, verdicts = a_a
    assert verdicts.count(EQUIVALENT) / 2000 >= 0.9


def test_a_five_percent_shift_is_detected():
    _, verdicts = simulate(1.05, 400, seed=5)
    assert verdicts.count(FASTER) / 400 >= 0.95
    assert verdicts.count(SLOWER) == 0


def test_a_five_percent_higher_latency_is_detected_as_slower():
    _, verdicts = simulate(1.05, 200, seed=6, higher_is_better=False)
    assert verdicts.count(SLOWER) / 200 >= 0.95
    assert verdicts.count(FASTER) == 0


def simulate_verdicts(ratio, trials, *, seed):
    rng = np.random.default_rng(seed)
    base = 100 * (1 + CV * rng.normal(size=(trials, N_ROUNDS)))
    cand = 100 * ratio * (1 + CV * rng.normal(size=(trials, N_ROUNDS)))
    return [
        decide([compare(b, c, higher_is_better=True, baseline_rounds=ROUNDS, candidate_rounds=ROUNDS)])[0]
        for b, c in zip(base, cand)
    ]


def test_a_difference_on_the_margin_is_rarely_called_equivalent_or_beyond_it():
    # True ratio exactly 1 + margin.  "equivalent" and "beyond margin" are both wrong claims,
    # each a one-sided test at the CI level: at most (1 - 0.95) / 2 of the time.  "faster" is
    # right (the candidate is 2 % faster) and, significant in ~98 % of campaigns, is said.
    # (Before issue 12 "faster" needed the CI beyond the margin and was said in ~2 %.)
    trials = 1000
    verdicts = simulate_verdicts(1.02, trials, seed=102)
    assert sum(v.verdict == EQUIVALENT for v in verdicts) / trials <= bound(0.025, trials)
    assert sum(v.beyond_margin for v in verdicts) / trials <= bound(0.025, trials)
    assert sum(v.verdict == FASTER for v in verdicts) / trials >= 0.9


def test_a_three_percent_shift_is_faster_and_half_the_time_beyond_the_margin():
    # measured: faster 100 %, beyond the margin ~47 % (the CI half-width is ~1 %)
    trials = 400
    verdicts = simulate_verdicts(1.03, trials, seed=103)
    assert sum(v.verdict == FASTER for v in verdicts) / trials >= 0.97
    beyond = sum(v.beyond_margin for v in verdicts) / trials
    assert 0.3 <= beyond <= 0.65
    assert all(v.beyond_margin <= (v.verdict == FASTER) for v in verdicts)


def test_unpaired_a_a_keeps_its_coverage():
    comparisons, verdicts = simulate(1.0, 500, seed=77, paired=False)
    missed = sum(not (c.ratio_ci_low <= 1.0 <= c.ratio_ci_high) for c in comparisons)
    assert missed / 500 <= bound(ALPHA, 500)
    assert sum(v in (FASTER, SLOWER) for v in verdicts) / 500 <= bound(ALPHA, 500)
