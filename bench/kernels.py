"""Test kernels with both null_blk and rnull built in, made from Debian's kernel sources.

The development machine's own kernel has neither driver, so blkcmp builds its own. A Debian chroot
per toolchain suite (made with debootstrap: `sid` or `trixie`) holds the toolchain (gcc, binutils,
rustc, bindgen, libclang) and Debian's `linux-source-X.Y` package; the kernel is configured from a
minimal base (tinyconfig + what the guest needs) + virtme-ng's fragment + ours, built there, booted
once to prove it works (a smoke boot: both drivers at the expected interface), and only then cached
with `bzImage`, `.config`, `build.log`, the smoke boot's console log and a small `kernel.json`,
in `<cache>/kernels/<release>-<suite>-<key>/`. The key covers the exact toolchain versions and the
configuration recipe, so a changed toolchain is a new entry, never a silent reuse. The sid chroot
is also the guest's root filesystem for every kernel (see bench.vm), so all kernels are measured
with the same fio and Python; that is why the guest-side runtime is installed in it too.

Everything under the cache appears atomically (built aside, renamed into place), so an
interrupted build or chroot leaves no half entry. Commands run in the chroot inside a private
mount namespace: the /proc and /dev they need are never visible on the host and vanish with the
process, even when it is killed, so the chroot can never reach a guest with host mounts in it.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import kernel_source
from bench.errors import RunError, UsageError
from bench.procs import signals_raise
from bench.releases import parse_config, release_key

Progress = Callable[[str], None]

# Toolchain suites a kernel can be built with, and the default per version. 6.12 builds with
# trixie's toolchain (gcc 14, rustc 1.85, bindgen 0.71): the one its Debian package is built with,
# and it does not move. 7.2's source exists only in sid, so it is built with sid's toolchain,
# which changes from day to day; the cache key makes such a change a new entry.
TOOLCHAIN_SUITES: tuple[str, ...] = ("sid", "trixie")
DEFAULT_TOOLCHAIN: Mapping[str, str] = {"6.12": "trixie"}
FALLBACK_TOOLCHAIN = "sid"
# The guest's root filesystem: one for every kernel, so fio and Python are the same in all.
GUEST_SUITE = "sid"

# What building a kernel needs.
BUILD_PACKAGES: tuple[str, ...] = (
    "build-essential",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "python3",
    "rustc",
    "rust-src",
    "bindgen",
    "libclang-dev",
    "clang",
    "lld",
    "llvm",
    "kmod",
    "xz-utils",
    "zstd",
)
# What the guest needs at run time (only in the guest root).
GUEST_PACKAGES: tuple[str, ...] = (
    # udev (vng returns the script's exit code only with it), fio, lsblk & co
    "udev",
    "fio",
    "util-linux",
    "procps",
    # blkcmp's own Python runtime inside the guest
    "python3-yaml",
    "python3-pydantic",
    "python3-rich",
    "python3-psutil",
    "python3-numpy",
    "python3-scipy",
    # NVMe namespaces (issue 14): id-ctrl / id-ns / format, the standard tool
    "nvme-cli",
)
CHROOT_PACKAGES: tuple[str, ...] = BUILD_PACKAGES + GUEST_PACKAGES  # the guest root's list

# Guest mount points: virtme-ng silently mounts nothing when the mount point is missing.
GUEST_MOUNT_POINTS: tuple[str, ...] = ("/results", "/blkcmp")

# Symbols that must come out =y, else the kernel is useless for blkcmp.
REQUIRED_SYMBOLS: tuple[str, ...] = (
    "CONFIG_RUST",
    "CONFIG_CONFIGFS_FS",
    "CONFIG_BLK_DEV_NULL_BLK",
    "CONFIG_BLK_DEV_RUST_NULL",
)
# Symbols recorded with the kernel (and so with every result): they change what a number means.
RECORDED_SYMBOLS: tuple[str, ...] = REQUIRED_SYMBOLS + (
    "CONFIG_RUST_OVERFLOW_CHECKS",
    "CONFIG_RUST_DEBUG_ASSERTIONS",
    "CONFIG_IO_URING",
    "CONFIG_AIO",
    "CONFIG_PREEMPT_NONE",
    "CONFIG_PREEMPT_VOLUNTARY",
    "CONFIG_PREEMPT",
    "CONFIG_PREEMPT_DYNAMIC",
    "CONFIG_HZ",
    "CONFIG_NR_CPUS",
    "CONFIG_MQ_IOSCHED_DEADLINE",
    "CONFIG_BLK_DEV_INTEGRITY",
    "CONFIG_KVM_GUEST",
    "CONFIG_PARAVIRT",
    "CONFIG_DEBUG_INFO_NONE",
    "CONFIG_KASAN",
    "CONFIG_LOCKDEP",
    "CONFIG_DEBUG_PREEMPT",
    "CONFIG_BLK_DEV_NVME",
)

# The base configuration: `make tinyconfig` plus what the guest needs to boot under virtme-ng
# (serial console, virtio-pci, 9p root, devtmpfs, the syscalls udev, fio and Python use), then
# virtme-ng's own fragment, then CONFIG_FRAGMENT. Measured on 2 cores: about half the build time of
# x86_64_defconfig (see the README), with the same drivers and block layer.
CONFIG_BASES: tuple[str, ...] = ("tinyconfig", "x86_64_defconfig")
CONFIG_BASE_TARGET = "tinyconfig"


def config_base() -> str:
    """tinyconfig, or x86_64_defconfig with $BLKCMP_KERNEL_CONFIG_BASE (to compare the two)."""
    base = os.environ.get("BLKCMP_KERNEL_CONFIG_BASE", "").strip() or CONFIG_BASE_TARGET
    if base not in CONFIG_BASES:
        raise UsageError(f"BLKCMP_KERNEL_CONFIG_BASE must be one of {', '.join(CONFIG_BASES)}, not {base!r}")
    return base


GUEST_FRAGMENT = """\
CONFIG_64BIT=y
CONFIG_SMP=y
CONFIG_NR_CPUS=64
CONFIG_PRINTK=y
CONFIG_BUG=y
CONFIG_KALLSYMS=y
CONFIG_MULTIUSER=y
CONFIG_SYSVIPC=y
CONFIG_POSIX_TIMERS=y
CONFIG_FUTEX=y
CONFIG_EPOLL=y
CONFIG_SIGNALFD=y
CONFIG_TIMERFD=y
CONFIG_EVENTFD=y
CONFIG_SHMEM=y
CONFIG_FILE_LOCKING=y
CONFIG_FHANDLE=y
CONFIG_INOTIFY_USER=y
CONFIG_HIGH_RES_TIMERS=y
CONFIG_NO_HZ_IDLE=y
CONFIG_BINFMT_ELF=y
CONFIG_BINFMT_SCRIPT=y
CONFIG_ACPI=y
CONFIG_PCI=y
CONFIG_PCI_MSI=y
CONFIG_TTY=y
CONFIG_UNIX98_PTYS=y
CONFIG_SERIAL_8250=y
CONFIG_SERIAL_8250_CONSOLE=y
CONFIG_HYPERVISOR_GUEST=y
CONFIG_NET=y
CONFIG_UNIX=y
CONFIG_INET=y
CONFIG_VIRTIO_MENU=y
CONFIG_VIRTIO=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_CONSOLE=y
CONFIG_NET_9P=y
CONFIG_NET_9P_VIRTIO=y
CONFIG_9P_FS=y
CONFIG_9P_FS_POSIX_ACL=y
CONFIG_PROC_FS=y
CONFIG_PROC_SYSCTL=y
CONFIG_SYSFS=y
CONFIG_TMPFS=y
CONFIG_TMPFS_POSIX_ACL=y
CONFIG_DEVTMPFS=y
CONFIG_OVERLAY_FS=y
CONFIG_BLOCK=y
CONFIG_BLK_DEV=y
CONFIG_BLK_DEV_LOOP=y
CONFIG_BLK_WBT=y
CONFIG_MQ_IOSCHED_DEADLINE=y
CONFIG_MQ_IOSCHED_KYBER=y
CONFIG_MAGIC_SYSRQ=y
CONFIG_PREEMPT_VOLUNTARY=y
"""

# On top of the base and virtme-ng's fragment. Later lines win in .config, so this also switches
# off what virtme-ng turns on for desktop use and tracing (DRM, sound, BPF, ftrace, kprobes) to
# save build time; none of it is on the I/O path of either driver.
CONFIG_FRAGMENT = """\
CONFIG_RUST=y
CONFIG_CONFIGFS_FS=y
CONFIG_BLK_DEV_NULL_BLK=y
CONFIG_BLK_DEV_RUST_NULL=y
CONFIG_IO_URING=y
CONFIG_AIO=y
# NVMe namespaces as targets (QEMU-emulated controllers in the VM tier)
CONFIG_BLK_DEV_NVME=y
CONFIG_BLK_DEV_INITRD=y
CONFIG_DEVTMPFS_MOUNT=y
CONFIG_KVM_GUEST=y
CONFIG_PARAVIRT=y
# Rust blockers
# CONFIG_MODVERSIONS is not set
CONFIG_RANDSTRUCT_NONE=y
# CONFIG_DEBUG_INFO_BTF is not set
# build-time savers
CONFIG_DEBUG_INFO_NONE=y
# CONFIG_DRM is not set
# CONFIG_SOUND is not set
# CONFIG_KVM is not set
# CONFIG_VIRTUALIZATION is not set
# CONFIG_WLAN is not set
# CONFIG_WIRELESS is not set
# CONFIG_USB_SUPPORT is not set
# CONFIG_HID_SUPPORT is not set
# CONFIG_NETFILTER is not set
# CONFIG_IPV6 is not set
# CONFIG_NFS_FS is not set
# CONFIG_ATA is not set
# CONFIG_MD is not set
# CONFIG_BPF_SYSCALL is not set
# CONFIG_FTRACE is not set
# CONFIG_FUNCTION_TRACER is not set
# CONFIG_KPROBES is not set
# CONFIG_UPROBES is not set
# CONFIG_DEBUG_FS is not set
# CONFIG_SQUASHFS is not set
# CONFIG_FUSE_FS is not set
# CONFIG_SECURITYFS is not set
# CONFIG_FB is not set
# CONFIG_INPUT is not set
"""
# Symbols the guest cannot do without: checked after configuration, like REQUIRED_SYMBOLS.
GUEST_SYMBOLS: tuple[str, ...] = (
    "CONFIG_VIRTIO_PCI",
    "CONFIG_NET_9P_VIRTIO",
    "CONFIG_9P_FS",
    "CONFIG_SERIAL_8250_CONSOLE",
    "CONFIG_DEVTMPFS",
    "CONFIG_UNIX",
    "CONFIG_BINFMT_SCRIPT",
    "CONFIG_MAGIC_SYSRQ",
)
# Bump when the way a kernel is configured or built changes: part of every cache key.
RECIPE_VERSION = 3

NO_OVERFLOW_SUFFIX = "-nooverflow"
PROGRESS_EVERY_S = 30.0
_VERSION_RE = re.compile(r"^\d+\.\d+$")
_CHROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# make's quiet-mode lines for a compiled object ("  CC      drivers/block/null_blk/main.o").
# Rust objects say which flavour ("  RUSTC L rust/ffi.o"), module objects "[M]".
_COMPILE_RE = re.compile(r"^\s+(CC|RUSTC|AS|HOSTCC|HOSTCXX|HOSTRUSTC|BINDGEN)(?: \[M\]| [A-Z])?\s+(\S+)\s*$")


# ----------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class KernelInfo:
    """A bootable test kernel: a cache entry, or any bzImage the user points at."""

    name: str  # cache entry name: release[-nooverflow]-<toolchain suite>-<key>
    release: str  # `uname -r` of the kernel, e.g. "7.2.13"
    bzimage: Path
    bzimage_size: int
    version: str | None = None  # what was asked for ("7.2"); None for a foreign bzImage
    config_path: Path | None = None
    # Recorded symbols: "y", "m", "n" (is not set) or the value; missing when not in .config.
    config: Mapping[str, str] = field(default_factory=dict)
    source_package: str | None = None
    source_version: str | None = None  # Debian version of source_package, e.g. "7.2.13-1"
    toolchain: Mapping[str, str] = field(default_factory=dict)
    suite: str | None = None  # the Debian suite whose toolchain built it
    key: str | None = None  # cache key: toolchain + configuration recipe
    smoke_boot: Mapping[str, object] = field(default_factory=dict)
    built_at: str | None = None
    build_seconds: float | None = None
    cached: bool = False  # True when it lives in blkcmp's cache
    label: str | None = None  # what `--kernel` calls it: the version for Debian's own source
    source: Mapping[str, object] = field(default_factory=dict)  # kernel_source.Source.to_dict()

    @property
    def plain(self) -> bool:
        """Built from Debian's linux-source-X.Y as it is (entries from before sources were
        recorded were all such builds): the ones a bare version like "7.2" names."""
        return not self.source or (
            self.source.get("kind") == "debian"
            and not self.source.get("patches")
            and not self.source.get("config_fragment")
        )

    @property
    def path(self) -> Path:
        return self.bzimage.parent

    @property
    def overflow_checks(self) -> bool | None:
        """Whether rnull runs with Rust integer-overflow checks (None: unknown, no .config)."""
        value = self.config.get("CONFIG_RUST_OVERFLOW_CHECKS")
        if value is None:
            return None if not self.config else False
        return value == "y"

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("bzimage", "config_path"):
            d[key] = None if d[key] is None else str(d[key])
        d["config"] = dict(self.config)
        d["toolchain"] = dict(self.toolchain)
        d["smoke_boot"] = dict(self.smoke_boot)
        d["source"] = dict(self.source)
        d["path"] = str(self.path)
        d["overflow_checks"] = self.overflow_checks
        return d


def cache_dir() -> Path:
    """Where blkcmp keeps chroots and kernels: $BLKCMP_CACHE, else ~/.cache/blkcmp."""
    env = os.environ.get("BLKCMP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "blkcmp"


def kernels_dir() -> Path:
    return cache_dir() / "kernels"


def chroot_dir(suite: str = GUEST_SUITE) -> Path:
    """A toolchain chroot; without an argument, the guest root (the sid chroot)."""
    return cache_dir() / "chroots" / suite


def default_toolchain(version: str) -> str:
    return DEFAULT_TOOLCHAIN.get(version, FALLBACK_TOOLCHAIN)


def packages_for(suite: str) -> list[str]:
    """The guest root holds the build toolchain and the guest runtime; other suites only build."""
    return sorted(CHROOT_PACKAGES if suite == GUEST_SUITE else BUILD_PACKAGES)


def logs_dir() -> Path:
    return cache_dir() / "logs"


def bzimage_release(path: Path) -> str:
    """The kernel release string embedded in a bzImage's setup header (boot protocol ≥ 2.00)."""
    try:
        with open(path, "rb") as f:
            head = f.read(0x10000)
    except OSError as e:
        raise UsageError(f"cannot read kernel image {path}: {e.strerror}") from None
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise UsageError(f"{path} is not a bzImage (no Linux boot header)")
    (ptr,) = struct.unpack_from("<H", head, 0x20E)
    start = ptr + 0x200
    raw = head[start : start + 256].split(b"\0", 1)[0].decode("ascii", "replace")
    return raw.split(" ", 1)[0] if raw else "unknown"


def _info_from_entry(entry: Path) -> KernelInfo | None:
    meta_path = entry / "kernel.json"
    bz = entry / "bzImage"
    try:
        meta = json.loads(meta_path.read_text())
        size = bz.stat().st_size
    except (OSError, ValueError):
        return None
    cfg = entry / ".config"
    return KernelInfo(
        name=entry.name,
        release=meta.get("release", entry.name),
        bzimage=bz,
        bzimage_size=size,
        version=meta.get("version"),
        config_path=cfg if cfg.exists() else None,
        config=dict(meta.get("config", {})),
        source_package=meta.get("source_package"),
        source_version=meta.get("source_version"),
        toolchain=dict(meta.get("toolchain", {})),
        suite=meta.get("toolchain_suite"),
        key=meta.get("key"),
        smoke_boot=dict(meta.get("smoke_boot", {})),
        built_at=meta.get("built_at"),
        build_seconds=meta.get("build_seconds"),
        cached=True,
        label=meta.get("label") or meta.get("version"),
        source=dict(meta.get("source") or {}),
    )


def list_cached() -> list[KernelInfo]:
    """Kernels in the cache, oldest version first (entries being built are not listed)."""
    root = kernels_dir()
    if not root.is_dir():
        return []
    infos = [
        info
        for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and (info := _info_from_entry(entry)) is not None
    ]
    return sorted(infos, key=lambda i: (release_key(i.release), i.name))


def resolve(spec: str) -> KernelInfo:
    """A kernel from a version ("7.2"), a cache entry name ("7.2.13", "7.2.13-nooverflow",
    "7.2-nooverflow"), the label of a build from the user's source or with patches (the newest
    build of that label), or a path to a bzImage (or to a directory holding one)."""
    spec = spec.strip()
    if not spec:
        raise UsageError("empty kernel name; give a version such as 7.2 or a path to a bzImage")
    everything = list_cached()
    for info in everything:
        if info.name == spec:
            return info
    labelled = [i for i in everything if not i.plain and i.label == spec]
    if labelled:
        return max(labelled, key=lambda i: i.built_at or "")
    cached = [i for i in everything if i.plain]
    want_overflow = not spec.endswith(NO_OVERFLOW_SUFFIX)
    base = spec[: -len(NO_OVERFLOW_SUFFIX)] if not want_overflow else spec
    matches = [i for i in cached if i.version == base and i.overflow_checks == want_overflow]
    # A release names any build: a non-plain one carries its label in it (7.2.13-slow).
    matches += [
        i for i in everything if i.release == base and i.overflow_checks == want_overflow and i not in matches
    ]
    if matches:
        # Several toolchains may have built the same version: the default one first.
        return max(
            matches,
            key=lambda i: (
                i.suite == default_toolchain(i.version or ""),
                release_key(i.release),
                i.built_at or "",
            ),
        )
    looks_like_path = "/" in spec or spec.startswith(".") or Path(spec).exists()
    if looks_like_path:
        return _info_from_path(Path(spec).expanduser())
    m = re.match(r"^(\d+\.\d+)(\.\d+)?$", base)
    if m:
        flag = "" if want_overflow else " --no-overflow-checks"
        have = ", ".join(i.name for i in everything) or "none"
        raise UsageError(
            f"kernel {spec} is not built yet (cached: {have}); "
            f"`blkcmp kernel build {m.group(1)}{flag}` builds it"
        )
    labels = sorted({i.label for i in everything if not i.plain and i.label})
    known = f" (built labels: {', '.join(labels)})" if labels else ""
    raise UsageError(
        f"unknown kernel {spec!r}: give a version such as 7.2, a built label{known} or a path to a bzImage"
    )


def _info_from_path(path: Path) -> KernelInfo:
    if path.is_dir():
        path = path / "bzImage"
    if not path.is_file():
        raise UsageError(f"kernel image {path} does not exist")
    path = path.resolve()
    if (path.parent / "kernel.json").exists():
        info = _info_from_entry(path.parent)
        if info is not None and info.bzimage == path:
            return info
    cfg = path.parent / ".config"
    config: dict[str, str] = {}
    if cfg.is_file():
        config = parse_config(cfg.read_text(errors="replace"), RECORDED_SYMBOLS)
    return KernelInfo(
        name=path.parent.name,
        release=bzimage_release(path),
        bzimage=path,
        bzimage_size=path.stat().st_size,
        config_path=cfg if cfg.is_file() else None,
        config=config,
    )


# ----------------------------------------------------------------------------------------------
# Side effects: locking, running things in the chroot


@contextmanager
def _locked(path: Path, what: str, progress: Progress) -> Iterator[None]:
    """Serialise builders of the same thing across processes (flock: released on death)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"{what}: waiting for another blkcmp process to finish")
            fcntl.flock(f, fcntl.LOCK_EX)
        yield


def terminate_cleanly():
    """Turn SIGTERM/SIGHUP into SystemExit for the duration, so `finally` blocks run.

    Builds and guests run in sessions of their own (so that they can be killed as a group);
    without this, `kill <blkcmp>` would leave make or QEMU running as orphans.
    """
    return signals_raise(lambda signum: SystemExit(128 + signum))


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mnt = line.split()[4].replace("\\040", " ")
                if mnt.startswith(prefix) or mnt == prefix[:-1]:
                    found.append(mnt)
    except OSError:
        pass
    return found


def _remove_tree(path: Path) -> None:
    """rm -rf, but never through a mount (a bind-mounted /dev would be emptied)."""
    if not path.exists():
        return
    mounts = _mounts_under(path)
    if mounts:
        raise RunError(f"refusing to delete {path}: {mounts[0]} is mounted inside it")
    shutil.rmtree(path, ignore_errors=True)


def _in_chroot(root: Path, argv: list[str]) -> list[str]:
    """argv to run `argv` in the chroot with /proc and /dev, in a private mount namespace.

    rustc finds its sysroot through /proc/self/exe and dpkg wants /dev/null; mounting them in a
    namespace of their own means they disappear with the process whatever happens to it.
    """
    script = (
        'set -e; r=$1; shift; mount -t proc proc "$r/proc"; mount --bind /dev "$r/dev"; '
        f'exec chroot "$r" /usr/bin/env -i PATH={_CHROOT_PATH} HOME=/root LANG=C.UTF-8 '
        'DEBIAN_FRONTEND=noninteractive "$@"'
    )
    return [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        "sh",
        str(root),
        *argv,
    ]


def _private_ns(argv: list[str]) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "--", *argv]


class _Step:
    """Runs commands for one build/chroot job, appending their output to one log file."""

    def __init__(self, log: Path, progress: Progress, what: str):
        self.log = log
        self.progress = progress
        self.what = what
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "a", buffering=1, errors="replace")  # noqa: SIM115 — closed by close()

    def close(self) -> None:
        self._log.close()

    def note(self, text: str) -> None:
        self._log.write(f"### {text}\n")

    def run(
        self,
        stage: str,
        argv: list[str],
        *,
        tick: Callable[[str], None] | None = None,
        ticker: Callable[[float], str] | None = None,
        capture: bool = False,
    ) -> str:
        """Run argv, log its output; RunError naming the stage and the log if it fails.

        tick(line) sees every output line; ticker(elapsed) makes a progress line every
        PROGRESS_EVERY_S seconds (so a long silent step still shows it is alive).
        """
        self.note(f"{stage}: {' '.join(argv)}")
        started = time.monotonic()
        captured: list[str] = []
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
                start_new_session=True,
            )
        except OSError as e:
            raise RunError(f"{self.what}: {stage}: cannot run {argv[0]}: {e.strerror}") from None

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self._log.write(line)
                if capture:
                    captured.append(line)
                if tick:
                    tick(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            last = started
            while True:
                try:
                    proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    now = time.monotonic()
                    if ticker and now - last >= PROGRESS_EVERY_S:
                        last = now
                        self.progress(ticker(now - started))
        finally:
            if proc.poll() is None:  # interrupted: take the whole job down with us
                _kill_group(proc)
            reader.join(timeout=10)
        elapsed = time.monotonic() - started
        self.note(f"{stage}: exit {proc.returncode} after {elapsed:.1f} s")
        if proc.returncode != 0:
            reason = _last_error_line(self.log) or f"exit status {proc.returncode}"
            raise RunError(f"{self.what}: {stage} failed: {reason} (log: {self.log})")
        return "".join(captured)


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _last_error_line(log: Path) -> str | None:
    """The most telling line near the end of a log, for a one-line error message."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 200_000))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    lines = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("###")]
    for pat in (r"\berror\b", r"\bE:", r"\bfailed\b", r"\bFATAL\b"):
        for ln in reversed(lines):
            if re.search(pat, ln, re.IGNORECASE) and not ln.startswith("make"):
                return ln[:200]
    return lines[-1][:200] if lines else None


# ----------------------------------------------------------------------------------------------
# The Debian mirror


def _host_apt_uris(apt_dir: Path = Path("/etc/apt")) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every `deb` source the host itself uses, one-line and deb822 formats."""
    found: list[tuple[str, list[str]]] = []
    one_line = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in one_line:
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                found.append((words[1], [words[2]]))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                found.append((uri, fields.get("suites", "").split()))
    return found


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str | None:
    """The Debian archive to debootstrap from: $BLKCMP_DEBIAN_MIRROR, else the host's own main
    Debian source (not its -security or -updates one, not a third-party repository), else None
    (debootstrap's default)."""
    forced = os.environ.get("BLKCMP_DEBIAN_MIRROR", "").strip()
    if forced:
        return forced.rstrip("/")
    candidates = []
    for uri, suites in _host_apt_uris(apt_dir):
        if not uri.startswith(("http://", "https://", "file:/")) or "security" in uri:
            continue
        # Debian's own codenames; vendors' repositories also say "stable", so that alone
        # does not make a Debian archive.
        if any(x.split("-")[0] in _DEBIAN_SUITES for x in suites):
            candidates.append((uri.rstrip("/").endswith("/debian"), uri.rstrip("/")))
    best = [uri for is_debian, uri in candidates if is_debian] or [uri for _, uri in candidates]
    return best[0] if best else None


_DEBIAN_SUITES = frozenset({"bullseye", "bookworm", "trixie", "forky", "duke", "sid", "unstable"})
DEBOOTSTRAP_DEFAULT_MIRROR = "http://deb.debian.org/debian"


def check_mirror(mirror: str, suite: str, timeout_s: float = 30.0) -> None:
    """One-line RunError naming the mirror when it cannot serve `suite`'s Release file."""
    import urllib.error
    import urllib.request

    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            resp.read(64)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise RunError(
            f"Debian mirror {mirror} is unreachable or has no {suite} ({reason}); "
            f"set BLKCMP_DEBIAN_MIRROR to a reachable Debian mirror"
        ) from None


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise RunError(f"{what} needs root (debootstrap, chroot and mount namespaces)")
    for tool in ("debootstrap", "unshare", "chroot"):
        if shutil.which(tool) is None:
            raise RunError(f"{what} needs `{tool}` on the host (scripts/install.sh installs it)")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")


# ----------------------------------------------------------------------------------------------
# The chroot


def _marker_path(root: Path) -> Path:
    return root / "etc" / "blkcmp-chroot.json"


def _read_marker(root: Path) -> dict:
    try:
        return json.loads(_marker_path(root).read_text())
    except (OSError, ValueError):
        return {}


def _configure_apt(root: Path) -> None:
    # The mirror's sid Release file can be older than this machine's clock: don't reject it.
    conf = root / "etc" / "apt" / "apt.conf.d" / "99blkcmp"
    conf.write_text(
        'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n'
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
        'Acquire::Retries "3";\n'
    )
    # Packages must not start daemons (udev!) inside the chroot.
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)


def _ensure_mount_points(root: Path) -> None:
    for mp in GUEST_MOUNT_POINTS:
        (root / mp.lstrip("/")).mkdir(parents=True, exist_ok=True)


def ensure_chroot(progress: Progress = print, suite: str = GUEST_SUITE) -> Path:
    """The Debian chroot of `suite` (sid: build environment and guest root), made if needed."""
    if suite not in TOOLCHAIN_SUITES:
        raise UsageError(f"toolchain must be one of {', '.join(TOOLCHAIN_SUITES)}, not {suite!r}")
    root = chroot_dir(suite)
    wanted = packages_for(suite)

    def ready() -> bool:
        marker = _read_marker(root) if root.is_dir() else {}
        return marker.get("packages") == wanted and bool(marker.get("toolchain"))

    if ready():
        _ensure_mount_points(root)
        return root
    _require_root("making the build chroot")
    with _locked(root.parent / f".{suite}.lock", f"chroot {suite}", progress), terminate_cleanly():
        if ready():  # another process made it while we waited
            _ensure_mount_points(root)
            return root
        marker = _read_marker(root) if root.is_dir() else {}
        log = logs_dir() / f"chroot-{suite}-{_now()}.log"
        step = _Step(log, progress, f"chroot {suite}")
        try:
            if root.is_dir() and marker:
                progress(f"chroot {suite}: package list changed, updating {root}")
                _install_packages(step, root, suite, wanted, progress)
                _ensure_mount_points(root)
            else:
                _create_chroot(step, root, suite, wanted, progress)
        finally:
            step.close()
        return root


def chroot_toolchain(suite: str) -> dict[str, str]:
    """The toolchain versions recorded when the chroot was made ({} when there is none)."""
    return dict(_read_marker(chroot_dir(suite)).get("toolchain", {}))


def _create_chroot(step: _Step, root: Path, suite: str, wanted: list[str], progress: Progress) -> None:
    mirror = debian_mirror()
    check_mirror(mirror or DEBOOTSTRAP_DEFAULT_MIRROR, suite)
    for stale in root.parent.glob(f".{suite}.partial-*"):
        _remove_tree(stale)
    if root.exists():  # a directory without our marker: not ours to trust
        _remove_tree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{suite}.partial-{os.getpid()}"
    started = time.monotonic()
    try:
        progress(
            f"chroot {suite}: debootstrap from {mirror or 'debootstrap default mirror'} "
            f"into {root} (~30 s; log {step.log})"
        )
        # debootstrap mounts /proc and /sys in the target itself: keep those mounts private.
        step.run(
            "debootstrap",
            _private_ns(
                [
                    "debootstrap",
                    "--variant=minbase",
                    "--include=ca-certificates",
                    suite,
                    str(tmp),
                    *([mirror] if mirror else []),
                ]
            ),
            ticker=lambda s: f"chroot {suite}: debootstrap still running ({s:.0f} s)",
        )
        _configure_apt(tmp)
        if suite != "sid":  # a stable suite: its point releases and security fixes too
            (tmp / "etc" / "apt" / "sources.list.d" / "blkcmp-updates.list").write_text(
                _updates_sources(suite)
            )
        _install_packages(step, tmp, suite, wanted, progress)
        _ensure_mount_points(tmp)
        tmp.rename(root)
    except BaseException:
        _remove_tree(tmp)
        raise
    progress(f"chroot {suite}: ready in {time.monotonic() - started:.0f} s")


def _install_packages(step: _Step, root: Path, suite: str, wanted: list[str], progress: Progress) -> None:
    progress(f"chroot {suite}: apt-get install {len(wanted)} packages (~1 min)")
    step.run("apt-get update", _in_chroot(root, ["apt-get", "update"]))
    step.run(
        "apt-get install",
        _in_chroot(root, ["apt-get", "install", "-y", "--no-install-recommends", *wanted]),
        ticker=lambda s: f"chroot {suite}: apt-get install still running ({s:.0f} s)",
    )
    step.run("apt-get clean", _in_chroot(root, ["apt-get", "clean"]))
    previous = _read_marker(root)
    marker = {
        "suite": suite,
        "packages": wanted,
        # Read once, here: nothing upgrades the chroot afterwards, so these are the versions
        # every kernel built in it is compiled with (and part of their cache keys).
        "toolchain": _toolchain(step, root),
        "created": previous.get("created") or _now(),
        "updated": _now(),
    }
    tmp = _marker_path(root).with_suffix(".tmp")
    tmp.write_text(json.dumps(marker, indent=1) + "\n")
    tmp.rename(_marker_path(root))


# ----------------------------------------------------------------------------------------------
# Kernel builds


def _virtme_fragment() -> str:
    """virtme-ng's own config fragment (virtio console, 9p, virtiofs, ...)."""
    candidates = [Path(sys.executable).parent / "virtme-configkernel"]
    found = shutil.which("virtme-configkernel")
    if found:
        candidates.append(Path(found))
    exe = next((c for c in candidates if c.exists()), None)
    if exe is None:
        raise RunError(
            "virtme-ng is not installed (pip install 'blkcmp[vm]'): its kernel config fragment is needed"
        )
    env = dict(os.environ, PATH=f"{exe.parent}:{os.environ.get('PATH', '')}")
    res = subprocess.run(
        [str(exe), "--arch", "x86_64", "--defconfig", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=60,
    )
    if res.returncode != 0 or "CONFIG_" not in res.stdout:
        raise RunError(
            "virtme-configkernel --defconfig --dry-run failed: "
            + (res.stderr.strip().splitlines() or ["no output"])[-1]
        )
    return res.stdout


def security_mirror(mirror: str | None) -> str | None:
    """Debian's security archive: $BLKCMP_DEBIAN_SECURITY_MIRROR, the host's own, or the
    mirror's sibling `…/debian-security`."""
    forced = os.environ.get("BLKCMP_DEBIAN_SECURITY_MIRROR", "").strip()
    if forced:
        return forced.rstrip("/")
    for uri, suites in _host_apt_uris():
        if any(x.endswith("-security") for x in suites):
            return uri.rstrip("/")
    base = mirror or DEBOOTSTRAP_DEFAULT_MIRROR
    return base[: -len("/debian")] + "/debian-security" if base.endswith("/debian") else None


def _updates_sources(suite: str) -> str:
    mirror = debian_mirror() or DEBOOTSTRAP_DEFAULT_MIRROR
    lines = [f"deb {mirror} {suite}-updates main"]
    sec = security_mirror(mirror)
    if sec:
        lines.append(f"deb {sec} {suite}-security main")
    return "\n".join(lines) + "\n"


def _stable_sources() -> str:
    mirror = debian_mirror() or DEBOOTSTRAP_DEFAULT_MIRROR
    lines = [f"deb {mirror} trixie main", f"deb {mirror} trixie-updates main"]
    sec = security_mirror(mirror)
    if sec:
        lines.append(f"deb {sec} trixie-security main")
    return "\n".join(lines) + "\n"


_STABLE_PIN = """\
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=trixie-updates
Pin-Priority: 100

Package: *
Pin: release n=trixie-security
Pin-Priority: 100
"""


_SID_PIN = """\
Package: *
Pin: release n=sid
Pin-Priority: 100
"""


def _candidate(step: _Step, root: Path, package: str) -> str | None:
    out = step.run(
        f"apt-cache policy {package}", _in_chroot(root, ["apt-cache", "policy", package]), capture=True
    )
    m = re.search(r"Candidate:\s*(\S+)", out)
    return m.group(1) if m and m.group(1) != "(none)" else None


def _install_source(step: _Step, root: Path, version: str, label: str, progress: Progress) -> str:
    """Install linux-source-<version>, from sid or else Debian stable; its Debian version."""
    package = f"linux-source-{version}"
    progress(f"kernel {label}: apt-get install {package}")
    step.run("apt-get update", _in_chroot(root, ["apt-get", "update"]))
    cand = _candidate(step, root, package)
    suite = _read_marker(root).get("suite", GUEST_SUITE)
    # Only what is asked by name comes from the other suite (pinned low): a linux-source-X.Y that
    # sid no longer carries comes from trixie, one trixie never had (7.2) from sid.
    other = "trixie" if suite == "sid" else "sid"
    extra = root / "etc" / "apt" / "sources.list.d" / f"blkcmp-{other}.list"
    if cand is None and not extra.exists():
        progress(f"kernel {label}: {suite} has no {package}; adding {other} (pinned low) to look")
        extra.write_text(
            _stable_sources()
            if other == "trixie"
            else f"deb {debian_mirror() or DEBOOTSTRAP_DEFAULT_MIRROR} sid main\n"
        )
        (root / "etc" / "apt" / "preferences.d" / f"blkcmp-{other}").write_text(
            _STABLE_PIN if other == "trixie" else _SID_PIN
        )
        step.run("apt-get update", _in_chroot(root, ["apt-get", "update"]))
        cand = _candidate(step, root, package)
    if cand is None:
        raise UsageError(
            f"Debian has no {package} (looked in {suite} and {other}); cannot build kernel {version}"
        )
    step.run(
        f"apt-get install {package}",
        _in_chroot(root, ["apt-get", "install", "-y", "--no-install-recommends", package]),
        ticker=lambda s: f"kernel {label}: downloading {package} ({s:.0f} s)",
    )
    step.run("apt-get clean", _in_chroot(root, ["apt-get", "clean"]))
    out = step.run(
        "dpkg-query", _in_chroot(root, ["dpkg-query", "-W", "-f=${Version}", package]), capture=True
    )
    return out.strip().splitlines()[-1] if out.strip() else cand


_TOOLCHAIN_SCRIPT = r"""
v() { "$@" 2>/dev/null | head -n1; }
echo "gcc=$(gcc -dumpfullversion 2>/dev/null)"
echo "as=$(v as --version | sed 's/.* //')"
echo "ld=$(v ld --version | sed 's/.* //')"
echo "rustc=$(v rustc --version | cut -d' ' -f2)"
echo "bindgen=$(v bindgen --version | cut -d' ' -f2)"
echo "clang=$(v clang --version | sed 's/.*version //; s/ .*//')"
echo "libclang=$(dpkg-query -W -f='${Package} ${Version}
' 'libclang1-*' 2>/dev/null | sort | tail -n1 | cut -d' ' -f2)"
"""
TOOLCHAIN_KEYS: tuple[str, ...] = ("gcc", "as", "ld", "rustc", "bindgen", "clang", "libclang")


def _toolchain(step: _Step, root: Path) -> dict[str, str]:
    """Exact versions of the compiler, assembler, linker, rustc, bindgen and libclang."""
    out = step.run("toolchain versions", _in_chroot(root, ["sh", "-c", _TOOLCHAIN_SCRIPT]), capture=True)
    tools = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in TOOLCHAIN_KEYS and value.strip():
            tools[key] = value.strip()
    return tools


def toolchain_text(toolchain: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {toolchain[k]}" for k in TOOLCHAIN_KEYS if k in toolchain) or "unknown"


def build_key(
    suite: str, toolchain: Mapping[str, str], virtme_fragment: str, overflow_checks: bool, extra: str = ""
) -> str:
    """Eight hex digits over everything that makes two builds of one source differ."""
    import hashlib

    blob = json.dumps(
        {
            "recipe": RECIPE_VERSION,
            "base": config_base(),
            "suite": suite,
            "toolchain": dict(sorted(toolchain.items())),
            "guest": GUEST_FRAGMENT,
            "virtme": virtme_fragment,
            "fragment": CONFIG_FRAGMENT,
            "overflow": overflow_checks,
            "extra": extra,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def _cache_hit(version: str | None, overflow_checks: bool, suite: str, key: str | None) -> KernelInfo | None:
    """The cached build with this key; `version` None for a source whose version is read from
    its tree (the key covers the tree itself)."""
    if key is None:
        return None
    hits = [
        i
        for i in list_cached()
        if (version is None or i.version == version)
        and i.overflow_checks == overflow_checks
        and i.suite == suite
        and i.key == key
    ]
    return max(hits, key=lambda i: release_key(i.release)) if hits else None


def _current_key(suite: str, overflow_checks: bool, extra: str = "") -> str | None:
    """The cache key a build would get now; None while the chroot (its toolchain) is missing.
    `extra`: what the source adds (kernel_source.Source.key_extra / base_extra)."""
    toolchain = chroot_toolchain(suite)
    if not toolchain:
        return None
    return build_key(suite, toolchain, _virtme_fragment(), overflow_checks, extra)


def _source_version(source: kernel_source.Source) -> str | None:
    """X.Y of the source before it is unpacked: asked (Debian) or read from a tree's Makefile;
    None for a tarball (read after unpacking)."""
    if source.version is not None:
        return source.version
    if source.kind in ("git", "dir"):
        major, minor, _ = kernel_source.tree_version(Path(source.location))
        return f"{major}.{minor}"
    return None


def build(
    version: str | None,
    *,
    progress: Progress = print,
    overflow_checks: bool = True,
    jobs: int | None = None,
    toolchain: str | None = None,
    source: kernel_source.Source | None = None,
) -> KernelInfo:
    """Build (or find in the cache) a test kernel from Debian's linux-source-<version>, or from
    `source` (the user's tree, a tarball, or Debian's source with patches and a fragment).

    `toolchain` is the Debian suite whose compilers build it (default per version, see
    DEFAULT_TOOLCHAIN). `overflow_checks=False` builds the variant without
    CONFIG_RUST_OVERFLOW_CHECKS. A kernel is cached only after a smoke boot showed both drivers
    at the expected interface. Raises UsageError for a malformed version or toolchain or one
    Debian does not ship, a tree without rnull or a patch that does not apply, RunError (one
    line, with the log path) when a step fails.
    """
    if source is None:
        if version is None or not _VERSION_RE.match(version.strip()):
            raise UsageError(f"kernel version must look like 7.2 or 6.12, not {version!r}")
        source = kernel_source.from_request(version.strip(), None)
    if source.kind == "debian":
        assert source.version is not None
        if not _VERSION_RE.match(source.version):
            raise UsageError(f"kernel version must look like 7.2 or 6.12, not {source.version!r}")
    elif source.kind in ("git", "dir") and not kernel_source.has_rnull(Path(source.location)):
        raise UsageError(_no_rnull(source, kernel_source.tree_version(Path(source.location))))
    version = _source_version(source)
    suite = toolchain or (default_toolchain(version) if version else FALLBACK_TOOLCHAIN)
    if suite not in TOOLCHAIN_SUITES:
        raise UsageError(f"toolchain must be one of {', '.join(TOOLCHAIN_SUITES)}, not {suite!r}")
    label = (source.label or version or "kernel") + ("" if overflow_checks else NO_OVERFLOW_SUFFIX)
    hit_version = version if source.plain else None
    hit = _cache_hit(
        hit_version, overflow_checks, suite, _current_key(suite, overflow_checks, source.key_extra())
    )
    if hit is not None:
        progress(f"kernel {label}: cached ({hit.name}, {hit.path}); nothing to build")
        return hit
    _require_root(f"building kernel {label}")
    with _locked(kernels_dir() / ".build.lock", f"kernel {label}", progress):
        guest_root = ensure_chroot(progress, GUEST_SUITE)  # the smoke boot needs it too
        root = ensure_chroot(progress, suite)
        key = _current_key(suite, overflow_checks, source.key_extra())
        base_key = _current_key(suite, overflow_checks, source.base_extra())
        hit = _cache_hit(hit_version, overflow_checks, suite, key)  # built while we waited
        if hit is not None:
            progress(f"kernel {label}: cached ({hit.name}, {hit.path}); nothing to build")
            return hit
        assert key is not None and base_key is not None and guest_root.is_dir()
        with _locked(root.parent / f".{suite}.lock", f"chroot {suite}", progress), terminate_cleanly():
            return _build_locked(
                source,
                label,
                root,
                suite,
                key,
                base_key,
                progress,
                overflow_checks,
                jobs or len(os.sched_getaffinity(0)),
            )


def _build_locked(
    source: kernel_source.Source,
    label: str,
    root: Path,
    suite: str,
    key: str,
    base_key: str,
    progress: Progress,
    overflow_checks: bool,
    jobs: int,
) -> KernelInfo:
    kdir = kernels_dir()
    kdir.mkdir(parents=True, exist_ok=True)
    # Leftovers of interrupted builds (we hold the lock, so nobody else is using them).
    for stale in list(kdir.glob(".partial-*")) + list((root / "var" / "tmp").glob("blkcmp-build-*")):
        _remove_tree(stale)
    log = logs_dir() / f"build-{label}-{_now()}.log"
    step = _Step(log, progress, f"kernel build {label}")
    # Every build of one base happens at the same path, <trees>/<base key>/tree: the kernel's
    # host tools (objtool) record absolute paths, and a moved tree rebuilds everything.
    trees_dir = root / "var" / "tmp" / "blkcmp-trees"
    trees_dir.mkdir(parents=True, exist_ok=True)
    kept = kernel_source.kept_tree(trees_dir, base_key)
    tree = kept.tree
    stages: dict[str, float] = {}
    started = time.monotonic()
    patches_failed = False
    try:
        t = time.monotonic()
        source_version = None
        reused = _reuse_tree(step, root, kept, label, progress)
        if not reused:
            source_version = _fresh_tree(step, root, source, kept, label, progress)
        elif source.kind == "debian":
            source_version = _installed_version(step, root, f"linux-source-{source.version}")
        tree_rel = "/" + str(tree.relative_to(root))
        stages["source"] = time.monotonic() - t
        major, minor, sub = kernel_source.tree_version(tree)
        version = f"{major}.{minor}"
        if source.kind == "debian" and version != source.version:
            raise RunError(
                f"kernel build {label}: linux-source-{source.version} unpacked as {major}.{minor}.{sub}"
            )
        if not kernel_source.has_rnull(tree):
            raise UsageError(_no_rnull(source, (major, minor, sub)))

        def in_tree(cmd: str) -> list[str]:
            return _in_chroot(root, ["sh", "-c", f"cd {tree_rel} && {cmd}"])

        if source.patches:
            t = time.monotonic()
            try:
                _apply_patches(step, root, source, tree, label, progress)
            except UsageError:
                # back at its base: a built tree still serves the next build of it
                patches_failed = reused
                raise
            stages["patch"] = time.monotonic() - t

        t = time.monotonic()
        base = config_base()
        if reused:
            progress(f"kernel {label}: configuration kept with the build tree (same base and fragment)")
        else:
            progress(f"kernel {label}: configuring ({base} + guest needs + virtme-ng + blkcmp fragment)")
            step.run(f"make {base}", in_tree(f"make ARCH=x86_64 {base}"))
            fragment = GUEST_FRAGMENT + _virtme_fragment() + CONFIG_FRAGMENT
            if not overflow_checks:
                fragment += "# CONFIG_RUST_OVERFLOW_CHECKS is not set\n"
            if source.fragment:
                fragment += f"# from {source.fragment_path}\n" + source.fragment.rstrip("\n") + "\n"
            step.note("config fragment appended:\n" + fragment)
            with open(tree / ".config", "a") as f:
                f.write("\n" + fragment)
            step.run("make olddefconfig", in_tree("make ARCH=x86_64 olddefconfig"))
        config_text = (tree / ".config").read_text(errors="replace")
        config = parse_config(config_text, RECORDED_SYMBOLS)
        guest_config = parse_config(config_text, GUEST_SYMBOLS)
        for sym in GUEST_SYMBOLS:
            if guest_config.get(sym) != "y":
                raise RunError(
                    f"kernel build {label}: {sym} came out "
                    f"{guest_config.get(sym, 'missing')}, not y: the guest cannot "
                    f"boot without it (log: {log})"
                )
        for sym in REQUIRED_SYMBOLS:
            if config.get(sym) != "y":
                detail = ""
                if sym == "CONFIG_RUST" or config.get("CONFIG_RUST") != "y":
                    detail = "; " + _rust_wanted(step, root, suite, in_tree, log)
                raise RunError(
                    f"kernel build {label}: {sym} came out "
                    f"{config.get(sym, 'missing')}, not y{detail} (log: {log})"
                )
        want_oc = "y" if overflow_checks else "n"
        if config.get("CONFIG_RUST_OVERFLOW_CHECKS", "n") != want_oc:
            raise RunError(
                f"kernel build {label}: CONFIG_RUST_OVERFLOW_CHECKS came out "
                f"{config.get('CONFIG_RUST_OVERFLOW_CHECKS', 'missing')}, "
                f"not {want_oc} (log: {log})"
            )
        # A build that is not Debian's plain source carries its label in `uname -r`, so its
        # runs never share a kernel release with the plain build of the same version.
        localversion = "" if source.plain else f" LOCALVERSION=-{source.label}"
        release = (
            step.run("make kernelrelease", in_tree(f"make -s kernelrelease{localversion}"), capture=True)
            .strip()
            .splitlines()[-1]
            .strip()
        )
        name = f"{release}{'' if overflow_checks else NO_OVERFLOW_SUFFIX}-{suite}-{key}"
        toolchain = chroot_toolchain(suite)
        stages["config"] = time.monotonic() - t
        progress(f"kernel {label}: release {release}, {suite} toolchain: " + toolchain_text(toolchain))

        t = time.monotonic()
        counter = {"n": 0, "last": ""}

        def tick(line: str) -> None:
            m = _COMPILE_RE.match(line)
            if m:
                counter["n"] += 1
                counter["last"] = m.group(2)

        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        expect = "only what the patches touched" if reused else "~6 min on 2 cores"
        progress(f"kernel {label}: make -j{jobs} bzImage ({expect}; log {log})")
        step.run(
            f"make -j{jobs} bzImage",
            in_tree(f"make ARCH=x86_64 -j{jobs} bzImage{localversion}"),
            tick=tick,
            ticker=lambda s: (
                f"kernel {label}: make {s / 60:.1f} min, "
                f"{counter['n']} files compiled, last {counter['last']}"
            ),
        )
        stages["make"] = time.monotonic() - t
        # CPU seconds of make and the compilers: comparable between a quiet and a busy machine,
        # where wall time is not.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        make_cpu = (after.ru_utime + after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        bz = tree / "arch" / "x86" / "boot" / "bzImage"
        if not bz.is_file():
            raise RunError(f"kernel build {label}: make succeeded but produced no bzImage (log: {log})")

        staging = kdir / f".partial-{name}-{os.getpid()}"
        staging.mkdir()
        shutil.copy2(bz, staging / "bzImage")
        shutil.copy2(tree / ".config", staging / ".config")
        meta = {
            "format": 2,
            "name": name,
            "label": source.label or version,
            "release": release,
            "version": version,
            "overflow_checks": overflow_checks,
            "source_package": f"linux-source-{version}" if source.kind == "debian" else None,
            "source_version": source_version,
            "source": source.to_dict(),
            "reused_build_tree": reused,
            "toolchain_suite": suite,
            "toolchain": toolchain,
            "key": key,
            "config_base": base,
            "make_cpu_seconds": round(make_cpu, 1),
            "files_compiled": counter["n"],
            "recipe": RECIPE_VERSION,
            "config": config,
            "chroot": suite,
            "make_jobs": jobs,
            "built_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
            "bzimage_size": bz.stat().st_size,
        }
        t = time.monotonic()
        smoke = _smoke_boot(staging, version, label, toolchain, progress, log)
        stages["smoke_boot"] = time.monotonic() - t
        meta["drivers"] = smoke.pop("drivers")
        meta["smoke_boot"] = smoke
        meta["stage_seconds"] = {k: round(v, 1) for k, v in stages.items()}
        meta["build_seconds"] = round(time.monotonic() - started, 1)
        (staging / "kernel.json").write_text(json.dumps(meta, indent=1) + "\n")
        step.note(f"built {name} in {meta['build_seconds']} s")
        step.close()
        shutil.copy2(log, staging / "build.log")
        final = kdir / name
        if final.exists():  # same release built again (e.g. from a different request)
            old = kdir / f".partial-old-{name}-{os.getpid()}"
            final.rename(old)
            staging.rename(final)
            _remove_tree(old)
        else:
            staging.rename(final)
        # The tree stays for the next build of the same base (2.6 GiB; MAX_KEPT_TREES of them).
        kept.mark(source.patches, source)
        for old in kernel_source.least_recently_used(trees_dir, keep=kept):
            _remove_tree(old)
    except BaseException:
        for partial in kdir.glob(f".partial-*-{os.getpid()}"):
            _remove_tree(partial)
        if patches_failed:
            kept.mark((), source)
        else:  # a tree in an unknown state: the log says what happened
            _remove_tree(kept.root)
        raise
    finally:
        step.close()
    info = _info_from_entry(final)
    assert info is not None
    how = " (from the kept build tree)" if reused else ""
    progress(
        f"kernel {label}: built {name} in {meta['build_seconds'] / 60:.1f} min{how} "
        f"({info.bzimage_size / 2**20:.1f} MiB, {counter['n']} files compiled) -> {final}"
    )
    return info


def _no_rnull(source: kernel_source.Source, version: tuple[int, int, int]) -> str:
    return (
        f"--source {source.location}: Linux {'.'.join(map(str, version))} without rnull "
        "(no BLK_DEV_RUST_NULL in drivers/block/**/Kconfig; mainline has it since 6.11)"
    )


def _installed_version(step: _Step, root: Path, package: str) -> str | None:
    out = step.run(
        "dpkg-query", _in_chroot(root, ["dpkg-query", "-W", "-f=${Version}", package]), capture=True
    )
    return out.strip().splitlines()[-1] if out.strip() else None


def _fresh_tree(
    step: _Step,
    root: Path,
    source: kernel_source.Source,
    kept: kernel_source.KeptTree,
    label: str,
    progress: Progress,
) -> str | None:
    """Unpack Debian's source, or copy/unpack the user's, as the kept tree's `tree` (not marked
    usable until a build succeeds); the Debian version of the source package or None."""
    if kept.root.exists():
        _remove_tree(kept.root)
    incoming = kept.root / "incoming"
    incoming.mkdir(parents=True)
    if source.kind != "debian":
        progress(f"kernel {label}: copying {source.describe()} into the {root.name} chroot")
        kernel_source.place(source, incoming).rename(kept.tree)
        _remove_tree(incoming)
        return None
    assert source.version is not None
    source_version = _install_source(step, root, source.version, label, progress)
    package = f"linux-source-{source.version}"
    tarball = f"/usr/src/{package}.tar.xz"
    if not (root / tarball.lstrip("/")).exists():
        raise RunError(f"kernel build {label}: {package} {source_version} has no {tarball} (log: {step.log})")
    progress(f"kernel {label}: unpacking {package} {source_version} (~15 s)")
    step.run("unpack", _in_chroot(root, ["tar", "-xf", tarball, "-C", "/" + str(incoming.relative_to(root))]))
    trees = [p for p in incoming.iterdir() if p.is_dir()]
    if len(trees) != 1:
        raise RunError(f"kernel build {label}: unexpected layout of {tarball} (log: {step.log})")
    trees[0].rename(kept.tree)
    _remove_tree(incoming)
    return source_version


def _reuse_tree(
    step: _Step, root: Path, kept: kernel_source.KeptTree, label: str, progress: Progress
) -> bool:
    """Whether the kept build tree of this base can be built again: its patches are reverted in
    place and it is marked in use (unusable until this build succeeds). False when there is none
    or it does not revert cleanly (then it is dropped)."""
    if not kept.usable():
        return False
    applied = kept.applied()
    progress(
        f"kernel {label}: reusing the kept build tree {kept.root.name}"
        + (f" (reverting {len(applied)} patch(es) first)" if applied else "")
    )
    tree_rel = "/" + str(kept.tree.relative_to(root))
    try:
        for patch in reversed(applied):
            step.run(
                f"revert {patch.name}",
                _in_chroot(
                    root,
                    [
                        "patch",
                        "-d",
                        tree_rel,
                        "-p1",
                        "-R",
                        "--batch",
                        "-i",
                        "/" + str(patch.relative_to(root)),
                    ],
                ),
            )
    except RunError:
        progress(f"kernel {label}: the kept tree does not revert cleanly; starting from the source")
        _remove_tree(kept.root)
        return False
    kept.unmark()
    return True


def _apply_patches(
    step: _Step,
    root: Path,
    source: kernel_source.Source,
    tree: Path,
    label: str,
    progress: Progress,
) -> None:
    """Apply the patches in order; one that does not apply is a UsageError, with the ones before
    it reverted (so the tree is back at its base). Each is tried with --dry-run first: a
    half-applied patch is never left behind."""
    tree_rel = "/" + str(tree.relative_to(root))
    applied: list[str] = []

    def patch(args: list[str], copy: str, what: str) -> None:
        step.run(what, _in_chroot(root, ["patch", "-d", tree_rel, "-p1", "--batch", *args, "-i", copy]))

    for i, p in enumerate(source.patches):
        copy = tree.parent / f"incoming-{i:02d}-{p.name}"
        shutil.copy2(p.path, copy)
        in_root = "/" + str(copy.relative_to(root))
        progress(f"kernel {label}: applying {p.name}")
        try:
            patch(["--forward", "--dry-run"], in_root, f"patch --dry-run {p.name}")
        except RunError:
            for done in reversed(applied):
                patch(["-R"], done, f"revert {Path(done).name}")
            before = f" after {', '.join(x.name for x in source.patches[:i])}" if i else ""
            raise UsageError(
                f"--patch {p.path}: does not apply to {source.location}{before} "
                f"(patch -p1 --dry-run failed; log: {step.log})"
            ) from None
        patch(["--forward"], in_root, f"patch {p.name}")
        applied.append(in_root)


def _rust_wanted(step: _Step, root: Path, suite: str, in_tree, log: Path) -> str:
    """Why Rust came out off: what the tree wants of rustc and bindgen, what the chroot has, and
    `make rustavailable`'s own words."""
    wanted = {}
    for tool in ("rustc", "bindgen"):
        try:
            out = step.run(f"min {tool}", in_tree(f"scripts/min-tool-version.sh {tool}"), capture=True)
            wanted[tool] = out.strip().splitlines()[-1] if out.strip() else "?"
        except RunError:
            wanted[tool] = "?"
    have = chroot_toolchain(suite)
    try:
        out = step.run("make rustavailable", in_tree("make rustavailable"), capture=True)
    except RunError:
        out = _tail(log, 6)
    said = " / ".join(ln.strip() for ln in out.splitlines() if ln.strip())[-300:]
    return (
        f"the tree wants rustc >= {wanted['rustc']} and bindgen >= {wanted['bindgen']}, the {suite} "
        f"chroot has rustc {have.get('rustc', '?')} and bindgen {have.get('bindgen', '?')}; "
        f"make rustavailable: {said}"
    )


def rnull_interface(version: str) -> str:
    """Where rnull lives on a kernel of this version: configfs from 6.18, the fixed device before."""
    major, minor = (int(x) for x in version.split(".")[:2])
    return "configfs" if (major, minor) >= (6, 18) else "rnullb0"


_SMOKE_SCRIPT = r"""
out=/smoke
udevadm settle 2>/dev/null
[ -e /sys/kernel/config/nullb/features ] && echo yes > $out/null_blk
[ -d /sys/kernel/config/rnull ] && echo yes > $out/rnull_configfs
[ -b /dev/rnullb0 ] && echo yes > $out/rnullb0
cat /sys/kernel/config/nullb/features > $out/null_blk_features 2>/dev/null
cat /sys/kernel/config/rnull/features > $out/rnull_features 2>/dev/null
# the attribute files a device directory offers: what the driver really accepts (some rnull
# versions garble their `features` string)
for d in nullb rnull; do
  [ -d /sys/kernel/config/$d ] || continue
  mkdir /sys/kernel/config/$d/blkcmp-probe 2>/dev/null || continue
  ls /sys/kernel/config/$d/blkcmp-probe > $out/${d}_attributes
  rmdir /sys/kernel/config/$d/blkcmp-probe
done
uname -r > $out/uname
exit 0
"""


def _driver_facts(out: Path) -> dict:
    """What the smoke boot saw of each driver: its interface, configfs `features` and the
    attribute files of a device directory (`attributes`, what the driver really accepts), so a
    workload's driver options can be checked on the host before a VM campaign is created."""

    def features(name: str) -> list[str]:
        f = out / name
        return sorted(x for x in f.read_text().strip().split(",") if x) if f.is_file() else []

    def attributes(name: str) -> list[str]:
        f = out / name
        return sorted(f.read_text().split()) if f.is_file() else []

    seen = {f.name for f in out.iterdir()}
    drivers: dict = {}
    if "null_blk" in seen:
        drivers["null_blk"] = {
            "interface": "configfs",
            "features": features("null_blk_features"),
            "attributes": attributes("nullb_attributes"),
        }
    if "rnull_configfs" in seen:
        drivers["rnull"] = {
            "interface": "configfs",
            "features": features("rnull_features"),
            "attributes": attributes("rnull_attributes"),
        }
    elif "rnullb0" in seen:
        drivers["rnull"] = {"interface": "fixed", "features": [], "attributes": []}
    return drivers


def driver_facts(info: KernelInfo, progress: Progress = print) -> dict | None:
    """The drivers a cached kernel offers (recorded by its smoke boot). An entry cached before
    they (or their attribute files) were recorded is booted once now and its kernel.json completed; None for a kernel that
    is not in the cache (a bzImage of the user's: only the guest can tell)."""
    if not info.cached:
        return None
    meta_path = info.path / "kernel.json"
    meta = json.loads(meta_path.read_text())
    if "drivers" in meta and all("attributes" in d for d in meta["drivers"].values()):
        return meta["drivers"]
    from bench import vm

    progress(f"kernel {info.name}: one boot to record which driver options it offers")
    from bench import ledger

    with ledger.temporary_directory("blkcmp-facts-") as tmp:
        out = Path(tmp) / "smoke"
        out.mkdir()
        vm.run_in_guest(
            info.bzimage,
            _SMOKE_SCRIPT,
            rw_dirs={"/smoke": out},
            timeout_s=300,
            console_log=Path(tmp) / "console.log",
        )
        meta["drivers"] = _driver_facts(out)
    tmp_meta = meta_path.with_suffix(".json.tmp")
    tmp_meta.write_text(json.dumps(meta, indent=1) + "\n")
    tmp_meta.rename(meta_path)
    return meta["drivers"]


def _smoke_boot(
    staging: Path, version: str, label: str, toolchain: Mapping[str, str], progress: Progress, log: Path
) -> dict:
    """Boot the fresh kernel once (retrying chance early-boot failures) and check that null_blk
    and rnull are there at the interface this version should have. A kernel that fails is moved
    to <cache>/kernels/.failed/ with its console logs, never cached."""
    from bench import vm

    interface = rnull_interface(version)
    bz = staging / "bzImage"
    out = staging / "smoke"
    out.mkdir()
    progress(f"kernel {label}: smoke boot (null_blk and rnull at {interface})")
    problem: str | None = None
    result = None
    try:
        result = vm.run_in_guest(
            bz,
            _SMOKE_SCRIPT,
            rw_dirs={"/smoke": out},
            timeout_s=300,
            console_log=staging / "smoke-console.log",
        )
    except vm.BootFailed as exc:
        problem = f"never booted: {exc.oops_line or exc.reason}"
    except RunError as exc:
        problem = f"smoke boot failed: {exc}"
    if problem is None:
        assert result is not None
        seen = {f.name for f in out.iterdir()}
        if "null_blk" not in seen:
            problem = "booted without null_blk's configfs interface (/sys/kernel/config/nullb)"
        elif interface == "configfs" and "rnull_configfs" not in seen:
            problem = "booted without rnull's configfs interface (/sys/kernel/config/rnull)"
        elif interface == "rnullb0" and "rnullb0" not in seen:
            problem = "booted without rnull's fixed device /dev/rnullb0"
        elif result.exit_code != 0:
            problem = f"smoke command exited {result.exit_code}"
    if problem is not None:
        aside = kernels_dir() / ".failed" / f"{staging.name.removeprefix('.partial-')}-{_now()}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(log, staging / "build.log")
        staging.rename(aside)
        raise RunError(
            f"kernel build {label}: {problem}; toolchain {toolchain_text(toolchain)}; "
            f"not cached, kept aside in {aside}"
        )
    assert result is not None
    drivers = _driver_facts(out)
    shutil.rmtree(out)
    return {
        "drivers": drivers,
        "ok": True,
        "rnull_interface": interface,
        "accel": result.accel,
        "attempts": len(result.boot_failures) + 1,
        "failed_boots": [f.to_dict() for f in result.boot_failures],
        "console_log": result.console_log.name,
    }


def _tail(log: Path, n: int) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
