"""The one look of every blkcmp figure: fonts, colours, units, ratio axes and the facts footer.

Colours come from the Okabe-Ito palette (safe for the common colour-vision deficiencies).  The C
driver (null_blk) and the Rust driver (rnull) always get the same two colours, whatever the
targets are called, so a figure pasted into a talk needs no legend-reading to tell them apart;
other targets take the rest of the palette in the order they first appear.  Everything that
decides how far a figure can be trusted (n, the CI level, the kernel, an emulated executor) is
printed on the figure itself, because figures travel without their captions.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Iterable, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: never a display, never a GUI toolkit

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, Formatter, FuncFormatter, NullLocator

from bench.stats.defaults import DEFAULT_MARGIN

# Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
DRIVER_COLOURS = {"null_blk": OKABE_ITO["blue"], "rnull": OKABE_ITO["vermillion"]}
# Yellow last: it is the palette's weakest on white.  Black is kept for reference marks.
OTHER_COLOURS = tuple(
    OKABE_ITO[n] for n in ("bluish_green", "orange", "reddish_purple", "sky_blue", "yellow")
)
REFERENCE_COLOUR = "#000000"
BAND_COLOUR = "#BBBBBB"
EMULATED_COLOUR = "#B00020"
FOOTER_COLOUR = "#444444"

# Verdicts are told apart by marker shape and a word, never by colour alone.
VERDICT_MARKERS = {"faster": "^", "slower": "v", "equivalent": "o", "inconclusive": "D"}

WIDTH_IN = 7.5  # fits a paper column pair, a slide, or a mail attachment preview
FOOTER_LINE_IN = 0.17  # vertical room per footer line
FOOTER_CHARS_PER_IN = 16  # 7.5 pt DejaVu Sans: a safe count of characters per inch
BANNER_IN = 0.3
LEGEND_IN = 0.32

RC = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: identical glyphs on every machine
    "font.size": 9.5,
    "axes.titlesize": 10,
    "axes.labelsize": 9.5,
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "svg.fonttype": "path",  # text as outlines: an inline SVG needs no font from anywhere
    "svg.hashsalt": "blkcmp",  # no random salt in element ids (clip-path ids still vary per run)
    "savefig.dpi": 150,
}


def rc_context():
    """Every figure is built inside this, so global matplotlib settings never leak in or out."""
    return matplotlib.rc_context(RC)


def target_colours(targets: Iterable[tuple[str, str]]) -> dict[str, str]:
    """{target: colour} for (target, driver) pairs in their stable order.

    The first target of each of null_blk and rnull gets its driver's colour; a second target of
    the same driver (say, two null_blk configurations) is told apart with a palette colour.
    """
    pairs = list(targets)
    colours: dict[str, str] = {}
    taken: set[str] = set()
    for name, driver in pairs:
        colour = DRIVER_COLOURS.get(driver)
        if colour and colour not in taken:
            colours[name] = colour
            taken.add(colour)
    rest = [c for c in OTHER_COLOURS if c not in taken]
    i = 0
    for name, _ in pairs:
        if name not in colours:
            colours[name] = rest[i % len(rest)]
            i += 1
    return colours


def new_figure(
    height_in: float,
    *,
    footer_lines: int = 1,
    banner: bool = False,
    width_in: float = WIDTH_IN,
    legend: bool = True,
) -> Figure:
    """A constrained-layout figure with fixed bands for the banner, the legend and the footer.

    The bands are placed by hand (`legend`, `stamp`): matplotlib's "outside" legends ignore a
    banner and would sit on top of it.
    """
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    top_in = BANNER_IN if banner else 0.0
    bottom = (footer_lines * FOOTER_LINE_IN + 0.08) / height_in
    top = 1.0 - (top_in + (LEGEND_IN if legend else 0.0)) / height_in
    fig.get_layout_engine().set(rect=(0.0, bottom, 1.0, top - bottom))
    fig.blkcmp_legend_y = 1.0 - top_in / height_in  # where the legend band starts
    fig.blkcmp_layout_top = top
    return fig


def line_width(target_index: int) -> float:
    """The baseline's line is drawn wide and first, the others narrow on top: where two
    targets coincide both stay visible (a wide line with a narrow one inside it)."""
    return 2.6 if target_index == 0 else 1.3


def legend(fig: Figure, handles: list, **kwargs) -> None:
    """The figure's legend, centred in its band under the banner."""
    kwargs = {"ncol": len(handles), "frameon": False, "handlelength": 1.6, "columnspacing": 1.2} | kwargs
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, getattr(fig, "blkcmp_legend_y", 1.0)),
        **kwargs,
    )


def stamp(fig: Figure, lines: Sequence[str], emulated_label: str | None = None) -> None:
    """The facts footer (bottom left) and, for emulated executors, a red banner on top.

    Footer lines are wrapped to the figure's width and the plots moved up to make room, so a
    long line is never cut off at the edge.
    """
    height = fig.get_figheight()
    chars = max(40, int(fig.get_figwidth() * FOOTER_CHARS_PER_IN))
    wrapped = [part for line in lines for part in textwrap.wrap(line, chars, break_on_hyphens=False)]
    for i, line in enumerate(reversed(wrapped)):
        fig.text(
            0.01,
            (0.05 + i * FOOTER_LINE_IN) / height,
            line,
            fontsize=7.5,
            color=FOOTER_COLOUR,
            ha="left",
            va="bottom",
        )
    top = getattr(fig, "blkcmp_layout_top", 1.0)
    bottom = (len(wrapped) * FOOTER_LINE_IN + 0.08) / height
    fig.get_layout_engine().set(rect=(0.0, bottom, 1.0, top - bottom))
    if emulated_label:
        fig.text(
            0.5,
            1.0 - 0.06 / height,
            emulated_label.upper(),
            fontsize=9.5,
            fontweight="bold",
            color=EMULATED_COLOUR,
            ha="center",
            va="top",
        )


# ------------------------------------------------------------------------------------------
# Units


class SIFormatter(Formatter):
    """Tick labels like 250K, 1.5M: one prefix per axis and as many decimals as the tick step
    needs, so neighbouring ticks never read the same (1.04M, 1.045M, 1.05M)."""

    def __init__(self) -> None:
        self.scale, self.prefix, self.decimals = 1.0, "", 0

    def set_locs(self, locs) -> None:
        super().set_locs(locs)
        finite = [abs(v) for v in locs if math.isfinite(v)]
        largest = max(finite, default=0.0)
        self.scale, self.prefix = next(
            ((s, p) for p, s in (("G", 1e9), ("M", 1e6), ("K", 1e3)) if largest >= s), (1.0, "")
        )
        steps = [b - a for a, b in zip(locs, locs[1:]) if b > a]
        step = min(steps, default=largest or 1.0) / self.scale
        self.decimals = max(0, min(4, -math.floor(math.log10(step) + 1e-9))) if step > 0 else 0

    def __call__(self, value, pos=None) -> str:
        if value == 0:
            return "0"
        return f"{value / self.scale:.{self.decimals}f}{self.prefix}"


def si_formatter() -> Formatter:
    return SIFormatter()


def bandwidth_unit(largest: float) -> tuple[float, str]:
    """(divisor, unit) that keeps a bandwidth axis's tick labels short: MiB/s or GiB/s."""
    for unit, scale in (("GiB/s", 2**30), ("MiB/s", 2**20), ("KiB/s", 2**10)):
        if largest >= 2 * scale:
            return float(scale), unit
    return 1.0, "B/s"


def number_formatter() -> FuncFormatter:
    """Plain tick labels: 0.5, 10, 1,000 (µs, depths, job counts)."""
    return FuncFormatter(lambda v, _pos: f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}")


# ------------------------------------------------------------------------------------------
# Ratio axes: logarithmic (so 0.95 and 1.05 are equally far from 1) and centred on 1.

_NICE_STEPS = (0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5)
_DECADE_TICKS = (1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def ratio_limits(
    ratios: Iterable[float], bounds: Iterable[float] = (), margin: float = DEFAULT_MARGIN
) -> tuple[float, float]:
    """Limits symmetric around 1 in log space, always showing twice the equivalence margin.

    Every ratio is shown; CI bounds widen the axis by at most one more decade, so one wild
    interval cannot squash all the others (`clip_interval` marks the ones cut at the edge).
    """

    def reach_of(values: Iterable[float]) -> float:
        logs = [abs(math.log(v)) for v in values if v is not None and math.isfinite(v) and v > 0]
        return max(logs, default=0.0)

    reach = max(math.log1p(2 * margin), reach_of(ratios))
    reach = max(reach, min(reach_of(bounds), reach + math.log(10)))
    reach *= 1.12
    return math.exp(-reach), math.exp(reach)


def clip_interval(low: float, high: float, limits: tuple[float, float]) -> tuple[float, float, bool, bool]:
    """(low, high) cut to the axis limits, and whether each end was cut (or unbounded/non-positive)."""
    lo_lim, hi_lim = limits
    cut_low = not (math.isfinite(low) and low > lo_lim)
    cut_high = not (math.isfinite(high) and high < hi_lim)
    return (lo_lim if cut_low else low), (hi_lim if cut_high else high), cut_low, cut_high


def ratio_ticks(low: float, high: float) -> list[float]:
    if high <= 1.6:
        for step in _NICE_STEPS:
            ticks = [round(1 + k * step, 6) for k in range(-40, 41) if low <= 1 + k * step <= high]
            if len(ticks) <= 7:
                return ticks
    ticks = [t for t in _DECADE_TICKS if low <= t <= high]
    if len(ticks) > 9:
        ticks = [t for t in ticks if math.log10(t).is_integer()]
    return ticks


def ratio_axis(ax, limits: tuple[float, float], *, axis: str = "x") -> None:
    """A log-scale ratio axis between `limits`, with a reference line at 1 and plain labels."""
    low, high = limits
    ticks = ratio_ticks(low, high)
    if axis == "x":
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        target, line = ax.xaxis, ax.axvline
    else:
        ax.set_yscale("log")
        ax.set_ylim(low, high)
        target, line = ax.yaxis, ax.axhline
    target.set_major_locator(FixedLocator(ticks))
    target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    line(1.0, color=REFERENCE_COLOUR, linewidth=0.9, zorder=1)


def equivalence_band(ax, margin: float, *, axis: str = "x", label: str | None = None) -> None:
    span = ax.axvspan if axis == "x" else ax.axhspan
    span(1.0 - margin, 1.0 + margin, color=BAND_COLOUR, alpha=0.45, linewidth=0, zorder=0, label=label)


def n_text(counts: Iterable[int], unit: str = "runs") -> str:
    """'n = 5 runs' or 'n = 3-5 runs' per target and point."""
    values = sorted({int(c) for c in counts})
    if not values:
        return f"n = 0 {unit}"
    if len(values) == 1:
        return f"n = {values[0]} {unit}"
    return f"n = {values[0]}\u2013{values[-1]} {unit}"
