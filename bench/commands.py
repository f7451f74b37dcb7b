"""What each `blkcmp` command does, given its parsed arguments (the glue between cli and modules)."""

from __future__ import annotations

import json
import os
import sqlite3
import sys

from bench.errors import RunError, StorageError, UsageError, is_storage_error, shorten, storage_error


def _say(text: str) -> None:
    print(f"blkcmp: {text}", file=sys.stderr, flush=True)


def cmd_schema(args) -> int:
    from bench.workload import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_plan(args) -> int:
    from bench import campaign as camp
    from bench.analysis_options import AnalysisOptions
    from bench.targets import Context, build_targets

    # --pilot's options are checked before anything else is done
    pilot_options = AnalysisOptions.parse(margin=args.margin, alpha=args.alpha) if args.pilot else None
    from bench import multikernel

    # a workload's kernels: and boots: plan as `run` will (no host here: nothing is probed)
    kernels, boots = multikernel.choose(camp.load_workload(args.workload), args.workload, None, None)
    several = multikernel.multi(kernels, boots)
    prepared = camp.prepare(
        args.workload,
        seed=args.seed,
        probe=False,
        kernels=[k.label for k in kernels] if several else None,
        boots=boots,
    )
    camp.check_with_fio(prepared)
    print(camp.plan_summary(prepared.plan))
    if args.export_fio:
        targets = build_targets(prepared.workload, Context("export"))
        jobs = camp.distinct_jobs(prepared.workload, prepared.plan, targets, prepared.plan.campaign)
        try:
            args.export_fio.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{args.export_fio}: cannot create: {exc.strerror}") from None
        for name, text in jobs.items():
            (args.export_fio / name).write_text(text)
        print(f"wrote {len(jobs)} fio job files to {args.export_fio}/")
    if args.pilot:
        from bench import sizing

        pilot = sizing.load(args.pilot, pilot_options)
        plan = prepared.plan
        planned = {p.key: max(plan.rounds, plan.max_rounds) for p in plan.points}
        print()
        print("\n".join(sizing.lines(pilot, planned)))
        unknown = sorted(set(planned) - {s.point for s in pilot.sizes})
        if unknown:
            print(f"no pilot data for {len(unknown)} planned point(s): {', '.join(unknown)}")
    return 0


def cmd_run(args) -> int:
    from bench import campaign as camp
    from bench import multikernel, store, summary

    if args.resume and args.workload:
        raise UsageError("give either a workload file or --resume DIR, not both")
    if not args.resume and not args.workload:
        raise UsageError("give a workload file (or --resume DIR)")
    in_guest = bool(os.environ.get("BLKCMP_VM_ACCEL"))  # the host that booted it says the rest
    kernel = None  # the one VM kernel of a campaign of one kernel and one boot
    if args.resume:
        if args.boots is not None:
            raise UsageError("--boots: a resumed campaign keeps the boots it was planned with")
        campaign = store.open_campaign(args.resume)
        info = campaign.info()
        workload = camp.load_campaign_workload(campaign)
        if in_guest:  # inside the guest of a VM campaign
            from bench.executors import vm

            vm.record_guest_environment(campaign, args.boot_slot)
        elif campaign.plan().multi_boot:
            kernel = _single(args.kernel)  # refused by the VM executor when given
        else:
            kernel = _single(args.kernel) or info.get("vm_kernel")
            if not kernel:
                _same_kernel(campaign)
    else:
        kernels, boots = multikernel.choose(
            camp.load_workload(args.workload), args.workload, args.kernel, args.boots, _say
        )
        if args.auto and not kernels:
            auto = _auto_kernel(args)
            kernels = [multikernel.KernelChoice(auto, auto)] if auto else []
        several = multikernel.multi(kernels, boots)
        prepared = camp.prepare(
            args.workload,
            seed=args.seed,
            probe=not kernels,
            message=_say,
            kernels=[k.label for k in kernels] if several else None,
            boots=boots,
        )
        camp.check_with_fio(prepared)
        workload = prepared.workload
        if kernels:
            from bench.executors import vm

            for choice in kernels:  # every kernel resolved and checked before anything is written
                vm.check_guest_kernel(prepared, choice.spec, progress=_say)
            if several:
                campaign = vm.create_vm_campaign(prepared, args.results, None, kernels)
            else:
                kernel = kernels[0].spec
                campaign = vm.create_vm_campaign(prepared, args.results, kernel)
        else:
            campaign = camp.create_campaign(prepared, args.results)
        _say(f"campaign directory: {campaign.path}")
    plan = campaign.plan()
    try:
        _execute(campaign, workload, plan, kernel, args, in_guest)
    except KeyboardInterrupt:
        raise RunError(f"interrupted; finished runs are kept: blkcmp run --resume {campaign.path}") from None
    except (StorageError, OSError, sqlite3.OperationalError) as exc:
        if not isinstance(exc, StorageError) and not is_storage_error(exc):
            raise
        # A full disk or a filesystem gone read-only: what finished is kept, the rest can follow.
        hint = f"finished runs are kept: once it can be written, `blkcmp run --resume {campaign.path}`"
        if isinstance(exc, StorageError):
            raise StorageError(f"{exc}; {hint}") from None
        raise storage_error(exc, hint=hint) from None
    if not args.quiet:
        summary.render(campaign)
        if not in_guest:
            summary.verdicts(campaign, warn=lambda line: print(f"blkcmp: warning: {line}", file=sys.stderr))
    print(f"results: {campaign.path}")
    if not in_guest:
        print("\n".join(summary.next_commands(campaign.path)))
    return 0


def _single(kernels: list[str] | None) -> str | None:
    """The one --kernel of a resumed campaign (a resume cannot change its kernels)."""
    if kernels and len(kernels) > 1:
        raise UsageError(
            "--resume: give at most one --kernel (a campaign keeps the kernels it was planned with)"
        )
    return kernels[0] if kernels else None


def _execute(campaign, workload, plan, kernel, args, in_guest: bool = False) -> None:
    from bench.executors import local
    from bench.progress import reporter_for

    if (kernel or plan.multi_boot) and not in_guest:
        from bench.executors import vm

        vm.execute_in_vm(
            campaign, kernel, quiet=args.quiet, timeout_s=args.vm_timeout, boot_attempts=args.boot_attempts
        )
    else:
        if plan.multi_boot and args.boot_slot is None:
            raise UsageError(
                f"{campaign.path}: a campaign of several kernels or boots runs one boot slot per guest"
            )
        reporter = reporter_for(plan.runtime + plan.ramp_time + 1.0, quiet=args.quiet)
        counts = local.execute(campaign, workload, reporter, slot=args.boot_slot if plan.multi_boot else None)
        _say(f"{counts.get('done', 0)} runs finished in this session")


def _same_kernel(campaign) -> None:
    import platform

    recorded = campaign.environment().get("kernel", {}).get("release")
    if recorded and recorded != platform.release():
        raise UsageError(
            f"{campaign.path}: campaign started on kernel {recorded}, this is "
            f"{platform.release()}; a campaign is resumed on the kernel it started on"
        )


def _auto_kernel(args) -> str | None:
    """`--auto`: the host when it has every driver the workload names, else the VM on the 7.2
    test kernel (whose guest has null_blk, rnull and loop)."""
    from bench import campaign as camp
    from bench.targets import Context, build_targets

    workload = camp.prepare(args.workload, seed=args.seed, probe=False).workload
    targets = build_targets(workload, Context("plan")).values()
    missing = {t.driver: avail.reason for t in targets if not (avail := t.probe()).ok}
    if not missing:
        drivers = ", ".join(sorted({t.driver for t in targets}))
        _say(f"the host has every driver of this workload ({drivers}): running on the host")
        return None
    _say("the host lacks " + "; ".join(f"{d} ({why})" for d, why in missing.items()))
    from bench import kernels

    cached = {k.version for k in kernels.list_cached()}
    if "7.2" not in cached:
        _say("the host lacks null_blk/rnull and no 7.2 test kernel is cached: building it (~15 min)")
        kernels.build("7.2", progress=_say)
    _say("the host lacks null_blk/rnull: running in a VM on the 7.2 test kernel")
    return "7.2"


def cmd_ingest(args) -> int:
    from bench.ingest import ingest

    added = ingest(args.files, args.into, args.target)
    print(f"ingested {len(added)} run(s) into {args.into}")
    return 0


def cmd_export(args) -> int:
    from bench import export, store

    campaign = store.open_campaign(args.dir)
    if args.timeseries:
        data, columns = export.timeseries_rows(campaign), export.TIMESERIES_COLUMNS
        if not data:
            _say(f"{args.dir}: no time-series samples (the workload sets no `timeseries:`)")
    else:
        data, columns = export.rows(campaign), export.COLUMNS + export.EXTRA
    text = export.to_csv(data, columns) if args.format == "csv" else export.to_json(data, columns)
    if args.output:
        store.atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_reindex(args) -> int:
    from bench import store

    campaign = store.open_campaign(args.dir)
    rebuilt = store.rebuild_index(campaign, in_memory_ok=False)
    print(f"{campaign.index_path}: {rebuilt}")
    return 0


def cmd_ls(args) -> int:
    from bench import store

    campaigns = store.list_campaigns(args.dir)
    if not campaigns:
        print(f"no campaigns under {args.dir}")
        return 0
    for c in campaigns:
        # One damaged campaign is marked in its own line; the others are listed as usual.
        try:
            if not store.is_campaign(c.path):
                raise UsageError(f"{c.info_path}: missing")
            c.info(), c.plan()  # what every other command needs: damaged is said here too
            state, counts = store.campaign_status(c)
            label = c.executor_label()
        except UsageError as exc:
            print(f"{c.path.name:48s} {'damaged':26s} {shorten(exc, 200)}")
            continue
        total = sum(counts.values())
        done = counts.get("done", 0)
        print(
            f"{c.path.name:48s} {state:26s} {done}/{total} runs"
            + (f"  [{label}]" if label and label != "host" else "")
        )
    return 0


def cmd_cleanup(args) -> int:
    from bench import ledger

    report = ledger.cleanup(force=args.force)
    if not report:
        print("nothing to clean up")
    for kind, what, outcome in report:
        print(f"{kind}: {what}: {outcome}")
    return 1 if any(o.startswith("failed") for _, _, o in report) else 0


def cmd_targets(args) -> int:
    from bench import targets_info

    if args.kernel:
        from bench.executors import vm

        print(vm.targets_in_vm(args.kernel))
    else:
        print(targets_info.render(targets_info.available_here()))
        print(targets_info.render_devices(targets_info.existing_devices()))
    return 0


def cmd_kernel_build(args) -> int:
    from bench import kernel_source, kernels

    source = kernel_source.from_request(
        args.version.strip() if args.version else None,
        args.source,
        args.patch,
        args.config_fragment,
        args.label,
    )
    info = kernels.build(
        source.version,
        progress=_say,
        overflow_checks=not args.no_overflow_checks,
        toolchain=args.toolchain,
        source=source,
    )
    print(f"{info.label or info.release}: {info.release} {info.path}")
    return 0


def _preempt(symbols) -> str:
    for name in ("PREEMPT_DYNAMIC", "PREEMPT", "PREEMPT_VOLUNTARY", "PREEMPT_NONE"):
        if symbols.get(f"CONFIG_{name}") == "y":
            return name.removeprefix("PREEMPT_").lower() if name != "PREEMPT" else "full"
    return "?"


def cmd_kernel_list(args) -> int:
    from bench import kernels

    rows = kernels.list_cached()
    if not rows:
        print("no cached kernels (build one with `blkcmp kernel build 7.2`)")
    for k in rows:
        symbols = k.config
        smoke = k.smoke_boot
        booted = (
            f"smoke boot ok ({smoke.get('attempts', 1)} attempt(s), {smoke.get('accel', '?')})"
            if smoke.get("ok")
            else "no smoke boot recorded"
        )
        source = k.source.get("description") or (k.source_package or "?")
        patches = ", ".join(f"{p['name']} ({p['sha256'][:8]})" for p in k.source.get("patches", [])) or "none"
        print(
            f"{k.name}\n"
            f"  label {k.label or '-'}, source {source}, patches {patches}\n"
            f"  release {k.release}, asked {k.version}, built with {k.suite or '?'}: "
            f"{kernels.toolchain_text(k.toolchain)}\n"
            f"  rust_overflow_checks={symbols.get('CONFIG_RUST_OVERFLOW_CHECKS', '?')} "
            f"null_blk={symbols.get('CONFIG_BLK_DEV_NULL_BLK', '?')} "
            f"rnull={symbols.get('CONFIG_BLK_DEV_RUST_NULL', '?')} "
            f"nvme={symbols.get('CONFIG_BLK_DEV_NVME', '?')} "
            f"preempt={_preempt(symbols)}, {booted}, "
            f"{k.bzimage_size / 2**20:.1f} MiB\n  {k.path}"
        )
    return 0
