"""Small multiples: splitting many panels into pages and laying panels out on a grid.

A 120-point matrix does not fit one readable figure; figures with one panel (or row) per point
are cut into pages of a fixed size, named name-1, name-2, ... (just `name` when one page does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def pages(items: Sequence[T], per_page: int) -> list[list[T]]:
    return [list(items[i : i + per_page]) for i in range(0, len(items), per_page)] or [[]]


def page_name(name: str, index: int, count: int) -> str:
    return name if count == 1 else f"{name}-{index + 1}"


def page_title(title: str, index: int, count: int) -> str:
    return title if count == 1 else f"{title} ({index + 1}/{count})"


def grid(fig, n: int, ncols: int, **kwargs) -> list:
    """n axes on a grid of `ncols` columns; the unused cells of the last row are hidden."""
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    # shared axes hide inner tick labels; a panel above an empty cell is a bottom panel too
    for ax in axes[max(0, n - ncols) : n]:
        ax.xaxis.set_tick_params(labelbottom=True)
    return axes[:n]


def columns_for(n: int, most: int) -> int:
    """Columns for n panels: at most `most`, and 2 x 2 rather than 3 + 1."""
    if n == 4 and most >= 2:
        return 2
    return max(1, min(most, n))


def rows_for(n: int, ncols: int) -> int:
    return max(1, math.ceil(n / max(1, min(ncols, n))))
