"""Block-device facts from sysfs: queue settings applied identically to every target, the
fairness audit read back after setup, and the write-safety check.

Why the audit exists: with defaults, rnull (one hardware queue) gets mq-deadline while null_blk
(one submit + one poll queue) gets none; in a guest that alone made rnull look 4x slower.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import RunError, shorten
from bench.targets.configfs import ATTRIBUTE_AUDIT_PREFIX

if TYPE_CHECKING:
    from bench.workload import QueueSettings

SYS_BLOCK = Path("/sys/block")

# The audited settings, in the order reports list them. Each shapes the I/O path.
AUDIT_KEYS = (
    "logical_block_size",
    "physical_block_size",
    "capacity_bytes",
    "nr_hw_queues",
    "nr_tags",
    "scheduler",
    "nr_requests",
    "rq_affinity",
    "nomerges",
    "iostats",
    "io_poll",
    "write_cache",
    "max_sectors_kb",
    "rotational",
    "completion",
    "recreate",
    "prefill",
)
# Driver attributes read back from configfs (bench.targets.configfs.attribute_audit, keys
# prefixed ATTRIBUTE_AUDIT_PREFIX) are compared too, wherever every audited target has them.


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
    keys += sorted(
        {k for a in audits.values() for k in a if k.startswith(ATTRIBUTE_AUDIT_PREFIX)}
        & set.intersection(*(set(a) for a in audits.values()))
    )
    for key in keys:
        values = {n: audits[n].get(key) for n in names}
        if len(set(map(str, values.values()))) > 1:
            line = f"{key}: " + ", ".join(f"{n}={v}" for n, v in values.items())
            (tolerated if key in allowed else refused).append(line)
    return refused, tolerated


# ------------------------------------------------------------------------------------------
# Write safety: one policy for every block device blkcmp hands to fio, its own and the user's.


@dataclass(frozen=True)
class Refusal:
    """One reason not to write to a device: `code` is what tests and overrides key on (never
    the text), `what` says what was found, `fix` what the user can do about it."""

    code: str  # partitions, holders, mounted, swap, signature, root, boot, read-only, exclusive, ...
    what: str
    fix: str
    detail: str = ""  # the signature type for code "signature" (what allow_signatures names)

    def line(self) -> str:
        return f"{self.what} ({self.fix})"


def _partitions(name: str) -> list[str]:
    base = SYS_BLOCK / name
    return sorted(p.name for p in base.glob(f"{name}*") if (p / "partition").exists())


def _majmin(name: str) -> str | None:
    return _read(Path("/sys/class/block") / name / "dev")


def _whole_disks_under(name: str, seen: set[str] | None = None) -> set[str]:
    """The whole disks a block device (a partition, a dm/md device) finally lives on."""
    seen = set() if seen is None else seen
    if name in seen:
        return set()
    seen.add(name)
    node = Path("/sys/class/block") / name
    if (node / "partition").exists():
        return {Path(os.path.realpath(node)).parent.name}
    slaves = [p.name for p in (node / "slaves").glob("*")] if (node / "slaves").is_dir() else []
    if not slaves:
        return {name}
    return set().union(*(_whole_disks_under(s, seen) for s in slaves))


def system_disks() -> dict[str, str]:
    """Whole disks holding the root filesystem or /boot (/boot/efi): {disk: "root" | "boot"}."""
    found: dict[str, str] = {}
    for mountpoint, role in (("/", "root"), ("/boot", "boot"), ("/boot/efi", "boot")):
        try:
            st = os.stat(mountpoint)
        except OSError:
            continue
        if role == "boot" and os.stat("/").st_dev == st.st_dev:
            continue  # no separate /boot: the root disk is already listed
        node = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
        if node.exists():
            for disk in _whole_disks_under(Path(os.path.realpath(node)).name):
                found.setdefault(disk, role)
    return found


def _mounts() -> list[tuple[str, str, str]]:
    """(major:minor, source, mountpoint) of every mount this process sees."""
    out = []
    for line in (_read(Path("/proc/self/mountinfo")) or "").splitlines():
        fields = line.split()
        source = line.split(" - ", 1)[1].split()[1] if " - " in line else ""
        out.append((fields[2], source, fields[4]))
    return out


def signatures(dev: str) -> tuple[list[str], str | None]:
    """(signature types `blkid -p` finds on dev, a problem probing it or None)."""
    # blkid exits 2 both for "no signature" and for "cannot open": open it first to tell them apart.
    try:
        os.close(os.open(dev, os.O_RDONLY))
    except OSError as exc:
        return [], f"it cannot be read to look for signatures ({exc.strerror})"
    try:
        probe = subprocess.run(
            ["blkid", "-p", "-o", "export", dev], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"blkid could not probe it ({exc})"
    if probe.returncode == 0:
        found = dict(line.split("=", 1) for line in probe.stdout.splitlines() if "=" in line)
        kinds = [found[k] for k in ("TYPE", "PTTYPE") if found.get(k)]
        return kinds or [found.get("USAGE") or "unknown"], None
    if probe.returncode == 8:
        return ["ambivalent"], None
    if probe.returncode == 2:
        return [], None
    return [], f"blkid -p failed with status {probe.returncode}: {probe.stderr.strip()[:200]}"


def write_refusals(dev: str, allow_signatures: frozenset[str] | set[str] = frozenset()) -> list[Refusal]:
    """Every reason not to write to `dev` (a whole block device), each with its fix.

    blkcmp runs this on every block device it is about to let fio write, including the ones it
    created itself: a device that is not what blkcmp made (or what the user named) is never
    written. Only a signature whose type is listed in `allow_signatures` is let through; no
    other reason can be overridden. Cheap enough to run before every fio start: sysfs,
    /proc, one `blkid -p`, one O_EXCL open.
    """
    try:
        st = os.stat(dev)
    except OSError as exc:
        return [Refusal("missing", f"{dev}: {exc.strerror}", "name an existing block device")]
    if not stat.S_ISBLK(st.st_mode):
        return [Refusal("not-block", f"{dev} is not a block device", "name a whole block device")]
    name = disk_name(dev)
    if (SYS_BLOCK / name).exists() is False and (Path("/sys/class/block") / name / "partition").exists():
        return [Refusal("partition", f"{dev} is a partition", "name the whole disk")]
    refusals: list[Refusal] = []
    parts = _partitions(name)
    if parts:
        refusals.append(
            Refusal(
                "partitions",
                f"it has partitions ({', '.join(parts)})",
                "delete the partition table, e.g. wipefs -a, if its data may go",
            )
        )
    family = [name, *parts]
    holders = sorted({h.name for n in family for h in (Path("/sys/class/block") / n / "holders").glob("*")})
    if holders:
        refusals.append(
            Refusal(
                "holders",
                "it has holders (device-mapper, LVM, MD, bcache): " + ", ".join(holders),
                "remove them (dmsetup remove, vgchange -an, mdadm --stop)",
            )
        )
    numbers = {_majmin(n): n for n in family}
    paths = {os.path.realpath(f"/dev/{n}"): n for n in family} | {os.path.realpath(dev): name}
    mounted = sorted(
        {
            f"{numbers.get(majmin) or paths.get(os.path.realpath(source))} on {point}"
            for majmin, source, point in _mounts()
            if majmin in numbers or (source.startswith("/") and os.path.realpath(source) in paths)
        }
    )
    if mounted:
        refusals.append(Refusal("mounted", "it is mounted: " + ", ".join(mounted), "unmount it"))
    swaps = [line.split()[0] for line in (_read(Path("/proc/swaps")) or "").splitlines()[1:] if line.split()]
    swapping = sorted(paths[os.path.realpath(s)] for s in swaps if os.path.realpath(s) in paths)
    if swapping:
        refusals.append(Refusal("swap", "it is in use as swap: " + ", ".join(swapping), "swapoff it"))
    role = system_disks().get(name)
    if role:
        refusals.append(
            Refusal(
                role,
                f"it is the {role} device of this system",
                "blkcmp never writes to it; name another disk",
            )
        )
    if _read(SYS_BLOCK / name / "ro") == "1":
        refusals.append(Refusal("read-only", "it is read-only", "make it writable (blockdev --setrw)"))
    kinds, problem = signatures(dev)
    if problem:
        refusals.append(Refusal("unprobed", problem, "give blkcmp read access to it"))
    for kind in kinds:
        if kind not in allow_signatures:
            article = "an" if kind[:1].lower() in "aeiou" else "a"
            refusals.append(
                Refusal(
                    "signature",
                    f"it carries {article} {kind} signature",
                    f"wipefs -a it if its data may go, or allow_signatures: [{kind}]",
                    detail=kind,
                )
            )
    try:
        fd = os.open(dev, os.O_RDONLY | os.O_EXCL)
        os.close(fd)
    except OSError as exc:
        refusals.append(
            Refusal(
                "exclusive",
                f"it cannot be opened exclusively ({exc.strerror})",
                "stop whatever holds it open",
            )
        )
    return refusals


def safety_problems(dev: str) -> list[str]:
    """write_refusals() as lines, no override: the check of the devices blkcmp creates."""
    return [r.what for r in write_refusals(dev)]


def require_safe(dev: str) -> None:
    refusals = write_refusals(dev)
    if refusals:
        raise RunError(f"refusing to write to {dev}: {'; '.join(r.line() for r in refusals)}")


def save_queue(dev: str, settings: QueueSettings) -> dict[str, str]:
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


# ------------------------------------------------------------------------------------------
# Identity: what a whole block device is, read from sysfs (names like sda and nvme0n1 move
# between boots; serial, WWN and model do not).

# The identity keys a workload may give, and those that single out one device (model and size
# do not: two disks of a batch share them). A loop device, the tests' stand-in for a user's
# disk, has no serial or WWN; its backing file is what names it.
IDENTITY_KEYS = ("wwn", "serial", "model", "size_bytes", "backing_file", "nsid", "eui", "nguid")
UNIQUE_IDENTITY_KEYS = ("wwn", "serial", "backing_file", "eui", "nguid")


def _vpd_serial(path: Path) -> str | None:
    # SCSI VPD page 0x80: 4-byte header (byte 3 = length), then the unit serial number.
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if len(raw) < 4:
        return None
    return raw[4 : 4 + raw[3]].decode("ascii", "replace").strip() or None


def _first(*paths: Path) -> str | None:
    for path in paths:
        value = _read(path)
        if value:
            return value
    return None


def _driver(name: str) -> str | None:
    """The driver bound to the device (or the nearest parent that has one), else the name the
    block major is registered under in /proc/devices (loop, virtblk, ...)."""
    node = Path(os.path.realpath(SYS_BLOCK / name))
    for parent in [node / "device", *(node / "device").parents] if (node / "device").exists() else []:
        link = parent / "driver"
        if link.exists():
            return Path(os.path.realpath(link)).name
        if parent == Path("/sys/devices"):
            break
    majmin = _majmin(name)
    if majmin:
        major = majmin.split(":")[0]
        text = (_read(Path("/proc/devices")) or "").split("Block devices:", 1)[-1]
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == major:
                return parts[1]
    return None


def by_id_links(name: str) -> list[str]:
    """The /dev/disk/by-id names udev gave the device (none without udev)."""
    directory = Path("/dev/disk/by-id")
    if not directory.is_dir():
        return []
    return sorted(str(p) for p in directory.iterdir() if disk_name(str(p)) == name)


def disk_facts(base: Path) -> dict[str, Any]:
    """What a disk's own sysfs directory (`base`, /sys/block/NAME or a stand-in) says of it:
    NVMe namespace ids (None elsewhere), size, block sizes, read-only, hardware queues."""
    sectors = _read(base / "size")
    return {
        "nsid": _read(base / "nsid"),
        "eui": _read(base / "eui"),
        "nguid": _read(base / "nguid"),
        "size_bytes": str(int(sectors) * 512) if sectors and sectors.isdigit() else None,
        "logical_block_size": _read(base / "queue" / "logical_block_size"),
        "physical_block_size": _read(base / "queue" / "physical_block_size"),
        "rotational": _read(base / "queue" / "rotational"),
        "read_only": _read(base / "ro"),
        "nr_hw_queues": str(len(list((base / "mq").glob("*")))) if (base / "mq").is_dir() else None,
    }


def identity(dev: str) -> dict[str, Any]:
    """A whole block device's identity and shape, read back from sysfs: model, serial, firmware,
    WWN, size, block sizes, the driver bound, queue counts (None where the device has none)."""
    name = disk_name(dev)
    base = SYS_BLOCK / name
    device = base / "device"
    return {
        "name": name,
        "model": _first(device / "model", base / "model"),
        "vendor": _first(device / "vendor"),
        "serial": _first(device / "serial", base / "serial") or _vpd_serial(device / "vpd_pg80"),
        "firmware": _first(device / "firmware_rev", device / "rev"),
        "wwn": _first(base / "wwid", device / "wwid"),
        **disk_facts(base),
        "driver": _driver(name),
        "backing_file": _read(base / "loop" / "backing_file"),
        "by_id": by_id_links(name),
    }


# The identity facts shown to people (`blkcmp targets`, the report's target section).
IDENTITY_SHOWN = (
    "model",
    "serial",
    "wwn",
    "firmware",
    "size_bytes",
    "logical_block_size",
    "physical_block_size",
    "driver",
    "nr_hw_queues",
    "backing_file",
    "nsid",
    "eui",
    "nguid",
    "address",
    "transport",
)


def identity_summary(found: dict[str, Any]) -> str:
    """`key=value, …` of the identity facts a device has."""
    return ", ".join(f"{k}={found[k]}" for k in IDENTITY_SHOWN if found.get(k))


def identity_mismatches(
    wanted: dict[str, str], found: dict[str, Any], keys: tuple[str, ...] = IDENTITY_KEYS
) -> list[str]:
    """Each identity key the workload gives that the device does not have, as `key: wanted X, found Y`."""
    return [
        f"{key}: wanted {shorten(repr(wanted[key]))}, found {shorten(repr(found.get(key)))}"
        for key in keys
        if key in wanted and str(found.get(key)) != str(wanted[key])
    ]


def whole_disks() -> list[str]:
    """Every whole block device in sysfs with a capacity (unattached loop devices left out)."""
    return [
        f"/dev/{p.name}" for p in sorted(SYS_BLOCK.iterdir()) if (_read(p / "size") or "0") not in ("0", "")
    ]
