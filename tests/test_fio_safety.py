"""What a workload may make fio do: every injection class of issue 9 is refused by `plan` and by
`run` (exit 2, nothing written, a sentinel file's bytes unchanged), allowed options only under
`allow_fio_options:` with log paths redirected into the run directory, and fio's own option table
read from the real fio binary."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from conftest import campaign_dir, needs_root, no_traceback, run_cli, scratch_loop, write_workload

from bench import fio_options
from bench.workload import loads

pytestmark = needs_root

# A file target in the test's own directory, written by every run, so an injection that works
# would have made fio write (or run something) for real.
HEAD = """name: inj
targets:
  f:
    driver: file
    options: {{size: 4, directory: {tmp}}}
repetitions: 1
runtime: 1
ramp_time: 0
"""


@pytest.fixture
def sentinel(tmp_path):
    """A file outside every target, with known bytes, in a directory of its own."""
    directory = tmp_path / "outside"
    directory.mkdir()
    path = directory / "sentinel.bin"
    path.write_bytes(os.urandom(4096))
    return path


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# (id, the fio block or extra top-level YAML with {s} = the sentinel, {d} = its directory,
#  a fragment the one-line error must hold). Each of these ran with exit 0 before issue 9.
INJECTIONS = [
    ("newline-in-value", 'fio:\n  rw: write\n  bs: "4k\\nfilename={s}"\n', "control character ('\\n')"),
    ("newline-in-key", 'fio:\n  rw: write\n  "bs=4k\\nfilename": "{s}"\n', "control character ('\\n')"),
    ("carriage-return-in-value", 'fio:\n  rw: write\n  bs: "4k\\rfilename={s}"\n', "control character"),
    ("spaced-reserved-key", 'fio:\n  rw: write\n  "filename ": "{s}"\n', "is fio's 'filename'"),
    ("case-of-reserved-key", 'fio:\n  rw: write\n  FileName: "{s}"\n', "set by blkcmp"),
    ("alias-of-owned-runtime", "fio:\n  timeout: 3600\n", "('timeout' is fio's 'runtime')"),
    ("dash-spelling-of-owned", "fio:\n  time-based: 0\n", "set by blkcmp"),
    ("reserved-as-axis", 'matrix:\n  filename: ["{s}"]\n', "set by blkcmp"),
    ("directory", 'fio:\n  rw: write\n  directory: "{d}"\n', "set by blkcmp"),
    ("opendir", 'fio:\n  rw: write\n  opendir: "{d}"\n', "write to every file under a directory"),
    ("exec-prerun", "fio:\n  exec_prerun: \"sh -c 'echo pwned > {s}'\"\n", "runs a program as root"),
    ("exec-postrun", "fio:\n  exec_postrun: \"sh -c 'echo pwned > {s}'\"\n", "runs a program as root"),
    ("write-iolog", 'fio:\n  write_iolog: "{s}"\n', "allow_fio_options"),
    ("write-bw-log", 'fio:\n  write_bw_log: "{d}/bw"\n', "allow_fio_options"),
    ("write-lat-log-in-matrix", 'matrix:\n  write_lat_log: ["{d}/lat"]\n', "allow_fio_options"),
    ("read-iolog", 'fio:\n  read_iolog: "{s}"\n', "cannot check"),
    ("replay-redirect", 'fio:\n  replay_redirect: "{s}"\n', "refused"),
    ("mem-mmap-file", 'fio:\n  mem: "mmap:{s}"\n', "create, truncate and then delete"),
    ("buffer-pattern-file", "fio:\n  rw: write\n  buffer_pattern: \"'{s}'\"\n", "read that file"),
    ("ioengine-exec", "fio:\n  ioengine: exec\n", "list 'ioengine=exec' under allow_fio_options"),
    ("ioengine-filedelete", "fio:\n  ioengine: filedelete\n", "does more than I/O"),
    ("ioengine-external", 'fio:\n  ioengine: "external:{d}/engine.so"\n', "loads a shared library"),
    ("ioscheduler", "fio:\n  ioscheduler: bfq\n", "queue: {scheduler"),
    ("cgroup", "fio:\n  cgroup: blkcmp-test\n", "cgroups"),
    ("allow-mounted-write", "fio:\n  allow_mounted_write: 1\n", "mounted device"),
    ("environment-variable", 'fio:\n  description: "${{HOME}}"\n', "environment variable"),
    ("section-header-as-key", 'fio:\n  "[global]": 1\n', "expected an fio option name"),
]


@pytest.mark.parametrize("block,fragment", [c[1:] for c in INJECTIONS], ids=[c[0] for c in INJECTIONS])
@pytest.mark.parametrize("command", ["plan", "run"])
def test_injection_is_refused_before_anything_is_written(tmp_path, env, sentinel, command, block, fragment):
    text = HEAD.format(tmp=tmp_path) + block.format(s=sentinel, d=sentinel.parent)
    path = write_workload(tmp_path, text)
    before = _snapshot(sentinel.parent)
    results = tmp_path / "results"
    args = ("run", path, "--results", results, "--quiet") if command == "run" else ("plan", path)
    proc = run_cli(*args, env=env)
    no_traceback(proc)
    assert proc.returncode == 2, proc.stderr + proc.stdout
    errors = proc.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"blkcmp: error: {path}:"), errors
    assert fragment in errors[0], errors[0]
    assert "internal error" not in proc.stderr
    assert _snapshot(sentinel.parent) == before  # not a byte changed, nothing added
    assert not results.exists()
    assert not list(tmp_path.glob("blkcmp-*.img"))  # no target was set up


def test_log_options_allowed_land_in_the_run_directory(tmp_path, env, sentinel):
    text = HEAD.format(tmp=tmp_path) + (
        f"allow_fio_options: [write_bw_log, write_iolog]\n"
        f'fio:\n  rw: write\n  bs: 4k\n  write_bw_log: "{sentinel.parent}/bw"\n'
        f'  write_iolog: "{sentinel}"\n'
    )
    path = write_workload(tmp_path, text)
    before = _snapshot(sentinel.parent)
    proc = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    assert _snapshot(sentinel.parent) == before
    run = campaign_dir(tmp_path / "results") / "runs" / "r001-p000-f"
    job = (run / "job.fio").read_text()
    assert "write_bw_log=bw\n" in job and "write_iolog=sentinel.bin\n" in job
    assert (run / "bw_bw.1.log").stat().st_size > 0
    assert (run / "sentinel.bin").read_text().startswith("fio version")  # the iolog, written here


def test_allowed_log_path_never_reaches_a_block_device(tmp_path, env):
    with scratch_loop(tmp_path) as (device, backing):
        before = backing.read_bytes()
        text = HEAD.format(tmp=tmp_path) + (
            f'allow_fio_options: [write_iolog]\nfio:\n  rw: write\n  write_iolog: "{device}"\n'
        )
        path = write_workload(tmp_path, text)
        proc = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env)
        assert proc.returncode == 0, proc.stderr
        with open(device, "rb") as fh:
            assert fh.read(len(before)) == before
        run = campaign_dir(tmp_path / "results") / "runs" / "r001-p000-f"
        assert (run / Path(device).name).is_file()


@pytest.mark.parametrize(
    "entry,fragment",
    [
        ("opendir", "cannot be allowed: it makes fio write to every file"),
        ("filename", "cannot be allowed: blkcmp sets it"),
        ("timeout", "cannot be allowed: blkcmp sets it"),
        ("bs", "not needed"),
        ("exec_prerum", "did you mean 'exec_prerun'"),
        ("ioengine=psync", "not needed"),
        ("ioengine=nosuch", "no I/O engine"),
    ],
)
def test_allow_fio_options_entries_are_checked(entry, fragment):
    text = f"targets:\n  a: {{driver: fio-null}}\nallow_fio_options: [{entry}]\n"
    with pytest.raises(Exception) as info:
        loads(text, "w.yaml", fio_options.table())
    (line,) = str(info.value).splitlines()
    assert line.startswith("w.yaml:3: allow_fio_options[0]:") and fragment in line, line


def test_allowed_guarded_option_and_engine_pass():
    text = (
        "targets:\n  a: {driver: fio-null}\nallow_fio_options: [exec_prerun, ioengine=exec]\n"
        "fio:\n  exec_prerun: /bin/true\n  ioengine: exec\n"
    )
    workload = loads(text, "w.yaml", fio_options.table())
    assert workload.fio["exec_prerun"] == "/bin/true"


# (id, fio block, line, field, fragment) — mistakes a careful user makes, each with its fix.
MISTAKES = [
    ("yaml-null-engine", "fio:\n  ioengine: null\n", 5, "fio.ioengine", "quote it: 'null'"),
    ("yaml-tilde-engine", "fio:\n  ioengine: ~\n", 5, "fio.ioengine", "quote it: '~'"),
    ("yaml-off-word", "fio:\n  lockfile: off\n", 5, "fio.lockfile", "quote it: 'off'"),
    ("yaml-yes-word", "matrix:\n  rw: [read, yes]\n", 5, "matrix.rw[1]", "quote it: 'yes'"),
    ("misspelt-engine", "fio:\n  ioengine: io_urign\n", 5, "fio.ioengine", "did you mean 'io_uring'?"),
    ("misspelt-option", "fio:\n  iodpeth: 4\n", 5, "fio.iodpeth", "did you mean 'iodepth'?"),
    ("case-of-option", "fio:\n  RW: read\n", 5, "fio.RW", "fio spells it 'rw'"),
    (
        "engine-option-other-engine",
        "fio:\n  ioengine: psync\n  hipri: 1\n",
        6,
        "fio.hipri",
        "no option 'hipri'",
    ),
    ("alias-twice", "fio:\n  bs: 4k\n  blocksize: 8k\n", 6, "fio.blocksize", "same fio option as 'bs'"),
    (
        "alias-across-blocks",
        "fio:\n  rw: read\nmatrix:\n  readwrite: [write]\n",
        7,
        "matrix.readwrite",
        "same fio option as 'rw'",
    ),
    ("flag-without-value-ok-but-not-for-values", "fio:\n  bs:\n", 5, "fio.bs", "expected a value"),
]


@pytest.mark.parametrize("block,line,field,fragment", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_fio_option_mistakes_are_one_line_with_the_fix(tmp_path, block, line, field, fragment):
    text = "targets:\n  a:\n    driver: file\n" + block
    with pytest.raises(Exception) as info:
        loads(text, "w.yaml", fio_options.table())
    (error,) = str(info.value).splitlines()
    assert error.startswith(f"w.yaml:{line}: {field}:") and fragment in error, error


def test_engine_options_and_flags_of_the_engine_in_use_pass():
    text = (
        "targets:\n  a: {driver: file}\nfio:\n  ioengine: io_uring\n  hipri: 1\n  fixedbufs:\n"
        "  group_reporting:\n  readwrite: randread\n  direct: true\n"
    )
    workload = loads(text, "w.yaml", fio_options.table())
    assert workload.fio["fixedbufs"] is None and workload.fio["direct"] is True


def test_plan_runs_fio_parse_only_check(tmp_path, env):
    path = write_workload(tmp_path, "targets:\n  a: {driver: fio-null}\nmatrix:\n  iodepth: [1, many]\n")
    proc = run_cli("plan", path, env=env)
    assert proc.returncode == 2
    no_traceback(proc)
    (line,) = proc.stderr.splitlines()
    assert (
        line.startswith(f"blkcmp: error: {path}: fio rejects the job for a (a--p001.fio):") and "many" in line
    )


def test_check_names_the_refused_job_among_many(tmp_path, env):
    values = ", ".join(str(i) for i in range(1, 400)) + ", many"
    path = write_workload(tmp_path, f"targets:\n  a: {{driver: fio-null}}\nmatrix:\n  iodepth: [{values}]\n")
    proc = run_cli("plan", path, env=env)
    assert proc.returncode == 2
    assert "(a--p399.fio)" in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------------
# fio's own table


def test_table_is_read_from_this_fio_and_cached_per_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("BLKCMP_CACHE", str(tmp_path))
    monkeypatch.setattr(fio_options, "_CACHE", {})
    table = fio_options.table()
    assert table.canonical("timeout") == "runtime" and table.canonical(" Timeout ") == "runtime"
    assert table.canonical("readwrite") == "rw" and table.canonical("nosuchoption") is None
    assert table.info("group_reporting").is_flag and not table.info("ioengine").is_flag
    assert "io_uring" in table.engines and "hipri" in table.options_of("io_uring")
    assert set(table.names) <= fio_options.PLAIN | set(fio_options.OWNED) | set(fio_options.NEVER) | set(
        fio_options.GUARDED
    ), "fio has options blkcmp's lists do not sort (a new fio?)"
    table.save()
    (cached,) = (tmp_path / "fio").glob("options-*.json")
    saved = json.loads(cached.read_text())
    assert saved["version"] == table.version and saved["aliases"]["timeout"] == "runtime"
    assert saved["aliases"]["nosuchoption"] is None and "hipri" in saved["engine_options"]["io_uring"]
    # what was learnt is answered from the cache, without fio
    again = fio_options.OptionTable.from_dict(saved, fio=None)
    assert again.canonical("Timeout") == "runtime" and again.info("group_reporting").is_flag
    cached.write_text("{ damaged")  # a damaged cache is asked again, not trusted
    monkeypatch.setattr(fio_options, "_CACHE", {})
    fresh = fio_options.table()
    assert (fresh.version, fresh.names, fresh.engines) == (table.version, table.names, table.engines)
    assert json.loads(cached.read_text())["version"] == table.version


def test_parsers_read_fio_help_text():
    text = (
        "             runtime: Stop workload when this amount of time has passed\n"
        "               alias: timeout\n"
        "                type: string with time postfix (opt=10s)\n             default: 0\n"
    )
    assert fio_options.parse_cmdhelp("runtime", text) == fio_options.OptionInfo(
        "runtime", "timeout", "string with time postfix (opt=10s)", ()
    )
    text = (
        "            lockfile: Lock file when doing IO to it\n                type: string (opt=bla)\n"
        "        valid values: none       No file locking\n"
        "                    : exclusive  Exclusive file lock\n"
    )
    assert fio_options.parse_cmdhelp("lockfile", text).values == ("none", "exclusive")
    assert fio_options.parse_enghelp("Available IO engines:\n\tsync\n\tpsync\n") == ["sync", "psync"]
    assert fio_options.parse_cmdhelp_all("rw : IO direction\n  bs : Block size unit\n") == ["rw", "bs"]


def test_log_file_name_keeps_only_a_plain_name():
    assert fio_options.log_file_name("/etc/passwd") == "passwd"
    assert fio_options.log_file_name("../../x y") == "x_y"
    assert fio_options.log_file_name("/") == "log"
    assert fio_options.log_file_name("..") == "log"
    assert not re.search(r"[/\s]", fio_options.log_file_name("a/b/\u00e9\u0000"))


# ------------------------------------------------------------------------------------------
# A `file` target's file cannot be made to grow (fio writes out offset + size first; in /dev/shm
# `offset: 1T` filled this machine's memory while this was written)


@pytest.mark.parametrize(
    "block,field,fragment",
    [
        ("fio:\n  offset: 1T\n", "fio.offset", "as a percentage"),
        ("fio:\n  fileoffset: 1g\n", "fio.fileoffset", "as a percentage"),
        ("fio:\n  offset: 150%\n", "fio.offset", "at most 100%"),
        ("matrix:\n  offset: [0, 64m]\n", "matrix.offset[1]", "as a percentage"),
        ("fio:\n  filesize: 16m\n", "fio.filesize", "`size` option"),
        ("fio:\n  fill_device: 1\n", "fio.fill_device", "grow"),
        ("fio:\n  fill_fs: true\n", "fio.fill_fs", "grow"),
        ("fio:\n  file_append: 1\n", "fio.file_append", "grow"),
        ("fio:\n  offset_increment: 4m\n  numjobs: 4\n", "fio.offset_increment", "grow"),
    ],
)
def test_options_that_grow_a_file_target_are_refused(block, field, fragment):
    text = "targets:\n  f: {driver: file}\n  n: {driver: fio-null}\n" + block
    with pytest.raises(Exception) as info:
        loads(text, "w.yaml", fio_options.table())
    (line,) = str(info.value).splitlines()
    assert line.startswith("w.yaml:") and f": {field}:" in line and fragment in line, line
    # the same options are fine without a file target (a block device cannot grow)
    loads(text.replace("driver: file", "driver: loop"), "w.yaml", fio_options.table())


def test_percentage_offset_on_a_file_target_keeps_it_within_twice_its_size(tmp_path, env):
    text = HEAD.format(tmp=tmp_path) + "fio:\n  rw: write\n  offset: 50%\n  fill_device: 0\n"
    path = write_workload(tmp_path, text)
    proc = run_cli("plan", path, env=env)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", path, "--results", tmp_path / "results", "--quiet", env=env)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((campaign_dir(tmp_path / "results") / "runs" / "r001-p000-f" / "run.json").read_text())
    assert meta["status"] == "done"


def test_a_read_only_option_cache_costs_only_asking_fio_again(tmp_path, monkeypatch):
    # A VM guest's root filesystem is read-only: its blkcmp cannot keep fio's option table and
    # must still check workloads (every VM campaign failed on this once). The store reports such
    # a write as a StorageError; for a cache that is no error.
    import errno

    from bench import errors, fio_options, store

    def refuse(path, data):
        raise errors.storage_error(OSError(errno.EROFS, "Read-only file system", str(path)), path)

    monkeypatch.setattr(store, "atomic_write_json", refuse)
    table = fio_options.table()
    fio_options._save(tmp_path / "options-x.json", table)  # no exception
    assert not (tmp_path / "options-x.json").exists()
