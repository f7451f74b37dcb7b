"""`blkcmp cleanup` touches only what blkcmp started or created: fio processes recorded by pid and
start time (program name and exact command line for fio's job processes), never a process that
merely mentions a job file, nor a process that reuses a recorded pid; and the temporary
directories of the `fio --parse-only` check, which are recorded before they exist."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from conftest import campaign_dir, needs_root, run_cli, start_cli, wait_for, write_workload

from bench import ledger

pytestmark = needs_root

LONG = (
    "targets:\n  lp:\n    driver: loop\n    options: {size: 16}\n"
    "fio:\n  ioengine: psync\nrepetitions: 1\nruntime: 60\nramp_time: 0\n"
)


def fio_processes(argv_tail: str, under: Path) -> list[psutil.Process]:
    """Live processes named fio whose last argument ends with `argv_tail` and lies under `under`
    (this test's own: other sessions may run the same campaign on this machine meanwhile)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if (
                proc.info["name"] == "fio"
                and proc.info["cmdline"]
                and proc.info["cmdline"][-1].endswith(argv_tail)
                and proc.info["cmdline"][-1].startswith(f"{under}/")
                and proc.status() != psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def test_cleanup_kills_the_recorded_fio_and_spares_processes_that_mention_its_job(tmp_path, env):
    path = write_workload(tmp_path, LONG)
    results = tmp_path / "results"
    job_tail = "/.tmp-r001-p000-lp/job.fio"
    run = start_cli("run", path, "--results", results, "--quiet", env=env)
    bystanders = []
    try:
        wait_for(lambda: len(fio_processes(job_tail, results)) >= 2, "fio and its job process")
        main = min(fio_processes(job_tail, results), key=lambda p: p.create_time())
        argv = main.cmdline()
        job = Path(argv[-1])
        # Unrelated processes: one follows the job file, one has fio's exact command line but is
        # not fio (argv[0] set with exec -a).
        bystanders.append(subprocess.Popen(["tail", "-f", str(job)], stdout=subprocess.DEVNULL))
        bystanders.append(
            subprocess.Popen(["bash", "-c", 'exec -a "$0" sleep 300', *argv[:1]], stdout=subprocess.DEVNULL)
        )
        wait_for(
            lambda: all(psutil.Process(b.pid).cmdline()[:1] in (["tail"], [argv[0]]) for b in bystanders),
            "the bystanders to start",
        )
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=60)
        wait_for(lambda: len(fio_processes(job_tail, results)) <= 1, "fio's main process to die with blkcmp")
        orphans = fio_processes(job_tail, results)
        assert orphans, "fio's job process outlives blkcmp (what cleanup is for)"
        recorded = [e["data"] for e in ledger.resources().values() if e["kind"] == "processes"]
        assert len(recorded) == 1 and recorded[0]["argv"] == argv and recorded[0]["pid"] == main.pid
        assert recorded[0]["start"] == pytest.approx(main.create_time(), abs=0.01)

        out = run_cli("cleanup", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert fio_processes(job_tail, results) == []
        assert all(alive(b) for b in bystanders), "cleanup killed a process blkcmp did not start"
        assert not [e for e in ledger.resources().values() if e["kind"] == "processes"]
        assert run_cli("cleanup", env=env).stdout.strip() == "nothing to clean up"
        assert campaign_dir(results).is_dir()
    finally:
        if alive(run):
            run.kill()
            run.wait()
        for b in bystanders:
            b.kill()
            b.wait()


def test_a_reused_pid_or_another_program_is_never_killed(tmp_path, env):
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        start = psutil.Process(sleeper.pid).create_time()
        cases = [
            # the recorded fio is gone and its pid now belongs to another process
            {
                "what": "fio",
                "names": ["fio"],
                "argv": ["fio", "x.fio"],
                "after": time.time(),
                "pid": sleeper.pid,
                "start": start - 100,
            },
            # the pid and start time are right, but it is not fio
            {
                "what": "fio",
                "names": ["fio"],
                "argv": ["fio", "x.fio"],
                "after": time.time(),
                "pid": sleeper.pid,
                "start": start,
            },
        ]
        for record in cases:
            ledger.register("processes", record)
        # The recorder (this test) is alive: --force considers its entries too (state dir is ours).
        out = run_cli("cleanup", "--force", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.count("processes: ") == 2 and out.stdout.count(": removed") == 2, out.stdout
        assert alive(sleeper)
        assert ledger.resources() == {}
    finally:
        sleeper.kill()
        sleeper.wait()


def test_an_entry_whose_creator_pid_was_reused_counts_as_left_behind(tmp_path, env):
    # The creator's pid is alive but belongs to another process (its start time differs): the
    # entry is a leftover, removed without --force.
    leftover = tmp_path / "blkcmp-check-leftover"
    leftover.mkdir()
    rid = ledger.register("temp-dir", {"path": str(leftover)})
    path = ledger.state_dir() / "state.json"
    data = json.loads(path.read_text())
    data["resources"][rid]["pid_start"] -= 100
    path.write_text(json.dumps(data))
    out = run_cli("cleanup", env=env)
    assert (
        out.returncode == 0
        and out.stdout.strip() == f"temp-dir: {json.dumps({'path': str(leftover)})}: removed"
    )
    assert not leftover.exists()


def points_workload(points: int) -> str:
    return (
        "targets:\n  n: {driver: fio-null}\nfio: {ioengine: psync}\n"
        "matrix:\n  iodepth: [" + ", ".join(str(i) for i in range(1, points + 1)) + "]\n"
        "repetitions: 1\nruntime: 1\nramp_time: 0\n"
    )


# 120 points: the fio --parse-only check runs long enough to be killed in the middle of it.
MANY_POINTS = points_workload(120)


def test_the_fio_check_writes_no_temporary_directory(tmp_path, env):
    # `fio --parse-only` reads the jobs on its standard input: nothing for a SIGKILL to leave
    # behind. Watched from the side while `plan` checks 120 jobs.
    import threading

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    seen: set[str] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(p.name for p in tmp.iterdir())
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        out = run_cli("plan", write_workload(tmp_path, MANY_POINTS), env=dict(env, TMPDIR=str(tmp)))
    finally:
        done.set()
        watcher.join()
    assert out.returncode == 0, out.stderr
    assert not [name for name in seen if name.startswith("blkcmp-")], seen


def test_a_finished_check_leaves_no_temporary_directory(tmp_path, env):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    path = write_workload(tmp_path, points_workload(2))
    out = run_cli("plan", path, env=dict(env, TMPDIR=str(tmp)))
    assert out.returncode == 0, out.stderr
    out = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=dict(env, TMPDIR=str(tmp)))
    assert out.returncode == 0, out.stderr
    assert list(tmp.iterdir()) == [] and ledger.resources() == {}
