# The README's two commands: `make run` and `make test`. Both install what they need first.
VENV := .venv/bin
WORKLOAD ?= workloads/quickstart.yaml

.PHONY: setup setup-test run test test-fast lint bench bench-scale clean

setup:
	scripts/install.sh

setup-test:
	scripts/install.sh test

run: setup
	$(VENV)/blkcmp run $(WORKLOAD) --auto

# The whole suite, VM tier included (builds and caches the test kernels when missing); ruff
# (lint and format, pinned in the test extras) first: a dirty tree fails before the suite runs.
test: setup-test lint
	$(VENV)/python -m pytest -q -ra

lint: setup-test
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

# Inner loop for developers: everything but the tests that boot a kernel.
test-fast: setup-test lint
	$(VENV)/python -m pytest -q -ra -m "not vm"

# blkcmp's own speed (never part of `make test`): pytest-benchmark runs saved as JSON under
# benchmarks/results/ (compare a later change with --benchmark-compare), then the harness
# overhead (blkcmp run vs bare fio, interleaved; root for the loop device).
BENCH_ARGS ?=
bench: setup-test
	$(VENV)/python -m pytest benchmarks -q -p no:cacheprovider --benchmark-storage=benchmarks/results \
		--benchmark-autosave --benchmark-columns=min,median,max,rounds $(BENCH_ARGS)
	$(VENV)/python -m benchmarks.overhead

# ingest, compare and report of a 9,600-run campaign and of issue 10's 98-file folder (minutes)
bench-scale: setup-test
	$(VENV)/python -m benchmarks.scale

clean:
	rm -rf .venv .pytest_cache
