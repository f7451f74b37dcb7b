"""Every figure of a set of campaigns, and writing them to files: the edge where files appear.

`build` loads the campaigns, splits them by kernel release, analyses each kernel's campaigns as
`blkcmp compare` would, and calls every figure function (page by page for the per-point ones).
Figures that do not apply come back as `Skipped` with a one-line reason.  `write` saves the
figures in the asked formats; `svg_text` gives one figure as SVG for embedding;
`build(as_svg=True)` (the report) makes and draws them in one forked process per CPU.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import analysis as analysis_mod
from bench.analysis_options import DEFAULTS, AnalysisOptions
from bench.errors import UsageError
from bench.plots import (
    cpu,
    data,
    forest,
    latency,
    layout,
    overtime,
    samples,
    scaling,
    steady,
    style,
    throughput,
    trend,
)
from bench.plots.result import Plotted, Skipped

FORMATS = ("png", "svg", "pdf")


@dataclass
class KernelGroup:
    kernel: str
    dataset: data.Dataset
    analysis: analysis_mod.Analysis | None  # None when there is nothing to compare
    why_no_analysis: str = ""


@dataclass
class Catalogue:
    dataset: data.Dataset
    groups: list[KernelGroup]
    figures: list[Plotted] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def add(self, result: Plotted | Skipped) -> None:
        (self.skipped if isinstance(result, Skipped) else self.figures).append(result)


# A figure to make: (family, maker).  Pages of one figure share a family; once a page comes back
# Skipped, the family's later pages are not made (they would say the same).
Maker = tuple[str, Callable[[], "Plotted | Skipped"]]


def _paged(family: str, make: Callable, items: list, per_page: int) -> list[Maker]:
    chunks = layout.pages(items, per_page)
    return [
        (family, lambda chunk=chunk, i=i: make(chunk, (i, len(chunks)))) for i, chunk in enumerate(chunks)
    ]


def _suffix(kernel: str, several: bool) -> str:
    return "-k" + re.sub(r"[^A-Za-z0-9._-]", "_", kernel) if several else ""


def group_makers(group: KernelGroup) -> list[Maker]:
    ds, a = group.dataset, group.analysis
    metric = a.metric if a else analysis_mod.METRICS["iops"]
    out: list[Maker] = []
    out.append(
        (
            "forest",
            (lambda: forest.ratio_forest(a, ds))
            if a
            else (lambda: Skipped("forest", f"ratio forest: {group.why_no_analysis}")),
        )
    )
    out.append(("throughput-iops", lambda: throughput.absolute_iops(ds)))
    out.append(("throughput-bw", lambda: throughput.absolute_bandwidth(ds)))
    out += _paged(
        "latency-cdf",
        lambda pts, page: latency.latency_cdf(ds, pts, page),
        ds.points,
        latency.CDF_PANELS_PER_PAGE,
    )
    out += _paged(
        "latency-percentiles",
        lambda pts, page: latency.latency_percentiles(ds, pts, page),
        ds.points,
        latency.BAR_POINTS_PER_PAGE,
    )
    for key in ("iodepth", "numjobs"):
        out += _paged(
            f"scaling-{key}",
            lambda panels, page, key=key: scaling.scaling(ds, key, panels, page),
            scaling.panels(ds),
            scaling.PANELS_PER_PAGE,
        )
    out += _paged(
        "samples",
        lambda pts, page: samples.every_sample(ds, metric.column, metric.label, pts, page),
        ds.points,
        samples.PANELS_PER_PAGE,
    )
    out.append(("run-order", lambda: samples.run_order(ds, metric.column, metric.label)))
    lines = overtime.series(ds)
    out += _paged(
        "iops-over-time",
        lambda pts, page: overtime.iops_over_time(ds, pts, page, lines),
        ds.points,
        overtime.PANELS_PER_PAGE,
    )
    out += _paged("cpu-cost", lambda pts, page: cpu.cpu_cost(ds, pts, page), ds.points, cpu.POINTS_PER_PAGE)
    out.append(
        (
            "steady-state",
            lambda: steady.steady_state_rounds(steady.records(ds), ds.emulated_label, ds.facts()),
        )
    )
    return out


def group_figures(group: KernelGroup) -> list[Plotted | Skipped]:
    return make(group_makers(group))


def make(makers: list[Maker], *, as_svg: bool = False) -> list[Plotted | Skipped]:
    """Every maker's result in order, a family's pages stopping at its first Skipped.

    With `as_svg` the figures are made and drawn by one forked process per CPU (they inherit
    the loaded runs and the analysis; nothing is pickled but what comes back) and each Plotted
    comes back with its SVG text instead of its matplotlib figure: making and drawing 40
    figures is nearly all of a 120-point report's time, and each figure stands alone."""
    made = _in_workers(makers) if as_svg else None
    out, stopped = [], set()
    for i, (family, maker) in enumerate(makers):
        if family in stopped:
            continue
        result = made[i] if made is not None else maker()
        out.append(result)
        if isinstance(result, Skipped):
            stopped.add(family)
    return out


def build(dirs: list[Path], options: AnalysisOptions = DEFAULTS, *, as_svg: bool = False) -> Catalogue:
    """Every figure of these campaigns, each kernel's analysed as `compare --by target` would;
    `as_svg`: made and drawn in parallel, as SVG text."""
    everything = data.load(dirs, baseline=options.baseline)
    if not everything.records:
        raise UsageError("no finished runs in " + ", ".join(str(d) for d in dirs))
    groups = []
    for kernel, ds in data.by_kernel(everything):
        try:
            a = analysis_mod.analyse(
                [c.path for c in ds.campaigns], options.with_baseline(ds.baseline), kernel=ds.kernel_label
            )
            groups.append(KernelGroup(kernel, ds, a))
        except analysis_mod.NothingToCompare as exc:  # said in place of this kernel's verdicts
            groups.append(KernelGroup(kernel, ds, None, str(exc)))
    catalogue = Catalogue(everything, groups)
    several = len(groups) > 1
    makers: list[Maker] = []
    for group in groups:
        suffix = _suffix(group.kernel, several)
        # the suffix is part of the family (each kernel's pages stop on their own) and the name
        makers += [
            (family + suffix, lambda maker=maker, suffix=suffix: _named(maker(), suffix))
            for family, maker in group_makers(group)
        ]
    analysed = [(g.kernel, g.analysis) for g in groups if g.analysis is not None]
    makers.append(("kernel-trend", lambda: trend.kernel_trend(analysed, everything)))
    for result in make(makers, as_svg=as_svg):
        catalogue.add(result)
    return catalogue


def _named(result: Plotted | Skipped, suffix: str) -> Plotted | Skipped:
    if isinstance(result, Skipped):
        return Skipped(result.name + suffix, result.reason)
    result.name += suffix
    return result


def parse_formats(text: str) -> list[str]:
    wanted = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise UsageError(f"--format {text}: expected a comma-separated list of {', '.join(FORMATS)}")
    return list(dict.fromkeys(wanted))


def write(figures: list[Plotted], out: Path, formats: list[str]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fig in figures:
        for fmt in formats:
            path = out / f"{fig.name}.{fmt}"
            # no creation date in the file (it would make every re-plot look changed)
            metadata = {"Date": None} if fmt in ("svg", "pdf") else None
            with style.rc_context():  # saving reads rcParams too (dpi, SVG ids and text)
                fig.figure.savefig(path, format=fmt, metadata=metadata)
            written.append(path)
    return written


def svg_text(fig: Plotted) -> str:
    buffer = io.StringIO()
    with style.rc_context():
        fig.figure.savefig(buffer, format="svg", metadata={"Date": None})
    return buffer.getvalue()


# What svg workers make, inherited by fork from the process that asked.
_MAKERS: list[Maker] = []


def _make_svg(index: int) -> Plotted | Skipped:
    result = _MAKERS[index][1]()
    if isinstance(result, Plotted):
        svg = svg_text(result)
        result.figure.clear()  # the figure itself stays here: only its SVG text goes back
        result = Plotted(result.name, result.title, result.caption, None, result.data, svg)
    return result


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool


def _in_workers(makers: list[Maker], processes: int | None = None) -> list[Plotted | Skipped]:
    global _MAKERS
    workers = min(len(makers), processes or len(os.sched_getaffinity(0)))
    _MAKERS = makers
    try:
        if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return [_make_svg(i) for i in range(len(makers))]
        with multiprocessing.get_context("fork").Pool(workers, initializer=_ignore_interrupts) as pool:
            return pool.map(_make_svg, range(len(makers)), chunksize=1)
    finally:
        _MAKERS = []
