# The two commands the README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Test processes (pytest-xdist); whole files go to one process so module fixtures start once.
TEST_PROCS ?= 2

.PHONY: demo test install bench lint clean db-upgrade constraints

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/controlplane demo

test: $(STAMP)
	$(BIN)/pytest -q -n $(TEST_PROCS) --dist loadfile $(PYTEST_ARGS)

# ruff (format check + lint) over the whole tree, strict mypy over the three packages.
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

db-upgrade: $(STAMP)
	$(BIN)/controlplane db upgrade

# Refresh the tested versions after changing dependencies in pyproject.toml (then run `make test`).
constraints: $(STAMP)
	$(BIN)/pip install --quiet --upgrade -e '.[dev,bench]'
	$(BIN)/pip freeze --exclude-editable | grep -v '^openclaw-fleet-controlplane' > constraints.txt

clean:
	rm -rf $(VENV) .ci-venv .pytest_cache .hypothesis controlplane.db* fly-emulator.json
