"""The Rust driver: rnull, in both of its mainline interfaces.

* Linux 6.11–6.17: module `rnull_mod` makes one fixed `/dev/rnullb0` (4 KiB blocks, 4 GiB, one
  hardware queue of depth 256, inline completion) and takes no options at all.
* Linux 6.18+: configfs `/sys/kernel/config/rnull/<name>` with power, blocksize, size, rotational
  and irqmode (0 or 1); its `features` file says which, and a later kernel may list more.
An option rnull cannot honour is an error that says so, unless the workload asks for exactly the
value rnull has built in (hw_queue_depth 256, submit_queues 1, poll_queues 0, no memory backing,
...): then it is accepted and recorded as fixed, so one `common:` block can serve null_blk and
rnull alike.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from bench import ledger
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
ALLOWED_VALUES = {"irqmode": (0, 1)}


def subsystem() -> Path:
    return configfs.CONFIGFS / "rnull"


def interface() -> str | None:
    """ "configfs", "fixed", or None when this kernel has no rnull (may load rnull_mod)."""
    if subsystem().is_dir():
        return "configfs"
    if Path(f"/sys/block/{FIXED_DEVICE}").exists():
        return "fixed"
    if configfs.configfs_supported():
        try:
            configfs.ensure_mounted()
        except RunError:
            pass
    configfs.modprobe("rnull_mod")
    if subsystem().is_dir():
        return "configfs"
    if Path(f"/sys/block/{FIXED_DEVICE}").exists():
        return "fixed"
    return None


def host_available() -> Availability:
    if subsystem().is_dir():
        return Availability(True, interface="configfs")
    if Path(f"/sys/block/{FIXED_DEVICE}").exists():
        return Availability(True, interface=f"fixed /dev/{FIXED_DEVICE}")
    from bench.targets.nullblk import _module_file_exists

    if _module_file_exists("rnull_mod"):
        return Availability(True, interface="module rnull_mod (loaded on setup)")
    return Availability(False, f"kernel {platform.release()} has no rnull (CONFIG_BLK_DEV_RUST_NULL)")


def honoured(kind: str, features: set[str]) -> dict[str, Any]:
    """option -> None (settable) or its fixed value, for this kernel's rnull."""
    if kind == "fixed":
        return dict(FIXED_INTERFACE)
    return {k: None for k in features if k != "power"} | {
        k: v for k, v in BUILT_IN.items() if k not in features
    }


def option_problems(options: dict[str, Any], kind: str, features: set[str]) -> list[str]:
    can = honoured(kind, features)
    problems = []
    for key, value in options.items():
        value = int(value) if isinstance(value, bool) else value
        if key not in can:
            settable = sorted(k for k, v in can.items() if v is None)
            problems.append(
                f"rnull cannot honour {key}={value} (settable here: {', '.join(settable) or 'nothing'})"
            )
        elif can[key] is not None and value != can[key]:
            problems.append(f"rnull cannot honour {key}={value}: it is fixed at {can[key]}")
        elif key in ALLOWED_VALUES and value not in ALLOWED_VALUES[key]:
            problems.append(
                f"rnull cannot honour {key}={value}: it accepts only "
                f"{' or '.join(map(str, ALLOWED_VALUES[key]))}"
            )
    return problems


@ledger.cleaner("rnull-configfs")
def _remove_configfs(data: dict) -> None:
    configfs.remove(subsystem(), data["name"])


@ledger.cleaner("queue-restore")
def _restore_queue(data: dict) -> None:
    if Path(data["device"]).exists():
        blockdev.restore_queue(data["device"], data["saved"])


class RnullTarget(Target):
    driver = "rnull"

    def probe(self) -> Availability:
        return host_available()

    def planned_filename(self) -> str:
        return self.device.filename if self.device else f"/dev/{FIXED_DEVICE}"

    def recorded_kernel_problems(self, drivers, release: str) -> list[str]:
        facts = drivers.get("rnull")
        if not facts:
            return [f"target {self.name}: kernel {release} has no rnull"]
        problems = option_problems(self.options, facts["interface"], set(facts.get("features") or ()))
        return [f"target {self.name}: on kernel {release} " + "; ".join(problems)] if problems else []

    def kernel_problems(self) -> list[str]:
        # The interface as it is now, without loading rnull_mod (setup() checks after loading).
        if subsystem().is_dir():
            kind, features = "configfs", configfs.read_features(subsystem())
        elif Path(f"/sys/block/{FIXED_DEVICE}").exists():
            kind, features = "fixed", set()
        else:
            return []
        problems = option_problems(self.options, kind, features)
        return (
            [f"target {self.name}: on kernel {platform.release()} " + "; ".join(problems)] if problems else []
        )

    def setup(self) -> Device:
        kind = interface()
        if kind is None:
            raise RunError(f"target {self.name}: kernel {platform.release()} has no rnull")
        features = configfs.read_features(subsystem()) if kind == "configfs" else set()
        problems = option_problems(self.options, kind, features)
        if problems:
            raise UsageError(f"target {self.name}: on kernel {platform.release()} " + "; ".join(problems))
        self.kind = kind
        if kind == "fixed":
            dev = f"/dev/{FIXED_DEVICE}"
            blockdev.require_safe(dev)
            # The fixed device outlives blkcmp: save its queue settings and restore them on teardown.
            saved = blockdev.save_queue(dev, self.queue)
            self._rid = ledger.register("queue-restore", {"device": dev, "saved": saved})
            self._saved = saved
        else:
            settable = {k: v for k, v in self.options.items() if k in features}
            name = configfs.free_name(subsystem(), "rnullb")
            self._rid = ledger.register("rnull-configfs", {"name": name})
            self._name = name
            dev = configfs.create(subsystem(), name, settable)
            blockdev.require_safe(dev)
        self.applied_queue = blockdev.apply_queue(dev, self.queue)
        self.device = Device(dev, {}, block_device=dev)
        return self.device

    def settings(self) -> dict[str, Any]:
        if getattr(self, "kind", None) == "configfs":
            read = configfs.read_attrs(subsystem() / self._name)
            fixed = {k: str(v) for k, v in BUILT_IN.items() if k not in read}
            return read | fixed
        return {k: str(v) for k, v in FIXED_INTERFACE.items()}

    def describe(self) -> dict[str, Any]:
        if not self.device:
            return {"driver": self.driver}
        settings = self.settings()
        irqmode = settings.get("irqmode", "0")
        return {
            "driver": self.driver,
            "device": self.device.filename,
            "interface": "configfs" if self.kind == "configfs" else f"fixed /dev/{FIXED_DEVICE}",
            "requested": self.options,
            "settings": settings,
            "fixed": sorted(k for k in self.options if k not in configfs.read_features(subsystem())),
            "kernel": platform.release(),
            "audit": blockdev.audit(self.device.filename)
            | {"completion": {"0": "inline", "1": "softirq"}.get(irqmode, f"irqmode {irqmode}")},
        }

    def teardown(self) -> None:
        if getattr(self, "_rid", None) is None:
            self.device = None
            return
        if self.kind == "fixed":
            blockdev.restore_queue(f"/dev/{FIXED_DEVICE}", self._saved)
        else:
            configfs.remove(subsystem(), self._name)
        ledger.forget(self._rid)
        self._rid = None
        self.device = None
