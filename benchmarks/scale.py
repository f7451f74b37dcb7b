"""Time blkcmp's steps at the size of a real campaign and on issue 10's small folder.

* 9,600 runs: issue 11's 120 points (2 rw x 5 bs x 4 iodepth x 3 numjobs) x 40 rounds x 2
  targets, as fio 3.33 json+ files (benchmarks/synthetic.py), then `blkcmp ingest DIR`,
  `blkcmp compare`, `blkcmp report`;
* 98 files: 5 points x 2 targets of fio 3.1-style plain JSON, the same three commands.
Each command runs as a user runs it (a fresh process); printed and saved per step: wall time,
CPU time (user + system, the command and the processes it forks) and peak resident memory.

Usage: python -m benchmarks.scale [--only 98|9600] [--keep DIR] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import synthetic

ROOT = Path(__file__).resolve().parent.parent


def timed(*args: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"blkcmp {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_maxrss of children is the largest of any child so far: right for the first, an upper
    # bound after (steps are run smallest first)
    return {
        "command": args[0],
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mib": after.ru_maxrss // 1024,
    }


def pipeline(files: Path, work: Path) -> list[dict]:
    campaign, report = work / "campaign", work / "report"
    shutil.rmtree(campaign, ignore_errors=True)
    shutil.rmtree(report, ignore_errors=True)
    return [
        timed("ingest", str(files), "--into", str(campaign)),
        timed("compare", str(campaign), "--format", "text"),
        timed("report", str(campaign), "--out", str(report)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("98", "9600"))
    parser.add_argument("--keep", type=Path, help="build the folders and campaigns here (kept)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "scale.json"
    )
    args = parser.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="blkcmp-scale-", dir="/var/tmp"))
    results = {}
    try:
        if args.only in (None, "98"):
            files = work / "plain-98"
            if not files.is_dir():
                synthetic.plain_folder(files)
            results["98 plain files"] = pipeline(files, work / "p98")
        if args.only in (None, "9600"):
            files = work / "jsonplus-9600"
            if not files.is_dir():
                synthetic.jsonplus_folder(files)
            results["9,600 json+ runs"] = pipeline(files, work / "p9600")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    doc = {
        "machine": {
            "node": platform.node(),
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "load_average_after": os.getloadavg(),
        },
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    for name, steps in results.items():
        print(
            f"{name}: "
            + "; ".join(
                f"{s['command']} {s['wall_s']} s wall, {s['cpu_s']} s CPU, {s['peak_rss_mib']} MiB"
                for s in steps
            )
        )
    print(f"saved: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
