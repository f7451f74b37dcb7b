"""The VM tier: real campaigns on the guest kernel's null_blk and rnull (7.2, and 6.12).

Each kernel is built (or taken from the cache) by the fixtures, then booted under QEMU; TCG
numbers prove the machinery only, so nothing here looks at how fast anything was — only at what
ran, on which devices, with which settings, and what is left afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import REPO, only_campaign, run_cli

from bench import kernels, vm
from bench.executors import vm as vm_executor

pytestmark = pytest.mark.vm

VM_TIMEOUT = 1800  # a campaign inside a TCG guest, boots included
VERSIONS = ["7.2", "6.12"]

MATCHED = """
name: {name}
targets:
  common:
    options: {{blocksize: 4096, size: 4096, irqmode: 0, hw_queue_depth: 256, submit_queues: 1, poll_queues: 0}}
    queue: {{scheduler: none, nomerges: 0, rq_affinity: 1}}
  c:
    driver: null_blk
    options: {c_options}
  rust:
    driver: rnull
    options: {rust_options}
{extra_targets}fio: {{ioengine: io_uring, direct: 1, norandommap: 1, random_generator: lfsr}}
matrix:
  rw: [randread]
  bs: [4k]
  iodepth: {iodepths}
repetitions: {reps}
runtime: {runtime}
ramp_time: 0
seed: 3
"""


def workload(
    tmp: Path,
    name: str = "vmtest",
    *,
    c_options: str = "{}",
    rust_options: str = "{}",
    iodepths: str = "[1, 8]",
    reps: int = 2,
    runtime: int = 1,
    extra_targets: str = "",
) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        MATCHED.format(
            name=name,
            c_options=c_options,
            rust_options=rust_options,
            iodepths=iodepths,
            reps=reps,
            runtime=runtime,
            extra_targets=extra_targets,
        )
    )
    return path


@pytest.fixture(scope="session", params=VERSIONS)
def kernel(request) -> kernels.KernelInfo:
    return kernels.build(request.param, progress=print)


def check_driver_campaign(camp: Path, kernel: kernels.KernelInfo, runs: int) -> dict:
    """What every campaign on null_blk vs rnull must show, however it was started."""
    db = sqlite3.connect(camp / "index.sqlite")
    rows = db.execute("SELECT run_id, target, status, iops, total_ios FROM runs").fetchall()
    assert len(rows) == runs
    assert all(r[2] == "done" and r[3] > 0 and r[4] > 0 for r in rows), rows
    assert {"c", "rust"} <= {r[1] for r in rows}
    # Every run was parsed from the guest's raw fio output, and ran on the device it names.
    drivers = {"c": "null_blk", "rust": "rnull", "c_again": "null_blk"}
    for run_id, target, *_ in rows:
        run = json.loads((camp / "runs" / run_id / "run.json").read_text())
        job = (camp / "runs" / run_id / "job.fio").read_text()
        assert f"filename={run['target']['device']}" in job
        assert run["target"]["driver"] == drivers[target]
    # Both devices existed, with equal audited settings.
    session = json.loads((camp / "targets.json").read_text())[-1]["targets"]
    assert session["c"]["driver"] == "null_blk" and session["rust"]["driver"] == "rnull"
    # Equal wherever both have the setting: null_blk has driver attributes rnull lacks.
    shared = session["c"]["audit"].keys() & session["rust"]["audit"].keys()
    assert {k: session["c"]["audit"][k] for k in shared} == {k: session["rust"]["audit"][k] for k in shared}
    if kernel.version == "7.2":  # the attributes both drivers have are read back and compared
        assert {"attr.blocksize", "attr.size", "attr.irqmode", "attr.rotational"} <= shared
    audit = session["c"]["audit"]
    assert audit["logical_block_size"] == "4096" and audit["nr_hw_queues"] == "1"
    assert audit["scheduler"] == "none" and audit["nr_tags"] == "256"
    assert audit["capacity_bytes"] == str(4096 * 2**20) and audit["completion"] == "inline"
    expected_interface = "configfs" if kernel.version == "7.2" else "fixed /dev/rnullb0"
    assert session["rust"]["interface"] == expected_interface
    environment = json.loads((camp / "environment.json").read_text())
    assert environment["kernel"]["release"] == kernel.release
    assert environment["kernel"]["config_symbols"]["CONFIG_BLK_DEV_RUST_NULL"] == "y"
    return environment


AA_PARTNER = "  c_again:\n    driver: null_blk\n    options: {c_options}\n"


def test_campaign_on_both_drivers(kernel_7_2, tmp_path):
    # Through the VM executor, with a second null_blk target: besides the C-vs-Rust checks,
    # c_again vs c is an A/A comparison that must find no difference. (6.12's campaign checks
    # run inside its lifecycle boot below: one boot each saved.)
    kernel = kernel_7_2
    w = workload(tmp_path, iodepths="[8]", reps=6, extra_targets=AA_PARTNER.format(c_options="{}"))
    out = run_cli(
        "run",
        str(w),
        "--kernel",
        kernel.version,
        "--results",
        str(tmp_path / "res"),
        "--quiet",
        timeout=VM_TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    camp = only_campaign(tmp_path / "res")
    environment = check_driver_campaign(camp, kernel, runs=3 * 6)
    # The environment is the guest's, labelled as what it is.
    assert environment["executor"]["kind"] == "vm"
    if environment["executor"]["accel"] == "tcg":
        assert environment["executor"]["emulated"] is True
        assert "emulated (TCG)" in environment["executor"]["label"]
    assert (camp / "host-environment.json").exists()
    assert (camp / "logs" / "console-01.log").stat().st_size > 0
    # The boot is recorded with the attempts it took.
    [boot] = environment["vm_boots"]
    assert boot["console_log"] == "logs/console-01.log" and boot["outcome"] == "exit 0"
    assert all((camp / f["console_log"]).is_file() for f in boot["failed_boots"])
    # A/A: alpha 0.01 keeps this test's own false-failure rate at 1 % (an A/A test at alpha
    # 0.05 fails one time in twenty by design); the verdict rule is the same.
    res = run_cli("compare", str(camp), "--format", "json", "--alpha", "0.01", timeout=VM_TIMEOUT)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    aa = [
        p["verdict"]["verdict"]
        for c in doc["comparisons"]
        if c["candidate"] == "c_again"
        for p in c["points"]
    ]
    assert aa and all(v in ("equivalent", "inconclusive") for v in aa), aa
    # A finished VM campaign resumes to a no-op: nothing re-run, no guest booted.
    again = run_cli("run", "--resume", str(camp), timeout=VM_TIMEOUT)
    assert again.returncode == 0, again.stderr
    assert "nothing to boot" in again.stdout
    assert len(list((camp / "runs").iterdir())) == 18
    assert not (camp / "logs" / "console-02.log").exists()


def test_chance_boot_failure_and_a_crash_during_a_run(kernel_7_2, tmp_path):
    # One campaign, both kinds of guest failure (one scenario saves two emulated boots):
    # 1. the first boot dies before blkcmp starts (test hook: a sysrq crash in early user
    #    space) — retried, and the retry recorded;
    # 2. the second boot's guest kernel dies while a run is in flight — not retried: the run
    #    is recorded as failed with the oops line, the campaign stops; --resume completes it.
    counter = tmp_path / "crash-boots"
    counter.write_text("1")
    env = dict(
        os.environ, **{vm.TEST_CRASH_BOOTS_ENV: str(counter), vm_executor.TEST_CRASH_DURING_RUN_ENV: "1"}
    )
    w = workload(tmp_path, iodepths="[1]", reps=1)
    out = run_cli(
        "run", str(w), "--kernel", "7.2", "--results", str(tmp_path / "res"), env=env, timeout=VM_TIMEOUT
    )
    assert out.returncode == 1, out.stderr
    assert counter.read_text() == "0"
    [line] = [ln for ln in out.stderr.splitlines() if ln.startswith("blkcmp: error:")]
    assert "guest kernel crashed during run" in line and "sysrq" in line.lower()
    camp = only_campaign(tmp_path / "res")
    db = sqlite3.connect(camp / "index.sqlite")
    failed = db.execute("SELECT run_id, error FROM runs WHERE status='failed'").fetchall()
    assert len(failed) == 1 and "guest kernel crashed during this run" in failed[0][1]
    kept = json.loads((camp / "runs" / f"{failed[0][0]}.failed-1" / "run.json").read_text())
    assert kept["guest_crash"]["console_log"] == "logs/console-01.log"
    environment = json.loads((camp / "environment.json").read_text())
    assert environment["kernel"]["release"] == kernel_7_2.release  # the guest's record survived
    [boot] = environment["vm_boots"]
    assert boot["outcome"] == "crashed during a run"
    # The early failure was retried once, its console log kept; the crash after the start was
    # not retried (no second failed boot).
    [early] = boot["failed_boots"]
    assert early["attempt"] == 1 and "sysrq" in early["reason"].lower()
    assert early["console_log"] == "logs/console-01.boot-failed-1.log"
    assert (camp / early["console_log"]).is_file()
    assert not (camp / "logs" / "console-01.boot-failed-2.log").exists()
    # Resume (no hooks this time) runs what is left, the crashed run again included, and the
    # boot starts at the first attempt.
    again = run_cli("run", "--resume", str(camp), "--quiet", timeout=VM_TIMEOUT)
    assert again.returncode == 0, again.stderr
    statuses = [r[0] for r in db.execute("SELECT status FROM runs")]
    assert statuses == ["done", "done"]
    boots = json.loads((camp / "environment.json").read_text())["vm_boots"]
    assert len(boots) == 2 and boots[1]["outcome"] == "exit 0" and boots[1]["failed_boots"] == []
    # The report says so.
    report = run_cli("report", str(camp), "--out", str(tmp_path / "report"), timeout=VM_TIMEOUT)
    assert report.returncode == 0, report.stderr
    text = " ".join((tmp_path / "report" / "report.txt").read_text().split())
    assert "guest kernel crashed during run" in text


def test_mismatched_pair_is_refused_before_any_run(kernel_7_2, tmp_path):
    # Through the VM executor (the guest's refusal reaches the host as exit 2); the other
    # refusals are checked inside each kernel's lifecycle boot below, to save boots.
    kernel = kernel_7_2
    w = workload(tmp_path, c_options="{blocksize: 512}", rust_options="{}")
    out = run_cli(
        "run",
        str(w),
        "--kernel",
        kernel.version,
        "--results",
        str(tmp_path / "res"),
        "--quiet",
        timeout=VM_TIMEOUT,
    )
    assert out.returncode == 2
    assert "logical_block_size: c=512, rust=4096" in out.stderr
    errors = [l for l in out.stderr.splitlines() if "error:" in l]
    assert len(errors) == 1 and "Traceback" not in out.stderr, out.stderr
    camp = only_campaign(tmp_path / "res")
    assert list((camp / "runs").iterdir()) == []


def test_what_the_guest_kernel_refuses_leaves_results_untouched(kernel_7_2, tmp_path):
    # Checked on the host from the drivers the kernel's smoke boot recorded, before the
    # campaign directory is created (issue 9: nothing written for bad input).
    w = workload(tmp_path, rust_options="{memory_backed: 1}")
    out = run_cli(
        "run", str(w), "--kernel", "7.2", "--results", str(tmp_path / "res"), "--quiet", timeout=VM_TIMEOUT
    )
    assert out.returncode == 2, out.stderr
    [line] = [ln for ln in out.stderr.splitlines() if "error:" in ln]
    assert f"target rust: on kernel {kernel_7_2.release}" in line and "memory_backed" in line
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())
    assert kernels.driver_facts(kernel_7_2)["rnull"]["interface"] == "configfs"


GUEST_LIFECYCLE = r"""
set -u
w=/work
ls_all() {  # configfs entries and block devices of both drivers
  { ls /sys/kernel/config/nullb/ 2>/dev/null | grep -v features; ls /sys/kernel/config/rnull/ 2>/dev/null | grep -v features; ls /sys/block | grep -E '^(nullb|rnullb)'; } | sort | tr '\n' ' '
}
sched() { cat /sys/block/rnullb0/queue/scheduler 2>/dev/null | tr -d '\n'; }
sched > $w/sched_before
ls_all > $w/before
python3 -m bench run $w/short.yaml --results $w/res1 --quiet > $w/run1.log 2>&1; echo $? > $w/rc1
ls_all > $w/after_run
sched > $w/sched_after_run
python3 -m bench run $w/long.yaml --results $w/res2 --quiet > $w/run2.log 2>&1 &
pid=$!
for i in $(seq 1 600); do ls $w/res2/*/runs/r0* >/dev/null 2>&1 && break; sleep 0.2; done
ls_all > $w/during
kill -9 $pid; wait $pid 2>/dev/null; sleep 1
ls_all > $w/after_kill
python3 -m bench cleanup > $w/cleanup.txt 2>&1; echo $? > $w/rc_cleanup
ls_all > $w/after_cleanup
sched > $w/sched_after_cleanup
python3 -m bench cleanup > $w/cleanup2.txt 2>&1; echo $? > $w/rc_cleanup2
python3 -m bench run $w/mismatch.yaml --results $w/res3 --quiet > $w/mismatch.txt 2>&1; echo $? > $w/rc_mismatch
python3 -m bench run $w/unsupported.yaml --results $w/res4 --quiet > $w/unsupported.txt 2>&1; echo $? > $w/rc_unsupported
ls $w/res3/*/runs $w/res4/*/runs > $w/refused_runs 2>&1
ls_all > $w/after_refusals
python3 -m bench targets > $w/targets.txt 2>&1
"""


def test_teardown_and_cleanup_after_sigkill(kernel, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    workload(work, "short")
    workload(work, "long", reps=3, runtime=3)
    workload(work, "mismatch", c_options="{blocksize: 512}")
    workload(
        work, "unsupported", rust_options="{irqmode: 2}" if kernel.version == "6.12" else "{memory_backed: 1}"
    )
    command = vm_executor.guest_command(
        GUEST_LIFECYCLE, accel=vm.detect_accel(), kernel_release=kernel.release
    )
    result = vm.run_in_guest(
        kernel,
        command,
        rw_dirs={"/work": work, vm_executor.GUEST_CACHE: vm_executor.guest_cache_dir()},
        ro_dirs={"/blkcmp": REPO, "/kconfig": kernel.path},
        timeout_s=900,
        console_log=tmp_path / "console.log",
    )
    assert result.exit_code == 0

    def read(name: str) -> str:
        return (work / name).read_text().strip()

    assert read("rc1") == "0", read("run1.log")
    # The first campaign, run by blkcmp inside the guest, is this kernel's C-vs-Rust check.
    check_driver_campaign(only_campaign(work / "res1"), kernel, runs=2 * 2 * 2)
    fixed = kernel.version == "6.12"  # 6.12's rnullb0 is built in: it stays, blkcmp only tunes it
    baseline = "rnullb0" if fixed else ""
    assert read("before") == baseline
    assert read("after_run") == baseline, "devices left behind after a finished campaign"
    during = read("during").split()
    assert any(d.startswith("nullb") for d in during), during
    assert read("after_kill") == read("during"), "SIGKILL should leave the devices for cleanup"
    assert read("rc_cleanup") == "0", read("cleanup.txt")
    assert "removed" in read("cleanup.txt")
    assert read("after_cleanup") == baseline, "cleanup left devices or configfs entries"
    assert read("cleanup2.txt") == "nothing to clean up"
    if fixed:  # the fixed device's queue settings are restored on teardown and by cleanup
        assert read("sched_after_run") == read("sched_before")
        assert read("sched_after_cleanup") == read("sched_before")
    # Refusals inside the guest: before any fio run, leaving nothing behind.
    assert read("rc_mismatch") == "2" and "logical_block_size: c=512, rust=4096" in read("mismatch.txt")
    assert read("rc_unsupported") == "2"
    expected = "rnull cannot honour irqmode=2" if fixed else "rnull cannot honour memory_backed=1"
    assert expected in read("unsupported.txt"), read("unsupported.txt")
    assert "r001" not in read("refused_runs")
    assert read("after_refusals") == baseline
    targets = read("targets.txt")
    assert "null_blk  available (configfs" in targets
    assert (
        "rnull     available (fixed /dev/rnullb0)" if fixed else "rnull     available (configfs)"
    ) in targets


def test_targets_on_a_test_kernel(kernel_7_2):
    # Through `--kernel` (one boot); 6.12's listing is checked inside its lifecycle boot.
    out = run_cli("targets", "--kernel", "7.2", timeout=900)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"kernel {kernel_7_2.release}"
    assert "null_blk  available (configfs" in out.stdout
    assert "rnull     available (configfs)" in out.stdout
    assert "irqmode" in out.stdout and "hw_queue_depth (fixed 256)" in out.stdout
