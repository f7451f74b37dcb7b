"""decide(): the four verdict words, their rules, and the sentences (across points: test_stats_aggregate.py)."""

import dataclasses
import json
import re

import numpy as np
import pytest

from bench.stats import (
    EQUIVALENT,
    FASTER,
    INCONCLUSIVE,
    SLOWER,
    compare,
    decide,
)


def point(ratio, *, cv=0.01, n=10, higher_is_better=True, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    base = 100 * (1 + cv * rng.normal(size=n))
    cand = 100 * ratio * (1 + cv * rng.normal(size=n))
    rounds = list(range(n))
    return compare(
        base,
        cand,
        baseline_rounds=rounds,
        candidate_rounds=rounds,
        higher_is_better=higher_is_better,
        **kwargs,
    )


def one(comparison, **kwargs):
    return decide([comparison], **kwargs)[0]


def factor_in(sentence):
    return float(re.search(r"is (\d+\.\d+) ±", sentence).group(1))


def test_higher_iops_is_faster():
    v = one(point(1.05))
    assert v.verdict == FASTER and v.significant
    assert re.fullmatch(
        r"rnull is \d\.\d\d ± 0\.\d\d × faster than null_blk \(95 % CI \S+-\S+\), "
        r"beyond the ±2 % margin",
        v.sentence,
    )
    assert factor_in(v.sentence) == pytest.approx(1.05, abs=0.015)


def test_lower_iops_is_slower():
    v = one(point(0.95))
    assert v.verdict == SLOWER
    assert "× slower than null_blk" in v.sentence
    assert factor_in(v.sentence) == pytest.approx(1 / 0.95, abs=0.015)


def test_lower_latency_is_faster():
    # clat ratio 0.95: the candidate takes 95 % of the time, i.e. it is ~1.05 x faster
    v = one(point(0.95, higher_is_better=False))
    assert v.verdict == FASTER
    assert v.improvement == pytest.approx(0.05, abs=0.01)
    assert "× faster than null_blk" in v.sentence
    assert factor_in(v.sentence) == pytest.approx(1 / 0.95, abs=0.015)


def test_a_ci_reaching_zero_is_said_as_unbounded():
    # A very noisy ratio's interval can reach past zero (seen on a 3-round loop campaign: the
    # sentence read "62.456 ± -173.197 × slower (95 % CI 32.486--313.908)"). The slower factor is
    # then bounded below only.
    c = dataclasses.replace(point(0.95), ratio=0.016, ratio_ci_low=-0.0058, ratio_ci_high=0.0308)
    v = one(c)
    assert v.verdict == SLOWER
    assert re.fullmatch(
        r"rnull is 62\.5\d* × slower than null_blk \(95 % CI 32\.4\d* to unbounded\), beyond the ±2 % margin",
        v.sentence,
    ), v.sentence
    # the same for latency, where the candidate's ratio is inverted
    lat = dataclasses.replace(
        point(1.05, higher_is_better=False), ratio=62.5, ratio_ci_low=-3.0, ratio_ci_high=200.0
    )
    sentence = one(lat).sentence
    assert "to unbounded" not in sentence and "-" not in sentence.split("CI ")[1].split("-")[0]


def test_higher_latency_is_slower():
    v = one(point(1.05, higher_is_better=False))
    assert v.verdict == SLOWER
    assert "× slower than null_blk" in v.sentence
    assert factor_in(v.sentence) == pytest.approx(1.05, abs=0.015)


def test_names_are_the_callers():
    v = one(point(1.05), baseline_name="C", candidate_name="Rust")
    assert v.sentence.startswith("Rust is") and "than C " in v.sentence


def test_tight_ci_inside_the_margin_is_equivalent():
    v = one(point(1.0, cv=0.005, n=20))
    assert v.verdict == EQUIVALENT
    assert "equivalent within ±2 %" in v.sentence
    assert v.ci_low >= 0.98 and v.ci_high <= 1.02


def test_wide_ci_is_inconclusive_never_equal():
    c = point(1.0, cv=0.05, n=5)
    v = one(c)
    assert v.verdict == INCONCLUSIVE and not v.significant
    assert "not evidence of equality" in v.reason
    assert v.sentence.startswith("inconclusive: rnull/null_blk = ")


def test_significant_but_smaller_than_the_margin_is_equivalent_and_says_so():
    v = one(point(1.008, cv=0.002, n=20))
    assert v.verdict == EQUIVALENT and v.significant and v.equivalence_shown
    assert "significant but negligible" in v.reason
    assert "significant but negligible" in v.sentence
    assert not v.beyond_margin


def test_significant_but_overlapping_the_margin_is_faster_not_beyond_it():
    # Old rule: "inconclusive" (the CI had to clear 1.02).  A significant +2 % is faster.
    v = one(point(1.02, cv=0.01, n=10))
    assert v.ci_low < 1.02 < v.ci_high and v.significant
    assert v.verdict == FASTER and not v.beyond_margin
    assert v.sentence.endswith(", possibly by less than the ±2 % margin")
    assert "reaches into the ±2 % margin" in v.reason


def test_a_real_two_and_a_half_percent_with_a_tiny_p_is_faster():
    # the case: rnull 2.5 % faster with a tiny p used to be "inconclusive"
    v = one(point(1.025, cv=0.005, n=10, seed=3))
    assert v.p_value < 1e-4 and v.verdict == FASTER and v.ci_low < 1.02


def test_beyond_margin_is_said_in_the_sentence():
    v = one(point(1.05))
    assert v.verdict == FASTER and v.beyond_margin
    assert v.sentence.endswith("), beyond the ±2 % margin")
    s = one(point(0.95))
    assert s.verdict == SLOWER and s.beyond_margin and s.sentence.endswith("beyond the ±2 % margin")


def test_equivalence_is_corrected_across_points():
    # A CI inside the band shows equivalence alone; among many points its TOST p is corrected.
    c = point(1.0, cv=0.01, n=10, seed=4)
    alone = one(c)
    assert alone.verdict == EQUIVALENT and alone.p_equiv_adjusted == alone.p_equiv
    weak = dataclasses.replace(c, p_equiv=0.02)  # inside the band, but only just significant
    assert one(weak).verdict == EQUIVALENT
    family = decide([weak] * 10)
    assert [v.p_equiv_adjusted for v in family] == pytest.approx([0.2] * 10)
    assert all(v.verdict == INCONCLUSIVE and not v.equivalence_shown for v in family)
    assert "equivalence is not shown after correction" in family[0].reason
    strong = decide([weak] + [point(1.0, cv=0.002, n=20, seed=s) for s in range(1, 10)])
    assert all(v.verdict == EQUIVALENT for v in strong)  # Holm: the largest p is not inflated


def test_equivalence_needs_the_shown_ci_inside_the_band_too():
    c = point(1.0, cv=0.01, n=10, seed=4)
    wide = dataclasses.replace(c, ratio_ci_high=1.03)  # e.g. a skewed bootstrap reaching further
    assert c.p_equiv < 0.05 and one(wide).verdict != EQUIVALENT


def test_a_margin_override_recomputes_the_tost():
    c = point(1.03, cv=0.005, n=20)
    v = one(c, margin=0.05)
    from bench.stats.significance import ratio_tost_from_moments

    assert v.p_equiv == ratio_tost_from_moments(c.moments, 0.05)[0] != c.p_equiv


def test_beyond_the_margin_but_not_significant_after_correction_is_inconclusive():
    strong = point(1.05)
    weak = dataclasses.replace(strong, p_value=0.01)  # survives alone, not among 10 tests
    assert one(weak).verdict == FASTER
    verdicts = decide([weak] + [point(1.0, seed=s) for s in range(1, 10)])
    assert verdicts[0].p_adjusted == pytest.approx(0.1)
    assert verdicts[0].verdict == INCONCLUSIVE and "not significant" in verdicts[0].reason
    assert not verdicts[0].beyond_margin


def test_bh_and_margin_override():
    c = point(1.03, cv=0.005, n=20)
    assert one(c).verdict == FASTER
    v = one(c, margin=0.05, method="bh")
    assert v.verdict == EQUIVALENT and v.correction == "Benjamini-Hochberg" and v.margin == 0.05


@pytest.mark.parametrize(
    "base, cand", [([], []), ([1.0], [1.1]), ([5.0] * 10, [5.0] * 10), ([5.0] * 10, [7.0] * 10)]
)
def test_no_data_one_value_or_constant_data_are_inconclusive(base, cand):
    v = one(compare(base, cand, higher_is_better=True))
    assert v.verdict == INCONCLUSIVE
    assert "no confidence interval" in v.reason
    json.dumps(v.to_dict(), allow_nan=False)


def test_mapping_keys_name_the_points_and_to_dict_is_json():
    verdicts = decide({"randread-4k-qd1": point(1.05), "randread-4k-qd8": point(1.0, cv=0.005, n=20)})
    assert [v.key for v in verdicts] == ["randread-4k-qd1", "randread-4k-qd8"]
    d = json.loads(json.dumps(verdicts[0].to_dict(), allow_nan=False))
    assert d["verdict"] == FASTER and d["key"] == "randread-4k-qd1"
