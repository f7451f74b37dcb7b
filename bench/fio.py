"""fio: the job text blkcmp runs, how it invokes fio, and parsing of fio's JSON / json+ output.

Parsing accepts whatever fio prints, from any version we know (3.33 … 3.41): text before the
first `{` and after the JSON document, `jobs` or `client_stats` (client/server mode; the
"All clients" aggregate is skipped), `global options` as an object or a per-server array,
`disk_util` missing, `mixed` directions (unified_rw_reporting), and one job entry per process
when numjobs > 1 without group_reporting.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.errors import RunError

DIRECTIONS = ("read", "write", "trim", "mixed")
FIO = os.environ.get("BLKCMP_FIO", "fio")


class FioParseError(ValueError):
    """fio output that holds no usable JSON document."""


# ------------------------------------------------------------------------------------------
# Job text


def _fio_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{int(round(value * 1000))}ms"


def _option_lines(options: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in options.items():
        text = _fio_value(value)
        lines.append(key if text is None else f"{key}={text}")
    return lines


@dataclass(frozen=True)
class JobSpec:
    """Everything that decides the text of one fio job file."""

    name: str                      # the fio job name: the target's name
    filename: str | None           # the device or file; None for ioengine=null
    fio_options: dict[str, Any]    # the workload's `fio:` block
    point: dict[str, Any]          # this matrix point's options
    target_options: dict[str, Any]  # what the target imposes (ioengine=null, size, ...)
    runtime: float
    ramp_time: float
    comments: tuple[str, ...] = ()


def job_text(spec: JobSpec) -> str:
    """The fio job file for one run; the same text is exported by `blkcmp plan --export-fio`."""
    lines = [f"# {c}" for c in spec.comments]
    lines.append("[global]")
    if spec.filename is not None:
        lines.append(f"filename={spec.filename}")
    lines += ["time_based=1", f"runtime={_seconds(spec.runtime)}"]
    if spec.ramp_time:
        lines.append(f"ramp_time={_seconds(spec.ramp_time)}")
    lines += _option_lines(spec.fio_options)
    lines += ["", f"[{spec.name}]"]
    # The target's own options come last: fio lets the last setting of an option win.
    lines += _option_lines(spec.point | spec.target_options)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------
# Invocation


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # fio must not outlive blkcmp (a SIGKILLed runner would otherwise leave fio holding a
    # device that `blkcmp cleanup` then cannot remove).
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _in_child(mask: set) -> None:
    # The parent holds its stop signals while it forks (bench.procs.stop_signals_held): fio
    # must not inherit that, or Ctrl-C would never reach it.
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    _die_with_parent()


@dataclass
class Invocation:
    command: list[str]
    returncode: int
    started: str
    ended: str
    elapsed_s: float
    stderr: str
    stdout: str


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def command(job_path: Path, output_path: Path, fio: str = FIO) -> list[str]:
    return [fio, "--output-format=json+", f"--output={output_path}", str(job_path)]


def run(job_path: Path, output_path: Path, *, timeout_s: float, fio: str = FIO,
        extra_args: list[str] | None = None) -> Invocation:
    """Run fio on one job file; fio's JSON goes to output_path. Ctrl-C stops fio too."""
    # fio runs in the job's directory: relative paths (the default results/) would miss.
    job_path, output_path = Path(job_path).absolute(), Path(output_path).absolute()
    cmd = command(job_path, output_path, fio)
    if extra_args:
        cmd[1:1] = extra_args
    # fio's per-job processes outlive a SIGKILLed blkcmp (the death signal reaches fio, not the
    # job processes it forks, which leave its session): fio is recorded before it exists (its
    # program name and exact command line, which its job processes share), then by pid and start
    # time, so `blkcmp cleanup` and the next session can end exactly these processes. The record
    # goes only once none of them is left.
    from bench import procs
    from bench.targets import state
    record = {"what": "fio", "names": sorted({"fio", Path(fio).name[:15]}), "argv": cmd,
              "after": time.time()}
    rid = state.register("processes", record)
    started, t0 = utc_now(), time.monotonic()
    proc = None
    try:
        with procs.stop_signals_held() as mask:
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        cwd=job_path.parent, start_new_session=True,
                                        preexec_fn=lambda: _in_child(mask))
            except FileNotFoundError:
                raise RunError(f"fio not found ({fio}); run scripts/install.sh or set BLKCMP_FIO") from None
            record |= {"pid": proc.pid, "start": procs.start_time(proc.pid)}
            state.update(rid, record)
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise RunError(f"fio did not finish within {timeout_s:.0f} s: {' '.join(cmd)}") from None
    except BaseException:
        if proc is not None:
            _stop(proc, record)
        raise
    finally:
        if not state.processes_left(record):
            state.forget(rid)
    return Invocation(cmd, proc.returncode, started, utc_now(), time.monotonic() - t0, stderr, stdout)


def _stop(proc: subprocess.Popen, record: dict) -> None:
    """SIGINT fio (it stops its jobs and exits), SIGKILL if it will not; then end any job process
    left over (they leave fio's session, so signals to its process group miss them)."""
    from bench.targets import state
    for sig, wait in ((signal.SIGINT, 5), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    state.kill_processes(record)


def version(fio: str = FIO) -> str:
    try:
        out = subprocess.run([fio, "--version"], capture_output=True, text=True, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def parse_only(job_path: Path, fio: str = FIO) -> str | None:
    """fio's verdict on a job file's options without running it: None when fio accepts it."""
    try:
        out = subprocess.run([fio, "--parse-only", str(job_path)], capture_output=True, text=True,
                             timeout=30)
    except FileNotFoundError:
        raise RunError(f"fio not found ({fio}); run scripts/install.sh or set BLKCMP_FIO") from None
    if out.returncode == 0:
        return None
    lines = [l.strip() for l in (out.stderr + out.stdout).splitlines() if l.strip()]
    return "; ".join(lines[:3]) or f"fio --parse-only exited {out.returncode}"


# ------------------------------------------------------------------------------------------
# Parsing


def decode(text: str) -> dict:
    """The first JSON object in fio's output, ignoring text before and after it."""
    start = text.find("{")
    while start != -1:
        try:
            data, _ = json.JSONDecoder().raw_decode(text[start:])
        except json.JSONDecodeError:
            start = text.find("{", start + 1)
            continue
        if isinstance(data, dict) and ("jobs" in data or "client_stats" in data):
            return data
        start = text.find("{", start + 1)
    raise FioParseError("no fio JSON document found (expected an object with `jobs` or `client_stats`)")


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass
class Latency:
    mean: float | None
    stddev: float | None
    min: float | None
    max: float | None
    n: int
    percentiles: dict[float, float] = field(default_factory=dict)
    bins: dict[int, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: dict | None) -> "Latency | None":
        if not data:
            return None
        pct = {float(k): float(v) for k, v in (data.get("percentile") or {}).items() if _num(v) is not None}
        bins = {int(float(k)): int(v) for k, v in (data.get("bins") or {}).items()}
        return cls(_num(data.get("mean")), _num(data.get("stddev")), _num(data.get("min")),
                   _num(data.get("max")), int(_num(data.get("N")) or 0), pct, bins)


@dataclass
class Direction:
    iops: float
    bw_bytes: float
    io_bytes: float
    runtime_ms: float
    total_ios: int
    slat: Latency | None
    clat: Latency | None
    lat: Latency | None

    @property
    def used(self) -> bool:
        return self.total_ios > 0 or self.io_bytes > 0

    @classmethod
    def parse(cls, data: dict) -> "Direction":
        bw_bytes = _num(data.get("bw_bytes"))
        if bw_bytes is None:  # very old fio: `bw` in KiB/s only
            bw_bytes = (_num(data.get("bw")) or 0.0) * 1024
        io_bytes = _num(data.get("io_bytes"))
        if io_bytes is None:
            io_bytes = (_num(data.get("io_kbytes")) or 0.0) * 1024
        return cls(_num(data.get("iops")) or 0.0, bw_bytes, io_bytes, _num(data.get("runtime")) or 0.0,
                   int(_num(data.get("total_ios")) or 0), Latency.parse(data.get("slat_ns")),
                   Latency.parse(data.get("clat_ns")), Latency.parse(data.get("lat_ns")))

    def completion_latency(self) -> Latency | None:
        """clat, or lat when only total latency was kept (e.g. lat_percentiles=1)."""
        if self.clat and self.clat.n:
            return self.clat
        if self.lat and self.lat.n:
            return self.lat
        return None


@dataclass
class Job:
    jobname: str
    index: int                    # position among this output's job entries
    groupid: int
    host: str                     # "" unless client/server
    port: int | None
    error: int
    options: dict[str, str]       # global options merged with the job's own
    directions: dict[str, Direction]
    usr_cpu: float | None
    sys_cpu: float | None
    ctx: int | None
    majf: int | None
    minf: int | None
    job_runtime_ms: float | None
    elapsed_s: float | None
    job_start: int | None

    def option(self, name: str) -> str | None:
        return self.options.get(name)


@dataclass
class FioOutput:
    fio_version: str
    timestamp: int | None
    client_mode: bool
    jobs: list[Job]
    disk_util: list[dict]
    raw: dict


def _global_options(data: dict) -> dict[tuple[str, int | None], dict[str, str]]:
    """Global options per (hostname, port); key ("", None) holds the shared or only set."""
    glob = data.get("global options")
    out: dict[tuple[str, int | None], dict[str, str]] = {}
    if isinstance(glob, dict):
        out[("", None)] = {k: str(v) for k, v in glob.items()}
    elif isinstance(glob, list):
        for entry in glob:
            if isinstance(entry, dict):
                host = str(entry.get("hostname", ""))
                port = int(entry["port"]) if _num(entry.get("port")) is not None else None
                out[(host, port)] = {k: str(v) for k, v in entry.items() if k not in ("hostname", "port")}
    return out


def parse(text_or_data: str | dict) -> FioOutput:
    data = decode(text_or_data) if isinstance(text_or_data, str) else text_or_data
    client_mode = "client_stats" in data
    entries = data.get("client_stats") if client_mode else data.get("jobs")
    if not isinstance(entries, list):
        raise FioParseError("`jobs` is not a list")
    globals_ = _global_options(data)
    jobs: list[Job] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("jobname") == "All clients":
            continue
        host = str(entry.get("hostname", "") or "")
        port = int(entry["port"]) if _num(entry.get("port")) is not None else None
        options = dict(globals_.get((host, port)) or globals_.get(("", None)) or {})
        options.update({k: str(v) for k, v in (entry.get("job options") or {}).items()})
        directions = {d: Direction.parse(entry[d]) for d in DIRECTIONS if isinstance(entry.get(d), dict)}
        jobs.append(Job(
            jobname=str(entry.get("jobname", "")), index=len(jobs),
            groupid=int(_num(entry.get("groupid")) or 0), host=host, port=port,
            error=int(_num(entry.get("error")) or 0), options=options, directions=directions,
            usr_cpu=_num(entry.get("usr_cpu")), sys_cpu=_num(entry.get("sys_cpu")),
            ctx=_int_or_none(entry.get("ctx")), majf=_int_or_none(entry.get("majf")),
            minf=_int_or_none(entry.get("minf")), job_runtime_ms=_num(entry.get("job_runtime")),
            elapsed_s=_num(entry.get("elapsed")), job_start=_int_or_none(entry.get("job_start")),
        ))
    if not jobs:
        raise FioParseError("fio output holds no job results")
    disk_util = data.get("disk_util") if isinstance(data.get("disk_util"), list) else []
    return FioOutput(str(data.get("fio version", "unknown")), _int_or_none(data.get("timestamp")),
                     client_mode, jobs, disk_util, data)


def _int_or_none(value: Any) -> int | None:
    number = _num(value)
    return None if number is None else int(number)


# ------------------------------------------------------------------------------------------
# Summaries of a run (all of its job entries together)


def percentile_from_bins(bins: dict[int, int], percent: float) -> float | None:
    """fio's own percentile rule on a json+ histogram (None when it is empty)."""
    # Imported here: bench.stats pulls in scipy, which every CLI start would otherwise pay for.
    from bench.stats.histogram import percentiles_from_bins
    value = percentiles_from_bins(bins, [percent])[float(percent)] if bins else math.nan
    return None if math.isnan(value) else float(value)


def merged_bins(latencies: list[Latency]) -> dict[int, int]:
    from bench.stats.histogram import merge_bins
    return merge_bins(lat.bins for lat in latencies)


@dataclass
class RunMetrics:
    """One number per metric for a whole run, summed or pooled over its job entries."""

    iops: float
    read_iops: float | None
    write_iops: float | None
    mixed_iops: float | None
    bw_bytes: float
    clat_mean_ns: float | None
    clat_p50_ns: float | None
    clat_p99_ns: float | None
    clat_p999_ns: float | None
    usr_cpu: float | None
    sys_cpu: float | None
    ctx: int | None
    total_ios: int
    errors: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _sum_or_none(values: list[float]) -> float | None:
    return sum(values) if values else None


def run_metrics(output: FioOutput) -> RunMetrics:
    per_dir: dict[str, list[Direction]] = {d: [] for d in DIRECTIONS}
    for job in output.jobs:
        for name, d in job.directions.items():
            if d.used:
                per_dir[name].append(d)
    used = [d for ds in per_dir.values() for d in ds]
    lats = [lat for d in used if (lat := d.completion_latency())]
    total_ios = sum(d.total_ios for d in used)
    weighted = [(lat.mean, lat.n) for lat in lats if lat.mean is not None and lat.n]
    clat_mean = (sum(m * n for m, n in weighted) / sum(n for _, n in weighted)) if weighted else None
    if len(lats) == 1 and lats[0].percentiles and not lats[0].bins:
        pct = lats[0].percentiles
        p50, p99, p999 = pct.get(50.0), pct.get(99.0), pct.get(99.9)
    else:
        bins = merged_bins(lats)
        p50, p99, p999 = (percentile_from_bins(bins, p) for p in (50.0, 99.0, 99.9))
    cpu_jobs = [j for j in output.jobs if j.usr_cpu is not None]
    return RunMetrics(
        iops=sum(d.iops for d in used),
        read_iops=_sum_or_none([d.iops for d in per_dir["read"]]),
        write_iops=_sum_or_none([d.iops for d in per_dir["write"]]),
        mixed_iops=_sum_or_none([d.iops for d in per_dir["mixed"]]),
        bw_bytes=sum(d.bw_bytes for d in used),
        clat_mean_ns=clat_mean, clat_p50_ns=p50, clat_p99_ns=p99, clat_p999_ns=p999,
        usr_cpu=(sum(j.usr_cpu for j in cpu_jobs) / len(cpu_jobs)) if cpu_jobs else None,
        sys_cpu=(sum(j.sys_cpu or 0.0 for j in cpu_jobs) / len(cpu_jobs)) if cpu_jobs else None,
        ctx=sum(j.ctx or 0 for j in output.jobs) if output.jobs else None,
        total_ios=total_ios,
        errors=sum(1 for j in output.jobs if j.error),
    )
