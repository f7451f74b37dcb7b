"""Which kernels a VM campaign runs on, and how many boots each: the command line over the workload.

`blkcmp run W.yaml --kernel 7.2` runs one kernel in one boot, as always.  Several kernels (the
workload's `kernels:` or a repeated `--kernel [LABEL=]SPEC`) or several boots (`boots:`,
`--boots N`) make one campaign of every kernel: its plan (bench.plan) gives every run a kernel
label and a boot slot, and the VM executor boots the slots in plan order.  What the command line
gives replaces what the workload says, and `run` says so once.  Labels follow the name rule of
targets (bench.names); a bare SPEC is its own label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError, quoted
from bench.names import name_problem
from bench.workload import AdaptiveRepetitions, Workload


@dataclass(frozen=True)
class KernelChoice:
    label: str  # the kernel's name in the results
    spec: str  # what kernels.resolve takes: a version, a cached kernel's name or label, a bzImage path


HOST_ONLY = (
    "a campaign on this host covers one kernel: give --kernel SPEC (repeat it for several kernels) "
    "to run them in a VM, or run one host campaign per kernel and combine them with "
    "`blkcmp compare --by kernel DIR_A DIR_B` (or `--by gap`)"
)


def parse_cli(values: list[str]) -> list[KernelChoice]:
    """`--kernel SPEC` or `--kernel LABEL=SPEC`, each once per kernel."""
    choices = []
    for value in values:
        label, sep, spec = value.partition("=")
        if not sep:
            label, spec = value, value
        if not spec.strip():
            raise UsageError(f"--kernel {quoted(value)}: expected SPEC or LABEL=SPEC, found no SPEC")
        if problem := name_problem(label, "kernel label"):
            fix = " (give LABEL=SPEC)" if not sep else ""
            raise UsageError(f"--kernel {quoted(value)}: {problem}{fix}")
        choices.append(KernelChoice(label, spec))
    _unique(choices, "--kernel")
    return choices


def _unique(choices: list[KernelChoice], where: str) -> None:
    seen = set()
    for c in choices:
        if c.label in seen:
            raise UsageError(
                f"{where}: kernel label {c.label} given twice; give each kernel its own LABEL=SPEC"
            )
        seen.add(c.label)


def choose(
    workload: Workload,
    path: Path | str,
    cli_kernels: list[str] | None,
    cli_boots: int | None,
    say=lambda text: None,
) -> tuple[list[KernelChoice], int]:
    """(kernels, boots) of a new campaign; no kernels: a host campaign (then one boot only)."""
    if cli_boots is not None and not 1 <= cli_boots <= 100:
        raise UsageError(f"--boots {cli_boots}: expected 1 to 100 boots per kernel")
    from_workload = [KernelChoice(k.label, k.kernel) for k in workload.kernels]
    kernels = from_workload
    if cli_kernels:
        kernels = parse_cli(cli_kernels)
        if from_workload:
            say(
                "--kernel replaces the workload's kernels: ("
                + ", ".join(k.label for k in from_workload)
                + ")"
            )
    boots = workload.boots
    if cli_boots is not None:
        if workload.boots != 1 and cli_boots != workload.boots:
            say(f"--boots {cli_boots} replaces the workload's boots: {workload.boots}")
        boots = cli_boots
    if not kernels:
        if boots > 1:
            where = "--boots" if cli_boots is not None else f"{path}: boots"
            raise UsageError(f"{where}: {HOST_ONLY}")
        return [], 1
    if len(kernels) > 1 or boots > 1:
        if isinstance(workload.repetitions, AdaptiveRepetitions):
            raise UsageError(
                f"{path}: repetitions: adaptive repetitions are not supported with several kernels or "
                "boots; give a number of rounds"
            )
        if workload.order != "interleaved":
            raise UsageError(
                f"{path}: order: several kernels or boots need order: interleaved, found {workload.order}"
            )
        if boots > workload.min_rounds():
            raise UsageError(
                f"--boots {boots}: expected at most one boot per round ({workload.min_rounds()} rounds); "
                "give fewer boots or more repetitions"
            )
    return kernels, boots


def multi(kernels: list[KernelChoice], boots: int) -> bool:
    """A campaign whose runs carry kernel labels and boot slots (not today's one-kernel campaign)."""
    return len(kernels) > 1 or boots > 1
