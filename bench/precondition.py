"""Preconditioning block-device targets before measurements count (SNIA Solid State Storage PTS):
an optional purge, sequential fills of the whole device, then rounds of the tracked job until the
steady-state check (bench.stats.steady_state) finds a steady window.

A fresh SSD is faster than a used one until its spare blocks are consumed, so numbers taken
before steady state describe a state the device leaves within minutes. Every fio job here goes
through the campaign's safety path: the target's check_before_run(writes=True) (for blockdev and
nvme targets the refusal policy: destructive, identity, the refusal list) right before fio starts,
a job file blkcmp writes with the device it found, and fio started and recorded by bench.fio.run.
The record (purge, every fill, every round and the steady-state answer) is saved with the
campaign (store.Campaign.save_precondition) before a failure is reported.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import fio
from bench.errors import RunError
from bench.stats.steady_state import steady_state

if TYPE_CHECKING:
    from bench.store import Campaign
    from bench.targets.base import Target
    from bench.workload import Workload

FILL_BLOCKSIZE = "128k"  # SNIA PTS's workload-independent preconditioning: 128 KiB sequential writes
FILL_TIMEOUT_S = 6 * 3600


# The slowest write rate assumed when budgeting a guest's time for fills (an emulated NVMe
# namespace under TCG on a loaded host), and the time allowed for one purge.
SLOWEST_FILL_BYTES_S = 10 << 20
PURGE_ALLOWANCE_S = 120


def allowance_s(workload: Workload, n_targets: int, per_round_s: float, device_bytes: int) -> float:
    """Seconds a campaign's preconditioning may take, for a VM's timeout: purge, fills of
    `device_bytes` at the slowest assumed rate, and every steady-state round allowed."""
    spec = workload.precondition
    if spec is None:
        return 0.0
    rounds = spec.steady_state.max_rounds if spec.steady_state else 0
    return n_targets * (
        (PURGE_ALLOWANCE_S if spec.purge else 0)
        + spec.fills * device_bytes / SLOWEST_FILL_BYTES_S
        + rounds * per_round_s
    )


def purge_command(target: Target) -> list[str]:
    """`nvme format` for an nvme target whose controller supports Format NVM (nvme-cli said so at
    setup), else blkdiscard (-f: blkcmp's own refusal policy has already decided)."""
    dev = target.device.block_device
    facts = getattr(target, "facts", {}) or {}
    if target.driver == "nvme" and facts.get("format_supported"):
        return ["nvme", "format", dev, "--ses=0", "--force"]
    return ["blkdiscard", "-f", dev]


def purge(target: Target) -> dict[str, Any]:
    target.check_before_run(writes=True)
    cmd = purge_command(target)
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=FILL_TIMEOUT_S)
    record = {
        "command": cmd,
        "returncode": proc.returncode,
        "elapsed_s": round(time.monotonic() - started, 3),
        "stderr": proc.stderr.strip()[:500],
    }
    if proc.returncode != 0:
        raise _Failed(record, f"purge ({' '.join(cmd)}) failed: {proc.stderr.strip()[:200]}")
    return record


def fill_job_text(target: Target, workload: Workload) -> str:
    """One sequential write of the whole device (no size: fio writes a block device end to end)."""
    options = {
        "rw": "write",
        "bs": FILL_BLOCKSIZE,
        "direct": 1,
        "ioengine": workload.fio.get("ioengine", "libaio"),
        "iodepth": 32,
    }
    lines = [
        f"# blkcmp preconditioning: one sequential fill of target {target.name}",
        "[global]",
        f"filename={target.device.block_device}",
        *fio._option_lines(options),
        "",
        f"[{target.name}-fill]",
    ]
    return "\n".join(lines) + "\n"


class _Failed(Exception):
    """A step that failed, with what it recorded (saved before the campaign stops)."""

    def __init__(self, record: dict, message: str):
        super().__init__(message)
        self.record = record


def _fio(
    target: Target, text: str, directory: Path, stem: str, timeout_s: float
) -> tuple[dict, fio.RunMetrics]:
    target.check_before_run(writes=True)
    job, output = directory / f"{stem}.fio", directory / f"{stem}.json"
    job.write_text(text)
    inv = fio.run(job, output, timeout_s=timeout_s)
    record = {
        "job": job.name,
        "output": output.name,
        "returncode": inv.returncode,
        "elapsed_s": inv.elapsed_s,
    }
    try:
        metrics = fio.run_metrics(fio.parse(output.read_text()))
    except (OSError, fio.FioParseError) as exc:
        raise _Failed(record, f"{stem}: fio output unreadable ({exc}): {inv.stderr.strip()[:200]}") from None
    if inv.returncode != 0:
        raise _Failed(record, f"{stem}: fio exited {inv.returncode}: {inv.stderr.strip()[:200]}")
    return record | {"iops": metrics.iops, "bw_bytes": metrics.bw_bytes}, metrics


def precondition_target(target: Target, workload: Workload, directory: Path, reporter) -> dict[str, Any]:
    """Purge, fill, steady-state rounds on one set-up target; the record (raises _Failed)."""
    spec = workload.precondition
    assert spec is not None
    directory.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"purge": None, "fills": [], "steady_state": None}
    try:
        if spec.purge:
            reporter.message(f"precondition {target.name}: purge ({purge_command(target)[0]})")
            record["purge"] = purge(target)
        for i in range(1, spec.fills + 1):
            reporter.message(f"precondition {target.name}: fill {i}/{spec.fills}")
            step, _ = _fio(target, fill_job_text(target, workload), directory, f"fill-{i}", FILL_TIMEOUT_S)
            record["fills"].append(step)
        steady = spec.steady_state
        if steady is None:
            return record
        point = workload.points()[steady.point]
        rounds: list[dict] = []
        values: list[float] = []
        for r in range(1, steady.max_rounds + 1):
            job = fio.JobSpec(
                name=target.name,
                filename=target.device.block_device,
                fio_options=fio.job_options(workload.fio),
                point=fio.job_options(point),
                target_options=target.device.fio_options,
                runtime=workload.runtime,
                ramp_time=workload.ramp_time,
                comments=(f"blkcmp preconditioning: steady-state round {r} of target {target.name}",),
            )
            timeout = workload.runtime + workload.ramp_time + 120
            step, metrics = _fio(target, fio.job_text(job), directory, f"round-{r:03d}", timeout)
            rounds.append(step)
            values.append(getattr(metrics, steady.metric))
            result = steady_state(
                values, steady.window, steady.max_excursion, steady.max_slope_change, steady.band
            )
            record["steady_state"] = result.record() | {
                "metric": steady.metric,
                "point": point,
                "round_runs": rounds,
            }
            if result.steady:
                reporter.message(f"precondition {target.name}: {result.reason}")
                return record
        raise _Failed(
            record,
            f"target {target.name} reached no steady state in {steady.max_rounds} rounds "
            f"({result.reason}); raise precondition.steady_state.max_rounds or loosen its thresholds",
        )
    except _Failed as exc:
        exc.record = record
        raise


def precondition_all(campaign: Campaign, workload: Workload, targets: dict[str, Target], reporter) -> None:
    """Precondition every block-device target once per campaign (a resumed campaign whose record
    says every target reached its end is not preconditioned again); the record is saved whatever
    happens, then a failure stops the campaign (exit 1) before any measured run."""
    if workload.precondition is None:
        return
    done = campaign.precondition_record() or {}
    if done.get("complete"):
        return
    records: dict[str, Any] = {}
    complete = False
    try:
        for name, target in targets.items():
            if not (target.device and target.device.block_device):
                continue  # a file or fio's null engine: nothing to precondition
            try:
                records[name] = precondition_target(
                    target, workload, campaign.precondition_dir(name), reporter
                )
            except _Failed as exc:
                records[name] = exc.record | {"error": str(exc)}
                raise RunError(f"preconditioning: {exc}") from None
        complete = True
    finally:
        campaign.save_precondition({"complete": complete, "targets": records})
