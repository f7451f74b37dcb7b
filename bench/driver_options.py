"""The option names each driver family understands, as plain data.

The workload schema checks option names against these tables (typos are caught when the file is
loaded, with a "did you mean"); whether the *running kernel* honours an option is decided later,
when a target probes the system. Kept free of side effects so `workload.py` can import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OptionSpec:
    kind: type  # int, bool or str
    help: str


def _int(help: str) -> OptionSpec:
    return OptionSpec(int, help)


def _bool(help: str) -> OptionSpec:
    return OptionSpec(bool, help)


# configfs attribute names of null_blk (Linux 7.2's `features`, plus `power`/`index` which blkcmp owns).
NULL_BLK_OPTIONS: dict[str, OptionSpec] = {
    "size": _int("device size in MiB"),
    "blocksize": _int("logical = physical block size in bytes"),
    "irqmode": _int("completion: 0 inline, 1 softirq, 2 timer"),
    "completion_nsec": _int("completion delay in ns for irqmode 2"),
    "hw_queue_depth": _int("tags per hardware queue"),
    "submit_queues": _int("normal hardware queues"),
    "poll_queues": _int("polled hardware queues (0 to match rnull)"),
    "memory_backed": _bool("store data in RAM (forces blocking)"),
    "no_sched": _bool("no I/O scheduler by default"),
    "blocking": _bool("BLK_MQ_F_BLOCKING: queue_rq may sleep"),
    "shared_tags": _bool("one module-wide tag set"),
    "shared_tag_bitmap": _bool("one tag space for all hardware queues"),
    "use_per_node_hctx": _bool("one hardware queue per NUMA node"),
    "home_node": _int("NUMA node for allocations"),
    "queue_mode": _int("2 = blk-mq (the only mode left)"),
    "max_sectors": _int("largest command in 512 B sectors (0 = default)"),
    "mbps": _int("bandwidth cap in MiB/s (0 = none)"),
    "cache_size": _int("volatile write cache in MiB (memory_backed only)"),
    "discard": _bool("discard support (memory_backed only)"),
    "fua": _bool("advertise FUA when cache_size > 0"),
    "rotational": _bool("advertise a rotational device (6.14+)"),
    "virt_boundary": _bool("virtual boundary mask PAGE_SIZE-1"),
    "zoned": _bool("host-managed zoned device"),
    "zone_size": _int("zone size in MB"),
    "zone_capacity": _int("zone capacity in MB"),
    "zone_nr_conv": _int("conventional zones"),
    "zone_max_open": _int("max open zones"),
    "zone_max_active": _int("max active zones"),
    "zone_append_max_sectors": _int("zone append limit"),
    "zone_full": _bool("start sequential zones full"),
    "badblocks": OptionSpec(str, "bad sector range to add, +START-END (or -START-END to clear)"),
    "badblocks_once": _bool("clear a bad range after one failure (6.15+)"),
    "badblocks_partial_io": _bool("transfer up to the first bad block (6.15+)"),
}

# Options the two drivers name differently: null_blk's name -> the out-of-tree rnull's name (the
# feature-parity series, 79/83 patches, 2026). The one home of this mapping: a workload may use
# either name for either driver, and each driver gets the name its running kernel offers.
RENAMED = {"cache_size": "cache_size_mib"}

# Every name some known version of either driver has, so that a typo is caught when the workload
# is loaded; whether the *running* driver offers it is decided by probing its configfs attribute
# files (bench.targets.configfs.probe_attributes).
KNOWN_CONFIGFS_OPTIONS: dict[str, OptionSpec] = NULL_BLK_OPTIONS | {
    "cache_size_mib": _int("volatile write cache in MiB (out-of-tree rnull's name of cache_size)"),
}
NULL_BLK_OPTIONS = KNOWN_CONFIGFS_OPTIONS
# rnull takes the same names (so one `common:` block can serve both); which of them a kernel's
# rnull honours, or fixes at a value, is decided by bench.targets.rnull against the kernel.
RNULL_OPTIONS = KNOWN_CONFIGFS_OPTIONS

# Attributes that name or drive a device rather than configure it: never compared between targets.
NOT_SETTINGS = frozenset({"power", "index", "badblocks", "zone_readonly", "zone_offline", "features"})


def name_for(option: str, offered: set[str] | frozenset[str]) -> str:
    """The name under which a driver offering these attribute files takes `option` (either
    driver's spelling): the option itself when offered, else its other spelling when that is."""
    if option in offered:
        return option
    partner = RENAMED.get(option) or next((a for a, b in RENAMED.items() if b == option), None)
    return partner if partner is not None and partner in offered else option


def canonical(option: str) -> str:
    """null_blk's name of an option (how the fairness audit keys it)."""
    return next((a for a, b in RENAMED.items() if b == option), option)


def spelled_twice(options) -> list[str]:
    """Options given under both drivers' names (cache_size and cache_size_mib): ambiguous."""
    return [f"{a} and {b}" for a, b in RENAMED.items() if a in options and b in options]


_SIZE = _int("size of the backing file or region in MiB")
_DIRECTORY = OptionSpec(str, "directory for the backing file (default /dev/shm)")

FILE_OPTIONS = {"size": _SIZE, "directory": _DIRECTORY}
LOOP_OPTIONS = {
    "size": _SIZE,
    "directory": _DIRECTORY,
    "blocksize": _int("logical block size of the loop device (losetup --sector-size)"),
    "direct_io": _bool("loop device uses direct I/O on its backing file"),
}
FIO_NULL_OPTIONS = {"size": _SIZE}

DRIVER_OPTIONS: dict[str, dict[str, OptionSpec]] = {
    "null_blk": NULL_BLK_OPTIONS,
    "rnull": RNULL_OPTIONS,
    "file": FILE_OPTIONS,
    "loop": LOOP_OPTIONS,
    "fio-null": FIO_NULL_OPTIONS,
    "blockdev": {},  # an existing device: named by `device`/`identity`, nothing to configure
    "nvme": {},  # an NVMe namespace: named by `identity`, nothing to configure
}

# Drivers whose devices are block devices with a sysfs queue (queue settings and audit apply).
BLOCK_DRIVERS = frozenset({"null_blk", "rnull", "loop", "blockdev", "nvme"})
