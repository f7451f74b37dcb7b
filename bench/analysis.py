"""From campaign directories to comparisons: the glue between the store and bench.stats.

Runs are grouped into *sides* by `by` (target, kernel, host, or any matrix key) and into
*points* by what remains (the matrix point, and the target when sides are not targets). Each
non-baseline side is compared with the baseline side point by point; p-values are corrected
across the points of one side's comparison. Rounds pair runs only when both sides come from the
same campaign (interleaved in the same rounds); across campaigns the comparison is unpaired.

A campaign of several kernels (bench.plan: every run has a kernel label and a boot slot) is
analysed per kernel: `kernel=LABEL` takes that kernel's runs only (their boots are its sessions);
without it, `--by target` compares the targets within each kernel (the label joins the point) and
`--by kernel` compares each target across the kernels with each boot's mean as one unit, since
runs of different kernels ran in different boots: a boot-to-boot offset is never read as a kernel
difference with more confidence than the boots allow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import points as points_mod
from bench import stats, store
from bench.analysis_options import DEFAULTS, METRICS, AnalysisOptions, Metric
from bench.errors import UsageError, shorten
from bench.results import RunRecord, load_runs, missing_reason
from bench.stats.quality import UNDERPOWERED

UNDER_REPLICATED = "one run per target at every point: ingest or run repetitions to get confidence intervals"


__all__ = [
    "METRICS",
    "Analysis",
    "AnalysisOptions",
    "Metric",
    "NothingToCompare",
    "PointResult",
    "SideComparison",
    "analyse",
]


class NothingToCompare(UsageError):
    """The campaigns hold nothing these options can compare (one side only, an empty metric, no
    finished runs): a fact about the data, which `plot` and `report` say in place of a verdict."""


# Flag of a point whose ratio varies mostly between sessions (boots, resumed runs), not within.
SESSION_EFFECT = "session effect"


@dataclass
class PointResult:
    point: str  # point key (matrix point, plus target when sides are not targets)
    baseline_values: list[float]
    candidate_values: list[float]
    comparison: stats.Comparison
    verdict: stats.Verdict | None = None
    quality_baseline: stats.Quality | None = None
    quality_candidate: stats.Quality | None = None
    flags: list[str] = field(default_factory=list)
    label: str = ""  # the point in reading order for people: "randread 4k qd1"
    runs: stats.PointRuns | None = None  # the values behind the comparison, with their rounds


@dataclass
class SideComparison:
    baseline: str
    candidate: str
    metric: Metric
    points: list[PointResult]
    across: stats.AcrossPoints | None


@dataclass
class Analysis:
    by: str
    metric: Metric
    margin: float
    alpha: float
    correction: str
    campaigns: list[store.Campaign]
    sides: list[str]
    baseline: str
    comparisons: list[SideComparison]
    labels: list[str]  # e.g. "emulated (TCG)" labels of the campaigns' executors
    kernels: list[str]
    allowed_differences: list[str] = field(default_factory=list)  # audited, allowed by the workload
    confidence: float = 0.95  # 0.975 for adaptive campaigns (still a 95 % claim; see README)
    warnings: list[str] = field(default_factory=list)  # one line each: metric empty at points, why
    notes: list[str] = field(default_factory=list)  # said once above the tables (replication, failures)
    failed_runs: int = 0  # failed runs of these campaigns: excluded from every statistic


def _stopping_rules(campaigns: list[store.Campaign]) -> list:
    """The stopping rules of the adaptive campaigns among these (from their plans)."""
    return [plan.stopping for plan in (c.plan() for c in campaigns) if plan.stopping is not None]


def baseline_target(campaign: store.Campaign, targets: list[str]) -> str:
    """The baseline target when none is asked for: the campaign's (store.Campaign.baseline), the
    same for compare, plots and the report; an error when it has no runs among `targets`."""
    base = campaign.baseline()
    if base not in targets:
        raise UsageError(
            f"{campaign.path}: the baseline {base} has no finished runs (targets with runs: "
            f"{', '.join(targets)}); give --baseline target=NAME"
        )
    return base


def side_of(rec: RunRecord, by: str, kernel: str) -> str | None:
    if by == "target":
        return rec.target
    if by == "kernel":
        return rec.kernel_label or kernel
    if by == "host":
        return rec.host or "unknown"
    value = rec.point.get(by)
    return None if value is None else str(value)


def point_of(rec: RunRecord, by: str) -> str:
    if by == "target":
        return rec.point_key + (f" [{rec.kernel_label}]" if rec.kernel_label else "")
    rest = points_mod.key_of({k: v for k, v in rec.point.items() if k != by})
    return f"{rest} [{rec.target}]"


def label_of(rec: RunRecord, by: str) -> str:
    """The point as people read it: "randread 4k qd1", plus "[target]" when sides are not targets."""
    if by == "target":
        return points_mod.label(rec.point) + (f" [{rec.kernel_label}]" if rec.kernel_label else "")
    return f"{points_mod.label({k: v for k, v in rec.point.items() if k != by})} [{rec.target}]"


def analyse(
    dirs: list[Path],
    options: AnalysisOptions = DEFAULTS,
    *,
    n_boot: int | None = None,
    kernel: str | None = None,
) -> Analysis:
    """Compare every side with the baseline side, point by point, as `options` (already checked)
    say. `n_boot` (bootstrap resamples): default, an adaptive campaign's own (its plan's stopping
    rule, so the intervals are the ones it stopped on), else stats.DEFAULT_N_BOOT. `kernel`: only
    the runs of the kernel with that label (a campaign of several kernels)."""
    by, m, margin, alpha = options.by, options.metric, options.margin, options.alpha
    correction, seed = options.correction, options.seed
    campaigns = [store.open_campaign(d) for d in dirs]
    confidence = 0.95
    rules = _stopping_rules(campaigns)
    if rules:  # campaigns that stopped on precision need their rule's wider CIs to keep coverage
        confidence = max(rule.confidence for rule in rules)
    if n_boot is None:
        n_boot = max((rule.resamples for rule in rules), default=stats.DEFAULT_N_BOOT)
    records: list[tuple[RunRecord, str, int]] = []  # record, side, campaign index
    from bench.sessions import run_sessions

    sessions = [run_sessions(c) for c in campaigns]  # run_id -> session, per campaign
    sides: list[str] = []
    kernels = []
    for ci, campaign in enumerate(campaigns):
        release = campaign.kernel_release()
        labels_of_plan = campaign.plan().kernels
        kernels += [kernel] if kernel else labels_of_plan or [release]
        for rec in load_runs(campaign):
            if kernel is not None and rec.kernel_label != kernel:
                continue
            if kernel is not None:  # one kernel's runs: compared as a one-kernel campaign's
                rec = replace(rec, kernel_label=None)
            side = side_of(rec, by, release)
            if side is None:
                raise UsageError(
                    f"--by {shorten(by)}: campaign {campaign.path} has no matrix key {shorten(by)!r}"
                )
            records.append((rec, side, ci))
            if side not in sides:
                sides.append(side)
    if not records:
        raise NothingToCompare("no finished runs in " + ", ".join(str(d) for d in dirs))
    if by == "kernel":  # the kernels of a campaign of several: in the order of its `kernels:`
        order = {label: i for c in campaigns for i, label in enumerate(c.plan().kernels)}
        sides.sort(key=lambda side: order.get(side, len(order)))
    wanted = options.baseline
    if wanted is None:
        wanted = baseline_target(campaigns[0], sides) if by == "target" else sides[0]
    if wanted not in sides:
        raise UsageError(f"--baseline {shorten(wanted)}: no such {by} (found: {shorten(', '.join(sides))})")
    # Points in reading order: rw as the plans list them, then bs, iodepth, numjobs … as numbers.
    rw_order: dict[str, int] = {}
    for campaign in campaigns:
        for p in campaign.plan().points:
            rw_order.setdefault(str(points_mod.normalise(p.options).get("rw", "")), len(rw_order))
    point_order: dict[str, tuple] = {}
    labels: dict[str, str] = {}
    kernel_order = {label: i for c in campaigns for i, label in enumerate(c.plan().kernels)}
    for rec, _, _ in records:
        labels.setdefault(point_of(rec, by), label_of(rec, by))
        options = {k: v for k, v in rec.point.items() if k != by}
        point_order.setdefault(
            point_of(rec, by),
            (
                points_mod.sort_key(options, rw_order),
                rec.target if by != "target" else "",
                kernel_order.get(rec.kernel_label or "", -1) if by == "target" else -1,
            ),
        )
    if len(sides) < 2:
        raise NothingToCompare(
            f"--by {by}: only one {by} ({sides[0]}) in these campaigns; nothing to compare"
        )
    comparisons = []
    empty: dict[tuple[str, str], dict[str, RunRecord]] = {}  # (point, side) -> runs without a value
    for candidate in [s for s in sides if s != wanted]:
        points: dict[str, dict[str, list]] = {}
        for rec, side, ci in records:
            if side not in (wanted, candidate):
                continue
            slot = points.setdefault(point_of(rec, by), {wanted: [], candidate: []})
            value = rec.metrics.get(m.column)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                empty.setdefault((point_of(rec, by), side), {})[rec.run_id] = rec
                continue
            unit = rec.round
            if by == "kernel" and rec.kernel_label:  # kernels of one campaign: each boot is a unit
                boot = sessions[ci].get(rec.run_id, rec.boot_slot)
                unit = -1 - (boot if boot is not None else 0)
            slot[side].append((value, unit, rec.position, ci, rec.run_id))
        results: dict[str, PointResult] = {}
        runs: dict[str, stats.PointRuns] = {}
        for key, slot in sorted(points.items(), key=lambda kv: point_order[kv[0]]):
            b, c = slot[wanted], slot[candidate]
            if not b or not c:
                continue
            same_campaign = {x[3] for x in b} == {x[3] for x in c} and len({x[3] for x in b}) == 1
            # kernels of one campaign ran in different boots: their rounds do not pair
            paired = same_campaign and not (by == "kernel" and min(x[1] for x in b + c) < 0)
            round_sessions = None
            if paired and sessions[b[0][3]]:  # runs from several sessions: a level of the design
                of_run = sessions[b[0][3]]
                round_sessions = {}
                for x in b + c:
                    round_sessions.setdefault(x[1], of_run.get(x[4], 0))
            comp = stats.compare(
                [x[0] for x in b],
                [x[0] for x in c],
                round_sessions=round_sessions,
                baseline_rounds=[x[1] for x in b] if same_campaign else None,
                candidate_rounds=[x[1] for x in c] if same_campaign else None,
                higher_is_better=m.higher_is_better,
                margin=margin,
                alpha=alpha,
                confidence=confidence,
                n_boot=n_boot,
                seed=seed,
            )
            power = {"mde": comp.mde, "margin": margin, "equivalence_power": comp.power_equivalence}
            qb = stats.quality_report([x[0] for x in b], [x[2] for x in b], **power)
            qc = stats.quality_report([x[0] for x in c], [x[2] for x in c], **power)
            flags = (
                set(qb.flags)
                | set(qc.flags)
                | ({SESSION_EFFECT} if comp.sessions is not None and comp.sessions.dominated else set())
            )
            if min(len(b), len(c)) < 2:  # no spread to measure: said once (UNDER_REPLICATED), not per point
                flags.discard(UNDERPOWERED)
            results[key] = PointResult(
                key, [x[0] for x in b], [x[0] for x in c], comp, None, qb, qc, sorted(flags), labels[key]
            )
            # rounds of different campaigns are different rounds: number them apart
            runs[key] = stats.PointRuns(
                [x[0] for x in b],
                [x[0] for x in c],
                [x[3] * 1_000_000 + x[1] for x in b],
                [x[3] * 1_000_000 + x[1] for x in c],
                paired=paired,
            )
            results[key].runs = runs[key]
        if results:
            # adaptive campaigns test at the sequential level too (alpha/2, as their CIs)
            test_alpha = alpha if confidence == 0.95 else 1.0 - stats.sequential_confidence(1.0 - alpha)
            verdicts = stats.decide(
                {k: r.comparison for k, r in results.items()},
                method=correction,
                margin=margin,
                alpha=test_alpha,
                baseline_name=wanted,
                candidate_name=candidate,
            )
            for v in verdicts:
                results[v.key].verdict = v
            across = stats.summarize_points(
                verdicts, [runs[v.key] for v in verdicts], confidence=confidence, n_boot=n_boot, seed=seed
            )
        else:
            across = None
        comparisons.append(SideComparison(wanted, candidate, m, list(results.values()), across))
    empty_reasons = _empty_metric_reasons(m, records, by, empty)
    warnings = [
        f"{m.name} is empty for every run of {len(where)} point(s) ({_some(where)}): {reason}"
        for reason, where in empty_reasons.items()
    ]
    if not any(side.points for side in comparisons):
        why = "; ".join(empty_reasons) or f"no point has runs of both {wanted} and another {by}"
        raise NothingToCompare(f"{m.name}: nothing to compare: {why}")
    failed = sum(store.status_counts(c).get("failed", 0) for c in campaigns)
    notes = []
    compared = [p for side in comparisons for p in side.points]
    single = [p for p in compared if min(p.comparison.baseline.n, p.comparison.candidate.n) < 2]
    if single and len(single) == len(compared):
        notes.append(UNDER_REPLICATED)
    elif single:
        notes.append(
            f"{len(single)} of {len(compared)} points have one run per target (no confidence "
            "interval there): ingest or run repetitions"
        )
    if by == "kernel" and any(rec.kernel_label for rec, _, _ in records):
        notes.append(
            "kernels of one campaign ran in different boots: each boot's mean is one unit, so a "
            "boot-to-boot difference is not taken for a kernel difference (plan boots: 2 or more)"
        )
    if failed:
        notes.append(
            f"{failed} failed run(s) excluded from every statistic (blkcmp export shows their errors)"
        )
    labels = sorted({c.executor_label() for c in campaigns} - {"", "host"})
    allowed = [f"{c.name}: {line}" for c in campaigns for line in c.allowed_differences()]
    return Analysis(
        by,
        m,
        margin,
        alpha,
        correction,
        campaigns,
        sides,
        wanted,
        comparisons,
        labels,
        kernels,
        allowed,
        confidence,
        warnings,
        notes,
        failed,
    )


def _some(items: list[str], shown: int = 2) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _empty_metric_reasons(
    m: Metric,
    records: list[tuple[RunRecord, str, int]],
    by: str,
    empty: dict[tuple[str, str], dict[str, RunRecord]],
) -> dict[str, list[str]]:
    """{reason: points} where the metric is empty for every run of the point (on some side)."""
    runs_at: dict[tuple[str, str], int] = {}
    for rec, side, _ in records:
        runs_at[(point_of(rec, by), side)] = runs_at.get((point_of(rec, by), side), 0) + 1
    by_reason: dict[str, list[str]] = {}
    for (point, side), recs in empty.items():
        if len(recs) == runs_at[(point, side)]:  # every run of this point and side
            reason = missing_reason(next(iter(recs.values())), m.column)
            where = by_reason.setdefault(reason, [])
            if point not in where:
                where.append(point)
    return by_reason
