"""Starting, resuming and describing campaigns: the steps behind `blkcmp plan` and `blkcmp run`.

Nothing is written under results/ until the workload is valid (its fio options checked against
this fio's own table and blkcmp's allow-list), every target has been probed, what the running
kernel will refuse has been checked (`check_kernel`: driver features, fixed interfaces, sector
sizes) and fio has accepted every distinct job file (`fio --parse-only`, for `plan` as well as
`run`): bad input never leaves a half-written campaign behind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

from bench import env, fio, fio_options, names, store
from bench import workload as workload_mod
from bench.errors import RunError, UsageError, shorten
from bench.plan import Plan, PlannedRun, make_plan
from bench.targets import Context, Target, build_targets
from bench.workload import Workload


@dataclass
class Prepared:
    workload: Workload
    path: Path
    plan: Plan
    unavailable: dict[str, str]


def distinct_jobs(
    workload: Workload, plan: Plan, targets: dict[str, Target], campaign: str
) -> dict[str, str]:
    """file name -> fio job text, one per target × point (what --export-fio writes)."""
    jobs = {}
    first_runs = {}
    for run in plan.runs:
        first_runs.setdefault((run.target, run.point_index), run)
    for name in plan.targets:
        target = targets[name]
        imposed = _imposed_options(target)
        for point in plan.points:
            run = first_runs[(name, point.index)]
            spec = fio.job_spec(workload, run, target, target.planned_filename(), imposed, campaign)
            jobs[f"{name}--p{point.index:03d}.fio"] = fio.job_text(spec)
    return jobs


def _imposed_options(target: Target) -> dict:
    # What setup() will impose, known without creating anything (fio-null's engine, a file's size).
    if target.driver == "fio-null":
        return {"ioengine": "null", "size": f"{int(target.options.get('size', 1024))}M"}
    if target.driver == "file":
        return {"size": f"{int(target.options.get('size', 256))}M"}
    return {}


def prepare(
    path: Path,
    *,
    seed: int | None = None,
    probe: bool = True,
    message=lambda text: None,
    kernels: list[str] | None = None,
    boots: int = 1,
) -> Prepared:
    """The checked workload and its plan; `kernels` (labels) and `boots`: a VM campaign of
    several kernels or boots (bench.multikernel chose them)."""
    workload = load_workload(path)
    name = campaign_name(workload, path)
    targets = build_targets(workload, Context("plan"))
    unavailable: dict[str, str] = {}
    if probe:
        for tname, target in targets.items():
            avail = target.probe()
            if not avail.ok:
                unavailable[tname] = avail.reason
                message(
                    f"target {tname} ({target.driver}) is not available here: {avail.reason}; "
                    "running the others"
                )
        if len(unavailable) == len(targets):
            raise RunError(
                "no target of this workload is available here: "
                + "; ".join(f"{n}: {r}" for n, r in unavailable.items())
            )
        check_kernel(workload, [n for n in targets if n not in unavailable], path)
    plan = make_plan(workload, name, seed, kernels, boots)
    if unavailable:
        plan.targets = [t for t in plan.targets if t not in unavailable]
        plan.runs = [r for r in plan.runs if r.target not in unavailable]
        plan.runs = [PlannedRun(**(r.__dict__ | {"position": i})) for i, r in enumerate(plan.runs)]
        if plan.baseline in unavailable:  # recorded in the plan: compare, plot and report agree
            plan.baseline = plan.targets[0]
            if plan.stopping:
                plan.stopping = replace(plan.stopping, baseline=plan.baseline)
            message(
                f"the baseline {workload.baseline_name()} is not available here: "
                f"{plan.baseline} is this campaign's baseline"
            )
    return Prepared(workload, path, plan, unavailable)


def load_workload(path: Path) -> Workload:
    """The workload, validated against this fio's option table (every problem said at once)."""
    table = fio_options.table()
    try:
        return workload_mod.load(path, fio_table=table)
    finally:
        table.save()  # what this workload made blkcmp ask fio, for next time


CHECK_BATCH = 256  # jobs per `fio --parse-only` (fio keeps every job of a file in memory)


def check_kernel(
    workload: Workload, target_names: list[str] | None = None, source: Path | str | None = None
) -> None:
    """Refuse, before anything is written, what the running kernel will not do for these
    targets: options its drivers lack (null_blk's features file, rnull's interface), values its
    rules refuse (a loop device's sector size). Reads the system, changes nothing; one line per
    problem, exit 2. Called on the host by `prepare`, and callable as is inside a guest before
    the host creates the campaign directory."""
    targets = build_targets(workload, Context("preflight"), target_names)
    problems = [line for target in targets.values() for line in target.kernel_problems()]
    if problems:
        where = f"{source}: " if source else ""
        raise UsageError("\n".join(f"{where}{line}" for line in problems))


def check_recorded_kernel(
    workload: Workload,
    drivers: dict,
    release: str,
    target_names: list[str] | None = None,
    source: Path | str | None = None,
) -> None:
    """check_kernel() for a VM's test kernel, from the driver facts its smoke boot recorded, so
    that what the guest would refuse is refused before the host creates the campaign."""
    targets = build_targets(workload, Context("preflight"), target_names)
    problems = [
        line for target in targets.values() for line in target.recorded_kernel_problems(drivers, release)
    ]
    if problems:
        where = f"{source}: " if source else ""
        raise UsageError("\n".join(f"{where}{line}" for line in problems))


def campaign_name(workload: Workload, path: Path) -> str:
    """The workload's `name:` (refused unless a safe file name), else one made from the file's."""
    if workload.name is not None:
        return names.require_safe_name(workload.name, f"{path}: name", "campaign", names.MAX_CAMPAIGN_NAME)
    return names.safe_name_from(path.stem, "campaign")


def check_with_fio(prepared: Prepared) -> None:
    """Let fio itself reject unknown or malformed options before anything runs.

    The distinct jobs go to fio in batches (one file may hold many [global] + job sections); only
    when a batch is refused is it halved until the refused job is found, to name it.
    """
    targets = build_targets(prepared.workload, Context("check"), prepared.plan.targets)
    jobs = distinct_jobs(prepared.workload, prepared.plan, targets, prepared.plan.campaign)
    texts = [(fname, text.replace("${BLKCMP_FILENAME}", "/dev/null")) for fname, text in jobs.items()]
    for start in range(0, len(texts), CHECK_BATCH):
        batch = texts[start : start + CHECK_BATCH]
        verdict = fio.parse_only("".join(text for _, text in batch))
        while verdict and len(batch) > 1:
            half = batch[: len(batch) // 2]
            first = fio.parse_only("".join(text for _, text in half))
            batch, verdict = (half, first) if first else (batch[len(batch) // 2 :], verdict)
        if verdict:
            fname = batch[0][0]
            raise UsageError(
                f"{prepared.path}: fio rejects the job for {fname.split('--')[0]} "
                f"({fname}): {shorten(verdict, 300)}"
            )


def create_campaign(prepared: Prepared, results: Path) -> store.Campaign:
    store.require_writable(results)
    environment, config = env.snapshot()
    return store.create(
        results,
        prepared.plan.campaign,
        workload_text=prepared.path.read_text(),
        resolved_yaml=workload_mod.dump(prepared.workload),
        source=str(prepared.path),
        plan=prepared.plan,
        environment=environment,
        kernel_config=config,
        extra={"unavailable_targets": prepared.unavailable},
    )


def load_campaign_workload(campaign: store.Campaign) -> Workload:
    # Checked against this fio again: a resumed campaign may run on another fio than it began on.
    table = fio_options.table()
    try:
        return campaign.workload(fio_table=table)
    finally:
        table.save()


def plan_summary(plan: Plan) -> str:
    lines = [
        f"campaign {plan.campaign}: {len(plan.runs)} runs = {len(plan.targets)} targets × "
        f"{len(plan.points)} points × {plan.rounds} rounds"
        + (f" × {len(plan.kernels)} kernels" if plan.slots else "")
        + f" ({plan.order}, seed {plan.seed})"
    ]
    if plan.max_rounds > plan.rounds:
        lines.append(
            f"adaptive: up to {plan.max_rounds} rounds "
            f"({len(plan.targets) * len(plan.points) * plan.max_rounds} runs at most)"
        )
    if plan.slots:
        lines.append(
            f"kernels: {', '.join(plan.kernels)}; {plan.boots} boot(s) each, {len(plan.slots)} boots in "
            f"this order: {' '.join(plan.slots)}"
        )
    lines.append(f"each run: ramp_time {plan.ramp_time:g} s + runtime {plan.runtime:g} s")
    est = plan.estimated_seconds()
    lines.append(
        f"estimated duration: {_duration(est)}"
        + (
            f" (at most {_duration(plan.estimated_seconds(len(plan.targets) * len(plan.points) * plan.max_rounds))})"
            if plan.max_rounds > plan.rounds
            else ""
        )
    )
    lines.append("targets: " + ", ".join(plan.targets))
    lines.append("points:")
    counts = Counter((r.point_index, r.target) for r in plan.runs)  # one pass: O(points + runs)
    for p in plan.points:
        per_target = {t: counts[(p.index, t)] for t in plan.targets}
        lines.append(f"  p{p.index:03d} {p.label}: " + ", ".join(f"{t} ×{n}" for t, n in per_target.items()))
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"
