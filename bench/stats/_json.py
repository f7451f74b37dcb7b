"""JSON-safe conversion of the result dataclasses.

Results end up in JSON files that other tools (and people) read, and JSON has no NaN or
infinity: a statistic that does not exist (the CI of one sample, an unbounded Fieller
interval) becomes null rather than an invalid token or a made-up number.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """Return `value` as plain JSON types; non-finite floats become None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    raise TypeError(f"cannot make {type(value).__name__} JSON-safe")


class JsonDataclass:
    """Mixin for the frozen result dataclasses: `to_dict()` gives JSON-safe values."""

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)
