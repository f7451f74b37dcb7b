"""The C driver: null_blk, through configfs (/sys/kernel/config/nullb) or module parameters.

configfs is preferred: each target gets its own `nullbN` directory with exactly the options the
workload names, checked first against the attribute files of a device directory of the running
kernel's null_blk (its `features` file only where no directory can be made; an option this kernel
lacks is an error naming it and the release — never dropped). An option spelled the out-of-tree
rnull's way (`cache_size_mib`) is written under null_blk's name (bench.driver_options.RENAMED). Values the kernel clamps at
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
from bench.driver_options import name_for, spelled_twice
from bench.errors import RunError, UsageError
from bench.targets import blockdev, configfs
from bench.targets.base import Availability, Device, Target

# configfs name -> module parameter name, where they differ (size is MiB in configfs, GiB as `gb`).
MODULE_PARAM = {"blocksize": "bs", "size": "gb"}


def subsystem(tree: configfs.Tree | None = None) -> Path:
    return (tree or configfs.Tree()).subsystem("nullb")


def host_available(tree: configfs.Tree | None = None) -> Availability:
    """Is null_blk usable on this kernel, and through which interface? Changes nothing."""
    if subsystem(tree).is_dir():
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


def _ensure_loaded(tree: configfs.Tree) -> None:
    if subsystem(tree).is_dir():
        return
    configfs.ensure_mounted(tree)
    if not subsystem(tree).is_dir():
        # nr_devices=0: configfs creates the devices; poll_queues is the ceiling for every device.
        configfs.modprobe("null_blk", "nr_devices=0")
    if not subsystem(tree).is_dir():
        raise RunError(f"null_blk configfs ({subsystem(tree)}) missing on kernel {platform.release()}")


@ledger.cleaner("nullb-configfs")
def _remove_configfs(data: dict) -> None:
    tree = configfs.Tree(data.get("root"))
    configfs.remove(tree, subsystem(tree), data["name"])


def offered_here(tree: configfs.Tree) -> tuple[set[str], str]:
    """(options the loaded null_blk offers, "attribute files" or "features"); needs it loaded."""
    return configfs.offered(tree, subsystem(tree), "nullb-configfs")


@ledger.cleaner("nullb-module")
def _remove_module(data: dict) -> None:
    subprocess.run(["modprobe", "-r", "null_blk"], capture_output=True)


class NullBlkTarget(Target):
    driver = "null_blk"

    @property
    def tree(self) -> configfs.Tree:
        return self.context.configfs or configfs.Tree()

    def probe(self) -> Availability:
        return host_available(self.tree)

    def planned_filename(self) -> str:
        return self.device.filename if self.device else "/dev/nullb0"

    def option_problems(
        self, offered: set[str], release: str | None = None, source: str = "attribute files"
    ) -> list[str]:
        """What of the workload's options this null_blk (offering `offered`, read from its
        attribute files or, failing those, its features string) cannot take."""
        release = release or platform.release()
        problems = [
            f"target {self.name}: options {pair} are one option under two names; give one"
            for pair in spelled_twice(self.options)
        ]
        missing = [k for k in self.options if name_for(k, offered) not in offered]
        if missing:
            what = "its features" if source == "features" else "it offers"
            problems.append(
                f"target {self.name}: null_blk on kernel {release} has no option "
                f"{', '.join(missing)} ({what}: {', '.join(sorted(offered))})"
            )
        return problems

    def recorded_kernel_problems(self, drivers, release: str) -> list[str]:
        facts = drivers.get("null_blk")
        if not facts:
            return [f"target {self.name}: kernel {release} has no null_blk"]
        # Smoke boots since e031c4f record the attribute files; older entries only `features`.
        if facts.get("attributes"):
            return self.option_problems(set(facts["attributes"]) - {"power"}, release)
        return self.option_problems(set(facts.get("features") or ()) - {"power"}, release, "features")

    def kernel_problems(self) -> list[str]:
        # The subsystem exists once null_blk is loaded and configfs mounted; before that nothing
        # is loaded or mounted here, and setup() checks.
        if not subsystem(self.tree).is_dir():
            return []
        offered, source = offered_here(self.tree)
        return self.option_problems(offered, source=source) if offered else []

    def written_options(self, offered: set[str]) -> dict[str, Any]:
        """The workload's options under the names this null_blk takes (what is written)."""
        return {name_for(k, offered): v for k, v in self.options.items()}

    def setup(self) -> Device:
        avail = host_available()
        if not avail.ok:
            raise RunError(f"target {self.name}: {avail.reason}")
        if avail.interface == "module parameters":
            return self._setup_module()
        _ensure_loaded(self.tree)
        offered, source = offered_here(self.tree)
        problems = self.option_problems(offered, source=source)
        if problems:
            raise UsageError("\n".join(problems))
        self.written = self.written_options(offered)
        name = configfs.free_name(subsystem(self.tree), "nullb")
        self._rid = ledger.register("nullb-configfs", {"name": name, "root": str(self.tree.root)})
        self._name = name
        dev = configfs.create(self.tree, subsystem(self.tree), name, self.written)
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
        self.written = dict(self.options)
        dev = configfs.wait_for_disk("nullb0")
        self.applied_queue = blockdev.apply_queue(dev, self.queue)
        self.interface = "module parameters"
        self.device = Device(dev, {}, block_device=dev)
        return self.device

    def settings(self) -> dict[str, str]:
        if getattr(self, "interface", "") == "configfs":
            return configfs.read_attrs(subsystem(self.tree) / self._name)
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
            "written": self.written,  # under the names this driver takes
            "settings": settings,
            "clamped": {
                k: settings.get(k)
                for k, v in self.written.items()
                if k in settings and str(int(v) if isinstance(v, bool) else v) != settings.get(k)
            },
            "kernel": platform.release(),
            "audit": blockdev.audit(self.device.filename)
            | {"completion": completion.get(irqmode, f"irqmode {irqmode}")}
            | (configfs.attribute_audit(settings) if self.interface == "configfs" else {}),
        }

    def teardown(self) -> None:
        if getattr(self, "_rid", None) is None:
            self.device = None
            return
        if getattr(self, "interface", "configfs") == "module parameters":
            _remove_module({})
        else:
            configfs.remove(self.tree, subsystem(self.tree), self._name)
        ledger.forget(self._rid)
        self._rid = None
        self.device = None
