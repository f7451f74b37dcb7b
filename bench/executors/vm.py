"""The VM executor: the same campaign, run inside a guest booted on a chosen test kernel.

The host plans and creates the campaign directory; the guest (virtme-ng, KVM when it works, TCG
otherwise) gets that directory read-write at /campaign and blkcmp's source read-only at /blkcmp,
and runs `blkcmp run --resume /campaign` as root against the guest kernel's real null_blk and
rnull. Everything a run writes lands in the host's campaign directory as it happens, so a guest
that dies loses nothing already measured and `--resume` continues it (in a new guest). The
guest's console log of every boot is kept under logs/.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

import bench
from bench import env, store
from bench.errors import RunError, UsageError

BOOT_ALLOWANCE_S = 300      # a TCG boot takes ~20 s; slack for a loaded machine
PER_RUN_SLACK_S = 20


def _repo_root() -> Path:
    return Path(bench.__file__).resolve().parent.parent


def _kernel(spec: str):
    from bench import kernels
    return kernels.resolve(spec)


def create_vm_campaign(prepared, results: Path, kernel_spec: str) -> store.Campaign:
    """Like a host campaign, but the environment is written by the guest when it starts."""
    from bench import workload as workload_mod
    kernel = _kernel(kernel_spec)
    store.require_writable(results)
    host_env, _ = env.snapshot()
    campaign = store.create(
        results, prepared.plan.campaign, workload_text=prepared.path.read_text(),
        resolved_yaml=workload_mod.dump(prepared.workload), source=str(prepared.path),
        plan=prepared.plan, environment={"pending": "written by the guest when it starts"},
        kernel_config=None,
        extra={"vm_kernel": kernel_spec, "vm_kernel_release": kernel.release})
    store.atomic_write_json(campaign.path / "host-environment.json", host_env)
    return campaign


def guest_command(inner: str, *, accel: str, kernel_release: str) -> str:
    exports = {
        "PYTHONDONTWRITEBYTECODE": "1",
        "BLKCMP_VM_ACCEL": accel,
        "BLKCMP_VM_KERNEL": kernel_release,
        "BLKCMP_KERNEL_CONFIG": "/kconfig/.config",
        "BLKCMP_GIT_COMMIT": env.git_commit() or "unknown",
        "PYTHONPATH": "/blkcmp",
    }
    return ("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items())
            + f"; cd /tmp && {inner}")


def _accel() -> str:
    from bench import vm
    return vm.detect_accel()


def _boot(kernel, command: str, *, rw_dirs: dict, timeout_s: float, console_log: Path):
    from bench import vm
    accel = _accel()
    ro_dirs = {"/blkcmp": _repo_root(), "/kconfig": kernel.path}
    result = vm.run_in_guest(kernel, guest_command(command, accel=accel, kernel_release=kernel.release),
                             rw_dirs=rw_dirs, ro_dirs=ro_dirs, timeout_s=timeout_s,
                             console_log=console_log, accel=accel)
    return result, accel


def _guest_error(console_log: Path, exit_code: int) -> str:
    lines = []
    try:
        lines = [l.strip() for l in console_log.read_text(errors="replace").splitlines()
                 if "blkcmp: error:" in l or "blkcmp: internal error:" in l]
    except OSError:
        pass
    detail = lines[-1].split("blkcmp: ", 1)[1] if lines else f"exit code {exit_code}"
    return f"in the guest: {detail} (console log: {console_log})"


def execute_in_vm(campaign: store.Campaign, kernel_spec: str, *, quiet: bool = False,
                  timeout_s: float | None = None) -> None:
    kernel = _kernel(kernel_spec)
    recorded = campaign.info().get("vm_kernel_release")
    if recorded and recorded != kernel.release:
        raise UsageError(f"{campaign.path}: campaign runs on kernel {recorded}, not {kernel.release}")
    plan = campaign.plan()
    done = sum(1 for r in store.run_rows(campaign) if r["status"] == "done")
    adaptive_open = plan.max_rounds > plan.rounds and not (campaign.path / "adaptive.json").exists()
    if done == len(plan.runs) and not adaptive_open:
        if not quiet:
            print(f"blkcmp: every planned run is done; nothing to boot {kernel.release} for", flush=True)
        return
    max_runs = len(plan.targets) * len(plan.points) * max(plan.max_rounds, plan.rounds)
    per_run = plan.runtime + plan.ramp_time + PER_RUN_SLACK_S
    timeout = timeout_s or BOOT_ALLOWANCE_S + max(max_runs - done, 1) * per_run
    logs = campaign.path / "logs"
    logs.mkdir(exist_ok=True)
    console = logs / f"console-{len(list(logs.glob('console-*.log'))) + 1:02d}.log"
    if not quiet:
        print(f"blkcmp: booting kernel {kernel.release} in a VM (console log: {console})", flush=True)
    result, accel = _boot(kernel, "python3 -m bench run --resume /campaign" + (" --quiet" if quiet else ""),
                          rw_dirs={"/campaign": campaign.path}, timeout_s=timeout, console_log=console)
    if result.exit_code != 0:
        error = _guest_error(console, result.exit_code)
        raise (UsageError if result.exit_code == 2 else RunError)(error)


def targets_in_vm(kernel_spec: str) -> str:
    kernel = _kernel(kernel_spec)
    with tempfile.TemporaryDirectory(prefix="blkcmp-targets-") as tmp:
        out = Path(tmp)
        result, _ = _boot(kernel, "python3 -m bench targets > /out/targets.txt 2>&1",
                          rw_dirs={"/out": out}, timeout_s=BOOT_ALLOWANCE_S,
                          console_log=out / "console.log")
        text = (out / "targets.txt").read_text() if (out / "targets.txt").exists() else ""
        if result.exit_code != 0 or not text:
            raise RunError(f"`blkcmp targets` failed in the guest on {kernel.release} (exit {result.exit_code})")
        return text.rstrip()


def record_guest_environment(campaign: store.Campaign) -> None:
    """Called inside the guest: the environment record is the guest's, labelled with the accel."""
    environment, config = env.snapshot()
    previous = campaign.environment()
    if previous and "pending" not in previous:
        if previous.get("kernel", {}).get("release") != environment["kernel"]["release"]:
            raise UsageError(f"{campaign.path}: campaign started on kernel "
                             f"{previous['kernel']['release']}, this guest runs {environment['kernel']['release']}")
        return
    store.atomic_write_json(campaign.path / "environment.json", environment)
    if config:
        store.atomic_write_text(campaign.path / "kernel-config.txt", config)
