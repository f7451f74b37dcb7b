"""`blkcmp export`: one row per run × fio job (× host), as CSV or JSON, for pandas and friends.

Failed runs are exported too, with their error in the `error` column (one row per job entry when
fio's output was read, else one row with the job columns empty); statistics never use them.
`--timeseries`: one row per time-series sample instead (workloads with `timeseries:`).
"""

from __future__ import annotations

import csv
import io
import json

from bench import store

# The columns users load by name; their order is part of the interface. The job columns are the
# index's (bench.store.JOB_*): a column added there is exported without being spelled again.
COLUMNS = (
    "campaign",
    "run_id",
    "target",
    *store.JOB_IDENTITY,
    "repetition",
    "round",
    *store.JOB_OPTIONS,
    *store.JOB_MEASURES,
    "fio_version",
)
# kernel_label, boot_slot, boot_id: a campaign of several kernels (empty otherwise)
EXTRA = (
    "point_key",
    "position",
    "job_index",
    "kernel",
    "kernel_label",
    "boot_slot",
    "boot_id",
    "started",
    "ended",
    "error",
)
# `--timeseries`: job is fio's job number (1 … numjobs); time_ms since the job started; metric is
# iops, bw_bytes (bytes/s), clat_ns, lat_ns or slat_ns, each averaged over its logging window.
TIMESERIES_COLUMNS = (
    "campaign",
    "run_id",
    "target",
    "point_key",
    "round",
    "repetition",
    "job",
    "metric",
    "direction",
    "time_ms",
    "value",
)
# Where each column comes from: the job's row, except the run's error (a failed run has no job rows).
_FROM_JOB = frozenset(store.JOB_COLUMNS) - {"error"}
_SELECT = ", ".join(f"{'j' if c in _FROM_JOB else 'r'}.{c}" for c in COLUMNS + EXTRA)


def rows(campaign: store.Campaign) -> list[dict]:
    with campaign.index() as db:
        result = db.execute(
            f"SELECT {_SELECT}"
            # failed runs too, with their error: a failed fio job is a result the user must see
            " FROM runs r LEFT JOIN jobs j ON j.run_id = r.run_id WHERE r.status IN ('done', 'failed')"
            " ORDER BY r.position, j.job_index"
        ).fetchall()
    return [dict(r) for r in result]


def timeseries_rows(campaign: store.Campaign) -> list[dict]:
    with campaign.index() as db:
        result = db.execute(
            "SELECT r.campaign, r.run_id, r.target, r.point_key, r.round, r.repetition, t.job,"
            " t.metric, t.direction, t.time_ms, t.value"
            " FROM runs r JOIN timeseries t ON t.run_id = r.run_id WHERE r.status = 'done'"
            " ORDER BY r.position, t.job, t.metric, t.direction, t.time_ms"
        ).fetchall()
    return [dict(r) for r in result]


def to_csv(data: list[dict], columns: tuple[str, ...] = COLUMNS + EXTRA) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in data:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def to_json(data: list[dict], columns: tuple[str, ...] = COLUMNS + EXTRA) -> str:
    return json.dumps([{k: row.get(k) for k in columns} for row in data], indent=1) + "\n"
