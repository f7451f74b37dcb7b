"""Creating a campaign directory: race-free between processes, and only under a safe name."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from conftest import no_traceback, run_cli, write_workload

from bench import store
from bench.errors import UsageError
from bench.plan import Plan, PlannedRun, Point

SAME_SECOND = "20260101T000000Z"


def tiny_plan() -> Plan:
    plan = Plan(
        campaign="race",
        seed=1,
        order="interleaved",
        targets=["a"],
        points=[Point(0, {"rw": "read"})],
        runtime=1,
        ramp_time=0,
        rounds=1,
        max_rounds=1,
    )
    plan.runs = [PlannedRun("r001-p000-a", "a", 0, "rw=read", {"rw": "read"}, 1, 1, 0)]
    return plan


def _create_in_the_same_second(root: str, barrier, results) -> None:
    # Every process stamps the same second, so they all want the same directory name.
    store.utc_stamp = lambda: SAME_SECOND
    barrier.wait()
    try:
        campaign = store.create(
            Path(root),
            "race",
            workload_text="w",
            resolved_yaml="w",
            source="w.yaml",
            plan=tiny_plan(),
            environment={"kernel": {}},
            kernel_config=None,
        )
        results.put(("created", str(campaign.path)))
    except BaseException as exc:  # noqa: BLE001 — reported to the test, which fails on it
        results.put(("error", f"{type(exc).__name__}: {exc}"))


@pytest.mark.parametrize("processes", [2, 4])
def test_campaigns_created_in_the_same_second_get_a_directory_each(tmp_path, processes):
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [
        ctx.Process(target=_create_in_the_same_second, args=(str(tmp_path), barrier, results))
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    assert [kind for kind, _ in outcomes] == ["created"] * processes, outcomes
    paths = sorted(Path(p) for _, p in outcomes)
    expected = [f"race-{SAME_SECOND}"] + [f"race-{SAME_SECOND}-{n}" for n in range(2, processes + 1)]
    assert sorted(p.name for p in paths) == sorted(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(expected)  # no temporary left behind
    for path in paths:  # each complete and its own
        assert json.loads((path / "campaign.json").read_text())["name"] == "race"
        assert [r.run_id for r in store.Campaign(path).plan().runs] == ["r001-p000-a"]
        assert [r["run_id"] for r in store.run_rows(store.Campaign(path))] == ["r001-p000-a"]


def test_an_existing_empty_directory_of_that_name_is_not_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "utc_stamp", lambda: SAME_SECOND)
    squatter = tmp_path / f"race-{SAME_SECOND}"
    squatter.mkdir()
    campaign = store.create(
        tmp_path,
        "race",
        workload_text="w",
        resolved_yaml="w",
        source="w.yaml",
        plan=tiny_plan(),
        environment={},
        kernel_config=None,
    )
    assert campaign.path.name == f"race-{SAME_SECOND}-2"
    assert squatter.is_dir() and list(squatter.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "..", "x" * 300, ""])
def test_a_campaign_name_that_is_not_a_safe_file_name_is_refused(tmp_path, name):
    with pytest.raises(UsageError, match=r"^campaign name: expected a campaign name of letters, digits"):
        store.create(
            tmp_path / "results",
            name,
            workload_text="w",
            resolved_yaml="w",
            source="w.yaml",
            plan=tiny_plan(),
            environment={},
            kernel_config=None,
        )
    assert list(tmp_path.iterdir()) == []


def test_run_with_an_unsafe_campaign_name_writes_nothing(tmp_path, env):
    work = tmp_path / "w"
    work.mkdir()
    path = write_workload(
        work,
        "name: ../../escape\ntargets:\n  n: {driver: fio-null}\nrepetitions: 1\nruntime: 1\nramp_time: 0\n",
    )
    out = run_cli("run", path, "--results", work / "results", env=env)
    assert out.returncode == 2
    no_traceback(out)
    (line,) = out.stderr.splitlines()
    assert line.startswith("blkcmp: error: ") and "../../escape" in line
    assert sorted(p.name for p in work.rglob("*")) == ["w.yaml"]
    assert {p.name for p in tmp_path.iterdir()} <= {"state", "w"}  # nothing beside, nothing above
