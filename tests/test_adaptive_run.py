"""Adaptive repetitions: the runner adds interleaved rounds until the stopping rule says stop or
the cap is reached, and records which points hit the cap (real fio, null engine). Whether the
rule stops on precision is checked on a campaign whose noise the test sets (ingested runs):
real fio throughput on a shared machine is too noisy, or too quantized, to make that exact."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from test_compare import make_campaign, template  # noqa: F401  (fio json+ template fixture)

REPO = Path(__file__).resolve().parent.parent

WORKLOAD = """
name: adaptive
targets:
  a: {{driver: fio-null, options: {{size: 64}}}}
  b: {{driver: fio-null, options: {{size: 64}}}}
fio: {{ioengine: psync}}
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


def test_stopping_rule_on_a_campaign_with_known_noise(tmp_path, template):
    from bench import analysis, store
    # Two targets, equal means, CV 1 %, five rounds: the ratio CI is a few per cent wide.
    camp = store.open_campaign(make_campaign(tmp_path, template, {"null_blk": {1: 100_000},
                                                                 "rnull": {1: 100_000}}, n=5))
    plan = camp.plan()
    more, reason = analysis.adaptive_more_rounds(camp, plan, target_ci=0.05, min_rounds=3, max_rounds=10)
    assert more is False and "within" in reason
    decision = json.loads((camp.path / "adaptive.json").read_text())
    assert decision["stop"] is True and decision["max_halfwidth"] <= 0.05
    more, reason = analysis.adaptive_more_rounds(camp, plan, target_ci=0.001, min_rounds=3, max_rounds=10)
    assert more is True
    assert json.loads((camp.path / "adaptive.json").read_text())["points_above_target"] == [
        ["rnull", "rw=randread,bs=4k,iodepth=1"]]
    more, _ = analysis.adaptive_more_rounds(camp, plan, target_ci=0.001, min_rounds=3, max_rounds=5)
    assert more is False
    assert json.loads((camp.path / "adaptive.json").read_text())["points_at_cap"] == [
        ["rnull", "rw=randread,bs=4k,iodepth=1"]]
