"""What a figure function returns: the figure with the numbers it drew, or why it drew nothing.

Tests read `data` (the plotted values) instead of pixels; the report reads `title` and
`caption`; only the renderer writes files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from matplotlib.figure import Figure


@dataclass
class Plotted:
    name: str  # file stem, e.g. "forest-iops"
    title: str
    caption: str  # one or two sentences: what the figure shows and how to read it
    figure: Figure | None  # None once drawn elsewhere (catalogue.build(as_svg=True)): see svg
    data: list[dict] = field(default_factory=list)  # one dict per plotted element
    svg: str | None = None  # the figure as SVG text, when it was drawn in another process


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str  # one line, e.g. "scaling vs iodepth: only iodepth 1 was run"
