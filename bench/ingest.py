"""`blkcmp ingest`: bring fio JSON produced elsewhere into a campaign directory.

Files run by hand, by other tools, or by fio's client/server mode become runs like blkcmp's own:
the raw file is kept as runs/<run_id>/fio.json (with run.json and a job.fio rebuilt from the
options fio wrote), the point is read from the job options (rw, bs, iodepth, numjobs, and
rwmixread for mixed workloads; spellings normalised by bench.points), and each (target, point)
gets the next repetition number.  A job that fio reports as failed (`"error": N`) makes a failed
run, kept and indexed with its error.  What the files say about how they were run — runtime,
ramp time, fio versions, hostnames, start times — goes into the plan and environment.json.

Every file is parsed once, before anything is written (a bad file leaves the campaign as it
was); the whole batch then costs one flush to disk (syncfs, instead of an fsync per file), one
plan write and one index transaction, so ingesting N files is O(N), not O(N²).  Run
directories are assembled under runs/.tmp-<run_id> and renamed only after the flush: an
interrupted ingest leaves complete run directories or scraps, never a half-written run.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench import fio, points, store
from bench.errors import UsageError
from bench.executors.local import job_rows
from bench.plan import Plan, PlannedRun, Point

POINT_KEYS = ("rw", "bs", "iodepth", "numjobs")
MIXED_RW = ("rw", "readwrite", "randrw", "trimwrite", "randtrimwrite")


def _point(job: fio.Job) -> dict:
    options = points.normalise(job.options)
    point = {k: options[k] for k in POINT_KEYS if options.get(k) is not None}
    if point.get("rw") in MIXED_RW and options.get("rwmixread") is not None:
        point["rwmixread"] = options["rwmixread"]
    return point


def _target_for(output: fio.FioOutput, path: Path, given: str | None) -> str:
    if given:
        return given
    names = {j.jobname for j in output.jobs}
    name = names.pop() if len(names) == 1 else path.stem
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:32] or "ingested"


_TIME_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
               "ms": 1e-3, "msec": 1e-3, "us": 1e-6, "usec": 1e-6}


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
    """One fio output, parsed once, and what the campaign learns from it."""

    path: Path
    text: str
    output: fio.FioOutput
    target: str
    point: dict
    runtime_s: float | None     # the runtime option, else what fio measured
    ramp_time_s: float
    started: str | None
    hosts: list[str]

    @classmethod
    def read(cls, path: Path, target: str | None) -> "IngestedFile":
        try:
            text = path.read_text()
            output = fio.parse(text)
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read: {exc}") from None
        except fio.FioParseError as exc:
            raise UsageError(f"{path}: not fio JSON output: {exc}") from None
        job = output.jobs[0]
        runtime = fio_seconds(job.option("runtime"))
        if runtime is None and job.runtime_ms:
            runtime = job.runtime_ms / 1000.0
        started = (datetime.fromtimestamp(output.timestamp, timezone.utc).isoformat()
                   if output.timestamp else None)
        return cls(path, text, output, _target_for(output, path, target), _point(job), runtime,
                   fio_seconds(job.option("ramp_time")) or 0.0, started,
                   sorted({j.host for j in output.jobs if j.host}))


def job_file_text(output: fio.FioOutput, source: Path) -> str:
    """The job options fio wrote into its output, as a job file (for the report's fio jobs)."""
    lines = [f"# rebuilt by blkcmp ingest from the options fio wrote in {source.name}",
             f"# ({output.fio_version}); options fio applied by default are not listed"]
    seen: set[str] = set()
    for job in output.jobs:
        text = "\n".join(f"{k}={v}" if v != "" else k for k, v in job.options.items() if k != "name")
        if text in seen:  # numjobs without group_reporting: one entry per process, same options
            continue
        seen.add(text)
        lines += ["", f"[{job.jobname}]", text]
    return "\n".join(lines) + "\n"


def _open_or_create(into: Path) -> store.Campaign:
    if (into / "campaign.json").is_file():
        return store.open_campaign(into)
    if into.exists() and any(into.iterdir()):
        raise UsageError(f"{into}: exists and is not a blkcmp campaign directory")
    into.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", into.name) or "ingested"
    store.atomic_write_json(into / "campaign.json", {
        "name": name, "created": datetime.now(timezone.utc).isoformat(), "source": "ingest", "format": 1})
    plan = Plan(campaign=name, seed=0, order="ingested", targets=[], points=[], runtime=0, ramp_time=0,
                rounds=0, max_rounds=0)
    store.atomic_write_json(into / "plan.json", plan.to_dict())
    store.atomic_write_json(into / "environment.json", {"source": "ingested: environment unknown"})
    (into / "runs").mkdir(exist_ok=True)
    store.connect(into / "index.sqlite").close()
    return store.Campaign(into)


def _count_up(counts: dict | None, values) -> Counter:
    total = Counter({str(k): int(v) for k, v in (counts or {}).items()})
    total.update(str(v) for v in values)
    return total


def ingested_environment(previous: dict, files: list[IngestedFile]) -> dict:
    """environment.json of an ingested campaign: what the files say, merged over every ingest.

    Counts are kept (files per fio version, per runtime, per ramp time) so that a later ingest
    can merge without re-reading earlier files."""
    facts = dict(previous.get("ingested") or {})
    versions = _count_up(facts.get("fio_versions"), (f.output.fio_version for f in files))
    runtimes = _count_up(facts.get("runtime_s"), (f"{f.runtime_s:g}" for f in files if f.runtime_s))
    ramps = _count_up(facts.get("ramp_time_s"), (f"{f.ramp_time_s:g}" for f in files))
    hosts = sorted(set(facts.get("hostnames") or []) | {h for f in files for h in f.hosts})
    starts = [s for s in [facts.get("first_start"), facts.get("last_start")] + [f.started for f in files] if s]
    count = int(facts.get("files") or 0) + len(files)
    facts = {"files": count, "fio_versions": dict(versions.most_common()), "hostnames": hosts,
             "first_start": min(starts) if starts else None, "last_start": max(starts) if starts else None,
             "runtime_s": dict(runtimes.most_common()), "ramp_time_s": dict(ramps.most_common()),
             "failed_runs": int(facts.get("failed_runs") or 0) + sum(1 for f in files if f.output.error)}
    listed = ", ".join(versions)
    return {"source": f"ingested from {count} file{'s' if count != 1 else ''} of {listed}",
            "fio_version": listed, "hostname": ", ".join(hosts), "ingested": facts}


def _most_common(counts: dict) -> float:
    """The value most files have (first listed on a tie: counts are kept most common first)."""
    return float(next(iter(counts))) if counts else 0.0


def ingest(files: list[Path], into: Path, target: str | None = None) -> list[str]:
    parsed = [IngestedFile.read(path, target) for path in files]  # a bad file: nothing written
    campaign = _open_or_create(into)
    with store.lock(campaign):
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
            store.atomic_write_json(campaign.path / "environment.json", environment)
        store.atomic_write_json(campaign.path / "plan.json", plan.to_dict())
        with campaign.index() as db:  # one transaction for the whole batch
            store.add_planned(db, plan, campaign.name)
            for run, item, error in added:
                output = item.output
                store.record_run(
                    db, run.run_id, status="failed" if error else "done", started=item.started, ended=None,
                    host=",".join(item.hosts), kernel="", error=error,
                    metrics={} if error else fio.run_metrics(output).to_dict(), cpu=None,
                    fio_version=output.fio_version, job_rows=job_rows(output))
    return [run.run_id for run, _, _ in added]


def _free_run_id(campaign: store.Campaign, number: int, target: str) -> str:
    # a run directory left by an ingest cut off before its plan write is never overwritten
    while (campaign.run_dir(run_id := f"ingest-{number:05d}-{target}")).exists():
        number += 1
    return run_id


def _tmp_dir(campaign: store.Campaign, run: PlannedRun) -> Path:
    return campaign.runs_dir / f".tmp-{run.run_id}"


def _assemble_run_dir(campaign: store.Campaign, run: PlannedRun, item: IngestedFile) -> str | None:
    """runs/.tmp-<run_id>/ with the raw output, run.json and job.fio (flushed and renamed by the
    caller for the whole batch); returns the run's error (None when every fio job succeeded)."""
    error = item.output.error
    tmp = _tmp_dir(campaign, run)
    shutil.rmtree(tmp, ignore_errors=True)  # scraps of an ingest cut off before its renames
    tmp.mkdir(parents=True)
    (tmp / "fio.json").write_text(item.text)
    (tmp / "job.fio").write_text(job_file_text(item.output, item.path))
    (tmp / "run.json").write_text(json.dumps({
        "run": run.__dict__, "status": "failed" if error else "done", "error": error,
        "ingested_from": str(item.path.resolve()), "started": item.started, "ended": None,
        "host": ",".join(item.hosts), "kernel": "", "fio_version": item.output.fio_version,
        "runtime_s": item.runtime_s, "ramp_time_s": item.ramp_time_s}, indent=2) + "\n")
    return error
