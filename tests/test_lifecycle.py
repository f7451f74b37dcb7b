"""Device lifecycle (issue 13, item 5), on the host with real loop devices and the real fio:
`recreate: run` tears each device down and sets it up again before every run, `prefill: true`
writes the whole device once, sequentially, before measuring; both are recorded in every run's
run.json, refused at load when targets differ in them, and an interrupted campaign loses nothing
measured. The null_blk/rnull half is in the VM tier (tests/test_vm_lifecycle.py)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from conftest import (
    done_count,
    needs_root,
    no_traceback,
    planned_ids,
    run_cli,
    start_cli,
    wait_for,
    write_workload,
)

from bench import ledger, lifecycle
from bench.errors import RunError, UsageError
from bench.targets.base import Context
from bench.targets.host import FileTarget, LoopTarget
from bench.workload import QueueSettings, loads

SIZE_MIB = 8

WORKLOAD = """name: life
targets:
  common:
    options: {{size: {size}}}
    recreate: {recreate}
    prefill: {prefill}
  a: {{driver: loop}}
  b: {{driver: loop}}
fio: {{ioengine: psync, direct: 1}}
matrix:
  rw: [randread]
repetitions: {reps}
runtime: 1
ramp_time: 0
seed: 5
"""


def campaign_of(results: Path) -> Path:
    (campaign,) = [p for p in results.iterdir() if not p.name.startswith(".")]
    return campaign


def run_records(campaign: Path) -> dict[str, dict]:
    return {
        run_id: json.loads((campaign / "runs" / run_id / "run.json").read_text())
        for run_id in planned_ids(campaign)
        if (campaign / "runs" / run_id / "run.json").exists()
    }


@needs_root
def test_recreate_per_run_sets_every_device_up_afresh_and_prefills_it(tmp_path, env):
    path = write_workload(tmp_path, WORKLOAD.format(size=SIZE_MIB, recreate="run", prefill="true", reps=3))
    proc = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    records = run_records(campaign_of(tmp_path / "results"))
    assert len(records) == 6
    for name in ("a", "b"):
        mine = sorted((r for r in records.values() if r["run"]["target"] == name), key=lambda r: r["started"])
        # A new device per run: a new setup (numbered in the session), a new backing file.
        assert [r["lifecycle"]["setup"]["number"] for r in mine] == [1, 2, 3]
        assert len({r["target"]["backing_inode"] for r in mine}) == 3
        assert len({r["lifecycle"]["setup"]["created_ns"] for r in mine}) == 3
        for r in mine:
            assert r["lifecycle"]["recreate"] == "run"
            fill = r["lifecycle"]["prefill"]
            # fio wrote the whole device: its written bytes are the device's size.
            assert fill["done"] is True and fill["bytes"] == fill["device_bytes"] == SIZE_MIB << 20
            assert fill["seconds"] > 0 and fill["device"] == r["target"]["device"]
            assert r["target"]["audit"]["prefill"] == "1" and r["target"]["audit"]["recreate"] == "run"
    assert ledger.resources() == {}


@needs_root
def test_session_lifecycle_sets_up_once_and_prefills_once(tmp_path, env):
    path = write_workload(
        tmp_path, WORKLOAD.format(size=SIZE_MIB, recreate="session", prefill="true", reps=2)
    )
    proc = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    records = run_records(campaign_of(tmp_path / "results"))
    for name in ("a", "b"):
        mine = [r for r in records.values() if r["run"]["target"] == name]
        assert {r["lifecycle"]["setup"]["number"] for r in mine} == {1}
        assert len({r["target"]["backing_inode"] for r in mine}) == 1
        assert len({r["lifecycle"]["prefill"]["started"] for r in mine}) == 1
        assert all(r["lifecycle"]["prefill"]["bytes"] == SIZE_MIB << 20 for r in mine)


@needs_root
def test_without_prefill_it_is_recorded_as_not_done(tmp_path, env):
    path = write_workload(
        tmp_path, WORKLOAD.format(size=SIZE_MIB, recreate="session", prefill="false", reps=1)
    )
    proc = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    for record in run_records(campaign_of(tmp_path / "results")).values():
        assert record["lifecycle"]["prefill"] == {"done": False}
        assert record["lifecycle"]["recreate"] == "session"


@needs_root
@pytest.mark.parametrize("cls", [LoopTarget, FileTarget])
def test_prefill_writes_the_whole_device(tmp_path, env, cls):
    made = cls("p", {"size": SIZE_MIB, "directory": str(tmp_path)}, QueueSettings(), Context("prefilltest"))
    made.prefill = True
    made.setup()
    try:
        path = made.device.filename
        with open(path, "rb") as fh:  # a fresh device reads as zeros
            fh.seek((SIZE_MIB << 20) - 4096)
            assert fh.read(4096) == bytes(4096)
        record = lifecycle.prefill(made)
        assert record["bytes"] == SIZE_MIB << 20
        with open(path, "rb") as fh:
            for offset in (0, (SIZE_MIB << 20) // 2, (SIZE_MIB << 20) - 4096):
                fh.seek(offset)
                assert fh.read(4096) != bytes(4096), f"nothing written at offset {offset}"
    finally:
        made.teardown()
    assert ledger.resources() == {}


@needs_root
def test_prefill_goes_through_the_write_refusal_policy(tmp_path, env):
    import subprocess

    made = LoopTarget(
        "p", {"size": SIZE_MIB, "directory": str(tmp_path)}, QueueSettings(), Context("refusal")
    )
    made.setup()
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", made.device.filename], check=True, capture_output=True)
        with pytest.raises(RunError, match="ext4"):
            lifecycle.prefill(made)
    finally:
        made.teardown()


@needs_root
def test_an_interrupted_campaign_loses_nothing_measured(tmp_path, env):
    path = write_workload(tmp_path, WORKLOAD.format(size=SIZE_MIB, recreate="run", prefill="true", reps=4))
    results = tmp_path / "results"
    proc = start_cli("run", path, "--results", results, "--quiet", env=env)
    try:
        campaign = wait_for(
            lambda: (
                results.is_dir() and next((p for p in results.iterdir() if not p.name.startswith(".")), None)
            ),
            "the campaign directory",
        )
        wait_for(lambda: done_count(campaign) >= 3 or proc.poll() is not None, "3 runs done")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in stderr
    before = {
        run_id: (campaign / "runs" / run_id / "run.json").read_bytes() for run_id in run_records(campaign)
    }
    assert 3 <= len(before) < 8
    proc = run_cli("run", "--resume", campaign, "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    after = run_records(campaign)
    assert len(after) == 8
    for run_id, text in before.items():  # every run measured before the interrupt is kept as it was
        assert (campaign / "runs" / run_id / "run.json").read_bytes() == text
    resumed = [r for run_id, r in after.items() if run_id not in before]
    assert all(r["lifecycle"]["prefill"]["bytes"] == SIZE_MIB << 20 for r in resumed)
    assert ledger.resources() == {}


LOAD = """name: l
targets:
  a: {driver: loop, prefill: true}
  b: {driver: loop}
  n: {driver: fio-null%s}
fio: {ioengine: psync}
%s"""


def test_targets_differing_in_lifecycle_are_refused_at_load():
    with pytest.raises(UsageError) as refused:
        loads(LOAD % ("", ""), "w.yaml")
    assert str(refused.value) == (
        "w.yaml:2: targets: targets differ in prefill (a=true, b=false): give it once under "
        "common:, or list prefill under allow_differences:"
    )
    allowed = loads(LOAD % ("", "allow_differences: [prefill]\n"), "w.yaml")
    assert allowed.lifecycle("a") == {"recreate": "session", "prefill": True}
    assert allowed.lifecycle("b") == {"recreate": "session", "prefill": False}
    with pytest.raises(UsageError, match="driver fio-null has no device to prefill; remove prefill"):
        loads(LOAD % (", prefill: true", "allow_differences: [prefill]\n"), "w.yaml")
    with pytest.raises(UsageError, match="targets differ in recreate \\(a=run, b=session\\)"):
        loads(LOAD.replace("prefill: true", "recreate: run") % ("", ""), "w.yaml")
