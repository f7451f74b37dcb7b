"""`blkcmp export`: one row per run × fio job (× host), as CSV or JSON, for pandas and friends.

Failed runs are exported too, with their error in the `error` column (one row per job entry when
fio's output was read, else one row with the job columns empty); statistics never use them.
"""

from __future__ import annotations

import csv
import io
import json

from bench import store

# The columns users load by name; their order is part of the interface.
COLUMNS = ("campaign", "run_id", "target", "host", "job", "repetition", "round", "rw", "bs",
           "iodepth", "numjobs", "read_iops", "write_iops", "mixed_iops", "read_bw_bytes",
           "write_bw_bytes", "read_clat_mean_ns", "write_clat_mean_ns", "read_clat_p99_ns",
           "write_clat_p99_ns", "usr_cpu", "sys_cpu", "fio_version")
EXTRA = ("point_key", "position", "job_index", "kernel", "started", "ended", "error")


def rows(campaign: store.Campaign) -> list[dict]:
    with campaign.index() as db:
        result = db.execute(
            "SELECT r.campaign, r.run_id, r.target, j.host, j.job, r.repetition, r.round, j.rw, j.bs,"
            " j.iodepth, j.numjobs, j.read_iops, j.write_iops, j.mixed_iops, j.read_bw_bytes,"
            " j.write_bw_bytes, j.read_clat_mean_ns, j.write_clat_mean_ns, j.read_clat_p99_ns,"
            " j.write_clat_p99_ns, j.usr_cpu, j.sys_cpu, j.fio_version, r.point_key, r.position,"
            " j.job_index, r.kernel, r.started, r.ended, r.error"
            # failed runs too, with their error: a failed fio job is a result the user must see
            " FROM runs r LEFT JOIN jobs j ON j.run_id = r.run_id WHERE r.status IN ('done', 'failed')"
            " ORDER BY r.position, j.job_index").fetchall()
    return [dict(r) for r in result]


def to_csv(data: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS + EXTRA), lineterminator="\n")
    writer.writeheader()
    for row in data:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS + EXTRA})
    return buf.getvalue()


def to_json(data: list[dict]) -> str:
    return json.dumps([{k: row.get(k) for k in COLUMNS + EXTRA} for row in data], indent=1) + "\n"
