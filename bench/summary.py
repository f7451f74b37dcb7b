"""The table printed at the end of a run: per point × target, IOPS mean ± stdev, pooled p99, n."""

from __future__ import annotations

import statistics

from bench import store
from bench.stats.histogram import merge_bins, percentiles_from_bins
from bench.units import si
from bench.results import group, load_runs


def summary_rows(campaign: store.Campaign) -> list[dict]:
    records = load_runs(campaign, with_bins=True)
    plan = campaign.plan()
    order = {p.key: p.index for p in plan.points}
    rows = []
    for (point_key, target), recs in sorted(group(records, "point_key", "target").items(),
                                            key=lambda kv: (order.get(kv[0][0], 0), plan.targets.index(kv[0][1])
                                                            if kv[0][1] in plan.targets else 0)):
        iops = [r.metrics["iops"] for r in recs if r.metrics["iops"] is not None]
        bins = merge_bins(r.bins or {} for r in recs)
        p99 = percentiles_from_bins(bins, [99.0])[99.0] if bins else None
        rows.append({"point": point_key, "target": target, "n": len(recs),
                     "iops_mean": statistics.fmean(iops) if iops else None,
                     "iops_stdev": statistics.stdev(iops) if len(iops) > 1 else None,
                     "clat_p99_ns": p99})
    return rows


def render(campaign: store.Campaign, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{campaign.name}: IOPS mean ± stdev, p99 clat pooled over repetitions")
    for col, justify in (("point", "left"), ("target", "left"), ("IOPS", "right"), ("p99 clat", "right"),
                         ("n", "right")):
        table.add_column(col, justify=justify)
    for row in summary_rows(campaign):
        iops = si(row["iops_mean"]) + (f" ± {si(row['iops_stdev'])}" if row["iops_stdev"] is not None else "")
        table.add_row(row["point"], row["target"], iops, si(row["clat_p99_ns"], "ns"), str(row["n"]))
    label = campaign.environment().get("executor", {}).get("label")
    if label and label != "host":
        table.caption = label
    console.print(table)
