"""Target families (one module each) and the factory that builds a target from a workload."""

from __future__ import annotations

from bench.targets.base import Availability, Context, Device, Target
from bench.targets.host import FileTarget, FioNullTarget, LoopTarget

FAMILIES: dict[str, type[Target]] = {
    "file": FileTarget,
    "loop": LoopTarget,
    "fio-null": FioNullTarget,
}

try:  # the kernel drivers; imported here so their state-file cleaners are registered
    from bench.targets.nullblk import NullBlkTarget
    from bench.targets.rnull import RnullTarget
    FAMILIES["null_blk"] = NullBlkTarget
    FAMILIES["rnull"] = RnullTarget
except ImportError:  # pragma: no cover - until those modules exist
    pass


def make_target(name: str, driver: str, options: dict, queue, context: Context) -> Target:
    return FAMILIES[driver](name, options, queue, context)


__all__ = ["Availability", "Context", "Device", "Target", "FAMILIES", "make_target"]
