# The two commands of the README: `make demo` and `make test`. Each builds its own venv.
PYTHON ?= python3
PACKAGES = -e 'packages/voltx-core[live]' -e packages/voltx-backends -e packages/voltx-phases
PIP_QUIET = --quiet --disable-pip-version-check
# The CPU build of torch this machine kind keeps on disk; any other version downloads GBs of CUDA.
TORCH = torch==2.13.0

.PHONY: demo demo-tools test test-tools lint typecheck test-core clean

# Install voltx with the example plugin and run the demo pipeline on the embedded data.
demo: demo-tools .venv/.installed
	.venv/bin/voltx run all
	.venv/bin/voltx artifacts list

.venv/.installed: packages/*/pyproject.toml examples/voltx-example-textstats/pyproject.toml
	$(PYTHON) -m venv .venv
	.venv/bin/pip install $(PIP_QUIET) $(TORCH)
	.venv/bin/pip install $(PIP_QUIET) $(PACKAGES) -e examples/voltx-example-textstats
	touch $@

# Install the system tools the suite runs for real (sshd, rsync, bubblewrap, the sandbox's
# toolchains), lint, type-check, run the whole suite, then check voltx-core alone without torch.
# Two pytest workers, each taking whole files: a third of the suite's time is spent waiting on
# subprocesses, sshd, moto and the fake Vast API, which the other worker fills. Tests marked
# `alone` time one run against another, so they run afterwards, on an otherwise quiet machine.
test: test-tools .venv-test/.installed lint typecheck test-core
	.venv-test/bin/pytest -q -n 2 --dist loadfile -m "not alone"
	.venv-test/bin/pytest -q -m alone

demo-tools:
	scripts/install-system-tools.sh demo

test-tools:
	scripts/install-system-tools.sh test

.venv-test/.installed: packages/*/pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv .venv-test
	.venv-test/bin/pip install $(PIP_QUIET) $(TORCH)
	.venv-test/bin/pip install $(PIP_QUIET) $(PACKAGES) -r requirements-dev.txt
	touch $@

lint: .venv-test/.installed
	.venv-test/bin/ruff check .
	.venv-test/bin/ruff format --check .

typecheck: .venv-test/.installed
	.venv-test/bin/mypy

# voltx-core must install and pass its own tests with nothing else present (no torch, no plugins).
test-core: .venv-core/.installed
	.venv-core/bin/pytest -q -p no:cacheprovider tests/core

.venv-core/.installed: packages/voltx-core/pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv .venv-core
	.venv-core/bin/pip install $(PIP_QUIET) -e 'packages/voltx-core[live]' pytest==9.2.0 hypothesis==6.170.15
	touch $@

clean:
	rm -rf .venv .venv-test .venv-core .voltx
