"""quality_report() / quality_flags(): multimodality, outliers, drift, underpowered."""

import json
import math

import numpy as np
import pytest

from bench.stats import quality_flags, quality_report
from bench.stats.quality import bimodality_coefficient, modified_z_scores

CLEAN = [100.2, 99.7, 100.4, 99.9, 100.1, 99.6, 100.3, 100.0, 99.8, 100.5, 99.9, 100.2]


def test_clean_data_raises_no_flag():
    assert quality_flags(CLEAN, list(range(12)), mde=0.005, margin=0.02) == []


def test_modified_z_score_by_hand():
    # median 10, MAD 0.1 -> M = 0.6745 * (x - 10) / 0.1
    x = np.array([10.0, 10.1, 9.9, 10.0, 10.1, 9.9, 10.0, 12.0])
    z = modified_z_scores(x)
    assert z[-1] == pytest.approx(0.6745 * 2.0 / 0.1)
    report = quality_report(x, mde=0.001, margin=0.02)
    assert report.outlier_indices == (7,) and "outliers" in report.flags


def test_mad_of_zero_falls_back_to_the_mean_absolute_deviation():
    x = np.array([5.0, 5.0, 5.0, 5.0, 5.0, 9.0])
    # median 5, MAD 0, MeanAD 4/6: M = 4 / (1.253314 * 4/6) = 4.79
    assert modified_z_scores(x)[-1] == pytest.approx(4 / (1.253314 * 4 / 6))
    assert quality_report(x, mde=0.001, margin=0.02).outlier_indices == (5,)
    assert np.all(modified_z_scores(np.full(4, 3.0)) == 0)


def test_bimodality_coefficient_by_hand_from_moments():
    x = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0.5], dtype=float)
    n = x.size
    d = x - x.mean()
    m2, m3, m4 = (d**2).mean(), (d**3).mean(), (d**4).mean()
    g1, g2 = m3 / m2**1.5, m4 / m2**2 - 3
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)  # bias-corrected G1
    kurt = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6)  # bias-corrected G2
    expected = (skew**2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))
    assert bimodality_coefficient(x) == pytest.approx(expected)
    assert expected > 5 / 9


def test_two_boot_modes_are_flagged_multimodal():
    rng = np.random.default_rng(4)
    x = np.concatenate([100 + 0.3 * rng.normal(size=10), 130 + 0.3 * rng.normal(size=10)])
    assert "multimodal" in quality_flags(x, None, mde=0.005, margin=0.02)


def test_one_stray_run_is_an_outlier_not_a_mode():
    x = np.array(CLEAN + [140.0])
    flags = quality_flags(x, None, mde=0.005, margin=0.02)
    assert "outliers" in flags and "multimodal" not in flags


def test_few_values_are_not_judged_for_modality():
    report = quality_report([1.0, 1.0, 2.0, 2.0], None, mde=0.005, margin=0.02)
    assert math.isnan(report.bimodality_coefficient) and "multimodal" not in report.flags


@pytest.mark.slow
def test_normal_samples_are_rarely_flagged_multimodal():
    rng = np.random.default_rng(8)
    flagged = sum(
        "multimodal" in quality_flags(rng.normal(100, 1, 20), None, mde=0.0, margin=0.02) for _ in range(300)
    )
    assert flagged / 300 < 0.05


def test_drift_along_run_order_is_flagged():
    rng = np.random.default_rng(6)
    positions = np.arange(20) * 7 + 3  # this target's runs among all the campaign's runs
    drifting = 100 + 0.1 * np.arange(20) + 0.2 * rng.normal(size=20)
    report = quality_report(drifting, positions, mde=0.005, margin=0.02)
    assert "drift" in report.flags and report.drift_rho > 0.7
    steady = quality_report(CLEAN, list(range(12)), mde=0.005, margin=0.02)
    assert "drift" not in steady.flags and steady.drift_p > 0.01


def test_underpowered_when_the_mde_exceeds_the_margin_or_is_unknown():
    assert quality_flags(CLEAN, None, mde=0.03, margin=0.02) == ["underpowered"]
    assert quality_flags(CLEAN, None, mde=float("nan"), margin=0.02) == ["underpowered"]
    assert quality_flags(CLEAN, None, mde=0.02, margin=0.02) == []


def test_edge_cases_and_json():
    for values in ([], [1.0], [3.0] * 12):
        report = quality_report(values, list(range(len(values))), mde=math.nan, margin=0.02)
        assert report.flags == ("underpowered",)
        json.dumps(report.to_dict(), allow_nan=False)
    with pytest.raises(ValueError):
        quality_report([1.0, 2.0], [1], mde=0.0, margin=0.02)


def test_underpowered_when_equivalence_could_not_be_shown_for_identical_drivers():
    assert quality_flags(CLEAN, None, mde=0.01, margin=0.02, equivalence_power=0.5) == ["underpowered"]
    assert quality_flags(CLEAN, None, mde=0.01, margin=0.02, equivalence_power=float("nan")) == [
        "underpowered"
    ]
    assert quality_flags(CLEAN, None, mde=0.01, margin=0.02, equivalence_power=0.85) == []


def test_underpowered_flag_from_compare_matches_the_power_of_the_verdict():
    # CV 1 %, paired: 10 rounds have ~95 % power for both claims, 4 rounds have neither
    from bench.stats import compare

    rng = np.random.default_rng(8)
    for n, expected in ((10, []), (4, ["underpowered"])):
        base, cand = 100 * (1 + 0.01 * rng.normal(size=(2, n)))
        c = compare(
            base, cand, baseline_rounds=list(range(n)), candidate_rounds=list(range(n)), higher_is_better=True
        )
        flags = quality_flags(base, None, mde=c.mde, margin=0.02, equivalence_power=c.power_equivalence)
        assert [f for f in flags if f == "underpowered"] == expected, (n, c.mde, c.power_equivalence)
