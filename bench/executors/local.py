"""The local executor: runs a campaign's pending runs on this machine, one fio process per run.

Order of a session: lock the campaign → remove what SIGKILLed sessions left behind → drop scraps
of runs cut off mid-way → re-index runs that finished but were not indexed → probe and set up
every target → fairness audit (refuse before any fio run) → each pending run in plan order →
(adaptive: add rounds while the stopping rule says so) → teardown of every target, on every exit
path (Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench import env, fio, store, timeseries
from bench.errors import RunError, UsageError
from bench.procs import signals_raise
from bench.plan import Plan, PlannedRun, add_rounds
from bench.targets import Context, Target, make_target, state
from bench.targets.blockdev import audit_differences, require_safe
from bench.targets.options import BLOCK_DRIVERS
from bench.workload import Workload, job_options

FIO_GRACE_S = 120  # beyond ramp_time + runtime before a fio run counts as hung


def campaign_id(campaign: store.Campaign) -> str:
    """Short and unique per campaign directory: names the devices and files it creates."""
    import hashlib
    return hashlib.sha1(str(campaign.path.resolve()).encode()).hexdigest()[:8]


def build_targets(workload: Workload, context: Context, names: list[str] | None = None) -> dict[str, Target]:
    named = workload.targets.named()
    return {name: make_target(name, named[name].driver, workload.effective_options(name),
                              workload.effective_queue(name), context)
            for name in (names or list(named))}


def signals_as_interrupts():
    """SIGTERM and SIGHUP unwind like Ctrl-C, so every `finally` (teardown) runs."""
    return signals_raise(lambda signum: KeyboardInterrupt(f"signal {signum}"))


# ------------------------------------------------------------------------------------------
# One run


def job_spec(workload: Workload, run: PlannedRun, target: Target, filename: str | None,
             target_options: dict, campaign: str) -> fio.JobSpec:
    comments = (
        f"blkcmp campaign {campaign}: target {target.name} ({target.driver}), point {run.point_key}",
        "run by hand: fio --output-format=json+ <this file>",
    )
    return fio.JobSpec(name=target.name, filename=filename, fio_options=job_options(workload.fio),
                       point=job_options(run.point), target_options=target_options,
                       runtime=workload.runtime, ramp_time=workload.ramp_time, comments=comments,
                       timeseries_msec=workload.timeseries_msec())


def job_rows(output: fio.FioOutput) -> list[dict]:
    rows = []
    for job in output.jobs:
        def dir_value(name: str, attr: str):
            d = job.directions.get(name)
            if not d or not d.used:
                return None
            if attr in ("iops", "bw_bytes"):
                return getattr(d, attr)
            if attr == "clat_mean":
                lat = d.completion_latency()
                return lat.mean if lat else None
            return fio.direction_percentile(d, 99.0)
        rows.append({
            "job_index": job.index, "host": job.host or None, "job": job.jobname,
            "rw": job.option("rw") or job.option("readwrite") or "read",
            "bs": job.option("bs") or job.option("blocksize") or "4k",
            "iodepth": job.option("iodepth") or "1", "numjobs": job.option("numjobs") or "1",
            "read_iops": dir_value("read", "iops"), "write_iops": dir_value("write", "iops"),
            "mixed_iops": dir_value("mixed", "iops"),
            "read_bw_bytes": dir_value("read", "bw_bytes"), "write_bw_bytes": dir_value("write", "bw_bytes"),
            "read_clat_mean_ns": dir_value("read", "clat_mean"),
            "write_clat_mean_ns": dir_value("write", "clat_mean"),
            "read_clat_p99_ns": dir_value("read", "p99"), "write_clat_p99_ns": dir_value("write", "p99"),
            "usr_cpu": job.usr_cpu, "sys_cpu": job.sys_cpu, "error": job.error,
            "fio_version": output.fio_version,
        })
    return rows


def index_run_dir(campaign: store.Campaign, run_id: str, run_dir: Path, db=None) -> str:
    """(Re)build the index rows of a finished run from its files; returns its status.

    `db`: an open index to write to (a rebuild fills a new one); default the campaign's."""
    meta = store.read_json(run_dir / "run.json", dict)
    status, error = meta.get("status", "done"), meta.get("error")
    metrics, rows, version = {}, [], meta.get("fio_version")
    cpu = store.read_json(run_dir / "cpu.json", dict) if (run_dir / "cpu.json").exists() else None
    samples: list[dict] = []
    if status == "done":
        output = fio.parse((run_dir / "fio.json").read_text())
        metrics = fio.run_metrics(output).to_dict()
        rows = job_rows(output)
        version = output.fio_version
        try:
            samples = [s.to_dict() for s in timeseries.read_run(run_dir)]
        except timeseries.TimeseriesError as exc:
            raise RunError(f"time-series log of run {run_id} unreadable: {exc}") from None
    elif meta.get("ingested_from"):  # a failed ingested run: its jobs (and their error) stay exported
        rows = job_rows(fio.parse((run_dir / "fio.json").read_text()))
    with contextlib.nullcontext(db) if db is not None else campaign.index() as index:
        store.record_run(index, run_id, status=status, started=meta.get("started"), ended=meta.get("ended"),
                         host=meta.get("host", ""), kernel=meta.get("kernel", ""), error=error,
                         metrics=metrics, cpu=cpu, fio_version=version, job_rows=rows)
        store.record_timeseries(index, run_id, samples)
    return status


def execute_run(campaign: store.Campaign, workload: Workload, run: PlannedRun, target: Target) -> str:
    """Run fio once; the run directory appears complete or not at all. Returns the status."""
    tmp = campaign.runs_dir / f".tmp-{run.run_id}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    device = target.device
    spec = job_spec(workload, run, target, device.filename, device.fio_options, campaign.name)
    job_path = tmp / "job.fio"
    job_path.write_text(fio.job_text(spec))
    if device.block_device:
        require_safe(device.block_device)
    described = target.describe()
    before = env.cpu_counters()
    invocation = fio.run(job_path, tmp / "fio.json",
                         timeout_s=workload.runtime + workload.ramp_time + FIO_GRACE_S)
    cpu = env.cpu_delta(before, env.cpu_counters()) | {"fio_process": invocation.usage}
    (tmp / "fio.stderr").write_text(invocation.stderr + invocation.stdout)
    status, error, version = "done", None, None
    try:
        output = fio.parse((tmp / "fio.json").read_text())
        version = output.fio_version
        if invocation.returncode != 0 or any(j.error for j in output.jobs):
            status = "failed"
            error = _first_error_line(invocation) or f"fio job error {output.jobs[0].error}"
    except (OSError, fio.FioParseError) as exc:
        status = "failed"
        error = _first_error_line(invocation) or f"fio output unreadable: {exc}"
    store.atomic_write_json(tmp / "cpu.json", cpu)
    store.atomic_write_json(tmp / "run.json", {
        "run": run.__dict__, "status": status, "error": error, "started": invocation.started,
        "ended": invocation.ended, "elapsed_s": invocation.elapsed_s, "command": [a.replace(str(tmp), str(campaign.run_dir(run.run_id))) for a in invocation.command],
        "returncode": invocation.returncode, "host": socket.gethostname(), "kernel": platform.release(),
        "fio_version": version, "target": described,
        "executor": env.executor_info(),
    })
    final = campaign.run_dir(run.run_id)
    if status == "failed":  # kept, never overwritten: a resume re-runs it under the real name
        n = 1
        while (campaign.runs_dir / f"{run.run_id}.failed-{n}").exists():
            n += 1
        final = campaign.runs_dir / f"{run.run_id}.failed-{n}"
    store.finalize_run_dir(tmp, final)
    if status == "failed":
        with campaign.index() as db:
            store.record_run(db, run.run_id, status="failed", started=invocation.started,
                             ended=invocation.ended, host=socket.gethostname(),
                             kernel=platform.release(), error=error, metrics={}, cpu=cpu,
                             fio_version=version, job_rows=[])
        return "failed"
    return index_run_dir(campaign, run.run_id, final)


def _first_error_line(invocation: fio.Invocation) -> str | None:
    for line in (invocation.stderr + "\n" + invocation.stdout).splitlines():
        if "error" in line.lower() or line.startswith("fio:"):
            return line.strip()
    if invocation.returncode != 0:
        return f"fio exited with status {invocation.returncode}"
    return None


# ------------------------------------------------------------------------------------------
# A session


@dataclass
class Reporter:
    """How progress reaches the user (a rich progress bar, plain lines, or nothing)."""

    start: Callable[[int, int], None] = lambda done, total: None
    before_run: Callable[[PlannedRun, int, int], None] = lambda run, done, total: None
    after_run: Callable[[PlannedRun, str], None] = lambda run, status: None
    message: Callable[[str], None] = lambda text: None
    stop: Callable[[], None] = lambda: None


def pending_runs(campaign: store.Campaign, plan: Plan) -> list[PlannedRun]:
    done = {r["run_id"] for r in store.run_rows(campaign) if r["status"] == "done"}
    return [r for r in plan.runs if r.run_id not in done]


def reclaim_leftovers(reporter: Reporter) -> None:
    """Remove what SIGKILLed sessions left behind (their devices, files and fio processes).

    A resumed campaign sets its targets up again under the same names; the dead session's state
    entries would otherwise stay forever (and its device could hold the same backing file).
    Only entries whose creating process is gone are touched, exactly as `blkcmp cleanup` does.
    """
    for kind, what, outcome in state.cleanup(force=False):
        if not outcome.startswith("kept"):
            reporter.message(f"left behind by an earlier session: {kind} {what}: {outcome}")


def recover(campaign: store.Campaign, reporter: Reporter) -> None:
    """Make the index agree with the run directories after an interruption (or a deletion:
    the run directories are the truth, so a run whose directory is gone is run again)."""
    if not campaign.runs_dir.is_dir():
        with store.writing(campaign.runs_dir):
            campaign.runs_dir.mkdir()
        reporter.message(f"{campaign.runs_dir} was missing: recreated; every run is run again")
    for run_id in store.remove_partial_runs(campaign):
        reporter.message(f"run {run_id} was cut off mid-way: it will be run again")
    rows = {r["run_id"]: r for r in store.run_rows(campaign)}
    gone = [run_id for run_id, row in rows.items()
            if row["status"] == "done" and not campaign.run_dir(run_id).is_dir()]
    if gone:
        with campaign.index() as db:
            for run_id in gone:
                store.forget_run(db, run_id)
        reporter.message(f"{len(gone)} run(s) indexed as done have no run directory: "
                         "they will be run again")
    for run_dir in campaign.runs_dir.iterdir():
        if run_dir.name.startswith(".") or ".failed-" in run_dir.name:
            continue
        if rows.get(run_dir.name, {}).get("status") != "done":
            index_run_dir(campaign, run_dir.name, run_dir)


def setup_targets(targets: dict[str, Target], workload: Workload, reporter: Reporter) -> dict[str, dict]:
    """Set up every target and return what each really is; refuse unfair comparisons."""
    described: dict[str, dict] = {}
    for name, target in targets.items():
        avail = target.probe()
        if not avail.ok:
            raise RunError(f"target {name} ({target.driver}) is not available here: {avail.reason}")
        target.setup()
        described[name] = target.describe() | {"interface": avail.interface}
        reporter.message(f"target {name}: {target.driver} at {target.device.filename or '(no file)'}")
    audits = {n: d["audit"] for n, d in described.items()
              if targets[n].driver in BLOCK_DRIVERS and "audit" in d}
    if len(audits) > 1:
        refused, tolerated = audit_differences(audits, workload.allow_differences)
        if refused:
            raise UsageError("targets differ in settings that shape the I/O path: " + "; ".join(refused)
                           + " (match them, or list the keys under allow_differences:)")
        for line in tolerated:
            reporter.message(f"allowed difference: {line}")
    return described


def execute(campaign: store.Campaign, workload: Workload, reporter: Reporter,
            adaptive_decision: Callable[[store.Campaign, Plan], tuple[bool, str, set[str]]] | None = None) -> dict:
    """Run every pending run of the campaign. Returns counts; raises RunError on failure."""
    with store.lock(campaign), signals_as_interrupts():
        reclaim_leftovers(reporter)
        recover(campaign, reporter)
        plan = campaign.plan()
        names = plan.targets
        targets = build_targets(workload, Context(campaign_id(campaign)), names)
        try:
            described = setup_targets(targets, workload, reporter)
            sessions = campaign.path / "targets.json"
            history = store.read_json(sessions) if sessions.exists() else []
            store.atomic_write_json(sessions, history + [{"started": fio.utc_now(), "pid": os.getpid(),
                                                          "targets": described}])
            counts = {"done": 0, "failed": 0}
            while True:
                pending = pending_runs(campaign, plan)
                total = len(plan.runs)
                reporter.start(total - len(pending), total)
                for i, run in enumerate(pending):
                    reporter.before_run(run, total - len(pending) + i, total)
                    status = execute_run(campaign, workload, run, targets[run.target])
                    counts[status] = counts.get(status, 0) + 1
                    reporter.after_run(run, status)
                    if status == "failed":
                        row = next(r for r in store.run_rows(campaign) if r["run_id"] == run.run_id)
                        raise RunError(f"run {run.run_id} failed: {row['error']} "
                                       f"(raw output kept; fix and `blkcmp run --resume {campaign.path}`)")
                reporter.stop()
                if adaptive_decision is None:
                    break
                # Asked after every round, the cap included, so the record says which points hit it.
                more, reason, undecided = adaptive_decision(campaign, plan)
                if not more or plan.rounds >= plan.max_rounds:
                    reporter.message(reason)
                    break
                plan = add_rounds(plan, 1, undecided)
                campaign.save_plan(plan)
                reporter.message(f"adaptive: adding round {plan.rounds} ({reason})")
            return counts
        finally:
            errors = []
            for target in reversed(list(targets.values())):
                try:
                    target.teardown()
                except Exception as exc:  # keep tearing the others down
                    errors.append(f"{target.name}: {exc}")
            if errors:
                reporter.message("teardown problems (run `blkcmp cleanup`): " + "; ".join(errors))
