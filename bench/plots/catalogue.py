"""Every figure of a set of campaigns, and writing them to files: the edge where files appear.

`build` loads the campaigns, splits them by kernel release, analyses each kernel's campaigns as
`blkcmp compare` would, and calls every figure function (page by page for the per-point ones).
Figures that do not apply come back as `Skipped` with a one-line reason.  `write` saves the
figures in the asked formats; `svg_text` gives one figure as SVG for embedding.
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
from bench.errors import UsageError
from bench.plots import (cpu, data, forest, latency, layout, overtime, samples, scaling, style, throughput,
                         trend)
from bench.plots.result import Plotted, Skipped

FORMATS = ("png", "svg", "pdf")


@dataclass
class KernelGroup:
    kernel: str
    dataset: data.Dataset
    analysis: analysis_mod.Analysis | None   # None when there is nothing to compare
    why_no_analysis: str = ""


@dataclass
class Catalogue:
    dataset: data.Dataset
    groups: list[KernelGroup]
    figures: list[Plotted] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def add(self, result: Plotted | Skipped, suffix: str = "") -> None:
        if isinstance(result, Skipped):
            self.skipped.append(Skipped(result.name + suffix, result.reason))
        else:
            result.name += suffix
            self.figures.append(result)


def _paged(make: Callable, items: list, per_page: int) -> list[Plotted | Skipped]:
    chunks = layout.pages(items, per_page)
    results = []
    for i, chunk in enumerate(chunks):
        result = make(chunk, (i, len(chunks)))
        results.append(result)
        if isinstance(result, Skipped):
            break
    return results


def _suffix(kernel: str, several: bool) -> str:
    return "-k" + re.sub(r"[^A-Za-z0-9._-]", "_", kernel) if several else ""


def group_figures(group: KernelGroup) -> list[Plotted | Skipped]:
    ds, a = group.dataset, group.analysis
    metric = a.metric if a else analysis_mod.METRICS["iops"]
    out: list[Plotted | Skipped] = []
    out.append(forest.ratio_forest(a, ds) if a else Skipped("forest", f"ratio forest: {group.why_no_analysis}"))
    out.append(throughput.absolute_iops(ds))
    out.append(throughput.absolute_bandwidth(ds))
    out += _paged(lambda pts, page: latency.latency_cdf(ds, pts, page), ds.points, latency.CDF_PANELS_PER_PAGE)
    out += _paged(lambda pts, page: latency.latency_percentiles(ds, pts, page), ds.points,
                  latency.BAR_POINTS_PER_PAGE)
    for key in ("iodepth", "numjobs"):
        out += _paged(lambda panels, page, key=key: scaling.scaling(ds, key, panels, page),
                      scaling.panels(ds), scaling.PANELS_PER_PAGE)
    out += _paged(lambda pts, page: samples.every_sample(ds, metric.column, metric.label, pts, page),
                  ds.points, samples.PANELS_PER_PAGE)
    out.append(samples.run_order(ds, metric.column, metric.label))
    lines = overtime.series(ds)
    out += _paged(lambda pts, page: overtime.iops_over_time(ds, pts, page, lines), ds.points,
                  overtime.PANELS_PER_PAGE)
    out += _paged(lambda pts, page: cpu.cpu_cost(ds, pts, page), ds.points, cpu.POINTS_PER_PAGE)
    return out


def build(dirs: list[Path], *, metric: str = "iops", baseline: str | None = None, margin: float = 0.02,
          alpha: float = 0.05, correction: str = "holm", seed: int = 0) -> Catalogue:
    everything = data.load(dirs, baseline=baseline)
    if not everything.records:
        raise UsageError("no finished runs in " + ", ".join(str(d) for d in dirs))
    groups = []
    for kernel, ds in data.by_kernel(everything):
        try:
            a = analysis_mod.analyse([c.path for c in ds.campaigns], by="target", metric=metric,
                                     baseline=ds.baseline, margin=margin, alpha=alpha,
                                     correction=correction, seed=seed)
            groups.append(KernelGroup(kernel, ds, a))
        except UsageError as exc:
            if "--metric" in str(exc) or "--margin" in str(exc) or "--alpha" in str(exc):
                raise
            groups.append(KernelGroup(kernel, ds, None, str(exc)))
    catalogue = Catalogue(everything, groups)
    several = len(groups) > 1
    for group in groups:
        for result in group_figures(group):
            catalogue.add(result, _suffix(group.kernel, several))
    analysed = [(g.kernel, g.analysis) for g in groups if g.analysis is not None]
    catalogue.add(trend.kernel_trend(analysed, everything))
    return catalogue


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


# The figures being drawn by svg_texts' worker processes, which inherit them by fork.
_DRAWING: list[Plotted] = []


def _draw(index: int) -> str:
    return svg_text(_DRAWING[index])


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool


def svg_texts(figures: list[Plotted], processes: int | None = None) -> list[str]:
    """Every figure as SVG (as svg_text gives it), drawn by one process per CPU.

    Drawing (layout, ticks, text outlines) is almost all of a report's time and each figure is
    drawn on its own, so the figures are shared out to forked processes, which inherit them
    (nothing is pickled but the SVG text coming back)."""
    global _DRAWING
    workers = min(len(figures), processes or len(os.sched_getaffinity(0)))
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [svg_text(f) for f in figures]
    _DRAWING = figures
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_ignore_interrupts) as pool:
            return pool.map(_draw, range(len(figures)), chunksize=1)
    finally:
        _DRAWING = []
