"""fio output parsing on real output produced here (ioengine=null, or psync on a small file in the
test's tmp dir; runtime 1 s), then `blkcmp ingest` + `blkcmp export` of the same files.

Each output is produced once per module (fixture `outputs`) and checked by several tests.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from conftest import FIO, fio_servers, run_cli, run_fio

from bench import fio
from bench.export import COLUMNS, EXTRA

NULL = "[global]\nioengine=null\nsize=64M\ntime_based=1\nruntime=1\n"

JOBS = {
    # numjobs=2 without group_reporting: one entry per process
    "numjobs2": NULL + "[nj]\nrw=randread\nbs=4k\nnumjobs=2\n",
    # the same with group_reporting: one entry for both
    "grouped": NULL + "group_reporting=1\n[nj]\nrw=randread\nbs=4k\nnumjobs=2\n",
    "randrw": NULL + "[rw]\nrw=randrw\nrwmixread=70\nbs=4k\n",
    "mixed": NULL + "unified_rw_reporting=mixed\n[mx]\nrw=randrw\nrwmixread=50\nbs=4k\n",
    # two jobs, the second waits for the first
    "stonewall": NULL + "[first]\nrw=read\nbs=4k\n[second]\nstonewall\nrw=write\nbs=8k\n",
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """name -> file holding fio's stdout, exactly as fio printed it."""
    d = tmp_path_factory.mktemp("fio")
    files = {}
    for name, text in JOBS.items():
        files[name] = d / f"{name}.json"
        files[name].write_text(run_fio(d, text, name=f"{name}.fio"))
    # psync with iodepth > 1: fio prints a note on stdout before the JSON document.
    psync = (
        f"[global]\nioengine=psync\niodepth=4\nsize=8M\nfilename={d}/psync.img\ntime_based=1\n"
        "runtime=1\ndirect=0\n[ps]\nrw=randread\nbs=4k\n"
    )
    files["psync"] = d / "psync.json"
    files["psync"].write_text(run_fio(d, psync, name="psync.fio"))
    # client/server: two fio servers on free local ports, one job file sent to each.
    job = d / "cs.fio"
    job.write_text(NULL + "[cs]\nrw=randread\nbs=4k\n")
    with fio_servers(2, d) as ports:
        cmd = [FIO]
        for port in ports:
            cmd += [f"--client=127.0.0.1,{port}", str(job)]
        proc = subprocess.run(
            cmd + ["--output-format=json+"], cwd=d, capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 0, proc.stderr
    files["clients"] = d / "clients.json"
    files["clients"].write_text(proc.stdout)
    files["ports"] = ports  # type: ignore[assignment]
    return files


def raw(path: Path) -> dict:
    return fio.decode(path.read_text())


def test_numjobs_without_group_reporting_gives_one_entry_per_process(outputs):
    out = fio.parse(outputs["numjobs2"].read_text())
    assert [j.jobname for j in out.jobs] == ["nj", "nj"]
    entries = raw(outputs["numjobs2"])["jobs"]
    metrics = fio.run_metrics(out)
    assert metrics.iops == sum(e["read"]["iops"] for e in entries) > 0
    assert metrics.read_iops == metrics.iops and metrics.write_iops is None
    assert metrics.total_ios == sum(e["read"]["total_ios"] for e in entries)


def test_numjobs_with_group_reporting_gives_one_entry(outputs):
    out = fio.parse(outputs["grouped"].read_text())
    assert len(out.jobs) == 1
    entry = raw(outputs["grouped"])["jobs"][0]
    assert fio.run_metrics(out).iops == entry["read"]["iops"] > 0
    assert out.jobs[0].option("numjobs") == "2"


def test_randrw_uses_both_directions(outputs):
    out = fio.parse(outputs["randrw"].read_text())
    (job,) = out.jobs
    assert job.directions["read"].used and job.directions["write"].used
    assert not job.directions["trim"].used
    m = fio.run_metrics(out)
    entry = raw(outputs["randrw"])["jobs"][0]
    assert m.read_iops == entry["read"]["iops"] and m.write_iops == entry["write"]["iops"]
    assert m.iops == pytest.approx(m.read_iops + m.write_iops)
    # rwmixread=70 over a second of null I/O: far more reads than writes
    assert job.directions["read"].total_ios > job.directions["write"].total_ios


def test_unified_rw_reporting_mixed_has_only_a_mixed_direction(outputs):
    out = fio.parse(outputs["mixed"].read_text())
    (job,) = out.jobs
    assert [d for d, v in job.directions.items() if v.used] == ["mixed"]
    m = fio.run_metrics(out)
    assert m.mixed_iops == raw(outputs["mixed"])["jobs"][0]["mixed"]["iops"] > 0
    assert m.read_iops is None and m.write_iops is None
    assert m.iops == m.mixed_iops


def test_psync_note_before_the_json_is_skipped(outputs):
    text = outputs["psync"].read_text()
    before = text[: text.index("{")]
    assert "note: both iodepth >= 1 and synchronous I/O engine" in before
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # the note really is there: plain json.loads fails
    out = fio.parse(text)
    assert [j.jobname for j in out.jobs] == ["ps"]
    assert fio.run_metrics(out).read_iops > 0


def test_stonewall_jobs_are_separate_entries_in_separate_groups(outputs):
    out = fio.parse(outputs["stonewall"].read_text())
    assert [(j.jobname, j.groupid) for j in out.jobs] == [("first", 0), ("second", 1)]
    first, second = out.jobs
    assert first.directions["read"].used and not first.directions["write"].used
    assert second.directions["write"].used and not second.directions["read"].used
    assert second.option("bs") == "8k" and first.option("bs") == "4k"
    m = fio.run_metrics(out)
    assert m.read_iops == first.directions["read"].iops
    assert m.write_iops == second.directions["write"].iops


def test_client_server_gives_one_job_per_server_and_skips_all_clients(outputs):
    data = raw(outputs["clients"])
    assert "client_stats" in data
    assert "All clients" in [e["jobname"] for e in data["client_stats"]]  # fio's aggregate is there
    out = fio.parse(outputs["clients"].read_text())
    assert out.client_mode
    assert [j.jobname for j in out.jobs] == ["cs", "cs"]
    assert {j.host for j in out.jobs} == {"127.0.0.1"}
    assert sorted(j.port for j in out.jobs) == sorted(outputs["ports"])
    per_server = [e for e in data["client_stats"] if e["jobname"] != "All clients"]
    assert fio.run_metrics(out).iops == pytest.approx(sum(e["read"]["iops"] for e in per_server))
    assert all(j.option("ioengine") == "null" for j in out.jobs)  # from the global options


def test_global_options_as_an_object(outputs):
    data = raw(outputs["numjobs2"])
    assert isinstance(data["global options"], dict)
    job = fio.parse(data).jobs[0]
    assert job.option("ioengine") == "null" and job.option("size") == "64M"  # global section
    assert job.option("rw") == "randread"  # job section


def test_global_options_as_a_per_server_array(outputs):
    # fio 3.33 (installed here) prints one `global options` object even for several servers;
    # fio >= 3.39 prints an array of per-server objects carrying hostname and port. This array
    # is constructed by transforming the real client/server output above into that form, with
    # a different `size` per server so the lookup by (host, port) shows.
    data = raw(outputs["clients"])
    shared = data["global options"]
    ports = sorted(outputs["ports"])
    data["global options"] = [
        {"hostname": "127.0.0.1", "port": p, **shared, "size": f"{i + 1}M"} for i, p in enumerate(ports)
    ]
    out = fio.parse(data)
    sizes = {j.port: j.option("size") for j in out.jobs}
    assert sizes == {ports[0]: "1M", ports[1]: "2M"}
    assert all("hostname" not in j.options and "port" not in j.options for j in out.jobs)
    assert all(j.option("ioengine") == "null" for j in out.jobs)


def test_missing_disk_util_and_text_after_the_json(outputs):
    text = outputs["psync"].read_text()
    data = fio.decode(text)
    reference = fio.run_metrics(fio.parse(data))
    stripped = dict(data)
    stripped.pop("disk_util", None)
    out = fio.parse(json.dumps(stripped))
    assert out.disk_util == []
    assert fio.run_metrics(out) == reference
    trailing = text + '\nfio: something printed after the document {"jobs": oops}\n'
    assert fio.run_metrics(fio.parse(trailing)) == reference


def test_text_that_is_not_fio_output_is_refused():
    with pytest.raises(fio.FioParseError):
        fio.parse('note: {"a": 1} and no document')
    with pytest.raises(fio.FioParseError):
        fio.parse('{"jobs": []}')


@pytest.mark.parametrize("name", ["psync", "randrw", "stonewall"])
def test_percentiles_from_bins_equal_fios_own(outputs, name):
    out = fio.parse(outputs[name].read_text())
    checked = 0
    for job in out.jobs:
        for direction in job.directions.values():
            if not direction.used:
                continue
            lat = direction.completion_latency()
            assert lat.bins, "json+ output has latency bins"
            for pct in (50.0, 99.0, 99.9):
                assert fio.percentile_from_bins(lat.bins, pct) == lat.percentiles[pct]
            checked += 1
    assert checked >= 1
    if len(out.jobs) == 1 and checked == 1:
        (lat,) = [d.completion_latency() for d in out.jobs[0].directions.values() if d.used]
        assert fio.run_metrics(out).clat_p99_ns == lat.percentiles[99.0]


# ------------------------------------------------------------------------------------------
# ingest + export


def _number(value):
    return None if value in ("", None) else float(value)


def test_ingest_then_export_csv_and_json(outputs, tmp_path, env):
    names = ["numjobs2", "randrw", "mixed", "clients", "psync"]
    into = tmp_path / "ingested"
    proc = run_cli("ingest", *(outputs[n] for n in names), "--into", into, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "ingested 5 run(s)" in proc.stdout
    parsed = {n: fio.parse(outputs[n].read_text()) for n in names}

    proc = run_cli("export", into, "--format", "csv", env=env)
    assert proc.returncode == 0, proc.stderr
    reader = csv.DictReader(io.StringIO(proc.stdout))
    assert tuple(reader.fieldnames[: len(COLUMNS)]) == COLUMNS
    assert tuple(reader.fieldnames) == COLUMNS + EXTRA
    rows = list(reader)
    # one row per run × job entry; client/server: one per server (the aggregate skipped)
    assert len(rows) == sum(len(p.jobs) for p in parsed.values()) == 2 + 1 + 1 + 2 + 1
    by_run: dict[str, list[dict]] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    assert len(by_run) == 5
    for name, run_rows in zip(names, by_run.values()):  # ingest order is export order
        jobs = parsed[name].jobs
        assert len(run_rows) == len(jobs)
        for row, job in zip(run_rows, jobs):
            assert row["job"] == job.jobname and row["target"] == job.jobname
            assert row["fio_version"] == parsed[name].fio_version
            for direction in ("read", "write", "mixed"):
                d = job.directions.get(direction)
                expected = d.iops if d and d.used else None
                assert _number(row[f"{direction}_iops"]) == expected, (name, direction)
            read = job.directions.get("read")
            if read and read.used:
                assert _number(row["read_clat_p99_ns"]) == read.completion_latency().percentiles[99.0]
                assert _number(row["read_bw_bytes"]) == read.bw_bytes
            assert _number(row["usr_cpu"]) == job.usr_cpu
            assert row["host"] == (job.host or "")
            assert row["rw"] == job.option("rw")
    mixed_row = by_run[next(r for r in by_run if r.endswith("mx"))][0]
    assert mixed_row["mixed_iops"] != "" and mixed_row["read_iops"] == "" and mixed_row["write_iops"] == ""
    client_rows = by_run[next(r for r in by_run if r.endswith("cs"))]
    assert [r["host"] for r in client_rows] == ["127.0.0.1", "127.0.0.1"]
    assert [r["job_index"] for r in client_rows] == ["0", "1"]

    proc = run_cli("export", into, "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data) == len(rows)
    assert all(tuple(item) == COLUMNS + EXTRA for item in data)
    for item, row in zip(data, rows):
        for key in ("read_iops", "write_iops", "mixed_iops", "read_clat_p99_ns", "usr_cpu"):
            assert item[key] == _number(row[key])
        assert item["run_id"] == row["run_id"] and item["numjobs"] == row["numjobs"]
    mixed_item = next(i for i in data if i["run_id"].endswith("mx"))
    assert mixed_item["mixed_iops"] > 0 and mixed_item["read_iops"] is None


def test_ingest_of_a_file_that_is_not_fio_output_changes_nothing(tmp_path, env, outputs):
    bad = tmp_path / "bad.json"
    bad.write_text("hello\n")
    into = tmp_path / "ingested"
    proc = run_cli("ingest", outputs["grouped"], bad, "--into", into, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"blkcmp: error: {bad}: not fio JSON output")
    assert not into.exists()
