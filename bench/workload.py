"""Workload files: the schema, loading from YAML, and one-line errors that name file:line and field.

A workload says what to run: the targets (devices under test), the fio options every job shares,
a matrix of fio options to sweep, and how often and in what order to repeat. `load()` turns a
YAML file into a validated `Workload` or raises `UsageError` whose message has one line per
problem: `FILE:LINE: FIELD.PATH: what was expected, what was found[; did you mean ...]`.
`json_schema()` is the published JSON Schema (workloads/schema.json is kept equal to it by a test).
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench import fio_options, stopping
from bench.driver_options import BLOCK_DRIVERS, DRIVER_OPTIONS, spelled_twice
from bench.errors import UsageError, quoted
from bench.names import MAX_CAMPAIGN_NAME, name_problem
from bench.stats.defaults import DEFAULT_MARGIN

Scalar = bool | int | float | str
FioValue = bool | int | float | str | None

# Bounds on everything a workload can make large, checked before anything is built from it:
# each refusal is one line naming the field and the limit.
MAX_FILE_BYTES = 1 << 20  # the YAML file
MAX_DEPTH = 32  # nesting of mappings and lists
MAX_VALUES = 100_000  # YAML values once aliases are expanded (an alias bomb has billions)
MAX_STRING = 4096  # characters in one key or value
MAX_TARGETS = 32
MAX_AXES = 16
MAX_EXCLUDES = 100
MAX_ROUNDS = 1000  # repetitions, or adaptive max
MAX_POINTS = 10_000
MAX_RUNS = 100_000  # targets x points x rounds (at most)
MAX_SECONDS = 86_400  # runtime and ramp_time
MAX_INT = 2**63 - 1  # what fio, SQLite and the kernel's attributes can hold
TIMESERIES_MSEC = (10, 3_600_000)
MAX_SAMPLES = 100_000  # time-series samples per log and run
MAX_KERNELS = 16  # kernels of one campaign (`kernels:`)
MAX_BOOTS = 100  # boots per kernel


# Campaign and target names become directory, device and file names: a safe file-name pattern.
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueSettings(_Strict):
    """sysfs queue attributes applied to every block device a target creates (read back after)."""

    scheduler: str | None = Field(None, description="I/O scheduler, e.g. none, mq-deadline, kyber")
    nomerges: Literal[0, 1, 2] | None = Field(None, description="0 merge, 1 simple only, 2 none")
    rq_affinity: Literal[0, 1, 2] | None = Field(None, description="completion CPU: 0, 1 group, 2 same")
    iostats: Literal[0, 1] | None = Field(None, description="account I/O statistics")
    nr_requests: int | None = Field(None, ge=1, description="requests per hardware queue")
    wbt_lat_usec: int | None = Field(None, ge=0, description="writeback throttling target (0 off)")

    def merged_over(self, base: QueueSettings) -> QueueSettings:
        values = base.model_dump(exclude_none=True) | self.model_dump(exclude_none=True)
        return QueueSettings(**values)


class CommonSpec(_Strict):
    """Options applied identically to every target: fairness by construction."""

    options: dict[str, Scalar] = Field(
        default_factory=dict, description="driver options applied to every target"
    )
    queue: QueueSettings = Field(
        default_factory=lambda: QueueSettings(scheduler="none"),
        description="queue settings for every block device (scheduler none by default)",
    )
    recreate: Literal["session", "run"] = Field(
        "session", description="set each device up once per session, or afresh before every run"
    )
    prefill: bool = Field(
        False, description="write the whole device once, sequentially, before measuring (after each set-up)"
    )


class DeviceIdentity(_Strict):
    """What an existing block device must be (driver blockdev), compared with what sysfs says."""

    wwn: str | None = Field(None, description="World Wide Name, as sysfs `wwid` spells it")
    serial: str | None = Field(None, description="serial number")
    model: str | None = Field(None, description="model, as sysfs `device/model` spells it")
    size_bytes: int | None = Field(None, ge=1, description="capacity in bytes")
    backing_file: str | None = Field(None, description="a loop device's backing file")
    nsid: int | None = Field(None, ge=1, description="NVMe namespace id")
    eui: str | None = Field(None, description="NVMe namespace EUI-64, as sysfs `eui` spells it")
    nguid: str | None = Field(None, description="NVMe namespace NGUID, as sysfs `nguid` spells it")


class TargetSpec(_Strict):
    """One device under test: a driver and its options."""

    driver: Literal["null_blk", "rnull", "file", "loop", "fio-null", "blockdev", "nvme"]
    options: dict[str, Scalar] = Field(default_factory=dict, description="driver options")
    queue: QueueSettings = Field(
        default_factory=QueueSettings, description="queue settings for this target only (over common.queue)"
    )
    recreate: Literal["session", "run"] | None = Field(
        None, description="over common.recreate: session or run (re-create the device before every run)"
    )
    prefill: bool | None = Field(
        None, description="over common.prefill: write the whole device before measuring"
    )
    # driver blockdev only: an existing whole block device (README, Existing block devices)
    device: str | None = Field(None, description="blockdev: the device, e.g. /dev/disk/by-id/…")
    identity: DeviceIdentity | None = Field(None, description="blockdev: what the device must be")
    destructive: bool = Field(False, description="blockdev: fio may write to the device (its data is lost)")
    allow_signatures: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="blockdev: signature types (blkid TYPE) writing may overwrite",
    )
    bind: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="nvme: the PCI driver to bind the controller to before this target's runs",
    )


class Targets(BaseModel):
    """Named targets plus the reserved `common` block."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, TargetSpec] = Field(init=False)

    common: CommonSpec = Field(default_factory=CommonSpec)

    @model_validator(mode="after")
    def _names(self) -> Targets:
        if not self.__pydantic_extra__:
            raise ValueError("expected at least one target besides `common`, found none")
        return self

    def named(self) -> dict[str, TargetSpec]:
        return dict(self.__pydantic_extra__ or {})


class AdaptiveRepetitions(_Strict):
    """Add interleaved rounds for every point whose verdict is not settled at `margin` and whose
    ratio CI half-width is above target_ci, up to max."""

    min: int = Field(stopping.DEFAULT_MIN_ROUNDS, ge=2, le=MAX_ROUNDS)
    max: int = Field(stopping.DEFAULT_MAX_ROUNDS, ge=2, le=MAX_ROUNDS)
    target_ci: float = Field(
        stopping.DEFAULT_TARGET_CI,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="relative half-width of the ratio CI",
    )
    margin: float = Field(
        DEFAULT_MARGIN,
        gt=0,
        lt=1,
        allow_inf_nan=False,
        description="equivalence margin a point's verdict is settled at",
    )

    @model_validator(mode="after")
    def _order(self) -> AdaptiveRepetitions:
        if self.max < self.min:
            raise ValueError(f"expected max >= min, found min {self.min} and max {self.max}")
        return self


class KernelSpec(_Strict):
    """One kernel of a VM campaign of several kernels."""

    label: str = Field(description="name of this kernel in results (letters, digits, _ - .)")
    kernel: str = Field(
        description="a cached version (7.2), a cached kernel's name or label, or a bzImage path"
    )


class Matrix(BaseModel):
    """fio options to sweep (cartesian product), minus `exclude` combinations."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Annotated[list[Scalar], Field(min_length=1)]] = Field(init=False)

    exclude: list[dict[str, Scalar]] = Field(default_factory=list, description="combinations to leave out")

    def axes(self) -> dict[str, list[Scalar]]:
        return dict(self.__pydantic_extra__ or {})


class SteadyStateSpec(_Strict):
    """SNIA PTS steady state (bench.stats.steady_state): rounds of the tracked job until a window
    of `window` rounds is steady; thresholds are fractions of the window's average."""

    metric: Literal["iops", "bw_bytes"] = Field("iops", description="what each round tracks")
    point: int = Field(0, ge=0, description="the matrix point (0-based, matrix order) each round runs")
    window: int = Field(5, ge=3, le=100, description="rounds a steady window spans")
    max_rounds: int = Field(25, ge=3, le=1000, description="rounds before giving up (exit 1)")
    max_excursion: float = Field(0.20, gt=0, le=1, description="max - min within the window")
    max_slope_change: float = Field(0.10, gt=0, le=1, description="least-squares line's change across it")
    band: float = Field(0.05, gt=0, le=1, description="every round this close to the line")

    @model_validator(mode="after")
    def _enough(self) -> SteadyStateSpec:
        if self.max_rounds < self.window:
            raise ValueError(f"expected max_rounds >= window, found {self.max_rounds} < {self.window}")
        return self


class PreconditionSpec(_Strict):
    """Before the first session's runs, per block-device target: purge, fill, steady state."""

    purge: bool = Field(
        False, description="nvme format (an nvme target that supports it), else blkdiscard, first"
    )
    fills: int = Field(1, ge=0, le=16, description="sequential writes of the whole device")
    steady_state: SteadyStateSpec | None = Field(None, description="rounds until steady (SNIA PTS)")


class QemuNvme(_Strict):
    """One QEMU-emulated NVMe controller for `run --kernel` (bench.vm_nvme), each namespace
    backed by a sparse file in the host's /dev/shm."""

    serial: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,20}$", description="the controller's serial (what identity: names)"
    )
    size: str = Field(
        pattern=r"^[1-9][0-9]{0,5}(MiB|GiB)$", description="each namespace's size, e.g. 256MiB or 1GiB"
    )
    namespaces: int = Field(1, ge=1, le=8, description="namespaces on the controller (nsid 1..N)")


class VmSpec(_Strict):
    """What a `run --kernel` guest gets besides the test kernel (ignored on the host)."""

    nvme: list[QemuNvme] = Field(default_factory=list, max_length=4, description="emulated NVMe controllers")


class Workload(_Strict):
    """A benchmark campaign: targets × matrix points × repetitions."""

    name: str | None = Field(None, description="campaign name (default: the file's stem)")
    description: str = ""
    targets: Targets
    baseline: str | None = Field(None, description="target the others are compared to (default: the first)")
    fio: dict[str, FioValue] = Field(
        default_factory=dict, description="fio options for every job, spelled as fio spells them"
    )
    matrix: Matrix = Field(default_factory=Matrix)
    # 12 rounds: enough, at CV 1 % per run, for the verdict to reach a decision (README, Statistics)
    repetitions: int | AdaptiveRepetitions = Field(12, description="rounds, or {min, max, target_ci}")
    runtime: float = Field(
        10, gt=0, le=MAX_SECONDS, allow_inf_nan=False, description="seconds of measured I/O per run"
    )
    ramp_time: float = Field(
        2, ge=0, le=MAX_SECONDS, allow_inf_nan=False, description="seconds of warm-up per run, not measured"
    )
    order: Literal["interleaved", "sequential"] = "interleaved"
    seed: int | None = Field(
        None, ge=0, le=MAX_INT, description="seed of the run order (default: chosen and recorded)"
    )
    allow_differences: list[str] = Field(
        default_factory=list, max_length=100, description="audited settings allowed to differ between targets"
    )
    allow_fio_options: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="fio options that name paths or run programs, allowed anyway (see README, Write "
        "safety); `ioengine=NAME` allows an engine that does more than I/O on the target",
    )
    kernels: list[KernelSpec] = Field(
        default_factory=list,
        max_length=MAX_KERNELS,
        description="VM campaigns: the kernels, each getting every target, point and round",
    )
    boots: int = Field(1, ge=1, le=MAX_BOOTS, description="VM campaigns: separate boots per kernel")
    timeseries: str | float | None = Field(
        None,
        description="log IOPS, bandwidth and latency over time at this interval (e.g. 1s, "
        "500ms; a number is seconds), into each run's directory",
    )
    vm: VmSpec | None = Field(None, description="devices a `run --kernel` guest gets")
    precondition: PreconditionSpec | None = Field(
        None, description="purge, fill and reach steady state before measuring (block devices; writes)"
    )

    @field_validator("repetitions")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if isinstance(value, int) and not 1 <= value <= MAX_ROUNDS:
            raise ValueError(f"expected 1 to {MAX_ROUNDS} rounds, found {quoted(value)}")
        return value

    # -- derived values ---------------------------------------------------------------------
    def campaign_name(self, path: Path | None = None) -> str:
        return self.name or (path.stem if path else "campaign")

    def target_names(self) -> list[str]:
        return list(self.targets.named())

    def baseline_name(self) -> str:
        return self.baseline or self.target_names()[0]

    def min_rounds(self) -> int:
        reps = self.repetitions
        return reps if isinstance(reps, int) else reps.min

    def max_rounds(self) -> int:
        reps = self.repetitions
        return reps if isinstance(reps, int) else reps.max

    def timeseries_msec(self) -> int | None:
        """The time-series interval in milliseconds (None: no time series)."""
        return None if self.timeseries is None else parse_interval_msec(self.timeseries)

    def effective_options(self, target: str) -> dict[str, Scalar]:
        return self.targets.common.options | self.targets.named()[target].options

    def effective_queue(self, target: str) -> QueueSettings:
        return self.targets.named()[target].queue.merged_over(self.targets.common.queue)

    def lifecycle(self, target: str) -> dict[str, Any]:
        """{"recreate": "session"|"run", "prefill": bool} of a target (its own over common)."""
        spec, common = self.targets.named()[target], self.targets.common
        return {
            "recreate": spec.recreate if spec.recreate is not None else common.recreate,
            "prefill": spec.prefill if spec.prefill is not None else common.prefill,
        }

    def points(self) -> list[dict[str, Scalar]]:
        """Every matrix point (an ordered dict of fio options), in matrix order."""
        axes = self.matrix.axes()
        if not axes:
            return [{}]
        keys = list(axes)
        points = []
        for values in itertools.product(*(axes[k] for k in keys)):
            point = dict(zip(keys, values))
            # A combination naming a non-axis matches nothing (load() reports it as an error).
            if any(
                all(k in point and point[k] == v for k, v in combo.items()) for combo in self.matrix.exclude
            ):
                continue
            points.append(point)
        return points


_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*$")


def parse_interval_msec(value: Any) -> int | None:
    """`1s`, `500ms`, `2` (seconds) or a number of seconds as milliseconds; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        # beyond a day it is out of bounds anyway; checked first so that 1e308 * 1000 cannot overflow
        return int(round(value * 1000)) if math.isfinite(value) and abs(value) <= MAX_SECONDS else None
    m = _INTERVAL.match(str(value)) if len(str(value)) < 32 else None
    if not m:
        return None
    number = float(m.group(1)) * (1 if m.group(2) == "ms" else 1000)
    return int(round(number)) if number <= MAX_SECONDS * 1000 else None


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _option_problems(driver: str, options: dict[str, Any], path: tuple):
    known = DRIVER_OPTIONS[driver]
    for key, value in options.items():
        where = path + (key,)
        if key not in known:
            yield (
                where,
                (
                    f"driver {driver} has no option {key!r}"
                    + (_did_you_mean(key, known) or f" (it has: {', '.join(sorted(known))})")
                ),
            )
            continue
        kind = known[key].kind
        if kind is bool and value not in (0, 1, True, False):
            yield where, f"expected 0/1 or true/false, found {value!r}"
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            yield where, f"expected an integer, found {value!r}"
        elif kind is str and not isinstance(value, str):
            yield where, f"expected a string, found {value!r}"


BLOCKDEV_FIELDS = ("device", "identity", "destructive", "allow_signatures", "bind")
EXISTING_DRIVERS = ("blockdev", "nvme")


def _blockdev_problems(spec: TargetSpec, base: tuple):
    # A field counts as given when it differs from its default: a resolved workload (dump())
    # spells every default out.
    given = [
        f
        for f in BLOCKDEV_FIELDS
        if getattr(spec, f) != TargetSpec.model_fields[f].get_default(call_default_factory=True)
    ]
    if spec.driver not in EXISTING_DRIVERS:
        for field in given:
            yield base + (field,), f"only drivers blockdev and nvme have `{field}`; remove it"
        return
    identity = spec.identity.model_dump(exclude_none=True) if spec.identity else {}
    if spec.driver == "nvme":
        yield from _nvme_problems(spec, identity, base)
        return
    if spec.bind is not None:
        yield base + ("bind",), "only driver nvme has `bind`; remove it"
    if spec.device is None and not identity:
        yield (
            base,
            (
                "driver blockdev needs `device:` (e.g. /dev/disk/by-id/…) or `identity:` "
                "(wwn, serial, model, size_bytes), found neither"
            ),
        )
    elif spec.device is not None and not spec.device.startswith("/dev/"):
        yield base + ("device",), f"expected a path under /dev/, found {quoted(spec.device)}"
    if spec.destructive and not any(k in identity for k in ("wwn", "serial", "backing_file")):
        yield (
            base + ("identity",),
            (
                "destructive: true needs the device's identity (wwn, serial, "
                "or a loop device's backing_file) under `identity:`, so that "
                "blkcmp never writes to another disk; found none"
            ),
        )


def _lifecycle_problems(workload: Workload):
    """Device lifecycle (recreate, prefill) is refused at load when targets differ in it: the
    difference is known before anything runs and would make every comparison unfair (one device
    measured freshly prefilled, the other not), so refusing costs nothing and writes nothing;
    `allow_differences: [recreate]` / `[prefill]` lets it through, and the audit shows it."""
    named = workload.targets.named()
    lifecycles = {name: workload.lifecycle(name) for name in named}
    for name, spec in named.items():
        base = ("targets", name)
        if lifecycles[name]["prefill"] and spec.driver == "fio-null":
            yield base + ("prefill",), "driver fio-null has no device to prefill; remove prefill"
        if lifecycles[name]["recreate"] == "run" and spec.driver in ("blockdev", "nvme"):
            yield (
                base + ("recreate",),
                f"driver {spec.driver} is an existing device blkcmp cannot re-create; use recreate: session",
            )
        if lifecycles[name]["prefill"] and spec.driver in ("blockdev", "nvme") and not spec.destructive:
            yield base + ("prefill",), "prefill writes the whole device: it needs destructive: true"
    for key in ("recreate", "prefill"):
        values = {name: lc[key] for name, lc in lifecycles.items() if named[name].driver != "fio-null"}
        if len(set(values.values())) > 1 and key not in workload.allow_differences:
            yield (
                ("targets",),
                f"targets differ in {key} ("
                + ", ".join(f"{n}={str(v).lower()}" for n, v in values.items())
                + f"): give it once under common:, or list {key} under allow_differences:",
            )


def _nvme_problems(spec: TargetSpec, identity: dict, base: tuple):
    if spec.device is not None:
        yield (
            base + ("device",),
            "driver nvme is named by identity only (device names move between boots); "
            "remove `device:` and give identity: {serial: …, nsid: …} or eui/nguid/wwn",
        )
    if not any(k in identity for k in ("serial", "eui", "nguid", "wwn")):
        yield (
            base + ("identity",),
            "driver nvme needs identity: with the controller's serial (and nsid), or the "
            "namespace's eui, nguid or wwn (`blkcmp targets` shows them); found none",
        )
    if "backing_file" in identity:
        yield base + ("identity", "backing_file"), "an NVMe namespace has no backing_file; remove it"


def semantic_problems(workload: Workload):
    """Checks across fields, each yielding (path, message) so errors point at the exact line."""
    named = workload.targets.named()
    if workload.name is not None and (text := name_problem(workload.name, "campaign", MAX_CAMPAIGN_NAME)):
        yield ("name",), text
    if len(named) > MAX_TARGETS:
        yield ("targets",), f"expected at most {MAX_TARGETS} targets, found {len(named)}"
        return
    for name, spec in named.items():
        base = ("targets", name)
        if text := name_problem(name):
            yield base, text
        yield from _option_problems(spec.driver, spec.options, base + ("options",))
        for pair in spelled_twice(workload.effective_options(name)):
            yield base + ("options",), f"options {pair} are one option under two names; give one"
        if spec.driver not in BLOCK_DRIVERS and spec.queue.model_dump(exclude_none=True):
            yield base + ("queue",), f"driver {spec.driver} has no block queue; remove `queue`"
        yield from _blockdev_problems(spec, base)
        for where, text in _option_problems(
            spec.driver, workload.targets.common.options, ("targets", "common", "options")
        ):
            yield where, f"{text} (applies to target {name})"
    yield from _lifecycle_problems(workload)
    steady = workload.precondition.steady_state if workload.precondition else None
    if steady is not None and steady.point >= len(workload.points()):
        yield (
            ("precondition", "steady_state", "point"),
            f"expected a matrix point index below {len(workload.points())}, found {steady.point}",
        )
    if workload.baseline is not None and workload.baseline not in named:
        yield (
            ("baseline",),
            (
                f"expected one of the targets {sorted(named)}, found {quoted(workload.baseline)}"
                + _did_you_mean(workload.baseline, named)
            ),
        )
    axes = workload.matrix.axes()
    if len(axes) > MAX_AXES:
        yield ("matrix",), f"expected at most {MAX_AXES} matrix axes, found {len(axes)}"
        return
    if len(workload.matrix.exclude) > MAX_EXCLUDES:
        yield (
            ("matrix", "exclude"),
            (f"expected at most {MAX_EXCLUDES} exclusions, found {len(workload.matrix.exclude)}"),
        )
        return
    combinations = math.prod(len(v) for v in axes.values())
    if combinations > MAX_POINTS:
        yield (
            ("matrix",),
            (
                f"expected at most {MAX_POINTS} matrix points, found "
                + " x ".join(str(len(v)) for v in axes.values())
                + f" = {combinations}"
            ),
        )
        return
    for i, combo in enumerate(workload.matrix.exclude):
        for key, value in combo.items():
            if key not in axes:
                yield (
                    ("matrix", "exclude", i, key),
                    f"{quoted(key)} is not a matrix axis"
                    + (_did_you_mean(key, axes) or f" (axes: {', '.join(axes)})"),
                )
            elif value not in axes[key]:
                yield ("matrix", "exclude", i, key), f"expected one of {axes[key]}, found {quoted(value)}"
    points = len(workload.points())
    if axes and not points:
        yield ("matrix", "exclude"), "expected at least one point left, found every point excluded"
    runs = len(named) * points * workload.max_rounds()
    if runs > MAX_RUNS:
        yield (
            ("repetitions",),
            f"expected at most {MAX_RUNS} runs in all, found {len(named)} targets x "
            f"{points} points x {workload.max_rounds()} rounds = {runs}",
        )
    reps = workload.repetitions
    if isinstance(reps, AdaptiveRepetitions) and workload.order != "interleaved":
        yield ("order",), f"adaptive repetitions need order: interleaved, found {workload.order!r}"
    yield from _kernel_problems(workload, runs)
    if workload.timeseries is not None:
        msec = workload.timeseries_msec()
        low, high = TIMESERIES_MSEC
        if msec is None or not low <= msec <= high:
            yield (
                ("timeseries",),
                (
                    f"expected an interval from {low} ms to {high // 1000} s such as "
                    f"1s or 500ms, found {quoted(workload.timeseries)}"
                ),
            )
        elif (samples := (workload.runtime + workload.ramp_time) * 1000 / msec) > MAX_SAMPLES:
            yield (
                ("timeseries",),
                (
                    f"expected at most {MAX_SAMPLES} samples per run, found "
                    f"{int(samples)} ({msec} ms over ramp_time + runtime)"
                ),
            )


def _kernel_problems(workload: Workload, runs: int):
    """`kernels:` and `boots:`: labels that are names and unique, and what a campaign of
    several kernels or boots cannot be (adaptive, sequential, beyond the run bound)."""
    seen: set[str] = set()
    for i, entry in enumerate(workload.kernels):
        if text := name_problem(entry.label, "kernel label"):
            yield ("kernels", i, "label"), text
        elif entry.label in seen:
            yield (
                ("kernels", i, "label"),
                f"expected a label not used above, found {quoted(entry.label)} again",
            )
        seen.add(entry.label)
        if not entry.kernel.strip():
            yield ("kernels", i, "kernel"), "expected a kernel version, name or bzImage path, found ''"
    if len(workload.kernels) > 1 or workload.boots > 1:
        if isinstance(workload.repetitions, AdaptiveRepetitions):
            yield (
                ("repetitions",),
                "adaptive repetitions are not supported with several kernels or boots: give a number "
                "of rounds",
            )
        if workload.order != "interleaved":
            yield ("order",), f"several kernels or boots need order: interleaved, found {workload.order!r}"
        if workload.boots > workload.min_rounds():
            yield (
                ("boots",),
                f"expected at most one boot per round ({workload.min_rounds()}), found {workload.boots}",
            )
        total = runs * max(len(workload.kernels), 1)
        if runs <= MAX_RUNS < total:
            yield (
                ("kernels",),
                f"expected at most {MAX_RUNS} runs in all, found {runs} per kernel x "
                f"{len(workload.kernels)} kernels = {total}",
            )


# ------------------------------------------------------------------------------------------
# fio options: what a workload may make fio do (see fio_options for the policy)


_YAML_NULLS = {"null", "Null", "NULL", "~"}


def _engines_in_use(workload: Workload) -> set[str]:
    engines = {
        v
        for v in [workload.fio.get("ioengine"), *workload.matrix.axes().get("ioengine", [])]
        if isinstance(v, str)
    }
    if any(spec.driver == "fio-null" for spec in workload.targets.named().values()):
        engines.add("null")
    if "ioengine" not in workload.fio or not engines:
        engines.add("psync")  # fio's default engine
    return engines


def _allowed(workload: Workload, table: fio_options.OptionTable | None):
    """The workload's allow_fio_options as (canonical names and `ioengine=X` tokens, problems)."""
    allowed: set[str] = set()
    problems = []
    for i, entry in enumerate(workload.allow_fio_options):
        where = ("allow_fio_options", i)
        if bad := fio_options.bad_characters(entry):
            problems.append((where, f"expected an fio option name, found {bad}"))
            continue
        if entry.startswith("ioengine="):
            engine = entry.removeprefix("ioengine=")
            if table and engine.split(":")[0] not in table.known_engines():
                problems.append(
                    (
                        where,
                        f"this fio ({table.version}) has no I/O engine {quoted(engine)}"
                        + _did_you_mean(engine, table.engines),
                    )
                )
            elif engine in fio_options.SAFE_ENGINES:
                problems.append((where, f"not needed: I/O engine {engine} is allowed anyway"))
            else:
                allowed.add(f"ioengine={engine.split(':')[0]}")
            continue
        folded = fio_options.fold(entry)
        canonical = (table.canonical(entry) if table else None) or folded
        if canonical in fio_options.OWNED or folded in fio_options.OWNED:
            problems.append(
                (
                    where,
                    f"{quoted(entry)} cannot be allowed: blkcmp sets it "
                    f"({fio_options.OWNED.get(canonical) or fio_options.OWNED[folded]})",
                )
            )
        elif canonical in fio_options.NEVER:
            problems.append((where, f"{quoted(entry)} cannot be allowed: {fio_options.NEVER[canonical]}"))
        elif table and table.canonical(entry) is None:
            problems.append(
                (
                    where,
                    f"this fio ({table.version}) has no option {quoted(entry)}"
                    + _did_you_mean(entry, table.spellings()),
                )
            )
        elif canonical in fio_options.PLAIN and canonical not in fio_options.PATTERN_OPTIONS:
            problems.append((where, f"not needed: {canonical} is allowed anyway"))
        else:
            allowed.add(canonical)
    return allowed, problems


def _key_problem(key: Any, workload: Workload, table, engines: set[str], allowed: set[str]) -> str | None:
    """Why a key of `fio:` or `matrix:` cannot go into a job file (None when it can)."""
    if not isinstance(key, str):
        return None  # reported by the schema: a key must be a string
    if bad := fio_options.bad_characters(key):
        return f"an fio option name cannot hold {bad}: fio would read the rest as a line of its own"
    folded = fio_options.fold(key)
    canonical = table.canonical(key) if table else None
    owned = dict(fio_options.OWNED)
    if workload.timeseries is not None:
        owned |= {
            k: "blkcmp passes it for `timeseries:` (the logs go where blkcmp reads them)"
            for k in fio_options.TIMESERIES_OWNED
        }
    reason = owned.get(folded) or (owned.get(canonical) if canonical else None)
    spelled = f" ({quoted(key)} is fio's {canonical!r})" if canonical and canonical != key else ""
    if reason:
        return f"option {quoted(key)} is set by blkcmp{spelled}: {reason}"
    never = fio_options.NEVER.get(canonical or folded)
    if never:
        return f"option {quoted(key)} is refused{spelled}: {never}"
    if not fio_options.is_option_name(key):
        return (
            f"expected an fio option name (letters, digits, '_', '-', as fio spells it), found {quoted(key)}"
        )
    if table is None:
        return None
    if canonical is None:
        engine_option = table.engine_option(key, engines)
        if engine_option is None:
            return (
                f"this fio ({table.version}) has no option {quoted(key)}"
                + (f" for engine {', '.join(sorted(engines))}" if engines else "")
                + _did_you_mean(key, table.spellings() + [o for e in engines for o in table.options_of(e)])
            )
        if engine_option != key:
            return f"fio spells it {engine_option!r}, found {quoted(key)}"
        return None
    info = table.info(canonical)
    if key not in (info.name, info.alias):
        return f"fio spells it {canonical!r}, found {quoted(key)}"
    if canonical in allowed:
        return None
    if canonical in fio_options.GUARDED:
        return (
            f"option {key!r} is refused{spelled}: {fio_options.GUARDED[canonical]}; "
            f"list it under allow_fio_options: to accept that (README, Write safety)"
        )
    if canonical not in fio_options.PLAIN:
        return (
            f"option {key!r} is refused: blkcmp does not know what it makes fio do (it is not "
            f"on blkcmp's list of options that only shape the I/O on its target); list it "
            f"under allow_fio_options: if it does no more"
        )
    return None


def _value_problem(key: str, value: Any, raw: str | None, table, allowed: set[str]) -> str | None:
    """Why a value of an fio option cannot go into a job file (None when it can)."""
    canonical = (table.canonical(key) if table else None) or fio_options.fold(key)
    info = table.info(canonical) if table and canonical in table.names else None
    if value is None:
        if info is None or info.is_flag:
            return None
        if raw in _YAML_NULLS:
            return f"`{raw}` is YAML's null here, not a word for fio: quote it: '{raw}'"
        return f"expected a value for fio's {canonical}, found none"
    if isinstance(value, bool):
        if info is None or info.takes_number or info.is_flag or info.type == "(null)":
            return None
        spelled = raw or ("true" if value else "false")
        return f"`{spelled}` is YAML's boolean here, not a word for fio: quote it: '{spelled}'"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, found {value}"
    if isinstance(value, int) and abs(value) > MAX_INT:
        return f"expected a number within ±2^63, found {quoted(value)}"
    if not isinstance(value, str):
        return None
    if bad := fio_options.bad_characters(value):
        return f"an fio value cannot hold {bad}: fio would read the rest as a line of its own"
    if "${" in value:
        return (
            "fio would replace ${…} with an environment variable, so the job would depend on "
            "the environment it runs in: write the value itself"
        )
    if canonical in fio_options.PATTERN_OPTIONS and "'" in value and canonical not in allowed:
        return (
            f"a quoted name in {canonical} makes fio read that file into its buffers; "
            f"list {canonical} under allow_fio_options: to accept that"
        )
    if canonical in fio_options.MEMORY_OPTIONS and ":" in value:
        return f"{canonical}=TYPE:FILE makes fio create, truncate and then delete FILE: use the type alone"
    if canonical == "ioengine":
        engine = value.split(":")[0]
        if table and engine not in table.known_engines():
            return f"this fio ({table.version}) has no I/O engine {quoted(value)}" + (
                _did_you_mean(value, table.engines) or f" (it has: {', '.join(table.engines)})"
            )
        if engine not in fio_options.SAFE_ENGINES and f"ioengine={engine}" not in allowed:
            what = (
                "loads a shared library"
                if engine == "external"
                else "does more than I/O on the target's file"
            )
            return (
                f"I/O engine {quoted(value)} is refused: it {what}; list 'ioengine={engine}' "
                f"under allow_fio_options: to accept that"
            )
    return None


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _growth_problem(canonical: str, value: Any) -> str | None:
    """Why an option would make fio grow a `file` target's file (None when it cannot).

    fio extends a regular file to cover offset + size (writing it out first), and the default
    directory is /dev/shm: `offset: 1T` there fills the machine's memory.
    """
    off = value is False or value == 0 or (isinstance(value, str) and value.strip() in ("0", "false"))
    if canonical == "filesize":
        return "a `file` target's size is its `size` option; filesize would make fio grow the file"
    if canonical in ("file_append", "fill_device") and not off:
        return f"{canonical} would make fio grow a `file` target's file (in /dev/shm: memory)"
    if canonical == "offset_increment" and not off:
        return "offset_increment would make fio grow a `file` target's file beyond its size"
    if canonical == "offset" and not off:
        m = _PERCENT.match(str(value)) if isinstance(value, str) else None
        if not m or float(m.group(1)) > 100:
            return (
                "with a `file` target, give offset as a percentage of the file (at most 100%): "
                "an absolute offset makes fio grow the file to offset + size"
            )
    return None


def fio_option_problems(
    workload: Workload, table: fio_options.OptionTable | None, raw: dict[tuple, str] | None = None
):
    """Every `fio:` and `matrix:` key and value checked against the allow-list, as (path, message).

    Without `table` (analysing a finished campaign, no fio at hand) only what needs no fio is
    checked: characters, spelling of blkcmp's own options, YAML values.
    """
    raw = raw or {}
    allowed, problems = _allowed(workload, table)
    yield from problems
    engines = _engines_in_use(workload)
    has_file_target = any(spec.driver == "file" for spec in workload.targets.named().values())
    for block, entries in (
        ("fio", {k: [v] for k, v in workload.fio.items()}),
        ("matrix", workload.matrix.axes()),
    ):
        seen: dict[str, str] = {}
        for key, values in entries.items():
            path = (block, key)
            if text := _key_problem(key, workload, table, engines, allowed):
                yield path, text
                continue
            canonical = (table.canonical(key) if table else None) or key
            if canonical in seen:
                yield path, f"{quoted(key)} is the same fio option as {seen[canonical]!r} in `{block}:`"
                continue
            seen[canonical] = key
            for i, value in enumerate(values):
                where = path if block == "fio" else path + (i,)
                if (
                    (text := _value_problem(key, value, raw.get(where), table, allowed))
                    or has_file_target
                    and (text := _growth_problem(canonical if table else fio_options.fold(key), value))
                ):
                    yield where, text

    def same(key: str) -> str:
        return (table.canonical(key) if table else None) or fio_options.fold(key)

    spellings = {same(k): k for k in workload.fio if isinstance(k, str)}
    for key in workload.matrix.axes():
        other = spellings.get(same(key))
        if other is not None and other != key:
            yield ("matrix", key), f"{quoted(key)} is the same fio option as {other!r} in `fio:`"


# ------------------------------------------------------------------------------------------
# Loading with line numbers


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent override is a classic workload bug)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            found = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a name as a key, found {found} used as a key", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_map(
    node: yaml.Node, path: tuple = (), out: dict | None = None, raw: dict | None = None
) -> dict[tuple, int]:
    """Map each path (tuple of keys / indexes) to the 1-based line where it is written, and (in
    `raw`) each plain scalar's path to its spelling in the file (`null`, `on`, `~`)."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = _key_of(key_node)
            out[path + (key,)] = key_node.start_mark.line + 1
            _line_map(value_node, path + (key,), out, raw)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), out, raw)
    elif raw is not None and isinstance(node, yaml.ScalarNode) and node.style is None:
        raw[path] = node.value
    return out


def _shape_problem(text: str, name: str) -> str | None:
    """Size, nesting, string lengths and alias expansion, from YAML's event stream.

    Checked before anything is built: the parser keeps no nesting on Python's stack and an alias
    adds the size of what it names without copying it, so a billion-laughs file or a 100,000-deep
    list is refused in time and memory proportional to the file.
    """
    stack: list[dict] = []  # per open mapping / list: anchor, expanded size, where we are
    sizes: dict[str, int] = {}  # anchor -> expanded size, once its node is complete
    done = 0  # expanded size of finished top-level nodes

    def where() -> tuple:
        """The path of the node the next event starts (a key's path when it is a key)."""
        if not stack:
            return ()
        top = stack[-1]
        if top["map"]:
            return top["path"] + ((top["key"],) if not top["expect_key"] else ())
        return top["path"] + (top["index"],)

    def place(size: int, scalar: str | None = None) -> None:
        """Account for a finished node of `size` values in its parent."""
        nonlocal done
        if not stack:
            done += size
            return
        top = stack[-1]
        top["size"] += size
        if top["map"]:
            if top["expect_key"]:
                top["key"] = scalar if scalar is not None else "?"
            top["expect_key"] = not top["expect_key"]
        else:
            top["index"] += 1

    def fail(event, text: str, path: tuple | None = None) -> str:
        return (
            f"{name}:{event.start_mark.line + 1}: {_format_path(where() if path is None else path)}: {text}"
        )

    for event in yaml.parse(text, Loader=_LineLoader):
        if isinstance(event, yaml.ScalarEvent):
            if len(event.value) > MAX_STRING:
                return fail(event, f"expected at most {MAX_STRING} characters, found {len(event.value)}")
            if event.anchor:
                sizes[event.anchor] = 1
            place(1, event.value)
        elif isinstance(event, yaml.AliasEvent):
            if any(entry["anchor"] == event.anchor for entry in stack):
                return fail(
                    event,
                    f"alias *{quoted(event.anchor, 40)[1:-1]} refers to the value it is "
                    "part of (a recursive alias)",
                )
            place(sizes.get(event.anchor, 1), "?")
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            if len(stack) >= MAX_DEPTH:
                return fail(event, f"expected nesting at most {MAX_DEPTH} deep, found deeper")
            stack.append(
                {
                    "anchor": event.anchor,
                    "size": 1,
                    "path": where(),
                    "map": isinstance(event, yaml.MappingStartEvent),
                    "expect_key": True,
                    "key": None,
                    "index": 0,
                }
            )
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            entry = stack.pop()
            if entry["anchor"]:
                sizes[entry["anchor"]] = entry["size"]
            place(entry["size"], "?")
        else:
            continue
        if done + sum(entry["size"] for entry in stack) > MAX_VALUES:
            return fail(
                event,
                f"expected at most {MAX_VALUES} values once aliases are expanded, "
                "found more (an alias bomb?)",
            )
    return None


def _number_problems(data: Any, path: tuple = ()):
    """Numbers no field can hold: beyond 64 bits, or YAML's .inf / .nan."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _number_problems(value, path + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _number_problems(value, path + (i,))
    elif isinstance(data, bool):
        return
    elif isinstance(data, int) and abs(data) > MAX_INT:
        yield path, f"expected a number within ±2^63, found {quoted(data)}"
    elif isinstance(data, float) and not math.isfinite(data):
        yield path, f"expected a finite number, found {data} (quote it if it is a word)"


def _key_of(node: yaml.Node) -> Any:
    """A mapping key as the loader builds it: None for `null:`, True for `true:`, 1 for `1:`."""
    if isinstance(node, yaml.ScalarNode):
        try:
            return yaml.constructor.SafeConstructor().construct_object(node)
        except yaml.YAMLError:
            pass
    return node.value


def _yaml_key(key: Any) -> str:
    """A non-string key as it is spelled in YAML."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def _format_path(path: tuple) -> str:
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            key = _yaml_key(part)
            key = key if key.isprintable() and key.strip() == key else repr(key)  # '\n', 'filename '
            key = key if len(key) <= 40 else key[:40] + "…"
            text += f".{key}" if text else key
    # A 32-deep list or a long key would otherwise make the error line as long as the input.
    return (text if len(text) <= 120 else text[:120] + "…") or "(top level)"


def _real_path(loc: tuple, data: Any) -> tuple:
    """Drop pydantic's union/tag elements from an error location, keeping the parts in the data."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and (part in node or _odd_key(node, part) is not _NO_KEY):
            key = part if part in node else _odd_key(node, part)
            path.append(key)
            node = node[key]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


_NO_KEY = object()


def _odd_key(node: dict, part: Any) -> Any:
    """The non-string key (None, True, 1) that pydantic names by its str() in error locations."""
    return next((k for k in node if not isinstance(k, str) and str(k) == part), _NO_KEY)


def _fields_at(model: type[BaseModel], path: tuple) -> list[str]:
    """Field names allowed at `path` (for "did you mean")."""
    current: Any = model
    for part in path:
        fields = getattr(current, "model_fields", {})
        if part in fields:
            annotation = fields[part].annotation
            current = next(
                (
                    a
                    for a in getattr(annotation, "__args__", (annotation,))
                    if isinstance(a, type) and issubclass(a, BaseModel)
                ),
                annotation,
            )
        elif current is Targets:
            current = TargetSpec
        else:
            return []
    return list(getattr(current, "model_fields", {}))


def _describe_found(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return quoted(value)


def _is_shape_error(err: dict) -> bool:
    """The input has the wrong type for this (union member) schema, e.g. a mapping for an int."""
    return err["type"].endswith(("_type", "_parsing"))


def _relevant(errors: list[dict], data: Any) -> list[dict]:
    """Drop the complaints of union members the input was not meant for.

    `repetitions: {min: 5, max: 3}` fails both as an int (wrong shape) and as the mapping (max <
    min); only the second says what is wrong. A shape error is dropped when another error at or
    under the same place is not a shape error.
    """
    paths = [_real_path(tuple(e["loc"]), data) for e in errors]
    keep = []
    for err, path in zip(errors, paths):
        if _is_shape_error(err) and any(
            other is not err and not _is_shape_error(other) and p[: len(path)] == path
            for other, p in zip(errors, paths)
        ):
            continue
        keep.append(err)
    return keep


_SCALAR_MEMBERS = {"bool", "int", "float", "str"}


def _messages(error: ValidationError, data: Any, lines: dict[tuple, int], file: str) -> list[str]:
    out: list[str] = []
    seen: set[tuple] = set()
    for err in _relevant(error.errors(), data):
        loc = tuple(err["loc"])
        path = _real_path(loc, data)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = loc[-1]
            path = path if path and path[-1] == key else path + (key,)
            hint = _did_you_mean(key, _fields_at(Workload, path[:-1]))
            text = f"unknown key{hint or ''}"
        elif kind == "missing":
            text = f"missing required field {loc[-1]!r}"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            text = (
                msg
                if "found" in msg
                else f"{msg[0].lower() + msg[1:]}, found {_describe_found(err.get('input'))}"
            )
            if (
                _is_shape_error(err)
                and loc
                and loc[-1] in _SCALAR_MEMBERS
                and isinstance(err.get("input"), (list, dict))
            ):  # fio options, matrix values
                text = f"expected a single value (string, number or boolean), found {_describe_found(err['input'])}"
            if kind == "invalid_key" or loc[-1] == "[key]":  # `null:`, `true:`, `1:` as a key
                found = err.get("input")
                path = (path[:-1] if path and path[-1] == found else path) + (found,)
                spelled = _yaml_key(found)
                what = (
                    "null"
                    if found is None
                    else "a boolean"
                    if isinstance(found, bool)
                    else "a number"
                    if isinstance(found, (int, float))
                    else f"a {type(found).__name__}"
                )
                text = f"expected a string key, found {what} (quote it: '{spelled}')"
        key = (path, text)
        if key in seen:
            continue
        seen.add(key)
        line = _line_of(lines, path)
        # Union members each report a failure at the same place: keep the first, it is enough.
        if (
            any(o.startswith(f"{file}:{line}: {_format_path(path)}:") for o in out)
            and kind != "extra_forbidden"
        ):
            continue
        out.append(f"{file}:{line}: {_format_path(path)}: {text}")
    return out


def load(path: str | Path, fio_table: fio_options.OptionTable | None = None) -> Workload:
    """Load and validate a workload file; raise UsageError with one line per problem.

    With `fio_table` (what `plan` and `run` pass) the fio options are also checked against the
    options that fio has and blkcmp's allow-list.
    """
    path = Path(path)
    name = str(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such workload file") from None
    except OSError as exc:
        raise UsageError(f"{name}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UsageError(
            f"{name}: expected a workload file of at most {MAX_FILE_BYTES // 1024} KiB, found more"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UsageError(
            f"{name}:{line}: expected UTF-8 text, found byte 0x{data[exc.start]:02x} (save the file as UTF-8)"
        ) from None
    workload = loads(text, name, fio_table)
    if workload.name is None and (problem := name_problem(path.stem, "campaign", MAX_CAMPAIGN_NAME)):
        raise UsageError(
            f"{name}:1: name: the campaign is named after the file when `name:` is not "
            f"set: {problem}; set `name:`"
        )
    return workload


def loads(text: str, name: str = "<workload>", fio_table: fio_options.OptionTable | None = None) -> Workload:
    if len(text) > MAX_FILE_BYTES:
        raise UsageError(f"{name}: expected a workload of at most {MAX_FILE_BYTES // 1024} KiB, found more")
    try:
        if problem := _shape_problem(text, name):
            raise UsageError(problem)
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise UsageError(
            f"{name}:{line}: invalid YAML: {quoted(exc.problem or str(exc), 200)[1:-1]}"
        ) from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{name}: invalid YAML: {quoted(str(exc), 200)[1:-1]}") from None
    if data is None:
        raise UsageError(f"{name}:1: (top level): expected a mapping with `targets`, found an empty file")
    if not isinstance(data, dict):
        raise UsageError(
            f"{name}:1: (top level): expected a mapping with `targets`, found {_describe_found(data)}"
        )
    raw: dict[tuple, str] = {}
    lines = _line_map(node, raw=raw) if node is not None else {}
    problems = [
        f"{name}:{_line_of(lines, path)}: {_format_path(path)}: {text}"
        for path, text in _number_problems(data)
    ]
    if problems:
        raise UsageError("\n".join(problems))
    try:
        workload = Workload.model_validate(data)
    except ValidationError as exc:
        raise UsageError("\n".join(_messages(exc, data, lines, name))) from None
    problems = [
        f"{name}:{_line_of(lines, path)}: {_format_path(path)}: {text}"
        for path, text in itertools.chain(
            semantic_problems(workload), fio_option_problems(workload, fio_table, raw)
        )
    ]
    if problems:
        raise UsageError("\n".join(problems))
    return workload


def _line_of(lines: dict[tuple, int], path: tuple) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)


def json_schema() -> dict:
    schema = Workload.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://blkcmp.invalid/workload.schema.json"
    schema["title"] = "blkcmp workload"
    return schema


def dump(workload: Workload) -> str:
    """The resolved workload as YAML (what a campaign directory keeps)."""
    data = workload.model_dump(mode="json", exclude_none=False)
    for name, spec in workload.targets.named().items():
        if spec.driver not in EXISTING_DRIVERS:  # fields only they have stay out of the others' record
            for field in BLOCKDEV_FIELDS:
                data["targets"][name].pop(field, None)
    return yaml.safe_dump(data, sort_keys=False)
