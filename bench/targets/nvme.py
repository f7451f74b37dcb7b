"""NVMe facts and actions: which namespace an identity names, what its controller is, its LBA
format (nvme-cli), and re-binding the controller's PCI device between drivers.

Everything that reads or writes sysfs takes the sysfs root as a parameter (`sysfs`, default
/sys), so the identity, selection and binding logic is tested on the host against a stand-in
tree shaped like sysfs (there is no NVMe device on a test host); the real tree is exercised by
the VM tier on QEMU-emulated controllers.

Layout relied on (Linux 5.x-7.x): /sys/block/nvmeXnY/{wwid,nsid,eui,nguid,mq/} for a namespace;
its `device` link leads to the controller (…/nvme/nvmeX, which has serial, model, firmware_rev,
address, transport) or, with native multipath, to the subsystem (…/nvme-subsys0, whose entries
nvmeX are its controllers); a controller's `device` link is its PCI device, whose `driver` link
names the PCI driver bound (nvme for the C driver).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import ledger
from bench.errors import RunError
from bench.targets.blockdev import disk_facts, identity_mismatches

SYSFS = Path("/sys")

# The identity keys that name an NVMe namespace (compared with blockdev.identity_mismatches):
# controller serial and model, namespace id, and the namespace's own WWID/EUI-64/NGUID.
NVME_IDENTITY_KEYS = ("serial", "model", "nsid", "wwn", "eui", "nguid", "size_bytes")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def controllers_of(block: str, sysfs: Path = SYSFS) -> list[Path]:
    """The controller directories (…/nvme/nvmeX) a namespace block device is reached through."""
    device = Path(os.path.realpath(sysfs / "block" / block / "device"))
    if (device / "transport").exists():
        return [device]
    # native multipath: `device` is the subsystem; its nvmeX entries are the controllers
    return sorted(Path(os.path.realpath(p)) for p in device.glob("nvme*") if (Path(p) / "transport").exists())


def pci_driver(address: str, sysfs: Path = SYSFS) -> str | None:
    """The driver bound to a PCI device now (None: unbound)."""
    link = sysfs / "bus" / "pci" / "devices" / address / "driver"
    return Path(os.path.realpath(link)).name if link.exists() else None


def namespace_identity(block: str, sysfs: Path = SYSFS) -> dict[str, Any]:
    """An NVMe namespace's identity from sysfs: its controller's serial, model, firmware, PCI
    address, transport and bound driver; its nsid, WWID, EUI-64, NGUID and queue count."""
    base = sysfs / "block" / block
    ctrls = controllers_of(block, sysfs)
    ctrl = ctrls[0] if ctrls else None
    pci = Path(os.path.realpath(ctrl / "device")) if ctrl else None
    address = (_read(ctrl / "address") if ctrl else None) or (pci.name if pci else None)
    return {
        "name": block,
        "controller": ctrl.name if ctrl else None,
        "controllers": [c.name for c in ctrls],
        "serial": _read(ctrl / "serial") if ctrl else None,
        "model": _read(ctrl / "model") if ctrl else None,
        "firmware": _read(ctrl / "firmware_rev") if ctrl else None,
        "transport": _read(ctrl / "transport") if ctrl else None,
        "address": address,
        "driver": pci_driver(address, sysfs) if address else None,
        "wwn": _read(base / "wwid"),
        **disk_facts(base),
    }


def namespaces(sysfs: Path = SYSFS) -> list[str]:
    """The NVMe namespace block devices (nvmeXnY; never the hidden per-path nvmeXcYnZ nor a
    partition) with a capacity."""
    root = sysfs / "block"
    if not root.is_dir():
        return []
    return [
        p.name
        for p in sorted(root.iterdir())
        if p.name.startswith("nvme")
        and "c" not in p.name[4:]
        and (_read(p / "nsid") is not None)
        and (_read(p / "size") or "0") != "0"
    ]


def matching(wanted: dict[str, str], sysfs: Path = SYSFS) -> list[str]:
    """The namespaces whose identity has every key of `wanted` (blockdev's comparison)."""
    return [
        ns
        for ns in namespaces(sysfs)
        if not identity_mismatches(wanted, namespace_identity(ns, sysfs), NVME_IDENTITY_KEYS)
    ]


# ------------------------------------------------------------------------------------------
# nvme-cli: the LBA format in use, and whether the controller can format


def lba_format(id_ns: dict[str, Any]) -> dict[str, Any]:
    """The LBA format in use from `nvme id-ns -o json`: FLBAS bits 3:0 are the format index,
    bits 6:5 its upper bits when there are more than 16 formats (NVMe 2.0, 5.1.13.2.1)."""
    flbas = int(id_ns["flbas"])
    index = (flbas & 0xF) | (((flbas >> 5) & 0x3) << 4 if int(id_ns.get("nlbaf", 0)) >= 16 else 0)
    fmt = id_ns["lbafs"][index]
    return {
        "index": index,
        "data_bytes": 1 << int(fmt["ds"]),
        "metadata_bytes": int(fmt["ms"]),
        "relative_performance": int(fmt["rp"]),
        "metadata_at_end_of_lba": bool(flbas & 0x10),
    }


def format_supported(id_ctrl: dict[str, Any]) -> bool:
    """OACS bit 1: the controller supports the Format NVM command."""
    return bool(int(id_ctrl.get("oacs", 0)) & 0x2)


def _nvme_json(*args: str) -> dict[str, Any] | None:
    if shutil.which("nvme") is None:
        return None
    proc = subprocess.run(["nvme", *args, "-o", "json"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        return None
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None


def cli_facts(dev: str) -> dict[str, Any]:
    """What nvme-cli says of a namespace and its controller (None where nvme-cli is missing
    or cannot answer, with the reason under `nvme_cli`)."""
    ns = _nvme_json("id-ns", dev)
    ctrl = _nvme_json("id-ctrl", dev)
    if ns is None or ctrl is None:
        why = "not installed" if shutil.which("nvme") is None else "id-ns/id-ctrl failed"
        return {"nvme_cli": why, "lba_format": None, "format_supported": None}
    return {
        "nvme_cli": "ok",
        "lba_format": lba_format(ns),
        "format_supported": format_supported(ctrl),
        "nsze": ns.get("nsze"),
        "id_ctrl": {k: ctrl.get(k) for k in ("vid", "sn", "mn", "fr", "oacs", "sqes", "cqes", "nn", "ver")},
    }


# ------------------------------------------------------------------------------------------
# Binding a controller's PCI device to a driver (C nvme, or a Rust NVMe driver)


def binding(address: str, sysfs: Path = SYSFS) -> dict[str, Any]:
    """What to restore later: the driver bound now and the driver_override."""
    override = _read(sysfs / "bus" / "pci" / "devices" / address / "driver_override")
    return {
        "address": address,
        "driver": pci_driver(address, sysfs),
        "driver_override": None if override in (None, "", "(null)") else override,
    }


def sysfs_write(path: Path, text: str) -> None:
    """Write one sysfs attribute (tests of the binding logic pass a stand-in for this and the
    tree: a stand-in file cannot bind a driver)."""
    try:
        path.write_text(text)
    except OSError as exc:
        raise RunError(f"cannot write {text.strip()!r} to {path}: {exc.strerror}") from None


def bind(
    address: str, driver: str | None, override: str | None, sysfs: Path = SYSFS, write=sysfs_write
) -> None:
    """Unbind the device from whatever holds it, set driver_override, bind `driver` (None:
    leave it unbound). The kernel honours driver_override at the next probe, so a device
    cannot be grabbed by another driver between the unbind and the bind."""
    dev = sysfs / "bus" / "pci" / "devices" / address
    if not dev.exists():
        raise RunError(f"PCI device {address} is gone: cannot bind it to {driver}")
    bind_file = sysfs / "bus" / "pci" / "drivers" / str(driver) / "bind"
    if driver is not None and not bind_file.exists():  # before unbinding: never left unbound for this
        raise RunError(f"no PCI driver {driver} in this kernel (nothing at {bind_file.parent})")
    current = pci_driver(address, sysfs)
    # "\n" clears the override (the kernel stores an empty string as none)
    write(dev / "driver_override", (override or "") + "\n")
    if current is not None:
        write(dev / "driver" / "unbind", address)
    if driver is not None:
        write(bind_file, address)
        if pci_driver(address, sysfs) != driver:
            raise RunError(
                f"PCI device {address}: bound {pci_driver(address, sysfs)!r} after binding {driver}"
            )


def restore(saved: dict[str, Any], sysfs: Path = SYSFS, write=sysfs_write) -> None:
    """Put a PCI device back as `binding()` found it (skipped if it already is)."""
    if binding(saved["address"], sysfs) == saved:
        return
    bind(saved["address"], saved["driver"], saved["driver_override"], sysfs, write)


@ledger.cleaner("nvme-binding")
def _restore_binding(data: dict) -> None:
    restore(data["saved"], Path(data.get("sysfs", str(SYSFS))))


class Binder:
    """Binds one controller to the driver each run's target asks for, saving the original
    binding first (in the ledger, so `blkcmp cleanup` restores it after a SIGKILL) and restoring
    it on close(). One per controller address per campaign."""

    def __init__(self, address: str, sysfs: Path = SYSFS, write=sysfs_write):
        self.address = address
        self.sysfs = sysfs
        self.write = write
        self.saved = binding(address, sysfs)
        self.rid = ledger.register("nvme-binding", {"saved": self.saved, "sysfs": str(sysfs)})
        self.holder: str | None = None  # the target the current binding was made for
        self.rebinds = 0

    def bind_for(self, target: str, driver: str) -> bool:
        """Bind `driver` for `target` unless the last binding was made for it; True if re-bound.
        Another target naming the same controller (even with the same driver) re-binds: the
        interleaved order decides which binding each run gets."""
        if self.holder == target and pci_driver(self.address, self.sysfs) == driver:
            return False
        bind(self.address, driver, driver, self.sysfs, self.write)
        self.holder = target
        self.rebinds += 1
        return True

    def close(self) -> None:
        if self.rid is None:
            return
        restore(self.saved, self.sysfs, self.write)
        ledger.forget(self.rid)
        self.rid = None


def wait_for(wanted: dict[str, str], timeout_s: float = 30.0, sysfs: Path = SYSFS) -> list[str]:
    """The namespaces matching `wanted` once at least one has (re)appeared, or [] at timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = matching(wanted, sysfs)
        if found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)
