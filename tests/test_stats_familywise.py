"""Family-wise error rates of the verdicts across the points decided together, by simulation.

12 points per campaign, n = 10 paired rounds, CV 1 % per run, margin 2 %, alpha 0.05; each
family is decided with decide() (Holm, or Benjamini-Hochberg), exactly as `blkcmp compare` does.
A rate estimated from N families has a standard error sqrt(p (1 - p) / N); bounds allow 3.

Measured here (500 families, the seeds below): with every point exactly on the margin (true
ratio 1.02) 3.0 % of families hold a wrong "equivalent" (Holm and BH alike), against 25.8 %
when each point's CI is read alone (the issue's 24 %); 93 % of those points are (rightly)
"faster", 2.4 % "beyond margin".  With every point A/A, 1.8 % (Holm) and 1.4 % (BH) of families
hold a wrong "faster"/"slower", against 47.6 % for uncorrected p < 0.05; 78 % of A/A points
are "equivalent" after Holm.  (A second seed, 600 families: 1.8 %, 2.5 % and 1.7 %.)
"""

import math

import numpy as np
import pytest

from bench.stats import EQUIVALENT, FASTER, SLOWER, compare, decide

POINTS, N_ROUNDS, CV, FAMILIES = 12, 10, 0.01, 500
ROUNDS = list(range(N_ROUNDS))

pytestmark = pytest.mark.slow


def bound(rate, trials):
    return rate + 3 * math.sqrt(rate * (1 - rate) / trials)


def families(ratio, seed):
    rng = np.random.default_rng(seed)
    base = 100 * (1 + CV * rng.normal(size=(FAMILIES, POINTS, N_ROUNDS)))
    cand = 100 * ratio * (1 + CV * rng.normal(size=(FAMILIES, POINTS, N_ROUNDS)))
    # n_boot 1000 keeps the run short; the hull CI is then Fieller's in nearly every case anyway
    return [
        [
            compare(b, c, baseline_rounds=ROUNDS, candidate_rounds=ROUNDS, higher_is_better=True, n_boot=1000)
            for b, c in zip(bs, cs)
        ]
        for bs, cs in zip(base, cand)
    ]


@pytest.fixture(scope="module")
def on_the_margin():
    return families(1.02, seed=1202)


@pytest.fixture(scope="module")
def a_a():
    return families(1.0, seed=1200)


def rate(fams, method, words):
    return sum(any(v.verdict in words for v in decide(f, method=method)) for f in fams) / len(fams)


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_points_on_the_margin_rarely_yield_a_wrong_equivalent_in_the_family(on_the_margin, method):
    assert rate(on_the_margin, method, {EQUIVALENT}) <= bound(0.05, FAMILIES)


def test_without_correction_a_family_on_the_margin_often_holds_a_wrong_equivalent(on_the_margin):
    # the check above can fail: reading each CI alone is what the issue measured (24 %)
    uncorrected = (
        sum(any(c.ratio_ci_low >= 0.98 and c.ratio_ci_high <= 1.02 for c in f) for f in on_the_margin)
        / FAMILIES
    )
    assert uncorrected >= 0.15


def test_points_on_the_margin_are_still_found_faster(on_the_margin):
    verdicts = [v for f in on_the_margin[:100] for v in decide(f)]
    assert sum(v.verdict == FASTER for v in verdicts) / len(verdicts) >= 0.9


@pytest.mark.parametrize("method", ["holm", "bh"])
def test_a_a_families_rarely_hold_a_faster_or_slower(a_a, method):
    assert rate(a_a, method, {FASTER, SLOWER}) <= bound(0.05, FAMILIES)


def test_a_a_families_without_correction_often_hold_a_significant_point(a_a):
    uncorrected = sum(any(c.p_value < 0.05 for c in f) for f in a_a) / FAMILIES
    assert uncorrected >= 0.3  # 1 - 0.95^12 = 46 %


def test_a_a_points_are_mostly_equivalent_even_after_correction(a_a):
    # the price of correcting equivalence: 78 % of A/A points (Holm) against ~94 % decided alone
    verdicts = [v for f in a_a for v in decide(f)]
    assert sum(v.verdict == EQUIVALENT for v in verdicts) / len(verdicts) >= 0.7
