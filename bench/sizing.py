"""How many rounds each point needs, from a pilot campaign: `compare --pilot DIR`, `plan --pilot DIR`.

A pilot's per-point spread (the standard deviation of one round's relative difference, or the
targets' CVs when unpaired) goes into `stats.rounds_for_power`, which answers two questions at
80 % power: how many rounds to call a shift of one margin faster/slower, and how many to show
equivalence when the drivers are identical.  The points of a campaign are decided together, so
the level is Bonferroni's alpha/k over its k points: a safe bound for Holm's first step, and for
every later one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench import stats
from bench.analysis_options import AnalysisOptions
from bench.errors import UsageError
from bench.units import margin_text

POWER = 0.8
MAX_ROUNDS = 10_000


@dataclass(frozen=True)
class Sizing:
    candidate: str
    baseline: str
    point: str
    label: str  # the point as tables show it: "randread 4k qd1"
    pilot_rounds: int
    paired: bool
    unit_sd: float  # NaN when the pilot cannot estimate it
    rounds_detect: int  # to call a ±margin shift faster/slower; 0 when unknown
    rounds_equivalence: int  # to show equivalence of identical drivers; 0 when unknown

    @property
    def rounds(self) -> int:
        return max(self.rounds_detect, self.rounds_equivalence)

    def to_dict(self) -> dict:
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "point": self.point,
            "label": self.label,
            "pilot_rounds": self.pilot_rounds,
            "paired": self.paired,
            "unit_sd": self.unit_sd if math.isfinite(self.unit_sd) else None,
            "rounds_detect": self.rounds_detect or None,
            "rounds_equivalence": self.rounds_equivalence or None,
            "rounds": self.rounds or None,
        }


@dataclass(frozen=True)
class PilotPlan:
    pilot: Path
    margin: float
    alpha: float  # the family's level
    family_alpha: float  # alpha / k
    power: float
    sizes: list[Sizing]


def from_analysis(pilot: Path, analysis) -> PilotPlan:
    """Rounds per point from an Analysis of the pilot campaign."""
    sizes = []
    k = max((len(side.points) for side in analysis.comparisons), default=1)
    family_alpha = analysis.alpha / max(1, k)
    for side in analysis.comparisons:
        for p in side.points:
            moments = p.comparison.moments
            sd = moments.unit_sd()
            detect = equivalent = 0
            if math.isfinite(sd) and sd > 0:
                detect, equivalent = stats.rounds_for_power(
                    sd,
                    analysis.margin,
                    paired=moments.paired,
                    alpha=family_alpha,
                    power=POWER,
                    max_rounds=MAX_ROUNDS,
                )
            sizes.append(
                Sizing(
                    side.candidate,
                    side.baseline,
                    p.point,
                    p.label or p.point,
                    min(moments.n_baseline, moments.n_candidate),
                    moments.paired,
                    sd,
                    detect,
                    equivalent,
                )
            )
    return PilotPlan(pilot, analysis.margin, analysis.alpha, family_alpha, POWER, sizes)


def load(pilot: Path, options: AnalysisOptions) -> PilotPlan:
    """Rounds per point from the pilot campaign, at `options`' margin, alpha and metric."""
    from bench import analysis as analysis_mod

    if not pilot.is_dir():
        raise UsageError(f"--pilot {pilot}: not a directory (give a finished campaign directory)")
    return from_analysis(pilot, analysis_mod.analyse([pilot], options, n_boot=1000))


def _rounds_text(n: int) -> str:
    if n == 0:
        return "-"
    return f">{MAX_ROUNDS}" if n > MAX_ROUNDS else str(n)


def lines(plan: PilotPlan, planned_rounds: dict[str, int] | None = None) -> list[str]:
    """A plain-text table, at most 72 columns; `planned_rounds` marks points planned too short."""
    out = [
        f"rounds needed for {plan.power:.0%} power, from the pilot {plan.pilot}",
        f"margin {margin_text(plan.margin)}; alpha {plan.alpha:g} over {len(plan.sizes)} points "
        f"(Bonferroni {plan.family_alpha:.2g} each)",
        "sd: of one round's relative difference (paired) or sqrt(CV_b^2 + CV_c^2)",
        f"{'point':24s} {'pilot':>5s} {'sd':>6s} {'faster':>6s} {'equiv':>6s} {'needed':>6s}",
    ]
    for s in plan.sizes:
        sd = f"{s.unit_sd:.2%}" if math.isfinite(s.unit_sd) else "-"
        row = (
            f"{s.label:24s} {s.pilot_rounds:>5d} {sd:>6s} {_rounds_text(s.rounds_detect):>6s} "
            f"{_rounds_text(s.rounds_equivalence):>6s} {_rounds_text(s.rounds):>6s}"
        )
        planned = (planned_rounds or {}).get(s.point)
        if planned is not None and s.rounds and planned < s.rounds:
            row += f" (plan: {planned})"
        out.append(row.rstrip())
    if not plan.sizes:
        out.append("(the pilot has no point with runs of two targets)")
    return out
