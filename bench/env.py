"""The environment a measurement was taken in, and per-run CPU accounting from /proc.

`snapshot()` records what decides a block benchmark's numbers (kernel release and config, CPU,
governor, boost, SMT, mitigations, clocksource, fio and Python versions, blkcmp version and git
commit, virtualisation). `cpu_counters()` reads /proc/stat and /proc/softirqs; the difference
of two readings around a run (`cpu_delta`) shows completion work (softirq, IPIs) that fio's own
usr/sys CPU figures cannot see.
"""

from __future__ import annotations

import gzip
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import bench
from bench import fio
from bench.releases import parse_config

SYS_CPU = Path("/sys/devices/system/cpu")
# Kernel config symbols worth showing beside every result.
KEY_CONFIG = ("CONFIG_BLK_DEV_NULL_BLK", "CONFIG_BLK_DEV_RUST_NULL", "CONFIG_RUST",
              "CONFIG_RUST_OVERFLOW_CHECKS", "CONFIG_CONFIGFS_FS", "CONFIG_MQ_IOSCHED_DEADLINE",
              "CONFIG_PREEMPT", "CONFIG_PREEMPT_VOLUNTARY", "CONFIG_PREEMPT_DYNAMIC",
              "CONFIG_PREEMPT_LAZY", "CONFIG_HZ", "CONFIG_KASAN", "CONFIG_LOCKDEP",
              "CONFIG_DEBUG_KERNEL", "CONFIG_IO_URING")


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
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
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


def snapshot() -> dict:
    config, config_source = kernel_config()
    vulnerabilities = {p.name: _read(p, "?") for p in sorted((SYS_CPU / "vulnerabilities").glob("*"))}
    return {
        "hostname": socket.gethostname(),
        "kernel": {
            "release": platform.release(),
            "version": _read("/proc/version"),
            "cmdline": _read("/proc/cmdline"),
            "config_source": config_source,
            "config_symbols": config_symbols(config),
            "preempt": _read("/sys/kernel/debug/sched/preempt"),
        },
        "cpu": {
            "model": cpu_model(),
            "count": os.cpu_count(),
            "online": _read(SYS_CPU / "online"),
            "governors": governors(),
            "boost": _read(SYS_CPU / "cpufreq/boost"),
            "intel_no_turbo": _read(SYS_CPU / "intel_pstate/no_turbo"),
            "smt": _read(SYS_CPU / "smt/control"),
            "vulnerabilities": vulnerabilities,
        },
        "clocksource": _read(SYS_CPU.parent / "clocksource/clocksource0/current_clocksource"),
        "io_uring_disabled": _read("/proc/sys/kernel/io_uring_disabled"),
        "memory_total_kib": _meminfo_total(),
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
        return {"kind": "vm", "accel": accel, "emulated": accel == "tcg",
                "kernel": os.environ.get("BLKCMP_VM_KERNEL"),
                "label": "emulated (TCG): proves the machinery, not driver performance"
                if accel == "tcg" else "virtual machine (KVM)"}
    return {"kind": "local", "emulated": False, "label": "host"}


def _meminfo_total() -> int | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return None


# ------------------------------------------------------------------------------------------
# /proc/stat and /proc/softirqs around a run

_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_counters() -> dict:
    """Per-CPU jiffies from /proc/stat and per-CPU softirq counts (BLOCK and friends)."""
    cpus: dict[str, dict[str, int]] = {}
    for line in (_read("/proc/stat") or "").splitlines():
        parts = line.split()
        if parts and parts[0].startswith("cpu"):
            cpus[parts[0]] = {f: int(v) for f, v in zip(_STAT_FIELDS, parts[1:])}
    softirqs: dict[str, list[int]] = {}
    lines = (_read("/proc/softirqs") or "").splitlines()
    for line in lines[1:]:
        name, _, rest = line.partition(":")
        softirqs[name.strip()] = [int(v) for v in rest.split()]
    return {"stat": cpus, "softirqs": softirqs, "clock_ticks": os.sysconf("SC_CLK_TCK")}


def cpu_delta(before: dict, after: dict) -> dict:
    stat = {cpu: {f: after["stat"][cpu][f] - v for f, v in fields.items() if f in after["stat"].get(cpu, {})}
            for cpu, fields in before["stat"].items() if cpu in after["stat"]}
    softirqs = {name: [a - b for a, b in zip(after["softirqs"].get(name, []), counts)]
                for name, counts in before["softirqs"].items()}
    total = stat.get("cpu", {})
    ticks = before.get("clock_ticks", 100)
    return {
        "clock_ticks": ticks,
        "stat": stat,
        "softirqs": softirqs,
        "seconds": {f: total.get(f, 0) / ticks for f in _STAT_FIELDS},
        "block_softirqs": sum(softirqs.get("BLOCK", [])),
    }
