"""Sessions as a level of the design: known answers (scipy) and a simulation with set truth.

Simulation: A/A, 4 sessions x 5 paired rounds, CV 1 % per run, and a session x driver effect
(the ratio moves by N(0, 2 %) per session, as if rnull were faster on one boot only).  Measured
(400 campaigns, the seeds below): compare() given the sessions covers ratio 1 in 95.3 % and calls
4.3 % faster/slower; without them, round-level, 67.8 % and 22.5 % -- the boot passing as the
driver.  Without a session effect the session-aware CI is as wide as the round-level one
(median ratio of widths 1.00) and covers 97 %.
"""

import math

import numpy as np
import pytest
from scipy import stats

from bench.stats import compare, decide
from bench.stats.sessions import session_level

S, R = 4, 5


def test_balanced_with_a_session_effect_is_the_t_interval_on_session_means():
    rng = np.random.default_rng(1)
    sessions = np.repeat(np.arange(S), R)
    y = 0.01 * rng.normal(size=S)[sessions] + 0.005 * rng.normal(size=S * R)
    level = session_level(y, sessions, margin=0.02)
    means = np.array([y[sessions == s].mean() for s in range(S)])
    half = stats.t.ppf(0.975, S - 1) * means.std(ddof=1) / math.sqrt(S)
    assert level.df == pytest.approx(S - 1)
    assert (level.ci_low, level.ci_high) == pytest.approx(
        (math.exp(means.mean() - half), math.exp(means.mean() + half))
    )
    assert level.p_value == pytest.approx(stats.ttest_1samp(means, 0.0).pvalue)
    assert level.p_between == pytest.approx(stats.f_oneway(*[y[sessions == s] for s in range(S)]).pvalue)
    assert level.between_share > 0.5 and level.dominated


def test_without_a_session_effect_it_is_the_round_level_t_test():
    sessions = np.repeat(np.arange(S), R)
    y = np.tile(np.array([-0.01, 0.0, 0.004, 0.01, -0.002]), S)  # identical sessions: MS_between = 0
    level = session_level(y, sessions, margin=0.02)
    assert level.between_share == 0 and level.df == S * R - 1 and not level.dominated
    assert level.p_value == pytest.approx(stats.ttest_1samp(y, 0.0).pvalue)


def test_one_session_or_one_round_per_session_has_no_session_level():
    assert session_level([0.01, 0.02, 0.0], [1, 1, 1], margin=0.02) is None
    assert session_level([0.01, 0.02], [1, 2], margin=0.02) is None


def campaigns(session_sd, trials=400, seed=11):
    rng = np.random.default_rng(seed)
    rounds = list(range(S * R))
    sessions = dict(zip(rounds, np.repeat(np.arange(S), R)))
    out = []
    for _ in range(trials):
        effect = np.exp(session_sd * rng.normal(size=S))[np.repeat(np.arange(S), R)]
        b = 100 * (1 + 0.01 * rng.normal(size=S * R))
        c = 100 * effect * (1 + 0.01 * rng.normal(size=S * R))
        kwargs = dict(baseline_rounds=rounds, candidate_rounds=rounds, higher_is_better=True, n_boot=1000)
        out.append((compare(b, c, round_sessions=sessions, **kwargs), compare(b, c, **kwargs)))
    return out


@pytest.mark.slow
def test_a_boot_to_boot_effect_does_not_pass_as_a_driver_effect():
    results = campaigns(0.02)
    aware = [a for a, _ in results]
    naive = [n for _, n in results]
    covered = np.mean([c.ratio_ci_low <= 1 <= c.ratio_ci_high for c in aware])
    assert covered >= 0.95 - 3 * math.sqrt(0.05 * 0.95 / len(results))
    wrong = np.mean([decide([c])[0].verdict in ("faster", "slower") for c in aware])
    assert wrong <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / len(results))
    # the check can fail: the round-level analysis is fooled
    assert np.mean([c.ratio_ci_low <= 1 <= c.ratio_ci_high for c in naive]) <= 0.85
    assert np.mean([decide([c])[0].verdict in ("faster", "slower") for c in naive]) >= 0.1
    assert all(c.sessions is not None and c.sessions.n_sessions == S for c in aware)


@pytest.mark.slow
def test_without_a_session_effect_nothing_is_lost():
    results = campaigns(0.0, trials=200, seed=12)
    widths = [(a.ratio_ci_high - a.ratio_ci_low) / (n.ratio_ci_high - n.ratio_ci_low) for a, n in results]
    assert np.median(widths) <= 1.1
    assert np.mean([a.ratio_ci_low <= 1 <= a.ratio_ci_high for a, _ in results]) >= 0.9
