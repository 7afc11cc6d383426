#!/usr/bin/env bash
# `make test`: bootstrap (venv, project, apt packages), lint (ruff, layer contracts, mypy), a Docker engine
# for the Compose tests, then the whole suite. A dockerd this run had to start is stopped again at the end, pass or fail.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test || exit 1
scripts/lint.sh || exit 1  # ruff + the import-linter layer contracts + mypy
started_docker=0
if ! docker info >/dev/null 2>&1; then started_docker=1; fi
scripts/ensure-docker.sh || exit 1
if (( started_docker )); then trap 'scripts/ensure-docker.sh --stop' EXIT; fi
scripts/run-tests.sh "$@"
