"""Results on a filesystem that refuses writes: a full one during `run`, a read-only one for
report, plot, export, ingest and run. Each is one line naming the path, exit 1; finished runs
stay intact and the campaign resumes once there is room. The filesystems are real tmpfs mounts
the tests make under their own tmp dir (and unmount)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import (
    done_count,
    index_rows,
    needs_root,
    no_traceback,
    planned_ids,
    run_cli,
    start_cli,
    wait_for,
    write_workload,
)

from bench import fio

pytestmark = needs_root

# 2 targets × 6 rounds of 0.5 s: long enough to fill the disk while it runs.
WORKLOAD = """name: full
targets:
  a: {driver: fio-null}
  b: {driver: fio-null}
fio: {ioengine: psync}
matrix: {rw: [randread], bs: [4k]}
repetitions: 6
runtime: 0.5
ramp_time: 0
seed: 4
"""


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "blkcmp-test", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def fill(path: Path) -> Path:
    """Write a file until the filesystem is full."""
    filler = path / "filler"
    with open(filler, "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * (64 << 10))
            fh.flush()
    return filler


def one_error(out) -> str:
    no_traceback(out)
    assert "internal error" not in out.stderr, out.stderr
    errors = [l for l in out.stderr.splitlines() if "error" in l]
    assert len(errors) == 1, out.stderr
    return errors[0]


def finished_runs_intact(campaign: Path) -> list[str]:
    """Every finished run directory holds parseable fio output; returns their ids."""
    finished = sorted(p.name for p in (campaign / "runs").iterdir() if not p.name.startswith("."))
    for name in finished:
        meta = json.loads((campaign / "runs" / name / "run.json").read_text())
        if meta["status"] == "done":
            assert fio.parse((campaign / "runs" / name / "fio.json").read_text()).jobs
    return finished


def test_run_on_a_full_filesystem_is_one_line_and_resumes_when_there_is_room(tmp_path, env):
    path = write_workload(tmp_path, WORKLOAD)
    with tmpfs(tmp_path / "disk", "16m") as disk:
        results = disk / "results"
        proc = start_cli("run", path, "--results", results, "--quiet", env=env)
        try:
            campaign = wait_for(
                lambda: (
                    results.is_dir()
                    and next((p for p in results.iterdir() if not p.name.startswith(".")), None)
                ),
                "the campaign directory",
            )
            wait_for(lambda: done_count(campaign) >= 2 or proc.poll() is not None, "2 runs done")
            assert proc.poll() is None, "the campaign ended before the disk could fill"
            filler = fill(disk)
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        assert out.returncode == 1, stderr
        line = one_error(out)
        assert line.startswith(f"blkcmp: error: {disk}/"), line
        assert (
            ": cannot write: No space left on device; finished runs are kept: once it can be "
            f"written, `blkcmp run --resume {campaign}`" in line
        ), line
        print(line)
        finished = finished_runs_intact(campaign)
        assert len(finished) >= 2
        done_before = {
            p: (campaign / "runs" / p / "fio.json").read_bytes() for p in finished if ".failed-" not in p
        }

        filler.unlink()
        out = run_cli("run", "--resume", campaign, "--quiet", env=env)
        assert out.returncode == 0, out.stderr
        no_traceback(out)
        rows = index_rows(campaign)
        assert sorted(r["run_id"] for r in rows) == sorted(planned_ids(campaign))
        assert {r["status"] for r in rows} == {"done"}
        runs = sorted(p.name for p in (campaign / "runs").iterdir() if ".failed-" not in p.name)
        assert runs == sorted(planned_ids(campaign))  # every planned run exactly once, no scraps
        for name, raw in done_before.items():  # what had finished was kept as it was
            assert (campaign / "runs" / name / "fio.json").read_bytes() == raw


@pytest.fixture
def read_only_campaign(tmp_path, env):
    """A finished campaign on a tmpfs that is then remounted read-only."""
    path = write_workload(tmp_path, WORKLOAD.replace("repetitions: 6", "repetitions: 1"))
    with tmpfs(tmp_path / "ro", "16m") as disk:
        out = run_cli("run", path, "--results", disk / "results", "--quiet", env=env)
        assert out.returncode == 0, out.stderr
        (campaign,) = (disk / "results").iterdir()
        remount(disk, "ro")
        try:
            yield campaign
        finally:
            remount(disk, "rw")


def test_readers_work_and_writers_name_the_read_only_path(read_only_campaign, tmp_path, env):
    campaign = read_only_campaign
    disk = campaign.parent.parent
    before = sorted(str(p) for p in disk.rglob("*"))

    export = run_cli("export", campaign, "--format", "json", env=env)
    assert export.returncode == 0 and len(json.loads(export.stdout)) == 2, export.stderr
    assert run_cli("compare", campaign, env=env).returncode == 0
    assert run_cli("ls", campaign.parent, env=env).stdout.split()[1:] == ["complete", "2/2", "runs"]

    good = tmp_path / "good.json"
    shutil.copyfile(next((campaign / "runs").iterdir()) / "fio.json", good)
    for args, path in (
        (["report", campaign, "--out", disk / "report"], disk / "report"),
        (["plot", campaign, "--out", disk / "plots"], disk / "plots"),
        (["export", campaign, "-o", disk / "x.csv"], disk / "x.csv"),
        (["ingest", good, "--into", campaign], campaign / ".lock"),
        (["ingest", good, "--into", disk / "new"], disk / "new"),
        (["run", tmp_path / "w.yaml", "--results", disk / "more"], disk / "more"),
        (["run", "--resume", campaign], campaign / ".lock"),
    ):
        out = run_cli(*args, env=env)
        assert out.returncode == 1, (args, out.stderr)
        assert one_error(out).startswith(f"blkcmp: error: {path}: cannot write: Read-only file system"), args
    assert sorted(str(p) for p in disk.rglob("*")) == before


def test_a_damaged_index_on_a_read_only_filesystem_is_rebuilt_in_memory(tmp_path, env):
    path = write_workload(tmp_path, WORKLOAD.replace("repetitions: 6", "repetitions: 1"))
    with tmpfs(tmp_path / "ro", "16m") as disk:
        assert run_cli("run", path, "--results", disk / "results", "--quiet", env=env).returncode == 0
        (campaign,) = (disk / "results").iterdir()
        expected = run_cli("export", campaign, "--format", "json", env=env).stdout
        (campaign / "index.sqlite").write_bytes(b"")
        remount(disk, "ro")
        try:
            out = run_cli("export", campaign, "--format", "json", env=env)
            assert out.returncode == 0 and out.stdout == expected, out.stderr
            (notice,) = out.stderr.splitlines()
            assert notice.startswith(
                f"blkcmp: {campaign}/index.sqlite was empty (0 bytes): rebuilt from "
                "the run directories in memory for this command only"
            )
            report = run_cli("report", campaign, "--out", tmp_path / "report", env=env)
            assert report.returncode == 0, report.stderr
            assert len(report.stderr.splitlines()) == 1  # one rebuild per command, however many readers
            refused = run_cli("reindex", campaign, env=env)
            assert refused.returncode == 1
            assert (
                one_error(refused) == f"blkcmp: error: {campaign}/.lock: cannot write: Read-only file system"
            )
        finally:
            remount(disk, "rw")
