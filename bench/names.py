"""Names that become file names: campaign names (the campaign directory) and target names (run
directories, fio job names, device and backing-file names). One rule for both, checked wherever a
name enters blkcmp (a workload, `ingest --target`, campaign creation)."""

from __future__ import annotations

import re

from bench.errors import UsageError, shorten

MAX_LENGTH = 32
# Starts with a letter or digit: no `.`/`..`, no hidden directories, nothing that reads as an option.
SAFE_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_LENGTH - 1}}}")
RULE = (f"letters, digits, '_', '-', '.' (at most {MAX_LENGTH}, starting with a letter or digit)")


def name_problem(name: str) -> str | None:
    """Why `name` cannot name a campaign or target, or None when it can."""
    if SAFE_NAME.fullmatch(name):
        return None
    return f"expected {RULE}, found {shorten(repr(name))}"


def require_safe_name(name: str, what: str) -> str:
    """`name`, or a UsageError saying what is wrong with it (`what`: e.g. "--target")."""
    problem = name_problem(name)
    if problem:
        raise UsageError(f"{what}: {problem}")
    return name


def safe_name_from(text: str, default: str) -> str:
    """A safe name made from arbitrary text (a job name, a directory name), or `default`."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", text).lstrip("._-")[:MAX_LENGTH]
    return name if SAFE_NAME.fullmatch(name) else default
