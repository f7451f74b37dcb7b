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
