"""Reading finished runs back as records for summaries, statistics and plots.

The SQLite index gives the per-run metrics; the raw fio JSON gives the json+ latency bins
(merged per run over its jobs and directions) when a pooled latency distribution is wanted.
Points come back normalised (bench.points): the same setting spelled differently by different
fio versions is one point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench import fio, points, store


@dataclass
class RunRecord:
    campaign: str
    campaign_dir: Path
    run_id: str
    target: str
    point_key: str
    point: dict
    round: int
    repetition: int
    position: int
    host: str
    kernel: str
    metrics: dict
    # the run's json+ histogram as the index keeps it (store.encode_bins); None: not in the
    # index (indexed before it kept them) or not asked for.  Decoded on each use, not kept:
    # 9,600 runs' bins as dicts would take hundreds of MB, as text a few tens.
    bins_text: str | None = field(default=None, repr=False)
    # a campaign of several kernels or boots: the run's kernel label and planned boot slot
    kernel_label: str | None = None
    boot_slot: int | None = None
    boot_id: str | None = None  # the boot it ran in (/proc/sys/kernel/random/boot_id)

    @property
    def bins(self) -> dict[int, int]:
        """The run's merged json+ completion-latency bins ({} without json+)."""
        if self.bins_text is None:
            self.bins_text = store.encode_bins(_bins_of(store.run_files_at(self.campaign_dir, self.run_id)))
        return store.decode_bins(self.bins_text)

    @property
    def has_bins(self) -> bool:
        if self.bins_text is None:
            return bool(self.bins)
        return self.bins_text != "[]"


def load_runs(campaign: store.Campaign, *, with_bins: bool = False) -> list[RunRecord]:
    """Finished runs; `with_bins` keeps each run's json+ histogram text from the index."""
    records = []
    for row in store.run_rows(campaign):
        if row["status"] != "done":
            continue
        metrics = {k: row[k] for k in store.RUN_METRIC_COLUMNS}
        metrics |= {
            "cpu_softirq_s": row["cpu_softirq_s"],
            "cpu_system_s": row["cpu_system_s"],
            "cpu_user_s": row["cpu_user_s"],
            "cpu_irq_s": row["cpu_irq_s"],
            "block_softirqs": row["block_softirqs"],
        }
        # one spelling per setting (iodepth=01 is iodepth=1, bs=4096 is bs=4k): equal points pair
        point = points.normalise(json.loads(row["point_json"] or "{}"))
        rec = RunRecord(
            campaign.name,
            campaign.path,
            row["run_id"],
            row["target"],
            points.key_of(point),
            point,
            row["round"],
            row["repetition"],
            row["position"],
            row["host"] or "",
            row["kernel"] or "",
            metrics,
            row["clat_bins"] if with_bins else None,
            row["kernel_label"],
            row["boot_slot"],
            row["boot_id"],
        )
        records.append(rec)
    return records


def run_bins(campaign: store.Campaign, run_id: str) -> dict[int, int]:
    return _bins_of(campaign.run_files(run_id))


def _bins_of(files: store.RunFiles) -> dict[int, int]:
    try:
        output = files.read_fio_output()
    except (OSError, fio.FioParseError):
        return {}
    lats = [lat for d in fio.used_directions(output) if (lat := d.latency_percentiles())]
    return fio.merged_bins(lats)


def missing_reason(rec: RunRecord, column: str) -> str:
    """Why a run has no value for a metric column, read from its raw fio output."""
    path = store.Campaign(rec.campaign_dir).run_files(rec.run_id).fio_output
    try:
        output = fio.parse(path.read_text())
    except OSError as exc:
        return f"{path}: unreadable ({exc.strerror})"
    except fio.FioParseError as exc:
        return f"{path}: {exc}"
    return fio.missing_reason(output, column)


def group(records: list[RunRecord], *keys: str) -> dict[tuple, list[RunRecord]]:
    out: dict[tuple, list[RunRecord]] = {}
    for rec in records:
        out.setdefault(tuple(getattr(rec, k) for k in keys), []).append(rec)
    return out
