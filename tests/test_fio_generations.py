"""Every fio JSON generation people run: 2.x (µs, KiB), 3.0–3.16 (ns, no sample count), >= 3.17.

The files under tests/data/fio/ are small outputs written by hand from fio's documented JSON
format (and checked against real outputs of each version): fio is installed here in one version
only (3.33), so older generations cannot be produced by running fio — these fixtures are the
stand-in, and each test says which fio number it checks against.  The numbers asserted are
fio's own, read straight from the fixture with json, converted only by the documented units.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import specimen
from conftest import run_cli

from bench import fio, points

DATA = Path(__file__).resolve().parent / "data" / "fio"


def raw(name: str) -> dict:
    return fio.decode((DATA / name).read_text())


def parsed(name: str) -> fio.FioOutput:
    return fio.parse((DATA / name).read_text())


def test_fio_2_latency_is_microseconds_and_io_bytes_kibibytes():
    doc = raw("fio-2.18-randread.json")["jobs"][0]["read"]
    out = parsed("fio-2.18-randread.json")
    read = out.jobs[0].directions["read"]
    assert read.io_bytes == doc["io_bytes"] * 1024 == doc["total_ios"] * 4096  # bs=4k: KiB, not bytes
    assert read.bw_bytes == doc["bw"] * 1024
    assert read.clat.mean == 67120.0 == doc["clat"]["mean"] * 1000  # 67.12 µs
    assert read.slat.mean == 4810.0 and read.lat.mean == 72430.0
    assert read.clat.percentiles[99.0] == doc["clat"]["percentile"]["99.000000"] * 1000
    assert 0.0 not in read.clat.percentiles  # fio's "0.00": 0 padding
    assert not read.clat.counted_by_fio and read.clat.n == doc["total_ios"]
    m = fio.run_metrics(out)
    assert (m.clat_mean_ns, m.clat_p50_ns, m.clat_p99_ns, m.clat_p999_ns) == (
        67120.0,
        66000.0,
        101000.0,
        159000.0,
    )
    assert m.total_ios == doc["total_ios"]
    assert not out.jobs[0].directions["write"].used


def test_fio_2_json_plus_bins_are_bucket_indexes():
    # fio 2.x json+ keys its bins by bucket index (µs); index 200 stands for 290 µs
    assert fio._legacy_bin_value(100, 6, 64) == 100 and fio._legacy_bin_value(200, 6, 64) == 290
    out = parsed("fio-2.18-jsonplus.json")
    lat = out.jobs[0].directions["read"].clat
    assert lat.bins == {100_000: 98, 120_000: 1, 290_000: 1}
    pct = raw("fio-2.18-jsonplus.json")["jobs"][0]["read"]["clat"]["percentile"]
    for p in (50.0, 99.0, 99.9):  # fio's rule on the converted bins gives fio's own numbers
        assert fio.percentile_from_bins(lat.bins, p) == pct[f"{p:.6f}"] * 1000


def test_fio_3_1_to_3_16_have_no_sample_count_and_are_weighted_by_ios():
    doc = raw("fio-3.1-randread.json")["jobs"][0]["read"]
    assert "N" not in doc["clat_ns"]
    m = fio.run_metrics(parsed("fio-3.1-randread.json"))
    assert m.clat_mean_ns == doc["clat_ns"]["mean"]
    assert m.clat_p99_ns == doc["clat_ns"]["percentile"]["99.000000"]
    assert m.clat_p999_ns == doc["clat_ns"]["percentile"]["99.900000"]
    assert m.bw_bytes == doc["bw"] * 1024  # fio 3.1 has no bw_bytes yet


def test_several_entries_without_n_weight_the_mean_by_their_io_counts():
    entries = raw("fio-3.16-numjobs2.json")["jobs"]
    out = parsed("fio-3.16-numjobs2.json")
    m = fio.run_metrics(out)
    ios = [e["read"]["total_ios"] for e in entries]
    means = [e["read"]["clat_ns"]["mean"] for e in entries]
    assert m.clat_mean_ns == pytest.approx(sum(i * x for i, x in zip(ios, means)) / sum(ios), rel=1e-12)
    # plain JSON percentiles of two processes cannot be pooled: empty, and the reason says so
    assert m.clat_p99_ns is None
    reason = fio.missing_reason(out, "clat_p99_ns")
    assert "cannot be pooled without json+ bins" in reason
    # each entry keeps its own p99 (what export shows per job)
    assert [fio.direction_percentile(j.directions["read"], 99.0) for j in out.jobs] == [
        e["read"]["clat_ns"]["percentile"]["99.000000"] for e in entries
    ]
    # CPU: usr+sys percent of each entry's job_runtime (ms)
    assert m.fio_cpu_s == pytest.approx(
        sum((e["usr_cpu"] + e["sys_cpu"]) / 100 * e["job_runtime"] / 1000 for e in entries)
    )
    assert m.runtime_s == 20.0


def test_fio_3_17_and_later_use_n_and_json_plus_bins():
    doc = raw("fio-3.36-jsonplus.json")["jobs"][0]["read"]["clat_ns"]
    lat = parsed("fio-3.36-jsonplus.json").jobs[0].directions["read"].clat
    assert lat.counted_by_fio and lat.n == doc["N"]
    m = fio.run_metrics(parsed("fio-3.36-jsonplus.json"))
    assert m.clat_mean_ns == doc["mean"]
    assert (m.clat_p50_ns, m.clat_p99_ns, m.clat_p999_ns) == tuple(
        doc["percentile"][f"{p:.6f}"] for p in (50.0, 99.0, 99.9)
    )


def test_a_job_error_is_reported_as_one_line():
    out = parsed("fio-3.16-error22.json")
    assert out.error == "fio job 'raid' failed: error 22 (Invalid argument)"
    assert fio.missing_reason(out, "clat_mean_ns") == out.error
    assert parsed("fio-3.1-randread.json").error is None


def test_text_before_the_json_of_an_old_fio_is_skipped():
    text = (DATA / "fio-2.18-randread.json").read_text()
    assert not text.startswith("{") and text.startswith("note:")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert parsed("fio-2.18-randread.json").fio_version == "fio-2.18"


def test_latency_that_fio_did_not_measure_is_empty_not_zero():
    doc = raw("fio-3.1-randread.json")
    for key in ("clat_ns", "lat_ns"):  # as fio writes them with disable_clat=1 / disable_lat=1
        doc["jobs"][0]["read"][key] = {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0}
    m = fio.run_metrics(fio.parse(doc))
    assert m.clat_mean_ns is None and m.clat_p99_ns is None
    assert (
        fio.missing_reason(fio.parse(doc), "clat_mean_ns")
        == "fio-3.1 wrote completion latency as zeros (not measured: disable_clat/disable_lat)"
    )
    for direction in doc["jobs"][0].values():
        if isinstance(direction, dict):
            direction.pop("clat_ns", None), direction.pop("lat_ns", None)
    assert (
        fio.missing_reason(fio.parse(doc), "clat_mean_ns")
        == "fio-3.1 wrote no completion latency (no clat/lat objects)"
    )


@pytest.mark.parametrize(
    "text,expected", [("fio-2.18", 2), ("fio-3.1", 3), ("fio-3.36-12-gabc", 3), ("unknown", None)]
)
def test_version_major(text, expected):
    assert fio.version_major(text) == expected


# ------------------------------------------------------------------------------------------
# ingest → export / compare / report on these files


def variant(name: str, tmp: Path, stem: str, **options) -> Path:
    """A copy of a fixture with some job options changed (keeps text before the JSON, if any)."""
    text = (DATA / name).read_text()
    start = text.index("{")
    doc = json.loads(text[start:])
    for job in doc["jobs"]:
        job["job options"].update({k: str(v) for k, v in options.items()})
    path = tmp / f"{stem}.json"
    path.write_text(text[:start] + json.dumps(doc))
    return path


def export_rows(camp: Path, env) -> list[dict]:
    proc = run_cli("export", camp, "--format", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize(
    "name,key,scale",
    [
        ("fio-2.18-randread.json", "clat", 1000),
        ("fio-2.18-jsonplus.json", "clat", 1000),
        ("fio-3.1-randread.json", "clat_ns", 1),
        ("fio-3.16-numjobs2.json", "clat_ns", 1),
        ("fio-3.36-jsonplus.json", "clat_ns", 1),
    ],
)
def test_exported_latency_mean_and_p99_equal_fios_own(tmp_path, env, name, key, scale):
    camp = tmp_path / "c"
    proc = run_cli("ingest", DATA / name, "--into", camp, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = export_rows(camp, env)
    entries = raw(name)["jobs"]
    assert len(rows) == len(entries)
    for row, entry in zip(rows, entries):
        clat = entry["read"][key]
        assert row["read_clat_mean_ns"] == clat["mean"] * scale
        assert row["read_clat_p99_ns"] == clat["percentile"]["99.000000"] * scale
        assert row["fio_version"] == raw(name)["fio version"] and row["error"] is None


def test_a_failed_fio_job_is_a_failed_run_excluded_and_counted(tmp_path, env):
    camp = tmp_path / "c"
    ok = [
        variant("fio-3.1-randread.json", tmp_path, f"ok-{t}", rw="randwrite", bs="8k", iodepth=32)
        for t in ("a", "b")
    ]
    assert run_cli("ingest", ok[0], "--target", "a", "--into", camp, env=env).returncode == 0
    proc = run_cli("ingest", ok[1], DATA / "fio-3.16-error22.json", "--target", "b", "--into", camp, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = export_rows(camp, env)
    failed = [r for r in rows if r["error"]]
    assert [r["error"] for r in failed] == ["fio job 'raid' failed: error 22 (Invalid argument)"]
    import sqlite3

    db = sqlite3.connect(camp / "index.sqlite")
    assert db.execute(
        "SELECT status, error FROM runs WHERE run_id = ?", (failed[0]["run_id"],)
    ).fetchone() == ("failed", failed[0]["error"])
    assert json.loads((camp / "runs" / failed[0]["run_id"] / "run.json").read_text())["status"] == "failed"
    out = run_cli("compare", camp, "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    (point,) = json.loads(out.stdout)["comparisons"][0]["points"]
    assert point["comparison"]["candidate"]["n"] == 1  # the failed run is not a value
    text = run_cli("compare", camp, "--format", "text", env=env).stdout
    assert "1 failed run(s) excluded from every statistic" in text


def test_points_sort_numerically_and_equal_settings_pair(tmp_path, env):
    camp = tmp_path / "c"
    depths = [32, 1, 16, 2, 4]
    old = [
        variant("fio-2.18-randread.json", tmp_path, f"old-{d}", iodepth=f"{d:02d}", numjobs="01")
        for d in depths
    ]  # fio 2.18 style: 01, 02, 16, 32, 04
    new = [variant("fio-3.1-randread.json", tmp_path, f"new-{d}", iodepth=d) for d in depths]  # bs=4096
    assert run_cli("ingest", *old, "--target", "old", "--into", camp, env=env).returncode == 0
    assert run_cli("ingest", *new, "--target", "new", "--into", camp, env=env).returncode == 0
    plan = json.loads((camp / "plan.json").read_text())
    assert len(plan["points"]) == 5  # 01 = 1, 4096 = 4k: one point each
    out = run_cli(
        "compare", camp, "--baseline", "target=old", "--metric", "clat_mean", "--format", "json", env=env
    )
    assert out.returncode == 0, out.stderr
    compared = json.loads(out.stdout)["comparisons"][0]["points"]
    assert [p["point"] for p in compared] == [
        f"rw=randread,bs=4k,iodepth={d},numjobs=1" for d in (1, 2, 4, 16, 32)
    ]
    assert all(p["comparison"]["baseline"]["n"] == p["comparison"]["candidate"]["n"] == 1 for p in compared)
    text = run_cli("compare", camp, "--baseline", "target=old", "--format", "text", env=env).stdout
    labels = [line.split()[2] for line in text.splitlines() if line.startswith("randread 4k")]
    assert labels == ["qd1", "qd2", "qd4", "qd16", "qd32"]
    # one run per target everywhere: said once, not a flag on every row
    assert text.count("one run per target at every point: ingest or run repetitions to get") == 1
    assert "underpowered" not in text


def test_a_metric_empty_for_every_run_warns_or_exits_2_with_the_reason(tmp_path, env):
    camp = tmp_path / "c"
    for target in ("a", "b"):  # numjobs=2 without group_reporting, plain JSON: p99 cannot be pooled
        path = variant("fio-3.16-numjobs2.json", tmp_path, f"nj-{target}")
        assert run_cli("ingest", path, "--target", target, "--into", camp, env=env).returncode == 0
    out = run_cli("compare", camp, "--metric", "clat_p99", env=env)
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.splitlines()
    assert line.startswith(
        "blkcmp: error: clat_p99: nothing to compare: 2 job entries/directions with "
        "plain-JSON percentiles only: percentiles cannot be pooled without json+ bins"
    )
    # the mean can be compared: no warning, exit 0
    out = run_cli("compare", camp, "--metric", "clat_mean", "--format", "text", env=env)
    assert out.returncode == 0 and "warning" not in out.stderr
    # a second point where p99 exists: compared, and the empty point is one warning line
    for target in ("a", "b"):
        path = variant("fio-3.1-randread.json", tmp_path, f"one-{target}", bs="8k", iodepth=32)
        assert run_cli("ingest", path, "--target", target, "--into", camp, env=env).returncode == 0
    out = run_cli("compare", camp, "--metric", "clat_p99", "--format", "csv", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        "blkcmp: warning: clat_p99 is empty for every run of 1 point(s) (rw=randread,bs=8k,iodepth=32,"
        "numjobs=2): 2 job entries/directions with plain-JSON percentiles only: percentiles cannot be "
        "pooled without json+ bins (use --output-format=json+ or group_reporting)"
    ]
    assert len(out.stdout.splitlines()) == 2  # header + the one comparable point
    # the report says it too: on stderr and in each of its forms
    out = run_cli("report", camp, "--metric", "clat_p99", "--out", tmp_path / "r", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr.startswith("blkcmp: warning: clat_p99 is empty for every run of 1 point(s)")
    for name in ("report.txt", "report.md", "report.html"):
        text = " ".join((tmp_path / "r" / name).read_text().split())
        assert (
            "clat_p99 is empty for every run of 1 point(s) (rw=randread,bs=8k,iodepth=32,numjobs=2)" in text
        )


def test_an_ingested_report_knows_what_the_files_say(tmp_path, env):
    camp = tmp_path / "c"
    assert (
        run_cli(
            "ingest", DATA / "fio-2.18-randread.json", "--target", "old", "--into", camp, env=env
        ).returncode
        == 0
    )
    assert (
        run_cli(
            "ingest", DATA / "fio-3.1-randread.json", "--target", "new", "--into", camp, env=env
        ).returncode
        == 0
    )
    out = run_cli("report", camp, "--out", tmp_path / "r", "--metric", "clat_p99", env=env)
    assert out.returncode == 0, out.stderr
    text = " ".join((tmp_path / "r" / "report.txt").read_text().split())  # unwrapped (72 columns)
    assert "kernel unknown \u00b7 ingested from 2 files of fio-2.18, fio-3.1 \u00b7 30 s per run" in text
    assert "nan" not in text
    assert "fio versions: fio-2.18 (1 file), fio-3.1 (1 file)" in text
    assert "started: 2017-06-01T13:50:14+00:00 \u2026 2018-12-06T18:02:56+00:00" in text
    assert "ramp time: 5 s (2 files)" in text and "rounds: 1 (at most 1)" in text
    assert "runtime: 30 s per run after 5 s ramp" in text
    assert "iodepth=01" in text  # the job options, as fio wrote them
    # no json+ bins: the CDF is skipped and says why; the percentile bars are drawn from fio's
    # own percentiles; CPU cost from fio's usr/sys
    assert (
        "skipped latency-cdf: latency CDF: needs json+ latency histograms, which these runs lack (their "
        "plain-JSON p50, p99, p99.9 are in latency-percentiles)" in out.stdout
    )
    figures = {p.stem for p in (tmp_path / "r" / "figures").iterdir()}
    assert {"latency-percentiles", "cpu-cost"} <= figures and "latency-cdf" not in figures


def test_figures_from_plain_json_percentiles_and_fio_cpu(tmp_path, env):
    from bench.plots import cpu, data, latency

    camp = tmp_path / "c"
    for target, name in (("old", "fio-2.18-randread.json"), ("new", "fio-3.1-randread.json")):
        assert run_cli("ingest", DATA / name, "--target", target, "--into", camp, env=env).returncode == 0
    ds = data.load([camp])
    bars = latency.latency_percentiles(ds).data
    own = {
        "old": raw("fio-2.18-randread.json")["jobs"][0]["read"]["clat"]["percentile"],
        "new": raw("fio-3.1-randread.json")["jobs"][0]["read"]["clat_ns"]["percentile"],
    }
    for bar in bars:
        scale = 1000 if bar["target"] == "old" else 1
        assert bar["pooled_ns"] == own[bar["target"]][f"{bar['percentile']:.6f}"] * scale
        assert bar["source"] == "median of the runs' own"
    assert {b["percentile"] for b in bars} == {50.0, 99.0, 99.9}
    costs = {c["target"]: c["mean_ns"] for c in cpu.cpu_cost(ds).data if c["measure"] == "fio_cpu"}
    for target, name in (("old", "fio-2.18-randread.json"), ("new", "fio-3.1-randread.json")):
        job = raw(name)["jobs"][0]
        seconds = (job["usr_cpu"] + job["sys_cpu"]) / 100 * job["read"]["runtime"] / 1000
        assert costs[target] == pytest.approx(seconds / job["read"]["total_ios"] * 1e9, rel=1e-12)


def test_ingest_writes_the_plan_once_and_the_index_in_one_transaction(tmp_path, monkeypatch):
    """O(files): per batch the plan and the index are written once, every input file is read
    twice (checked, then copied after its digest is confirmed), no run directory is listed or
    re-read and the index is not rebuilt, whatever the batch size and however many runs the
    campaign already holds (the plan and the run scan were per file, which made ingest
    quadratic: 66 s for 500 files, 114 s for the next 500)."""
    from bench import ingest, store

    files = [variant("fio-3.1-randread.json", tmp_path, f"f{i}", iodepth=1 + i % 4) for i in range(70)]
    writes: list[str] = []
    transactions: list[int] = []
    reads: list[str] = []
    listed: list[str] = []
    rebuilds: list[int] = []
    real_write, real_index = store.atomic_write_json, store.Campaign.index
    real_read, real_iterdir, real_rebuild = Path.read_bytes, Path.iterdir, store.rebuild_index

    def counting_write(path, data):
        writes.append(Path(path).name)
        return real_write(path, data)

    def counting_index(self):
        transactions.append(1)
        return real_index(self)

    def counting_read(self):
        reads.append(str(self))
        return real_read(self)

    def counting_iterdir(self):
        listed.append(str(self))
        return real_iterdir(self)

    def counting_rebuild(*args, **kwargs):
        rebuilds.append(1)
        return real_rebuild(*args, **kwargs)

    ingest.ingest(files[:1], tmp_path / "c", target="t")  # creating the campaign: a constant cost
    monkeypatch.setattr(store, "atomic_write_json", counting_write)
    monkeypatch.setattr(store.Campaign, "index", counting_index)
    monkeypatch.setattr(Path, "read_bytes", counting_read)
    monkeypatch.setattr(Path, "iterdir", counting_iterdir)
    monkeypatch.setattr(store, "rebuild_index", counting_rebuild)
    total = 1
    # 9 files, then 30, then 30 more into the same, now larger, campaign: the same fixed work
    for batch in (files[1:10], files[10:40], files[40:]):
        for seen in (writes, transactions, reads, listed, rebuilds):
            seen.clear()
        added = ingest.ingest(batch, tmp_path / "c", target="t")
        total += len(added)
        assert len(added) == len(batch)
        assert writes.count("plan.json") == 1 and len(transactions) == 1, (
            writes.count("plan.json"),
            transactions,
        )
        inputs = sorted(r for r in reads if Path(r).parent == tmp_path)
        assert inputs == sorted([str(f) for f in batch] * 2), "each input read twice"
        # the campaign's own small files (campaign.json, plan.json …) only, never a run's files
        assert not [r for r in reads if "runs" in Path(r).parts], reads
        assert len(reads) - len(inputs) <= 8, reads
        assert not [d for d in listed if "runs" in Path(d).parts], listed  # runs/ never listed
        assert not rebuilds
        run_dirs = sorted(p.name for p in real_iterdir(tmp_path / "c" / "runs"))
        assert len(run_dirs) == total and not [d for d in run_dirs if d.startswith(".tmp-")]
    assert len(json.loads((tmp_path / "c" / "plan.json").read_text())["runs"]) == 70


def test_ingest_takes_a_directory_and_refuses_a_file_changed_while_ingesting(tmp_path, monkeypatch):
    from bench import ingest
    from bench.errors import UsageError

    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        variant("fio-3.1-randread.json", folder, f"f{i}", iodepth=1 + i)
    (folder / "notes.txt").write_text("not a json file: not taken")
    added = ingest.ingest([folder], tmp_path / "c", target="t")
    assert len(added) == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="a directory without"):
        ingest.ingest([empty], tmp_path / "c2")
    # the file changes between its check and its copy: refused, and no run appears
    target = variant("fio-3.1-randread.json", tmp_path, "late", iodepth=9)
    real_read = ingest.IngestedFile.read

    def read_then_change(path, name):
        item = real_read(path, name)
        path.write_text(path.read_text() + "\n")  # still fio's output, but not the bytes checked
        return item

    monkeypatch.setattr(ingest.IngestedFile, "read", staticmethod(read_then_change))
    before = sorted(p.name for p in (tmp_path / "c" / "runs").iterdir())
    with pytest.raises(UsageError, match="changed while being ingested"):
        ingest.ingest([target], tmp_path / "c", target="t")
    after = sorted(p.name for p in (tmp_path / "c" / "runs").iterdir() if not p.name.startswith(".tmp-"))
    assert after == before
    assert len(json.loads((tmp_path / "c" / "plan.json").read_text())["runs"]) == 3


def test_point_values_have_one_spelling_and_sort_as_numbers():
    assert (
        points.normalise({"bs": "4096"})
        == points.normalise({"bs": "4k"})
        == points.normalise({"bs": "4K"})
        == points.normalise({"blocksize": "4KiB"})
        == {"bs": "4k"}
    )
    assert points.normalise({"bs": "1048576", "iodepth": "01", "numjobs": 16, "rwmixread": "070"}) == {
        "bs": "1m",
        "iodepth": 1,
        "numjobs": 16,
        "rwmixread": 70,
    }
    assert points.normalise({"bs": "4k,8192"}) == {"bs": "4k,8k"} and points.normalise({"bs": "512"}) == {
        "bs": "512"
    }
    keys = points.sorted_keys([{"rw": "randread", "numjobs": n} for n in ("16", "1", "32", "2")])
    assert keys == [f"rw=randread,numjobs={n}" for n in (1, 2, 16, 32)]
    keys = points.sorted_keys(
        [{"rw": "randwrite", "bs": b} for b in ("128k", "4096", "1m", "8k")]
        + [{"rw": "randread", "bs": "4k"}]
    )
    assert keys == [
        "rw=randwrite,bs=4k",
        "rw=randwrite,bs=8k",
        "rw=randwrite,bs=128k",
        "rw=randwrite,bs=1m",
        "rw=randread,bs=4k",
    ]  # rw in the order first seen, sizes by bytes


def test_percentiles_written_only_for_total_latency_are_used():
    # lat_percentiles=1 with clat_percentiles=0 (as in fio 3.16 runs that ask for it): fio writes
    # `percentile` under lat_ns only; the mean still comes from clat_ns
    doc = raw("fio-3.1-randread.json")
    read = doc["jobs"][0]["read"]
    read["lat_ns"]["percentile"] = read["clat_ns"].pop("percentile")
    m = fio.run_metrics(fio.parse(doc))
    assert m.clat_mean_ns == read["clat_ns"]["mean"]
    assert m.clat_p99_ns == read["lat_ns"]["percentile"]["99.000000"]


def test_reindexing_an_ingested_failed_run_keeps_its_jobs_and_error(tmp_path, env):
    from bench import export, store

    camp = tmp_path / "c"
    assert run_cli("ingest", DATA / "fio-3.16-error22.json", "--into", camp, env=env).returncode == 0
    campaign = store.open_campaign(camp)
    before = export.rows(campaign)
    (run_id,) = [r["run_id"] for r in before]
    assert store.index_run_dir(campaign, run_id, campaign.run_dir(run_id)) == "failed"
    after = export.rows(campaign)
    assert after == before and after[0]["error"] == "fio job 'raid' failed: error 22 (Invalid argument)"
    assert after[0]["job"] == "raid"


GOLDEN_COMPARE_TEXT = """new vs old (baseline), mean completion latency (lower is better)
ratio = new/old; margin ±2 %, alpha 0.05, Holm across 1 points
kernel unknown
one run per target at every point: ingest or run repetitions to get
  confidence intervals
1 failed run(s) excluded from every statistic (blkcmp export shows their
  errors)
point                 old    new ratio 95 % CI verdict
randread 4k qd1 j1 67.1µs 98.8µs 1.473   no CI inconclusive
geomean ratio 1.473 (no CI: one run (or round) per point: the points are
  different workloads, not repetitions)
points: 0 faster, 0 slower, 0 equivalent, 1 inconclusive (0 beyond the
  margin)
"""


def test_compare_text_of_an_ingested_mixed_version_campaign_is_golden(tmp_path, env):
    # fio 2.18 (67.12 µs) against fio 3.1 (98842.714118 ns) at one point spelled differently
    # (iodepth=01, bs=4k vs iodepth=1, bs=4096), plus a failed fio 3.16 job
    camp = tmp_path / "c"
    assert (
        run_cli(
            "ingest", DATA / "fio-2.18-randread.json", "--target", "old", "--into", camp, env=env
        ).returncode
        == 0
    )
    assert (
        run_cli(
            "ingest",
            DATA / "fio-3.1-randread.json",
            DATA / "fio-3.16-error22.json",
            "--target",
            "new",
            "--into",
            camp,
            env=env,
        ).returncode
        == 0
    )
    out = run_cli("compare", camp, "--metric", "clat_mean", "--format", "text", env=env)
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout == GOLDEN_COMPARE_TEXT


def test_files_ingested_into_a_campaign_blkcmp_ran_leave_its_environment_alone(tmp_path):
    from bench import ingest, store

    camp = specimen.create(tmp_path, specimen.Specimen(matrix={"rw": ["randread"], "bs": ["4k"]}, rounds=2))
    before_env = (camp / "environment.json").read_text()
    before_plan = json.loads((camp / "plan.json").read_text())
    ingest.ingest([DATA / "fio-3.1-randread.json"], camp, target="extra")
    assert (camp / "environment.json").read_text() == before_env
    plan = json.loads((camp / "plan.json").read_text())
    assert (plan["runtime"], plan["ramp_time"]) == (before_plan["runtime"], before_plan["ramp_time"])
    assert len(plan["runs"]) == len(before_plan["runs"]) + 1
    assert store.status_counts(store.open_campaign(camp))["done"] == len(plan["runs"])
