"""The campaign directory has one owner (bench.store): file names, the format version and its
migration, the baseline rule, the index schema, the stopping rule recorded in the plan, and the
import boundaries of issue 11 (one home per concept, no device code loaded by the schema)."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import specimen
from conftest import REPO, run_cli

from bench import analysis, stats, stopping, store
from bench.analysis_options import AnalysisOptions
from bench.errors import UsageError
from bench.plots import data as plot_data
from bench.results import load_runs

BENCH = REPO / "bench"

# Every name inside a campaign directory (bench.store's layout); none may appear elsewhere.
CAMPAIGN_FILES = (
    "campaign.json",
    "workload.yaml",
    "workload.source.yaml",
    "plan.json",
    "environment.json",
    "host-environment.json",
    "kernel-config.txt",
    "targets.json",
    "adaptive.json",
    "index.sqlite",
    "run.json",
    "cpu.json",
    "fio.json",
    "job.fio",
    "fio.stderr",
    "console-",
)


def test_no_campaign_file_name_is_spelled_outside_the_store():
    pattern = re.compile("|".join(re.escape(name) for name in CAMPAIGN_FILES))
    found = []
    for path in sorted(BENCH.rglob("*.py")):
        if path == BENCH / "store.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert found == []
    # ... and the store does spell each of them (the check above is looking for real names)
    text = (BENCH / "store.py").read_text()
    assert all(name in text for name in CAMPAIGN_FILES)


def test_loading_the_schema_loads_no_device_code():
    code = (
        "import sys, bench.workload, bench.plan, bench.store; "
        "print(sorted(m for m in sys.modules if m.startswith(('bench.targets', 'bench.executors', "
        "'bench.ledger', 'bench.kernels'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
    # the device package itself loads a family only when one is asked for
    code = (
        "import sys, bench.targets; print(sorted(m for m in sys.modules if m.startswith('bench.targets.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "['bench.targets.base']"


def _definitions(name: str) -> list[str]:
    """Where a top-level function or method called `name` is defined in bench/."""
    where = []
    for path in BENCH.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                where.append(str(path.relative_to(REPO)))
    return where


@pytest.mark.parametrize(
    "name, home",
    [
        ("release_key", "bench/releases.py"),
        ("parse_config", "bench/releases.py"),
        ("key_of", "bench/points.py"),
        ("kernel_release", "bench/store.py"),
        ("baseline", "bench/store.py"),
        ("job_spec", "bench/fio.py"),
        ("job_rows", "bench/store.py"),
        ("index_run_dir", "bench/store.py"),
        ("build_targets", "bench/targets/__init__.py"),
        ("evaluate", "bench/stopping.py"),
        ("_version_key", None),
        ("workload_document", None),
        ("adaptive_more_rounds", None),
    ],
)
def test_one_home_per_concept(name, home):
    assert _definitions(name) == ([home] if home else [])


def test_homes_of_moved_concepts():
    from bench import driver_options, ledger, progress

    assert progress.Reporter and driver_options.DRIVER_OPTIONS and ledger.cleanup
    assert not (BENCH / "targets" / "options.py").exists() and not (BENCH / "targets" / "state.py").exists()
    imports = (
        (BENCH / "progress.py").read_text()
        + (BENCH / "ingest.py").read_text()
        + (BENCH / "campaign.py").read_text()
        + (BENCH / "store.py").read_text()
    )
    assert "executors" not in imports


# ------------------------------------------------------------------------------------------
# Format versions


@pytest.fixture
def campaign(tmp_path) -> store.Campaign:
    return store.open_campaign(
        specimen.create(
            tmp_path,
            specimen.Specimen(
                targets=(("null_blk", "null_blk"), ("rnull", "rnull"), ("loop", "loop")), rounds=4
            ),
        )
    )


def _rewrite(path: Path, change) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))


def test_a_newer_format_is_refused_in_one_line(campaign, env):
    assert campaign.info()["format"] == store.FORMAT == 3
    _rewrite(campaign.info_path, lambda d: d | {"format": 4})
    with pytest.raises(
        UsageError, match=r"campaign\.json: format 4 is newer than this blkcmp reads \(format 3\)"
    ):
        store.open_campaign(campaign.path)
    for command in (("compare", campaign.path), ("export", campaign.path), ("ls", campaign.path.parent)):
        out = run_cli(*command, env=env)
        lines = (out.stderr + out.stdout).strip().splitlines()
        assert "format 4 is newer" in lines[-1] and "Traceback" not in out.stderr
        assert out.returncode == (0 if command[0] == "ls" else 2), out.stderr
    _rewrite(campaign.info_path, lambda d: d | {"format": "two"})
    with pytest.raises(UsageError, match="format 'two' is not a format number"):
        store.open_campaign(campaign.path)


def _as_format_1(campaign: store.Campaign, *, adaptive: bool) -> None:
    """What blkcmp wrote before format 2: no baseline or rule in plan.json, no allowed
    differences in targets.json, `format: 1`."""
    _rewrite(campaign.info_path, lambda d: d | {"format": 1})
    plan_path = campaign.path / "plan.json"
    _rewrite(
        plan_path,
        lambda d: (
            {k: v for k, v in d.items() if k not in ("baseline", "stopping")}
            | ({"max_rounds": 40} if adaptive else {})
        ),
    )
    _rewrite(
        campaign.path / "targets.json",
        lambda sessions: [{k: v for k, v in s.items() if k != "allowed_differences"} for s in sessions],
    )
    workload = campaign.path / "workload.yaml"
    text = workload.read_text().replace("baseline: null_blk", "baseline: rnull")
    if adaptive:
        text = re.sub(
            r"repetitions: \d+", "repetitions: {min: 3, max: 40, target_ci: 0.02, margin: 0.03}", text
        )
    workload.write_text(text)


def test_a_format_1_campaign_is_read_and_migrated(campaign):
    audits = campaign.sessions()[-1].audits()
    audits["loop"] = audits["null_blk"] | {"rotational": 1}  # a difference the workload allowed
    _rewrite(
        campaign.path / "targets.json",
        lambda s: [
            s[0] | {"targets": s[0]["targets"] | {"loop": {"driver": "loop", "audit": audits["loop"]}}}
        ],
    )
    _as_format_1(campaign, adaptive=True)
    fresh = store.open_campaign(campaign.path)
    plan = fresh.plan()
    # the baseline and the rule from the workload, the allowed differences from the audits
    assert fresh.baseline() == plan.baseline == "rnull"
    assert plan.adaptive and plan.stopping == stopping.StoppingRule(
        margin=0.03, baseline="rnull", min_rounds=3, max_rounds=40, target_ci=0.02
    )
    (line,) = fresh.allowed_differences()
    assert line.startswith("rotational: ") and line.endswith("loop=1")
    # the next plan write migrates: the current format on disk, the same facts read back without
    # the workload
    fresh.save_plan(plan)
    assert json.loads(fresh.info_path.read_text())["format"] == store.FORMAT
    on_disk = json.loads((fresh.path / "plan.json").read_text())
    assert on_disk["baseline"] == "rnull" and on_disk["stopping"]["target_ci"] == 0.02
    (fresh.path / "workload.yaml").write_text("not: [a, valid workload")
    assert store.open_campaign(fresh.path).plan().stopping == plan.stopping


def test_a_format_1_campaign_that_is_not_adaptive(campaign):
    _as_format_1(campaign, adaptive=False)
    plan = store.open_campaign(campaign.path).plan()
    assert plan.baseline == "rnull" and not plan.adaptive and plan.stopping is None


# ------------------------------------------------------------------------------------------
# The baseline: one rule, no silent fallback


def test_compare_and_the_figures_agree_on_the_baseline(campaign):
    _rewrite(campaign.path / "plan.json", lambda d: d | {"baseline": "rnull"})
    a = analysis.analyse([campaign.path], n_boot=200)
    dataset = plot_data.load([campaign.path], with_bins=False)
    assert a.baseline == dataset.baseline == dataset.targets[0] == "rnull"


def test_a_baseline_without_runs_is_an_error_everywhere(campaign):
    _rewrite(campaign.path / "plan.json", lambda d: d | {"baseline": "nvme"})
    message = r"the baseline nvme has no finished runs .*; give --baseline target=NAME"
    with pytest.raises(UsageError, match=message):
        analysis.analyse([campaign.path], n_boot=200)
    with pytest.raises(UsageError, match=message):
        plot_data.load([campaign.path], with_bins=False)
    # asked for explicitly, it is honoured by both
    options = AnalysisOptions.parse(baseline="target=loop")
    assert analysis.analyse([campaign.path], options, n_boot=200).baseline == "loop"
    assert plot_data.load([campaign.path], baseline="target=loop", with_bins=False).baseline == "loop"


def test_an_ingested_campaign_has_its_first_target_as_baseline(tmp_path, env):
    data = REPO / "tests" / "data" / "fio"
    files = sorted(data.glob("fio-3.*.json"))[:2]
    into = tmp_path / "c"
    for i, path in enumerate(files):
        assert run_cli("ingest", path, "--into", into, "--target", f"t{i}", env=env).returncode == 0
    campaign = store.open_campaign(into)
    assert not campaign.has_workload() and campaign.plan().baseline is None
    assert campaign.baseline() == campaign.plan().targets[0] == "t0"


# ------------------------------------------------------------------------------------------
# Accessors


def test_accessors_give_what_the_runner_and_the_vm_executor_recorded(campaign):
    assert campaign.kernel_release() == "7.2.13"
    campaign.save_host_environment({"hostname": "host"})
    assert campaign.host_environment() == {"hostname": "host"}
    campaign.add_vm_boot({"outcome": "exit 0"})
    assert campaign.environment()["vm_boots"] == [{"outcome": "exit 0"}]
    first, second = campaign.new_console_log(), None
    first.write_text("boot 1\n")
    second = campaign.new_console_log()
    assert (campaign.relative(first), campaign.relative(second)) == (
        "logs/console-01.log",
        "logs/console-02.log",
    )
    assert campaign.console_logs() == [first]
    run = campaign.plan().runs[0]
    assert campaign.job_text(run.run_id).startswith("# specimen campaign")
    assert campaign.run_files(run.run_id).read_meta()["status"] == "done"
    assert campaign.adaptive_state() is None
    session = campaign.sessions()[-1]
    assert set(session.targets) == {"null_blk", "rnull", "loop"} and session.started == "2026-01-01T00:00:00Z"
    assert campaign.workload().baseline_name() == "null_blk"
    # no environment record at all: the kernel the VM campaign asked for
    (campaign.path / "environment.json").unlink()
    _rewrite(campaign.info_path, lambda d: d | {"vm_kernel_release": "6.12.8"})
    assert campaign.kernel_release() == "6.12.8"


def test_the_jobs_schema_is_spelled_once(campaign):
    db = sqlite3.connect(campaign.index_path)
    columns = [r[1] for r in db.execute("PRAGMA table_info(jobs)")]
    db.close()
    assert columns == ["run_id", *store.JOB_COLUMNS]
    output = campaign.run_files(campaign.plan().runs[0].run_id).read_fio_output()
    (row,) = store.job_rows(output)
    assert list(row) == list(store.JOB_COLUMNS)
    assert row["read_iops"] == output.jobs[0].directions["read"].iops and row["write_iops"] is None
    from bench import export

    # export's columns (their order is the interface) are the index's job columns, not a copy
    assert export.COLUMNS == (
        "campaign",
        "run_id",
        "target",
        "host",
        "job",
        "repetition",
        "round",
        "rw",
        "bs",
        "iodepth",
        "numjobs",
        "read_iops",
        "write_iops",
        "mixed_iops",
        "read_bw_bytes",
        "write_bw_bytes",
        "read_clat_mean_ns",
        "write_clat_mean_ns",
        "read_clat_p99_ns",
        "write_clat_p99_ns",
        "usr_cpu",
        "sys_cpu",
        "fio_version",
    )
    assert set(export.COLUMNS + export.EXTRA) >= set(store.JOB_COLUMNS)
    exported = export.rows(campaign)[0]
    assert {c: exported[c] for c in store.JOB_COLUMNS if c != "error"} == {
        c: v for c, v in row.items() if c != "error"
    }


# ------------------------------------------------------------------------------------------
# The stopping rule, in the plan


def test_the_stopping_rule_is_recorded_in_the_plan(tmp_path, env):
    workload = tmp_path / "w.yaml"
    workload.write_text(
        "name: a\ntargets:\n  x: {driver: fio-null}\n  y: {driver: fio-null}\n"
        "baseline: y\nfio: {ioengine: psync}\nrepetitions: {}\nruntime: 1\nramp_time: 0\n"
    )
    from bench import campaign as camp

    prepared = camp.prepare(workload, seed=1, probe=False)
    rule = prepared.plan.stopping
    assert dataclasses.asdict(rule) == {
        "margin": 0.02,
        "baseline": "y",
        "min_rounds": 5,
        "max_rounds": 40,
        "target_ci": 0.01,
        "metric": "iops",
        "confidence": 0.975,
        "resamples": 10_000,
        "seed": 0,
    }
    assert prepared.plan.to_dict()["stopping"] == dataclasses.asdict(rule)
    # the defaults live in one place
    assert (stats.DEFAULT_MIN_ROUNDS, stats.DEFAULT_MAX_ROUNDS, stats.DEFAULT_TARGET_CI) == (5, 40, 0.01)
    assert stats.DEFAULT_MIN_ROUNDS is stopping.DEFAULT_MIN_ROUNDS
    assert stats.sequential_confidence(0.95) == stopping.SEQUENTIAL_CONFIDENCE
    assert stopping.DEFAULT_RESAMPLES == stats.DEFAULT_N_BOOT
    workload.write_text(workload.read_text().replace("repetitions: {}", "repetitions: 3"))
    assert camp.prepare(workload, seed=1, probe=False).plan.stopping is None


def test_stopping_and_reporting_see_the_same_interval(campaign):
    # an adaptive campaign: its rule in the plan; compare reads its confidence and resamples
    # margin 1e-6: no verdict settles, so every point is still above the (unreachable) target
    rule = stopping.StoppingRule(
        margin=1e-6, baseline="null_blk", min_rounds=3, max_rounds=10, target_ci=1e-6, resamples=500, seed=0
    )
    plan = campaign.plan()
    plan.stopping = rule
    campaign.save_plan(plan)
    decision = stopping.evaluate(rule, campaign.plan(), load_runs(campaign))
    a = analysis.analyse([campaign.path], AnalysisOptions.parse(baseline="target=null_blk"))
    assert a.confidence == rule.confidence
    widths = {
        (side.candidate, p.point): p.comparison.ratio_ci_halfwidth
        for side in a.comparisons
        for p in side.points
    }
    assert decision.max_halfwidth == pytest.approx(max(widths.values()), rel=1e-12)
    assert set(decision.points_above_target) == set(widths)  # target 1e-6: none is precise enough
    # evaluating saves nothing by itself; the runner saves each decision through the campaign
    assert campaign.adaptive_state() is None
    campaign.save_adaptive_state(decision)
    assert campaign.adaptive_state()["points_above_target"] == [list(k) for k in decision.points_above_target]


def test_the_report_states_the_stopping_rule_exactly(campaign):
    from bench import report

    assert [k for k, _ in report.plan_rows(report.campaign_report(campaign.path))][-1] == "runtime"
    plan = campaign.plan()
    plan.stopping = stopping.StoppingRule(margin=0.02, baseline="null_blk", min_rounds=3, max_rounds=10)
    campaign.save_plan(plan)
    rows = dict(report.plan_rows(report.campaign_report(campaign.path)))
    assert rows["stopping rule"] == (
        "3-10 rounds; a point stops once its iops ratio to null_blk is settled at \u00b12 % or its CI "
        "half-width is within \u00b11 % (97.5 % CI, 10000 bootstrap resamples, seed 0)"
    )
