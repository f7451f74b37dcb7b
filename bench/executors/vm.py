"""The VM executor: the same campaign, run inside a guest booted on a chosen test kernel.

The host plans and creates the campaign directory; the guest (virtme-ng, KVM when it works, TCG
otherwise) gets that directory read-write at /campaign and blkcmp's source read-only at /blkcmp,
and runs `blkcmp run --resume /campaign` as root against the guest kernel's real null_blk and
rnull. Everything a run writes lands in the host's campaign directory as it happens, so a guest
that dies loses nothing already measured and `--resume` continues it (in a new guest). The
guest's console log of every boot is kept under logs/.

A campaign of several kernels or boots (bench.multikernel, bench.plan) is booted slot by slot in
the plan's order, skipping slots whose runs are all done: each boot runs `blkcmp run --resume
/campaign --boot-slot K`, which runs only that slot's runs.  The boot itself is a function the
executor takes (`boot=`, default the real VM boot), so the slot loop can be exercised on a host.

A boot that fails before blkcmp's command starts is retried (bench.vm); every boot, with the
failed attempts it took, is recorded in the environment record (`vm_boots`). A guest kernel that
dies *during* a run is a finding, not a chance: the run in flight is recorded as failed with the
oops line and the console log, and the campaign stops with an error; `--resume` continues it.
"""

from __future__ import annotations

import os
import shlex
import socket
from pathlib import Path

import bench
from bench import env, fio, precondition, store, vm_nvme
from bench.errors import RunError, UsageError
from bench.executors.local import campaign_id

BOOT_ALLOWANCE_S = 300  # a TCG boot takes ~20 s; slack for a loaded machine
PER_RUN_SLACK_S = 20


def _repo_root() -> Path:
    return Path(bench.__file__).resolve().parent.parent


def _kernel(spec: str):
    from bench import kernels

    return kernels.resolve(spec)


def check_guest_kernel(prepared, kernel_spec: str, progress=print) -> None:
    """Refuse what the guest kernel's drivers would refuse before the campaign directory exists,
    from the facts the kernel's smoke boot recorded (a foreign bzImage: checked in the guest)."""
    from bench import campaign as campaign_mod
    from bench import kernels

    kernel = _kernel(kernel_spec)
    drivers = kernels.driver_facts(kernel, progress)
    if drivers is not None:
        campaign_mod.check_recorded_kernel(
            prepared.workload, drivers, kernel.release, prepared.plan.targets, prepared.path
        )


def create_vm_campaign(prepared, results: Path, kernel_spec: str | None, kernels=None) -> store.Campaign:
    """Like a host campaign, but the environment is written by the guest when it starts.
    `kernels` (multikernel.KernelChoice, with their resolved releases): a campaign of several
    kernels or boots, recorded as the campaign's `vm_kernels`."""
    from bench import workload as workload_mod

    if kernels:
        extra = {
            "vm_kernels": [
                {"label": k.label, "spec": k.spec, "release": _kernel(k.spec).release} for k in kernels
            ]
        }
    else:
        assert kernel_spec is not None
        extra = {"vm_kernel": kernel_spec, "vm_kernel_release": _kernel(kernel_spec).release}
    store.require_writable(results)
    host_env, _ = env.snapshot()
    campaign = store.create(
        results,
        prepared.plan.campaign,
        workload_text=prepared.path.read_text(),
        resolved_yaml=workload_mod.dump(prepared.workload),
        source=str(prepared.path),
        plan=prepared.plan,
        environment={"pending": "written by the guest when it starts"},
        kernel_config=None,
        extra=extra,
    )
    campaign.save_host_environment(host_env)
    return campaign


GUEST_CACHE = "/blkcmp-cache"


def guest_cache_dir() -> Path:
    """The host folder a guest keeps its blkcmp cache in (shared by every guest boot)."""
    from bench.kernels import cache_dir

    path = cache_dir() / "guest"
    path.mkdir(parents=True, exist_ok=True)
    return path


def guest_command(inner: str, *, accel: str, kernel_release: str) -> str:
    exports = {
        "PYTHONDONTWRITEBYTECODE": "1",
        "BLKCMP_VM_ACCEL": accel,
        "BLKCMP_VM_KERNEL": kernel_release,
        "BLKCMP_KERNEL_CONFIG": "/kconfig/.config",
        "BLKCMP_GIT_COMMIT": env.git_commit() or "unknown",
        "PYTHONPATH": "/blkcmp",
        # What blkcmp learns about the guest's fio (its option table) outlives the boot: without
        # it every guest process asks fio again, seconds per question under emulation.
        "BLKCMP_CACHE": GUEST_CACHE,
    }
    return "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in exports.items()) + f"; cd /tmp && {inner}"


def _accel(kernel) -> str:
    from bench import vm

    # With the kernel itself: a host whose KVM runs a boot sector can still hang a kernel.
    return vm.detect_accel(probe_kernel=kernel.bzimage)


def vm_boot(
    kernel_spec: str,
    command: str,
    *,
    rw_dirs: dict,
    timeout_s: float,
    console_log: Path,
    boot_attempts: int | None = None,
    qemu_args: tuple[str, ...] | list[str] = (),
):
    """The real boot: the kernel `kernel_spec` names, in a VM, running `command` (inside the
    guest, the campaign directory is /campaign). Returns (vm.GuestResult, accel)."""
    return _boot(
        _kernel(kernel_spec),
        command,
        rw_dirs=rw_dirs,
        timeout_s=timeout_s,
        console_log=console_log,
        boot_attempts=boot_attempts,
        qemu_args=qemu_args,
    )


def _boot(
    kernel,
    command: str,
    *,
    rw_dirs: dict,
    timeout_s: float,
    console_log: Path,
    boot_attempts: int | None = None,
    qemu_args: tuple[str, ...] | list[str] = (),
):
    from bench import vm

    accel = _accel(kernel)
    ro_dirs = {"/blkcmp": _repo_root(), "/kconfig": kernel.path}
    rw_dirs = {**rw_dirs, GUEST_CACHE: guest_cache_dir()}
    result = vm.run_in_guest(
        kernel,
        guest_command(command, accel=accel, kernel_release=kernel.release),
        rw_dirs=rw_dirs,
        ro_dirs=ro_dirs,
        timeout_s=timeout_s,
        console_log=console_log,
        accel=accel,
        boot_attempts=boot_attempts,
        qemu_args=qemu_args,
    )
    return result, accel


def _guest_error(console_log: Path, exit_code: int) -> str:
    lines = []
    try:
        lines = [
            l.strip()
            for l in console_log.read_text(errors="replace").splitlines()
            if "blkcmp: error:" in l or "blkcmp: internal error:" in l
        ]
    except OSError:
        pass
    detail = lines[-1].split("blkcmp: ", 1)[1] if lines else f"exit code {exit_code}"
    return f"in the guest: {detail} (console log: {console_log})"


# Test-only: when set, the guest crashes its own kernel (sysrq) while the first run of the
# session is in flight, the case of a kernel or driver bug that kills the guest mid-campaign.
TEST_CRASH_DURING_RUN_ENV = "BLKCMP_TEST_CRASH_DURING_RUN"
GUEST_RUN = "python3 -m bench run --resume /campaign{slot}{quiet}"
_CRASH_WATCHER = (
    GUEST_RUN + " & "
    "while ! ls -d /campaign/runs/.tmp-* >/dev/null 2>&1; do sleep 0.2; done; "
    "sleep 1; echo c > /proc/sysrq-trigger; wait"
)


def execute_in_vm(
    campaign: store.Campaign,
    kernel_spec: str | None = None,
    *,
    quiet: bool = False,
    timeout_s: float | None = None,
    boot_attempts: int | None = None,
    boot=vm_boot,
) -> None:
    plan = campaign.plan()
    if plan.multi_boot:
        if kernel_spec:
            raise UsageError(
                f"{campaign.path}: a campaign of several kernels or boots resumes on its own kernels "
                f"({', '.join(plan.kernels)}); drop --kernel"
            )
        _execute_slots(
            campaign, plan, quiet=quiet, timeout_s=timeout_s, boot_attempts=boot_attempts, boot=boot
        )
        return
    assert kernel_spec is not None
    kernel = _kernel(kernel_spec)
    recorded = campaign.info().get("vm_kernel_release")
    if recorded and recorded != kernel.release:
        raise UsageError(f"{campaign.path}: campaign runs on kernel {recorded}, not {kernel.release}")
    done = sum(1 for r in store.run_rows(campaign) if r["status"] == "done")
    state = campaign.adaptive_state()
    # an adaptive campaign whose rule has not said stop yet may still add rounds
    adaptive_open = plan.adaptive and plan.max_rounds > plan.rounds and not (state and state.get("stop"))
    if done == len(plan.runs) and not adaptive_open:
        if not quiet:
            print(f"blkcmp: every planned run is done; nothing to boot {kernel.release} for", flush=True)
        return
    max_runs = len(plan.targets) * len(plan.points) * max(plan.max_rounds, plan.rounds)
    per_run = plan.runtime + plan.ramp_time + PER_RUN_SLACK_S
    timeout = timeout_s or BOOT_ALLOWANCE_S + max(max_runs - done, 1) * per_run
    workload = campaign.workload()
    if (
        timeout_s is None
        and workload.precondition
        and not (campaign.precondition_record() or {}).get("complete")
    ):
        emulated = workload.vm.nvme if workload.vm else []
        largest = max((vm_nvme.size_bytes(c.size) for c in emulated), default=1 << 30)
        timeout += precondition.allowance_s(workload, len(plan.targets), per_run, largest)
    console = campaign.new_console_log()
    if not quiet:
        print(f"blkcmp: booting kernel {kernel.release} in a VM (console log: {console})", flush=True)
    boot_once(
        campaign,
        kernel_spec,
        {"kernel": kernel.release},
        GUEST_RUN.format(slot="", quiet=" --quiet" if quiet else ""),
        console=console,
        timeout_s=timeout,
        boot_attempts=boot_attempts,
        quiet=quiet,
        boot=boot,
    )


def _execute_slots(campaign: store.Campaign, plan, *, quiet, timeout_s, boot_attempts, boot) -> None:
    """Boot every slot that still has runs to do, in plan order: each boot runs that slot's runs."""
    kernels = campaign.vm_kernels()
    done = {r["run_id"] for r in store.run_rows(campaign) if r["status"] == "done"}
    per_run = plan.runtime + plan.ramp_time + PER_RUN_SLACK_S
    if all(r.run_id in done for r in plan.runs):
        if not quiet:
            print("blkcmp: every planned run is done; nothing to boot", flush=True)
        return
    for slot, label in enumerate(plan.slots):
        pending = [r for r in plan.slot_runs(slot) if r.run_id not in done]
        if not pending:
            continue
        kernel = kernels[label]
        console = campaign.new_console_log()
        if not quiet:
            print(
                f"blkcmp: boot {slot + 1} of {len(plan.slots)}: kernel {label} ({kernel['release']}), "
                f"{len(pending)} runs (console log: {console})",
                flush=True,
            )
        boot_once(
            campaign,
            kernel["spec"],
            {"kernel": kernel["release"], "kernel_label": label, "slot": slot},
            GUEST_RUN.format(slot=f" --boot-slot {slot}", quiet=" --quiet" if quiet else ""),
            console=console,
            timeout_s=timeout_s or BOOT_ALLOWANCE_S + len(pending) * per_run,
            boot_attempts=boot_attempts,
            quiet=quiet,
            boot=boot,
        )


def boot_once(
    campaign: store.Campaign,
    kernel_spec: str,
    record: dict,
    command: str,
    *,
    console: Path,
    timeout_s: float,
    boot_attempts: int | None,
    quiet: bool,
    boot=vm_boot,
) -> None:
    """One guest boot running `command`, with its retries, recorded in `vm_boots` (`record`: the
    kernel and, for a campaign of several kernels or boots, its label and slot); a crash during
    a run records the run failed and stops the campaign with a one-line error."""
    from bench import vm

    entry = {"started": fio.utc_now()} | record | {"console_log": campaign.relative(console)}
    if os.environ.get(TEST_CRASH_DURING_RUN_ENV):
        command = _CRASH_WATCHER.replace(GUEST_RUN, command)
    # emulated NVMe controllers (workload `vm: {nvme: …}`): files exist for this boot only
    vm_spec = campaign.workload().vm
    try:
        with vm_nvme.attached(vm_spec.nvme if vm_spec else [], campaign_id(campaign)) as qemu_args:
            result, accel = boot(
                kernel_spec,
                command,
                rw_dirs={"/campaign": campaign.path},
                timeout_s=timeout_s,
                console_log=console,
                boot_attempts=boot_attempts,
                qemu_args=qemu_args,
            )
    except vm.BootFailed as exc:
        campaign.add_vm_boot(entry | {"outcome": "no boot", "failed_boots": _failed(campaign, exc.failures)})
        raise
    except vm.GuestCrashed as exc:
        crashed = record_crashed_runs(
            campaign, exc.oops_line or "guest kernel died", campaign.relative(console), record.get("kernel")
        )
        campaign.add_vm_boot(
            entry
            | {
                "outcome": "crashed during a run",
                "oops": exc.oops_line,
                "runs": crashed,
                "failed_boots": _failed(campaign, exc.boot_failures),
            }
        )
        which = f"run {crashed[0]}" if crashed else "the campaign"
        raise RunError(
            f"guest kernel crashed during {which}: {exc.oops_line or 'no oops line'} "
            f"(console log: {console}); recorded as failed; "
            f"`blkcmp run --resume {campaign.path}` continues"
        ) from None
    campaign.add_vm_boot(
        entry
        | {
            "outcome": f"exit {result.exit_code}",
            "accel": accel,
            "failed_boots": _failed(campaign, result.boot_failures),
        }
    )
    if result.boot_failures and not quiet:
        print(
            f"blkcmp: the guest booted at attempt {len(result.boot_failures) + 1} "
            f"(early-boot failure retried: {result.boot_failures[0].reason})",
            flush=True,
        )
    if result.exit_code != 0:
        error = _guest_error(console, result.exit_code)
        raise (UsageError if result.exit_code == 2 else RunError)(error)


def _failed(campaign: store.Campaign, failures) -> list[dict]:
    return [f.to_dict() | {"console_log": campaign.relative(f.console_log)} for f in failures]


def record_crashed_runs(
    campaign: store.Campaign, oops: str, console_log: str, release: str | None = None
) -> list[str]:
    """Runs cut off by a guest kernel crash become failed runs (kept, with the oops line), so
    the crash is in the results; `--resume` runs them again under their real names."""
    crashed = []
    release = release or campaign.info().get("vm_kernel_release", "")
    planned = {r.run_id: r for r in campaign.plan().runs}
    for run_id, staged in campaign.staged():
        run = planned.get(run_id)
        error = f"guest kernel crashed during this run: {oops}"
        staged.write_meta(
            {
                "run_id": run_id,
                "status": "failed",
                "error": error,
                "started": None,
                "ended": fio.utc_now(),
                "host": socket.gethostname(),
                "kernel": release,
                "kernel_label": run.kernel if run else None,
                "boot_slot": run.boot if run else None,
                "guest_crash": {"oops": oops, "console_log": console_log},
            }
        )
        campaign.finish_run(staged, run_id, failed=True)
        with campaign.index() as db:
            store.record_run(
                db,
                run_id,
                status="failed",
                started=None,
                ended=fio.utc_now(),
                host=socket.gethostname(),
                kernel=release,
                error=error,
                metrics={},
                cpu=None,
                fio_version=None,
                job_rows=[],
            )
        crashed.append(run_id)
    return crashed


def targets_in_vm(kernel_spec: str) -> str:
    kernel = _kernel(kernel_spec)
    from bench import ledger

    with ledger.temporary_directory("blkcmp-targets-") as tmp:
        out = Path(tmp)
        result, _ = _boot(
            kernel,
            "python3 -m bench targets > /out/targets.txt 2>&1",
            rw_dirs={"/out": out},
            timeout_s=BOOT_ALLOWANCE_S,
            console_log=out / "console.log",
        )
        text = (out / "targets.txt").read_text() if (out / "targets.txt").exists() else ""
        if result.exit_code != 0 or not text:
            raise RunError(
                f"`blkcmp targets` failed in the guest on {kernel.release} (exit {result.exit_code})"
            )
        return text.rstrip()


def record_guest_environment(campaign: store.Campaign, slot: int | None = None) -> None:
    """Called inside the guest: the environment record is the guest's, labelled with the accel.
    In a campaign of several kernels each kernel has its own record (the first guest's is also
    the campaign's environment record); a guest whose release differs from its label's is refused."""
    environment, config = env.snapshot()
    previous = campaign.environment()
    release = environment["kernel"]["release"]
    plan = campaign.plan()
    if plan.multi_boot:
        if slot is None or not 0 <= slot < len(plan.slots):
            raise UsageError(f"{campaign.path}: give --boot-slot 0 to {len(plan.slots) - 1}")
        label = plan.slots[slot]
        recorded = campaign.kernel_environment(label).get("kernel", {}).get("release")
        if recorded and recorded != release:
            raise UsageError(
                f"{campaign.path}: kernel {label} ran on {recorded} in an earlier boot, this guest runs {release}"
            )
        if not recorded:
            campaign.save_kernel_environment(label, environment, config)
        if "pending" not in previous:
            return
    elif previous and "pending" not in previous:
        if previous.get("kernel", {}).get("release") != release:
            raise UsageError(
                f"{campaign.path}: campaign started on kernel "
                f"{previous['kernel']['release']}, this guest runs {release}"
            )
        return
    if previous.get("vm_boots"):  # boots that failed before this one wrote the record
        environment["vm_boots"] = previous["vm_boots"]
    campaign.save_environment(environment, config)
