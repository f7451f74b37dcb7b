"""Campaign directories: the raw fio output of every run, beside an embedded SQLite index.

Layout of `results/<campaign>-<UTC timestamp>/`:
    campaign.json          name, creation time, source workload path, blkcmp version
    workload.yaml          the resolved workload (workload.source.yaml: the file as written)
    plan.json              every planned run, in order (grows when adaptive rounds are added)
    environment.json       where it ran (kernel-config.txt beside it when readable)
    index.sqlite           one row per planned run; one row per run x fio job x host;
                           one per time-series sample (`timeseries:` workloads)
    runs/<run_id>/         job.fio, fio.json (raw), fio.stderr, cpu.json, run.json,
                           timeseries_*.log (fio's IOPS/bandwidth/latency logs, if asked for)
The raw files are the truth; the index can always be rebuilt from them (`reindex_run`).
Every file is written atomically (temp file + rename) and a run directory appears only complete
(it is assembled under runs/.tmp-<run_id> and renamed), so an interruption at any moment leaves
either a finished run or nothing of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import bench
from bench.errors import RunError, UsageError
from bench.plan import Plan

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, campaign TEXT, target TEXT, point_key TEXT, point_json TEXT,
    repetition INTEGER, round INTEGER, position INTEGER,
    status TEXT NOT NULL DEFAULT 'planned', started TEXT, ended TEXT, host TEXT, kernel TEXT,
    error TEXT, iops REAL, read_iops REAL, write_iops REAL, mixed_iops REAL, bw_bytes REAL,
    clat_mean_ns REAL, clat_p50_ns REAL, clat_p99_ns REAL, clat_p999_ns REAL,
    usr_cpu REAL, sys_cpu REAL, ctx INTEGER, total_ios INTEGER,
    cpu_softirq_s REAL, cpu_system_s REAL, cpu_user_s REAL, cpu_irq_s REAL, block_softirqs INTEGER,
    fio_version TEXT, fio_cpu_s REAL, runtime_s REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT, job_index INTEGER, host TEXT, job TEXT, rw TEXT, bs TEXT, iodepth TEXT,
    numjobs TEXT, read_iops REAL, write_iops REAL, mixed_iops REAL, read_bw_bytes REAL,
    write_bw_bytes REAL, read_clat_mean_ns REAL, write_clat_mean_ns REAL,
    read_clat_p99_ns REAL, write_clat_p99_ns REAL, usr_cpu REAL, sys_cpu REAL, error INTEGER,
    fio_version TEXT, PRIMARY KEY (run_id, job_index)
);
CREATE TABLE IF NOT EXISTS timeseries (
    run_id TEXT, job INTEGER, metric TEXT, direction TEXT, time_ms INTEGER, value REAL
);
CREATE INDEX IF NOT EXISTS timeseries_run ON timeseries (run_id);
"""

RUN_METRIC_COLUMNS = ("iops", "read_iops", "write_iops", "mixed_iops", "bw_bytes", "clat_mean_ns",
                      "clat_p50_ns", "clat_p99_ns", "clat_p999_ns", "usr_cpu", "sys_cpu", "ctx",
                      "total_ios", "fio_cpu_s", "runtime_s")
# Columns added to `runs` after format 1 was first written: indexes that predate them get them.
_ADDED_RUN_COLUMNS = {"fio_cpu_s": "REAL", "runtime_s": "REAL"}


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# ------------------------------------------------------------------------------------------
# Atomic files


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def sync_filesystem(path: Path) -> None:
    """Flush to disk everything written on path's filesystem (syncfs(2)): one call for a batch
    of files written without fsync each, before the renames that make them appear."""
    import ctypes
    fd = os.open(path, os.O_RDONLY)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None:  # not glibc: flush every filesystem instead
            os.sync()
        elif syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs: {os.strerror(err)}", str(path))
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------
# The campaign directory


@dataclass
class Campaign:
    path: Path

    @property
    def name(self) -> str:
        return self.info().get("name", self.path.name)

    @property
    def runs_dir(self) -> Path:
        return self.path / "runs"

    @property
    def index_path(self) -> Path:
        return self.path / "index.sqlite"

    def info(self) -> dict:
        return read_json(self.path / "campaign.json")

    def plan(self) -> Plan:
        return Plan.from_dict(read_json(self.path / "plan.json"))

    def save_plan(self, plan: Plan) -> None:
        atomic_write_json(self.path / "plan.json", plan.to_dict())
        with self.index() as db:
            add_planned(db, plan, self.name)

    def environment(self) -> dict:
        path = self.path / "environment.json"
        return read_json(path) if path.exists() else {}

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    @contextlib.contextmanager
    def index(self) -> Iterator[sqlite3.Connection]:
        db = connect(self.index_path)
        try:
            with db:
                yield db
        finally:
            db.close()


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30)
    db.row_factory = sqlite3.Row
    db.executescript(SCHEMA)
    present = {r["name"] for r in db.execute("PRAGMA table_info(runs)")}
    for column, kind in _ADDED_RUN_COLUMNS.items():
        if column not in present:
            db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    return db


def add_planned(db: sqlite3.Connection, plan: Plan, campaign: str) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO runs (run_id, campaign, target, point_key, point_json, repetition,"
        " round, position) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(r.run_id, campaign, r.target, r.point_key, json.dumps(r.point), r.repetition, r.round,
          r.position) for r in plan.runs])


def create(root: Path, name: str, *, workload_text: str, resolved_yaml: str, source: str,
           plan: Plan, environment: dict, kernel_config: str | None, extra: dict | None = None) -> Campaign:
    """A new campaign directory, complete before it gets its final name."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{name}-{utc_stamp()}"
    suffix = 1
    while final.exists():
        suffix += 1
        final = root / f"{name}-{utc_stamp()}-{suffix}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-", suffix=".tmp"))
    try:
        info = {"name": name, "created": datetime.now(timezone.utc).isoformat(), "source": source,
                "blkcmp": bench.__version__, "format": 1} | (extra or {})
        atomic_write_json(tmp / "campaign.json", info)
        atomic_write_text(tmp / "workload.yaml", resolved_yaml)
        atomic_write_text(tmp / "workload.source.yaml", workload_text)
        atomic_write_json(tmp / "plan.json", plan.to_dict())
        atomic_write_json(tmp / "environment.json", environment)
        if kernel_config:
            atomic_write_text(tmp / "kernel-config.txt", kernel_config)
        (tmp / "runs").mkdir()
        db = connect(tmp / "index.sqlite")
        with db:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('campaign', ?)", (name,))
            add_planned(db, plan, name)
        db.close()
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Campaign(final)


def open_campaign(path: Path | str) -> Campaign:
    path = Path(path)
    if not (path / "campaign.json").is_file():
        raise UsageError(f"{path}: not a blkcmp campaign directory (no campaign.json)")
    return Campaign(path)


@contextlib.contextmanager
def lock(campaign: Campaign) -> Iterator[None]:
    """One runner per campaign directory at a time."""
    fh = open(campaign.path / ".lock", "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{campaign.path}: another blkcmp is running this campaign") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fh.close()


def is_locked(path: Path) -> bool:
    lock_path = path / ".lock"
    if not lock_path.exists():
        return False
    with open(lock_path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


# ------------------------------------------------------------------------------------------
# Runs in the index


def record_run(db: sqlite3.Connection, run_id: str, *, status: str, started: str | None,
               ended: str | None, host: str, kernel: str, error: str | None, metrics: dict,
               cpu: dict | None, fio_version: str | None, job_rows: list[dict]) -> None:
    seconds = (cpu or {}).get("seconds", {})
    values = {c: metrics.get(c) for c in RUN_METRIC_COLUMNS}
    db.execute(
        "UPDATE runs SET status=?, started=?, ended=?, host=?, kernel=?, error=?, "
        + ", ".join(f"{c}=?" for c in values)
        + ", cpu_softirq_s=?, cpu_system_s=?, cpu_user_s=?, cpu_irq_s=?, block_softirqs=?, fio_version=?"
        " WHERE run_id=?",
        (status, started, ended, host, kernel, error, *values.values(), seconds.get("softirq"),
         seconds.get("system"), seconds.get("user"), seconds.get("irq"),
         (cpu or {}).get("block_softirqs"), fio_version, run_id))
    db.execute("DELETE FROM jobs WHERE run_id=?", (run_id,))
    for row in job_rows:
        cols = ["run_id"] + list(row)
        db.execute(f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                   (run_id, *row.values()))


def record_timeseries(db: sqlite3.Connection, run_id: str, samples: list[dict]) -> None:
    """A run's time-series samples in the index (replacing any it had)."""
    db.execute("DELETE FROM timeseries WHERE run_id=?", (run_id,))
    db.executemany("INSERT INTO timeseries (run_id, job, metric, direction, time_ms, value)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   [(run_id, s["job"], s["metric"], s["direction"], s["time_ms"], s["value"]) for s in samples])


def run_rows(campaign: Campaign) -> list[dict]:
    with campaign.index() as db:
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY position")]


def status_counts(campaign: Campaign) -> dict[str, int]:
    with campaign.index() as db:
        return {r["status"]: r["n"] for r in db.execute(
            "SELECT status, count(*) AS n FROM runs GROUP BY status")}


def campaign_status(campaign: Campaign) -> tuple[str, dict[str, int]]:
    counts = status_counts(campaign)
    total = sum(counts.values())
    finished = counts.get("done", 0) + counts.get("failed", 0)
    if is_locked(campaign.path):
        state = "running"
    elif total and finished == total:
        state = "complete" if not counts.get("failed") else "complete (with failures)"
    elif finished == 0:
        state = "planned" if not any((campaign.runs_dir).glob("*")) else "interrupted"
    else:
        state = "interrupted"
    return state, counts


def list_campaigns(root: Path) -> list[Campaign]:
    if not root.is_dir():
        return []
    return [Campaign(p) for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and (p / "campaign.json").is_file()]


def add_vm_boot(campaign: Campaign, boot: dict) -> None:
    """Append one guest boot (attempts, early-boot failures retried, outcome) to the environment
    record's `vm_boots`, so every result says which boots it came from and what they survived."""
    path = campaign.path / "environment.json"
    environment = read_json(path) if path.exists() else {}
    environment.setdefault("vm_boots", []).append(boot)
    atomic_write_json(path, environment)


def require_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{root}: cannot create results directory: {exc.strerror}") from None
    if not os.access(root, os.W_OK):
        raise UsageError(f"{root}: results directory is not writable")


def remove_partial_runs(campaign: Campaign) -> list[str]:
    """Delete the scraps of runs cut off mid-way (they are re-run); return their run ids."""
    removed = []
    for tmp in campaign.runs_dir.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp.name.removeprefix(".tmp-"))
    return removed


def finalize_run_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        raise RunError(f"{final}: a finished run directory is never overwritten")
    os.rename(tmp, final)
