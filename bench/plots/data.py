"""What figures are drawn from: the runs of a group of campaigns, their targets, and their facts.

A `Dataset` holds finished runs (with their merged json+ latency bins), each target's driver
and colour, the points of the matrix in reading order, and the facts every figure prints: the
kernel releases, the executor label (emulated or not), fio's version, the runtime per run.
Campaigns of different kernels are split into one Dataset per kernel (`by_kernel`): pooling two
kernels' runs under one mean would hide exactly what a kernel comparison asks about.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench import points as points_mod
from bench import store
from bench.analysis import baseline_target
from bench.plots import style
from bench.releases import release_key
from bench.results import RunRecord, load_runs

# The matrix keys the figures lay out by; any other key is folded into the panel label.
LAYOUT_KEYS = points_mod.LAYOUT_KEYS


def block_size_bytes(text) -> float:
    """fio's block size spelling ('4k', '128K', '1m', '4096', '4kib') in bytes; NaN if unreadable."""
    return points_mod.size_bytes(text)


@dataclass(frozen=True)
class Point:
    """One matrix point, as the figures lay it out."""

    key: str
    options: tuple[tuple[str, object], ...]

    @property
    def values(self) -> dict:
        return dict(self.options)

    def get(self, name: str, default=None):
        return self.values.get(name, default)

    @property
    def rw(self) -> str:
        return str(self.get("rw", "-"))

    @property
    def bs(self) -> str:
        return str(self.get("bs", "-"))

    @property
    def bs_bytes(self) -> float:
        return block_size_bytes(self.get("bs", ""))

    @property
    def iodepth(self) -> int | None:
        value = self.get("iodepth")
        return int(value) if value is not None and str(value).isdigit() else None

    @property
    def numjobs(self) -> int:
        value = self.get("numjobs", 1)
        return int(value) if str(value).isdigit() else 1

    def label(self, without: Iterable[str] = ()) -> str:
        """'4k qd8 j2' style: short enough for a tick label; keys in `without` left out."""
        return points_mod.label(self.values, without)


@dataclass(frozen=True)
class CampaignFacts:
    path: Path
    name: str
    kernel: str
    executor_label: str
    emulated: bool
    runtime_s: float
    fio_version: str
    rounds: int
    point_keys: tuple[str, ...] = ()  # the plan's points, in matrix order
    kernel_labels: tuple[str, ...] = ()  # a campaign of several kernels: its labels, in `kernels:` order


@dataclass
class Dataset:
    records: list[RunRecord]
    campaigns: list[CampaignFacts]
    targets: list[str]  # baseline first, then in plan order
    drivers: dict[str, str]
    colours: dict[str, str]
    baseline: str
    points: list[Point] = field(default_factory=list)
    _pooled: dict = field(default_factory=dict, repr=False)
    _by_cell: dict | None = field(default=None, repr=False)
    kernel_label: str | None = None  # the one kernel of a campaign of several this dataset holds

    @property
    def labelled_kernels(self) -> list[str]:
        """One campaign of several kernels: its kernel labels, in its `kernels:` order."""
        if len(self.campaigns) == 1 and self.kernel_label is None:
            return list(self.campaigns[0].kernel_labels)
        return []

    def __post_init__(self) -> None:
        if not self.points:
            self.points = sorted_points(self.records, self.campaigns)

    # -- facts ------------------------------------------------------------------------------
    @property
    def kernels(self) -> list[str]:
        if self.kernel_label is not None:
            return [self.kernel_label]
        if self.labelled_kernels:
            return self.labelled_kernels
        return sorted({c.kernel for c in self.campaigns}, key=release_key)

    @property
    def emulated_label(self) -> str | None:
        labels = sorted({c.executor_label for c in self.campaigns if c.emulated})
        return "; ".join(labels) or None

    def facts(self) -> str:
        """'kernel 6.12.8 · host · fio-3.33 · 1 s runs' for the figure footer."""
        executors = sorted({c.executor_label.split(":")[0] for c in self.campaigns}) or ["unknown executor"]
        # an ingested campaign's label already names its fio versions ("ingested from 98 files of fio-3.1")
        fio_versions = sorted(
            {
                c.fio_version
                for c in self.campaigns
                if c.fio_version and not c.executor_label.startswith("ingested from")
            }
        )
        runtimes = sorted({c.runtime_s for c in self.campaigns if math.isfinite(c.runtime_s)})
        parts = ["kernel " + ", ".join(self.kernels), ", ".join(executors)]
        parts += fio_versions[:2]
        if runtimes:
            parts.append(", ".join(f"{r:g}" for r in runtimes) + " s per run")
        if len(self.campaigns) > 1:
            parts.append(f"{len(self.campaigns)} campaigns")
        return " \u00b7 ".join(parts)

    def runtime_of(self, rec: RunRecord) -> float:
        for c in self.campaigns:
            if c.path == rec.campaign_dir:
                return c.runtime_s
        return math.nan

    # -- runs -------------------------------------------------------------------------------
    def runs(self, target: str, point: Point) -> list[RunRecord]:
        if self._by_cell is None:  # figures ask per target and point: index once, not scan each time
            self._by_cell = {}
            for rec in self.records:
                self._by_cell.setdefault((rec.target, rec.point_key), []).append(rec)
        return list(self._by_cell.get((target, point.key), ()))

    def values(self, target: str, point: Point, column: str) -> list[float]:
        out = []
        for rec in self.runs(target, point):
            value = rec.metrics.get(column)
            if value is not None and math.isfinite(float(value)):
                out.append(float(value))
        return out

    def pooled_bins(self, target: str, point: Point) -> dict[int, int]:
        """The json+ completion-latency histogram of all this target's runs at this point."""
        from bench import stats

        key = (target, point.key)
        if key not in self._pooled:  # several figures read the same pooled histogram
            self._pooled[key] = stats.merge_bins(r.bins or {} for r in self.runs(target, point))
        return self._pooled[key]

    def distinct(self, key: str) -> list:
        """The values a layout key takes, in sort order (ints numerically, sizes by bytes)."""
        seen = {p.get(key) for p in self.points if p.get(key) is not None}
        return sorted(seen, key=lambda v: _layout_sort(key, v))


def _layout_sort(key: str, value) -> tuple:
    return points_mod.value_order(key, value)


def sorted_points(records: list[RunRecord], campaigns: list[CampaignFacts] | None = None) -> list[Point]:
    """Points in reading order: rw in matrix order, then bs, iodepth, numjobs numerically."""
    matrix_order = {k: i for c in (campaigns or []) for i, k in enumerate(c.point_keys)}
    points: dict[str, Point] = {}
    for rec in sorted(records, key=lambda r: (matrix_order.get(r.point_key, len(matrix_order)), r.position)):
        points.setdefault(rec.point_key, Point(rec.point_key, tuple(rec.point.items())))
    first_rw: dict[str, int] = {}
    for point in points.values():
        first_rw.setdefault(point.rw, len(first_rw))
    return sorted(points.values(), key=lambda p: points_mod.sort_key(p.values, first_rw))


# ------------------------------------------------------------------------------------------
# Loading


def campaign_facts(campaign: store.Campaign) -> CampaignFacts:
    env = campaign.environment()
    executor = env.get("executor") or {}
    plan = campaign.plan()
    return CampaignFacts(
        path=campaign.path,
        name=campaign.name,
        kernel=campaign.kernel_release(),
        executor_label=str(executor.get("label") or env.get("source") or "unknown executor"),
        emulated=bool(executor.get("emulated")),
        runtime_s=float(plan.runtime or math.nan),
        fio_version=str(env.get("fio_version") or ""),
        rounds=int(plan.rounds),
        point_keys=tuple(points_mod.key_of(p.options) for p in plan.points),
        kernel_labels=tuple(plan.kernels),
    )


def target_drivers(campaign: store.Campaign) -> dict[str, str]:
    """{target: driver} from what was set up (the target sessions), else from the workload."""
    drivers: dict[str, str] = {}
    for session in campaign.sessions():
        for name, described in session.targets.items():
            if described.get("driver"):
                drivers[name] = str(described["driver"])
    if not drivers and campaign.has_workload():
        drivers = {name: spec.driver for name, spec in campaign.workload().targets.named().items()}
    return drivers


def load(dirs: Iterable[Path], *, baseline: str | None = None, with_bins: bool = True) -> Dataset:
    """All finished runs of these campaign directories as one Dataset."""
    campaigns = [store.open_campaign(d) for d in dirs]
    records: list[RunRecord] = []
    targets: list[str] = []
    drivers: dict[str, str] = {}
    for campaign in campaigns:
        campaign_records = load_runs(campaign, with_bins=with_bins)
        records += campaign_records
        for name in campaign.plan().targets + [r.target for r in campaign_records]:
            if name not in targets:
                targets.append(name)
        for name, driver in target_drivers(campaign).items():
            drivers.setdefault(name, driver)
    for name in targets:
        drivers.setdefault(name, name if name in style.DRIVER_COLOURS else "unknown")
    # --baseline target=NAME (or NAME) names a target; any other side (kernel=…) leaves the
    # campaign's baseline target first
    wanted = baseline.partition("=")[2] or baseline if baseline else None
    base = wanted if wanted in targets else (baseline_target(campaigns[0], targets) if targets else "")
    ordered = ([base] if base else []) + [t for t in targets if t != base]
    colours = style.target_colours((t, drivers[t]) for t in ordered)
    facts = [campaign_facts(c) for c in campaigns]
    return Dataset(records, facts, ordered, drivers, colours, base)


def by_kernel(dataset: Dataset) -> list[tuple[str, Dataset]]:
    """One Dataset per kernel release, in version order; colours and baseline kept. One campaign
    of several kernels: one Dataset per kernel label, in its `kernels:` order."""
    groups = []
    for label in dataset.labelled_kernels:
        records = [r for r in dataset.records if r.kernel_label == label]
        present = {r.target for r in records}
        targets = [t for t in dataset.targets if t in present]
        groups.append(
            (
                label,
                Dataset(
                    records,
                    dataset.campaigns,
                    targets,
                    dataset.drivers,
                    dataset.colours,
                    dataset.baseline,
                    kernel_label=label,
                ),
            )
        )
    if groups:
        return groups
    for kernel in dataset.kernels:
        facts = [c for c in dataset.campaigns if c.kernel == kernel]
        paths = {c.path for c in facts}
        records = [r for r in dataset.records if r.campaign_dir in paths]
        present = {r.target for r in records}
        targets = [t for t in dataset.targets if t in present]
        groups.append(
            (kernel, Dataset(records, facts, targets, dataset.drivers, dataset.colours, dataset.baseline))
        )
    return groups


def summary(dataset: Dataset, target: str, point: Point, column: str):
    """bench.stats' description (mean with its CI) of one target's runs at one point, or None."""
    from bench import stats

    values = dataset.values(target, point, column)
    return stats.describe(values) if values else None
