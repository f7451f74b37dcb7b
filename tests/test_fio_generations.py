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

from bench import fio

DATA = Path(__file__).resolve().parent / "data" / "fio"


def raw(name: str) -> dict:
    return fio.decode((DATA / name).read_text())


def parsed(name: str) -> fio.FioOutput:
    return fio.parse((DATA / name).read_text())


def test_fio_2_latency_is_microseconds_and_io_bytes_kibibytes():
    doc = raw("fio-2.18-randread.json")["jobs"][0]["read"]
    out = parsed("fio-2.18-randread.json")
    read = out.jobs[0].directions["read"]
    assert read.io_bytes == doc["io_bytes"] * 1024 == doc["total_ios"] * 4096   # bs=4k: KiB, not bytes
    assert read.bw_bytes == doc["bw"] * 1024
    assert read.clat.mean == 67120.0 == doc["clat"]["mean"] * 1000           # 67.12 µs
    assert read.slat.mean == 4810.0 and read.lat.mean == 72430.0
    assert read.clat.percentiles[99.0] == doc["clat"]["percentile"]["99.000000"] * 1000
    assert 0.0 not in read.clat.percentiles                                   # fio's "0.00": 0 padding
    assert not read.clat.counted_by_fio and read.clat.n == doc["total_ios"]
    m = fio.run_metrics(out)
    assert (m.clat_mean_ns, m.clat_p50_ns, m.clat_p99_ns, m.clat_p999_ns) == (67120.0, 66000.0, 101000.0, 159000.0)
    assert m.total_ios == doc["total_ios"]
    assert not out.jobs[0].directions["write"].used


def test_fio_2_json_plus_bins_are_bucket_indexes():
    # fio 2.x json+ keys its bins by bucket index (µs); index 200 stands for 290 µs
    assert fio._legacy_bin_value(100, 6, 64) == 100 and fio._legacy_bin_value(200, 6, 64) == 290
    out = parsed("fio-2.18-jsonplus.json")
    lat = out.jobs[0].directions["read"].clat
    assert lat.bins == {100_000: 98, 120_000: 1, 290_000: 1}
    pct = raw("fio-2.18-jsonplus.json")["jobs"][0]["read"]["clat"]["percentile"]
    for p in (50.0, 99.0, 99.9):   # fio's rule on the converted bins gives fio's own numbers
        assert fio.percentile_from_bins(lat.bins, p) == pct[f"{p:.6f}"] * 1000


def test_fio_3_1_to_3_16_have_no_sample_count_and_are_weighted_by_ios():
    doc = raw("fio-3.1-randread.json")["jobs"][0]["read"]
    assert "N" not in doc["clat_ns"]
    m = fio.run_metrics(parsed("fio-3.1-randread.json"))
    assert m.clat_mean_ns == doc["clat_ns"]["mean"]
    assert m.clat_p99_ns == doc["clat_ns"]["percentile"]["99.000000"]
    assert m.clat_p999_ns == doc["clat_ns"]["percentile"]["99.900000"]
    assert m.bw_bytes == doc["bw"] * 1024   # fio 3.1 has no bw_bytes yet


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
    assert [fio.direction_percentile(j.directions["read"], 99.0) for j in out.jobs] == \
        [e["read"]["clat_ns"]["percentile"]["99.000000"] for e in entries]
    # CPU: usr+sys percent of each entry's job_runtime (ms)
    assert m.fio_cpu_s == pytest.approx(sum((e["usr_cpu"] + e["sys_cpu"]) / 100 * e["job_runtime"] / 1000
                                            for e in entries))
    assert m.runtime_s == 20.0


def test_fio_3_17_and_later_use_n_and_json_plus_bins():
    doc = raw("fio-3.36-jsonplus.json")["jobs"][0]["read"]["clat_ns"]
    lat = parsed("fio-3.36-jsonplus.json").jobs[0].directions["read"].clat
    assert lat.counted_by_fio and lat.n == doc["N"]
    m = fio.run_metrics(parsed("fio-3.36-jsonplus.json"))
    assert m.clat_mean_ns == doc["mean"]
    assert (m.clat_p50_ns, m.clat_p99_ns, m.clat_p999_ns) == tuple(
        doc["percentile"][f"{p:.6f}"] for p in (50.0, 99.0, 99.9))


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
    for key in ("clat_ns", "lat_ns"):   # as fio writes them with disable_clat=1 / disable_lat=1
        doc["jobs"][0]["read"][key] = {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0}
    m = fio.run_metrics(fio.parse(doc))
    assert m.clat_mean_ns is None and m.clat_p99_ns is None
    assert fio.missing_reason(fio.parse(doc), "clat_mean_ns") == \
        "fio-3.1 wrote completion latency as zeros (not measured: disable_clat/disable_lat)"
    for direction in doc["jobs"][0].values():
        if isinstance(direction, dict):
            direction.pop("clat_ns", None), direction.pop("lat_ns", None)
    assert fio.missing_reason(fio.parse(doc), "clat_mean_ns") == \
        "fio-3.1 wrote no completion latency (no clat/lat objects)"


@pytest.mark.parametrize("text,expected", [("fio-2.18", 2), ("fio-3.1", 3), ("fio-3.36-12-gabc", 3),
                                           ("unknown", None)])
def test_version_major(text, expected):
    assert fio.version_major(text) == expected
