"""describe(): location, spread and a seeded bootstrap CI of the mean, for any n."""

import json
import math

import numpy as np
import pytest

from bench.stats import describe

VALUES = [101.0, 99.0, 100.5, 98.5, 102.0, 100.0, 99.5, 101.5, 100.0, 98.0]


def test_known_summary_values():
    s = describe(VALUES)
    assert s.n == 10
    assert s.mean == pytest.approx(100.0)
    assert s.median == pytest.approx(100.0)
    assert s.stdev == pytest.approx(np.std(VALUES, ddof=1))
    assert s.cv == pytest.approx(np.std(VALUES, ddof=1) / 100.0)
    assert (s.min, s.max) == (98.0, 102.0)
    assert s.ci_low < s.mean < s.ci_high


def test_ci_is_reproducible_with_a_seed_and_changes_with_it():
    values = np.random.default_rng(1).normal(100.0, 1.0, size=12)
    a = describe(values, seed=7)
    b = describe(values, seed=7)
    c = describe(values, seed=8)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_ci_is_about_as_wide_as_the_t_interval():
    # the expanded percentile interval is built to match t for normal-ish data
    s = describe(VALUES, n_boot=20_000)
    t_half = 2.262 * s.stdev / math.sqrt(10)
    assert (s.ci_high - s.ci_low) / 2 == pytest.approx(t_half, rel=0.15)


@pytest.mark.slow
def test_ci_covers_the_mean_at_its_nominal_rate():
    rng = np.random.default_rng(2024)
    samples = rng.normal(100.0, 1.0, size=(600, 8))
    missed = 0
    for sample in samples:
        s = describe(sample, n_boot=2000)
        missed += not (s.ci_low <= 100.0 <= s.ci_high)
    # 600 trials: the standard error of a 5 % rate is ~0.9 %
    assert missed / 600 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 600)


def test_one_value_has_no_spread_and_no_ci():
    s = describe([42.0])
    assert (s.n, s.mean, s.median, s.min, s.max) == (1, 42.0, 42.0, 42.0, 42.0)
    assert math.isnan(s.stdev) and math.isnan(s.cv)
    assert math.isnan(s.ci_low) and math.isnan(s.ci_high)


def test_no_values_gives_nans_not_a_crash():
    s = describe([])
    assert s.n == 0
    assert all(math.isnan(x) for x in (s.mean, s.median, s.stdev, s.min, s.max, s.ci_low))


def test_constant_values():
    s = describe([5.0] * 6)
    assert s.stdev == 0 and s.cv == 0
    assert s.ci_low == pytest.approx(5.0) and s.ci_high == pytest.approx(5.0)


def test_to_dict_is_strict_json_with_nan_as_null():
    for values in ([], [1.0], VALUES):
        text = json.dumps(describe(values).to_dict(), allow_nan=False)
        assert "ci_method" in text
    assert describe([1.0]).to_dict()["ci_low"] is None


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        describe([1.0, float("nan")])
    with pytest.raises(ValueError):
        describe([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError):
        describe([1.0, 2.0], seed=-1)
