#!/usr/bin/env python3
"""A stand-in for fio in measured runs — test-only (`BLKCMP_TEST_FAKE_FIO` names this file).

It reaches failure paths a real fio cannot be made to hit at a chosen moment: a run failing in
the middle of a campaign, the target changed under a run.  blkcmp calls it exactly as it calls
fio (`--output-format=json+ --output=PATH JOB`); it writes a recorded json+ document (a real
fio 3.33 output, tests/data/fio/fio-3.33-null-jsonplus.json) to PATH.  Nothing is measured.
Standard library only: it runs under whatever python3 is on PATH.

Set in the environment of the blkcmp under test:
  FAKE_FIO_LOG       a file; one line per call (the job file's path): which runs ran, how often
  FAKE_FIO_FAIL_AT   N: the N-th call (counting lines in FAKE_FIO_LOG) fails as fio fails an I/O
                     job: the document with error 5, fio's error line on stderr, exit status 1
  FAKE_FIO_KILL_PARENT_AT  N: the N-th call SIGKILLs blkcmp (its parent) before writing
                     anything, as a power cut or the OOM killer would in the middle of a run
  FAKE_FIO_OBSTRUCT  1: replace the job's `filename=` file with a non-empty directory, as
                     something else on the machine might while the run goes on
  FAKE_FIO_SCALE     TARGET:F1,F2,…: that target's throughput in round k scaled by Fk (the
                     round and target read from the run directory's name), so a test can set
                     a ratio that is never settled and never precise
"""

import json
import os
import re
import signal
import sys
from pathlib import Path

RECORDED = Path(__file__).resolve().parent / "data" / "fio" / "fio-3.33-null-jsonplus.json"


def main(argv: list[str]) -> int:
    if "--version" in argv:
        print("fio-3.33")
        return 0
    output = Path(next(a.split("=", 1)[1] for a in argv if a.startswith("--output=")))
    job = Path(argv[-1])
    calls = 1
    if log := os.environ.get("FAKE_FIO_LOG"):
        with open(log, "a") as fh:
            fh.write(f"{job}\n")
        calls = len(Path(log).read_text().splitlines())
    if os.environ.get("FAKE_FIO_KILL_PARENT_AT") == str(calls):
        os.kill(os.getppid(), signal.SIGKILL)
        return 137
    doc = json.loads(RECORDED.read_text())
    options = dict(
        line.split("=", 1)
        for line in job.read_text().splitlines()
        if "=" in line and not line.startswith(("#", ";"))
    )
    if os.environ.get("FAKE_FIO_OBSTRUCT") == "1" and options.get("filename"):
        target = Path(options["filename"])
        if target.is_file():
            target.unlink()
            target.mkdir()
            (target / "in-the-way").write_text("")
    failing = os.environ.get("FAKE_FIO_FAIL_AT") == str(calls)
    if failing:
        doc["jobs"][0]["error"] = 5
        print(
            "fio: io_u error on file /dev/fake: Input/output error: read offset=0, buflen=4096",
            file=sys.stderr,
        )
    if scale := os.environ.get("FAKE_FIO_SCALE"):
        target, factors = scale.split(":", 1)
        m = re.search(r"r(\d+)-p\d+-(.+)$", job.parent.name)
        if m and m.group(2) == target:
            factor = float(factors.split(",")[(int(m.group(1)) - 1) % len(factors.split(","))])
            for side in ("read", "write"):
                for key in ("iops", "iops_mean", "bw", "bw_bytes", "bw_mean"):
                    if key in doc["jobs"][0].get(side, {}):
                        doc["jobs"][0][side][key] *= factor
    output.write_text(json.dumps(doc))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
