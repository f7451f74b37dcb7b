"""Damaged campaigns: an index that is truncated, garbage, empty or missing is rebuilt from the run
directories (automatically, saying so, and by `blkcmp reindex`) so that every command gives what
the undamaged campaign gives; damaged JSON metadata is a one-line error naming the file; `ls`
marks damaged campaigns and lists the others; a deleted runs/ does not break resume.

One real campaign (fio's null engine, 2 targets × 2 rounds) is made per module; each test
damages a copy of it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import index_rows, no_traceback, planned_ids, run_cli, write_workload

WORKLOAD = """name: dmg
targets:
  a: {driver: fio-null}
  b: {driver: fio-null}
fio: {ioengine: psync}
matrix: {rw: [randread], bs: [4k]}
repetitions: 2
runtime: 1
ramp_time: 0
seed: 3
"""


@pytest.fixture(scope="module")
def module_env(tmp_path_factory) -> dict[str, str]:
    import os

    state = tmp_path_factory.mktemp("state")
    environment = dict(os.environ, BLKCMP_STATE_DIR=str(state))
    environment.pop("BLKCMP_DEBUG", None)
    return environment


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, module_env) -> tuple[Path, str]:
    """The undamaged campaign and its JSON export."""
    root = tmp_path_factory.mktemp("pristine")
    path = write_workload(root, WORKLOAD)
    out = run_cli("run", path, "--results", root / "results", "--quiet", env=module_env)
    assert out.returncode == 0, out.stderr
    (campaign,) = (root / "results").iterdir()
    export = run_cli("export", campaign, "--format", "json", env=module_env)
    assert export.returncode == 0 and len(json.loads(export.stdout)) == 4, export.stderr
    return campaign, export.stdout


def copy_of(pristine, tmp_path: Path, name: str = "c") -> Path:
    campaign = tmp_path / name
    shutil.copytree(pristine[0], campaign)
    return campaign


def error_lines(out) -> list[str]:
    return [l for l in out.stderr.splitlines() if l.startswith("blkcmp: error:")]


# ------------------------------------------------------------------------------------------
# The index


def damage_index(campaign: Path, how: str) -> None:
    index = campaign / "index.sqlite"
    if how == "truncated":
        with open(index, "r+b") as fh:
            fh.truncate(index.stat().st_size // 2)
    elif how == "garbage":
        index.write_bytes(b"this is not SQLite\n" * 300)
    elif how == "empty":
        index.write_bytes(b"")
    elif how == "missing":
        index.unlink()
    elif how == "no rows":  # a valid database whose tables hold nothing (what an empty file became)
        db = sqlite3.connect(index)
        with db:
            db.execute("DELETE FROM runs")
            db.execute("DELETE FROM jobs")
        db.close()


HOW = ["truncated", "garbage", "empty", "missing", "no rows"]


@pytest.mark.parametrize("how", HOW)
def test_damaged_index_is_rebuilt_and_export_equals_the_undamaged_export(pristine, tmp_path, module_env, how):
    campaign = copy_of(pristine, tmp_path)
    damage_index(campaign, how)
    out = run_cli("export", campaign, "--format", "json", env=module_env)
    assert out.returncode == 0, out.stderr
    no_traceback(out)
    assert out.stdout == pristine[1]
    (notice,) = out.stderr.splitlines()
    assert (
        notice.startswith(f"blkcmp: {campaign}/index.sqlite was ")
        and "rebuilt from the run directories" in notice
    )
    assert "(4 done, 0 failed, 0 not run)" in notice
    again = run_cli("export", campaign, "--format", "json", env=module_env)
    assert again.stdout == pristine[1] and again.stderr == ""  # rebuilt once, on disk
    if how in ("truncated", "garbage"):
        assert (campaign / "index.sqlite.damaged").is_file()  # kept for a post-mortem


@pytest.mark.parametrize("how", ["garbage", "missing"])
def test_every_reader_and_resume_work_on_a_damaged_index(pristine, tmp_path, module_env, how):
    def fresh(name: str) -> Path:
        campaign = copy_of(pristine, tmp_path / name)
        damage_index(campaign, how)
        return campaign

    def ok(*args) -> str:
        out = run_cli(*args, env=module_env, timeout=120)
        assert out.returncode == 0, (args, out.stderr)
        no_traceback(out)
        assert "rebuilt from the run directories (4 done, 0 failed, 0 not run)" in out.stderr, (
            args,
            out.stderr,
        )
        return out.stdout

    compared = json.loads(ok("compare", fresh("compare"), "--format", "json"))
    assert [len(s["points"]) for s in compared["comparisons"]] == [1]
    listing = ok("ls", fresh("ls").parent)
    assert listing.split() == ["c", "complete", "4/4", "runs"]
    ok("report", fresh("report"), "--out", tmp_path / "report")
    assert "; 4 done" in (tmp_path / "report" / "report.txt").read_text()
    campaign = fresh("resume")
    ok("run", "--resume", campaign, "--quiet")
    # resume found every run done: nothing was run again
    assert sorted(p.name for p in (campaign / "runs").iterdir()) == sorted(planned_ids(campaign))
    assert [r["status"] for r in index_rows(campaign)] == ["done"] * 4


def test_reindex_rebuilds_and_keeps_failed_runs_and_leaves_damaged_runs_out(pristine, tmp_path, module_env):
    campaign = copy_of(pristine, tmp_path)
    runs = sorted((campaign / "runs").iterdir())
    # one run failed once before it succeeded; another's run.json is garbage
    failed = campaign / "runs" / f"{runs[0].name}.failed-1"
    shutil.copytree(runs[0], failed)
    meta = json.loads((failed / "run.json").read_text())
    (failed / "run.json").write_text(json.dumps(meta | {"status": "failed", "error": "fio: boom"}))
    (runs[1] / "run.json").write_text("{garbage")
    out = run_cli("reindex", campaign, env=module_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (
        f"{campaign}/index.sqlite: rebuilt from the run directories (3 done, 0 failed, 1 not run)"
    )
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"blkcmp: left out of the index: {runs[1]}: {runs[1]}/run.json: damaged (not JSON")
    status = {r["run_id"]: r["status"] for r in index_rows(campaign)}
    assert status[runs[0].name] == "done" and status[runs[1].name] == "planned"
    exported = json.loads(run_cli("export", campaign, "--format", "json", env=module_env).stdout)
    assert exported == [r for r in json.loads(pristine[1]) if r["run_id"] != runs[1].name]


def test_reindex_of_a_run_that_only_failed_indexes_it_as_failed(pristine, tmp_path, module_env):
    campaign = copy_of(pristine, tmp_path)
    run = sorted((campaign / "runs").iterdir())[0]
    meta = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps(meta | {"status": "failed", "error": "fio: boom"}))
    run.rename(run.with_name(f"{run.name}.failed-1"))
    out = run_cli("reindex", campaign, env=module_env)
    assert out.returncode == 0 and "(3 done, 1 failed, 0 not run)" in out.stdout, out.stdout + out.stderr
    row = next(r for r in index_rows(campaign) if r["run_id"] == run.name)
    assert (row["status"], row["error"]) == ("failed", "fio: boom")


def test_reindex_refuses_a_directory_that_is_not_a_campaign(tmp_path, module_env):
    out = run_cli("reindex", tmp_path, env=module_env)
    assert out.returncode == 2
    assert error_lines(out) == [
        f"blkcmp: error: {tmp_path}: not a blkcmp campaign directory (no campaign.json)"
    ]


# ------------------------------------------------------------------------------------------
# JSON metadata


DAMAGE = {
    "garbage": b"{this is not json",
    "not UTF-8": b"\xff\xfe\x00garbage",
    "wrong type": b"[1, 2, 3]\n",
    "deep": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("what", list(DAMAGE))
@pytest.mark.parametrize("name", ["campaign.json", "plan.json", "environment.json"])
def test_damaged_metadata_is_one_line_naming_the_file(pristine, tmp_path, module_env, name, what):
    campaign = copy_of(pristine, tmp_path)
    (campaign / name).write_bytes(DAMAGE[what])
    for command in (["compare"], ["run", "--resume"]):
        out = run_cli(*command, campaign, env=module_env)
        assert out.returncode == 2, (command, out.stderr)
        no_traceback(out)
        (line,) = out.stderr.splitlines()
        assert line.startswith(f"blkcmp: error: {campaign}/{name}: damaged ("), line
        assert line.endswith(
            "restore it from a copy of the campaign (blkcmp cannot recreate it from the runs)"
        )
    assert len(list((campaign / "runs").iterdir())) == 4  # nothing was run, nothing removed


def test_plan_with_a_run_id_outside_runs_is_refused(pristine, tmp_path, module_env):
    campaign = copy_of(pristine, tmp_path)
    plan = json.loads((campaign / "plan.json").read_text())
    plan["runs"][0]["run_id"] = "../../escape"
    (campaign / "plan.json").write_text(json.dumps(plan))
    out = run_cli("run", "--resume", campaign, env=module_env)
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"blkcmp: error: {campaign}/plan.json: damaged (run id '../../escape' is not")
    assert not (tmp_path / "escape").exists()


def test_a_target_name_with_two_dots_is_a_run_directory_name_like_any_other(pristine, tmp_path, module_env):
    campaign = copy_of(pristine, tmp_path)
    plan = json.loads((campaign / "plan.json").read_text())
    plan["runs"].append(dict(plan["runs"][0], run_id="r009-p000-a..b", position=len(plan["runs"])))
    (campaign / "plan.json").write_text(json.dumps(plan))
    out = run_cli("ls", tmp_path, env=module_env)
    assert out.returncode == 0 and "damaged" not in out.stdout, out.stdout + out.stderr


def test_ls_marks_damaged_campaigns_and_lists_the_rest(pristine, tmp_path, module_env):
    results = tmp_path / "results"
    good = copy_of(pristine, results, "good")
    for name, damage in (
        ("bad-info", "campaign.json"),
        ("bad-plan", "plan.json"),
        ("bad-env", "environment.json"),
    ):
        (copy_of(pristine, results, name) / damage).write_bytes(b"\x00garbage")
    (copy_of(pristine, results, "no-info") / "campaign.json").unlink()
    damage_index(copy_of(pristine, results, "bad-index"), "garbage")
    (results / "not-a-campaign").mkdir()
    out = run_cli("ls", results, env=module_env)
    assert out.returncode == 0, out.stderr
    no_traceback(out)
    lines = {l.split()[0]: l.split(None, 2)[1:] for l in out.stdout.splitlines()}
    assert sorted(lines) == ["bad-env", "bad-index", "bad-info", "bad-plan", "good", "no-info"]
    assert lines["good"] == ["complete", "4/4 runs"] and lines["bad-index"] == ["complete", "4/4 runs"]
    for name, file in (
        ("bad-info", "campaign.json"),
        ("bad-plan", "plan.json"),
        ("bad-env", "environment.json"),
        ("no-info", "campaign.json"),
    ):
        state, detail = lines[name]
        assert state == "damaged" and detail.startswith(f"{results / name / file}: "), (name, detail)
    assert (
        out.stderr.splitlines()
        == [l for l in out.stderr.splitlines() if "bad-index/index.sqlite was unreadable" in l]
        and out.stderr
    )
    assert good.is_dir()


# ------------------------------------------------------------------------------------------
# runs/


def test_resume_after_runs_was_deleted_runs_every_run_again(pristine, tmp_path, module_env):
    campaign = copy_of(pristine, tmp_path)
    shutil.rmtree(campaign / "runs")
    out = run_cli("run", "--resume", campaign, env=module_env)
    assert out.returncode == 0, out.stderr
    no_traceback(out)
    assert f"{campaign}/runs was missing: recreated; every run is run again" in out.stderr
    assert "4 runs finished in this session" in out.stderr
    assert sorted(p.name for p in (campaign / "runs").iterdir()) == sorted(planned_ids(campaign))
    assert [r["status"] for r in index_rows(campaign)] == ["done"] * 4


def test_resume_runs_again_a_run_whose_directory_was_deleted(pristine, tmp_path, module_env):
    campaign = copy_of(pristine, tmp_path)
    gone = sorted((campaign / "runs").iterdir())[2]
    kept = {p.name: (p / "fio.json").read_bytes() for p in (campaign / "runs").iterdir() if p != gone}
    shutil.rmtree(gone)
    out = run_cli("run", "--resume", campaign, env=module_env)
    assert out.returncode == 0, out.stderr
    assert "1 run(s) indexed as done have no run directory: they will be run again" in out.stderr
    assert "1 runs finished in this session" in out.stderr
    assert (gone / "fio.json").is_file()
    assert {p: (campaign / "runs" / p / "fio.json").read_bytes() for p in kept} == kept  # untouched
