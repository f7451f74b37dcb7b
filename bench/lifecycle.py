"""Device lifecycle: set a target up once per session or afresh before every run (`recreate`),
and `prefill` it — write the whole device once, sequentially, before measuring.

The published rnull comparisons reload the driver and prefill a memory-backed device before
every sample: a memory-backed null_blk or rnull allocates a page on the first write to each
block, so a device measured fresh and one measured after a full write are different devices.
The prefill job is blkcmp's own (no workload option reaches it) and goes through the same
path as a measured run: the write-refusal check on the device first, then fio recorded in the
state file before it starts (bench.fio.run), in a recorded temporary directory.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import fio, ledger
from bench.errors import RunError
from bench.targets import Target

PREFILL_BS = "1M"
PREFILL_IODEPTH = 16  # enough to keep a RAM-backed device busy with libaio, small for a loop device
PREFILL_TIMEOUT_S = 3600.0  # a whole device, written once: generous, but fio must end


def prefill_job_text(target: Target, filename: str) -> str:
    """A plain sequential write of the whole device (or file): fio writes the file's or the
    device's size when no size is given. Block devices direct=1; a regular file (tmpfs by
    default, which refuses O_DIRECT) buffered, then fsynced."""
    block = bool(target.device and target.device.block_device)
    lines = [
        f"# blkcmp prefill of target {target.name} ({target.driver}): the whole device, once",
        "[global]",
        f"filename={filename}",
        "rw=write",
        f"bs={PREFILL_BS}",
        "ioengine=libaio",
        f"iodepth={PREFILL_IODEPTH}",
        f"direct={1 if block else 0}",
    ]
    if not block:
        lines.append("end_fsync=1")
    lines += ["", "[prefill]"]
    return "\n".join(lines) + "\n"


def device_bytes(target: Target) -> int | None:
    """The size fio will write: the block device's capacity, or the regular file's size."""
    device = target.device
    if device is None or device.filename is None:
        return None
    if device.block_device:
        from bench.targets import blockdev

        sectors = (blockdev.SYS_BLOCK / blockdev.disk_name(device.block_device) / "size").read_text()
        return int(sectors) * 512
    return Path(device.filename).stat().st_size


def prefill(target: Target) -> dict[str, Any]:
    """Write the whole of the target's device once; returns the prefill's record. A fio that
    fails, or writes less than the whole device, is a RunError (nothing is measured after it)."""
    device = target.device
    if device is None or device.filename is None:
        raise RunError(f"target {target.name}: driver {target.driver} has no device to prefill")
    target.check_before_run(True)  # the write-refusal policy, as before every measured run
    size = device_bytes(target)
    with ledger.temporary_directory("blkcmp-prefill-") as tmp:
        job, output = tmp / "prefill.fio", tmp / "prefill.json"
        job.write_text(prefill_job_text(target, device.filename))
        t0 = time.monotonic()
        invocation = fio.run(job, output, timeout_s=PREFILL_TIMEOUT_S)
        seconds = time.monotonic() - t0
        try:
            parsed = fio.parse(output.read_text())
        except (OSError, fio.FioParseError) as exc:
            raise RunError(
                f"target {target.name}: prefill of {device.filename} failed: fio exited with status "
                f"{invocation.returncode}, output unreadable ({exc})"
            ) from None
    written = int(sum(d.io_bytes for j in parsed.jobs for k, d in j.directions.items() if k == "write"))
    errors = [j.error for j in parsed.jobs if j.error]
    if invocation.returncode != 0 or errors or (size is not None and written != size):
        raise RunError(
            f"target {target.name}: prefill of {device.filename} failed: fio status "
            f"{invocation.returncode}, errors {errors or 'none'}, wrote {written} of {size} bytes"
        )
    return {
        "done": True,
        "device": device.filename,
        "bytes": written,
        "device_bytes": size,
        "seconds": round(seconds, 3),
        "started": invocation.started,
        "job": {"rw": "write", "bs": PREFILL_BS, "iodepth": PREFILL_IODEPTH, "ioengine": "libaio"},
    }


def with_audit(target: Target, described: dict[str, Any]) -> dict[str, Any]:
    """A target's description with its device lifecycle added to the fairness audit (the
    workload refuses a difference at load unless allow_differences names it)."""
    if "audit" not in described:
        return described
    lifecycle = {"recreate": target.recreate, "prefill": str(int(target.prefill))}
    return described | {"audit": described["audit"] | lifecycle}


class Lifecycle:
    """One target's set-ups and prefills in a session, and the record each run gets."""

    def __init__(self, target: Target):
        self.target = target
        self.setups = 0
        self.fresh = False  # set up and not yet measured: the next run needs no re-creation
        self.record: dict[str, Any] = {}

    def set_up(self) -> None:
        """Set the target up (again, for recreate: run: tear the old device down first, same
        options), then prefill it when asked."""
        if self.setups:
            self.target.teardown()
        started = fio.utc_now()
        t0 = time.monotonic()
        self.target.setup()
        self.setups += 1
        self.fresh = True
        audit = self.target.describe().get("audit")
        if self.setups == 1:
            self.first_audit = audit
        elif audit != self.first_audit:
            # The session's fairness audit was made on the first device; a re-created one that
            # came out otherwise (a clamped value, another scheduler) would compare another device.
            changed = sorted(
                k
                for k in set(audit or {}) | set(self.first_audit or {})
                if (audit or {}).get(k) != (self.first_audit or {}).get(k)
            )
            raise RunError(
                f"target {self.target.name}: the device re-created for the next run differs from the "
                f"first set-up in {', '.join(changed)}; finished runs are kept"
            )
        self.record = {
            "recreate": self.target.recreate,
            "setup": {
                "number": self.setups,  # in this session
                "started": started,
                "seconds": round(time.monotonic() - t0, 3),
                "created_ns": time.time_ns(),
            },
            "prefill": prefill(self.target) if self.target.prefill else {"done": False},
        }

    def before_run(self) -> dict[str, Any]:
        """Called before each measured run; returns the lifecycle record of the run."""
        if self.target.recreate == "run" and not self.fresh:
            self.set_up()
        self.fresh = False
        return self.record
