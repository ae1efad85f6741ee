# Computer Use Backend. `make help` lists the targets.
# `make run` and `make test` each do all set-up on a fresh Debian machine (as root).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# HOST / PORT come from the environment or .env (defaults 127.0.0.1:8000); `make run PORT=9000`
# overrides both.
SERVE_FLAGS := $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT))

.DEFAULT_GOAL := help

.PHONY: help
help: ## show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.stamp-app: pyproject.toml
	bash scripts/install-system-deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.stamp-test: pyproject.toml tests/mcp_server/js/package-lock.json $(VENV)/.stamp-app
	bash scripts/install-system-deps.sh --with-test
	$(PIP) install -q -e '.[test,cluster]'
	cd tests/mcp_server/js && npm ci --no-audit --no-fund  # the official TS MCP clients
	touch $@

.PHONY: setup
setup: $(VENV)/.stamp-app ## install system packages, create .venv, install the project (nothing started)
	$(PY) -m computer_use migrate

.PHONY: run
run: setup ## set up, apply migrations and serve (127.0.0.1:8000; HOST / PORT override)
	$(PY) -m computer_use serve $(SERVE_FLAGS)

.PHONY: lint
lint: $(VENV)/.stamp-test ## ruff (lint + format check) and mypy --strict
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

.PHONY: test
test: $(VENV)/.stamp-test lint ## set up with test dependencies, lint, run the whole suite
	$(VENV)/bin/pytest $(PYTEST_ARGS)

.PHONY: demo
demo: setup ## the whole system offline: a scripted model stands in for the Anthropic API
	$(PY) -m computer_use demo $(SERVE_FLAGS)

.PHONY: bench
bench: $(VENV)/.stamp-test ## desktop benchmarks (prints figures next to their targets)
	$(PY) bench/desktop.py

.PHONY: soak
soak: $(VENV)/.stamp-test ## reliability load for 10 min (SOAK_ARGS="--minutes 30 --database-url ...")
	$(PY) bench/soak.py $(SOAK_ARGS)

.PHONY: clean
clean: ## remove the virtualenv (keeps ./data)
	rm -rf $(VENV)
