"""The VM tier for NVMe (issue 14): QEMU-emulated NVMe controllers (workload `vm: {nvme: …}`,
bench.vm_nvme) under the test kernel's C nvme driver. A campaign on a namespace named by identity
(every run parsed, the identity and LBA format recorded), preconditioning with its steady-state
record, and re-binding the controller between runs with the original binding restored after the
campaign and, after a SIGKILL, by `blkcmp cleanup`. Without a Rust NVMe driver in the test
kernels, two targets re-binding the C driver to itself prove the mechanism.

Kept short (1 s runs, few rounds): every emulated boot costs CI minutes. TCG numbers prove the
machinery only; nothing here looks at how fast anything was.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import REPO, only_campaign, run_cli

from bench import vm, vm_nvme
from bench.executors import vm as vm_executor
from bench.workload import QemuNvme

pytestmark = pytest.mark.vm

VM_TIMEOUT = 1800
SERIAL = "blkcmp0001"

NVME_WORKLOAD = """
name: {name}
targets:
{targets}
vm: {{nvme: [{{serial: {serial}, size: 128MiB, namespaces: 1}}]}}
fio: {{ioengine: io_uring, direct: 1}}
matrix: {{rw: [randwrite], bs: [4k], iodepth: [8]}}
repetitions: {reps}
runtime: {runtime}
ramp_time: 0
seed: 5
{extra}"""

ONE_TARGET = f"""  ns:
    driver: nvme
    identity: {{serial: {SERIAL}, nsid: 1}}
    destructive: true"""

TWO_BINDINGS = f"""  c_first:
    driver: nvme
    identity: {{serial: {SERIAL}, nsid: 1}}
    destructive: true
    bind: nvme
  c_second:
    driver: nvme
    identity: {{serial: {SERIAL}, nsid: 1}}
    destructive: true
    bind: nvme"""

PRECONDITION = (
    "precondition: {purge: true, fills: 1, steady_state: "
    "{window: 3, max_rounds: 6, max_excursion: 1.0, max_slope_change: 1.0, band: 1.0}}\n"
)


def nvme_workload(tmp: Path, name: str, targets: str, *, reps=2, runtime=1, extra="") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        NVME_WORKLOAD.format(
            name=name, targets=targets, serial=SERIAL, reps=reps, runtime=runtime, extra=extra
        )
    )
    return path


def test_nvme_campaign_with_preconditioning_on_an_emulated_namespace(kernel_7_2, tmp_path):
    w = nvme_workload(tmp_path, "nvme", ONE_TARGET, extra=PRECONDITION)
    shm_before = set(vm_nvme.SHM.glob(f"{vm_nvme.PREFIX}*"))
    out = run_cli("run", str(w), "--kernel", "7.2", "--results", str(tmp_path / "res"), timeout=VM_TIMEOUT)
    assert out.returncode == 0, out.stderr
    assert set(vm_nvme.SHM.glob(f"{vm_nvme.PREFIX}*")) == shm_before, "backing files left in /dev/shm"
    camp = only_campaign(tmp_path / "res")
    rows = sqlite3.connect(camp / "index.sqlite").execute("SELECT run_id, status, iops FROM runs").fetchall()
    assert len(rows) == 2 and all(r[1] == "done" and r[2] > 0 for r in rows), rows
    for run_id, *_ in rows:
        run = json.loads((camp / "runs" / run_id / "run.json").read_text())
        target = run["target"]
        assert target["driver"] == "nvme"
        ident = target["identity"]
        assert ident["serial"] == SERIAL and ident["nsid"] == "1" and ident["model"].startswith("QEMU NVMe")
        assert ident["driver"] == "nvme" and ident["transport"] == "pcie" and ident["address"]
        assert int(ident["nr_hw_queues"]) >= 1
        assert f"filename={target['device']}" in (camp / "runs" / run_id / "job.fio").read_text()
        facts = target["nvme"]
        assert facts["nvme_cli"] == "ok", facts
        assert facts["lba_format"]["data_bytes"] == int(ident["logical_block_size"])
    record = json.loads((camp / "precondition.json").read_text())
    assert record["complete"] is True
    ns = record["targets"]["ns"]
    assert ns["purge"]["command"][:2] == ["nvme", "format"] and ns["purge"]["returncode"] == 0
    fill = json.loads((camp / "precondition" / "ns" / "fill-1.json").read_text())
    assert fill["jobs"][0]["write"]["io_bytes"] == 128 << 20
    assert ns["steady_state"]["steady"] is True and len(ns["steady_state"]["rounds"]) == 3
    environment = json.loads((camp / "environment.json").read_text())
    if environment["executor"]["accel"] == "tcg":
        assert "emulated (TCG)" in environment["executor"]["label"]


GUEST_REBIND = r"""
set -u
w=/work
ctrl=$(grep -l '^blkcmp0001 *$' /sys/class/nvme/nvme*/serial | head -1 | xargs dirname)
addr=$(cat $ctrl/address)
binding() { basename "$(readlink /sys/bus/pci/devices/$addr/driver)"; cat /sys/bus/pci/devices/$addr/driver_override; }
binding > $w/before
python3 -m bench run $w/rebind.yaml --results $w/res1 --quiet > $w/run1.log 2>&1; echo $? > $w/rc1
binding > $w/after_run
python3 -m bench run $w/long.yaml --results $w/res2 --quiet > $w/run2.log 2>&1 &
pid=$!
for i in $(seq 1 600); do ls $w/res2/*/runs/r0* >/dev/null 2>&1 && break; sleep 0.2; done
binding > $w/during
kill -9 $pid; wait $pid 2>/dev/null; sleep 1
python3 -m bench cleanup > $w/cleanup.txt 2>&1; echo $? > $w/rc_cleanup
binding > $w/after_cleanup
# the C driver scans namespaces asynchronously after a bind
for i in $(seq 1 150); do ls /sys/block | grep -q '^nvme' && break; sleep 0.2; done
ls /sys/block | grep -c '^nvme' > $w/namespaces_after
"""


def test_rebinding_between_runs_and_restore_after_campaign_and_sigkill(kernel_7_2, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    nvme_workload(work, "rebind", TWO_BINDINGS, reps=2)
    nvme_workload(work, "long", TWO_BINDINGS, reps=4, runtime=2)
    command = vm_executor.guest_command(
        GUEST_REBIND, accel=vm.detect_accel(), kernel_release=kernel_7_2.release
    )
    with vm_nvme.attached([QemuNvme(serial=SERIAL, size="128MiB")], "rebindtest") as qemu_args:
        result = vm.run_in_guest(
            kernel_7_2,
            command,
            rw_dirs={"/work": work, vm_executor.GUEST_CACHE: vm_executor.guest_cache_dir()},
            ro_dirs={"/blkcmp": REPO, "/kconfig": kernel_7_2.path},
            timeout_s=900,
            console_log=tmp_path / "console.log",
            qemu_args=qemu_args,
        )
    assert result.exit_code == 0

    def read(name: str) -> str:
        return (work / name).read_text().strip()

    assert read("before") == "nvme\n(null)"
    assert read("rc1") == "0", read("run1.log")
    camp = only_campaign(work / "res1")
    runs = sorted((camp / "runs").glob("r*/run.json"))
    assert len(runs) == 4
    order = [json.loads(p.read_text()) for p in runs]
    for run in order:
        assert run["status"] == "done" and run["target"]["bind"] == "nvme"
        assert run["target"]["identity"]["serial"] == SERIAL and run["target"]["identity"]["driver"] == "nvme"
    # one re-binding per target at setup (c_first, then c_second), then one whenever the
    # interleaved order hands the controller to the other target
    names = [r["run"]["target"] for r in sorted(order, key=lambda r: r["started"])]
    switches = sum(1 for a, b in zip(names, names[1:]) if a != b)
    assert max(r["target"]["rebinds"] for r in order) == 2 + (names[0] != "c_second") + switches
    assert read("after_run") == read("before"), "binding not restored after the campaign"
    assert read("during").splitlines()[1] == "nvme", "the override set while re-binding"
    assert read("rc_cleanup") == "0" and "nvme-binding" in read("cleanup.txt")
    assert read("after_cleanup") == read("before"), "cleanup did not restore the binding"
    assert read("namespaces_after") == "1"
