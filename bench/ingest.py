"""`blkcmp ingest`: bring fio JSON produced elsewhere into a campaign directory.

Files run by hand, by other tools, or by fio's client/server mode become runs like blkcmp's own:
the raw file is copied into runs/<run_id>/fio.json and indexed, the point is read from the job
options (rw, bs, iodepth, numjobs), and each (target, point) gets the next repetition number.
Every file is checked before anything is written (`check_document`): fields of the wrong type,
non-numeric latency bins, nesting too deep to read, and a file with no measured I/O are
one-line errors naming the file and the field (exit 2), and the campaign is left untouched.
"""

from __future__ import annotations

import json
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import fio, names, store
from bench.errors import UsageError, shorten
from bench.executors.local import index_run_dir
from bench.plan import Plan, PlannedRun, Point

POINT_KEYS = ("rw", "bs", "iodepth", "numjobs")
NOT_FIO = "not fio's JSON output (fio --output-format=json or json+)"


def _point(output: fio.FioOutput) -> dict:
    job = output.jobs[0]
    return {k: job.option(k) for k in POINT_KEYS if job.option(k) is not None}


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


_ENTRY_NUMBERS = ("error", "groupid", "usr_cpu", "sys_cpu", "ctx", "majf", "minf", "job_runtime",
                  "elapsed", "job_start", "port")
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
        _number(key, f"{where}.bins key {shorten(repr(key), 40)} (a latency in ns)", integer=True,
                optional=False)
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


def read_fio_file(path: Path) -> fio.FioOutput:
    """A file to ingest, parsed, or a one-line UsageError naming the file and the field."""
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
        return fio.parse(data)
    except RecursionError:
        raise UsageError(f"{path}: JSON nested too deeply to read; {NOT_FIO}") from None
    except _Bad as exc:
        raise UsageError(f"{path}: {exc}; {NOT_FIO}") from None
    except _NoData as exc:
        raise UsageError(f"{path}: {exc}") from None
    except fio.FioParseError as exc:
        raise UsageError(f"{path}: not fio JSON output: {exc}") from None


def _open_or_create(into: Path) -> store.Campaign:
    if (into / "campaign.json").is_file():
        return store.open_campaign(into)
    if into.exists() and any(into.iterdir()):
        raise UsageError(f"{into}: exists and is not a blkcmp campaign directory")
    name = names.safe_name_from(into.name, "ingested")
    with store.writing(into):
        into.mkdir(parents=True, exist_ok=True)
        store.atomic_write_json(into / "campaign.json", {
            "name": name, "created": datetime.now(timezone.utc).isoformat(), "source": "ingest", "format": 1})
        plan = Plan(campaign=name, seed=0, order="ingested", targets=[], points=[], runtime=0, ramp_time=0,
                    rounds=0, max_rounds=0)
        store.atomic_write_json(into / "plan.json", plan.to_dict())
        store.atomic_write_json(into / "environment.json", {"source": "ingested: environment unknown"})
        (into / "runs").mkdir(exist_ok=True)
        store.connect(into / "index.sqlite").close()
    return store.Campaign(into)


def ingest(files: list[Path], into: Path, target: str | None = None) -> list[str]:
    if target is not None:
        names.require_safe_name(target, "--target")
    # parse everything first: a bad file leaves the campaign untouched
    parsed = [(path, read_fio_file(path)) for path in files]
    campaign = _open_or_create(into)
    with store.lock(campaign):
        plan = campaign.plan()
        added = []
        for path, output in parsed:
            tname = _target_for(output, path, target)
            point = _point(output)
            key = ",".join(f"{k}={v}" for k, v in point.items()) or "default"
            existing = next((p for p in plan.points if p.key == key), None)
            if existing is None:
                existing = Point(len(plan.points), point)
                plan.points.append(existing)
            if tname not in plan.targets:
                plan.targets.append(tname)
            rep = 1 + sum(1 for r in plan.runs if r.target == tname and r.point_key == key)
            run_id = f"ingest-{len(plan.runs):05d}-{tname}"
            run = PlannedRun(run_id, tname, existing.index, key, point, rep, rep, len(plan.runs))
            plan.runs.append(run)
            plan.rounds = max(plan.rounds, rep)
            tmp = campaign.runs_dir / f".tmp-{run_id}"
            try:
                with store.writing(campaign.path):
                    tmp.mkdir(parents=True)
                    shutil.copyfile(path, tmp / "fio.json")
                hosts = sorted({j.host for j in output.jobs if j.host})
                store.atomic_write_json(tmp / "run.json", {
                    "run": run.__dict__, "status": "done", "error": None, "ingested_from": str(path.resolve()),
                    "started": datetime.fromtimestamp(output.timestamp, timezone.utc).isoformat()
                    if output.timestamp else None, "ended": None, "host": ",".join(hosts),
                    "kernel": "", "fio_version": output.fio_version})
                store.finalize_run_dir(tmp, campaign.run_dir(run_id))
            except BaseException:  # a run directory appears complete or not at all
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            campaign.save_plan(plan)
            index_run_dir(campaign, run_id, campaign.run_dir(run_id))
            added.append(run_id)
    return added
