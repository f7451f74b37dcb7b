"""Power of the verdict's tests, the MDE and rounds_for_power: known answers and simulation.

Known answers: statsmodels' TTestPower (one-sample / paired t) and TTestIndPower (two
independent samples, equal sizes), whose noncentral-t power is the same computation; the
equivalence power against direct numerical integration with scipy.  Simulation: the rates at
which the real tests (paired_t_test, ratio_tost) reject in seeded synthetic campaigns must match
the predictions within 3 binomial standard errors plus 1.5 points (the model works on the
relative difference, the tests on c - r b: a ~1 % difference in the spread at r = 1 +- 2 %).
"""

import math

import numpy as np
import pytest
from scipy import integrate, special, stats
from statsmodels.stats.power import TTestIndPower, TTestPower

from bench.stats import compare
from bench.stats.power import (
    minimum_detectable_effect,
    power_difference,
    power_equivalence,
    rounds_for_power,
)
from bench.stats.significance import paired_t_test, ratio_tost


@pytest.mark.parametrize("n", [3, 5, 10, 40])
@pytest.mark.parametrize("shift", [0.005, 0.02, 0.04])
def test_paired_power_matches_statsmodels_ttestpower(n, shift):
    sd = 0.01 * math.sqrt(2)
    expected = TTestPower().power(effect_size=shift / sd, nobs=n, alpha=0.05, alternative="two-sided")
    if math.isnan(expected):  # statsmodels hits scipy's NaN far in the wrong-side tail; that tail is ~0
        expected = stats.nct.sf(stats.t.ppf(0.975, n - 1), n - 1, shift / sd * math.sqrt(n))
    assert power_difference(shift, sd / math.sqrt(n), n - 1) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [3, 10, 40])
def test_independent_power_matches_statsmodels_ttestindpower(n):
    sd = 0.01
    expected = TTestIndPower().power(
        effect_size=0.02 / sd, nobs1=n, ratio=1.0, alpha=0.05, alternative="two-sided"
    )
    assert power_difference(0.02, sd * math.sqrt(2 / n), 2 * n - 2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [3, 5, 10, 40])
def test_mde_matches_statsmodels_solve_power(n):
    sd = 0.012
    effect = TTestPower().solve_power(nobs=n, alpha=0.05, power=0.8, alternative="two-sided")
    assert minimum_detectable_effect(sd / math.sqrt(n), df=n - 1) == pytest.approx(effect * sd, rel=1e-6)
    effect_ind = TTestIndPower().solve_power(nobs1=n, ratio=1.0, alpha=0.05, power=0.8)
    assert minimum_detectable_effect(sd * math.sqrt(2 / n), df=2 * n - 2) == pytest.approx(
        effect_ind * sd, rel=1e-6
    )


def test_normal_limit_is_the_textbook_formula():
    # CV 1 %, n = 40 per target, alpha 0.05, power 0.8: (1.96 + 0.84) * 0.01 * sqrt(2 / 40)
    assert minimum_detectable_effect(0.01 * math.sqrt(2 / 40)) == pytest.approx(0.00626, abs=2e-5)
    # with the real df the MDE is larger, most at small n (the old z value was optimistic)
    assert minimum_detectable_effect(0.01, df=4) > 1.3 * minimum_detectable_effect(0.01)


@pytest.mark.parametrize(
    "margin, se, df, shift",
    [(0.02, 0.005, 9, 0.0), (0.02, 0.008, 2, 0.0), (0.02, 0.003, 39, 0.01), (0.05, 0.01, 4, -0.02)],
)
def test_equivalence_power_matches_direct_integration(margin, se, df, shift):
    t_crit = special.stdtrit(df, 0.975)

    def integrand(x):
        reach = margin - t_crit * se * math.sqrt(x / df)
        if reach <= 0:
            return 0.0
        return (special.ndtr((reach - shift) / se) - special.ndtr((-reach - shift) / se)) * stats.chi2.pdf(
            x, df
        )

    expected = integrate.quad(integrand, 0, df * (margin / (t_crit * se)) ** 2, limit=500)[0]
    assert power_equivalence(margin, se, df, shift=shift) == pytest.approx(expected, abs=1e-8)


def simulated_rates(ratio, n, cv, trials, seed):
    rng = np.random.default_rng(seed)
    base = 100 * (1 + cv * rng.normal(size=(trials, n)))
    cand = 100 * ratio * (1 + cv * rng.normal(size=(trials, n)))
    significant = np.mean([paired_t_test(b, c) < 0.05 for b, c in zip(base, cand)])
    equivalent = np.mean([ratio_tost(b, c, 0.02, paired=True)[0] < 0.05 for b, c in zip(base, cand)])
    return significant, equivalent


def close(simulated, predicted, trials):
    return abs(simulated - predicted) <= 3 * math.sqrt(predicted * (1 - predicted) / trials) + 0.015


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 5, 10, 20])
def test_power_matches_simulation(n):
    # CV 1 % per run, paired: one round's relative difference has sd 1.414 %
    trials, cv = 3000, 0.01
    sd = cv * math.sqrt(2)
    se = sd / math.sqrt(n)
    at_margin, _ = simulated_rates(1.02, n, cv, trials, seed=n)
    _, at_one = simulated_rates(1.0, n, cv, trials, seed=100 + n)
    assert close(at_margin, power_difference(0.02, se, n - 1), trials), (n, at_margin)
    assert close(at_one, power_equivalence(0.02, se, n - 1), trials), (n, at_one)


def test_compare_reports_the_power_of_its_own_tests():
    rng = np.random.default_rng(5)
    base, cand = 100 * (1 + 0.01 * rng.normal(size=(2, 6)))
    rounds = list(range(6))
    c = compare(base, cand, baseline_rounds=rounds, candidate_rounds=rounds, higher_is_better=True)
    sd = np.std(cand - base, ddof=1) / base.mean()
    effect = TTestPower().solve_power(nobs=6, alpha=0.05, power=0.8)
    assert c.mde == pytest.approx(effect * sd, rel=1e-6)
    assert c.power_at_margin == pytest.approx(TTestPower().power(0.02 / sd, 6, 0.05), rel=1e-6)
    assert c.power_equivalence == pytest.approx(power_equivalence(0.02, sd / math.sqrt(6), 5), rel=1e-9)
    assert c.moments.unit_sd() == pytest.approx(sd, rel=1e-12)


@pytest.mark.parametrize("unit_sd", [0.005, 0.01, 0.02])
def test_rounds_for_power_is_the_smallest_n_that_reaches_80_percent(unit_sd):
    detect, equivalent = rounds_for_power(unit_sd, 0.02)
    assert detect == max(2, math.ceil(TTestPower().solve_power(0.02 / unit_sd, alpha=0.05, power=0.8)))
    assert power_equivalence(0.02, unit_sd / math.sqrt(equivalent), equivalent - 1) >= 0.8
    if equivalent > 2:
        assert power_equivalence(0.02, unit_sd / math.sqrt(equivalent - 1), equivalent - 2) < 0.8


def test_rounds_for_power_says_when_the_goal_is_out_of_reach():
    assert rounds_for_power(1.0, 0.02, max_rounds=50) == (51, 51)
    with pytest.raises(ValueError):
        rounds_for_power(0.0, 0.02)
