"""The table printed at the end of a run: per point × target, IOPS mean ± stdev, pooled p99, n."""

from __future__ import annotations

import statistics

from bench import fio, store
from bench.results import group, load_runs


def _si(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _ns(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f} ms"
    if value >= 1e3:
        return f"{value / 1e3:.1f} µs"
    return f"{value:.0f} ns"


def summary_rows(campaign: store.Campaign) -> list[dict]:
    records = load_runs(campaign, with_bins=True)
    plan = campaign.plan()
    order = {p.key: p.index for p in plan.points}
    rows = []
    for (point_key, target), recs in sorted(group(records, "point_key", "target").items(),
                                            key=lambda kv: (order.get(kv[0][0], 0), plan.targets.index(kv[0][1])
                                                            if kv[0][1] in plan.targets else 0)):
        iops = [r.metrics["iops"] for r in recs if r.metrics["iops"] is not None]
        bins = fio.merged_bins([fio.Latency(None, None, None, None, 0, {}, r.bins or {}) for r in recs])
        p99 = fio.percentile_from_bins(bins, 99.0) if bins else statistics.median(
            [r.metrics["clat_p99_ns"] for r in recs if r.metrics["clat_p99_ns"] is not None] or [0]) or None
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
        iops = _si(row["iops_mean"]) + (f" ± {_si(row['iops_stdev'])}" if row["iops_stdev"] is not None else "")
        table.add_row(row["point"], row["target"], iops, _ns(row["clat_p99_ns"]), str(row["n"]))
    label = campaign.environment().get("executor", {}).get("label")
    if label and label != "host":
        table.caption = label
    console.print(table)
