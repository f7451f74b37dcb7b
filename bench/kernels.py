"""Test kernels with both null_blk and rnull built in, made from Debian's kernel sources.

The development machine's own kernel has neither driver, so blkcmp builds its own: one Debian sid
chroot (made with debootstrap) holds the toolchain (gcc, rustc, bindgen, libclang) and Debian's
`linux-source-X.Y` package; the kernel is configured with x86_64_defconfig + virtme-ng's fragment
+ ours, built there, and only `bzImage`, `.config`, `build.log` and a small `kernel.json` are kept,
in `<cache>/kernels/<release>/`. The same chroot is also the guest's root filesystem
(see bench.vm), which is why the guest-side runtime (fio, udev, Python) is installed in it too.

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

from bench.procs import signals_raise
from bench.errors import RunError, UsageError

Progress = Callable[[str], None]

CHROOT_SUITE = "sid"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"

# Build environment + what the guest needs at run time (this chroot is also the guest's root).
CHROOT_PACKAGES: tuple[str, ...] = (
    # kernel build
    "build-essential", "flex", "bison", "bc", "libelf-dev", "libssl-dev", "cpio", "python3",
    "rustc", "rust-src", "bindgen", "libclang-dev", "clang", "lld", "llvm", "kmod",
    "xz-utils", "zstd",
    # guest runtime: udev (vng returns the script's exit code only with it), fio, lsblk & co
    "udev", "fio", "util-linux", "procps",
    # blkcmp's own Python runtime inside the guest
    "python3-yaml", "python3-pydantic", "python3-rich", "python3-psutil", "python3-numpy",
    "python3-scipy",
)

# Guest mount points: virtme-ng silently mounts nothing when the mount point is missing.
GUEST_MOUNT_POINTS: tuple[str, ...] = ("/results", "/blkcmp")

# Symbols that must come out =y, else the kernel is useless for blkcmp.
REQUIRED_SYMBOLS: tuple[str, ...] = (
    "CONFIG_RUST", "CONFIG_CONFIGFS_FS", "CONFIG_BLK_DEV_NULL_BLK", "CONFIG_BLK_DEV_RUST_NULL",
)
# Symbols recorded with the kernel (and so with every result): they change what a number means.
RECORDED_SYMBOLS: tuple[str, ...] = REQUIRED_SYMBOLS + (
    "CONFIG_RUST_OVERFLOW_CHECKS", "CONFIG_RUST_DEBUG_ASSERTIONS", "CONFIG_IO_URING", "CONFIG_AIO",
    "CONFIG_PREEMPT_NONE", "CONFIG_PREEMPT_VOLUNTARY", "CONFIG_PREEMPT", "CONFIG_PREEMPT_DYNAMIC",
    "CONFIG_HZ", "CONFIG_NR_CPUS", "CONFIG_MQ_IOSCHED_DEADLINE", "CONFIG_BLK_DEV_INTEGRITY",
    "CONFIG_KVM_GUEST", "CONFIG_PARAVIRT", "CONFIG_DEBUG_INFO_NONE", "CONFIG_KASAN",
    "CONFIG_LOCKDEP", "CONFIG_DEBUG_PREEMPT",
)

# On top of x86_64_defconfig and virtme-ng's fragment. Later lines win in .config, so this
# also switches off what virtme-ng turns on for desktop use (DRM, sound) to save build time.
CONFIG_FRAGMENT = """\
CONFIG_RUST=y
CONFIG_CONFIGFS_FS=y
CONFIG_BLK_DEV_NULL_BLK=y
CONFIG_BLK_DEV_RUST_NULL=y
CONFIG_IO_URING=y
CONFIG_AIO=y
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
"""

NO_OVERFLOW_SUFFIX = "-nooverflow"
PROGRESS_EVERY_S = 30.0
_VERSION_RE = re.compile(r"^\d+\.\d+$")
_CHROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# make's quiet-mode lines for a compiled object ("  CC      drivers/block/null_blk/main.o").
# Rust objects say which flavour ("  RUSTC L rust/ffi.o"), module objects "[M]".
_COMPILE_RE = re.compile(
    r"^\s+(CC|RUSTC|AS|HOSTCC|HOSTCXX|HOSTRUSTC|BINDGEN)(?: \[M\]| [A-Z])?\s+(\S+)\s*$")


# ----------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class KernelInfo:
    """A bootable test kernel: a cache entry, or any bzImage the user points at."""

    name: str  # cache entry name: the release, plus "-nooverflow" for that variant
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
    built_at: str | None = None
    build_seconds: float | None = None
    cached: bool = False  # True when it lives in blkcmp's cache

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
        d["path"] = str(self.path)
        d["overflow_checks"] = self.overflow_checks
        return d


def cache_dir() -> Path:
    """Where blkcmp keeps chroots and kernels: $BLKCMP_CACHE, else ~/.cache/blkcmp."""
    env = os.environ.get("BLKCMP_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "blkcmp"


def kernels_dir() -> Path:
    return cache_dir() / "kernels"


def chroot_dir() -> Path:
    return cache_dir() / "chroots" / CHROOT_SUITE


def logs_dir() -> Path:
    return cache_dir() / "logs"


def parse_config(text: str, symbols: tuple[str, ...] | None = None) -> dict[str, str]:
    """Symbol -> value from a .config text ("n" for `# CONFIG_X is not set`)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if m:
            name, value = m.group(1), m.group(2)
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
        else:
            m = re.match(r"^# (CONFIG_\w+) is not set$", line)
            if not m:
                continue
            name, value = m.group(1), "n"
        if symbols is None or name in symbols:
            out[name] = value
    return out


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
    raw = head[start:start + 256].split(b"\0", 1)[0].decode("ascii", "replace")
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
        built_at=meta.get("built_at"),
        build_seconds=meta.get("build_seconds"),
        cached=True,
    )


def _version_key(s: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"[.\-+~]", s))


def list_cached() -> list[KernelInfo]:
    """Kernels in the cache, oldest version first (entries being built are not listed)."""
    root = kernels_dir()
    if not root.is_dir():
        return []
    infos = [
        info for entry in root.iterdir()
        if entry.is_dir() and not entry.name.startswith(".")
        and (info := _info_from_entry(entry)) is not None
    ]
    return sorted(infos, key=lambda i: (_version_key(i.release), i.name))


def resolve(spec: str) -> KernelInfo:
    """A kernel from a version ("7.2"), a cache entry name ("7.2.13", "7.2.13-nooverflow",
    "7.2-nooverflow") or a path to a bzImage (or to a directory holding one)."""
    spec = spec.strip()
    if not spec:
        raise UsageError("empty kernel name; give a version such as 7.2 or a path to a bzImage")
    cached = list_cached()
    for info in cached:
        if info.name == spec:
            return info
    want_overflow = not spec.endswith(NO_OVERFLOW_SUFFIX)
    base = spec[: -len(NO_OVERFLOW_SUFFIX)] if not want_overflow else spec
    matches = [i for i in cached if i.version == base and i.overflow_checks == want_overflow]
    matches += [i for i in cached if i.release == base and i.overflow_checks == want_overflow
                and i not in matches]
    if matches:
        return max(matches, key=lambda i: _version_key(i.release))
    looks_like_path = "/" in spec or spec.startswith(".") or Path(spec).exists()
    if looks_like_path:
        return _info_from_path(Path(spec).expanduser())
    m = re.match(r"^(\d+\.\d+)(\.\d+)?$", base)
    if m:
        flag = "" if want_overflow else " --no-overflow-checks"
        have = ", ".join(i.name for i in cached) or "none"
        raise UsageError(f"kernel {spec} is not built yet (cached: {have}); "
                         f"`blkcmp kernel build {m.group(1)}{flag}` builds it")
    raise UsageError(f"unknown kernel {spec!r}: give a version such as 7.2 or a path to a bzImage")


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
    return ["unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", script, "sh", str(root), *argv]


def _private_ns(argv: list[str]) -> list[str]:
    return ["unshare", "--mount", "--propagation", "private", "--", *argv]


class _Step:
    """Runs commands for one build/chroot job, appending their output to one log file."""

    def __init__(self, log: Path, progress: Progress, what: str):
        self.log = log
        self.progress = progress
        self.what = what
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "a", buffering=1, errors="replace")

    def close(self) -> None:
        self._log.close()

    def note(self, text: str) -> None:
        self._log.write(f"### {text}\n")

    def run(self, stage: str, argv: list[str], *, tick: Callable[[str], None] | None = None,
            ticker: Callable[[float], str] | None = None, capture: bool = False) -> str:
        """Run argv, log its output; RunError naming the stage and the log if it fails.

        tick(line) sees every output line; ticker(elapsed) makes a progress line every
        PROGRESS_EVERY_S seconds (so a long silent step still shows it is alive).
        """
        self.note(f"{stage}: {' '.join(argv)}")
        started = time.monotonic()
        captured: list[str] = []
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, errors="replace", bufsize=1, start_new_session=True,
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


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise RunError(f"{what} needs root (debootstrap, chroot and mount namespaces)")
    for tool in ("debootstrap", "unshare", "chroot"):
        if shutil.which(tool) is None:
            raise RunError(f"{what} needs `{tool}` on the host (scripts/install.sh installs it)")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


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


def ensure_chroot(progress: Progress = print) -> Path:
    """The Debian sid chroot (build environment and guest root), made or updated if needed."""
    root = chroot_dir()
    wanted = sorted(CHROOT_PACKAGES)
    marker = _read_marker(root) if root.is_dir() else {}
    if marker.get("packages") == wanted:
        _ensure_mount_points(root)
        return root
    _require_root("making the build chroot")
    with _locked(root.parent / f".{CHROOT_SUITE}.lock", "chroot", progress), \
            terminate_cleanly():
        marker = _read_marker(root) if root.is_dir() else {}
        if marker.get("packages") == wanted:  # another process made it while we waited
            _ensure_mount_points(root)
            return root
        log = logs_dir() / f"chroot-{CHROOT_SUITE}-{_now()}.log"
        step = _Step(log, progress, f"chroot {CHROOT_SUITE}")
        try:
            if root.is_dir() and marker:
                progress(f"chroot: package list changed, updating {root}")
                _install_packages(step, root, wanted, progress)
                _ensure_mount_points(root)
            else:
                _create_chroot(step, root, wanted, progress)
        finally:
            step.close()
        return root


def _create_chroot(step: _Step, root: Path, wanted: list[str], progress: Progress) -> None:
    mirror = os.environ.get("BLKCMP_DEBIAN_MIRROR", DEFAULT_MIRROR)
    for stale in root.parent.glob(f".{CHROOT_SUITE}.partial-*"):
        _remove_tree(stale)
    if root.exists():  # a directory without our marker: not ours to trust
        _remove_tree(root)
    tmp = root.parent / f".{CHROOT_SUITE}.partial-{os.getpid()}"
    started = time.monotonic()
    try:
        progress(f"chroot: debootstrap {CHROOT_SUITE} into {root} (~30 s; log {step.log})")
        # debootstrap mounts /proc and /sys in the target itself: keep those mounts private.
        step.run("debootstrap", _private_ns([
            "debootstrap", "--variant=minbase", "--include=ca-certificates",
            CHROOT_SUITE, str(tmp), mirror]),
            ticker=lambda s: f"chroot: debootstrap still running ({s:.0f} s)")
        _configure_apt(tmp)
        _install_packages(step, tmp, wanted, progress)
        _ensure_mount_points(tmp)
        tmp.rename(root)
    except BaseException:
        _remove_tree(tmp)
        raise
    progress(f"chroot: ready in {time.monotonic() - started:.0f} s")


def _install_packages(step: _Step, root: Path, wanted: list[str], progress: Progress) -> None:
    progress(f"chroot: apt-get install {len(wanted)} packages (~1 min)")
    step.run("apt-get update", _in_chroot(root, ["apt-get", "update"]))
    step.run("apt-get install", _in_chroot(
        root, ["apt-get", "install", "-y", "--no-install-recommends", *wanted]),
        ticker=lambda s: f"chroot: apt-get install still running ({s:.0f} s)")
    step.run("apt-get clean", _in_chroot(root, ["apt-get", "clean"]))
    previous = _read_marker(root)
    marker = {
        "suite": CHROOT_SUITE,
        "packages": wanted,
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
        raise RunError("virtme-ng is not installed (pip install 'blkcmp[vm]'): "
                       "its kernel config fragment is needed")
    env = dict(os.environ, PATH=f"{exe.parent}:{os.environ.get('PATH', '')}")
    res = subprocess.run([str(exe), "--arch", "x86_64", "--defconfig", "--dry-run"],
                         capture_output=True, text=True, env=env, cwd="/", timeout=60)
    if res.returncode != 0 or "CONFIG_" not in res.stdout:
        raise RunError("virtme-configkernel --defconfig --dry-run failed: "
                       + (res.stderr.strip().splitlines() or ["no output"])[-1])
    return res.stdout


_STABLE_SOURCES = f"""\
deb {DEFAULT_MIRROR} trixie main
deb {DEFAULT_MIRROR} trixie-updates main
deb {SECURITY_MIRROR} trixie-security main
"""
# Only for what is asked by name (a linux-source-X.Y that sid no longer carries); sid stays
# the source of everything else.
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


def _candidate(step: _Step, root: Path, package: str) -> str | None:
    out = step.run(f"apt-cache policy {package}",
                   _in_chroot(root, ["apt-cache", "policy", package]), capture=True)
    m = re.search(r"Candidate:\s*(\S+)", out)
    return m.group(1) if m and m.group(1) != "(none)" else None


def _install_source(step: _Step, root: Path, version: str, label: str,
                    progress: Progress) -> str:
    """Install linux-source-<version>, from sid or else Debian stable; its Debian version."""
    package = f"linux-source-{version}"
    progress(f"kernel {label}: apt-get install {package}")
    step.run("apt-get update", _in_chroot(root, ["apt-get", "update"]))
    cand = _candidate(step, root, package)
    extra = root / "etc" / "apt" / "sources.list.d" / "blkcmp-stable.list"
    if cand is None and not extra.exists():
        progress(f"kernel {label}: sid has no {package}; adding trixie (pinned low) to look")
        extra.write_text(_STABLE_SOURCES)
        (root / "etc" / "apt" / "preferences.d" / "blkcmp-stable").write_text(_STABLE_PIN)
        step.run("apt-get update", _in_chroot(root, ["apt-get", "update"]))
        cand = _candidate(step, root, package)
    if cand is None:
        raise UsageError(f"Debian has no {package} (looked in sid, trixie, trixie-security); "
                         f"cannot build kernel {version}")
    step.run(f"apt-get install {package}", _in_chroot(
        root, ["apt-get", "install", "-y", "--no-install-recommends", package]),
        ticker=lambda s: f"kernel {label}: downloading {package} ({s:.0f} s)")
    step.run("apt-get clean", _in_chroot(root, ["apt-get", "clean"]))
    out = step.run("dpkg-query", _in_chroot(
        root, ["dpkg-query", "-W", "-f=${Version}", package]), capture=True)
    return out.strip().splitlines()[-1] if out.strip() else cand


def _toolchain(step: _Step, root: Path) -> dict[str, str]:
    script = (
        'echo "gcc=$(gcc -dumpfullversion 2>/dev/null)"; '
        'echo "rustc=$(rustc --version 2>/dev/null | cut -d" " -f2)"; '
        'echo "bindgen=$(bindgen --version 2>/dev/null | cut -d" " -f2)"; '
        'echo "clang=$(clang --version 2>/dev/null | head -n1 | sed "s/.*version //; s/ .*//")"; '
        'echo "ld=$(ld --version 2>/dev/null | head -n1 | sed "s/.* //")"'
    )
    out = step.run("toolchain versions", _in_chroot(root, ["sh", "-c", script]), capture=True)
    tools = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("gcc", "rustc", "bindgen", "clang", "ld") and value.strip():
            tools[key] = value.strip()
    return tools


def _cache_hit(version: str, overflow_checks: bool) -> KernelInfo | None:
    hits = [i for i in list_cached()
            if i.version == version and i.overflow_checks == overflow_checks]
    return max(hits, key=lambda i: _version_key(i.release)) if hits else None


def build(version: str, *, progress: Progress = print, overflow_checks: bool = True,
          jobs: int | None = None) -> KernelInfo:
    """Build (or find in the cache) a test kernel from Debian's linux-source-<version>.

    `overflow_checks=False` builds the variant without CONFIG_RUST_OVERFLOW_CHECKS, cached as
    `<release>-nooverflow`. Raises UsageError for a malformed version or one Debian does not
    ship, RunError (one line, with the log path) when a step fails.
    """
    version = version.strip()
    if not _VERSION_RE.match(version):
        raise UsageError(f"kernel version must look like 7.2 or 6.12, not {version!r}")
    label = version + ("" if overflow_checks else NO_OVERFLOW_SUFFIX)
    hit = _cache_hit(version, overflow_checks)
    if hit is not None:
        progress(f"kernel {label}: cached ({hit.name}, {hit.path}); nothing to build")
        return hit
    _require_root(f"building kernel {label}")
    with _locked(kernels_dir() / ".build.lock", f"kernel {label}", progress):
        hit = _cache_hit(version, overflow_checks)  # built by someone else while we waited
        if hit is not None:
            progress(f"kernel {label}: cached ({hit.name}, {hit.path}); nothing to build")
            return hit
        root = ensure_chroot(progress)
        with _locked(root.parent / f".{CHROOT_SUITE}.lock", "chroot", progress), \
                terminate_cleanly():
            return _build_locked(version, label, root, progress, overflow_checks,
                                 jobs or len(os.sched_getaffinity(0)))


def _build_locked(version: str, label: str, root: Path, progress: Progress,
                  overflow_checks: bool, jobs: int) -> KernelInfo:
    kdir = kernels_dir()
    kdir.mkdir(parents=True, exist_ok=True)
    # Leftovers of interrupted builds (we hold the lock, so nobody else is using them).
    for stale in list(kdir.glob(".partial-*")) + list((root / "var" / "tmp").glob("blkcmp-build-*")):
        _remove_tree(stale)
    log = logs_dir() / f"build-{label}-{_now()}.log"
    step = _Step(log, progress, f"kernel build {label}")
    work_rel = f"/var/tmp/blkcmp-build-{label}-{os.getpid()}"
    work = root / work_rel.lstrip("/")
    stages: dict[str, float] = {}
    started = time.monotonic()
    try:
        t = time.monotonic()
        source_version = _install_source(step, root, version, label, progress)
        stages["source"] = time.monotonic() - t
        package = f"linux-source-{version}"
        tarball = f"/usr/src/{package}.tar.xz"
        if not (root / tarball.lstrip("/")).exists():
            raise RunError(f"kernel build {label}: {package} {source_version} has no {tarball} "
                           f"(log: {log})")

        t = time.monotonic()
        progress(f"kernel {label}: unpacking {package} {source_version} (~15 s)")
        work.mkdir(parents=True)
        step.run("unpack", _in_chroot(root, ["tar", "-xf", tarball, "-C", work_rel]))
        trees = [p for p in work.iterdir() if p.is_dir()]
        if len(trees) != 1:
            raise RunError(f"kernel build {label}: unexpected layout of {tarball} (log: {log})")
        tree_rel = f"{work_rel}/{trees[0].name}"
        tree = trees[0]
        stages["unpack"] = time.monotonic() - t

        t = time.monotonic()
        progress(f"kernel {label}: configuring (x86_64_defconfig + virtme-ng + blkcmp fragment)")
        in_tree = lambda cmd: _in_chroot(root, ["sh", "-c", f"cd {tree_rel} && {cmd}"])  # noqa: E731
        step.run("make x86_64_defconfig", in_tree("make x86_64_defconfig"))
        fragment = _virtme_fragment() + CONFIG_FRAGMENT
        if not overflow_checks:
            fragment += "# CONFIG_RUST_OVERFLOW_CHECKS is not set\n"
        step.note("config fragment appended:\n" + fragment)
        with open(tree / ".config", "a") as f:
            f.write("\n" + fragment)
        step.run("make olddefconfig", in_tree("make olddefconfig"))
        config_text = (tree / ".config").read_text(errors="replace")
        config = parse_config(config_text, RECORDED_SYMBOLS)
        for sym in REQUIRED_SYMBOLS:
            if config.get(sym) != "y":
                detail = ""
                if sym == "CONFIG_RUST" or config.get("CONFIG_RUST") != "y":
                    try:
                        out = step.run("make rustavailable", in_tree("make rustavailable"),
                                       capture=True)
                    except RunError:
                        out = _tail(log, 6)
                    detail = "; make rustavailable: " + " / ".join(
                        ln.strip() for ln in out.splitlines() if ln.strip())[-300:]
                raise RunError(f"kernel build {label}: {sym} came out "
                               f"{config.get(sym, 'missing')}, not y{detail} (log: {log})")
        want_oc = "y" if overflow_checks else "n"
        if config.get("CONFIG_RUST_OVERFLOW_CHECKS", "n") != want_oc:
            raise RunError(f"kernel build {label}: CONFIG_RUST_OVERFLOW_CHECKS came out "
                           f"{config.get('CONFIG_RUST_OVERFLOW_CHECKS', 'missing')}, "
                           f"not {want_oc} (log: {log})")
        release = step.run("make kernelrelease", in_tree("make -s kernelrelease"),
                           capture=True).strip().splitlines()[-1].strip()
        name = release + ("" if overflow_checks else NO_OVERFLOW_SUFFIX)
        toolchain = _toolchain(step, root)
        stages["config"] = time.monotonic() - t
        progress(f"kernel {label}: release {release}, toolchain "
                 + ", ".join(f"{k} {v}" for k, v in toolchain.items()))

        t = time.monotonic()
        counter = {"n": 0, "last": ""}

        def tick(line: str) -> None:
            m = _COMPILE_RE.match(line)
            if m:
                counter["n"] += 1
                counter["last"] = m.group(2)

        progress(f"kernel {label}: make -j{jobs} bzImage (~10 min on 2 cores; log {log})")
        step.run(f"make -j{jobs} bzImage", in_tree(f"make -j{jobs} bzImage"), tick=tick,
                 ticker=lambda s: (f"kernel {label}: make {s / 60:.1f} min, "
                                   f"{counter['n']} files compiled, last {counter['last']}"))
        stages["make"] = time.monotonic() - t
        bz = tree / "arch" / "x86" / "boot" / "bzImage"
        if not bz.is_file():
            raise RunError(f"kernel build {label}: make succeeded but produced no bzImage "
                           f"(log: {log})")

        staging = kdir / f".partial-{name}-{os.getpid()}"
        staging.mkdir()
        shutil.copy2(bz, staging / "bzImage")
        shutil.copy2(tree / ".config", staging / ".config")
        meta = {
            "format": 1,
            "name": name,
            "release": release,
            "version": version,
            "overflow_checks": overflow_checks,
            "source_package": package,
            "source_version": source_version,
            "toolchain": toolchain,
            "config": config,
            "chroot": CHROOT_SUITE,
            "make_jobs": jobs,
            "built_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "build_seconds": round(time.monotonic() - started, 1),
            "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
            "bzimage_size": bz.stat().st_size,
        }
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
    except BaseException:
        for partial in kdir.glob(f".partial-*-{os.getpid()}"):
            _remove_tree(partial)
        raise
    finally:
        step.close()
        _remove_tree(work)  # the tree is 2.6 GiB; the log says everything worth keeping
    info = _info_from_entry(final)
    assert info is not None
    progress(f"kernel {label}: built {name} in {meta['build_seconds'] / 60:.1f} min "
             f"({info.bzimage_size / 2**20:.1f} MiB) -> {final}")
    return info


def _tail(log: Path, n: int) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
