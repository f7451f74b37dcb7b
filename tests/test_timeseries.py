"""`timeseries:`: fio's IOPS/bandwidth/latency logs written into each run's directory by a real
campaign, indexed, exported as rows equal to the log files' numbers, and drawn per point (checked
against a specimen with a known stall)."""

from __future__ import annotations

import csv
import io
import json

import pytest
import specimen
from conftest import campaign_dir, index_rows, needs_root, no_traceback, run_cli, write_workload

from bench import fio_options, timeseries
from bench.plots import overtime
from bench.plots.data import load
from bench.workload import loads

WORKLOAD = """name: ts
targets:
  n: {{driver: fio-null}}
  f:
    driver: file
    options: {{size: 8, directory: {tmp}}}
fio:
  ioengine: psync
  rw: randrw
matrix:
  numjobs: [1, 2]
repetitions: 1
runtime: 1
ramp_time: 0
seed: 2
timeseries: 250ms
"""


@needs_root
def test_a_real_campaign_keeps_indexes_and_exports_its_time_series(tmp_path, env):
    path = write_workload(tmp_path, WORKLOAD.format(tmp=tmp_path))
    proc = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    campaign = campaign_dir(tmp_path / "results")
    expected: list[tuple] = []
    for run in sorted((campaign / "runs").iterdir()):
        job = (run / "job.fio").read_text()
        assert "write_iops_log=timeseries\n" in job and "log_avg_msec=250\n" in job
        numjobs = 2 if "numjobs=2" in job else 1
        for kind in ("iops", "bw", "clat", "lat"):
            for n in range(1, numjobs + 1):
                lines = (run / f"timeseries_{kind}.{n}.log").read_text().splitlines()
                assert lines, f"{run.name}: empty {kind} log of job {n}"
                factor = 1024 if kind == "bw" else 1
                metric = {"iops": "iops", "bw": "bw_bytes", "clat": "clat_ns", "lat": "lat_ns"}[kind]
                for line in lines:
                    t, v, d = (int(x) for x in line.split(",")[:3])
                    expected.append((run.name, n, metric, ("read", "write")[d], t, float(v * factor)))
        assert list(run.glob("timeseries_clat_hist.*.log"))  # kept with the run, not indexed

    proc = run_cli("export", campaign, "--timeseries", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert proc.stdout.splitlines()[0] == (
        "campaign,run_id,target,point_key,round,repetition,job,metric,direction,time_ms,value"
    )
    got = sorted(
        (r["run_id"], int(r["job"]), r["metric"], r["direction"], int(r["time_ms"]), float(r["value"]))
        for r in rows
    )
    assert got == sorted(expected)
    targets = {r["run_id"]: r["target"] for r in rows}
    assert {targets[r["run_id"]] for r in index_rows(campaign)} == {"n", "f"}
    as_json = json.loads(run_cli("export", campaign, "--timeseries", "--format", "json", env=env).stdout)
    assert len(as_json) == len(rows) and as_json[0]["metric"] in ("iops", "bw_bytes", "clat_ns", "lat_ns")


@needs_root
def test_export_timeseries_of_a_campaign_without_says_so(tmp_path, env):
    path = write_workload(
        tmp_path,
        WORKLOAD.format(tmp=tmp_path)
        .replace("timeseries: 250ms\n", "")
        .replace("numjobs: [1, 2]", "numjobs: [1]")
        .replace(f"  f:\n    driver: file\n    options: {{size: 8, directory: {tmp_path}}}\n", ""),
    )
    assert run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env).returncode == 0
    proc = run_cli("export", campaign_dir(tmp_path / "results"), "--timeseries", env=env)
    assert proc.returncode == 0
    no_traceback(proc)
    assert proc.stdout.splitlines() == [
        "campaign,run_id,target,point_key,round,repetition,job,metric,direction,time_ms,value"
    ]
    assert "no time-series samples" in proc.stderr


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("timeseries: 1s\nfio:\n  log_avg_msec: 100\n", "blkcmp passes it for `timeseries:`"),
        ("timeseries: 1s\nallow_fio_options: [write_bw_log]\nfio:\n  write_bw_log: x\n", "`timeseries:`"),
        ("timeseries: 5ms\n", "from 10 ms"),
        ("timeseries: often\n", "such as 1s or 500ms"),
        ("timeseries: 10ms\nruntime: 3600\n", "at most 100000 samples"),
    ],
)
def test_timeseries_settings_are_checked(text, fragment):
    with pytest.raises(Exception) as info:
        loads("targets:\n  a: {driver: fio-null}\n" + text, "w.yaml", fio_options.table())
    assert fragment in str(info.value), str(info.value)


@pytest.mark.parametrize("value,msec", [("1s", 1000), ("500ms", 500), (2, 2000), ("0.25s", 250), (0.5, 500)])
def test_timeseries_intervals(value, msec):
    workload = loads(f"targets:\n  a: {{driver: fio-null}}\ntimeseries: {value}\n", "w.yaml")
    assert workload.timeseries_msec() == msec


def test_log_lines_are_parsed_strictly_and_summed_per_window():
    samples = timeseries.parse_log("250, 100, 0, 4096, 0\n500, 90, 0, 4096, 0\n", 1, "iops")
    samples += timeseries.parse_log(
        "251, 10, 1, 4096, 0\n502, 20, 1, 4096, 0\n750, 30, 1, 4096, 0\n", 1, "iops"
    )
    samples += timeseries.parse_log("250, 2, 0, 0, 0\n", 1, "bw")
    assert samples[-1].metric == "bw_bytes" and samples[-1].value == 2048.0
    # the third window lacks the read sample: left out rather than shown as a stall
    assert timeseries.total_per_window(samples) == [(0.25, 110.0), (0.5, 110.0)]
    with pytest.raises(timeseries.TimeseriesError, match="line 2"):
        timeseries.parse_log("250, 1, 0\n250 1 0\n", 1, "iops")


@pytest.fixture(scope="module")
def stalled(tmp_path_factory):
    return specimen.create(
        tmp_path_factory.mktemp("stall"),
        specimen.Specimen(
            name="stall",
            matrix={"rw": ["randread"], "bs": ["4k"], "iodepth": [1, 8]},
            rounds=3,
            runtime=2.0,
            timeseries_msec=250,
            stall=("rnull", 3, 0.25),
            seed=4,
        ),
    )


def test_iops_over_time_draws_every_run_and_shows_the_known_stall(stalled):
    ds = load([stalled])
    fig = overtime.iops_over_time(ds)
    assert fig.name == "iops-over-time"
    assert len(fig.data) == 2 * 2 * 3  # targets x points x rounds: every run a line
    for line in fig.data:
        assert line["seconds"] == [0.25 * k for k in range(1, 9)]
        others = [v for k, v in enumerate(line["iops"]) if k != 3]
        assert max(others) == min(others)  # the specimen's runs are flat but for the stall
        ratio = line["iops"][3] / others[0]
        assert ratio == pytest.approx(0.25 if line["target"] == "rnull" else 1.0, abs=1e-5)
    assert any("each line one run" in t.get_text() for t in fig.figure.texts)


def test_iops_over_time_is_skipped_with_a_note_without_time_series(tmp_path):
    ds = load([specimen.create(tmp_path, specimen.Specimen(name="flat"))])
    result = overtime.iops_over_time(ds)
    assert result.name == "iops-over-time" and "set `timeseries: 1s`" in result.reason
