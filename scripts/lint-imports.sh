#!/usr/bin/env bash
# Check the import-linter contracts in pyproject.toml ([tool.importlinter]).
# Why a staging tree: system/, simulator/, chaos/, analysis/ and bench/ are mapped into the
# `flashlab` package by setuptools' package-dir, but grimp (import-linter's graph builder) walks
# the `flashlab/` folder on disk. So scripts/stage-package.py stages the package as installed -
# flashlab/ plus each mapped folder under it (symlinked files) - and import-linter reads that.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
.venv/bin/python scripts/stage-package.py "$stage"
cd "$stage" && PYTHONPATH="$stage" "$OLDPWD/.venv/bin/lint-imports" "$OLDPWD/pyproject.toml" --no-cache
