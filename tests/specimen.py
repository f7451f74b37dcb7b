"""Specimen campaigns whose truth is known, for checking that figures show what they must.

A specimen is a real campaign directory (bench.store.create, a plan from bench.plan, one run
directory per planned run, indexed by the same code that indexes fio's output) whose fio json+
files are written here with chosen numbers: the candidate's IOPS are the baseline's times a
known factor, with a known run-to-run spread, on a kernel release of our choosing.  Nothing is
measured; the label says so (`executor.label`).  Tests use it to check the plotted data (a 5 %
shift must sit at 1.05 with its CI around it).  Test data: it lives in tests/, never in the
package, and `blkcmp` itself never reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from bench import fio, store
from bench import plan as plan_mod
from bench.plots.data import block_size_bytes
from bench.targets.blockdev import audit_differences

LABEL = "specimen: synthetic numbers with a known truth, not a measurement"
AUDIT = {
    "logical_block_size": "4096",
    "physical_block_size": "4096",
    "capacity_bytes": "4294967296",
    "nr_hw_queues": "1",
    "nr_tags": "256",
    "scheduler": "none",
    "nr_requests": "256",
    "rq_affinity": "1",
    "nomerges": "0",
    "iostats": "1",
    "io_poll": "0",
    "write_cache": "write through",
    "max_sectors_kb": "124",
    "rotational": "0",
    "completion": "inline (irqmode 0)",
}


@dataclass
class Specimen:
    name: str = "specimen"
    kernel: str = "7.2.13"
    targets: Sequence[tuple[str, str]] = (("null_blk", "null_blk"), ("rnull", "rnull"))
    matrix: dict[str, list] = field(
        default_factory=lambda: {"rw": ["randread"], "bs": ["4k"], "iodepth": [1]}
    )
    rounds: int = 6
    base_iops: Callable[[dict], float] = lambda point: _plausible_iops(point)
    factor: Callable[[str, dict], float] = lambda target, point: 1.0  # target's IOPS / baseline's
    cv: float = 0.01  # run-to-run spread of IOPS (coefficient of variation)
    latency_ns: float = 2_000.0  # median completion latency of the baseline
    seed: int = 1
    emulated: bool = False
    audits: dict[str, dict] | None = None  # per target; default: AUDIT for block drivers
    allow_differences: Sequence[str] = ()
    runtime: float = 1.0
    timeseries_msec: int | None = None  # write fio-style IOPS logs at this interval
    # (target, window index, factor): that target's IOPS in that window of every run times factor
    stall: tuple[str, int, float] | None = None
    # sessions (boots, resumed runs): the rounds are split evenly over them, in order, and each
    # target's IOPS in session s are multiplied by session_factor(target, s)
    sessions: int = 1
    session_factor: Callable[[str, int], float] = lambda target, session: 1.0
    # several kernels in one campaign (bench.plan.add_boots): labels, boots per kernel; each
    # target's IOPS on a kernel times kernel_factor(label, target), and in boot slot k (one session
    # each, in slot order) times session_factor(target, k) as above
    kernels: Sequence[str] = ()
    boots: int = 1
    kernel_factor: Callable[[str, str], float] = lambda kernel, target: 1.0


def iops_log(spec: Specimen, target: str, iops: float, point: dict) -> list[tuple[int, int, int]]:
    """(time ms, IOPS, direction) per window, as fio's `timeseries_iops.1.log` holds them."""
    windows = int(spec.runtime * 1000 // spec.timeseries_msec)
    direction = 0 if "read" in str(point.get("rw", "randread")) else 1
    out = []
    for k in range(windows):
        factor = spec.stall[2] if spec.stall and spec.stall[:2] == (target, k) else 1.0
        out.append(((k + 1) * spec.timeseries_msec, int(round(iops * factor)), direction))
    return out


def _plausible_iops(point: dict) -> float:
    """More with depth and jobs, capped by a 16 GiB/s memory bandwidth for large blocks."""
    depth, jobs = int(point.get("iodepth", 1)), int(point.get("numjobs", 1))
    return min(250_000.0 * depth**0.4 * jobs**0.85, 16 * 2**30 / block_size_bytes(point.get("bs", "4k")))


def _points(matrix: dict[str, list]) -> list[dict]:
    points: list[dict] = [{}]
    for key, values in matrix.items():
        points = [p | {key: v} for p in points for v in values]
    return points


def _bins(rng: np.random.Generator, median_ns: float, count: int = 4000) -> dict[str, int]:
    # fio's json+ buckets are log-linear, 64 per doubling: a few dozen distinct values here
    steps = np.round(np.log2(median_ns * np.exp(0.35 * rng.standard_normal(count))) * 64)
    samples = np.rint(2.0 ** (steps / 64)).astype(int)
    values, counts = np.unique(np.maximum(samples, 1), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, counts)}


def _fio_json(
    target: str, point: dict, iops: float, runtime: float, median_ns: float, rng: np.random.Generator
) -> dict:
    bs = block_size_bytes(point.get("bs", "4k"))
    ios = int(iops * runtime)
    bins = _bins(rng, median_ns)
    percentiles = {
        f"{p:.6f}": v for p, v in ((50.0, median_ns), (99.0, median_ns * 2.3), (99.9, median_ns * 3.0))
    }
    busy = {
        "iops": iops,
        "bw_bytes": iops * bs,
        "io_bytes": ios * bs,
        "runtime": runtime * 1000,
        "total_ios": ios,
        "clat_ns": {"mean": median_ns, "N": ios, "bins": bins, "percentile": percentiles},
    }
    idle = {"iops": 0, "bw_bytes": 0, "io_bytes": 0, "runtime": 0, "total_ios": 0}
    reading = "read" in str(point.get("rw", "randread"))
    return {
        "fio version": "fio-3.33",
        "timestamp": 1_700_000_000,
        "global options": {},
        "jobs": [
            {
                "jobname": target,
                "groupid": 0,
                "error": 0,
                "job options": {k: str(v) for k, v in point.items()},
                "read": busy if reading else idle,
                "write": idle if reading else busy,
                "usr_cpu": 8.0 * 400_000 / max(iops, 1.0),
                "sys_cpu": 60.0,
                "ctx": 10,
                "job_runtime": runtime * 1000,
            }
        ],
    }


def create(root: Path, spec: Specimen) -> Path:
    """Write the specimen campaign under `root`; returns its directory."""
    names = [t for t, _ in spec.targets]
    drivers = dict(spec.targets)
    plan = plan_mod.Plan(
        campaign=spec.name,
        seed=spec.seed,
        order="interleaved",
        targets=names,
        points=[plan_mod.Point(i, p) for i, p in enumerate(_points(spec.matrix))],
        runtime=spec.runtime,
        ramp_time=0,
        rounds=0,
        max_rounds=spec.rounds,
        baseline=names[0],
    )
    if spec.kernels:
        plan = plan_mod.add_boots(plan, spec.rounds, list(spec.kernels), spec.boots)
    else:
        plan = plan_mod.add_rounds(plan, spec.rounds)
    workload = {
        "name": spec.name,
        "targets": {t: {"driver": d} for t, d in spec.targets},
        "baseline": names[0],
        "fio": {"ioengine": "io_uring", "direct": 1},
        "matrix": spec.matrix,
        "repetitions": spec.rounds,
        "runtime": spec.runtime,
        "ramp_time": 0,
        "allow_differences": list(spec.allow_differences),
    }
    if spec.timeseries_msec:
        workload["timeseries"] = f"{spec.timeseries_msec}ms"
    executor = {
        "kind": "vm" if spec.emulated else "specimen",
        "emulated": spec.emulated,
        "label": "emulated (TCG): proves the machinery, not driver performance" if spec.emulated else LABEL,
    }
    environment = {
        "hostname": "specimen",
        "kernel": {"release": spec.kernel},
        "cpu": {"model": "Specimen CPU", "count": 2},
        "fio_version": "fio-3.33",
        "blkcmp": {"version": "0.1.0", "git_commit": "0000000specimen"},
        "executor": executor,
    }
    campaign = store.create(
        root,
        spec.name,
        workload_text=yaml.safe_dump(workload, sort_keys=False),
        resolved_yaml=yaml.safe_dump(workload, sort_keys=False),
        source="specimen",
        plan=plan,
        environment=environment,
        kernel_config=None,
    )
    audits = spec.audits or {t: dict(AUDIT) for t, d in spec.targets if d in ("null_blk", "rnull")}
    # as the runner records a session: the differences found, each allowed by the workload
    _, allowed = audit_differences(audits, list(spec.allow_differences)) if len(audits) > 1 else ([], [])
    sessions = len(plan.slots) if spec.kernels else spec.sessions
    for s in range(sessions):
        campaign.add_session(
            store.TargetSession(
                f"2026-01-01T{s:02d}:00:00Z",
                s,
                {
                    t: {"driver": d, "device": f"/dev/{t}0"} | ({"audit": audits[t]} if t in audits else {})
                    for t, d in spec.targets
                },
                list(allowed),
            )
        )
    rng = np.random.default_rng(spec.seed)
    # one shared disturbance per round and point: what pairing by round is meant to cancel
    round_noise = {
        (k, r, p.index): rng.normal(0, spec.cv)
        for k in (spec.kernels or [None])
        for r in range(1, spec.rounds + 1)
        for p in plan.points
    }
    for run in plan.runs:
        point = run.point
        session = run.boot if spec.kernels else (run.round - 1) * spec.sessions // spec.rounds
        iops = (
            spec.base_iops(point)
            * spec.factor(run.target, point)
            * (spec.kernel_factor(run.kernel, run.target) if spec.kernels else 1.0)
            * spec.session_factor(run.target, session)
            * (1 + round_noise[(run.kernel, run.round, run.point_index)])
            * (1 + rng.normal(0, spec.cv / 4))
        )
        median = spec.latency_ns * int(point.get("iodepth", 1)) / spec.factor(run.target, point)
        files = campaign.run_files(run.run_id)
        run_dir = files.dir
        run_dir.mkdir(parents=True)
        job = fio.JobSpec(
            run.target,
            f"/dev/{run.target}0",
            workload["fio"],
            point,
            {},
            spec.runtime,
            0,
            (
                f"specimen campaign {spec.name}: target {run.target} ({drivers[run.target]}), "
                f"point {run.point_key}",
            ),
            spec.timeseries_msec,
        )
        files.job.write_text(fio.job_text(job))
        files.fio_output.write_text(json.dumps(_fio_json(run.target, point, iops, spec.runtime, median, rng)))
        if spec.timeseries_msec:
            (run_dir / "timeseries_iops.1.log").write_text(
                "".join(f"{t}, {v}, {d}, 0, 0\n" for t, v, d in iops_log(spec, run.target, iops, point))
            )
        ios = iops * spec.runtime
        files.write_cpu(
            {
                "seconds": {
                    "softirq": ios * 150e-9,
                    "system": ios * 900e-9,
                    "user": ios * 300e-9,
                    "irq": 0.0,
                },
                "block_softirqs": int(ios),
            }
        )
        files.write_meta(
            {
                "run": run.__dict__,
                "status": "done",
                "error": None,
                "started": f"2026-01-01T{session:02d}:30:00Z" if sessions > 1 else None,
                "ended": None,
                "host": "specimen",
                "kernel": spec.kernel,
                "kernel_label": run.kernel,
                "boot_slot": run.boot,
                "boot_id": f"specimen-boot-{session}",
                "fio_version": "fio-3.33",
            }
        )
        store.index_run_dir(campaign, run.run_id, run_dir)
    return campaign.path
