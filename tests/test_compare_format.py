"""compare's renderers against golden outputs, on an Analysis built from fixed numbers.

The four points cover each verdict and the "beyond margin" flag: +5 % (faster, beyond the
margin), +2 % (faster, the CI reaching into the band), A/A (equivalent) and a noisy point
(inconclusive).  Set BLKCMP_UPDATE_GOLDEN=1 to rewrite the files after an intended change, and
read the diff.
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from conftest import check_golden

from bench import compare_format as fmt
from bench import points as points_mod
from bench import stats
from bench.analysis import METRICS, Analysis, PointResult, SideComparison

ROUNDS = list(range(10))


def fixed_analysis() -> Analysis:
    rng = np.random.default_rng(12)
    noise = rng.normal(size=(4, 2, 10))
    truths = {
        "rw=randread,bs=4k,iodepth=1": (1.05, 0.01),
        "rw=randread,bs=4k,iodepth=8": (1.02, 0.005),
        "rw=randwrite,bs=4k,iodepth=1": (1.0, 0.005),
        "rw=randwrite,bs=4k,iodepth=8": (1.0, 0.05),
    }
    comparisons = {}
    values = {}
    for (key, (ratio, cv)), z in zip(truths.items(), noise):
        b = np.round(100_000 * (1 + cv * z[0]), 1)
        c = np.round(100_000 * ratio * (1 + cv * z[1]), 1)
        values[key] = (b, c)
        comparisons[key] = stats.compare(
            b, c, baseline_rounds=ROUNDS, candidate_rounds=ROUNDS, higher_is_better=True, n_boot=2000
        )
    verdicts = stats.decide(comparisons)
    points = [
        PointResult(
            key,
            list(values[key][0]),
            list(values[key][1]),
            comparisons[key],
            v,
            flags=[],
            label=points_mod.label(dict(item.split("=") for item in key.split(","))),
        )
        for key, v in zip(truths, verdicts)
    ]
    runs = [stats.PointRuns(*values[key], ROUNDS, ROUNDS, True) for key in truths]
    side = SideComparison(
        "null_blk", "rnull", METRICS["iops"], points, stats.summarize_points(verdicts, runs)
    )
    return Analysis(
        "target",
        METRICS["iops"],
        0.02,
        0.05,
        "holm",
        [],
        ["null_blk", "rnull"],
        "null_blk",
        [side],
        [],
        ["7.2.0"],
    )


@pytest.fixture(scope="module")
def analysis():
    return fixed_analysis()


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
    assert "faster, beyond margin" in out and "p equiv (adj.)" in out
    assert "beyond the ±2 % margin" in out  # the sentence
    check_golden("compare-table.txt", out)


def test_rich_table_fits_80_columns_without_cutting_a_cell(analysis):
    # an 80-column terminal used to get `rw=ran…` for every point, and every CI and verdict cut
    from rich.console import Console

    console = Console(file=io.StringIO(), width=80, color_system=None)
    fmt.table(analysis, console)
    out = console.file.getvalue()
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "\u2026" not in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("randread", "randwrite"))]
    # label (3 words), both means ± sd, ratio, CI, verdict: every cell whole, on one line
    assert [(" ".join(r[:3]), r[-2], r[-1]) for r in rows] == [
        ("randread 4k qd1", "1.036-1.064", "faster*"),
        ("randread 4k qd8", "1.017-1.027", "faster"),
        ("randwrite 4k qd1", "1.001-1.009", "equivalent"),
        ("randwrite 4k qd8", "0.978-1.079", "inconclusive"),
    ]
    assert "* beyond the margin: the whole CI lies outside ±2 %" in out
    check_golden("compare-table-80.txt", out)


def test_every_format_labels_points_alike(analysis):
    labels = ["randread 4k qd1", "randread 4k qd8", "randwrite 4k qd1", "randwrite 4k qd8"]
    md_points = [
        line.split(" | ")[0].lstrip("| ")
        for line in fmt.markdown(analysis).splitlines()
        if line.startswith("| rand")
    ]
    text_points = [
        " ".join(line.split()[:3]) for line in fmt.text(analysis).splitlines() if line.startswith("rand")
    ]
    csv_labels = [r["label"] for r in csv.DictReader(io.StringIO(fmt.to_csv(analysis)))]
    import json

    json_labels = [p["label"] for p in json.loads(fmt.to_json(analysis))["comparisons"][0]["points"]]
    assert md_points == text_points == csv_labels == json_labels == labels


def test_margin_is_said_alike_everywhere(analysis):
    # --margin 0.005 printed "±0%" in the header and "±0.5 %" in the sentences
    from dataclasses import replace

    from bench.units import margin_text

    half = replace(analysis, margin=0.005)
    assert margin_text(0.005) == "±0.5 %" and margin_text(0.02) == "±2 %"
    assert "margin ±0.5 %," in fmt.text(half) and "±0%" not in fmt.markdown(half)
