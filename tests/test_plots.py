"""Figures: every type drawn from a real host campaign, and checked against a known truth.

The real campaign is a loop device against fio's null engine, run by `blkcmp run` with the real
fio (1 s runs, no ramp, 3 rounds) once per test session.  Specimen campaigns (tests/
specimen.py: real campaign directories whose fio json+ files carry chosen numbers) have a truth
the plotted data must show: a 5 % shift sits at 1.05 with its CI around it, the kernel trend
follows the factors set per kernel.  Tests read the data each figure plotted, not pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import specimen
from conftest import no_traceback, run_cli

from bench import stats
from bench.plots import catalogue, data, latency, scaling, style, throughput


@pytest.fixture(scope="session")
def host_catalogue(host_campaign) -> catalogue.Catalogue:
    return catalogue.build([host_campaign])


def shifted(target: str, point: dict) -> float:
    """rnull 5 % faster at iodepth 1, the same as null_blk at iodepth 32."""
    return 1.05 if target == "rnull" and int(point["iodepth"]) == 1 else 1.0


@pytest.fixture(scope="module")
def known_shift(tmp_path_factory) -> Path:
    return specimen.create(
        tmp_path_factory.mktemp("known"),
        specimen.Specimen(
            name="shift",
            matrix={"rw": ["randread"], "bs": ["4k", "256k"], "iodepth": [1, 32]},
            rounds=6,
            factor=shifted,
            seed=3,
        ),
    )


@pytest.fixture(scope="module")
def three_kernels(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("kernels")
    factors = {"7.2.13": 1.05, "6.9.1": 0.95, "6.12.57": 1.0}  # written out of version order
    return [
        specimen.create(
            root,
            specimen.Specimen(
                name="trend",
                kernel=k,
                matrix={"rw": ["randread"], "bs": ["4k"], "iodepth": [1, 8]},
                rounds=4,
                factor=lambda t, p, f=f: f if t == "rnull" else 1.0,
                seed=i,
            ),
        )
        for i, (k, f) in enumerate(factors.items())
    ]


# ------------------------------------------------------------------------------------------
# The real campaign


def test_every_figure_type_from_a_real_campaign(host_campaign, host_catalogue, tmp_path):
    names = {f.name for f in host_catalogue.figures}
    assert names == {
        "forest-iops",
        "throughput-iops",
        "latency-cdf",
        "latency-percentiles",
        "scaling-iodepth",
        "scaling-numjobs",
        "samples",
        "run-order",
        "iops-over-time",
        "cpu-cost",
    }
    skipped = {s.name: s.reason for s in host_catalogue.skipped}
    assert set(skipped) == {"throughput-bw", "kernel-trend", "steady-state"}
    assert "bs >= 64k" in skipped["throughput-bw"] and "one kernel" in skipped["kernel-trend"]
    for fig in host_catalogue.figures:
        assert fig.data, fig.name
        assert any("kernel " in t.get_text() for t in fig.figure.texts), f"{fig.name}: no facts footer"
    written = catalogue.write(host_catalogue.figures, tmp_path, ["png"])
    assert len(written) == len(names) and all(p.stat().st_size > 10_000 for p in written)


def test_real_campaign_figures_plot_the_indexed_numbers(host_campaign, host_catalogue):
    ds = host_catalogue.dataset
    runs = ds.records
    assert len(runs) == 6 * 2 * 3 and {r.target for r in runs} == {"loop", "fionull"}
    figures = {f.name: f for f in host_catalogue.figures}

    for bar in figures["throughput-iops"].data:
        values = [
            r.metrics["iops"] for r in runs if r.target == bar["target"] and r.point_key == bar["point"]
        ]
        assert bar["n"] == 3 and bar["mean"] == pytest.approx(np.mean(values))
        assert bar["ci_low"] <= bar["mean"] <= bar["ci_high"]

    rows = figures["forest-iops"].data
    assert len(rows) == 6 and {r["candidate"] for r in rows} == {"fionull"}
    assert [r["rw"] for r in rows] == ["randread"] * 4 + ["randwrite"] * 2  # grouped by rw, matrix order

    for curve in figures["latency-cdf"].data:
        bins = stats.merge_bins(
            r.bins for r in runs if r.target == curve["target"] and r.point_key == curve["point"]
        )
        assert curve["ios"] == sum(bins.values()) and curve["fraction"][-1] == pytest.approx(1.0)
        assert curve["p99_ns"] == stats.percentiles_from_bins(bins, [99.0])[99.0]

    depths = {d["iodepth"] for d in figures["scaling-iodepth"].data}
    jobs = {d["numjobs"] for d in figures["scaling-numjobs"].data}
    assert depths == {1, 4} and jobs == {1, 2}

    order = figures["run-order"].data
    assert len(order) == len(runs) and [d["order"] for d in order] == sorted(d["order"] for d in order)
    for target in ("loop", "fionull"):
        for point in ds.points:
            rel = [d["relative"] for d in order if d["target"] == target and d["point"] == point.key]
            assert np.mean(rel) == pytest.approx(1.0)

    samples = figures["samples"].data
    assert sum(len(d["values"]) for d in samples) == len(runs)
    assert {d["measure"] for d in figures["cpu-cost"].data} == {"fio_cpu", "softirq"}


def test_plot_command_writes_every_format(host_campaign, tmp_path):
    out = tmp_path / "figs"
    proc = run_cli("plot", host_campaign, "--out", out, "--format", "png,svg,pdf", timeout=600)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert "skipped kernel-trend: kernel trend: all campaigns ran on one kernel" in proc.stdout
    for ext in ("png", "svg", "pdf"):
        assert (out / f"forest-iops.{ext}").stat().st_size > 0
    assert len(list(out.iterdir())) == 10 * 3
    bad = run_cli("plot", host_campaign, "--format", "gif", timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--format gif" in bad.stderr


# ------------------------------------------------------------------------------------------
# Known truth


def test_forest_places_a_known_shift_where_it_is(known_shift):
    cat = catalogue.build([known_shift])
    fig = next(f for f in cat.figures if f.name == "forest-iops")
    rows = {(r["point"]): r for r in fig.data}
    for key, row in rows.items():
        truth = 1.05 if "iodepth=1," in key + "," else 1.0
        assert row["ratio"] == pytest.approx(truth, abs=0.005), key
        assert row["ci_low"] < truth < row["ci_high"] and row["ci_high"] - row["ci_low"] < 0.03, key
        assert row["verdict"] == ("faster" if truth > 1 else "equivalent"), key
        assert row["beyond_margin"] == (truth > 1), key
    # the ratio axis is centred on 1 (log scale) and shows the whole equivalence band
    ax = fig.figure.axes[0]
    low, high = ax.get_xlim()
    assert ax.get_xscale() == "log" and math.log(low) == pytest.approx(-math.log(high))
    assert low < 0.98 and high > 1.05


def test_absolute_numbers_latency_and_cpu_match_the_truth(known_shift):
    ds = data.load([known_shift])
    bars = throughput.absolute_iops(ds).data
    for bar in bars:
        point = next(p for p in ds.points if p.key == bar["point"])
        truth = specimen._plausible_iops(point.values) * shifted(bar["target"], point.values)
        assert bar["mean"] == pytest.approx(truth, rel=0.03)
    bw = throughput.absolute_bandwidth(ds)
    assert {b["bs"] for b in bw.data} == {"256k"}

    cdf = latency.latency_cdf(ds)
    for curve in cdf.data:
        point = next(p for p in ds.points if p.key == curve["point"])
        median = 2_000.0 * point.iodepth / shifted(curve["target"], point.values)
        assert curve["p50_ns"] == pytest.approx(median, rel=0.05)  # json+ buckets are ~1 % wide

    from bench.plots import cpu

    costs = cpu.cpu_cost(ds).data
    softirq = [c for c in costs if c["measure"] == "softirq"]
    assert softirq and all(c["mean_ns"] == pytest.approx(150.0, rel=1e-3) for c in softirq)


def test_kernel_trend_follows_the_factor_of_each_kernel(three_kernels):
    cat = catalogue.build(three_kernels)
    trend = next(f for f in cat.figures if f.name == "kernel-trend")
    means = [d for d in trend.data if d["kind"] == "geomean"]
    assert [d["kernel"] for d in means] == ["6.9.1", "6.12.57", "7.2.13"]  # version order, not text order
    for d, truth in zip(means, (0.95, 1.0, 1.05)):
        assert d["ratio"] == pytest.approx(truth, abs=0.005)
    # one set of figures per kernel, named after it; nothing pooled across kernels
    assert {"forest-iops-k6.9.1", "forest-iops-k6.12.57", "forest-iops-k7.2.13"} <= {
        f.name for f in cat.figures
    }


def test_figures_that_do_not_apply_are_skipped_with_a_reason(tmp_path):
    camp = specimen.create(
        tmp_path, specimen.Specimen(matrix={"rw": ["randread"], "bs": ["4k"], "iodepth": [1]}, rounds=3)
    )
    ds = data.load([camp])
    result = scaling.scaling(ds, "iodepth")
    assert result.reason == "scaling vs iodepth: only iodepth 1 was run"
    cat = catalogue.build([camp])
    assert {s.name for s in cat.skipped} == {
        "throughput-bw",
        "scaling-iodepth",
        "scaling-numjobs",
        "kernel-trend",
        "iops-over-time",
        "steady-state",
    }
    assert all("\n" not in s.reason for s in cat.skipped)


def test_emulated_campaigns_say_so_on_every_figure(tmp_path):
    camp = specimen.create(tmp_path, specimen.Specimen(emulated=True, rounds=3))
    cat = catalogue.build([camp])
    for fig in cat.figures:
        texts = [t.get_text() for t in fig.figure.texts]
        assert any("EMULATED (TCG)" in t for t in texts), fig.name


# ------------------------------------------------------------------------------------------
# Style


def test_c_and_rust_keep_their_colours_whatever_the_targets_are_called(tmp_path):
    camp = specimen.create(
        tmp_path,
        specimen.Specimen(targets=(("loopy", "loop"), ("rust", "rnull"), ("c", "null_blk")), rounds=2),
    )
    ds = data.load([camp], baseline="c")
    assert ds.colours["c"] == style.DRIVER_COLOURS["null_blk"] == style.OKABE_ITO["blue"]
    assert ds.colours["rust"] == style.DRIVER_COLOURS["rnull"] == style.OKABE_ITO["vermillion"]
    assert ds.colours["loopy"] == style.OTHER_COLOURS[0]
    assert ds.targets[0] == "c"
    # a second null_blk configuration is told apart, never given the Rust colour
    colours = style.target_colours([("a", "null_blk"), ("b", "null_blk"), ("r", "rnull")])
    assert colours["a"] == style.DRIVER_COLOURS["null_blk"] and colours["b"] in style.OTHER_COLOURS


def test_ratio_axes_are_symmetric_and_keep_the_band_visible():
    low, high = style.ratio_limits([1.001], [0.999, 1.003], margin=0.02)
    assert low * high == pytest.approx(1.0) and high > 1.04
    low, high = style.ratio_limits([0.5, 3.0], [1e-6, 1e6], margin=0.02)
    assert high == pytest.approx((3.0 * 10) ** 1.12)  # a wild CI: one decade more at most (+ padding)
    assert 1 in style.ratio_ticks(low, high) and 1 in style.ratio_ticks(0.95, 1 / 0.95)
    assert style.clip_interval(-0.3, 2.0, (0.5, 2.0))[2:] == (True, True)


def test_block_sizes_and_releases_sort_as_people_expect():
    from bench.releases import release_key

    assert data.block_size_bytes("4k") == 4096 and data.block_size_bytes("1M") == 2**20
    assert data.block_size_bytes("512") == 512 and math.isnan(data.block_size_bytes("big"))
    releases = ["7.2.13", "6.12.8", "6.9", "7.2-rc3", "6.12.10"]
    assert sorted(releases, key=release_key) == ["6.9", "6.12.8", "6.12.10", "7.2-rc3", "7.2.13"]


def test_steady_state_figure_draws_the_rounds_the_window_its_line_and_band():
    # a write cliff whose steady window starts at round 8 (solved by hand in
    # tests/test_stats_steady_state.py), and a still-falling device judged not steady
    import math

    from bench.plots import steady
    from bench.stats.steady_state import steady_state

    cliff = steady_state([50_000 + 150_000 * math.exp(-t / 2) for t in range(25)]).record()
    falling = steady_state([80_000 * (1 - 0.03 * i) for i in range(10)]).record()
    fig = steady.steady_state_rounds([("ssd", cliff), ("falling", falling)], "emulated (TCG)", "kernel 7.2")
    by_panel = {d["panel"]: d for d in fig.data}
    ssd = by_panel["ssd"]
    assert ssd["steady"] and ssd["window"] == [8, 12] and len(ssd["rounds"]) == 25
    check = cliff["check"]
    assert ssd["line"] == pytest.approx([check["intercept"], check["intercept"] + 4 * check["slope"]])
    assert ssd["band"] == pytest.approx(0.05 * check["mean"])
    assert not by_panel["falling"]["steady"] and by_panel["falling"]["window"] == [6, 10]
    titles = [ax.get_title() for ax in fig.figure.axes]
    assert "ssd — steady" in titles and "falling — not steady" in titles
    texts = " ".join(t.get_text() for t in fig.figure.texts)
    assert "EMULATED (TCG)" in texts and "within ±5% of the line" in texts
    assert steady.steady_state_rounds([]).reason.startswith("steady state: no preconditioning rounds")
