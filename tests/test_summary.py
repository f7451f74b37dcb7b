"""The end-of-run table (`bench.summary`): per point × target, IOPS mean ± stdev over the
repetitions, p99 completion latency pooled over them, n — checked against numbers read straight
from the campaign's fio json+ files, on a specimen campaign (tests/specimen.py) with two targets,
two points and a known shift."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from pathlib import Path

import pytest
import specimen
from rich.console import Console

from bench import store, summary
from bench.units import si


def rnull_faster_at_qd1(target: str, point: dict) -> float:
    return 1.05 if target == "rnull" and int(point["iodepth"]) == 1 else 1.0


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> Path:
    return specimen.create(
        tmp_path_factory.mktemp("summary"),
        specimen.Specimen(
            name="summary",
            matrix={"rw": ["randread"], "bs": ["4k"], "iodepth": [1, 32]},
            rounds=4,
            factor=rnull_faster_at_qd1,
            seed=7,
        ),
    )


def from_the_files(camp: Path) -> dict[tuple[str, str], dict]:
    """(point, target) -> IOPS of each run and the run's latency buckets, from fio.json alone."""
    found: dict[tuple[str, str], dict] = {}
    for run_dir in (camp / "runs").iterdir():
        run = json.loads((run_dir / "run.json").read_text())["run"]
        [job] = json.loads((run_dir / "fio.json").read_text())["jobs"]
        entry = found.setdefault((run["point_key"], run["target"]), {"iops": [], "bins": Counter()})
        entry["iops"].append(job["read"]["iops"])
        entry["bins"].update({int(k): v for k, v in job["read"]["clat_ns"]["bins"].items()})
    return found


def p99(bins: Counter) -> int:
    """fio's rule: the first bucket whose cumulative count reaches 99 % of all samples."""
    total, seen = sum(bins.values()), 0
    for value in sorted(bins):
        seen += bins[value]
        if 100 * seen >= 99 * total:
            return value
    raise AssertionError("empty histogram")


def test_rows_are_the_runs_numbers_in_plan_order(campaign):
    rows = summary.summary_rows(store.open_campaign(campaign))
    assert [(r["point"], r["target"]) for r in rows] == [
        ("rw=randread,bs=4k,iodepth=1", "null_blk"),
        ("rw=randread,bs=4k,iodepth=1", "rnull"),
        ("rw=randread,bs=4k,iodepth=32", "null_blk"),
        ("rw=randread,bs=4k,iodepth=32", "rnull"),
    ]
    truth = from_the_files(campaign)
    for row in rows:
        want = truth[(row["point"], row["target"])]
        assert row["n"] == len(want["iops"]) == 4
        assert row["iops_mean"] == pytest.approx(statistics.fmean(want["iops"]), rel=1e-12)
        assert row["iops_stdev"] == pytest.approx(statistics.stdev(want["iops"]), rel=1e-12)
        assert row["clat_p99_ns"] == p99(want["bins"])
    qd1 = {r["target"]: r["iops_mean"] for r in rows if r["point"].endswith("iodepth=1")}
    assert qd1["rnull"] / qd1["null_blk"] == pytest.approx(1.05, abs=0.02)  # the specimen's shift


def test_table_shows_each_row_and_says_what_it_is(campaign):
    camp = store.open_campaign(campaign)
    console = Console(record=True, width=160, color_system=None)
    summary.render(camp, console=console)
    text = console.export_text()
    lines = text.splitlines()
    assert "summary: IOPS mean ± stdev, p99 clat pooled over repetitions" in lines[0]
    body = [line for line in lines if "randread" in line]
    rows = summary.summary_rows(camp)
    assert len(body) == len(rows)
    for line, row in zip(body, rows):
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        assert cells == [
            row["label"],
            row["target"],
            f"{si(row['iops_mean'])} ± {si(row['iops_stdev'])}",
            si(row["clat_p99_ns"], "ns"),
            "4",
        ]
    assert specimen.LABEL in " ".join(line.strip() for line in lines[-3:])  # not a host run: said
