"""configfs devices (null_blk's /sys/kernel/config/nullb, rnull's /sys/kernel/config/rnull).

The steps are the same for both drivers, so they live here once: mount configfs if needed, make a
device directory, write its attributes while powered off, power on, wait for /dev/<name>, read
every attribute back (the kernel clamps some values silently), and the mirror image on teardown.

Which options a driver offers is read from the attribute files of a device directory
(`probe_attributes`: mkdir, list, rmdir), not from its `features` string, which some out-of-tree
rnull versions garble (`memory_backedsubmit_queues`). The configfs root is a `Tree`, a parameter
of the target code: the kernel's /sys/kernel/config in production, a stand-in in the tests of the
drivers that cannot exist here (the out-of-tree rnull).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.driver_options import NOT_SETTINGS, canonical
from bench.errors import RunError


def default_root() -> Path:
    return Path(os.environ.get("BLKCMP_CONFIGFS", "/sys/kernel/config"))


class Tree:
    """A configfs root. mkdir and rmdir go through here because configfs gives them meaning a
    plain directory does not have: mkdir fills the new directory with the driver's attribute
    files, rmdir removes a directory full of them."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_root()

    def subsystem(self, name: str) -> Path:
        return self.root / name

    def mkdir(self, path: Path) -> None:
        path.mkdir()

    def rmdir(self, path: Path) -> None:
        path.rmdir()


def configfs_supported() -> bool:
    try:
        return "configfs" in Path("/proc/filesystems").read_text()
    except OSError:
        return False


def ensure_mounted(tree: Tree | None = None) -> None:
    root = (tree or Tree()).root
    if root.is_dir() and any(root.iterdir()):
        return
    if not configfs_supported():
        raise RunError("this kernel has no configfs (CONFIG_CONFIGFS_FS)")
    if not _is_mountpoint(root):
        out = subprocess.run(["mount", "-t", "configfs", "none", str(root)], capture_output=True, text=True)
        if out.returncode != 0:
            raise RunError(f"cannot mount configfs on {root}: {out.stderr.strip()}")


def _is_mountpoint(path: Path) -> bool:
    try:
        return any(
            line.split()[1] == str(path) for line in Path("/proc/self/mounts").read_text().splitlines()
        )
    except OSError:
        return False


def modprobe(module: str, *params: str) -> bool:
    """Load a module (built-in drivers need nothing); False when it cannot be loaded."""
    try:
        out = subprocess.run(["modprobe", module, *params], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def read_features(subsystem: Path) -> set[str]:
    try:
        return {
            f.strip() for f in (subsystem / "features").read_text().replace("\n", ",").split(",") if f.strip()
        }
    except OSError:
        return set()


PROBE_PREFIX = "blkcmp-probe-"


def probe_attributes(tree: Tree, subsystem: Path, ledger_kind: str) -> set[str] | None:
    """The attribute files of a fresh device directory of this driver: what it really accepts.
    The directory is made and removed at once (powered off, it creates no disk), recorded in the
    state file first so `blkcmp cleanup` removes it after a SIGKILL. None when the directory
    comes up empty (not a configfs: the caller falls back to the `features` string)."""
    from bench import ledger

    name = f"{PROBE_PREFIX}{os.getpid()}"
    path = subsystem / name
    rid = ledger.register(ledger_kind, {"name": name, "root": str(tree.root)})
    try:
        try:
            tree.mkdir(path)
        except OSError as exc:
            raise RunError(f"cannot create {path} to read the driver's attributes: {exc.strerror}") from None
        try:
            found = {p.name for p in path.iterdir() if not p.is_dir()}
        finally:
            try:
                tree.rmdir(path)
            except OSError as exc:
                raise RunError(f"cannot remove {path}: {exc.strerror}") from None
    finally:
        ledger.forget(rid)
    return found or None


def offered(tree: Tree, subsystem: Path, ledger_kind: str) -> tuple[set[str], str]:
    """(the options this driver offers, where that was read: "attribute files" or "features").
    `power` is blkcmp's and never an option."""
    attributes = probe_attributes(tree, subsystem, ledger_kind)
    if attributes is not None:
        return attributes - {"power"}, "attribute files"
    return read_features(subsystem) - {"power"}, "features"


def free_name(subsystem: Path, prefix: str) -> str:
    """The lowest `<prefix>N` with no configfs directory and no disk of that name."""
    n = 0
    while (subsystem / f"{prefix}{n}").exists() or Path(f"/sys/block/{prefix}{n}").exists():
        n += 1
    return f"{prefix}{n}"


def write_attr(device_dir: Path, key: str, value) -> None:
    text = str(int(value)) if isinstance(value, bool) else str(value)
    try:
        (device_dir / key).write_text(text)
    except OSError as exc:
        raise RunError(f"{device_dir.name}: writing {key}={text} failed: {exc.strerror}") from None


def read_attrs(device_dir: Path, skip=("badblocks", "zone_readonly", "zone_offline")) -> dict[str, str]:
    out = {}
    for path in sorted(device_dir.iterdir()):
        if path.is_file() and path.name not in skip:
            try:
                out[path.name] = path.read_text().strip()
            except OSError:
                continue
    return out


def wait_for_disk(name: str, timeout_s: float = 10.0) -> str:
    dev = f"/dev/{name}"
    deadline = time.monotonic() + timeout_s
    from bench.targets.host import settle

    settle()
    while time.monotonic() < deadline:
        if Path(dev).exists() and Path(f"/sys/block/{name}").exists():
            return dev
        time.sleep(0.05)
    raise RunError(f"{dev} did not appear within {timeout_s:.0f} s after power=1")


def configure(tree: Tree, subsystem: Path, name: str, attrs: dict) -> Path:
    """mkdir and write the attributes (powered off); returns the device directory."""
    device_dir = subsystem / name
    try:
        tree.mkdir(device_dir)
    except OSError as exc:
        raise RunError(f"cannot create {device_dir}: {exc.strerror}") from None
    for key, value in attrs.items():
        write_attr(device_dir, key, value)
    return device_dir


def create(tree: Tree, subsystem: Path, name: str, attrs: dict) -> str:
    """configure(), then power on; returns /dev/<name>."""
    device_dir = configure(tree, subsystem, name, attrs)
    write_attr(device_dir, "power", 1)
    return wait_for_disk(name)


def remove(tree: Tree, subsystem: Path, name: str) -> None:
    """power=0 then rmdir; nothing to do when it is already gone."""
    device_dir = subsystem / name
    if not device_dir.exists():
        return
    power = device_dir / "power"
    try:
        if power.exists() and power.read_text().strip() == "1":
            power.write_text("0")
    except OSError as exc:
        raise RunError(f"{name}: power=0 failed: {exc.strerror}") from None
    try:
        tree.rmdir(device_dir)
    except OSError as exc:
        raise RunError(f"cannot remove {device_dir}: {exc.strerror}") from None


ATTRIBUTE_AUDIT_PREFIX = "attr."


def attribute_audit(settings: dict[str, str]) -> dict[str, str]:
    """The driver attributes read back, for the fairness audit, keyed by null_blk's name of each
    (`attr.cache_size` for rnull's `cache_size_mib` too): attributes both drivers have are then
    compared like the queue settings, so differing defaults (irqmode, completion_nsec,
    hw_queue_depth) are seen. What names or drives a device (power, index, badblocks) is left out."""
    return {ATTRIBUTE_AUDIT_PREFIX + canonical(k): v for k, v in settings.items() if k not in NOT_SETTINGS}
