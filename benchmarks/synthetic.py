"""Folders of fio output files written with chosen numbers, for blkcmp's own benchmarks.

Two shapes, each built from a real fio document so that every field fio writes is there:
* `jsonplus_folder`: fio 3.33 `--output-format=json+` (benchmarks/data/, recorded here from fio
  3.33's null engine), with ~270 latency bins per file, like blkcmp's own runs;
* `plain_folder`: fio 3.1-style plain JSON without sample counts or bins (tests/data/fio/), like
  the 98-file folder of issue 10 that another tool drew in 7.0 s.
Each file is one run of one target (its job name) at one point; the candidate's IOPS are the
baseline's times `factor`, with a per-round disturbance shared by both targets and a small
per-run spread.  Nothing is measured: these files exist to time blkcmp, not to judge drivers.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
JSONPLUS_TEMPLATE = HERE / "data" / "fio-3.33-null-jsonplus.json"
PLAIN_TEMPLATE = HERE.parent / "tests" / "data" / "fio" / "fio-3.1-randread.json"

# The matrix of issue 11: 2 rw x 5 bs x 4 iodepth x 3 numjobs = 120 points.
MATRIX_120 = {
    "rw": ["randread", "randwrite"],
    "bs": ["4k", "8k", "16k", "64k", "128k"],
    "iodepth": [1, 4, 16, 64],
    "numjobs": [1, 2, 4],
}
# The 98-file folder: 5 points x 2 targets, 10 runs each but one point with 9.
MATRIX_5 = [
    {"rw": "randread", "bs": "4k", "iodepth": 1},
    {"rw": "randread", "bs": "4k", "iodepth": 32},
    {"rw": "randwrite", "bs": "4k", "iodepth": 1},
    {"rw": "randwrite", "bs": "4k", "iodepth": 32},
    {"rw": "read", "bs": "128k", "iodepth": 8},
]
TARGETS = ("null_blk", "rnull")
_BS = {"4k": 4096, "8k": 8192, "16k": 16384, "64k": 65536, "128k": 131072}


def matrix_points(matrix: dict[str, list]) -> list[dict]:
    return [dict(zip(matrix, values)) for values in itertools.product(*matrix.values())]


def _iops(point: dict) -> float:
    depth, jobs = int(point.get("iodepth", 1)), int(point.get("numjobs", 1))
    return min(250_000.0 * depth**0.4 * jobs**0.85, 16 * 2**30 / _BS[point["bs"]])


def _fio_bucket(ns: np.ndarray) -> np.ndarray:
    """fio's json+ bucket values: 64 log-linear buckets per power of two (above 128 ns)."""
    exponent = np.maximum(np.floor(np.log2(np.maximum(ns, 1))) - 6, 0)
    step = 2.0**exponent
    return (np.floor(ns / step) * step).astype(np.int64)


def _bins(rng: np.random.Generator, median_ns: float, count: int = 20_000) -> dict[str, int]:
    samples = median_ns * np.exp(0.25 * rng.standard_normal(count) + 0.6 * rng.exponential(0.15, count))
    values, counts = np.unique(_fio_bucket(samples), return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts)}


def _percentiles(bins: dict[str, int]) -> dict[str, int]:
    values = np.array([int(k) for k in bins])
    cum = np.cumsum([bins[k] for k in bins])
    out = {}
    for p in (
        1.0,
        5.0,
        10.0,
        20.0,
        30.0,
        40.0,
        50.0,
        60.0,
        70.0,
        80.0,
        90.0,
        95.0,
        99.0,
        99.5,
        99.9,
        99.95,
        99.99,
    ):
        out[f"{p:.6f}"] = int(values[np.searchsorted(cum, cum[-1] * p / 100.0)])
    return out


def _runs(points: list[dict], rounds: int | list[int], factor: float, cv: float, seed: int):
    """(round, target, point, iops) in interleaved order, one per file."""
    rng = np.random.default_rng(seed)
    per_point = rounds if isinstance(rounds, list) else [rounds] * len(points)
    for r in range(1, max(per_point) + 1):
        for p, point in enumerate(points):
            if r > per_point[p]:
                continue
            shared = 1 + rng.normal(0, cv)
            for target in TARGETS:
                scale = factor if target == TARGETS[1] else 1.0
                yield r, target, point, _iops(point) * scale * shared * (1 + rng.normal(0, cv / 4)), rng


def _direction(
    template: dict,
    iops: float,
    bs: int,
    runtime_ms: float,
    median_ns: float,
    rng: np.random.Generator,
    plus: bool,
) -> dict:
    d = copy.deepcopy(template)
    ios = int(iops * runtime_ms / 1000)
    d.update(
        {
            "iops": iops,
            "runtime": int(runtime_ms),
            "total_ios": ios,
            "io_bytes": ios * bs,
            "io_kbytes": ios * bs // 1024,
            "bw": int(iops * bs / 1024),
        }
    )
    if "bw_bytes" in d:
        d["bw_bytes"] = int(iops * bs)
    clat = d["clat_ns"]
    if plus:
        bins = _bins(rng, median_ns)
        clat.update({"bins": bins, "percentile": _percentiles(bins), "N": ios, "mean": median_ns * 1.08})
        d["lat_ns"].update({"N": ios, "mean": median_ns * 1.12})
        d["slat_ns"].update({"N": ios})
    else:
        clat["mean"] = median_ns * 1.08
        clat["percentile"] = {
            k: (int(median_ns * (1 + 0.02 * float(k))) if float(k) else 0) for k in clat["percentile"]
        }
        d["lat_ns"]["mean"] = median_ns * 1.12
    return d


def _document(
    template: dict, target: str, point: dict, iops: float, rng: np.random.Generator, stamp: int, plus: bool
) -> dict:
    doc = copy.deepcopy(template)
    doc["timestamp"] = stamp
    job = doc["jobs"][0]
    job["jobname"] = target
    job["job options"] = {
        "name": target,
        "filename": f"/dev/{target}0",
        **{k: str(v) for k, v in point.items()},
    }
    bs = _BS[point["bs"]]
    runtime_ms = 1000.0 if plus else 30001.0
    median_ns = 2_000.0 * int(point.get("iodepth", 1)) * int(point.get("numjobs", 1)) ** 0.5
    idle = {
        k: (0 if not isinstance(v, dict) else {kk: 0 for kk in ("min", "max", "mean", "stddev")})
        for k, v in job["write"].items()
    }
    busy = _direction(job["read"], iops, bs, runtime_ms, median_ns, rng, plus)
    reading = "read" in point["rw"]
    job["read"], job["write"] = (busy, idle) if reading else (idle, busy)
    job["usr_cpu"], job["sys_cpu"] = 8.0 * 400_000 / max(iops, 1.0), 60.0
    if "job_runtime" in job:
        job["job_runtime"] = int(runtime_ms)
    return doc


def jsonplus_folder(
    out: Path,
    *,
    matrix: dict[str, list] | None = None,
    rounds: int = 40,
    factor: float = 1.0,
    cv: float = 0.01,
    seed: int = 1,
    limit: int | None = None,
) -> list[Path]:
    """fio 3.33 json+ files, 2 targets x points x rounds (issue 11's 9,600 runs by default)."""
    template = json.loads(JSONPLUS_TEMPLATE.read_text())
    points = matrix_points(matrix or MATRIX_120)
    return _write(out, template, _runs(points, rounds, factor, cv, seed), plus=True, limit=limit)


def plain_folder(
    out: Path,
    *,
    points: list[dict] | None = None,
    rounds: list[int] | None = None,
    factor: float = 1.0,
    cv: float = 0.01,
    seed: int = 1,
) -> list[Path]:
    """fio 3.1 plain JSON files (no sample count, no bins): issue 10's 98-file folder by default."""
    template = json.loads(PLAIN_TEMPLATE.read_text())
    points = points or MATRIX_5
    rounds = rounds or [10, 10, 10, 10, 9]
    return _write(out, template, _runs(points, rounds, factor, cv, seed), plus=False)


def _write(out: Path, template: dict, runs, *, plus: bool, limit: int | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (r, target, point, iops, rng) in enumerate(runs):
        if limit is not None and i >= limit:
            break
        doc = _document(template, target, point, iops, rng, 1_700_000_000 + i, plus)
        path = out / f"{i:05d}-{target}-r{r}.json"
        path.write_text(json.dumps(doc, indent=1))
        paths.append(path)
    return paths


if __name__ == "__main__":  # python -m benchmarks.synthetic OUT [jsonplus|plain] [LIMIT]
    import sys

    where = Path(sys.argv[1])
    kind = sys.argv[2] if len(sys.argv) > 2 else "jsonplus"
    made = (
        jsonplus_folder(where, limit=int(sys.argv[3]) if len(sys.argv) > 3 else None)
        if kind == "jsonplus"
        else plain_folder(where)
    )
    print(f"{len(made)} files in {where}")
