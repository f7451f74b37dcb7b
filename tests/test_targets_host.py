"""Target rules that need no guest: rnull's option rules per interface, null_blk's feature
check, and how a campaign behaves on a host that lacks a driver (this one lacks both)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_cli, write_workload

from bench.targets import nullblk, rnull
from bench.targets.base import Context
from bench.workload import QueueSettings

FEATURES_7_2 = {"blocksize", "size", "rotational", "irqmode"}


def test_rnull_configfs_options():
    ok = {
        "blocksize": 4096,
        "size": 4096,
        "irqmode": 1,
        "rotational": False,
        "hw_queue_depth": 256,
        "submit_queues": 1,
        "poll_queues": 0,
        "memory_backed": 0,
    }
    assert rnull.option_problems(ok, "configfs", FEATURES_7_2) == []
    problems = rnull.option_problems(
        {"irqmode": 2, "memory_backed": 1, "submit_queues": 2, "completion_nsec": 10},
        "configfs",
        FEATURES_7_2,
    )
    assert problems == [
        "rnull cannot honour irqmode=2: it accepts only 0 or 1",
        "rnull cannot honour memory_backed=1: it is fixed at 0",
        "rnull cannot honour submit_queues=2: it is fixed at 1",
        "rnull cannot honour completion_nsec=10 (settable here: blocksize, irqmode, rotational, size)",
    ]


def test_rnull_later_kernel_listing_more_features_makes_them_settable():
    assert rnull.option_problems({"memory_backed": 1}, "configfs", FEATURES_7_2 | {"memory_backed"}) == []


def test_rnull_fixed_device_takes_only_its_built_in_values():
    assert rnull.option_problems({"blocksize": 4096, "size": 4096, "irqmode": 0}, "fixed", set()) == []
    assert rnull.option_problems({"blocksize": 512, "irqmode": 1}, "fixed", set()) == [
        "rnull cannot honour blocksize=512: it is fixed at 4096",
        "rnull cannot honour irqmode=1: it is fixed at 0",
    ]


def test_null_blk_option_missing_from_features_names_option_and_release():
    target = nullblk.NullBlkTarget("c", {"rotational": 1, "blocksize": 4096}, QueueSettings(), Context("x"))
    features_6_12 = {"blocksize", "size", "irqmode", "submit_queues", "poll_queues"}
    (line,) = target.option_problems(features_6_12)
    assert re.match(
        r"target c: null_blk on kernel \S+ has no option rotational \(it offers: blocksize, ", line
    )


HALF = """
name: half
targets:
  disk: {driver: loop, options: {size: 16}}
  c: {driver: null_blk}
fio: {ioengine: psync}
matrix: {rw: [randread], bs: [4k]}
repetitions: 1
runtime: 1
ramp_time: 0
"""


@pytest.mark.skipif(nullblk.host_available().ok, reason="this host has null_blk")
def test_unavailable_target_is_named_and_the_rest_runs(tmp_path, env):
    w = write_workload(tmp_path, HALF)
    out = run_cli("run", w, "--results", tmp_path / "res", "--quiet", env=env)
    assert out.returncode == 0, out.stderr
    assert "target c (null_blk) is not available here: kernel" in out.stderr
    assert "has no null_blk" in out.stderr
    camp = next((tmp_path / "res").iterdir())
    assert json.loads((camp / "campaign.json").read_text())["unavailable_targets"].keys() == {"c"}
    assert sorted(p.name for p in (camp / "runs").iterdir()) == ["r001-p000-disk"]


@pytest.mark.skipif(nullblk.host_available().ok or rnull.host_available().ok, reason="this host has a driver")
def test_no_available_target_is_one_line_and_writes_nothing(tmp_path, env):
    w = write_workload(
        tmp_path, HALF.replace("disk: {driver: loop, options: {size: 16}}", "r: {driver: rnull}")
    )
    out = run_cli("run", w, "--results", tmp_path / "res", env=env)
    assert out.returncode == 1
    errors = [l for l in out.stderr.splitlines() if l.startswith("blkcmp: error:")]
    assert len(errors) == 1 and "no target of this workload is available here" in errors[0]
    assert not (tmp_path / "res").exists()
