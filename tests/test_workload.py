"""Workload files and plans: broken workloads are refused with FILE:LINE: field: and exit 2
before anything is written; the published schema stays in sync; plans are interleaved rounds
that are reproducible from the seed."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import REPO, no_traceback, run_cli, run_fio, write_workload

from bench import fio
from bench.plan import add_rounds, make_plan
from bench.workload import load, loads

TARGET = "targets:\n  a:\n    driver: fio-null\n"  # lines 1-3
LOOP = "targets:\n  a:\n    driver: loop\n"  # lines 1-3

# (id, workload text, line, field path, a fragment the message must hold)
BROKEN = [
    ("unknown-top-level-key", TARGET + "repetitons: 3\n", 4, "repetitons", "did you mean 'repetitions'?"),
    (
        "unknown-key-in-target",
        TARGET + "    optoins: {size: 8}\n",
        4,
        "targets.a.optoins",
        "did you mean 'options'?",
    ),
    ("unknown-driver", "targets:\n  a:\n    driver: nullblk\n", 3, "targets.a.driver", "'nullblk'"),
    (
        "driver-lacks-option",
        LOOP + "    options:\n      sizee: 8\n",
        5,
        "targets.a.options.sizee",
        "did you mean 'size'?",
    ),
    (
        "common-option-driver-lacks",
        "targets:\n  common:\n    options: {sise: 8}\n  a:\n    driver: loop\n",
        3,
        "targets.common.options.sise",
        "did you mean 'size'?",
    ),
    (
        "bs-list-not-scalar",
        TARGET + "fio:\n  ioengine: psync\n  bs: [4k, 8k]\n",
        6,
        "fio.bs",
        "expected a single value",
    ),
    ("repetitions-three", TARGET + "repetitions: three\n", 4, "repetitions", "'three'"),
    ("runtime-negative", TARGET + "runtime: -1\n", 4, "runtime", "greater than 0"),
    ("reserved-filename", TARGET + "fio:\n  filename: /dev/sda\n", 5, "fio.filename", "set by blkcmp"),
    (
        "reserved-output-format",
        TARGET + "fio:\n  output-format: json\n",
        5,
        "fio.output-format",
        "set by blkcmp",
    ),
    (
        "reserved-runtime-in-fio",
        TARGET + "runtime: 1\nfio:\n  runtime: 5\n",
        6,
        "fio.runtime",
        "top-level `runtime:`",
    ),
    (
        "reserved-option-as-axis",
        TARGET + "matrix:\n  runtime: [1, 2]\n",
        5,
        "matrix.runtime",
        "set by blkcmp",
    ),
    ("axis-not-a-list", TARGET + "matrix:\n  bs: 4k\n", 5, "matrix.bs", "valid list"),
    ("axis-empty-list", TARGET + "matrix:\n  bs: []\n", 5, "matrix.bs", "at least 1"),
    (
        "exclude-names-non-axis",
        TARGET + "matrix:\n  bs: [4k, 8k]\n  exclude:\n    - {rw: read}\n",
        7,
        "matrix.exclude[0].rw",
        "not a matrix axis",
    ),
    (
        "exclude-names-non-value",
        TARGET + "matrix:\n  bs: [4k, 8k]\n  exclude:\n    - bs: 16k\n",
        7,
        "matrix.exclude[0].bs",
        "found '16k'",
    ),
    (
        "exclude-removes-everything",
        TARGET + "matrix:\n  bs: [4k]\n  rw: [read]\n  exclude:\n    - {bs: 4k}\n",
        7,
        "matrix.exclude",
        "every point excluded",
    ),
    (
        "baseline-names-no-target",
        "targets:\n  c:\n    driver: fio-null\n  rust:\n    driver: fio-null\nbaseline: rusty\n",
        6,
        "baseline",
        "did you mean 'rust'?",
    ),
    ("adaptive-max-below-min", TARGET + "repetitions:\n  min: 5\n  max: 3\n", 4, "repetitions", "max >= min"),
    (
        "adaptive-unknown-key",
        TARGET + "repetitions:\n  min: 5\n  mx: 8\n",
        6,
        "repetitions.mx",
        "did you mean 'max'?",
    ),
    (
        "adaptive-sequential",
        TARGET + "repetitions: {min: 2, max: 4}\norder: sequential\n",
        5,
        "order",
        "interleaved",
    ),
    (
        "target-name-bad-chars",
        "targets:\n  bad/name:\n    driver: fio-null\n",
        2,
        "targets.bad/name",
        "'bad/name'",
    ),
    ("null-key-in-fio", TARGET + "fio:\n  ioengine: psync\n  null: 1\n", 6, "fio.null", "quote it"),
    ("null-target-name", "targets:\n  null:\n    driver: fio-null\n", 2, "targets.null", "quote it"),
    ("queue-on-fio-null", TARGET + "    queue:\n      nomerges: 1\n", 4, "targets.a.queue", "no block queue"),
    ("queue-bad-value", LOOP + "    queue:\n      nomerges: 5\n", 5, "targets.a.queue.nomerges", "found 5"),
    ("targets-missing", "runtime: 1\n", 1, "(top level)", "'targets'"),
    ("empty-file", "", 1, "(top level)", "empty file"),
    ("comments-only", "# nothing here\n", 1, "(top level)", "empty file"),
    ("top-level-list", "- targets\n- fio\n", 1, "(top level)", "found a list"),
    (
        "duplicate-key",
        TARGET + "runtime: 1\nruntime: 2\n",
        5,
        "invalid YAML",
        "duplicate key 'runtime' (first at line 4)",
    ),
    ("invalid-yaml-syntax", TARGET + "matrix:\n  bs: [4k, 8k\n", 6, "invalid YAML", ""),
]


@pytest.mark.parametrize("text,line,field,fragment", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_workload_is_refused_with_file_line_field(tmp_path, env, text, line, field, fragment):
    path = write_workload(tmp_path, text)
    results = tmp_path / "results"
    proc = run_cli("run", path, "--results", results, env=env)
    assert proc.returncode == 2, proc.stderr
    no_traceback(proc)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines  # one problem, one line
    assert lines[0].startswith(f"blkcmp: error: {path}:{line}: {field}:"), lines[0]
    assert fragment in lines[0]
    assert not results.exists()
    assert proc.stdout == ""


def test_every_problem_gets_its_own_line(tmp_path):
    text = TARGET + "    optoins: {}\nrepetitons: 3\nfio:\n  filename: x\n"
    with pytest.raises(Exception) as info:
        loads(text, "w.yaml")
    assert str(info.value).splitlines() == [
        "w.yaml:4: targets.a.optoins: unknown key; did you mean 'options'?",
        "w.yaml:5: repetitons: unknown key; did you mean 'repetitions'?",
    ]  # semantic checks (filename) come only once the structure is valid


def test_missing_workload_file_is_a_usage_error(tmp_path, env):
    proc = run_cli("plan", tmp_path / "nope.yaml", env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"blkcmp: error: {tmp_path / 'nope.yaml'}: no such workload file"


def test_schema_file_is_what_blkcmp_schema_prints(env):
    proc = run_cli("schema", env=env)
    assert proc.returncode == 0
    assert proc.stdout == (REPO / "workloads" / "schema.json").read_text(), (
        "workloads/schema.json is stale: regenerate it with `python -m bench schema > workloads/schema.json`"
    )
    schema = json.loads(proc.stdout)
    assert {"targets", "fio", "matrix", "repetitions", "runtime"} <= set(schema["properties"])


@pytest.mark.parametrize("path", sorted((REPO / "workloads").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_workloads_load(path):
    workload = load(path)
    assert workload.target_names()
    assert workload.points()


def test_shipped_workloads_exist():
    assert sorted((REPO / "workloads").glob("*.yaml")), "no workloads/*.yaml to check"


# ------------------------------------------------------------------------------------------
# Plans

MATRIX = """targets:
  a: {driver: fio-null}
  b: {driver: fio-null}
  c: {driver: fio-null}
matrix:
  bs: [4k, 8k]
repetitions: 4
runtime: 1
ramp_time: 0
"""


def _order(plan) -> list[tuple[int, str, int]]:
    return [(r.round, r.target, r.point_index) for r in plan.runs]


def test_interleaved_rounds_hold_every_cell_once_in_a_fresh_order():
    workload = loads(MATRIX)
    plan = make_plan(workload, "m", seed=11)
    cells = Counter((t, p) for t in "abc" for p in (0, 1))
    rounds = {}
    for run in plan.runs:
        rounds.setdefault(run.round, []).append((run.target, run.point_index))
    assert sorted(rounds) == [1, 2, 3, 4]
    for cells_of_round in rounds.values():
        assert Counter(cells_of_round) == cells  # every target × point exactly once
    # rounds follow each other: all of round 1 before any of round 2
    assert [r.round for r in plan.runs] == sorted(r.round for r in plan.runs)
    assert len({tuple(c) for c in rounds.values()}) > 1, "every round in the same order"
    assert [r.position for r in plan.runs] == list(range(24))
    assert len({r.run_id for r in plan.runs}) == 24
    assert all(r.repetition == r.round for r in plan.runs)


def test_same_seed_same_plan_other_seed_other_plan():
    workload = loads(MATRIX)
    one = make_plan(workload, "m", seed=11)
    assert make_plan(workload, "m", seed=11).to_dict() == one.to_dict()
    assert _order(make_plan(workload, "m", seed=12)) != _order(one)
    # the workload's own seed is used when none is given, and recorded
    seeded = make_plan(loads(MATRIX + "seed: 11\n"), "m")
    assert seeded.seed == 11 and _order(seeded) == _order(one)


def test_added_rounds_extend_the_plan_reproducibly():
    three = make_plan(loads(MATRIX.replace("repetitions: 4", "repetitions: 3")), "m", seed=5)
    four = make_plan(loads(MATRIX), "m", seed=5)
    extended = add_rounds(three, 1)
    assert _order(extended) == _order(four)
    assert [r.position for r in extended.runs] == list(range(24))


def test_sequential_order_is_target_by_target_point_by_point():
    workload = loads(MATRIX.replace("repetitions: 4", "repetitions: 2") + "order: sequential\n")
    plan = make_plan(workload, "m", seed=1)
    expected = [(rep, t, p) for t in "abc" for p in (0, 1) for rep in (1, 2)]
    assert _order(plan) == expected
    assert [r.position for r in plan.runs] == list(range(12))
    assert make_plan(workload, "m", seed=99).runs == plan.runs  # the seed plays no part


def test_exclude_leaves_out_exactly_the_named_combinations():
    workload = loads(
        TARGET + "matrix:\n  rw: [read, write]\n  bs: [4k, 8k]\n"
        "  exclude:\n    - {rw: write, bs: 8k}\n    - {rw: read, bs: 4k}\n"
    )
    assert workload.points() == [{"rw": "read", "bs": "8k"}, {"rw": "write", "bs": "4k"}]
    plan = make_plan(workload, "m", seed=1)
    assert {r.point_key for r in plan.runs} == {"rw=read,bs=8k", "rw=write,bs=4k"}
    assert len(plan.runs) == 2 * workload.repetitions  # the default number of rounds


def test_plan_export_fio_writes_jobs_that_run_by_hand(tmp_path, env):
    text = f"""name: exported
targets:
  nul:
    driver: fio-null
    options: {{size: 16}}
  fil:
    driver: file
    options: {{size: 8, directory: {tmp_path}}}
  lp:
    driver: loop
fio:
  ioengine: psync
  direct: 0
matrix:
  rw: [randread, randwrite]
  bs: [4k]
repetitions: 2
runtime: 1
ramp_time: 0
seed: 3
"""
    path = write_workload(tmp_path, text)
    out = tmp_path / "jobs"
    proc = run_cli("plan", path, "--export-fio", out, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "12 runs = 3 targets × 2 points × 2 rounds" in proc.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{t}--p{i:03d}.fio" for t in ("nul", "fil", "lp") for i in (0, 1))
    assert "rw=randwrite" in (out / "fil--p001.fio").read_text()
    assert f"filename={tmp_path}/blkcmp-export-fil.img" in (out / "fil--p000.fio").read_text()
    assert "filename=${BLKCMP_FILENAME}" in (out / "lp--p000.fio").read_text()
    assert "filename=" not in (out / "nul--p000.fio").read_text()
    assert not (tmp_path / "state" / "state.json").exists()  # planning creates nothing

    for job, rw in (("nul--p000.fio", "randread"), ("fil--p001.fio", "randwrite")):
        output = fio.parse(run_fio(out, (out / job).read_text(), name=job))
        assert [j.jobname for j in output.jobs] == [job.split("--")[0]]
        assert output.jobs[0].option("rw") == rw
        metrics = fio.run_metrics(output)
        assert metrics.iops > 0 and metrics.errors == 0
        assert (metrics.read_iops or 0) > 0 if rw == "randread" else (metrics.write_iops or 0) > 0
