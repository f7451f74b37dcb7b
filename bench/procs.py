"""Processes blkcmp starts and must not leave behind: finding them by what was recorded when
they were started (or by a marker on their command line), killing them until they are gone, and
turning SIGTERM/SIGHUP into exceptions so every `finally` (teardown, unmount, QEMU shutdown)
runs when blkcmp itself is told to stop."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.env import require_psutil

psutil = require_psutil()  # missing: one line saying how to get it, not a traceback

# psutil's start times come from the boot time, which /proc/stat gives in whole seconds: a
# process can appear to have started up to a second before it really did.
START_SLACK_S = 2.0


def start_time(pid: int) -> float | None:
    """When process `pid` started (psutil's create_time), or None when there is none."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def same_process(pid: int, start: float | None) -> bool:
    """Is `pid` still the process that had start time `start` (not a reuse of its number)?"""
    now = start_time(pid)
    return now is not None and (start is None or abs(now - start) < 0.01)


def _live(proc: psutil.Process) -> bool:
    try:
        return proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.Error:
        return False


def recorded_processes(record: dict) -> list[psutil.Process]:
    """The live processes a state-file record describes, and only those.

    A record names the program (`names`: fio, a QEMU binary) and holds what blkcmp knew when it
    started it: the exact command line (`argv`), the time it was recorded (`after`), and once
    started its `pid` with its start time. It matches the process with that pid *and* start time,
    and processes of that name with exactly that command line started since (fio's job processes
    are forked without exec, so they carry fio's command line; they leave its session, so
    nothing else reaches them). A process merely mentioning the job file (`tail -f` of the job file),
    or a later process that reuses the pid, does not match. Records of older versions hold
    only a `marker`: they match processes of the name that have it as one argument."""
    names = set(record.get("names") or ("fio",))
    argv, after, marker = record.get("argv"), record.get("after"), record.get("marker")
    found: dict[int, psutil.Process] = {}
    pid = record.get("pid")
    if pid is not None and same_process(pid, record.get("start")):
        try:
            proc = psutil.Process(pid)
            if proc.name() in names and _live(proc):
                found[pid] = proc
        except psutil.Error:
            pass
    if not argv and not marker:
        return list(found.values())
    for proc in psutil.process_iter(["name", "cmdline", "create_time"]):
        info = proc.info
        if proc.pid == os.getpid() or info["name"] not in names or not info["cmdline"]:
            continue
        if argv:
            if info["cmdline"] != list(argv):
                continue
            if after is not None and (info["create_time"] or 0) < after - START_SLACK_S:
                continue
        elif str(marker) not in info["cmdline"]:
            continue
        if _live(proc):
            found[proc.pid] = proc
    return list(found.values())


def kill_recorded(record: dict, timeout_s: float) -> list[int]:
    """SIGKILL every process of the record until none is left; returns the survivors' pids."""
    deadline = time.monotonic() + timeout_s
    while procs := recorded_processes(record):
        if time.monotonic() > deadline:
            return [p.pid for p in procs]
        for proc in procs:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=0.2)
    return []


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


STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@contextmanager
def stop_signals_held() -> Iterator[set]:
    """Hold Ctrl-C, SIGTERM and SIGHUP while starting a process; they arrive when the block ends.

    Inside fork(), Python runs at-fork handlers (logging registers some) and *ignores* an
    exception raised there: a Ctrl-C landing in that window was lost and the campaign ran on.
    Held, it is raised after the child exists and has been recorded. Yields the signal mask to
    restore in the child before it execs (a blocked mask would be inherited)."""
    if threading.current_thread() is not threading.main_thread():
        yield signal.pthread_sigmask(signal.SIG_BLOCK, [])
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield previous
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def signals_raise(
    make_exception: Callable[[int], BaseException],
    signals: frozenset[int] | tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP),
) -> Iterator[None]:
    """While inside, `signals` (default SIGTERM and SIGHUP) raise `make_exception(signum)` (main
    thread only: Python delivers signals there, and other threads cannot install handlers).

    The signal is also remembered (`raise_if_stopped`): an exception raised while Python runs
    its at-fork handlers (any subprocess start not inside `stop_signals_held`) is printed and
    dropped, and the campaign would run on; a loop that checks between steps stops anyway."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        _stopped.append(signum)
        raise make_exception(signum)

    _stopped.clear()
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# Stop signals that arrived inside `signals_raise`, kept even when their exception was lost.
_stopped: list[int] = []


def raise_if_stopped(make_exception: Callable[[int], BaseException]) -> None:
    """Raise for a stop signal that arrived but whose exception was swallowed (see signals_raise)."""
    if _stopped:
        raise make_exception(_stopped[0])
