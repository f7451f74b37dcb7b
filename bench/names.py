"""Names that become file names: campaign names (the campaign directory) and target names (run
directories, fio job names, device and backing-file names). One rule for both, checked wherever a
name enters blkcmp (a workload, `ingest --target`, campaign creation)."""

from __future__ import annotations

import re
from typing import Any

from bench.errors import UsageError, quoted

MAX_TARGET_NAME = 32
MAX_CAMPAIGN_NAME = 64
MAX_LENGTH = MAX_TARGET_NAME  # a name made up by blkcmp itself fits either
# Starts with a letter or digit: no `.`/`..`, no hidden directories, nothing that reads as an option.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def name_problem(value: Any, what: str = "target", limit: int = MAX_TARGET_NAME) -> str | None:
    """Why `value` cannot be a campaign or target name (None when it can): letters, digits,
    '_', '-', '.', starting with a letter or digit, at most `limit` characters."""
    if isinstance(value, str) and len(value) <= limit and SAFE_NAME.fullmatch(value):
        return None
    return (
        f"expected a {what} name of letters, digits, '_', '-', '.' (at most {limit}, "
        f"starting with a letter or digit), found {quoted(value)}"
    )


def require_safe_name(name: str, what: str, kind: str = "target", limit: int = MAX_TARGET_NAME) -> str:
    """`name`, or a UsageError saying what is wrong with it (`what`: e.g. "--target")."""
    problem = name_problem(name, kind, limit)
    if problem:
        raise UsageError(f"{what}: {problem}")
    return name


def safe_name_from(text: str, default: str) -> str:
    """A safe name made from arbitrary text (a job name, a directory name), or `default`."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip("._-")[:MAX_LENGTH]
    return name if SAFE_NAME.fullmatch(name) else default
