"""The VM tier of the device lifecycle (issue 13, item 5): null_blk and rnull re-created before
every run and prefilled, on the 7.2 test kernel. The host tier (tests/test_lifecycle.py) proves
the same code on loop devices; here the drivers are real. Only what ran is checked, never how
fast (TCG)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from bench import kernels

pytestmark = pytest.mark.vm

VM_TIMEOUT = 1800
SIZE_MIB = 64  # small: the prefill is a whole-device write under emulation, before every run
REPS = 2

WORKLOAD = f"""
name: vmlife
targets:
  common:
    options: {{blocksize: 4096, size: {SIZE_MIB}, irqmode: 0, hw_queue_depth: 256, submit_queues: 1, poll_queues: 0}}
    queue: {{scheduler: none, nomerges: 0, rq_affinity: 1}}
    recreate: run
    prefill: true
  c:
    driver: null_blk
    options: {{memory_backed: 1}}
  rust:
    driver: rnull
fio: {{ioengine: io_uring, direct: 1}}
matrix:
  rw: [randwrite]
  bs: [4k]
  iodepth: [8]
repetitions: {REPS}
runtime: 1
ramp_time: 0
seed: 4
"""


@pytest.fixture(scope="session")
def kernel_7_2() -> kernels.KernelInfo:
    return kernels.build("7.2", progress=print)


def test_recreate_per_run_and_prefill_on_both_drivers(kernel_7_2, tmp_path):
    # What the drivers offer decides what can be memory-backed: null_blk can, 7.2's rnull cannot.
    facts = kernels.driver_facts(kernel_7_2)
    assert "memory_backed" in facts["null_blk"]["attributes"]
    assert "memory_backed" not in facts["rnull"]["attributes"]
    path = tmp_path / "vmlife.yaml"
    path.write_text(WORKLOAD)
    out = run_cli(
        "run", str(path), "--kernel", "7.2", "--results", str(tmp_path / "res"), "--quiet", timeout=VM_TIMEOUT
    )
    assert out.returncode == 0, out.stderr
    (camp,) = [d for d in (tmp_path / "res").iterdir() if not d.name.startswith(".")]
    records = [json.loads(p.read_text()) for p in Path(camp / "runs").glob("*/run.json")]
    assert len(records) == 2 * REPS
    for name, driver in (("c", "null_blk"), ("rust", "rnull")):
        mine = sorted((r for r in records if r["run"]["target"] == name), key=lambda r: r["started"])
        assert {r["target"]["driver"] for r in mine} == {driver}
        # Re-created before every run: a new set-up each time, numbered in the session.
        assert [r["lifecycle"]["setup"]["number"] for r in mine] == list(range(1, REPS + 1))
        assert len({r["lifecycle"]["setup"]["created_ns"] for r in mine}) == REPS
        for r in mine:
            assert r["status"] == "done"
            assert r["lifecycle"]["recreate"] == "run"
            fill = r["lifecycle"]["prefill"]
            assert fill["done"] is True and fill["bytes"] == fill["device_bytes"] == SIZE_MIB << 20
            assert fill["device"] == r["target"]["device"]
            assert r["target"]["audit"]["prefill"] == "1"
    assert all(r["target"]["settings"]["memory_backed"] == "1" for r in records if r["run"]["target"] == "c")
    # The session audit records the lifecycle of both targets.
    session = json.loads((camp / "targets.json").read_text())[-1]["targets"]
    assert session["c"]["audit"]["recreate"] == session["rust"]["audit"]["recreate"] == "run"
