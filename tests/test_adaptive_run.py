"""Adaptive repetitions: the runner adds interleaved rounds until the stopping rule says stop or
the cap is reached, and records which points hit the cap (real fio, null engine). Whether the
rule stops on precision is checked on a campaign whose noise the test sets (ingested runs):
real fio throughput on a shared machine is too noisy, or too quantized, to make that exact."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
from conftest import fake_run, make_campaign, run_cli

WORKLOAD = """
name: adaptive
targets:
  a: {{driver: fio-null, options: {{size: 64}}}}
  b: {{driver: fio-null, options: {{size: 64}}}}
fio: {{ioengine: psync}}
matrix: {{rw: [randread], bs: [4k]}}
repetitions: {{min: {min}, max: {max}, target_ci: {target}, margin: {margin}}}
runtime: 1
ramp_time: 0
seed: 5
"""


def run(
    tmp_path: Path,
    target_ci: float,
    max_rounds: int,
    min_rounds: int = 2,
    margin: float = 1e-6,
    extra_env: dict | None = None,
) -> Path:
    # margin 1e-6: no equivalence can be settled, so only the width rule, a significant
    # difference and the cap stop the campaign
    w = tmp_path / "w.yaml"
    w.write_text(WORKLOAD.format(min=min_rounds, max=max_rounds, target=target_ci, margin=margin))
    out = run_cli(
        "run",
        w,
        "--results",
        tmp_path / "res",
        "--quiet",
        timeout=600,
        env={"BLKCMP_STATE_DIR": str(tmp_path / "state"), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        | (extra_env or {}),
    )
    assert out.returncode == 0, out.stderr
    return next((tmp_path / "res").iterdir())


def rounds_done(camp: Path) -> int:
    db = sqlite3.connect(camp / "index.sqlite")
    statuses = db.execute("SELECT DISTINCT status FROM runs").fetchall()
    assert statuses == [("done",)]
    return db.execute("SELECT max(round) FROM runs").fetchone()[0]


def test_unreachable_precision_runs_to_the_cap(tmp_path):
    # Real fio-null A/A pairs differ by ~1 % by position now and then, and two tight rounds can
    # then settle a verdict (seen once: stopped at round 2). The fake fio sets b/a to 1.1, 0.9,
    # 1.1, 0.9: never significant, never precise, so only the cap can stop it.
    fake = {
        "BLKCMP_TEST_FAKE_FIO": str(Path(__file__).parent / "fake_fio.py"),
        "FAKE_FIO_SCALE": "b:1.1,0.9",
    }
    camp = run(tmp_path, target_ci=1e-9, max_rounds=4, extra_env=fake)
    assert rounds_done(camp) == 4
    plan = json.loads((camp / "plan.json").read_text())
    assert plan["rounds"] == 4 and len(plan["runs"]) == 8
    decision = json.loads((camp / "adaptive.json").read_text())
    assert decision["stop"] is True
    assert decision["points_at_cap"] == [["b", "rw=randread,bs=4k"]]


def decide(camp, plan, **rule):
    """The stopping rule on the campaign's runs, its decision saved as the runner saves it:
    (add another round?, why, for which points)."""
    from bench import stopping
    from bench.results import load_runs

    decision = stopping.evaluate(
        stopping.StoppingRule(baseline=camp.baseline(), **rule), plan, load_runs(camp)
    )
    camp.save_adaptive_state(decision)
    return not decision.stop, decision.reason, stopping.undecided_points(decision)


def test_stopping_rule_on_a_campaign_with_known_noise(tmp_path, template):
    from bench import store

    # Two targets, equal means, CV 1 %, five rounds: the ratio CI is a few per cent wide.
    camp = store.open_campaign(
        make_campaign(tmp_path, template, {"null_blk": {1: 100_000}, "rnull": {1: 100_000}}, n=5)
    )
    plan = camp.plan()
    more, reason, undecided = decide(camp, plan, target_ci=0.05, min_rounds=3, max_rounds=10, margin=0.02)
    assert more is False and "within" in reason and undecided == set()
    decision = json.loads((camp.path / "adaptive.json").read_text())
    assert decision["stop"] is True and decision["max_halfwidth"] <= 0.05
    more, reason, undecided = decide(camp, plan, target_ci=0.001, min_rounds=3, max_rounds=10, margin=1e-6)
    assert more is True and undecided == {"rw=randread,bs=4k,iodepth=1"}
    assert json.loads((camp.path / "adaptive.json").read_text())["points_above_target"] == [
        ["rnull", "rw=randread,bs=4k,iodepth=1"]
    ]
    more, _, _ = decide(camp, plan, target_ci=0.001, min_rounds=3, max_rounds=5, margin=1e-6)
    assert more is False
    assert json.loads((camp.path / "adaptive.json").read_text())["points_at_cap"] == [
        ["rnull", "rw=randread,bs=4k,iodepth=1"]
    ]


def test_the_runner_adds_rounds_only_for_the_points_the_rule_names(tmp_path, env):
    # real fio (null engine), the real runner; the stopping policy is given so that the test
    # knows which point is "undecided" (fio's own noise here is too wild to make one settle)
    from bench import campaign as camp_mod
    from bench.executors import local
    from bench.progress import reporter_for

    w = tmp_path / "w.yaml"
    w.write_text(WORKLOAD.format(min=2, max=3, target=0.01, margin=0.02).replace("bs: [4k]", "bs: [4k, 8k]"))
    prepared = camp_mod.prepare(w, seed=5, probe=True)
    camp_mod.check_with_fio(prepared)
    campaign = camp_mod.create_campaign(prepared, tmp_path / "res")
    from bench.stats import Decision

    undecided = {"rw=randread,bs=8k"}

    def policy(campaign, plan):
        return Decision(plan.rounds >= 3, "test policy", plan.rounds, (("b", "rw=randread,bs=8k"),), (), 0.1)

    counts = local.execute(campaign, prepared.workload, reporter_for(2.0, quiet=True), decide=policy)
    assert counts["done"] == 2 * 2 * 2 + 2
    assert {
        p for _, p in json.loads((campaign.path / "adaptive.json").read_text())["points_above_target"]
    } == undecided
    db = sqlite3.connect(campaign.path / "index.sqlite")
    third = db.execute("SELECT DISTINCT point_key FROM runs WHERE round = 3").fetchall()
    assert third == [("rw=randread,bs=8k",)]
    assert campaign.plan().rounds == 3


def test_the_rule_names_only_the_undecided_points(tmp_path, template):
    from bench import store

    # qd1: equal means, CV 0.2 % -> equivalent after 5 rounds; qd8: CV 5 % -> still undecided
    rng = np.random.default_rng(6)
    files = []
    for rep in range(5):
        for target in ("null_blk", "rnull"):
            for qd, cv in ((1, 0.002), (8, 0.05)):
                path = tmp_path / f"{target}-{qd}-{rep}.json"
                path.write_text(
                    json.dumps(fake_run(template, target, float(rng.normal(1e5, cv * 1e5)), iodepth=qd))
                )
                files.append(str(path))
    out = run_cli("ingest", *files, "--into", tmp_path / "c")
    assert out.returncode == 0, out.stderr
    camp = store.open_campaign(tmp_path / "c")
    plan = camp.plan()
    more, reason, undecided = decide(camp, plan, target_ci=1e-9, min_rounds=3, max_rounds=10, margin=0.02)
    assert more is True and undecided == {"rw=randread,bs=4k,iodepth=8"}, reason
    decision = json.loads((camp.path / "adaptive.json").read_text())
    assert decision["points_settled"] == [["rnull", "rw=randread,bs=4k,iodepth=1"]]
