"""CPU cost: CPU time per I/O per target, from fio's own accounting and from /proc/stat.

fio reports usr_cpu and sys_cpu as percent of the job's runtime, averaged over the jobs, so a
run's CPU time is (usr + sys) / 100 x runtime x numjobs; divided by the run's I/O count that is
the CPU cost of one I/O in the submitting threads.  Completion work done in softirq context on
other CPUs is invisible to fio; the /proc/stat softirq time of the whole machine over the run,
per I/O, shows it (it includes any other softirq work on the machine, hence "share").
fio's CPU seconds come from each job entry's own run time as fio measured it (`job_runtime`, or
the direction runtime × numjobs before fio 3.5), so they need neither the plan's runtime nor
/proc/stat: ingested runs from any fio have this measure.  Runs indexed before blkcmp recorded
that fall back to the plan's runtime per run.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.lines import Line2D

from bench import stats
from bench.plots import layout, style
from bench.plots.data import Dataset, Point
from bench.plots.result import Plotted, Skipped

POINTS_PER_PAGE = 16


def fio_cpu_ns_per_io(rec, runtime_s: float) -> float | None:
    m = rec.metrics
    usr, sys_, ios = m.get("usr_cpu"), m.get("sys_cpu"), m.get("total_ios")
    if m.get("fio_cpu_s") is not None and ios:  # fio's own run time per job entry (bench.fio)
        return m["fio_cpu_s"] / ios * 1e9
    if usr is None or sys_ is None or not ios or not math.isfinite(runtime_s):
        return None
    numjobs = int(rec.point.get("numjobs", 1)) if str(rec.point.get("numjobs", 1)).isdigit() else 1
    return (usr + sys_) / 100.0 * runtime_s * numjobs / ios * 1e9


def softirq_ns_per_io(rec) -> float | None:
    softirq, ios = rec.metrics.get("cpu_softirq_s"), rec.metrics.get("total_ios")
    if softirq is None or not ios:
        return None
    return softirq / ios * 1e9


MEASURES = (
    ("fio_cpu", "fio usr+sys CPU per I/O", lambda ds, rec: fio_cpu_ns_per_io(rec, ds.runtime_of(rec))),
    ("softirq", "softirq CPU per I/O (whole machine)", lambda ds, rec: softirq_ns_per_io(rec)),
)


def cpu_cost(
    dataset: Dataset, points: list[Point] | None = None, page: tuple[int, int] = (0, 1)
) -> Plotted | Skipped:
    points = dataset.points if points is None else points
    per_measure: dict[str, dict[tuple[str, str], list[float]]] = {}
    for key, _title, get in MEASURES:
        values: dict[tuple[str, str], list[float]] = {}
        for rec in dataset.records:
            v = get(dataset, rec)
            if v is not None and math.isfinite(v):
                values.setdefault((rec.target, rec.point_key), []).append(v)
        if values:
            per_measure[key] = values
    if not per_measure:
        return Skipped("cpu-cost", "CPU cost: no run recorded fio's usr/sys CPU or /proc/stat softirq time")
    measures = [m for m in MEASURES if m[0] in per_measure]
    targets = dataset.targets
    height = 0.8 / len(targets)
    y = np.arange(len(points))
    data = []
    with style.rc_context():
        fig = style.new_figure(
            1.3 + 0.2 * len(points) * len(targets), footer_lines=2, banner=dataset.emulated_label is not None
        )
        axes = fig.subplots(1, len(measures), sharey=True, squeeze=False)[0]
        for ax, (key, title, _get) in zip(axes, measures):
            values = per_measure[key]
            largest = max((max(v) for v in values.values()), default=0.0)
            divisor, unit = (1e3, "µs") if largest >= 2000 else (1.0, "ns")
            for t, target in enumerate(targets):
                offset = (t - (len(targets) - 1) / 2) * height
                for i, point in enumerate(points):
                    runs = values.get((target, point.key))
                    if not runs:
                        continue
                    s = stats.describe(runs)
                    has_ci = math.isfinite(s.ci_low)
                    ax.barh(
                        y[i] + offset,
                        s.mean / divisor,
                        height,
                        color=dataset.colours[target],
                        xerr=[[(s.mean - s.ci_low) / divisor], [(s.ci_high - s.mean) / divisor]]
                        if has_ci
                        else None,
                        error_kw={"elinewidth": 1.0, "capsize": 2, "ecolor": "#222222"},
                    )
                    data.append(
                        {
                            "measure": key,
                            "target": target,
                            "point": point.key,
                            "mean_ns": s.mean,
                            "ci_low_ns": s.ci_low,
                            "ci_high_ns": s.ci_high,
                            "n": s.n,
                        }
                    )
            ax.set_xlim(left=0)
            ax.set_title(title, fontsize=9.5)
            ax.set_xlabel(f"CPU time per I/O ({unit})")
            ax.xaxis.set_major_formatter(style.number_formatter())
            ax.grid(axis="y", visible=False)
        axes[0].set_yticks(y, [p.label() for p in points])
        axes[0].set_ylim(len(points) - 0.5, -0.5)
        axes[0].tick_params(axis="y", length=0)
        handles = [Line2D([], [], color=dataset.colours[t], linewidth=6, label=t) for t in targets]
        style.legend(fig, handles)
        style.stamp(
            fig,
            [
                "fio: (usr+sys)% \u00d7 each job's run time / I/Os \u00b7 softirq: /proc/stat softirq time"
                " over the run / I/Os \u00b7 error bars: 95 % CI of the mean",
                dataset.facts(),
            ],
            dataset.emulated_label,
        )
    index, count = page
    return Plotted(
        layout.page_name("cpu-cost", index, count),
        layout.page_title("CPU cost per I/O", index, count),
        "CPU time spent per I/O by each target: fio's usr+sys accounting of its own threads, "
        "and the machine's softirq time (where completions may run) divided by the I/O count.",
        fig,
        data,
    )
