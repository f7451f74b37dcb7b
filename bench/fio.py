"""fio: the job text blkcmp runs, how it invokes fio, and parsing of fio's JSON / json+ output.

Parsing accepts whatever fio prints, from fio 2.x to 3.41 (units and the sample count differ by
generation: see "Parsing" below, where everything becomes ns and bytes): text before the
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
import re
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import fio_options as fio_options_mod
from bench.errors import RunError

if TYPE_CHECKING:
    from bench.plan import PlannedRun
    from bench.targets import Target
    from bench.workload import Workload

DIRECTIONS = ("read", "write", "trim", "mixed")
FIO = os.environ.get("BLKCMP_FIO", "fio")
# Test-only seam: a program run in place of fio for measured runs (`run`) and nothing else (fio's
# option table and --parse-only still come from the real fio). The test suite points it at
# tests/fake_fio.py, which writes a recorded json+ document, to reach failure paths whose timing
# a real fio cannot be made to hit (a run failing mid-campaign, a target changed under a run).
# Never set outside the tests: its runs measure nothing.
FAKE_FIO_ENV = "BLKCMP_TEST_FAKE_FIO"


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
    # The workload was checked against the allow-list long before; this is the last line of
    # defence, so a bug can never turn one option into several lines of a job file.
    lines = []
    for key, value in options.items():
        text = _fio_value(value)
        if not _OPTION_NAME.match(key) or (text is not None and any(c in text for c in "\n\r\0")):
            raise ValueError(f"refusing to write an unchecked fio option into a job file: {key[:40]!r}")
        lines.append(key if text is None else f"{key}={text}")
    return lines


_OPTION_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

# Prefix of the time-series logs in a run's directory (fio runs there): timeseries_iops.1.log, …
TIMESERIES_PREFIX = "timeseries"


def timeseries_options(msec: int) -> dict[str, Any]:
    """What `timeseries:` makes blkcmp pass to fio: averaged IOPS, bandwidth and latency logs and
    completion-latency histograms, every `msec` milliseconds, into the job's directory."""
    return {
        "write_bw_log": TIMESERIES_PREFIX,
        "write_iops_log": TIMESERIES_PREFIX,
        "write_lat_log": TIMESERIES_PREFIX,
        "write_hist_log": TIMESERIES_PREFIX,
        "log_avg_msec": msec,
        "log_hist_msec": msec,
        "per_job_logs": 1,
    }


@dataclass(frozen=True)
class JobSpec:
    """Everything that decides the text of one fio job file."""

    name: str  # the fio job name: the target's name
    filename: str | None  # the device or file; None for ioengine=null
    fio_options: dict[str, Any]  # the workload's `fio:` block
    point: dict[str, Any]  # this matrix point's options
    target_options: dict[str, Any]  # what the target imposes (ioengine=null, size, ...)
    runtime: float
    ramp_time: float
    comments: tuple[str, ...] = ()
    timeseries_msec: int | None = None  # `timeseries:` of the workload, in milliseconds


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
    if spec.timeseries_msec:
        lines += _option_lines(timeseries_options(spec.timeseries_msec))
    lines += ["", f"[{spec.name}]"]
    # The target's own options come last: fio lets the last setting of an option win.
    lines += _option_lines(spec.point | spec.target_options)
    return "\n".join(lines) + "\n"


def job_options(options: dict[str, Any]) -> dict[str, Any]:
    """Options as they go into a job file: log paths reduced to a file name in the run directory."""
    return {
        k: (
            fio_options_mod.log_file_name(str(v))
            if fio_options_mod.fold(k) in fio_options_mod.LOG_PATH_OPTIONS and v is not None
            else v
        )
        for k, v in options.items()
    }


def job_spec(
    workload: Workload,
    run: PlannedRun,
    target: Target,
    filename: str | None,
    target_options: dict,
    campaign: str,
) -> JobSpec:
    """The job of one planned run of a campaign on one target."""
    comments = (
        f"blkcmp campaign {campaign}: target {target.name} ({target.driver}), point {run.point_key}",
        "run by hand: fio --output-format=json+ <this file>",
    )
    return JobSpec(
        name=target.name,
        filename=filename,
        fio_options=job_options(workload.fio),
        point=job_options(run.point),
        target_options=target_options,
        runtime=workload.runtime,
        ramp_time=workload.ramp_time,
        comments=comments,
        timeseries_msec=workload.timeseries_msec(),
    )


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
    # fio's own cost: CPU seconds and peak RSS of fio and of the job processes it waited for
    usage: dict[str, float] | None = None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def command(job_path: Path, output_path: Path, fio: str = FIO) -> list[str]:
    return [fio, "--output-format=json+", f"--output={output_path}", str(job_path)]


def run(
    job_path: Path,
    output_path: Path,
    *,
    timeout_s: float,
    fio: str | None = None,
    extra_args: list[str] | None = None,
) -> Invocation:
    """Run fio on one job file; fio's JSON goes to output_path. Ctrl-C stops fio too."""
    fio = fio or os.environ.get(FAKE_FIO_ENV) or FIO
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
    from bench import ledger, procs

    record = {"what": "fio", "names": sorted({"fio", Path(fio).name[:15]}), "argv": cmd, "after": time.time()}
    started, t0 = utc_now(), time.monotonic()
    rid, proc = None, None
    try:
        # Stop signals held from the record on and while it is forgotten: a Ctrl-C landing
        # between the two steps of either would leave a record of a fio that never ran.
        with procs.stop_signals_held() as mask:
            rid = ledger.register("processes", record)
            try:
                proc = subprocess.Popen(
                    cmd,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=job_path.parent,
                    start_new_session=True,
                    preexec_fn=lambda: _in_child(mask),
                )
            except FileNotFoundError:
                raise RunError(f"fio not found ({fio}); run scripts/install.sh or set BLKCMP_FIO") from None
            record |= {"pid": proc.pid, "start": procs.start_time(proc.pid)}
            ledger.update(rid, record)
        # fio is reaped by wait4 (for its resource usage), not by communicate(): its output is
        # read meanwhile, so it never blocks on a full pipe.
        stdout, stderr = _drain(proc.stdout), _drain(proc.stderr)
        if (reaped := _reap(proc, timeout_s)) is None:
            raise RunError(f"fio did not finish within {timeout_s:.0f} s: {' '.join(cmd)}")
        proc.returncode, usage = reaped
    except BaseException:
        if proc is not None:
            _stop(proc, record)
        raise
    finally:
        with procs.stop_signals_held():
            if rid is not None and not ledger.processes_left(record):
                ledger.forget(rid)
    return Invocation(
        cmd, proc.returncode, started, utc_now(), time.monotonic() - t0, stderr(), stdout(), usage
    )


def _drain(stream) -> Callable[[], str]:
    """Read a pipe to its end in a thread; the returned function gives what was read.

    It waits a little for the end (fio's job processes, which share the pipe, are gone once fio
    has exited) and otherwise gives what came so far."""
    chunks: list[bytes] = []

    def read() -> None:
        with stream:
            for chunk in iter(lambda: stream.read1(65536), b""):
                chunks.append(chunk)

    reader = threading.Thread(target=read, name="fio-output", daemon=True)
    reader.start()

    def text() -> str:
        reader.join(timeout=10)
        return b"".join(chunks).decode("utf-8", errors="replace")

    return text


def _reap(proc: subprocess.Popen, timeout_s: float) -> tuple[int, dict[str, float]] | None:
    """Wait for fio to exit and reap it with wait4: (exit code, its resource usage), or None
    after timeout_s (fio still running).

    The usage is the kernel's own accounting of fio and of every job process fio waited for
    (user and system CPU seconds, peak RSS). psutil cannot give it: it reads live processes
    only, and fio's job processes are gone before fio exits."""
    deadline = time.monotonic() + timeout_s
    try:
        exited = os.pidfd_open(proc.pid)
    except OSError:  # a kernel before 5.3: poll instead
        exited = None
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status), {
                    "user_s": round(usage.ru_utime, 6),
                    "system_s": round(usage.ru_stime, 6),
                    "max_rss_kib": usage.ru_maxrss,
                }
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if exited is not None:
                select.select([exited], [], [], left)
            else:
                time.sleep(min(0.02, left))
    finally:
        if exited is not None:
            os.close(exited)


def _stop(proc: subprocess.Popen, record: dict) -> None:
    """SIGINT fio (it stops its jobs and exits), SIGKILL if it will not; then end any job process
    left over (they leave fio's session, so signals to its process group miss them)."""
    from bench import ledger

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
    ledger.kill_processes(record)


def version(fio: str = FIO) -> str:
    try:
        out = subprocess.run([fio, "--version"], capture_output=True, text=True, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


# How long fio may take to answer a question (its version, options, a job's parse). Generous:
# in an emulated guest on a busy host, fio's first start (loaded over 9p) has taken over 30 s;
# a fio that never answers is still caught.
ANSWER_TIMEOUT_S = 180


def parse_only(job_text: str, fio: str = FIO) -> str | None:
    """fio's verdict on a job file's options without running it: None when fio accepts it.

    The job goes to fio on its standard input, so checking leaves no file behind.
    """
    try:
        out = subprocess.run(
            [fio, "--parse-only", "-"],
            input=job_text,
            capture_output=True,
            text=True,
            timeout=ANSWER_TIMEOUT_S,
        )
    except FileNotFoundError:
        raise RunError(f"fio not found ({fio}); run scripts/install.sh or set BLKCMP_FIO") from None
    except subprocess.TimeoutExpired:
        raise RunError(f"fio --parse-only did not answer within {ANSWER_TIMEOUT_S} s") from None
    if out.returncode == 0:
        return None
    lines = [l.strip() for l in (out.stderr + out.stdout).splitlines() if l.strip()]
    return "; ".join(lines[:3]) or f"fio --parse-only exited {out.returncode}"


# ------------------------------------------------------------------------------------------
# Parsing
#
# fio's JSON changed twice in ways that matter here:
#   fio 2.x       latencies `slat`/`clat`/`lat` in microseconds (percentiles too), `io_bytes` in
#                 KiB, `bw` in KiB/s; json+ bins keyed by bucket *index* (plus FIO_IO_U_PLAT_*
#                 entries) in microseconds; no sample count.
#   fio 3.0–3.16  `slat_ns`/`clat_ns`/`lat_ns` in nanoseconds, `io_bytes` in bytes (+ `io_kbytes`),
#                 json+ bins keyed by latency in ns; still no sample count `N`.
#   fio >= 3.17   the same with `N` in every latency object.
# Everything is converted to ns and bytes here; the rest of blkcmp never sees a generation.


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


US = 1000.0  # ns per µs: fio 2.x writes latencies in µs


def _scaled(value: Any, scale: float) -> float | None:
    number = _num(value)
    if number is None:
        return None
    # fio 2.x prints µs with two decimals: rounding to the picosecond keeps 255.34 µs = 255340 ns
    # exactly instead of 255340.00000000003
    return number if scale == 1.0 else round(number * scale, 3)


def _legacy_bin_value(index: int, bits: int, val: int) -> int:
    """fio 2.x stat.c plat_idx_to_val: the latency (µs) a json+ bucket index stands for."""
    if index < (val << 1):
        return index
    error_bits = (index >> bits) - 1
    base = 1 << (error_bits + bits)
    return base + int((index % val + 0.5) * (1 << error_bits))


def _bins(data: dict, scale: float) -> dict[int, int]:
    raw = data.get("bins") or {}
    if not isinstance(raw, dict):
        return {}
    if "FIO_IO_U_PLAT_BITS" in raw:  # fio 2.x json+: keyed by bucket index, values in µs
        bits = int(raw["FIO_IO_U_PLAT_BITS"])
        val = int(raw.get("FIO_IO_U_PLAT_VAL", 1 << bits))
        return {
            _legacy_bin_value(int(k), bits, val) * int(US): int(v)
            for k, v in raw.items()
            if k.isdigit() and int(v)
        }
    return {int(float(k)) * int(scale): int(v) for k, v in raw.items()}


@dataclass
class Latency:
    """One of fio's latency objects, in ns whatever the fio generation."""

    mean: float | None
    stddev: float | None
    min: float | None
    max: float | None
    n: int  # samples: fio's `N` (>= 3.17), else the direction's I/O count
    percentiles: dict[float, float] = field(default_factory=dict)
    bins: dict[int, int] = field(default_factory=dict)
    counted_by_fio: bool = True  # False when n is the direction's I/O count (no `N` in the file)

    @classmethod
    def parse(cls, data: dict | None, *, scale: float = 1.0, ios: int = 0) -> Latency | None:
        if not isinstance(data, dict) or not data:
            return None
        pct = {}
        for key, value in (data.get("percentile") or {}).items():
            p, v = _num(key), _scaled(value, scale)
            if p is not None and 0.0 < p <= 100.0 and v is not None:  # fio pads with "0.00": 0
                pct[p] = v
        n = _num(data.get("N"))
        return cls(
            _scaled(data.get("mean"), scale),
            _scaled(data.get("stddev"), scale),
            _scaled(data.get("min"), scale),
            _scaled(data.get("max"), scale),
            int(n) if n is not None else ios,
            pct,
            _bins(data, scale),
            n is not None,
        )

    @property
    def has_values(self) -> bool:
        # all zeros: fio did not measure it (disable_clat=1, disable_lat=1), not a 0 ns latency
        return self.n > 0 and self.mean is not None and not (self.mean == 0 and not self.max)

    @property
    def has_percentiles(self) -> bool:
        return bool(self.bins or self.percentiles)


@dataclass
class Direction:
    iops: float
    bw_bytes: float
    io_bytes: float
    runtime_ms: float
    total_ios: int  # as fio wrote it; 0 when absent (fio < 2.2)
    slat: Latency | None
    clat: Latency | None
    lat: Latency | None
    microseconds: bool = False  # fio 2.x units in the file (converted here)

    @property
    def used(self) -> bool:
        return self.total_ios > 0 or self.io_bytes > 0

    @property
    def ios(self) -> int:
        """Completed I/Os: fio's count, or IOPS × runtime when the file has none (fio < 2.2)."""
        if self.total_ios:
            return self.total_ios
        return int(round(self.iops * self.runtime_ms / 1000.0))

    @classmethod
    def parse(cls, data: dict, *, fio_major: int | None = None) -> Direction:
        """One direction's object; fio_major (from "fio version") decides the units when the
        keys alone do not (a direction without any latency object)."""
        if any(k in data for k in ("clat_ns", "lat_ns", "slat_ns")):
            legacy = False
        elif any(k in data for k in ("clat", "lat", "slat")):
            legacy = True
        else:
            legacy = fio_major is not None and fio_major < 3
        scale = US if legacy else 1.0
        bw_bytes = _num(data.get("bw_bytes"))
        if bw_bytes is None:  # fio < 3.2: `bw` in KiB/s only
            bw_bytes = (_num(data.get("bw")) or 0.0) * 1024
        io_kbytes = _num(data.get("io_kbytes"))
        if io_kbytes is not None:
            io_bytes = _num(data.get("io_bytes"))
            io_bytes = io_kbytes * 1024 if io_bytes is None else io_bytes
        else:  # fio 2.x: `io_bytes` holds KiB
            io_bytes = (_num(data.get("io_bytes")) or 0.0) * (1024 if legacy else 1)
        iops, runtime = _num(data.get("iops")) or 0.0, _num(data.get("runtime")) or 0.0
        total_ios = int(_num(data.get("total_ios")) or 0)
        ios = total_ios or int(round(iops * runtime / 1000.0))
        suffix = "" if legacy else "_ns"
        return cls(
            iops,
            bw_bytes,
            io_bytes,
            runtime,
            total_ios,
            Latency.parse(data.get("slat" + suffix), scale=scale, ios=ios),
            Latency.parse(data.get("clat" + suffix), scale=scale, ios=ios),
            Latency.parse(data.get("lat" + suffix), scale=scale, ios=ios),
            legacy,
        )

    def completion_latency(self) -> Latency | None:
        """clat, or lat when only total latency was kept."""
        for lat in (self.clat, self.lat):
            if lat is not None and lat.has_values:
                return lat
        return None

    def latency_percentiles(self) -> Latency | None:
        """Where this direction's completion-latency percentiles are: clat's, or lat's when fio
        wrote only those (lat_percentiles=1 with clat_percentiles=0)."""
        for lat in (self.clat, self.lat):
            if lat is not None and lat.n > 0 and lat.has_percentiles:
                return lat
        return None


@dataclass
class Job:
    jobname: str
    index: int  # position among this output's job entries
    groupid: int
    host: str  # "" unless client/server
    port: int | None
    error: int
    options: dict[str, str]  # global options merged with the job's own
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

    @property
    def runtime_ms(self) -> float:
        """The longest direction's runtime: how long this entry measured."""
        return max((d.runtime_ms for d in self.directions.values() if d.used), default=0.0)

    def cpu_seconds(self) -> float | None:
        """CPU time of fio's own threads (usr + sys) for this entry.

        fio's usr_cpu/sys_cpu are percent of the entry's total job run time: `job_runtime`
        (fio >= 3.5, summed over group-reported jobs) or, before that, the runtime of the
        entry times numjobs when it reports a group."""
        if self.usr_cpu is None or self.sys_cpu is None:
            return None
        runtime_ms = self.job_runtime_ms
        if not runtime_ms:
            numjobs = option_int(self.option("numjobs")) or 1
            grouped = self.option("group_reporting") not in (None, "0")
            runtime_ms = self.runtime_ms * (numjobs if grouped else 1)
        if not runtime_ms:
            return None
        return (self.usr_cpu + self.sys_cpu) / 100.0 * runtime_ms / 1000.0

    @property
    def error_text(self) -> str:
        return f"fio job {self.jobname!r} failed: error {self.error} ({os.strerror(self.error)})"


@dataclass
class FioOutput:
    fio_version: str
    timestamp: int | None
    client_mode: bool
    jobs: list[Job]
    disk_util: list[dict]
    raw: dict

    @property
    def error(self) -> str | None:
        """The first job error fio reports, as one line; None when every job succeeded."""
        failed = [j for j in self.jobs if j.error]
        return failed[0].error_text if failed else None


def option_int(text: str | None) -> int | None:
    """An integer fio option as fio reads it ('01' is 1); None when it is not one."""
    if text is None:
        return None
    try:
        return int(str(text).strip(), 10)
    except ValueError:
        return None


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
    version = str(data.get("fio version", "unknown"))
    major = version_major(version)
    jobs: list[Job] = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("jobname") == "All clients":
            continue
        host = str(entry.get("hostname", "") or "")
        port = int(entry["port"]) if _num(entry.get("port")) is not None else None
        options = dict(globals_.get((host, port)) or globals_.get(("", None)) or {})
        options.update({k: str(v) for k, v in (entry.get("job options") or {}).items()})
        directions = {
            d: Direction.parse(entry[d], fio_major=major)
            for d in DIRECTIONS
            if isinstance(entry.get(d), dict)
        }
        jobs.append(
            Job(
                jobname=str(entry.get("jobname", "")),
                index=len(jobs),
                groupid=int(_num(entry.get("groupid")) or 0),
                host=host,
                port=port,
                error=int(_num(entry.get("error")) or 0),
                options=options,
                directions=directions,
                usr_cpu=_num(entry.get("usr_cpu")),
                sys_cpu=_num(entry.get("sys_cpu")),
                ctx=_int_or_none(entry.get("ctx")),
                majf=_int_or_none(entry.get("majf")),
                minf=_int_or_none(entry.get("minf")),
                job_runtime_ms=_num(entry.get("job_runtime")),
                elapsed_s=_num(entry.get("elapsed")),
                job_start=_int_or_none(entry.get("job_start")),
            )
        )
    if not jobs:
        raise FioParseError("fio output holds no job results")
    disk_util = data.get("disk_util") if isinstance(data.get("disk_util"), list) else []
    return FioOutput(version, _int_or_none(data.get("timestamp")), client_mode, jobs, disk_util, data)


def version_major(version: str) -> int | None:
    """3 for "fio-3.16", 2 for "fio-2.18"; None when unreadable."""
    match = re.match(r"\s*(?:fio-)?(\d+)\.", version)
    return int(match.group(1)) if match else None


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


def direction_percentile(direction: Direction, percent: float) -> float | None:
    """One direction's completion-latency percentile: from its json+ bins, else fio's own value."""
    lat = direction.latency_percentiles()
    if lat is None:
        return None
    if lat.bins:
        return percentile_from_bins(lat.bins, percent)
    return lat.percentiles.get(float(percent))


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
    fio_cpu_s: float | None = None  # CPU time of fio's threads over the run (usr + sys)
    runtime_s: float | None = None  # the longest runtime fio measured among the job entries
    # the run's completion-latency json+ histogram, merged over its entries and directions
    # ({} without json+): kept in the index so figures never re-read the raw output
    clat_bins: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _sum_or_none(values: list[float]) -> float | None:
    return sum(values) if values else None


def used_directions(output: FioOutput) -> list[Direction]:
    return [d for job in output.jobs for d in job.directions.values() if d.used]


def run_metrics(output: FioOutput) -> RunMetrics:
    per_dir: dict[str, list[Direction]] = {d: [] for d in DIRECTIONS}
    for job in output.jobs:
        for name, d in job.directions.items():
            if d.used:
                per_dir[name].append(d)
    used = [d for ds in per_dir.values() for d in ds]
    lats = [lat for d in used if (lat := d.completion_latency())]
    weighted = [(lat.mean, lat.n) for lat in lats]
    clat_mean = (sum(m * n for m, n in weighted) / sum(n for _, n in weighted)) if weighted else None
    p50 = p99 = p999 = None
    sources = [d.latency_percentiles() for d in used]
    bins = merged_bins([s for s in sources if s is not None])
    if sources and all(s is not None and s.bins for s in sources):
        from bench.stats.histogram import percentiles_from_bins

        pct = percentiles_from_bins(bins, (50.0, 99.0, 99.9))  # one merge, one pass
        p50, p99, p999 = (None if math.isnan(v) else float(v) for v in pct.values())
    elif len(sources) == 1 and sources[0] is not None:
        # plain JSON, one job entry and direction: fio's own percentiles are the run's
        pct = sources[0].percentiles
        p50, p99, p999 = pct.get(50.0), pct.get(99.0), pct.get(99.9)
    # (several entries without json+ bins: their percentiles cannot be pooled; see missing_reason)
    cpu_jobs = [j for j in output.jobs if j.usr_cpu is not None]
    cpu_seconds = [s for j in output.jobs if (s := j.cpu_seconds()) is not None]
    runtime_ms = max((j.runtime_ms for j in output.jobs), default=0.0)
    return RunMetrics(
        iops=sum(d.iops for d in used),
        read_iops=_sum_or_none([d.iops for d in per_dir["read"]]),
        write_iops=_sum_or_none([d.iops for d in per_dir["write"]]),
        mixed_iops=_sum_or_none([d.iops for d in per_dir["mixed"]]),
        bw_bytes=sum(d.bw_bytes for d in used),
        clat_mean_ns=clat_mean,
        clat_p50_ns=p50,
        clat_p99_ns=p99,
        clat_p999_ns=p999,
        usr_cpu=(sum(j.usr_cpu for j in cpu_jobs) / len(cpu_jobs)) if cpu_jobs else None,
        sys_cpu=(sum(j.sys_cpu or 0.0 for j in cpu_jobs) / len(cpu_jobs)) if cpu_jobs else None,
        ctx=sum(j.ctx or 0 for j in output.jobs) if output.jobs else None,
        total_ios=sum(d.ios for d in used),
        errors=sum(1 for j in output.jobs if j.error),
        fio_cpu_s=sum(cpu_seconds) if cpu_seconds and len(cpu_seconds) == len(output.jobs) else None,
        runtime_s=runtime_ms / 1000.0 if runtime_ms else None,
        clat_bins=bins,
    )


# The run metrics that come from latency objects, and the percentile each one reads.
LATENCY_PERCENTILES = {"clat_p50_ns": 50.0, "clat_p99_ns": 99.0, "clat_p999_ns": 99.9}


def missing_reason(output: FioOutput, column: str) -> str:
    """Why this output gives no value for a run metric column: one clause, for a warning."""
    version = output.fio_version
    if output.error:
        return output.error
    used = used_directions(output)
    if not used:
        return f"{version} reports no I/O in any direction"
    if column == "clat_mean_ns":
        if not any(d.clat or d.lat for d in used):
            return f"{version} wrote no completion latency (no clat/lat objects)"
        return f"{version} wrote completion latency as zeros (not measured: disable_clat/disable_lat)"
    if column in LATENCY_PERCENTILES:
        sources = [d.latency_percentiles() for d in used]
        if not any(sources):
            return (
                f"{version} wrote no completion-latency percentiles "
                "(clat_percentiles=0, or a fio without them)"
            )
        if len(sources) > 1 and not all(s is not None and s.bins for s in sources):
            return (
                f"{len(sources)} job entries/directions with plain-JSON percentiles only: percentiles "
                "cannot be pooled without json+ bins (use --output-format=json+ or group_reporting)"
            )
        wanted = LATENCY_PERCENTILES[column]
        return f"{version} wrote no p{wanted:g} (percentile_list without it)"
    for direction in ("read", "write", "mixed"):
        if column == f"{direction}_iops":
            return f"no {direction} I/O in this run"
    if column in ("usr_cpu", "sys_cpu", "fio_cpu_s"):
        return f"{version} wrote no usr/sys CPU"
    return f"{version} has no value for {column}"
