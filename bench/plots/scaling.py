"""Scaling: IOPS against iodepth, and against numjobs, for every target, with CI bands.

One panel per (rw, block size); inside it a line per target (its colour) and per value of the
other parallelism key (line style and marker: numjobs on the iodepth plot, iodepth on the
numjobs plot).  The x axis is logarithmic in base 2 (depths and job counts double), the y axis
starts at 0 so a flat line reads as flat.  The band is the 95 % CI of the mean over runs.
"""

from __future__ import annotations

import math

from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from bench.plots import layout, style
from bench.plots.data import Dataset, summary
from bench.plots.result import Plotted, Skipped

OTHER = {"iodepth": "numjobs", "numjobs": "iodepth"}
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
PANELS_PER_PAGE = 12
COLUMNS = 3
AXIS_NAMES = {"iodepth": "iodepth (queue depth per job)", "numjobs": "numjobs (parallel fio jobs)"}


def _value(point, key: str) -> int | None:
    return point.iodepth if key == "iodepth" else point.numjobs


def panels(dataset: Dataset) -> list[tuple[str, str]]:
    """(rw, bs) combinations in reading order."""
    return list(dict.fromkeys((p.rw, p.bs) for p in dataset.points))


def scaling(
    dataset: Dataset,
    key: str,
    panel_keys: list[tuple[str, str]] | None = None,
    page: tuple[int, int] = (0, 1),
) -> Plotted | Skipped:
    name = f"scaling-{key}"
    xs = sorted({v for p in dataset.points if (v := _value(p, key)) is not None})
    if len(xs) < 2:
        only = ", ".join(map(str, xs)) or "none"
        return Skipped(name, f"scaling vs {key}: only {key} {only} was run")
    other = OTHER[key]
    others = sorted({_value(p, other) for p in dataset.points if _value(p, other) is not None})
    panel_keys = panels(dataset) if panel_keys is None else panel_keys
    ncols = layout.columns_for(len(panel_keys), COLUMNS)
    nrows = layout.rows_for(len(panel_keys), ncols)
    data = []
    with style.rc_context():
        fig = style.new_figure(1.0 + 2.3 * nrows, footer_lines=2, banner=dataset.emulated_label is not None)
        axes = layout.grid(fig, len(panel_keys), ncols, sharex=True)
        for i, (ax, (rw, bs)) in enumerate(zip(axes, panel_keys)):
            for t, target in enumerate(dataset.targets):
                colour = dataset.colours[target]
                for j, other_value in enumerate(others):
                    line = []
                    for x in xs:
                        point = next(
                            (
                                p
                                for p in dataset.points
                                if p.rw == rw
                                and p.bs == bs
                                and _value(p, key) == x
                                and _value(p, other) == other_value
                            ),
                            None,
                        )
                        s = summary(dataset, target, point, "iops") if point else None
                        if s is not None:
                            line.append((x, s.mean, s.ci_low, s.ci_high, s.n))
                    if not line:
                        continue
                    lx = [r[0] for r in line]
                    ax.plot(
                        lx,
                        [r[1] for r in line],
                        color=colour,
                        linestyle=LINESTYLES[j % len(LINESTYLES)],
                        marker=MARKERS[j % len(MARKERS)],
                        markersize=5 if t == 0 else 3.5,
                        linewidth=style.line_width(t),
                    )
                    if all(math.isfinite(r[2]) for r in line):
                        ax.fill_between(
                            lx,
                            [r[2] for r in line],
                            [r[3] for r in line],
                            color=colour,
                            alpha=0.18,
                            linewidth=0,
                        )
                    data += [
                        {
                            "target": target,
                            "rw": rw,
                            "bs": bs,
                            key: r[0],
                            other: other_value,
                            "mean": r[1],
                            "ci_low": r[2],
                            "ci_high": r[3],
                            "n": r[4],
                        }
                        for r in line
                    ]
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(FixedLocator(xs))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(style.number_formatter())
            ax.set_ylim(bottom=0)
            ax.yaxis.set_major_formatter(style.si_formatter())
            ax.set_title(f"{rw} {bs}", fontsize=9)
            if i % ncols == 0:
                ax.set_ylabel("IOPS")
            if i >= len(panel_keys) - ncols:
                ax.set_xlabel(AXIS_NAMES[key])
        handles = [
            Line2D([], [], color=dataset.colours[t], linewidth=style.line_width(i), label=t)
            for i, t in enumerate(dataset.targets)
        ]
        if len(others) > 1:
            short = "j" if other == "numjobs" else "qd"
            handles += [
                Line2D(
                    [],
                    [],
                    color="#555555",
                    linestyle=LINESTYLES[j % len(LINESTYLES)],
                    marker=MARKERS[j % len(MARKERS)],
                    markersize=4,
                    label=f"{short}{v}",
                )
                for j, v in enumerate(others)
            ]
        style.legend(fig, handles)
        n = style.n_text(d["n"] for d in data)
        style.stamp(
            fig,
            [
                f"mean IOPS over runs; bands: 95 % CI of the mean \u00b7 {n} per target and point",
                dataset.facts(),
            ],
            dataset.emulated_label,
        )
    index, count = page
    return Plotted(
        layout.page_name(name, index, count),
        layout.page_title(f"Scaling with {key}", index, count),
        f"Mean IOPS against {key} for every target (bands: 95 % CI of the mean), one panel "
        f"per rw and block size, one line style per {other} value.",
        fig,
        data,
    )
