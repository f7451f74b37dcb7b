"""Targets available on any Linux host: a regular file, a loop device, and fio's null engine.

They make the whole pipeline testable without null_blk or rnull: `loop` is a real block device
with a real blk-mq queue (queue settings and the fairness audit apply to it), `file` exercises a
filesystem path, and `fio-null` measures fio's own overhead with no device at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import ledger
from bench.errors import RunError
from bench.targets import blockdev
from bench.targets.base import Availability, Device, Target

DEFAULT_SIZE_MIB = 256
DEFAULT_DIRECTORY = "/dev/shm"


def _backing_path(target: Target) -> Path:
    directory = Path(str(target.options.get("directory", DEFAULT_DIRECTORY)))
    return directory / f"{target.resource_name()}.img"


def _make_file(path: Path, size_mib: int) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size_mib * 1024 * 1024)


def _fs_type(path: Path) -> str:
    best, fstype = "", "?"
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if str(path).startswith(parts[1]) and len(parts[1]) > len(best):
            best, fstype = parts[1], parts[2]
    return fstype


@ledger.cleaner("file")
def _remove_file(data: dict) -> None:
    Path(data["path"]).unlink(missing_ok=True)


class FileTarget(Target):
    driver = "file"

    def probe(self) -> Availability:
        directory = _backing_path(self).parent
        if not directory.is_dir():
            return Availability(False, f"directory {directory} does not exist")
        if not os.access(directory, os.W_OK):
            return Availability(False, f"directory {directory} is not writable")
        need = int(self.options.get("size", DEFAULT_SIZE_MIB)) * 1024 * 1024
        if shutil.disk_usage(directory).free < need:
            return Availability(False, f"{directory} has less than {need >> 20} MiB free")
        return Availability(True, interface="regular file")

    def planned_filename(self) -> str:
        return str(_backing_path(self))

    def setup(self) -> Device:
        path = _backing_path(self)
        self._rid = ledger.register("file", {"path": str(path)})
        _make_file(path, int(self.options.get("size", DEFAULT_SIZE_MIB)))
        self.device = Device(str(path), {"size": f"{int(self.options.get('size', DEFAULT_SIZE_MIB))}M"})
        return self.device

    def describe(self) -> dict[str, Any]:
        path = _backing_path(self)
        return {
            "driver": self.driver,
            "path": str(path),
            "size_bytes": path.stat().st_size if path.exists() else None,
            "filesystem": _fs_type(path.parent),
        }

    def teardown(self) -> None:
        _backing_path(self).unlink(missing_ok=True)
        if getattr(self, "_rid", None):
            ledger.forget(self._rid)
            self._rid = None
        self.device = None


def _loops_of(backing: Path) -> list[str]:
    out = subprocess.run(["losetup", "-j", str(backing), "-O", "NAME", "-n"], capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


DETACH_WAIT_S = 10
# The kernel's rule for a loop device's sector size (blk_validate_block_size); kernels before
# 6.11 cap it at the page size instead, which losetup then reports at setup.
LOOP_MIN_BLOCK, LOOP_MAX_BLOCK = 512, 65536


def _detach(backing: Path) -> None:
    # `losetup -d` of a device someone still has open (udev probing it after fio closed it, a
    # fio process still exiting) only marks it autoclear: it goes when the last user closes it.
    deadline = time.monotonic() + DETACH_WAIT_S
    while True:
        for dev in _loops_of(backing):
            subprocess.run(["losetup", "-d", dev], capture_output=True, text=True)
        left = _loops_of(backing)
        if not left:
            return
        if time.monotonic() > deadline:
            raise RunError(f"cannot detach loop device(s) {', '.join(left)} backed by {backing}")
        time.sleep(0.1)


@ledger.cleaner("loop")
def _remove_loop(data: dict) -> None:
    backing = Path(data["backing"])
    if backing.exists():
        _detach(backing)
    backing.unlink(missing_ok=True)


class LoopTarget(Target):
    driver = "loop"

    def probe(self) -> Availability:
        if shutil.which("losetup") is None:
            return Availability(False, "losetup is not installed (util-linux)")
        if os.geteuid() != 0:
            return Availability(False, "loop devices need root")
        if not Path("/dev/loop-control").exists():
            return Availability(False, "/dev/loop-control missing: no loop driver in this kernel")
        backing = FileTarget.probe(self)  # same backing-file checks
        return Availability(True, interface="losetup") if backing.ok else backing

    def kernel_problems(self) -> list[str]:
        size = self.options.get("blocksize")
        if size is None or (
            LOOP_MIN_BLOCK <= int(size) <= LOOP_MAX_BLOCK and int(size) & (int(size) - 1) == 0
        ):
            return []
        return [
            f"target {self.name}: loop devices take a blocksize (logical sector size) that is a "
            f"power of two from {LOOP_MIN_BLOCK} to {LOOP_MAX_BLOCK}, not {size}"
        ]

    def setup(self) -> Device:
        backing = _backing_path(self)
        self._rid = ledger.register("loop", {"backing": str(backing)})
        _make_file(backing, int(self.options.get("size", DEFAULT_SIZE_MIB)))
        cmd = ["losetup", "--find", "--show"]
        if "blocksize" in self.options:
            cmd += ["--sector-size", str(self.options["blocksize"])]
        if self.options.get("direct_io"):
            cmd += ["--direct-io=on"]
        out = subprocess.run(cmd + [str(backing)], capture_output=True, text=True)
        if out.returncode != 0:
            raise RunError(f"target {self.name}: losetup failed: {out.stderr.strip()}")
        dev = out.stdout.strip()
        ledger.update(self._rid, {"device": dev})
        settle()
        blockdev.require_safe(dev)
        self.applied_queue = blockdev.apply_queue(dev, self.queue)
        self.device = Device(dev, {}, block_device=dev)
        return self.device

    def describe(self) -> dict[str, Any]:
        if not self.device:
            return {"driver": self.driver}
        dev = self.device.block_device
        name = blockdev.disk_name(dev)
        loop = Path("/sys/block") / name / "loop"
        return {
            "driver": self.driver,
            "device": dev,
            "backing_file": _read(loop / "backing_file"),
            # Which incarnation of the backing file: a target re-created before every run
            # (recreate: run) shows a new one per run.
            "backing_inode": _inode(_backing_path(self)),
            "direct_io": _read(loop / "dio"),
            "audit": blockdev.audit(dev) | {"completion": "loop worker"},
        }

    def teardown(self) -> None:
        backing = _backing_path(self)
        if backing.exists():
            _detach(backing)
        backing.unlink(missing_ok=True)
        if getattr(self, "_rid", None):
            ledger.forget(self._rid)
            self._rid = None
        self.device = None


def settle() -> None:
    """Wait for udev to create device nodes, where there is a udev."""
    if shutil.which("udevadm"):
        subprocess.run(["udevadm", "settle", "--timeout=10"], capture_output=True)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


class FioNullTarget(Target):
    driver = "fio-null"

    def probe(self) -> Availability:
        return Availability(True, interface="fio ioengine=null")

    def planned_filename(self) -> str | None:
        return None

    def setup(self) -> Device:
        size = int(self.options.get("size", 1024))
        self.device = Device(None, {"ioengine": "null", "size": f"{size}M"})
        return self.device

    def describe(self) -> dict[str, Any]:
        return {"driver": self.driver, "ioengine": "null", "size_mib": int(self.options.get("size", 1024))}

    def teardown(self) -> None:
        self.device = None
