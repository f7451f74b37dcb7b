"""Shared fixtures and helpers: workload files, the CLI in a subprocess, real fio runs, loop
devices, fio json+ documents with chosen numbers, the session's real host campaign.

Every fixture lives here (pytest finds it; no test module imports another); helpers that are
plain functions are imported `from conftest import …`.  Every test that runs blkcmp gets its own
state file (BLKCMP_STATE_DIR in a tmp dir, passed to subprocesses through `env`), and whatever a
test's blkcmp left in it is removed afterwards, so a failing test never leaves loop devices or
backing files behind for the next one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIO = "fio"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loop devices need root")


# ------------------------------------------------------------------------------------------
# Files and the command line


def write_workload(directory: Path, text: str, name: str = "w.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, str]:
    """The environment for blkcmp subprocesses: an isolated state dir; cleaned up afterwards."""
    state_dir = tmp_path / "state"
    monkeypatch.setenv("BLKCMP_STATE_DIR", str(state_dir))
    environment = dict(os.environ, BLKCMP_STATE_DIR=str(state_dir))
    environment.pop("BLKCMP_DEBUG", None)
    yield environment
    from bench import ledger

    if ledger.resources():
        ledger.cleanup(force=True)


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "bench", *map(str, args)]


def run_cli(
    *args,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess:
    """`python -m bench ARGS`, the one way tests run the command line.

    `env`: the subprocess's environment; pass the `env` fixture to any command that creates
    devices or files (`run`, `cleanup`), so the state file is the test's own.  Default: this
    process's environment without BLKCMP_DEBUG (enough for ingest, compare, report, plot …)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "BLKCMP_DEBUG"}
    return subprocess.run(
        cli_command(*args),
        env=env,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
    )


def start_cli(*args, env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cli_command(*args),
        env=env,
        cwd=cwd or REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr


# ------------------------------------------------------------------------------------------
# Campaign directories


def campaign_dir(results: Path) -> Path:
    """The one campaign directory under results/."""
    dirs = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(dirs) == 1, dirs
    return dirs[0]


def index_rows(campaign: Path, table: str = "runs") -> list[dict]:
    db = sqlite3.connect(campaign / "index.sqlite", timeout=30)
    db.row_factory = sqlite3.Row
    try:
        order = "position" if table == "runs" else "run_id, job_index"
        return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY {order}")]
    finally:
        db.close()


def done_count(campaign: Path) -> int:
    try:
        return sum(1 for r in index_rows(campaign) if r["status"] == "done")
    except sqlite3.Error:
        return 0


def wait_for(predicate, what: str, timeout: float = 180, interval: float = 0.1):
    """Poll until predicate() is truthy (a generous bound: the 2 CPUs are shared)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def planned_ids(campaign: Path) -> list[str]:
    return [r["run_id"] for r in json.loads((campaign / "plan.json").read_text())["runs"]]


# ------------------------------------------------------------------------------------------
# Loop devices


def loop_devices() -> dict[str, str]:
    """/dev/loopN -> backing file, for every attached loop device."""
    out = subprocess.run(
        ["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"], capture_output=True, text=True, check=True
    )
    if not out.stdout.strip():
        return {}
    return {
        d["name"]: (d.get("back-file") or "").removesuffix(" (deleted)")
        for d in json.loads(out.stdout).get("loopdevices", [])
    }


@contextlib.contextmanager
def scratch_loop(directory: Path, size_mib: int = 8):
    """A loop device of the test's own, not made by blkcmp; detached on the way out."""
    backing = directory / "scratch-loop.img"
    with open(backing, "wb") as fh:
        fh.truncate(size_mib << 20)
    dev = subprocess.run(
        ["losetup", "--find", "--show", str(backing)], capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        yield dev, backing
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


# ------------------------------------------------------------------------------------------
# fio


def run_fio(directory: Path, job_text: str, *args: str, name: str = "job.fio") -> str:
    """Run fio on a job file with --output-format=json+ to stdout; return stdout as fio wrote it."""
    job = directory / name
    job.write_text(job_text)
    proc = subprocess.run(
        [FIO, "--output-format=json+", *args, str(job)],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout[:2000]
    return proc.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def fio_servers(count: int, directory: Path):
    """`count` fio servers on free local ports; each killed on the way out (and bounded by
    `timeout` should the test process itself die)."""
    procs, ports = [], []
    try:
        for _ in range(count):
            port = free_port()
            procs.append(
                subprocess.Popen(
                    ["timeout", "120", FIO, f"--server=ip:127.0.0.1,{port}"],
                    cwd=directory,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            ports.append(port)
        for port in ports:
            wait_for(lambda port=port: _listening(port), f"fio server on port {port}", timeout=30)
        yield ports
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------
# fio json+ documents with chosen numbers (campaigns whose right answer the test sets)


@pytest.fixture(scope="session")
def template() -> dict:
    """A real fio json+ output (fio's null engine, 1 s): the template of `fake_run`."""
    out = subprocess.run(
        [
            FIO,
            "--name=t",
            "--ioengine=null",
            "--size=16M",
            "--rw=randread",
            "--bs=4k",
            "--time_based=1",
            "--runtime=1",
            "--output-format=json+",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout[out.stdout.index("{") :])


def fake_run(template: dict, target: str, iops: float, rw: str = "randread", iodepth: int = 1) -> dict:
    """A copy of the template as a run of `target` at that point, with `iops` read IOPS."""
    doc = copy.deepcopy(template)
    job = doc["jobs"][0]
    job["jobname"] = target
    job["job options"].update({"rw": rw, "iodepth": str(iodepth), "bs": "4k"})
    job["read"]["iops"] = iops
    job["read"]["bw_bytes"] = iops * 4096
    return doc


def make_campaign(
    tmp: Path,
    template: dict,
    means: dict[str, dict[int, float]],
    *,
    n: int = 10,
    cv: float = 0.01,
    seed: int = 1,
    name: str = "camp",
) -> Path:
    """Runs of each target at each iodepth with IOPS ~ N(mean, cv*mean), ingested round by round."""
    import numpy as np

    rng = np.random.default_rng(seed)
    files = []
    for rep in range(n):
        for target, per_point in means.items():
            for iodepth, mean in per_point.items():
                path = tmp / f"{name}-{target}-qd{iodepth}-{rep}.json"
                path.write_text(
                    json.dumps(
                        fake_run(template, target, float(rng.normal(mean, cv * mean)), iodepth=iodepth)
                    )
                )
                files.append(str(path))
    into = tmp / name
    out = run_cli("ingest", *files, "--into", str(into))
    assert out.returncode == 0, out.stderr
    return into


# ------------------------------------------------------------------------------------------
# The session's real host campaign (figures and the HTML report are drawn from it)

HOST_WORKLOAD = """\
name: plots-host
targets:
  common:
    options: {size: 16}
  loop:
    driver: loop
  fionull:
    driver: fio-null
fio:
  ioengine: libaio
  direct: 1
matrix:
  rw: [randread, randwrite]
  bs: [4k]
  iodepth: [1, 4]
  numjobs: [1, 2]
  exclude:
    - {rw: randwrite, numjobs: 2}
repetitions: 3
runtime: 1
ramp_time: 0
seed: 5
timeseries: 250ms
"""


@pytest.fixture(scope="session")
def host_campaign(tmp_path_factory) -> Path:
    """A loop device against fio's null engine, run by `blkcmp run` with the real fio (1 s runs,
    no ramp, 3 rounds), once per test session."""
    if os.geteuid() != 0:
        pytest.skip("loop devices need root")
    root = tmp_path_factory.mktemp("plots-host")
    env = {k: v for k, v in os.environ.items() if k != "BLKCMP_DEBUG"} | {
        "BLKCMP_STATE_DIR": str(root / "state")
    }
    workload = write_workload(root, HOST_WORKLOAD)
    try:
        proc = run_cli("run", workload, "--results", root / "results", "--quiet", env=env, timeout=900)
    finally:  # never leave a loop device behind, whatever happened
        run_cli("cleanup", "--force", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return campaign_dir(root / "results")


# ------------------------------------------------------------------------------------------
# Golden outputs


GOLDEN = REPO / "tests" / "golden"


def check_golden(name: str, text: str) -> None:
    """`text` must equal tests/golden/NAME; BLKCMP_UPDATE_GOLDEN=1 rewrites the file instead (then
    read the diff: the change must be the one intended)."""
    path = GOLDEN / name
    if os.environ.get("BLKCMP_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), (
        f"{name} differs from its golden output (BLKCMP_UPDATE_GOLDEN=1 rewrites it)"
    )


# ------------------------------------------------------------------------------------------
# A loop device standing in for a user's disk (driver blockdev, preconditioning)

MIB = 1 << 20


def sh(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=True)


def _release(dev: str) -> None:
    """Undo what a test did to its loop device: swap, mounts (partitions too), the loop itself."""
    for line in Path("/proc/swaps").read_text().splitlines()[1:]:
        if line.split() and line.split()[0].startswith(dev):
            subprocess.run(["swapoff", line.split()[0]], capture_output=True, check=False)
    for line in Path("/proc/self/mounts").read_text().splitlines():
        if line.split()[0].startswith(dev):
            subprocess.run(["fsfreeze", "--unfreeze", line.split()[1]], capture_output=True, check=False)
            subprocess.run(["umount", line.split()[1]], capture_output=True, check=False)
    subprocess.run(["losetup", "-d", dev], capture_output=True, check=False)


@contextlib.contextmanager
def user_disk(tmp_path: Path, *losetup_flags: str, size_mib: int = 8, prepare=None):
    """A loop device standing in for a user's disk; `prepare(backing)` runs before attaching."""
    backing = tmp_path / "user-disk.img"
    with open(backing, "wb") as fh:
        fh.truncate(size_mib * MIB)
    if prepare:
        prepare(backing)
    dev = sh("losetup", "--find", "--show", *losetup_flags, str(backing)).stdout.strip()
    try:
        yield dev, backing
    finally:
        _release(dev)


def disk_workload(
    tmp_path: Path,
    dev: str | None,
    *,
    identity: dict | None = None,
    destructive: bool = True,
    rw: str = "randwrite",
    extra: str = "",
    fio_extra: str = "",
    repetitions: int = 1,
) -> Path:
    lines = ["name: disk", "targets:", "  disk:", "    driver: blockdev"]
    if dev:
        lines.append(f"    device: {dev}")
    if identity:
        lines.append(f"    identity: {json.dumps(identity)}")
    if destructive:
        lines.append("    destructive: true")
    if extra:
        lines.append(extra)
    lines += [
        f"fio: {{ioengine: psync, direct: 1, bs: 4k{fio_extra}}}",
        f"matrix: {{rw: [{rw}]}}",
        f"repetitions: {repetitions}",
        "runtime: 1",
        "ramp_time: 0",
        "",
    ]
    return write_workload(tmp_path, "\n".join(lines))


# ------------------------------------------------------------------------------------------
# The VM tier


@pytest.fixture(scope="session")
def kernel_7_2():
    """The 7.2 test kernel, built or taken from the cache."""
    from bench import kernels

    return kernels.build("7.2", progress=print)


def only_campaign(results: Path) -> Path:
    dirs = [d for d in results.iterdir() if d.is_dir() and not d.name.startswith(".")]
    assert len(dirs) == 1, dirs
    return dirs[0]


# ------------------------------------------------------------------------------------------
# Test kernels (VM tier)

SLOW_PATCH = REPO / "tests" / "data" / "kernels" / "null_blk-slow.patch"


@pytest.fixture(scope="session")
def kernel_7_2_slow():
    """Debian's 7.2 with a fixed 100 µs delay in null_blk's queue_rq (the known truth of the
    multi-kernel tests), labelled `slow`: built after the plain 7.2, from its kept build tree."""
    from bench import kernel_source, kernels

    kernels.build("7.2", progress=print)  # first, so the patched build reuses its tree
    source = kernel_source.from_request("7.2", None, [str(SLOW_PATCH)], label="slow")
    return kernels.build("7.2", progress=print, source=source)
