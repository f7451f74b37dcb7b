"""Expanding a workload into a campaign plan: matrix points × targets × rounds, in run order.

`interleaved` (the default) runs every target × point once per round, in a fresh random order per
round drawn from the seed (Abedi & Brecht: never one driver's runs after the other's), so rounds
can be added later (adaptive repetitions) and stay reproducible. `sequential` runs target by
target, point by point, repetition by repetition: the naive order, kept for comparison.
Pure functions: the same workload and seed always give the same plan.
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

    @property
    def adaptive(self) -> bool:
        return self.stopping is not None

    def to_dict(self) -> dict:
        return {
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
            "runs": [asdict(r) for r in self.runs],
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
        )
        plan.runs = [PlannedRun(**r) for r in data["runs"]]
        return plan

    def estimated_seconds(self, runs: int | None = None) -> float:
        n = len(self.runs) if runs is None else runs
        return n * (self.runtime + self.ramp_time + RUN_OVERHEAD_S)


def run_id(round_: int, point_index: int, target: str) -> str:
    return f"r{round_:03d}-p{point_index:03d}-{target}"


def make_plan(workload: Workload, campaign: str, seed: int | None = None) -> Plan:
    """The plan for the workload's first `min_rounds()` rounds."""
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


def _at(run: PlannedRun, position: int) -> PlannedRun:
    return PlannedRun(**(asdict(run) | {"position": position}))
