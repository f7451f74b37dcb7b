"""`blkcmp ingest`: bring fio JSON produced elsewhere into a campaign directory.

Files run by hand, by other tools, or by fio's client/server mode become runs like blkcmp's own:
the raw file is copied into runs/<run_id>/fio.json and indexed, the point is read from the job
options (rw, bs, iodepth, numjobs), and each (target, point) gets the next repetition number.
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from bench import fio, store
from bench.errors import UsageError
from bench.executors.local import index_run_dir
from bench.plan import Plan, PlannedRun, Point

POINT_KEYS = ("rw", "bs", "iodepth", "numjobs")


def _point(output: fio.FioOutput) -> dict:
    job = output.jobs[0]
    return {k: job.option(k) for k in POINT_KEYS if job.option(k) is not None}


def _target_for(output: fio.FioOutput, path: Path, given: str | None) -> str:
    if given:
        return given
    names = {j.jobname for j in output.jobs}
    name = names.pop() if len(names) == 1 else path.stem
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:32] or "ingested"


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


def ingest(files: list[Path], into: Path, target: str | None = None) -> list[str]:
    parsed = []
    for path in files:  # parse everything first: a bad file leaves the campaign untouched
        try:
            parsed.append((path, fio.parse(path.read_text())))
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read: {exc}") from None
        except fio.FioParseError as exc:
            raise UsageError(f"{path}: not fio JSON output: {exc}") from None
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
            tmp.mkdir(parents=True)
            shutil.copyfile(path, tmp / "fio.json")
            hosts = sorted({j.host for j in output.jobs if j.host})
            store.atomic_write_json(tmp / "run.json", {
                "run": run.__dict__, "status": "done", "error": None, "ingested_from": str(path.resolve()),
                "started": datetime.fromtimestamp(output.timestamp, timezone.utc).isoformat()
                if output.timestamp else None, "ended": None, "host": ",".join(hosts),
                "kernel": "", "fio_version": output.fio_version})
            store.finalize_run_dir(tmp, campaign.run_dir(run_id))
            campaign.save_plan(plan)
            index_run_dir(campaign, run_id, campaign.run_dir(run_id))
            added.append(run_id)
    return added
