# One command for each habit. Each installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench loadtest clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

## demo: start API + order writer + embedded Postgres/Redis with a demo flash sale
demo: $(STAMP)
	$(BIN)/seckill dev

## test: the whole test suite against real Postgres and Redis
test: $(STAMP)
	$(BIN)/pytest

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
