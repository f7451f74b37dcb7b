"""The ratio forest: candidate/baseline per point with its CI, the equivalence band, the verdict.

One row per point, grouped by rw; one column per candidate.  The ratio axis is logarithmic and
centred on 1, so "5 % faster" and "5 % slower" are equally far from the reference line and a
large ratio does not squash the others.  The numbers themselves (ratio, CI, verdict, and
"beyond margin" when the whole CI clears the band) are written at the right of every row: a
reader can quote them without reading them off the axis.
"""

from __future__ import annotations

import math

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench.analysis import Analysis, SideComparison
from bench.plots import style
from bench.plots.data import Dataset, Point
from bench.plots.result import Plotted, Skipped
from bench.stats.defaults import CORRECTIONS
from bench.units import margin_text, ratio_ci_text, ratio_text

ROW_IN = 0.24
TALL_ROWS = 30


def _rows(side: SideComparison, points: list[Point]) -> list[dict]:
    """Plot rows in reading order: a header per rw, then its points (y grows downwards)."""
    by_key = {p.point: p for p in side.points}
    rows: list[dict] = []
    current_rw = None
    for point in points:
        result = by_key.get(point.key)
        if result is None:
            continue
        if point.rw != current_rw:
            current_rw = point.rw
            rows.append({"header": True, "rw": point.rw, "label": point.rw, "y": len(rows)})
        c, v = result.comparison, result.verdict
        rows.append(
            {
                "header": False,
                "candidate": side.candidate,
                "baseline": side.baseline,
                "point": point.key,
                "rw": point.rw,
                "label": point.label(without=("rw",)),
                "ratio": c.ratio,
                "ci_low": c.ratio_ci_low,
                "ci_high": c.ratio_ci_high,
                "verdict": v.verdict if v else "inconclusive",
                "beyond_margin": bool(v and v.beyond_margin),
                "flags": list(result.flags),
                "n_baseline": c.n_baseline_units,
                "n_candidate": c.n_candidate_units,
                "confidence": c.confidence,
                "y": len(rows),
            }
        )
    return rows


def _right_label(row: dict) -> str:
    if row["header"]:
        return ""
    if not math.isfinite(row["ratio"]):
        return "no ratio"
    ci = f" ({ratio_ci_text(row['ci_low'], row['ci_high'], row['ratio'])})"
    beyond = ", beyond margin" if row["beyond_margin"] else ""
    return f"{ratio_text(row['ratio'])}{ci} {row['verdict']}{beyond}"


def ratio_forest(analysis: Analysis, dataset: Dataset) -> Plotted | Skipped:
    sides = [s for s in analysis.comparisons if s.points]
    if not sides:
        return Skipped("forest", "ratio forest: no point has runs of both targets")
    per_side = [_rows(s, dataset.points) for s in sides]
    n_rows = max(len(r) for r in per_side)
    with style.rc_context():
        fig = style.new_figure(
            1.55 + ROW_IN * n_rows, footer_lines=2, banner=dataset.emulated_label is not None
        )
        axes = fig.subplots(1, len(sides), squeeze=False)[0]
        rows_drawn = [r for rows in per_side for r in rows if not r["header"]]
        limits = style.ratio_limits(
            [r["ratio"] for r in rows_drawn],
            [x for r in rows_drawn for x in (r["ci_low"], r["ci_high"])],
            analysis.margin,
        )
        data = []
        for ax, side, rows in zip(axes, sides, per_side):
            colour = dataset.colours.get(side.candidate, style.REFERENCE_COLOUR)
            style.equivalence_band(ax, analysis.margin)
            style.ratio_axis(ax, limits)
            for row in rows:
                if row["header"] or not math.isfinite(row["ratio"]):
                    continue
                low, high = row["ci_low"], row["ci_high"]
                if math.isfinite(low) and math.isfinite(high):
                    # an interval reaching past the axis (or below 0) ends in an arrow at the edge
                    low, high, cut_low, cut_high = style.clip_interval(low, high, limits)
                    ax.plot(
                        [low, high],
                        [row["y"], row["y"]],
                        color=colour,
                        linewidth=1.8,
                        solid_capstyle="butt",
                        zorder=3,
                    )
                    for cut, x, arrow in ((cut_low, low, "<"), (cut_high, high, ">")):
                        if cut:
                            ax.plot(
                                [x],
                                [row["y"]],
                                marker=arrow,
                                color=colour,
                                markersize=5,
                                clip_on=False,
                                zorder=3,
                            )
                marker = style.VERDICT_MARKERS.get(row["verdict"], "o")
                inconclusive = row["verdict"] == "inconclusive"
                ax.plot(
                    [row["ratio"]],
                    [row["y"]],
                    marker=marker,
                    markersize=6.5,
                    color=colour,
                    markerfacecolor="white" if inconclusive else colour,
                    markeredgewidth=1.4,
                    linestyle="none",
                    zorder=4,
                )
                data.append({k: v for k, v in row.items() if k != "header"})
            ys = [r["y"] for r in rows]
            ax.set_ylim(len(rows) - 0.4, -0.6)
            ax.set_yticks(ys, [r["label"] for r in rows])
            for tick, row in zip(ax.get_yticklabels(), rows):
                if row["header"]:
                    tick.set_fontweight("bold")
            ax.tick_params(axis="y", length=0)
            ax.grid(axis="y", visible=False)
            right = ax.secondary_yaxis("right")
            right.set_yticks(ys, [_right_label(r) for r in rows])
            right.tick_params(axis="y", length=0, labelsize=8)
            right.spines["right"].set_visible(False)
            if len(rows) > TALL_ROWS:  # a reader far down a tall forest still sees the scale
                ax.tick_params(axis="x", labeltop=True, top=True)
            ax.set_xlabel(f"{analysis.metric.label} ratio {side.candidate} / {side.baseline} (log scale)")
            ax.set_title(f"{side.candidate} vs {side.baseline}", loc="left")
        handles = [
            Patch(
                color=style.BAND_COLOUR,
                alpha=0.45,
                label=f"{margin_text(analysis.margin)} equivalence margin",
            ),
            Line2D([], [], color="#555555", linewidth=1.8, label="95 % CI"),
        ]
        handles += [
            Line2D(
                [],
                [],
                marker=m,
                color="#555555",
                linestyle="none",
                markerfacecolor="white" if word == "inconclusive" else "#555555",
                label=word,
            )
            for word, m in style.VERDICT_MARKERS.items()
        ]
        style.legend(fig, handles, fontsize=7.5, handlelength=1.4, columnspacing=1.0)
        better = "higher" if analysis.metric.higher_is_better else "lower"
        correction = CORRECTIONS[analysis.correction]
        n = style.n_text([r[k] for r in data for k in ("n_baseline", "n_candidate")], "rounds")
        style.stamp(
            fig,
            [
                f"ratio of means; {better} is better \u00b7 CI: hull of bootstrap over rounds and Fieller "
                f"\u00b7 verdicts at alpha {analysis.alpha:g}, {correction} across points",
                f"{n} per target and point \u00b7 {dataset.facts()}",
            ],
            dataset.emulated_label,
        )
    candidates = ", ".join(s.candidate for s in sides)
    return Plotted(
        name=f"forest-{analysis.metric.name}",
        title=f"Ratio forest: {candidates} / {sides[0].baseline}, {analysis.metric.label}",
        caption=(
            f"Each row is one point: the ratio of mean {analysis.metric.label} (candidate / baseline) "
            f"with its 95 % confidence interval; the grey band is the {margin_text(analysis.margin)} "
            "equivalence margin, the marker shape the verdict (faster/slower: a significant difference; "
            "\u201cbeyond margin\u201d: its whole CI lies outside the band)."
        ),
        figure=fig,
        data=data,
    )
