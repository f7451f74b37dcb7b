"""The two kinds of failure blkcmp reports, and the exit codes they map to.

Every error a user can cause ends as one line on stderr: `UsageError` (bad input or usage,
exit 2) or `RunError` (something failed while running, exit 1). Nothing else should reach the
top level; if it does, the CLI still prints one line and exits 1.
"""


class BlkcmpError(Exception):
    exit_code = 1


class UsageError(BlkcmpError):
    """Bad input: a workload file, an option, a path. Nothing has been written."""

    exit_code = 2


class RunError(BlkcmpError):
    """A failure while running: a device, fio, a kernel build, a VM."""

    exit_code = 1


MAX_ECHO = 80    # characters of user input repeated in an error line
MAX_LINE = 1000  # characters of any one error line (the last guard, in the CLI)


def shorten(value, limit: int = MAX_ECHO) -> str:
    """User input as an error line repeats it: repr(), cut to `limit` characters with the total
    length said, so a 200,000-character value never becomes a 200,000-character line."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    head = repr(text[:limit]) if isinstance(value, str) else text[:limit]
    return f"{head}… ({len(text)} characters)"


def clip(line: str, limit: int = MAX_LINE) -> str:
    """One error line cut to `limit` characters (what the CLI prints, whatever produced it)."""
    return line if len(line) <= limit else f"{line[:limit]}… ({len(line)} characters)"
