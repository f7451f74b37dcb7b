"""The slot loop of a campaign of several kernels, run on the host with the real fio.

The VM executor boots each boot slot of the plan in order and the guest runs only that slot's
runs (`blkcmp run --resume DIR --boot-slot K`).  Here the *boot* is a stand-in: it runs that same
guest command as a local process (with the guest's environment variables) against a loop device
and a file, instead of booting a kernel, and the two "kernels" are stand-ins for cached kernels
(both are this host's kernel).  Everything else is the real code: the plan, the campaign
directory, the slot loop with its skipping of finished slots, the crash handling (a guest killed
in the middle of a run), the resume across kernels and boots, the per-kernel environment records,
the records of every run and the index.  The real multi-boot path on two real kernels is covered
by the VM test (tests/test_vm_multikernel.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import REPO, needs_root, run_cli, write_workload

from bench import campaign as camp
from bench import env as env_mod
from bench import store, vm
from bench.errors import RunError, UsageError
from bench.executors import vm as vm_executor
from bench.multikernel import KernelChoice

pytestmark = needs_root

WORKLOAD = """name: mkrun
targets:
  common:
    options: {size: 16}
  lp:
    driver: loop
  fil:
    driver: file
fio:
  ioengine: psync
  direct: 0
matrix:
  rw: [randread]
  bs: [4k]
repetitions: 4
runtime: 1
ramp_time: 0
seed: 9
"""


class StandInBoot:
    """Runs the guest's command as a local process (no VM): the stand-in for vm_boot.  When
    `crash_slot` is booted, the guest is killed while its first run is in flight and the boot
    raises GuestCrashed, as a guest kernel dying mid-run does."""

    def __init__(self, env: dict, crash_slot: int | None = None):
        self.env = env
        self.crash_slot = crash_slot
        self.booted: list[tuple[str, int | None]] = []

    def __call__(self, kernel_spec, command, *, rw_dirs, timeout_s, console_log, boot_attempts, qemu_args=()):
        words = shlex.split(command.replace("/campaign", str(rw_dirs["/campaign"])))
        assert words[:3] == ["python3", "-m", "bench"], words
        slot = int(words[words.index("--boot-slot") + 1]) if "--boot-slot" in words else None
        self.booted.append((kernel_spec, slot))
        env = self.env | {
            "BLKCMP_VM_ACCEL": "tcg",
            "BLKCMP_VM_KERNEL": platform.release(),
            "PYTHONPATH": str(REPO),
        }
        argv = [sys.executable, *words[1:]]
        with open(console_log, "w") as console:
            proc = subprocess.Popen(
                argv, env=env, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
            )
            if slot == self.crash_slot:
                self.crash_slot = None  # once
                runs = Path(rw_dirs["/campaign"]) / "runs"
                deadline = time.monotonic() + 120
                while not list(runs.glob(".tmp-*")) and time.monotonic() < deadline:
                    time.sleep(0.05)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise vm.GuestCrashed(
                    "stand-in crash",
                    oops_line="stand-in: guest killed mid-run",
                    console_log=console_log,
                    boot_failures=(),
                )
            code = proc.wait(timeout=timeout_s)
        return SimpleNamespace(exit_code=code, boot_failures=()), "tcg"


def _stand_in_kernel(spec):
    return SimpleNamespace(release=platform.release(), bzimage=None, path=None, name=spec)


def test_the_slot_loop_runs_every_kernel_and_boot_and_resumes_after_a_crash(tmp_path, env, monkeypatch):
    monkeypatch.setattr(vm_executor, "_kernel", _stand_in_kernel)  # no kernel cache on the host
    path = write_workload(tmp_path, WORKLOAD)
    prepared = camp.prepare(path, kernels=["base", "slow"], boots=2)
    camp.check_with_fio(prepared)
    choices = [KernelChoice("base", "7.2"), KernelChoice("slow", "7.2-slow")]
    campaign = vm_executor.create_vm_campaign(prepared, tmp_path / "results", None, choices)
    plan = campaign.plan()
    assert sorted(plan.slots[:2]) == sorted(plan.slots[2:]) == ["base", "slow"]  # balanced blocks

    boot = StandInBoot(env, crash_slot=1)
    try:
        with pytest.raises(
            RunError, match=r"guest kernel crashed during run .*stand-in: guest killed mid-run"
        ):
            vm_executor.execute_in_vm(campaign, boot=boot)
        crashed = [r for r in store.run_rows(campaign) if r["status"] == "failed"]
        assert (
            len(crashed) == 1 and crashed[0]["boot_slot"] == 1 and crashed[0]["kernel_label"] == plan.slots[1]
        )
        assert list(campaign.runs_dir.glob("*.failed-1"))
        # --resume: slot 0 is done and not booted again; the crashed slot runs again, then the rest
        vm_executor.execute_in_vm(campaign, boot=boot)
    finally:
        run_cli("cleanup", "--force", env=env, timeout=120)
    specs = {"base": "7.2", "slow": "7.2-slow"}
    assert boot.booted == [(specs[plan.slots[0]], 0), (specs[plan.slots[1]], 1)] + [
        (specs[plan.slots[k]], k) for k in (1, 2, 3)
    ]
    rows = store.run_rows(campaign)
    done = [r for r in rows if r["status"] == "done"]
    assert len(done) == len(plan.runs) == 2 * 4 * 2
    host_boot = env_mod.boot_id()
    planned = {r.run_id: r for r in plan.runs}
    for row in done:
        meta = campaign.run_files(row["run_id"]).read_meta()
        run = planned[row["run_id"]]
        assert (meta["kernel_label"], meta["boot_slot"]) == (run.kernel, run.boot)
        assert (row["kernel_label"], row["boot_slot"], row["boot_id"]) == (run.kernel, run.boot, host_boot)
        assert meta["boot_id"] == host_boot and meta["kernel"] == platform.release()
    # every boot recorded with its kernel label and slot; one record per kernel
    boots = campaign.environment()["vm_boots"]
    assert [(b["kernel_label"], b["slot"]) for b in boots] == [(plan.slots[k], k) for k in (0, 1, 1, 2, 3)]
    assert [b["outcome"] for b in boots] == ["exit 0", "crashed during a run", "exit 0", "exit 0", "exit 0"]
    assert set(campaign.kernel_environments()) == {"base", "slow"}
    assert len(campaign.sessions()) == 5  # one target session per guest
    # nothing left to do: no boot
    before = len(boot.booted)
    vm_executor.execute_in_vm(campaign, boot=boot)
    assert len(boot.booted) == before

    # the comparisons work within the one campaign
    out = run_cli("compare", "--by", "gap", campaign.path, "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert "base" in json.dumps(doc) and "slow" in json.dumps(doc)
    out = run_cli("compare", "--by", "kernel", campaign.path, "--format", "csv")
    assert out.returncode == 0, out.stderr
    # export carries each run's kernel label, planned boot slot and boot id
    out = run_cli("export", campaign.path, "--format", "csv")
    assert out.returncode == 0, out.stderr
    exported = list(csv.DictReader(io.StringIO(out.stdout)))
    planned = {r.run_id: r for r in campaign.plan().runs}
    assert exported and all(
        (row["kernel_label"], int(row["boot_slot"]))
        == (planned[row["run_id"]].kernel, planned[row["run_id"]].boot)
        and len(row["boot_id"]) == 36
        for row in exported
    ), exported[:2]

    # a guest whose release is not the one its label ran on before is refused
    record = campaign.kernel_environment("base")
    record["kernel"]["release"] = "0.0.0-other"
    campaign.save_kernel_environment("base", record)
    with pytest.raises(
        UsageError, match=r"kernel base ran on 0\.0\.0-other in an earlier boot, this guest runs"
    ):
        vm_executor.record_guest_environment(campaign, plan.slots.index("base"))


def test_a_campaign_of_several_kernels_needs_its_boot_slot_in_the_guest(tmp_path, env, monkeypatch):
    monkeypatch.setattr(vm_executor, "_kernel", _stand_in_kernel)
    path = write_workload(tmp_path, WORKLOAD)
    prepared = camp.prepare(path, kernels=["base", "slow"], boots=1)
    campaign = vm_executor.create_vm_campaign(
        prepared, tmp_path / "results", None, [KernelChoice("base", "7.2"), KernelChoice("slow", "6.12")]
    )
    guest = env | {"BLKCMP_VM_ACCEL": "tcg", "BLKCMP_VM_KERNEL": platform.release()}
    out = run_cli("run", "--resume", campaign.path, env=guest)
    assert out.returncode == 2 and "give --boot-slot 0 to 1" in out.stderr, out.stderr
    # on the host, --kernel cannot change a campaign's kernels
    with pytest.raises(UsageError, match="resumes on its own kernels"):
        vm_executor.execute_in_vm(campaign, "7.2")
