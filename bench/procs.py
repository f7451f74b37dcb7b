"""Processes blkcmp starts and must not leave behind: finding them by a marker on their command
line, killing them until they are gone, and turning SIGTERM/SIGHUP into exceptions so every
`finally` (teardown, unmount, QEMU shutdown) runs when blkcmp itself is told to stop."""

from __future__ import annotations

import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def processes_with(marker: str) -> list[int]:
    """Live processes (not zombies, not this one) whose command line contains `marker`.

    fio's job processes and QEMU run in sessions of their own, so neither a death signal nor a
    signal to a process group reaches them; a marker on their command line (a job file path, a
    guest token) does."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if marker in cmdline:
            found.append(int(proc.name))
    return found


def kill_all_with(marker: str, timeout_s: float) -> list[int]:
    """SIGKILL every process carrying `marker` until none is left; returns the survivors."""
    deadline = time.monotonic() + timeout_s
    while pids := processes_with(marker):
        if time.monotonic() > deadline:
            return pids
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    return []


@contextmanager
def signals_raise(make_exception: Callable[[int], BaseException]) -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise `make_exception(signum)` (main thread only:
    Python delivers signals there, and other threads cannot install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        raise make_exception(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
