"""Kernel-dependent checks run before the campaign directory exists: an option this kernel will
refuse leaves results/ untouched (exit 2), where it used to fail after the campaign was created.

The loop case is real. This host's kernel has neither null_blk nor rnull (no configfs entries
can exist for them here), so their cases use a stand-in configfs tree (BLKCMP_CONFIGFS) holding
only what blkcmp reads before setup: each driver's directory and its `features` file, as
Linux 7.2 and 6.12 write them. The real drivers are exercised in the VM tier."""

from __future__ import annotations

import pytest
from conftest import needs_root, no_traceback, run_cli, write_workload

from bench import campaign
from bench.errors import UsageError
from bench.workload import loads

LOOP_BLOCKSIZE = """name: pre
targets:
  lp: {driver: loop, options: {size: 16, blocksize: %s}}
fio: {ioengine: psync}
repetitions: 1
runtime: 1
ramp_time: 0
"""


@needs_root
@pytest.mark.parametrize("blocksize", [1000, 256, 131072])
def test_loop_sector_size_the_kernel_refuses_writes_nothing(tmp_path, env, blocksize):
    path = write_workload(tmp_path, LOOP_BLOCKSIZE % blocksize)
    out = run_cli("run", path, "--results", tmp_path / "results", env=env)
    assert out.returncode == 2, out.stderr
    no_traceback(out)
    assert out.stderr.splitlines() == [
        f"blkcmp: error: {path}: target lp: loop devices take a blocksize (logical sector size) that "
        f"is a power of two from 512 to 65536, not {blocksize}"
    ]
    assert not (tmp_path / "results").exists()


@needs_root
def test_a_sector_size_the_kernel_takes_passes_the_check_and_runs(tmp_path, env):
    path = write_workload(tmp_path, LOOP_BLOCKSIZE % 8192)
    out = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env)
    assert out.returncode == 0, out.stderr


def fake_configfs(root, driver: str, features: str):
    (root / driver).mkdir(parents=True)
    (root / driver / "features").write_text(features + "\n")
    return root


NULL_BLK_6_12 = (
    "badblocks,blocking,blocksize,cache_size,completion_nsec,discard,home_node,hw_queue_depth,"
    "irqmode,max_sectors,mbps,memory_backed,no_sched,poll_queues,power,queue_mode,shared_tag_bitmap,"
    "size,submit_queues,use_per_node_hctx,virt_boundary,zone_capacity,zone_max_active,"
    "zone_max_open,zone_nr_conv,zone_size,zoned"
)
RNULL_7_2 = "blocksize,size,rotational,irqmode,power"

DRIVER = """name: pre
targets:
  t: {driver: %s, options: %s}
fio: {ioengine: psync}
repetitions: 1
runtime: 1
ramp_time: 0
"""


@pytest.mark.parametrize(
    "driver, features, options, refusal",
    [
        (
            "null_blk",
            NULL_BLK_6_12,
            "{rotational: 1, blocksize: 4096}",
            "null_blk on kernel {release} has no option "
            "rotational (its features: badblocks, blocking, blocksize, ",
        ),
        (
            "rnull",
            RNULL_7_2,
            "{irqmode: 2, submit_queues: 2}",
            "on kernel {release} rnull cannot honour irqmode=2: it "
            "accepts only 0 or 1; rnull cannot honour submit_queues=2: it is fixed at 1",
        ),
    ],
)
def test_driver_options_this_kernel_lacks_are_refused_before_the_campaign_exists(
    tmp_path, env, driver, features, options, refusal
):
    import platform

    cfs = fake_configfs(tmp_path / "configfs", "nullb" if driver == "null_blk" else "rnull", features)
    path = write_workload(tmp_path, DRIVER % (driver, options))
    out = run_cli("run", path, "--results", tmp_path / "results", env=dict(env, BLKCMP_CONFIGFS=str(cfs)))
    assert out.returncode == 2, out.stderr
    no_traceback(out)
    (line,) = out.stderr.splitlines()
    assert line.startswith(
        f"blkcmp: error: {path}: target t: " + refusal.format(release=platform.release())
    ), line
    assert not (tmp_path / "results").exists()
    assert sorted(p.name for p in (cfs / ("nullb" if driver == "null_blk" else "rnull")).iterdir()) == [
        "features"
    ]


def test_check_kernel_is_one_function_naming_every_problem(tmp_path):
    workload = loads(LOOP_BLOCKSIZE % 1000 + "", "w.yaml")
    with pytest.raises(UsageError) as refused:
        campaign.check_kernel(workload, source="w.yaml")
    assert str(refused.value) == (
        "w.yaml: target lp: loop devices take a blocksize (logical sector size) "
        "that is a power of two from 512 to 65536, not 1000"
    )
    campaign.check_kernel(loads(LOOP_BLOCKSIZE % 4096, "w.yaml"))  # nothing to refuse


RECORDED = """name: vmpre
targets:
  c: {driver: null_blk, options: %s}
  rust: {driver: rnull, options: %s}
fio: {ioengine: io_uring}
repetitions: 1
runtime: 1
ramp_time: 0
"""
# What the smoke boots of the test kernels record (kernel.json "drivers"), abridged.
FACTS_7_2 = {
    "null_blk": {"interface": "configfs", "features": ["blocksize", "hw_queue_depth", "irqmode", "size"]},
    "rnull": {"interface": "configfs", "features": ["blocksize", "irqmode", "rotational", "size"]},
}
FACTS_6_12 = {"null_blk": FACTS_7_2["null_blk"], "rnull": {"interface": "fixed", "features": []}}


def test_a_vm_kernels_recorded_drivers_refuse_before_the_campaign_exists(tmp_path):
    # The check a VM run makes on the host, from the driver facts the kernel's smoke boot
    # recorded: what the guest would refuse is refused before anything is created.
    ok = loads(RECORDED % ("{irqmode: 0}", "{irqmode: 0}"), "w.yaml")
    campaign.check_recorded_kernel(ok, FACTS_7_2, "7.2.13")
    with pytest.raises(UsageError) as err:
        campaign.check_recorded_kernel(
            loads(RECORDED % ("{zoned: 1}", "{}"), "w.yaml"), FACTS_7_2, "7.2.13", source="w.yaml"
        )
    assert str(err.value) == (
        "w.yaml: target c: null_blk on kernel 7.2.13 has no option zoned "
        "(its features: blocksize, hw_queue_depth, irqmode, size)"
    )
    with pytest.raises(UsageError, match=r"target rust: on kernel 6\.12\.118 .*blocksize"):
        campaign.check_recorded_kernel(
            loads(RECORDED % ("{}", "{blocksize: 512}"), "w.yaml"), FACTS_6_12, "6.12.118"
        )
    with pytest.raises(UsageError, match=r"target rust: kernel 7\.1\.0 has no rnull"):
        campaign.check_recorded_kernel(ok, {"null_blk": FACTS_7_2["null_blk"]}, "7.1.0")
