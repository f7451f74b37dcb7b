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
The raw files are the truth; the index is rebuilt from them (`rebuild_index`, `blkcmp reindex`)
whenever it is missing, empty or unreadable. Every file is written atomically (temp file +
rename) and a run directory appears only complete (it is assembled under runs/.tmp-<run_id> and
renamed), so an interruption at any moment leaves either a finished run or nothing of it.
Damaged JSON is a one-line error naming the file (exit 2); a file that cannot be written (full
disk, read-only filesystem) is a one-line error naming the path (exit 1).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import bench
from bench.errors import (RunError, StorageError, UsageError, is_storage_error, shorten,
                          storage_error)
from bench.names import MAX_CAMPAIGN_NAME, require_safe_name
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
    fio_version TEXT, fio_cpu_s REAL, runtime_s REAL, clat_bins TEXT
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
_ADDED_RUN_COLUMNS = {"fio_cpu_s": "REAL", "runtime_s": "REAL", "clat_bins": "TEXT"}


def utc_stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# ------------------------------------------------------------------------------------------
# Atomic files


@contextlib.contextmanager
def writing(path: Path | str, hint: str = "") -> Iterator[None]:
    """A write the filesystem refuses (full, read-only) becomes a StorageError naming `path`."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        if is_storage_error(exc):
            raise storage_error(exc, path, hint) from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with writing(path):
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


# What to do about a damaged file, by name (the raw run files are the truth: nothing else in a
# campaign can be recreated from them).
_DAMAGE_ADVICE = {
    "run.json": "move that run directory aside and `blkcmp run --resume` runs it again",
    "cpu.json": "move that run directory aside and `blkcmp run --resume` runs it again",
}
_DEFAULT_ADVICE = "restore it from a copy of the campaign (blkcmp cannot recreate it from the runs)"


def damaged(path: Path, detail: str) -> UsageError:
    advice = _DAMAGE_ADVICE.get(path.name, _DEFAULT_ADVICE)
    return UsageError(f"{path}: damaged ({detail}); {advice}")


def read_json(path: Path, expect: type | None = None) -> Any:
    """The JSON document in `path`; a damaged one is a one-line error naming the file.

    FileNotFoundError passes through: callers decide whether a missing file is an error."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise damaged(path, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise damaged(path, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise damaged(path, "JSON nested too deeply") from None
    if expect is not None and not isinstance(data, expect):
        raise damaged(path, f"expected a JSON {_JSON_TYPES[expect]}, found {_JSON_TYPES.get(type(data), 'value')}")
    return data


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}


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


# Indexes rebuilt where they could not be written (read-only, full), by campaign directory: kept
# for the rest of this process, so every reader of that campaign uses the same one.
_MEMORY_INDEXES: dict[Path, sqlite3.Connection] = {}


def _notice(text: str) -> None:
    print(f"blkcmp: {text}", file=sys.stderr, flush=True)


# Run ids become directory names under runs/: a damaged or hostile plan.json must not name
# anything outside it (one path component, never `.` or `..`; `a..b` is a name like any other).
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


@dataclass
class Campaign:
    path: Path
    # Where the store says what it did on its own (an index rebuilt): stderr, one line.
    notice: Callable[[str], None] = field(default=_notice, repr=False, compare=False)
    _index_checked: bool = field(default=False, init=False, repr=False, compare=False)

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
        return read_json(self.path / "campaign.json", dict)

    def plan(self) -> Plan:
        path = self.path / "plan.json"
        data = read_json(path, dict)
        try:
            plan = Plan.from_dict(data)
        except KeyError as exc:
            raise damaged(path, f"not a blkcmp plan: no field {shorten(exc.args[0])!r}") from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise damaged(path, f"not a blkcmp plan: {shorten(exc)}") from None
        for run in plan.runs:
            if not isinstance(run.run_id, str) or not _RUN_ID.fullmatch(run.run_id):
                raise damaged(path, f"run id {shorten(repr(run.run_id))} is not a run directory name")
        return plan

    def save_plan(self, plan: Plan) -> None:
        self.ensure_index()  # before plan.json changes: an index that lags it is not damage
        atomic_write_json(self.path / "plan.json", plan.to_dict())
        with self.index() as db:
            add_planned(db, plan, self.name)

    def environment(self) -> dict:
        path = self.path / "environment.json"
        return read_json(path, dict) if path.exists() else {}

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def ensure_index(self) -> None:
        """Rebuild the index from the run directories if it is missing, empty or unreadable."""
        if self._index_checked or self.path.resolve() in _MEMORY_INDEXES:
            return
        self._index_checked = True
        problem = index_problem(self)
        if problem:
            summary = rebuild_index(self)
            self.notice(f"{self.index_path} was {problem}: {summary}")

    @contextlib.contextmanager
    def index(self) -> Iterator[sqlite3.Connection]:
        self.ensure_index()
        try:
            memory = _MEMORY_INDEXES.get(self.path.resolve())
            if memory is not None:
                with memory as db:
                    yield db
                return
            db = connect(self.index_path)
            try:
                with db:
                    yield db
            finally:
                db.close()
        except sqlite3.OperationalError as exc:
            if is_storage_error(exc):
                raise storage_error(exc, self.index_path) from None
            raise


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
    """A new campaign directory, complete before it gets its final name.

    Two blkcmp processes creating a campaign of the same name in the same second get two
    directories: the rename that gives the directory its name never replaces one (a name found
    taken is retried with the next suffix)."""
    require_safe_name(name, "campaign name", "campaign", MAX_CAMPAIGN_NAME)
    with writing(root):
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}-", suffix=".tmp"))
    try:
        with writing(root):
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
            final = _claim_name(tmp, root, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Campaign(final)


def _claim_name(tmp: Path, root: Path, name: str) -> Path:
    """Rename the finished directory `tmp` to `<name>-<UTC timestamp>[-N]`, never over another."""
    stamp = utc_stamp()
    for suffix in range(1, 10_000):
        final = root / (f"{name}-{stamp}" if suffix == 1 else f"{name}-{stamp}-{suffix}")
        if final.exists() or final.is_symlink():
            continue
        try:
            _rename_noreplace(tmp, final)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):  # taken since the check: next one
                continue
            raise
        return final
    raise RunError(f"{root}: no free campaign directory name for {name}-{stamp}")


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def _rename_noreplace(src: Path, dst: Path) -> None:
    """rename(2) that fails with EEXIST instead of replacing `dst` (an empty directory would
    otherwise be replaced silently); plain rename where renameat2 is missing, which refuses a
    non-empty directory with ENOTEMPTY, and blkcmp's own directories are never empty."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL):  # EINVAL: this filesystem lacks the flag
            raise OSError(err, os.strerror(err), str(dst))
    os.rename(src, dst)


def open_campaign(path: Path | str) -> Campaign:
    path = Path(path)
    if not (path / "campaign.json").is_file():
        if path.is_dir() and looks_like_campaign(path):
            raise UsageError(f"{path}/campaign.json: missing; restore it from a copy of the "
                             "campaign (blkcmp cannot recreate it from the runs)")
        raise UsageError(f"{shorten(path, 300)}: not a blkcmp campaign directory (no campaign.json)")
    campaign = Campaign(path)
    campaign.info()  # damaged: say so now, naming the file
    return campaign


def looks_like_campaign(path: Path) -> bool:
    return any((path / name).exists() for name in ("campaign.json", "plan.json", "index.sqlite", "runs"))


# Campaign directories this process holds the lock of (flock is per open file: a second flock
# by the same process would see its own lock as another runner's).
_HELD: set[Path] = set()


@contextlib.contextmanager
def lock(campaign: Campaign) -> Iterator[None]:
    """One runner per campaign directory at a time."""
    with writing(campaign.path / ".lock"):
        fh = open(campaign.path / ".lock", "a+")
    key = campaign.path.resolve()
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{campaign.path}: another blkcmp is running this campaign") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        _HELD.add(key)
        yield
    finally:
        _HELD.discard(key)
        fh.close()


def is_locked(path: Path) -> bool:
    """Is another process running this campaign?"""
    lock_path = path / ".lock"
    if path.resolve() in _HELD or not lock_path.exists():
        return False
    with open(lock_path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


# ------------------------------------------------------------------------------------------
# A damaged index, rebuilt from the run directories


# SQLite primary result codes of a file that is not (or no longer) a database.
_SQLITE_DAMAGE_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def index_problem(campaign: Campaign) -> str | None:
    """Why the index cannot be trusted (missing, empty, unreadable), or None."""
    path = campaign.index_path
    if not path.exists() and not path.is_symlink():
        return "missing"
    if not path.is_file():
        return "not a regular file"
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    try:
        db = sqlite3.connect(path, timeout=30)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                return f"damaged ({shorten(verdict)})"
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"runs", "jobs"} <= tables:
                return "incomplete (no runs or jobs table)"
            planned = db.execute("SELECT count(*) FROM runs").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_DAMAGE_CODES:
            return f"unreadable ({shorten(exc)})"
        if is_storage_error(exc):
            raise storage_error(exc, path) from None
        raise
    if planned == 0 and campaign.plan().runs:
        return "empty (no runs, although plan.json plans them)"
    return None


@dataclass
class Rebuilt:
    done: int
    failed: int
    planned: int
    where: str                       # "on disk" or "in memory (…)"
    skipped: list[str]               # run directories left out, with the reason

    def __str__(self) -> str:
        where = "" if self.where == "on disk" else f" {self.where}"
        return (f"rebuilt from the run directories{where} ({self.done} done, {self.failed} failed, "
                f"{self.planned - self.done - self.failed} not run)")


def rebuild_index(campaign: Campaign, *, in_memory_ok: bool = True) -> Rebuilt:
    """A new index from plan.json and runs/ (the raw files are the truth), replacing the old
    one atomically; where the campaign directory cannot be written, an index in memory for this
    process (`in_memory_ok`), else the StorageError. Refused while another blkcmp runs the
    campaign."""
    plan = campaign.plan()
    held_here = campaign.path.resolve() in _HELD
    if not held_here and is_locked(campaign.path):
        raise RunError(f"{campaign.index_path} needs rebuilding, but another blkcmp is running this "
                       f"campaign: run `blkcmp reindex {campaign.path}` once it has finished")
    try:
        if held_here:
            return _rebuild_on_disk(campaign, plan)
        with lock(campaign):
            return _rebuild_on_disk(campaign, plan)
    except StorageError as exc:  # the directory is read-only or full: this process only
        if not in_memory_ok:
            raise
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.executescript(SCHEMA)
        rebuilt = _fill(campaign, plan, db)
        _MEMORY_INDEXES[campaign.path.resolve()] = db
        rebuilt.where = f"in memory for this command only ({exc})"
        return rebuilt


_INDEX_COMPANIONS = ("-journal", "-wal", "-shm")


def _rebuild_on_disk(campaign: Campaign, plan: Plan) -> Rebuilt:
    path = campaign.index_path
    tmp = path.with_name(f".{path.name}.rebuild-{os.getpid()}")
    with writing(path):
        for stale in (tmp, *(tmp.with_name(tmp.name + s) for s in _INDEX_COMPANIONS)):
            stale.unlink(missing_ok=True)
        db = connect(tmp)
        try:
            rebuilt = _fill(campaign, plan, db)
            db.commit()
        except BaseException:
            db.close()
            tmp.unlink(missing_ok=True)
            raise
        db.close()
        # The damaged file is kept beside for a post-mortem; its journals belong to it alone (a
        # hot journal left next to the new index would be "rolled back" into it).
        if path.is_file() and path.stat().st_size:
            os.replace(path, path.with_name(path.name + ".damaged"))
        elif path.is_dir() and not path.is_symlink():
            os.replace(path, path.with_name(path.name + ".damaged"))
        for suffix in _INDEX_COMPANIONS:
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        os.replace(tmp, path)
    rebuilt.where = "on disk"
    return rebuilt


def _fill(campaign: Campaign, plan: Plan, db: sqlite3.Connection) -> Rebuilt:
    # The reader of one run directory lives with the runner, which writes them.
    from bench.executors.local import index_run_dir
    name = campaign.name
    with db:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('campaign', ?)", (name,))
        add_planned(db, plan, name)
    planned = {r.run_id for r in plan.runs}
    dirs = sorted(p for p in campaign.runs_dir.iterdir() if not p.name.startswith(".")) \
        if campaign.runs_dir.is_dir() else []
    failed_dirs = [d for d in dirs if ".failed-" in d.name]
    done_dirs = [d for d in dirs if ".failed-" not in d.name]
    statuses: dict[str, str] = {}
    skipped = []
    for run_dir in failed_dirs + done_dirs:  # a finished run is the last word on its id
        run_id = run_dir.name.split(".failed-")[0]
        if run_id not in planned:
            skipped.append(f"{run_dir}: not a run of plan.json")
            continue
        try:
            with db:
                statuses[run_id] = index_run_dir(campaign, run_id, run_dir, db=db)
        except (UsageError, OSError, ValueError, RecursionError) as exc:
            skipped.append(f"{run_dir}: {shorten(exc, 200)}")
    for line in skipped:
        campaign.notice(f"left out of the index: {line}")
    values = list(statuses.values())
    return Rebuilt(values.count("done"), values.count("failed"), len(planned), "", skipped)


# ------------------------------------------------------------------------------------------
# Runs in the index


def record_run(db: sqlite3.Connection, run_id: str, *, status: str, started: str | None,
               ended: str | None, host: str | None, kernel: str | None, error: str | None, metrics: dict,
               cpu: dict | None, fio_version: str | None, job_rows: list[dict]) -> None:
    seconds = (cpu or {}).get("seconds", {})
    values = {c: metrics.get(c) for c in RUN_METRIC_COLUMNS}
    bins = metrics.get("clat_bins")  # a dict, or already as encode_bins wrote it
    db.execute(
        "UPDATE runs SET status=?, started=?, ended=?, host=?, kernel=?, error=?, "
        + ", ".join(f"{c}=?" for c in values)
        + ", cpu_softirq_s=?, cpu_system_s=?, cpu_user_s=?, cpu_irq_s=?, block_softirqs=?, fio_version=?,"
        " clat_bins=? WHERE run_id=?",
        (status, started, ended, host, kernel, error, *values.values(), seconds.get("softirq"),
         seconds.get("system"), seconds.get("user"), seconds.get("irq"),
         (cpu or {}).get("block_softirqs"), fio_version,
         encode_bins(bins) if isinstance(bins, dict) else bins, run_id))
    db.execute("DELETE FROM jobs WHERE run_id=?", (run_id,))
    for row in job_rows:
        cols = ["run_id"] + list(row)
        db.execute(f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                   (run_id, *row.values()))


def encode_bins(bins: dict[int, int]) -> str:
    """A json+ histogram as the index keeps it: a flat JSON list [ns, count, ns, count, …]
    ("[]" for a run without bins; NULL in the index means "not summarised": an index written
    before the column existed, read from fio.json instead)."""
    return json.dumps([x for item in sorted(bins.items()) for x in item], separators=(",", ":"))


def decode_bins(text: str) -> dict[int, int]:
    flat = json.loads(text)
    return dict(zip(flat[::2], flat[1::2]))


def record_timeseries(db: sqlite3.Connection, run_id: str, samples: list[dict]) -> None:
    """A run's time-series samples in the index (replacing any it had)."""
    db.execute("DELETE FROM timeseries WHERE run_id=?", (run_id,))
    db.executemany("INSERT INTO timeseries (run_id, job, metric, direction, time_ms, value)"
                   " VALUES (?, ?, ?, ?, ?, ?)",
                   [(run_id, s["job"], s["metric"], s["direction"], s["time_ms"], s["value"]) for s in samples])


def forget_run(db: sqlite3.Connection, run_id: str) -> None:
    """Back to `planned`: the run's results are gone, so it is to be run again."""
    record_run(db, run_id, status="planned", started=None, ended=None, host=None, kernel=None,
               error=None, metrics={}, cpu=None, fio_version=None, job_rows=[])


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
    """Every directory under `root` that is, or was, a campaign (damaged ones included)."""
    if not root.is_dir():
        return []
    return [Campaign(p) for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith(".") and looks_like_campaign(p)]


def add_vm_boot(campaign: Campaign, boot: dict) -> None:
    """Append one guest boot (attempts, early-boot failures retried, outcome) to the environment
    record's `vm_boots`, so every result says which boots it came from and what they survived."""
    path = campaign.path / "environment.json"
    environment = read_json(path) if path.exists() else {}
    environment.setdefault("vm_boots", []).append(boot)
    atomic_write_json(path, environment)


def require_writable(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root}: not a directory (give --results a directory)")
    with writing(root):
        root.mkdir(parents=True, exist_ok=True)
    if not os.access(root, os.W_OK):
        raise storage_error(OSError(errno.EROFS if _read_only_fs(root) else errno.EACCES,
                                    "results directory is not writable"), root)


def _read_only_fs(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


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
