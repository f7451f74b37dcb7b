"""What `blkcmp run` prints at the end: per point × target, IOPS mean ± stdev, pooled p99, n; then
the verdicts (the terminal table of `blkcmp compare`), and the commands that go further."""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Callable
from pathlib import Path

from bench import points, store
from bench.results import group, load_runs
from bench.stats.histogram import merge_bins, percentiles_from_bins
from bench.units import si


def summary_rows(campaign: store.Campaign) -> list[dict]:
    """One row per point x target (x kernel, in a campaign of several: the kernel's label joins
    the point's, in the order of `kernels:`)."""
    records = load_runs(campaign, with_bins=True)
    plan = campaign.plan()
    order = {p.key: p.index for p in plan.points}
    kernels = {label: i for i, label in enumerate(plan.kernels)}
    rows = []
    for (kernel, point_key, target), recs in sorted(
        group(records, "kernel_label", "point_key", "target").items(),
        key=lambda kv: (
            kernels.get(kv[0][0] or "", 0),
            order.get(kv[0][1], 0),
            plan.targets.index(kv[0][2]) if kv[0][2] in plan.targets else 0,
        ),
    ):
        iops = [r.metrics["iops"] for r in recs if r.metrics["iops"] is not None]
        bins = merge_bins(r.bins or {} for r in recs)
        p99 = percentiles_from_bins(bins, [99.0])[99.0] if bins else None
        rows.append(
            {
                "point": point_key,
                "label": points.label(recs[0].point) + (f" [{kernel}]" if kernel else ""),
                "target": target,
                "n": len(recs),
                "iops_mean": statistics.fmean(iops) if iops else None,
                "iops_stdev": statistics.stdev(iops) if len(iops) > 1 else None,
                "clat_p99_ns": p99,
            }
        )
    return rows


def render(campaign: store.Campaign, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{campaign.name}: IOPS mean ± stdev, p99 clat pooled over repetitions")
    for col, justify in (
        ("point", "left"),
        ("target", "left"),
        ("IOPS", "right"),
        ("p99 clat", "right"),
        ("n", "right"),
    ):
        table.add_column(col, justify=justify)
    for row in summary_rows(campaign):
        iops = si(row["iops_mean"]) + (f" ± {si(row['iops_stdev'])}" if row["iops_stdev"] is not None else "")
        table.add_row(row["label"], row["target"], iops, si(row["clat_p99_ns"], "ns"), str(row["n"]))
    label = campaign.environment().get("executor", {}).get("label")
    if label and label != "host":
        table.caption = label
    console.print(table)


def verdicts(campaign: store.Campaign, console=None, warn: Callable[[str], None] = lambda line: None) -> None:
    """The verdicts, as `blkcmp compare DIR` prints them; why there are none, when there are none."""
    from rich.console import Console

    from bench import analysis, compare_format

    console = console or Console()
    try:
        a = analysis.analyse([campaign.path])
    except analysis.NothingToCompare as exc:
        console.print(f"no verdicts: {exc}", highlight=False)
        return
    for line in a.warnings:
        warn(line)
    console.print()
    compare_format.table(a, console)


def next_commands(path: Path) -> list[str]:
    """The commands that take a finished campaign further, with its path, ready to paste."""
    where = shlex.quote(str(path))
    return [
        "next steps:",
        f"  blkcmp compare {where}",
        f"  blkcmp report {where}",
        "(compare: these verdicts, also --format markdown|text|csv|json; report: HTML,",
        "Markdown and text with every figure, in ./report, or --out DIR)",
    ]
