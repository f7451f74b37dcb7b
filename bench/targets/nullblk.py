"""The C driver: null_blk, through configfs (/sys/kernel/config/nullb) or module parameters.

configfs is preferred: each target gets its own `nullbN` directory with exactly the options the
workload names, checked first against the running kernel's `features` file (an option this kernel
lacks is an error naming it and the release — never dropped). Values the kernel clamps at
power-on (submit_queues, poll_queues, irqmode, ...) are read back and recorded. Without configfs,
a loadable null_blk is loaded with the equivalent module parameters (`gb`, `bs`, ...), creating
`nullb0`, and unloaded on teardown.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

from bench import ledger
from bench.errors import RunError, UsageError
from bench.targets import blockdev, configfs
from bench.targets.base import Availability, Device, Target

# configfs name -> module parameter name, where they differ (size is MiB in configfs, GiB as `gb`).
MODULE_PARAM = {"blocksize": "bs", "size": "gb"}


def subsystem() -> Path:
    return configfs.CONFIGFS / "nullb"


def host_available() -> Availability:
    """Is null_blk usable on this kernel, and through which interface? Changes nothing."""
    if subsystem().is_dir():
        return Availability(True, interface="configfs")
    if configfs.configfs_supported() and Path("/sys/module/null_blk").exists():
        return Availability(True, interface="configfs (mounted on setup)")
    if _module_file_exists("null_blk"):
        return Availability(
            True, interface="configfs" if configfs.configfs_supported() else "module parameters"
        )
    return Availability(False, f"kernel {platform.release()} has no null_blk (CONFIG_BLK_DEV_NULL_BLK)")


def _module_file_exists(module: str) -> bool:
    try:
        out = subprocess.run(["modinfo", "-n", module], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def _ensure_loaded() -> None:
    if subsystem().is_dir():
        return
    configfs.ensure_mounted()
    if not subsystem().is_dir():
        # nr_devices=0: configfs creates the devices; poll_queues is the ceiling for every device.
        configfs.modprobe("null_blk", "nr_devices=0")
    if not subsystem().is_dir():
        raise RunError(f"null_blk configfs ({subsystem()}) missing on kernel {platform.release()}")


@ledger.cleaner("nullb-configfs")
def _remove_configfs(data: dict) -> None:
    configfs.remove(subsystem(), data["name"])


@ledger.cleaner("nullb-module")
def _remove_module(data: dict) -> None:
    subprocess.run(["modprobe", "-r", "null_blk"], capture_output=True)


class NullBlkTarget(Target):
    driver = "null_blk"

    def probe(self) -> Availability:
        return host_available()

    def planned_filename(self) -> str:
        return self.device.filename if self.device else "/dev/nullb0"

    def option_problems(self, features: set[str], release: str | None = None) -> list[str]:
        missing = [k for k in self.options if k not in features]
        if not missing:
            return []
        return [
            f"target {self.name}: null_blk on kernel {release or platform.release()} has no option "
            f"{', '.join(missing)} (its features: {', '.join(sorted(features))})"
        ]

    def check_options(self, features: set[str]) -> None:
        problems = self.option_problems(features)
        if problems:
            raise UsageError("\n".join(problems))

    def recorded_kernel_problems(self, drivers, release: str) -> list[str]:
        facts = drivers.get("null_blk")
        if not facts:
            return [f"target {self.name}: kernel {release} has no null_blk"]
        return self.option_problems(set(facts.get("features") or ()), release)

    def kernel_problems(self) -> list[str]:
        # The features file exists once null_blk is loaded and configfs mounted; before that
        # nothing is loaded or mounted here, and setup() checks.
        features = configfs.read_features(subsystem()) if subsystem().is_dir() else set()
        return self.option_problems(features) if features else []

    def setup(self) -> Device:
        avail = host_available()
        if not avail.ok:
            raise RunError(f"target {self.name}: {avail.reason}")
        if avail.interface == "module parameters":
            return self._setup_module()
        _ensure_loaded()
        features = configfs.read_features(subsystem())
        self.check_options(features)
        name = configfs.free_name(subsystem(), "nullb")
        self._rid = ledger.register("nullb-configfs", {"name": name})
        self._name = name
        dev = configfs.create(subsystem(), name, self.options)
        blockdev.require_safe(dev)
        self.applied_queue = blockdev.apply_queue(dev, self.queue)
        self.interface = "configfs"
        self.device = Device(dev, {}, block_device=dev)
        return self.device

    def _setup_module(self) -> Device:
        params = []
        for key, value in self.options.items():
            if key == "size":
                if value % 1024:
                    raise UsageError(
                        f"target {self.name}: without configfs null_blk takes size in "
                        f"whole GiB (module parameter gb); {value} MiB is not"
                    )
                value = value // 1024
            params.append(f"{MODULE_PARAM.get(key, key)}={int(value) if isinstance(value, bool) else value}")
        if Path("/sys/module/null_blk").exists():
            raise RunError(
                f"target {self.name}: null_blk is already loaded; without configfs blkcmp "
                "needs to load it itself with the workload's parameters"
            )
        self._rid = ledger.register("nullb-module", {"params": params})
        if not configfs.modprobe("null_blk", "nr_devices=1", *params):
            raise RunError(f"target {self.name}: modprobe null_blk {' '.join(params)} failed")
        self._name = "nullb0"
        dev = configfs.wait_for_disk("nullb0")
        self.applied_queue = blockdev.apply_queue(dev, self.queue)
        self.interface = "module parameters"
        self.device = Device(dev, {}, block_device=dev)
        return self.device

    def settings(self) -> dict[str, str]:
        if getattr(self, "interface", "") == "configfs":
            return configfs.read_attrs(subsystem() / self._name)
        params = Path("/sys/module/null_blk/parameters")
        return {p.name: p.read_text().strip() for p in sorted(params.glob("*"))} if params.is_dir() else {}

    def describe(self) -> dict[str, Any]:
        if not self.device:
            return {"driver": self.driver}
        settings = self.settings()
        irqmode = settings.get("irqmode", "?")
        completion = {"0": "inline", "1": "softirq", "2": f"timer {settings.get('completion_nsec', '?')} ns"}
        return {
            "driver": self.driver,
            "device": self.device.filename,
            "interface": self.interface,
            "requested": self.options,
            "settings": settings,
            "clamped": {
                k: settings.get(k)
                for k, v in self.options.items()
                if k in settings and str(int(v) if isinstance(v, bool) else v) != settings.get(k)
            },
            "kernel": platform.release(),
            "audit": blockdev.audit(self.device.filename)
            | {"completion": completion.get(irqmode, f"irqmode {irqmode}")},
        }

    def teardown(self) -> None:
        if getattr(self, "_rid", None) is None:
            self.device = None
            return
        if getattr(self, "interface", "configfs") == "module parameters":
            _remove_module({})
        else:
            configfs.remove(subsystem(), self._name)
        ledger.forget(self._rid)
        self._rid = None
        self.device = None
