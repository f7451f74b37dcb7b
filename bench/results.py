"""Reading finished runs back as records for summaries, statistics and plots.

The SQLite index gives the per-run metrics; the raw fio JSON gives the json+ latency bins
(merged per run over its jobs and directions) when a pooled latency distribution is wanted.
Points come back normalised (bench.points): the same setting spelled differently by different
fio versions is one point.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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
    bins: dict[int, int] | None = None   # loaded on demand (run_bins)


def load_runs(campaign: store.Campaign, *, with_bins: bool = False) -> list[RunRecord]:
    records = []
    for row in store.run_rows(campaign):
        if row["status"] != "done":
            continue
        metrics = {k: row[k] for k in store.RUN_METRIC_COLUMNS}
        metrics |= {"cpu_softirq_s": row["cpu_softirq_s"], "cpu_system_s": row["cpu_system_s"],
                    "cpu_user_s": row["cpu_user_s"], "cpu_irq_s": row["cpu_irq_s"],
                    "block_softirqs": row["block_softirqs"]}
        # one spelling per setting (iodepth=01 is iodepth=1, bs=4096 is bs=4k): equal points pair
        point = points.normalise(json.loads(row["point_json"] or "{}"))
        rec = RunRecord(campaign.name, campaign.path, row["run_id"], row["target"], points.key_of(point),
                        point, row["round"], row["repetition"],
                        row["position"], row["host"] or "", row["kernel"] or "", metrics)
        if with_bins:
            rec.bins = run_bins(campaign, rec.run_id)
        records.append(rec)
    return records


def run_bins(campaign: store.Campaign, run_id: str) -> dict[int, int]:
    try:
        output = campaign.run_files(run_id).read_fio_output()
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
