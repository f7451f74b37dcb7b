"""Campaign directories: the one owner of everything in them (no other module names a file here).

Layout of `results/<campaign>-<UTC timestamp>/` (format 3):
    campaign.json          name, creation time, source workload path, blkcmp version, format
    workload.yaml          the resolved workload (workload.source.yaml: the file as written)
    plan.json              every planned run, in order (grows when adaptive rounds are added), the
                           baseline and, for an adaptive campaign, its stopping rule
    environment.json       where it ran (kernel-config.txt beside it when readable; a VM campaign
                           also keeps the host's in host-environment.json)
    environments/LABEL.json  a campaign of several kernels: each kernel's own environment record,
                           written by its guest (LABEL.kernel-config.txt beside it)
    targets.json           one entry per set-up session: what each target really was, its
                           fairness audit and the differences the workload allowed
    adaptive.json          the stopping rule's last decision (adaptive campaigns)
    logs/console-NN.log    the guest's console of every boot (VM campaigns)
    index.sqlite           one row per planned run; one row per run x fio job x host;
                           one per time-series sample (`timeseries:` workloads)
    runs/<run_id>/         job.fio, fio.json (raw), fio.stderr, cpu.json, run.json,
                           timeseries_*.log (fio's IOPS/bandwidth/latency logs, if asked for)
`Campaign` gives typed access to each; `RunFiles` names the files of one run directory.
The raw files are the truth; the index is rebuilt from them (`rebuild_index`, `blkcmp reindex`)
whenever it is missing, empty or unreadable. Every file is written atomically (temp file +
rename) and a run directory appears only complete (it is assembled under runs/.tmp-<run_id> and
renamed), so an interruption at any moment leaves either a finished run or nothing of it.
Damaged JSON is a one-line error naming the file (exit 2); a file that cannot be written (full
disk, read-only filesystem) is a one-line error naming the path (exit 1).

Format versions: 1 had no baseline or stopping rule in plan.json and no allowed differences in
targets.json; a format-1 campaign is read as it is (the baseline and the rule from its
workload, the allowed differences from its audits) and migrated to format 2 when blkcmp next
writes its plan. Format 3 added the kernel label, planned boot slot and boot id of every run
(plan.json of a campaign of several kernels or boots, and three columns of the index's `runs`);
a format-2 campaign is one kernel, one boot per session: its index gains the columns (empty) when
opened and campaign.json says 3 at the next plan write. A format newer than this blkcmp knows is
refused with a one-line error.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bench
from bench import fio, timeseries
from bench.errors import RunError, StorageError, UsageError, is_storage_error, shorten, storage_error
from bench.names import MAX_CAMPAIGN_NAME, require_safe_name
from bench.plan import Plan

if TYPE_CHECKING:
    from bench.stats.adaptive import Decision
    from bench.workload import Workload

FORMAT = 3  # of the campaign directory; campaign.json records the one it was written in

# The names of everything in a campaign directory: spelled here and nowhere else in bench/.
_CAMPAIGN = "campaign.json"
_WORKLOAD = "workload.yaml"
_WORKLOAD_SOURCE = "workload.source.yaml"
_PLAN = "plan.json"
_ENVIRONMENT = "environment.json"
_HOST_ENVIRONMENT = "host-environment.json"
_KERNEL_CONFIG = "kernel-config.txt"
_KERNEL_ENVIRONMENTS = "environments"
_SESSIONS = "targets.json"
_ADAPTIVE = "adaptive.json"
_PRECONDITION = "precondition.json"
_PRECONDITION_DIR = "precondition"
_INDEX = "index.sqlite"
_RUNS = "runs"
_LOGS = "logs"
_LOCK = ".lock"
# ... and in each run directory
_RUN_META = "run.json"
_RUN_CPU = "cpu.json"
_RUN_FIO_OUTPUT = "fio.json"
_RUN_JOB = "job.fio"
_RUN_STDERR = "fio.stderr"

# The `jobs` table, one row per run x fio job entry (x host): the SQL schema, `job_rows`' keys
# and `blkcmp export`'s job columns all come from these names.
JOB_IDENTITY = ("host", "job")
JOB_OPTIONS = ("rw", "bs", "iodepth", "numjobs")
# <direction>_<measure> of fio's read and write directions (mixed: unified_rw_reporting)
JOB_MEASURES = (
    "read_iops",
    "write_iops",
    "mixed_iops",
    "read_bw_bytes",
    "write_bw_bytes",
    "read_clat_mean_ns",
    "write_clat_mean_ns",
    "read_clat_p99_ns",
    "write_clat_p99_ns",
    "usr_cpu",
    "sys_cpu",
)
JOB_COLUMNS = ("job_index", *JOB_IDENTITY, *JOB_OPTIONS, *JOB_MEASURES, "error", "fio_version")
_JOB_SQL_TYPES = {"job_index": "INTEGER", "error": "INTEGER"} | {m: "REAL" for m in JOB_MEASURES}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, campaign TEXT, target TEXT, point_key TEXT, point_json TEXT,
    repetition INTEGER, round INTEGER, position INTEGER,
    status TEXT NOT NULL DEFAULT 'planned', started TEXT, ended TEXT, host TEXT, kernel TEXT,
    error TEXT, iops REAL, read_iops REAL, write_iops REAL, mixed_iops REAL, bw_bytes REAL,
    clat_mean_ns REAL, clat_p50_ns REAL, clat_p99_ns REAL, clat_p999_ns REAL,
    usr_cpu REAL, sys_cpu REAL, ctx INTEGER, total_ios INTEGER,
    cpu_softirq_s REAL, cpu_system_s REAL, cpu_user_s REAL, cpu_irq_s REAL, block_softirqs INTEGER,
    fio_version TEXT, fio_cpu_s REAL, runtime_s REAL, clat_bins TEXT,
    kernel_label TEXT, boot_slot INTEGER, boot_id TEXT
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT, {", ".join(f"{c} {_JOB_SQL_TYPES.get(c, 'TEXT')}" for c in JOB_COLUMNS)},
    PRIMARY KEY (run_id, job_index)
);
CREATE TABLE IF NOT EXISTS timeseries (
    run_id TEXT, job INTEGER, metric TEXT, direction TEXT, time_ms INTEGER, value REAL
);
CREATE INDEX IF NOT EXISTS timeseries_run ON timeseries (run_id);
"""

RUN_METRIC_COLUMNS = (
    "iops",
    "read_iops",
    "write_iops",
    "mixed_iops",
    "bw_bytes",
    "clat_mean_ns",
    "clat_p50_ns",
    "clat_p99_ns",
    "clat_p999_ns",
    "usr_cpu",
    "sys_cpu",
    "ctx",
    "total_ios",
    "fio_cpu_s",
    "runtime_s",
)
# Columns added to `runs` after format 1 was first written: indexes that predate them get them.
_ADDED_RUN_COLUMNS = {
    "fio_cpu_s": "REAL",
    "runtime_s": "REAL",
    "clat_bins": "TEXT",
    # format 3: the kernel label and planned boot slot (from the plan), the boot id (from run.json)
    "kernel_label": "TEXT",
    "boot_slot": "INTEGER",
    "boot_id": "TEXT",
}


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


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
    _RUN_META: "move that run directory aside and `blkcmp run --resume` runs it again",
    _RUN_CPU: "move that run directory aside and `blkcmp run --resume` runs it again",
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
        raise damaged(
            path, f"expected a JSON {_JSON_TYPES[expect]}, found {_JSON_TYPES.get(type(data), 'value')}"
        )
    return data


_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


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


@dataclass(frozen=True)
class RunFiles:
    """The files of one run directory (finished, failed, or being assembled)."""

    dir: Path

    @property
    def job(self) -> Path:
        return self.dir / _RUN_JOB

    @property
    def fio_output(self) -> Path:
        return self.dir / _RUN_FIO_OUTPUT

    @property
    def stderr(self) -> Path:
        return self.dir / _RUN_STDERR

    @property
    def cpu(self) -> Path:
        return self.dir / _RUN_CPU

    @property
    def meta(self) -> Path:
        return self.dir / _RUN_META

    def read_meta(self) -> dict:
        return read_json(self.meta, dict)

    def read_cpu(self) -> dict | None:
        return read_json(self.cpu, dict) if self.cpu.exists() else None

    def read_fio_output(self) -> fio.FioOutput:
        return fio.parse(self.fio_output.read_text())

    def write_meta(self, meta: dict) -> None:
        atomic_write_json(self.meta, meta)

    def write_cpu(self, cpu: dict) -> None:
        atomic_write_json(self.cpu, cpu)


def run_files_at(campaign_dir: Path, run_id: str) -> RunFiles:
    """A run's files by the campaign's path, for records that outlive the open campaign."""
    return RunFiles(Path(campaign_dir) / _RUNS / run_id)


@dataclass(frozen=True)
class TargetSession:
    """One set-up of the targets (a `run` or `run --resume`; a VM campaign: one boot)."""

    started: str | None
    pid: int | None
    targets: dict[str, dict]  # name -> what it really was (driver, device, audit, ...)
    allowed: list[str]  # audited differences the workload allowed, one line each

    def audits(self) -> dict[str, dict]:
        return {n: t["audit"] for n, t in self.targets.items() if "audit" in t}

    def to_dict(self) -> dict:
        return {
            "started": self.started,
            "pid": self.pid,
            "targets": self.targets,
            "allowed_differences": self.allowed,
        }


@dataclass
class Campaign:
    path: Path
    # Where the store says what it did on its own (an index rebuilt): stderr, one line.
    notice: Callable[[str], None] = field(default=_notice, repr=False, compare=False)
    _index_checked: bool = field(default=False, init=False, repr=False, compare=False)
    _workload: Any = field(default=None, init=False, repr=False, compare=False)

    # -- identity and format -----------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.info().get("name", self.path.name)

    @property
    def runs_dir(self) -> Path:
        return self.path / _RUNS

    @property
    def index_path(self) -> Path:
        return self.path / _INDEX

    @property
    def info_path(self) -> Path:
        return self.path / _CAMPAIGN

    def info(self) -> dict:
        info = read_json(self.info_path, dict)
        version = info.get("format", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise damaged(self.info_path, f"format {shorten(repr(version))} is not a format number")
        if version > FORMAT:
            raise UsageError(
                f"{self.info_path}: format {version} is newer than this blkcmp reads "
                f"(format {FORMAT}); use a newer blkcmp"
            )
        return info

    @property
    def format(self) -> int:
        return self.info().get("format", 1)

    # -- the workload and the plan -----------------------------------------------------------
    @property
    def workload_path(self) -> Path:
        return self.path / _WORKLOAD

    def has_workload(self) -> bool:
        """Ingested campaigns have none: their runs were not planned from a workload."""
        return self.workload_path.exists()

    def workload(self, fio_table=None) -> Workload:
        """The resolved workload, validated (against `fio_table`, this fio's options, if given)."""
        from bench import workload as workload_mod

        if fio_table is not None:
            return workload_mod.load(self.workload_path, fio_table=fio_table)
        if self._workload is None:
            self._workload = workload_mod.load(self.workload_path)
        return self._workload

    def workload_source_text(self) -> str:
        return (self.path / _WORKLOAD_SOURCE).read_text()

    def plan(self) -> Plan:
        path = self.path / _PLAN
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
        if "baseline" not in data:
            plan = self._format1_plan(plan)
        return plan

    def _format1_plan(self, plan: Plan) -> Plan:
        """A plan written before the baseline and the stopping rule were recorded in it: both
        from the campaign's workload (a campaign that stopped adaptively left adaptive.json)."""
        if not self.has_workload():
            return plan
        from bench import stopping

        workload = self.workload()
        plan.baseline = workload.baseline_name()
        if plan.max_rounds > plan.rounds or (self.path / _ADAPTIVE).exists():
            plan.stopping = stopping.rule_for(workload, plan.baseline)
        return plan

    def save_plan(self, plan: Plan) -> None:
        self.ensure_index()  # before plan.json changes: an index that lags it is not damage
        self.write_plan(plan)
        with self.index() as db:
            add_planned(db, plan, self.name)

    def write_plan(self, plan: Plan) -> None:
        """plan.json alone (the caller brings the index up to it, in its own transaction)."""
        atomic_write_json(self.path / _PLAN, plan.to_dict())
        self._migrated()

    def _migrated(self) -> None:
        """Once plan.json holds what format 2 records, campaign.json says format 2."""
        info = self.info()
        if info.get("format", 1) < FORMAT:
            atomic_write_json(self.info_path, info | {"format": FORMAT})

    def baseline(self) -> str:
        """The target every other is compared with: the workload's `baseline:` (default its
        first target) as recorded in plan.json when the campaign was created (the first available
        target if that one was not); a campaign without a workload (ingested): its first target."""
        plan = self.plan()
        if plan.baseline:
            return plan.baseline
        if not plan.targets:
            raise UsageError(f"{self.path}: no targets, so no baseline")
        return plan.targets[0]

    # -- where it ran ------------------------------------------------------------------------
    def environment(self) -> dict:
        path = self.path / _ENVIRONMENT
        return read_json(path, dict) if path.exists() else {}

    def save_environment(self, environment: dict, kernel_config: str | None = None) -> None:
        atomic_write_json(self.path / _ENVIRONMENT, environment)
        if kernel_config:
            atomic_write_text(self.path / _KERNEL_CONFIG, kernel_config)

    def host_environment(self) -> dict:
        """A VM campaign's host (environment() is the guest's)."""
        path = self.path / _HOST_ENVIRONMENT
        return read_json(path, dict) if path.exists() else {}

    def save_host_environment(self, environment: dict) -> None:
        atomic_write_json(self.path / _HOST_ENVIRONMENT, environment)

    def add_vm_boot(self, boot: dict) -> None:
        """Append one guest boot (attempts, early-boot failures retried, outcome) to the
        environment record's `vm_boots`, so every result says which boots it came from."""
        environment = self.environment()
        environment.setdefault("vm_boots", []).append(boot)
        atomic_write_json(self.path / _ENVIRONMENT, environment)

    def vm_kernels(self) -> dict[str, dict]:
        """A VM campaign of several kernels or boots: label -> {label, spec, release}, one per
        kernel of its plan (damaged when the plan names a kernel campaign.json does not)."""
        kernels = {
            k["label"]: k for k in self.info().get("vm_kernels", []) if isinstance(k, dict) and "label" in k
        }
        for label in self.plan().kernels:
            if label not in kernels or not {"spec", "release"} <= set(kernels[label]):
                raise damaged(self.info_path, f"kernel {shorten(label)} of plan.json is not in vm_kernels")
        return kernels

    def kernel_environment(self, label: str) -> dict:
        """The environment record one kernel's guest wrote (campaigns of several kernels)."""
        path = self.path / _KERNEL_ENVIRONMENTS / f"{label}.json"
        return read_json(path, dict) if path.exists() else {}

    def kernel_environments(self) -> dict[str, dict]:
        """label -> that kernel's environment record, in the plan's kernel order."""
        return {label: env for label in self.plan().kernels if (env := self.kernel_environment(label))}

    def save_kernel_environment(
        self, label: str, environment: dict, kernel_config: str | None = None
    ) -> None:
        require_safe_name(label, "kernel label", "kernel label")
        folder = self.path / _KERNEL_ENVIRONMENTS
        with writing(folder):
            folder.mkdir(exist_ok=True)
        atomic_write_json(folder / f"{label}.json", environment)
        if kernel_config:
            atomic_write_text(folder / f"{label}.{_KERNEL_CONFIG}", kernel_config)

    def kernel_release(self) -> str:
        """The release the runs ran on: the environment's, else the VM kernel asked for."""
        return (
            self.environment().get("kernel", {}).get("release")
            or self.info().get("vm_kernel_release")
            or "unknown"
        )

    def executor_label(self) -> str:
        return self.environment().get("executor", {}).get("label", "")

    def new_console_log(self) -> Path:
        """Where the console of the next guest boot goes: logs/console-NN.log."""
        logs = self.path / _LOGS
        with writing(logs):
            logs.mkdir(exist_ok=True)
        return logs / f"console-{len(list(logs.glob('console-??.log'))) + 1:02d}.log"

    def console_logs(self) -> list[Path]:
        return sorted((self.path / _LOGS).glob("console-??.log"))

    def relative(self, path: Path | str) -> str:
        """`path` relative to the campaign directory (as recorded), or as it is if outside."""
        try:
            return str(Path(path).relative_to(self.path))
        except ValueError:
            return str(path)

    # -- the targets' sessions -----------------------------------------------------------------
    def sessions(self) -> list[TargetSession]:
        path = self.path / _SESSIONS
        if not path.exists():
            return []
        entries = read_json(path, list)
        sessions = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("targets", {}), dict):
                raise damaged(path, "expected a list of session objects with `targets`")
            targets = entry.get("targets") or {}
            allowed = entry.get("allowed_differences")
            if allowed is None:  # format 1 recorded none: every difference found was allowed
                allowed = _allowed_in_audits(
                    {n: t["audit"] for n, t in targets.items() if isinstance(t, dict) and "audit" in t}
                )
            sessions.append(TargetSession(entry.get("started"), entry.get("pid"), targets, list(allowed)))
        return sessions

    def add_session(self, session: TargetSession) -> None:
        path = self.path / _SESSIONS
        history = read_json(path, list) if path.exists() else []
        atomic_write_json(path, history + [session.to_dict()])

    def allowed_differences(self) -> list[str]:
        """Audited settings that differed between targets and that the workload allowed."""
        sessions = self.sessions()
        return sessions[-1].allowed if sessions else []

    # -- preconditioning (bench.precondition) ------------------------------------------------
    def precondition_dir(self, target: str) -> Path:
        """precondition/<target>/: the fio jobs and outputs of its purge, fills and rounds."""
        return self.path / _PRECONDITION_DIR / target

    def precondition_record(self) -> dict | None:
        path = self.path / _PRECONDITION
        return read_json(path, dict) if path.exists() else None

    def save_precondition(self, record: dict) -> None:
        atomic_write_json(self.path / _PRECONDITION, record)

    # -- adaptive campaigns --------------------------------------------------------------------
    def adaptive_state(self) -> dict | None:
        """The stopping rule's last decision (None before the first)."""
        path = self.path / _ADAPTIVE
        return read_json(path, dict) if path.exists() else None

    def save_adaptive_state(self, decision: Decision) -> None:
        atomic_write_json(
            self.path / _ADAPTIVE,
            decision.to_dict()
            | {
                "points_at_cap": [list(k) for k in decision.points_at_cap],
                "points_above_target": [list(k) for k in decision.points_above_target],
                "points_settled": [list(k) for k in decision.points_settled],
            },
        )

    # -- runs ------------------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def run_files(self, run_id: str) -> RunFiles:
        return RunFiles(self.run_dir(run_id))

    def staging_path(self, run_id: str) -> Path:
        """runs/.tmp-<run_id>: where a run is assembled before it appears under its name."""
        return self.runs_dir / f".tmp-{run_id}"

    def staging(self, run_id: str) -> RunFiles:
        """A fresh staging directory for the run (scraps of an earlier attempt removed)."""
        tmp = self.staging_path(run_id)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return RunFiles(tmp)

    def staged(self) -> list[tuple[str, RunFiles]]:
        """Runs being assembled (or cut off while they were): (run id, files)."""
        return [
            (tmp.name.removeprefix(".tmp-"), RunFiles(tmp)) for tmp in sorted(self.runs_dir.glob(".tmp-*"))
        ]

    def finish_run(self, staged: RunFiles, run_id: str, *, failed: bool) -> RunFiles:
        """Give an assembled run its name: runs/<run_id>, or runs/<run_id>.failed-N for a
        failed one (kept, never overwritten: a resume runs it again under the real name)."""
        final = self.run_dir(run_id)
        if failed:
            n = 1
            while (self.runs_dir / f"{run_id}.failed-{n}").exists():
                n += 1
            final = self.runs_dir / f"{run_id}.failed-{n}"
        finalize_run_dir(staged.dir, final)
        return RunFiles(final)

    def job_text(self, run_id: str) -> str | None:
        path = self.run_files(run_id).job
        return path.read_text() if path.exists() else None

    # -- the index -------------------------------------------------------------------------------
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


def _allowed_in_audits(audits: dict[str, dict]) -> list[str]:
    """The differences between these audits, each as a line (format 1's sessions: the runner
    refused any difference the workload did not allow, so every one found was allowed)."""
    if len(audits) < 2:
        return []
    from bench.targets.blockdev import AUDIT_KEYS, audit_differences

    _, tolerated = audit_differences(audits, allowed=list(AUDIT_KEYS))
    return tolerated


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
        " round, position, kernel_label, boot_slot) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r.run_id,
                campaign,
                r.target,
                r.point_key,
                json.dumps(r.point),
                r.repetition,
                r.round,
                r.position,
                r.kernel,
                r.boot,
            )
            for r in plan.runs
        ],
    )


def create(
    root: Path,
    name: str,
    *,
    workload_text: str,
    resolved_yaml: str,
    source: str,
    plan: Plan,
    environment: dict,
    kernel_config: str | None,
    extra: dict | None = None,
) -> Campaign:
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
            info = {
                "name": name,
                "created": datetime.now(UTC).isoformat(),
                "source": source,
                "blkcmp": bench.__version__,
                "format": FORMAT,
            } | (extra or {})
            atomic_write_json(tmp / _CAMPAIGN, info)
            atomic_write_text(tmp / _WORKLOAD, resolved_yaml)
            atomic_write_text(tmp / _WORKLOAD_SOURCE, workload_text)
            atomic_write_json(tmp / _PLAN, plan.to_dict())
            atomic_write_json(tmp / _ENVIRONMENT, environment)
            if kernel_config:
                atomic_write_text(tmp / _KERNEL_CONFIG, kernel_config)
            (tmp / _RUNS).mkdir()
            db = connect(tmp / _INDEX)
            with db:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('campaign', ?)", (name,))
                add_planned(db, plan, name)
            db.close()
            final = _claim_name(tmp, root, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Campaign(final)


def create_in_place(
    path: Path, name: str, *, plan: Plan, environment: dict, source: str = "ingest"
) -> Campaign:
    """A campaign in the (new or empty) directory `path` itself, without a workload: ingested
    runs."""
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            path / _CAMPAIGN,
            {"name": name, "created": datetime.now(UTC).isoformat(), "source": source, "format": FORMAT},
        )
        atomic_write_json(path / _PLAN, plan.to_dict())
        atomic_write_json(path / _ENVIRONMENT, environment)
        (path / _RUNS).mkdir(exist_ok=True)
        connect(path / _INDEX).close()
    return Campaign(path)


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
    if not (path / _CAMPAIGN).is_file():
        if path.is_dir() and looks_like_campaign(path):
            raise UsageError(
                f"{path}/{_CAMPAIGN}: missing; restore it from a copy of the "
                "campaign (blkcmp cannot recreate it from the runs)"
            )
        raise UsageError(f"{shorten(path, 300)}: not a blkcmp campaign directory (no campaign.json)")
    campaign = Campaign(path)
    campaign.info()  # damaged or too new: say so now, naming the file
    return campaign


def is_campaign(path: Path) -> bool:
    return (path / _CAMPAIGN).is_file()


def looks_like_campaign(path: Path) -> bool:
    return any((path / name).exists() for name in (_CAMPAIGN, _PLAN, _INDEX, _RUNS))


# Campaign directories this process holds the lock of (flock is per open file: a second flock
# by the same process would see its own lock as another runner's).
_HELD: set[Path] = set()


@contextlib.contextmanager
def lock(campaign: Campaign) -> Iterator[None]:
    """One runner per campaign directory at a time."""
    with writing(campaign.path / _LOCK):
        fh = open(campaign.path / _LOCK, "a+")  # noqa: SIM115 — held for the lock's lifetime
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
    lock_path = path / _LOCK
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
    where: str  # "on disk" or "in memory (…)"
    skipped: list[str]  # run directories left out, with the reason

    def __str__(self) -> str:
        where = "" if self.where == "on disk" else f" {self.where}"
        return (
            f"rebuilt from the run directories{where} ({self.done} done, {self.failed} failed, "
            f"{self.planned - self.done - self.failed} not run)"
        )


def rebuild_index(campaign: Campaign, *, in_memory_ok: bool = True) -> Rebuilt:
    """A new index from plan.json and runs/ (the raw files are the truth), replacing the old
    one atomically; where the campaign directory cannot be written, an index in memory for this
    process (`in_memory_ok`), else the StorageError. Refused while another blkcmp runs the
    campaign."""
    plan = campaign.plan()
    held_here = campaign.path.resolve() in _HELD
    if not held_here and is_locked(campaign.path):
        raise RunError(
            f"{campaign.index_path} needs rebuilding, but another blkcmp is running this "
            f"campaign: run `blkcmp reindex {campaign.path}` once it has finished"
        )
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
        if path.is_file() and path.stat().st_size or path.is_dir() and not path.is_symlink():
            os.replace(path, path.with_name(path.name + ".damaged"))
        for suffix in _INDEX_COMPANIONS:
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        os.replace(tmp, path)
    rebuilt.where = "on disk"
    return rebuilt


def _fill(campaign: Campaign, plan: Plan, db: sqlite3.Connection) -> Rebuilt:
    name = campaign.name
    with db:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('campaign', ?)", (name,))
        add_planned(db, plan, name)
    planned = {r.run_id for r in plan.runs}
    dirs = (
        sorted(p for p in campaign.runs_dir.iterdir() if not p.name.startswith("."))
        if campaign.runs_dir.is_dir()
        else []
    )
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


def _job_measure(job: fio.Job, column: str) -> float | None:
    """A `<direction>_<measure>` column of JOB_MEASURES, read from one fio job entry."""
    if column in ("usr_cpu", "sys_cpu"):
        return getattr(job, column)
    direction, measure = column.split("_", 1)
    d = job.directions.get(direction)
    if not d or not d.used:
        return None
    if measure in ("iops", "bw_bytes"):
        return getattr(d, measure)
    if measure == "clat_mean_ns":
        lat = d.completion_latency()
        return lat.mean if lat else None
    if measure == "clat_p99_ns":
        return fio.direction_percentile(d, 99.0)
    raise ValueError(f"no reader for job column {column}")


def job_rows(output: fio.FioOutput) -> list[dict]:
    """The `jobs` rows of one fio output: one per job entry (per host in client/server mode),
    keyed by JOB_COLUMNS."""
    rows = []
    for job in output.jobs:
        values = {
            "job_index": job.index,
            "host": job.host or None,
            "job": job.jobname,
            "rw": job.option("rw") or job.option("readwrite") or "read",
            "bs": job.option("bs") or job.option("blocksize") or "4k",
            "iodepth": job.option("iodepth") or "1",
            "numjobs": job.option("numjobs") or "1",
            "error": job.error,
            "fio_version": output.fio_version,
        } | {column: _job_measure(job, column) for column in JOB_MEASURES}
        rows.append({column: values[column] for column in JOB_COLUMNS})
    return rows


def index_run_dir(campaign: Campaign, run_id: str, run_dir: Path, db=None) -> str:
    """(Re)build the index rows of a finished run from its files; returns its status.

    `db`: an open index to write to (a rebuild fills a new one); default the campaign's."""
    files = RunFiles(run_dir)
    meta = files.read_meta()
    status, error = meta.get("status", "done"), meta.get("error")
    metrics, rows, version = {}, [], meta.get("fio_version")
    cpu = files.read_cpu()
    samples: list[dict] = []
    if status == "done":
        output = files.read_fio_output()
        metrics = fio.run_metrics(output).to_dict()
        rows = job_rows(output)
        version = output.fio_version
        try:
            samples = [s.to_dict() for s in timeseries.read_run(run_dir)]
        except timeseries.TimeseriesError as exc:
            raise RunError(f"time-series log of run {run_id} unreadable: {exc}") from None
    elif meta.get("ingested_from"):  # a failed ingested run: its jobs (and their error) stay exported
        rows = job_rows(files.read_fio_output())
    with contextlib.nullcontext(db) if db is not None else campaign.index() as index:
        record_run(
            index,
            run_id,
            status=status,
            started=meta.get("started"),
            ended=meta.get("ended"),
            host=meta.get("host", ""),
            kernel=meta.get("kernel", ""),
            error=error,
            metrics=metrics,
            cpu=cpu,
            fio_version=version,
            job_rows=rows,
            boot_id=meta.get("boot_id"),
        )
        record_timeseries(index, run_id, samples)
    return status


def record_run(
    db: sqlite3.Connection,
    run_id: str,
    *,
    status: str,
    started: str | None,
    ended: str | None,
    host: str | None,
    kernel: str | None,
    error: str | None,
    metrics: dict,
    cpu: dict | None,
    fio_version: str | None,
    job_rows: list[dict],
    boot_id: str | None = None,
) -> None:
    seconds = (cpu or {}).get("seconds", {})
    values = {c: metrics.get(c) for c in RUN_METRIC_COLUMNS}
    bins = metrics.get("clat_bins")  # a dict, or already as encode_bins wrote it
    db.execute(
        "UPDATE runs SET status=?, started=?, ended=?, host=?, kernel=?, error=?, "
        + ", ".join(f"{c}=?" for c in values)
        + ", cpu_softirq_s=?, cpu_system_s=?, cpu_user_s=?, cpu_irq_s=?, block_softirqs=?, fio_version=?,"
        " clat_bins=?, boot_id=? WHERE run_id=?",
        (
            status,
            started,
            ended,
            host,
            kernel,
            error,
            *values.values(),
            seconds.get("softirq"),
            seconds.get("system"),
            seconds.get("user"),
            seconds.get("irq"),
            (cpu or {}).get("block_softirqs"),
            fio_version,
            encode_bins(bins) if isinstance(bins, dict) else bins,
            boot_id,
            run_id,
        ),
    )
    db.execute("DELETE FROM jobs WHERE run_id=?", (run_id,))
    for row in job_rows:
        cols = ["run_id"] + list(row)
        db.execute(
            f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            (run_id, *row.values()),
        )


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
    db.executemany(
        "INSERT INTO timeseries (run_id, job, metric, direction, time_ms, value) VALUES (?, ?, ?, ?, ?, ?)",
        [(run_id, s["job"], s["metric"], s["direction"], s["time_ms"], s["value"]) for s in samples],
    )


def forget_run(db: sqlite3.Connection, run_id: str) -> None:
    """Back to `planned`: the run's results are gone, so it is to be run again."""
    record_run(
        db,
        run_id,
        status="planned",
        started=None,
        ended=None,
        host=None,
        kernel=None,
        error=None,
        metrics={},
        cpu=None,
        fio_version=None,
        job_rows=[],
    )


def run_rows(campaign: Campaign) -> list[dict]:
    with campaign.index() as db:
        return [dict(r) for r in db.execute("SELECT * FROM runs ORDER BY position")]


def status_counts(campaign: Campaign) -> dict[str, int]:
    with campaign.index() as db:
        return {
            r["status"]: r["n"] for r in db.execute("SELECT status, count(*) AS n FROM runs GROUP BY status")
        }


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
    return [
        Campaign(p)
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.startswith(".") and looks_like_campaign(p)
    ]


def require_writable(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root}: not a directory (give --results a directory)")
    with writing(root):
        root.mkdir(parents=True, exist_ok=True)
    if not os.access(root, os.W_OK):
        raise storage_error(
            OSError(
                errno.EROFS if _read_only_fs(root) else errno.EACCES, "results directory is not writable"
            ),
            root,
        )


def _read_only_fs(path: Path) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def remove_partial_runs(campaign: Campaign) -> list[str]:
    """Delete the scraps of runs cut off mid-way (they are re-run); return their run ids."""
    removed = []
    for run_id, files in campaign.staged():
        shutil.rmtree(files.dir, ignore_errors=True)
        removed.append(run_id)
    return removed


def finalize_run_dir(tmp: Path, final: Path) -> None:
    if final.exists():
        raise RunError(f"{final}: a finished run directory is never overwritten")
    os.rename(tmp, final)
