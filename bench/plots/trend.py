"""Kernel trend: absolute numbers and candidate/baseline ratios per kernel release, when
campaigns span several kernels.

The upper panel shows each target's mean at every point per kernel (log axis, one faint line per
point and target joining the kernels, the geometric mean over points in bold), so a change both
drivers share is visible; the lower panel the gap (candidate/baseline) per kernel, which such a
shared change leaves alone (`compare --by gap` tests whether the gap changed).

Each kernel's campaigns are analysed on their own (the same analysis as `blkcmp compare`), so
the ratios compare drivers within one kernel and only then line up across kernels.  Every
point's ratio with its CI is drawn faintly, spread sideways inside its kernel's slot; the
geometric mean over points with its CI is the bold marker joined across kernels.  Kernels are
in version order; the ratio axis is logarithmic and centred on 1.
"""

from __future__ import annotations

import math

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis import Analysis
from bench.plots import style
from bench.plots.data import Dataset
from bench.plots.result import Plotted, Skipped
from bench.units import margin_text

SPREAD = 0.32  # half-width of a kernel's slot used by the per-point ratios


def kernel_trend(per_kernel: list[tuple[str, Analysis]], dataset: Dataset) -> Plotted | Skipped:
    kernels = [k for k, _ in per_kernel]
    if not kernels:
        return Skipped("kernel-trend", "kernel trend: no kernel's campaigns have two targets to compare")
    if len(kernels) < 2:
        return Skipped("kernel-trend", f"kernel trend: all campaigns ran on one kernel ({kernels[0]})")
    first = per_kernel[0][1]
    candidates = list(dict.fromkeys(s.candidate for _, a in per_kernel for s in a.comparisons))
    data = []
    for k, (kernel, analysis) in enumerate(per_kernel):
        absolute: dict[str, list[float]] = {}
        for side in analysis.comparisons:
            for p in side.points:
                for target, summary in (
                    (side.baseline, p.comparison.baseline),
                    (side.candidate, p.comparison.candidate),
                ):
                    if side.candidate != candidates[0] and target == side.baseline:
                        continue  # the baseline's numbers once, not once per candidate
                    data.append(
                        {
                            "kind": "absolute",
                            "kernel": kernel,
                            "x": k,
                            "target": target,
                            "point": p.point,
                            "mean": summary.mean,
                        }
                    )
                    absolute.setdefault(target, []).append(summary.mean)
        for target, means in absolute.items():
            usable = [m for m in means if m > 0]
            if usable:
                data.append(
                    {
                        "kind": "absolute-geomean",
                        "kernel": kernel,
                        "x": k,
                        "target": target,
                        "mean": math.exp(sum(math.log(m) for m in usable) / len(usable)),
                    }
                )
        for side in analysis.comparisons:
            for j, p in enumerate(sorted(side.points, key=lambda p: p.point)):
                c = p.comparison
                data.append(
                    {
                        "kind": "point",
                        "kernel": kernel,
                        "x": k,
                        "candidate": side.candidate,
                        "baseline": side.baseline,
                        "point": p.point,
                        "ratio": c.ratio,
                        "ci_low": c.ratio_ci_low,
                        "ci_high": c.ratio_ci_high,
                        "verdict": p.verdict.verdict if p.verdict else "inconclusive",
                        "slot": (j + 0.5) / len(side.points),
                    }
                )
            if side.across:
                x = side.across
                data.append(
                    {
                        "kind": "geomean",
                        "kernel": kernel,
                        "x": k,
                        "candidate": side.candidate,
                        "baseline": side.baseline,
                        "ratio": x.geomean_ratio,
                        "ci_low": x.ci_low,
                        "ci_high": x.ci_high,
                        "points": x.k,
                        "counts": dict(x.counts),
                    }
                )
    with style.rc_context():
        fig = style.new_figure(
            6.4,
            footer_lines=2,
            banner=dataset.emulated_label is not None,
            width_in=max(style.WIDTH_IN, 1.2 * len(kernels) + 2),
        )
        top, ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.4]})
        _absolute_panel(top, data, dataset, first.metric)
        ratios = [d for d in data if "ratio" in d]
        limits = style.ratio_limits(
            [d["ratio"] for d in ratios],
            [v for d in ratios for v in (d["ci_low"], d["ci_high"])],
            first.margin,
        )
        style.equivalence_band(ax, first.margin, axis="y")
        style.ratio_axis(ax, limits, axis="y")
        for candidate in candidates:
            colour = dataset.colours.get(candidate, style.REFERENCE_COLOUR)
            for d in (d for d in data if d["kind"] == "point" and d["candidate"] == candidate):
                x = d["x"] - SPREAD + 2 * SPREAD * d["slot"]
                if math.isfinite(d["ci_low"]) and math.isfinite(d["ci_high"]):
                    low, high, _, _ = style.clip_interval(d["ci_low"], d["ci_high"], limits)
                    ax.plot([x, x], [low, high], color=colour, alpha=0.35, linewidth=1)
                if math.isfinite(d["ratio"]):
                    ax.plot(
                        [x],
                        [d["ratio"]],
                        marker=style.VERDICT_MARKERS.get(d["verdict"], "o"),
                        color=colour,
                        alpha=0.45,
                        markersize=3.5,
                        linestyle="none",
                    )
            means = [
                d
                for d in data
                if d["kind"] == "geomean" and d["candidate"] == candidate and math.isfinite(d["ratio"])
            ]
            ax.plot(
                [d["x"] for d in means], [d["ratio"] for d in means], color=colour, linewidth=1.2, zorder=4
            )
            for d in means:
                if math.isfinite(d["ci_low"]):
                    low, high, _, _ = style.clip_interval(d["ci_low"], d["ci_high"], limits)
                    ax.plot([d["x"], d["x"]], [low, high], color="#000000", linewidth=2.2, zorder=5)
                ax.plot(
                    [d["x"]],
                    [d["ratio"]],
                    marker="D",
                    markersize=7,
                    color=colour,
                    markeredgecolor="#000000",
                    zorder=6,
                    linestyle="none",
                )
        ax.set_xticks(range(len(kernels)), kernels, rotation=20 if len(kernels) > 5 else 0)
        ax.set_xlim(-0.6, len(kernels) - 0.4)
        ax.grid(axis="x", visible=False)
        ax.set_xlabel("kernel release")
        baseline = first.comparisons[0].baseline if first.comparisons else first.baseline
        ax.set_ylabel(f"{first.metric.label} ratio / {baseline} (log)")
        handles = [
            Line2D(
                [],
                [],
                color=dataset.colours.get(c, "#000"),
                marker="D",
                markeredgecolor="#000",
                label=f"{c} / {baseline}: geomean, 95 % CI",
            )
            for c in candidates
        ]

        handles += [
            Line2D(
                [],
                [],
                color="#777777",
                marker="o",
                alpha=0.5,
                linestyle="none",
                markersize=3.5,
                label="single points",
            ),
            Patch(color=style.BAND_COLOUR, alpha=0.45, label=f"{margin_text(first.margin)} margin"),
        ]
        style.legend(fig, handles)
        style.stamp(
            fig,
            [
                "top: each target's mean per point (faint) and geomean over points (bold) per kernel "
                "\u00b7 bottom: each kernel analysed on its own; geomean ratio with its 95 % CI "
                "(bootstrap over rounds) \u00b7 faint: each point's ratio and CI",
                dataset.facts(),
            ],
            dataset.emulated_label,
        )
    return Plotted(
        "kernel-trend",
        f"Kernel trend: {', '.join(candidates)} / {baseline}",
        "Per kernel release, in version order: each target's absolute numbers (top) and the "
        "candidate/baseline gap (bottom: the geometric mean over points with its 95 % CI in bold, "
        "every point's own ratio faintly beside it).",
        fig,
        data,
    )


def _absolute_panel(ax, data: list[dict], dataset: Dataset, metric) -> None:
    """Each target's mean per point and kernel (faint lines), geomean over points in bold; log axis."""
    targets = list(dict.fromkeys(d["target"] for d in data if d["kind"] == "absolute"))
    for target in targets:
        colour = dataset.colours.get(target, style.REFERENCE_COLOUR)
        rows = [d for d in data if d["kind"] == "absolute" and d["target"] == target and d["mean"] > 0]
        for point in dict.fromkeys(d["point"] for d in rows):
            line = sorted((d["x"], d["mean"]) for d in rows if d["point"] == point)
            ax.plot([x for x, _ in line], [m for _, m in line], color=colour, alpha=0.3, linewidth=0.8)
        means = sorted(
            (d["x"], d["mean"]) for d in data if d["kind"] == "absolute-geomean" and d["target"] == target
        )
        ax.plot(
            [x for x, _ in means],
            [m for _, m in means],
            color=colour,
            linewidth=1.6,
            marker="s",
            markersize=5,
            zorder=4,
        )
    ax.set_yscale("log")
    ax.set_ylabel(f"{metric.label} ({metric.unit}, log)")
    ax.legend(
        handles=[
            Line2D([], [], color=dataset.colours.get(t, "#000"), marker="s", label=f"{t}: geomean")
            for t in targets
        ],
        loc="best",
        frameon=False,
        fontsize="small",
    )
    ax.grid(axis="x", visible=False)
