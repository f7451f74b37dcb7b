"""`blkcmp ingest` of files that are not what fio writes, and of unsafe target names: one line
naming the file and the field, exit 2, and nothing written (a new campaign is not created, an
existing one is left byte-for-byte as it was). The good file is real fio json+ output."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import no_traceback, run_cli, run_fio

NULL_JOB = "[global]\nioengine=null\nsize=64M\ntime_based=1\nruntime=1\n[ing]\nrw=randread\nbs=4k\n"


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("fio")
    return json.loads(run_fio(d, NULL_JOB))


def mutate(doc: dict, change) -> dict:
    doc = copy.deepcopy(doc)
    change(doc)
    return doc


def _set(path: list, value):
    def change(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


# name -> (document or raw bytes, the start of what the error says after "FILE: ")
CASES = {
    "iops is a word": (
        lambda d: mutate(d, _set(["jobs", 0, "read", "iops"], "fast")),
        'jobs[0].read.iops: expected a number, found a string "fast"',
    ),
    "job options is a list": (
        lambda d: mutate(d, _set(["jobs", 0, "job options"], ["rw"])),
        "jobs[0].job options: expected an object, found an array",
    ),
    "an option is an object": (
        lambda d: mutate(d, _set(["jobs", 0, "job options", "rw"], {"x": 1})),
        "jobs[0].job options.rw: expected a string, found an object",
    ),
    "jobname is a number": (
        lambda d: mutate(d, _set(["jobs", 0, "jobname"], 7)),
        "jobs[0].jobname: expected a string, found a number 7",
    ),
    "a direction is a string": (
        lambda d: mutate(d, _set(["jobs", 0, "read"], "lots")),
        'jobs[0].read: expected an object, found a string "lots"',
    ),
    "bin latency is not a number": (
        lambda d: mutate(d, _set(["jobs", 0, "read", "clat_ns", "bins"], {"abc": 1})),
        "jobs[0].read.clat_ns.bins key 'abc' (a latency in ns): expected an integer",
    ),
    "bin latency is a non-ASCII digit": (
        lambda d: mutate(d, _set(["jobs", 0, "read", "clat_ns", "bins"], {"\u00b2": 1})),
        "jobs[0].read.clat_ns.bins key '\u00b2' (a latency in ns): expected an integer",
    ),
    "bin count is not a number": (
        lambda d: mutate(d, _set(["jobs", 0, "read", "clat_ns", "bins"], {"1000": "many"})),
        "jobs[0].read.clat_ns.bins['1000']: expected an integer, found a string",
    ),
    "negative bin count": (
        lambda d: mutate(d, _set(["jobs", 0, "read", "clat_ns", "bins"], {"1000": -5})),
        "jobs[0].read.clat_ns.bins['1000']: expected a count, found -5",
    ),
    "percentile is a list": (
        lambda d: mutate(d, _set(["jobs", 0, "read", "clat_ns", "percentile"], [1])),
        "jobs[0].read.clat_ns.percentile: expected an object, found an array",
    ),
    "total_ios is infinite": (
        lambda d: json.dumps(d).replace('"total_ios": ', '"total_ios": 1e400 , "x":', 1).encode(),
        "jobs[0].read.total_ios: expected a number, found inf",
    ),
    "timestamp out of range": (
        lambda d: mutate(d, _set(["timestamp"], 10**18)),
        "timestamp: expected seconds since 1970",
    ),
    "jobs is an object": (
        lambda d: mutate(d, _set(["jobs"], {"a": 1})),
        "jobs: expected an array of job results, found an object",
    ),
    "a run with no data": (
        lambda d: {"jobs": [{}]},
        "jobs: no job entry holds any measured I/O; a run with no data is not ingested",
    ),
    "no I/O in the job": (
        lambda d: mutate(d, lambda x: [x["jobs"][0].pop(k) for k in ("read", "write", "trim")]),
        "jobs: no job entry holds any measured I/O",
    ),
    "100,000-deep nesting": (
        lambda d: b'{"jobs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "JSON nested too deeply to read",
    ),
    "not UTF-8": (lambda d: b'{"jobs": [{"jobname": "\xff"}]}', "not UTF-8 text (byte 23)"),
}


def write_case(tmp_path: Path, real: dict, name: str) -> Path:
    content = CASES[name][0](real)
    path = tmp_path / "bad.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return path


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("name", list(CASES))
def test_bad_fio_json_is_one_line_exit_2_and_creates_nothing(tmp_path, env, real, name):
    bad = write_case(tmp_path, real, name)
    into = tmp_path / "new"
    out = run_cli("ingest", bad, "--into", into, env=env)
    assert out.returncode == 2, out.stderr
    no_traceback(out)
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"blkcmp: error: {bad}: {CASES[name][1]}"), line
    assert not into.exists()


def test_a_job_fio_reports_as_failed_is_not_refused_as_a_run_with_no_data(tmp_path, env, real):
    # fio failed the job (error 22) before any I/O: a failed run, which ingest keeps
    failed = mutate(real, lambda d: [d["jobs"][0].pop(k) for k in ("read", "write", "trim")])
    failed["jobs"][0]["error"] = 22
    path = tmp_path / "failed.json"
    path.write_text(json.dumps(failed))
    out = run_cli("ingest", path, "--into", tmp_path / "camp", env=env)
    assert out.returncode == 0, out.stderr
    assert "ingested 1 run(s)" in out.stdout


def test_bad_file_among_good_ones_leaves_an_existing_campaign_untouched(tmp_path, env, real):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(real))
    into = tmp_path / "camp"
    assert run_cli("ingest", good, "--into", into, env=env).returncode == 0
    before = snapshot(into)
    bad = write_case(tmp_path, real, "bin latency is not a number")
    out = run_cli("ingest", good, bad, "--into", into, env=env)
    assert out.returncode == 2 and "bins key 'abc'" in out.stderr
    assert snapshot(into) == before
    again = run_cli("ingest", good, "--into", into, env=env)  # and it still takes good files
    assert again.returncode == 0 and "ingested 1 run(s)" in again.stdout


@pytest.mark.parametrize("target", ["../../x", "a/b", "..", ".hidden", "-rf", "x" * 10_000, "tab\tname"])
def test_unsafe_target_name_is_refused_before_anything_is_read(tmp_path, env, real, target):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(real))
    into = tmp_path / "camp"
    out = run_cli("ingest", good, "--into", into, f"--target={target}", env=env)
    assert out.returncode == 2
    no_traceback(out)
    (line,) = out.stderr.splitlines()
    assert line.startswith(
        "blkcmp: error: --target: expected a target name of letters, digits, '_', '-', '.' (at most 32, "
        "starting with a letter or digit), found "
    )
    assert len(line) < 250  # the 10,000-character name is echoed shortened
    assert not into.exists()
    assert {p.name for p in tmp_path.iterdir()} <= {"good.json", "state"}


def test_a_long_safe_target_is_accepted_and_names_the_run(tmp_path, env, real):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(real))
    out = run_cli("ingest", good, "--into", tmp_path / "camp", "--target", "t" * 32, env=env)
    assert out.returncode == 0, out.stderr
    assert [p.name for p in (tmp_path / "camp" / "runs").iterdir()] == [f"ingest-00000-{'t' * 32}"]
