"""The environment a measurement was taken in, and per-run CPU accounting.

`snapshot()` records what decides a block benchmark's numbers (kernel release and config, CPU,
per-CPU frequencies, governor, boost, SMT, mitigations, clocksource, memory, boot time, fio and
Python versions, blkcmp version and git commit, virtualisation). `cpu_counters()` reads the
machine's CPU times per CPU (user … softirq, steal), each CPU's frequency, available memory and
the per-vector softirq counts; the difference of two readings around a run (`cpu_delta`) shows
completion work (softirq, IPIs) that fio's own usr/sys CPU figures cannot see.

CPU times, frequencies, memory and boot time come from psutil (the same /proc/stat jiffies as
before, converted back to jiffies so the per-run CPU record keeps its format and its numbers); what psutil
does not read (the kernel's .config, /proc/softirqs per vector, governors, mitigations, the CPU
model) is read here.
"""

from __future__ import annotations

import gzip
import os
import platform
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import bench
from bench import fio
from bench.errors import RunError
from bench.releases import parse_config

SYS_CPU = Path("/sys/devices/system/cpu")
# Kernel config symbols worth showing beside every result.
KEY_CONFIG = (
    "CONFIG_BLK_DEV_NULL_BLK",
    "CONFIG_BLK_DEV_RUST_NULL",
    "CONFIG_RUST",
    "CONFIG_RUST_OVERFLOW_CHECKS",
    "CONFIG_CONFIGFS_FS",
    "CONFIG_MQ_IOSCHED_DEADLINE",
    "CONFIG_PREEMPT",
    "CONFIG_PREEMPT_VOLUNTARY",
    "CONFIG_PREEMPT_DYNAMIC",
    "CONFIG_PREEMPT_LAZY",
    "CONFIG_HZ",
    "CONFIG_KASAN",
    "CONFIG_LOCKDEP",
    "CONFIG_DEBUG_KERNEL",
    "CONFIG_IO_URING",
)


def require_psutil():
    """psutil, or a one-line error saying how to get it (it is a dependency of blkcmp; a VM guest
    runs blkcmp with its root's python3, whose package list includes python3-psutil)."""
    try:
        import psutil
    except ImportError:
        raise RunError(
            "psutil is missing (blkcmp reads processes, CPU times, memory and boot time through it): "
            "`pip install psutil`, or `apt-get install python3-psutil` for the system "
            "python3 a VM guest uses"
        ) from None
    return psutil


def _read(path: Path | str, default: str | None = None) -> str | None:
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return default


def kernel_config() -> tuple[str | None, str | None]:
    """(config text, where it was read from), or (None, None) when it cannot be found."""
    release = platform.release()
    try:
        with gzip.open("/proc/config.gz", "rt") as fh:
            return fh.read(), "/proc/config.gz"
    except OSError:
        pass
    for candidate in (f"/boot/config-{release}", f"/lib/modules/{release}/build/.config"):
        text = _read(candidate)
        if text:
            return text, candidate
    extra = os.environ.get("BLKCMP_KERNEL_CONFIG")  # the VM executor passes the guest's .config
    if extra and (text := _read(extra)):
        return text, extra
    return None, None


def config_symbols(text: str | None, symbols=KEY_CONFIG) -> dict[str, str]:
    """Values of the given symbols ("y", "m", a number, or "n" when unset)."""
    return {s: "n" for s in symbols} | parse_config(text, tuple(symbols)) if text else {}


def cpu_model() -> str:
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def governors() -> dict[str, str]:
    out = {}
    for policy in sorted(SYS_CPU.glob("cpufreq/policy*")):
        out[policy.name] = _read(policy / "scaling_governor", "?")
    return out


def git_commit() -> str | None:
    repo = Path(bench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return os.environ.get("BLKCMP_GIT_COMMIT")
    if out.returncode != 0:
        return os.environ.get("BLKCMP_GIT_COMMIT")
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def virtualization() -> str:
    try:
        out = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or "none"
    except (OSError, subprocess.TimeoutExpired):
        flags = _read("/proc/cpuinfo") or ""
        return "vm" if " hypervisor" in flags else "unknown"


def frequencies_mhz() -> list[dict[str, float | None]]:
    """Each CPU's current, minimum and maximum frequency in MHz, as psutil reads them (cpufreq in
    sysfs, else /proc/cpuinfo's "cpu MHz" with no minimum or maximum: those are None); [] when
    the machine exposes neither."""
    try:
        readings = require_psutil().cpu_freq(percpu=True) or []
    except (OSError, NotImplementedError):
        return []
    return [{"current": f.current, "min": f.min or None, "max": f.max or None} for f in readings]


def memory() -> dict[str, int]:
    ps = require_psutil()
    vm, swap = ps.virtual_memory(), ps.swap_memory()
    return {"total_bytes": vm.total, "available_bytes": vm.available, "swap_total_bytes": swap.total}


BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str | None:
    """This boot's random id (the kernel draws one per boot): which boot a run ran in."""
    return _read(BOOT_ID)


def boot_time() -> str:
    """When the kernel booted (UTC), so runs of one boot can be told from another's."""
    booted = datetime.fromtimestamp(require_psutil().boot_time(), UTC)
    return booted.isoformat(timespec="seconds").replace("+00:00", "Z")


def snapshot() -> dict:
    config, config_source = kernel_config()
    mem = memory()
    vulnerabilities = {p.name: _read(p, "?") for p in sorted((SYS_CPU / "vulnerabilities").glob("*"))}
    return {
        "hostname": socket.gethostname(),
        "kernel": {
            "release": platform.release(),
            "version": _read("/proc/version"),
            "cmdline": _read("/proc/cmdline"),
            "boot_time": boot_time(),
            "config_source": config_source,
            "config_symbols": config_symbols(config),
            "preempt": _read("/sys/kernel/debug/sched/preempt"),
        },
        "cpu": {
            "model": cpu_model(),
            "count": os.cpu_count(),
            "physical_cores": require_psutil().cpu_count(logical=False),
            "online": _read(SYS_CPU / "online"),
            "frequency_mhz": frequencies_mhz(),
            "governors": governors(),
            "boost": _read(SYS_CPU / "cpufreq/boost"),
            "intel_no_turbo": _read(SYS_CPU / "intel_pstate/no_turbo"),
            "smt": _read(SYS_CPU / "smt/control"),
            "vulnerabilities": vulnerabilities,
        },
        "clocksource": _read(SYS_CPU.parent / "clocksource/clocksource0/current_clocksource"),
        "io_uring_disabled": _read("/proc/sys/kernel/io_uring_disabled"),
        "memory_total_kib": mem["total_bytes"] // 1024,  # /proc/meminfo's MemTotal, as before
        "memory": mem,
        "virtualization": virtualization(),
        "fio_version": fio.version(),
        "python": sys.version.split()[0],
        "blkcmp": {"version": bench.__version__, "git_commit": git_commit()},
        "executor": executor_info(),
    }, config


def executor_info() -> dict:
    """How blkcmp was run; the VM executor passes the guest facts in through the environment."""
    accel = os.environ.get("BLKCMP_VM_ACCEL")
    if accel:
        return {
            "kind": "vm",
            "accel": accel,
            "emulated": accel == "tcg",
            "kernel": os.environ.get("BLKCMP_VM_KERNEL"),
            "label": "emulated (TCG): proves the machinery, not driver performance"
            if accel == "tcg"
            else "virtual machine (KVM)",
        }
    return {"kind": "local", "emulated": False, "label": "host"}


# ------------------------------------------------------------------------------------------
# CPU times and softirqs around a run

# /proc/stat's fields, as the per-run CPU record has always kept them (psutil names them the same).
_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def online_cpus() -> list[int]:
    """The online CPUs' numbers: /proc/stat (so psutil's per-CPU list) has a line only for these."""
    numbers: list[int] = []
    for part in (_read(SYS_CPU / "online") or "").split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit():
            numbers.extend(range(int(first), int(last or first) + 1))
    return numbers


def cpu_times() -> dict[str, dict[str, int]]:
    """Jiffies per field for the whole machine ("cpu") and each online CPU ("cpu0", …), read by
    psutil from /proc/stat and turned back into the kernel's integer jiffies."""
    ps = require_psutil()
    ticks = os.sysconf("SC_CLK_TCK")

    def jiffies(times) -> dict[str, int]:
        return {f: round(getattr(times, f) * ticks) for f in _STAT_FIELDS if hasattr(times, f)}

    per_cpu = ps.cpu_times(percpu=True)
    numbers = online_cpus()
    if len(numbers) != len(per_cpu):  # hot-plugged between the two reads: name them by position
        numbers = list(range(len(per_cpu)))
    return {"cpu": jiffies(ps.cpu_times())} | {f"cpu{n}": jiffies(t) for n, t in zip(numbers, per_cpu)}


def softirq_counts() -> dict[str, list[int]]:
    """Per-CPU counts of each softirq vector (BLOCK, NET_RX, TIMER, …) from /proc/softirqs.

    Read by hand: psutil has only the machine's total (`cpu_stats().soft_interrupts`), and the
    BLOCK vector per CPU is what shows where block completions ran."""
    softirqs: dict[str, list[int]] = {}
    for line in (_read("/proc/softirqs") or "").splitlines()[1:]:
        name, _, rest = line.partition(":")
        softirqs[name.strip()] = [int(v) for v in rest.split()]
    return softirqs


def cpu_counters() -> dict:
    """One reading: CPU times (jiffies), softirq counts, CPU frequencies, available memory."""
    return {
        "stat": cpu_times(),
        "softirqs": softirq_counts(),
        "clock_ticks": os.sysconf("SC_CLK_TCK"),
        "frequency_mhz": [f["current"] for f in frequencies_mhz()],
        "memory_available_bytes": require_psutil().virtual_memory().available,
    }


def cpu_delta(before: dict, after: dict) -> dict:
    """What happened between two readings: jiffies and softirqs per CPU, the machine's seconds
    per field; frequencies and available memory at both ends (they are levels, not counters)."""
    stat = {
        cpu: {f: after["stat"][cpu][f] - v for f, v in fields.items() if f in after["stat"].get(cpu, {})}
        for cpu, fields in before["stat"].items()
        if cpu in after["stat"]
    }
    softirqs = {
        name: [a - b for a, b in zip(after["softirqs"].get(name, []), counts)]
        for name, counts in before["softirqs"].items()
    }
    total = stat.get("cpu", {})
    ticks = before.get("clock_ticks", 100)
    delta = {
        "clock_ticks": ticks,
        "stat": stat,
        "softirqs": softirqs,
        "seconds": {f: total.get(f, 0) / ticks for f in _STAT_FIELDS},
        "block_softirqs": sum(softirqs.get("BLOCK", [])),
    }
    for level in ("frequency_mhz", "memory_available_bytes"):
        if level in before and level in after:
            delta[level] = {"before": before[level], "after": after[level]}
    return delta
