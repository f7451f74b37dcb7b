"""`compare --by gap`: did the candidate/baseline gap change between kernels?

The campaigns are grouped by kernel release (store.Campaign.kernel_release), kernels in version
order (releases.release_key).  Each kernel's campaigns are analysed on their own exactly as
`compare --by target` analyses them (the campaign's baseline rule, sessions as a level of the
design), which gives each point's gap on that kernel: the candidate/baseline ratio with its CI
and verdict.  Then every later kernel is compared with the reference kernel (the first, or
`--baseline kernel=X`): per candidate and point the ratio of the two gaps with its CI and a
verdict (stats.gap), corrected across the points of that comparison like any other family.

One campaign of several kernels (one DIR; bench.plan) is analysed the same way, kernel by kernel
(`analyse(..., kernel=LABEL)`), each kernel's boots being its sessions, in the order of its
`kernels:` list; the first is the reference unless `--baseline kernel=LABEL`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from bench import stats, store
from bench.analysis import Analysis, NothingToCompare, PointResult, analyse
from bench.analysis_options import AnalysisOptions, Metric
from bench.errors import UsageError, shorten
from bench.releases import release_key

BY = "gap"


@dataclass
class GapPoint:
    point: str  # point key
    label: str  # "randread 4k qd1"
    reference: PointResult  # the point on the reference kernel (its gap, absolute numbers)
    later: PointResult  # the point on the later kernel
    gap: stats.GapComparison
    verdict: stats.Verdict | None = None


@dataclass
class GapSide:
    """One candidate target on one later kernel against the reference kernel."""

    baseline: str  # the baseline target (null_blk)
    candidate: str  # the candidate target (rnull)
    reference_kernel: str
    kernel: str
    points: list[GapPoint]
    counts: dict[str, int]  # verdict word -> number of points


@dataclass
class GapAnalysis:
    metric: Metric
    margin: float
    alpha: float
    correction: str
    confidence: float
    kernels: list[str]  # in version order
    reference_kernel: str
    per_kernel: list[tuple[str, Analysis]]  # each kernel's own `compare --by target`, version order
    gaps: list[GapSide]
    labels: list[str]  # executor labels ("emulated (TCG)")
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def campaigns(self) -> list[store.Campaign]:
        return [c for _, a in self.per_kernel for c in a.campaigns]


def _by_kernel(dirs: list[Path]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for d in dirs:
        campaign = store.open_campaign(d)
        groups.setdefault(campaign.kernel_release(), []).append(campaign.path)
    return dict(sorted(groups.items(), key=lambda kv: release_key(kv[0])))


def analyse_gap(dirs: list[Path], options: AnalysisOptions) -> GapAnalysis:
    """The change of the candidate/baseline gap between the kernels of these campaigns."""
    several = [d for d in dirs if len(store.open_campaign(d).plan().kernels) > 1]
    if several and len(dirs) == 1:
        return _within(store.open_campaign(dirs[0]), options)
    if several:
        raise UsageError(
            f"--by gap: {several[0]} holds several kernels; compare it on its own "
            "(`blkcmp compare --by gap DIR`)"
        )
    groups = _by_kernel(dirs)
    kernels = list(groups)
    if len(kernels) < 2:
        raise UsageError(
            f"--by gap: every campaign ran on kernel {kernels[0]}; give campaigns recorded on two or "
            "more kernels (one directory per kernel)"
        )
    reference = options.baseline or kernels[0]
    if reference not in groups:
        raise UsageError(
            f"--baseline kernel={shorten(reference)}: no campaign ran on it (kernels: {', '.join(kernels)})"
        )
    per_target = replace(options, by="target", baseline=None)
    per_kernel = []
    for kernel, paths in groups.items():
        try:
            per_kernel.append((kernel, analyse(paths, per_target)))
        except NothingToCompare as exc:  # the same fact, said of the kernel it is about
            raise NothingToCompare(f"kernel {kernel} ({', '.join(str(p) for p in paths)}): {exc}") from exc
    return gaps_between(per_kernel, options, reference)


def _within(campaign: store.Campaign, options: AnalysisOptions) -> GapAnalysis:
    """The gap per kernel of one campaign of several kernels, in its kernels' order."""
    labels = campaign.plan().kernels
    reference = options.baseline or labels[0]
    if reference not in labels:
        raise UsageError(
            f"--baseline kernel={shorten(reference)}: no such kernel in {campaign.path} "
            f"(kernels: {', '.join(labels)})"
        )
    per_target = replace(options, by="target", baseline=None)
    per_kernel = []
    for label in labels:
        try:
            per_kernel.append((label, analyse([campaign.path], per_target, kernel=label)))
        except NothingToCompare as exc:
            raise NothingToCompare(f"kernel {label} ({campaign.path}): {exc}") from exc
    return gaps_between(per_kernel, options, reference)


def gaps_between(
    per_kernel: list[tuple[str, Analysis]], options: AnalysisOptions, reference: str | None = None
) -> GapAnalysis:
    """The gap analysis of kernels already analysed each on its own (`compare --by target`, in
    version order), against `reference` (default: the first kernel)."""
    kernels = [k for k, _ in per_kernel]
    reference = reference or kernels[0]
    groups = {k: [c.path for c in a.campaigns] for k, a in per_kernel}
    ref = dict(per_kernel)[reference]
    for kernel, a in per_kernel:
        where = ", ".join(str(p) for p in groups[kernel])
        if a.baseline != ref.baseline:
            raise UsageError(
                f"{where}: baseline {a.baseline} on kernel {kernel}, but {ref.baseline} on {reference}; "
                "the gap needs one baseline target on every kernel"
            )
        for target in ref.sides:
            if target not in a.sides:
                raise UsageError(
                    f"{where}: target {target} has no runs on kernel {kernel} (it has "
                    f"{', '.join(a.sides)}); give campaigns with the same targets on every kernel"
                )
        for target in a.sides:
            if target not in ref.sides:
                ref_where = ", ".join(str(p) for p in groups[reference])
                raise UsageError(
                    f"{ref_where}: target {target} has no runs on kernel {reference} (it has "
                    f"{', '.join(ref.sides)}); give campaigns with the same targets on every kernel"
                )
    confidence = max(a.confidence for _, a in per_kernel)
    test_alpha = (
        options.alpha if confidence == 0.95 else 1.0 - stats.sequential_confidence(1.0 - options.alpha)
    )
    notes: list[str] = []
    gaps = []
    ref_sides = {s.candidate: s for s in ref.comparisons}
    for kernel, a in per_kernel:
        if kernel == reference:
            continue
        for side in a.comparisons:
            ref_points = {p.point: p for p in ref_sides[side.candidate].points}
            points = []
            for p in side.points:
                r = ref_points.get(p.point)
                if r is None:
                    continue
                gap = stats.compare_gap(
                    r.comparison,
                    r.runs,
                    p.comparison,
                    p.runs,
                    margin=options.margin,
                    alpha=options.alpha,
                    confidence=confidence,
                    seed=options.seed,
                )
                points.append(GapPoint(p.point, p.label, r, p, gap))
            missing = len(set(ref_points) ^ {p.point for p in side.points})
            if missing:
                notes.append(
                    f"{side.candidate}: {missing} point(s) ran on only one of {reference} and {kernel}: "
                    "no gap there"
                )
            if not points:
                raise UsageError(
                    f"--by gap: no point of {side.candidate} ran on both {reference} and {kernel}"
                )
            verdicts = stats.decide(
                {p.point: p.gap for p in points},
                method=options.correction,
                margin=options.margin,
                alpha=test_alpha,
                baseline_name=f"on {reference}",
                candidate_name=f"{side.candidate}/{side.baseline} on {kernel}",
            )
            for point, verdict in zip(points, verdicts):
                point.verdict = verdict
            counts = {w: sum(1 for v in verdicts if v.verdict == w) for w in stats.VERDICTS}
            gaps.append(GapSide(side.baseline, side.candidate, reference, kernel, points, counts))
    labels = sorted({label for _, a in per_kernel for label in a.labels})
    warnings = [f"kernel {k}: {w}" for k, a in per_kernel for w in a.warnings]
    return GapAnalysis(
        options.metric,
        options.margin,
        options.alpha,
        options.correction,
        confidence,
        kernels,
        reference,
        per_kernel,
        gaps,
        labels,
        warnings,
        notes,
    )
