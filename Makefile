# Depot: `make run` starts the embedded default, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint bench smoke

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

install: $(STAMP) ## create .venv from the lock file

run: install ## start the emulator on :4566, load today's day, serve the API on :8000
	$(BIN)/depot run

test: install ## run the whole test suite
	$(BIN)/pytest

lint: install ## static checks
	$(BIN)/ruff check src tests

bench: install ## run the benchmarks, write bench/results/
	$(BIN)/python -m bench

smoke: ## the brief's curl against a running server
	curl -fsS -X POST http://localhost:8000/assign -H "Content-Type: application/json" \
	  -d '{"driver_ids":["driver_1","driver_2"],"max_per_driver":2}'
	@echo
