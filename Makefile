# One command for each habit. Each installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
# `make test` runs the quick tier; `make test FULL=1` everything (CI: `make test`, then
# `make test-slow`, the tiers the quick one leaves out).
QUICK := -m "not slow and not faults"
TIER := $(if $(FULL),,$(QUICK))

.PHONY: demo test test-slow lint format bench loadtest clean

$(VENV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The demo needs the service and the embedded servers only (no test or lint tools).
$(RUN_STAMP): pyproject.toml | $(VENV)
	$(BIN)/pip install --quiet -e ".[embedded]"
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml | $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP) $(RUN_STAMP)

## demo: start API + order writer + embedded Postgres/Redis with a demo flash sale
demo: $(RUN_STAMP)
	$(BIN)/seckill dev

## test: the quick tier against real Postgres and Redis (FULL=1: every tier)
test: $(STAMP)
	$(BIN)/pytest $(TIER)

## test-slow: the tiers `make test` leaves out: crowds, load smoke, faults (markers slow, faults)
test-slow: $(STAMP)
	$(BIN)/pytest -m "slow or faults"

## lint: ruff (check + format), mypy --strict and the import layers (lint-imports)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: purchase throughput/latency vs in-run baselines, and the writer's drain rate
##        (flags through BENCH_ARGS, e.g. `make bench BENCH_ARGS=--quick`; needs wrk)
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## loadtest: a headless flash-crowd run against a running service, then the audit
loadtest: $(STAMP)
	bash loadtests/run.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .import_linter_cache
