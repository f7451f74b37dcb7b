"""The resource ledger (the state file): every device, file, temporary directory and process
blkcmp creates, so `blkcmp cleanup` can remove it.

A resource is recorded *before* it is created and forgotten only after it is removed, so a
SIGKILL at any moment leaves an entry for anything that may exist. Entries carry the creating
process id and its start time: `cleanup` removes only resources whose creator is gone (or all,
with force), and never anything that is not in the file. Processes are killed only when they are
the ones recorded (bench.procs.recorded_processes: pid and start time, program name, exact
command line), never because their command line mentions a path. Lives in /run/blkcmp (tmpfs:
devices do not survive a reboot, and neither does the file); $BLKCMP_STATE_DIR overrides it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from bench.procs import kill_recorded, recorded_processes, same_process, start_time


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
        st["resources"][rid] = {
            "kind": kind,
            "pid": os.getpid(),
            "pid_start": start_time(os.getpid()),
            "data": data,
            "created": datetime.now(UTC).isoformat(),
        }
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


def creator_alive(entry: dict) -> bool:
    """Is the process that recorded `entry` still running (the same one, not a pid reuse)?"""
    return same_process(entry["pid"], entry.get("pid_start"))


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
    """SIGKILL the processes a record describes (bench.procs.recorded_processes) until gone.

    fio forks a process per job, which calls setsid(): neither PR_SET_PDEATHSIG on fio nor its
    process group reaches it, so after a SIGKILLed blkcmp it runs on for the rest of `runtime`,
    holding the device open. Only processes blkcmp started are matched: the recorded pid with
    its start time, or the recorded program with exactly the recorded command line started
    since; never one that merely mentions the job file."""
    survivors = kill_recorded(data, timeout_s=15)
    if survivors:
        raise RuntimeError(f"processes survive SIGKILL: pids {survivors}")


def processes_left(data: dict) -> bool:
    return bool(recorded_processes(data))


TEMP_PREFIX = "blkcmp-"


@cleaner("temp-dir")
def _remove_temp_dir(data: dict) -> None:
    path = Path(data["path"])
    if not path.name.startswith(TEMP_PREFIX):  # never anything blkcmp did not name
        raise RuntimeError(f"{path}: not a blkcmp temporary directory")
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        raise RuntimeError(f"{path}: could not be removed")


@contextlib.contextmanager
def temporary_directory(prefix: str) -> Iterator[Path]:
    """A directory under the temp dir ($TMPDIR), recorded here before it exists and removed on
    the way out, so `blkcmp cleanup` removes it after a SIGKILL. `prefix` starts with blkcmp-."""
    assert prefix.startswith(TEMP_PREFIX), prefix
    path = Path(tempfile.gettempdir()) / f"{prefix}{uuid.uuid4().hex[:12]}"
    rid = register("temp-dir", {"path": str(path)})
    try:
        path.mkdir(mode=0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        forget(rid)


def cleanup(force: bool = False) -> list[tuple[str, str, str]]:
    """Remove leftovers; returns (kind, description, outcome) per resource considered."""
    # Every kind's cleaner must be known before anything is removed: the device families
    # register theirs when imported.
    from bench import vm_nvme  # noqa: F401 — registers the cleaner of QEMU NVMe backing files
    from bench.targets import load_families

    load_families()

    report = []
    for rid, entry in sorted(resources().items(), key=lambda kv: kv[1]["created"], reverse=True):
        if not force and creator_alive(entry) and entry["pid"] != os.getpid():
            report.append(
                (entry["kind"], json.dumps(entry["data"]), f"kept: pid {entry['pid']} still running")
            )
            continue
        fn = CLEANERS.get(entry["kind"])
        if fn is None:
            report.append((entry["kind"], json.dumps(entry["data"]), "unknown kind, left alone"))
            continue
        try:
            fn(entry["data"])
        except Exception as exc:  # noqa: BLE001 — report and keep the entry so a later cleanup can retry
            report.append((entry["kind"], json.dumps(entry["data"]), f"failed: {exc}"))
            continue
        forget(rid)
        report.append((entry["kind"], json.dumps(entry["data"]), "removed"))
    return report
