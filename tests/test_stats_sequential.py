"""Sequential designs that stop on a decision: error rates and rounds used, by simulation.

A point stops once its verdict is settled at the sequential level (97.5 %: CI inside ±2 % ->
equivalent; difference significant and the whole CI beyond ±2 % -> faster/slower), or its CI
half-width is at most 1 %, or at 40 rounds; looks from 5 rounds on.  It is compared with a fixed
40-round design decided at 95 %.  Wrong verdicts: faster/slower at a true ratio of 1.00;
slower or "beyond margin" at 1.01 (a true +1 % is inside the margin: faster and equivalent
are both right); slower or equivalent at 1.03 and 1.05.

The grid (4 CVs x 4 ratios x 2000 campaigns x 40 rounds) is simulated vectorised with the
verdict's analytical pieces -- Fieller's interval and the paired t-test on round means, which
is what compare() computes besides its bootstrap; test_the_model_agrees_with_the_real_rule
runs the real compare() + adaptive_decision(margin=...) on two cells to check the model.
"""

import numpy as np
import pytest
from scipy import special

from bench.stats import adaptive_decision, compare, decide, sequential_confidence

MARGIN, TARGET, MIN, MAX = 0.02, 0.01, 5, 40
CVS = (0.005, 0.01, 0.02, 0.05)
RATIOS = (1.00, 1.01, 1.03, 1.05)
TRIALS = 2000

pytestmark = pytest.mark.slow


def model(ratio, cv, *, sequential, trials=TRIALS, seed=0):
    """(verdict words, beyond-margin flags, rounds used) of `trials` one-point campaigns."""
    level = sequential_confidence(0.95) if sequential else 0.95
    rng = np.random.default_rng(seed)
    b = 100 * (1 + cv * rng.normal(size=(trials, MAX)))
    c = 100 * ratio * (1 + cv * rng.normal(size=(trials, MAX)))
    n = np.arange(1, MAX + 1)
    with np.errstate(all="ignore"):
        mb, mc = b.cumsum(1) / n, c.cumsum(1) / n
        vb = ((b * b).cumsum(1) - n * mb**2) / (n - 1) / n  # variances of the means
        vc = ((c * c).cumsum(1) - n * mc**2) / (n - 1) / n
        cov = ((b * c).cumsum(1) - n * mb * mc) / (n - 1) / n
        t_crit = special.stdtrit(np.maximum(n - 1, 1), 1 - (1 - level) / 2)
        quad, half, const = mb * mb - t_crit**2 * vb, mc * mb - t_crit**2 * cov, mc * mc - t_crit**2 * vc
        root = np.sqrt(np.maximum(half * half - quad * const, 0))
        low = np.where(quad > 0, (half - root) / quad, np.nan)
        high = np.where(quad > 0, (half + root) / quad, np.nan)
        t = (mc - mb) / np.sqrt(vc + vb - 2 * cov)
        p = 2 * special.stdtr(n - 1, -np.abs(t))
    significant = p < 1 - level
    inside = (low >= 1 - MARGIN) & (high <= 1 + MARGIN)
    beyond = (low > 1 + MARGIN) | (high < 1 - MARGIN)
    halfwidth = (high - low) / 2 / (mc / mb)
    if sequential:
        stop = (n >= MIN) & (inside | (significant & beyond) | (halfwidth <= TARGET))
    else:
        stop = np.zeros_like(inside)
    stop[:, MAX - 1] = True
    at = stop.argmax(axis=1)
    rows = np.arange(trials)
    inside, significant, beyond, up = (
        inside[rows, at],
        significant[rows, at],
        beyond[rows, at],
        (mc > mb)[rows, at],
    )
    words = np.where(
        inside, "equivalent", np.where(significant, np.where(up, "faster", "slower"), "inconclusive")
    )
    return words, significant & beyond & ~inside, at + 1


def wrong(words, beyond, ratio):
    if ratio == 1.0:
        return np.isin(words, ["faster", "slower"])
    if ratio < 1 + MARGIN:
        return (words == "slower") | beyond
    return np.isin(words, ["slower", "equivalent"])


def grid():
    rows = []
    for cv in CVS:
        for ratio in RATIOS:
            seed = int(cv * 10_000) * 100 + int(round((ratio - 1) * 100))
            seq_words, seq_beyond, seq_rounds = model(ratio, cv, sequential=True, seed=seed)
            fix_words, fix_beyond, _ = model(ratio, cv, sequential=False, seed=seed)
            rows.append(
                {
                    "cv": cv,
                    "ratio": ratio,
                    "rounds": float(seq_rounds.mean()),
                    "wrong_sequential": float(wrong(seq_words, seq_beyond, ratio).mean()),
                    "wrong_fixed": float(wrong(fix_words, fix_beyond, ratio).mean()),
                    "faster_sequential": float((seq_words == "faster").mean()),
                    "faster_fixed": float((fix_words == "faster").mean()),
                    "equivalent_sequential": float((seq_words == "equivalent").mean()),
                    "equivalent_fixed": float((fix_words == "equivalent").mean()),
                }
            )
    return rows


@pytest.fixture(scope="module")
def table():
    return grid()


def test_stopping_on_a_decision_keeps_wrong_verdicts_under_five_percent(table):
    for row in table:
        assert row["wrong_sequential"] <= 0.05, row


def test_it_uses_a_fraction_of_the_fixed_design_where_the_noise_allows(table):
    by = {(r["cv"], r["ratio"]): r for r in table}
    for ratio in RATIOS:
        assert by[(0.005, ratio)]["rounds"] <= 10
        assert by[(0.01, ratio)]["rounds"] <= 16
    # a clear +5 % is found as often as by 40 fixed rounds
    for cv in CVS:
        assert by[(cv, 1.05)]["faster_sequential"] >= by[(cv, 1.05)]["faster_fixed"] - 0.1


def test_the_model_agrees_with_the_real_rule():
    # the real pipeline: compare() at 97.5 % after each round, adaptive_decision with the margin
    trials, cv = 120, 0.01
    for ratio in (1.0, 1.03):
        rng = np.random.default_rng(int(ratio * 1000))
        b_all = 100 * (1 + cv * rng.normal(size=(trials, MAX)))
        c_all = 100 * ratio * (1 + cv * rng.normal(size=(trials, MAX)))
        rounds_used, words = [], []
        for b, c in zip(b_all, c_all):
            for n in range(MIN, MAX + 1):
                comp = compare(
                    b[:n],
                    c[:n],
                    baseline_rounds=range(n),
                    candidate_rounds=range(n),
                    higher_is_better=True,
                    confidence=sequential_confidence(0.95),
                    n_boot=1000,
                )
                decision = adaptive_decision(
                    {"p": comp},
                    target_ci=TARGET,
                    rounds_done=n,
                    min_rounds=MIN,
                    max_rounds=MAX,
                    margin=MARGIN,
                )
                if decision.stop:
                    break
            rounds_used.append(n)
            words.append(decide([comp], alpha=1 - sequential_confidence(0.95))[0].verdict)
        model_words, _, model_rounds = model(ratio, cv, sequential=True, seed=7)
        assert np.mean(rounds_used) == pytest.approx(model_rounds.mean(), rel=0.25)
        right = "equivalent" if ratio == 1.0 else "faster"
        assert np.mean(np.array(words) == right) == pytest.approx(np.mean(model_words == right), abs=0.08)


def test_settled_points_stop_and_only_the_undecided_go_on():
    rng = np.random.default_rng(3)
    n = 8
    b = 100 * (1 + 0.005 * rng.normal(size=(3, n)))
    c = 100 * np.array([[1.0], [1.10], [1.02]]) * (1 + 0.005 * rng.normal(size=(3, n)))
    comps = {
        k: compare(
            b[i],
            c[i],
            baseline_rounds=range(n),
            candidate_rounds=range(n),
            higher_is_better=True,
            confidence=0.975,
        )
        for i, k in enumerate(("same", "far", "edge"))
    }
    d = adaptive_decision(comps, target_ci=0.001, rounds_done=n, min_rounds=5, max_rounds=40, margin=MARGIN)
    assert d.points_settled == ("same", "far") and d.points_above_target == ("edge",) and not d.stop
    assert "undecided" in d.reason
    width_only = adaptive_decision(comps, target_ci=0.001, rounds_done=n, min_rounds=5, max_rounds=40)
    assert width_only.points_above_target == ("same", "far", "edge") and width_only.points_settled == ()
