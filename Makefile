# The README's two commands: `make run` and `make test`. Both install what they need first.
VENV := .venv/bin
WORKLOAD ?= workloads/quickstart.yaml

.PHONY: setup setup-test run test test-fast clean

setup:
	scripts/install.sh

setup-test:
	scripts/install.sh test

run: setup
	$(VENV)/blkcmp run $(WORKLOAD) --auto

# The whole suite, VM tier included (builds and caches the test kernels when missing).
test: setup-test
	$(VENV)/python -m pytest -q -ra

# Inner loop for developers: everything but the tests that boot a kernel.
test-fast: setup-test
	$(VENV)/python -m pytest -q -ra -m "not vm"

clean:
	rm -rf .venv .pytest_cache
