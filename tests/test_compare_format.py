"""compare's renderers against golden outputs, on an Analysis built from fixed numbers.

The four points cover each verdict and the "beyond margin" flag: +5 % (faster, beyond the
margin), +2 % (faster, the CI reaching into the band), A/A (equivalent) and a noisy point
(inconclusive).  Set BLKCMP_UPDATE_GOLDEN=1 to rewrite the files after an intended change, and
read the diff.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest

from bench import stats
from bench.analysis import METRICS, Analysis, PointResult, SideComparison
from bench import compare_format as fmt

GOLDEN = Path(__file__).parent / "golden"
ROUNDS = list(range(10))


def fixed_analysis() -> Analysis:
    rng = np.random.default_rng(12)
    noise = rng.normal(size=(4, 2, 10))
    truths = {"rw=randread,bs=4k,iodepth=1": (1.05, 0.01), "rw=randread,bs=4k,iodepth=8": (1.02, 0.005),
              "rw=randwrite,bs=4k,iodepth=1": (1.0, 0.005), "rw=randwrite,bs=4k,iodepth=8": (1.0, 0.05)}
    comparisons = {}
    values = {}
    for (key, (ratio, cv)), z in zip(truths.items(), noise):
        b = np.round(100_000 * (1 + cv * z[0]), 1)
        c = np.round(100_000 * ratio * (1 + cv * z[1]), 1)
        values[key] = (b, c)
        comparisons[key] = stats.compare(b, c, baseline_rounds=ROUNDS, candidate_rounds=ROUNDS,
                                         higher_is_better=True, n_boot=2000)
    verdicts = stats.decide(comparisons)
    points = [PointResult(key, list(values[key][0]), list(values[key][1]), comparisons[key], v, flags=[])
              for key, v in zip(truths, verdicts)]
    runs = [stats.PointRuns(*values[key], ROUNDS, ROUNDS, True) for key in truths]
    side = SideComparison("null_blk", "rnull", METRICS["iops"], points, stats.summarize_points(verdicts, runs))
    return Analysis("target", METRICS["iops"], 0.02, 0.05, "holm", [], ["null_blk", "rnull"], "null_blk",
                    [side], [], ["7.2.0"])


@pytest.fixture(scope="module")
def analysis():
    return fixed_analysis()


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("BLKCMP_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_the_fixture_covers_every_verdict_and_the_beyond_flag(analysis):
    words = [(p.verdict.verdict, p.verdict.beyond_margin) for p in analysis.comparisons[0].points]
    assert words == [("faster", True), ("faster", False), ("equivalent", False), ("inconclusive", False)]


def test_text_golden(analysis):
    out = fmt.text(analysis)
    assert all(len(line) <= 72 for line in out.splitlines())
    assert "faster*" in out and "* beyond the margin" in out
    check_golden("compare.txt", out)


def test_markdown_golden(analysis):
    out = fmt.markdown(analysis)
    assert "**faster**, beyond margin" in out and "p equiv (adj.)" in out
    check_golden("compare.md", out)


def test_csv_golden(analysis):
    out = fmt.to_csv(analysis)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["beyond_margin"] for r in rows] == ["1", "0", "0", "0"]
    assert float(rows[2]["p_equiv_adjusted"]) < 0.05 <= float(rows[3]["p_equiv_adjusted"])
    check_golden("compare.csv", out)


def test_rich_table_shows_the_flag_and_the_equivalence_p(analysis):
    from rich.console import Console
    console = Console(file=io.StringIO(), width=200, color_system=None)
    fmt.table(analysis, console)
    out = console.file.getvalue()
    assert "faster, beyond margin" in out and "p equiv adj." in out
    assert "beyond the ±2 % margin" in out  # the sentence
    check_golden("compare-table.txt", out)
