"""bench.env: the environment record and the per-run CPU accounting, read through psutil.

psutil replaced blkcmp's own /proc parsing; the numbers must be the ones the old parser gave.
The old parser is kept below as the reference.  Both read the same /proc/stat text: a copy taken
around a real fio run, which psutil is pointed at through its PROCFS_PATH (psutil's own switch
for reading another /proc), so the comparison is exact rather than two reads a moment apart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from conftest import FIO, campaign_dir, no_traceback, run_cli, write_workload

from bench import env as bench_env  # `env` is conftest's fixture

# ------------------------------------------------------------------------------------------
# The hand-written parser psutil replaced (bench/env.py before issue 11), kept as the reference

_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def old_stat(text: str) -> dict[str, dict[str, int]]:
    cpus = {}
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("cpu"):
            cpus[parts[0]] = {f: int(v) for f, v in zip(_STAT_FIELDS, parts[1:])}
    return cpus


def old_meminfo_total_kib(text: str) -> int:
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("MemTotal:")))


def copy_of_proc(directory: Path, *names: str) -> Path:
    """A directory holding copies of /proc files, read at one moment."""
    directory.mkdir()
    for name in names:
        (directory / name).write_text(Path("/proc", name).read_text())
    return directory


@pytest.fixture
def stat_around_a_fio_run(tmp_path) -> tuple[Path, Path]:
    before = copy_of_proc(tmp_path / "before", "stat")
    subprocess.run(
        [
            FIO,
            "--name=busy",
            "--ioengine=null",
            "--size=16M",
            "--rw=randread",
            "--bs=4k",
            "--time_based=1",
            "--runtime=1",
            "--output-format=json",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    after = copy_of_proc(tmp_path / "after", "stat")
    return before, after


def test_psutil_cpu_times_are_the_old_parsers_jiffies(stat_around_a_fio_run, monkeypatch):
    before, after = stat_around_a_fio_run
    readings = []
    for proc in (before, after):
        monkeypatch.setattr(psutil, "PROCFS_PATH", str(proc))
        new, old = bench_env.cpu_times(), old_stat((proc / "stat").read_text())
        assert new == old  # every CPU line, every field, to the jiffy
        readings.append(new)
    # and the delta of the run, as cpu.json keeps it, is the old one
    softirqs = {"BLOCK": [0] * (len(readings[0]) - 1)}
    ticks = os.sysconf("SC_CLK_TCK")
    delta = bench_env.cpu_delta(
        {"stat": readings[0], "softirqs": softirqs, "clock_ticks": ticks},
        {"stat": readings[1], "softirqs": softirqs, "clock_ticks": ticks},
    )
    old_before, old_after = (old_stat((p / "stat").read_text()) for p in (before, after))
    assert delta["stat"] == {
        cpu: {f: old_after[cpu][f] - v for f, v in fields.items()} for cpu, fields in old_before.items()
    }
    assert delta["seconds"] == {f: (old_after["cpu"][f] - old_before["cpu"][f]) / ticks for f in _STAT_FIELDS}
    assert sum(delta["stat"]["cpu"].values()) > 0  # a second of fio went by: the counters moved


def test_memory_and_boot_time_are_procs_numbers(tmp_path, monkeypatch):
    proc = copy_of_proc(tmp_path / "proc", "meminfo", "stat", "vmstat")
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(proc))
    memory = bench_env.memory()
    assert memory["total_bytes"] == old_meminfo_total_kib((proc / "meminfo").read_text()) * 1024
    available = re.search(r"^MemAvailable:\s+(\d+) kB", (proc / "meminfo").read_text(), re.M)
    assert memory["available_bytes"] == int(available.group(1)) * 1024
    swap = re.search(r"^SwapTotal:\s+(\d+) kB", (proc / "meminfo").read_text(), re.M)
    assert memory["swap_total_bytes"] == int(swap.group(1)) * 1024
    btime = int(re.search(r"^btime (\d+)$", (proc / "stat").read_text(), re.M).group(1))
    assert bench_env.boot_time() == datetime.fromtimestamp(btime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_frequencies_are_what_the_machine_exposes(tmp_path, monkeypatch):
    cpufreq = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    if cpufreq.exists():  # cpufreq in sysfs: minimum and maximum known
        freqs = bench_env.frequencies_mhz()
        assert len(freqs) == len(bench_env.online_cpus())
        limits = Path("/sys/devices/system/cpu/cpu0/cpufreq")
        assert freqs[0]["min"] == int((limits / "scaling_min_freq").read_text()) / 1000
        assert freqs[0]["max"] == int((limits / "scaling_max_freq").read_text()) / 1000
        return
    # no cpufreq (this VM): psutil reads /proc/cpuinfo's "cpu MHz", with no minimum or maximum
    proc = copy_of_proc(tmp_path / "proc", "cpuinfo")
    monkeypatch.setattr(psutil, "PROCFS_PATH", str(proc))
    mhz = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)$", (proc / "cpuinfo").read_text(), re.M)]
    assert bench_env.frequencies_mhz() == [{"current": v, "min": None, "max": None} for v in mhz]


def test_online_cpus_match_proc_stat():
    assert [f"cpu{n}" for n in bench_env.online_cpus()] == re.findall(
        r"^(cpu\d+) ", Path("/proc/stat").read_text(), re.M
    )


# ------------------------------------------------------------------------------------------
# What a real run records

WORKLOAD = """\
name: usage
targets:
  a: {driver: fio-null, options: {size: 16}}
fio: {ioengine: psync}
matrix: {rw: [randread], bs: [4k]}
repetitions: 2
runtime: 1
ramp_time: 0
seed: 1
"""


def test_a_run_records_the_environment_and_fios_own_cost(tmp_path, env):
    out = run_cli(
        "run", write_workload(tmp_path, WORKLOAD), "--results", tmp_path / "res", "--quiet", env=env
    )
    no_traceback(out)
    assert out.returncode == 0, out.stderr
    camp = campaign_dir(tmp_path / "res")
    environment = json.loads((camp / "environment.json").read_text())
    assert environment["memory"]["total_bytes"] == environment["memory_total_kib"] * 1024
    assert environment["memory_total_kib"] == old_meminfo_total_kib(Path("/proc/meminfo").read_text())
    assert 0 < environment["memory"]["available_bytes"] <= environment["memory"]["total_bytes"]
    btime = int(re.search(r"^btime (\d+)$", Path("/proc/stat").read_text(), re.M).group(1))
    assert environment["kernel"]["boot_time"] == datetime.fromtimestamp(btime, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert environment["cpu"]["physical_cores"] == psutil.cpu_count(logical=False)
    assert len(environment["cpu"]["frequency_mhz"]) in (0, environment["cpu"]["count"])

    for run in sorted((camp / "runs").iterdir()):
        cpu = json.loads((run / "cpu.json").read_text())
        fio_doc = json.loads((run / "fio.json").read_text())
        [job] = fio_doc["jobs"]
        # fio's own figure for its job process; the rusage of fio (main process + the job
        # process it waited for) holds it, to within fio's rounding of the percentages
        job_cpu_s = (job["usr_cpu"] + job["sys_cpu"]) / 100 * job["job_runtime"] / 1000
        usage = cpu["fio_process"]
        assert usage["user_s"] + usage["system_s"] >= job_cpu_s - 0.02, (usage, job_cpu_s)
        assert usage["max_rss_kib"] > 1024  # fio maps megabytes of its own
        assert cpu["memory_available_bytes"]["before"] > 0 and cpu["memory_available_bytes"]["after"] > 0
        assert len(cpu["frequency_mhz"]["before"]) in (0, environment["cpu"]["count"])


def test_without_psutil_blkcmp_says_how_to_get_it(tmp_path, env):
    # The guest runs blkcmp with its root's python3: should python3-psutil be missing there, the
    # error names the package instead of a traceback. The subprocess hides psutil from itself.
    hide = (
        "import sys; sys.modules['psutil'] = None; from bench.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    workload = write_workload(tmp_path, WORKLOAD)
    proc = subprocess.run(
        [sys.executable, "-c", hide, "run", str(workload), "--results", str(tmp_path / "res")],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "blkcmp: error: psutil is missing (blkcmp reads processes, CPU times, memory and boot time "
        "through it): `pip install psutil`, or `apt-get install python3-psutil` for the system python3 a "
        "VM guest uses"
    ]
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").iterdir())


def test_the_guest_root_has_psutil():
    from bench import kernels

    assert "python3-psutil" in kernels.packages_for(kernels.GUEST_SUITE)
