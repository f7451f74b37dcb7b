"""The Rust driver: rnull, in both of its mainline interfaces.

* Linux 6.11–6.17: module `rnull_mod` makes one fixed `/dev/rnullb0` (4 KiB blocks, 4 GiB, one
  hardware queue of depth 256, inline completion) and takes no options at all.
* Linux 6.18+: configfs `/sys/kernel/config/rnull/<name>` with power, blocksize, size, rotational
  and irqmode (0 or 1). The out-of-tree feature-parity rnull (2026) adds about 24 attributes
  (completion_nsec, memory_backed, submit_queues, hw_queue_depth, cache_size_mib, ...) and irqmode
  2; its `features` string is garbled in some versions, so what a kernel's rnull offers is read
  from the attribute files of a device directory (bench.targets.configfs.probe_attributes).
An option rnull offers is written under its own name (null_blk's `cache_size` becomes
`cache_size_mib`). One it does not offer is an error naming the kernel and what it offers, unless
the workload asks for exactly the value rnull has built in (hw_queue_depth 256, submit_queues 1,
poll_queues 0, no memory backing, ...): then it is accepted and recorded as fixed, so one
`common:` block can serve null_blk and rnull alike.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from bench import ledger
from bench.driver_options import canonical, name_for, spelled_twice
from bench.errors import RunError, UsageError
from bench.targets import blockdev, configfs
from bench.targets.base import Availability, Device, Target

FIXED_DEVICE = "rnullb0"

# What rnull (every mainline version through 7.2) has built in, in null_blk's option names.
BUILT_IN = {
    "hw_queue_depth": 256,
    "submit_queues": 1,
    "poll_queues": 0,
    "memory_backed": 0,
    "blocking": 0,
    "shared_tags": 0,
    "shared_tag_bitmap": 0,
    "use_per_node_hctx": 0,
    "zoned": 0,
    "mbps": 0,
    "discard": 0,
    "cache_size": 0,
    "queue_mode": 2,
    "virt_boundary": 0,
    "max_sectors": 0,
    "no_sched": 0,
}
# What the 6.11–6.17 fixed device has on top of that.
FIXED_INTERFACE = BUILT_IN | {"blocksize": 4096, "size": 4096, "irqmode": 0, "rotational": 0}
# Mainline rnull takes irqmode 0 or 1 only; the timer mode (2) came with `completion_nsec`, so a
# driver offering that attribute takes irqmode 2 as well.
ALLOWED_VALUES = {"irqmode": (0, 1)}
TIMER_ATTRIBUTE = "completion_nsec"


def subsystem(tree: configfs.Tree | None = None) -> Path:
    return (tree or configfs.Tree()).subsystem("rnull")


def interface(tree: configfs.Tree | None = None) -> str | None:
    """ "configfs", "fixed", or None when this kernel has no rnull (may load rnull_mod)."""
    if subsystem(tree).is_dir():
        return "configfs"
    if Path(f"/sys/block/{FIXED_DEVICE}").exists():
        return "fixed"
    if configfs.configfs_supported():
        try:
            configfs.ensure_mounted(tree)
        except RunError:
            pass
    configfs.modprobe("rnull_mod")
    if subsystem(tree).is_dir():
        return "configfs"
    if Path(f"/sys/block/{FIXED_DEVICE}").exists():
        return "fixed"
    return None


def host_available(tree: configfs.Tree | None = None) -> Availability:
    if subsystem(tree).is_dir():
        return Availability(True, interface="configfs")
    if Path(f"/sys/block/{FIXED_DEVICE}").exists():
        return Availability(True, interface=f"fixed /dev/{FIXED_DEVICE}")
    from bench.targets.nullblk import _module_file_exists

    if _module_file_exists("rnull_mod"):
        return Availability(True, interface="module rnull_mod (loaded on setup)")
    return Availability(False, f"kernel {platform.release()} has no rnull (CONFIG_BLK_DEV_RUST_NULL)")


def honoured(kind: str, offered: set[str]) -> dict[str, Any]:
    """option -> None (settable) or its fixed value, for this kernel's rnull offering these
    attributes (its own names: `cache_size_mib`, not `cache_size`)."""
    if kind == "fixed":
        return dict(FIXED_INTERFACE)
    return {k: None for k in offered if k != "power"} | {
        k: v for k, v in BUILT_IN.items() if name_for(k, offered) not in offered
    }


def option_problems(
    options: dict[str, Any], kind: str, offered: set[str], recreate: str = "session"
) -> list[str]:
    can = honoured(kind, offered)
    problems = [f"options {pair} are one option under two names; give one" for pair in spelled_twice(options)]
    if kind == "fixed" and recreate == "run":
        problems.append(
            f"rnull is the fixed /dev/{FIXED_DEVICE} here, which cannot be re-created: "
            "recreate: run is impossible (use recreate: session)"
        )
    for key, value in options.items():
        value = int(value) if isinstance(value, bool) else value
        # Under the name this rnull offers it by, else null_blk's (how built-ins are named).
        key = name_for(key, offered) if name_for(key, offered) in offered else canonical(key)
        if key not in can:
            settable = sorted(k for k, v in can.items() if v is None)
            problems.append(
                f"rnull cannot honour {key}={value} (settable here: {', '.join(settable) or 'nothing'})"
            )
        elif can[key] is not None and value != can[key]:
            problems.append(f"rnull cannot honour {key}={value}: it is fixed at {can[key]}")
        elif key in ALLOWED_VALUES and TIMER_ATTRIBUTE not in offered and value not in ALLOWED_VALUES[key]:
            problems.append(
                f"rnull cannot honour {key}={value}: it accepts only "
                f"{' or '.join(map(str, ALLOWED_VALUES[key]))}"
            )
    return problems


@ledger.cleaner("rnull-configfs")
def _remove_configfs(data: dict) -> None:
    tree = configfs.Tree(data.get("root"))
    configfs.remove(tree, subsystem(tree), data["name"])


def offered_here(tree: configfs.Tree) -> tuple[set[str], str]:
    """(attributes the loaded configfs rnull offers, "attribute files" or "features")."""
    return configfs.offered(tree, subsystem(tree), "rnull-configfs")


@ledger.cleaner("queue-restore")
def _restore_queue(data: dict) -> None:
    if Path(data["device"]).exists():
        blockdev.restore_queue(data["device"], data["saved"])


class RnullTarget(Target):
    driver = "rnull"

    @property
    def tree(self) -> configfs.Tree:
        return self.context.configfs or configfs.Tree()

    def probe(self) -> Availability:
        return host_available(self.tree)

    def planned_filename(self) -> str:
        return self.device.filename if self.device else f"/dev/{FIXED_DEVICE}"

    def problems(self, kind: str, offered: set[str], release: str) -> list[str]:
        problems = option_problems(self.options, kind, offered, self.recreate)
        return [f"target {self.name}: on kernel {release} " + "; ".join(problems)] if problems else []

    def recorded_kernel_problems(self, drivers, release: str) -> list[str]:
        facts = drivers.get("rnull")
        if not facts:
            return [f"target {self.name}: kernel {release} has no rnull"]
        # Smoke boots since e031c4f record the attribute files; older entries only `features`
        # (which some out-of-tree versions garble).
        offered = facts.get("attributes") or facts.get("features") or ()
        return self.problems(facts["interface"], set(offered) - {"power"}, release)

    def kernel_problems(self) -> list[str]:
        # The interface as it is now, without loading rnull_mod (setup() checks after loading).
        if subsystem(self.tree).is_dir():
            kind, (offered, _) = "configfs", offered_here(self.tree)
        elif Path(f"/sys/block/{FIXED_DEVICE}").exists():
            kind, offered = "fixed", set()
        else:
            return []
        return self.problems(kind, offered, platform.release())

    def written_options(self, offered: set[str]) -> dict[str, Any]:
        """The options this rnull offers, under its own names (what is written to configfs)."""
        return {name_for(k, offered): v for k, v in self.options.items() if name_for(k, offered) in offered}

    def setup(self) -> Device:
        kind = interface(self.tree)
        if kind is None:
            raise RunError(f"target {self.name}: kernel {platform.release()} has no rnull")
        offered = offered_here(self.tree)[0] if kind == "configfs" else set()
        problems = self.problems(kind, offered, platform.release())
        if problems:
            raise UsageError("\n".join(problems))
        self.kind = kind
        self.offered = offered
        if kind == "fixed":
            dev = f"/dev/{FIXED_DEVICE}"
            blockdev.require_safe(dev)
            # The fixed device outlives blkcmp: save its queue settings and restore them on teardown.
            saved = blockdev.save_queue(dev, self.queue)
            self._rid = ledger.register("queue-restore", {"device": dev, "saved": saved})
            self._saved = saved
        else:
            self.written = self.written_options(offered)
            name = configfs.free_name(subsystem(self.tree), "rnullb")
            self._rid = ledger.register("rnull-configfs", {"name": name, "root": str(self.tree.root)})
            self._name = name
            dev = configfs.create(self.tree, subsystem(self.tree), name, self.written)
            blockdev.require_safe(dev)
        self.applied_queue = blockdev.apply_queue(dev, self.queue)
        self.device = Device(dev, {}, block_device=dev)
        return self.device

    def attributes_read(self) -> dict[str, str]:
        return configfs.read_attrs(subsystem(self.tree) / self._name)

    def settings(self) -> dict[str, Any]:
        if getattr(self, "kind", None) == "configfs":
            read = self.attributes_read()
            fixed = {k: str(v) for k, v in BUILT_IN.items() if name_for(k, set(read)) not in read}
            return read | fixed
        return {k: str(v) for k, v in FIXED_INTERFACE.items()}

    def describe(self) -> dict[str, Any]:
        if not self.device:
            return {"driver": self.driver}
        settings = self.settings()
        irqmode = settings.get("irqmode", "0")
        completion = {
            "0": "inline",
            "1": "softirq",
            "2": f"timer {settings.get('completion_nsec', '?')} ns",
        }
        return {
            "driver": self.driver,
            "device": self.device.filename,
            "interface": "configfs" if self.kind == "configfs" else f"fixed /dev/{FIXED_DEVICE}",
            "requested": self.options,
            "written": getattr(self, "written", {}),  # under the names this driver takes
            "settings": settings,
            "fixed": sorted(k for k in self.options if name_for(k, self.offered) not in self.offered),
            "kernel": platform.release(),
            "audit": blockdev.audit(self.device.filename)
            | {"completion": completion.get(irqmode, f"irqmode {irqmode}")}
            # Only attribute files: built-in values are no attributes, and what they shape is
            # audited from sysfs already (nr_hw_queues, nr_tags).
            | (configfs.attribute_audit(self.attributes_read()) if self.kind == "configfs" else {}),
        }

    def teardown(self) -> None:
        if getattr(self, "_rid", None) is None:
            self.device = None
            return
        if self.kind == "fixed":
            blockdev.restore_queue(f"/dev/{FIXED_DEVICE}", self._saved)
        else:
            configfs.remove(self.tree, subsystem(self.tree), self._name)
        ledger.forget(self._rid)
        self._rid = None
        self.device = None
