"""What makes analysis and reports fast at a real campaign's size keeps their answers unchanged.

No wall-clock times here (benchmarks/ measures them): each test pins that a faster path gives
exactly what the slower one gave, or that work is done once instead of per use.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize
from scipy import stats as scipy_stats

from bench import report, results, store
from bench.stats import bootstrap, power, quality

DATA = Path(__file__).resolve().parent / "data" / "fio"


def test_skewness_kurtosis_and_spearman_equal_scipy():
    rng = np.random.default_rng(3)
    for i in range(300):
        n = int(rng.integers(5, 60))
        x = rng.normal(size=n) if i % 3 else np.round(rng.normal(size=n) * 2)  # ties too
        order = rng.permutation(n).astype(float) if i % 2 else np.round(rng.normal(size=n))
        skew, kurt = quality._skew_kurtosis(x)
        assert skew == pytest.approx(scipy_stats.skew(x, bias=False), rel=1e-12, abs=1e-12)
        assert kurt == pytest.approx(scipy_stats.kurtosis(x, bias=False), rel=1e-12, abs=1e-12)
        rho, p = quality.spearman(order, x)
        expected = scipy_stats.spearmanr(order, x)
        assert rho == pytest.approx(expected.statistic, abs=1e-12)
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    rho, p = quality.spearman(np.arange(8.0), np.arange(8.0) ** 2)  # perfectly monotone
    assert rho == 1.0 and p == pytest.approx(0.0, abs=1e-40)


def test_expanded_tail_equals_the_scipy_stats_formula():
    for n in (2, 3, 5, 12, 40):
        for confidence in (0.95, 0.975):
            t = scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)
            expected = scipy_stats.norm.cdf(-math.sqrt(n / (n - 1)) * t)
            assert bootstrap.expanded_tail(n, confidence) == pytest.approx(expected, rel=1e-12)


def test_mde_root_equals_brentq():
    for se in (1e-4, 0.003, 0.02, 0.3):
        for df in (1, 4, 39, math.inf):
            high = se
            while power.power_difference(high, se, df) < 0.8:
                high *= 2
            expected = optimize.brentq(
                lambda d, se=se, df=df: power.power_difference(d, se, df) - 0.8,
                0,
                high,
                xtol=1e-12 * max(1, high),
                rtol=1e-12,
            )
            assert power.minimum_detectable_effect(se, df=df) == pytest.approx(expected, rel=1e-9)


def test_bootstrap_draws_are_kept_for_every_round_count_and_give_the_same_means():
    """Points of an adaptive campaign have different round counts: each count's draw is made
    once (the 16-entry cache redrew them at every point), stored as bytes, and the resampled
    means equal those of the float64 draw bit for bit."""
    bootstrap._cached_counts.cache_clear()
    rng = np.random.default_rng(5)
    sizes = list(range(5, 41))
    for _ in range(3):
        for n in sizes:
            bootstrap.resampled_means(
                rng.normal(1e6, 1e4, (n, 2)), n_boot=10_000, seed=0, stream=bootstrap.STREAM_PAIRED
            )
    info = bootstrap._cached_counts.cache_info()
    assert info.misses == len(sizes) and info.hits == 2 * len(sizes)
    data = rng.normal(1e6, 1e4, 40)
    counts = bootstrap._cached_counts(40, 10_000, 0, bootstrap.STREAM_PAIRED)
    assert counts.dtype == np.uint8
    redrawn = bootstrap._rng(0, bootstrap.STREAM_PAIRED, 40).multinomial(40, np.full(40, 1 / 40), size=10_000)
    assert np.array_equal(counts, redrawn)
    assert np.array_equal(
        bootstrap.resampled_means(data, n_boot=10_000, seed=0, stream=bootstrap.STREAM_PAIRED),
        (redrawn.astype(float) @ data) / 40,
    )


def test_inline_svg_renames_every_id_and_reference_in_one_pass():
    svg = (
        '<?xml version="1.0"?>\n<svg><defs><path id="DejaVuSans-41" d="M0"/><clipPath id="p1a">'
        '<rect/></clipPath></defs><use xlink:href="#DejaVuSans-41"/><g clip-path="url(#p1a)"/>'
        '<a href="#p1a"/><text>#p1a) stays: url(#other) and id-less #DejaVuSans-41 too</text></svg>'
    )
    out = report.inline_svg(svg, "f7")
    assert out.startswith("<svg") and "<?xml" not in out
    assert 'id="f7-DejaVuSans-41"' in out and 'id="f7-p1a"' in out
    assert 'xlink:href="#f7-DejaVuSans-41"' in out and "url(#f7-p1a)" in out and 'href="#f7-p1a"' in out
    assert "url(#other)" in out and " #DejaVuSans-41 too" in out


def _ingested(tmp_path: Path) -> store.Campaign:
    from bench.ingest import ingest

    ingest(
        [DATA / "fio-3.36-jsonplus.json", DATA / "fio-2.18-jsonplus.json", DATA / "fio-3.1-randread.json"],
        tmp_path / "c",
        target="t",
    )
    return store.open_campaign(tmp_path / "c")


def test_the_index_keeps_each_runs_bins_and_an_older_index_reads_them_from_fio_json(tmp_path):
    campaign = _ingested(tmp_path)
    records = results.load_runs(campaign, with_bins=True)
    assert len(records) == 3
    for rec in records:
        assert rec.bins == results.run_bins(campaign, rec.run_id)  # what fio.json holds
        assert rec.has_bins == bool(rec.bins)
    assert sorted(rec.has_bins for rec in records) == [False, True, True]  # fio 3.1 plain: none
    # an index written before it kept bins: NULL, read from fio.json on use
    with sqlite3.connect(campaign.index_path) as db:
        db.execute("UPDATE runs SET clat_bins = NULL")
    for rec in results.load_runs(campaign, with_bins=True):
        assert rec.bins_text is None or rec.bins_text == "[]"
        assert rec.bins == results.run_bins(campaign, rec.run_id)
    # reindex fills the column again
    store.rebuild_index(campaign)
    with sqlite3.connect(campaign.index_path) as db:
        stored = [json.loads(t) for (t,) in db.execute("SELECT clat_bins FROM runs ORDER BY position")]
    assert [len(s) > 0 for s in stored] == [True, True, False]


def _normalised(svg: str) -> str:
    # matplotlib names clip paths with a hash that differs between processes; nothing else does
    return re.sub(r'(url\(#|id=")p[0-9a-f]{10}', r"\1p", svg)


def test_figures_drawn_in_worker_processes_equal_those_drawn_here(tmp_path):
    from specimen import Specimen, create

    from bench.plots import catalogue

    camp = create(
        tmp_path,
        Specimen(
            matrix={"rw": ["randread"], "bs": ["4k"], "iodepth": [1, 8]},
            rounds=4,
            factor=lambda t, p: 1.03 if t == "rnull" else 1.0,
        ),
    )
    here = catalogue.build([camp])
    drawn = catalogue.build([camp], as_svg=True)
    assert [f.name for f in drawn.figures] == [f.name for f in here.figures]
    assert [s.name for s in drawn.skipped] == [s.name for s in here.skipped]
    for mine, theirs in zip(here.figures, drawn.figures):
        assert theirs.figure is None and theirs.data == mine.data and theirs.title == mine.title
        assert _normalised(theirs.svg) == _normalised(catalogue.svg_text(mine)), mine.name
