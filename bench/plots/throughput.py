"""Absolute throughput: IOPS (and bandwidth for large blocks) of every target, with CIs.

Small multiples by rw (rows) x iodepth (columns), bars by block size and job count inside each
panel: the grid readers know from the rust-for-linux.com null-block page.  Ratios alone hide
whether a point runs at 50 K or 5 M IOPS; these bars keep the absolute numbers in view.  Bars
start at 0 and each panel has its own scale (block sizes differ by orders of magnitude); the
error bar is the 95 % CI of the mean over runs.
"""

from __future__ import annotations

import math

from matplotlib.patches import Patch

from bench import units
from bench.plots import style
from bench.plots.data import Dataset, Point, summary
from bench.plots.result import Plotted, Skipped

LARGE_BLOCK_BYTES = 64 * 1024  # from here on bandwidth is the number readers look for
LABEL_BARS_MAX = 8  # value labels only where they stay legible
PANEL_HEIGHT_IN = 2.3


def _panel_groups(points: list[Point]) -> list[tuple[str, object, list[Point]]]:
    rws = list(dict.fromkeys(p.rw for p in points))
    depths = sorted({p.iodepth for p in points}, key=lambda d: (d is None, d or 0))
    out = []
    for rw in rws:
        for depth in depths:
            members = [p for p in points if p.rw == rw and p.iodepth == depth]
            if members:
                out.append((rw, depth, members))
    return out


def _positions(members: list[Point]) -> tuple[dict[str, float], list[float], list[str], bool]:
    """x of each point: numjobs side by side inside a block-size group, a gap between groups.

    Returns (x per point key, centre of each block-size group, the block sizes, numjobs vary?).
    """
    sizes = list(dict.fromkeys(p.bs for p in members))
    jobs_vary = len({p.numjobs for p in members}) > 1
    x, centres, cursor = {}, [], 0.0
    for size in sizes:
        group = [p for p in members if p.bs == size]
        for k, point in enumerate(group):
            x[point.key] = cursor + k
        centres.append(cursor + (len(group) - 1) / 2)
        cursor += len(group) + (0.6 if jobs_vary else 0.0)
    return x, centres, sizes, jobs_vary


def _bars(
    dataset: Dataset, points: list[Point], column: str, unit: str, name: str, title: str, what: str
) -> Plotted:
    groups = _panel_groups(points)
    rws = list(dict.fromkeys(g[0] for g in groups))
    depths = sorted({g[1] for g in groups}, key=lambda d: (d is None, d or 0))
    ncols, nrows = len(depths), len(rws)
    summaries = {
        (t, p.key): s
        for t in dataset.targets
        for p in points
        if (s := summary(dataset, t, p, column)) is not None
    }
    # bandwidth is drawn in one unit for the whole figure, so ticks fall on round numbers of it
    divisor, shown = (
        style.bandwidth_unit(max((s.mean for s in summaries.values()), default=0.0))
        if unit == "B/s"
        else (1.0, unit)
    )
    data = []
    with style.rc_context():
        fig = style.new_figure(
            0.9 + PANEL_HEIGHT_IN * nrows,
            footer_lines=2,
            banner=dataset.emulated_label is not None,
            width_in=max(style.WIDTH_IN, 2.3 * ncols),
        )
        axes = fig.subplots(nrows, ncols, squeeze=False)
        targets = dataset.targets
        width = 0.8 / max(1, len(targets))
        for r, rw in enumerate(rws):
            for c, depth in enumerate(depths):
                ax = axes[r][c]
                members = next((g[2] for g in groups if g[0] == rw and g[1] == depth), [])
                if not members:
                    ax.set_visible(False)
                    continue
                x, centres, sizes, jobs_vary = _positions(members)
                n_bars = len(members) * len(targets)
                for t, target in enumerate(targets):
                    offset = (t - (len(targets) - 1) / 2) * width
                    for point in members:
                        s = summaries.get((target, point.key))
                        if s is None:
                            continue
                        has_ci = math.isfinite(s.ci_low) and math.isfinite(s.ci_high)
                        mean = s.mean / divisor
                        lo = (s.mean - s.ci_low) / divisor if has_ci else 0.0
                        hi = (s.ci_high - s.mean) / divisor if has_ci else 0.0
                        ax.bar(
                            x[point.key] + offset,
                            mean,
                            width,
                            color=dataset.colours[target],
                            yerr=[[lo], [hi]] if has_ci else None,
                            error_kw={"elinewidth": 1.0, "capsize": 2, "ecolor": "#222222"},
                        )
                        if n_bars <= LABEL_BARS_MAX:
                            ax.annotate(
                                units.si(s.mean, unit),
                                (x[point.key] + offset, mean + hi),
                                xytext=(0, 2),
                                textcoords="offset points",
                                ha="center",
                                va="bottom",
                                fontsize=7,
                            )
                        data.append(
                            {
                                "target": target,
                                "point": point.key,
                                "rw": rw,
                                "iodepth": depth,
                                "bs": point.bs,
                                "numjobs": point.numjobs,
                                "mean": s.mean,
                                "ci_low": s.ci_low,
                                "ci_high": s.ci_high,
                                "n": s.n,
                            }
                        )
                if jobs_vary:  # numjobs under each bar, the block size under its group
                    ax.set_xticks(
                        [x[p.key] for p in members], [f"j{p.numjobs}" for p in members], fontsize=7.5
                    )
                    sizes_axis = ax.secondary_xaxis("bottom")
                    sizes_axis.set_xticks(centres, sizes)
                    sizes_axis.tick_params(axis="x", length=0, pad=13)
                    sizes_axis.spines["bottom"].set_visible(False)
                else:
                    ax.set_xticks(centres, sizes)
                ax.set_ylim(bottom=0)
                ax.margins(y=0.2 if n_bars <= LABEL_BARS_MAX else 0.05)
                if unit == "B/s":
                    ax.set_ylabel(f"{what} ({shown})")
                else:
                    ax.yaxis.set_major_formatter(style.si_formatter())
                    if c == 0:
                        ax.set_ylabel(what)
                ax.grid(axis="x", visible=False)
                ax.set_title(f"{rw}, iodepth {depth}", fontsize=9)
        style.legend(
            fig, [Patch(color=dataset.colours[t], label=f"{t} ({dataset.drivers[t]})") for t in targets]
        )
        n = style.n_text(d["n"] for d in data)
        x_text = (
            "block size, numjobs (j) above it"
            if any(len({p.numjobs for p in g[2]}) > 1 for g in groups)
            else "block size"
        )
        style.stamp(
            fig,
            [
                f"mean over runs; error bars: 95 % CI of the mean (bootstrap) \u00b7 x: {x_text}"
                f" \u00b7 {n} per target and point",
                dataset.facts(),
            ],
            dataset.emulated_label,
        )
    return Plotted(
        name,
        title,
        f"{what[0].upper() + what[1:]} of every target per point (mean over runs, error bars the 95 % CI of the mean), "
        "rows by rw, columns by iodepth, bars by block size and job count.",
        fig,
        data,
    )


def absolute_iops(dataset: Dataset) -> Plotted | Skipped:
    if not dataset.points:
        return Skipped("throughput-iops", "absolute IOPS: no finished runs")
    return _bars(
        dataset, dataset.points, "iops", "IOPS", "throughput-iops", "Absolute throughput (IOPS)", "IOPS"
    )


def absolute_bandwidth(dataset: Dataset) -> Plotted | Skipped:
    large = [p for p in dataset.points if p.bs_bytes >= LARGE_BLOCK_BYTES]
    if not large:
        return Skipped(
            "throughput-bw", f"absolute bandwidth: no point with bs >= {LARGE_BLOCK_BYTES // 1024}k"
        )
    return _bars(
        dataset,
        large,
        "bw_bytes",
        "B/s",
        "throughput-bw",
        f"Absolute bandwidth (bs \u2265 {LARGE_BLOCK_BYTES // 1024}k)",
        "bandwidth",
    )
