"""configfs devices (null_blk's /sys/kernel/config/nullb, rnull's /sys/kernel/config/rnull).

The steps are the same for both drivers, so they live here once: mount configfs if needed, make a
device directory, write its attributes while powered off, power on, wait for /dev/<name>, read
every attribute back (the kernel clamps some values silently), and the mirror image on teardown.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from bench.errors import RunError

CONFIGFS = Path(os.environ.get("BLKCMP_CONFIGFS", "/sys/kernel/config"))


def configfs_supported() -> bool:
    try:
        return "configfs" in Path("/proc/filesystems").read_text()
    except OSError:
        return False


def ensure_mounted() -> None:
    if CONFIGFS.is_dir() and any(CONFIGFS.iterdir()):
        return
    if not configfs_supported():
        raise RunError("this kernel has no configfs (CONFIG_CONFIGFS_FS)")
    if not _is_mountpoint(CONFIGFS):
        out = subprocess.run(
            ["mount", "-t", "configfs", "none", str(CONFIGFS)], capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RunError(f"cannot mount configfs on {CONFIGFS}: {out.stderr.strip()}")


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


def create(subsystem: Path, name: str, attrs: dict) -> str:
    """mkdir, write attributes (powered off), power on; returns /dev/<name>."""
    device_dir = subsystem / name
    try:
        device_dir.mkdir()
    except OSError as exc:
        raise RunError(f"cannot create {device_dir}: {exc.strerror}") from None
    for key, value in attrs.items():
        write_attr(device_dir, key, value)
    write_attr(device_dir, "power", 1)
    return wait_for_disk(name)


def remove(subsystem: Path, name: str) -> None:
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
        device_dir.rmdir()
    except OSError as exc:
        raise RunError(f"cannot remove {device_dir}: {exc.strerror}") from None
