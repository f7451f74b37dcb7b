"""What the analysis commands print, through the real command line: golden outputs of
`compare --format text|markdown` and of `report.txt`, the terminal table at 80 columns, the sides
`--by host` and `--by KEY`, `--correction bh`, the analysis options checked once, and what
`blkcmp run --auto` (what `make run` runs) ends with.

The golden campaign is a specimen (tests/specimen.py): a real campaign directory whose fio
json+ files carry chosen numbers (rnull 5 % faster at randread qd1, equal elsewhere), so the
output is the same on every machine. BLKCMP_UPDATE_GOLDEN=1 rewrites the files; read the diff.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from pathlib import Path

import pytest
import specimen
from conftest import (
    REPO,
    campaign_dir,
    check_golden,
    index_rows,
    needs_root,
    no_traceback,
    run_cli,
    write_workload,
)

LABELS = ["randread 4k qd1", "randread 4k qd32", "randwrite 4k qd1", "randwrite 4k qd32"]


def _faster_at_randread_qd1(target: str, point: dict) -> float:
    return 1.05 if target == "rnull" and point["rw"] == "randread" and point["iodepth"] == 1 else 1.0


@pytest.fixture(scope="module")
def gold(tmp_path_factory) -> Path:
    return specimen.create(
        tmp_path_factory.mktemp("gold"),
        specimen.Specimen(
            name="gold",
            kernel="7.2.13",
            rounds=6,
            seed=7,
            factor=_faster_at_randread_qd1,
            matrix={"rw": ["randread", "randwrite"], "bs": ["4k"], "iodepth": [1, 32]},
        ),
    )


def ok(proc) -> str:
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# ------------------------------------------------------------------------------------------
# Golden outputs


def test_compare_text_golden(gold, env):
    out = ok(run_cli("compare", gold, "--format", "text", env=env))
    assert all(len(line) <= 72 for line in out.splitlines())
    rows = [line for line in out.splitlines() if line.startswith("rand")]
    assert [" ".join(r.split()[:3]) for r in rows] == LABELS
    assert rows[0].split()[-1] == "faster*" and {r.split()[-1] for r in rows[1:]} == {"equivalent"}
    check_golden("cli-compare.txt", out)


def test_compare_markdown_golden(gold, env):
    out = ok(run_cli("compare", gold, "--format", "markdown", env=env))
    rows = [line for line in out.splitlines() if line.startswith("| rand")]
    # reading-order labels, as the HTML report shows them (no raw `rw=…,bs=…` keys)
    assert [r.split(" | ")[0].lstrip("| ") for r in rows] == LABELS
    assert "**faster**, beyond margin" in rows[0] and "margin ±2 %," in out
    check_golden("cli-compare.md", out)


def test_report_txt_golden(gold, env, tmp_path):
    ok(run_cli("report", gold, "--out", tmp_path / "report", env=env))
    text = (tmp_path / "report" / "report.txt").read_text()
    assert all(len(line) <= 72 for line in text.splitlines())
    html = (tmp_path / "report" / "report.html").read_text()
    for label in LABELS:  # the HTML table shows the same labels as the text
        assert f">{label}</span>" in html and label in text
    check_golden("report.txt", text)


# ------------------------------------------------------------------------------------------
# The terminal


def test_compare_table_is_whole_at_80_columns(gold, env):
    out = ok(run_cli("compare", gold, env=dict(env, COLUMNS="80")))
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "\u2026" not in out  # nothing cut: no `rw=ran…`
    rows = [line.split() for line in lines if line.startswith("rand")]
    assert [" ".join(r[:3]) for r in rows] == LABELS
    assert [r[-2] for r in rows] == ["1.046-1.052", "0.998-1.003", "0.996-1.003", "0.993-1.003"]
    assert [r[-1] for r in rows] == ["faster*", "equivalent", "equivalent", "equivalent"]
    assert "* beyond the margin: the whole CI lies outside ±2 %" in out
    assert "flags randwrite 4k qd1: outliers" in out  # the flags column gave way to a line
    assert "p (adj.)" not in out

    wide = ok(run_cli("compare", gold, env=dict(env, COLUMNS="160")))
    assert "p equiv (adj.)" in wide and "faster, beyond margin" in wide
    assert all(len(line) <= 160 for line in wide.splitlines())


# ------------------------------------------------------------------------------------------
# Sides and options


def test_compare_by_a_matrix_key(gold, env):
    # iodepth as the sides: qd32 against qd1, per rw and target; the specimen's IOPS grow as qd^0.4
    doc = json.loads(
        ok(
            run_cli(
                "compare", gold, "--by", "iodepth", "--baseline", "iodepth=1", "--format", "json", env=env
            )
        )
    )
    assert doc["by"] == "iodepth" and doc["baseline"] == "1"
    side = doc["comparisons"][0]
    assert (side["baseline"], side["candidate"]) == ("1", "32")
    points = {p["label"]: p for p in side["points"]}
    assert sorted(points) == sorted(
        f"{rw} 4k [{t}]" for rw in ("randread", "randwrite") for t in ("null_blk", "rnull")
    )
    for label, p in points.items():
        expected = 32**0.4 / (1.05 if label == "randread 4k [rnull]" else 1.0)
        assert p["comparison"]["ratio"] == pytest.approx(expected, rel=0.01), label
        assert p["verdict"]["verdict"] == "faster" and p["verdict"]["beyond_margin"]
    bad = run_cli("compare", gold, "--by", "iodepth", "--baseline", "target=null_blk", env=env)
    assert bad.returncode == 2 and "names 'target' but the comparison is --by iodepth" in bad.stderr


def _client_server_run(template: dict, host: str, iops: float, timestamp: int) -> dict:
    """A fio client/server output (one server, `host`) built from a recorded fio 3.36 json+ file."""
    doc = copy.deepcopy(template)
    job = doc.pop("jobs")[0]
    job["read"]["iops"] = iops
    job["read"]["bw_bytes"] = iops * 4096
    doc["timestamp"] = timestamp
    doc["client_stats"] = [job | {"hostname": host, "port": 8765}]
    return doc


def test_compare_by_host(tmp_path, env):
    # the same job on two servers, each ingested into a campaign: beta 10 % faster than alpha
    template = json.loads((REPO / "tests/data/fio/fio-3.36-jsonplus.json").read_text())
    dirs = []
    for host, mean in (("alpha", 100_000.0), ("beta", 110_000.0)):
        files = []
        for i in range(6):
            path = tmp_path / f"{host}-{i}.json"
            wobble = 1 + 0.004 * math.sin(i + (host == "beta"))
            path.write_text(json.dumps(_client_server_run(template, host, mean * wobble, 1_800_000_000 + i)))
            files.append(path)
        dirs.append(tmp_path / host)
        ok(run_cli("ingest", *files, "--into", dirs[-1], "--target", "t", env=env))
    doc = json.loads(ok(run_cli("compare", *dirs, "--by", "host", "--format", "json", env=env)))
    side = doc["comparisons"][0]
    assert (doc["by"], side["baseline"], side["candidate"]) == ("host", "alpha", "beta")
    (point,) = side["points"]
    assert point["label"] == "randread 4k qd1 [t]" and point["comparison"]["paired"] is False
    assert point["comparison"]["ratio"] == pytest.approx(1.10, rel=0.005)
    assert point["verdict"]["verdict"] == "faster" and point["verdict"]["beyond_margin"]
    text = ok(
        run_cli("compare", *dirs, "--by", "host", "--baseline", "host=beta", "--format", "text", env=env)
    )
    assert "alpha vs beta (baseline)" in text and "slower*" in text


def test_correction_bh_through_the_cli(gold, env):
    holm = json.loads(ok(run_cli("compare", gold, "--format", "json", env=env)))
    bh = json.loads(ok(run_cli("compare", gold, "--correction", "bh", "--format", "json", env=env)))
    assert (holm["correction"], bh["correction"]) == ("holm", "bh")
    holm_p = [p["verdict"]["p_adjusted"] for p in holm["comparisons"][0]["points"]]
    bh_p = [p["verdict"]["p_adjusted"] for p in bh["comparisons"][0]["points"]]
    raw = [p["verdict"]["p_value"] for p in bh["comparisons"][0]["points"]]
    assert all(r <= b <= h for r, b, h in zip(raw, bh_p, holm_p)) and bh_p != holm_p  # BH is less strict
    assert {p["verdict"]["correction"] for p in bh["comparisons"][0]["points"]} == {"Benjamini-Hochberg"}
    md = ok(run_cli("compare", gold, "--correction", "bh", "--format", "markdown", env=env))
    assert "alpha 0.05, Benjamini-Hochberg across 4 points" in md
    rows = list(
        csv.DictReader(
            io.StringIO(ok(run_cli("compare", gold, "--correction", "bh", "--format", "csv", env=env)))
        )
    )
    assert [float(r["p_adjusted"]) for r in rows] == pytest.approx(bh_p)


def test_margin_is_said_alike_in_header_sentences_and_figure(gold, env, tmp_path):
    out = ok(run_cli("compare", gold, "--margin", "0.005", "--format", "text", env=env))
    assert "margin ±0.5 %," in out and "±0%" not in out and "±0.5 %" in out.split("\n* beyond")[1]
    doc = json.loads(ok(run_cli("compare", gold, "--margin", "0.005", "--format", "json", env=env)))
    assert doc["comparisons"][0]["points"][0]["verdict"]["sentence"].endswith("beyond the ±0.5 % margin")
    from bench.analysis import analyse
    from bench.analysis_options import AnalysisOptions
    from bench.plots import data, forest

    fig = forest.ratio_forest(analyse([gold], AnalysisOptions.parse(margin=0.005)), data.load([gold]))
    assert "±0.5 % equivalence margin" in fig.caption


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--margin", "0"], "--margin 0: expected a fraction between 0 and 1"),
        (["--margin", "nan"], "--margin nan: expected a fraction"),
        (["--alpha", "1.5"], "--alpha 1.5: expected a probability between 0 and 1"),
        (["--correction", "bonferroni"], "--correction bonferroni: expected one of holm, bh"),
        (["--metric", "latency"], "--metric latency: expected one of iops, bw"),
        (["--baseline", "target="], "--baseline target=: give a name after '='"),
    ],
)
@pytest.mark.parametrize("command", ["compare", "plot", "report"])
def test_bad_analysis_options_are_one_line_before_anything_is_read(command, args, needle, env, tmp_path):
    # the directory does not exist: the options are refused first, in every command alike
    proc = (
        run_cli(command, tmp_path / "missing", *args, "--out", tmp_path / "o", env=env)
        if command != "compare"
        else run_cli(command, tmp_path / "missing", *args, env=env)
    )
    no_traceback(proc)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and needle in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists()


def test_plan_pilot_options_are_checked_before_the_plan(tmp_path, env):
    path = write_workload(
        tmp_path, "targets:\n  a: {driver: fio-null}\n  b: {driver: fio-null}\nmatrix:\n  rw: [randread]\n"
    )
    proc = run_cli("plan", path, "--pilot", tmp_path, "--alpha", "0", env=env)
    no_traceback(proc)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "blkcmp: error: --alpha 0: expected a probability between 0 and 1\n"


def test_plot_says_why_a_kernel_has_no_verdicts(tmp_path, env):
    # one target only: nothing to compare is a fact about the data, said instead of the forest
    alone = specimen.create(
        tmp_path, specimen.Specimen(name="alone", targets=(("null_blk", "null_blk"),), rounds=3)
    )
    out = ok(run_cli("plot", alone, "--out", tmp_path / "plots", "--format", "svg", env=env))
    assert "skipped forest: ratio forest: --by target: only one target (null_blk)" in out


# ------------------------------------------------------------------------------------------
# The end of `blkcmp run`

AUTO = """name: auto
targets:
  common:
    options: {size: 16}
  nul:
    driver: fio-null
  lp:
    driver: loop
baseline: lp
fio:
  ioengine: psync
  direct: 0
matrix:
  rw: [randread]
  bs: [4k]
  iodepth: [1, 2]
repetitions: 3
runtime: 1
ramp_time: 0
seed: 11
"""


@needs_root
def test_run_auto_ends_with_the_verdicts_and_the_next_commands(tmp_path, env):
    # `make run` is `blkcmp run W.yaml --auto`: with host targets only (fio's null engine, a loop
    # device) the host has every driver, so it runs here, on real fio and a real loop device
    path = write_workload(tmp_path, AUTO)
    proc = run_cli("run", path, "--auto", "--results", "results", env=dict(env, COLUMNS="80"), cwd=tmp_path)
    out = ok(proc)
    assert "the host has every driver of this workload (fio-null, loop): running on the host" in proc.stderr
    campaign = campaign_dir(tmp_path / "results")
    assert {r["status"] for r in index_rows(campaign)} == {"done"} and len(index_rows(campaign)) == 12
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    # the mean ± sd table, then the verdicts of `compare` (fio-null is far faster than a loop device)
    verdicts = lines.index("nul vs lp (baseline), IOPS (higher is better)")
    assert "IOPS mean" in "\n".join(lines[:verdicts])
    rows = [line.split() for line in lines[verdicts:] if line.startswith("randread 4k")]
    assert [" ".join(r[:3]) for r in rows] == ["randread 4k qd1", "randread 4k qd2"]
    # real runs on a shared machine: the verdict is whatever the data say, but it is a verdict
    assert all(r[-1].rstrip("*") in ("faster", "slower", "equivalent", "inconclusive") for r in rows), rows
    assert any(line.startswith("points: ") for line in lines[verdicts:])
    said = [line for line in lines if line.startswith(("  randread 4k qd1: ", "  randread 4k qd2: "))]
    assert len(said) == 2 and all(" nul " in line or "nul/lp" in line for line in said), said  # in words
    # then where the results are and what to run next, with the campaign's path
    where = f"results/{campaign.name}"
    tail = lines[lines.index(f"results: {where}") :]
    assert tail[1:4] == ["next steps:", f"  blkcmp compare {where}", f"  blkcmp report {where}"]
    # the named commands work as printed
    assert "nul vs lp (baseline)" in ok(run_cli("compare", where, "--format", "text", env=env, cwd=tmp_path))


def test_run_says_why_there_are_no_verdicts(tmp_path, env):
    path = write_workload(
        tmp_path,
        AUTO.replace("  lp:\n    driver: loop\nbaseline: lp\n", "").replace(
            "iodepth: [1, 2]", "iodepth: [1]"
        ),
    )
    out = " ".join(ok(run_cli("run", path, "--results", "results", env=env, cwd=tmp_path)).split())
    assert "no verdicts: --by target: only one target (nul) in these campaigns; nothing to compare" in out
    assert "next steps: blkcmp compare results/" in out
