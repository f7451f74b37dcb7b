"""Fixtures of blkcmp's own benchmarks (`make bench`): synthetic fio output folders and the
campaigns ingested from them, built once per session under pytest's temporary directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import synthetic

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    """blkcmp as a user runs it: a fresh Python process (start-up and imports included)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session")
def jsonplus_1000(tmp_path_factory) -> Path:
    """1,000 fio 3.33 json+ files: the first 1,000 runs of the 120-point matrix."""
    out = tmp_path_factory.mktemp("jsonplus-1000")
    synthetic.jsonplus_folder(out, limit=1000)
    return out


@pytest.fixture(scope="session")
def plain_98(tmp_path_factory) -> Path:
    """issue 10's folder: 98 fio 3.1-style plain JSON files, 5 points x 2 targets."""
    out = tmp_path_factory.mktemp("plain-98")
    synthetic.plain_folder(out)
    return out


@pytest.fixture(scope="session")
def campaign_1000(tmp_path_factory) -> Path:
    """1,000 runs: 25 points x 20 rounds x 2 targets, ingested."""
    from bench.ingest import ingest

    files = tmp_path_factory.mktemp("files-1000")
    matrix = {"rw": ["randread"], "bs": ["4k", "8k", "16k", "64k", "128k"], "iodepth": [1, 2, 4, 16, 64]}
    synthetic.jsonplus_folder(files, matrix=matrix, rounds=20)
    into = tmp_path_factory.mktemp("campaign-1000") / "c"
    ingest([files], into)
    return into


@pytest.fixture(scope="session")
def campaign_120_points(tmp_path_factory) -> Path:
    """120 points (issue 11's matrix) x 3 rounds x 2 targets = 720 runs, ingested: the report's
    figures and pages are those of the 9,600-run campaign, with fewer runs behind each."""
    from bench.ingest import ingest

    files = tmp_path_factory.mktemp("files-120")
    synthetic.jsonplus_folder(files, rounds=3)
    into = tmp_path_factory.mktemp("campaign-120") / "c"
    ingest([files], into)
    return into
