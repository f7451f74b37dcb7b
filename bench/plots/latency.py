"""Completion latency: the CDF of every point's pooled json+ histogram, and its percentiles.

Repetitions are pooled bucket by bucket (bench.stats.merge_bins) before anything is read off:
the p99 of the pooled I/Os, not a mean of per-run p99s.  The CDF's y axis is a logit scale, so
the tail (99 %, 99.9 %) gets as much room as the median; the x axis is logarithmic (µs).  The
percentile chart shows the pooled p50/p99/p99.9 as bars and each run's own value as a dot, so
run-to-run spread stays visible next to the pooled number.

Without json+ histograms (plain `--output-format=json`, fio 2.x, most data from other tools)
there is no CDF, but fio's own per-run percentiles still give the percentile chart: each run's
value as a dot and, as the bar, their median (percentiles of different runs cannot be pooled);
only the percentiles the files hold are drawn, and the figure says which.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from bench import stats
from bench.plots import layout, style
from bench.plots.data import Dataset, Point
from bench.plots.result import Plotted, Skipped

PERCENTILES = (50.0, 99.0, 99.9)
PERCENTILE_COLUMNS = {50.0: "clat_p50_ns", 99.0: "clat_p99_ns", 99.9: "clat_p999_ns"}
PERCENTILE_MARKERS = {50.0: "o", 99.0: "s", 99.9: "^"}
CDF_PANELS_PER_PAGE = 12
CDF_COLUMNS = 3
BAR_POINTS_PER_PAGE = 16
LOGIT_TICKS = (0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)


def pooled_percentiles(dataset: Dataset, target: str, point: Point) -> dict[float, float]:
    return stats.percentiles_from_bins(dataset.pooled_bins(target, point), PERCENTILES)


def _percent(p: float) -> str:
    return f"p{p:g}"


def _has_bins(dataset: Dataset) -> bool:
    return any(r.has_bins for r in dataset.records)


def _available_percentiles(dataset: Dataset) -> list[float]:
    """The percentiles some run holds (from its bins or fio's plain-JSON percentiles)."""
    return [
        p
        for p in PERCENTILES
        if any(r.has_bins or r.metrics.get(PERCENTILE_COLUMNS[p]) is not None for r in dataset.records)
    ]


def latency_cdf(
    dataset: Dataset, points: list[Point] | None = None, page: tuple[int, int] = (0, 1)
) -> Plotted | Skipped:
    points = dataset.points if points is None else points
    if not _has_bins(dataset):
        plain = ", ".join(_percent(p) for p in _available_percentiles(dataset))
        return Skipped(
            "latency-cdf",
            "latency CDF: needs json+ latency histograms, which these runs lack"
            + (f" (their plain-JSON {plain} are in latency-percentiles)" if plain else ""),
        )
    ncols = layout.columns_for(len(points), CDF_COLUMNS)
    nrows = layout.rows_for(len(points), ncols)
    data = []
    with style.rc_context():
        fig = style.new_figure(0.9 + 2.25 * nrows, footer_lines=2, banner=dataset.emulated_label is not None)
        axes = layout.grid(fig, len(points), ncols, sharex=True, sharey=True)
        largest_n = 0
        for i, (ax, point) in enumerate(zip(axes, points)):
            for t, target in enumerate(dataset.targets):
                bins = dataset.pooled_bins(target, point)
                if not bins:
                    continue
                x_ns, fraction = stats.cdf_from_bins(bins)
                total = sum(bins.values())
                largest_n = max(largest_n, total)
                colour = dataset.colours[target]
                # the logit scale cannot show 0 or 1: stop the curve just short of the last I/O
                shown = fraction < 1.0
                ax.step(
                    x_ns[shown] / 1e3,
                    fraction[shown],
                    where="post",
                    color=colour,
                    linewidth=style.line_width(t),
                )
                marks = pooled_percentiles(dataset, target, point)
                for p, value in marks.items():
                    if math.isfinite(value) and total * (1 - p / 100) >= 1:
                        ax.plot(
                            [value / 1e3],
                            [p / 100],
                            marker=PERCENTILE_MARKERS[p],
                            color=colour,
                            markersize=6.5 if t == 0 else 4.5,
                            markerfacecolor="white",
                            markeredgewidth=1.2,
                        )
                data.append(
                    {
                        "target": target,
                        "point": point.key,
                        "ios": total,
                        "runs": len(dataset.runs(target, point)),
                        "latency_ns": x_ns.tolist(),
                        "fraction": fraction.tolist(),
                        **{_percent(p) + "_ns": v for p, v in marks.items()},
                    }
                )
            ax.set_xscale("log")
            ax.set_yscale("logit", nonpositive="clip")
            # the highest tick with at least 10 I/Os above it, and a little room above that tick
            shown_ticks = [t for t in LOGIT_TICKS if largest_n * (1 - t) >= 10] or [0.9]
            ax.set_ylim(0.01, 1 - (1 - shown_ticks[-1]) / 3)
            ticks = shown_ticks
            ax.yaxis.set_major_locator(FixedLocator(ticks))
            ax.yaxis.set_minor_locator(NullLocator())
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v * 100:g} %"))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
            ax.set_title(point.label(), fontsize=9)
            if i % ncols == 0:
                ax.set_ylabel("I/Os completed within")
            if i >= len(points) - ncols:
                ax.set_xlabel("completion latency (µs, log)")
        handles = [
            Line2D([], [], color=dataset.colours[t], linewidth=style.line_width(i), label=t)
            for i, t in enumerate(dataset.targets)
        ]
        handles += [
            Line2D(
                [],
                [],
                marker=m,
                color="#555555",
                markerfacecolor="white",
                linestyle="none",
                label=_percent(p),
            )
            for p, m in PERCENTILE_MARKERS.items()
        ]
        style.legend(fig, handles)
        runs = style.n_text(d["runs"] for d in data)
        style.stamp(
            fig,
            [
                f"json+ histograms pooled over all runs ({runs} per target and point), "
                "y on a logit scale \u00b7 markers: pooled p50, p99, p99.9",
                dataset.facts(),
            ],
            dataset.emulated_label,
        )
    index, count = page
    return Plotted(
        layout.page_name("latency-cdf", index, count),
        layout.page_title("Completion latency CDF", index, count),
        "Distribution of completion latency per point, pooled over all runs of each target "
        "(log latency axis, logit probability axis so the tail is visible), with p50, p99 and "
        "p99.9 marked.",
        fig,
        data,
    )


def latency_percentiles(
    dataset: Dataset, points: list[Point] | None = None, page: tuple[int, int] = (0, 1)
) -> Plotted | Skipped:
    points = dataset.points if points is None else points
    shown = _available_percentiles(dataset)
    if not shown:
        return Skipped(
            "latency-percentiles",
            "latency percentiles: no run holds completion-latency "
            "percentiles (neither json+ histograms nor fio's plain-JSON percentiles)",
        )
    targets = dataset.targets
    height = 0.8 / len(targets)
    data = []
    from_runs = False  # some bar is a median of per-run percentiles (no bins to pool)
    with style.rc_context():
        fig = style.new_figure(
            1.3 + 0.2 * len(points) * len(targets), footer_lines=2, banner=dataset.emulated_label is not None
        )
        axes = fig.subplots(1, len(shown), sharey=True, squeeze=False)[0]
        y = np.arange(len(points))
        percentiles = {(t, pt.key): pooled_percentiles(dataset, t, pt) for t in targets for pt in points}
        for ax, p in zip(axes, shown):
            for t, target in enumerate(targets):
                offset = (t - (len(targets) - 1) / 2) * height
                for i, point in enumerate(points):
                    per_run = dataset.values(target, point, PERCENTILE_COLUMNS[p])
                    if dataset.pooled_bins(target, point):
                        pooled, source = percentiles[(target, point.key)][p], "pooled json+ histogram"
                    elif per_run:
                        pooled, source = float(np.median(per_run)), "median of the runs' own"
                        from_runs = True
                    else:
                        continue
                    ax.barh(y[i] + offset, pooled / 1e3, height, color=dataset.colours[target], alpha=0.85)
                    ax.plot(
                        [v / 1e3 for v in per_run],
                        [y[i] + offset] * len(per_run),
                        linestyle="none",
                        marker="o",
                        markersize=2.6,
                        color="#222222",
                        alpha=0.7,
                    )
                    # rows differ by orders of magnitude: the number keeps a short bar readable
                    ax.annotate(
                        f"{pooled / 1e3:.3g}",
                        (max([pooled, *per_run]) / 1e3, y[i] + offset),
                        xytext=(3, 0),
                        textcoords="offset points",
                        va="center",
                        fontsize=6.5,
                        color="#333333",
                    )
                    data.append(
                        {
                            "target": target,
                            "point": point.key,
                            "percentile": p,
                            "pooled_ns": pooled,
                            "per_run_ns": per_run,
                            "source": source,
                        }
                    )
            ax.margins(x=0.14)  # room for the number after the longest bar
            ax.set_xlim(left=0)
            ax.set_title(f"{_percent(p)}", fontsize=9.5)
            ax.set_xlabel("completion latency (µs)")
            ax.xaxis.set_major_formatter(style.number_formatter())
            ax.grid(axis="y", visible=False)
        axes[0].set_yticks(y, [pt.label() for pt in points])
        axes[0].set_ylim(len(points) - 0.5, -0.5)
        axes[0].tick_params(axis="y", length=0)
        handles = [Line2D([], [], color=dataset.colours[t], linewidth=6, label=t) for t in targets]
        handles.append(
            Line2D([], [], marker="o", color="#222222", linestyle="none", markersize=3, label="one run")
        )
        style.legend(fig, handles)
        bars = (
            "percentile of the json+ histogram pooled over all runs"
            if not from_runs
            else "pooled json+ histogram, or (no json+) the median of each run's plain-JSON value"
            if _has_bins(dataset)
            else "median of each run's plain-JSON percentile (no json+ histograms)"
        )
        missing = [_percent(p) for p in PERCENTILES if p not in shown]
        style.stamp(
            fig,
            [
                f"bars and numbers (µs): {bars} \u00b7 dots: each run's own"
                + (f" \u00b7 not in these files: {', '.join(missing)}" if missing else ""),
                dataset.facts(),
            ],
            dataset.emulated_label,
        )
    index, count = page
    return Plotted(
        layout.page_name("latency-percentiles", index, count),
        layout.page_title("Completion latency percentiles", index, count),
        f"{', '.join(_percent(p) for p in shown)} completion latency per point: bars from the "
        + (
            "pooled histogram"
            if not from_runs
            else "pooled histogram or, without json+, the median of the runs' own values"
        )
        + ", dots from each run.",
        fig,
        data,
    )
