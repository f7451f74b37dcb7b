"""The stopping rule of an adaptive campaign, as data recorded in its plan, and its evaluation.

A workload with `repetitions: {min, max, target_ci, margin}` gets a `StoppingRule` in its plan
when the campaign is created: the rounds (min, max), the precision asked for (target_ci), the
margin a verdict is settled at, the baseline and metric compared, the confidence level of the
intervals and the number of bootstrap resamples. `evaluate` is the one function that applies
it: pure, over the runs loaded so far, it returns the `Decision` (stop, or which points get
another round) that the runner saves through the store. `blkcmp compare` and `report` read the
same rule from the plan: an adaptive campaign is one whose plan has a rule, and its intervals
are computed at the rule's confidence with the rule's resample count, so the precision the
rule stopped on is the precision the report shows.

The defaults of `repetitions: {}` live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.plan import Plan
    from bench.results import RunRecord
    from bench.stats.adaptive import Decision
    from bench.workload import Workload

DEFAULT_MIN_ROUNDS = 5
DEFAULT_MAX_ROUNDS = 40
DEFAULT_TARGET_CI = 0.01
# Bootstrap resamples of the rule's intervals; the analysis of an adaptive campaign uses the
# count its plan records, so stopping and reporting see the same interval.
DEFAULT_RESAMPLES = 10_000
# Stopping on precision narrows the final intervals: an adaptive campaign's intervals are
# computed at 1 - (1 - 0.95) / 2 = 97.5 % to keep a 95 % claim (bench.stats.adaptive).
SEQUENTIAL_CONFIDENCE = 0.975
METRIC = "iops"


@dataclass(frozen=True)
class StoppingRule:
    margin: float  # a point whose verdict is settled at this margin stops
    baseline: str  # the target every other target is compared with
    min_rounds: int = DEFAULT_MIN_ROUNDS
    max_rounds: int = DEFAULT_MAX_ROUNDS
    target_ci: float = DEFAULT_TARGET_CI  # relative half-width of the ratio CI that is enough
    metric: str = METRIC
    confidence: float = SEQUENTIAL_CONFIDENCE
    resamples: int = DEFAULT_RESAMPLES
    seed: int = 0  # of the bootstrap (the analysis uses the same)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StoppingRule:
        return cls(**data)


def rule_for(workload: Workload, baseline: str) -> StoppingRule | None:
    """The rule of `repetitions: {min, max, target_ci, margin}`; None for a fixed count."""
    from bench.workload import AdaptiveRepetitions

    reps = workload.repetitions
    if not isinstance(reps, AdaptiveRepetitions):
        return None
    return StoppingRule(
        margin=reps.margin,
        baseline=baseline,
        min_rounds=reps.min,
        max_rounds=reps.max,
        target_ci=reps.target_ci,
    )


def evaluate(rule: StoppingRule, plan: Plan, records: Iterable[RunRecord]) -> Decision:
    """The rule on the finished runs so far: stop, or which (candidate, point key) go on.

    A point stops once its verdict is settled at the rule's confidence (at `margin`) or its
    ratio CI is narrow enough; only the undecided points get another round. A run without a
    value for the metric is left out (it has none to contribute)."""
    from bench import points as points_mod
    from bench import stats
    from bench.analysis import METRICS

    metric = METRICS[rule.metric]
    values: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for rec in records:
        value = rec.metrics.get(metric.column)
        if value is not None:
            values.setdefault((rec.target, rec.point_key), []).append((value, rec.round))
    comparisons = {}
    for candidate in [t for t in plan.targets if t != rule.baseline]:
        for point in plan.points:
            key = points_mod.key_of(point.options)
            b, c = values.get((rule.baseline, key), []), values.get((candidate, key), [])
            if not b or not c:
                continue
            comparisons[(candidate, point.key)] = stats.compare(
                [x[0] for x in b],
                [x[0] for x in c],
                baseline_rounds=[x[1] for x in b],
                candidate_rounds=[x[1] for x in c],
                higher_is_better=metric.higher_is_better,
                n_boot=rule.resamples,
                seed=rule.seed,
                confidence=rule.confidence,
            )
    if not comparisons:  # a single target: nothing to compare
        return stats.Decision(
            True,
            "adaptive: one target only, nothing to compare; stopping at the minimum",
            plan.rounds,
            (),
            (),
            float("nan"),
        )
    return stats.adaptive_decision(
        comparisons,
        target_ci=rule.target_ci,
        rounds_done=plan.rounds,
        min_rounds=rule.min_rounds,
        max_rounds=rule.max_rounds,
        margin=rule.margin,
    )


def undecided_points(decision: Decision) -> set[str]:
    """The point keys that get another round."""
    return {point for _, point in decision.points_above_target}
