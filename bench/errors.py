"""The kinds of failure blkcmp reports, the exit codes they map to, and how user input is echoed.

Every error a user can cause ends as one line on stderr: `UsageError` (bad input or usage,
exit 2) or `RunError` (something failed while running, exit 1). `StorageError` is the RunError
of a results directory that cannot be written (full, read-only, no permission): it names the
path. Nothing else should reach the top level; if it does, the CLI still prints one line and
exits 1.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

# Where an error line quotes what the user gave (a name, a value, a path), it quotes at most this
# much: a 200,000-character option value must not become a 200,000-character error line.
ECHO_LIMIT = 80
# No error line is longer than this, whatever it quotes.
LINE_LIMIT = 1000

# errno values that say "this filesystem cannot take the write", never "blkcmp has a bug".
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES})
# The same for SQLite (primary result codes): SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR,
# SQLITE_FULL, SQLITE_CANTOPEN.
SQLITE_STORAGE_CODES = frozenset({3, 8, 10, 13, 14})


class BlkcmpError(Exception):
    exit_code = 1


class UsageError(BlkcmpError):
    """Bad input: a workload file, an option, a path. Nothing has been written."""

    exit_code = 2


class RunError(BlkcmpError):
    """A failure while running: a device, fio, a kernel build, a VM."""

    exit_code = 1


class StorageError(RunError):
    """A file blkcmp must write cannot be written: the disk is full or the filesystem read-only."""


def shorten(text: object, limit: int = ECHO_LIMIT) -> str:
    """`text` as it may appear in an error line: at most `limit` characters of it, one line."""
    text = str(text).replace("\n", "\\n").replace("\r", "\\r")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def shorten_line(line: str) -> str:
    return shorten(line, LINE_LIMIT)


def is_storage_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno in STORAGE_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in SQLITE_STORAGE_CODES
    return False


def storage_error(
    exc: OSError | sqlite3.Error, path: Path | str | None = None, hint: str = ""
) -> StorageError:
    """The one-line error for a write that the filesystem refused, naming the path."""
    where = path if path is not None else getattr(exc, "filename", None) or "results"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return StorageError(f"{shorten(where, 300)}: cannot write: {reason}" + (f"; {hint}" if hint else ""))


def quoted(value: object, limit: int = ECHO_LIMIT) -> str:
    """User input quoted as Python would (repr for strings), cut to `limit` characters with the
    total length said: for messages that must show exactly what was written, spaces included."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    head = repr(text[:limit]) if isinstance(value, str) else text[:limit]
    return f"{head}… ({len(text)} characters)"
