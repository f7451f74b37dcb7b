"""Absolute throughput: IOPS (and bandwidth for large blocks) of every target, with CIs.

Small multiples by rw (rows) x iodepth (columns), bars by block size and job count inside each
panel: the grid readers know from the rust-for-linux.com null-block page.  Ratios alone hide
whether a point runs at 50 K or 5 M IOPS; these bars keep the absolute numbers in view.  Bars
start at 0 and each panel has its own scale (block sizes differ by orders of magnitude); the
error bar is the 95 % CI of the mean over runs.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.patches import Patch

from bench.plots import style
from bench.plots.data import Dataset, Point, summary
from bench.plots.result import Plotted, Skipped

LARGE_BLOCK_BYTES = 64 * 1024   # from here on bandwidth is the number readers look for
LABEL_BARS_MAX = 8              # value labels only where they stay legible
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


def _bars(dataset: Dataset, points: list[Point], column: str, unit: str, name: str, title: str,
          what: str) -> Plotted:
    groups = _panel_groups(points)
    rws = list(dict.fromkeys(g[0] for g in groups))
    depths = sorted({g[1] for g in groups}, key=lambda d: (d is None, d or 0))
    ncols, nrows = len(depths), len(rws)
    summaries = {(t, p.key): s for t in dataset.targets for p in points
                 if (s := summary(dataset, t, p, column)) is not None}
    # bandwidth is drawn in one unit for the whole figure, so ticks fall on round numbers of it
    divisor, shown = (style.bandwidth_unit(max((s.mean for s in summaries.values()), default=0.0))
                      if unit == "B/s" else (1.0, unit))
    data = []
    with style.rc_context():
        fig = style.new_figure(0.9 + PANEL_HEIGHT_IN * nrows, footer_lines=2,
                               banner=dataset.emulated_label is not None,
                               width_in=max(style.WIDTH_IN, 2.3 * ncols))
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
                x = np.arange(len(members))
                n_bars = len(members) * len(targets)
                for t, target in enumerate(targets):
                    offset = (t - (len(targets) - 1) / 2) * width
                    for i, point in enumerate(members):
                        s = summaries.get((target, point.key))
                        if s is None:
                            continue
                        has_ci = math.isfinite(s.ci_low) and math.isfinite(s.ci_high)
                        mean = s.mean / divisor
                        lo = (s.mean - s.ci_low) / divisor if has_ci else 0.0
                        hi = (s.ci_high - s.mean) / divisor if has_ci else 0.0
                        ax.bar(x[i] + offset, mean, width, color=dataset.colours[target],
                               yerr=[[lo], [hi]] if has_ci else None,
                               error_kw={"elinewidth": 1.0, "capsize": 2, "ecolor": "#222222"})
                        if n_bars <= LABEL_BARS_MAX:
                            ax.annotate(style.si_text(s.mean, unit), (x[i] + offset, mean + hi),
                                        xytext=(0, 2), textcoords="offset points", ha="center",
                                        va="bottom", fontsize=7)
                        data.append({"target": target, "point": point.key, "rw": rw, "iodepth": depth,
                                     "bs": point.bs, "numjobs": point.numjobs, "mean": s.mean,
                                     "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n})
                ax.set_xticks(x, [f"{p.bs}\nj{p.numjobs}" if len({m.numjobs for m in members}) > 1
                                  or p.numjobs != 1 else p.bs for p in members])
                ax.set_ylim(bottom=0)
                ax.margins(y=0.14 if n_bars <= LABEL_BARS_MAX else 0.05)
                if unit == "B/s":
                    ax.set_ylabel(f"{what} ({shown})")
                else:
                    ax.yaxis.set_major_formatter(style.si_formatter(unit))
                    if c == 0:
                        ax.set_ylabel(what)
                ax.grid(axis="x", visible=False)
                ax.set_title(f"{rw}, iodepth {depth}", fontsize=9)
        fig.legend(handles=[Patch(color=dataset.colours[t], label=f"{t} ({dataset.drivers[t]})")
                            for t in targets], loc="outside upper center", ncol=len(targets), frameon=False)
        n = style.n_text(d["n"] for d in data)
        style.stamp(fig, [f"mean over runs; error bars: 95 % CI of the mean (bootstrap) \u00b7 x: block size"
                          f" and jobs (j) \u00b7 {n} per target and point",
                          dataset.facts()], dataset.emulated_label)
    return Plotted(name, title,
                   f"{what} of every target per point (mean over runs, error bars the 95 % CI of the mean), "
                   "rows by rw, columns by iodepth, bars by block size and job count.", fig, data)


def absolute_iops(dataset: Dataset) -> Plotted | Skipped:
    if not dataset.points:
        return Skipped("throughput-iops", "absolute IOPS: no finished runs")
    return _bars(dataset, dataset.points, "iops", "IOPS", "throughput-iops",
                 "Absolute throughput (IOPS)", "IOPS")


def absolute_bandwidth(dataset: Dataset) -> Plotted | Skipped:
    large = [p for p in dataset.points if p.bs_bytes >= LARGE_BLOCK_BYTES]
    if not large:
        return Skipped("throughput-bw", f"absolute bandwidth: no point with bs >= {LARGE_BLOCK_BYTES // 1024}k")
    return _bars(dataset, large, "bw_bytes", "B/s", "throughput-bw",
                 f"Absolute bandwidth (bs \u2265 {LARGE_BLOCK_BYTES // 1024}k)", "bandwidth")
