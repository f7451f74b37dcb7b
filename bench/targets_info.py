"""`blkcmp targets`: which driver families work here, through which interface, with which options."""

from __future__ import annotations

import platform

from bench.driver_options import DRIVER_OPTIONS
from bench.targets import blockdev, configfs, nullblk, nvme, rnull
from bench.targets.base import Context
from bench.targets.host import FileTarget, FioNullTarget, LoopTarget
from bench.workload import QueueSettings


def available_here() -> list[dict]:
    rows = []
    ctx = Context("probe")
    for cls in (FileTarget, LoopTarget, FioNullTarget):
        avail = cls("probe", {}, QueueSettings(), ctx).probe()
        rows.append(
            {
                "driver": cls.driver,
                "available": avail.ok,
                "reason": avail.reason,
                "interface": avail.interface,
                "options": sorted(DRIVER_OPTIONS[cls.driver]),
            }
        )
    avail = nullblk.host_available()
    tree = configfs.Tree()
    # What a loaded driver offers is read from a device directory's attribute files.
    features = sorted(nullblk.offered_here(tree)[0]) if nullblk.subsystem(tree).is_dir() else []
    rows.append(
        {
            "driver": "null_blk",
            "available": avail.ok,
            "reason": avail.reason,
            "interface": avail.interface,
            "options": features or sorted(DRIVER_OPTIONS["null_blk"]),
        }
    )
    avail = rnull.host_available()
    kind = (
        "configfs"
        if rnull.subsystem().is_dir()
        else ("fixed" if avail.ok and "fixed" in avail.interface else None)
    )
    options = []
    if kind:
        offered = rnull.offered_here(tree)[0] if kind == "configfs" else set()
        for key, fixed in sorted(rnull.honoured(kind, offered).items()):
            options.append(key if fixed is None else f"{key} (fixed {fixed})")
    rows.append(
        {
            "driver": "rnull",
            "available": avail.ok,
            "reason": avail.reason,
            "interface": avail.interface,
            "options": options,
        }
    )
    return rows


def existing_devices() -> list[dict]:
    """Every whole block device here: its identity, and whether blkcmp would refuse to write
    to it (the policy of driver blockdev, without overrides) and why."""
    namespaces = set(nvme.namespaces())

    def ident(dev: str) -> dict:
        found = blockdev.identity(dev)
        name = blockdev.disk_name(dev)
        if name in namespaces:  # its controller's identity too: what driver nvme names it by
            found |= {k: v for k, v in nvme.namespace_identity(name).items() if v}
        return found

    return [
        {
            "device": dev,
            "identity": ident(dev),
            "refusals": [r.line() for r in blockdev.write_refusals(dev)],
        }
        for dev in blockdev.whole_disks()
    ]


def render_devices(devices: list[dict]) -> str:
    lines = ["existing block devices (driver blockdev; NVMe namespaces also driver nvme):"]
    for row in devices:
        ident = row["identity"]
        lines.append(f"  {row['device']}: {blockdev.identity_summary(ident)}")
        for link in ident.get("by_id") or []:
            lines.append(f"    by-id: {link}")
        if row["refusals"]:
            lines.append("    write: refused: " + "; ".join(row["refusals"]))
        else:
            lines.append("    write: allowed with destructive: true and a matching identity")
    if not devices:
        lines.append("  none")
    return "\n".join(lines)


def render(rows: list[dict]) -> str:
    lines = [f"kernel {platform.release()}"]
    for row in rows:
        state = f"available ({row['interface']})" if row["available"] else f"unavailable: {row['reason']}"
        lines.append(f"{row['driver']:9s} {state}")
        if row["available"] and row["options"]:
            lines.append(f"          options: {', '.join(row['options'])}")
    return "\n".join(lines)
