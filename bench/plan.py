"""Expanding a workload into a campaign plan: matrix points × targets × rounds, in run order.

`interleaved` (the default) runs every target × point once per round, in a fresh random order per
round drawn from the seed (Abedi & Brecht: never one driver's runs after the other's), so rounds
can be added later (adaptive repetitions) and stay reproducible. `sequential` runs target by
target, point by point, repetition by repetition: the naive order, kept for comparison.
Pure functions: the same workload and seed always give the same plan.

Several kernels in one campaign (VM campaigns): each kernel gets every target, point and round,
spread over `boots` separate boots of it.  The boot slots are ordered block by block: in block
b = 0 .. boots-1 a seeded permutation of the kernels, so every kernel boots once per block (never
all boots of one kernel first) and the order follows from the seed.  A kernel's rounds go to its
boots in contiguous groups as even as they can be; within a boot the rounds stay interleaved as
above.  A one-kernel, one-boot plan is exactly the plan of a campaign without kernels.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import asdict, dataclass, field
from functools import cached_property

from bench import points as points_mod
from bench.stopping import StoppingRule, rule_for
from bench.workload import Scalar, Workload

# Seconds a run costs beyond ramp_time + runtime (fio start-up, parsing, bookkeeping); only for
# the estimate printed by `blkcmp plan`.
RUN_OVERHEAD_S = 1.0


@dataclass(frozen=True)
class Point:
    index: int
    options: dict[str, Scalar]

    @cached_property
    def key(self) -> str:
        """Stable identity of the point across campaigns: `rw=randread,bs=4k,iodepth=1`."""
        return points_mod.key_of(self.options)

    @property
    def label(self) -> str:
        return points_mod.label(self.options)


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    target: str
    point_index: int
    point_key: str
    point: dict[str, Scalar]
    round: int  # 1-based interleaving round
    repetition: int  # 1-based repetition of this target × point
    position: int  # 0-based place in the whole campaign's run order
    kernel: str | None = None  # the kernel's label (campaigns of several kernels or boots only)
    boot: int | None = None  # its planned boot slot, an index into Plan.slots


@dataclass
class Plan:
    campaign: str
    seed: int
    order: str
    targets: list[str]
    points: list[Point]
    runtime: float
    ramp_time: float
    rounds: int
    max_rounds: int
    runs: list[PlannedRun] = field(default_factory=list)
    baseline: str | None = None  # None: a campaign without a workload (ingested runs)
    stopping: StoppingRule | None = None  # the rule of an adaptive campaign (bench.stopping)
    kernels: list[str] = field(default_factory=list)  # labels, in the workload's order (several kernels)
    boots: int = 1  # separate boots per kernel
    slots: list[str] = field(default_factory=list)  # the kernel label of each boot slot, in boot order

    @property
    def adaptive(self) -> bool:
        return self.stopping is not None

    @property
    def multi_boot(self) -> bool:
        """A plan of several kernels or boots: its runs carry their kernel label and boot slot."""
        return bool(self.slots)

    def slot_runs(self, slot: int) -> list[PlannedRun]:
        return [r for r in self.runs if r.boot == slot]

    def to_dict(self) -> dict:
        kernels = {"kernels": self.kernels, "boots": self.boots, "slots": self.slots} if self.slots else {}
        return kernels | {
            "campaign": self.campaign,
            "seed": self.seed,
            "order": self.order,
            "targets": self.targets,
            "baseline": self.baseline,
            "stopping": self.stopping.to_dict() if self.stopping else None,
            "points": [{"index": p.index, "key": p.key, "options": p.options} for p in self.points],
            "runtime": self.runtime,
            "ramp_time": self.ramp_time,
            "rounds": self.rounds,
            "max_rounds": self.max_rounds,
            "runs": [_run_dict(r) for r in self.runs],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        plan = cls(
            campaign=data["campaign"],
            seed=data["seed"],
            order=data["order"],
            targets=list(data["targets"]),
            points=[Point(p["index"], dict(p["options"])) for p in data["points"]],
            runtime=data["runtime"],
            ramp_time=data["ramp_time"],
            rounds=data["rounds"],
            max_rounds=data["max_rounds"],
            baseline=data.get("baseline"),
            stopping=StoppingRule.from_dict(data["stopping"]) if data.get("stopping") else None,
            kernels=list(data.get("kernels", [])),
            boots=int(data.get("boots", 1)),
            slots=list(data.get("slots", [])),
        )
        plan.runs = [PlannedRun(**r) for r in data["runs"]]
        return plan

    def estimated_seconds(self, runs: int | None = None) -> float:
        n = len(self.runs) if runs is None else runs
        return n * (self.runtime + self.ramp_time + RUN_OVERHEAD_S)


def _run_dict(run: PlannedRun) -> dict:
    data = asdict(run)
    if run.boot is None:  # one kernel, one boot: the plan as it always was
        del data["kernel"], data["boot"]
    return data


def run_id(round_: int, point_index: int, target: str, kernel: str | None = None) -> str:
    base = f"r{round_:03d}-p{point_index:03d}-{target}"
    return f"{kernel}--{base}" if kernel is not None else base


def boot_order(kernels: list[str], boots: int, seed: int) -> list[str]:
    """The kernel of each boot slot: per block of slots a seeded permutation of the kernels."""
    order: list[str] = []
    for block in range(boots):
        labels = list(kernels)
        random.Random(f"{seed}:boots:{block}").shuffle(labels)
        order += labels
    return order


def spread(rounds: int, boots: int) -> list[range]:
    """Rounds 1..rounds split into `boots` contiguous groups as even as possible (the first
    groups one round larger when it does not divide)."""
    size, extra = divmod(rounds, boots)
    groups, start = [], 1
    for b in range(boots):
        n = size + (1 if b < extra else 0)
        groups.append(range(start, start + n))
        start += n
    return groups


def make_plan(
    workload: Workload,
    campaign: str,
    seed: int | None = None,
    kernels: list[str] | None = None,
    boots: int = 1,
) -> Plan:
    """The plan for the workload's first `min_rounds()` rounds; with several `kernels` (labels)
    or `boots`, the boot slots and each kernel's rounds spread over its boots."""
    if seed is None:
        seed = workload.seed if workload.seed is not None else secrets.randbelow(2**31)
    points = [Point(i, p) for i, p in enumerate(workload.points())]
    baseline = workload.baseline_name()
    plan = Plan(
        campaign=campaign,
        seed=seed,
        order=workload.order,
        targets=workload.target_names(),
        points=points,
        runtime=workload.runtime,
        ramp_time=workload.ramp_time,
        rounds=0,
        max_rounds=workload.max_rounds(),
        baseline=baseline,
        stopping=rule_for(workload, baseline),
    )
    kernels = list(kernels or [])
    if len(kernels) > 1 or boots > 1:
        return add_boots(plan, workload.min_rounds(), kernels, boots)
    if workload.order == "sequential":
        reps = workload.min_rounds()
        plan.runs = [
            PlannedRun(run_id(rep, p.index, t), t, p.index, p.key, p.options, rep, rep, 0)
            for t in plan.targets
            for p in points
            for rep in range(1, reps + 1)
        ]
        plan.runs = [_at(r, i) for i, r in enumerate(plan.runs)]
        plan.rounds = reps
        return plan
    return add_rounds(plan, workload.min_rounds())


def add_rounds(plan: Plan, count: int, points: set[str] | None = None) -> Plan:
    """Append `count` interleaved rounds; each round's order depends only on (seed, round).

    `points` (point keys) limits the new rounds to those points: an adaptive campaign runs
    more rounds only for the points whose verdict is still undecided.
    """
    runs = list(plan.runs)
    for round_ in range(plan.rounds + 1, plan.rounds + count + 1):
        cells = [(t, p) for p in plan.points for t in plan.targets]
        random.Random(f"{plan.seed}:{round_}").shuffle(cells)
        if points is not None:  # filtered after the shuffle: the others keep their relative order
            cells = [(t, p) for t, p in cells if p.key in points]
        for t, p in cells:
            runs.append(
                PlannedRun(
                    run_id(round_, p.index, t), t, p.index, p.key, p.options, round_, round_, len(runs)
                )
            )
    plan.runs = runs
    plan.rounds += count
    return plan


def add_boots(plan: Plan, rounds: int, kernels: list[str], boots: int) -> Plan:
    """The runs of a plan of several kernels or boots (its points and targets set, no runs yet):
    boot slots in a seeded, balanced order, each kernel's `rounds` spread over its boots."""
    if plan.adaptive or plan.order != "interleaved":  # refused with the workload (bench.multikernel)
        raise ValueError("several kernels or boots need fixed repetitions and order: interleaved")
    plan.kernels, plan.boots = kernels, boots
    plan.slots = boot_order(kernels, boots, plan.seed)
    groups = {k: spread(rounds, boots) for k in kernels}
    seen = dict.fromkeys(kernels, 0)
    runs: list[PlannedRun] = []
    for slot, kernel in enumerate(plan.slots):
        for round_ in groups[kernel][seen[kernel]]:
            cells = [(t, p) for p in plan.points for t in plan.targets]
            random.Random(f"{plan.seed}:{kernel}:{round_}").shuffle(cells)
            for t, p in cells:
                runs.append(
                    PlannedRun(
                        run_id(round_, p.index, t, kernel),
                        t,
                        p.index,
                        p.key,
                        p.options,
                        round_,
                        round_,
                        len(runs),
                        kernel,
                        slot,
                    )
                )
        seen[kernel] += 1
    plan.runs = runs
    plan.rounds = rounds
    return plan


def _at(run: PlannedRun, position: int) -> PlannedRun:
    return PlannedRun(**(asdict(run) | {"position": position}))
