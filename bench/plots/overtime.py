"""IOPS over time: every run's IOPS per logging window, one panel per point (`timeseries:` runs).

A run's mean hides a stall of half a second or a slow climb to steady state; fio's averaged IOPS
logs (bench.timeseries) show them. Each line is one run, coloured by target, summed over fio's
jobs and directions window by window; x is seconds since the job started. Campaigns without
time series skip the figure with a note.
"""

from __future__ import annotations

from matplotlib.lines import Line2D

from bench import export, store, timeseries
from bench.plots import layout, style
from bench.plots.data import Dataset, Point
from bench.plots.result import Plotted, Skipped

PANELS_PER_PAGE = 16
COLUMNS = 4
NAME = "iops-over-time"


def series(dataset: Dataset) -> dict[tuple, list[tuple[float, float]]]:
    """(campaign dir, run id) -> [(seconds, IOPS)] for every finished run that has time series."""
    out: dict[tuple, list[tuple[float, float]]] = {}
    for facts in dataset.campaigns:
        by_run: dict[str, list[dict]] = {}
        for row in export.timeseries_rows(store.Campaign(facts.path)):
            if row["metric"] == "iops":
                by_run.setdefault(row["run_id"], []).append(row)
        for run_id, rows in by_run.items():
            out[(facts.path, run_id)] = timeseries.total_per_window(rows, "iops")
    return out


def iops_over_time(
    dataset: Dataset,
    points: list[Point] | None = None,
    page: tuple[int, int] = (0, 1),
    lines: dict[tuple, list[tuple[float, float]]] | None = None,
) -> Plotted | Skipped:
    points = dataset.points if points is None else points
    lines = series(dataset) if lines is None else lines
    if not lines:
        return Skipped(
            NAME, "IOPS over time: no time series in these campaigns (set `timeseries: 1s` in the workload)"
        )
    ncols = layout.columns_for(len(points), COLUMNS)
    nrows = layout.rows_for(len(points), ncols)
    data = []
    with style.rc_context():
        fig = style.new_figure(0.6 + 1.9 * nrows, footer_lines=2, banner=dataset.emulated_label is not None)
        axes = layout.grid(fig, len(points), ncols, sharex=True)
        for i, (ax, point) in enumerate(zip(axes, points)):
            for t, target in enumerate(dataset.targets):
                for rec in dataset.runs(target, point):
                    samples = lines.get((rec.campaign_dir, rec.run_id))
                    if not samples:
                        continue
                    seconds, iops = [s for s, _ in samples], [v for _, v in samples]
                    ax.plot(
                        seconds,
                        iops,
                        color=dataset.colours[target],
                        alpha=0.55,
                        linewidth=style.line_width(t),
                        marker="o" if len(samples) == 1 else None,
                        markersize=3,
                    )
                    data.append(
                        {
                            "target": target,
                            "point": point.key,
                            "run_id": rec.run_id,
                            "seconds": seconds,
                            "iops": iops,
                        }
                    )
            ax.yaxis.set_major_formatter(style.si_formatter())
            ax.set_ylim(bottom=0)
            ax.set_title(point.label(), fontsize=8.5)
            if i % ncols == 0:
                ax.set_ylabel("IOPS")
            if i >= len(points) - ncols:
                ax.set_xlabel("time since the job started (s)")
        handles = [Line2D([], [], color=dataset.colours[t], label=t) for t in dataset.targets]
        style.legend(fig, handles)
        per_point = {}
        for d in data:
            per_point[(d["target"], d["point"])] = per_point.get((d["target"], d["point"]), 0) + 1
        style.stamp(
            fig,
            [
                "each line one run: IOPS per logging window, summed over fio's jobs and "
                f"directions \u00b7 {style.n_text(per_point.values())} \u00b7 y from 0",
                dataset.facts(),
            ],
            dataset.emulated_label,
        )
    index, count = page
    return Plotted(
        layout.page_name(NAME, index, count),
        layout.page_title("IOPS over time", index, count),
        "Every run's IOPS window by window (fio's averaged logs): a dip is a stall, a climb "
        "a run that had not reached steady state; runs of one target should overlap.",
        fig,
        data,
    )
