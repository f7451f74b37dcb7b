"""Target families (one module each, imported when first needed) and building targets from a
workload.

Families are loaded lazily: the workload schema, the analysis and the figures never need device
code, so `import bench.targets` loads none of them. `load_families()` imports every family (so
that `blkcmp cleanup` knows each one's resource cleaner).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bench.targets.base import Availability, Context, Device, Target

if TYPE_CHECKING:
    from bench.workload import Workload

# driver -> (module, class)
FAMILIES: dict[str, tuple[str, str]] = {
    "file": ("bench.targets.host", "FileTarget"),
    "loop": ("bench.targets.host", "LoopTarget"),
    "fio-null": ("bench.targets.host", "FioNullTarget"),
    "null_blk": ("bench.targets.nullblk", "NullBlkTarget"),
    "rnull": ("bench.targets.rnull", "RnullTarget"),
    "blockdev": ("bench.targets.existing", "ExistingBlockDevice"),
    "nvme": ("bench.targets.existing", "NvmeNamespace"),
}


def family(driver: str) -> type[Target]:
    module, cls = FAMILIES[driver]
    return getattr(importlib.import_module(module), cls)


def load_families() -> None:
    for driver in FAMILIES:
        family(driver)


def make_target(name: str, driver: str, options: dict, queue, context: Context) -> Target:
    return family(driver)(name, options, queue, context)


def build_targets(workload: Workload, context: Context, names: list[str] | None = None) -> dict[str, Target]:
    """The workload's targets (or those named), configured, nothing created yet."""
    from bench.fio_options import job_writes

    named = workload.targets.named()
    # preconditioning (purge, fills, steady-state rounds) writes whatever the matrix says
    writes = workload.precondition is not None or any(
        job_writes(workload.fio | point) for point in workload.points()
    )
    targets = {
        name: make_target(
            name,
            named[name].driver,
            workload.effective_options(name),
            workload.effective_queue(name),
            context,
        )
        for name in (names or list(named))
    }
    for name, target in targets.items():
        target.accept_spec(named[name], writes)
        lifecycle = workload.lifecycle(name)
        target.recreate, target.prefill = lifecycle["recreate"], lifecycle["prefill"]
    return targets


__all__ = [
    "FAMILIES",
    "Availability",
    "Context",
    "Device",
    "Target",
    "build_targets",
    "family",
    "load_families",
    "make_target",
]
