"""QEMU-emulated NVMe controllers for `run --kernel` (workload `vm: {nvme: [...]}`): sparse
backing files in the host's /dev/shm, created before the boot and removed after it, and the QEMU
options that attach them (passed to virtme-ng as --qemu-opts).

Each namespace is one file, recorded in the ledger before it is created (kind
`nvme-backing-file`), so `blkcmp cleanup` removes what a SIGKILLed run left behind. Numbers
measured on them are labelled emulated like every VM's: they prove the machinery (identity,
refusals, preconditioning, re-binding), never NVMe performance.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from bench import ledger
from bench.errors import RunError
from bench.workload import QemuNvme

SHM = Path("/dev/shm")
PREFIX = "blkcmp-nvme-"


def size_bytes(size: str) -> int:
    number, unit = int(size[:-3]), size[-3:]
    return number << (20 if unit == "MiB" else 30)


def backing_files(controllers: list[QemuNvme], campaign_id: str, directory: Path = SHM) -> list[list[Path]]:
    """The backing file of each namespace of each controller (names unique per campaign)."""
    return [
        [directory / f"{PREFIX}{campaign_id}-{c.serial}-n{ns}.img" for ns in range(1, c.namespaces + 1)]
        for c in controllers
    ]


def qemu_args(controllers: list[QemuNvme], files: list[list[Path]]) -> list[str]:
    """-drive per namespace file, -device nvme per controller, -device nvme-ns per namespace
    (nsid 1..N on its controller's bus)."""
    args: list[str] = []
    for k, (ctrl, paths) in enumerate(zip(controllers, files)):
        args += ["-device", f"nvme,id=blkcmpnvme{k},serial={ctrl.serial}"]
        for ns, path in enumerate(paths, 1):
            drive = f"blkcmpnvm{k}n{ns}"
            args += ["-drive", f"file={path},if=none,format=raw,id={drive}"]
            args += ["-device", f"nvme-ns,drive={drive},bus=blkcmpnvme{k},nsid={ns}"]
    return args


@ledger.cleaner("nvme-backing-file")
def _remove(data: dict) -> None:
    path = Path(data["path"])
    if not path.name.startswith(PREFIX):  # never anything blkcmp did not name
        raise RuntimeError(f"{path}: not a blkcmp NVMe backing file")
    path.unlink(missing_ok=True)


@contextlib.contextmanager
def attached(controllers: list[QemuNvme], campaign_id: str, directory: Path = SHM) -> Iterator[list[str]]:
    """The QEMU options for `controllers`, their backing files existing (sparse) meanwhile."""
    files = backing_files(controllers, campaign_id, directory)
    rids: list[str] = []
    try:
        for ctrl, paths in zip(controllers, files):
            for path in paths:
                rids.append(ledger.register("nvme-backing-file", {"path": str(path)}))
                try:
                    with open(path, "xb") as fh:
                        fh.truncate(size_bytes(ctrl.size))
                except OSError as exc:
                    raise RunError(f"cannot create NVMe backing file {path}: {exc.strerror}") from None
        yield qemu_args(controllers, files)
    finally:
        for rid, path in zip(rids, [p for paths in files for p in paths]):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            ledger.forget(rid)
