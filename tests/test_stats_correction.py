"""adjust_pvalues() against statsmodels' multipletests on fixed data."""

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from bench.stats import adjust_pvalues

P = [0.010, 0.040, 0.030, 0.005, 0.200, 0.030, 0.700, 0.001, 0.049, 0.500]


@pytest.mark.parametrize("ours, theirs", [("holm", "holm"), ("bh", "fdr_bh")])
def test_matches_statsmodels(ours, theirs):
    expected = multipletests(P, method=theirs)[1]
    assert adjust_pvalues(P, method=ours) == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize("ours, theirs", [("holm", "holm"), ("bh", "fdr_bh")])
def test_matches_statsmodels_on_random_p_values(ours, theirs):
    p = np.random.default_rng(0).uniform(0, 0.2, size=120)
    assert adjust_pvalues(p, method=ours) == pytest.approx(multipletests(p, method=theirs)[1], abs=1e-15)


def test_holm_is_the_default_and_by_hand():
    # sorted 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04 (monotone)
    assert adjust_pvalues([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])


def test_nan_p_values_stay_nan_and_do_not_count_as_tests():
    adjusted = adjust_pvalues([0.01, math.nan, 0.02])
    assert math.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.02])
    assert adjust_pvalues([]).size == 0
    assert np.all(np.isnan(adjust_pvalues([math.nan])))


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        adjust_pvalues([0.1], method="bonferroni")
    with pytest.raises(ValueError):
        adjust_pvalues([1.5])
