"""driver: blockdev — an existing whole block device named by identity, and the refusal policy.

Stand-in: a user's disk cannot exist here, so each test attaches a small loop device of its own
(a few MiB, backed by a file under the test's tmp dir on disk, never /dev/shm) and treats it as
the user's disk: its identity is its backing file (loop devices have no serial or WWN). Every
loop device, mount and swap area a test makes is undone in a `finally`. Each refusal is checked
through `blkcmp run`: exit 2 before the campaign directory exists, one line naming the workload
file, the target, every reason and its fix, and the device's bytes unchanged (sha256 before and
after).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from bench.targets import blockdev
from tests.conftest import (
    MIB,
    campaign_dir,
    disk_workload,
    done_count,
    needs_root,
    no_traceback,
    run_cli,
    sh,
    start_cli,
    user_disk,
    wait_for,
    write_workload,
)

pytestmark = needs_root


def mount_frozen(dev: str, mnt: Path) -> None:
    """Mount, then freeze: a mounted ext4 writes on its own (journal commits, lazy init), which
    would change the disk image the tests check for "nothing written"; frozen, it stays mounted
    (what the refusal is about) and still."""
    sh("mount", dev, str(mnt))
    sh("fsfreeze", "--freeze", str(mnt))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_mbr(backing: Path) -> None:
    """An MBR with one Linux partition from 1 MiB to the end (no sfdisk or parted here)."""
    sectors = backing.stat().st_size // 512
    entry = struct.pack("<B3sB3sII", 0, b"\0\0\0", 0x83, b"\0\0\0", 2048, sectors - 2048)
    with open(backing, "r+b") as fh:
        fh.seek(446)
        fh.write(entry)
        fh.seek(510)
        fh.write(b"\x55\xaa")


def partition(dev: str) -> str:
    """The MBR's partition as a device. This kernel may parse no partition tables
    (CONFIG_MSDOS_PARTITION off, as here): then the partition is added the way partx does,
    with the BLKPG ioctl (`addpart`), which the kernel honours without a parser."""
    name = Path(dev).name
    if not Path(f"/sys/block/{name}/{name}p1").exists():
        sectors = int(Path(f"/sys/block/{name}/size").read_text())
        sh("addpart", dev, "1", "2048", str(sectors - 2048))
    assert Path(f"/sys/block/{name}/{name}p1/partition").exists()
    return f"{dev}p1"


def assert_refused(tmp_path: Path, env, workload: Path, backing: Path, *fragments: str) -> str:
    """`blkcmp run` refuses before anything exists, in one line naming file, target and reasons."""
    before = digest(backing)
    results = tmp_path / "results"
    out = run_cli("run", workload, "--results", results, env=env)
    no_traceback(out)
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    line = lines[0]
    assert str(workload) in line and "target disk" in line, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert not results.exists() or not any(results.iterdir())  # no campaign directory
    assert digest(backing) == before  # nothing written
    return line


def write_swap_header(dev: str, scratch: Path) -> None:
    """What mkswap writes, put on `dev` without mkswap's exclusive open: a check that runs at
    that moment must find the signature, not a device busy with mkswap."""
    image = scratch / "swap-header.img"
    with open(image, "wb") as fh:
        fh.truncate(MIB)
    sh("mkswap", str(image))
    fd = os.open(dev, os.O_WRONLY)
    try:
        os.pwrite(fd, image.read_bytes()[:4096], 0)
        os.fsync(fd)
    finally:
        os.close(fd)


def runs_done(results: Path) -> int:
    """Finished runs of the one campaign under results/ (0 while it is still being created)."""
    visible = [p for p in results.iterdir() if not p.name.startswith(".")] if results.exists() else []
    return done_count(visible[0]) if len(visible) == 1 else 0


def codes(dev: str, allow=frozenset()) -> set[str]:
    return {r.code for r in blockdev.write_refusals(dev, allow)}


# ------------------------------------------------------------------------------------------
# Each reason, refused before any fio run


def test_ext4_signature_refused_and_only_the_named_override_lets_it_through(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        sh("mkfs.ext4", "-q", dev)
        assert codes(dev) == {"signature"}
        assert codes(dev, {"ext4"}) == set()
        assert codes(dev, {"xfs"}) == {"signature"}
        w = disk_workload(tmp_path, dev, identity={"backing_file": str(backing)})
        assert_refused(tmp_path, env, w, backing, "it carries an ext4 signature", "allow_signatures: [ext4]")


def test_partition_table_refused(tmp_path, env):
    with user_disk(tmp_path, "--partscan", prepare=write_mbr) as (dev, backing):
        partition(dev)
        assert codes(dev) == {"partitions", "signature"}
        w = disk_workload(tmp_path, dev, identity={"backing_file": str(backing)})
        assert_refused(tmp_path, env, w, backing, f"it has partitions ({Path(dev).name}p1)", "dos signature")


def test_mounted_partition_refused_even_with_its_signatures_allowed(tmp_path, env):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with user_disk(tmp_path, "--partscan", prepare=write_mbr) as (dev, backing):
        part = partition(dev)
        sh("mkfs.ext4", "-q", part)
        mount_frozen(part, mnt)
        found = codes(dev, {"dos", "ext4"})
        assert {"mounted", "partitions", "exclusive"} <= found and "signature" not in found
        w = disk_workload(
            tmp_path, dev, identity={"backing_file": str(backing)}, extra="    allow_signatures: [dos]"
        )
        assert_refused(
            tmp_path,
            env,
            w,
            backing,
            f"it is mounted: {Path(part).name} on {mnt}",
            "unmount it",
            "it has partitions",
        )


def test_mounted_device_refused(tmp_path, env):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with user_disk(tmp_path) as (dev, backing):
        sh("mkfs.ext4", "-q", dev)
        mount_frozen(dev, mnt)
        assert {"mounted", "exclusive"} <= codes(dev, {"ext4"})
        w = disk_workload(
            tmp_path, dev, identity={"backing_file": str(backing)}, extra="    allow_signatures: [ext4]"
        )
        assert_refused(tmp_path, env, w, backing, f"it is mounted: {Path(dev).name} on {mnt}")


def test_swap_refused(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        sh("mkswap", dev)
        sh("swapon", dev)
        assert {"swap", "signature", "exclusive"} <= codes(dev)
        w = disk_workload(tmp_path, dev, identity={"backing_file": str(backing)})
        assert_refused(tmp_path, env, w, backing, "it is in use as swap", "swapoff it", "swap signature")


def _device_mapper_missing() -> str | None:
    if shutil.which("dmsetup") is None:
        return "dmsetup is not installed"
    if "device-mapper" not in Path("/proc/misc").read_text():
        return "this kernel has no device-mapper (no device-mapper in /proc/misc), so no dm holder can exist"
    return None


@pytest.mark.skipif(_device_mapper_missing() is not None, reason=str(_device_mapper_missing()))
def test_device_mapper_holder_refused(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        sectors = (8 * MIB) // 512
        name = f"blkcmp-test-{os.getpid()}"
        subprocess.run(
            ["dmsetup", "create", name, "--table", f"0 {sectors} linear {dev} 0"],
            check=True,
            capture_output=True,
        )
        try:
            assert "holders" in codes(dev)
            w = disk_workload(tmp_path, dev, identity={"backing_file": str(backing)})
            assert_refused(tmp_path, env, w, backing, "it has holders")
        finally:
            subprocess.run(["dmsetup", "remove", name], capture_output=True, check=False)


HOLD_EXCLUSIVELY = """import os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)
print('held', flush=True)
time.sleep(600)
"""


def test_exclusive_holder_refused(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_EXCLUSIVELY, dev], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            assert codes(dev) == {"exclusive"}
            w = disk_workload(tmp_path, dev, identity={"backing_file": str(backing)})
            assert_refused(
                tmp_path, env, w, backing, "it cannot be opened exclusively", "stop whatever holds it open"
            )
        finally:
            holder.kill()
            holder.wait()


def test_read_only_device_refused(tmp_path, env):
    with user_disk(tmp_path, "--read-only") as (dev, backing):
        assert codes(dev) == {"read-only"}
        w = disk_workload(tmp_path, dev, identity={"backing_file": str(backing)})
        assert_refused(tmp_path, env, w, backing, "it is read-only")


def test_identity_mismatch_refused_for_reading_too(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        for rw in ("randwrite", "randread"):
            w = disk_workload(tmp_path, dev, identity={"backing_file": "/elsewhere/disk.img"}, rw=rw)
            assert_refused(
                tmp_path,
                env,
                w,
                backing,
                "is not the device the workload names",
                "backing_file: wanted '/elsewhere/disk.img'",
                "correct identity:",
            )


def test_identity_that_matches_no_device_refused(tmp_path, env):
    with user_disk(tmp_path) as (_, backing):
        w = disk_workload(tmp_path, None, identity={"backing_file": str(tmp_path / "other.img")})
        assert_refused(tmp_path, env, w, backing, "no block device here has identity", "blkcmp targets")


def test_missing_destructive_refused_with_every_other_reason_in_the_same_line(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        w = disk_workload(tmp_path, dev, identity={"backing_file": str(backing)}, destructive=False)
        assert_refused(tmp_path, env, w, backing, "without destructive: true", "add destructive: true")
        sh("mkfs.ext4", "-q", dev)
        w = disk_workload(tmp_path, dev, identity={"backing_file": str(backing)}, destructive=False)
        assert_refused(tmp_path, env, w, backing, "without destructive: true", "ext4 signature")


def test_destructive_without_identity_is_a_workload_error(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        before = digest(backing)
        w = disk_workload(tmp_path, dev)
        out = run_cli("run", w, "--results", tmp_path / "results", env=env)
        assert out.returncode == 2, out.stdout + out.stderr
        (line,) = out.stderr.strip().splitlines()
        assert (
            line.startswith(f"blkcmp: error: {w}:")
            and "targets.disk.identity" in line
            and "wwn, serial" in line
        ), line
        assert not (tmp_path / "results").exists() and digest(backing) == before


# ------------------------------------------------------------------------------------------
# Allowed: reading anything named, writing a clean device that is the one named


def test_read_only_workload_on_a_device_with_a_signature_runs_and_changes_nothing(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        sh("mkfs.ext4", "-q", dev)
        before = digest(backing)
        w = disk_workload(tmp_path, dev, destructive=False, rw="randread")
        out = run_cli("run", w, "--results", tmp_path / "results", env=env)
        no_traceback(out)
        assert out.returncode == 0, out.stdout + out.stderr
        assert done_count(campaign_dir(tmp_path / "results")) == 1
        assert digest(backing) == before
        assert "ext4" in sh("blkid", "-p", "-o", "value", "-s", "TYPE", dev).stdout


def test_clean_device_with_destructive_and_identity_runs_a_campaign_and_records_the_identity(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        before = digest(backing)
        # named by identity alone: blkcmp finds the device whose sysfs says so
        w = disk_workload(
            tmp_path, None, identity={"backing_file": str(backing), "size_bytes": 8 * MIB}, repetitions=2
        )
        out = run_cli("run", w, "--results", tmp_path / "results", env=env)
        no_traceback(out)
        assert out.returncode == 0, out.stdout + out.stderr
        campaign = campaign_dir(tmp_path / "results")
        assert done_count(campaign) == 2
        assert digest(backing) != before  # fio really wrote to it
        disk = json.loads((campaign / "targets.json").read_text())[-1]["targets"]["disk"]
        assert disk["identity"]["backing_file"] == str(backing) and disk["identity"]["driver"] == "loop"
        assert disk["identity"]["size_bytes"] == str(8 * MIB) and disk["destructive"] is True
        assert disk["identity"]["logical_block_size"] == "512" and disk["identity"]["nr_hw_queues"] == "1"
        assert disk["overridden"] == [] and disk["device"] == dev
        run_json = next((campaign / "runs").glob("*/run.json"))
        assert json.loads(run_json.read_text())["target"]["identity"]["name"] == Path(dev).name


def test_an_allowed_signature_is_overwritten_and_the_override_recorded(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        sh("mkfs.ext4", "-q", dev)
        w = disk_workload(
            tmp_path, dev, identity={"backing_file": str(backing)}, extra="    allow_signatures: [ext4]"
        )
        out = run_cli("run", w, "--results", tmp_path / "results", env=env)
        no_traceback(out)
        assert out.returncode == 0, out.stdout + out.stderr
        campaign = campaign_dir(tmp_path / "results")
        disk = json.loads((campaign / "targets.json").read_text())[-1]["targets"]["disk"]
        assert disk["overridden"] == ["signature ext4"] and disk["allowed_signatures"] == ["ext4"]
        out = run_cli("report", campaign, "--out", tmp_path / "report", env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        row = next(
            line
            for line in (tmp_path / "report" / "report.md").read_text().splitlines()
            if "write refusals overridden" in line
        )
        assert "signature ext4" in row, row
        row = next(
            line
            for line in (tmp_path / "report" / "report.md").read_text().splitlines()
            if line.lstrip("| ").startswith("identity")
        )
        assert f"backing_file={backing}" in row and "driver=loop" in row, row


# ------------------------------------------------------------------------------------------
# Checked again before every run


def test_a_device_that_becomes_unsafe_mid_campaign_stops_it_before_the_next_run(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        # fio writes from 1 MiB on, so the swap header made below is never overwritten by a run
        # already under way: the next run's check must find it.
        w = disk_workload(
            tmp_path, dev, identity={"backing_file": str(backing)}, fio_extra=", offset: 1m", repetitions=40
        )
        proc = start_cli("run", w, "--results", tmp_path / "results", env=env)
        try:
            wait_for(lambda: runs_done(tmp_path / "results") >= 1, "the first run")
            write_swap_header(dev, tmp_path)
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, stdout + stderr
        assert "Traceback" not in stderr
        refusal = [line for line in stderr.splitlines() if "refusing to write" in line]
        assert refusal and "swap signature" in refusal[0] and "--resume" in refusal[0], stderr
        assert "target disk" in refusal[0] and str(w) in refusal[0]
        campaign = campaign_dir(tmp_path / "results")
        assert 1 <= done_count(campaign) < 40
        assert "swap" in sh("blkid", "-p", "-o", "value", "-s", "TYPE", dev).stdout


def test_a_device_mounted_mid_campaign_stops_it_before_the_next_run(tmp_path, env):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with user_disk(tmp_path) as (dev, backing):
        # An ext4 in the first 4 MiB (its signature allowed by name), fio writing from 5 MiB on:
        # mounting it between runs is what the next run's check must find.
        sh("mkfs.ext4", "-q", dev, "4M")
        w = disk_workload(
            tmp_path,
            dev,
            identity={"backing_file": str(backing)},
            extra="    allow_signatures: [ext4]",
            fio_extra=", offset: 5m",
            repetitions=40,
        )
        proc = start_cli("run", w, "--results", tmp_path / "results", env=env)
        try:
            wait_for(lambda: runs_done(tmp_path / "results") >= 1, "the first run")
            # blkcmp's own O_EXCL probe may hold the device for an instant: try again then
            wait_for(
                lambda: subprocess.run(["mount", dev, str(mnt)], capture_output=True).returncode == 0,
                "the mount",
                timeout=30,
                interval=0.05,
            )
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 1, stdout + stderr
        refusal = [line for line in stderr.splitlines() if "refusing to write" in line]
        assert refusal and f"it is mounted: {Path(dev).name} on {mnt}" in refusal[0], stderr
        assert "--resume" in refusal[0] and "Traceback" not in stderr
        assert 1 <= done_count(campaign_dir(tmp_path / "results")) < 40


# ------------------------------------------------------------------------------------------
# blkcmp targets


def test_targets_lists_devices_with_identity_and_refusals(tmp_path, env):
    with user_disk(tmp_path) as (dev, backing):
        out = run_cli("targets", env=env)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith(f"  {dev}: "))
        assert f"backing_file={backing}" in lines[at] and "driver=loop" in lines[at]
        assert lines[at + 1] == "    write: allowed with destructive: true and a matching identity"
        sh("mkfs.ext4", "-q", dev)
        out = run_cli("targets", env=env)
        lines = out.stdout.splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith(f"  {dev}: "))
        assert lines[at + 1].startswith("    write: refused: it carries an ext4 signature"), lines[at + 1]
    root = blockdev.system_disks()
    for role in root.values():
        assert f"it is the {role} device of this system" in out.stdout


def test_a_device_blkcmp_created_that_gains_a_signature_is_refused_at_the_next_run(tmp_path, env):
    """The same policy guards blkcmp's own devices: here its loop target (a real loop device,
    no stand-in) gets a swap header written by someone else between runs."""
    w = write_workload(
        tmp_path,
        "\n".join(
            [
                "name: own",
                "targets:",
                "  own:",
                "    driver: loop",
                f"    options: {{size: 8, directory: {tmp_path}}}",
                "fio: {ioengine: psync, direct: 1, bs: 4k, offset: 1m}",
                "matrix: {rw: [randwrite]}",
                "repetitions: 40",
                "runtime: 1",
                "ramp_time: 0",
                "",
            ]
        ),
    )
    results = tmp_path / "results"
    proc = start_cli("run", w, "--results", results, env=env)
    try:
        wait_for(lambda: runs_done(results) >= 1, "the first run")
        dev = json.loads((campaign_dir(results) / "targets.json").read_text())[-1]["targets"]["own"]["device"]
        write_swap_header(dev, tmp_path)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, stdout + stderr
    assert f"refusing to write to {dev}: it carries a swap signature" in stderr, stderr
    assert 1 <= done_count(campaign_dir(results)) < 40


@pytest.mark.parametrize(
    ("target", "field", "says"),
    [
        (
            "{driver: loop, destructive: true}",
            "targets.t.destructive",
            "only drivers blockdev and nvme have `destructive`",
        ),
        ("{driver: blockdev}", "targets.t", "needs `device:`"),
        ("{driver: blockdev, device: sdb}", "targets.t.device", "a path under /dev/"),
        (
            "{driver: blockdev, device: /dev/sdb, destructive: true, identity: {model: X}}",
            "targets.t.identity",
            "wwn, serial",
        ),
        ("{driver: nvme, identity: {model: X}}", "targets.t.identity", "driver nvme needs identity:"),
        (
            "{driver: nvme, device: /dev/nvme0n1, identity: {serial: S}}",
            "targets.t.device",
            "named by identity only",
        ),
        ("{driver: blockdev, device: /dev/sdb, bind: nvme}", "targets.t.bind", "only driver nvme has `bind`"),
        ("{driver: nvme, identity: {serial: S}, bind: 'a b'}", "targets.t.bind", "pattern"),
    ],
)
def test_blockdev_fields_are_checked_with_the_workload(tmp_path, env, target, field, says):
    w = write_workload(tmp_path, f"targets:\n  t: {target}\nfio: {{rw: read}}\n")
    out = run_cli("plan", w, env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert f"{w}:2: {field}:" in line and says in line, line
