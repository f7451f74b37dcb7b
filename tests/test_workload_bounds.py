"""Bad workloads are one-line errors with exit 2, never internal errors: non-UTF-8 files, keys
that are not names, recursion, alias bombs, nesting, numbers YAML cannot hold, unsafe campaign and
target names, and bounds on everything a workload can make large (each error names the field and
the limit). Plus a seeded fuzz test: mutations of the shipped workloads and the hostile classes,
in-process under a memory measure and, for a subset, through the CLI under a memory limit."""

from __future__ import annotations

import os
import random
import resource
import subprocess
import tracemalloc
from pathlib import Path

import pytest
import yaml
from conftest import REPO, cli_command, no_traceback, run_cli

from bench import campaign as camp
from bench.errors import UsageError
from bench.kernels import cache_dir
from bench.workload import MAX_POINTS, name_problem

T = "targets:\n  a: {driver: fio-null}\n"  # lines 1-2


def _bomb(breadth: int, depth: int) -> str:
    lines = ["l0: &l0 [" + ", ".join(["lol"] * breadth) + "]"]
    for i in range(1, depth):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * breadth) + "]")
    return "\n".join(lines) + "\n"


# (id, file content (str or bytes), line, field, fragment of the one-line error)
BAD = [
    ("not-utf8", T.encode() + b"description: caf\xe9\n", 3, None, "expected UTF-8 text, found byte 0xe9"),
    ("utf16-file", T.encode("utf-16"), 1, None, "expected UTF-8 text"),
    ("list-as-key", T + "fio:\n  [a, b]: 1\n", 4, "invalid YAML", "found a list used as a key"),
    ("mapping-as-key", T + "? {a: 1}\n: 2\n", 3, "invalid YAML", "found a mapping used as a key"),
    ("date-as-key", T + "fio:\n  2001-01-01: 1\n", 4, "fio.2001-01-01", "found a date (quote it"),
    ("recursive-alias", T + "matrix: &m\n  bs: [*m]\n", 4, "matrix.bs[0]", "recursive alias"),
    ("recursive-alias-in-list", "x: &r [1, [2, *r]]\n" + T, 1, "x[1][1]", "recursive alias"),
    ("nesting-500", T + "matrix:\n  bs: " + "[" * 500 + "]" * 500 + "\n", 4, "matrix.bs", "at most 32 deep"),
    (
        "block-nesting",
        T + "description:\n" + "".join("  " * i + "-\n" for i in range(1, 60)),
        None,
        "description",
        "at most 32 deep",
    ),
    ("alias-bomb", _bomb(9, 9) + T, None, "l", "alias bomb"),
    ("runtime-1e400", T + "runtime: 1e400\n", 3, "runtime", "finite number"),
    ("runtime-float-overflow", T + "runtime: 1.0e+400\n", 3, "runtime", "finite number"),
    ("ramp-time-inf", T + "ramp_time: .inf\n", 3, "ramp_time", "finite number"),
    ("runtime-nan", T + "runtime: .nan\n", 3, "runtime", "finite number"),
    ("runtime-over-a-day", T + "runtime: 100000\n", 3, "runtime", "less than or equal to 86400"),
    ("repetitions-2-31", T + "repetitions: 2147483648\n", 3, "repetitions", "1 to 1000 rounds"),
    ("adaptive-max-huge", T + "repetitions: {min: 2, max: 100000}\n", 3, "repetitions.max", "1000"),
    ("seed-beyond-64-bits", T + "seed: 99999999999999999999999\n", 3, "seed", "within ±2^63"),
    ("option-beyond-64-bits", T + "fio:\n  iodepth: 1" + "0" * 30 + "\n", 4, "fio.iodepth", "within ±2^63"),
    ("string-too-long", T + "description: " + "x" * 5000 + "\n", 3, "description", "at most 4096 characters"),
    (
        "matrix-too-many-points",
        T
        + "matrix:\n  bs: ["
        + ", ".join(map(str, range(200)))
        + "]\n  iodepth: ["
        + ", ".join(map(str, range(1, 102)))
        + "]\n",
        3,
        "matrix",
        f"at most {MAX_POINTS} matrix points",
    ),
    (
        "too-many-runs",
        T + "matrix:\n  iodepth: [" + ", ".join(map(str, range(1, 1001))) + "]\nrepetitions: 200\n",
        5,
        "repetitions",
        "at most 100000 runs",
    ),
    ("campaign-name-slash", T + "name: a/b\n", 3, "name", "campaign name"),
    ("campaign-name-300", T + "name: " + "n" * 300 + "\n", 3, "name", "(300 characters)"),
    ("campaign-name-dot", T + "name: .\n", 3, "name", "campaign name"),
    ("campaign-name-dotdot", T + "name: ..\n", 3, "name", "campaign name"),
    ("campaign-name-dotfile", T + "name: .hidden\n", 3, "name", "campaign name"),
    (
        "target-name-300",
        "targets:\n  " + "t" * 300 + ":\n    driver: fio-null\n",
        2,
        "targets",
        "target name",
    ),
    (
        "too-many-targets",
        "targets:\n" + "".join(f"  t{i}: {{driver: fio-null}}\n" for i in range(40)),
        1,
        "targets",
        "at most 32 targets",
    ),
]


@pytest.mark.parametrize("content,line,field,fragment", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input_is_one_line_with_exit_2(tmp_path, env, content, line, field, fragment):
    path = tmp_path / "w.yaml"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = run_cli("plan", path, env=env, cwd=tmp_path)
    no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    (error,) = proc.stderr.splitlines()
    prefix = f"blkcmp: error: {path}:" + (f"{line}:" if line else "")
    assert error.startswith(prefix), error
    if field:
        assert f": {field}" in error, error
    assert fragment in error, error
    assert len(error) < 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state", "w.yaml"] or sorted(
        p.name for p in tmp_path.iterdir()
    ) == ["w.yaml"]


def test_a_file_name_that_is_no_campaign_name_needs_name(tmp_path, env):
    path = tmp_path / "my workload.yaml"
    path.write_text(T)
    proc = run_cli("plan", path, env=env)
    assert proc.returncode == 2
    assert "set `name:`" in proc.stderr and "'my workload'" in proc.stderr
    path.write_text(T + "name: mine\n")
    assert run_cli("plan", path, env=env).returncode == 0


def test_huge_inputs_are_echoed_shortened(tmp_path, env):
    path = tmp_path / "w.yaml"
    path.write_text(T + "fio:\n  " + "k" * 1000 + ": 1\nbaseline: " + "b" * 4000 + "\n")
    proc = run_cli("plan", path, env=env)
    assert proc.returncode == 2
    assert all(len(line) < 400 for line in proc.stderr.splitlines()), [
        len(l) for l in proc.stderr.splitlines()
    ]
    assert "(4000 characters)" in proc.stderr and "(1000 characters)" in proc.stderr


def test_big_matrix_plans_with_counts_per_point(tmp_path, env):
    bs = ", ".join(f"{i}k" for i in range(1, 101))
    depths = ", ".join(str(i) for i in range(1, 101))
    path = tmp_path / "big.yaml"
    path.write_text(
        "targets:\n  a: {driver: fio-null}\n  b: {driver: fio-null}\n"
        f"matrix:\n  bs: [{bs}]\n  iodepth: [{depths}]\nrepetitions: 2\n"
    )
    proc = run_cli("plan", path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "40000 runs = 2 targets × 10000 points × 2 rounds" in proc.stdout
    lines = [l for l in proc.stdout.splitlines() if l.startswith("  p")]
    assert len(lines) == 10000 and all(l.endswith("a ×2, b ×2") for l in lines)


def test_name_validator_is_shared():
    assert name_problem("null_blk") is None and name_problem("a.b-c_1") is None
    for bad in ("", ".", "..", ".x", "a/b", "../x", "x" * 33, "a b", "é", None, 5):
        assert name_problem(bad) is not None
    assert "at most 64" in name_problem("x" * 65, "campaign", 64)


# ------------------------------------------------------------------------------------------
# Fuzz


FUZZ_N = int(os.environ.get("BLKCMP_FUZZ_N", "300"))
FUZZ_SEED = int(os.environ.get("BLKCMP_FUZZ_SEED", "9"))
CLI_EVERY = 25  # one case in CLI_EVERY also goes through `blkcmp plan` in a subprocess
MEMORY_LIMIT = 1 << 30  # address space of each `blkcmp plan` subprocess (fio's children included)
PEAK_BYTES = 128 << 20  # Python allocations of one in-process plan


def _hostile_entries(rng: random.Random, outside: Path) -> dict:
    s = str(outside)
    pool = [
        {"bs": f"4k\nfilename={s}"},
        {"bs=4k\nfilename": s},
        {"filename ": s},
        {"FileName": s},
        {"timeout": 5},
        {"time-based": 0},
        {"opendir": s},
        {"exec_prerun": f"touch {s}"},
        {"exec_postrun": f"rm {s}"},
        {"write_iolog": s},
        {"write_bw_log": s},
        {"read_iolog": s},
        {"mem": f"mmap:{s}"},
        {"buffer_pattern": f"'{s}'"},
        {"ioengine": None},
        {"ioengine": "exec"},
        {"ioengine": f"external:{s}"},
        {"ioengine": "io_urign"},
        {"RW": "read"},
        {"description": "${HOME}"},
        {"[global]": 1},
        {"cgroup": "x"},
        {"ioscheduler": "bfq"},
        {"lockfile": False},
        {"iodepth": 10**30},
        {"bs": float("inf")},
        {"k" * 5000: 1},
        {"": 1},
        {"rw": "\u2028read"},
        {"bs": "\x00"},
        {None: 1},
        {True: 1},
        {3: 4},
        {"hipri": 1},
        {"iodepth": "many"},
        {"numjobs": -1},
    ]
    return rng.choice(pool)


def _random_value(rng: random.Random, outside: Path):
    return rng.choice(
        [
            None,
            True,
            False,
            0,
            -1,
            1,
            2**31,
            2**63,
            10**40,
            1e308,
            float("inf"),
            float("nan"),
            -0.0,
            "",
            "x" * rng.choice([1, 100, 4096, 5000]),
            "4k\n[evil]",
            "\t",
            "é",
            "null",
            "yes",
            str(outside),
            "../../x",
            ".",
            "..",
            "/",
            "1e400",
            [],
            [1, [2, [3]]],
            {},
            {"a": {"b": None}},
            ["read", None],
        ]
    )


def _mutate_data(data, rng: random.Random, outside: Path):
    """One random edit somewhere in a parsed workload."""
    node = data
    for _ in range(rng.randint(0, 4)):
        children = (
            list(node.items())
            if isinstance(node, dict)
            else list(enumerate(node))
            if isinstance(node, list)
            else []
        )
        containers = [(k, v) for k, v in children if isinstance(v, (dict, list))]
        if not containers:
            break
        _, node = rng.choice(containers)
    if isinstance(node, dict):
        action = rng.choice(["delete", "set", "rename", "add", "hostile"])
        keys = list(node)
        if action == "delete" and keys:
            del node[rng.choice(keys)]
        elif action == "set" and keys:
            node[rng.choice(keys)] = _random_value(rng, outside)
        elif action == "rename" and keys:
            key = rng.choice(keys)
            if isinstance(key, str):
                node[rng.choice([key.upper(), f" {key} ", key.replace("_", "-"), key + "x", key[:-1]])] = (
                    node.pop(key)
                )
        elif action == "add":
            node[rng.choice(["name", "fio", "matrix", "timeseries", "allow_fio_options", "x", "exclude"])] = (
                _random_value(rng, outside)
            )
        else:
            target = data.setdefault("fio", {}) if isinstance(data.get("fio", {}), dict) else node
            target.update(_hostile_entries(rng, outside))
    elif isinstance(node, list) and node:
        node[rng.randrange(len(node))] = _random_value(rng, outside)


def _mutate_text(text: str, rng: random.Random) -> bytes:
    raw = text.encode()
    i = rng.randrange(len(raw) + 1)
    return rng.choice(
        [
            raw[:i],  # truncated
            raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :],  # a byte changed
            raw[:i]
            + rng.choice([b"&a ", b"*a", b"[", b"{", b"- ", b": ", b"\t", b"\xff", b"!!binary ", b"? "])
            + raw[i:],
            raw + b"\n" + raw,  # everything twice
        ]
    )


def _hostile_file(rng: random.Random) -> bytes:
    kind = rng.choice(["bomb", "recursive", "deep", "numbers", "bytes"])
    if kind == "bomb":
        return (_bomb(rng.randint(5, 12), rng.randint(5, 10)) + T).encode()
    if kind == "recursive":
        return (
            T + rng.choice(["fio: &r {k: *r}\n", "matrix: &r\n  bs: [*r]\n", "x: &r [[[*r]]]\n"])
        ).encode()
    if kind == "deep":
        depth = rng.randint(20, 3000)
        return (T + "matrix:\n  bs: " + "[" * depth + "1" + "]" * depth + "\n").encode()
    if kind == "numbers":
        field = rng.choice(["runtime", "ramp_time", "repetitions", "seed", "timeseries"])
        return (
            T
            + f"{field}: {rng.choice(['1e400', '.inf', '-.inf', '.nan', '9' * 40, '-1', '0x7fffffffffffffff'])}\n"
        ).encode()
    return T.encode() + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))


def _cases(outside: Path) -> list[tuple[str, bytes]]:
    rng = random.Random(FUZZ_SEED)
    shipped = [p.read_text() for p in sorted((REPO / "workloads").glob("*.yaml"))]
    cases = []
    for i in range(FUZZ_N):
        source = rng.choice(shipped)
        kind = rng.choice(["data", "data", "text", "hostile"])
        if kind == "data":
            data = yaml.safe_load(source)
            for _ in range(rng.randint(1, 3)):
                _mutate_data(data, rng, outside)
            try:
                content = yaml.safe_dump(data, allow_unicode=True).encode()
            except yaml.YAMLError:
                continue
        elif kind == "text":
            content = _mutate_text(source, rng)
        else:
            content = _hostile_file(rng)
        cases.append((f"{i}-{kind}", content))
    return cases


def _plan_in_process(path: Path) -> str:
    """What `blkcmp plan` does, in this process: '' or the UsageError's text."""
    try:
        prepared = camp.prepare(path, probe=False)
        camp.check_with_fio(prepared)
        camp.plan_summary(prepared.plan)
    except UsageError as exc:
        return str(exc)
    return ""


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def test_fuzzed_workloads_plan_or_fail_with_one_line_errors(tmp_path, env):
    """Exit 0 or 2 only, never an internal error, nothing written, bounded memory.

    BLKCMP_FUZZ_N (default 300) and BLKCMP_FUZZ_SEED choose how many cases and which.
    """
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel").write_bytes(b"untouched")
    work = tmp_path / "work"
    work.mkdir()
    camp.fio_options.table()  # read (and cached) before any limit or measure applies
    fio_cache = cache_dir() / "fio"
    cache_before = sorted(fio_cache.rglob("*"))
    failures = []
    cli_cases = 0
    for n, (name, content) in enumerate(_cases(outside)):
        path = work / "w.yaml"
        path.write_bytes(content)
        tracemalloc.start()
        try:
            error = _plan_in_process(path)
        except Exception as exc:  # noqa: BLE001 - exactly what the test looks for
            failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
            error = None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        if peak > PEAK_BYTES:
            failures.append(f"{name}: {peak >> 20} MiB allocated")
        if error:
            lines = error.splitlines()
            if not all(line.startswith(str(path)) and len(line) < 1200 for line in lines):
                failures.append(f"{name}: error lines {[l[:120] for l in lines]}")
        if n % CLI_EVERY == 0:
            cli_cases += 1
            proc = subprocess.run(
                cli_command("plan", path),
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=300,
                preexec_fn=_limited,
            )
            if proc.returncode not in (0, 2) or "internal error" in proc.stderr or "Traceback" in proc.stderr:
                failures.append(f"{name} (CLI): exit {proc.returncode}: {proc.stderr[-300:]}")
            elif (proc.returncode == 2) != bool(error):
                failures.append(f"{name} (CLI): exit {proc.returncode} but in-process {error!r:.100}")
        if sorted(p.name for p in work.iterdir()) != ["w.yaml"]:
            failures.append(f"{name}: wrote {sorted(p.name for p in work.iterdir())}")
            for extra in work.iterdir():
                if extra.name != "w.yaml":
                    subprocess.run(["rm", "-rf", str(extra)])
    assert (outside / "sentinel").read_bytes() == b"untouched"
    assert sorted(p.name for p in outside.iterdir()) == ["sentinel"]
    assert cli_cases >= FUZZ_N // CLI_EVERY
    assert sorted(fio_cache.rglob("*")) == cache_before
    assert not failures, "\n".join(failures[:30])
