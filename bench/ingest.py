"""`blkcmp ingest`: bring fio JSON produced elsewhere into a campaign directory.

Files run by hand, by other tools, or by fio's client/server mode become runs like blkcmp's own:
the raw file is kept in the run's directory (with the run's record and a job file rebuilt from
the options fio wrote), the point is read from the job options (rw, bs, iodepth, numjobs, and
rwmixread for mixed workloads; spellings normalised by bench.points), and each (target, point)
gets the next repetition number.  A job that fio reports as failed (`"error": N`) makes a failed
run, kept and indexed with its error.  What the files say about how they were run — runtime,
ramp time, fio versions, hostnames, start times — goes into the plan and the environment record.

Every file is parsed once, before anything is written (a bad file leaves the campaign as it
was); the whole batch then costs one flush to disk (syncfs, instead of an fsync per file), one
plan write and one index transaction, so ingesting N files is O(N), not O(N²).  Run
directories are assembled under runs/.tmp-<run_id> and renamed only after the flush: an
interrupted ingest leaves complete run directories or scraps, never a half-written run.

Every file is checked before anything is written (`check_document`): fields of the wrong type,
non-numeric latency bins, nesting too deep to read, and a file with no measured I/O and no fio
error are one-line errors naming the file and the field (exit 2). `--target` and the names made
from job names follow bench/names.py's rule.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import fio, names, points, store
from bench.errors import UsageError, shorten
from bench.plan import Plan, PlannedRun, Point

POINT_KEYS = ("rw", "bs", "iodepth", "numjobs")
MIXED_RW = ("rw", "readwrite", "randrw", "trimwrite", "randtrimwrite")
NOT_FIO = "not fio's JSON output (fio --output-format=json or json+)"


def _point(job: fio.Job) -> dict:
    options = points.normalise(job.options)
    point = {k: options[k] for k in POINT_KEYS if options.get(k) is not None}
    if point.get("rw") in MIXED_RW and options.get("rwmixread") is not None:
        point["rwmixread"] = options["rwmixread"]
    return point


def _target_for(output: fio.FioOutput, path: Path, given: str | None) -> str:
    if given:
        return given
    jobnames = {j.jobname for j in output.jobs}
    return names.safe_name_from(jobnames.pop() if len(jobnames) == 1 else path.stem, "ingested")


# ------------------------------------------------------------------------------------------
# What a file must hold to be ingested: fio's JSON, with the types fio writes


class _Bad(Exception):
    """A field that is not what fio writes there."""

    def __init__(self, where: str, text: str):
        super().__init__(f"{where}: {text}")


class _NoData(Exception):
    """fio's output, but with no measured I/O in it."""


_ENTRY_NUMBERS = (
    "error",
    "groupid",
    "usr_cpu",
    "sys_cpu",
    "ctx",
    "majf",
    "minf",
    "job_runtime",
    "elapsed",
    "job_start",
    "port",
)
_DIRECTION_NUMBERS = ("iops", "bw_bytes", "bw", "io_bytes", "io_kbytes", "runtime", "total_ios")
_LATENCY_NUMBERS = ("mean", "stddev", "min", "max", "N")
_SCALARS = (str, int, float, bool)
_LAST_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last second datetime can hold


def _found(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return {dict: "an object", list: "an array"}.get(type(value), "null")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    kind = {str: "a string", bool: "a boolean"}.get(type(value), "a number")
    return f"{kind} {shorten(json.dumps(value), 40)}"


def _number(value: Any, where: str, *, integer: bool = False, optional: bool = True) -> float | None:
    """fio writes numbers (old versions some as numeric strings); finite, never a boolean."""
    if value is None and optional:
        return None
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or (integer and not number.is_integer()):
        raise _Bad(where, f"expected {'an integer' if integer else 'a number'}, found {_found(value)}")
    return number


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise _Bad(where, f"expected an object, found {_found(value)}")
    return value


def _check_options(value: Any, where: str) -> None:
    for key, option in _object(value, where).items():
        if not isinstance(option, _SCALARS):
            raise _Bad(f"{where}.{shorten(key, 40)}", f"expected a string, found {_found(option)}")


def _check_latency(value: Any, where: str) -> None:
    latency = _object(value, where)
    for key in _LATENCY_NUMBERS:
        _number(latency.get(key), f"{where}.{key}", integer=key == "N")
    for key, pct in _object(latency.get("percentile") or {}, f"{where}.percentile").items():
        _number(key, f"{where}.percentile key {shorten(repr(key), 40)}", optional=False)
        _number(pct, f"{where}.percentile[{shorten(repr(key), 40)}]")
    for key, count in _object(latency.get("bins") or {}, f"{where}.bins").items():
        if (
            type(count) is int and count >= 0 and key.isascii() and key.isdigit()
        ):  # what fio writes: no message built
            continue
        _number(
            key, f"{where}.bins key {shorten(repr(key), 40)} (a latency in ns)", integer=True, optional=False
        )
        if (_number(count, f"{where}.bins[{shorten(repr(key), 40)}]", integer=True, optional=False) or 0) < 0:
            raise _Bad(f"{where}.bins[{shorten(repr(key), 40)}]", f"expected a count, found {count}")


def _measured(direction: dict) -> bool:
    return any((_number(direction.get(k), "") or 0) > 0 for k in ("total_ios", "io_bytes", "io_kbytes"))


def check_document(data: dict) -> None:
    """Raise _Bad naming the first field that is not what fio writes there, or _NoData when no
    job entry holds measured I/O and none reports an error (a run with no data is not a run)."""
    key = "client_stats" if "client_stats" in data else "jobs"
    entries = data.get(key)
    if not isinstance(entries, list):
        raise _Bad(key, f"expected an array of job results, found {_found(entries)}")
    glob = data.get("global options")
    if isinstance(glob, list):
        for i, entry in enumerate(glob):
            _check_options(entry, f"global options[{i}]")
    elif glob is not None:
        _check_options(glob, "global options")
    stamp = _number(data.get("timestamp"), "timestamp", integer=True)
    if stamp is not None and not 0 <= stamp <= _LAST_TIMESTAMP:
        raise _Bad("timestamp", f"expected seconds since 1970, found {_found(data['timestamp'])}")
    measured = failed = False
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]"
        entry = _object(entry, where)
        if "jobname" in entry and not isinstance(entry["jobname"], str):
            raise _Bad(f"{where}.jobname", f"expected a string, found {_found(entry.get('jobname'))}")
        for field in _ENTRY_NUMBERS:
            _number(entry.get(field), f"{where}.{field}")
        failed = failed or bool(_number(entry.get("error"), ""))
        if entry.get("job options") is not None:
            _check_options(entry["job options"], f"{where}.job options")
        for name in fio.DIRECTIONS:
            if name not in entry:
                continue
            direction = _object(entry[name], f"{where}.{name}")
            for field in _DIRECTION_NUMBERS:
                _number(direction.get(field), f"{where}.{name}.{field}")
            for lat in ("slat_ns", "clat_ns", "lat_ns"):
                if direction.get(lat) is not None:
                    _check_latency(direction[lat], f"{where}.{name}.{lat}")
            measured = measured or (entry.get("jobname") != "All clients" and _measured(direction))
    if not measured and not failed:  # a job fio reports as failed is a (failed) run
        raise _NoData(f"{key}: no job entry holds any measured I/O; a run with no data is not ingested")


def read_fio_file(path: Path) -> tuple[str, fio.FioOutput]:
    """A file to ingest (its text, parsed), or a one-line UsageError naming the file and the field."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.start}); {NOT_FIO}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = fio.decode(text)
        check_document(data)
        return text, fio.parse(data)
    except RecursionError:
        raise UsageError(f"{path}: JSON nested too deeply to read; {NOT_FIO}") from None
    except _Bad as exc:
        raise UsageError(f"{path}: {exc}; {NOT_FIO}") from None
    except _NoData as exc:
        raise UsageError(f"{path}: {exc}") from None
    except fio.FioParseError as exc:
        raise UsageError(f"{path}: not fio JSON output: {exc}") from None


_TIME_UNITS = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "ms": 1e-3,
    "msec": 1e-3,
    "us": 1e-6,
    "usec": 1e-6,
}


def fio_seconds(text: str | None) -> float | None:
    """fio's time option ('30', '30s', '1m', '500ms') in seconds; None when absent or unreadable."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(text).lower())
    if not match or match.group(2) not in _TIME_UNITS:
        return None
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


@dataclass
class IngestedFile:
    """One fio output, parsed once, and what the campaign learns from it.

    Only what the index and the run directory need is kept (metrics, job rows, the rebuilt job
    file, a digest of the text), not the parsed document with its json+ bins: a 10,000-file
    batch then holds a few KB per file instead of tens.  The raw text is read again when its
    run directory is written, and must still have the digest it was checked with."""

    path: Path
    digest: str  # sha256 of the bytes checked
    target: str
    point: dict
    runtime_s: float | None  # the runtime option, else what fio measured
    ramp_time_s: float
    started: str | None
    hosts: list[str]
    fio_version: str
    error: str | None  # the first fio job error; None when every job succeeded
    metrics: dict
    job_rows: list[dict]
    job_text: str  # the job file rebuilt from the options fio wrote

    @classmethod
    def read(cls, path: Path, target: str | None) -> IngestedFile:
        text, output = read_fio_file(path)
        job = output.jobs[0]
        runtime = fio_seconds(job.option("runtime"))
        if runtime is None and job.runtime_ms:
            runtime = job.runtime_ms / 1000.0
        started = datetime.fromtimestamp(output.timestamp, UTC).isoformat() if output.timestamp else None
        error = output.error
        metrics = {} if error else fio.run_metrics(output).to_dict()
        if metrics:  # the bins as the index keeps them: text is a tenth of the dict's memory
            metrics["clat_bins"] = store.encode_bins(metrics["clat_bins"])
        return cls(
            path,
            _digest(text.encode("utf-8")),
            _target_for(output, path, target),
            _point(job),
            runtime,
            fio_seconds(job.option("ramp_time")) or 0.0,
            started,
            sorted({j.host for j in output.jobs if j.host}),
            output.fio_version,
            error,
            metrics,
            store.job_rows(output),
            job_file_text(output, path),
        )

    def raw_text(self) -> str:
        """The file's text again, as it was checked (a file changed since is an error)."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot read: {exc.strerror}") from None
        if _digest(data) != self.digest:
            raise UsageError(f"{self.path}: changed while being ingested; ingest it again")
        return data.decode("utf-8")


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def job_file_text(output: fio.FioOutput, source: Path) -> str:
    """The job options fio wrote into its output, as a job file (for the report's fio jobs)."""
    lines = [
        f"# rebuilt by blkcmp ingest from the options fio wrote in {source.name}",
        f"# ({output.fio_version}); options fio applied by default are not listed",
    ]
    seen: set[str] = set()
    for job in output.jobs:
        text = "\n".join(f"{k}={v}" if v != "" else k for k, v in job.options.items() if k != "name")
        if text in seen:  # numjobs without group_reporting: one entry per process, same options
            continue
        seen.add(text)
        lines += ["", f"[{job.jobname}]", text]
    return "\n".join(lines) + "\n"


def _open_or_create(into: Path) -> store.Campaign:
    if store.is_campaign(into):
        return store.open_campaign(into)
    if into.exists() and any(into.iterdir()):
        raise UsageError(f"{into}: exists and is not a blkcmp campaign directory")
    name = names.safe_name_from(into.name, "ingested")
    plan = Plan(
        campaign=name,
        seed=0,
        order="ingested",
        targets=[],
        points=[],
        runtime=0,
        ramp_time=0,
        rounds=0,
        max_rounds=0,
    )
    return store.create_in_place(
        into, name, plan=plan, environment={"source": "ingested: environment unknown"}
    )


def _count_up(counts: dict | None, values) -> Counter:
    total = Counter({str(k): int(v) for k, v in (counts or {}).items()})
    total.update(str(v) for v in values)
    return total


def ingested_environment(previous: dict, files: list[IngestedFile]) -> dict:
    """The environment record of an ingested campaign: what the files say, merged over every ingest.

    Counts are kept (files per fio version, per runtime, per ramp time) so that a later ingest
    can merge without re-reading earlier files."""
    facts = dict(previous.get("ingested") or {})
    versions = _count_up(facts.get("fio_versions"), (f.fio_version for f in files))
    runtimes = _count_up(facts.get("runtime_s"), (f"{f.runtime_s:g}" for f in files if f.runtime_s))
    ramps = _count_up(facts.get("ramp_time_s"), (f"{f.ramp_time_s:g}" for f in files))
    hosts = sorted(set(facts.get("hostnames") or []) | {h for f in files for h in f.hosts})
    starts = [
        s for s in [facts.get("first_start"), facts.get("last_start")] + [f.started for f in files] if s
    ]
    count = int(facts.get("files") or 0) + len(files)
    facts = {
        "files": count,
        "fio_versions": dict(versions.most_common()),
        "hostnames": hosts,
        "first_start": min(starts) if starts else None,
        "last_start": max(starts) if starts else None,
        "runtime_s": dict(runtimes.most_common()),
        "ramp_time_s": dict(ramps.most_common()),
        "failed_runs": int(facts.get("failed_runs") or 0) + sum(1 for f in files if f.error),
    }
    listed = ", ".join(versions)
    return {
        "source": f"ingested from {count} file{'s' if count != 1 else ''} of {listed}",
        "fio_version": listed,
        "hostname": ", ".join(hosts),
        "ingested": facts,
    }


def _most_common(counts: dict) -> float:
    """The value most files have (first listed on a tie: counts are kept most common first)."""
    return float(next(iter(counts))) if counts else 0.0


def input_files(paths: list[Path]) -> list[Path]:
    """The files to ingest: each path given, a directory standing for its *.json files in name
    order (so a 10,000-file folder is one argument, whatever the shell's argument limit)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix == ".json" and p.is_file())
            if not found:
                raise UsageError(f"{path}: a directory without *.json files; give fio's JSON output files")
            files += found
        else:
            files.append(path)
    return files


def ingest(files: list[Path], into: Path, target: str | None = None) -> list[str]:
    if target is not None:
        names.require_safe_name(target, "--target")
    parsed = [IngestedFile.read(path, target) for path in input_files(files)]  # a bad file: nothing written
    campaign = _open_or_create(into)
    with store.lock(campaign):
        # A damaged index is rebuilt now, before the plan grows (an index lagging the plan
        # it is about to be brought up to is not damage).
        campaign.ensure_index()
        plan = campaign.plan()
        by_key = {points.key_of(p.options): p for p in plan.points}
        reps = Counter((r.target, points.key_of(r.point)) for r in plan.runs)
        added: list[tuple[PlannedRun, IngestedFile, str | None]] = []
        for item in parsed:
            key = points.key_of(item.point)
            point = by_key.get(key)
            if point is None:
                point = by_key[key] = Point(len(plan.points), item.point)
                plan.points.append(point)
            if item.target not in plan.targets:
                plan.targets.append(item.target)
            reps[(item.target, key)] += 1
            rep = reps[(item.target, key)]
            run_id = _free_run_id(campaign, len(plan.runs), item.target)
            run = PlannedRun(run_id, item.target, point.index, key, item.point, rep, rep, len(plan.runs))
            plan.runs.append(run)
            plan.rounds = max(plan.rounds, rep)
            added.append((run, item, _assemble_run_dir(campaign, run, item)))
        store.sync_filesystem(campaign.runs_dir)  # the batch's files are on disk before they appear
        for run, _, _ in added:
            store.finalize_run_dir(_tmp_dir(campaign, run), campaign.run_dir(run.run_id))
        plan.max_rounds = max(plan.max_rounds, plan.rounds)
        # a campaign blkcmp ran keeps its own environment and plan settings; files ingested into
        # it are runs like the others
        if campaign.info().get("source") == "ingest":
            environment = ingested_environment(campaign.environment(), parsed)
            plan.runtime = _most_common(environment["ingested"]["runtime_s"])
            plan.ramp_time = _most_common(environment["ingested"]["ramp_time_s"])
            campaign.save_environment(environment)
        campaign.write_plan(plan)
        with campaign.index() as db:  # one transaction for the whole batch
            store.add_planned(db, plan, campaign.name)
            for run, item, error in added:
                store.record_run(
                    db,
                    run.run_id,
                    status="failed" if error else "done",
                    started=item.started,
                    ended=None,
                    host=",".join(item.hosts),
                    kernel="",
                    error=error,
                    metrics=item.metrics,
                    cpu=None,
                    fio_version=item.fio_version,
                    job_rows=item.job_rows,
                )
    return [run.run_id for run, _, _ in added]


def _free_run_id(campaign: store.Campaign, number: int, target: str) -> str:
    # a run directory left by an ingest cut off before its plan write is never overwritten
    while (campaign.run_dir(run_id := f"ingest-{number:05d}-{target}")).exists():
        number += 1
    return run_id


def _tmp_dir(campaign: store.Campaign, run: PlannedRun) -> Path:
    return campaign.staging_path(run.run_id)


def _assemble_run_dir(campaign: store.Campaign, run: PlannedRun, item: IngestedFile) -> str | None:
    """The run's staging directory with the raw output, its record and its job file (flushed and
    renamed by the caller for the whole batch); returns the run's error (None when every fio job
    succeeded)."""
    error = item.error
    text = item.raw_text()
    tmp = _tmp_dir(campaign, run)
    shutil.rmtree(tmp, ignore_errors=True)  # scraps of an ingest cut off before its renames
    tmp.mkdir(parents=True)
    staged = store.RunFiles(tmp)
    staged.fio_output.write_text(text)
    staged.job.write_text(item.job_text)
    staged.meta.write_text(
        json.dumps(
            {
                "run": run.__dict__,
                "status": "failed" if error else "done",
                "error": error,
                "ingested_from": str(item.path.resolve()),
                "started": item.started,
                "ended": None,
                "host": ",".join(item.hosts),
                "kernel": "",
                "fio_version": item.fio_version,
                "runtime_s": item.runtime_s,
                "ramp_time_s": item.ramp_time_s,
            },
            indent=2,
        )
        + "\n"
    )
    return error
