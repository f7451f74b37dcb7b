"""Several kernels in one campaign: the plan, the workload and command-line input, and the
analysis across kernels within the one campaign.

Plans: the boot slots in a seeded, balanced order, each kernel's rounds spread evenly over its
boots, unique run ids, one-kernel plans exactly as before.  Analysis: specimen campaigns
(tests/specimen.py: real campaign directories with chosen numbers, one target session per boot
slot as the VM executor records them) whose truth is set here -- rnull 5 % behind null_blk on
kernel `base` and 10 % further behind on `slow`; an offset both targets share on one boot; a
per-boot effect on the ratio.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter

import pytest
import specimen
from conftest import run_cli, write_workload

from bench import multikernel, store
from bench import plan as plan_mod
from bench.analysis import analyse
from bench.analysis_options import AnalysisOptions
from bench.errors import UsageError
from bench.kernel_gap import analyse_gap
from bench.workload import loads

WORKLOAD = """\
name: mk
targets:
  a: {driver: fio-null}
  b: {driver: fio-null}
matrix: {rw: [randread, randwrite], bs: [4k]}
repetitions: 7
runtime: 1
ramp_time: 0
"""


def _workload(extra: str = ""):
    return loads(WORKLOAD + extra, "w.yaml")


# ------------------------------------------------------------------------------------------
# The plan


@pytest.mark.parametrize("kernels,boots", [(["base", "slow"], 2), (["a", "b", "c"], 3), (["one"], 3)])
def test_boot_slots_are_balanced_seeded_and_reproducible(kernels, boots):
    plans = [plan_mod.make_plan(_workload(), "mk", seed, kernels, boots) for seed in range(40)]
    for plan in plans:
        assert len(plan.slots) == len(kernels) * boots
        for block in range(boots):  # every kernel once per block of slots
            assert sorted(plan.slots[block * len(kernels) : (block + 1) * len(kernels)]) == sorted(kernels)
        again = plan_mod.make_plan(_workload(), "mk", plan.seed, kernels, boots)
        assert again.slots == plan.slots and again.runs == plan.runs
    if len(kernels) > 1:
        # the order depends on the seed: not always the same kernel first
        assert len({tuple(p.slots) for p in plans}) > 1
        assert len({p.slots[0] for p in plans}) == len(kernels)


def test_rounds_are_spread_evenly_in_contiguous_groups_over_each_kernels_boots():
    assert [list(g) for g in plan_mod.spread(7, 3)] == [[1, 2, 3], [4, 5], [6, 7]]
    assert [len(g) for g in plan_mod.spread(12, 5)] == [3, 3, 2, 2, 2]
    plan = plan_mod.make_plan(_workload(), "mk", 3, ["base", "slow"], 3)
    for kernel in ("base", "slow"):
        slots = [s for s, k in enumerate(plan.slots) if k == kernel]
        rounds = [sorted({r.round for r in plan.slot_runs(s)}) for s in slots]
        assert rounds == [[1, 2, 3], [4, 5], [6, 7]]  # the kernel's boots in slot order
        # every target x point once per round of the kernel, interleaved within the boot
        cells = Counter((r.round, r.target, r.point_index) for r in plan.runs if r.kernel == kernel)
        assert set(cells.values()) == {1} and len(cells) == 7 * 2 * 2
    assert [r.position for r in plan.runs] == list(range(len(plan.runs)))
    assert [r.boot for r in plan.runs] == sorted(r.boot for r in plan.runs)  # slot after slot
    ids = [r.run_id for r in plan.runs]
    assert len(set(ids)) == len(ids) == 2 * 7 * 2 * 2
    assert all(r.run_id.startswith(f"{r.kernel}--r") for r in plan.runs)
    # within a round of a boot, the targets' order is shuffled (not always a before b)
    firsts = {
        tuple(x.target for x in plan.runs if x.kernel == "base" and x.round == rnd)[0] for rnd in range(1, 8)
    }
    assert firsts == {"a", "b"}


def test_a_plan_survives_the_campaign_directory(tmp_path):
    plan = plan_mod.make_plan(_workload(), "mk", 5, ["base", "slow"], 2)
    again = plan_mod.Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.runs == plan.runs and again.slots == plan.slots and again.kernels == ["base", "slow"]


def test_one_kernel_one_boot_is_the_plan_of_today():
    """The run ids and order of a plan without kernels, built here as interleaving always built
    them (round r's cells shuffled by Random(f"{seed}:{r}")), and a one-kernel plan equal to it."""
    workload = _workload()
    plan = plan_mod.make_plan(workload, "mk", 11)
    expected = []
    points = [plan_mod.Point(i, p) for i, p in enumerate(workload.points())]
    for r in range(1, 8):
        cells = [(t, p) for p in points for t in ("a", "b")]
        random.Random(f"11:{r}").shuffle(cells)
        expected += [f"r{r:03d}-p{p.index:03d}-{t}" for t, p in cells]
    assert [x.run_id for x in plan.runs] == expected
    assert plan_mod.make_plan(workload, "mk", 11, ["base"], 1).to_dict() == plan.to_dict()
    data = plan.to_dict()
    assert "slots" not in data and all(set(r) == set(data["runs"][0]) for r in data["runs"])
    assert "kernel" not in data["runs"][0] and "boot" not in data["runs"][0]


# ------------------------------------------------------------------------------------------
# Input: the workload and the command line


def test_the_workload_names_kernels_and_boots():
    w = _workload(
        'kernels:\n  - {label: base, kernel: "7.2"}\n  - {label: slow, kernel: 7.2-slow}\nboots: 2\n'
    )
    kernels, boots = multikernel.choose(w, "w.yaml", None, None)
    assert kernels == [multikernel.KernelChoice("base", "7.2"), multikernel.KernelChoice("slow", "7.2-slow")]
    assert boots == 2


def test_the_command_line_wins_and_says_so_once():
    w = _workload('kernels:\n  - {label: base, kernel: "7.2"}\nboots: 2\n')
    said = []
    kernels, boots = multikernel.choose(w, "w.yaml", ["6.12", "new=/tmp/bzImage"], 3, said.append)
    assert kernels == [
        multikernel.KernelChoice("6.12", "6.12"),
        multikernel.KernelChoice("new", "/tmp/bzImage"),
    ]
    assert boots == 3
    assert said == [
        "--kernel replaces the workload's kernels: (base)",
        "--boots 3 replaces the workload's boots: 2",
    ]


BASE = WORKLOAD.replace("repetitions: 7\n", "")  # 7 lines: what a case adds starts at line 8


@pytest.mark.parametrize(
    "extra,line,fragment",
    [
        ("kernels:\n  - {label: ../x, kernel: '7.2'}\n", 9, "kernels[0].label: expected a kernel label name"),
        (
            "kernels:\n  - {label: a, kernel: '7.2'}\n  - {label: a, kernel: '6.12'}\n",
            10,
            "kernels[1].label: expected a label not used above, found 'a' again",
        ),
        ("kernels:\n  - {label: a}\n", 9, "kernels[0]: missing required field 'kernel'"),
        ("boots: 0\n", 8, "boots"),
        ("boots: 8\n", 8, "boots: expected at most one boot per round (7), found 8"),
        (
            "kernels:\n  - {label: a, kernel: '7.2'}\n  - {label: b, kernel: '6.12'}\n"
            "repetitions: {min: 3, max: 9}\n",
            11,
            "repetitions: adaptive repetitions are not supported with several kernels or boots",
        ),
        (
            "kernels:\n  - {label: a, kernel: '7.2'}\n  - {label: b, kernel: '6.12'}\norder: sequential\n",
            11,
            "order: several kernels or boots need order: interleaved",
        ),
    ],
)
def test_bad_kernels_are_one_line_naming_file_line_and_field(tmp_path, extra, line, fragment):
    text = BASE + extra + ("" if "repetitions" in extra else "repetitions: 7\n")
    path = write_workload(tmp_path, text)
    out = run_cli("plan", path)
    assert out.returncode == 2, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, lines
    assert fragment in lines[0] and f"w.yaml:{line}:" in lines[0], lines[0]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--boots", "2"], "--boots: a campaign on this host covers one kernel: give --kernel SPEC"),
        (["--kernel", "/tmp/bzImage"], "expected a kernel label name"),
        (["--kernel", "a=7.2", "--kernel", "a=6.12"], "kernel label a given twice"),
        (["--kernel", "x="], "expected SPEC or LABEL=SPEC"),
    ],
)
def test_bad_kernel_options_are_one_line_and_write_nothing(tmp_path, env, args, fragment):
    path = write_workload(tmp_path, WORKLOAD)
    out = run_cli("run", path, "--results", tmp_path / "results", *args, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], lines
    assert not (tmp_path / "results").exists()


def test_boots_in_a_host_workload_say_how_to_combine_host_campaigns(tmp_path, env):
    path = write_workload(tmp_path, WORKLOAD + "boots: 2\n")
    out = run_cli("run", path, "--results", tmp_path / "results", env=env)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"blkcmp: error: {path}: boots: a campaign on this host covers one kernel")
    assert "blkcmp compare --by kernel DIR_A DIR_B" in line
    assert not (tmp_path / "results").exists()


def test_adaptive_repetitions_with_several_kernels_on_the_command_line_are_refused():
    w = loads(BASE + "repetitions: {min: 3, max: 9}\n", "w.yaml")
    with pytest.raises(UsageError, match="w.yaml: repetitions: adaptive repetitions are not supported"):
        multikernel.choose(w, "w.yaml", ["7.2", "6.12"], None)


# ------------------------------------------------------------------------------------------
# Comparisons across the kernels of one campaign

MATRIX = {"rw": ["randread"], "bs": ["4k"], "iodepth": [1, 8]}
GAP = 0.95


def make(root, *, slow_rnull=1.0, boots=3, rounds=9, seed=3, **kw):
    """kernels base and slow; rnull at GAP of null_blk on base, GAP x slow_rnull on slow."""
    return specimen.create(
        root,
        specimen.Specimen(
            name="mk",
            rounds=rounds,
            seed=seed,
            matrix=MATRIX,
            kernels=("base", "slow"),
            boots=boots,
            factor=lambda t, p: GAP if t == "rnull" else 1.0,
            kernel_factor=lambda k, t: slow_rnull if (k, t) == ("slow", "rnull") else 1.0,
            **kw,
        ),
    )


def gap(path, **options):
    return analyse_gap([path], AnalysisOptions.parse(by="gap", **options))


def words(a):
    return [p.verdict.verdict for side in a.gaps for p in side.points]


def test_a_real_gap_change_on_one_kernel_is_detected_within_the_campaign(tmp_path):
    path = make(tmp_path, slow_rnull=0.9)
    a = gap(path)
    assert a.kernels == ["base", "slow"] and a.reference_kernel == "base"  # the order of kernels:
    assert words(a) == ["slower", "slower"]
    for p in a.gaps[0].points:
        assert p.gap.ratio == pytest.approx(0.9, abs=0.015)
        assert p.gap.ratio_ci_low <= 0.9 <= p.gap.ratio_ci_high < 0.98
        assert p.later.comparison.sessions.n_sessions == 3  # the kernel's own boots as sessions
    for kernel, truth in (("base", GAP), ("slow", GAP * 0.9)):
        per = dict(a.per_kernel)[kernel].comparisons[0]
        assert [p.comparison.ratio for p in per.points] == pytest.approx([truth] * 2, abs=0.01)
    out = run_cli("compare", "--by", "gap", path, "--format", "json")
    assert out.returncode == 0, out.stderr
    # --baseline kernel=LABEL picks the reference; an unknown label is one line
    assert gap(path, baseline="kernel=slow").reference_kernel == "slow"
    with pytest.raises(UsageError, match="no such kernel in .*kernels: base, slow"):
        gap(path, baseline="kernel=nope")


def test_an_unchanged_gap_is_not_a_kernel_difference(tmp_path):
    a = gap(make(tmp_path))
    assert not {"faster", "slower"} & set(words(a))
    assert all(p.gap.ratio_ci_low <= 1.0 <= p.gap.ratio_ci_high for s in a.gaps for p in s.points)


def test_an_offset_both_targets_share_on_one_boot_is_not_a_kernel_difference(tmp_path):
    # slot 1's boot is 30 % slower for both drivers: which kernel it is, is the plan's business
    path = make(tmp_path, session_factor=lambda target, slot: 0.7 if slot == 1 else 1.0)
    a = gap(path)
    assert not {"faster", "slower"} & set(words(a))
    assert all(p.gap.ratio == pytest.approx(1.0, abs=0.015) for s in a.gaps for p in s.points)
    # --by kernel: each target across the kernels, boots as units: the offset is in the
    # between-boot spread, not a verdict
    k = analyse([path], AnalysisOptions.parse(by="kernel"))
    assert k.sides == ["base", "slow"] and k.baseline == "base"  # the order of kernels:
    for side in k.comparisons:
        for p in side.points:
            assert not p.comparison.paired and p.comparison.n_baseline_units == 3  # three boots
            assert p.verdict.verdict not in ("faster", "slower"), p.point
    assert any("each boot's mean is one unit" in n for n in k.notes)


def test_a_real_kernel_difference_of_both_drivers_is_seen_by_kernel(tmp_path):
    path = specimen.create(
        tmp_path,
        specimen.Specimen(
            name="mk",
            rounds=9,
            seed=4,
            matrix=MATRIX,
            kernels=("base", "slow"),
            boots=3,
            kernel_factor=lambda k, t: 0.8 if k == "slow" else 1.0,
        ),
    )
    k = analyse([path], AnalysisOptions.parse(by="kernel", baseline="kernel=base"))
    assert k.baseline == "base"
    for p in k.comparisons[0].points:
        assert p.comparison.ratio == pytest.approx(0.8, abs=0.02)
        assert p.verdict.verdict == "slower", p.point
    # and the gap did not change
    assert not {"faster", "slower"} & set(words(gap(path)))


def test_a_per_boot_ratio_effect_widens_the_ci_instead_of_a_false_verdict(tmp_path):
    # rnull 8 % slower on one boot of `slow` only: a boot effect on the ratio, not the kernel's
    path = make(
        tmp_path,
        seed=6,
        session_factor=lambda target, slot: 0.92 if (target, slot) == ("rnull", 1) else 1.0,
    )
    plan = store.open_campaign(path).plan()
    assert plan.slots[1] in ("base", "slow")
    a = gap(path)
    assert not {"faster", "slower"} & set(words(a))
    for p in a.gaps[0].points:
        g = p.gap
        assert math.isfinite(g.session_log_se) and g.session_log_se > g.log_se
        assert "session-level" in g.ratio_ci_method and g.ratio_ci_low < g.ratio < g.ratio_ci_high
    # the round-level test alone would have called it: the session level is what keeps it honest
    affected = dict(a.per_kernel)[plan.slots[1]].comparisons[0].points
    assert all(p.comparison.sessions.between_share > 0.5 for p in affected)


def test_compare_by_target_on_a_campaign_of_several_kernels_keeps_kernels_apart(tmp_path):
    path = make(tmp_path, slow_rnull=0.9)
    a = analyse([path])
    keys = [p.point for p in a.comparisons[0].points]
    assert keys == [
        "rw=randread,bs=4k,iodepth=1 [base]",
        "rw=randread,bs=4k,iodepth=8 [base]",
        "rw=randread,bs=4k,iodepth=1 [slow]",
        "rw=randread,bs=4k,iodepth=8 [slow]",
    ] or sorted(keys) == sorted(
        [
            "rw=randread,bs=4k,iodepth=1 [base]",
            "rw=randread,bs=4k,iodepth=8 [base]",
            "rw=randread,bs=4k,iodepth=1 [slow]",
            "rw=randread,bs=4k,iodepth=8 [slow]",
        ]
    )
    ratios = {p.point: p.comparison.ratio for p in a.comparisons[0].points}
    assert ratios["rw=randread,bs=4k,iodepth=1 [slow]"] == pytest.approx(GAP * 0.9, abs=0.01)
    assert ratios["rw=randread,bs=4k,iodepth=1 [base]"] == pytest.approx(GAP, abs=0.01)


def test_the_report_and_the_kernel_trend_come_from_the_one_campaign(tmp_path):
    from bench import report

    path = make(tmp_path, slow_rnull=0.9, boots=2, rounds=6)
    built = report.collect([path])
    assert [g.kernel for g in built.catalogue.groups] == ["base", "slow"]
    assert built.gap is not None and built.gap.kernels == ["base", "slow"]
    names = [f.name for f in built.catalogue.figures]
    assert "kernel-trend" in names
    trend = next(f for f in built.catalogue.figures if f.name == "kernel-trend")
    assert "base" in trend.svg and "slow" in trend.svg
