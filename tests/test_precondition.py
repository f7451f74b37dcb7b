"""Preconditioning (bench.precondition) on a real block device: purge by blkdiscard, sequential
fills that really write the whole device, steady-state rounds recorded with the campaign, and a
device that reaches no steady state stopping the campaign before any measured run.

Stand-in: a user's SSD cannot exist here, so a small loop device (backed by a file under the
test's tmp dir) is the `driver: blockdev` target, as in tests/test_blockdev_target.py; a loop
device really discards (punches holes in its backing file) and really stores what fio writes.
"""

from __future__ import annotations

import json

from bench.stats.steady_state import steady_state
from tests.conftest import (
    MIB,
    campaign_dir,
    disk_workload,
    done_count,
    needs_root,
    no_traceback,
    run_cli,
    user_disk,
)

pytestmark = needs_root

SENTINEL = b"blkcmp-sentinel!" * 256  # 4 KiB


def _write_sentinel(backing, offsets):
    with open(backing, "r+b") as fh:
        for off in offsets:
            fh.seek(off)
            fh.write(SENTINEL)


def _count(data: bytes, needle: bytes = SENTINEL) -> int:
    return data.count(needle)


def test_purge_discards_and_fills_write_the_whole_device_then_the_rounds_reach_steady_state(tmp_path, env):
    with user_disk(tmp_path, size_mib=8) as (dev, backing):
        offsets = [0, 3 * MIB, 8 * MIB - 4096]
        _write_sentinel(backing, offsets)
        steady = "  steady_state: {window: 3, max_rounds: 20, max_excursion: 1.0, max_slope_change: 1.0, band: 1.0}"
        w = disk_workload(
            tmp_path,
            None,
            identity={"backing_file": str(backing)},
            rw="randwrite",
            extra="precondition:\n  purge: true\n  fills: 2\n" + steady,
        )
        out = run_cli("run", w, "--results", tmp_path / "results", env=env)
        no_traceback(out)
        assert out.returncode == 0, out.stdout + out.stderr
        campaign = campaign_dir(tmp_path / "results")
        record = json.loads((campaign / "precondition.json").read_text())
        assert record["complete"] is True
        disk = record["targets"]["disk"]
        assert disk["purge"]["command"] == ["blkdiscard", "-f", dev] and disk["purge"]["returncode"] == 0
        assert len(disk["fills"]) == 2
        for i, fill in enumerate(disk["fills"], 1):
            assert fill["output"] == f"fill-{i}.json" and fill["bw_bytes"] > 0
            output = json.loads((campaign / "precondition" / "disk" / fill["output"]).read_text())
            (job,) = output["jobs"]
            assert job["write"]["io_bytes"] == 8 * MIB  # the whole device, end to end
            assert output["global options"]["rw"] == "write"
        ss = disk["steady_state"]
        # A loop device's IOPS under a loaded machine are not known in advance: the record must be
        # the pure check's answer on the recorded rounds, stopping at the first steady window.
        truth = steady_state(ss["rounds"], 3, 1.0, 1.0, 1.0)
        assert ss["steady"] is True and truth.steady
        assert ss["check"] == json.loads(json.dumps(truth.record()["check"]))
        assert ss["check"]["start"] + 3 == len(ss["rounds"])  # no round after the steady window
        assert [r["output"] for r in ss["round_runs"]] == [
            f"round-{i:03d}.json" for i in range(1, len(ss["rounds"]) + 1)
        ]
        assert ss["rounds"] == [r["iops"] for r in ss["round_runs"]] and all(v > 0 for v in ss["rounds"])
        assert ss["thresholds"] == {"max_excursion": 1.0, "max_slope_change": 1.0, "band": 1.0}
        assert done_count(campaign) == 1
        # the fills overwrote every sentinel (fio writes non-repeating buffers)
        assert _count(backing.read_bytes()) == 0


def test_purge_alone_discards_the_device(tmp_path, env):
    with user_disk(tmp_path, size_mib=8) as (dev, backing):
        _write_sentinel(backing, [0, 5 * MIB])
        before = _count(backing.read_bytes())
        assert before >= 2
        w = disk_workload(
            tmp_path,
            None,
            identity={"backing_file": str(backing)},
            rw="read",
            extra="precondition: {purge: true, fills: 0}",
        )
        out = run_cli("run", w, "--results", tmp_path / "results", env=env)
        no_traceback(out)
        assert out.returncode == 0, out.stdout + out.stderr
        assert _count(backing.read_bytes()) == 0  # discarded: the loop device punched holes
        assert backing.read_bytes() == bytes(8 * MIB)


def test_preconditioning_needs_destructive_like_any_write(tmp_path, env):
    with user_disk(tmp_path, size_mib=8) as (dev, backing):
        _write_sentinel(backing, [0])
        w = disk_workload(
            tmp_path,
            None,
            identity={"backing_file": str(backing)},
            destructive=False,
            rw="read",
            extra="precondition: {purge: true}",
        )
        out = run_cli("run", w, "--results", tmp_path / "results", env=env)
        assert out.returncode == 2, out.stdout + out.stderr
        assert "without destructive: true" in out.stderr
        assert _count(backing.read_bytes()) >= 1


def test_no_steady_state_stops_the_campaign_before_any_run_with_the_rounds_recorded(tmp_path, env):
    with user_disk(tmp_path, size_mib=8) as (dev, backing):
        steady = "  steady_state: {window: 3, max_rounds: 3, max_excursion: 0.000001, band: 0.000001}"
        w = disk_workload(
            tmp_path,
            None,
            identity={"backing_file": str(backing)},
            extra="precondition:\n  fills: 0\n" + steady,
        )
        out = run_cli("run", w, "--results", tmp_path / "results", env=env)
        no_traceback(out)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "reached no steady state in 3 rounds" in out.stderr
        assert "raise precondition.steady_state.max_rounds or loosen its thresholds" in out.stderr
        campaign = campaign_dir(tmp_path / "results")
        record = json.loads((campaign / "precondition.json").read_text())
        assert record["complete"] is False
        ss = record["targets"]["disk"]["steady_state"]
        assert ss["steady"] is False and len(ss["rounds"]) == 3 and "excursion" in ss["check"]["failed"]
        assert done_count(campaign) == 0


def test_a_steady_state_point_outside_the_matrix_is_a_workload_error(tmp_path, env):
    w = disk_workload(
        tmp_path,
        "/dev/loop0",
        destructive=False,
        rw="read",
        extra="precondition: {steady_state: {point: 3}}",
    )
    out = run_cli("plan", w, env=env)
    assert out.returncode == 2
    assert "precondition.steady_state.point: expected a matrix point index below 1, found 3" in out.stderr
