"""`driver: blockdev`: a whole block device that already exists (a user's disk), named by
identity, read by any workload, written only when the refusal policy allows it.

Device names move between boots (sda and sdb, nvme0n1 and nvme1n1 swap), so a device is named
by `/dev/disk/by-id/…` or by the identity the workload gives (wwn, serial, model, size_bytes;
backing_file for a loop device), matched against what sysfs says. Writing needs
`destructive: true`, an identity that singles the device out and matches it, and a device that
passes bench.targets.blockdev.write_refusals — checked when the workload is checked, at setup,
and again before every fio run, so a device that became unsafe between runs stops the campaign
before its next write.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any, ClassVar

from bench import ledger
from bench.errors import RunError, UsageError, shorten
from bench.targets import blockdev
from bench.targets.base import Availability, Device, Target
from bench.targets.blockdev import Refusal


class ExistingBlockDevice(Target):
    driver = "blockdev"

    # set by accept_spec (build_targets always calls it)
    device_path: str | None = None
    wanted: ClassVar[dict[str, str]] = {}  # replaced per instance by accept_spec
    destructive = False
    allow_signatures: frozenset[str] = frozenset()
    writes = False

    def accept_spec(self, spec, writes: bool) -> None:
        self.device_path = spec.device
        self.wanted = {
            k: str(v)
            for k, v in (spec.identity.model_dump(exclude_none=True) if spec.identity else {}).items()
        }
        self.destructive = spec.destructive
        self.allow_signatures = frozenset(spec.allow_signatures)
        self.writes = writes

    # -- finding the device -----------------------------------------------------------------
    def _where(self) -> str:
        prefix = f"{self.context.source}: " if self.context.source else ""
        return f"{prefix}target {self.name}"

    def resolve(self) -> str:
        """The whole disk (/dev/NAME) the workload names; UsageError if none or several."""
        if self.device_path is not None:
            try:
                st = os.stat(self.device_path)
            except OSError as exc:
                raise UsageError(
                    f"{self._where()}: device {shorten(self.device_path)}: {exc.strerror} "
                    "(name an existing whole block device)"
                ) from None
            if not stat.S_ISBLK(st.st_mode):
                raise UsageError(
                    f"{self._where()}: {shorten(self.device_path)} is not a block device "
                    "(name a whole block device)"
                )
            name = blockdev.disk_name(self.device_path)
            if not (blockdev.SYS_BLOCK / name).exists():
                raise UsageError(
                    f"{self._where()}: {shorten(self.device_path)} is a partition ({name}); "
                    "name the whole disk"
                )
            return f"/dev/{name}"
        matching = [
            dev
            for dev in blockdev.whole_disks()
            if not blockdev.identity_mismatches(self.wanted, blockdev.identity(dev))
        ]
        given = ", ".join(f"{k}={shorten(v)}" for k, v in self.wanted.items())
        if not matching:
            raise UsageError(
                f"{self._where()}: no block device here has identity {given} "
                "(`blkcmp targets` lists the devices and their identities)"
            )
        if len(matching) > 1:
            raise UsageError(
                f"{self._where()}: {len(matching)} block devices match identity {given} "
                f"({', '.join(matching)}); add serial or wwn"
            )
        return matching[0]

    def refusals(self, dev: str, writes: bool) -> list[Refusal]:
        """Why blkcmp will not run this target's jobs on `dev` now (empty: it may)."""
        found: list[Refusal] = []
        mismatches = blockdev.identity_mismatches(self.wanted, blockdev.identity(dev))
        if mismatches:
            found.append(
                Refusal(
                    "identity-mismatch",
                    f"{dev} is not the device the workload names ({'; '.join(mismatches)})",
                    "correct identity: or device: (`blkcmp targets` shows both)",
                )
            )
        if not writes:
            return found
        if not self.destructive:
            found.append(
                Refusal(
                    "not-destructive",
                    "the workload writes to it (an rw other than read/randread) "
                    "without destructive: true on the target",
                    "add destructive: true if all its data may be lost, or only read",
                )
            )
        if not any(k in self.wanted for k in blockdev.UNIQUE_IDENTITY_KEYS):
            found.append(
                Refusal(
                    "no-identity",
                    "writing needs the device's identity",
                    "add identity: with its wwn or serial (backing_file for a loop device)",
                )
            )
        return found + blockdev.write_refusals(dev, self.allow_signatures)

    def refusal_line(self, dev: str, refusals: list[Refusal]) -> str:
        what = "write to" if any(r.code != "identity-mismatch" for r in refusals) else "use"
        return f"{self._where()}: refusing to {what} {dev}: " + "; ".join(r.line() for r in refusals)

    # -- lifecycle ---------------------------------------------------------------------------
    def probe(self) -> Availability:
        # A device the workload names but that is not here (or not what it says) is an error
        # of the workload (kernel_problems), never a target silently left out of the campaign.
        if shutil.which("blkid") is None:
            return Availability(False, "blkid is not installed (util-linux): signatures cannot be checked")
        if os.geteuid() != 0:
            return Availability(False, "existing block devices need root")
        return Availability(True, interface="existing block device")

    def kernel_problems(self) -> list[str]:
        # Checked with the workload, before the campaign directory exists (exit 2, nothing written).
        try:
            dev = self.resolve()
        except UsageError as exc:
            return [str(exc)]
        refusals = self.refusals(dev, self.writes)
        return [self.refusal_line(dev, refusals)] if refusals else []

    def recorded_kernel_problems(self, drivers, release: str) -> list[str]:
        return [
            (
                f"target {self.name}: driver blockdev names a device of this host; "
                "it cannot run inside a test kernel's VM"
            )
        ]

    def planned_filename(self) -> str:
        return self.device.filename if self.device else (self.device_path or "${BLKCMP_FILENAME}")

    def setup(self) -> Device:
        dev = self.resolve()
        refusals = self.refusals(dev, self.writes)
        if refusals:
            raise UsageError(self.refusal_line(dev, refusals))
        self.found_identity = blockdev.identity(dev)
        self.overridden = sorted(set(blockdev.signatures(dev)[0]) & self.allow_signatures)
        # The device outlives blkcmp: its queue settings are restored on teardown (and by
        # `blkcmp cleanup` after a SIGKILL, through the ledger's queue-restore entry).
        saved = blockdev.save_queue(dev, self.queue)
        self._rid = ledger.register("queue-restore", {"device": dev, "saved": saved})
        self._saved = saved
        self.applied_queue = blockdev.apply_queue(dev, self.queue)
        self.device = Device(dev, {}, block_device=dev)
        return self.device

    def check_before_run(self, writes: bool) -> None:
        if not self.device:
            raise RunError(f"{self._where()}: not set up")
        dev = self.device.block_device
        if not Path(dev).exists() or (
            self.device_path and blockdev.disk_name(self.device_path) != blockdev.disk_name(dev)
        ):
            raise RunError(
                f"{self._where()}: {self.device_path or dev} no longer leads to {dev} "
                "(the device went away or was renamed); check it, then --resume"
            )
        refusals = self.refusals(dev, writes)
        if refusals:
            raise RunError(self.refusal_line(dev, refusals) + "; fix it, then --resume")

    def describe(self) -> dict[str, Any]:
        if not self.device:
            return {"driver": self.driver, "named": self.device_path, "identity_wanted": self.wanted}
        dev = self.device.block_device
        return {
            "driver": self.driver,
            "device": dev,
            "named": self.device_path,
            "identity_wanted": self.wanted,
            "identity": blockdev.identity(dev),
            "destructive": self.destructive,
            "writes": self.writes,
            "allowed_signatures": sorted(self.allow_signatures),
            "overridden": [f"signature {kind}" for kind in getattr(self, "overridden", [])],
            "audit": blockdev.audit(dev) | {"completion": "device"},
        }

    def teardown(self) -> None:
        if getattr(self, "_rid", None) is None:
            self.device = None
            return
        if self.device and Path(self.device.block_device).exists():
            blockdev.restore_queue(self.device.block_device, self._saved)
        ledger.forget(self._rid)
        self._rid = None
        self.device = None
