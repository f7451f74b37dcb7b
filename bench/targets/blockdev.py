"""Block-device facts from sysfs: queue settings applied identically to every target, the
fairness audit read back after setup, and the write-safety check.

Why the audit exists: with defaults, rnull (one hardware queue) gets mq-deadline while null_blk
(one submit + one poll queue) gets none; in a guest that alone made rnull look 4x slower.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

from bench.errors import RunError
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.workload import QueueSettings

SYS_BLOCK = Path("/sys/block")

# The audited settings, in the order reports list them. Each shapes the I/O path.
AUDIT_KEYS = ("logical_block_size", "physical_block_size", "capacity_bytes", "nr_hw_queues",
              "nr_tags", "scheduler", "nr_requests", "rq_affinity", "nomerges", "iostats",
              "io_poll", "write_cache", "max_sectors_kb", "rotational", "completion")


def disk_name(dev: str) -> str:
    return Path(os.path.realpath(dev)).name


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def current_scheduler(text: str | None) -> str | None:
    if not text:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.split()[0] if text.split() else None


def apply_queue(dev: str, settings: QueueSettings) -> dict[str, Any]:
    """Write each requested setting, read it back; a value the kernel refuses is an error."""
    qdir = SYS_BLOCK / disk_name(dev) / "queue"
    applied: dict[str, Any] = {}
    for key, wanted in settings.model_dump(exclude_none=True).items():
        path = qdir / key
        if not path.exists():
            raise RunError(f"{dev}: queue/{key} does not exist on this kernel (asked for {wanted})")
        try:
            path.write_text(str(wanted))
        except OSError as exc:
            raise RunError(f"{dev}: cannot set queue/{key}={wanted}: {exc.strerror}") from None
        got = _read(path)
        got = current_scheduler(got) if key == "scheduler" else got
        if str(got) != str(wanted):
            raise RunError(f"{dev}: queue/{key} reads back {got!r} after writing {wanted!r}")
        applied[key] = got
    return applied


def audit(dev: str) -> dict[str, Any]:
    """The settings that shape the I/O path, read back from sysfs (completion comes from the target)."""
    name = disk_name(dev)
    base = SYS_BLOCK / name
    q = base / "queue"
    mq = sorted((base / "mq").glob("*")) if (base / "mq").is_dir() else []
    sectors = _read(base / "size")
    out: dict[str, Any] = {
        "logical_block_size": _read(q / "logical_block_size"),
        "physical_block_size": _read(q / "physical_block_size"),
        "capacity_bytes": str(int(sectors) * 512) if sectors and sectors.isdigit() else None,
        "nr_hw_queues": str(len(mq)),
        "nr_tags": _read(mq[0] / "nr_tags") if mq else None,
        "scheduler": current_scheduler(_read(q / "scheduler")),
        "nr_requests": _read(q / "nr_requests"),
        "rq_affinity": _read(q / "rq_affinity"),
        "nomerges": _read(q / "nomerges"),
        "iostats": _read(q / "iostats"),
        "io_poll": _read(q / "io_poll"),
        "write_cache": _read(q / "write_cache"),
        "max_sectors_kb": _read(q / "max_sectors_kb"),
        "rotational": _read(q / "rotational"),
    }
    return out


def audit_differences(audits: dict[str, dict[str, Any]], allowed: list[str]) -> tuple[list[str], list[str]]:
    """(refused, allowed) differences between targets, one readable line each."""
    refused, tolerated = [], []
    names = list(audits)
    keys = [k for k in AUDIT_KEYS if any(k in a for a in audits.values())]
    for key in keys:
        values = {n: audits[n].get(key) for n in names}
        if len(set(map(str, values.values()))) > 1:
            line = f"{key}: " + ", ".join(f"{n}={v}" for n, v in values.items())
            (tolerated if key in allowed else refused).append(line)
    return refused, tolerated


# ------------------------------------------------------------------------------------------
# Write safety


def _rdev(dev: str) -> int:
    return os.stat(dev).st_rdev


def safety_problems(dev: str) -> list[str]:
    """Reasons not to write to `dev`: partitions, holders, mounts, swap, signatures, exclusive use.

    blkcmp runs this on every block device it is about to hand to fio, including the ones it
    created itself: a device that is not what blkcmp made must never be written.
    """
    problems: list[str] = []
    try:
        st = os.stat(dev)
    except OSError as exc:
        return [f"{dev}: {exc.strerror}"]
    if not stat.S_ISBLK(st.st_mode):
        return [f"{dev} is not a block device"]
    name = disk_name(dev)
    base = SYS_BLOCK / name
    if any((p / "partition").exists() for p in base.glob(f"{name}*")):
        problems.append("it has partitions")
    if any((base / "holders").glob("*")):
        problems.append("it has holders (device-mapper, MD, bcache): " +
                        ", ".join(p.name for p in (base / "holders").glob("*")))
    majmin = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    real = os.path.realpath(dev)
    for line in (_read(Path("/proc/self/mountinfo")) or "").splitlines():
        fields = line.split()
        source = line.split(" - ", 1)[1].split()[1] if " - " in line else ""
        if fields[2] == majmin or os.path.realpath(source) == real:
            problems.append(f"it is mounted on {fields[4]}")
            break
    for line in (_read(Path("/proc/swaps")) or "").splitlines()[1:]:
        swap = line.split()[0]
        if os.path.realpath(swap) == real:
            problems.append("it is in use as swap")
    if _read(base / "ro") == "1":
        problems.append("it is read-only")
    try:
        probe = subprocess.run(["blkid", "-p", "-o", "export", dev], capture_output=True, text=True,
                               timeout=30)
        if probe.returncode == 0:
            found = dict(l.split("=", 1) for l in probe.stdout.splitlines() if "=" in l)
            what = found.get("TYPE") or found.get("PTTYPE") or found.get("USAGE") or "a signature"
            problems.append(f"it carries a {what} signature")
        elif probe.returncode == 8:
            problems.append("blkid finds ambivalent signatures on it")
    except (OSError, subprocess.TimeoutExpired):
        problems.append("blkid could not probe it")
    try:
        fd = os.open(dev, os.O_RDONLY | os.O_EXCL)
        os.close(fd)
    except OSError as exc:
        problems.append(f"another user holds it exclusively ({exc.strerror})")
    return problems


def require_safe(dev: str) -> None:
    problems = safety_problems(dev)
    if problems:
        raise RunError(f"refusing to write to {dev}: {'; '.join(problems)}")


def save_queue(dev: str, settings: "QueueSettings") -> dict[str, str]:
    """The current values of the queue attributes `settings` will change (for restore_queue)."""
    qdir = SYS_BLOCK / disk_name(dev) / "queue"
    saved = {}
    for key in settings.model_dump(exclude_none=True):
        value = _read(qdir / key)
        if value is not None:
            saved[key] = current_scheduler(value) if key == "scheduler" else value
    return saved


def restore_queue(dev: str, saved: dict[str, str]) -> None:
    qdir = SYS_BLOCK / disk_name(dev) / "queue"
    for key, value in reversed(list(saved.items())):
        try:
            (qdir / key).write_text(value)
        except OSError:
            pass  # the device may be going away; nothing else to restore to
