"""Matrix points as fio users write them: one spelling per setting, numeric order, short labels.

fio reads `iodepth=01` as 1, and `bs=4096`, `4k`, `4K` and `4KiB` as the same 4096 bytes; fio
versions and the tools that wrote the job files spell them differently.  `normalise` gives each
value one spelling — integers without padding, sizes the way fio users write them (`4k`, `128k`,
`1m`) — so equal settings are one point whatever produced them, and `sort_key` orders points by
number (numjobs 1, 2, 16, 32), never as text (1, 16, 2, 32).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Options fio reads as plain integers (zero padding and all).
INTEGER_OPTIONS = frozenset(
    {
        "iodepth",
        "numjobs",
        "rwmixread",
        "rwmixwrite",
        "iodepth_batch",
        "iodepth_batch_submit",
        "iodepth_batch_complete",
        "iodepth_batch_complete_min",
        "iodepth_batch_complete_max",
        "iodepth_low",
        "nrfiles",
        "direct",
        "buffered",
        "fsync",
        "fdatasync",
        "hipri",
        "sqthread_poll",
        "fixedbufs",
        "registerfiles",
        "group_reporting",
        "thread",
    }
)
# Options holding sizes in bytes with fio's unit suffixes (kb_base=1024, fio's default).
SIZE_OPTIONS = frozenset({"bs", "blocksize", "ba", "blockalign", "bs_unaligned"})
# The layout keys every table and figure orders by, in this order.
ORDER_KEYS = ("rw", "bs", "iodepth", "numjobs", "rwmixread")

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*")


def size_bytes(text: Any) -> float:
    """fio's size spelling ('4k', '128K', '1m', '4096', '4KiB', '4kb') in bytes; NaN if unreadable."""
    match = _SIZE.fullmatch(str(text).lower())
    if not match:
        return math.nan
    return float(match.group(1)) * _UNITS[match.group(2)]


def size_text(n_bytes: float) -> str:
    """Bytes the way fio users write them: 4096 -> '4k', 1048576 -> '1m', 512 -> '512'."""
    if not math.isfinite(n_bytes) or n_bytes != int(n_bytes):
        return str(n_bytes)
    n = int(n_bytes)
    for suffix in ("p", "t", "g", "m", "k"):
        unit = _UNITS[suffix]
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def _normal_size(value: Any) -> str:
    # bs may name a size per direction ("4k,8k") or a range ("4k-64k"): normalise each part
    parts = re.split(r"([,:-])", str(value).strip())
    out = []
    for part in parts:
        if part in (",", ":", "-") or part == "":
            out.append(part)
            continue
        n = size_bytes(part)
        out.append(part if math.isnan(n) else size_text(n))
    return "".join(out)


def normal_value(key: str, value: Any) -> Any:
    """One spelling of a fio option's value (unknown spellings are kept as they are)."""
    if value is None or isinstance(value, bool):
        return value
    if key in INTEGER_OPTIONS:
        text = str(value).strip()
        if re.fullmatch(r"[+]?\d+", text):
            return int(text, 10)
        return value
    if key in SIZE_OPTIONS:
        return _normal_size(value)
    if key in ("rw", "readwrite") and isinstance(value, str):
        return value.strip().lower()
    return value


def normalise(options: Mapping[str, Any]) -> dict[str, Any]:
    """The point with every value in its one spelling; `blocksize` and `readwrite` become fio's
    short names `bs` and `rw`."""
    alias = {"blocksize": "bs", "readwrite": "rw"}
    out: dict[str, Any] = {}
    for key, value in options.items():
        name = alias.get(key, key)
        out.setdefault(name, normal_value(name, value))
    return out


def key_of(options: Mapping[str, Any]) -> str:
    """The identity of a point across campaigns: `rw=randread,bs=4k,iodepth=1`."""
    return ",".join(f"{k}={v}" for k, v in normalise(options).items()) or "default"


# The matrix keys figures and tables lay points out by, shown by value alone in a label.
LAYOUT_KEYS = ("rw", "bs", "iodepth", "numjobs")
_SHORT = {"iodepth": "qd{}", "numjobs": "j{}"}


def label(options: Mapping[str, Any], without: Iterable[str] = ()) -> str:
    """A point for people: `randread 4k qd8 j2` (other keys as `key=value`), keys in `without`
    left out; short enough for a tick label or a table cell."""
    skip = set(without)
    parts = [
        _SHORT.get(k, "{}").format(v) if k in LAYOUT_KEYS else f"{k}={v}"
        for k, v in normalise(options).items()
        if k not in skip
    ]
    return " ".join(parts) or "default"


def value_order(key: str, value: Any) -> tuple:
    """Sort key of one value: sizes by bytes, integers as numbers, anything else as text after."""
    if key in SIZE_OPTIONS:
        n = size_bytes(str(value).split(",")[0].split("-")[0])
        return (0, n, str(value)) if not math.isnan(n) else (1, 0.0, str(value))
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+(?:\.\d+)?", text):
        return (0, float(text), text)
    return (1, 0.0, text)


def sort_key(options: Mapping[str, Any], rw_order: Mapping[str, int] | None = None) -> tuple:
    """Reading order: rw (first seen first, or as given), then bs, iodepth, numjobs, rwmixread
    numerically, then any other option."""
    point = normalise(options)
    rw = str(point.get("rw", ""))
    head = (rw_order.get(rw, len(rw_order)) if rw_order is not None else 0, rw)
    ordered = tuple(value_order(k, point[k]) if k in point else (-1, 0.0, "") for k in ORDER_KEYS[1:])
    rest = tuple((k, value_order(k, v)) for k, v in point.items() if k not in ORDER_KEYS)
    return head + ordered + rest


def sorted_keys(points: Iterable[Mapping[str, Any]]) -> list[str]:
    """Point keys in reading order; rw values keep the order they first appear in."""
    points = list(points)
    rw_order: dict[str, int] = {}
    for p in points:
        rw_order.setdefault(str(normalise(p).get("rw", "")), len(rw_order))
    unique = {key_of(p): p for p in points}
    return sorted(unique, key=lambda k: sort_key(unique[k], rw_order))
