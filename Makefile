# flashlab — the two commands that matter: `make demo` and `make test` (both bootstrap a fresh machine).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: bootstrap demo test test-fast lint format bench docs-figures notebooks jupyter docker clean help lock

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

bootstrap: ## create .venv, install the project and system packages (apt, when root)
	@scripts/bootstrap.sh

demo: bootstrap ## start the local stack, run a flash sale with faults, print the verdict and report path
	@$(BIN)/flashlab demo

test: ## bootstrap, then the whole test suite (includes Compose; starts dockerd if needed)
	@scripts/test.sh $(PYTEST_ARGS)

test-fast: bootstrap ## the suite without Docker Compose and slow tests
	@scripts/run-tests.sh -m "not compose and not slow" $(PYTEST_ARGS)

lint: bootstrap ## ruff lint + format check + layer contracts + no import cycles + mypy
	@scripts/lint.sh

format: bootstrap ## apply ruff format and autofixes
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

bench: bootstrap ## the full benchmark suite; appends to bench/results.jsonl
	@$(BIN)/flashlab bench all

docs-figures: bootstrap ## rewrite the measured figures in README.md and docs/*.md from committed results (docs/data/, bench/results.jsonl)
	@$(BIN)/python -m flashlab.analysis.docfigures write

notebooks: bootstrap ## make (or reuse) the real runs the notebooks read, execute them, render reports/notebooks/*.html
	@$(BIN)/python -m flashlab.lab.notebooks --out reports/notebooks

jupyter: bootstrap ## JupyterLab on notebooks/ (they read the runs `make notebooks` cached; a banner says when there are none)
	@$(BIN)/jupyter lab --notebook-dir notebooks

docker: bootstrap ## build the offline Compose images
	@scripts/ensure-docker.sh
	@scripts/build-images.sh

lock: ## refresh constraints.txt (the exact versions bootstrap installs) from pyproject's ranges
	@scripts/lock.sh

clean: ## remove generated reports and caches (keeps .venv)
	rm -rf reports/* .pytest_cache .ruff_cache test-artifacts
	@touch reports/.gitkeep
