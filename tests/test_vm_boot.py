"""bench.vm: boot the test kernels for real and check what the guest sees.

Each kernel boots once for the main checks (everything is asked in one guest command and
written to a shared folder); the failure modes (no boot, hang, unmounted folder, early panic)
cost one boot each. A chance early crash and a crash after the start are tested where they
matter, on whole campaigns (test_vm_drivers.py). The probe test and the argument checks need
no kernel boot.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from bench import kernels, vm
from bench.errors import RunError, UsageError

# Everything the main boot wants to know, written into /results; then `exit 7`.
PROBE_COMMAND = r"""
out=/results
uname -r > $out/uname
[ -e /sys/kernel/config/nullb/features ] && echo yes > $out/nullb_features_exists
cat /sys/kernel/config/nullb/features > $out/nullb_features 2>/dev/null
if [ -e /sys/kernel/config/rnull/features ]; then cat /sys/kernel/config/rnull/features > $out/rnull_features; fi
udevadm settle 2>/dev/null
[ -b /dev/rnullb0 ] && echo yes > $out/rnullb0
[ -e /dev/nullb0 ] && echo yes > $out/nullb0_at_boot
cat /blkcmp/ro-input.txt > $out/ro_seen 2>&1
echo "written by the guest" > $out/hello.txt
echo guest-says-hello
exit 7
"""


def _qemu_pids_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _boot_checks(kernel: kernels.KernelInfo, tmp: Path) -> tuple[vm.GuestResult, Path]:
    results = tmp / "results"
    ro = tmp / "ro"
    results.mkdir()
    ro.mkdir()
    (ro / "ro-input.txt").write_text("from the host\n")
    res = vm.run_in_guest(
        kernel,
        PROBE_COMMAND,
        rw_dirs={"/results": results},
        ro_dirs={"/blkcmp": ro},
        timeout_s=600,
        console_log=tmp / "console.log",
    )
    return res, results


@pytest.fixture(scope="session")
def kernel_7_2():
    return kernels.build("7.2", progress=print)


@pytest.fixture(scope="session")
def boot_7_2(kernel_7_2, tmp_path_factory):
    return _boot_checks(kernel_7_2, tmp_path_factory.mktemp("boot-7.2"))


@pytest.fixture(scope="session")
def kernel_6_12():
    return kernels.build("6.12", progress=print)


@pytest.fixture(scope="session")
def boot_6_12(kernel_6_12, tmp_path_factory):
    return _boot_checks(kernel_6_12, tmp_path_factory.mktemp("boot-6.12"))


def _read(results: Path, name: str) -> str | None:
    p = results / name
    return p.read_text().strip() if p.exists() else None


# ----------------------------------------------------------------------------------------------
# No boot needed


def test_probe_boot_sector_runs_under_tcg():
    # The KVM probe's payload must itself be sound, or a working KVM would be reported as not.
    ok, detail = vm._probe("tcg")
    assert ok, detail


def test_detect_accel_answers_and_obeys_env(monkeypatch):
    assert vm.detect_accel() in ("kvm", "tcg")
    monkeypatch.setenv("BLKCMP_ACCEL", "tcg")
    assert vm.detect_accel() == "tcg"
    monkeypatch.setenv("BLKCMP_ACCEL", "hvf")
    with pytest.raises(UsageError):
        vm.detect_accel()


def test_guest_script_checks_every_folder():
    script = vm._guest_script(
        "abc123", "echo 'hi there'; exit 3", {"/results": Path("/tmp/r")}, {"/blkcmp": Path("/tmp/b")}
    )
    assert "/results/.blkcmp-mount-abc123" in script
    assert "/blkcmp/.blkcmp-mount-abc123" in script
    assert "touch /results/.blkcmp-mount-abc123.rw" in script
    assert "touch /blkcmp" not in script  # read-only folders are not written to
    # The checks come before the command.
    assert script.index(".blkcmp-mount-abc123") < script.index("hi there")


# ----------------------------------------------------------------------------------------------
# Linux 7.2


@pytest.mark.vm
def test_7_2_guest_sees_both_drivers(kernel_7_2, boot_7_2):
    res, results = boot_7_2
    assert _read(results, "uname") == kernel_7_2.release
    assert _read(results, "nullb_features_exists") == "yes"
    assert "irqmode" in _read(results, "nullb_features").split(",")
    assert _read(results, "rnull_features") == "blocksize,size,rotational,irqmode"
    assert _read(results, "rnullb0") is None  # 7.2's rnull creates no device by itself
    assert _read(results, "nullb0_at_boot") is None  # null_blk.nr_devices=0 was passed


@pytest.mark.vm
def test_7_2_shared_folders_and_exit_code(kernel_7_2, boot_7_2):
    res, results = boot_7_2
    assert res.exit_code == 7
    assert res.accel == vm.detect_accel(probe_kernel=kernel_7_2.bzimage)
    assert res.console_log.is_file() and res.console_log.stat().st_size > 0
    assert "guest-says-hello" in res.console_log.read_text(errors="replace")  # stdout reaches it
    assert _read(results, "hello.txt") == "written by the guest"
    assert _read(results, "ro_seen") == "from the host"
    # The nonce files are gone again.
    assert not [p for p in results.iterdir() if p.name.startswith(".blkcmp-mount")]


@pytest.mark.vm
def test_7_2_unmounted_folder_is_reported(kernel_7_2, tmp_path):
    # The mount point exists in the chroot on the host, but in the guest /proc is procfs, where
    # it cannot exist: virtme-ng's mount fails silently, as with a mount point missing from the
    # read-only root. The command must not run and the failure must be named.
    host = tmp_path / "shadowed"
    host.mkdir()
    # A name of its own: two test runs on one machine share the chroot.
    name = f"blkcmp-shadowed-{secrets.token_hex(4)}"
    try:
        with pytest.raises(RunError, match=rf"/proc/{name} is not mounted.*console"):
            vm.run_in_guest(
                kernel_7_2,
                "echo should-not-run > /tmp/ran; exit 0",
                rw_dirs={f"/proc/{name}": host},
                timeout_s=600,
                console_log=tmp_path / "c.log",
            )
        assert "should-not-run" not in (tmp_path / "c.log").read_text(errors="replace")
        assert not list(host.iterdir())
    finally:
        (kernels.chroot_dir() / "proc" / name).rmdir()


@pytest.mark.vm
def test_7_2_hang_is_killed(kernel_7_2, boot_7_2, tmp_path):
    # Long enough to boot (2.5 times what the first boot took), far too short for the command.
    marker = f"blkcmp.test={secrets.token_hex(6)}"
    timeout = max(45.0, 2.5 * boot_7_2[0].elapsed)
    with pytest.raises(RunError, match=r"guest hung.*console"):
        vm.run_in_guest(
            kernel_7_2,
            "sleep 100000",
            timeout_s=timeout,
            append=f"null_blk.nr_devices=0 {marker}",
            console_log=tmp_path / "c.log",
        )
    assert _qemu_pids_with(marker) == []


@pytest.mark.vm
def test_7_2_no_boot_within_timeout(kernel_7_2, tmp_path):
    # Nothing starts within 1 s: an early-boot failure, so it is tried three times (the
    # default), each attempt's console log kept, then reported.
    marker = f"blkcmp.test={secrets.token_hex(6)}"
    with pytest.raises(vm.BootFailed, match=r"did not boot in 3 attempts.*console") as err:
        vm.run_in_guest(kernel_7_2, "true", timeout_s=1, append=marker, console_log=tmp_path / "c.log")
    assert _qemu_pids_with(marker) == []
    assert [f.attempt for f in err.value.failures] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.glob("c.boot-failed-*.log")) == [
        "c.boot-failed-1.log",
        "c.boot-failed-2.log",
        "c.boot-failed-3.log",
    ]
    assert "had not started after 1 s" in err.value.reason


@pytest.mark.vm
def test_7_2_early_boot_panic_is_retried_then_named(kernel_7_2, tmp_path):
    # A root filesystem type that does not exist: the kernel panics before init, every time.
    with pytest.raises(vm.BootFailed) as err:
        vm.run_in_guest(
            kernel_7_2,
            "echo should-not-run",
            timeout_s=300,
            boot_attempts=2,
            append="null_blk.nr_devices=0 rootfstype=blkcmp-no-such-fs",
            console_log=tmp_path / "c.log",
        )
    msg = str(err.value)
    assert "\n" not in msg and "did not boot in 2 attempts" in msg
    assert err.value.oops_line.startswith("Kernel panic - not syncing")
    assert err.value.oops_line in msg
    assert len(err.value.failures) == 2
    for failure in err.value.failures:
        assert failure.console_log.is_file()
        assert "should-not-run" not in failure.console_log.read_text(errors="replace")


def test_oops_line_is_the_first_fatal_line(tmp_path):
    log = tmp_path / "console.log"
    log.write_text(
        "[    1.3] sched_clock: Marking stable\n"
        "[    1.326512] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\n"
        "[    1.327181] RIP: 0010:sched_clock_cpu+0x9/0x1f0\n"
        "[    1.4] Kernel panic - not syncing: Fatal exception in interrupt\n"
    )
    assert vm.oops_line(log) == "Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"
    log.write_text("ok\n[ 2.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n")
    assert vm.oops_line(log) == "Kernel panic - not syncing: VFS: Unable to mount root fs"
    log.write_text("a clean boot\n")
    assert vm.oops_line(log) is None


def test_boot_attempts_from_env(monkeypatch):
    monkeypatch.delenv("BLKCMP_BOOT_ATTEMPTS", raising=False)
    assert vm.boot_attempts_default() == 3
    monkeypatch.setenv("BLKCMP_BOOT_ATTEMPTS", "5")
    assert vm.boot_attempts_default() == 5
    monkeypatch.setenv("BLKCMP_BOOT_ATTEMPTS", "many")
    with pytest.raises(UsageError, match="BLKCMP_BOOT_ATTEMPTS"):
        vm.boot_attempts_default()


def test_bad_arguments(tmp_path):
    bz = tmp_path / "bzImage"
    with pytest.raises(UsageError):
        vm.run_in_guest(bz, "true", timeout_s=10, console_log=tmp_path / "c.log")


# ----------------------------------------------------------------------------------------------
# Linux 6.12: rnull is the fixed /dev/rnullb0, no configfs interface


@pytest.mark.vm
def test_6_12_guest_sees_both_drivers(kernel_6_12, boot_6_12):
    res, results = boot_6_12
    assert res.exit_code == 7
    assert _read(results, "uname") == kernel_6_12.release
    assert kernel_6_12.release.startswith("6.12.")
    assert _read(results, "nullb_features_exists") == "yes"
    assert _read(results, "rnull_features") is None
    assert _read(results, "rnullb0") == "yes"
    assert _read(results, "hello.txt") == "written by the guest"


@pytest.mark.vm
def test_6_12_entry(kernel_6_12):
    assert kernel_6_12.version == "6.12"
    assert kernel_6_12.source_package == "linux-source-6.12"
    for sym in kernels.REQUIRED_SYMBOLS:
        assert kernel_6_12.config[sym] == "y", sym
    assert os.path.getsize(kernel_6_12.bzimage) == kernel_6_12.bzimage_size


def test_kernel_accel_verdict_is_remembered_for_this_host_boot(tmp_path, monkeypatch):
    # A kernel probe under a KVM that hangs kernels costs its whole timeout: paid once per
    # host boot, not once per blkcmp process.
    monkeypatch.setenv("BLKCMP_CACHE", str(tmp_path))
    monkeypatch.delenv("BLKCMP_ACCEL", raising=False)
    key = str(tmp_path / "bzImage")
    assert vm._remembered_accel(key) is None
    vm._remember_accel(key, "tcg")
    assert vm._remembered_accel(key) == "tcg"
    monkeypatch.setattr(vm, "_accel_cache", {})
    (tmp_path / "bzImage").write_bytes(b"")
    assert vm.detect_accel(probe_kernel=tmp_path / "bzImage") == "tcg"  # no probe run
    # Another host boot: forgotten.
    monkeypatch.setattr(vm, "_host_boot_id", lambda: "another-boot")
    assert vm._remembered_accel(key) is None
