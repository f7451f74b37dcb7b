"""Failure paths of `blkcmp run` that depend on timing: a run failing in the middle of a campaign,
blkcmp killed in the middle of a run, a target changed under a run so that its teardown fails.

A real fio cannot be made to fail at a chosen moment, so these tests run blkcmp with the
test-only seam `BLKCMP_TEST_FAKE_FIO` pointing at tests/fake_fio.py: a stand-in that writes a
recorded fio 3.33 json+ document (and fails, kills its parent or obstructs the target on the call
the test names).  Everything else is real: blkcmp's option table and `fio --parse-only` come from
the real fio, the targets are really set up and torn down, the campaign directory and index are
the real ones.  The fake's log says which runs were run, and how often.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from conftest import campaign_dir, index_rows, no_traceback, planned_ids, run_cli, write_workload

FAKE_FIO = Path(__file__).resolve().parent / "fake_fio.py"
RECORDED = Path(__file__).resolve().parent / "data" / "fio" / "fio-3.33-null-jsonplus.json"

FIO_NULL = """\
name: fake
targets:
  a: {driver: fio-null, options: {size: 16}}
  b: {driver: fio-null, options: {size: 16}}
fio: {ioengine: psync}
matrix: {rw: [randread], bs: [4k]}
repetitions: 3
runtime: 1
ramp_time: 0
seed: 2
"""


def faked(env: dict[str, str], log: Path, **knobs: str) -> dict[str, str]:
    """The environment of a blkcmp whose measured runs go to the fake fio."""
    return env | {"BLKCMP_TEST_FAKE_FIO": str(FAKE_FIO), "FAKE_FIO_LOG": str(log)} | knobs


def runs_called(log: Path) -> list[str]:
    """The run ids the fake fio was called for, in order (it runs in the run's .tmp- directory)."""
    if not log.exists():
        return []
    return [Path(line).parent.name.removeprefix(".tmp-") for line in log.read_text().splitlines()]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("blkcmp: error:")]


def test_a_run_failing_mid_campaign_is_kept_and_resumed(tmp_path, env):
    log = tmp_path / "fio-calls.log"
    workload = write_workload(tmp_path, FIO_NULL)
    out = run_cli("run", workload, "--results", tmp_path / "res", env=faked(env, log, FAKE_FIO_FAIL_AT="3"))
    no_traceback(out)
    assert out.returncode == 1, out.stderr
    camp = campaign_dir(tmp_path / "res")
    ids = planned_ids(camp)
    assert runs_called(log) == ids[:3]  # stopped at the failed run
    [line] = error_lines(out.stderr)
    assert line == (
        f"blkcmp: error: run {ids[2]} failed: fio: io_u error on file /dev/fake: Input/output "
        f"error: read offset=0, buflen=4096 (raw output kept; fix and "
        f"`blkcmp run --resume {camp}`)"
    )
    rows = {r["run_id"]: r for r in index_rows(camp)}
    assert [rows[i]["status"] for i in ids] == ["done", "done", "failed", "planned", "planned", "planned"]
    assert rows[ids[2]]["error"].startswith("fio: io_u error")
    kept = camp / "runs" / f"{ids[2]}.failed-1"
    assert json.loads((kept / "run.json").read_text())["status"] == "failed"
    assert json.loads((kept / "fio.json").read_text())["jobs"][0]["error"] == 5  # raw output kept
    assert not (camp / "runs" / ids[2]).exists()

    again = run_cli("run", "--resume", camp, "--quiet", env=faked(env, log))
    assert again.returncode == 0, again.stderr
    assert runs_called(log) == ids[:3] + ids[2:]  # only what was not done, the failed run again
    assert [r["status"] for r in index_rows(camp)] == ["done"] * 6
    assert kept.is_dir()  # the failed attempt stays beside the run that replaced it
    recorded = json.loads(RECORDED.read_text())["jobs"][0]["read"]["iops"]
    assert {r["read_iops"] for r in index_rows(camp)} == {recorded}


def test_recover_reindexes_finished_runs_and_reruns_only_what_is_missing(tmp_path, env):
    log = tmp_path / "fio-calls.log"
    workload = write_workload(tmp_path, FIO_NULL)
    # blkcmp is SIGKILLed by the fake in the middle of the 4th run: runs 1-3 are done, the 4th
    # leaves a scrap (.tmp-) behind.
    out = run_cli(
        "run",
        workload,
        "--results",
        tmp_path / "res",
        "--quiet",
        env=faked(env, log, FAKE_FIO_KILL_PARENT_AT="4"),
    )
    assert out.returncode == -9, out.stderr
    camp = campaign_dir(tmp_path / "res")
    ids = planned_ids(camp)
    assert (camp / "runs" / f".tmp-{ids[3]}").is_dir()
    before = {r["run_id"]: r for r in index_rows(camp)}
    assert [before[i]["status"] for i in ids[:4]] == ["done", "done", "done", "planned"]
    # Runs 1 and 2 finished but their index rows were not written (blkcmp killed between the
    # rename of the run directory and the index transaction: a moment no signal can be aimed at,
    # so the test puts the index in that state); run 3's directory is gone (deleted by hand).
    db = sqlite3.connect(camp / "index.sqlite")
    with db:
        db.execute(
            "UPDATE runs SET status = 'planned', iops = NULL, read_iops = NULL, started = NULL "
            "WHERE run_id IN (?, ?)",
            ids[:2],
        )
        db.execute("DELETE FROM jobs WHERE run_id IN (?, ?)", ids[:2])
    db.close()
    shutil.rmtree(camp / "runs" / ids[2])

    again = run_cli("run", "--resume", camp, env=faked(env, log))
    no_traceback(again)
    assert again.returncode == 0, again.stderr
    assert f"blkcmp: run {ids[3]} was cut off mid-way: it will be run again" in again.stderr
    assert "blkcmp: 1 run(s) indexed as done have no run directory: they will be run again" in again.stderr
    # fio ran for runs 3 (directory gone), 4 (cut off), 5 and 6 only: 1 and 2 were re-indexed
    assert runs_called(log) == ids[:4] + ids[2:]
    after = {r["run_id"]: r for r in index_rows(camp)}
    assert [after[i]["status"] for i in ids] == ["done"] * 6
    for run_id in ids[:2]:  # re-indexed from their run directories: the rows they had
        assert after[run_id] == before[run_id]
    assert len(index_rows(camp, "jobs")) == 6
    assert not list((camp / "runs").glob(".tmp-*"))


FILE_TARGET = """\
name: obstructed
targets:
  f: {{driver: file, options: {{size: 1, directory: {directory}}}}}
fio: {{ioengine: psync}}
matrix: {{rw: [randread], bs: [4k]}}
repetitions: 2
runtime: 1
ramp_time: 0
seed: 1
"""


def test_teardown_errors_are_reported_and_leave_the_resource_to_cleanup(tmp_path, env):
    # While the runs go on, something replaces the target's file with a directory: teardown's
    # unlink fails. The runs are kept, the problem is one line naming the target and the error,
    # and the resource stays recorded for `blkcmp cleanup`.
    files = tmp_path / "files"
    files.mkdir()
    log = tmp_path / "fio-calls.log"
    workload = write_workload(tmp_path, FILE_TARGET.format(directory=files))
    out = run_cli("run", workload, "--results", tmp_path / "res", env=faked(env, log, FAKE_FIO_OBSTRUCT="1"))
    no_traceback(out)
    assert out.returncode == 0, out.stderr
    camp = campaign_dir(tmp_path / "res")
    assert [r["status"] for r in index_rows(camp)] == ["done", "done"]
    [obstacle] = list(files.iterdir())
    assert obstacle.is_dir()
    [line] = [ln for ln in out.stderr.splitlines() if ln.startswith("blkcmp: teardown")]
    assert line == (
        f"blkcmp: teardown problems (run `blkcmp cleanup`): f: [Errno 21] Is a directory: '{obstacle}'"
    )
    state = json.loads((Path(env["BLKCMP_STATE_DIR"]) / "state.json").read_text())
    assert [r["kind"] for r in state["resources"].values()] == ["file"]

    shutil.rmtree(obstacle)
    cleaned = run_cli("cleanup", env=env)
    assert cleaned.returncode == 0, cleaned.stderr
    state = json.loads((Path(env["BLKCMP_STATE_DIR"]) / "state.json").read_text())
    assert state["resources"] == {}
