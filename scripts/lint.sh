#!/usr/bin/env bash
# `make lint` (and the first step of `make test`): ruff lint, ruff format check, layer contracts.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || exit 1
out=$(scripts/lint-imports.sh 2>&1); rc=$?
if (( rc )); then sed -n '/^Contracts:/,$p' <<<"$out" >&2; echo "[lint] import-linter: contracts broken" >&2; exit 1; fi
grep -E "^Contracts:" <<<"$out"
