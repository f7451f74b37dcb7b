"""The local executor: runs a campaign's pending runs on this machine, one fio process per run.

Order of a session: lock the campaign → remove what SIGKILLed sessions left behind → drop scraps
of runs cut off mid-way → re-index runs that finished but were not indexed → probe and set up
every target (and prefill it, if asked) → fairness audit (refuse before any fio run) → each
pending run in plan order (a target with recreate: run torn down, set up and prefilled again
first) →
(adaptive: add rounds while the stopping rule says so) → teardown of every target, on every exit
path (Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench import env, fio, ledger, lifecycle, procs, stopping, store
from bench.driver_options import BLOCK_DRIVERS
from bench.errors import RunError, UsageError
from bench.fio_options import job_writes
from bench.plan import Plan, PlannedRun, add_rounds
from bench.precondition import precondition_all
from bench.progress import Reporter
from bench.results import load_runs
from bench.targets import Context, Target, build_targets
from bench.targets.blockdev import audit_differences
from bench.workload import Workload

if TYPE_CHECKING:
    from bench.stats.adaptive import Decision

FIO_GRACE_S = 120  # beyond ramp_time + runtime before a fio run counts as hung


def campaign_id(campaign: store.Campaign) -> str:
    """Short and unique per campaign directory: names the devices and files it creates."""
    import hashlib

    return hashlib.sha1(str(campaign.path.resolve()).encode()).hexdigest()[:8]


def _interrupt(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt(f"signal {signum}")


def signals_as_interrupts():
    """Ctrl-C, SIGTERM and SIGHUP unwind as KeyboardInterrupt, so every `finally` (teardown)
    runs; remembered, so one that lands inside a fork still stops the campaign before its next
    run (procs.raise_if_stopped)."""
    return procs.signals_raise(_interrupt, procs.STOP_SIGNALS)


# ------------------------------------------------------------------------------------------
# One run


def execute_run(
    campaign: store.Campaign,
    workload: Workload,
    run: PlannedRun,
    target: Target,
    device_lifecycle: dict | None = None,
) -> str:
    """Run fio once; the run directory appears complete or not at all. Returns the status.
    `device_lifecycle`: how the target's device was set up and prefilled for this run."""
    staged = campaign.staging(run.run_id)
    tmp = staged.dir
    # Checked first: an nvme target may re-bind its controller here, and the namespace it finds
    # again (perhaps under another name) is the one the job must name.
    target.check_before_run(job_writes(workload.fio | run.point))
    device = target.device
    spec = fio.job_spec(workload, run, target, device.filename, device.fio_options, campaign.name)
    staged.job.write_text(fio.job_text(spec))
    described = lifecycle.with_audit(target, target.describe())
    before = env.cpu_counters()
    invocation = fio.run(
        staged.job, staged.fio_output, timeout_s=workload.runtime + workload.ramp_time + FIO_GRACE_S
    )
    cpu = env.cpu_delta(before, env.cpu_counters()) | {"fio_process": invocation.usage}
    staged.stderr.write_text(invocation.stderr + invocation.stdout)
    status, error, version = "done", None, None
    try:
        output = staged.read_fio_output()
        version = output.fio_version
        if invocation.returncode != 0 or any(j.error for j in output.jobs):
            status = "failed"
            error = _first_error_line(invocation) or f"fio job error {output.jobs[0].error}"
    except (OSError, fio.FioParseError) as exc:
        status = "failed"
        error = _first_error_line(invocation) or f"fio output unreadable: {exc}"
    staged.write_cpu(cpu)
    staged.write_meta(
        {
            "run": run.__dict__,
            "status": status,
            "error": error,
            "started": invocation.started,
            "ended": invocation.ended,
            "elapsed_s": invocation.elapsed_s,
            "command": [a.replace(str(tmp), str(campaign.run_dir(run.run_id))) for a in invocation.command],
            "returncode": invocation.returncode,
            "host": socket.gethostname(),
            "kernel": platform.release(),
            "kernel_label": run.kernel,
            "boot_slot": run.boot,
            "boot_id": env.boot_id(),
            "fio_version": version,
            "target": described,
            "lifecycle": device_lifecycle or {"recreate": target.recreate, "prefill": {"done": False}},
            "executor": env.executor_info(),
        }
    )
    final = campaign.finish_run(staged, run.run_id, failed=status == "failed")
    if status == "failed":
        with campaign.index() as db:
            store.record_run(
                db,
                run.run_id,
                status="failed",
                started=invocation.started,
                ended=invocation.ended,
                host=socket.gethostname(),
                kernel=platform.release(),
                error=error,
                metrics={},
                cpu=cpu,
                fio_version=version,
                job_rows=[],
                boot_id=env.boot_id(),
            )
        return "failed"
    return store.index_run_dir(campaign, run.run_id, final.dir)


def _first_error_line(invocation: fio.Invocation) -> str | None:
    for line in (invocation.stderr + "\n" + invocation.stdout).splitlines():
        if "error" in line.lower() or line.startswith("fio:"):
            return line.strip()
    if invocation.returncode != 0:
        return f"fio exited with status {invocation.returncode}"
    return None


# ------------------------------------------------------------------------------------------
# A session


def pending_runs(campaign: store.Campaign, plan: Plan, slot: int | None = None) -> list[PlannedRun]:
    """The runs not done yet, in plan order; `slot`: only those of that boot slot."""
    done = {r["run_id"] for r in store.run_rows(campaign) if r["status"] == "done"}
    return [r for r in plan.runs if r.run_id not in done and (slot is None or r.boot == slot)]


def reclaim_leftovers(reporter: Reporter) -> None:
    """Remove what SIGKILLed sessions left behind (their devices, files and fio processes).

    A resumed campaign sets its targets up again under the same names; the dead session's state
    entries would otherwise stay forever (and its device could hold the same backing file).
    Only entries whose creating process is gone are touched, exactly as `blkcmp cleanup` does.
    """
    for kind, what, outcome in ledger.cleanup(force=False):
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
    gone = [
        run_id
        for run_id, row in rows.items()
        if row["status"] == "done" and not campaign.run_dir(run_id).is_dir()
    ]
    if gone:
        with campaign.index() as db:
            for run_id in gone:
                store.forget_run(db, run_id)
        reporter.message(f"{len(gone)} run(s) indexed as done have no run directory: they will be run again")
    for run_dir in campaign.runs_dir.iterdir():
        if run_dir.name.startswith(".") or ".failed-" in run_dir.name:
            continue
        if rows.get(run_dir.name, {}).get("status") != "done":
            store.index_run_dir(campaign, run_dir.name, run_dir)


def setup_targets(
    targets: dict[str, Target],
    workload: Workload,
    reporter: Reporter,
    lifecycles: dict[str, lifecycle.Lifecycle] | None = None,
) -> store.TargetSession:
    """Set up (and prefill, if asked) every target and return what each really is; refuse
    unfair comparisons."""
    described: dict[str, dict] = {}
    lifecycles = {} if lifecycles is None else lifecycles
    for name, target in targets.items():
        avail = target.probe()
        if not avail.ok:
            raise RunError(f"target {name} ({target.driver}) is not available here: {avail.reason}")
        lifecycles[name] = lifecycle.Lifecycle(target)
        lifecycles[name].set_up()
        described[name] = lifecycle.with_audit(target, target.describe()) | {"interface": avail.interface}
        reporter.message(f"target {name}: {target.driver} at {target.device.filename or '(no file)'}")
        if target.prefill:
            fill = lifecycles[name].record["prefill"]
            reporter.message(f"target {name}: prefilled {fill['bytes']} bytes in {fill['seconds']:.1f} s")
    audits = {
        n: d["audit"] for n, d in described.items() if targets[n].driver in BLOCK_DRIVERS and "audit" in d
    }
    tolerated: list[str] = []
    if len(audits) > 1:
        refused, tolerated = audit_differences(audits, workload.allow_differences)
        if refused:
            raise UsageError(
                "targets differ in settings that shape the I/O path: "
                + "; ".join(refused)
                + " (match them, or list the keys under allow_differences:)"
            )
        for line in tolerated:
            reporter.message(f"allowed difference: {line}")
    return store.TargetSession(fio.utc_now(), os.getpid(), described, list(tolerated))


def stopping_decision(campaign: store.Campaign, plan: Plan) -> Decision:
    """The plan's stopping rule on the campaign's runs so far (bench.stopping)."""
    assert plan.stopping is not None
    return stopping.evaluate(plan.stopping, plan, load_runs(campaign))


def execute(
    campaign: store.Campaign,
    workload: Workload,
    reporter: Reporter,
    decide: Callable[[store.Campaign, Plan], Decision] = stopping_decision,
    slot: int | None = None,
) -> dict:
    """Run every pending run of the campaign. Returns counts; raises RunError on failure.

    An adaptive campaign (its plan has a stopping rule) asks `decide` after every round whether
    to add one, and for which points; each decision is saved in the campaign.  `slot`: only the
    runs of that boot slot (a VM campaign of several kernels or boots: one guest boot)."""
    with store.lock(campaign), signals_as_interrupts():
        reclaim_leftovers(reporter)
        recover(campaign, reporter)
        plan = campaign.plan()
        names = plan.targets
        targets = build_targets(
            workload, Context(campaign_id(campaign), campaign.info().get("source", "")), names
        )
        lifecycles: dict[str, lifecycle.Lifecycle] = {}
        try:
            campaign.add_session(setup_targets(targets, workload, reporter, lifecycles))
            precondition_all(campaign, workload, targets, reporter)
            counts = {"done": 0, "failed": 0}
            while True:
                pending = pending_runs(campaign, plan, slot)
                total = len(plan.runs) if slot is None else len(plan.slot_runs(slot))
                reporter.start(total - len(pending), total)
                for i, run in enumerate(pending):
                    procs.raise_if_stopped(_interrupt)
                    reporter.before_run(run, total - len(pending) + i, total)
                    record = lifecycles[run.target].before_run()
                    procs.raise_if_stopped(_interrupt)
                    status = execute_run(campaign, workload, run, targets[run.target], record)
                    counts[status] = counts.get(status, 0) + 1
                    reporter.after_run(run, status)
                    if status == "failed":
                        row = next(r for r in store.run_rows(campaign) if r["run_id"] == run.run_id)
                        raise RunError(
                            f"run {run.run_id} failed: {row['error']} "
                            f"(raw output kept; fix and `blkcmp run --resume {campaign.path}`)"
                        )
                reporter.stop()
                if plan.stopping is None:
                    break
                # Asked after every round, the cap included, so the record says which points hit it.
                decision = decide(campaign, plan)
                campaign.save_adaptive_state(decision)
                if decision.stop or plan.rounds >= plan.stopping.max_rounds:
                    reporter.message(decision.reason)
                    break
                plan = add_rounds(plan, 1, stopping.undecided_points(decision))
                campaign.save_plan(plan)
                reporter.message(f"adaptive: adding round {plan.rounds} ({decision.reason})")
            return counts
        finally:
            errors = []
            for target in reversed(list(targets.values())):
                try:
                    target.teardown()
                except Exception as exc:  # noqa: BLE001 — keep tearing the others down; said below
                    errors.append(f"{target.name}: {exc}")
            if errors:
                reporter.message("teardown problems (run `blkcmp cleanup`): " + "; ".join(errors))
