"""The target lifecycle every driver family implements: probe → setup → describe → teardown.

blktests-style: each step is explicit, teardown is the mirror of setup, and both are idempotent
(teardown of a target that was never set up, or already torn down, does nothing). Every resource
a target creates is first recorded in the state file (bench.ledger) so `blkcmp cleanup`
can remove it after a SIGKILL.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from bench.targets.configfs import Tree
    from bench.workload import QueueSettings, TargetSpec


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""
    interface: str = ""  # e.g. "configfs", "fixed /dev/rnullb0", "losetup"


@dataclass(frozen=True)
class Device:
    """What fio needs to reach a target once it is set up."""

    filename: str | None  # None: no file at all (fio's null engine)
    fio_options: dict[str, Any] = field(default_factory=dict)  # options the target imposes
    block_device: str | None = None  # /dev/<name> when there is a sysfs queue


@dataclass(frozen=True)
class Context:
    """Per-campaign facts a target needs to name its resources uniquely, and where the configfs
    drivers live (the kernel's /sys/kernel/config; a stand-in tree in tests)."""

    campaign_id: str  # short, unique per campaign directory
    source: str = ""  # the workload file, for refusals that name it
    configfs: Tree | None = None  # None: the kernel's (bench.targets.configfs.Tree())


class Target(abc.ABC):
    driver: ClassVar[str]
    # Device lifecycle (the workload's recreate/prefill, set by build_targets): set up once per
    # session or afresh before every run; write the whole device once after each set-up.
    recreate: str = "session"
    prefill: bool = False

    def __init__(self, name: str, options: dict[str, Any], queue: QueueSettings, context: Context):
        self.name = name
        self.options = dict(options)
        self.queue = queue
        self.context = context
        self.device: Device | None = None

    def accept_spec(self, spec: TargetSpec, writes: bool) -> None:
        """The workload's fields beyond options and queue (blockdev: device, identity,
        destructive, allow_signatures) and whether any of its jobs writes. Most families
        need neither."""
        return None  # a hook with a default: most families take nothing from the spec

    def check_before_run(self, writes: bool) -> None:
        """Refuse (raise) before fio starts a run that writes to a device which must not be
        written (bench.targets.blockdev.write_refusals). The devices blkcmp creates are
        checked before every run whatever the job does: anything on them is not blkcmp's."""
        if self.device and self.device.block_device:
            from bench.targets.blockdev import require_safe

            require_safe(self.device.block_device)

    @abc.abstractmethod
    def probe(self) -> Availability:
        """Can this target run here? Reads the system, changes nothing."""

    def kernel_problems(self) -> list[str]:
        """What this kernel will refuse of the target's options, found by reading the system
        without changing it (features files, fixed interfaces, the kernel's own rules); each a
        line naming the target. What can only be known after loading a module is checked again
        by setup()."""
        return []

    def recorded_kernel_problems(self, drivers: Mapping[str, Any], release: str) -> list[str]:
        """kernel_problems() for a kernel that is not running here (a VM's test kernel), from the
        driver facts its smoke boot recorded (`kernel.json` "drivers": interface and features per
        driver). Targets that depend on no driver facts apply their fixed rules."""
        return self.kernel_problems()

    @abc.abstractmethod
    def setup(self) -> Device:
        """Create the device; record every resource in the state file before creating it."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """The effective settings, read back from the system (not the requested ones)."""

    @abc.abstractmethod
    def teardown(self) -> None:
        """Remove what setup created. Idempotent; safe after a partial setup."""

    def planned_filename(self) -> str:
        """The filename the fio job will get (for exported job files, before setup)."""
        return self.device.filename if self.device and self.device.filename else "${BLKCMP_FILENAME}"

    def resource_name(self) -> str:
        return f"blkcmp-{self.context.campaign_id}-{self.name}"
