"""The state file: every device or file blkcmp creates, so `blkcmp cleanup` can remove it.

A resource is recorded *before* it is created and forgotten only after it is removed, so a
SIGKILL at any moment leaves an entry for anything that may exist. Entries carry the creating
process id: `cleanup` removes only resources whose creator is gone (or all, with force), and
never anything that is not in the file. Lives in /run/blkcmp (tmpfs: devices do not survive a
reboot, and neither does the file); $BLKCMP_STATE_DIR overrides it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from bench.procs import kill_all_with


def state_dir() -> Path:
    return Path(os.environ.get("BLKCMP_STATE_DIR", "/run/blkcmp"))


def _path() -> Path:
    return state_dir() / "state.json"


@contextlib.contextmanager
def _locked() -> Iterator[dict]:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.exists() else {"resources": {}}
        except (OSError, json.JSONDecodeError):
            data = {"resources": {}}
        before = json.dumps(data, sort_keys=True)
        yield data
        if json.dumps(data, sort_keys=True) != before:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data, indent=2))
            os.replace(tmp, path)


def register(kind: str, data: dict) -> str:
    rid = uuid.uuid4().hex[:12]
    with _locked() as st:
        st["resources"][rid] = {"kind": kind, "pid": os.getpid(), "data": data,
                                "created": datetime.now(timezone.utc).isoformat()}
    return rid


def update(rid: str, data: dict) -> None:
    with _locked() as st:
        if rid in st["resources"]:
            st["resources"][rid]["data"].update(data)


def forget(rid: str) -> None:
    with _locked() as st:
        st["resources"].pop(rid, None)


def resources() -> dict[str, dict]:
    with _locked() as st:
        return dict(st["resources"])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# kind -> function that removes such a resource given its recorded data (registered by the
# target modules, so cleanup needs no knowledge of drivers).
CLEANERS: dict[str, Callable[[dict], None]] = {}


def cleaner(kind: str):
    def wrap(fn: Callable[[dict], None]) -> Callable[[dict], None]:
        CLEANERS[kind] = fn
        return fn
    return wrap


@cleaner("processes")
def kill_processes(data: dict) -> None:
    """SIGKILL every process still running with `marker` on its command line; wait until gone.

    fio forks a process per job, which calls setsid(): neither PR_SET_PDEATHSIG on fio nor its
    process group reaches it, so after a SIGKILLed blkcmp it runs on for the rest of `runtime`,
    holding the device open. The marker is the run's job file path, which only that run's fio
    processes have on their command line.
    """
    marker = str(data["marker"])
    if not marker:
        return
    survivors = kill_all_with(marker, timeout_s=15)
    if survivors:
        raise RuntimeError(f"processes survive SIGKILL: pids {survivors}")


def cleanup(force: bool = False) -> list[tuple[str, str, str]]:
    """Remove leftovers; returns (kind, description, outcome) per resource considered."""
    import bench.targets  # noqa: F401  (registers every target family's cleaner)

    report = []
    for rid, entry in sorted(resources().items(), key=lambda kv: kv[1]["created"], reverse=True):
        if not force and pid_alive(entry["pid"]) and entry["pid"] != os.getpid():
            report.append((entry["kind"], json.dumps(entry["data"]), f"kept: pid {entry['pid']} still running"))
            continue
        fn = CLEANERS.get(entry["kind"])
        if fn is None:
            report.append((entry["kind"], json.dumps(entry["data"]), "unknown kind, left alone"))
            continue
        try:
            fn(entry["data"])
        except Exception as exc:  # report and keep the entry so a later cleanup can retry
            report.append((entry["kind"], json.dumps(entry["data"]), f"failed: {exc}"))
            continue
        forget(rid)
        report.append((entry["kind"], json.dumps(entry["data"]), "removed"))
    return report
