"""The SNIA PTS steady-state check (bench.stats.steady_state) against hand-computed windows,
scipy's least-squares line, and synthetic series whose steady point is set by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench.stats.steady_state import check_window, steady_state


def test_a_hand_computed_window():
    # y = 100, 102, 98, 101, 99: mean 100; x̄ = 2, Sxx = 10,
    # Sxy = (-2)(0) + (-1)(2) + 0(-2) + 1(1) + 2(-1) = -3 -> slope -0.3, intercept 100.6;
    # excursion (102 - 98)/100 = 4 %; change across the window 0.3 * 4 / 100 = 1.2 %;
    # residuals -0.6, 1.7, -2.0, 1.3, -0.4 -> largest 2.0 %
    got = check_window([100, 102, 98, 101, 99], 0, 0.20, 0.10, 0.05)
    assert got.mean == pytest.approx(100)
    assert got.slope == pytest.approx(-0.3)
    assert got.intercept == pytest.approx(100.6)
    assert got.excursion == pytest.approx(0.04)
    assert got.slope_change == pytest.approx(0.012)
    assert got.max_deviation == pytest.approx(0.02)
    assert got.steady


def test_the_line_is_scipys_least_squares_line():
    rng = np.random.default_rng(3)
    for _ in range(50):
        y = list(1000 + rng.normal(0, 30, 7).cumsum())
        fit = stats.linregress(np.arange(7), y)
        got = check_window(y, 0, 0.2, 0.1, 0.05)
        assert got.slope == pytest.approx(fit.slope)
        assert got.intercept == pytest.approx(fit.intercept)
        resid = np.abs(np.array(y) - (fit.intercept + fit.slope * np.arange(7)))
        assert got.max_deviation == pytest.approx(resid.max() / np.mean(y))


def test_each_criterion_fails_on_its_own():
    # a clean ramp of 12 % across the window: excursion 12 % (< 20 %), on its line, slope too steep
    ramp = [100 + 3 * i for i in range(5)]
    assert check_window(ramp, 0, 0.2, 0.1, 0.05).failed == ("slope",)
    # flat line with one round 8 % off: excursion 8 %, slope ~0, but off the line by > 5 %
    spike = [100, 100, 108, 100, 100]
    assert check_window(spike, 0, 0.2, 0.1, 0.05).failed == ("band",)
    # alternating ±11 %: no slope, excursion 22 %, every round 11 % off the line
    zigzag = [111, 89, 111, 89, 111]
    assert set(check_window(zigzag, 0, 0.2, 0.1, 0.05).failed) == {"excursion", "band"}
    # thresholds are options: the ramp passes with a 15 % slope allowance
    assert check_window(ramp, 0, 0.2, 0.15, 0.05).steady


def test_a_write_cliff_settles_where_it_was_built_to():
    # fresh-out-of-box rounds decaying as y_t = f + A e^{-t/2} (f = 50,000, A = 150,000), no noise.
    # By hand, for the window starting at s (u = e^{-s/2}), with e^{-k/2}, k = 0..4 =
    # 1, .6065, .3679, .2231, .1353: their mean m = .46657 and least-squares slope b = -.21127, so
    #   slope change = 4 |b| A u / (f + m A u) <= 0.10  <=>  u <= 0.1 f / (A (.84508 - .046657))
    #                = .041750  <=>  s >= 6.36;
    #   excursion    = (1 - .1353) A u / (f + m A u) <= 0.20  <=>  s >= 4.90.
    # The slope criterion decides: the first steady window starts at round index 7.
    series = [50_000 + 150_000 * math.exp(-t / 2) for t in range(25)]
    result = steady_state(series)
    assert result.steady and result.check.start == 7
    assert result.reason.startswith("steady from round 8 (rounds 8-12)")
    assert check_window(series[6:11], 6, 0.2, 0.1, 0.05).failed == ("slope",)
    assert check_window(series[4:9], 4, 0.2, 0.1, 0.05).failed == ("excursion", "slope")


def test_noise_around_a_level_is_steady_and_a_trend_is_not():
    rng = np.random.default_rng(7)
    flat = list(80_000 * (1 + rng.normal(0, 0.01, 10)))  # 1 % noise: steady at once
    assert steady_state(flat).check.start == 0
    trend = [80_000 * (1 - 0.03 * i) for i in range(15)]  # -3 %/round: never steady
    got = steady_state(trend)
    assert not got.steady and got.check.failed == ("slope",)
    assert got.reason.startswith("not steady: the last window (rounds 11-15) fails slope")


def test_too_few_rounds_and_bad_windows():
    assert steady_state([1, 2, 3]).reason == "3 round(s), a window needs 5"
    with pytest.raises(ValueError, match="at least 3 rounds"):
        steady_state([1, 2, 3], window=2)
    assert check_window([0, 0, 0], 0, 0.2, 0.1, 0.05).failed == ("mean",)
    record = steady_state([100, 102, 98, 101, 99]).record()
    assert record["steady"] and record["check"]["start"] == 0 and record["thresholds"]["band"] == 0.05
