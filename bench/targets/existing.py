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
from bench.targets import blockdev, nvme
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
        matching = self.candidates()
        given = ", ".join(f"{k}={shorten(v)}" for k, v in self.wanted.items())
        if not matching:
            raise UsageError(
                f"{self._where()}: no block device here has identity {given} "
                "(`blkcmp targets` lists the devices and their identities)"
            )
        if len(matching) > 1:
            raise UsageError(
                f"{self._where()}: {len(matching)} block devices match identity {given} "
                f"({', '.join(matching)}); add {self.singling_keys}"
            )
        return matching[0]

    # -- what identifies a device: overridden by driver nvme ----------------------------------
    singling_keys = "serial or wwn"

    def identity_of(self, dev: str) -> dict[str, Any]:
        return blockdev.identity(dev)

    def mismatches(self, dev: str) -> list[str]:
        return blockdev.identity_mismatches(self.wanted, self.identity_of(dev))

    def candidates(self) -> list[str]:
        """The devices whose identity has every key the workload gives."""
        return [dev for dev in blockdev.whole_disks() if not self.mismatches(dev)]

    def refusals(self, dev: str, writes: bool) -> list[Refusal]:
        """Why blkcmp will not run this target's jobs on `dev` now (empty: it may)."""
        found: list[Refusal] = []
        mismatches = self.mismatches(dev)
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
                    f"add identity: with its {self.singling_keys} (backing_file for a loop device)",
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
        self.found_identity = self.identity_of(dev)
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
            "identity": self.identity_of(dev),
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


class NvmeNamespace(ExistingBlockDevice):
    """`driver: nvme`: an NVMe namespace named by identity only (controller serial/model and
    nsid, or the namespace's EUI-64/NGUID/WWID): the block device is found from the identity at
    setup and after every re-binding (nvme0n1 and nvme1n1 swap between boots), never from a
    path. The same refusal policy as driver blockdev; the provenance adds the controller (PCI
    address, transport, firmware), the LBA format in use (nvme-cli) and the driver bound.

    With `bind: DRIVER`, the controller's PCI device is bound to DRIVER before each run of this
    target whose previous run on that controller was another target's (the interleaved order
    decides the binding each run gets); the original binding is saved first (ledger kind
    nvme-binding) and restored at teardown and by `blkcmp cleanup`."""

    driver = "nvme"
    singling_keys = "serial (and nsid), eui, nguid or wwn"
    sysfs: Path = nvme.SYSFS
    bind_driver: str | None = None
    facts: ClassVar[dict[str, Any]] = {}  # replaced per instance at setup

    def accept_spec(self, spec, writes: bool) -> None:
        super().accept_spec(spec, writes)
        self.bind_driver = spec.bind

    def identity_of(self, dev: str) -> dict[str, Any]:
        name = blockdev.disk_name(dev)
        return nvme.namespace_identity(name, self.sysfs) | {"by_id": blockdev.by_id_links(name)}

    def mismatches(self, dev: str) -> list[str]:
        return blockdev.identity_mismatches(self.wanted, self.identity_of(dev), nvme.NVME_IDENTITY_KEYS)

    def candidates(self) -> list[str]:
        return [f"/dev/{ns}" for ns in nvme.matching(self.wanted, self.sysfs)]

    def probe(self) -> Availability:
        avail = super().probe()
        if avail.ok and not (self.sysfs / "class" / "nvme").is_dir():
            return Availability(False, "no NVMe controller here (/sys/class/nvme is missing)")
        return Availability(avail.ok, avail.reason, "NVMe namespace" if avail.ok else "")

    def kernel_problems(self) -> list[str]:
        # A target that re-binds its controller may not be visible until bound: checked at setup.
        return [] if self.bind_driver else super().kernel_problems()

    def recorded_kernel_problems(self, drivers, release: str) -> list[str]:
        return []  # inside a test kernel's VM the namespace is a QEMU one: checked at setup there

    def planned_filename(self) -> str:
        return self.device.filename if self.device else "${BLKCMP_FILENAME}"

    def _bind(self) -> bool:
        """Bind the controller for this target (True if it was re-bound), then find the
        namespace again from its identity."""
        binder = _BINDERS[self._address]
        if not binder.bind_for(self.name, self.bind_driver):
            return False
        if not nvme.wait_for(self.wanted, sysfs=self.sysfs):
            raise RunError(
                f"{self._where()}: no namespace with the identity given reappeared within 30 s "
                f"of binding {self._address} to {self.bind_driver}"
            )
        return True

    def _find(self) -> Device:
        dev = self.resolve()
        refusals = self.refusals(dev, self.writes)
        if refusals:
            raise UsageError(self.refusal_line(dev, refusals))
        self.facts = nvme.cli_facts(dev)
        self.applied_queue = blockdev.apply_queue(dev, self.queue)
        self.device = Device(dev, {}, block_device=dev)
        return self.device

    def setup(self) -> Device:
        if self.bind_driver is None:
            device = super().setup()
            self.facts = nvme.cli_facts(device.block_device)
            return device
        # The controller is named by identity, so it must be found (bound to some driver) first.
        ident = self.identity_of(self.resolve())
        self._address = ident["address"]
        if self._address not in _BINDERS:
            _BINDERS[self._address] = nvme.Binder(self._address, self.sysfs)
        _USERS.setdefault(self._address, set()).add(self.name)
        self._bind()
        self.found_identity = self.identity_of(self.resolve())
        self.overridden = []
        # No queue settings to save: re-binding makes a new block device with the driver's
        # defaults, and restoring the original binding at teardown does the same.
        return self._find()

    def check_before_run(self, writes: bool) -> None:
        if self.bind_driver is not None and self.device and self._bind():
            self._find()
        super().check_before_run(writes)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self.device:
            out |= {"nvme": self.facts, "bind": self.bind_driver}
            if self.bind_driver is not None and self._address in _BINDERS:
                out["rebinds"] = _BINDERS[self._address].rebinds  # so far, on this controller
        return out

    def teardown(self) -> None:
        if self.bind_driver is None or getattr(self, "_address", None) is None:
            super().teardown()
            return
        users = _USERS.get(self._address, set())
        users.discard(self.name)
        if not users:
            _BINDERS.pop(self._address).close()
            _USERS.pop(self._address, None)
        self._address = None
        self.device = None


# One binder per controller address, shared by the targets of this process that re-bind it.
_BINDERS: dict[str, nvme.Binder] = {}
_USERS: dict[str, set[str]] = {}
