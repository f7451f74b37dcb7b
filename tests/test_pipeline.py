"""The whole pipeline through the CLI on host targets (fio-null, a file in /dev/shm, a loop
device): the campaign directory, exit codes, interruption (SIGKILL, Ctrl-C) and resume, cleanup,
and the write-safety check."""

from __future__ import annotations

import json
import platform
import re
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import (
    REPO,
    campaign_dir,
    done_count,
    index_rows,
    loop_devices,
    needs_root,
    no_traceback,
    planned_ids,
    run_cli,
    scratch_loop,
    start_cli,
    wait_for,
    write_workload,
)

import bench
from bench import fio, ledger, store
from bench.executors.local import campaign_id
from bench.targets.blockdev import safety_problems

pytestmark = needs_root

# /dev/shm is tmpfs. This host's kernel (6.18) accepts O_DIRECT on tmpfs, older ones (< 6.6)
# refuse it with EINVAL, so the workloads say direct: 0 to run anywhere.
E2E = """name: e2e
targets:
  common:
    options: {size: 16}
  nul:
    driver: fio-null
  fil:
    driver: file
  lp:
    driver: loop
fio:
  ioengine: psync
  direct: 0
matrix:
  rw: [randread]
  bs: [4k]
repetitions: 2
runtime: 1
ramp_time: 0
seed: 5
"""

# 2 targets × 1 point × 4 rounds = 8 runs of 1 s.
INTERRUPTED = """name: intr
targets:
  common:
    options: {size: 16}
  lp:
    driver: loop
  nul:
    driver: fio-null
fio:
  ioengine: psync
matrix:
  rw: [randread]
repetitions: 4
runtime: 1
ramp_time: 0
seed: 9
"""


def leftovers(campaign: Path) -> tuple[list[str], list[Path]]:
    """Loop devices and backing files of this campaign's targets (named after its id)."""
    marker = f"blkcmp-{campaign_id(store.Campaign(campaign))}-"
    loops = sorted(dev for dev, back in loop_devices().items() if marker in back)
    return loops, sorted(Path("/dev/shm").glob(f"{marker}*"))


def state_entries() -> dict:
    return ledger.resources()


def assert_complete(campaign: Path) -> None:
    """Every planned run exists exactly once: indexed done, one finished run directory each."""
    planned = planned_ids(campaign)
    rows = index_rows(campaign)
    assert sorted(r["run_id"] for r in rows) == sorted(planned)
    assert {r["status"] for r in rows} == {"done"}
    assert sorted(p.name for p in (campaign / "runs").iterdir()) == sorted(planned)  # no .tmp-, .failed-
    for run_id in planned:
        run = campaign / "runs" / run_id
        assert {"job.fio", "fio.json", "cpu.json", "run.json"} <= {p.name for p in run.iterdir()}
        assert json.loads((run / "run.json").read_text())["status"] == "done"
        assert fio.parse((run / "fio.json").read_text()).jobs


def assert_nothing_left(campaign: Path) -> None:
    assert leftovers(campaign) == ([], [])
    assert state_entries() == {}


# ------------------------------------------------------------------------------------------
# End to end


def test_campaign_end_to_end(tmp_path, env):
    path = write_workload(tmp_path, E2E)
    proc = run_cli("run", path, "--results", "results", env=env, cwd=tmp_path)  # relative results/
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    campaign = campaign_dir(tmp_path / "results")
    assert f"results: results/{campaign.name}" in proc.stdout

    names = {p.name for p in campaign.iterdir()}
    assert {
        "campaign.json",
        "workload.yaml",
        "workload.source.yaml",
        "plan.json",
        "environment.json",
        "index.sqlite",
        "runs",
    } <= names
    assert (campaign / "workload.source.yaml").read_text() == E2E
    assert "driver: loop" in (campaign / "workload.yaml").read_text()

    environment = json.loads((campaign / "environment.json").read_text())
    assert (
        environment["fio_version"]
        == subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip()
    )
    assert environment["kernel"]["release"] == platform.release()
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    if model:
        assert environment["cpu"]["model"] == model.group(1).strip()
    assert environment["blkcmp"]["version"] == bench.__version__
    commit = environment["blkcmp"]["git_commit"]
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit), commit
    assert (
        subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", commit.removesuffix("-dirty")]).returncode
        == 0
    )

    planned = planned_ids(campaign)
    assert len(planned) == 6
    assert_complete(campaign)

    for run_id in planned:
        run = campaign / "runs" / run_id
        meta = json.loads((run / "run.json").read_text())
        job = (run / "job.fio").read_text()
        filenames = re.findall(r"^filename=(.*)$", job, re.M)
        target = meta["run"]["target"]
        if target == "lp":  # the job kept is the one that ran: on the device recorded for the run
            assert re.fullmatch(r"/dev/loop\d+", meta["target"]["device"])
            assert filenames == [meta["target"]["device"]]
        elif target == "fil":
            assert filenames == [meta["target"]["path"]]
            assert meta["target"]["path"].startswith("/dev/shm/")
        else:
            assert filenames == [] and "ioengine=null" in job
        assert str(run) in " ".join(meta["command"]).replace(f".tmp-{run_id}", run_id)
        assert [j.jobname for j in fio.parse((run / "fio.json").read_text()).jobs] == [target]

        cpu = json.loads((run / "cpu.json").read_text())
        ncpu = len(re.findall(r"^cpu\d+ ", Path("/proc/stat").read_text(), re.M))
        assert sorted(cpu["stat"]) == sorted(["cpu"] + [f"cpu{i}" for i in range(ncpu)])
        assert all(set(v) >= {"user", "system", "softirq", "irq", "idle"} for v in cpu["stat"].values())
        assert all(n >= 0 for v in cpu["stat"].values() for n in v.values())
        assert len(cpu["softirqs"]["BLOCK"]) == ncpu
        assert cpu["block_softirqs"] == sum(cpu["softirqs"]["BLOCK"])

    rows = index_rows(campaign)
    assert all(r["iops"] and r["iops"] > 0 for r in rows)
    listing = run_cli("ls", tmp_path / "results", env=env)
    assert listing.returncode == 0
    assert re.search(rf"^{re.escape(campaign.name)}\s+complete\s+6/6 runs", listing.stdout, re.M), (
        listing.stdout
    )
    assert_nothing_left(campaign)


def test_fio_rejecting_a_job_at_run_time_exits_1_with_one_line(tmp_path, env):
    # fio --parse-only accepts a CPU this machine lacks; fio itself fails at run time.
    path = write_workload(
        tmp_path,
        "targets:\n  f:\n    driver: file\n    options: {size: 8}\n"
        "fio:\n  cpus_allowed: 4095\nrepetitions: 1\nruntime: 1\nramp_time: 0\n",
    )
    proc = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env)
    assert proc.returncode == 1
    no_traceback(proc)
    errors = [l for l in proc.stderr.splitlines() if l.startswith("blkcmp: error:")]
    assert len(errors) == 1 and "run r001-p000-f failed:" in errors[0], proc.stderr
    campaign = campaign_dir(tmp_path / "results")
    assert [r["status"] for r in index_rows(campaign)] == ["failed"]
    assert [p.name for p in (campaign / "runs").iterdir()] == ["r001-p000-f.failed-1"]  # raw output kept
    assert_nothing_left(campaign)


def test_bad_fio_option_is_caught_before_anything_runs(tmp_path, env):
    # A misspelt option is not in this fio's table; a bad value only fio itself can judge.
    path = write_workload(
        tmp_path,
        "targets:\n  n:\n    driver: fio-null\nfio:\n  iodepht: 4\n"
        "repetitions: 1\nruntime: 1\nramp_time: 0\n",
    )
    proc = run_cli("run", path, "--results", tmp_path / "results", env=env)
    assert proc.returncode == 2
    no_traceback(proc)
    (line,) = proc.stderr.splitlines()
    assert (
        line.startswith(f"blkcmp: error: {path}:5: fio.iodepht: this fio")
        and "did you mean 'iodepth'" in line
    )
    assert not (tmp_path / "results").exists()
    path.write_text(path.read_text().replace("iodepht: 4", "iodepth: many"))
    proc = run_cli("run", path, "--results", tmp_path / "results", env=env)
    assert proc.returncode == 2
    no_traceback(proc)
    (line,) = proc.stderr.splitlines()
    assert (
        line.startswith(f"blkcmp: error: {path}: fio rejects the job for n (n--p000.fio):") and "many" in line
    )
    assert not (tmp_path / "results").exists()
    assert state_entries() == {}


# ------------------------------------------------------------------------------------------
# Interruption


def _start_and_wait(tmp_path: Path, env: dict, done: int) -> tuple[subprocess.Popen, Path]:
    path = write_workload(tmp_path, INTERRUPTED)
    results = tmp_path / "results"
    proc = start_cli("run", path, "--results", results, "--quiet", env=env)
    try:
        campaign = wait_for(
            lambda: (
                results.is_dir() and next((p for p in results.iterdir() if not p.name.startswith(".")), None)
            ),
            "the campaign directory",
        )
        wait_for(lambda: done_count(campaign) >= done or proc.poll() is not None, f"{done} runs done")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    assert proc.poll() is None, f"the run ended before it could be interrupted: {proc.communicate()}"
    return proc, campaign


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)  # reaped: a zombie would still count as a live creator


def test_sigkill_then_resume_runs_every_planned_run_exactly_once(tmp_path, env):
    proc, campaign = _start_and_wait(tmp_path, env, done=2)
    _kill(proc)
    assert 2 <= done_count(campaign) < len(planned_ids(campaign))
    # What a SIGKILL leaves depends on the moment: whatever is left must be this campaign's and
    # recorded in the state file (so resume or cleanup can find it).
    loops, files = leftovers(campaign)
    recorded = json.dumps(state_entries())
    assert all(dev in recorded for dev in loops) and all(str(f) in recorded for f in files)

    proc = run_cli("run", "--resume", campaign, "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    assert_complete(campaign)
    assert_nothing_left(campaign)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_tears_down_and_resume_completes(tmp_path, env, signum):
    proc, campaign = _start_and_wait(tmp_path, env, done=2)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert_nothing_left(campaign)  # teardown ran
    assert done_count(campaign) < len(planned_ids(campaign))
    listing = run_cli("ls", tmp_path / "results", env=env)
    assert re.search(rf"^{re.escape(campaign.name)}\s+interrupted", listing.stdout, re.M), listing.stdout

    proc = run_cli("run", "--resume", campaign, "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert_complete(campaign)
    assert_nothing_left(campaign)


def test_cleanup_after_sigkill_removes_only_what_blkcmp_left(tmp_path, env):
    with scratch_loop(tmp_path) as (own_dev, own_backing):
        proc, campaign = _start_and_wait(tmp_path, env, done=1)
        _kill(proc)
        loops, files = leftovers(campaign)
        assert len(loops) == 1 and len(files) == 1  # the loop target is set up for the whole session
        kinds = sorted(e["kind"] for e in state_entries().values())
        assert "loop" in kinds
        before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "state" not in p.parts)

        out = run_cli("cleanup", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert re.search(r"^loop: .*: removed$", out.stdout, re.M), out.stdout
        assert_nothing_left(campaign)
        assert loop_devices().get(own_dev) == str(own_backing)  # ours survives
        assert own_backing.exists()
        after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "state" not in p.parts)
        assert after == before  # the campaign directory and everything else untouched
        assert run_cli("cleanup", env=env).stdout.strip() == "nothing to clean up"


# ------------------------------------------------------------------------------------------
# Safety


def test_safety_check_reports_signatures_and_passes_a_blank_device(tmp_path):
    with scratch_loop(tmp_path) as (dev, _):
        assert safety_problems(dev) == []
        subprocess.run(["mkswap", dev], capture_output=True, check=True)
        problems = safety_problems(dev)
        assert any("swap signature" in p for p in problems), problems
    assert safety_problems(str(tmp_path / "scratch-loop.img")) == [
        f"{tmp_path / 'scratch-loop.img'} is not a block device"
    ]


def _fio_pids(marker: str, under: Path) -> list[int]:
    """Live processes whose command line holds `marker` and this test's directory `under` (other
    sessions may run the same campaign on this machine meanwhile)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
            if (
                marker.encode() in cmdline
                and f"{under}/".encode() in cmdline
                and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
            ):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def test_cleanup_ends_fio_job_processes_orphaned_by_sigkill(tmp_path, env):
    # fio forks a process per job; killing blkcmp (and with it fio's main process) leaves that
    # one running for the rest of runtime, holding the device open. Cleanup must end it.
    path = write_workload(
        tmp_path,
        "targets:\n  lp:\n    driver: loop\n    options: {size: 16}\n"
        "fio:\n  ioengine: psync\nrepetitions: 1\nruntime: 60\nramp_time: 0\n",
    )
    results = tmp_path / "results"
    job = "/.tmp-r001-p000-lp/job.fio"  # on fio's command line, not on blkcmp's
    proc = start_cli("run", path, "--results", results, "--quiet", env=env)
    try:
        # fio's main process plus its job process, both running this campaign's job file
        wait_for(lambda: len(_fio_pids(job, results)) >= 2, "fio and its job process")
    finally:
        _kill(proc)
    campaign = campaign_dir(results)
    wait_for(lambda: len(_fio_pids(job, results)) <= 1, "fio's main process to die with blkcmp")
    assert _fio_pids(job, results), "fio's job process outlives blkcmp (what cleanup is for)"
    assert len(leftovers(campaign)[0]) == 1

    out = run_cli("cleanup", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _fio_pids(job, results) == []
    assert_nothing_left(campaign)


def test_a_stop_signal_whose_exception_was_lost_still_stops_the_next_step():
    # Python drops an exception raised while it runs at-fork handlers (a Ctrl-C landing while
    # any short subprocess starts): the full suite lost one that way now and then, and the
    # campaign ran to its end with exit 0. The swallowing is played here by an `except`; the
    # run loop asks procs.raise_if_stopped before every run.
    from bench import procs

    def interrupt(signum: int) -> KeyboardInterrupt:
        return KeyboardInterrupt(f"signal {signum}")

    with procs.signals_raise(interrupt, procs.STOP_SIGNALS):
        procs.raise_if_stopped(interrupt)  # nothing arrived: nothing raised
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            pass  # what Python does to it inside fork()
        with pytest.raises(KeyboardInterrupt, match="signal 2"):
            procs.raise_if_stopped(interrupt)
    with procs.signals_raise(interrupt, procs.STOP_SIGNALS):
        procs.raise_if_stopped(interrupt)  # a new campaign starts clean
