"""QEMU-emulated NVMe controllers for `run --kernel` (bench.vm_nvme), on the host: the options
blkcmp builds are accepted by the real QEMU (started paused with them, never booted: the VM tier
boots them, tests/test_vm_nvme.py), and the backing files exist only while attached, are
recorded before they exist, and are removed by `blkcmp cleanup` when a run was killed."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from bench import ledger, vm_nvme
from bench.workload import QemuNvme


def test_options_name_one_drive_and_namespace_per_file():
    ctrls = [QemuNvme(serial="blkcmp0001", size="64MiB", namespaces=2), QemuNvme(serial="b2", size="1GiB")]
    files = vm_nvme.backing_files(ctrls, "abcd1234", directory=vm_nvme.SHM)
    assert [[p.name for p in f] for f in files] == [
        ["blkcmp-nvme-abcd1234-blkcmp0001-n1.img", "blkcmp-nvme-abcd1234-blkcmp0001-n2.img"],
        ["blkcmp-nvme-abcd1234-b2-n1.img"],
    ]
    args = vm_nvme.qemu_args(ctrls, files)
    assert args[:2] == ["-device", "nvme,id=blkcmpnvme0,serial=blkcmp0001"]
    assert f"file={files[0][1]},if=none,format=raw,id=blkcmpnvm0n2" in args
    assert "nvme-ns,drive=blkcmpnvm0n2,bus=blkcmpnvme0,nsid=2" in args
    assert "nvme-ns,drive=blkcmpnvm1n1,bus=blkcmpnvme1,nsid=1" in args
    assert vm_nvme.size_bytes("64MiB") == 64 << 20 and vm_nvme.size_bytes("1GiB") == 1 << 30


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="QEMU is not installed")
def test_qemu_accepts_the_options_and_the_files_go_away(tmp_path, monkeypatch):
    monkeypatch.setenv("BLKCMP_STATE_DIR", str(tmp_path / "state"))
    ctrls = [QemuNvme(serial="blkcmp0001", size="16MiB", namespaces=2)]
    with vm_nvme.attached(ctrls, "t1", directory=tmp_path) as args:
        files = sorted(tmp_path.glob("blkcmp-nvme-*.img"))
        assert len(files) == 2 and all(f.stat().st_size == 16 << 20 for f in files)
        assert all(f.stat().st_blocks == 0 for f in files)  # sparse: no memory until written
        assert sorted(e["data"]["path"] for e in ledger.resources().values()) == [str(f) for f in files]
        # Paused (-S), no kernel: QEMU exits at once on an option or device it rejects, and runs
        # until the timeout when it has built the machine with both namespaces.
        qemu = subprocess.run(
            ["timeout", "3", "qemu-system-x86_64", "-accel", "tcg", "-M", "q35", "-display", "none"]
            + ["-nodefaults", "-S", "-monitor", "none", "-serial", "none", *args],
            capture_output=True,
            text=True,
        )
        assert qemu.returncode == 124, qemu.stderr
    assert not list(tmp_path.glob("blkcmp-nvme-*.img")) and ledger.resources() == {}


def test_cleanup_removes_backing_files_a_killed_run_left(tmp_path, monkeypatch):
    monkeypatch.setenv("BLKCMP_STATE_DIR", str(tmp_path / "state"))
    left = tmp_path / "blkcmp-nvme-dead-s-n1.img"
    left.write_bytes(b"x")
    ledger.register("nvme-backing-file", {"path": str(left)})
    report = ledger.cleanup(force=True)
    assert ("nvme-backing-file", f'{{"path": "{left}"}}', "removed") in report
    assert not left.exists()
    # a path that is not blkcmp's is never removed
    other = tmp_path / "precious.img"
    other.write_bytes(b"y")
    ledger.register("nvme-backing-file", {"path": str(other)})
    [(kind, _, outcome)] = ledger.cleanup(force=True)
    assert outcome.startswith("failed: ") and "not a blkcmp NVMe backing file" in outcome and other.exists()


def test_a_guest_is_given_time_for_preconditioning(tmp_path):
    from bench import precondition
    from bench.workload import load
    from tests.conftest import write_workload

    w = load(
        write_workload(
            tmp_path,
            "targets: {t: {driver: loop}}\nruntime: 1\nprecondition: {purge: true, fills: 2, "
            "steady_state: {max_rounds: 10}}\n",
        )
    )
    # per target: purge 120 s + 2 fills of 100 MiB at 10 MiB/s + 10 rounds of 21 s
    assert precondition.allowance_s(w, 2, 21, 100 << 20) == 2 * (120 + 20 + 210)
    assert (
        precondition.allowance_s(
            load(write_workload(tmp_path, "targets: {t: {driver: loop}}\n", "b.yaml")), 2, 21, 1
        )
        == 0
    )
