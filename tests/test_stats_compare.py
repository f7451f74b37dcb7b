"""compare() and its pieces against known answers: scipy, hand-computed cases, simulations."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from bench.stats import (
    cliffs_delta,
    compare,
    fieller_from_samples,
    fieller_interval,
    hodges_lehmann,
    minimum_detectable_effect,
)
from bench.stats.rank import u_null_cdf
from bench.stats.significance import mann_whitney_u, paired_t_test, welch_t_test

# IOPS-like numbers, fixed: 10 baseline runs and 10 candidate runs
BASE = np.array([101.2, 99.8, 100.4, 98.9, 100.9, 99.5, 100.1, 101.6, 99.2, 100.3])
CAND = np.array([103.1, 102.4, 101.8, 103.9, 102.2, 101.5, 103.3, 102.7, 101.9, 102.8])
ROUNDS = list(range(10))


# --- the classical tests match scipy -------------------------------------------------------


def test_welch_and_mann_whitney_match_scipy_on_fixed_data():
    c = compare(BASE, CAND, higher_is_better=True)
    assert not c.paired and c.p_value_test == "Welch t-test"
    assert c.welch_p == pytest.approx(stats.ttest_ind(CAND, BASE, equal_var=False).pvalue, rel=1e-10)
    assert c.p_value == c.welch_p
    assert c.mannwhitney_p == pytest.approx(
        stats.mannwhitneyu(CAND, BASE, alternative="two-sided").pvalue, rel=1e-10
    )


def test_paired_analysis_uses_the_paired_t_test():
    c = compare(BASE, CAND, baseline_rounds=ROUNDS, candidate_rounds=ROUNDS, higher_is_better=True)
    assert c.paired and c.n_pairs == 10
    assert c.paired_t_p == pytest.approx(stats.ttest_rel(CAND, BASE).pvalue, rel=1e-10)
    assert c.p_value == c.paired_t_p


@pytest.mark.parametrize("m, n", [(1, 1), (3, 5), (8, 12), (9, 9), (15, 11)])
@pytest.mark.parametrize("ties", [False, True])
def test_tests_match_scipy_across_sizes_and_ties(m, n, ties):
    rng = np.random.default_rng(m * 100 + n)
    b, c = rng.normal(size=n), rng.normal(0.5, 1.0, size=m)
    if ties:
        b, c = np.round(b), np.round(c)
    expected = stats.mannwhitneyu(c, b, alternative="two-sided").pvalue
    assert mann_whitney_u(b, c) == pytest.approx(expected, rel=1e-10)
    if m >= 2 and n >= 2:
        assert welch_t_test(b, c) == pytest.approx(
            stats.ttest_ind(c, b, equal_var=False).pvalue, rel=1e-10, nan_ok=True
        )
    if m == n and n >= 2:
        assert paired_t_test(b, c) == pytest.approx(stats.ttest_rel(c, b).pvalue, rel=1e-10)


def test_exact_u_distribution_matches_scipys_exact_p_values():
    rng = np.random.default_rng(3)
    for m, n in [(4, 4), (5, 7), (8, 3)]:
        x, y = rng.normal(size=m), rng.normal(size=n)
        u = stats.mannwhitneyu(x, y, method="exact").statistic
        cdf = u_null_cdf(m, n)
        upper = 1 - cdf[int(max(u, m * n - u)) - 1]
        assert min(1.0, 2 * upper) == pytest.approx(
            stats.mannwhitneyu(x, y, method="exact").pvalue, rel=1e-12
        )
    # 4 and 4: 70 arrangements, U = 0, 1, 2 have 1, 1, 2 of them
    assert u_null_cdf(4, 4)[:3] * 70 == pytest.approx([1, 2, 4])


# --- Fieller -----------------------------------------------------------------------------


def test_fieller_textbook_case_by_hand():
    # a = 10, b = 5, Var(a) = 1, Var(b) = 0.25, cov = 0, t = 2:
    # (25 - 1) r^2 - 2 * 50 r + (100 - 4) = 0  ->  r = (50 -+ sqrt(2500 - 24 * 96)) / 24 = (50 -+ 14) / 24
    low, high = fieller_interval(10.0, 5.0, 1.0, 0.25, 0.0, t_crit=2.0)
    assert low == pytest.approx(36 / 24) and high == pytest.approx(64 / 24)


def test_fieller_with_covariance_by_hand():
    # same with cov = 0.25: (50 - 1) = 49 in the middle term, sqrt(49^2 - 24 * 96) = sqrt(97)
    low, high = fieller_interval(10.0, 5.0, 1.0, 0.25, 0.25, t_crit=2.0)
    assert low == pytest.approx((49 - math.sqrt(97)) / 24)
    assert high == pytest.approx((49 + math.sqrt(97)) / 24)


def test_fieller_is_unbounded_when_the_denominator_is_not_significant():
    low, high = fieller_interval(10.0, 1.0, 1.0, 1.0, t_crit=2.0)
    assert math.isnan(low) and math.isnan(high)


def test_fieller_from_samples_agrees_with_the_delta_method_for_small_noise():
    low, high = fieller_from_samples(BASE, CAND, paired=False)
    ratio = CAND.mean() / BASE.mean()
    rel_se = math.sqrt(CAND.var(ddof=1) / 10 / CAND.mean() ** 2 + BASE.var(ddof=1) / 10 / BASE.mean() ** 2)
    assert (high - low) / 2 == pytest.approx(2.1 * rel_se * ratio, rel=0.05)
    assert low < ratio < high


# --- rank-based effect sizes --------------------------------------------------------------


def test_cliffs_delta_by_hand():
    # candidate - baseline over the 9 pairs: 6 positive, 1 negative, 2 ties
    assert cliffs_delta([1, 2, 3], [2, 3, 4]) == pytest.approx(5 / 9)
    assert cliffs_delta([1, 2], [3, 4]) == 1.0
    assert cliffs_delta([3, 4], [1, 2]) == -1.0
    assert math.isnan(cliffs_delta([], [1.0]))


def test_hodges_lehmann_by_hand():
    # differences c - b sorted: -2 -1 0 0 1 1 2 2 | 3 3 4 4 5 5 6 7, median (2 + 3) / 2
    b, c = [1, 2, 3, 4], [2, 4, 6, 8]
    shift, low, high = hodges_lehmann(b, c, confidence=0.95)
    assert shift == 2.5
    # 4 and 4 at 95 %: P(U <= 0) = 1/70 <= 0.025 < P(U <= 1) = 2/70, so cut 1 from each end
    assert (low, high) == (-2, 7)
    # at 90 %: P(U <= 1) = 2/70 <= 0.05 < P(U <= 2) = 4/70, so cut 2
    assert hodges_lehmann(b, c, confidence=0.90)[1:] == (-1, 6)
    # 3 and 3 cannot reach 95 %: P(U = 0) = 1/20 > 0.025
    assert all(math.isnan(x) for x in hodges_lehmann([1, 2, 3], [4, 5, 6])[1:])


def test_hodges_lehmann_ratio_in_compare_is_on_log_values():
    c = compare(BASE, CAND, higher_is_better=True)
    shift, low, high = hodges_lehmann(np.log(BASE), np.log(CAND))
    assert c.hl_log_shift == pytest.approx(shift)
    assert c.hl_ratio == pytest.approx(math.exp(shift))
    assert (c.hl_ratio_ci_low, c.hl_ratio_ci_high) == pytest.approx((math.exp(low), math.exp(high)))


# --- the ratio and its CI -------------------------------------------------------------------


def test_ratio_ci_is_the_hull_of_bootstrap_and_fieller_and_reproducible():
    a = compare(BASE, CAND, baseline_rounds=ROUNDS, candidate_rounds=ROUNDS, higher_is_better=True, seed=3)
    b = compare(BASE, CAND, baseline_rounds=ROUNDS, candidate_rounds=ROUNDS, higher_is_better=True, seed=3)
    assert a == b
    assert a.ratio == pytest.approx(CAND.mean() / BASE.mean())
    assert a.ratio_ci_low == min(a.bootstrap_ci_low, a.fieller_ci_low)
    assert a.ratio_ci_high == max(a.bootstrap_ci_high, a.fieller_ci_high)
    assert a.ratio_ci_low < a.ratio < a.ratio_ci_high


def test_pairing_cancels_a_shared_round_effect():
    rng = np.random.default_rng(5)
    round_effect = rng.normal(0, 0.05, size=12)  # e.g. drift: 5 % between rounds
    base = 100 * (1 + round_effect + rng.normal(0, 0.005, size=12))
    cand = 103 * (1 + round_effect + rng.normal(0, 0.005, size=12))
    rounds = list(range(12))
    paired = compare(base, cand, baseline_rounds=rounds, candidate_rounds=rounds, higher_is_better=True)
    independent = compare(base, cand, higher_is_better=True)

    def width(c):
        return c.ratio_ci_high - c.ratio_ci_low

    assert paired.paired and not independent.paired
    assert width(paired) < width(independent) / 4
    assert paired.ratio_ci_low > 1.02  # the 3 % shows through the drift only when paired


def test_several_runs_in_a_round_are_averaged_and_unmatched_rounds_dropped():
    base = [100, 102, 99, 101, 100]
    cand = [104, 106, 103, 105, 104, 110]
    c = compare(
        base,
        cand,
        baseline_rounds=[0, 0, 1, 2, 3],
        candidate_rounds=[0, 1, 1, 2, 3, 4],
        higher_is_better=True,
    )
    assert c.paired and c.n_pairs == 4 and c.unpaired_rounds == 1
    # rounds 0-3 in common; means: baseline 101, 99, 101, 100; candidate 104, 104.5, 105, 104
    assert c.ratio == pytest.approx((104 + 104.5 + 105 + 104) / (101 + 99 + 101 + 100))
    assert any("averaged per round" in note for note in c.notes)
    assert any("only one target" in note for note in c.notes)


def test_rounds_for_one_side_only_or_too_few_in_common_fall_back_to_independent():
    c = compare(BASE, CAND, baseline_rounds=ROUNDS, higher_is_better=True)
    assert not c.paired and c.n_pairs == 0
    c = compare(
        BASE[:3], CAND[:3], baseline_rounds=[0, 1, 2], candidate_rounds=[2, 3, 4], higher_is_better=True
    )
    assert not c.paired


@pytest.mark.slow
def test_hull_keeps_nominal_coverage_at_four_rounds():
    # a bootstrap alone cannot reach beyond the data's range: at n = 4 it covers ~88 %
    rng = np.random.default_rng(44)
    trials, missed, boot_missed = 500, 0, 0
    for _ in range(trials):
        base = 100 * (1 + 0.01 * rng.normal(size=4))
        cand = 100 * (1 + 0.01 * rng.normal(size=4))
        c = compare(
            base,
            cand,
            baseline_rounds=[0, 1, 2, 3],
            candidate_rounds=[0, 1, 2, 3],
            higher_is_better=True,
            n_boot=1000,
        )
        missed += not (c.ratio_ci_low <= 1.0 <= c.ratio_ci_high)
        boot_missed += not (c.bootstrap_ci_low <= 1.0 <= c.bootstrap_ci_high)
    se = math.sqrt(0.05 * 0.95 / trials)
    assert missed / trials <= 0.05 + 3 * se
    assert boot_missed / trials > 0.05 + se  # why the hull is there


# --- direction, resolution, edge cases ------------------------------------------------------


def test_improvement_follows_the_metric_direction():
    lat_base = [100.0, 101.0, 99.0, 100.5, 99.5]
    lat_cand = [95.0, 96.0, 94.0, 95.5, 94.5]  # 5 % lower latency: better
    c = compare(lat_base, lat_cand, higher_is_better=False)
    assert c.ratio == pytest.approx(0.95)
    assert c.improvement == pytest.approx(0.05)
    assert c.improvement_ci_low == pytest.approx(1 - c.ratio_ci_high)
    iops = compare(lat_base, lat_cand, higher_is_better=True)
    assert iops.improvement == pytest.approx(-0.05)


def test_unpaired_mde_uses_welchs_test_at_its_degrees_of_freedom():
    # (the z formula the MDE used before issue 12 is the df -> infinity limit; see test_stats_power.py)
    rng = np.random.default_rng(9)
    base = 100 * (1 + 0.01 * rng.normal(size=40))
    cand = 100 * (1 + 0.01 * rng.normal(size=40))
    c = compare(base, cand, higher_is_better=True)
    welch = stats.ttest_ind(cand, base, equal_var=False)
    se = math.sqrt(base.var(ddof=1) / 40 + cand.var(ddof=1) / 40) / base.mean()
    assert c.mde == pytest.approx(minimum_detectable_effect(se, df=welch.df), rel=1e-9)
    assert c.mde == pytest.approx(2.8016 * se, rel=0.02)  # close to the z value at this n


@pytest.mark.parametrize(
    "base, cand", [([], []), ([1.0], [2.0]), ([], [1.0, 2.0]), ([5.0] * 8, [5.0] * 8), ([5.0] * 8, [6.0] * 8)]
)
def test_edge_cases_do_not_crash_and_have_no_ci(base, cand):
    rounds_b, rounds_c = list(range(len(base))), list(range(len(cand)))
    for kwargs in ({}, {"baseline_rounds": rounds_b, "candidate_rounds": rounds_c}):
        c = compare(base, cand, higher_is_better=True, **kwargs)
        assert c.ci_problem and not c.has_ci
        assert math.isnan(c.ratio_ci_low) and math.isnan(c.ratio_ci_halfwidth)
        json.dumps(c.to_dict(), allow_nan=False)


def test_to_dict_is_strict_json_and_nested():
    c = compare(BASE, CAND, baseline_rounds=ROUNDS, candidate_rounds=ROUNDS, higher_is_better=True)
    d = json.loads(json.dumps(c.to_dict(), allow_nan=False))
    assert d["baseline"]["n"] == 10 and d["ratio"] == pytest.approx(c.ratio)
    assert d["notes"] == []


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        compare(BASE, CAND, baseline_rounds=[1, 2], candidate_rounds=ROUNDS, higher_is_better=True)
    with pytest.raises(ValueError):
        compare(BASE, CAND, baseline_rounds=[0.5] * 10, candidate_rounds=ROUNDS, higher_is_better=True)
    with pytest.raises(ValueError):
        compare(BASE, CAND, higher_is_better=True, margin=0)
    with pytest.raises(ValueError):
        compare(BASE, CAND, higher_is_better=True, n_boot=10)


# --- the ratio TOST (equivalence) --------------------------------------------------------


@pytest.mark.parametrize("paired", [True, False])
@pytest.mark.parametrize("margin", [0.02, 0.05])
def test_ratio_tost_matches_scipys_one_sided_t_tests(paired, margin):
    from bench.stats.significance import ratio_tost

    p_equiv, p_upper, p_lower = ratio_tost(BASE, CAND, margin, paired=paired)
    if paired:
        upper = stats.ttest_rel(CAND, (1 + margin) * BASE, alternative="less").pvalue
        lower = stats.ttest_rel(CAND, (1 - margin) * BASE, alternative="greater").pvalue
    else:
        upper = stats.ttest_ind(CAND, (1 + margin) * BASE, equal_var=False, alternative="less").pvalue
        lower = stats.ttest_ind(CAND, (1 - margin) * BASE, equal_var=False, alternative="greater").pvalue
    assert (p_upper, p_lower) == pytest.approx((upper, lower), rel=1e-10)
    assert p_equiv == pytest.approx(min(1.0, 2 * max(upper, lower)), rel=1e-10)


def test_ratio_tost_matches_statsmodels_ttost_on_the_shifted_values():
    # statsmodels' TOST is on differences; with the baseline scaled by each end of the band,
    # each of its one-sided tests is one of ours.
    from statsmodels.stats.weightstats import ttost_ind, ttost_paired

    from bench.stats.significance import ratio_tost

    m = 0.02
    _, upper, _ = ratio_tost(BASE, CAND, m, paired=True)
    _, _, (_, p_sm_upper, _) = ttost_paired(CAND, (1 + m) * BASE, -np.inf, 0.0)
    assert upper == pytest.approx(p_sm_upper, rel=1e-10)
    _, upper_ind, lower_ind = ratio_tost(BASE, CAND, m, paired=False)
    _, (_, p_low, _), (_, p_high, _) = ttost_ind(CAND, (1 - m) * BASE, 0.0, np.inf, usevar="unequal")
    assert lower_ind == pytest.approx(p_low, rel=1e-10)
    _, _, (_, p_high, _) = ttost_ind(CAND, (1 + m) * BASE, -np.inf, 0.0, usevar="unequal")
    assert upper_ind == pytest.approx(p_high, rel=1e-10)


@pytest.mark.parametrize("paired", [True, False])
def test_tost_p_below_alpha_exactly_when_fiellers_ci_is_inside_the_band(paired):
    # the duality that makes the verdict's word and its picture agree
    from bench.stats.significance import ratio_tost

    rng = np.random.default_rng(11)
    agree = 0
    for _ in range(200):
        b = 100 * (1 + 0.01 * rng.normal(size=6))
        c = 100 * rng.uniform(0.985, 1.015) * (1 + 0.01 * rng.normal(size=6))
        low, high = fieller_from_samples(b, c, paired=paired, confidence=0.95)
        inside = low >= 0.98 and high <= 1.02
        assert (ratio_tost(b, c, 0.02, paired=paired)[0] < 0.05) == inside
        agree += inside
    assert 20 < agree < 180  # both outcomes were exercised


def test_compare_reports_p_equiv_and_its_moments():
    c = compare(BASE, CAND, baseline_rounds=ROUNDS, candidate_rounds=ROUNDS, higher_is_better=True)
    from bench.stats.significance import ratio_tost

    assert c.p_equiv == ratio_tost(BASE, CAND, 0.02, paired=True)[0]
    assert c.moments.paired and c.moments.n_baseline == 10
    json.dumps(c.to_dict(), allow_nan=False)
