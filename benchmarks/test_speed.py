"""blkcmp's own speed, measured with pytest-benchmark (`make bench`; never part of `make test`).

Each benchmark times one step users wait for; none asserts a time (timings on shared machines
are noisy): they report, and `--benchmark-compare` against a saved run shows a regression.
The asserts only check that the step did its work.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from benchmarks.conftest import cli

pytestmark = pytest.mark.benchmark


def test_parse_one_jsonplus_file(benchmark, jsonplus_1000):
    """fio json+ parsing per file: decode, parse, the run's metrics (pooled percentiles)."""
    from bench import fio

    text = min(jsonplus_1000.iterdir()).read_text()
    metrics = benchmark(lambda: fio.run_metrics(fio.parse(text)))
    assert metrics.iops > 0 and metrics.clat_p99_ns > 0


def test_ingest_1000_files(benchmark, jsonplus_1000, tmp_path):
    """ingest per 1,000 files: checks, parsing, run directories, one flush, plan and index."""
    from bench.ingest import ingest

    counter = iter(range(1_000_000))

    def fresh():
        return ([jsonplus_1000], tmp_path / f"c{next(counter)}"), {}

    added = benchmark.pedantic(ingest, setup=fresh, rounds=3, iterations=1)
    assert len(added) == 1000


def test_compare_one_point(benchmark):
    """analysis per point: the full comparison of 40 paired rounds (bootstrap at 10,000)."""
    from bench import stats

    rng = np.random.default_rng(1)
    shared = rng.normal(0, 0.01, 40)
    baseline = 1e6 * (1 + shared + rng.normal(0, 0.002, 40))
    candidate = 1.01e6 * (1 + shared + rng.normal(0, 0.002, 40))
    rounds = list(range(1, 41))
    result = benchmark(
        lambda: stats.compare(
            baseline, candidate, baseline_rounds=rounds, candidate_rounds=rounds, higher_is_better=True
        )
    )
    assert result.paired and result.ratio_ci_low < 1.01 < result.ratio_ci_high


def test_analyse_1000_runs(benchmark, campaign_1000):
    """analysis per 1,000 runs: what `compare` computes for 25 points x 20 rounds x 2 targets."""
    from bench import analysis

    a = benchmark.pedantic(analysis.analyse, args=([campaign_1000],), rounds=3, iterations=1)
    assert len(a.comparisons[0].points) == 25


def test_report_120_points(benchmark, campaign_120_points, tmp_path):
    """report generation at 120 points: analysis, every figure (40 pages of them), HTML, Markdown, text."""
    from bench import report

    counter = iter(range(1_000_000))

    def make():
        return report.write(report.collect([campaign_120_points]), tmp_path / f"r{next(counter)}")

    paths = benchmark.pedantic(make, rounds=2, iterations=1)
    assert paths["html"].stat().st_size > 0


def test_cli_start_up(benchmark):
    """CLI start-up: `blkcmp --version` in a fresh interpreter."""
    proc = benchmark.pedantic(cli, args=("--version",), rounds=10, iterations=1)
    assert proc.stdout.strip()


@pytest.mark.parametrize("step", ["ingest", "compare", "report"])
def test_98_plain_files(benchmark, plain_98, tmp_path_factory, step):
    """issue 10's folder through the CLI, step by step: ingest, compare, report of 98 fio 3.1
    files (5 points x 2 targets); the other tool draws its 6 figures of it in 7.0 s."""
    work = tmp_path_factory.mktemp(f"pipeline-{step}")
    campaign = work / "campaign"
    if step != "ingest":
        cli("ingest", str(plain_98), "--into", str(campaign))
    counter = iter(range(1_000_000))

    def args():
        n = next(counter)
        if step == "ingest":
            shutil.rmtree(campaign, ignore_errors=True)
            return ("ingest", str(plain_98), "--into", str(campaign)), {}
        if step == "compare":
            return ("compare", str(campaign), "--format", "text"), {}
        return ("report", str(campaign), "--out", str(work / f"report-{n}")), {}

    proc = benchmark.pedantic(cli, setup=args, rounds=3, iterations=1)
    assert proc.returncode == 0
