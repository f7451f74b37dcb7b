"""Error lines quote what the user gave shortened: a 200,000-character option value or a
10,000-character name never becomes a line of that length (bench.errors.shorten)."""

from __future__ import annotations

from conftest import no_traceback, run_cli, write_workload

from bench.errors import LINE_LIMIT, shorten, shorten_line


def test_shorten_keeps_short_text_and_says_how_much_it_cut():
    assert shorten("4k") == "4k"
    assert shorten("a\nb") == "a\\nb"  # one line, always
    assert shorten("x" * 200_000) == "x" * 80 + "… (199920 more characters)"
    assert len(shorten_line("y" * 200_000)) == LINE_LIMIT + len("… (199000 more characters)")


def test_a_huge_fio_value_is_refused_by_its_length_not_echoed(tmp_path, env):
    # Over the workload's string bound (4,096 characters): refused by length, not quoted.
    value = "4k" + "x" * 200_000
    path = write_workload(
        tmp_path,
        "targets:\n  n: {driver: fio-null}\nfio:\n  bs: "
        + value
        + "\nrepetitions: 1\nruntime: 1\nramp_time: 0\n",
    )
    out = run_cli("run", path, "--results", tmp_path / "results", env=env)
    assert out.returncode == 2
    no_traceback(out)
    (line,) = out.stderr.splitlines()
    assert line == f"blkcmp: error: {path}:4: fio.bs: expected at most 4096 characters, found 200002"
    assert not (tmp_path / "results").exists()


def test_a_long_fio_value_fio_rejects_is_echoed_shortened(tmp_path, env):
    # Within the bound, but fio rejects it: fio's complaint quotes it, and blkcmp shortens that.
    value = "x" * 4000
    path = write_workload(
        tmp_path,
        "targets:\n  n: {driver: fio-null}\nfio:\n  bs: "
        + value
        + "\nrepetitions: 1\nruntime: 1\nramp_time: 0\n",
    )
    out = run_cli("run", path, "--results", tmp_path / "results", env=env)
    assert out.returncode == 2
    no_traceback(out)
    (line,) = out.stderr.splitlines()
    assert line.startswith(f"blkcmp: error: {path}: fio rejects the job for n")
    assert "more characters)" in line and len(line) < 600 + len(str(path))
    assert not (tmp_path / "results").exists()


def test_a_huge_directory_name_is_echoed_shortened(tmp_path, env):
    out = run_cli("export", "/nonexistent/" + "d" * 4000, env=env)
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert line.endswith("more characters): not a blkcmp campaign directory (no campaign.json)")
    assert len(line) < 420
