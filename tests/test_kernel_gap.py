"""`compare --by gap`: did the rnull/null_blk gap change between kernels?

Specimen campaigns (tests/specimen.py: real campaign directories with chosen numbers) on two and
three "kernels" whose truth is set here: rnull is 5 % behind null_blk on the reference kernel and
either stays so, loses 10 % on kernel B only, or both drivers lose 10 % on kernel B (absolute
numbers change, the gap does not); sessions with an offset shared by both targets; and at the
statistics level, a session effect on the ratio that a round-level analysis reads as a kernel
effect, the known variance of the log ratio of ratios, and its coverage by simulation.
"""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pytest
import specimen
from conftest import check_golden, run_cli
from scipy import stats as sps

from bench import compare_format as fmt
from bench import stats
from bench.analysis_options import AnalysisOptions
from bench.errors import UsageError
from bench.kernel_gap import analyse_gap

MATRIX = {"rw": ["randread"], "bs": ["4k"], "iodepth": [1, 8]}
GAP = 0.95  # rnull / null_blk on the reference kernel


def make(
    root,
    kernel: str,
    seed: int,
    *,
    rnull: float = 1.0,
    both: float = 1.0,
    rounds: int = 8,
    targets=(("null_blk", "null_blk"), ("rnull", "rnull")),
    **kw,
):
    """A campaign on `kernel`: rnull at GAP x rnull x null_blk, both drivers times `both`."""
    return specimen.create(
        root,
        specimen.Specimen(
            name=f"gap-{kernel}",
            kernel=kernel,
            rounds=rounds,
            seed=seed,
            matrix=MATRIX,
            targets=targets,
            factor=lambda t, p: both * (GAP * rnull if t == "rnull" else 1.0),
            **kw,
        ),
    )


def gap(dirs, **options):
    return analyse_gap(dirs, AnalysisOptions.parse(by="gap", **options))


def words(a):
    return [p.verdict.verdict for side in a.gaps for p in side.points]


def test_an_unchanged_gap_is_not_called_faster_or_slower(tmp_path):
    a = gap([make(tmp_path, "7.2.13", 2), make(tmp_path, "6.12.57", 1)])
    assert a.kernels == ["6.12.57", "7.2.13"] and a.reference_kernel == "6.12.57"  # version order
    assert len(a.gaps) == 1 and a.gaps[0].kernel == "7.2.13" and a.gaps[0].candidate == "rnull"
    assert not {"faster", "slower"} & set(words(a))
    for p in a.gaps[0].points:
        assert p.gap.reference_ratio == pytest.approx(GAP, abs=0.01)
        assert p.gap.later_ratio == pytest.approx(GAP, abs=0.01)
        assert p.gap.ratio_ci_low <= 1.0 <= p.gap.ratio_ci_high


def test_rnull_slower_on_kernel_b_only_is_a_slower_gap(tmp_path):
    a = gap([make(tmp_path, "6.12.57", 1), make(tmp_path, "7.2.13", 2, rnull=0.9)])
    assert words(a) == ["slower", "slower"]
    for p in a.gaps[0].points:
        assert p.gap.ratio == pytest.approx(0.9, abs=0.01)
        assert p.gap.ratio_ci_low <= 0.9 <= p.gap.ratio_ci_high and p.gap.ratio_ci_high < 0.98
        assert p.verdict.beyond_margin and "slower than on 6.12.57" in p.verdict.sentence
    # each kernel's own comparison: rnull slower than null_blk on both, by 5 % and by 14.5 %
    for kernel, truth in (("6.12.57", GAP), ("7.2.13", GAP * 0.9)):
        per = dict(a.per_kernel)[kernel]
        assert [p.comparison.ratio for p in per.comparisons[0].points] == pytest.approx([truth] * 2, abs=0.01)


def test_both_drivers_slower_on_kernel_b_changes_numbers_not_the_gap(tmp_path):
    a = gap([make(tmp_path, "6.12.57", 1), make(tmp_path, "7.2.13", 2, both=0.9)])
    assert not {"faster", "slower"} & set(words(a))
    ref, later = (dict(a.per_kernel)[k].comparisons[0].points for k in ("6.12.57", "7.2.13"))
    for r, b in zip(ref, later):  # absolute numbers 10 % lower on 7.2.13 for both drivers
        assert b.comparison.baseline.mean / r.comparison.baseline.mean == pytest.approx(0.9, abs=0.02)
        assert b.comparison.candidate.mean / r.comparison.candidate.mean == pytest.approx(0.9, abs=0.02)
    assert all(p.gap.ratio == pytest.approx(1.0, abs=0.01) for p in a.gaps[0].points)


def test_a_session_offset_shared_by_both_targets_is_no_gap(tmp_path):
    # kernel B's second of three boots is 30 % slower for both drivers: its absolute numbers move,
    # the gap (a ratio within each round) does not, and the sessions are a level of the design
    later = make(
        tmp_path, "7.2.13", 2, rounds=9, sessions=3, session_factor=lambda target, s: 0.7 if s == 1 else 1.0
    )
    a = gap([make(tmp_path, "6.12.57", 1, rounds=9), later])
    assert not {"faster", "slower"} & set(words(a))
    for p in a.gaps[0].points:
        assert p.later.comparison.sessions is not None and p.later.comparison.sessions.n_sessions == 3
        assert math.isfinite(p.gap.session_log_se)
        assert (
            p.later.comparison.baseline.stdev / p.later.comparison.baseline.mean > 0.1
        )  # the offset is there


def test_a_session_effect_on_the_ratio_is_not_a_kernel_effect():
    """Three boots per kernel, the ratio moving by 3 % from boot to boot (the same pattern of
    boots on both kernels, averaging 1.01 on A and 0.99 on B): the round-level analysis calls the
    gap slower, the session-aware one does not."""
    rng = np.random.default_rng(5)
    rounds = list(range(30))
    sessions = {r: r // 10 for r in rounds}
    results = {}
    for aware in (True, False):
        per_kernel = []
        for offsets in ((1.03, 0.97, 1.03), (0.97, 1.03, 0.97)):
            b = 100 * (1 + 0.003 * rng.normal(size=30))
            c = 95 * np.repeat(offsets, 10) * (1 + 0.003 * rng.normal(size=30))
            comp = stats.compare(
                b,
                c,
                baseline_rounds=rounds,
                candidate_rounds=rounds,
                higher_is_better=True,
                round_sessions=sessions if aware else None,
                n_boot=2000,
            )
            per_kernel.append((comp, stats.PointRuns(b, c, rounds, rounds, True)))
        (ca, ra), (cb, rb) = per_kernel
        g = stats.compare_gap(ca, ra, cb, rb, margin=0.02, alpha=0.05, n_boot=2000)
        results[aware] = (g, stats.decide([g])[0].verdict)
    assert results[False][1] == "slower"  # the check can fail: round level, the boots pass as the kernel
    g, verdict = results[True]
    assert verdict == "inconclusive" and g.ratio_ci_low < 1.0 < g.ratio_ci_high
    assert g.session_df < 10 and g.session_log_se > 2 * g.log_se


def test_the_log_ratio_of_ratios_variance_in_a_normal_case():
    """Baseline without noise, candidate with CV s_k per round: Var(log G) = s_A^2/n_A + s_B^2/n_B
    (delta method), Welch-Satterthwaite df, and the t-test of log G on them."""
    rng = np.random.default_rng(3)
    n_a, n_b, s_a, s_b = 12, 8, 0.02, 0.01
    parts = []
    for n, s, r in ((n_a, s_a, 0.95), (n_b, s_b, 0.90)):
        b = np.full(n, 100.0)
        c = 100 * r * (1 + s * rng.normal(size=n))
        comp = stats.compare(
            b, c, baseline_rounds=range(n), candidate_rounds=range(n), higher_is_better=True, n_boot=2000
        )
        parts.append((comp, stats.PointRuns(b, c, list(range(n)), list(range(n)), True), c))
    (ca, ra, c_a), (cb, rb, c_b) = parts
    g = stats.compare_gap(ca, ra, cb, rb, margin=0.02, alpha=0.05, n_boot=2000)
    v_a = (np.std(c_a, ddof=1) / c_a.mean()) ** 2 / n_a
    v_b = (np.std(c_b, ddof=1) / c_b.mean()) ** 2 / n_b
    assert g.ratio == pytest.approx((c_b.mean() / 100) / (c_a.mean() / 100))
    assert g.log_se == pytest.approx(math.sqrt(v_a + v_b))
    assert g.df == pytest.approx((v_a + v_b) ** 2 / (v_a**2 / (n_a - 1) + v_b**2 / (n_b - 1)))
    t = math.log(g.ratio) / g.log_se
    assert g.p_value == pytest.approx(2 * sps.t.sf(abs(t), g.df))
    half = sps.t.ppf(0.975, g.df) * g.log_se
    assert g.ratio_ci_low <= math.exp(math.log(g.ratio) - half) * 1.002  # the hull holds the log-t interval
    assert g.ratio_ci_high >= math.exp(math.log(g.ratio) + half) * 0.998
    assert (
        g.fieller_ci_low <= g.ratio <= g.fieller_ci_high
        and g.bootstrap_ci_low <= g.ratio <= g.bootstrap_ci_high
    )


@pytest.mark.slow
def test_coverage_of_the_gap_ci_by_simulation():
    """400 pairs of kernels with the same true gap (0.95), 6 and 10 paired rounds, CV 1 % per
    run: the CI covers 1 at least 95 % - 3 SE of the time and faster/slower is rare."""
    rng = np.random.default_rng(21)
    covered, wrong, trials = 0, 0, 400
    for _ in range(trials):
        parts = []
        for n in (6, 10):
            shared = 1 + 0.01 * rng.normal(size=n)  # a round's disturbance, both targets
            b = 100 * shared * (1 + 0.01 * rng.normal(size=n))
            c = 95 * shared * (1 + 0.01 * rng.normal(size=n))
            comp = stats.compare(
                b, c, baseline_rounds=range(n), candidate_rounds=range(n), higher_is_better=True, n_boot=1000
            )
            parts.append((comp, stats.PointRuns(b, c, list(range(n)), list(range(n)), True)))
        g = stats.compare_gap(
            parts[0][0], parts[0][1], parts[1][0], parts[1][1], margin=0.02, alpha=0.05, n_boot=1000
        )
        covered += g.ratio_ci_low <= 1.0 <= g.ratio_ci_high
        wrong += stats.decide([g])[0].verdict in ("faster", "slower")
    se = math.sqrt(0.05 * 0.95 / trials)
    assert covered / trials >= 0.95 - 3 * se
    assert wrong / trials <= 0.05 + 3 * se


# ------------------------------------------------------------------------------------------
# Three kernels, the command line, every format


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    root = tmp_path_factory.mktemp("gap3")
    # written out of version order; rnull loses 10 % on 7.2.13 only
    return [make(root, "7.2.13", 3, rnull=0.9), make(root, "6.9.1", 1), make(root, "6.12.57", 2)]


def test_three_kernels_each_later_kernel_against_the_first(three):
    a = gap(three)
    assert [k for k, _ in a.per_kernel] == ["6.9.1", "6.12.57", "7.2.13"]
    assert [(s.reference_kernel, s.kernel) for s in a.gaps] == [("6.9.1", "6.12.57"), ("6.9.1", "7.2.13")]
    assert [[p.verdict.verdict for p in s.points] for s in a.gaps] == [["equivalent"] * 2, ["slower"] * 2]
    b = gap(three, baseline="kernel=7.2.13")  # against another reference: the others gained 11 %
    assert [(s.reference_kernel, s.kernel) for s in b.gaps] == [("7.2.13", "6.9.1"), ("7.2.13", "6.12.57")]
    assert {p.verdict.verdict for s in b.gaps for p in s.points} == {"faster"}


def test_cli_formats_golden(three):
    out = run_cli("compare", "--by", "gap", *three, "--format", "text")
    assert out.returncode == 0, out.stderr
    assert all(len(line) <= 72 for line in out.stdout.splitlines())
    assert "gap 6.9.1" in out.stdout and "slower*" in out.stdout
    check_golden("compare-gap.txt", out.stdout)
    md = run_cli("compare", "--by", "gap", *three, "--format", "markdown")
    assert "| point | gap 6.9.1 | gap 7.2.13 | ratio |" in md.stdout
    check_golden("compare-gap.md", md.stdout)
    rows = list(
        csv.DictReader(io.StringIO(run_cli("compare", "--by", "gap", *three, "--format", "csv").stdout))
    )
    assert [(r["kernel"], r["label"], r["verdict"]) for r in rows] == [
        ("6.12.57", "randread 4k qd1", "equivalent"),
        ("6.12.57", "randread 4k qd8", "equivalent"),
        ("7.2.13", "randread 4k qd1", "slower"),
        ("7.2.13", "randread 4k qd8", "slower"),
    ]
    for r in rows:  # each kernel's means and gap beside the ratio of the gaps
        assert float(r["ratio"]) == pytest.approx(float(r["later_ratio"]) / float(r["reference_ratio"]))
        assert float(r["reference_candidate_mean"]) / float(r["reference_baseline_mean"]) == pytest.approx(
            float(r["reference_ratio"])
        )
    doc = json.loads(run_cli("compare", "--by", "gap", *three, "--format", "json").stdout)
    assert doc["by"] == "gap" and doc["kernels"] == ["6.9.1", "6.12.57", "7.2.13"]
    assert [k["kernel"] for k in doc["per_kernel"]] == doc["kernels"]
    assert doc["gaps"][1]["counts"]["slower"] == 2
    assert doc["gaps"][1]["points"][0]["gap"]["ratio"] == pytest.approx(0.9, abs=0.01)
    gate = run_cli("compare", "--by", "gap", *three, "--format", "csv", "--fail-on", "slower")
    assert gate.returncode == 1 and "2 point(s) slower" in gate.stderr


def test_rich_table_at_80_columns(three):
    from rich.console import Console

    console = Console(file=io.StringIO(), width=80, color_system=None)
    fmt.table(gap(three), console)
    out = console.file.getvalue()
    assert all(len(line) <= 80 for line in out.splitlines()) and "\u2026" not in out
    assert "gap 6.9.1" in out and "gap 7.2.13" in out
    check_golden("compare-gap-table-80.txt", out)


def test_one_kernel_only_and_a_missing_target_are_one_line_errors(tmp_path, three):
    one = run_cli("compare", "--by", "gap", three[0])
    assert one.returncode == 2 and one.stderr.count("\n") == 1
    assert "every campaign ran on kernel 7.2.13" in one.stderr
    lonely = make(tmp_path, "7.3.0", 4, targets=(("null_blk", "null_blk"), ("other", "rnull")))
    missing = run_cli("compare", "--by", "gap", three[1], lonely)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "target rnull has no runs on kernel 7.3.0" in missing.stderr and str(lonely) in missing.stderr
    alone = make(tmp_path, "7.4.0", 5, targets=(("null_blk", "null_blk"),))
    single = run_cli("compare", "--by", "gap", three[1], alone)
    assert single.returncode == 2 and single.stderr.count("\n") == 1
    assert f"kernel 7.4.0 ({alone}): --by target: only one target (null_blk)" in single.stderr
    unknown = run_cli("compare", "--by", "gap", *three, "--baseline", "kernel=5.4")
    assert unknown.returncode == 2 and "--baseline kernel=5.4: no campaign ran on it" in unknown.stderr
    with pytest.raises(UsageError, match="names 'target' but the comparison is --by gap"):
        AnalysisOptions.parse(by="gap", baseline="target=rnull")


def test_kernel_trend_and_report_show_absolute_numbers_and_the_gap_per_kernel(tmp_path):
    from bench import report
    from bench.plots import catalogue

    dirs = [make(tmp_path, "7.2.13", 2, both=0.9), make(tmp_path, "6.12.57", 1)]
    cat = catalogue.build(dirs)
    trend = next(f for f in cat.figures if f.name == "kernel-trend")
    absolute = {(d["target"], d["kernel"]): d["mean"] for d in trend.data if d["kind"] == "absolute-geomean"}
    for target in ("null_blk", "rnull"):  # both drivers 10 % lower on 7.2.13, in kernel order
        assert absolute[(target, "7.2.13")] / absolute[(target, "6.12.57")] == pytest.approx(0.9, abs=0.02)
    gaps = [d for d in trend.data if d["kind"] == "geomean"]
    assert [d["kernel"] for d in gaps] == ["6.12.57", "7.2.13"]
    assert [d["ratio"] for d in gaps] == pytest.approx([GAP, GAP], abs=0.01)  # the gap did not move
    assert len(trend.figure.axes) == 2
    built = report.collect(dirs)
    assert built.gap is not None and not built.gap_problem
    text = report.to_text(built)
    assert "gap = rnull/null_blk per kernel; ratio = gap 7.2.13 / gap 6.12.57" in text
    assert all(len(line) <= 72 for line in text.splitlines())
    html = report.to_html(built)
    assert "<h2 id='gap'>Gap between kernels</h2>" in html and "<th>gap 6.12.57</th>" in html
    assert "| point | gap 6.12.57 | gap 7.2.13 |" in report.to_markdown(built)


def test_report_says_why_there_is_no_gap(tmp_path):
    from bench import report

    dirs = [
        make(tmp_path, "6.12.57", 1),
        make(tmp_path, "7.2.13", 2, targets=(("null_blk", "null_blk"), ("other", "rnull"))),
    ]
    built = report.collect(dirs)
    assert built.gap is None and "target rnull has no runs on kernel 7.2.13" in built.gap_problem
    assert "no gap between kernels: " in report.to_text(built)
