"""Boot a test kernel under QEMU (through virtme-ng) and run one command in it.

The guest's root filesystem is blkcmp's sid chroot (bench.kernels.ensure_chroot): it has udev,
fio and the Python runtime, and with it virtme-ng hands back the script's exit code. Host folders
are shared with `--rwdir`/`--rodir`. Three things are not trusted blindly, because each has been
seen to fail silently:

* a shared folder may simply not be mounted (virtme-ng mounts nothing when the mount point is
  missing, and the command then writes into the guest's own tree and "succeeds"): the host puts a
  nonce file in every shared folder and the guest checks each one before running anything;
* the exit code: the guest writes it, and a "started" mark, into a private control folder, so it
  does not depend on vng's own exit status or on parsing a console stream that the kernel also
  writes to;
* a hung guest: the whole process group (vng, virtme-run, QEMU, virtiofsd) is killed on timeout,
  and any QEMU still carrying this run's token on its command line is hunted down.

A guest that fails before the command has started (an oops or panic in early boot, or no start
mark within the timeout) is booted again, up to `boot_attempts` times: under software emulation a
loaded host can make early boot fail by chance (a static-key patching race was seen once in a
hundred boots). Each failed attempt's console log is kept beside the final one and returned in
GuestResult.boot_failures. A guest that fails *after* the command started is never retried: that
is a finding about the kernel or driver (GuestCrashed, with the oops line).

KVM is used only when it really works (detect_accel); otherwise TCG.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import ledger
from bench.errors import RunError, UsageError
from bench.kernels import KernelInfo, _mounts_under, chroot_dir, resolve, terminate_cleanly
from bench.procs import kill_all_with

# Where the per-run control folder is mounted in the guest (created in the chroot if missing).
GUEST_CTL = "/var/lib/blkcmp/ctl"
_EXIT_MOUNT_MISSING = 201
_EXIT_MOUNT_READONLY = 202
DEFAULT_BOOT_ATTEMPTS = 3
# Test-only: a file holding a count N; each boot attempt while N > 0 decrements it and crashes
# the guest kernel (sysrq) before the command starts, i.e. a chance early-boot failure on demand.
TEST_CRASH_BOOTS_ENV = "BLKCMP_TEST_CRASH_BOOTS"
# Console lines that say the kernel died, most telling first.
_OOPS_RE = re.compile(
    r"(Oops:.*|kernel BUG at.*|BUG: .*|general protection fault.*|"
    r"Kernel panic - not syncing.*)"
)

# Verdicts per probe kernel ("" for the boot-sector probe alone), for this process; verdicts
# with a kernel are also kept on disk for this host boot (KVM does not change within one).
_accel_cache: dict[str, str] = {}


@dataclass(frozen=True)
class FailedBoot:
    """One boot attempt that died before the command started."""

    attempt: int
    reason: str  # the first oops/panic line, or what else went wrong
    console_log: Path

    def to_dict(self) -> dict:
        return {"attempt": self.attempt, "reason": self.reason, "console_log": str(self.console_log)}


@dataclass(frozen=True)
class GuestResult:
    exit_code: int  # the command's own exit status, as seen inside the guest
    accel: str  # "kvm" or "tcg"
    elapsed: float  # seconds, from starting vng to QEMU's exit
    console_log: Path  # everything vng printed: boot console, the command's stdout/stderr
    boot_failures: tuple[FailedBoot, ...] = ()  # early-boot failures retried before this boot


class BootFailed(RunError):
    """Every boot attempt failed before the command started."""

    def __init__(self, message: str, *, reason: str, oops_line: str | None, failures: tuple[FailedBoot, ...]):
        super().__init__(message)
        self.reason = reason
        self.oops_line = oops_line
        self.failures = failures


class GuestCrashed(RunError):
    """The guest died after the command had started (kernel crash, out of memory, hang)."""

    def __init__(
        self, message: str, *, oops_line: str | None, console_log: Path, boot_failures: tuple[FailedBoot, ...]
    ):
        super().__init__(message)
        self.oops_line = oops_line
        self.console_log = console_log
        self.boot_failures = boot_failures


class _EarlyFailure(Exception):
    """A boot attempt that died before the command started (retried by run_in_guest)."""

    def __init__(self, reason: str, oops_line: str | None):
        super().__init__(reason)
        self.reason = reason
        self.oops_line = oops_line


def oops_line(console_log: Path) -> str | None:
    """The first line of the console that says the kernel died (timestamp stripped)."""
    try:
        text = console_log.read_text(errors="replace")
    except OSError:
        return None
    m = _OOPS_RE.search(text)
    return m.group(1).strip()[:200] if m else None


def boot_attempts_default() -> int:
    raw = os.environ.get("BLKCMP_BOOT_ATTEMPTS", "").strip()
    if not raw:
        return DEFAULT_BOOT_ATTEMPTS
    if not raw.isdigit() or not 1 <= int(raw) <= 20:
        raise UsageError(f"BLKCMP_BOOT_ATTEMPTS must be a whole number from 1 to 20, not {raw!r}")
    return int(raw)


# ----------------------------------------------------------------------------------------------
# Tools


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def _vng() -> Path:
    exe = _venv_bin() / "vng"
    if exe.exists():
        return exe
    found = shutil.which("vng")
    if found:
        return Path(found)
    raise RunError("virtme-ng (vng) is not installed: pip install 'blkcmp[vm]'")


def _tool_env() -> dict[str, str]:
    # vng calls virtme-run by name: the venv's bin/ must be on PATH.
    return dict(os.environ, PATH=f"{_venv_bin()}:{os.environ.get('PATH', '')}")


def _qemu() -> str:
    exe = shutil.which("qemu-system-x86_64")
    if exe is None:
        raise RunError("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    return exe


# ----------------------------------------------------------------------------------------------
# Accelerator


def _boot_sector() -> bytes:
    """A 512-byte boot sector that asks QEMU to exit with status 99 (isa-debug-exit, port 0xf4).

    mov al, 0x31 / out 0xf4, al / hlt / jmp $-1: QEMU exits with (0x31 << 1) | 1 = 99.
    """
    code = bytes([0xB0, 0x31, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])
    return code + bytes(510 - len(code)) + b"\x55\xaa"


_PROBE_OK = 99


def _probe(accel: str, timeout_s: float = 15.0, kernel: Path | None = None) -> tuple[bool, str]:
    """Boot something tiny with this accelerator and the CPU model vng would use for it.

    Without a kernel: the boot sector above (under a second with KVM). With one: the kernel up
    to its "cannot mount root" panic, which also catches a hypervisor that gets through the BIOS
    but not the kernel (a PVM host hangs after "Decompressing Linux").
    """
    if accel == "kvm":
        machine = ["-machine", "pc,accel=kvm", "-cpu", "host,topoext=on"]
    else:
        machine = ["-machine", "pc,accel=tcg", "-cpu", "max"]
    with ledger.temporary_directory("blkcmp-probe-") as tmp:
        base = [_qemu(), *machine, "-m", "256", "-nodefaults", "-display", "none", "-no-reboot"]
        if kernel is None:
            img = Path(tmp) / "boot.img"
            img.write_bytes(_boot_sector())
            argv = [
                *base,
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-drive",
                f"file={img},format=raw,if=ide",
            ]
        else:
            argv = [
                *base,
                "-serial",
                "stdio",
                "-kernel",
                str(kernel),
                "-append",
                "console=ttyS0 panic=-1 root=/dev/blkcmp-probe-none",
            ]
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            return False, f"cannot start QEMU: {e.strerror}"
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            return False, f"probe did not finish within {timeout_s:.0f} s"
        text = out.decode("utf-8", "replace")
        if kernel is None:
            ok = proc.returncode == _PROBE_OK
        else:
            ok = "Kernel panic" in text or "VFS:" in text
        last = (text.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:160]
        return ok, last


def _kvm_usable() -> tuple[bool, str]:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return False, f"/dev/kvm: {e.strerror}"
    os.close(fd)
    return True, ""


def detect_accel(probe_kernel: Path | None = None) -> str:
    """ "kvm" if KVM really runs a guest here, else "tcg". $BLKCMP_ACCEL=kvm|tcg overrides.

    A usable /dev/kvm is not enough: a PVM host has one, QEMU aborts with `-cpu host` there, and
    a host that runs the tiny boot-sector guest can still hang a Linux kernel right after
    "Decompressing Linux". So with a kernel to boot, that kernel is also booted to its
    "cannot mount root" panic (bounded by a timeout). The answer is cached for the process and,
    for a kernel, on disk for this host boot, so the probe is paid once.
    """
    forced = os.environ.get("BLKCMP_ACCEL", "").strip().lower()
    if forced:
        if forced not in ("kvm", "tcg"):
            raise UsageError(f"BLKCMP_ACCEL must be kvm or tcg, not {forced!r}")
        return forced
    key = str(Path(probe_kernel).resolve()) if probe_kernel is not None else ""
    if key in _accel_cache:
        return _accel_cache[key]
    remembered = _remembered_accel(key) if key else None
    if remembered:
        _accel_cache[key] = remembered
        return remembered
    ok, _why = _kvm_usable()
    if ok:
        ok, _why = _probe("kvm")
    if ok and probe_kernel is not None:
        ok, _why = _probe("kvm", timeout_s=30.0, kernel=probe_kernel)
    verdict = "kvm" if ok else "tcg"
    _accel_cache[key] = verdict
    if key:
        _remember_accel(key, verdict)
    return verdict


def _host_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _accel_file() -> Path:
    from bench.kernels import cache_dir

    return cache_dir() / "accel.json"


def _remembered_accel(key: str) -> str | None:
    try:
        data = json.loads(_accel_file().read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("boot_id") != _host_boot_id():
        return None
    verdict = (data.get("verdicts") or {}).get(key)
    return verdict if verdict in ("kvm", "tcg") else None


def _remember_accel(key: str, verdict: str) -> None:
    path = _accel_file()
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("boot_id") != _host_boot_id():
            data = {}
    except (OSError, ValueError):
        data = {}
    data = {"boot_id": _host_boot_id(), "verdicts": {**(data.get("verdicts") or {}), key: verdict}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.rename(path)
    except OSError:
        pass  # only a cache: the probe runs again next time


# ----------------------------------------------------------------------------------------------
# Running a command in the guest


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen, token: str) -> None:
    """Take down vng and everything it started; leave no QEMU behind."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    _kill_group(proc.pid)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    kill_all_with(token, timeout_s=5)  # QEMU in a session of its own still carries the token


def _guest_script(token: str, command: str, rw: Mapping[str, Path], ro: Mapping[str, Path]) -> str:
    """The script the guest runs: check every shared folder, then run the command."""
    nonce = f".blkcmp-mount-{token}"
    lines = [
        f"ctl={GUEST_CTL}",
        f'say() {{ echo "BLKCMP-{token} $*"; }}',
        # The control folder itself was checked by the bootstrap line (it found this script).
    ]
    for guest in [*rw, *ro]:
        g = shlex.quote(guest)
        lines.append(
            f'if [ "$(cat {g}/{nonce} 2>/dev/null)" != {token} ]; then '
            f'echo {g} > "$ctl/mount-missing"; say MOUNT-MISSING {g}; sync; '
            f"exit {_EXIT_MOUNT_MISSING}; fi"
        )
    for guest in rw:
        g = shlex.quote(guest)
        lines.append(
            f"if ! touch {g}/{nonce}.rw 2>/dev/null; then "
            f'echo {g} > "$ctl/mount-readonly"; say MOUNT-READONLY {g}; sync; '
            f"exit {_EXIT_MOUNT_READONLY}; fi"
        )
    lines += [
        'date +%s > "$ctl/started"; sync',
        "say START",
        f"bash -c {shlex.quote(command)}",
        "rc=$?",
        'echo "$rc" > "$ctl/exit.tmp" && mv "$ctl/exit.tmp" "$ctl/exit"; sync',
        'say EXIT "$rc"',
        'exit "$rc"',
    ]
    return "\n".join(lines) + "\n"


def _check_dirs(root: Path, dirs: Mapping[str, Path], kind: str) -> dict[str, Path]:
    out = {}
    for guest, host in dirs.items():
        guest = str(guest)
        if not guest.startswith("/") or guest.rstrip("/") == "" or "=" in guest or "," in guest:
            raise UsageError(f"{kind} guest path {guest!r} must be absolute, not /, without = or ,")
        host = Path(host).resolve()
        if not host.is_dir():
            raise UsageError(f"{kind} {guest}: host folder {host} does not exist")
        if "=" in str(host) or "," in str(host):
            raise UsageError(f"{kind} {guest}: host path {host} must not contain = or ,")
        _ensure_mount_point(root, guest)
        out[guest.rstrip("/")] = host
    return out


def _ensure_mount_point(root: Path, guest: str) -> None:
    # virtme-ng silently mounts nothing on a missing mount point: make it exist.
    mp = root / guest.strip("/")
    if not mp.is_dir():
        try:
            mp.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(
                f"cannot create mount point {guest} in the guest root {root}: {e.strerror}"
            ) from None


def _remove_stale_init_scripts(root: Path, older_than_s: float = 3600) -> None:
    """vng writes its guest init script into the root and removes it at exit, but not when it
    is killed. The script is read only at boot, so an hour-old one is litter."""
    now = time.time()
    for f in root.glob("virtme-init-*"):
        try:
            if f.is_file() and now - f.stat().st_mtime > older_than_s:
                f.unlink()
        except OSError:
            pass


def _kernel_image(kernel: KernelInfo | Path | str) -> Path:
    if isinstance(kernel, KernelInfo):
        return kernel.bzimage
    return resolve(str(kernel)).bzimage


def run_in_guest(
    kernel: KernelInfo | Path,
    command: str,
    *,
    rw_dirs: Mapping[str, Path] | None = None,
    ro_dirs: Mapping[str, Path] | None = None,
    cpus: int = 2,
    memory: str = "2G",
    append: str = "null_blk.nr_devices=0",
    timeout_s: float,
    console_log: Path,
    accel: str | None = None,
    boot_attempts: int | None = None,
    qemu_args: Sequence[str] = (),
) -> GuestResult:
    """Boot `kernel` with the sid chroot as root and run `command` (bash) as root in it.

    `qemu_args`: extra QEMU options (emulated NVMe controllers, bench.vm_nvme), given to
    virtme-ng one by one as --qemu-opts; the guest is then a PC machine (--disable-microvm:
    microvm has no PCI bus).

    rw_dirs/ro_dirs map guest paths to host folders. Returns the command's exit code. A boot
    that fails before the command starts is tried again, `boot_attempts` times in all (default
    $BLKCMP_BOOT_ATTEMPTS or 3); each failed attempt's console log is kept as
    `<console_log stem>.boot-failed-<n>.log`. Raises BootFailed when every attempt failed,
    GuestCrashed when the guest died after the command started, RunError when a folder is not
    really shared or the guest hung (QEMU is then killed).
    """
    bz = _kernel_image(kernel)
    if not bz.is_file():
        raise UsageError(f"kernel image {bz} does not exist")
    root = chroot_dir()
    if not (root / "etc" / "blkcmp-chroot.json").is_file():
        raise RunError(f"no guest root at {root}: `blkcmp kernel build 7.2` makes it")
    host_mounts = _mounts_under(root)
    if host_mounts:
        # The guest would see (and could write to) the host's /proc, /sys or /dev.
        raise RunError(f"refusing to boot: {host_mounts[0]} is mounted inside the guest root")
    if accel is None:
        accel = detect_accel(probe_kernel=bz)
    if accel not in ("kvm", "tcg"):
        raise UsageError(f"accel must be kvm or tcg, not {accel!r}")
    attempts = boot_attempts if boot_attempts is not None else boot_attempts_default()
    if attempts < 1:
        raise UsageError(f"boot_attempts must be at least 1, not {attempts}")
    rw = _check_dirs(root, rw_dirs or {}, "rw dir")
    ro = _check_dirs(root, ro_dirs or {}, "ro dir")
    clash = set(rw) & set(ro) | ({GUEST_CTL} & (set(rw) | set(ro)))
    if clash:
        raise UsageError(f"guest path {sorted(clash)[0]} is shared twice")
    _ensure_mount_point(root, GUEST_CTL)
    console_log = Path(console_log)
    console_log.parent.mkdir(parents=True, exist_ok=True)

    failures: list[FailedBoot] = []
    for attempt in range(1, attempts + 1):
        try:
            result = _boot_once(
                bz,
                root,
                command,
                rw,
                ro,
                cpus=cpus,
                memory=memory,
                append=append,
                timeout_s=timeout_s,
                console_log=console_log,
                accel=accel,
                failures=tuple(failures),
                qemu_args=qemu_args,
            )
        except _EarlyFailure as early:
            kept = console_log.with_name(
                f"{console_log.stem}.boot-failed-{attempt}{console_log.suffix or '.log'}"
            )
            try:
                console_log.rename(kept)
            except OSError:
                kept = console_log
            failures.append(FailedBoot(attempt, early.oops_line or early.reason, kept))
            continue
        return result
    first = failures[0]
    oops = next((f.reason for f in failures if _OOPS_RE.match(f.reason)), None)
    raise BootFailed(
        f"guest: kernel did not boot in {attempts} attempt{'s' if attempts > 1 else ''} "
        f"({first.reason}) (console: {first.console_log})",
        reason=first.reason,
        oops_line=oops,
        failures=tuple(failures),
    )


def _take_test_crash() -> bool:
    """The test-only early-boot crash hook (see TEST_CRASH_BOOTS_ENV)."""
    counter = os.environ.get(TEST_CRASH_BOOTS_ENV)
    if not counter:
        return False
    path = Path(counter)
    try:
        left = int(path.read_text().strip() or "0")
    except (OSError, ValueError):
        return False
    if left <= 0:
        return False
    path.write_text(str(left - 1))
    return True


def _boot_once(
    bz: Path,
    root: Path,
    command: str,
    rw: Mapping[str, Path],
    ro: Mapping[str, Path],
    *,
    cpus: int,
    memory: str,
    append: str,
    timeout_s: float,
    console_log: Path,
    accel: str,
    failures: tuple[FailedBoot, ...],
    qemu_args: Sequence[str] = (),
) -> GuestResult:
    _remove_stale_init_scripts(root)
    token = secrets.token_hex(8)
    # Recorded in the state file before it exists: `blkcmp cleanup` removes it after a SIGKILL.
    with ledger.temporary_directory("blkcmp-guest-") as ctl:
        return _boot_in(
            bz,
            root,
            command,
            rw,
            ro,
            token,
            ctl,
            cpus=cpus,
            memory=memory,
            append=append,
            timeout_s=timeout_s,
            console_log=console_log,
            accel=accel,
            failures=failures,
            qemu_args=qemu_args,
        )


def _boot_in(
    bz: Path,
    root: Path,
    command: str,
    rw: Mapping[str, Path],
    ro: Mapping[str, Path],
    token: str,
    ctl: Path,
    *,
    cpus: int,
    memory: str,
    append: str,
    timeout_s: float,
    console_log: Path,
    accel: str,
    failures: tuple[FailedBoot, ...],
    qemu_args: Sequence[str] = (),
) -> GuestResult:
    nonce_files = [host / f".blkcmp-mount-{token}" for host in [*rw.values(), *ro.values()]]
    rw_marks = [host / f".blkcmp-mount-{token}.rw" for host in rw.values()]
    try:
        script = ctl / f"run-{token}.sh"
        script.write_text(_guest_script(token, command, rw, ro))
        for f in nonce_files:
            try:
                f.write_text(token)
            except OSError as e:
                raise RunError(f"cannot write the share check file {f}: {e.strerror}") from None
        # The bootstrap finds the script only through the control folder: if that is not
        # mounted, it says so instead of running anything.
        crash = "echo c > /proc/sysrq-trigger; sleep 60; " if _take_test_crash() else ""
        bootstrap = (
            f"{crash}[ -r {GUEST_CTL}/run-{token}.sh ] && exec bash "
            f"{GUEST_CTL}/run-{token}.sh; "
            f"echo BLKCMP-{token} CTL-NOT-MOUNTED; exit {_EXIT_MOUNT_MISSING}"
        )
        argv = [
            str(_vng()),
            "--run",
            str(bz),
            "--root",
            str(root),
            "--user",
            "root",
            "--cpus",
            str(cpus),
            "--memory",
            memory,
            "--verbose",
            # virtiofsd is missing or broken on many hosts (vng then waits for it before
            # falling back); 9p works everywhere and is plenty for a root and result files.
            "--force-9p",
            "--append",
            f"{append} blkcmp.token={token}".strip(),
            f"--rwdir={GUEST_CTL}={ctl}",
            *[f"--rwdir={g}={h}" for g, h in rw.items()],
            *[f"--rodir={g}={h}" for g, h in ro.items()],
            *(["--disable-kvm"] if accel == "tcg" else []),
            # vng joins these into a shell command line: bench.vm_nvme's are plain words
            *(["--disable-microvm", *(f"--qemu-opts={arg}" for arg in qemu_args)] if qemu_args else []),
            "--exec",
            bootstrap,
        ]
        with terminate_cleanly():
            outcome = _run_vng(argv, token, timeout_s, console_log)
        return _judge(outcome, ctl, rw, rw_marks, token, accel, timeout_s, console_log, failures)
    finally:
        for f in [*nonce_files, *rw_marks]:
            try:
                f.unlink()
            except OSError:
                pass


@dataclass(frozen=True)
class _Outcome:
    returncode: int | None  # vng's exit status (None when we killed it)
    timed_out: bool
    elapsed: float
    console_tail: str


def _run_vng(argv: list[str], token: str, timeout_s: float, console_log: Path) -> _Outcome:
    started = time.monotonic()
    tail: list[str] = []
    with open(console_log, "wb") as log:
        log.write(f"# blkcmp: {shlex.join(argv)}\n".encode())
        log.flush()
        try:
            # One pipe for both: QEMU reopens /proc/self/fd/1 and /2, which on a file would
            # truncate each other, on a pipe just share it.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=_tool_env(),
                start_new_session=True,
            )
        except OSError as e:
            raise RunError(f"cannot start vng: {e.strerror}") from None

        def pump() -> None:
            assert proc.stdout is not None
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                log.write(chunk)
                log.flush()
                tail.append(chunk.decode("utf-8", "replace"))
                if len(tail) > 64:
                    del tail[:32]

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            # Also on success: virtiofsd or a stray helper must not outlive the run.
            _stop(proc, token)
            reader.join(timeout=10)
        elapsed = time.monotonic() - started
        log.write(
            f"\n# blkcmp: vng exit {proc.returncode}, {elapsed:.1f} s"
            f"{', killed after timeout' if timed_out else ''}\n".encode()
        )
    return _Outcome(None if timed_out else proc.returncode, timed_out, elapsed, "".join(tail))


def _judge(
    o: _Outcome,
    ctl: Path,
    rw: Mapping[str, Path],
    rw_marks: list[Path],
    token: str,
    accel: str,
    timeout_s: float,
    console_log: Path,
    failures: tuple[FailedBoot, ...],
) -> GuestResult:
    see = f"(console: {console_log})"
    missing = _read(ctl / "mount-missing")
    if missing:
        raise RunError(f"guest: shared folder {missing} is not mounted inside the guest {see}")
    readonly = _read(ctl / "mount-readonly")
    if readonly:
        raise RunError(f"guest: shared folder {readonly} is read-only inside the guest {see}")
    started = (ctl / "started").exists()
    exit_text = _read(ctl / "exit")
    oops = oops_line(console_log)
    if not started:
        if f"BLKCMP-{token} CTL-NOT-MOUNTED" in o.console_tail:
            raise RunError(
                f"guest: the control folder was not mounted; virtme-ng could not share host folders {see}"
            )
        if oops:
            raise _EarlyFailure(oops, oops)
        if o.timed_out:
            raise _EarlyFailure(f"the command had not started after {timeout_s:.0f} s; QEMU killed", None)
        raise _EarlyFailure(f"the command did not start (vng exit {o.returncode})", None)
    if exit_text is None or not exit_text.lstrip("-").isdigit():
        if o.timed_out and not oops:
            raise RunError(
                f"guest hung: the command did not finish within {timeout_s:.0f} s; QEMU killed {see}"
            )
        why = oops or f"vng exit {o.returncode}; out of memory?"
        raise GuestCrashed(
            f"guest kernel died while the command ran ({why}) {see}",
            oops_line=oops,
            console_log=console_log,
            boot_failures=failures,
        )
    for guest, mark in zip(rw, rw_marks):
        if not mark.exists():
            raise RunError(f"guest: writes to {guest} did not reach the host folder {rw[guest]} {see}")
    return GuestResult(
        exit_code=int(exit_text),
        accel=accel,
        elapsed=o.elapsed,
        console_log=console_log,
        boot_failures=failures,
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
