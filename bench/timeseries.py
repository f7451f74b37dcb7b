"""Per-run time series: fio's averaged IOPS, bandwidth and latency logs of a run, as rows.

With `timeseries: 1s` in the workload blkcmp has fio write, into each run's directory,
`timeseries_iops.N.log`, `timeseries_bw.N.log`, `timeseries_clat.N.log`, `timeseries_lat.N.log`,
`timeseries_slat.N.log` and `timeseries_clat_hist.N.log` (N: fio's job number, 1 … numjobs).
Each line of the averaged logs is `time (ms since the job started), value, direction, block size,
offset[, priority]`; bandwidth is KiB/s, latencies are ns. The histogram logs are kept with the
run but not turned into rows. Pure functions on text, plus `read_run` (the files of one run).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.fio import TIMESERIES_PREFIX

# fio's log kind -> (the metric blkcmp names it, factor to blkcmp's unit)
KINDS = {
    "iops": ("iops", 1.0),
    "bw": ("bw_bytes", 1024.0),
    "clat": ("clat_ns", 1.0),
    "lat": ("lat_ns", 1.0),
    "slat": ("slat_ns", 1.0),
}
DIRECTIONS = {0: "read", 1: "write", 2: "trim"}
_FILE = re.compile(rf"^{TIMESERIES_PREFIX}_(iops|bw|clat|lat|slat)\.(\d+)\.log$")


class TimeseriesError(ValueError):
    """A log line that is not fio's `time, value, direction, …`."""


@dataclass(frozen=True)
class Sample:
    job: int  # fio's job number (1 … numjobs)
    metric: str  # iops, bw_bytes, clat_ns, lat_ns, slat_ns
    direction: str  # read, write, trim
    time_ms: int
    value: float

    def to_dict(self) -> dict:
        return asdict(self)


def parse_log(text: str, job: int, kind: str) -> list[Sample]:
    metric, factor = KINDS[kind]
    samples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        try:
            time_ms, value, direction = int(fields[0]), float(fields[1]), int(fields[2])
        except (IndexError, ValueError):
            raise TimeseriesError(
                f"line {number}: expected `time, value, direction, …`, found {line[:60]!r}"
            ) from None
        samples.append(
            Sample(job, metric, DIRECTIONS.get(direction, str(direction)), time_ms, value * factor)
        )
    return samples


def log_files(run_dir: Path) -> list[tuple[Path, str, int]]:
    """(path, kind, job number) of each averaged log in a run directory, in a stable order."""
    found = []
    for path in sorted(run_dir.iterdir()):
        if m := _FILE.match(path.name):
            found.append((path, m.group(1), int(m.group(2))))
    return found


def read_run(run_dir: Path) -> list[Sample]:
    """Every sample of a run's time-series logs (none when the workload asked for none)."""
    samples: list[Sample] = []
    for path, kind, job in log_files(run_dir):
        try:
            samples += parse_log(path.read_text(), job, kind)
        except TimeseriesError as exc:
            raise TimeseriesError(f"{path}: {exc}") from None
    return samples


def total_per_window(samples: list[dict] | list[Sample], metric: str = "iops") -> list[tuple[float, float]]:
    """(seconds, value) per logging window: the k-th sample of every job and direction summed.

    fio closes each job's and direction's windows at nearly the same moment (a few ms apart);
    the time of a window is the earliest of its samples. A window some job or direction has no
    sample for (the last, cut short when the run ended) is left out: its sum would look like a stall.
    """
    series: dict[tuple[int, str], list[tuple[int, float]]] = {}
    for s in samples:
        s = s if isinstance(s, dict) else s.to_dict()
        if s["metric"] == metric:
            series.setdefault((s["job"], s["direction"]), []).append((s["time_ms"], s["value"]))
    if not series:
        return []
    length = min(len(v) for v in series.values())
    out = []
    for k in range(length):
        present = [v[k] for v in series.values()]
        out.append((min(t for t, _ in present) / 1000.0, sum(value for _, value in present)))
    return out
