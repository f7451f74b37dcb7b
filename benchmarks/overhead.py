"""What blkcmp's harness costs: the same fio job run by `blkcmp run` and by bare fio, interleaved.

For each target kind (fio's null engine; a loop device over a file on disk) a one-point,
one-run workload is planned, its job exported with `blkcmp plan --export-fio`, and then, round
after round in alternating order, run once by `blkcmp run` (a whole campaign: start-up, fio
option checks, `fio --parse-only`, target set-up, audit, write-safety checks, the run, indexing,
teardown) and once by bare `fio --output-format=json+` on that exported job (for the loop kind
on a loop device set up here the way blkcmp sets its own up: same size, scheduler none).

Two answers per kind, each with blkcmp's own statistics (bench.stats.compare, paired by round):
* the IOPS ratio blkcmp/bare with its 95 % CI: does running under blkcmp change what fio
  measures?
* the fixed wall-clock cost of one `blkcmp run` beyond the fio process: mean and 95 % CI of
  (wall time of `blkcmp run`) - (wall time of bare fio), and the part of it outside blkcmp's own
  fio invocation (wall time - the fio time blkcmp records in run.json as elapsed_s).

Usage: python -m benchmarks.overhead [--rounds N] [--runtime S] [--out FILE.json]
(run as root: the loop kind needs losetup; every command runs under the caller's nice level).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import stats

WORKLOADS = {
    "fio-null": """name: overhead-fionull
targets:
  fionull: {{driver: fio-null, options: {{size: 64}}}}
fio: {{ioengine: 'null'}}
matrix: {{rw: [randread], bs: [4k], iodepth: [1]}}
repetitions: 1
runtime: {runtime}
ramp_time: 0
""",
    "loop": """name: overhead-loop
targets:
  loop: {{driver: loop, options: {{size: 64, directory: {directory}}}}}
fio: {{ioengine: io_uring, direct: 1}}
matrix: {{rw: [randread], bs: [4k], iodepth: [1]}}
repetitions: 1
runtime: {runtime}
ramp_time: 0
""",
}


def _blkcmp(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def _timed(cmd: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return elapsed, proc


def _fio_iops(text: str) -> float:
    from bench import fio

    return fio.run_metrics(fio.parse(text)).iops


class LoopDevice:
    """A loop device for the bare-fio side, set up as blkcmp's loop target sets up its own."""

    def __init__(self, directory: Path, size_mib: int = 64):
        self.backing = directory / "bare-loop.img"
        with open(self.backing, "wb") as fh:
            fh.truncate(size_mib * 2**20)
        self.device = subprocess.run(
            ["losetup", "--find", "--show", str(self.backing)], check=True, capture_output=True, text=True
        ).stdout.strip()
        scheduler = Path("/sys/block") / Path(self.device).name / "queue" / "scheduler"
        if scheduler.exists():
            scheduler.write_text("none")

    def close(self) -> None:
        for _ in range(20):  # udev may still hold it for a moment after fio closed it
            if (
                subprocess.run(["losetup", "-d", self.device], capture_output=True, check=False).returncode
                == 0
            ):
                break
            time.sleep(0.1)
        self.backing.unlink(missing_ok=True)


def measure(kind: str, rounds: int, runtime: float, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    workload = work / f"{kind}.yaml"
    workload.write_text(WORKLOADS[kind].format(runtime=runtime, directory=work))
    exported = work / "exported"
    _timed(_blkcmp("plan", str(workload), "--export-fio", str(exported)))
    job = next(exported.glob("*.fio"))
    rows = []
    for r in range(1, rounds + 1):
        row: dict = {"round": r}
        order = ("blkcmp", "fio") if r % 2 else ("fio", "blkcmp")
        for side in order:
            if side == "blkcmp":
                results = work / f"results-{r}"
                wall, _ = _timed(_blkcmp("run", str(workload), "--results", str(results)))
                run_dir = next(results.glob("*/runs/*"))
                meta = json.loads((run_dir / "run.json").read_text())
                row |= {
                    "blkcmp_wall_s": wall,
                    "blkcmp_fio_s": meta.get("elapsed_s"),
                    "blkcmp_iops": _fio_iops((run_dir / "fio.json").read_text()),
                }
                continue
            # a fresh device per round, as blkcmp makes one per campaign (set up outside the timing)
            loop = LoopDevice(work) if kind == "loop" else None
            env = dict(os.environ) | ({"BLKCMP_FILENAME": loop.device} if loop else {})
            out = work / f"bare-{r}.json"
            try:
                wall, _ = _timed(["fio", "--output-format=json+", f"--output={out}", str(job)], env)
            finally:
                if loop:
                    loop.close()
            row |= {"fio_wall_s": wall, "fio_iops": _fio_iops(out.read_text())}
        rows.append(row)
        print(
            f"  {kind} round {r}: blkcmp {row['blkcmp_iops']:.0f} IOPS in {row['blkcmp_wall_s']:.2f} s, "
            f"bare fio {row['fio_iops']:.0f} IOPS in {row['fio_wall_s']:.2f} s",
            flush=True,
        )
    return summarise(kind, rows, runtime)


def _mean_ci(values: list[float]) -> tuple[float, float, float]:
    from scipy import special

    x = np.asarray(values, dtype=float)
    half = special.stdtrit(x.size - 1, 0.975) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def summarise(kind: str, rows: list[dict], runtime: float) -> dict:
    rounds = [r["round"] for r in rows]
    comparison = stats.compare(
        [r["fio_iops"] for r in rows],
        [r["blkcmp_iops"] for r in rows],
        baseline_rounds=rounds,
        candidate_rounds=rounds,
        higher_is_better=True,
    )
    extra = _mean_ci([r["blkcmp_wall_s"] - r["fio_wall_s"] for r in rows])
    outside_fio = _mean_ci([r["blkcmp_wall_s"] - r["blkcmp_fio_s"] for r in rows if r.get("blkcmp_fio_s")])
    return {
        "kind": kind,
        "rounds": len(rows),
        "runtime_s": runtime,
        "bare_fio_iops_mean": comparison.baseline.mean,
        "blkcmp_iops_mean": comparison.candidate.mean,
        "iops_ratio": comparison.ratio,
        "iops_ratio_ci": [comparison.ratio_ci_low, comparison.ratio_ci_high],
        "iops_p_value": comparison.p_value,
        "extra_wall_s_per_run": extra[0],
        "extra_wall_s_ci": list(extra[1:]),
        "outside_fio_s_per_run": outside_fio[0],
        "outside_fio_s_ci": list(outside_fio[1:]),
        "rows": rows,
    }


def report_lines(result: dict) -> list[str]:
    lo, hi = result["iops_ratio_ci"]
    elo, ehi = result["extra_wall_s_ci"]
    olo, ohi = result["outside_fio_s_ci"]
    head = f"{result['kind']}: {result['rounds']} interleaved rounds of {result['runtime_s']:g} s runs"
    iops = (
        f"  IOPS: bare fio {result['bare_fio_iops_mean']:.0f}, under blkcmp {result['blkcmp_iops_mean']:.0f}: "
        f"ratio {result['iops_ratio']:.4f} (95 % CI {lo:.4f}-{hi:.4f}, paired t p = {result['iops_p_value']:.2g})"
    )
    wall = (
        f"  wall clock per `blkcmp run` beyond bare fio: {result['extra_wall_s_per_run']:.2f} s "
        f"(95 % CI {elo:.2f}-{ehi:.2f}); outside blkcmp's own fio process: "
        f"{result['outside_fio_s_per_run']:.2f} s ({olo:.2f}-{ohi:.2f})"
    )
    return [head, iops, wall]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runtime", type=float, default=2.0)
    parser.add_argument("--kinds", default="fio-null,loop")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "overhead.json"
    )
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="blkcmp-overhead-", dir="/var/tmp") as tmp:
        for kind in args.kinds.split(","):
            results.append(measure(kind, args.rounds, args.runtime, Path(tmp) / kind))
    doc = {
        "machine": {
            "node": platform.node(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            "kernel": platform.release(),
            "load_average": os.getloadavg(),
        },
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    for result in results:
        print("\n".join(report_lines(result)))
    print(f"saved: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
