# ScriptOps: `make run` serves the app with its workers; `make test` runs every check and test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# Parallel test processes (pytest-xdist); the suite is mostly waiting on subprocesses.
TEST_WORKERS ?= 4

.PHONY: run test lint fmt check bench fuzz screenshots clean

$(VENV)/.runtime: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

run: $(VENV)/.runtime
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py bootstrap
	$(PY) manage.py serve --host $(HOST) --port $(PORT)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

fmt: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

check: $(VENV)/.dev
	$(PY) manage.py check --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run

test: lint check
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(VENV)/.dev
	$(PY) bench/run.py $(BENCH_ARGS)

# Hostile input at volume: schemathesis over every API operation as each role and the
# path-traversal corpus (tests/security/), FUZZ_EXAMPLES per operation; summary in bench/results/.
FUZZ_EXAMPLES ?= 100
fuzz: $(VENV)/.dev
	$(PY) bench/fuzz.py --examples $(FUZZ_EXAMPLES)

# Every dashboard page at 1440 and 390 px, light and dark, driven by the browser tests'
# tour (tests/browser/test_a11y.py) into test-artifacts/screenshots/ (not committed).
screenshots: $(VENV)/.dev
	SCRIPTOPS_SCREENSHOTS=1 $(PY) -m pytest -q -p no:cacheprovider tests/browser/test_a11y.py -k test_screenshots

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
