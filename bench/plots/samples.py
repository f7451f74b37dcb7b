"""Every sample: all repetitions per point (strip, with a violin from 10 runs on), and run order.

Means hide two modes and slow drift; these figures show every run instead.  The strip plot has
one panel per point with each target's runs side by side (a short black bar marks the mean).
The run-order plot puts every run at its place in the campaign's order, as a fraction of its
own target-and-point mean, so all points share one axis: drift shows as a slope, a bad stretch
of the machine as a dip across targets, and the interleaving as alternating colours.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.lines import Line2D

from bench.plots import layout, style
from bench.plots.data import Dataset, Point
from bench.plots.result import Plotted, Skipped
from bench.stats.defaults import DEFAULT_MARGIN

VIOLIN_MIN_N = 10
PANELS_PER_PAGE = 16
COLUMNS = 4
JITTER = 0.12
SEED = 0  # the jitter is decoration, but the same data must give the same picture


def every_sample(
    dataset: Dataset,
    column: str = "iops",
    label: str = "IOPS",
    points: list[Point] | None = None,
    page: tuple[int, int] = (0, 1),
) -> Plotted | Skipped:
    points = dataset.points if points is None else points
    if not dataset.records:
        return Skipped("samples", "every sample: no finished runs")
    rng = np.random.default_rng(SEED)
    ncols = layout.columns_for(len(points), COLUMNS)
    nrows = layout.rows_for(len(points), ncols)
    targets = dataset.targets
    data = []
    with style.rc_context():
        fig = style.new_figure(
            0.6 + 1.9 * nrows, footer_lines=2, banner=dataset.emulated_label is not None, legend=False
        )
        axes = layout.grid(fig, len(points), ncols)
        for i, (ax, point) in enumerate(zip(axes, points)):
            for t, target in enumerate(targets):
                values = dataset.values(target, point, column)
                if not values:
                    continue
                colour = dataset.colours[target]
                if len(values) >= VIOLIN_MIN_N:
                    parts = ax.violinplot([values], positions=[t], widths=0.7, showextrema=False)
                    for body in parts["bodies"]:
                        body.set_facecolor(colour)
                        body.set_alpha(0.25)
                x = t + rng.uniform(-JITTER, JITTER, len(values))
                ax.plot(x, values, linestyle="none", marker="o", markersize=3.5, color=colour, alpha=0.85)
                mean = float(np.mean(values))
                ax.plot([t - 0.28, t + 0.28], [mean, mean], color="#000000", linewidth=1.4)
                data.append({"target": target, "point": point.key, "values": values, "mean": mean})
            ax.set_xticks(range(len(targets)), targets)
            ax.set_xlim(-0.6, len(targets) - 0.4)
            ax.tick_params(axis="x", length=0)
            ax.grid(axis="x", visible=False)
            ax.yaxis.set_major_formatter(style.si_formatter())
            ax.margins(y=0.15)
            ax.set_title(point.label(), fontsize=8.5)
            if i % ncols == 0:
                ax.set_ylabel(label)
        n = style.n_text(len(d["values"]) for d in data)
        style.stamp(
            fig,
            [
                f"every run as a dot (jittered sideways), bar: mean \u00b7 violins from {VIOLIN_MIN_N} runs"
                f" \u00b7 {n} \u00b7 y axes do not start at 0",
                dataset.facts(),
            ],
            dataset.emulated_label,
        )
    index, count = page
    return Plotted(
        layout.page_name("samples", index, count),
        layout.page_title(f"Every run ({label})", index, count),
        f"Every run's {label} per point and target (black bar: the mean); two clusters in a "
        "column are two modes, a lone dot an outlier.",
        fig,
        data,
    )


def _rolling_median(values: list[float], window: int) -> list[float]:
    half = window // 2
    return [float(np.median(values[max(0, i - half) : i + half + 1])) for i in range(len(values))]


def run_order(dataset: Dataset, column: str = "iops", label: str = "IOPS") -> Plotted | Skipped:
    if len(dataset.records) < 2:
        return Skipped("run-order", "run order: fewer than 2 runs")
    means: dict[tuple[str, str], float] = {}
    for target in dataset.targets:
        for point in dataset.points:
            values = dataset.values(target, point, column)
            if values:
                means[(target, point.key)] = float(np.mean(values))
    # campaigns one after the other on the x axis, each in its own run order
    offsets, start = {}, 0
    for facts in dataset.campaigns:
        offsets[facts.path] = start
        positions = [r.position for r in dataset.records if r.campaign_dir == facts.path]
        start += (max(positions) + 1) if positions else 0
    data = []
    for rec in dataset.records:
        value = rec.metrics.get(column)
        mean = means.get((rec.target, rec.point_key))
        if value is None or not mean or not math.isfinite(float(value)):
            continue
        data.append(
            {
                "target": rec.target,
                "point": rec.point_key,
                "round": rec.round,
                "order": offsets[rec.campaign_dir] + rec.position,
                "value": float(value),
                "relative": float(value) / mean,
            }
        )
    data.sort(key=lambda d: d["order"])
    with style.rc_context():
        fig = style.new_figure(3.6, footer_lines=2, banner=dataset.emulated_label is not None)
        ax = fig.subplots()
        limits = style.ratio_limits([d["relative"] for d in data], margin=DEFAULT_MARGIN)
        style.ratio_axis(ax, limits, axis="y")
        for target in dataset.targets:
            mine = [d for d in data if d["target"] == target]
            if not mine:
                continue
            colour = dataset.colours[target]
            ax.plot(
                [d["order"] for d in mine],
                [d["relative"] for d in mine],
                linestyle="none",
                marker="o",
                markersize=3,
                color=colour,
                alpha=0.6,
            )
            window = max(5, len(mine) // 10)
            if len(mine) >= window:
                ax.plot(
                    [d["order"] for d in mine],
                    _rolling_median([d["relative"] for d in mine], window),
                    color=colour,
                    linewidth=1.6,
                )
        for facts in dataset.campaigns[1:]:
            ax.axvline(offsets[facts.path] - 0.5, color="#777777", linestyle="--", linewidth=0.8)
        ax.set_xlabel(
            "run order (position in the campaign" + ("s" if len(dataset.campaigns) > 1 else "") + ")"
        )
        ax.set_ylabel(f"{label} / its target-and-point mean")
        ax.set_xlim(-1, max(d["order"] for d in data) + 1)
        handles = [
            Line2D([], [], color=dataset.colours[t], marker="o", markersize=3, label=t)
            for t in dataset.targets
        ]
        handles.append(Line2D([], [], color="#555555", linewidth=1.6, label="rolling median"))
        style.legend(fig, handles)
        style.stamp(
            fig,
            [
                "each run relative to the mean of its target and point (log scale, 1 = the mean)"
                + (" \u00b7 dashed lines: campaign boundaries" if len(dataset.campaigns) > 1 else ""),
                dataset.facts(),
            ],
            dataset.emulated_label,
        )
    return Plotted(
        "run-order",
        f"Run order ({label})",
        f"Every run's {label} relative to its target-and-point mean, in the order the runs "
        "were made: a slope is drift, a dip across targets a disturbed stretch of the machine.",
        fig,
        data,
    )
