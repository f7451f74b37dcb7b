"""Adaptive repetitions end to end: rounds are added until the ratio CI is narrow enough or the
cap is reached, and the campaign records which points hit the cap (real fio, null engine, its
throughput pinned by rate_iops so the noise is the test's, not the machine's)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

WORKLOAD = """
name: adaptive
targets:
  a: {{driver: fio-null, options: {{size: 64}}}}
  b: {{driver: fio-null, options: {{size: 64}}}}
fio: {{ioengine: psync, rate_iops: 2000}}
matrix: {{rw: [randread], bs: [4k]}}
repetitions: {{min: {min}, max: {max}, target_ci: {target}}}
runtime: 1
ramp_time: 0
seed: 5
"""


def run(tmp_path: Path, target_ci: float, max_rounds: int, min_rounds: int = 2) -> Path:
    w = tmp_path / "w.yaml"
    w.write_text(WORKLOAD.format(min=min_rounds, max=max_rounds, target=target_ci))
    out = subprocess.run([sys.executable, "-m", "bench", "run", str(w), "--results", str(tmp_path / "res"),
                          "--quiet"], capture_output=True, text=True, cwd=REPO, timeout=600,
                         env={"BLKCMP_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    assert out.returncode == 0, out.stderr
    return next((tmp_path / "res").iterdir())


def rounds_done(camp: Path) -> int:
    db = sqlite3.connect(camp / "index.sqlite")
    statuses = db.execute("SELECT DISTINCT status FROM runs").fetchall()
    assert statuses == [("done",)]
    return db.execute("SELECT max(round) FROM runs").fetchone()[0]


def test_unreachable_precision_runs_to_the_cap(tmp_path):
    camp = run(tmp_path, target_ci=1e-9, max_rounds=4)
    assert rounds_done(camp) == 4
    plan = json.loads((camp / "plan.json").read_text())
    assert plan["rounds"] == 4 and len(plan["runs"]) == 8
    decision = json.loads((camp / "adaptive.json").read_text())
    assert decision["stop"] is True
    assert decision["points_at_cap"] == [["b", "rw=randread,bs=4k"]]


def test_loose_precision_stops_before_the_cap(tmp_path):
    # rate_iops pins both targets near 2000 IOPS whatever the machine is doing, so ±20 % is
    # reached as soon as the rounds give a CI at all (identical rounds give none: no variability).
    camp = run(tmp_path, target_ci=0.2, max_rounds=8, min_rounds=3)
    assert 3 <= rounds_done(camp) < 8
    decision = json.loads((camp / "adaptive.json").read_text())
    assert decision["stop"] is True and decision["points_at_cap"] == []
    assert decision["max_halfwidth"] <= 0.2
