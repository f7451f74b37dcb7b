"""Steady state of preconditioned targets: the tracked metric round by round, the window the
SNIA PTS check (bench.stats.steady_state) judged, its least-squares line and the ±band around it.

One panel per preconditioned target of each campaign (`precondition: {steady_state: …}` in the
workload, record in the campaign's precondition record). A reader sees whether the device had
settled (rounds inside the band, the line flat) or was still falling when the window was taken.
Campaigns without steady-state rounds skip the figure with a note.
"""

from __future__ import annotations

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bench import store
from bench.plots import layout, style
from bench.plots.data import Dataset
from bench.plots.result import Plotted, Skipped

NAME = "steady-state"
COLUMNS = 2


def records(dataset: Dataset) -> list[tuple[str, dict]]:
    """(panel title, steady-state record) for every preconditioned target of the campaigns."""
    several = len(dataset.campaigns) > 1
    out = []
    for facts in dataset.campaigns:
        record = store.Campaign(facts.path).precondition_record() or {}
        for target, rec in (record.get("targets") or {}).items():
            if rec.get("steady_state"):
                out.append((f"{facts.name}: {target}" if several else target, rec["steady_state"]))
    return out


def steady_state_rounds(
    panels: list[tuple[str, dict]], emulated_label: str | None = None, facts: str = ""
) -> Plotted | Skipped:
    if not panels:
        return Skipped(
            NAME,
            "steady state: no preconditioning rounds in these campaigns "
            "(precondition: {steady_state: …} in the workload)",
        )
    ncols = layout.columns_for(len(panels), COLUMNS)
    nrows = layout.rows_for(len(panels), ncols)
    data = []
    with style.rc_context():
        fig = style.new_figure(0.8 + 2.4 * nrows, footer_lines=2, banner=emulated_label is not None)
        axes = layout.grid(fig, len(panels), ncols)
        for ax, (title, rec) in zip(axes, panels):
            values = rec["rounds"]
            rounds = list(range(1, len(values) + 1))
            check = rec["check"]
            ax.plot(rounds, values, marker="o", color="#444444", linewidth=1.0, markersize=3.5)
            entry = {"panel": title, "rounds": values, "steady": rec["steady"], "window": None}
            if check:
                first = check["start"] + 1
                last = first + rec["window"] - 1
                band = rec["thresholds"]["band"] * check["mean"]
                xs = [first, last]
                line = [check["intercept"], check["intercept"] + check["slope"] * (rec["window"] - 1)]
                colour = "#1b7837" if rec["steady"] else "#b2182b"
                ax.axvspan(first - 0.4, last + 0.4, color=colour, alpha=0.08, linewidth=0)
                ax.fill_between(
                    xs, [y - band for y in line], [y + band for y in line], color=colour, alpha=0.2
                )
                ax.plot(xs, line, color=colour, linewidth=1.6)
                ax.axhline(check["mean"], xmin=0, xmax=1, color=colour, linewidth=0.6, linestyle=":")
                entry |= {"window": [first, last], "line": line, "band": band, "mean": check["mean"]}
            ax.set_title(f"{title} — {'steady' if rec['steady'] else 'not steady'}", fontsize=8.5)
            ax.set_xlabel("round")
            ax.set_ylabel(rec.get("metric", "iops"))
            ax.yaxis.set_major_formatter(style.si_formatter())
            ax.set_ylim(bottom=0)
            data.append(entry)
        style.legend(
            fig,
            [
                Line2D([], [], color="#444444", marker="o", markersize=3.5, label="round average"),
                Patch(color="#1b7837", alpha=0.3, label="steady window: line ± band"),
                Patch(color="#b2182b", alpha=0.3, label="last window, not steady"),
            ],
        )
        first_rec = panels[0][1]
        t = first_rec["thresholds"]
        style.stamp(
            fig,
            [
                f"SNIA PTS steady state over {first_rec['window']} rounds: excursion ≤ "
                f"{t['max_excursion']:.0%}, line's change ≤ {t['max_slope_change']:.0%}, "
                f"every round within ±{t['band']:.0%} of the line (of the window's mean)",
                facts,
            ],
            emulated_label,
        )
    return Plotted(
        NAME,
        "Steady state",
        "The tracked metric per preconditioning round; the shaded window is the one the SNIA "
        "check judged, with its least-squares line and the ±band every round must stay in.",
        fig,
        data,
    )
